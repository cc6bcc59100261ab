use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum DisputeOutcomes {
    Table,
    StripeDisputeId,
    Status,
    ClosedAt,
}

/// How each closed dispute ended, so a `charge.dispute.created` delivered
/// after its `charge.dispute.closed` (won) does not take the pack back again.
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(DisputeOutcomes::Table)
                    .col(string(DisputeOutcomes::StripeDisputeId).primary_key())
                    // won | lost | warning_closed
                    .col(string(DisputeOutcomes::Status))
                    .col(timestamp_with_time_zone(DisputeOutcomes::ClosedAt))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(DisputeOutcomes::Table).to_owned())
            .await
    }
}
