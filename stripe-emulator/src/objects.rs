//! Builders for the Stripe objects the emulator returns and sends.
//!
//! Each starts from Stripe's own example object (`templates.json`, taken from
//! stripe/openapi `fixtures3.json`), so every field of the current API shape is
//! present, then sets what this emulator knows and resets the example's filler
//! values (nested sample objects, random numbers) to what an object in this state
//! would hold. `tests/shapes.rs` checks the results against async-stripe's types and
//! the OpenAPI spec's required fields.

use std::sync::OnceLock;

use serde_json::{json, Map, Value};

fn templates() -> &'static Map<String, Value> {
    static TEMPLATES: OnceLock<Map<String, Value>> = OnceLock::new();
    TEMPLATES.get_or_init(|| {
        serde_json::from_str(include_str!("templates.json")).expect("templates.json parses")
    })
}

/// Fields the fixtures' examples carry that the pinned API version does not
/// send: gone from the spec (`charge.source`, `invoice.subscription`, an item's
/// legacy `plan`, …), or optional and never null (`charge.radar_options`, …),
/// so absent rather than `null`. Checked against the spec by the scenarios.
const NOT_SENT: &[(&str, &[&str])] = &[
    (
        "charge",
        &["source", "level3", "radar_options", "presentment_details"],
    ),
    ("payment_intent", &["source", "amount_details"]),
    ("refund", &["destination_details"]),
    ("invoice", &["subscription"]),
];

/// Stripe's example object of `kind` with `fields` laid over it (top-level keys replaced).
pub fn build(kind: &str, fields: Value) -> Value {
    let mut object = templates()
        .get(kind)
        .unwrap_or_else(|| panic!("no template for {kind}"))
        .clone();
    if let (Value::Object(target), Value::Object(fields)) = (&mut object, fields) {
        for (key, value) in fields {
            target.insert(key, value);
        }
        for (_, fields) in NOT_SENT.iter().filter(|(k, _)| *k == kind) {
            for field in *fields {
                target.remove(*field);
            }
        }
    }
    object
}

pub fn list(url: &str, data: Vec<Value>, has_more: bool) -> Value {
    json!({ "object": "list", "data": data, "has_more": has_more, "url": url })
}

pub fn customer(
    id: &str,
    now: i64,
    email: Option<&str>,
    name: Option<&str>,
    metadata: Value,
    test_clock: Option<&str>,
) -> Value {
    build(
        "customer",
        json!({
            "id": id, "created": now, "email": email, "name": name, "metadata": metadata,
            "test_clock": test_clock, "discount": null, "shipping": null, "address": null,
            "description": null, "phone": null, "balance": 0, "delinquent": false,
            "invoice_prefix": id.trim_start_matches("cus_").chars().take(8).collect::<String>().to_uppercase(),
            "invoice_settings": {"custom_fields": null, "default_payment_method": null, "footer": null, "rendering_options": null},
            "currency": null, "default_source": null,
        }),
    )
}

pub fn product(
    id: &str,
    now: i64,
    name: &str,
    description: Option<&str>,
    metadata: Value,
    active: bool,
) -> Value {
    build(
        "product",
        json!({
            "id": id, "created": now, "updated": now, "name": name, "description": description,
            "metadata": metadata, "active": active, "default_price": null, "package_dimensions": null,
            "type": "service", "images": [], "marketing_features": [], "shippable": null,
        }),
    )
}

pub struct PriceSpec<'a> {
    pub id: &'a str,
    pub now: i64,
    pub product: &'a str,
    pub currency: &'a str,
    pub unit_amount: i64,
    /// `None` for one-time prices.
    pub interval: Option<(&'a str, i64)>,
    pub lookup_key: Option<&'a str>,
    pub nickname: Option<&'a str>,
    pub metadata: Value,
    pub active: bool,
}

