use sea_orm_migration::{prelude::*, schema::*};

use crate::m20261124_000001_create_users::Users;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Invoices {
    Table,
    Id,
    UserId,
    StripeInvoiceId,
    StripeCustomerId,
    StripeSubscriptionId,
    Number,
    AmountTotal,
    Currency,
    Status,
    PeriodStart,
    PeriodEnd,
    HostedInvoiceUrl,
    InvoicePdf,
    StripeCreated,
    StripeStateAt,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum DeletedCustomers {
    Table,
    StripeCustomerId,
    DeletedAt,
}

/// Invoices mirrored from `invoice.*` events (the billing page reads them here,
/// never from Stripe), and a tombstone per deleted Stripe customer so no event
/// arriving late can link one to a user again.
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Invoices::Table)
                    .col(big_pk_auto(Invoices::Id))
                    .col(big_integer_null(Invoices::UserId))
                    .col(string(Invoices::StripeInvoiceId).unique_key())
                    .col(string_null(Invoices::StripeCustomerId))
                    .col(string_null(Invoices::StripeSubscriptionId))
                    .col(string_null(Invoices::Number))
                    // Minor currency units, as Stripe sends them.
                    .col(big_integer(Invoices::AmountTotal))
                    .col(string_len(Invoices::Currency, 3))
                    // draft | open | paid | void | uncollectible
                    .col(string(Invoices::Status))
                    .col(big_integer_null(Invoices::PeriodStart))
                    .col(big_integer_null(Invoices::PeriodEnd))
                    .col(text_null(Invoices::HostedInvoiceUrl))
                    .col(text_null(Invoices::InvoicePdf))
                    // The invoice's own `created` (the page's order and date).
                    .col(big_integer(Invoices::StripeCreated))
                    // Stripe time of the stored state, as for subscriptions.
                    .col(big_integer(Invoices::StripeStateAt))
                    .col(timestamp_with_time_zone(Invoices::CreatedAt))
                    .col(timestamp_with_time_zone(Invoices::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_invoices_user_id")
                            .from(Invoices::Table, Invoices::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_invoices_user_id")
                    .table(Invoices::Table)
                    .col(Invoices::UserId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_invoices_customer")
                    .table(Invoices::Table)
                    .col(Invoices::StripeCustomerId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(DeletedCustomers::Table)
                    .col(string(DeletedCustomers::StripeCustomerId).primary_key())
                    .col(timestamp_with_time_zone(DeletedCustomers::DeletedAt))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(DeletedCustomers::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Invoices::Table).to_owned())
            .await
    }
}
