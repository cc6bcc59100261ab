//! The HTTP front of `/v1`: authentication, fault injection, idempotency,
//! parameter decoding, and the dispatch to resource handlers (`resources/`,
//! `billing/`), which are synchronous functions over the locked store through
//! a [`Ctx`] (`context`).

use std::sync::Arc;

use axum::{
    body::Bytes,
    extract::State,
    http::{HeaderMap, Method, StatusCode, Uri},
    response::{IntoResponse, Response},
    routing::any,
    Json, Router,
};
use rand::Rng;
use serde_json::Value;

use crate::{
    billing,
    context::{list_filtered, new_id, Ctx},
    error::ApiError,
    form, objects, params,
    resources::{customers, products},
    store::Store,
    Emulator,
};

pub fn routes() -> Router<Arc<Emulator>> {
    Router::new().route("/v1/{*path}", any(handle))
}

enum Fault {
    Fail(StatusCode),
    Hang(u64),
}

fn draw_fault(store: &Store) -> Option<Fault> {
    let faults = &store.faults;
    if faults.rate <= 0.0 || faults.kinds.is_empty() {
        return None;
    }
    let mut rng = rand::rng();
    if !rng.random_bool(faults.rate.clamp(0.0, 1.0)) {
        return None;
    }
    match faults.kinds[rng.random_range(0..faults.kinds.len())].as_str() {
        "429" => Some(Fault::Fail(StatusCode::TOO_MANY_REQUESTS)),
        "hang" => Some(Fault::Hang(faults.hang_ms)),
        _ => Some(Fault::Fail(StatusCode::INTERNAL_SERVER_ERROR)),
    }
}

fn authenticate(headers: &HeaderMap) -> Result<(), ApiError> {
    let header = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .ok_or_else(|| {
            ApiError::authentication(
                "You did not provide an API key. You need to provide your API key in the Authorization header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY').",
            )
        })?;
    // Stripe takes the key as a Bearer token or as the Basic-auth user name
    // (`curl -u sk_test_…:`).
    let key = match header.strip_prefix("Basic ") {
        Some(encoded) => {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD
                .decode(encoded.trim())
                .ok()
                .and_then(|bytes| String::from_utf8(bytes).ok())
                .map(|user_pass| user_pass.split(':').next().unwrap_or_default().to_owned())
                .unwrap_or_default()
        }
        None => header
            .strip_prefix("Bearer ")
            .unwrap_or(header)
            .trim()
            .to_owned(),
    };
    if key.starts_with("sk_test_") || key.starts_with("rk_test_") {
        Ok(())
    } else {
        let shown: String = key.chars().take(8).collect();
        Err(ApiError::authentication(format!(
            "Invalid API Key provided: {shown}***. The emulator accepts test-mode secret keys (sk_test_… or rk_test_…)."
        )))
    }
}

