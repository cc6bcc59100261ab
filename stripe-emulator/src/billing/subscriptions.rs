//! Subscriptions: start (from Checkout), change, cancel, resume, and the renewal
//! cycle with Smart-Retries-like dunning that time controls drive.

use serde_json::{json, Value};

use super::{add_interval, card_of, charge, price_of, product_name, Charge};
use crate::{
    context::{new_id, paginate, Ctx},
    error::ApiError,
    form, objects, params, str_of,
};

/// Days after the first failed renewal at which payment is retried; after the
/// last retry fails the subscription is canceled (Stripe's default dunning ends
/// the same way).
const RETRY_DAYS: [i64; 3] = [3, 5, 7];

pub struct Start<'a> {
    pub customer: &'a str,
    pub lines: &'a [(Value, i64)],
    pub metadata: Value,
    pub trial_days: Option<i64>,
    pub payment_method: &'a str,
    /// A coupon redeemed at Checkout, applied to as many invoices as it covers.
    pub coupon: Option<Value>,
}

pub struct Started {
    pub subscription: Value,
    pub invoice: Value,
}

fn period_of(sub: &Value) -> (i64, i64) {
    let item = &sub["items"]["data"][0];
    (
        item["current_period_start"].as_i64().unwrap_or(0),
        item["current_period_end"].as_i64().unwrap_or(0),
    )
}

fn interval_of(price: &Value) -> (String, i64) {
    (
        price["recurring"]["interval"]
            .as_str()
            .unwrap_or("month")
            .to_owned(),
        price["recurring"]["interval_count"].as_i64().unwrap_or(1),
    )
}

/// One line of an invoice a plan change makes.
#[derive(Clone, Debug, PartialEq)]
pub struct ChangeLine {
    pub price: Value,
    pub amount: i64,
    pub description: String,
    pub proration: bool,
}

/// What changing a subscription item from `old` (price, quantity) to `new`
/// does, as Stripe does it. The same billing interval keeps the period and
/// prorates the rest of it (added to the next invoice, or invoiced now with
/// `always_invoice`). A different interval (monthly ↔ yearly) resets the
/// billing cycle to now and invoices at once: the new price for the new
/// period, less the unused time of the old one.
#[derive(Clone, Debug, PartialEq)]
pub struct PlanChange {
    pub lines: Vec<ChangeLine>,
    /// The item's period after the change.
    pub period: (i64, i64),
    pub resets_cycle: bool,
    pub invoice_now: bool,
}

impl PlanChange {
    /// What is charged at once (a net credit stays on the customer's balance).
    pub fn due_now(&self) -> i64 {
        if self.invoice_now {
            self.lines.iter().map(|l| l.amount).sum::<i64>().max(0)
        } else {
            0
        }
    }
}

pub fn plan_change(
    old: (&Value, i64),
    new: (&Value, i64),
    period: (i64, i64),
    now: i64,
    proration: &str,
) -> PlanChange {
    let (old_price, old_qty) = old;
    let (new_price, new_qty) = new;
    let (period_start, period_end) = period;
    let old_amount = old_price["unit_amount"].as_i64().unwrap_or(0) * old_qty;
    let new_amount = new_price["unit_amount"].as_i64().unwrap_or(0) * new_qty;
    let remaining = if period_end > now {
        (period_end - now) as f64 / (period_end - period_start).max(1) as f64
    } else {
        0.0
    };
    let name = |price: &Value| price["id"].as_str().unwrap_or_default().to_owned();
    let unused = ChangeLine {
        price: old_price.clone(),
        amount: -((old_amount as f64 * remaining).round() as i64),
        description: format!("Unused time on {}", name(old_price)),
        proration: true,
    };
    let prorate = proration != "none" && remaining > 0.0;
    if interval_of(old_price) != interval_of(new_price) {
        let (interval, count) = interval_of(new_price);
        let mut lines = Vec::new();
        if prorate && old_amount != 0 {
            lines.push(unused);
        }
        lines.push(ChangeLine {
            price: new_price.clone(),
            amount: new_amount,
            description: format!("{new_qty} × {} (from the change)", name(new_price)),
            proration: false,
        });
        return PlanChange {
            lines,
            period: (now, add_interval(now, &interval, count)),
            resets_cycle: true,
            invoice_now: true,
        };
    }
    let mut lines = Vec::new();
    if prorate && old_amount != new_amount {
        lines.push(unused);
        lines.push(ChangeLine {
            price: new_price.clone(),
            amount: (new_amount as f64 * remaining).round() as i64,
            description: format!("Remaining time on {}", name(new_price)),
            proration: true,
        });
    }
    PlanChange {
        invoice_now: proration == "always_invoice" && !lines.is_empty(),
        lines,
        period,
        resets_cycle: false,
    }
}

