use sea_orm::entity::prelude::*;

/// Units set aside for long work: they count against the balance until the
/// hold is committed (with the amount really used), released, or expires.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "usage_holds")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub account_id: i64,
    pub feature: String,
    pub amount: i64,
    pub allowance_part: i64,
    pub credits_part: i64,
    pub period_start: i64,
    pub idempotency_key: Option<String>,
    /// "open", "committed" or "released".
    pub status: String,
    /// Unix seconds.
    pub expires_at: i64,
    pub created_at: DateTimeUtc,
    pub settled_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