pub fn price(spec: PriceSpec<'_>) -> Value {
    let recurring = spec.interval.map(|(interval, count)| {
        json!({"interval": interval, "interval_count": count, "meter": null, "usage_type": "licensed"})
    });
    build(
        "price",
        json!({
            "id": spec.id, "created": spec.now, "product": spec.product, "currency": spec.currency,
            "unit_amount": spec.unit_amount, "unit_amount_decimal": spec.unit_amount.to_string(),
            "recurring": recurring, "type": if spec.interval.is_some() { "recurring" } else { "one_time" },
            "lookup_key": spec.lookup_key, "nickname": spec.nickname, "metadata": spec.metadata,
            "active": spec.active, "custom_unit_amount": null, "transform_quantity": null,
            "billing_scheme": "per_unit", "tiers_mode": null, "tax_behavior": "unspecified",
        }),
    )
}

/// A Checkout line item (`item`) for `price` (the full price object).
pub fn checkout_line_item(id: &str, price: &Value, quantity: i64, description: &str) -> Value {
    let amount = price["unit_amount"].as_i64().unwrap_or(0) * quantity;
    build(
        "item",
        json!({
            "id": id, "price": price, "quantity": quantity, "description": description,
            "currency": price["currency"], "amount_subtotal": amount, "amount_total": amount,
            "amount_discount": 0, "amount_tax": 0, "adjustable_quantity": null, "metadata": {},
        }),
    )
}

pub fn subscription_item(
    id: &str,
    subscription: &str,
    price: &Value,
    quantity: i64,
    now: i64,
    period: (i64, i64),
) -> Value {
    build(
        "subscription_item",
        json!({
            "id": id, "subscription": subscription, "price": price, "quantity": quantity, "created": now,
            "current_period_start": period.0, "current_period_end": period.1, "billing_thresholds": null,
            "plan": legacy_plan(price), "metadata": {}, "discounts": [], "tax_rates": [],
        }),
    )
}

/// Subscription items still carry the legacy `plan` view of their price: the
/// pinned API version's libraries require it, though the older spec in
/// `stripe-reference/` no longer lists it.
fn legacy_plan(price: &Value) -> Value {
    json!({
        "id": price["id"], "object": "plan", "active": price["active"], "amount": price["unit_amount"],
        "amount_decimal": price["unit_amount_decimal"], "billing_scheme": "per_unit", "created": price["created"],
        "currency": price["currency"], "interval": price["recurring"]["interval"],
        "interval_count": price["recurring"]["interval_count"], "livemode": false, "metadata": price["metadata"],
        "meter": null, "nickname": price["nickname"], "product": price["product"], "tiers_mode": null,
        "transform_usage": null, "trial_period_days": null, "usage_type": "licensed",
    })
}

pub fn subscription_shell(
    id: &str,
    customer: &str,
    now: i64,
    currency: &str,
    metadata: Value,
    test_clock: Option<&str>,
) -> Value {
    build(
        "subscription",
        json!({
            "id": id, "customer": customer, "created": now, "start_date": now, "currency": currency,
            "metadata": metadata, "test_clock": test_clock, "status": "incomplete",
            "billing_cycle_anchor": now, "billing_cycle_anchor_config": null,
            "billing_mode": {"flexible": null, "type": "classic"}, "billing_schedules": [],
            "billing_thresholds": null, "cancel_at": null, "cancel_at_period_end": false, "canceled_at": null,
            "cancellation_details": {"comment": null, "feedback": null, "reason": null},
            "ended_at": null, "latest_invoice": null, "default_payment_method": null,
            "next_pending_invoice_item_invoice": null, "pause_collection": null,
            "pending_invoice_item_interval": null, "pending_setup_intent": null, "pending_update": null,
            "transfer_data": null, "trial_end": null, "trial_start": null, "managed_payments": null,
            "payment_settings": {"payment_method_options": null, "payment_method_types": null, "save_default_payment_method": "off"},
            "trial_settings": {"end_behavior": {"missing_payment_method": "create_invoice"}},
            "items": list(&format!("/v1/subscription_items?subscription={id}"), vec![], false),
        }),
    )
}

pub struct InvoiceSpec<'a> {
    pub id: &'a str,
    pub now: i64,
    pub customer: &'a Value,
    pub subscription: Option<&'a str>,
    pub billing_reason: &'a str,
    pub currency: &'a str,
    pub lines: Vec<Value>,
    pub period: (i64, i64),
    pub number: String,
    pub hosted_base: &'a str,
    pub test_clock: Option<&'a str>,
}