async fn handle(
    State(emulator): State<Arc<Emulator>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(err) = authenticate(&headers) {
        return err.into_response();
    }
    emulator
        .api_requests
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    // Who called Stripe, and for what (`RUST_LOG=stripe_emulator=debug`): the
    // bench's "no Stripe call on the hot path" is a count, and this names them.
    tracing::debug!(%method, path = uri.path(), "api request");
    let request_id = format!("req_{}", &new_id("x")[2..16]);
    let error = |err: ApiError| {
        // Status and `Stripe-Should-Retry` as the error sets them, the body with its log link.
        let mut response = err.clone().into_response();
        *response.body_mut() = axum::body::Body::from(err.body_for(&request_id).to_string());
        with_request_id(response, &request_id)
    };
    // The emulator speaks one API version: another one asked for is refused,
    // never answered in a shape the client does not expect.
    if let Some(asked) = headers.get("stripe-version").and_then(|v| v.to_str().ok()) {
        if asked != crate::API_VERSION {
            return error(ApiError::unsupported_version(asked, crate::API_VERSION));
        }
    }
    let idempotency_key = headers
        .get("idempotency-key")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
        .filter(|_| method == Method::POST);

    // A key stays taken from arrival to answer (hangs included), as on Stripe.
    struct InFlight<'a>(&'a Emulator, Option<String>);
    impl Drop for InFlight<'_> {
        fn drop(&mut self) {
            if let Some(key) = &self.1 {
                self.0
                    .in_flight
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(key);
            }
        }
    }
    let _in_flight = match &idempotency_key {
        Some(key) => {
            let taken = !emulator
                .in_flight
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(key.clone());
            if taken {
                emulator
                    .key_conflicts
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                return error(ApiError::key_in_use());
            }
            InFlight(&emulator, Some(key.clone()))
        }
        None => InFlight(&emulator, None),
    };

    let (response, hang) = {
        let mut store = emulator.lock();
        let fault = draw_fault(&store);
        if let Some(Fault::Fail(status)) = fault {
            return error(ApiError::injected(status));
        }
        let hang = match fault {
            Some(Fault::Hang(ms)) => Some(ms),
            _ => None,
        };

        // Stripe compares a keyed request's parameters, not their byte order (clients
        // serialise maps in any order).
        let fingerprint = {
            let mut pairs: Vec<(String, String)> = form_urlencoded::parse(&body)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
            pairs.sort();
            format!("{method} {} {pairs:?}", uri.path())
        };
        if let Some(key) = &idempotency_key {
            if let Some(saved) = store.idempotency.get(key) {
                let response = if saved.fingerprint == fingerprint {
                    let mut response = (
                        StatusCode::from_u16(saved.status).unwrap_or(StatusCode::OK),
                        Json(saved.body.clone()),
                    )
                        .into_response();
                    response
                        .headers_mut()
                        .insert("idempotent-replayed", "true".parse().unwrap());
                    response
                } else {
                    return error(ApiError::idempotency_mismatch(key));
                };
                return with_request_id(response, &request_id);
            }
        }

        let raw_params = if method == Method::GET || method == Method::DELETE {
            uri.query().unwrap_or_default().as_bytes().to_vec()
        } else {
            body.to_vec()
        };
        let mut ctx = Ctx::new(&mut store, &emulator);
        ctx.request_id = Some(request_id.clone());
        ctx.idempotency_key = idempotency_key.clone();
        let result = form::parse(&raw_params).and_then(|params| {
            let path = uri.path().trim_start_matches("/v1/").trim_end_matches('/');
            let segments: Vec<&str> = path.split('/').collect();
            let expand = params::expand(&params);
            dispatch(&mut ctx, &method, &segments, &params).map(|mut value| {
                expand_paths(ctx.store, &mut value, &expand);
                value
            })
        });
        let outgoing = std::mem::take(&mut ctx.outgoing);
        let (status, body) = match result {
            Ok(value) => (StatusCode::OK, value),
            Err(err) => (err.status, err.body_for(&request_id)),
        };
        // Stripe stores the outcome of a keyed request, errors included (but not
        // 5xx, which a retry may fix), and replays it for the same key.
        if let Some(key) = idempotency_key {
            if !status.is_server_error() {
                store.idempotency.insert(
                    key,
                    crate::store::IdempotentResponse {
                        fingerprint,
                        status: status.as_u16(),
                        body: body.clone(),
                    },
                );
            }
        }
        drop(store);
        emulator.send(outgoing);
        ((status, Json(body)).into_response(), hang)
    };
    if let Some(ms) = hang {
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
    }
    with_request_id(response, &request_id)
}

fn with_request_id(mut response: Response, request_id: &str) -> Response {
    if let Ok(value) = request_id.parse() {
        response.headers_mut().insert("request-id", value);
    }
    response.headers_mut().insert(
        "stripe-version",
        axum::http::HeaderValue::from_static(crate::API_VERSION),
    );
    response
}

