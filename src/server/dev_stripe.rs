//! Development without Stripe keys: the loopback emulator, started in-process on
//! the `STRIPE_API_BASE` port unless one is already answering there.

use std::{net::SocketAddr, path::PathBuf};

use crate::config::{Config, StripeBackend};

#[derive(Debug, thiserror::Error)]
pub enum DevStripeError {
    #[error("STRIPE_API_BASE {0} is not a loopback http address the emulator can listen on")]
    NotLoopback(String),
    #[error("could not start the Stripe emulator on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// Starts the emulator if the configuration asks for it and none is running.
/// Returns the handle to stop (and snapshot) it at shutdown.
pub async fn start_if_needed(
    config: &Config,
) -> Result<Option<stripe_emulator::Running>, DevStripeError> {
    let StripeBackend::Emulator { api_base } = &config.stripe.backend else {
        return Ok(None);
    };
    let addr: SocketAddr = match (api_base.host_str(), api_base.port_or_known_default()) {
        (Some(host @ ("127.0.0.1" | "localhost")), Some(port)) if api_base.scheme() == "http" => {
            let ip = if host == "localhost" {
                [127, 0, 0, 1].into()
            } else {
                host.parse().expect("literal IP")
            };
            SocketAddr::new(ip, port)
        }
        _ => return Err(DevStripeError::NotLoopback(api_base.to_string())),
    };
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(listener) => listener,
        // Someone runs `cargo run -p stripe-emulator` already (or a second app
        // instance started one): share it rather than fail.
        Err(err) if err.kind() == std::io::ErrorKind::AddrInUse => {
            tracing::info!(%api_base, "port in use: using the Stripe emulator already running there");
            return Ok(None);
        }
        Err(source) => return Err(DevStripeError::Bind { addr, source }),
    };
    let snapshot = std::env::var("STRIPE_EMULATOR_SNAPSHOT")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(crate::config::defaults::STRIPE_EMULATOR_SNAPSHOT));
    if let Some(dir) = snapshot.parent().filter(|d| !d.as_os_str().is_empty()) {
        let _ = std::fs::create_dir_all(dir);
    }
    // Like `stripe listen --forward-to`: every event goes to this app's webhook route,
    // signed with the secret the app verifies.
    let forward_to = config
        .app_url
        .join(&config.paths.stripe_webhook)
        .ok()
        .and_then(|url| {
            let secret = config.stripe.webhook_secrets.first()?;
            Some(stripe_emulator::ForwardTarget {
                url: url.to_string(),
                secret: secrecy::ExposeSecret::expose_secret(secret).to_owned(),
            })
        });
    let running = stripe_emulator::start(
        listener,
        stripe_emulator::EmulatorConfig {
            snapshot: Some(snapshot),
            forward_to,
            business_name: Some(config.project_name.clone()),
            ..Default::default()
        },
    )
    .await
    .map_err(|source| DevStripeError::Bind { addr, source })?;
    tracing::warn!(api_base = %running.base_url, "Stripe emulator started in-process (test mode, no real payments)");
    Ok(Some(running))
}
