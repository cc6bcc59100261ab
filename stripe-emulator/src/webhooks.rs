//! Webhook endpoints and delivery: every event goes to each endpoint enabled for
//! its type (and to the `--forward-to` target), signed as Stripe signs
//! (`Stripe-Signature: t=…,v1=HMAC-SHA256(secret, "t.body")`), retried with
//! exponential backoff on failure, with a delivery log.

use std::{sync::Arc, time::Duration};

use hmac::{Hmac, Mac};
use rand::{seq::SliceRandom, Rng};
use serde_json::{json, Value};
use sha2::Sha256;
use tokio::sync::mpsc;

use crate::{
    context::{new_id, wall_clock, Ctx},
    error::ApiError,
    form, objects, params,
    store::{DeliveryRecord, Store},
    Emulator, EmulatorConfig,
};

#[derive(Clone, Debug)]
pub struct Outgoing {
    pub event_id: String,
    pub event_type: String,
    pub url: String,
    pub secret: String,
    pub payload: String,
}

/// The `Stripe-Signature` header for `payload` signed at `timestamp`.
pub fn signature_header(secret: &str, timestamp: i64, payload: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(payload);
    format!(
        "t={timestamp},v1={}",
        hex::encode(mac.finalize().into_bytes())
    )
}

/// Which deliveries an event makes.
pub fn route(store: &Store, config: &EmulatorConfig, event: &Value) -> Vec<Outgoing> {
    let kind = event["type"].as_str().unwrap_or_default();
    let payload = event.to_string();
    let mut out: Vec<Outgoing> = store
        .list("webhook_endpoint")
        .filter(|endpoint| endpoint["status"] == "enabled")
        .filter(|endpoint| {
            endpoint["enabled_events"]
                .as_array()
                .is_some_and(|events| events.iter().any(|e| e == "*" || e == kind))
        })
        .filter_map(|endpoint| {
            let id = endpoint["id"].as_str()?;
            let secret = store.private.get(id)?["secret"].as_str()?.to_owned();
            Some(Outgoing {
                event_id: event["id"].as_str()?.to_owned(),
                event_type: kind.to_owned(),
                url: endpoint["url"].as_str()?.to_owned(),
                secret,
                payload: payload.clone(),
            })
        })
        .collect();
    if let Some(target) = &config.forward_to {
        out.push(Outgoing {
            event_id: event["id"].as_str().unwrap_or_default().to_owned(),
            event_type: kind.to_owned(),
            url: target.url.clone(),
            secret: target.secret.clone(),
            payload,
        });
    }
    let copies = store.delivery_mode.duplicates.max(1) as usize;
    out.iter()
        .flat_map(|o| std::iter::repeat_n(o.clone(), copies))
        .collect()
}

pub fn spawn_deliverer(emulator: Arc<Emulator>, mut inbox: mpsc::UnboundedReceiver<Outgoing>) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("HTTP client builds");
    tokio::spawn(async move {
        while let Some(item) = inbox.recv().await {
            let hold = emulator.lock().delivery_mode.hold;
            if hold {
                emulator
                    .held
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(item);
                continue;
            }
            tokio::spawn(deliver(emulator.clone(), client.clone(), item));
        }
    });
}

/// Sends every held delivery, in random order.
pub fn flush_held(emulator: &Arc<Emulator>) -> usize {
    let mut held = std::mem::take(&mut *emulator.held.lock().unwrap_or_else(|p| p.into_inner()));
    held.shuffle(&mut rand::rng());
    let count = held.len();
    let client = reqwest::Client::new();
    for item in held {
        tokio::spawn(deliver(emulator.clone(), client.clone(), item));
    }
    count
}