/// Creates the subscription Checkout paid for: `.created` as `incomplete`, its first
/// invoice paid, then `.updated` to `active` (or `trialing`), as Stripe emits them.
pub fn start(ctx: &mut Ctx<'_>, start: Start<'_>) -> Result<Started, ApiError> {
    let now = ctx.now_for_customer(start.customer);
    let (first_price, _) = start
        .lines
        .first()
        .ok_or_else(|| ApiError::missing_parameter("items"))?;
    let currency = first_price["currency"].as_str().unwrap_or("usd").to_owned();
    let (interval, count) = interval_of(first_price);
    let trial_end = start.trial_days.map(|days| now + days * 86_400);
    let period = (
        now,
        trial_end.unwrap_or_else(|| add_interval(now, &interval, count)),
    );
    let test_clock = ctx
        .store
        .get(start.customer)
        .and_then(|c| str_of(c, "test_clock"))
        .map(str::to_owned);

    let sub_id = new_id("sub");
    let mut sub = objects::subscription_shell(
        &sub_id,
        start.customer,
        now,
        &currency,
        start.metadata,
        test_clock.as_deref(),
    );
    let items: Vec<Value> = start
        .lines
        .iter()
        .map(|(price, quantity)| {
            objects::subscription_item(&new_id("si"), &sub_id, price, *quantity, now, period)
        })
        .collect();
    sub["items"]["data"] = json!(items);
    if let Some(trial_end) = trial_end {
        sub["trial_start"] = json!(now);
        sub["trial_end"] = json!(trial_end);
    }
    // Stripe makes the first invoice with the subscription: `created` already
    // names it.
    let invoice_id = new_id("in");
    sub["latest_invoice"] = json!(invoice_id);
    ctx.store.insert(sub.clone());
    if let Some(coupon) = start.coupon {
        let covered = super::coupons::invoices_covered(&coupon, &interval);
        ctx.store.private(&sub_id)["coupon"] = json!({"coupon": coupon, "remaining": covered});
    }
    ctx.emit("customer.subscription.created", &sub, None);

    let invoice = bill_period(
        ctx,
        &sub_id,
        &invoice_id,
        "subscription_create",
        period,
        trial_end.is_some(),
    )?;
    let invoice = pay_invoice(
        ctx,
        invoice["id"].as_str().unwrap_or_default(),
        start.payment_method,
    )?;
    let paid = invoice["status"] == "paid";
    let status = match (trial_end, paid) {
        (Some(_), _) => "trialing",
        (None, true) => "active",
        (None, false) => "incomplete",
    };
    let pm = start.payment_method.to_owned();
    let subscription = ctx.update(&sub_id, Some("customer.subscription.updated"), |sub| {
        sub["status"] = json!(status);
        sub["default_payment_method"] = json!(pm);
        sub["latest_invoice"] = invoice["id"].clone();
    })?;
    Ok(Started {
        subscription,
        invoice,
    })
}

/// Creates and finalizes the invoice for one period of `sub_id`.
fn bill_period(
    ctx: &mut Ctx<'_>,
    sub_id: &str,
    invoice_id: &str,
    reason: &str,
    period: (i64, i64),
    free: bool,
) -> Result<Value, ApiError> {
    let sub = ctx.fetch(sub_id, "subscription", "subscription")?;
    let mut lines = Vec::new();
    for item in sub["items"]["data"].as_array().cloned().unwrap_or_default() {
        let price = &item["price"];
        let quantity = item["quantity"].as_i64().unwrap_or(1);
        let amount = if free {
            0
        } else {
            price["unit_amount"].as_i64().unwrap_or(0) * quantity
        };
        let name = product_name(ctx, price);
        lines.push(objects::invoice_line(objects::LineSpec {
            id: &new_id("il"),
            invoice: invoice_id,
            price,
            quantity,
            amount,
            description: format!("{quantity} × {name}{}", if free { " (trial)" } else { "" }),
            period,
            subscription: Some(sub_id),
            subscription_item: item["id"].as_str(),
            proration: false,
        }));
    }
    issue_invoice(
        ctx,
        &sub,
        invoice_id,
        reason,
        lines,
        period,
        |ctx, invoice| {
            if !free {
                apply_coupon(ctx, sub_id, invoice);
            }
        },
    )
}

