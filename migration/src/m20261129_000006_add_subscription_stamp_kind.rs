use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Subscriptions {
    Table,
    StripeStateRead,
}

/// Whether a subscription's state was read from the API (true: it is at least as
/// new as `stripe_state_at`) or taken from an event (false: exactly as of it).
/// Rows written before this column were stamped as exact.
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Subscriptions::Table)
                    .add_column(boolean(Subscriptions::StripeStateRead).default(false))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Subscriptions::Table)
                    .drop_column(Subscriptions::StripeStateRead)
                    .to_owned(),
            )
            .await
    }
}
