use sea_orm_migration::{prelude::*, schema::*};

use crate::m20261124_000001_create_users::Users;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Accounts {
    Table,
    Id,
    Kind,
    Name,
    Slug,
    PersonalUserId,
    StripeCustomerId,
    SeatsWanted,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Memberships {
    Table,
    Id,
    AccountId,
    UserId,
    Role,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Invitations {
    Table,
    Id,
    AccountId,
    Email,
    Role,
    TokenHash,
    InvitedBy,
    ExpiresAt,
    AcceptedAt,
    RevokedAt,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum AccountColumn {
    #[sea_orm(iden = "account_id")]
    AccountId,
}

/// The tables whose rows belong to a billing account (before: to a user).
const BILLING_TABLES: [&str; 3] = ["subscriptions", "one_time_purchases", "invoices"];

/// The billing subject becomes an account: every user gets a personal account
/// (owner: that user) holding the Stripe customer that was on the user row, and
/// every billing row of the user moves onto it. Organizations are accounts with
/// more members. The old `user_id` columns stay (SQLite cannot drop a column a
/// foreign key names) but nothing reads or writes them any more.
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Accounts::Table)
                    .col(big_pk_auto(Accounts::Id))
                    // personal | organization
                    .col(string(Accounts::Kind))
                    .col(string(Accounts::Name))
                    // Organizations only; lower-case, unique.
                    .col(string_null(Accounts::Slug).unique_key())
                    // Personal accounts only: one per user, gone with the user.
                    .col(big_integer_null(Accounts::PersonalUserId).unique_key())
                    // One Stripe customer belongs to one account (the database,
                    // not a check-then-create in code, stops a second link).
                    .col(string_null(Accounts::StripeCustomerId).unique_key())
                    // A per-seat plan's seat count an admin chose (None: count
                    // members and open invitations).
                    .col(integer_null(Accounts::SeatsWanted))
                    .col(timestamp_with_time_zone(Accounts::CreatedAt))
                    .col(timestamp_with_time_zone(Accounts::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Accounts::Table, Accounts::PersonalUserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Memberships::Table)
                    .col(big_pk_auto(Memberships::Id))
                    .col(big_integer(Memberships::AccountId))
                    .col(big_integer(Memberships::UserId))
                    // owner | admin | member
                    .col(string(Memberships::Role))
                    .col(timestamp_with_time_zone(Memberships::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Memberships::Table, Memberships::AccountId)
                            .to(Accounts::Table, Accounts::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(Memberships::Table, Memberships::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_memberships_account_user")
                    .table(Memberships::Table)
                    .col(Memberships::AccountId)
                    .col(Memberships::UserId)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_memberships_user")
                    .table(Memberships::Table)
                    .col(Memberships::UserId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Invitations::Table)
                    .col(big_pk_auto(Invitations::Id))
                    .col(big_integer(Invitations::AccountId))
                    // Lower-cased, as sign-up stores emails.
                    .col(string(Invitations::Email))
                    .col(string(Invitations::Role))
                    // SHA-256 of the link's token; the token itself is only mailed.
                    .col(string(Invitations::TokenHash).unique_key())
                    .col(big_integer_null(Invitations::InvitedBy))
                    .col(timestamp_with_time_zone(Invitations::ExpiresAt))
                    .col(timestamp_with_time_zone_null(Invitations::AcceptedAt))
                    .col(timestamp_with_time_zone_null(Invitations::RevokedAt))
                    .col(timestamp_with_time_zone(Invitations::CreatedAt))
                    .col(timestamp_with_time_zone(Invitations::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Invitations::Table, Invitations::AccountId)
                            .to(Accounts::Table, Accounts::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_invitations_account_email")
                    .table(Invitations::Table)
                    .col(Invitations::AccountId)
                    .col(Invitations::Email)
                    .to_owned(),
            )
            .await?;
        for table in BILLING_TABLES {
            manager
                .alter_table(
                    Table::alter()
                        .table(Alias::new(table))
                        // No foreign key: SQLite cannot add one to an existing
                        // table; an account's deletion removes its rows itself.
                        .add_column(big_integer_null(AccountColumn::AccountId))
                        .to_owned(),
                )
                .await?;
            manager
                .create_index(
                    Index::create()
                        .name(format!("idx_{table}_account_id"))
                        .table(Alias::new(table))
                        .col(AccountColumn::AccountId)
                        .to_owned(),
                )
                .await?;
        }
        let db = manager.get_connection();
        db.execute_unprepared(
            "INSERT INTO accounts (kind, name, personal_user_id, stripe_customer_id, created_at, updated_at) \
             SELECT 'personal', email, id, stripe_customer_id, created_at, updated_at FROM users",
        )
        .await?;
        db.execute_unprepared(
            "INSERT INTO memberships (account_id, user_id, role, created_at) \
             SELECT id, personal_user_id, 'owner', created_at FROM accounts \
             WHERE personal_user_id IS NOT NULL",
        )
        .await?;
        for table in BILLING_TABLES {
            db.execute_unprepared(&format!(
                "UPDATE {table} SET account_id = (SELECT a.id FROM accounts a \
                 WHERE a.personal_user_id = {table}.user_id) WHERE user_id IS NOT NULL"
            ))
            .await?;
        }
        // The customer lives on the account now; one place only.
        db.execute_unprepared("UPDATE users SET stripe_customer_id = NULL")
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared(
            "UPDATE users SET stripe_customer_id = (SELECT a.stripe_customer_id FROM accounts a \
             WHERE a.personal_user_id = users.id)",
        )
        .await?;
        for table in BILLING_TABLES {
            // Rows of organizations have no user to go back to; they stay, unowned.
            db.execute_unprepared(&format!(
                "UPDATE {table} SET user_id = (SELECT a.personal_user_id FROM accounts a \
                 WHERE a.id = {table}.account_id) WHERE account_id IS NOT NULL"
            ))
            .await?;
            manager
                .drop_index(
                    Index::drop()
                        .name(format!("idx_{table}_account_id"))
                        .table(Alias::new(table))
                        .to_owned(),
                )
                .await?;
            manager
                .alter_table(
                    Table::alter()
                        .table(Alias::new(table))
                        .drop_column(AccountColumn::AccountId)
                        .to_owned(),
                )
                .await?;
        }
        for table in [
            Invitations::Table.into_iden(),
            Memberships::Table.into_iden(),
            Accounts::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
