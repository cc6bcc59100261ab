//! `StripeGateway`: the only module that names async-stripe types. The rest of the
//! app sees our own types, so an API-version bump touches this module alone.

pub mod account;
pub mod billing;
pub mod catalog;
pub mod objects;

use secrecy::ExposeSecret;
use stripe::{Client, ClientBuilder, IdempotencyKey, RequestStrategy};

use crate::{
    catalog::StripeEnv,
    config::{Config, KeyMode, StripeBackend},
};

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("Stripe client configuration: {0}")]
    Config(String),
    #[error("Stripe call `{operation}` failed: {source}")]
    Stripe {
        operation: &'static str,
        #[source]
        source: stripe::StripeError,
    },
}

impl GatewayError {
    fn call(operation: &'static str) -> impl FnOnce(stripe::StripeError) -> Self {
        move |source| GatewayError::Stripe { operation, source }
    }
}

#[derive(Clone)]
pub struct StripeGateway {
    client: Client,
    /// Test or live objects: selects the catalog's pinned price ids.
    env: StripeEnv,
}

impl StripeGateway {
    /// A client for real Stripe (with the configured key) or for the emulator.
    pub fn from_config(config: &Config) -> Result<Self, GatewayError> {
        let (secret, api_base) = match &config.stripe.backend {
            StripeBackend::Emulator { api_base } => (
                crate::server::dev_stripe::EMULATOR_SECRET_KEY.to_owned(),
                Some(api_base.clone()),
            ),
            StripeBackend::Stripe { api_base, .. } => (
                config
                    .stripe
                    .secret_key
                    .as_ref()
                    .map(|key| key.expose_secret().to_owned())
                    .ok_or_else(|| GatewayError::Config("STRIPE_SECRET_KEY is not set".into()))?,
                api_base.clone(),
            ),
        };
        // Stripe's guidance: identify the integration (shown in the dashboard's logs).
        let mut builder = ClientBuilder::new(secret).app_info(
            config.project_name.clone(),
            Some(env!("CARGO_PKG_VERSION").to_owned()),
            Some(config.app_url.to_string()),
        );
        if let Some(base) = api_base {
            builder = builder.url(base.to_string());
        }
        let client = builder
            .build()
            .map_err(|err| GatewayError::Config(err.to_string()))?;
        let env = match config.stripe.backend {
            StripeBackend::Stripe {
                mode: KeyMode::Live,
                ..
            } => StripeEnv::Live,
            _ => StripeEnv::Test,
        };
        Ok(Self { client, env })
    }

    pub(crate) fn client(&self) -> &Client {
        &self.client
    }

    pub fn env(&self) -> StripeEnv {
        self.env
    }

    /// Runs a Stripe call, retrying what Stripe says may succeed later (429, 409
    /// "key in use", 5xx, network errors) up to three attempts with backoff. Each
    /// attempt rebuilds the same request — creates carry the same idempotency key —
    /// so a retry can never create a second object.
    pub(crate) async fn retrying<T, F, Fut>(
        &self,
        operation: &'static str,
        mut attempt: F,
    ) -> Result<T, GatewayError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, stripe::StripeError>>,
    {
        let mut delay = std::time::Duration::from_millis(50);
        for _ in 1..MAX_ATTEMPTS {
            match attempt().await {
                Err(err) if retryable(&err) => {
                    tracing::warn!(operation, error = %err, "Stripe call failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay *= 4;
                }
                other => return other.map_err(GatewayError::call(operation)),
            }
        }
        attempt().await.map_err(GatewayError::call(operation))
    }
}

const MAX_ATTEMPTS: u32 = 3;

fn retryable(err: &stripe::StripeError) -> bool {
    match err {
        stripe::StripeError::Stripe(_, status) => {
            *status == 409 || *status == 429 || *status >= 500
        }
        stripe::StripeError::ClientError(_) | stripe::StripeError::Timeout => true,
        _ => false,
    }
}

/// The Stripe API version async-stripe pins and parses (webhook endpoints must
/// send events in this version).
pub fn api_version() -> String {
    stripe_shared::version::VERSION.as_str().to_owned()
}

/// An idempotency key for a write whose effect is fully described by `parts`, so a
/// retried or re-run command cannot create the same thing twice.
pub(crate) fn idempotent(parts: &[&str]) -> RequestStrategy {
    let key = parts.join(":");
    let key = if key.len() > 200 {
        format!("{}…{}", &key[..100], key.len())
    } else {
        key
    };
    RequestStrategy::Idempotent(IdempotencyKey::new(key).expect("non-empty key under 255 bytes"))
}
