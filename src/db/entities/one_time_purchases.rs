use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "one_time_purchases")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    /// The billing account the row belongs to (`accounts`).
    pub account_id: Option<i64>,
    pub stripe_customer_id: Option<String>,
    #[sea_orm(unique)]
    pub stripe_checkout_session_id: Option<String>,
    #[sea_orm(unique)]
    pub stripe_payment_intent_id: Option<String>,
    pub stripe_price_id: String,
    pub plan_id: Option<String>,
    pub price_lookup_key: Option<String>,
    pub quantity: i32,
    /// Minor currency units, as Stripe sends them.
    pub amount_total: i64,
    pub currency: String,
    pub status: PurchaseStatus,
    pub refunded_at: Option<DateTimeUtc>,
    pub reversed_at: Option<DateTimeUtc>,
    pub stripe_state_at: i64,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

/// A purchase's state; it only moves forward (see [`PurchaseStatus::rank`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
pub enum PurchaseStatus {
    /// Checkout completed, payment not yet confirmed (delayed methods).
    #[sea_orm(string_value = "pending")]
    Pending,
    #[sea_orm(string_value = "paid")]
    Paid,
    #[sea_orm(string_value = "failed")]
    Failed,
    /// Fully refunded: the grant is taken back.
    #[sea_orm(string_value = "refunded")]
    Refunded,
    /// Disputed: the grant is taken back (given again if the dispute is won).
    #[sea_orm(string_value = "reversed")]
    Reversed,
}

impl PurchaseStatus {
    /// pending → paid/failed → refunded/reversed: a state never moves to a
    /// lower rank.
    pub fn rank(self) -> u8 {
        match self {
            PurchaseStatus::Pending => 0,
            PurchaseStatus::Paid | PurchaseStatus::Failed => 1,
            PurchaseStatus::Refunded | PurchaseStatus::Reversed => 2,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::PurchaseStatus::*;

    #[test]
    fn purchase_status_only_moves_forward() {
        assert!(Pending.rank() < Paid.rank());
        assert_eq!(Paid.rank(), Failed.rank());
        assert!(Paid.rank() < Refunded.rank());
        assert_eq!(Refunded.rank(), Reversed.rank());
    }
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::accounts::Entity",
        from = "Column::AccountId",
        to = "super::accounts::Column::Id"
    )]
    Account,
}

impl Related<super::accounts::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Account.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
