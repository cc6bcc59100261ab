use std::path::PathBuf;

use clap::Parser;
use stripe_emulator::{EmulatorConfig, ForwardTarget, RetryPolicy};

/// A loopback Stripe for development and tests.
#[derive(Parser)]
#[command(name = "stripe-emulator", version)]
struct Args {
    /// Port on 127.0.0.1 (Stripe's own stripe-mock uses 12111).
    #[arg(long, env = "STRIPE_EMULATOR_PORT", default_value_t = 12111)]
    port: u16,
    /// Also deliver every event here, like `stripe listen --forward-to`.
    #[arg(long, env = "STRIPE_EMULATOR_FORWARD_TO")]
    forward_to: Option<String>,
    /// Signing secret for --forward-to deliveries.
    #[arg(
        long,
        env = "STRIPE_EMULATOR_WEBHOOK_SECRET",
        default_value = "whsec_emulator"
    )]
    webhook_secret: String,
    /// Keep state in this JSON file across restarts.
    #[arg(long, env = "STRIPE_EMULATOR_SNAPSHOT")]
    snapshot: Option<PathBuf>,
    /// Delivery attempts per event before giving up.
    #[arg(long, default_value_t = 6)]
    max_attempts: u32,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", args.port)).await?;
    let config = EmulatorConfig {
        forward_to: args.forward_to.map(|url| ForwardTarget {
            url,
            secret: args.webhook_secret,
        }),
        retry: RetryPolicy {
            max_attempts: args.max_attempts,
            ..RetryPolicy::default()
        },
        snapshot: args.snapshot,
        business_name: None,
    };
    let running = stripe_emulator::start(listener, config).await?;
    tracing::info!("Stripe emulator listening on {}", running.base_url);
    let _ = tokio::signal::ctrl_c().await;
    running.stop().await;
    Ok(())
}
