//! Server-side GA4 `purchase` events (the guide's Measurement Protocol TODO).
//!
//! Sent after the webhook transaction that recorded a completed payment commits,
//! from a background task: a slow or failing analytics endpoint never delays or
//! fails the webhook, and the inbox's record-once rule means a re-delivered
//! Stripe event never sends a second purchase.

use secrecy::ExposeSecret;
use serde_json::json;

use crate::{
    billing::objects::{BillingEvent, CheckoutSessionState, EventKind, StripeObject},
    catalog::Catalog,
    config::Ga4Config,
};

/// The Measurement Protocol request for a completed payment, if this event is one.
pub fn purchase_payload(event: &BillingEvent, catalog: &Catalog) -> Option<serde_json::Value> {
    let StripeObject::CheckoutSession(session) = &event.object else {
        return None;
    };
    let completed = match event.kind {
        EventKind::CheckoutSessionCompleted => session.payment_status == "paid",
        EventKind::CheckoutSessionAsyncPaymentSucceeded => true,
        _ => false,
    };
    if !completed {
        return None;
    }
    Some(payload(session, catalog))
}

fn payload(session: &CheckoutSessionState, catalog: &Catalog) -> serde_json::Value {
    let plan = session.plan_id.as_deref().and_then(|id| catalog.plan(id));
    let client = session
        .user_id()
        .map(|id| format!("user.{id}"))
        .or_else(|| session.customer_id.clone())
        .unwrap_or_else(|| session.id.clone());
    let exponent = crate::catalog::money::minor_digits(&session.currency).unwrap_or(2);
    let value = session.amount_total as f64 / 10f64.powi(exponent as i32);
    json!({
        "client_id": client,
        "user_id": session.user_id().map(|id| id.to_string()),
        "events": [{
            "name": "purchase",
            "params": {
                "transaction_id": session.id,
                "value": value,
                "currency": session.currency.to_uppercase(),
                "items": [{
                    "item_id": session.plan_id,
                    "item_name": plan.map(|p| p.name.clone()),
                    "price": value,
                    "quantity": 1,
                }],
            },
        }],
    })
}

/// Sends the payload in the background; logs the outcome, never fails.
pub fn send_in_background(config: &Ga4Config, body: serde_json::Value) {
    let url = format!(
        "{}?measurement_id={}&api_secret={}",
        config.endpoint,
        config.measurement_id,
        config.api_secret.expose_secret()
    );
    use tracing::Instrument;
    // The task keeps the webhook's span (event id and type) for its log lines.
    let task = async move {
        let result = reqwest::Client::new()
            .post(&url)
            .timeout(std::time::Duration::from_secs(5))
            .json(&body)
            .send()
            .await;
        // The URL holds the API secret: log the outcome, never the URL.
        match result {
            Ok(response) if response.status().is_success() => {
                tracing::info!("GA4 purchase event sent");
            }
            Ok(response) => {
                tracing::warn!(status = %response.status(), "GA4 rejected the purchase event");
            }
            Err(err) => {
                tracing::warn!(error = %err.without_url(), "GA4 purchase event not sent");
            }
        }
    };
    tokio::spawn(task.in_current_span());
}
