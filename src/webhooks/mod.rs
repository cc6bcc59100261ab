//! The Stripe webhook route: raw body → signature check against every configured
//! secret → the event recorded once by its id in `webhook_events`.
//!
//! Status codes follow Stripe's retry rules: 400 for a missing/bad signature or a
//! body that is not an event (never retried usefully), 413 above the body limit,
//! 500 when the event could not be stored (Stripe retries), 200 otherwise —
//! including for duplicates and event types the app does not handle, which Stripe
//! would otherwise retry for days.
//!
//! Applying events to billing state (`billing::sync`) is the webhook issue's work;
//! until then handled types wait in the inbox as `received`, ready for replay.

pub mod inbox;
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

use crate::server::AppState;

/// Every event type the app acts on; `doctor` checks the endpoint sends them all.
pub const HANDLED_EVENTS: [&str; 16] = [
    "checkout.session.completed",
    "checkout.session.async_payment_succeeded",
    "checkout.session.async_payment_failed",
    "checkout.session.expired",
    "customer.subscription.created",
    "customer.subscription.updated",
    "customer.subscription.deleted",
    "customer.subscription.trial_will_end",
    "invoice.paid",
    "invoice.payment_succeeded",
    "invoice.payment_failed",
    "invoice.payment_action_required",
    "charge.refunded",
    "charge.dispute.created",
    "customer.deleted",
    "customer.updated",
];

pub async fn receive(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let secrets: Vec<&str> = state
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
    if let Err(err) = signature::verify(&body, header, &secrets, now) {
        tracing::warn!(reason = %err, "webhook rejected");
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": err.to_string()})),
        )
            .into_response();
    }
    let envelope = match inbox::Envelope::parse(&body) {
        Ok(envelope) => envelope,
        Err(err) => {
            tracing::warn!(error = %err, "webhook body is not a Stripe event");
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({"error": "malformed event"})),
            )
                .into_response();
        }
    };
    let handled = HANDLED_EVENTS.contains(&envelope.event_type.as_str());
    match inbox::record(&state.db, &envelope, &body, handled).await {
        Ok(inbox::Recorded::New) => {
            tracing::info!(event = %envelope.id, kind = %envelope.event_type, handled, "webhook recorded");
            (StatusCode::OK, Json(json!({"received": true}))).into_response()
        }
        Ok(inbox::Recorded::Duplicate) => {
            tracing::info!(event = %envelope.id, "webhook duplicate ignored");
            (
                StatusCode::OK,
                Json(json!({"received": true, "duplicate": true})),
            )
                .into_response()
        }
        Err(err) => {
            tracing::error!(event = %envelope.id, error = %err, "webhook could not be stored; Stripe will retry");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                Json(json!({"error": "temporarily unable to record the event"})),
            )
                .into_response()
        }
    }
}
