//! `/v1`: authentication, fault injection, idempotency, parameter decoding and the
//! resource handlers. Handlers are synchronous functions over the locked store.

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
use serde_json::{json, Value};

use crate::{
    billing, error::ApiError, form, objects, params, store::Store, str_of, webhooks::Outgoing,
    Emulator,
};

pub fn routes() -> Router<Arc<Emulator>> {
    Router::new().route("/v1/{*path}", any(handle))
}

/// What one request (API call or hosted-page action) is doing to the account.
pub struct Ctx<'a> {
    pub store: &'a mut Store,
    pub emulator: &'a Emulator,
    pub request_id: Option<String>,
    pub idempotency_key: Option<String>,
    pub outgoing: Vec<Outgoing>,
}

impl<'a> Ctx<'a> {
    pub fn new(store: &'a mut Store, emulator: &'a Emulator) -> Self {
        Self {
            store,
            emulator,
            request_id: None,
            idempotency_key: None,
            outgoing: Vec::new(),
        }
    }

    /// The account's time: the wall clock plus any "advance time" offset.
    pub fn now(&self) -> i64 {
        wall_clock() + self.store.time_offset
    }

    /// Time as seen by a customer: its test clock's frozen time if it has one.
    pub fn now_for_customer(&self, customer: &str) -> i64 {
        self.store
            .get(customer)
            .and_then(|c| str_of(c, "test_clock"))
            .and_then(|clock| self.store.get(clock))
            .and_then(|clock| clock["frozen_time"].as_i64())
            .unwrap_or_else(|| self.now())
    }

    /// Records an event and queues it for every matching endpoint.
    pub fn emit(&mut self, kind: &str, object: &Value, previous: Option<Value>) {
        let id = new_id("evt");
        let created = match str_of(object, "customer").or_else(|| {
            (object["object"] == "customer")
                .then(|| str_of(object, "id"))
                .flatten()
        }) {
            Some(customer) => self.now_for_customer(customer),
            None => self.now(),
        };
        let mut snapshot = object.clone();
        objects::strip_private(&mut snapshot);
        let request = json!({"id": self.request_id, "idempotency_key": self.idempotency_key});
        let event = objects::event(&id, created, kind, snapshot, previous, request);
        self.store.insert(event.clone());
        self.outgoing.extend(crate::webhooks::route(
            self.store,
            &self.emulator.config,
            &event,
        ));
    }

    /// Replaces a stored object through `change` and emits `kind` with the
    /// top-level fields that changed as `previous_attributes`.
    pub fn update(
        &mut self,
        id: &str,
        kind: Option<&str>,
        change: impl FnOnce(&mut Value),
    ) -> Result<Value, ApiError> {
        let before = self
            .store
            .get(id)
            .cloned()
            .ok_or_else(|| ApiError::resource_missing("object", id, "id"))?;
        let mut after = before.clone();
        change(&mut after);
        self.store.insert(after.clone());
        if let Some(kind) = kind {
            let previous = previous_attributes(&before, &after);
            if previous.as_object().is_some_and(|p| !p.is_empty()) {
                self.emit(kind, &after, Some(previous));
            }
        }
        Ok(after)
    }

    pub fn fetch(&self, id: &str, kind: &str, param: &str) -> Result<Value, ApiError> {
        self.store
            .get(id)
            .filter(|object| object["object"] == kind)
            .cloned()
            .ok_or_else(|| ApiError::resource_missing(&kind.replace(['.', '_'], " "), id, param))
    }
}

fn previous_attributes(before: &Value, after: &Value) -> Value {
    let (Some(before), Some(after)) = (before.as_object(), after.as_object()) else {
        return json!({});
    };
    let mut previous = serde_json::Map::new();
    for (key, old) in before {
        if !key.starts_with("x_") && after.get(key) != Some(old) {
            previous.insert(key.clone(), old.clone());
        }
    }
    Value::Object(previous)
}

pub fn wall_clock() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

