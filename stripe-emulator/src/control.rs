//! Test controls under `/_emulator` (never `/v1`): reset, time, fault injection,
//! delivery modes (duplicate, delay, drop, hold then shuffle) and the delivery log.

use std::sync::Arc;

use axum::{
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, post},
    Json, Router,
};
use serde::Deserialize;
use serde_json::json;

use crate::{
    billing::clocks,
    context::Ctx,
    store::{DeliveryMode, Faults, Store},
    webhooks, Emulator,
};

pub fn routes() -> Router<Arc<Emulator>> {
    Router::new()
        .route(
            "/_emulator/health",
            get(|| async { Json(json!({"status": "ok"})) }),
        )
        .route("/_emulator/reset", post(reset))
        .route("/_emulator/advance", post(advance))
        .route("/_emulator/faults", post(set_faults))
        .route("/_emulator/delivery", post(set_delivery).get(held))
        .route("/_emulator/delivery/flush", post(flush))
        .route("/_emulator/deliveries", get(deliveries))
        .route("/_emulator/requests", get(requests))
        .route("/_emulator/charges/{id}/dispute", post(dispute))
        .route("/_emulator/disputes/{id}/close", post(close_dispute))
}

async fn reset(State(emulator): State<Arc<Emulator>>) -> Json<serde_json::Value> {
    *emulator.lock() = Store::default();
    emulator
        .held
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clear();
    Json(json!({"reset": true}))
}

#[derive(Deserialize)]
struct Advance {
    seconds: i64,
}

/// Moves the account clock (customers without a test clock) forward.
async fn advance(State(emulator): State<Arc<Emulator>>, Json(body): Json<Advance>) -> Response {
    let mut store = emulator.lock();
    let mut ctx = Ctx::new(&mut store, &emulator);
    let result = clocks::advance_account(&mut ctx, body.seconds);
    let now = ctx.now();
    let outgoing = std::mem::take(&mut ctx.outgoing);
    drop(store);
    emulator.send(outgoing);
    match result {
        Ok(()) => Json(json!({"now": now})).into_response(),
        Err(err) => err.into_response(),
    }
}

/// Runs one control on the store and sends the events it emitted, once the
/// store is unlocked.
fn run_control(
    emulator: &Emulator,
    control: impl FnOnce(&mut Ctx<'_>) -> Result<serde_json::Value, crate::error::ApiError>,
) -> Response {
    let mut store = emulator.lock();
    let mut ctx = Ctx::new(&mut store, emulator);
    let result = control(&mut ctx);
    let outgoing = std::mem::take(&mut ctx.outgoing);
    drop(store);
    emulator.send(outgoing);
    match result {
        Ok(object) => Json(object).into_response(),
        Err(err) => err.into_response(),
    }
}

/// Opens a dispute on a charge, as a card holder would (`charge.dispute.created`).
async fn dispute(
    State(emulator): State<Arc<Emulator>>,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Response {
    run_control(&emulator, |ctx| {
        crate::billing::refunds::dispute(ctx, &id, "fraudulent")
    })
}

/// Closes a dispute with the bank's decision: body `{"status": "won" | "lost"}`.
async fn close_dispute(
    State(emulator): State<Arc<Emulator>>,
    axum::extract::Path(id): axum::extract::Path<String>,
    Json(body): Json<serde_json::Value>,
) -> Response {
    let status = body["status"].as_str().unwrap_or_default().to_owned();
    run_control(&emulator, |ctx| {
        crate::billing::refunds::close_dispute(ctx, &id, &status)
    })
}

async fn set_faults(State(emulator): State<Arc<Emulator>>, Json(faults): Json<Faults>) -> Response {
    if !(0.0..=1.0).contains(&faults.rate)
        || faults
            .kinds
            .iter()
            .any(|k| !matches!(k.as_str(), "500" | "429" | "hang"))
    {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "rate must be 0..1 and kinds among 500, 429, hang"})),
        )
            .into_response();
    }
    emulator.lock().faults = faults.clone();
    Json(json!(faults)).into_response()
}

async fn set_delivery(
    State(emulator): State<Arc<Emulator>>,
    Json(mode): Json<DeliveryMode>,
) -> Json<DeliveryMode> {
    emulator.lock().delivery_mode = mode.clone();
    Json(mode)
}

/// How many deliveries the "hold" control is keeping back.
async fn held(State(emulator): State<Arc<Emulator>>) -> Json<serde_json::Value> {
    let held = emulator
        .held
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .len();
    Json(json!({ "held": held }))
}

async fn flush(State(emulator): State<Arc<Emulator>>) -> Json<serde_json::Value> {
    Json(json!({"sent": webhooks::flush_held(&emulator)}))
}

/// How many `/v1` requests the emulator has served (faulted ones included),
/// and how many it refused with 409 because their idempotency key was in flight.
async fn requests(State(emulator): State<Arc<Emulator>>) -> Json<serde_json::Value> {
    use std::sync::atomic::Ordering::Relaxed;
    let count = emulator.api_requests.load(Relaxed);
    let key_conflicts = emulator.key_conflicts.load(Relaxed);
    Json(json!({ "count": count, "key_conflicts": key_conflicts }))
}

async fn deliveries(State(emulator): State<Arc<Emulator>>) -> Json<serde_json::Value> {
    Json(json!(emulator.lock().deliveries))
}
