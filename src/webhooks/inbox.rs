//! `WebhookInbox`: every verified event stored once, by Stripe's event id, and
//! applied at most once.
//!
//! Processing happens inside one transaction that first *claims* the event: it
//! inserts the row already marked `processed` (or, for an event that failed
//! before, flips it to `processed`). Nobody sees that mark before the commit, and
//! the commit includes the event's effects, so "processed" is true whenever it is
//! visible — and the hot path saves a statement. The unique index and the row
//! lock make a second delivery — on this instance or another one on the same
//! PostgreSQL — wait for the first and then see it as done. A failure rolls
//! everything back and records the error and attempt count outside the
//! transaction, so Stripe's retry starts clean.

use std::sync::Arc;

use axum::body::Bytes;
use chrono::{TimeZone, Utc};
use sea_orm::{
    sea_query::{Expr, ExprTrait, OnConflict},
    ActiveValue::Set,
    ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbErr, EntityTrait,
    QueryFilter,
};
use serde::Deserialize;

use crate::{
    billing::{
        apply::{self, ApplyContext, ApplyError},
        context::Billing,
        objects::BillingEvent,
    },
    db::entities::webhook_events::{self, EventStatus},
    gateway::catalog::PriceDirectory,
};

/// Events taken again by a delivery or a replay: they were never applied.
const RETAKEN: [EventStatus; 2] = [EventStatus::Failed, EventStatus::Received];

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
    /// Stored and applied now.
    Processed,
    /// Stored as `ignored` (a type the app does not act on).
    Ignored,
    /// Seen before (processed, ignored, or being processed elsewhere).
    Duplicate,
}

