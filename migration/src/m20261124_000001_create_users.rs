use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
pub enum Users {
    Table,
    Id,
    Email,
    PasswordHash,
    StripeCustomerId,
    CreatedAt,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Users::Table)
                    .col(big_pk_auto(Users::Id))
                    // Emails are stored lower-cased by the sign-up code, so a plain
                    // unique index is a case-insensitive uniqueness guarantee.
                    .col(string_uniq(Users::Email))
                    .col(string(Users::PasswordHash))
                    // Unique: one Stripe customer belongs to one user, and the database
                    // (not a check-then-create in code) is what stops a second link.
                    .col(string_null(Users::StripeCustomerId).unique_key())
                    .col(timestamp_with_time_zone(Users::CreatedAt))
                    .col(timestamp_with_time_zone(Users::UpdatedAt))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Users::Table).to_owned())
            .await
    }
}
