use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "one_time_purchases")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub user_id: Option<i64>,
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
    /// pending | paid | failed | refunded | reversed
    pub status: String,
    pub refunded_at: Option<DateTimeUtc>,
    pub reversed_at: Option<DateTimeUtc>,
    pub stripe_state_at: i64,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::users::Entity",
        from = "Column::UserId",
        to = "super::users::Column::Id",
        on_delete = "Cascade"
    )]
    User,
}

impl Related<super::users::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::User.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
