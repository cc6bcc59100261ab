use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "webhook_events")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    #[sea_orm(unique)]
    pub stripe_event_id: String,
    pub event_type: String,
    pub api_version: Option<String>,
    pub livemode: bool,
    pub stripe_created_at: DateTimeUtc,
    pub received_at: DateTimeUtc,
    pub processed_at: Option<DateTimeUtc>,
    /// received | processed | failed | ignored
    pub status: String,
    pub attempts: i32,
    pub last_error: Option<String>,
    #[sea_orm(column_type = "Text")]
    pub payload: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
