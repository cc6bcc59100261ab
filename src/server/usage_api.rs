//! `/api/v1`: usage and entitlements over HTTP for the product's own backend
//! services, authenticated by the account's API keys (`Authorization: Bearer
//! bsk_…`), never by a session cookie — so these routes are exempt from the
//! same-origin rule, and a browser's cookies give them nothing.
//!
//! Errors are mapped to answers once, in [`ApiError`]'s `IntoResponse`.

use std::{net::SocketAddr, sync::Mutex, time::Instant};

use axum::{
    body::Bytes,
    extract::{ConnectInfo, Path, State},
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    routing::{delete, get, post},
    Json, Router,
};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::{
    catalog::{FeatureKind, Limit},
    entitlements::{self, api_keys, ledger, Exhausted, UsageError},
    limits,
    state::AppState,
};

/// Largest request body: the bodies here are a few fields.
const BODY_LIMIT: usize = 16 * 1024;
/// Requests one key may make per second on one instance (well above any
/// honest service's rate, far below what would starve the others).
const REQUESTS_PER_KEY_PER_SECOND: u32 = 2_000;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/entitlements", get(entitlements_of))
        .route("/api/v1/usage", post(track))
        .route("/api/v1/usage/holds", post(reserve))
        .route("/api/v1/usage/holds/{id}/commit", post(commit))
        .route("/api/v1/usage/holds/{id}", delete(release))
        .layer(axum::extract::DefaultBodyLimit::max(BODY_LIMIT))
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("a valid API key is required: `Authorization: Bearer bsk_…`")]
    Unauthorized,
    #[error("too many requests; retry after {0} s")]
    Limited(i64),
    #[error("{0}")]
    BadRequest(String),
    #[error(transparent)]
    Usage(#[from] UsageError),
    /// Used up: an answer with what is left and where to get more.
    #[error("`{}` is used up", .exhausted.feature)]
    Refused {
        exhausted: Exhausted,
        upgrade_url: String,
    },
    #[error("server error")]
    Internal,
}

impl ApiError {
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::Limited(_) => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "invalid_request"),
            ApiError::Usage(err) => (err.status(), err.code()),
            ApiError::Refused { .. } => (StatusCode::PAYMENT_REQUIRED, "limit_reached"),
            ApiError::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "server_error"),
        }
    }
}

fn time(at: Option<DateTime<Utc>>) -> Value {
    at.map_or(Value::Null, |t| Value::String(t.to_rfc3339()))
}

fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        if status.is_server_error() {
            tracing::error!(error = %self, "usage API failed");
        }
        let mut response = match &self {
            // A refusal is an answer, not an error: what is left and where to get more.
            ApiError::Refused {
                exhausted,
                upgrade_url,
            } => (status, Json(refusal(exhausted, upgrade_url))).into_response(),
            _ => {
                let message = if status.is_server_error() {
                    "The request could not be completed; retry it.".to_owned()
                } else {
                    self.to_string()
                };
                (
                    status,
                    Json(json!({ "error": { "code": code, "message": message } })),
                )
                    .into_response()
            }
        };
        match self {
            ApiError::Unauthorized | ApiError::Usage(UsageError::AccountGone) => {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            ApiError::Limited(retry_after) => {
                if let Ok(value) = HeaderValue::from_str(&retry_after.to_string()) {
                    response.headers_mut().insert(header::RETRY_AFTER, value);
                }
            }
            _ => {}
        }
        no_store(response)
    }
}

fn refusal(exhausted: &Exhausted, upgrade_url: &str) -> Value {
    json!({
        "allowed": false,
        "feature": exhausted.feature,
        "remaining": exhausted.remaining,
        "resets_at": time(exhausted.resets_at),
        "reason": exhausted.reason.as_str(),
        "upgrade_url": upgrade_url,
    })
}

/// A ledger error as the API answers it: a refusal carries this app's
/// pricing page (from its `APP_URL`) as where the caller's user can get more.
fn usage_error(state: &AppState, err: UsageError) -> ApiError {
    match err {
        UsageError::Exhausted(exhausted) => ApiError::Refused {
            exhausted,
            upgrade_url: state
                .config()
                .app_url
                .join("/pricing")
                .map_or_else(|_| "/pricing".to_owned(), |url| url.to_string()),
        },
        other => ApiError::Usage(other),
    }
}

