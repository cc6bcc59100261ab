//! Database migrations, one file per migration, named by date and intent.
//! A migration that has shipped is never edited: add a new one instead.

pub use sea_orm_migration::prelude::*;

mod m20261124_000001_create_users;
mod m20261124_000002_create_subscriptions;
mod m20261124_000003_create_one_time_purchases;
mod m20261124_000004_create_webhook_events;
mod m20261124_000005_create_sessions;
mod m20261129_000006_add_subscription_stamp_kind;
mod m20261201_000007_create_rate_limits;
mod m20261201_000008_create_invoices_and_deleted_customers;
mod m20261201_000009_create_outbox_and_account_tokens;
mod m20261201_000010_create_dispute_outcomes;
mod m20261201_000011_create_operators_and_audit_log;
mod m20261201_000012_create_billing_accounts;
mod m20261201_000013_create_usage_ledger;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261124_000001_create_users::Migration),
            Box::new(m20261124_000002_create_subscriptions::Migration),
            Box::new(m20261124_000003_create_one_time_purchases::Migration),
            Box::new(m20261124_000004_create_webhook_events::Migration),
            Box::new(m20261124_000005_create_sessions::Migration),
            Box::new(m20261129_000006_add_subscription_stamp_kind::Migration),
            Box::new(m20261201_000007_create_rate_limits::Migration),
            Box::new(m20261201_000008_create_invoices_and_deleted_customers::Migration),
            Box::new(m20261201_000009_create_outbox_and_account_tokens::Migration),
            Box::new(m20261201_000010_create_dispute_outcomes::Migration),
            Box::new(m20261201_000011_create_operators_and_audit_log::Migration),
            Box::new(m20261201_000012_create_billing_accounts::Migration),
            Box::new(m20261201_000013_create_usage_ledger::Migration),
        ]
    }
}
