use sea_orm::entity::prelude::*;

/// One recorded use of a feature (a `track`, a committed hold, a counted
/// item's removal), with the answer it was given.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "usage_entries")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub account_id: i64,
    pub feature: String,
    pub amount: i64,
    pub allowance_used: i64,
    pub credits_used: i64,
    /// Unix seconds; 0 for counted features.
    pub period_start: i64,
    pub idempotency_key: Option<String>,
    pub fingerprint: Option<String>,
    pub remaining_after: Option<i64>,
    pub resets_at: Option<i64>,
    pub hold_id: Option<i64>,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
