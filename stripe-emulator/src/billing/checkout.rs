//! Checkout Sessions: the API and what happens when the hosted page is paid.

use serde_json::{json, Value};

use super::{attach_card, price_of, product_name, subscriptions, Card, Charge};
use crate::{
    context::{new_id, paginate, Ctx},
    error::ApiError,
    form, objects, params, str_of,
};

const CREATE_PARAMS: [&str; 23] = [
    "mode",
    "line_items.[].price",
    "line_items.[].quantity",
    "customer",
    "customer_email",
    "client_reference_id",
    "metadata",
    "metadata.*",
    "subscription_data.metadata.*",
    "subscription_data.trial_period_days",
    "subscription_data.description",
    "payment_intent_data.metadata.*",
    "payment_intent_data.description",
    "payment_intent_data.setup_future_usage",
    "allow_promotion_codes",
    "success_url",
    "cancel_url",
    "expires_at",
    "expand.[]",
    "payment_method_types.[]",
    "billing_address_collection",
    "locale",
    "customer_update.address",
];

pub fn create(ctx: &mut Ctx<'_>, p: &Value) -> Result<Value, ApiError> {
    form::check_allowed(p, &CREATE_PARAMS)?;
    let mode = params::required(p, "mode")?;
    if !matches!(mode, "payment" | "subscription") {
        return Err(ApiError::invalid_parameter(
            "mode",
            format!("The emulator supports `payment` and `subscription` modes, not `{mode}`."),
        ));
    }
    let success_url = params::required(p, "success_url")?;
    let customer = params::string(p, "customer");
    if let Some(customer) = customer {
        ctx.fetch(customer, "customer", "customer")?;
    }
    let Some(items) = p["line_items"].as_array().filter(|items| !items.is_empty()) else {
        return Err(ApiError::missing_parameter("line_items"));
    };
    let mut line_items = Vec::new();
    let mut currency: Option<String> = None;
    let mut total = 0;
    for (i, item) in items.iter().enumerate() {
        let param = format!("line_items[{i}][price]");
        let price = price_of(
            ctx,
            params::required(item, "price").map_err(|_| ApiError::missing_parameter(&param))?,
            &param,
        )?;
        let quantity =
            params::integer(item, "quantity", &format!("line_items[{i}][quantity]"))?.unwrap_or(1);
        if quantity < 1 {
            return Err(ApiError::invalid_parameter(
                &format!("line_items[{i}][quantity]"),
                "Quantity must be at least 1.",
            ));
        }
        let recurring = price["type"] == "recurring";
        if mode == "payment" && recurring {
            return Err(ApiError::invalid_parameter(&param, "You specified `payment` mode but passed a recurring price. Either switch to `subscription` mode or use only one-time prices."));
        }
        if mode == "subscription" && !recurring && items.len() == 1 {
            return Err(ApiError::invalid_parameter(&param, "You must provide at least one recurring price in `subscription` mode when using prices."));
        }
        let price_currency = price["currency"].as_str().unwrap_or("usd").to_owned();
        if currency.as_ref().is_some_and(|c| *c != price_currency) {
            return Err(ApiError::invalid_parameter(
                &param,
                "All prices must be in the same currency.",
            ));
        }
        currency = Some(price_currency);
        total += price["unit_amount"].as_i64().unwrap_or(0) * quantity;
        let name = product_name(ctx, &price);
        line_items.push(objects::checkout_line_item(
            &new_id("li"),
            &price,
            quantity,
            &name,
        ));
    }
    let now = customer.map_or_else(|| ctx.now(), |c| ctx.now_for_customer(c));
    let expires_at = params::integer(p, "expires_at", "expires_at")?.unwrap_or(now + 86_400);
    if expires_at < now + 1_800 || expires_at > now + 86_400 {
        return Err(ApiError::invalid_parameter("expires_at", "The `expires_at` timestamp must be between 30 minutes and 24 hours from Checkout Session creation."));
    }
    let trial_days = params::integer(
        &p["subscription_data"],
        "trial_period_days",
        "subscription_data[trial_period_days]",
    )?;
    if trial_days.is_some_and(|days| !(1..=730).contains(&days)) {
        return Err(ApiError::invalid_parameter(
            "subscription_data[trial_period_days]",
            "Trial period days must be between 1 and 730.",
        ));
    }

    let id = format!("cs_test_{}", &new_id("x")[2..]);
    let customer_email = params::string(p, "customer_email");
    let session = objects::build(
        "checkout.session",
        json!({
            "id": id, "created": now, "expires_at": expires_at, "mode": mode, "status": "open", "payment_status": "unpaid",
            "url": format!("{}checkout/{id}", ctx.emulator.base_url), "success_url": success_url,
            "cancel_url": params::string(p, "cancel_url"), "customer": customer, "customer_email": customer_email,
            "client_reference_id": params::string(p, "client_reference_id"), "metadata": params::metadata(p),
            "allow_promotion_codes": params::boolean(p, "allow_promotion_codes")?, "currency": currency,
            "amount_subtotal": total, "amount_total": total, "payment_intent": null, "subscription": null, "invoice": null,
            "customer_creation": if customer.is_none() { json!("always") } else { Value::Null },
            "customer_details": null, "after_expiration": null, "adaptive_pricing": null, "automatic_tax": {"enabled": false, "liability": null, "provider": null, "status": null},
            "collected_information": null, "consent": null, "consent_collection": null, "currency_conversion": null,
            "custom_fields": [], "custom_text": {"after_submit": null, "shipping_address": null, "submit": null, "terms_of_service_acceptance": null},
            "discounts": [], "invoice_creation": if mode == "payment" { json!({"enabled": false, "invoice_data": {"account_tax_ids": null, "custom_fields": null, "description": null, "footer": null, "issuer": null, "metadata": {}, "rendering_options": null}}) } else { Value::Null },
            "locale": params::string(p, "locale"), "payment_method_collection": if mode == "subscription" { json!("always") } else { Value::Null },
            "payment_method_configuration_details": null, "payment_method_options": {}, "payment_method_types": ["card"],
            "phone_number_collection": {"enabled": false}, "saved_payment_method_options": null, "setup_intent": null,
            "shipping_address_collection": null, "shipping_cost": null, "shipping_options": [], "submit_type": null,
            "total_details": {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0}, "ui_mode": "hosted_page",
            "billing_address_collection": params::string(p, "billing_address_collection"), "wallet_options": null,
            "managed_payments": null, "origin_context": null, "permissions": null, "integration_identifier": null,
            "recovered_from": null, "payment_link": null, "client_secret": null, "customer_account": null,
        }),
    );
    ctx.store.insert(session.clone());
    let private = ctx.store.private(&id);
    private["line_items"] = json!(line_items);
    private["subscription_metadata"] = p["subscription_data"]["metadata"].clone();
    private["trial_days"] = json!(trial_days);
    private["payment_intent_metadata"] = p["payment_intent_data"]["metadata"].clone();
    private["setup_future_usage"] = p["payment_intent_data"]["setup_future_usage"].clone();
    Ok(session)
}