/// The account the request's key belongs to. A missing or wrong key is 401;
/// wrong keys from one client are limited (each costs a lookup), and one key's
/// requests are limited per second.
async fn account_of(
    state: &AppState,
    peer: SocketAddr,
    headers: &HeaderMap,
) -> Result<i64, ApiError> {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().split_once(' '))
        // The scheme is case-insensitive (RFC 9110, 11.1).
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, key)| key.trim());
    let key = match presented {
        Some(presented) => api_keys::authenticate(&state.billing.reads, state.db(), presented)
            .await
            .map_err(UsageError::from)?,
        None => None,
    };
    let Some(key) = key else {
        let client = limits::client_ip(
            peer.ip(),
            headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()),
            &state.config().trusted_proxies,
        );
        let now = Utc::now().timestamp();
        let rule = limits::API_KEY_FAILURES_PER_IP;
        match limits::hit(state.db(), rule, &limits::Key::Ip(client), now).await {
            Ok(true) => {}
            Ok(false) => {
                return Err(ApiError::Limited(
                    rule.window_secs - now.rem_euclid(rule.window_secs),
                ))
            }
            Err(err) => {
                tracing::error!(error = %err, "abuse limit storage failed");
                return Err(ApiError::Internal);
            }
        }
        tracing::warn!("usage API request without a valid key");
        return Err(ApiError::Unauthorized);
    };
    if !per_key_rate_allows(key.id) {
        return Err(ApiError::Limited(1));
    }
    Ok(key.account_id)
}

/// A fixed one-second window per key, in this process. (In memory: a
/// database counter would double the writes of every usage call.)
fn per_key_rate_allows(key_id: i64) -> bool {
    static WINDOWS: Mutex<Option<std::collections::HashMap<i64, (Instant, u32)>>> =
        Mutex::new(None);
    let mut windows = WINDOWS.lock().unwrap_or_else(|p| p.into_inner());
    let windows = windows.get_or_insert_with(Default::default);
    let now = Instant::now();
    if windows.len() > 10_000 {
        windows.retain(|_, (start, _)| now.duration_since(*start).as_secs() < 1);
    }
    let (start, count) = windows.entry(key_id).or_insert((now, 0));
    if now.duration_since(*start).as_secs() >= 1 {
        *start = now;
        *count = 0;
    }
    *count += 1;
    *count <= REQUESTS_PER_KEY_PER_SECOND
}

fn parse<T: for<'de> Deserialize<'de>>(body: &Bytes) -> Result<T, ApiError> {
    if body.is_empty() {
        return serde_json::from_slice(b"{}")
            .map_err(|err| ApiError::BadRequest(format!("the body must be JSON: {err}")));
    }
    serde_json::from_slice(body)
        .map_err(|err| ApiError::BadRequest(format!("the body must be JSON: {err}")))
}

fn balance_json(balance: &entitlements::Balance) -> Value {
    json!({
        "allowed": true,
        "remaining": balance.remaining,
        "resets_at": time(balance.resets_at),
        "replayed": balance.replayed,
    })
}

fn ok(value: Value) -> Response {
    no_store((StatusCode::OK, Json(value)).into_response())
}