#[derive(Debug, thiserror::Error)]
pub enum InboxError {
    #[error("database: {0}")]
    Database(#[from] DbErr),
    #[error("applying the event: {0}")]
    Apply(#[from] ApplyError),
}

fn new_row(
    envelope: &Envelope,
    payload: &[u8],
    status: EventStatus,
    attempts: i32,
) -> webhook_events::ActiveModel {
    let now = Utc::now();
    webhook_events::ActiveModel {
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
        status: Set(status),
        attempts: Set(attempts),
        last_error: Set(None),
        payload: Set(String::from_utf8_lossy(payload).into_owned()),
        ..Default::default()
    }
}

/// Inserts the row unless its event id is stored; `true` when inserted. The unique
/// index decides, so concurrent deliveries (to any instance) insert it once.
async fn insert_if_absent<C: ConnectionTrait>(
    conn: &C,
    row: webhook_events::ActiveModel,
) -> Result<bool, DbErr> {
    let inserted = webhook_events::Entity::insert(row)
        .on_conflict(
            OnConflict::column(webhook_events::Column::StripeEventId)
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(conn)
        .await?;
    Ok(inserted > 0)
}

/// Marks a replayed event `processed`, clears an earlier error and counts the
/// attempt.
async fn mark_replayed<C: ConnectionTrait>(conn: &C, event_id: &str) -> Result<(), DbErr> {
    webhook_events::Entity::update_many()
        .col_expr(
            webhook_events::Column::Status,
            Expr::value(EventStatus::Processed),
        )
        .col_expr(webhook_events::Column::ProcessedAt, Expr::value(Utc::now()))
        .col_expr(
            webhook_events::Column::LastError,
            Expr::value(None::<String>),
        )
        .col_expr(
            webhook_events::Column::Attempts,
            Expr::col(webhook_events::Column::Attempts).add(1),
        )
        .filter(webhook_events::Column::StripeEventId.eq(event_id))
        .exec(conn)
        .await?;
    Ok(())
}

/// Stores an event the app does not act on (once), so it can be inspected;
/// with the other webhook writes (`db::group_commit`), so it neither waits for
/// SQLite's lock beside them nor costs a commit of its own.
pub async fn record_ignored(
    billing: &Billing,
    envelope: &Arc<Envelope>,
    payload: &Bytes,
) -> Result<Recorded, DbErr> {
    let row = new_row(envelope, payload, EventStatus::Ignored, 0);
    billing
        .writes
        .run(move |tx| {
            Box::pin(async move {
                Ok(if insert_if_absent(tx, row).await? {
                    Recorded::Ignored
                } else {
                    Recorded::Duplicate
                })
            })
        })
        .await
}

/// A conflict between concurrent transactions that the database resolved by
/// aborting one of them: running it again is the documented remedy.
fn is_transient(err: &InboxError) -> bool {
    match err {
        InboxError::Database(err) | InboxError::Apply(ApplyError::Database(err)) => {
            apply::is_transient(err)
        }
        InboxError::Apply(_) => false,
    }
}

/// Claims, applies and marks the event in one transaction (re-run, after a
/// short wait, when the database aborts it for a concurrent conflict). On
/// SQLite that transaction is a savepoint in a group of writes
/// (`db::group_commit`); either way the answer comes after the commit.
pub async fn process(
    billing: &Billing,
    envelope: &Arc<Envelope>,
    payload: &Bytes,
    event: &Arc<BillingEvent>,
) -> Result<Recorded, InboxError> {
    let prices = Arc::new(billing.price_directory());
    let reads = Arc::new(apply::StripeReads::default());
    let mut conflicts = 0;
    let mut reads_left = apply::MAX_READ_ROUNDS;
    loop {
        let attempt = Attempt {
            billing: billing.clone(),
            prices: prices.clone(),
            reads: reads.clone(),
            envelope: envelope.clone(),
            payload: payload.clone(),
            event: event.clone(),
        };
        match billing
            .writes
            .run(move |tx| Box::pin(attempt.run(tx)))
            .await
        {
            Err(err) if conflicts < apply::MAX_CONFLICT_RETRIES && is_transient(&err) => {
                tracing::info!(error = %err, "transaction conflict; re-running");
                apply::conflict_backoff(conflicts).await;
                conflicts += 1;
            }
            // Deciding needs Stripe: the transaction is rolled back, the read
            // made with nothing held, and the event processed again from the start.
            Err(InboxError::Apply(apply::ApplyError::NeedsStripe(read))) if reads_left > 0 => {
                reads_left -= 1;
                if let Err(err) = reads.fetch(&billing.stripe, &read).await {
                    let err = InboxError::Apply(err);
                    record_failure_logged(&billing.db, envelope, payload, &err).await;
                    return Err(err);
                }
            }
            Ok((recorded, mailed)) => {
                if mailed {
                    billing.mail.wake();
                }
                return Ok(recorded);
            }
            Err(err) => {
                record_failure_logged(&billing.db, envelope, payload, &err).await;
                return Err(err);
            }
        }
    }
}

/// Best effort: the transaction is gone; keep the error for `replay`.
async fn record_failure_logged(
    db: &DatabaseConnection,
    envelope: &Envelope,
    payload: &[u8],
    err: &InboxError,
) {
    if let Err(store_err) = record_failure(db, envelope, payload, &err.to_string()).await {
        tracing::error!(error = %store_err, "could not record the failure");
    }
}

/// One attempt at an event, owning what it needs: it runs in the group
/// writer's task, which outlives the request.
struct Attempt {
    billing: Billing,
    prices: Arc<PriceDirectory>,
    reads: Arc<apply::StripeReads>,
    envelope: Arc<Envelope>,
    payload: Bytes,
    event: Arc<BillingEvent>,
}

impl Attempt {
    /// Claims, applies and mails in `tx`: what was recorded, and whether mail
    /// waits in the outbox.
    async fn run(self, tx: &DatabaseTransaction) -> Result<(Recorded, bool), InboxError> {
        if !claim(tx, &self.envelope, &self.payload).await? {
            return Ok((Recorded::Duplicate, false));
        }
        let ctx = self.billing.apply_context(&self.prices, &self.reads);
        let outcomes = apply::apply_event(tx, ctx, &self.event).await?;
        tracing::debug!(?outcomes, "event applied");
        let mailed =
            super::notify::after_event(tx, ctx.mail, ctx.billing_page, &self.event).await?;
        Ok((Recorded::Processed, mailed))
    }
}

/// Takes the event for processing: a new row, or one that failed or was stored
/// unprocessed earlier, marked `processed` inside the caller's transaction.
/// `false` when it is done or someone else holds it.
async fn claim<C: ConnectionTrait>(
    conn: &C,
    envelope: &Envelope,
    payload: &[u8],
) -> Result<bool, DbErr> {
    let mut row = new_row(envelope, payload, EventStatus::Processed, 1);
    row.processed_at = Set(Some(Utc::now()));
    if insert_if_absent(conn, row).await? {
        return Ok(true);
    }
    let retried = webhook_events::Entity::update_many()
        .col_expr(
            webhook_events::Column::Status,
            Expr::value(EventStatus::Processed),
        )
        .col_expr(webhook_events::Column::ProcessedAt, Expr::value(Utc::now()))
        .col_expr(
            webhook_events::Column::LastError,
            Expr::value(None::<String>),
        )
        .col_expr(
            webhook_events::Column::Attempts,
            Expr::col(webhook_events::Column::Attempts).add(1),
        )
        .filter(webhook_events::Column::StripeEventId.eq(envelope.id.as_str()))
        .filter(webhook_events::Column::Status.is_in(RETAKEN))
        .exec(conn)
        .await?;
    Ok(retried.rows_affected > 0)
}

/// Stores a handled event whose object did not parse (another API version)
/// as failed, with the reason, unless its id is stored already: it can be read
/// and, once the app parses it, replayed.
pub async fn record_unreadable(
    db: &DatabaseConnection,
    envelope: &Envelope,
    payload: &[u8],
    error: &str,
) -> Result<(), DbErr> {
    insert_if_absent(db, failed_row(envelope, payload, error)).await?;
    Ok(())
}

/// A first failed attempt at `envelope`, with its error.
fn failed_row(envelope: &Envelope, payload: &[u8], error: &str) -> webhook_events::ActiveModel {
    let mut row = new_row(envelope, payload, EventStatus::Failed, 1);
    row.last_error = Set(Some(error.to_owned()));
    row
}

async fn record_failure(
    db: &DatabaseConnection,
    envelope: &Envelope,
    payload: &[u8],
    error: &str,
) -> Result<(), DbErr> {
    webhook_events::Entity::insert(failed_row(envelope, payload, error))
        .on_conflict(
            OnConflict::column(webhook_events::Column::StripeEventId)
                .value(webhook_events::Column::Status, EventStatus::Failed)
                .value(
                    webhook_events::Column::Attempts,
                    Expr::col((webhook_events::Entity, webhook_events::Column::Attempts)).add(1),
                )
                .value(webhook_events::Column::LastError, error)
                .to_owned(),
        )
        .exec_without_returning(db)
        .await?;
    Ok(())
}

/// Stored events to re-process: one by id, or every failed one.
pub async fn stored(
    db: &DatabaseConnection,
    event_id: Option<&str>,
) -> Result<Vec<webhook_events::Model>, DbErr> {
    let query = webhook_events::Entity::find();
    match event_id {
        Some(id) => {
            query
                .filter(webhook_events::Column::StripeEventId.eq(id))
                .all(db)
                .await
        }
        None => {
            query
                .filter(webhook_events::Column::Status.is_in(RETAKEN))
                .all(db)
                .await
        }
    }
}

/// Re-applies a stored event (`webhooks replay`), whatever its status: `apply` is
/// idempotent, so a replay of a processed event changes nothing that is current.
pub async fn replay(
    db: &DatabaseConnection,
    ctx: ApplyContext<'_>,
    row: &webhook_events::Model,
    event: &BillingEvent,
) -> Result<(), InboxError> {
    let result = async {
        apply::write(db, ctx, apply::Write::Event(event)).await?;
        mark_replayed(db, &row.stripe_event_id).await?;
        Ok::<_, InboxError>(())
    }
    .await;
    if let Err(err) = &result {
        webhook_events::Entity::update_many()
            .col_expr(
                webhook_events::Column::Status,
                Expr::value(EventStatus::Failed),
            )
            .col_expr(
                webhook_events::Column::LastError,
                Expr::value(err.to_string()),
            )
            .col_expr(
                webhook_events::Column::Attempts,
                Expr::col(webhook_events::Column::Attempts).add(1),
            )
            .filter(webhook_events::Column::Id.eq(row.id))
            .exec(db)
            .await?;
    }
    result
}