fn session(ctx: &mut Ctx<'_>, id: &str) -> Result<Value, ApiError> {
    let session = ctx.fetch(id, "checkout.session", "session")?;
    // Expiry happens when anyone looks: the emulator has no background scheduler.
    if session["status"] == "open"
        && session["expires_at"]
            .as_i64()
            .is_some_and(|at| at <= ctx.now())
    {
        return expire_now(ctx, id);
    }
    Ok(session)
}

pub fn retrieve(ctx: &mut Ctx<'_>, id: &str, p: &Value) -> Result<Value, ApiError> {
    form::check_allowed(p, &["expand.[]"])?;
    session(ctx, id)
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
            "payment_intent",
            "subscription",
            "status",
        ],
    )?;
    let items: Vec<Value> = ctx
        .store
        .list("checkout.session")
        .filter(|s| {
            ["customer", "payment_intent", "subscription", "status"]
                .iter()
                .all(|f| params::string(p, f).is_none_or(|want| s[*f] == want))
        })
        .cloned()
        .collect();
    paginate(items, p, "/v1/checkout/sessions")
}

pub fn line_item_list(store: &crate::store::Store, id: &str) -> Value {
    let items = store
        .private
        .get(id)
        .and_then(|p| p["line_items"].as_array().cloned())
        .unwrap_or_default();
    objects::list(
        &format!("/v1/checkout/sessions/{id}/line_items"),
        items,
        false,
    )
}

pub fn line_items(ctx: &mut Ctx<'_>, id: &str, p: &Value) -> Result<Value, ApiError> {
    form::check_allowed(
        p,
        &["limit", "starting_after", "ending_before", "expand.[]"],
    )?;
    ctx.fetch(id, "checkout.session", "session")?;
    let list = line_item_list(ctx.store, id);
    paginate(
        list["data"].as_array().cloned().unwrap_or_default(),
        p,
        &format!("/v1/checkout/sessions/{id}/line_items"),
    )
}

