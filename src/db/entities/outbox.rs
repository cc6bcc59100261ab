use sea_orm::entity::prelude::*;

/// One email owed to someone, written in the transaction that caused it and
/// sent afterwards by the mail worker (`mail::worker`).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "outbox")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    #[sea_orm(unique)]
    pub dedupe_key: String,
    pub kind: String,
    pub user_id: Option<i64>,
    pub recipient: String,
    pub subject: String,
    pub text_body: String,
    pub html_body: String,
    pub status: MailStatus,
    pub attempts: i32,
    pub next_attempt_at: DateTimeUtc,
    pub claimed_until: Option<DateTimeUtc>,
    pub last_error: Option<String>,
    pub created_at: DateTimeUtc,
    pub sent_at: Option<DateTimeUtc>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
pub enum MailStatus {
    /// Waiting for its (next) attempt.
    #[sea_orm(string_value = "pending")]
    Pending,
    /// Handed to the SMTP server (or, in development without one, kept for `/dev/mail`).
    #[sea_orm(string_value = "sent")]
    Sent,
    /// Every attempt failed; `last_error` says why. Kept, never dropped.
    #[sea_orm(string_value = "failed")]
    Failed,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
