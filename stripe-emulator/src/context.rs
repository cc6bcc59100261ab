//! What a handler works with: the request's context over the locked store
//! ([`Ctx`]: the account, the events it emits), Stripe-style ids and clocks,
//! and the list, pagination and `expand[]` rules every resource shares.

use rand::Rng;
use serde_json::{json, Value};

use crate::{
    error::ApiError, form, objects, params, store::Store, str_of, webhooks::Outgoing, Emulator,
};

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