/// The payment of an invoice by a PaymentIntent (`GET /v1/invoice_payments`):
/// since API 2025-03-31 the only link from an invoice to what paid it.
pub fn invoice_payment(
    id: &str,
    invoice: &str,
    payment_intent: &str,
    amount: i64,
    currency: &str,
    now: i64,
) -> Value {
    build(
        "invoice_payment",
        json!({
            "id": id, "invoice": invoice, "created": now, "currency": currency,
            "amount_paid": amount, "amount_requested": amount, "is_default": true,
            "payment": {"type": "payment_intent", "payment_intent": payment_intent},
            "status": "paid", "status_transitions": {"canceled_at": null, "paid_at": now},
        }),
    )
}

pub fn invoice(spec: InvoiceSpec<'_>) -> Value {
    let total: i64 = spec
        .lines
        .iter()
        .map(|line| line["amount"].as_i64().unwrap_or(0))
        .sum();
    let parent = spec.subscription.map(|subscription| {
        json!({"type": "subscription_details", "quote_details": null,
               "subscription_details": {"metadata": {}, "subscription": subscription}})
    });
    build(
        "invoice",
        json!({
            "id": spec.id, "created": spec.now, "customer": spec.customer["id"],
            "customer_email": spec.customer["email"], "customer_name": spec.customer["name"],
            "customer_address": null, "customer_shipping": null, "billing_reason": spec.billing_reason,
            "currency": spec.currency, "amount_due": total, "amount_paid": 0, "amount_remaining": total,
            "amount_overpaid": 0, "amount_paid_off_stripe": 0, "subtotal": total, "subtotal_excluding_tax": total, "total": total,
            "total_excluding_tax": total, "attempt_count": 0, "attempted": false, "auto_advance": true,
            "status": "draft", "due_date": null, "effective_at": null, "ending_balance": null,
            "from_invoice": null, "last_finalization_error": null, "next_payment_attempt": null,
            "number": null, "parent": parent, "test_clock": spec.test_clock,
            "period_start": spec.period.0, "period_end": spec.period.1, "shipping_cost": null,
            "shipping_details": null, "webhooks_delivered_at": null, "payment_settings":
                {"default_mandate": null, "payment_method_options": null, "payment_method_types": null},
            "status_transitions": {"finalized_at": null, "marked_uncollectible_at": null, "paid_at": null, "voided_at": null},
            "hosted_invoice_url": null, "invoice_pdf": null, "receipt_number": null,
            "account_name": "Stripe Emulator", "rendering": null,
            "lines": list(&format!("/v1/invoices/{}/lines", spec.id), spec.lines, false),
            "x_number": spec.number, "x_hosted_base": spec.hosted_base,
        }),
    )
}

/// Finalizes a draft invoice: number and hosted URLs appear, as on Stripe.
pub fn finalize_invoice(invoice: &mut Value, now: i64) {
    let base = invoice["x_hosted_base"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let id = invoice["id"].as_str().unwrap_or_default().to_owned();
    invoice["number"] = invoice["x_number"].clone();
    invoice["status"] = json!("open");
    invoice["effective_at"] = json!(now);
    invoice["status_transitions"]["finalized_at"] = json!(now);
    invoice["hosted_invoice_url"] = json!(format!("{base}invoices/{id}"));
    invoice["invoice_pdf"] = json!(format!("{base}invoices/{id}/pdf"));
    strip_private(invoice);
}

/// Private helper fields (prefixed `x_`) never leave the emulator.
pub fn strip_private(object: &mut Value) {
    if let Value::Object(map) = object {
        map.retain(|key, _| !key.starts_with("x_"));
    }
}

pub struct LineSpec<'a> {
    pub id: &'a str,
    pub invoice: &'a str,
    pub price: &'a Value,
    pub quantity: i64,
    pub amount: i64,
    pub description: String,
    pub period: (i64, i64),
    pub subscription: Option<&'a str>,
    pub subscription_item: Option<&'a str>,
    pub proration: bool,
}

