//! The Stripe webhook route: raw body → signature check against every configured
//! secret → the event recorded once by its id in `webhook_events`.
//!
//! Status codes follow Stripe's retry rules: 400 for a missing/bad signature or a
//! body that is not an event (never retried usefully), 413 above the body limit,
//! 500 when the event could not be stored (Stripe retries), 200 otherwise —
//! including for duplicates and event types the app does not handle, which Stripe
//! would otherwise retry for days.
//!
//! A handled event is applied through `billing::apply` in the same transaction
//! that records it (see `inbox`); a failure is stored and answered with 500.

pub mod inbox;
pub mod notify;
pub mod signature;

use axum::{
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use secrecy::ExposeSecret;
use serde_json::json;

use tracing::Instrument;

use crate::{
    billing::{context::Billing, objects::EventKind},
    gateway,
};

/// Every event type the app acts on, by Stripe's name (from
/// [`EventKind::ALL`]); `doctor` checks the endpoint is sent them all.
pub fn handled_event_types() -> impl Iterator<Item = &'static str> {
    EventKind::ALL.iter().map(|kind| kind.as_str())
}

/// Why a delivery was not taken; each answers with the status Stripe's retry
/// rules call for.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// Missing or bad signature: 400, never retried usefully.
    #[error(transparent)]
    Signature(#[from] signature::SignatureError),
    /// Not a Stripe event (or not a complete one): 400.
    #[error("webhook body is not a Stripe event")]
    Malformed,
    /// A handled type whose object does not match the pinned API version: 500,
    /// so Stripe retries once the endpoint's version is fixed (or `replay`).
    #[error("event object does not parse: {0}")]
    Unparsable(gateway::objects::EventParseError),
    /// The event could not be stored: 500, Stripe retries.
    #[error("webhook could not be stored: {0}")]
    Store(#[from] sea_orm::DbErr),
    /// Applying it failed and was rolled back: 500, Stripe retries.
    #[error("webhook processing failed: {0}")]
    Apply(#[from] inbox::InboxError),
}

impl IntoResponse for WebhookError {
    fn into_response(self) -> Response {
        let (status, message) = match &self {
            WebhookError::Signature(err) => (StatusCode::BAD_REQUEST, err.to_string()),
            WebhookError::Malformed => (StatusCode::BAD_REQUEST, "malformed event".to_owned()),
            WebhookError::Unparsable(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "event object does not match the API version".to_owned(),
            ),
            WebhookError::Store(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "temporarily unable to record the event".to_owned(),
            ),
            WebhookError::Apply(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "processing failed; retry later".to_owned(),
            ),
        };
        if status.is_server_error() {
            tracing::error!(error = %self, "webhook failed; Stripe will retry");
        } else {
            tracing::warn!(reason = %self, "webhook rejected");
        }
        reply(status, json!({ "error": message }))
    }
}

/// Whether the app acts on events of this type.
pub fn is_handled(kind: &str) -> bool {
    EventKind::parse(kind).is_some()
}

/// `POST` of one event from Stripe: verified, recorded once, applied once.
pub async fn receive(
    State(billing): State<Billing>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, WebhookError> {
    let started = std::time::Instant::now();
    let checked = verify(&billing, &headers, &body)
        .and_then(|()| inbox::Envelope::parse(&body).map_err(|_| WebhookError::Malformed))
        .map(std::sync::Arc::new);
    let envelope = match checked {
        Ok(envelope) => envelope,
        Err(err) => {
            crate::prometheus::webhook("", "rejected");
            return Err(err);
        }
    };
    let answered = process(&billing, &envelope, &body)
        .instrument(tracing::info_span!(
            "webhook",
            event = %envelope.id,
            kind = %envelope.event_type
        ))
        .await;
    let outcome = match &answered {
        Ok((_, outcome)) => *outcome,
        Err(_) => "failed",
    };
    crate::prometheus::webhook(&envelope.event_type, outcome);
    crate::prometheus::webhook_timing(
        started.elapsed().as_secs_f64(),
        Some((chrono::Utc::now().timestamp() - envelope.created) as f64),
    );
    answered.map(|(response, _)| response)
}

fn verify(billing: &Billing, headers: &HeaderMap, body: &[u8]) -> Result<(), WebhookError> {
    let secrets: Vec<&str> = billing
        .config
        .stripe
        .webhook_secrets
        .iter()
        .map(|s| s.expose_secret())
        .collect();
    let header = headers
        .get("stripe-signature")
        .and_then(|value| value.to_str().ok());
    let now = chrono::Utc::now().timestamp();
    signature::verify(body, header, &secrets, now)?;
    Ok(())
}

/// Records and applies one verified delivery; the answer and its outcome
/// (`processed`, `duplicate` or `ignored`) for the metrics.
async fn process(
    billing: &Billing,
    envelope: &std::sync::Arc<inbox::Envelope>,
    body: &Bytes,
) -> Result<(Response, &'static str), WebhookError> {
    // A live event reaching a test set-up (or the reverse) is another account's
    // business: stored, never applied, and said in the log.
    let live_key = matches!(
        billing.config.stripe.backend,
        crate::config::StripeBackend::Stripe {
            mode: crate::config::KeyMode::Live,
            ..
        }
    );
    let wrong_mode = envelope.livemode != live_key;
    if wrong_mode {
        tracing::warn!(
            livemode = envelope.livemode,
            "webhook from the other mode (live/test) than the configured key; ignored"
        );
    }
    if wrong_mode || !is_handled(&envelope.event_type) {
        let recorded = inbox::record_ignored(billing, envelope, body).await?;
        tracing::info!(?recorded, "webhook type not handled; recorded as ignored");
        return Ok((
            reply(StatusCode::OK, json!({"received": true, "ignored": true})),
            "ignored",
        ));
    }
    let event = match std::str::from_utf8(body)
        .map_err(|_| gateway::objects::EventParseError::Envelope)
        .and_then(gateway::objects::parse_event)
    {
        Ok(Some(event)) => event,
        Ok(None) | Err(gateway::objects::EventParseError::Envelope) => {
            return Err(WebhookError::Malformed)
        }
        Err(err) => {
            inbox::record_unreadable(&billing.db, envelope, body, &err.to_string()).await?;
            return Err(WebhookError::Unparsable(err));
        }
    };
    let event = std::sync::Arc::new(event);
    if inbox::process(billing, envelope, body, &event).await? == inbox::Recorded::Duplicate {
        tracing::info!("webhook duplicate ignored");
        return Ok((
            reply(StatusCode::OK, json!({"received": true, "duplicate": true})),
            "duplicate",
        ));
    }
    tracing::info!("webhook processed");
    if event.kind == EventKind::CheckoutSessionCompleted {
        crate::prometheus::checkout_completed();
    }
    crate::billing::duplicates::after_event(billing, &event);
    // After the commit, once per event: the inbox answered Duplicate otherwise.
    if let Some(ga4) = &billing.config.ga4 {
        if let Some(body) = crate::analytics::purchase_payload(&event, &billing.catalog) {
            crate::analytics::send_in_background(ga4, body);
        }
    }
    Ok((
        reply(StatusCode::OK, json!({"received": true})),
        "processed",
    ))
}

fn reply(status: StatusCode, body: serde_json::Value) -> Response {
    (status, Json(body)).into_response()
}
