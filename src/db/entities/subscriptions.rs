use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "subscriptions")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    /// The billing account the row belongs to (`accounts`).
    pub account_id: Option<i64>,
    #[sea_orm(unique)]
    pub stripe_subscription_id: String,
    pub stripe_customer_id: String,
    pub stripe_price_id: String,
    /// The catalog's conceptual plan id (e.g. "premium").
    pub plan_id: Option<String>,
    pub price_lookup_key: Option<String>,
    /// "month" or "year".
    pub interval: Option<String>,
    pub quantity: i32,
    /// Stripe's status string: trialing, active, past_due, canceled, incomplete,
    /// incomplete_expired, unpaid, paused.
    pub status: String,
    pub current_period_start: Option<DateTimeUtc>,
    pub current_period_end: Option<DateTimeUtc>,
    pub cancel_at_period_end: bool,
    pub cancel_at: Option<DateTimeUtc>,
    pub canceled_at: Option<DateTimeUtc>,
    pub ended_at: Option<DateTimeUtc>,
    pub trial_start: Option<DateTimeUtc>,
    pub trial_end: Option<DateTimeUtc>,
    /// Unix seconds of the Stripe state this row reflects; older writes are ignored.
    pub stripe_state_at: i64,
    /// True when the state was read from Stripe's API, at `stripe_state_at` or
    /// later in Stripe's time; false when it is an event's, exactly as of it.
    pub stripe_state_read: bool,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
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
