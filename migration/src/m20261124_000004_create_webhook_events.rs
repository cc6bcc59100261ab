use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum WebhookEvents {
    Table,
    Id,
    StripeEventId,
    EventType,
    ApiVersion,
    Livemode,
    StripeCreatedAt,
    ReceivedAt,
    ProcessedAt,
    Status,
    Attempts,
    LastError,
    Payload,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(WebhookEvents::Table)
                    .col(big_pk_auto(WebhookEvents::Id))
                    // Unique: Stripe delivers at least once; the event id is what makes
                    // a re-delivery a no-op (insert-if-absent).
                    .col(string_uniq(WebhookEvents::StripeEventId))
                    .col(string(WebhookEvents::EventType))
                    .col(string_null(WebhookEvents::ApiVersion))
                    .col(boolean(WebhookEvents::Livemode).default(false))
                    .col(timestamp_with_time_zone(WebhookEvents::StripeCreatedAt))
                    .col(timestamp_with_time_zone(WebhookEvents::ReceivedAt))
                    .col(timestamp_with_time_zone_null(WebhookEvents::ProcessedAt))
                    // received | processed | failed | ignored
                    .col(string(WebhookEvents::Status))
                    .col(integer(WebhookEvents::Attempts).default(0))
                    .col(text_null(WebhookEvents::LastError))
                    // The raw, signature-verified body, kept for replay and audit.
                    .col(text(WebhookEvents::Payload))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_webhook_events_status")
                    .table(WebhookEvents::Table)
                    .col(WebhookEvents::Status)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(WebhookEvents::Table).to_owned())
            .await
    }
}