/// Stripe-style ids: a type prefix and 24 random base-62 characters.
pub fn new_id(prefix: &str) -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut rng = rand::rng();
    let tail: String = (0..24)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect();
    format!("{prefix}_{tail}")
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
    let request_id = format!("req_{}", &new_id("x")[2..16]);
    let idempotency_key = headers
        .get("idempotency-key")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
        .filter(|_| method == Method::POST);

    let (response, hang) = {
        let mut store = emulator.lock();
        let fault = draw_fault(&store);
        if let Some(Fault::Fail(status)) = fault {
            return with_request_id(ApiError::injected(status).into_response(), &request_id);
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
                    ApiError::idempotency_mismatch(key).into_response()
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
            Err(err) => (err.status, err.body()),
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
        ("POST", ["customers"]) => customers_create(ctx, p),
        ("GET", ["customers"]) => customers_list(ctx, p),
        ("GET", ["customers", "search"]) => customers_search(ctx, p),
        ("GET", ["customers", id]) => ctx.fetch(id, "customer", "id"),
        ("POST", ["customers", id]) => customers_update(ctx, id, p),
        ("DELETE", ["customers", id]) => customers_delete(ctx, id),

        ("POST", ["products"]) => products_create(ctx, p),
        ("GET", ["products"]) => products_list(ctx, p),
        ("GET", ["products", id]) => ctx.fetch(id, "product", "id"),
        ("POST", ["products", id]) => products_update(ctx, id, p),

        ("POST", ["prices"]) => prices_create(ctx, p),
        ("GET", ["prices"]) => prices_list(ctx, p),
        ("GET", ["prices", id]) => ctx.fetch(id, "price", "id"),
        ("POST", ["prices", id]) => prices_update(ctx, id, p),

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

/// A Stripe list response over `kind`, filtered by equality on `filters` and
/// paginated with `limit` / `starting_after`.
pub fn list_filtered(
    ctx: &Ctx<'_>,
    p: &Value,
    kind: &str,
    url: &str,
    filters: &[&str],
) -> Result<Value, ApiError> {
    let mut allowed: Vec<&str> = vec!["limit", "starting_after", "ending_before", "expand.[]"];
    allowed.extend_from_slice(filters);
    form::check_allowed(p, &allowed)?;
    let items: Vec<Value> = ctx
        .store
        .list(kind)
        .filter(|object| {
            filters.iter().all(|f| {
                params::string(p, f).is_none_or(|want| object_field_matches(object, f, want))
            })
        })
        .cloned()
        .collect();
    paginate(items, p, url)
}

fn object_field_matches(object: &Value, field: &str, want: &str) -> bool {
    match (object["object"].as_str(), field) {
        // Since 2025-03-31 an invoice names its subscription under `parent`.
        (Some("invoice"), "subscription") => {
            object["parent"]["subscription_details"]["subscription"] == want
        }
        _ => object[field] == want,
    }
}

pub fn paginate(items: Vec<Value>, p: &Value, url: &str) -> Result<Value, ApiError> {
    let limit = params::integer(p, "limit", "limit")?.unwrap_or(10);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::invalid_parameter(
            "limit",
            "This value must be between 1 and 100.",
        ));
    }
    let start = match params::string(p, "starting_after") {
        Some(after) => items
            .iter()
            .position(|item| item["id"] == after)
            .map(|i| i + 1)
            .ok_or_else(|| ApiError::resource_missing("object", after, "starting_after"))?,
        None => 0,
    };
    let page: Vec<Value> = items
        .iter()
        .skip(start)
        .take(limit as usize)
        .cloned()
        .collect();
    let has_more = items.len() > start + page.len();
    Ok(objects::list(url, page, has_more))
}