/// Numbers, records and finalizes an invoice of `sub` (`invoice.created`, then
/// `invoice.finalized`); `adjust` may change its amounts before it is recorded.
fn issue_invoice(
    ctx: &mut Ctx<'_>,
    sub: &Value,
    invoice_id: &str,
    reason: &str,
    lines: Vec<Value>,
    period: (i64, i64),
    adjust: impl FnOnce(&mut Ctx<'_>, &mut Value),
) -> Result<Value, ApiError> {
    let customer_id = sub["customer"].as_str().unwrap_or_default().to_owned();
    let customer = ctx.fetch(&customer_id, "customer", "customer")?;
    let now = ctx.now_for_customer(&customer_id);
    ctx.store.invoice_counter += 1;
    let number = format!(
        "{}-{:04}",
        customer["invoice_prefix"].as_str().unwrap_or("EMU"),
        ctx.store.invoice_counter
    );
    let base = ctx.emulator.base_url.clone();
    let mut invoice = objects::invoice(objects::InvoiceSpec {
        id: invoice_id,
        now,
        customer: &customer,
        subscription: sub["id"].as_str(),
        billing_reason: reason,
        currency: sub["currency"].as_str().unwrap_or("usd"),
        lines,
        period,
        number,
        hosted_base: &base,
        test_clock: str_of(sub, "test_clock"),
    });
    adjust(ctx, &mut invoice);
    let mut public = invoice.clone();
    objects::strip_private(&mut public);
    ctx.store.insert(invoice);
    ctx.emit("invoice.created", &public, None);
    let invoice = ctx.update(invoice_id, None, |invoice| {
        objects::finalize_invoice(invoice, now)
    })?;
    ctx.emit("invoice.finalized", &invoice, None);
    Ok(invoice)
}

/// Takes the subscription's coupon off `invoice` while the coupon still covers invoices.
fn apply_coupon(ctx: &mut Ctx<'_>, sub_id: &str, invoice: &mut Value) {
    let entry = ctx.store.private(sub_id)["coupon"].clone();
    if entry.is_null() || entry["remaining"].as_i64() == Some(0) {
        return;
    }
    let total = invoice["total"].as_i64().unwrap_or(0);
    let off = super::coupons::discount(&entry["coupon"], total);
    for key in [
        "amount_due",
        "amount_remaining",
        "total",
        "total_excluding_tax",
    ] {
        invoice[key] = json!(total - off);
    }
    invoice["total_discount_amounts"] = json!([{"amount": off, "discount": new_id("di")}]);
    if let Some(remaining) = entry["remaining"].as_i64() {
        ctx.store.private(sub_id)["coupon"]["remaining"] = json!(remaining - 1);
    }
}

/// Tries to collect an open invoice with `payment_method`. A zero invoice is paid
/// without a charge.
pub fn pay_invoice(
    ctx: &mut Ctx<'_>,
    invoice_id: &str,
    payment_method: &str,
) -> Result<Value, ApiError> {
    let invoice = ctx.fetch(invoice_id, "invoice", "invoice")?;
    let customer = invoice["customer"].as_str().unwrap_or_default().to_owned();
    let now = ctx.now_for_customer(&customer);
    let amount = invoice["amount_due"].as_i64().unwrap_or(0);
    let mut failure = None;
    let mut payment_intent = Value::Null;
    if amount > 0 {
        let card = card_of(ctx, payment_method);
        let (pi, declined) = charge(
            ctx,
            Charge {
                customer: Some(&customer),
                amount,
                currency: invoice["currency"].as_str().unwrap_or("usd"),
                payment_method,
                metadata: json!({}),
                description: Some(format!(
                    "Invoice {}",
                    invoice["number"].as_str().unwrap_or_default()
                )),
            },
            card,
        );
        payment_intent = pi["id"].clone();
        failure = declined;
    }
    let attempts = invoice["attempt_count"].as_i64().unwrap_or(0) + 1;
    ctx.store.private(invoice_id)["payment_intent"] = payment_intent.clone();
    match failure {
        None => {
            // Stripe says `invoice.updated` (with what changed) beside `invoice.paid`.
            let invoice = ctx.update(invoice_id, Some("invoice.updated"), |invoice| {
                invoice["status"] = json!("paid");
                invoice["amount_paid"] = json!(amount);
                invoice["amount_remaining"] = json!(0);
                invoice["attempted"] = json!(true);
                invoice["attempt_count"] = json!(attempts);
                invoice["next_payment_attempt"] = Value::Null;
                invoice["status_transitions"]["paid_at"] = json!(now);
            })?;
            let mut public = invoice.clone();
            objects::strip_private(&mut public);
            if let Some(pi) = payment_intent.as_str() {
                // Stripe records what paid the invoice, and says so first.
                let payment = ctx.store.insert(objects::invoice_payment(
                    &new_id("inpay"),
                    invoice_id,
                    pi,
                    amount,
                    invoice["currency"].as_str().unwrap_or("usd"),
                    now,
                ));
                ctx.emit("invoice_payment.paid", &payment, None);
            }
            ctx.emit("invoice.paid", &public, None);
            ctx.emit("invoice.payment_succeeded", &public, None);
            Ok(public)
        }
        Some(_) => {
            let next = RETRY_DAYS
                .get(attempts as usize - 1)
                .map(|days| now + days * 86_400);
            let invoice = ctx.update(invoice_id, None, |invoice| {
                invoice["attempted"] = json!(true);
                invoice["attempt_count"] = json!(attempts);
                invoice["next_payment_attempt"] = json!(next);
            })?;
            let mut public = invoice.clone();
            objects::strip_private(&mut public);
            ctx.emit("invoice.payment_failed", &public, None);
            Ok(public)
        }
    }
}

pub fn list(ctx: &mut Ctx<'_>, p: &Value) -> Result<Value, ApiError> {
    form::check_allowed(
        p,
        &[
            "limit",
            "starting_after",
            "ending_before",
            "expand.[]",
            "customer",
            "status",
            "price",
            "test_clock",
        ],
    )?;
    let status = params::string(p, "status");
    let items: Vec<Value> = ctx
        .store
        .list("subscription")
        .filter(|s| params::string(p, "customer").is_none_or(|c| s["customer"] == c))
        .filter(|s| params::string(p, "test_clock").is_none_or(|c| s["test_clock"] == c))
        .filter(|s| match status {
            None => s["status"] != "canceled" && s["status"] != "incomplete_expired",
            Some("all") => true,
            Some(status) => s["status"] == status,
        })
        .filter(|s| {
            params::string(p, "price").is_none_or(|price| {
                s["items"]["data"]
                    .as_array()
                    .is_some_and(|items| items.iter().any(|i| i["price"]["id"] == price))
            })
        })
        .cloned()
        .collect();
    paginate(items, p, "/v1/subscriptions")
}

pub fn items(ctx: &mut Ctx<'_>, p: &Value) -> Result<Value, ApiError> {
    form::check_allowed(
        p,
        &[
            "limit",
            "starting_after",
            "ending_before",
            "expand.[]",
            "subscription",
        ],
    )?;
    let sub_id = params::required(p, "subscription")?;
    let sub = ctx.fetch(sub_id, "subscription", "subscription")?;
    paginate(
        sub["items"]["data"].as_array().cloned().unwrap_or_default(),
        p,
        "/v1/subscription_items",
    )
}

const UPDATE_PARAMS: [&str; 12] = [
    "items.[].id",
    "items.[].price",
    "items.[].quantity",
    "items.[].deleted",
    "proration_behavior",
    "cancel_at_period_end",
    "cancel_at",
    "metadata",
    "metadata.*",
    "expand.[]",
    "default_payment_method",
    "cancellation_details.comment",
];

/// Plan change (price/quantity with proration), cancel at period end (or undo it),
/// metadata and default payment method.
pub fn update(ctx: &mut Ctx<'_>, id: &str, p: &Value) -> Result<Value, ApiError> {
    form::check_allowed(p, &UPDATE_PARAMS)?;
    let sub = ctx.fetch(id, "subscription", "id")?;
    if matches!(
        sub["status"].as_str(),
        Some("canceled" | "incomplete_expired")
    ) {
        return Err(ApiError::invalid_request(format!(
            "A canceled subscription can only update its cancellation_details and metadata. ({id})"
        )));
    }
    let proration = params::string(p, "proration_behavior").unwrap_or("create_prorations");
    if !matches!(proration, "create_prorations" | "none" | "always_invoice") {
        return Err(ApiError::invalid_parameter(
            "proration_behavior",
            "Invalid proration_behavior.",
        ));
    }
    if let Some(pm) = params::string(p, "default_payment_method") {
        ctx.fetch(pm, "payment_method", "default_payment_method")?;
    }
    let cancel_at_period_end = params::boolean(p, "cancel_at_period_end")?;
    let customer = sub["customer"].as_str().unwrap_or_default().to_owned();
    let now = ctx.now_for_customer(&customer);
    let (period_start, period_end) = period_of(&sub);

    // Item changes: the app sells one item per subscription; `items[0][id]` names it.
    let mut new_items = sub["items"]["data"].as_array().cloned().unwrap_or_default();
    let mut change_lines: Vec<ChangeLine> = Vec::new();
    let mut invoice_now = false;
    let mut new_period: Option<(i64, i64)> = None;
    if let Some(changes) = p["items"].as_array() {
        for (i, change) in changes.iter().enumerate() {
            let item_id = params::string(change, "id");
            let position = match item_id {
                Some(item_id) => Some(
                    new_items
                        .iter()
                        .position(|item| item["id"] == item_id)
                        .ok_or_else(|| {
                            ApiError::resource_missing(
                                "subscription item",
                                item_id,
                                &format!("items[{i}][id]"),
                            )
                        })?,
                ),
                None => None,
            };
            let quantity = params::integer(change, "quantity", &format!("items[{i}][quantity]"))?;
            let new_price = match params::string(change, "price") {
                Some(price) => Some(price_of(ctx, price, &format!("items[{i}][price]"))?),
                None => None,
            };
            if let Some(price) = &new_price {
                if price["type"] != "recurring" {
                    return Err(ApiError::invalid_parameter(
                        &format!("items[{i}][price]"),
                        "The price specified is not recurring.",
                    ));
                }
            }
            match position {
                Some(pos) => {
                    let old = new_items[pos].clone();
                    let price = new_price.clone().unwrap_or_else(|| old["price"].clone());
                    let qty = quantity.unwrap_or_else(|| old["quantity"].as_i64().unwrap_or(1));
                    let change = plan_change(
                        (&old["price"], old["quantity"].as_i64().unwrap_or(1)),
                        (&price, qty),
                        (period_start, period_end),
                        now,
                        proration,
                    );
                    let mut item = objects::subscription_item(
                        old["id"].as_str().unwrap_or_default(),
                        id,
                        &price,
                        qty,
                        old["created"].as_i64().unwrap_or(now),
                        change.period,
                    );
                    item["metadata"] = old["metadata"].clone();
                    new_items[pos] = item;
                    if change.resets_cycle {
                        new_period = Some(change.period);
                    }
                    invoice_now |= change.invoice_now;
                    change_lines.extend(change.lines);
                }
                None => {
                    let price = new_price.ok_or_else(|| {
                        ApiError::missing_parameter(&format!("items[{i}][price]"))
                    })?;
                    new_items.push(objects::subscription_item(
                        &new_id("si"),
                        id,
                        &price,
                        quantity.unwrap_or(1),
                        now,
                        (period_start, period_end),
                    ));
                }
            }
        }
    }

    let metadata = params::merge_metadata(&sub["metadata"], p);
    let pm = params::string(p, "default_payment_method").map(str::to_owned);
    let updated = ctx.update(id, Some("customer.subscription.updated"), |sub| {
        sub["items"]["data"] = json!(new_items);
        sub["metadata"] = metadata;
        if let Some((start, _)) = new_period {
            sub["billing_cycle_anchor"] = json!(start);
        }
        if let Some(pm) = pm {
            sub["default_payment_method"] = json!(pm);
        }
        match cancel_at_period_end {
            Some(true) => {
                sub["cancel_at_period_end"] = json!(true);
                sub["cancel_at"] = json!(period_end);
                sub["canceled_at"] = json!(now);
                sub["cancellation_details"]["reason"] = json!("cancellation_requested");
            }
            Some(false) => {
                sub["cancel_at_period_end"] = json!(false);
                sub["cancel_at"] = Value::Null;
                sub["canceled_at"] = Value::Null;
                sub["cancellation_details"] =
                    json!({"comment": null, "feedback": null, "reason": null});
            }
            None => {}
        }
        if let Some(comment) = p["cancellation_details"]["comment"].as_str() {
            sub["cancellation_details"]["comment"] = json!(comment);
        }
    })?;

    if invoice_now {
        // Earlier changes' prorations waiting for the next invoice go on this one.
        let waiting = ctx.store.private(id)["pending_prorations"].take();
        let mut lines: Vec<ChangeLine> = waiting
            .as_array()
            .into_iter()
            .flatten()
            .map(|line| ChangeLine {
                price: line["price"].clone(),
                amount: line["amount"].as_i64().unwrap_or(0),
                description: line["description"].as_str().unwrap_or_default().to_owned(),
                proration: true,
            })
            .collect();
        lines.extend(change_lines);
        let period = new_period.unwrap_or((now, period_end));
        invoice_change(ctx, id, lines, period)?;
    } else if !change_lines.is_empty() {
        // `create_prorations`: remembered and added to the next renewal invoice.
        let pending = ctx.store.private(id);
        let mut list = pending["pending_prorations"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for line in change_lines {
            list.push(json!({"price": line.price, "amount": line.amount, "description": line.description}));
        }
        pending["pending_prorations"] = json!(list);
    }
    ctx.fetch(
        updated["id"].as_str().unwrap_or_default(),
        "subscription",
        "id",
    )
}

/// Invoices a plan change now (and pays it with the default card).
fn invoice_change(
    ctx: &mut Ctx<'_>,
    sub_id: &str,
    lines: Vec<ChangeLine>,
    period: (i64, i64),
) -> Result<(), ApiError> {
    let sub = ctx.fetch(sub_id, "subscription", "subscription")?;
    let invoice_id = new_id("in");
    let lines: Vec<Value> = lines
        .into_iter()
        .map(|line| {
            objects::invoice_line(objects::LineSpec {
                id: &new_id("il"),
                invoice: &invoice_id,
                price: &line.price,
                quantity: 1,
                amount: line.amount,
                description: line.description,
                period,
                subscription: Some(sub_id),
                subscription_item: sub["items"]["data"][0]["id"].as_str(),
                proration: line.proration,
            })
        })
        .collect();
    issue_invoice(
        ctx,
        &sub,
        &invoice_id,
        "subscription_update",
        lines,
        period,
        |_, invoice| {
            // A net credit is left on the customer's balance rather than charged.
            if invoice["amount_due"].as_i64().unwrap_or(0) < 0 {
                invoice["amount_due"] = json!(0);
                invoice["amount_remaining"] = json!(0);
            }
        },
    )?;
    if let Some(pm) = default_payment_method(ctx, &sub) {
        pay_invoice(ctx, &invoice_id, &pm)?;
    }
    ctx.update(sub_id, None, |sub| {
        sub["latest_invoice"] = json!(invoice_id)
    })?;
    Ok(())
}

fn default_payment_method(ctx: &Ctx<'_>, sub: &Value) -> Option<String> {
    let customer = ctx.store.get(sub["customer"].as_str().unwrap_or_default());
    customer
        .and_then(|c| c["invoice_settings"]["default_payment_method"].as_str())
        .or_else(|| sub["default_payment_method"].as_str())
        .map(str::to_owned)
}

/// `DELETE /v1/subscriptions/{id}`: cancel now.
pub fn cancel_now(ctx: &mut Ctx<'_>, id: &str, p: &Value) -> Result<Value, ApiError> {
    form::check_allowed(
        p,
        &[
            "expand.[]",
            "invoice_now",
            "prorate",
            "cancellation_details.comment",
            "cancellation_details.feedback",
        ],
    )?;
    let sub = ctx.fetch(id, "subscription", "id")?;
    if sub["status"] == "canceled" {
        return Err(ApiError::invalid_request(format!(
            "No such subscription: '{id}' is already canceled"
        )));
    }
    end_now(ctx, id, "cancellation_requested")
}

/// Ends a subscription at the current time and emits `customer.subscription.deleted`.
pub fn end_now(ctx: &mut Ctx<'_>, id: &str, reason: &str) -> Result<Value, ApiError> {
    let sub = ctx.fetch(id, "subscription", "id")?;
    let now = ctx.now_for_customer(sub["customer"].as_str().unwrap_or_default());
    let sub = ctx.update(id, None, |sub| {
        sub["status"] = json!("canceled");
        sub["ended_at"] = json!(now);
        if sub["canceled_at"].is_null() {
            sub["canceled_at"] = json!(now);
        }
        if sub["cancellation_details"]["reason"].is_null() {
            sub["cancellation_details"]["reason"] = json!(reason);
        }
    })?;
    ctx.emit("customer.subscription.deleted", &sub, None);
    Ok(sub)
}

/// Undoes a scheduled cancellation (the portal's "Renew" and the app's "Resume").
pub fn resume(ctx: &mut Ctx<'_>, id: &str, p: &Value) -> Result<Value, ApiError> {
    form::check_allowed(
        p,
        &["expand.[]", "billing_cycle_anchor", "proration_behavior"],
    )?;
    let sub = ctx.fetch(id, "subscription", "id")?;
    if sub["status"] == "canceled" {
        return Err(ApiError::invalid_request(
            "A canceled subscription cannot be resumed; start a new one.",
        ));
    }
    update(ctx, id, &json!({"cancel_at_period_end": "false"}))
}

/// Moves every subscription of the given customers up to their current time:
/// trial ends, renewals, dunning retries, scheduled cancellations.
pub fn catch_up(ctx: &mut Ctx<'_>, customers: &[String]) -> Result<(), ApiError> {
    let subs: Vec<String> = ctx
        .store
        .list("subscription")
        .filter(|s| customers.iter().any(|c| s["customer"] == c.as_str()))
        .filter(|s| {
            !matches!(
                s["status"].as_str(),
                Some("canceled" | "incomplete_expired")
            )
        })
        .filter_map(|s| str_of(s, "id").map(str::to_owned))
        .collect();
    for sub_id in subs {
        catch_up_one(ctx, &sub_id)?;
    }
    Ok(())
}

fn catch_up_one(ctx: &mut Ctx<'_>, sub_id: &str) -> Result<(), ApiError> {
    // Bounded: a year of daily renewals at most per call.
    for _ in 0..400 {
        let sub = ctx.fetch(sub_id, "subscription", "id")?;
        let customer = sub["customer"].as_str().unwrap_or_default().to_owned();
        let now = ctx.now_for_customer(&customer);
        let (_, period_end) = period_of(&sub);

        // Dunning: retry the open renewal invoice when its next attempt is due.
        if sub["status"] == "past_due" {
            let latest = sub["latest_invoice"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let invoice = ctx.fetch(&latest, "invoice", "invoice")?;
            match invoice["next_payment_attempt"].as_i64() {
                Some(at) if at <= now && invoice["status"] == "open" => {
                    let pm = default_payment_method(ctx, &sub).unwrap_or_default();
                    let invoice = pay_invoice(ctx, &latest, &pm)?;
                    if invoice["status"] == "paid" {
                        ctx.update(sub_id, Some("customer.subscription.updated"), |s| {
                            s["status"] = json!("active")
                        })?;
                    } else if invoice["next_payment_attempt"].is_null() {
                        end_now(ctx, sub_id, "payment_failed")?;
                        return Ok(());
                    }
                    continue;
                }
                _ => {}
            }
        }

        if sub["status"] == "trialing" {
            if let Some(trial_end) = sub["trial_end"].as_i64() {
                let warned = ctx.store.private(sub_id)["trial_will_end_sent"] == true;
                if !warned && trial_end - 3 * 86_400 <= now && now < trial_end {
                    ctx.store.private(sub_id)["trial_will_end_sent"] = json!(true);
                    ctx.emit("customer.subscription.trial_will_end", &sub, None);
                }
            }
        }
        if period_end > now {
            return Ok(());
        }
        if sub["cancel_at_period_end"] == true
            || sub["cancel_at"].as_i64().is_some_and(|at| at <= period_end)
        {
            end_now(ctx, sub_id, "cancellation_requested")?;
            return Ok(());
        }
        // A new period begins at the old one's end.
        let price = sub["items"]["data"][0]["price"].clone();
        let (interval, count) = interval_of(&price);
        let next = (period_end, add_interval(period_end, &interval, count));
        let updated = ctx.update(sub_id, None, |s| {
            if let Some(items) = s["items"]["data"].as_array_mut() {
                for item in items {
                    item["current_period_start"] = json!(next.0);
                    item["current_period_end"] = json!(next.1);
                }
            }
        })?;
        let invoice = bill_period(
            ctx,
            sub_id,
            &new_id("in"),
            "subscription_cycle",
            next,
            false,
        )?;
        let invoice_id = invoice["id"].as_str().unwrap_or_default().to_owned();
        let pending = ctx.store.private(sub_id)["pending_prorations"].take();
        if let Some(prorations) = pending.as_array().filter(|p| !p.is_empty()) {
            let extra: i64 = prorations
                .iter()
                .map(|p| p["amount"].as_i64().unwrap_or(0))
                .sum();
            ctx.update(&invoice_id, None, |inv| {
                let total = (inv["amount_due"].as_i64().unwrap_or(0) + extra).max(0);
                for key in [
                    "amount_due",
                    "amount_remaining",
                    "total",
                    "subtotal",
                    "total_excluding_tax",
                    "subtotal_excluding_tax",
                ] {
                    inv[key] = json!(total);
                }
            })?;
        }
        let pm = default_payment_method(ctx, &updated).unwrap_or_default();
        let invoice = pay_invoice(ctx, &invoice_id, &pm)?;
        let status = if invoice["status"] == "paid" {
            "active"
        } else {
            "past_due"
        };
        ctx.update(sub_id, Some("customer.subscription.updated"), |s| {
            s["status"] = json!(status);
            s["latest_invoice"] = json!(invoice_id);
        })?;
    }
    Ok(())
}

/// After a card update: a past-due subscription's open invoice is retried at once,
/// as Stripe does when a customer fixes their payment method.
pub fn retry_now(ctx: &mut Ctx<'_>, sub_id: &str) -> Result<(), ApiError> {
    let sub = ctx.fetch(sub_id, "subscription", "id")?;
    if sub["status"] != "past_due" {
        return Ok(());
    }
    let latest = sub["latest_invoice"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let invoice = ctx.fetch(&latest, "invoice", "invoice")?;
    if invoice["status"] != "open" {
        return Ok(());
    }
    let pm = default_payment_method(ctx, &sub).unwrap_or_default();
    let invoice = pay_invoice(ctx, &latest, &pm)?;
    if invoice["status"] == "paid" {
        ctx.update(sub_id, Some("customer.subscription.updated"), |s| {
            s["status"] = json!("active")
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn price(id: &str, amount: i64, interval: &str) -> Value {
        json!({"id": id, "unit_amount": amount, "recurring": {"interval": interval, "interval_count": 1}})
    }

    const DAY: i64 = 86_400;

    #[test]
    fn a_plan_change_prorates_within_the_period_or_resets_it_for_another_interval() {
        let monthly = price("m", 4900, "month");
        let yearly = price("y", 49_000, "year");
        let pro = price("p", 9900, "month");
        let start = 1_796_083_200; // 2026-12-01
        let month_end = add_interval(start, "month", 1);
        let year_end = add_interval(start, "year", 1);
        let half_month = start + (month_end - start) / 2;

        // Same interval: the period stays, half of each price is prorated onto
        // the next invoice (or invoiced now with `always_invoice`).
        let change = plan_change(
            (&monthly, 1),
            (&pro, 1),
            (start, month_end),
            half_month,
            "create_prorations",
        );
        assert_eq!(change.period, (start, month_end));
        assert!(!change.resets_cycle && !change.invoice_now);
        assert_eq!(
            change.lines.iter().map(|l| l.amount).collect::<Vec<_>>(),
            [-2450, 4950]
        );
        assert_eq!(change.due_now(), 0);
        let now = plan_change(
            (&monthly, 1),
            (&pro, 1),
            (start, month_end),
            half_month,
            "always_invoice",
        );
        assert_eq!(now.due_now(), 2500);
        let none = plan_change(
            (&monthly, 1),
            (&pro, 1),
            (start, month_end),
            half_month,
            "none",
        );
        assert!(none.lines.is_empty() && none.due_now() == 0);

        // Monthly → yearly: a new yearly period from now, invoiced at once, less
        // the unused half month.
        let up = plan_change(
            (&monthly, 1),
            (&yearly, 1),
            (start, month_end),
            half_month,
            "create_prorations",
        );
        assert!(up.resets_cycle && up.invoice_now);
        assert_eq!(up.period, (half_month, add_interval(half_month, "year", 1)));
        assert_eq!(up.due_now(), 49_000 - 2450);
        assert!(up.lines.iter().any(|l| !l.proration && l.amount == 49_000));

        // Yearly → monthly after a month: the period resets to one month from
        // now (not the yearly end), and the unused eleven months are a credit
        // larger than the new month, so nothing is charged today.
        let later = start + 31 * DAY;
        let down = plan_change(
            (&yearly, 1),
            (&monthly, 1),
            (start, year_end),
            later,
            "create_prorations",
        );
        assert!(down.resets_cycle && down.invoice_now);
        assert_eq!(down.period, (later, add_interval(later, "month", 1)));
        assert!(down.period.1 - later <= 31 * DAY);
        assert_eq!(down.due_now(), 0);
        assert!(
            down.lines.iter().map(|l| l.amount).sum::<i64>() < 0,
            "a credit"
        );
    }
}
