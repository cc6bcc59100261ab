//! Hosted pages: Checkout (with test cards and a 3-D Secure step), the Customer
//! Portal, and invoices. Plain server-rendered HTML forms: they work without
//! JavaScript, and end-to-end tests drive them like a customer would.

use std::sync::Arc;

use axum::{
    extract::{Path, State},
    http::{header, StatusCode},
    response::{Html, IntoResponse, Redirect, Response},
    routing::get,
    Form, Router,
};
use maud::{html, Markup, DOCTYPE};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::{
    billing::{self, checkout::PayOutcome},
    context::Ctx,
    Emulator,
};

pub fn routes() -> Router<Arc<Emulator>> {
    Router::new()
        .route("/checkout/{id}", get(checkout_page).post(checkout_pay))
        .route(
            "/checkout/{id}/3ds",
            get(three_ds_page).post(three_ds_submit),
        )
        .route("/checkout/{id}/back", get(checkout_back))
        .route("/portal/{id}", get(portal_page).post(portal_action))
        .route("/invoices/{id}", get(invoice_page))
        .route("/invoices/{id}/pdf", get(invoice_pdf))
}

fn money(amount: i64, currency: &str) -> String {
    let zero_decimal = matches!(
        currency,
        "jpy" | "krw" | "vnd" | "clp" | "isk" | "ugx" | "xof" | "xaf"
    );
    let symbol = match currency {
        "usd" => "$",
        "eur" => "€",
        "gbp" => "£",
        "jpy" => "¥",
        _ => "",
    };
    let sign = if amount < 0 { "-" } else { "" };
    let amount = amount.abs();
    let body = if zero_decimal {
        amount.to_string()
    } else {
        format!("{}.{:02}", amount / 100, amount % 100)
    };
    if symbol.is_empty() {
        format!("{sign}{body} {}", currency.to_uppercase())
    } else {
        format!("{sign}{symbol}{body}")
    }
}

/// A Stripe timestamp as a calendar date ("2027-01-24").
fn date(timestamp: &Value) -> String {
    timestamp
        .as_i64()
        .and_then(|t| chrono::DateTime::from_timestamp(t, 0))
        .map(|t| t.format("%Y-%m-%d").to_string())
        .unwrap_or_default()
}

fn page(title: &str, body: Markup) -> Html<String> {
    Html(
        html! {
            (DOCTYPE)
            html lang="en" {
                head {
                    meta charset="utf-8";
                    meta name="viewport" content="width=device-width, initial-scale=1";
                    title { (title) " · Stripe emulator" }
                    style { (maud::PreEscaped(CSS)) }
                }
                body {
                    div.badge { "Test mode — Stripe emulator" }
                    main { (body) }
                }
            }
        }
        .into_string(),
    )
}

const CSS: &str = "body{font-family:system-ui,sans-serif;background:#f6f9fc;color:#1a1f36;margin:0}main{max-width:34rem;margin:2rem auto;background:#fff;padding:2rem;border-radius:12px;box-shadow:0 2px 12px #0001}.badge{background:#ffde92;color:#5a3e00;text-align:center;padding:.3rem;font-size:.85rem}table{width:100%;border-collapse:collapse}td{padding:.4rem 0}td.r{text-align:right}.total{font-weight:700;border-top:1px solid #e3e8ee}label{display:block;margin:.8rem 0 .3rem;font-weight:600}input{width:100%;padding:.6rem;border:1px solid #cfd7df;border-radius:6px;font:inherit;box-sizing:border-box}button{margin-top:1rem;width:100%;padding:.75rem;border:0;border-radius:6px;background:#635bff;color:#fff;font:inherit;font-weight:600;cursor:pointer}button.secondary{background:#fff;color:#635bff;border:1px solid #635bff}.error{background:#fde8e8;color:#9b1c1c;padding:.7rem;border-radius:6px;margin-top:1rem}a{color:#635bff}.muted{color:#697386;font-size:.9rem}";

