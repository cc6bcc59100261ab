use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Accounts {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum CreditGrants {
    Table,
    Id,
    AccountId,
    Source,
    SourceRef,
    Amount,
    Remaining,
    RevokedAmount,
    ExpiresAt,
    RevokedAt,
    Note,
    CreatedAt,
}

#[derive(DeriveIden)]
enum UsageEntries {
    Table,
    Id,
    AccountId,
    Feature,
    Amount,
    AllowanceUsed,
    CreditsUsed,
    PeriodStart,
    IdempotencyKey,
    Fingerprint,
    RemainingAfter,
    ResetsAt,
    HoldId,
    CreatedAt,
}

#[derive(DeriveIden)]
enum UsageTotals {
    Table,
    AccountId,
    Feature,
    PeriodStart,
    Used,
}

#[derive(DeriveIden)]
enum UsageHolds {
    Table,
    Id,
    AccountId,
    Feature,
    Amount,
    AllowancePart,
    CreditsPart,
    PeriodStart,
    IdempotencyKey,
    Status,
    ExpiresAt,
    CreatedAt,
    SettledAt,
}

#[derive(DeriveIden)]
enum ApiKeys {
    Table,
    Id,
    AccountId,
    Name,
    Prefix,
    KeyHash,
    CreatedBy,
    CreatedAt,
    LastUsedAt,
    RevokedAt,
}

fn account_fk(table: impl IntoIden, column: impl IntoIden) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .from(table, column)
        .to(Accounts::Table, Accounts::Id)
        .on_delete(ForeignKeyAction::Cascade)
        .to_owned()
}

/// The usage ledger of a billing account: credit grants (packs, operators),
/// usage entries (each `track`, with its idempotency key and the answer it got),
/// running totals per feature and period (so a decision reads one row, not the
/// period's entries), holds for long work, and the account's API keys. Times
/// compared inside SQL (`period_start`, `expires_at`) are Unix seconds.
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(CreditGrants::Table)
                    .col(big_pk_auto(CreditGrants::Id))
                    .col(big_integer(CreditGrants::AccountId))
                    // pack | manual
                    .col(string(CreditGrants::Source))
                    // "purchase:<id>" for a pack: one grant per purchase, however
                    // often its events arrive.
                    .col(string(CreditGrants::SourceRef).unique_key())
                    .col(big_integer(CreditGrants::Amount))
                    .col(big_integer(CreditGrants::Remaining))
                    // What a refund or a lost dispute took back unspent.
                    .col(big_integer(CreditGrants::RevokedAmount).default(0))
                    .col(big_integer_null(CreditGrants::ExpiresAt))
                    .col(timestamp_with_time_zone_null(CreditGrants::RevokedAt))
                    .col(text_null(CreditGrants::Note))
                    .col(timestamp_with_time_zone(CreditGrants::CreatedAt))
                    .foreign_key(&mut account_fk(
                        CreditGrants::Table,
                        CreditGrants::AccountId,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_credit_grants_account")
                    .table(CreditGrants::Table)
                    .col(CreditGrants::AccountId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(UsageEntries::Table)
                    .col(big_pk_auto(UsageEntries::Id))
                    .col(big_integer(UsageEntries::AccountId))
                    .col(string(UsageEntries::Feature))
                    // Negative for a counted feature's decrease.
                    .col(big_integer(UsageEntries::Amount))
                    .col(big_integer(UsageEntries::AllowanceUsed))
                    .col(big_integer(UsageEntries::CreditsUsed))
                    .col(big_integer(UsageEntries::PeriodStart))
                    .col(string_null(UsageEntries::IdempotencyKey))
                    // The request a key was first used with (feature and amount).
                    .col(string_null(UsageEntries::Fingerprint))
                    // The answer it got, given again to a retry with the same key.
                    .col(big_integer_null(UsageEntries::RemainingAfter))
                    .col(big_integer_null(UsageEntries::ResetsAt))
                    .col(big_integer_null(UsageEntries::HoldId))
                    .col(timestamp_with_time_zone(UsageEntries::CreatedAt))
                    .foreign_key(&mut account_fk(
                        UsageEntries::Table,
                        UsageEntries::AccountId,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_usage_entries_account_key")
                    .table(UsageEntries::Table)
                    .col(UsageEntries::AccountId)
                    .col(UsageEntries::IdempotencyKey)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(UsageTotals::Table)
                    .col(big_integer(UsageTotals::AccountId))
                    .col(string(UsageTotals::Feature))
                    // 0 for counted features (no period).
                    .col(big_integer(UsageTotals::PeriodStart))
                    // Of the period's allowance (metered), or the count (counted).
                    .col(big_integer(UsageTotals::Used))
                    .primary_key(
                        Index::create()
                            .col(UsageTotals::AccountId)
                            .col(UsageTotals::Feature)
                            .col(UsageTotals::PeriodStart),
                    )
                    .foreign_key(&mut account_fk(UsageTotals::Table, UsageTotals::AccountId))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(UsageHolds::Table)
                    .col(big_pk_auto(UsageHolds::Id))
                    .col(big_integer(UsageHolds::AccountId))
                    .col(string(UsageHolds::Feature))
                    .col(big_integer(UsageHolds::Amount))
                    .col(big_integer(UsageHolds::AllowancePart))
                    .col(big_integer(UsageHolds::CreditsPart))
                    .col(big_integer(UsageHolds::PeriodStart))
                    .col(string_null(UsageHolds::IdempotencyKey))
                    // open | committed | released (an open hold past its
                    // expiry counts for nothing: it expired on its own)
                    .col(string(UsageHolds::Status))
                    .col(big_integer(UsageHolds::ExpiresAt))
                    .col(timestamp_with_time_zone(UsageHolds::CreatedAt))
                    .col(timestamp_with_time_zone_null(UsageHolds::SettledAt))
                    .foreign_key(&mut account_fk(UsageHolds::Table, UsageHolds::AccountId))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_usage_holds_account_status")
                    .table(UsageHolds::Table)
                    .col(UsageHolds::AccountId)
                    .col(UsageHolds::Status)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_usage_holds_account_key")
                    .table(UsageHolds::Table)
                    .col(UsageHolds::AccountId)
                    .col(UsageHolds::IdempotencyKey)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(ApiKeys::Table)
                    .col(big_pk_auto(ApiKeys::Id))
                    .col(big_integer(ApiKeys::AccountId))
                    .col(string(ApiKeys::Name))
                    // The first characters, shown so a key can be recognised.
                    .col(string(ApiKeys::Prefix))
                    // SHA-256 of the whole key: a database leak holds no key.
                    .col(string(ApiKeys::KeyHash).unique_key())
                    .col(big_integer_null(ApiKeys::CreatedBy))
                    .col(timestamp_with_time_zone(ApiKeys::CreatedAt))
                    .col(timestamp_with_time_zone_null(ApiKeys::LastUsedAt))
                    .col(timestamp_with_time_zone_null(ApiKeys::RevokedAt))
                    .foreign_key(&mut account_fk(ApiKeys::Table, ApiKeys::AccountId))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            ApiKeys::Table.into_iden(),
            UsageHolds::Table.into_iden(),
            UsageTotals::Table.into_iden(),
            UsageEntries::Table.into_iden(),
            CreditGrants::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
