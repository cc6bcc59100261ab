use sea_orm_migration::{prelude::*, schema::*};

use crate::m20261124_000001_create_users::Users;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum UsersOperator {
    #[sea_orm(iden = "is_operator")]
    IsOperator,
}

#[derive(DeriveIden)]
enum AuditLog {
    Table,
    Id,
    OperatorId,
    OperatorEmail,
    Action,
    Target,
    Before,
    After,
    CreatedAt,
}

/// The operator console: who may use it (granted by `users promote`, never by
/// anything a browser sends), and what each operator did.
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Users::Table)
                    .add_column(boolean(UsersOperator::IsOperator).default(false))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(AuditLog::Table)
                    .col(big_pk_auto(AuditLog::Id))
                    // No foreign key: the record outlives the operator's account.
                    .col(big_integer(AuditLog::OperatorId))
                    .col(string(AuditLog::OperatorEmail))
                    .col(string(AuditLog::Action))
                    .col(string(AuditLog::Target))
                    .col(text_null(AuditLog::Before))
                    .col(text_null(AuditLog::After))
                    .col(timestamp_with_time_zone(AuditLog::CreatedAt))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(AuditLog::Table).to_owned())
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Users::Table)
                    .drop_column(UsersOperator::IsOperator)
                    .to_owned(),
            )
            .await
    }
}
