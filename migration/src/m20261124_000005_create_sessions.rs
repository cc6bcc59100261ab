use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Sessions {
    Table,
    Id,
    Data,
    ExpiryDate,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Sessions::Table)
                    // The session id as tower-sessions prints it (base64 of 128 random bits).
                    .col(string_len(Sessions::Id, 64).primary_key())
                    // JSON of the session's key/value data; the cookie carries only the id.
                    .col(text(Sessions::Data))
                    .col(timestamp_with_time_zone(Sessions::ExpiryDate))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_sessions_expiry_date")
                    .table(Sessions::Table)
                    .col(Sessions::ExpiryDate)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Sessions::Table).to_owned())
            .await
    }
}
