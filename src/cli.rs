//! Command-line interface of the server binary.

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "billing-starter",
    version,
    about = "Stripe billing starter: web server and operations"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run pending migrations, then serve the app (the default).
    Serve,
    /// Manage the database schema.
    Migrate {
        #[command(subcommand)]
        action: Option<MigrateAction>,
    },
    /// Compare plans.toml with the Stripe account, or make Stripe match it.
    Catalog {
        #[command(subcommand)]
        action: CatalogAction,
    },
    /// Check a deployment against the going-live checklist (one line per item;
    /// exit status 1 if any fails). The app must be running for the webhook round trip.
    Doctor,
    /// Re-process stored webhook events through the one write path (`billing::apply`).
    Webhooks {
        #[command(subcommand)]
        action: WebhooksAction,
    },
    /// Compare every local subscription with Stripe, fix drift through the same
    /// upsert the webhooks use, and print what changed.
    Reconcile,
    /// Grant or take back the operator role (the console at /admin).
    Users {
        #[command(subcommand)]
        action: UsersAction,
    },
    /// API keys for `/api/v1` (usage and entitlements).
    ApiKeys {
        #[command(subcommand)]
        action: ApiKeysAction,
    },
}

#[derive(Debug, Clone, Subcommand)]
pub enum ApiKeysAction {
    /// Create a key for a person's own account, or with `--org` for an
    /// organization they own or administer; the key is printed once.
    Create {
        #[arg(long)]
        email: String,
        #[arg(long)]
        org: Option<String>,
        #[arg(long, default_value = "cli")]
        name: String,
    },
}

#[derive(Debug, Clone, Subcommand)]
pub enum UsersAction {
    /// Let the account with this email use the operator console.
    Promote { email: String },
    /// Take the operator role back.
    Demote { email: String },
}

#[derive(Debug, Clone, Subcommand)]
pub enum WebhooksAction {
    /// Re-apply one stored event by id, or every failed one with `--failed`.
    Replay {
        /// The Stripe event id (evt_…).
        #[arg(required_unless_present = "failed", conflicts_with = "failed")]
        event_id: Option<String>,
        #[arg(long)]
        failed: bool,
    },
}

#[derive(Debug, Clone, Copy, Subcommand)]
pub enum MigrateAction {
    /// Apply every pending migration (the default).
    Up,
    /// Roll back the last `steps` migrations.
    Down {
        #[arg(long, default_value_t = 1)]
        steps: u32,
    },
    /// List migrations and whether each is applied.
    Status,
}

#[derive(Debug, Clone, Copy, Subcommand)]
pub enum CatalogAction {
    /// Print what `apply` would change in Stripe (products and prices to create,
    /// update or archive).
    Plan,
    /// Make Stripe match the catalog. Safe to re-run: creates carry idempotency keys
    /// and a synced account needs no changes.
    Apply {
        /// Change nothing; exit with status 1 if Stripe differs from the catalog.
        #[arg(long)]
        check: bool,
    },
}