fn dispatch(
    ctx: &mut Ctx<'_>,
    method: &Method,
    segments: &[&str],
    p: &Value,
) -> Result<Value, ApiError> {
    use billing::{checkout, portal, subscriptions};
    match (method.as_str(), segments) {
        ("POST", ["customers"]) => customers::create(ctx, p),
        ("GET", ["customers"]) => customers::list(ctx, p),
        ("GET", ["customers", "search"]) => customers::search(ctx, p),
        ("GET", ["customers", id]) => ctx.fetch(id, "customer", "id"),
        ("POST", ["customers", id]) => customers::update(ctx, id, p),
        ("DELETE", ["customers", id]) => customers::delete(ctx, id),

        ("POST", ["products"]) => products::create_product(ctx, p),
        ("GET", ["products"]) => products::list_products(ctx, p),
        ("GET", ["products", id]) => ctx.fetch(id, "product", "id"),
        ("POST", ["products", id]) => products::update_product(ctx, id, p),

        ("POST", ["prices"]) => products::create_price(ctx, p),
        ("GET", ["prices"]) => products::list_prices(ctx, p),
        ("GET", ["prices", id]) => ctx.fetch(id, "price", "id"),
        ("POST", ["prices", id]) => products::update_price(ctx, id, p),

        ("POST", ["checkout", "sessions"]) => checkout::create(ctx, p),
        ("GET", ["checkout", "sessions"]) => checkout::list(ctx, p),
        ("GET", ["checkout", "sessions", id]) => checkout::retrieve(ctx, id, p),
        ("GET", ["checkout", "sessions", id, "line_items"]) => checkout::line_items(ctx, id, p),
        ("POST", ["checkout", "sessions", id, "expire"]) => checkout::expire(ctx, id, p),

        ("POST", ["billing_portal", "configurations"]) => portal::configuration_create(ctx, p),
        ("GET", ["billing_portal", "configurations"]) => portal::configuration_list(ctx, p),
        ("GET", ["billing_portal", "configurations", id]) => {
            ctx.fetch(id, "billing_portal.configuration", "configuration")
        }
        ("POST", ["billing_portal", "configurations", id]) => {
            portal::configuration_update(ctx, id, p)
        }
        ("POST", ["billing_portal", "sessions"]) => portal::session_create(ctx, p),

        ("GET", ["subscriptions"]) => subscriptions::list(ctx, p),
        ("GET", ["subscriptions", id]) => ctx.fetch(id, "subscription", "id"),
        ("POST", ["subscriptions", id]) => subscriptions::update(ctx, id, p),
        ("DELETE", ["subscriptions", id]) => subscriptions::cancel_now(ctx, id, p),
        ("POST", ["subscriptions", id, "resume"]) => subscriptions::resume(ctx, id, p),
        ("GET", ["subscription_items"]) => subscriptions::items(ctx, p),
        ("GET", ["subscription_items", id]) => ctx.fetch(id, "subscription_item", "id"),

        ("GET", ["invoices"]) => list_filtered(
            ctx,
            p,
            "invoice",
            "/v1/invoices",
            &["customer", "subscription", "status"],
        ),
        ("GET", ["invoices", id]) => ctx.fetch(id, "invoice", "id"),
        ("GET", ["invoice_payments"]) => list_filtered(
            ctx,
            p,
            "invoice_payment",
            "/v1/invoice_payments",
            &["invoice", "status"],
        ),
        ("GET", ["invoice_payments", id]) => ctx.fetch(id, "invoice_payment", "invoice_payment"),
        ("GET", ["payment_intents", id]) => ctx.fetch(id, "payment_intent", "intent"),
        ("GET", ["payment_methods", id]) => ctx.fetch(id, "payment_method", "payment_method"),
        ("GET", ["charges", id]) => ctx.fetch(id, "charge", "charge"),
        ("POST", ["refunds"]) => billing::refunds::create(ctx, p),

        ("POST", ["coupons"]) => billing::coupons::coupon_create(ctx, p),
        ("GET", ["coupons"]) => billing::coupons::coupon_list(ctx, p),
        ("GET", ["coupons", id]) => ctx.fetch(id, "coupon", "coupon"),
        ("POST", ["promotion_codes"]) => billing::coupons::promotion_code_create(ctx, p),
        ("GET", ["promotion_codes"]) => billing::coupons::promotion_code_list(ctx, p),
        ("GET", ["promotion_codes", id]) => ctx.fetch(id, "promotion_code", "promotion_code"),

        ("GET", ["events"]) => list_filtered(ctx, p, "event", "/v1/events", &["type"]),
        ("GET", ["events", id]) => ctx.fetch(id, "event", "id"),

        ("POST", ["webhook_endpoints"]) => crate::webhooks::endpoint_create(ctx, p),
        ("GET", ["webhook_endpoints"]) => {
            list_filtered(ctx, p, "webhook_endpoint", "/v1/webhook_endpoints", &[])
        }
        ("GET", ["webhook_endpoints", id]) => ctx.fetch(id, "webhook_endpoint", "id"),
        ("POST", ["webhook_endpoints", id]) => crate::webhooks::endpoint_update(ctx, id, p),
        ("DELETE", ["webhook_endpoints", id]) => crate::webhooks::endpoint_delete(ctx, id),

        ("POST", ["test_helpers", "test_clocks"]) => billing::clocks::create(ctx, p),
        ("GET", ["test_helpers", "test_clocks"]) => list_filtered(
            ctx,
            p,
            "test_helpers.test_clock",
            "/v1/test_helpers/test_clocks",
            &[],
        ),
        ("GET", ["test_helpers", "test_clocks", id]) => {
            ctx.fetch(id, "test_helpers.test_clock", "test_clock")
        }
        ("POST", ["test_helpers", "test_clocks", id, "advance"]) => {
            billing::clocks::advance(ctx, id, p)
        }
        ("DELETE", ["test_helpers", "test_clocks", id]) => billing::clocks::delete(ctx, id),

        _ => Err(ApiError::not_found_path(&format!(
            "/v1/{}",
            segments.join("/")
        ))),
    }
}

/// Replaces ids with objects along dotted `expand[]` paths (`subscription`,
/// `data.customer`, `items.data.price.product`), as Stripe does.
fn expand_paths(store: &Store, value: &mut Value, paths: &[String]) {
    for path in paths {
        let segments: Vec<&str> = path.split('.').collect();
        expand_one(store, value, &segments);
    }
}

fn expand_one(store: &Store, value: &mut Value, segments: &[&str]) {
    let Some((first, rest)) = segments.split_first() else {
        return;
    };
    if value["object"] == "list" || value["object"] == "search_result" {
        if *first == "data" {
            if let Some(items) = value["data"].as_array_mut() {
                for item in items {
                    expand_one(store, item, rest);
                }
            }
        }
        return;
    }
    // Checkout sessions only include line items when asked to.
    if value["object"] == "checkout.session" && *first == "line_items" {
        if let Some(id) = value["id"].as_str() {
            let items = billing::checkout::line_item_list(store, id);
            value["line_items"] = items;
            expand_one(store, &mut value["line_items"], rest);
        }
        return;
    }
    let Some(field) = value.get_mut(*first) else {
        return;
    };
    if let Some(id) = field.as_str() {
        if let Some(object) = store.get(id) {
            let mut object = object.clone();
            objects::strip_private(&mut object);
            *field = object;
        }
    }
    if !rest.is_empty() {
        expand_one(store, field, rest);
    }
}
