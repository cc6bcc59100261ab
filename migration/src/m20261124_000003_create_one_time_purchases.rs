use sea_orm_migration::{prelude::*, schema::*};

use crate::m20261124_000001_create_users::Users;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum OneTimePurchases {
    Table,
    Id,
    UserId,
    StripeCustomerId,
    StripeCheckoutSessionId,
    StripePaymentIntentId,
    StripePriceId,
    PlanId,
    PriceLookupKey,
    Quantity,
    AmountTotal,
    Currency,
    Status,
    RefundedAt,
    ReversedAt,
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
                    .table(OneTimePurchases::Table)
                    .col(big_pk_auto(OneTimePurchases::Id))
                    .col(big_integer_null(OneTimePurchases::UserId))
                    .col(string_null(OneTimePurchases::StripeCustomerId))
                    .col(string_null(OneTimePurchases::StripeCheckoutSessionId).unique_key())
                    // Unique: a grant is idempotent by payment intent, so a re-delivered
                    // event or a success-page retry can never grant twice.
                    .col(string_null(OneTimePurchases::StripePaymentIntentId).unique_key())
                    .col(string(OneTimePurchases::StripePriceId))
                    .col(string_null(OneTimePurchases::PlanId))
                    .col(string_null(OneTimePurchases::PriceLookupKey))
                    .col(integer(OneTimePurchases::Quantity).default(1))
                    // Minor currency units (cents), as Stripe sends them.
                    .col(big_integer(OneTimePurchases::AmountTotal))
                    .col(string_len(OneTimePurchases::Currency, 3))
                    // pending | paid | failed | refunded | reversed (disputed)
                    .col(string(OneTimePurchases::Status))
                    .col(timestamp_with_time_zone_null(OneTimePurchases::RefundedAt))
                    .col(timestamp_with_time_zone_null(OneTimePurchases::ReversedAt))
                    .col(big_integer(OneTimePurchases::StripeStateAt))
                    .col(timestamp_with_time_zone(OneTimePurchases::CreatedAt))
                    .col(timestamp_with_time_zone(OneTimePurchases::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_one_time_purchases_user_id")
                            .from(OneTimePurchases::Table, OneTimePurchases::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_one_time_purchases_user_id")
                    .table(OneTimePurchases::Table)
                    .col(OneTimePurchases::UserId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(OneTimePurchases::Table).to_owned())
            .await
    }
}