pub fn invoice_line(spec: LineSpec<'_>) -> Value {
    let parent = match (spec.subscription, spec.subscription_item) {
        (Some(subscription), Some(item)) => json!({
            "type": "subscription_item_details", "invoice_item_details": null,
            "subscription_item_details": {"invoice_item": null, "proration": spec.proration,
                "proration_details": {"credited_items": null}, "subscription": subscription, "subscription_item": item}
        }),
        _ => Value::Null,
    };
    json!({
        "id": spec.id, "object": "line_item", "invoice": spec.invoice, "amount": spec.amount,
        "currency": spec.price["currency"], "description": spec.description, "discount_amounts": [],
        "discountable": true, "discounts": [], "livemode": false, "metadata": {}, "parent": parent,
        "period": {"start": spec.period.0, "end": spec.period.1}, "pretax_credit_amounts": [],
        "pricing": {"type": "price_details", "price_details": {"price": spec.price["id"], "product": spec.price["product"]},
                    "unit_amount_decimal": spec.price["unit_amount_decimal"]},
        "quantity": spec.quantity, "quantity_decimal": spec.quantity.to_string(),
        "subtotal": spec.amount, "taxes": [],
    })
}

pub fn payment_intent(
    id: &str,
    now: i64,
    amount: i64,
    currency: &str,
    customer: Option<&str>,
    metadata: Value,
) -> Value {
    build(
        "payment_intent",
        json!({
            "id": id, "created": now, "amount": amount, "currency": currency, "customer": customer,
            "metadata": metadata, "status": "requires_payment_method", "amount_received": 0,
            "automatic_payment_methods": null, "canceled_at": null,
            "client_secret": format!("{id}_secret_emulator"), "last_payment_error": null, "latest_charge": null,
            "managed_payments": null, "next_action": null, "payment_method_configuration_details": null,
            "processing": null, "shipping": null, "transfer_data": null, "payment_method": null,
        }),
    )
}

pub fn payment_method(id: &str, now: i64, customer: Option<&str>, card_number: &str) -> Value {
    let last4: String = card_number
        .chars()
        .rev()
        .take(4)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    json!({
        "id": id, "object": "payment_method", "created": now, "customer": customer, "livemode": false,
        "metadata": {}, "type": "card", "allow_redisplay": "unspecified",
        "billing_details": {"address": null, "email": null, "name": null, "phone": null, "tax_id": null},
        "card": {"brand": "visa", "checks": {"address_line1_check": null, "address_postal_code_check": null, "cvc_check": "pass"},
                 "country": "US", "display_brand": "visa", "exp_month": 12, "exp_year": 2034, "fingerprint": format!("fp{last4}"),
                 "funding": "credit", "generated_from": null, "last4": last4, "networks": {"available": ["visa"], "preferred": null},
                 "regulated_status": "unregulated", "three_d_secure_usage": {"supported": true}, "wallet": null},
    })
}

/// An event as delivered: `request` is `{"id", "idempotency_key"}` of the API call
/// that caused it (both null for hosted-page actions and time controls).
pub fn event(
    id: &str,
    now: i64,
    kind: &str,
    object: Value,
    previous: Option<Value>,
    request: Value,
) -> Value {
    let mut data = json!({ "object": object });
    if let Some(previous) = previous {
        data["previous_attributes"] = previous;
    }
    json!({
        "id": id, "object": "event", "api_version": crate::API_VERSION, "created": now, "data": data,
        "livemode": false, "pending_webhooks": 1, "type": kind, "request": request,
    })
}

pub fn webhook_endpoint(
    id: &str,
    now: i64,
    url: &str,
    enabled_events: Value,
    api_version: Option<&str>,
    description: Option<&str>,
    metadata: Value,
) -> Value {
    build(
        "webhook_endpoint",
        json!({
            "id": id, "created": now, "url": url, "enabled_events": enabled_events, "api_version": api_version,
            "description": description, "metadata": metadata, "status": "enabled", "application": null,
        }),
    )
}

pub fn test_clock(id: &str, now: i64, frozen_time: i64, name: Option<&str>) -> Value {
    build(
        "test_helpers.test_clock",
        json!({
            "id": id, "created": now, "frozen_time": frozen_time, "name": name, "status": "ready",
            "deletes_after": now + 30 * 86_400, "status_details": {},
        }),
    )
}
