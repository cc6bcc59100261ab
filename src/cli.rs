//! Command-line interface of the server binary. New operational commands
//! (catalog, doctor, webhooks replay, reconcile) are added here as subcommands.

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
