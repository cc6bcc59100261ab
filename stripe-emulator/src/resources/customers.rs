//! `/v1/customers`: create, retrieve, update, delete, list by email, search.

use serde_json::{json, Value};

use crate::{
    billing,
    context::{list_filtered, new_id, Ctx},
    error::ApiError,
    form, objects, params, str_of,
};

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

pub fn create(ctx: &mut Ctx<'_>, p: &Value) -> Result<Value, ApiError> {
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

pub fn update(ctx: &mut Ctx<'_>, id: &str, p: &Value) -> Result<Value, ApiError> {
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

pub fn delete(ctx: &mut Ctx<'_>, id: &str) -> Result<Value, ApiError> {
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

pub fn list(ctx: &Ctx<'_>, p: &Value) -> Result<Value, ApiError> {
    list_filtered(
        ctx,
        p,
        "customer",
        "/v1/customers",
        &["email", "test_clock"],
    )
}

/// Supports the query the app needs: `email:'someone@example.com'`.
pub fn search(ctx: &Ctx<'_>, p: &Value) -> Result<Value, ApiError> {
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
