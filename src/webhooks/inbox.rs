//! `WebhookInbox`: every verified event stored once, by Stripe's event id.

use chrono::{TimeZone, Utc};
use sea_orm::{sea_query::OnConflict, ActiveValue::Set, DatabaseConnection, DbErr, EntityTrait};
use serde::Deserialize;

use crate::db::entities::webhook_events;

/// The fields of an event envelope the inbox needs; the object itself stays raw.
#[derive(Debug, Deserialize)]
pub struct Envelope {
    pub id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub created: i64,
    pub api_version: Option<String>,
    #[serde(default)]
    pub livemode: bool,
}

impl Envelope {
    pub fn parse(body: &[u8]) -> Result<Self, serde_json::Error> {
        let envelope: Envelope = serde_json::from_slice(body)?;
        if !envelope.id.starts_with("evt_") {
            return Err(serde::de::Error::custom("event ids start with evt_"));
        }
        Ok(envelope)
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum Recorded {
    New,
    Duplicate,
}

/// Inserts the event unless its id is already stored. The unique index decides,
/// so concurrent deliveries to several app instances record it exactly once.
pub async fn record(
    db: &DatabaseConnection,
    envelope: &Envelope,
    payload: &[u8],
    handled: bool,
) -> Result<Recorded, DbErr> {
    let now = Utc::now();
    let row = webhook_events::ActiveModel {
        stripe_event_id: Set(envelope.id.clone()),
        event_type: Set(envelope.event_type.clone()),
        api_version: Set(envelope.api_version.clone()),
        livemode: Set(envelope.livemode),
        stripe_created_at: Set(Utc
            .timestamp_opt(envelope.created, 0)
            .single()
            .unwrap_or(now)),
        received_at: Set(now),
        processed_at: Set(None),
        status: Set(if handled { "received" } else { "ignored" }.to_owned()),
        attempts: Set(0),
        last_error: Set(None),
        payload: Set(String::from_utf8_lossy(payload).into_owned()),
        ..Default::default()
    };
    let inserted = webhook_events::Entity::insert(row)
        .on_conflict(
            OnConflict::column(webhook_events::Column::StripeEventId)
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(db)
        .await?;
    Ok(if inserted == 0 {
        Recorded::Duplicate
    } else {
        Recorded::New
    })
}
