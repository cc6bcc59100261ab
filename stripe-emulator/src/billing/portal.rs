//! Customer Portal configurations and sessions (the hosted page is in `hosted`).

use serde_json::{json, Value};

use crate::{
    context::{list_filtered, new_id, Ctx},
    error::ApiError,
    form, objects, params,
};

const CONFIG_PARAMS: [&str; 20] = [
    "business_profile.headline",
    "business_profile.privacy_policy_url",
    "business_profile.terms_of_service_url",
    "default_return_url",
    "metadata",
    "metadata.*",
    "name",
    "expand.[]",
    "login_page.enabled",
    "features.customer_update.enabled",
    "features.customer_update.allowed_updates.[]",
    "features.invoice_history.enabled",
    "features.payment_method_update.enabled",
    "features.subscription_cancel.enabled",
    "features.subscription_cancel.mode",
    "features.subscription_cancel.proration_behavior",
    "features.subscription_update.enabled",
    "features.subscription_update.default_allowed_updates.[]",
    "features.subscription_update.proration_behavior",
    "features.subscription_update.products.[].**",
];

fn flag(value: &Value) -> Option<bool> {
    value.as_str().map(|s| s == "true")
}

fn apply_config(config: &mut Value, p: &Value) {
    let f = &p["features"];
    for key in ["headline", "privacy_policy_url", "terms_of_service_url"] {
        if let Some(v) = p["business_profile"][key].as_str() {
            config["business_profile"][key] = json!(v);
        }
    }
    if let Some(url) = params::string(p, "default_return_url") {
        config["default_return_url"] = json!(url);
    }
    if let Some(name) = params::string(p, "name") {
        config["name"] = json!(name);
    }
    if let Some(enabled) = flag(&p["login_page"]["enabled"]) {
        config["login_page"] = json!({"enabled": enabled, "url": enabled.then(|| format!("https://billing.stripe.com/p/login/emulator_{}", config["id"].as_str().unwrap_or_default()))});
    }
    for feature in [
        "customer_update",
        "invoice_history",
        "payment_method_update",
        "subscription_cancel",
        "subscription_update",
    ] {
        if let Some(enabled) = flag(&f[feature]["enabled"]) {
            config["features"][feature]["enabled"] = json!(enabled);
        }
    }
    if let Some(updates) = f["customer_update"]["allowed_updates"].as_array() {
        config["features"]["customer_update"]["allowed_updates"] = json!(updates);
    }
    for key in ["mode", "proration_behavior"] {
        if let Some(v) = f["subscription_cancel"][key].as_str() {
            config["features"]["subscription_cancel"][key] = json!(v);
        }
    }
    if let Some(v) = f["subscription_update"]["proration_behavior"].as_str() {
        config["features"]["subscription_update"]["proration_behavior"] = json!(v);
    }
    if let Some(updates) = f["subscription_update"]["default_allowed_updates"].as_array() {
        config["features"]["subscription_update"]["default_allowed_updates"] = json!(updates);
    }
    if let Some(products) = f["subscription_update"]["products"].as_array() {
        let products: Vec<Value> = products
            .iter()
            .map(|entry| json!({"product": entry["product"], "prices": entry["prices"].as_array().cloned().unwrap_or_default(), "adjustable_quantity": {"enabled": false, "maximum": null, "minimum": 1}}))
            .collect();
        config["features"]["subscription_update"]["products"] = json!(products);
    }
    config["metadata"] = params::merge_metadata(&config["metadata"], p);
}

pub fn configuration_create(ctx: &mut Ctx<'_>, p: &Value) -> Result<Value, ApiError> {
    form::check_allowed(p, &CONFIG_PARAMS)?;
    let id = new_id("bpc");
    // Only the configuration saved in the Dashboard's settings is the default;
    // one made through the API never is.
    let is_default = false;
    let now = ctx.now();
    let mut config = objects::build(
        "billing_portal.configuration",
        json!({
            "id": id, "created": now, "updated": now, "livemode": false, "is_default": is_default, "metadata": {},
            "business_profile": {"headline": null, "privacy_policy_url": null, "terms_of_service_url": null},
            "features": {
                "customer_update": {"allowed_updates": [], "enabled": false},
                "invoice_history": {"enabled": false},
                "payment_method_update": {"enabled": false, "payment_method_configuration": null},
                "subscription_cancel": {"cancellation_reason": {"enabled": false, "options": []}, "enabled": false, "mode": "at_period_end", "proration_behavior": "none"},
                "subscription_update": {"billing_cycle_anchor": null, "default_allowed_updates": [], "enabled": false, "products": [], "proration_behavior": "none", "schedule_at_period_end": {"conditions": []}, "trial_update_behavior": "end_trial"}
            },
            "login_page": {"enabled": false, "url": null},
        }),
    );
    apply_config(&mut config, p);
    ctx.store.insert(config.clone());
    ctx.emit("billing_portal.configuration.created", &config, None);
    Ok(config)
}

pub fn configuration_update(ctx: &mut Ctx<'_>, id: &str, p: &Value) -> Result<Value, ApiError> {
    let mut allowed = CONFIG_PARAMS.to_vec();
    allowed.push("active");
    form::check_allowed(p, &allowed)?;
    ctx.fetch(id, "billing_portal.configuration", "configuration")?;
    let active = params::boolean(p, "active")?;
    let now = ctx.now();
    ctx.update(id, Some("billing_portal.configuration.updated"), |config| {
        apply_config(config, p);
        if let Some(active) = active {
            config["active"] = json!(active);
        }
        config["updated"] = json!(now);
    })
}

