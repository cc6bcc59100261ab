//! The Stripe webhook route: raw body → signature check against every configured
//! secret → the event recorded once by its id in `webhook_events`.
//!
//! Status codes follow Stripe's retry rules: 400 for a missing/bad signature or a
//! body that is not an event (never retried usefully), 413 above the body limit,
//! 500 when the event could not be stored (Stripe retries), 200 otherwise —
//! including for duplicates and event types the app does not handle, which Stripe
//! would otherwise retry for days.
//!
//! A handled event is applied through `billing::sync` in the same transaction
//! that records it (see `inbox`); a failure is stored and answered with 500.

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

use crate::{billing::sync::SyncContext, gateway, server::AppState};

/// Every event type the app acts on; `doctor` checks the endpoint sends them all.
pub const HANDLED_EVENTS: [&str; 22] = [
    "checkout.session.completed",
    "checkout.session.async_payment_succeeded",
    "checkout.session.async_payment_failed",
    "checkout.session.expired",
    "customer.subscription.created",
    "customer.subscription.updated",
    "customer.subscription.deleted",
    "customer.subscription.trial_will_end",
    "invoice.created",
    "invoice.finalized",
    "invoice.updated",
    "invoice.voided",
    "invoice.marked_uncollectible",
    "invoice.paid",
    "invoice.payment_succeeded",
    "invoice.payment_failed",
    "invoice.payment_action_required",
    "charge.refunded",
    "charge.dispute.created",
    "charge.dispute.closed",
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
        return reply(StatusCode::BAD_REQUEST, json!({"error": err.to_string()}));
    }
    let envelope = match inbox::Envelope::parse(&body) {
        Ok(envelope) => envelope,
        Err(err) => {
            tracing::warn!(error = %err, "webhook body is not a Stripe event");
            return reply(StatusCode::BAD_REQUEST, json!({"error": "malformed event"}));
        }
    };
    // A live event reaching a test set-up (or the reverse) is another account's
    // business: stored, never applied, and said in the log.
    let live_key = matches!(
        state.config.stripe.backend,
        crate::config::StripeBackend::Stripe {
            mode: crate::config::KeyMode::Live,
            ..
        }
    );
    let wrong_mode = envelope.livemode != live_key;
    if wrong_mode {
        tracing::warn!(event = %envelope.id, livemode = envelope.livemode, "webhook from the other mode (live/test) than the configured key; ignored");
    }
    if wrong_mode || !HANDLED_EVENTS.contains(&envelope.event_type.as_str()) {
        return match inbox::record_ignored(&state.db, &envelope, &body).await {
            Ok(recorded) => {
                tracing::info!(event = %envelope.id, kind = %envelope.event_type, ?recorded, "webhook type not handled; recorded as ignored");
                reply(StatusCode::OK, json!({"received": true, "ignored": true}))
            }
            Err(err) => {
                tracing::error!(event = %envelope.id, error = %err, "webhook could not be stored; Stripe will retry");
                reply(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    json!({"error": "temporarily unable to record the event"}),
                )
            }
        };
    }
    let event = match std::str::from_utf8(&body)
        .map_err(|_| gateway::objects::EventParseError::Envelope)
        .and_then(gateway::objects::parse_event)
    {
        Ok(Some(event)) => event,
        Ok(None) | Err(gateway::objects::EventParseError::Envelope) => {
            tracing::warn!(event = %envelope.id, "webhook body is not a complete Stripe event");
            return reply(StatusCode::BAD_REQUEST, json!({"error": "malformed event"}));
        }
        Err(err) => {
            // A handled type whose object does not match the pinned API version:
            // fix the endpoint's version, then Stripe's retry (or `replay`) applies it.
            tracing::error!(event = %envelope.id, error = %err, "webhook object does not parse");
            return reply(
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({"error": "event object does not match the API version"}),
            );
        }
    };
    let prices = state.price_directory();
    let reads = crate::billing::sync::StripeReads::default();
    let ctx = SyncContext {
        gateway: &state.stripe,
        catalog: &state.catalog,
        prices: &prices,
        reads: &reads,
    };
    match inbox::process(&state.db, ctx, &envelope, &body, &event).await {
        Ok(inbox::Recorded::Duplicate) => {
            tracing::info!(event = %envelope.id, "webhook duplicate ignored");
            reply(StatusCode::OK, json!({"received": true, "duplicate": true}))
        }
        Ok(_) => {
            tracing::info!(event = %envelope.id, kind = %envelope.event_type, "webhook processed");
            // After the commit, once per event: the inbox answered Duplicate otherwise.
            if let Some(ga4) = &state.config.ga4 {
                if let Some(body) = crate::analytics::purchase_payload(&event, &state.catalog) {
                    crate::analytics::send_in_background(ga4, body);
                }
            }
            reply(StatusCode::OK, json!({"received": true}))
        }
        Err(err) => {
            tracing::error!(event = %envelope.id, kind = %envelope.event_type, error = %err, "webhook processing failed; Stripe will retry");
            reply(
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({"error": "processing failed; retry later"}),
            )
        }
    }
}

fn reply(status: StatusCode, body: serde_json::Value) -> Response {
    (status, Json(body)).into_response()
}
