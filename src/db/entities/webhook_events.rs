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
    pub status: EventStatus,
    pub attempts: i32,
    pub last_error: Option<String>,
    #[sea_orm(column_type = "Text")]
    pub payload: String,
}

/// Where an event is in the inbox (stored as its word; no data migration).
#[derive(Clone, Copy, Debug, PartialEq, Eq, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
pub enum EventStatus {
    /// Stored, not applied yet (rows of the first schema).
    #[sea_orm(string_value = "received")]
    Received,
    /// Applied; only ever visible with the event's effects.
    #[sea_orm(string_value = "processed")]
    Processed,
    /// Applying it failed and rolled back; Stripe's retry or `replay` takes it again.
    #[sea_orm(string_value = "failed")]
    Failed,
    /// A type the app does not act on, or another mode's event.
    #[sea_orm(string_value = "ignored")]
    Ignored,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