fn not_found(what: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        page(
            "Not found",
            html! { h1 { (what) " not found" } p { "This link is invalid or has expired." } },
        ),
    )
        .into_response()
}

// ------------------------------------------------------------------ Checkout

fn checkout_view(emulator: &Emulator, session: &Value, error: Option<&str>) -> Html<String> {
    let store = emulator.lock();
    let id = session["id"].as_str().unwrap_or_default();
    let items = billing::checkout::line_item_list(&store, id);
    let currency = session["currency"].as_str().unwrap_or("usd");
    let subscription = session["mode"] == "subscription";
    let trial = store.private.get(id).and_then(|p| p["trial_days"].as_i64());
    let email = session["customer"]
        .as_str()
        .and_then(|c| store.get(c))
        .and_then(|c| c["email"].as_str())
        .or(session["customer_email"].as_str())
        .unwrap_or_default()
        .to_owned();
    drop(store);
    page(
        "Checkout",
        html! {
            h1 { @if subscription { "Subscribe" } @else { "Pay" } }
            table {
                @for item in items["data"].as_array().into_iter().flatten() {
                    tr {
                        td { (item["description"].as_str().unwrap_or_default()) " × " (item["quantity"]) }
                        td.r {
                            (money(item["amount_total"].as_i64().unwrap_or(0), currency))
                            @if let Some(interval) = item["price"]["recurring"]["interval"].as_str() { " / " (interval) }
                        }
                    }
                }
                tr.total { td { "Total due today" } td.r { (money(if trial.is_some() { 0 } else { session["amount_total"].as_i64().unwrap_or(0) }, currency)) } }
            }
            @if let Some(days) = trial { p.muted { (days) "-day free trial, then billed each period." } }
            form method="post" {
                label for="email" { "Email" }
                input id="email" name="email" type="email" value=(email);
                label for="card" { "Card number" }
                input id="card" name="card_number" inputmode="numeric" autocomplete="cc-number" placeholder="4242 4242 4242 4242" required;
                @if session["allow_promotion_codes"] == true {
                    label for="promo" { "Promotion code" }
                    input id="promo" name="promotion_code" placeholder="Optional";
                }
                @if let Some(error) = error { div.error role="alert" { (error) } }
                button type="submit" { @if subscription { "Subscribe" } @else { "Pay" } }
            }
            @if session["cancel_url"].is_string() {
                p { a href={ "/checkout/" (id) "/back" } { "← Back" } }
            }
            p.muted { "Test cards: 4242 4242 4242 4242 pays; 4000 0000 0000 0002 declines; 4000 0000 0000 9995 insufficient funds; 4000 0025 0000 3155 asks for 3-D Secure; 4000 0000 0000 0341 declines." }
        },
    )
}

/// The stored object `id` if it is a `kind` (hosted URLs carry ids anyone can type).
fn load(emulator: &Emulator, id: &str, kind: &str) -> Option<Value> {
    emulator
        .lock()
        .get(id)
        .filter(|object| object["object"] == kind)
        .cloned()
}

fn load_session(emulator: &Emulator, id: &str) -> Option<Value> {
    load(emulator, id, "checkout.session")
}

async fn checkout_page(State(emulator): State<Arc<Emulator>>, Path(id): Path<String>) -> Response {
    let Some(session) = load_session(&emulator, &id) else {
        return not_found("Checkout Session");
    };
    if session["status"] != "open"
        || session["expires_at"]
            .as_i64()
            .is_some_and(|at| at <= Ctx::new(&mut emulator.lock(), &emulator).now())
    {
        return page("Checkout", html! { h1 { "This Checkout Session is no longer available" } p { "It has been completed or has expired." } }).into_response();
    }
    checkout_view(&emulator, &session, None).into_response()
}

#[derive(Deserialize)]
struct PayForm {
    card_number: String,
    email: Option<String>,
    promotion_code: Option<String>,
}