pub fn expire(ctx: &mut Ctx<'_>, id: &str, p: &Value) -> Result<Value, ApiError> {
    form::check_allowed(p, &["expand.[]"])?;
    let session = ctx.fetch(id, "checkout.session", "session")?;
    if session["status"] != "open" {
        return Err(ApiError::invalid_request(format!("Only Checkout Sessions with a status in [\"open\"] can be expired. This Checkout Session has a status of \"{}\".", session["status"].as_str().unwrap_or_default())));
    }
    expire_now(ctx, id)
}

/// Expires every open session whose `expires_at` has passed (after a time advance).
pub fn expire_due(ctx: &mut Ctx<'_>) -> Result<(), ApiError> {
    let now = ctx.now();
    let due: Vec<String> = ctx
        .store
        .list("checkout.session")
        .filter(|s| s["status"] == "open" && s["expires_at"].as_i64().is_some_and(|at| at <= now))
        .filter_map(|s| str_of(s, "id").map(str::to_owned))
        .collect();
    for id in due {
        expire_now(ctx, &id)?;
    }
    Ok(())
}

fn expire_now(ctx: &mut Ctx<'_>, id: &str) -> Result<Value, ApiError> {
    let session = ctx.update(id, None, |session| {
        session["status"] = json!("expired");
        session["url"] = Value::Null;
    })?;
    ctx.emit("checkout.session.expired", &session, None);
    Ok(session)
}

/// What paying on the hosted page led to.
#[derive(Debug, PartialEq, Eq)]
pub enum PayOutcome {
    /// Redirect here (the success URL with `{CHECKOUT_SESSION_ID}` filled in).
    Completed(String),
    /// Stay on the page and show this message.
    Declined(String),
    /// Show the 3-D Secure step.
    NeedsAuthentication,
}

/// The hosted page's "Pay" (or "Subscribe") button.
pub fn pay(
    ctx: &mut Ctx<'_>,
    id: &str,
    card_number: &str,
    email: Option<&str>,
    promotion_code: Option<&str>,
) -> Result<PayOutcome, ApiError> {
    let session = session(ctx, id)?;
    if session["status"] != "open" {
        return Err(ApiError::invalid_request(
            "This Checkout Session is no longer open.",
        ));
    }
    // A code is checked before the card, as the hosted page does.
    let promotion_code = promotion_code
        .map(str::trim)
        .filter(|code| !code.is_empty() && session["allow_promotion_codes"] == true);
    if let Some(code) = promotion_code {
        if let Err(message) =
            super::coupons::redeem(ctx, code, session["currency"].as_str().unwrap_or("usd"))
        {
            return Ok(PayOutcome::Declined(message.to_owned()));
        }
    }
    ctx.store.private(id)["promotion_code"] = json!(promotion_code);
    let card = match Card::from_number(card_number) {
        Ok(card) => card,
        Err(message) => return Ok(PayOutcome::Declined(message.to_owned())),
    };
    match card {
        Card::Declines { message, .. } => Ok(PayOutcome::Declined(message.to_owned())),
        Card::AttachesThenFails => Ok(PayOutcome::Declined("Your card was declined.".to_owned())),
        Card::RequiresAuthentication => {
            let private = ctx.store.private(id);
            private["pending_card"] = json!(card_number);
            private["pending_email"] = json!(email);
            Ok(PayOutcome::NeedsAuthentication)
        }
        Card::Succeeds => complete(ctx, &session, card_number, email).map(PayOutcome::Completed),
    }
}

/// The 3-D Secure page's "Complete" or "Fail" button.
pub fn authenticate(ctx: &mut Ctx<'_>, id: &str, approve: bool) -> Result<PayOutcome, ApiError> {
    let session = session(ctx, id)?;
    let private = ctx.store.private(id).clone();
    let Some(card_number) = private["pending_card"]
        .as_str()
        .filter(|_| session["status"] == "open")
    else {
        return Err(ApiError::invalid_request(
            "There is no payment awaiting authentication on this Checkout Session.",
        ));
    };
    ctx.store.private(id)["pending_card"] = Value::Null;
    if !approve {
        return Ok(PayOutcome::Declined(
            "We are unable to authenticate your payment method. Please choose a different payment method and try again.".to_owned(),
        ));
    }
    complete(
        ctx,
        &session,
        card_number,
        private["pending_email"].as_str(),
    )
    .map(PayOutcome::Completed)
}

