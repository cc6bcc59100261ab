use sea_orm_migration::{prelude::*, schema::*};

use crate::m20261124_000001_create_users::Users;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Subscriptions {
    Table,
    Id,
    UserId,
    StripeSubscriptionId,
    StripeCustomerId,
    StripePriceId,
    PlanId,
    PriceLookupKey,
    Interval,
    Quantity,
    Status,
    CurrentPeriodStart,
    CurrentPeriodEnd,
    CancelAtPeriodEnd,
    CancelAt,
    CanceledAt,
    EndedAt,
    TrialStart,
    TrialEnd,
    StripeStateAt,
    CreatedAt,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Subscriptions::Table)
                    .col(big_pk_auto(Subscriptions::Id))
                    // Nullable: a webhook may describe a subscription before we can tie
                    // its customer to a user; the row is created anyway and linked later.
                    .col(big_integer_null(Subscriptions::UserId))
                    .col(string_uniq(Subscriptions::StripeSubscriptionId))
                    .col(string(Subscriptions::StripeCustomerId))
                    .col(string(Subscriptions::StripePriceId))
                    .col(string_null(Subscriptions::PlanId))
                    .col(string_null(Subscriptions::PriceLookupKey))
                    .col(string_null(Subscriptions::Interval))
                    .col(integer(Subscriptions::Quantity).default(1))
                    .col(string(Subscriptions::Status))
                    // Since API 2025-03-31 the period lives on subscription items; we
                    // store the item's period here because the app sells one item.
                    .col(timestamp_with_time_zone_null(
                        Subscriptions::CurrentPeriodStart,
                    ))
                    .col(timestamp_with_time_zone_null(
                        Subscriptions::CurrentPeriodEnd,
                    ))
                    .col(boolean(Subscriptions::CancelAtPeriodEnd).default(false))
                    .col(timestamp_with_time_zone_null(Subscriptions::CancelAt))
                    .col(timestamp_with_time_zone_null(Subscriptions::CanceledAt))
                    .col(timestamp_with_time_zone_null(Subscriptions::EndedAt))
                    .col(timestamp_with_time_zone_null(Subscriptions::TrialStart))
                    .col(timestamp_with_time_zone_null(Subscriptions::TrialEnd))
                    // Freshness marker: the Stripe time (unix seconds, e.g. the event's
                    // `created`) of the state this row holds. Writes carrying an older
                    // time are ignored, which makes event delivery order irrelevant.
                    .col(big_integer(Subscriptions::StripeStateAt))
                    .col(timestamp_with_time_zone(Subscriptions::CreatedAt))
                    .col(timestamp_with_time_zone(Subscriptions::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_subscriptions_user_id")
                            .from(Subscriptions::Table, Subscriptions::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_subscriptions_user_id")
                    .table(Subscriptions::Table)
                    .col(Subscriptions::UserId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_subscriptions_stripe_customer_id")
                    .table(Subscriptions::Table)
                    .col(Subscriptions::StripeCustomerId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Subscriptions::Table).to_owned())
            .await
    }
}