fn run<T>(emulator: &Arc<Emulator>, f: impl FnOnce(&mut Ctx<'_>) -> T) -> T {
    let mut store = emulator.lock();
    let mut ctx = Ctx::new(&mut store, emulator);
    let result = f(&mut ctx);
    let outgoing = std::mem::take(&mut ctx.outgoing);
    drop(store);
    emulator.send(outgoing);
    result
}

fn outcome_response(
    emulator: &Arc<Emulator>,
    id: &str,
    outcome: Result<PayOutcome, crate::error::ApiError>,
) -> Response {
    match outcome {
        Ok(PayOutcome::Completed(url)) => Redirect::to(&url).into_response(),
        Ok(PayOutcome::NeedsAuthentication) => {
            Redirect::to(&format!("/checkout/{id}/3ds")).into_response()
        }
        Ok(PayOutcome::Declined(message)) => match load_session(emulator, id) {
            Some(session) => (
                StatusCode::PAYMENT_REQUIRED,
                checkout_view(emulator, &session, Some(&message)),
            )
                .into_response(),
            None => not_found("Checkout Session"),
        },
        Err(err) => (
            err.status,
            page(
                "Checkout",
                html! { h1 { "Payment could not be completed" } p.error { (err.message) } },
            ),
        )
            .into_response(),
    }
}

async fn checkout_pay(
    State(emulator): State<Arc<Emulator>>,
    Path(id): Path<String>,
    Form(form): Form<PayForm>,
) -> Response {
    if load_session(&emulator, &id).is_none() {
        return not_found("Checkout Session");
    }
    let email = form.email.filter(|e| !e.trim().is_empty());
    let outcome = run(&emulator, |ctx| {
        billing::checkout::pay(
            ctx,
            &id,
            &form.card_number,
            email.as_deref(),
            form.promotion_code.as_deref(),
        )
    });
    outcome_response(&emulator, &id, outcome)
}

async fn three_ds_page(State(emulator): State<Arc<Emulator>>, Path(id): Path<String>) -> Response {
    if load_session(&emulator, &id).is_none() {
        return not_found("Checkout Session");
    }
    page(
        "3D Secure",
        html! {
            h1 { "3D Secure 2 test page" }
            p { "This is a test authentication page. Complete or fail the authentication." }
            form method="post" {
                button type="submit" name="action" value="complete" { "Complete authentication" }
                button.secondary type="submit" name="action" value="fail" { "Fail authentication" }
            }
        },
    )
    .into_response()
}

#[derive(Deserialize)]
struct ThreeDsForm {
    action: String,
}

async fn three_ds_submit(
    State(emulator): State<Arc<Emulator>>,
    Path(id): Path<String>,
    Form(form): Form<ThreeDsForm>,
) -> Response {
    let approve = form.action == "complete";
    let outcome = run(&emulator, |ctx| {
        billing::checkout::authenticate(ctx, &id, approve)
    });
    outcome_response(&emulator, &id, outcome)
}

async fn checkout_back(State(emulator): State<Arc<Emulator>>, Path(id): Path<String>) -> Response {
    match load_session(&emulator, &id).and_then(|s| s["cancel_url"].as_str().map(str::to_owned)) {
        Some(url) => Redirect::to(&url).into_response(),
        None => not_found("Checkout Session"),
    }
}

// ------------------------------------------------------------------ Portal

fn portal_view(emulator: &Emulator, session: &Value, notice: Option<&str>) -> Html<String> {
    let store = emulator.lock();
    let customer = session["customer"].as_str().unwrap_or_default();
    let config = store
        .get(session["configuration"].as_str().unwrap_or_default())
        .cloned()
        .unwrap_or(json!({}));
    let subs: Vec<Value> = store
        .list("subscription")
        .filter(|s| {
            s["customer"] == customer
                && s["status"] != "canceled"
                && s["status"] != "incomplete_expired"
        })
        .cloned()
        .collect();
    let invoices: Vec<Value> = store
        .list("invoice")
        .filter(|i| i["customer"] == customer)
        .take(12)
        .cloned()
        .collect();
    let card = store
        .get(customer)
        .and_then(|c| {
            c["invoice_settings"]["default_payment_method"]
                .as_str()
                .or_else(|| {
                    subs.first()
                        .and_then(|s| s["default_payment_method"].as_str())
                })
        })
        .and_then(|pm| store.get(pm))
        .and_then(|pm| pm["card"]["last4"].as_str().map(str::to_owned));
    let allowed_prices: Vec<Value> = config["features"]["subscription_update"]["products"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|p| p["prices"].as_array().cloned().unwrap_or_default())
        .filter_map(|price| price.as_str().and_then(|id| store.get(id)).cloned())
        .collect();
    let product_names: Vec<(String, String)> = allowed_prices
        .iter()
        .map(|p| {
            let name = p["product"]
                .as_str()
                .and_then(|id| store.get(id))
                .and_then(|prod| prod["name"].as_str())
                .unwrap_or("Plan")
                .to_owned();
            (p["id"].as_str().unwrap_or_default().to_owned(), name)
        })
        .collect();
    let update_enabled = config["features"]["subscription_update"]["enabled"] == true;
    let cancel_enabled = config["features"]["subscription_cancel"]["enabled"] == true;
    let pm_enabled = config["features"]["payment_method_update"]["enabled"] == true;
    let flow = session["flow"]["type"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let confirm_price = session["flow"]["subscription_update_confirm"]["items"][0]["price"]
        .as_str()
        .map(str::to_owned);
    // What confirming would do, as Stripe's confirm page shows it: the target
    // plan, the amount due today and the next renewal date.
    let proration = config["features"]["subscription_update"]["proration_behavior"]
        .as_str()
        .unwrap_or("create_prorations");
    let now = store
        .get(customer)
        .and_then(|c| c["test_clock"].as_str())
        .and_then(|clock| store.get(clock))
        .and_then(|clock| clock["frozen_time"].as_i64())
        .unwrap_or_else(|| crate::context::wall_clock() + store.time_offset);
    let confirm = confirm_price.as_deref().and_then(|price_id| {
        let target = store.get(price_id)?.clone();
        let sub = subs.first()?;
        let item = &sub["items"]["data"][0];
        let name = target["product"]
            .as_str()
            .and_then(|id| store.get(id))
            .and_then(|p| p["name"].as_str())
            .unwrap_or("the new plan")
            .to_owned();
        let quantity = item["quantity"].as_i64().unwrap_or(1);
        let change = billing::subscriptions::plan_change(
            (&item["price"], quantity),
            (&target, quantity),
            (
                item["current_period_start"].as_i64().unwrap_or(now),
                item["current_period_end"].as_i64().unwrap_or(now),
            ),
            now,
            proration,
        );
        Some((target, name, change))
    });
    // Stripe names the business, not the URL, on the way back.
    let business = config["business_profile"]["headline"]
        .as_str()
        .map(str::to_owned)
        .or_else(|| emulator.config.business_name.clone())
        .unwrap_or_else(|| url_host(session["return_url"].as_str().unwrap_or_default()));
    drop(store);
    let return_url = session["return_url"].as_str().unwrap_or("/");
    page(
        "Billing portal",
        html! {
            h1 { "Manage your billing" }
            @if let Some(notice) = notice { div.error role="status" { (notice) } }
            @for sub in &subs {
                @let item = &sub["items"]["data"][0];
                @let price = &item["price"];
                @let sub_id = sub["id"].as_str().unwrap_or_default();
                section {
                    h2 { "Current plan" }
                    p {
                        strong { (product_names.iter().find(|(id, _)| price["id"] == id.as_str()).map(|(_, n)| n.clone()).unwrap_or_else(|| price["nickname"].as_str().unwrap_or("Subscription").to_owned())) }
                        " — " (money(price["unit_amount"].as_i64().unwrap_or(0), price["currency"].as_str().unwrap_or("usd"))) " / " (price["recurring"]["interval"].as_str().unwrap_or("month"))
                    }
                    p.muted data-status=(sub["status"].as_str().unwrap_or_default()) {
                        "Status: " (sub["status"].as_str().unwrap_or_default())
                        @if sub["cancel_at_period_end"] == true { " · cancels at period end" }
                        " · current period ends " (date(&item["current_period_end"]))
                    }
                    @if flow == "subscription_update_confirm" {
                        @if let (Some(price), Some((target, name, change))) = (&confirm_price, &confirm) {
                            @let currency = target["currency"].as_str().unwrap_or("usd");
                            section.confirm data-testid="plan-change" {
                                h3 { "Change to " (name) }
                                p {
                                    (money(target["unit_amount"].as_i64().unwrap_or(0), currency))
                                    " / " (target["recurring"]["interval"].as_str().unwrap_or("month"))
                                }
                                p data-testid="due-now" {
                                    "Amount due today: " (money(change.due_now(), currency))
                                    @if !change.invoice_now && !change.lines.is_empty() { " (the prorated difference is added to your next invoice)" }
                                }
                                p data-testid="renews-on" { "Your plan renews on " (date(&json!(change.period.1))) }
                            }
                            form method="post" {
                                input type="hidden" name="action" value="switch";
                                input type="hidden" name="subscription" value=(sub_id);
                                input type="hidden" name="price" value=(price);
                                button type="submit" { "Confirm plan change" }
                            }
                        }
                    } @else if update_enabled {
                        @for (price_id, name) in &product_names {
                            @if price["id"] != price_id.as_str() {
                                form method="post" {
                                    input type="hidden" name="action" value="switch";
                                    input type="hidden" name="subscription" value=(sub_id);
                                    input type="hidden" name="price" value=(price_id);
                                    @let target = allowed_prices.iter().find(|p| p["id"] == price_id.as_str());
                                    button.secondary type="submit" { "Switch to " (name) " (" (target.map(|p| p["recurring"]["interval"].as_str().unwrap_or("month")).unwrap_or("month")) "ly)" }
                                }
                            }
                        }
                    }
                    @if sub["cancel_at_period_end"] == true {
                        form method="post" { input type="hidden" name="action" value="resume"; input type="hidden" name="subscription" value=(sub_id); button type="submit" { "Renew plan" } }
                    } @else if cancel_enabled || flow == "subscription_cancel" {
                        form method="post" { input type="hidden" name="action" value="cancel"; input type="hidden" name="subscription" value=(sub_id); button.secondary type="submit" { "Cancel plan" } }
                    }
                }
            }
            @if subs.is_empty() { p { "You have no active subscriptions." } }
            @if pm_enabled || flow == "payment_method_update" {
                section {
                    h2 { "Payment method" }
                    p { @if let Some(last4) = &card { "Card ending in " (last4) } @else { "No card on file" } }
                    form method="post" {
                        input type="hidden" name="action" value="card";
                        label for="card" { "New card number" }
                        input id="card" name="card_number" inputmode="numeric" required;
                        button type="submit" { "Update card" }
                    }
                }
            }
            section {
                h2 { "Invoices" }
                table {
                    @for invoice in &invoices {
                        tr {
                            td { (invoice["number"].as_str().unwrap_or("draft")) }
                            td { (money(invoice["total"].as_i64().unwrap_or(0), invoice["currency"].as_str().unwrap_or("usd"))) }
                            td { (invoice["status"].as_str().unwrap_or_default()) }
                            td.r { @if let Some(url) = invoice["hosted_invoice_url"].as_str() { a href=(url) { "View" } } }
                        }
                    }
                }
            }
            p { a href=(return_url) { "← Return to " (business) } }
        },
    )
}

/// `billing.example.com` from a return URL: the name shown when the account has none.
fn url_host(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    rest.split(['/', '?', '#'])
        .next()
        .unwrap_or(rest)
        .to_owned()
}

fn load_portal(emulator: &Emulator, id: &str) -> Option<Value> {
    load(emulator, id, "billing_portal.session")
}

async fn portal_page(State(emulator): State<Arc<Emulator>>, Path(id): Path<String>) -> Response {
    match load_portal(&emulator, &id) {
        Some(session) => portal_view(&emulator, &session, None).into_response(),
        None => not_found("Portal session"),
    }
}

#[derive(Deserialize)]
struct PortalForm {
    action: String,
    subscription: Option<String>,
    price: Option<String>,
    card_number: Option<String>,
}

async fn portal_action(
    State(emulator): State<Arc<Emulator>>,
    Path(id): Path<String>,
    Form(form): Form<PortalForm>,
) -> Response {
    let Some(session) = load_portal(&emulator, &id) else {
        return not_found("Portal session");
    };
    let customer = session["customer"].as_str().unwrap_or_default().to_owned();
    let config_id = session["configuration"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let result: Result<&str, String> = run(&emulator, |ctx| {
        let config = ctx.store.get(&config_id).cloned().unwrap_or(json!({}));
        // Only the customer's own subscriptions can be acted on from its portal.
        let owned = |ctx: &Ctx<'_>, sub: &str| {
            ctx.store
                .get(sub)
                .is_some_and(|s| s["customer"] == customer.as_str())
        };
        let sub = form.subscription.clone().unwrap_or_default();
        match form.action.as_str() {
            "switch" => {
                let price = form.price.clone().unwrap_or_default();
                let allowed = config["features"]["subscription_update"]["products"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|p| {
                        p["prices"]
                            .as_array()
                            .is_some_and(|ps| ps.iter().any(|x| x == price.as_str()))
                    })
                    || session["flow"]["subscription_update_confirm"]["items"][0]["price"]
                        == price.as_str();
                if !owned(ctx, &sub) || !allowed {
                    return Err("That plan change is not available.".to_owned());
                }
                let item = ctx
                    .store
                    .get(&sub)
                    .map(|s| s["items"]["data"][0]["id"].clone())
                    .unwrap_or_default();
                let proration = config["features"]["subscription_update"]["proration_behavior"]
                    .as_str()
                    .unwrap_or("create_prorations")
                    .to_owned();
                billing::subscriptions::update(ctx, &sub, &json!({"items": [{"id": item, "price": price}], "proration_behavior": proration}))
                    .map(|_| "Your plan has been updated.")
                    .map_err(|e| e.message)
            }
            "cancel" if owned(ctx, &sub) => {
                let immediately =
                    config["features"]["subscription_cancel"]["mode"] == "immediately";
                if immediately {
                    billing::subscriptions::end_now(ctx, &sub, "cancellation_requested")
                        .map(|_| "Your plan has been canceled.")
                        .map_err(|e| e.message)
                } else {
                    billing::subscriptions::update(
                        ctx,
                        &sub,
                        &json!({"cancel_at_period_end": "true"}),
                    )
                    .map(|_| "Your plan will be canceled at the end of the period.")
                    .map_err(|e| e.message)
                }
            }
            "resume" if owned(ctx, &sub) => billing::subscriptions::resume(ctx, &sub, &json!({}))
                .map(|_| "Your plan has been renewed.")
                .map_err(|e| e.message),
            "card" => {
                let number = form.card_number.clone().unwrap_or_default();
                match billing::Card::from_number(&number) {
                    Err(message) => Err(message.to_owned()),
                    Ok(billing::Card::Declines { message, .. }) => Err(message.to_owned()),
                    Ok(_) => {
                        let pm = billing::attach_card(ctx, &customer, &number);
                        let pm_id = pm["id"].as_str().unwrap_or_default().to_owned();
                        ctx.update(&customer, Some("customer.updated"), |c| {
                            c["invoice_settings"]["default_payment_method"] = json!(pm_id)
                        })
                        .map_err(|e| e.message)?;
                        let subs: Vec<String> = ctx
                            .store
                            .list("subscription")
                            .filter(|s| {
                                s["customer"] == customer.as_str() && s["status"] != "canceled"
                            })
                            .filter_map(|s| s["id"].as_str().map(str::to_owned))
                            .collect();
                        for sub in subs {
                            billing::subscriptions::update(
                                ctx,
                                &sub,
                                &json!({"default_payment_method": pm_id}),
                            )
                            .map_err(|e| e.message)?;
                            billing::subscriptions::retry_now(ctx, &sub).map_err(|e| e.message)?;
                        }
                        Ok("Your card has been updated.")
                    }
                }
            }
            _ => Err("That action is not available.".to_owned()),
        }
    });
    let after = session["flow"]["after_completion"].clone();
    match result {
        Ok(message) => match after["redirect"]["return_url"]
            .as_str()
            .filter(|_| after["type"] == "redirect")
        {
            Some(url) => Redirect::to(url).into_response(),
            None => portal_view(&emulator, &session, Some(message)).into_response(),
        },
        Err(message) => (
            StatusCode::BAD_REQUEST,
            portal_view(&emulator, &session, Some(&message)),
        )
            .into_response(),
    }
}

// ------------------------------------------------------------------ Invoices

async fn invoice_page(State(emulator): State<Arc<Emulator>>, Path(id): Path<String>) -> Response {
    let Some(invoice) = load(&emulator, &id, "invoice") else {
        return not_found("Invoice");
    };
    let currency = invoice["currency"].as_str().unwrap_or("usd");
    page(
        "Invoice",
        html! {
            h1 { "Invoice " (invoice["number"].as_str().unwrap_or_default()) }
            p.muted { "Status: " (invoice["status"].as_str().unwrap_or_default()) }
            table {
                @for line in invoice["lines"]["data"].as_array().into_iter().flatten() {
                    tr { td { (line["description"].as_str().unwrap_or_default()) } td.r { (money(line["amount"].as_i64().unwrap_or(0), currency)) } }
                }
                tr.total { td { "Total" } td.r { (money(invoice["total"].as_i64().unwrap_or(0), currency)) } }
                tr { td { "Amount paid" } td.r { (money(invoice["amount_paid"].as_i64().unwrap_or(0), currency)) } }
            }
            p { a href={ "/invoices/" (id) "/pdf" } { "Download PDF" } }
        },
    )
    .into_response()
}

/// A minimal, valid one-page PDF with the invoice's number and total.
async fn invoice_pdf(State(emulator): State<Arc<Emulator>>, Path(id): Path<String>) -> Response {
    let Some(invoice) = load(&emulator, &id, "invoice") else {
        return not_found("Invoice");
    };
    let text = format!(
        "Invoice {} - total {} - {}",
        invoice["number"].as_str().unwrap_or_default(),
        money(
            invoice["total"].as_i64().unwrap_or(0),
            invoice["currency"].as_str().unwrap_or("usd")
        ),
        invoice["status"].as_str().unwrap_or_default()
    )
    .replace(['(', ')', '\\'], "");
    let content = format!("BT /F1 14 Tf 72 720 Td ({text}) Tj ET");
    let objects = [
        "<< /Type /Catalog /Pages 2 0 R >>".to_owned(),
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_owned(),
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>".to_owned(),
        format!("<< /Length {} >>\nstream\n{content}\nendstream", content.len()),
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".to_owned(),
    ];
    let mut pdf = String::from("%PDF-1.4\n");
    let mut offsets = Vec::new();
    for (i, object) in objects.iter().enumerate() {
        offsets.push(pdf.len());
        pdf.push_str(&format!("{} 0 obj\n{object}\nendobj\n", i + 1));
    }
    let xref = pdf.len();
    pdf.push_str(&format!(
        "xref\n0 {}\n0000000000 65535 f \n",
        objects.len() + 1
    ));
    for offset in offsets {
        pdf.push_str(&format!("{offset:010} 00000 n \n"));
    }
    pdf.push_str(&format!(
        "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
        objects.len() + 1
    ));
    ([(header::CONTENT_TYPE, "application/pdf")], pdf).into_response()
}

#[cfg(test)]
mod tests {
    use super::money;

    #[test]
    fn formats_money_per_currency() {
        assert_eq!(money(4900, "usd"), "$49.00");
        assert_eq!(money(-1234, "eur"), "-€12.34");
        assert_eq!(money(500, "jpy"), "¥500");
        assert_eq!(money(1000, "chf"), "10.00 CHF");
    }
}