async fn deliver(emulator: Arc<Emulator>, client: reqwest::Client, item: Outgoing) {
    let (max_delay, drop_first) = {
        let store = emulator.lock();
        (
            store.delivery_mode.max_delay_ms,
            store.delivery_mode.drop_first,
        )
    };
    if max_delay > 0 {
        let delay = rand::rng().random_range(0..=max_delay);
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let policy = emulator.config.retry.clone();
    for attempt in 1..=policy.max_attempts {
        let (status, error) = if attempt <= drop_first {
            (None, Some("dropped by test control".to_owned()))
        } else {
            let header = signature_header(&item.secret, wall_clock(), item.payload.as_bytes());
            match client
                .post(&item.url)
                .header("content-type", "application/json; charset=utf-8")
                .header("stripe-signature", header)
                .header(
                    "user-agent",
                    "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
                )
                .body(item.payload.clone())
                .send()
                .await
            {
                Ok(response) => (Some(response.status().as_u16()), None),
                Err(err) => (None, Some(err.to_string())),
            }
        };
        emulator.lock().deliveries.push(DeliveryRecord {
            event_id: item.event_id.clone(),
            event_type: item.event_type.clone(),
            url: item.url.clone(),
            attempt,
            status,
            error,
            at: wall_clock(),
        });
        if status.is_some_and(|s| (200..300).contains(&s)) {
            return;
        }
        if attempt < policy.max_attempts {
            tokio::time::sleep(policy.base_delay * 2u32.saturating_pow(attempt - 1)).await;
        }
    }
    tracing::warn!(event = %item.event_id, url = %item.url, "webhook delivery gave up after {} attempts", policy.max_attempts);
}

const ENDPOINT_PARAMS: [&str; 7] = [
    "url",
    "enabled_events.[]",
    "api_version",
    "description",
    "metadata",
    "metadata.*",
    "expand.[]",
];

fn check_url(url: &str) -> Result<(), ApiError> {
    if url.starts_with("http://") || url.starts_with("https://") {
        Ok(())
    } else {
        Err(ApiError::invalid_parameter(
            "url",
            "Invalid URL: URL must be http(s).",
        ))
    }
}

pub fn endpoint_create(ctx: &mut Ctx<'_>, p: &Value) -> Result<Value, ApiError> {
    let mut allowed = ENDPOINT_PARAMS.to_vec();
    allowed.push("connect");
    form::check_allowed(p, &allowed)?;
    let url = params::required(p, "url")?;
    check_url(url)?;
    let events = p["enabled_events"]
        .as_array()
        .filter(|e| !e.is_empty())
        .ok_or_else(|| ApiError::missing_parameter("enabled_events"))?;
    let id = new_id("we");
    let secret = format!("whsec_{}", &new_id("x")[2..]);
    let endpoint = objects::webhook_endpoint(
        &id,
        ctx.now(),
        url,
        json!(events),
        params::string(p, "api_version"),
        params::string(p, "description"),
        params::metadata(p),
    );
    ctx.store.insert(endpoint.clone());
    ctx.store.private(&id)["secret"] = json!(secret);
    // The secret is shown once, on creation, as on Stripe.
    let mut response = endpoint;
    response["secret"] = json!(secret);
    Ok(response)
}

pub fn endpoint_update(ctx: &mut Ctx<'_>, id: &str, p: &Value) -> Result<Value, ApiError> {
    let mut allowed = ENDPOINT_PARAMS.to_vec();
    allowed.retain(|k| *k != "api_version");
    allowed.push("disabled");
    form::check_allowed(p, &allowed)?;
    ctx.fetch(id, "webhook_endpoint", "id")?;
    if let Some(url) = params::string(p, "url") {
        check_url(url)?;
    }
    let disabled = params::boolean(p, "disabled")?;
    ctx.update(id, None, |endpoint| {
        if let Some(url) = params::string(p, "url") {
            endpoint["url"] = json!(url);
        }
        if let Some(events) = p["enabled_events"].as_array() {
            endpoint["enabled_events"] = json!(events);
        }
        if let Some(description) = params::string(p, "description") {
            endpoint["description"] = json!(description);
        }
        if let Some(disabled) = disabled {
            endpoint["status"] = json!(if disabled { "disabled" } else { "enabled" });
        }
        endpoint["metadata"] = params::merge_metadata(&endpoint["metadata"], p);
    })
}

pub fn endpoint_delete(ctx: &mut Ctx<'_>, id: &str) -> Result<Value, ApiError> {
    ctx.fetch(id, "webhook_endpoint", "id")?;
    ctx.store.remove(id);
    Ok(json!({"id": id, "object": "webhook_endpoint", "deleted": true}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_like_stripe() {
        // HMAC-SHA256("whsec_test", "1700000000.{}") computed independently with openssl.
        let header = signature_header("whsec_test", 1_700_000_000, b"{}");
        assert_eq!(
            header,
            "t=1700000000,v1=35495024f4ef3f94e5a93e22221544c4b75e9a42300cd965ab81cb85cd994e91"
        );
    }
}
