use anyhow::Context;
use billing_starter::{
    cli::{Cli, Command, MigrateAction},
    config::Config,
    db,
    server::{self, telemetry, AppState},
};
use clap::Parser;
use migration::{Migrator, MigratorTrait};

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    // One clear line, no backtrace: a misconfigured deployment should read like a
    // checklist item, not a crash.
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(err) => {
            eprintln!("configuration error: {err}");
            std::process::exit(2);
        }
    };
    telemetry::init(config.app_env);

    if let Err(err) = run(cli.command.unwrap_or(Command::Serve), config).await {
        tracing::error!("{err:#}");
        eprintln!("error: {err:#}");
        std::process::exit(1);
    }
}

async fn run(command: Command, config: Config) -> anyhow::Result<()> {
    let db = db::connect(&config.database_url).await?;
    match command {
        Command::Serve => {
            db::migrate(&db).await?;
            serve(db, config).await
        }
        Command::Migrate { action } => match action.unwrap_or(MigrateAction::Up) {
            MigrateAction::Up => {
                db::migrate(&db).await?;
                println!("migrations applied");
                Ok(())
            }
            MigrateAction::Down { steps } => {
                Migrator::down(&db, Some(steps))
                    .await
                    .context("rolling back")?;
                println!("rolled back {steps} migration(s)");
                Ok(())
            }
            MigrateAction::Status => {
                for migration in Migrator::get_migration_with_status(&db).await? {
                    println!(
                        "{:<10} {}",
                        migration.status().to_string(),
                        migration.name()
                    );
                }
                Ok(())
            }
        },
    }
}

async fn serve(db: sea_orm::DatabaseConnection, config: Config) -> anyhow::Result<()> {
    let addr = config.listen_addr;
    tracing::info!(
        env = ?config.app_env,
        stripe = %config.stripe.describe(),
        database = %db::ping(&db).await?,
        "starting"
    );
    let emulator = server::dev_stripe::start_if_needed(&config).await?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    tracing::info!("listening on http://{addr}");
    server::serve(
        listener,
        AppState::new(db, config),
        server::shutdown_signal(),
    )
    .await?;
    if let Some(emulator) = emulator {
        // Saves the emulator's snapshot so the next `serve` finds the same account.
        emulator.stop().await;
    }
    tracing::info!("stopped");
    Ok(())
}
