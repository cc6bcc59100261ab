use sea_orm::entity::prelude::*;

/// Credits given to an account (a pack bought, an operator's grant), spent by
/// metered features once their period's allowance is used.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "credit_grants")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub account_id: i64,
    /// "pack" or "manual".
    pub source: String,
    #[sea_orm(unique)]
    pub source_ref: String,
    pub amount: i64,
    pub remaining: i64,
    /// Unspent credits a refund or a lost dispute took back.
    pub revoked_amount: i64,
    /// Unix seconds; `None`: never expires.
    pub expires_at: Option<i64>,
    pub revoked_at: Option<DateTimeUtc>,
    pub note: Option<String>,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