/// `GET /api/v1/entitlements`: every feature with its limit, use and what is left.
async fn entitlements_of(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let account = account_of(&state, peer, &headers).await?;
    let summary = ledger::summary(&state.billing, account).await?;
    let features: Vec<Value> = summary
        .meters
        .iter()
        .map(|meter| {
            let limit = match meter.limit {
                Limit::Count(n) => json!(n),
                Limit::Unlimited => json!("unlimited"),
                Limit::Included(included) => json!(included),
            };
            let kind = match meter.kind {
                FeatureKind::Boolean => "boolean",
                FeatureKind::Metered => "metered",
                FeatureKind::Counted => "counted",
            };
            let mut entry = json!({
                "feature": meter.feature,
                "name": meter.name,
                "kind": kind,
                "limit": limit,
                "included": meter.included(),
            });
            if meter.kind != FeatureKind::Boolean {
                entry["used"] = json!(meter.used);
                entry["remaining"] = json!(meter.remaining);
                entry["resets_at"] = time(meter.resets_at);
            }
            entry
        })
        .collect();
    Ok(ok(json!({
        "plan": summary.plan_id,
        "credits": summary.credits,
        "features": features,
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UsageBody {
    feature: String,
    #[serde(default = "one")]
    amount: i64,
    #[serde(default)]
    idempotency_key: Option<String>,
}

fn one() -> i64 {
    1
}

/// An `Idempotency-Key` header is the same as the body's field.
fn key_of(headers: &HeaderMap, body_key: Option<String>) -> Result<Option<String>, ApiError> {
    let header_key = headers
        .get("idempotency-key")
        .map(|value| {
            value
                .to_str()
                .map(str::to_owned)
                .map_err(|_| ApiError::Usage(UsageError::BadKey))
        })
        .transpose()?;
    match (body_key, header_key) {
        (Some(body), Some(header)) if body != header => Err(ApiError::BadRequest(
            "the Idempotency-Key header and the body's idempotency_key differ".into(),
        )),
        (Some(key), _) | (None, Some(key)) => Ok(Some(key)),
        (None, None) => Ok(None),
    }
}

/// `POST /api/v1/usage`: records a use, or answers 402 with what is left.
async fn track(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let account = account_of(&state, peer, &headers).await?;
    let body: UsageBody = parse(&body)?;
    let key = key_of(&headers, body.idempotency_key)?;
    let balance = ledger::track(
        &state.billing,
        account,
        &body.feature,
        body.amount,
        key.as_deref(),
    )
    .await
    .map_err(|err| usage_error(&state, err))?;
    Ok(ok(balance_json(&balance)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HoldBody {
    feature: String,
    #[serde(default = "one")]
    amount: i64,
    #[serde(default)]
    idempotency_key: Option<String>,
    /// Seconds until the hold expires on its own (default 300, at most a day).
    #[serde(default)]
    expires_in: Option<i64>,
}

fn hold_id(raw: &str) -> Result<i64, ApiError> {
    raw.strip_prefix("hold_")
        .and_then(|id| id.parse::<i64>().ok())
        .ok_or(ApiError::Usage(UsageError::HoldNotFound))
}

/// `POST /api/v1/usage/holds`: sets units aside until commit, release or expiry.
async fn reserve(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let account = account_of(&state, peer, &headers).await?;
    let body: HoldBody = parse(&body)?;
    let key = key_of(&headers, body.idempotency_key)?;
    let ttl = body.expires_in.unwrap_or(300);
    if !(1..=ledger::MAX_HOLD.num_seconds()).contains(&ttl) {
        return Err(ApiError::BadRequest(format!(
            "expires_in is 1 to {} seconds",
            ledger::MAX_HOLD.num_seconds()
        )));
    }
    let hold = ledger::reserve(
        &state.billing,
        account,
        &body.feature,
        body.amount,
        chrono::Duration::seconds(ttl),
        key.as_deref(),
    )
    .await
    .map_err(|err| usage_error(&state, err))?;
    Ok(ok(json!({
        "allowed": true,
        "hold_id": format!("hold_{}", hold.id),
        "feature": hold.feature,
        "amount": hold.amount,
        "expires_at": time(Some(hold.expires_at)),
        "remaining": hold.remaining,
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CommitBody {
    amount: i64,
}

/// `POST /api/v1/usage/holds/{id}/commit` with the amount really used.
async fn commit(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(raw): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let account = account_of(&state, peer, &headers).await?;
    let id = hold_id(&raw)?;
    let body: CommitBody = parse(&body)?;
    let balance = ledger::commit(&state.billing, account, id, body.amount)
        .await
        .map_err(|err| usage_error(&state, err))?;
    Ok(ok(balance_json(&balance)))
}

/// `DELETE /api/v1/usage/holds/{id}`: gives the units back.
async fn release(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(raw): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let account = account_of(&state, peer, &headers).await?;
    let id = hold_id(&raw)?;
    ledger::release(&state.billing, account, id).await?;
    Ok(ok(json!({ "released": true, "hold_id": raw })))
}
