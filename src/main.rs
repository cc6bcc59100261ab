use std::process::ExitCode;

use anyhow::Context;
use billing_starter::{
    billing::context::Billing,
    catalog::{self, diff},
    cli::{ApiKeysAction, CatalogAction, Cli, Command, MigrateAction, UsersAction, WebhooksAction},
    config::Config,
    db,
    gateway::StripeGateway,
    server::{self, telemetry, Application},
};
use clap::Parser;
use migration::{Migrator, MigratorTrait};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    server::memory::release_freed_memory_promptly();
    if let Err(err) = server::memory::keep_heap_in_small_pages() {
        // Only memory is at stake: serve anyway, and say so.
        eprintln!("warning: transparent huge pages stay on for this process: {err}");
    }
    let cli = Cli::parse();
    // One clear line, no backtrace: a misconfigured deployment should read like a
    // checklist item, not a crash.
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(err) => {
            eprintln!("configuration error: {err}");
            return ExitCode::from(2);
        }
    };
    telemetry::init(config.app_env);

    match run(cli.command.unwrap_or(Command::Serve), config).await {
        Ok(code) => code,
        Err(err) => {
            tracing::error!("{err:#}");
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command, config: Config) -> anyhow::Result<ExitCode> {
    match command {
        Command::Serve => serve(config).await.map(|()| ExitCode::SUCCESS),
        Command::Migrate { action } => migrate(config, action.unwrap_or(MigrateAction::Up))
            .await
            .map(|()| ExitCode::SUCCESS),
        Command::Catalog { action } => catalog_command(config, action).await,
        Command::Webhooks {
            action: WebhooksAction::Replay { event_id, .. },
        } => {
            let billing = operator_billing(config).await?;
            let replayed =
                billing_starter::operations::replay(&billing, event_id.as_deref()).await?;
            let mut failed = 0;
            for event in &replayed {
                match &event.result {
                    Ok(()) => println!("ok      {} {}", event.event_id, event.event_type),
                    Err(err) => {
                        failed += 1;
                        println!("failed  {} {}: {err}", event.event_id, event.event_type);
                    }
                }
            }
            println!("{} replayed, {failed} failed", replayed.len());
            Ok(if failed == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Reconcile => {
            let billing = operator_billing(config).await?;
            let drift = billing_starter::operations::reconcile(&billing).await?;
            for d in &drift {
                println!("fixed   {}: {}", d.subscription_id, d.change);
            }
            println!("{} subscription(s) differed from Stripe", drift.len());
            for (user, ids) in
                billing_starter::billing::service::live_subscriptions_beyond_one(&billing.db, None)
                    .await?
            {
                println!(
                    "warning user {user} has {} live subscriptions: {} (each is charged; cancel the extra one)",
                    ids.len(),
                    ids.join(", ")
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Users { action } => {
            let db = db::connect(&config.database_url).await?;
            db::migrate(&db).await?;
            let (email, operator) = match &action {
                UsersAction::Promote { email } => (email, true),
                UsersAction::Demote { email } => (email, false),
            };
            let changed = billing_starter::operator::set_operator(&db, email, operator).await?;
            println!(
                "{email} {} an operator{}",
                if operator { "is" } else { "is not" },
                if changed { "" } else { " (unchanged)" }
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::ApiKeys {
            action: ApiKeysAction::Create { email, org, name },
        } => {
            use billing_starter::entitlements::api_keys;
            let db = db::connect(&config.database_url).await?;
            db::migrate(&db).await?;
            let account = match api_keys::account_for_cli(&db, &email, org.as_deref()).await? {
                Ok(account) => account,
                Err(problem) => {
                    eprintln!("{problem}");
                    return Ok(ExitCode::FAILURE);
                }
            };
            let key = api_keys::create(&db, account, &name, None).await?;
            eprintln!(
                "API key `{}` ({}…) created; it is shown only this once:",
                key.name, key.prefix
            );
            println!("{}", key.secret);
            Ok(ExitCode::SUCCESS)
        }
        Command::Doctor => {
            let catalog = catalog::load::load(&config.catalog_path)?;
            let stripe = StripeGateway::from_config(&config)?;
            let db = db::connect(&config.database_url).await?;
            db::migrate(&db).await?;
            let checks = billing_starter::doctor::run(&config, &db, &stripe, &catalog).await;
            for check in &checks {
                println!("{check}");
            }
            Ok(if checks.iter().all(|c| c.ok) {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
}

/// Billing's context for a one-shot command: database (migrated), catalog, prices.
async fn operator_billing(config: Config) -> anyhow::Result<Billing> {
    let db = db::connect(&config.database_url).await?;
    db::migrate(&db).await?;
    let billing = Billing::new(db, std::sync::Arc::new(config))?;
    billing
        .refresh_prices()
        .await
        .context("resolving catalog prices in Stripe")?;
    Ok(billing)
}

async fn migrate(config: Config, action: MigrateAction) -> anyhow::Result<()> {
    let db = db::connect(&config.database_url).await?;
    match action {
        MigrateAction::Up => {
            db::migrate(&db).await?;
            println!("migrations applied");
        }
        MigrateAction::Down { steps } => {
            Migrator::down(&db, Some(steps))
                .await
                .context("rolling back")?;
            println!("rolled back {steps} migration(s)");
        }
        MigrateAction::Status => {
            for migration in Migrator::get_migration_with_status(&db).await? {
                println!(
                    "{:<10} {}",
                    migration.status().to_string(),
                    migration.name()
                );
            }
        }
    }
    Ok(())
}

async fn catalog_command(config: Config, action: CatalogAction) -> anyhow::Result<ExitCode> {
    let catalog = catalog::load::load(&config.catalog_path)?;
    let stripe = StripeGateway::from_config(&config)?;
    let remote = stripe.remote_catalog(&catalog).await?;
    let changes = diff::plan(&catalog, &remote);
    let applying = matches!(action, CatalogAction::Apply { check: false });
    if changes.is_empty() {
        println!(
            "Stripe ({}) matches {}: no changes.",
            config.stripe.describe(),
            config.catalog_path.display()
        );
        if applying {
            ensure_portal(&config, &stripe, &catalog).await?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{} change(s) between {} and Stripe ({}):",
        changes.len(),
        config.catalog_path.display(),
        config.stripe.describe()
    );
    for change in &changes {
        println!("  {change}");
    }
    match action {
        CatalogAction::Plan => Ok(ExitCode::SUCCESS),
        CatalogAction::Apply { check: true } => {
            println!("drift found (--check: nothing changed)");
            Ok(ExitCode::FAILURE)
        }
        CatalogAction::Apply { check: false } => {
            if let Err(err) = stripe.apply_catalog(&changes).await {
                // Say what was done and what was not, from Stripe's state now;
                // a re-run plans from that state and finishes the job.
                println!("failed: {err}");
                match stripe.remote_catalog(&catalog).await {
                    Ok(remote) => {
                        let left = diff::plan(&catalog, &remote);
                        println!(
                            "done: {} of {} changes; still to do:",
                            changes.len().saturating_sub(left.len()),
                            changes.len()
                        );
                        for change in &left {
                            println!("  {change}");
                        }
                    }
                    Err(read) => println!("Stripe could not be read back: {read}"),
                }
                println!("run `catalog apply` again to finish");
                return Ok(ExitCode::FAILURE);
            }
            let left = diff::plan(&catalog, &stripe.remote_catalog(&catalog).await?);
            anyhow::ensure!(
                left.is_empty(),
                "Stripe still differs after apply: {left:?}"
            );
            println!("applied; Stripe now matches the catalog");
            ensure_portal(&config, &stripe, &catalog).await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The customer portal's configuration for the catalog as it now is in Stripe.
async fn ensure_portal(
    config: &Config,
    stripe: &StripeGateway,
    catalog: &catalog::Catalog,
) -> anyhow::Result<()> {
    let directory = stripe.resolve_prices(catalog).await?;
    let id = billing_starter::billing::service::ensure_portal(stripe, catalog, config, &directory)
        .await?;
    println!("portal configuration {id} matches the catalog");
    Ok(())
}

/// The other pages' islands are lazy chunks: a front end built without
/// `cargo leptos … --split` has no chunks, and those islands never come alive.
fn warn_if_front_end_unsplit(site_root: &std::path::Path) {
    let pkg = site_root.join("pkg");
    if pkg.join("billing-starter.wasm").exists() && !pkg.join("__wasm_split_manifest.json").exists()
    {
        tracing::warn!(
            pkg = %pkg.display(),
            "front end built without --split: forms outside /pricing will not hydrate; \
             rebuild with `cargo leptos build --split`"
        );
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    warn_if_front_end_unsplit(&config.site_root);
    let addr = config.listen_addr;
    if !addr.ip().is_loopback() && std::env::var_os("APP_ENV").is_none() {
        tracing::warn!(
            %addr,
            "listening on a public address without APP_ENV set: this is a development \
             set-up (no HSTS, test keys allowed); set APP_ENV=production for a deployment"
        );
    }
    let app = Application::build(config).await?;
    // After the bind: the emulator's first events queue on the app's socket.
    let emulator = server::dev_stripe::start_if_needed(app.state().config()).await?;
    app.prepare_stripe().await?;
    app.run_until_stopped(server::shutdown_signal()).await?;
    if let Some(emulator) = emulator {
        // Saves the emulator's snapshot so the next `serve` finds the same account.
        emulator.stop().await;
    }
    tracing::info!("stopped");
    Ok(())
}