pub fn configuration_list(ctx: &mut Ctx<'_>, p: &Value) -> Result<Value, ApiError> {
    let mut q = p.clone();
    let active = params::boolean(p, "active")?;
    let is_default = params::boolean(p, "is_default")?;
    if let Some(map) = q.as_object_mut() {
        map.remove("active");
        map.remove("is_default");
    }
    let mut list = list_filtered(
        ctx,
        &q,
        "billing_portal.configuration",
        "/v1/billing_portal/configurations",
        &[],
    )?;
    if let Some(data) = list["data"].as_array_mut() {
        data.retain(|c| {
            active.is_none_or(|a| c["active"] == a)
                && is_default.is_none_or(|d| c["is_default"] == d)
        });
    }
    Ok(list)
}

pub fn session_create(ctx: &mut Ctx<'_>, p: &Value) -> Result<Value, ApiError> {
    form::check_allowed(
        p,
        &[
            "customer",
            "configuration",
            "return_url",
            "locale",
            "expand.[]",
            "flow_data.type",
            "flow_data.after_completion.type",
            "flow_data.after_completion.redirect.return_url",
            "flow_data.after_completion.hosted_confirmation.custom_message",
            "flow_data.subscription_update.subscription",
            "flow_data.subscription_cancel.subscription",
            "flow_data.subscription_update_confirm.subscription",
            "flow_data.subscription_update_confirm.items.[].id",
            "flow_data.subscription_update_confirm.items.[].price",
            "flow_data.subscription_update_confirm.items.[].quantity",
        ],
    )?;
    let customer = params::required(p, "customer")?;
    ctx.fetch(customer, "customer", "customer")?;
    let configuration = match params::string(p, "configuration") {
        Some(id) => ctx.fetch(id, "billing_portal.configuration", "configuration")?,
        None => ctx
            .store
            .list("billing_portal.configuration")
            .find(|c| c["is_default"] == true)
            .cloned()
            .ok_or_else(|| ApiError::invalid_request("No configuration provided and your test mode default configuration has not been created. Provide a configuration or create your default by saving your customer portal settings in test mode."))?,
    };
    let flow = match params::string(&p["flow_data"], "type") {
        None => Value::Null,
        Some(
            kind @ ("subscription_update" | "subscription_cancel" | "subscription_update_confirm"),
        ) => {
            let sub = p["flow_data"][kind]["subscription"]
                .as_str()
                .ok_or_else(|| {
                    ApiError::missing_parameter(&format!("flow_data[{kind}][subscription]"))
                })?;
            let subscription = ctx.fetch(
                sub,
                "subscription",
                &format!("flow_data[{kind}][subscription]"),
            )?;
            if subscription["customer"] != customer {
                return Err(ApiError::invalid_parameter(
                    &format!("flow_data[{kind}][subscription]"),
                    "The subscription does not belong to this customer.",
                ));
            }
            let items: Vec<Value> = p["flow_data"]["subscription_update_confirm"]["items"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(|item| {
                    // Stripe fills the quantity in from the item when it is not given.
                    let current = subscription["items"]["data"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .find(|i| i["id"] == item["id"])
                        .and_then(|i| i["quantity"].as_i64())
                        .unwrap_or(1);
                    let quantity = item["quantity"]
                        .as_str()
                        .and_then(|q| q.parse::<i64>().ok())
                        .unwrap_or(current);
                    json!({"id": item["id"], "price": item["price"], "quantity": quantity})
                })
                .collect();
            if kind == "subscription_update_confirm" {
                if items.is_empty() {
                    return Err(ApiError::missing_parameter(
                        "flow_data[subscription_update_confirm][items]",
                    ));
                }
                for (i, item) in items.iter().enumerate() {
                    if let Some(price) = item["price"].as_str() {
                        super::price_of(
                            ctx,
                            price,
                            &format!("flow_data[subscription_update_confirm][items][{i}][price]"),
                        )?;
                    }
                }
            }
            json!({
                "type": kind,
                "after_completion": {"type": params::string(&p["flow_data"]["after_completion"], "type").unwrap_or("portal_homepage"),
                    "redirect": p["flow_data"]["after_completion"]["redirect"]["return_url"].as_str().map(|url| json!({"return_url": url})),
                    "hosted_confirmation": null},
                "subscription_cancel": if kind == "subscription_cancel" { json!({"retention": null, "subscription": sub}) } else { Value::Null },
                "subscription_update": if kind == "subscription_update" { json!({"subscription": sub}) } else { Value::Null },
                "subscription_update_confirm": if kind == "subscription_update_confirm" { json!({"discounts": [], "items": items, "subscription": sub}) } else { Value::Null },
            })
        }
        Some("payment_method_update") => {
            json!({"type": "payment_method_update", "after_completion": {"type": "portal_homepage", "redirect": null, "hosted_confirmation": null},
            "subscription_cancel": null, "subscription_update": null, "subscription_update_confirm": null})
        }
        Some(other) => {
            return Err(ApiError::invalid_parameter(
                "flow_data[type]",
                format!("Invalid flow_data[type]: {other}"),
            ))
        }
    };
    let id = new_id("bps");
    let return_url = params::string(p, "return_url")
        .map(str::to_owned)
        .or_else(|| {
            configuration["default_return_url"]
                .as_str()
                .map(str::to_owned)
        });
    let session = json!({
        "id": id, "object": "billing_portal.session", "configuration": configuration["id"], "created": ctx.now(),
        "customer": customer, "customer_account": null, "flow": flow, "livemode": false, "locale": params::string(p, "locale"),
        "on_behalf_of": null, "return_url": return_url, "url": format!("{}portal/{id}", ctx.emulator.base_url),
    });
    ctx.store.insert(session.clone());
    Ok(session)
}