fn complete(
    ctx: &mut Ctx<'_>,
    session: &Value,
    card_number: &str,
    email: Option<&str>,
) -> Result<String, ApiError> {
    let id = session["id"].as_str().unwrap_or_default().to_owned();
    let private = ctx.store.private(&id).clone();
    let customer_id = match str_of(session, "customer") {
        Some(customer) => customer.to_owned(),
        None => {
            let customer_id = new_id("cus");
            let email = email.or(str_of(session, "customer_email"));
            let customer = objects::customer(&customer_id, ctx.now(), email, None, json!({}), None);
            ctx.store.insert(customer.clone());
            ctx.emit("customer.created", &customer, None);
            customer_id
        }
    };
    let customer = ctx.fetch(&customer_id, "customer", "customer")?;
    // A subscription keeps the card for renewals; a one-time payment only when asked.
    let keep_card = session["mode"] == "subscription" || private["setup_future_usage"].is_string();
    let pm = if keep_card {
        attach_card(ctx, &customer_id, card_number)
    } else {
        super::card_for_one_payment(ctx, &customer_id, card_number)
    };
    let pm_id = pm["id"].as_str().unwrap_or_default().to_owned();
    let lines: Vec<(Value, i64)> = private["line_items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|item| {
            (
                item["price"].clone(),
                item["quantity"].as_i64().unwrap_or(1),
            )
        })
        .collect();
    let currency = session["currency"].as_str().unwrap_or("usd").to_owned();
    let promotion = match private["promotion_code"].as_str() {
        Some(code) => super::coupons::redeem(ctx, code, &currency).ok(),
        None => None,
    };
    if let Some((promo, coupon)) = &promotion {
        for id in [
            promo["id"].as_str().unwrap_or_default(),
            coupon["id"].as_str().unwrap_or_default(),
        ] {
            if let Some(object) = ctx.store.get_mut(id) {
                object["times_redeemed"] =
                    json!(object["times_redeemed"].as_i64().unwrap_or(0) + 1);
            }
        }
    }

    let mut changes = json!({});
    let payment_status;
    if session["mode"] == "subscription" {
        let metadata = private["subscription_metadata"]
            .as_object()
            .map_or(json!({}), |m| json!(m));
        let started = subscriptions::start(
            ctx,
            subscriptions::Start {
                customer: &customer_id,
                lines: &lines,
                metadata,
                trial_days: private["trial_days"].as_i64(),
                payment_method: &pm_id,
                coupon: promotion.as_ref().map(|(_, coupon)| coupon.clone()),
            },
        )?;
        payment_status = if started.invoice["amount_due"] == 0 {
            "no_payment_required"
        } else {
            "paid"
        };
        changes["subscription"] = started.subscription["id"].clone();
        changes["invoice"] = started.invoice["id"].clone();
    } else {
        let subtotal = session["amount_total"].as_i64().unwrap_or(0);
        let discount = promotion
            .as_ref()
            .map_or(0, |(_, coupon)| super::coupons::discount(coupon, subtotal));
        let amount = subtotal - discount;
        changes["amount_total"] = json!(amount);
        changes["total_details"] =
            json!({"amount_discount": discount, "amount_shipping": 0, "amount_tax": 0});
        let metadata = private["payment_intent_metadata"]
            .as_object()
            .map_or(json!({}), |m| json!(m));
        let (pi, _) = super::charge(
            ctx,
            Charge {
                customer: Some(&customer_id),
                amount,
                currency: &currency,
                payment_method: &pm_id,
                metadata,
                description: None,
            },
            Card::Succeeds,
        );
        payment_status = "paid";
        changes["payment_intent"] = pi["id"].clone();
    }
    if let Some((promo, _)) = &promotion {
        changes["discounts"] = json!([{"coupon": null, "promotion_code": promo["id"]}]);
    }

    let details = json!({"address": null, "email": customer["email"], "name": customer["name"], "phone": null,
                         "tax_exempt": "none", "tax_ids": [], "business_name": null, "individual_name": null});
    let session = ctx.update(&id, None, |session| {
        session["status"] = json!("complete");
        session["payment_status"] = json!(payment_status);
        session["customer"] = json!(customer_id);
        session["customer_details"] = details;
        session["url"] = Value::Null;
        for (key, value) in changes.as_object().into_iter().flatten() {
            session[key] = value.clone();
        }
    })?;
    ctx.emit("checkout.session.completed", &session, None);
    Ok(session["success_url"]
        .as_str()
        .unwrap_or_default()
        .replace("{CHECKOUT_SESSION_ID}", &id))
}