/// Replaces ids with objects along dotted `expand[]` paths (`subscription`,
/// `data.customer`, `items.data.price.product`), as Stripe does.
pub fn expand_paths(store: &Store, value: &mut Value, paths: &[String]) {
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

// ---------------------------------------------------------------- customers

const CUSTOMER_FIELDS: [&str; 9] = [
    "email",
    "name",
    "description",
    "phone",
    "metadata",
    "metadata.*",
    "expand.[]",
    "invoice_settings.default_payment_method",
    "preferred_locales.[]",
];

fn customers_create(ctx: &mut Ctx<'_>, p: &Value) -> Result<Value, ApiError> {
    let mut allowed = CUSTOMER_FIELDS.to_vec();
    allowed.push("test_clock");
    form::check_allowed(p, &allowed)?;
    let test_clock = params::string(p, "test_clock");
    if let Some(clock) = test_clock {
        ctx.fetch(clock, "test_helpers.test_clock", "test_clock")?;
    }
    let id = new_id("cus");
    let now = match test_clock.and_then(|clock| ctx.store.get(clock)) {
        Some(clock) => clock["frozen_time"].as_i64().unwrap_or_else(|| ctx.now()),
        None => ctx.now(),
    };
    let mut customer = objects::customer(
        &id,
        now,
        params::string(p, "email"),
        params::string(p, "name"),
        params::metadata(p),
        test_clock,
    );
    customer["description"] = json!(params::string(p, "description"));
    customer["phone"] = json!(params::string(p, "phone"));
    ctx.store.insert(customer.clone());
    ctx.emit("customer.created", &customer, None);
    Ok(customer)
}

fn customers_update(ctx: &mut Ctx<'_>, id: &str, p: &Value) -> Result<Value, ApiError> {
    form::check_allowed(p, &CUSTOMER_FIELDS)?;
    ctx.fetch(id, "customer", "id")?;
    if let Some(pm) = p["invoice_settings"]["default_payment_method"].as_str() {
        ctx.fetch(
            pm,
            "payment_method",
            "invoice_settings[default_payment_method]",
        )?;
    }
    ctx.update(id, Some("customer.updated"), |customer| {
        for field in ["email", "name", "description", "phone"] {
            if let Some(value) = params::string(p, field) {
                customer[field] = if value.is_empty() {
                    Value::Null
                } else {
                    json!(value)
                };
            }
        }
        customer["metadata"] = params::merge_metadata(&customer["metadata"], p);
        if let Some(pm) = p["invoice_settings"]["default_payment_method"].as_str() {
            customer["invoice_settings"]["default_payment_method"] = json!(pm);
        }
    })
}

fn customers_delete(ctx: &mut Ctx<'_>, id: &str) -> Result<Value, ApiError> {
    let customer = ctx.fetch(id, "customer", "id")?;
    // Deleting a customer cancels its subscriptions immediately, as on Stripe.
    let subscriptions: Vec<String> = ctx
        .store
        .list("subscription")
        .filter(|s| {
            s["customer"] == id && s["status"] != "canceled" && s["status"] != "incomplete_expired"
        })
        .filter_map(|s| str_of(s, "id").map(str::to_owned))
        .collect();
    for subscription in subscriptions {
        billing::subscriptions::end_now(ctx, &subscription, "cancellation_requested")?;
    }
    ctx.store.remove(id);
    ctx.emit("customer.deleted", &customer, None);
    Ok(json!({"id": id, "object": "customer", "deleted": true}))
}

fn customers_list(ctx: &Ctx<'_>, p: &Value) -> Result<Value, ApiError> {
    list_filtered(
        ctx,
        p,
        "customer",
        "/v1/customers",
        &["email", "test_clock"],
    )
}

/// Supports the query the app needs: `email:'someone@example.com'`.
fn customers_search(ctx: &Ctx<'_>, p: &Value) -> Result<Value, ApiError> {
    form::check_allowed(p, &["query", "limit", "page", "expand.[]"])?;
    let query = params::required(p, "query")?;
    let email = query
        .trim()
        .strip_prefix("email:")
        .map(|rest| rest.trim().trim_matches(|c| c == '\'' || c == '"'))
        .ok_or_else(|| {
            ApiError::invalid_parameter(
                "query",
                "The emulator's customer search supports `email:'…'` queries only.",
            )
        })?;
    let data: Vec<Value> = ctx
        .store
        .list("customer")
        .filter(|c| c["email"] == email)
        .cloned()
        .collect();
    Ok(
        json!({"object": "search_result", "data": data, "has_more": false, "next_page": null, "url": "/v1/customers/search", "total_count": null}),
    )
}

// ---------------------------------------------------------------- products

fn products_create(ctx: &mut Ctx<'_>, p: &Value) -> Result<Value, ApiError> {
    form::check_allowed(
        p,
        &[
            "id",
            "name",
            "description",
            "metadata",
            "metadata.*",
            "active",
            "expand.[]",
            "tax_code",
            "unit_label",
            "url",
        ],
    )?;
    let name = params::required(p, "name")?;
    let id = match params::string(p, "id") {
        Some(id) if ctx.store.get(id).is_some() => {
            return Err(ApiError::invalid_parameter(
                "id",
                format!("Product already exists: {id}"),
            ));
        }
        Some(id) => id.to_owned(),
        None => new_id("prod"),
    };
    let product = objects::product(
        &id,
        ctx.now(),
        name,
        params::string(p, "description"),
        params::metadata(p),
        params::boolean(p, "active")?.unwrap_or(true),
    );
    ctx.store.insert(product.clone());
    ctx.emit("product.created", &product, None);
    Ok(product)
}

fn products_update(ctx: &mut Ctx<'_>, id: &str, p: &Value) -> Result<Value, ApiError> {
    form::check_allowed(
        p,
        &[
            "name",
            "description",
            "metadata",
            "metadata.*",
            "active",
            "default_price",
            "expand.[]",
        ],
    )?;
    ctx.fetch(id, "product", "id")?;
    if let Some(price) = params::string(p, "default_price") {
        ctx.fetch(price, "price", "default_price")?;
    }
    let active = params::boolean(p, "active")?;
    let now = ctx.now();
    ctx.update(id, Some("product.updated"), |product| {
        if let Some(name) = params::string(p, "name") {
            product["name"] = json!(name);
        }
        if let Some(description) = params::string(p, "description") {
            product["description"] = if description.is_empty() {
                Value::Null
            } else {
                json!(description)
            };
        }
        if let Some(active) = active {
            product["active"] = json!(active);
        }
        if let Some(price) = params::string(p, "default_price") {
            product["default_price"] = json!(price);
        }
        product["metadata"] = params::merge_metadata(&product["metadata"], p);
        product["updated"] = json!(now);
    })
}

fn products_list(ctx: &Ctx<'_>, p: &Value) -> Result<Value, ApiError> {
    let mut q = p.clone();
    let active = params::boolean(p, "active")?;
    if let Some(map) = q.as_object_mut() {
        map.remove("active");
    }
    let mut list = list_filtered(ctx, &q, "product", "/v1/products", &[])?;
    if let (Some(active), Some(data)) = (active, list["data"].as_array_mut()) {
        data.retain(|product| product["active"] == active);
    }
    Ok(list)
}

// ---------------------------------------------------------------- prices

fn take_lookup_key(
    ctx: &mut Ctx<'_>,
    lookup_key: &str,
    transfer: bool,
    except: Option<&str>,
) -> Result<(), ApiError> {
    let holder = ctx
        .store
        .list("price")
        .find(|price| {
            price["lookup_key"] == lookup_key
                && Some(price["id"].as_str().unwrap_or_default()) != except
        })
        .and_then(|price| str_of(price, "id").map(str::to_owned));
    match holder {
        None => Ok(()),
        Some(holder) if transfer => {
            ctx.update(&holder, Some("price.updated"), |price| price["lookup_key"] = Value::Null)?;
            Ok(())
        }
        Some(holder) => Err(ApiError::invalid_parameter(
            "lookup_key",
            format!("A price ({holder}) already uses that lookup key. Pass transfer_lookup_key=true to move it."),
        )),
    }
}

fn prices_create(ctx: &mut Ctx<'_>, p: &Value) -> Result<Value, ApiError> {
    form::check_allowed(
        p,
        &[
            "currency",
            "unit_amount",
            "product",
            "product_data.name",
            "product_data.metadata.*",
            "recurring.interval",
            "recurring.interval_count",
            "lookup_key",
            "transfer_lookup_key",
            "nickname",
            "metadata",
            "metadata.*",
            "active",
            "expand.[]",
            "tax_behavior",
            "billing_scheme",
        ],
    )?;
    let currency = params::required(p, "currency")?.to_lowercase();
    let unit_amount = params::integer(p, "unit_amount", "unit_amount")?
        .ok_or_else(|| ApiError::missing_parameter("unit_amount"))?;
    if unit_amount < 0 {
        return Err(ApiError::invalid_parameter(
            "unit_amount",
            "This value must be greater than or equal to 0.",
        ));
    }
    let product = match (
        params::string(p, "product"),
        p["product_data"]["name"].as_str(),
    ) {
        (Some(product), _) => {
            ctx.fetch(product, "product", "product")?;
            product.to_owned()
        }
        (None, Some(name)) => {
            let id = new_id("prod");
            let product = objects::product(
                &id,
                ctx.now(),
                name,
                None,
                p["product_data"]["metadata"]
                    .clone()
                    .as_object()
                    .map_or(json!({}), |m| json!(m)),
                true,
            );
            ctx.store.insert(product.clone());
            ctx.emit("product.created", &product, None);
            id
        }
        (None, None) => return Err(ApiError::missing_parameter("product")),
    };
    let interval = match p["recurring"]["interval"].as_str() {
        None => None,
        Some(interval @ ("day" | "week" | "month" | "year")) => {
            let count = params::integer(&p["recurring"], "interval_count", "recurring[interval_count]")?.unwrap_or(1);
            Some((interval, count))
        }
        Some(other) => return Err(ApiError::invalid_parameter("recurring[interval]", format!("Invalid recurring[interval]: must be one of day, week, month, or year (got {other})"))),
    };
    let lookup_key = params::string(p, "lookup_key");
    if let Some(key) = lookup_key {
        take_lookup_key(
            ctx,
            key,
            params::boolean(p, "transfer_lookup_key")?.unwrap_or(false),
            None,
        )?;
    }
    let id = new_id("price");
    let price = objects::price(objects::PriceSpec {
        id: &id,
        now: ctx.now(),
        product: &product,
        currency: &currency,
        unit_amount,
        interval,
        lookup_key,
        nickname: params::string(p, "nickname"),
        metadata: params::metadata(p),
        active: params::boolean(p, "active")?.unwrap_or(true),
    });
    ctx.store.insert(price.clone());
    ctx.emit("price.created", &price, None);
    Ok(price)
}

fn prices_update(ctx: &mut Ctx<'_>, id: &str, p: &Value) -> Result<Value, ApiError> {
    form::check_allowed(
        p,
        &[
            "active",
            "lookup_key",
            "transfer_lookup_key",
            "nickname",
            "metadata",
            "metadata.*",
            "expand.[]",
            "tax_behavior",
        ],
    )?;
    ctx.fetch(id, "price", "id")?;
    let lookup_key = params::string(p, "lookup_key");
    if let Some(key) = lookup_key.filter(|key| !key.is_empty()) {
        take_lookup_key(
            ctx,
            key,
            params::boolean(p, "transfer_lookup_key")?.unwrap_or(false),
            Some(id),
        )?;
    }
    let active = params::boolean(p, "active")?;
    ctx.update(id, Some("price.updated"), |price| {
        if let Some(active) = active {
            price["active"] = json!(active);
        }
        if let Some(key) = lookup_key {
            price["lookup_key"] = if key.is_empty() {
                Value::Null
            } else {
                json!(key)
            };
        }
        if let Some(nickname) = params::string(p, "nickname") {
            price["nickname"] = json!(nickname);
        }
        price["metadata"] = params::merge_metadata(&price["metadata"], p);
    })
}

fn prices_list(ctx: &Ctx<'_>, p: &Value) -> Result<Value, ApiError> {
    form::check_allowed(
        p,
        &[
            "limit",
            "starting_after",
            "ending_before",
            "expand.[]",
            "active",
            "product",
            "type",
            "currency",
            "lookup_keys.[]",
        ],
    )?;
    let active = params::boolean(p, "active")?;
    let lookup_keys: Option<Vec<&str>> = p["lookup_keys"]
        .as_array()
        .map(|keys| keys.iter().filter_map(Value::as_str).collect());
    let items: Vec<Value> = ctx
        .store
        .list("price")
        .filter(|price| active.is_none_or(|a| price["active"] == a))
        .filter(|price| params::string(p, "product").is_none_or(|want| price["product"] == want))
        .filter(|price| params::string(p, "type").is_none_or(|want| price["type"] == want))
        .filter(|price| params::string(p, "currency").is_none_or(|want| price["currency"] == want))
        .filter(|price| {
            lookup_keys.as_ref().is_none_or(|keys| {
                price["lookup_key"]
                    .as_str()
                    .is_some_and(|key| keys.contains(&key))
            })
        })
        .cloned()
        .collect();
    paginate(items, p, "/v1/prices")
}
