//! Coupons and promotion codes: enough for `allow_promotion_codes` to be tried on
//! the hosted Checkout page (percent or amount off, once / forever / repeating).

use serde_json::{json, Value};

use crate::{
    context::{list_filtered, new_id, Ctx},
    error::ApiError,
    form, objects, params,
};

pub fn coupon_create(ctx: &mut Ctx<'_>, p: &Value) -> Result<Value, ApiError> {
    form::check_allowed(
        p,
        &[
            "id",
            "name",
            "percent_off",
            "amount_off",
            "currency",
            "duration",
            "duration_in_months",
            "max_redemptions",
            "redeem_by",
            "metadata",
            "metadata.*",
            "expand.[]",
        ],
    )?;
    let percent_off = match params::string(p, "percent_off") {
        Some(raw) => Some(
            raw.parse::<f64>()
                .ok()
                .filter(|v| *v > 0.0 && *v <= 100.0)
                .ok_or_else(|| {
                    ApiError::invalid_parameter(
                        "percent_off",
                        "percent_off must be between 0 and 100.",
                    )
                })?,
        ),
        None => None,
    };
    let amount_off = params::integer(p, "amount_off", "amount_off")?;
    if percent_off.is_some() == amount_off.is_some() {
        return Err(ApiError::invalid_request(
            "You must pass exactly one of percent_off or amount_off.",
        ));
    }
    if amount_off.is_some() && params::string(p, "currency").is_none() {
        return Err(ApiError::missing_parameter("currency"));
    }
    let duration = params::string(p, "duration").unwrap_or("once");
    if !matches!(duration, "once" | "forever" | "repeating") {
        return Err(ApiError::invalid_parameter(
            "duration",
            "duration must be once, forever or repeating.",
        ));
    }
    let months = params::integer(p, "duration_in_months", "duration_in_months")?;
    if duration == "repeating" && months.is_none() {
        return Err(ApiError::missing_parameter("duration_in_months"));
    }
    let id = params::string(p, "id").map_or_else(|| new_id("x")[2..10].to_owned(), str::to_owned);
    let coupon = objects::build(
        "coupon",
        json!({
            "id": id, "created": ctx.now(), "name": params::string(p, "name"), "percent_off": percent_off,
            "amount_off": amount_off, "currency": params::string(p, "currency"), "duration": duration,
            "duration_in_months": months, "max_redemptions": params::integer(p, "max_redemptions", "max_redemptions")?,
            "redeem_by": params::integer(p, "redeem_by", "redeem_by")?, "metadata": params::metadata(p),
            "times_redeemed": 0, "valid": true, "applies_to": null, "currency_options": null,
        }),
    );
    ctx.store.insert(coupon.clone());
    ctx.emit("coupon.created", &coupon, None);
    Ok(coupon)
}

pub fn coupon_list(ctx: &mut Ctx<'_>, p: &Value) -> Result<Value, ApiError> {
    list_filtered(ctx, p, "coupon", "/v1/coupons", &[])
}

pub fn promotion_code_create(ctx: &mut Ctx<'_>, p: &Value) -> Result<Value, ApiError> {
    form::check_allowed(
        p,
        &[
            "promotion.type",
            "promotion.coupon",
            "code",
            "active",
            "max_redemptions",
            "expires_at",
            "metadata",
            "metadata.*",
            "customer",
            "expand.[]",
        ],
    )?;
    if params::string(&p["promotion"], "type") != Some("coupon") {
        return Err(ApiError::missing_parameter("promotion[type]"));
    }
    let coupon = params::required(&p["promotion"], "coupon")
        .map_err(|_| ApiError::missing_parameter("promotion[coupon]"))?;
    ctx.fetch(coupon, "coupon", "promotion[coupon]")?;
    let code =
        params::string(p, "code").map_or_else(|| new_id("x")[2..10].to_uppercase(), str::to_owned);
    if ctx.store.list("promotion_code").any(|promo| {
        promo["code"]
            .as_str()
            .is_some_and(|c| c.eq_ignore_ascii_case(&code))
            && promo["active"] == true
    }) {
        return Err(ApiError::invalid_parameter(
            "code",
            "An active promotion code with this code already exists.",
        ));
    }
    let promo = objects::build(
        "promotion_code",
        json!({
            "id": new_id("promo"), "created": ctx.now(), "code": code, "active": params::boolean(p, "active")?.unwrap_or(true),
            "customer": params::string(p, "customer"), "expires_at": params::integer(p, "expires_at", "expires_at")?,
            "max_redemptions": params::integer(p, "max_redemptions", "max_redemptions")?, "metadata": params::metadata(p),
            "promotion": {"coupon": coupon, "type": "coupon"}, "times_redeemed": 0,
            "restrictions": {"first_time_transaction": false, "minimum_amount": null, "minimum_amount_currency": null, "currency_options": null},
        }),
    );
    ctx.store.insert(promo.clone());
    ctx.emit("promotion_code.created", &promo, None);
    Ok(promo)
}

pub fn promotion_code_list(ctx: &mut Ctx<'_>, p: &Value) -> Result<Value, ApiError> {
    list_filtered(
        ctx,
        p,
        "promotion_code",
        "/v1/promotion_codes",
        &["code", "coupon"],
    )
}

/// The discount a code gives on `amount` (in `currency`), if the code is usable.
pub fn redeem(ctx: &Ctx<'_>, code: &str, currency: &str) -> Result<(Value, Value), &'static str> {
    let now = ctx.now();
    let promo = ctx
        .store
        .list("promotion_code")
        .find(|promo| {
            promo["code"]
                .as_str()
                .is_some_and(|c| c.eq_ignore_ascii_case(code.trim()))
                && promo["active"] == true
        })
        .cloned()
        .ok_or("This code is invalid.")?;
    if promo["expires_at"].as_i64().is_some_and(|at| at <= now)
        || promo["max_redemptions"]
            .as_i64()
            .is_some_and(|max| promo["times_redeemed"].as_i64().unwrap_or(0) >= max)
    {
        return Err("This code has expired.");
    }
    let coupon = ctx
        .store
        .get(promo["promotion"]["coupon"].as_str().unwrap_or_default())
        .cloned()
        .ok_or("This code is invalid.")?;
    if coupon["amount_off"].is_i64() && coupon["currency"] != currency {
        return Err("This code cannot be used with this currency.");
    }
    Ok((promo, coupon))
}

/// How much `coupon` takes off `amount`.
pub fn discount(coupon: &Value, amount: i64) -> i64 {
    let off = match (
        coupon["percent_off"].as_f64(),
        coupon["amount_off"].as_i64(),
    ) {
        (Some(percent), _) => (amount as f64 * percent / 100.0).round() as i64,
        (None, Some(off)) => off,
        _ => 0,
    };
    off.clamp(0, amount.max(0))
}

/// How many invoices a coupon applies to: `None` for forever.
pub fn invoices_covered(coupon: &Value, interval: &str) -> Option<i64> {
    match coupon["duration"].as_str() {
        Some("forever") => None,
        Some("repeating") => {
            let months = coupon["duration_in_months"].as_i64().unwrap_or(1);
            Some(if interval == "year" {
                (months + 11) / 12
            } else {
                months
            })
        }
        _ => Some(1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discounts_never_exceed_the_amount() {
        assert_eq!(discount(&json!({"percent_off": 20.0}), 4900), 980);
        assert_eq!(discount(&json!({"amount_off": 1000}), 4900), 1000);
        assert_eq!(discount(&json!({"amount_off": 9000}), 4900), 4900);
        assert_eq!(
            invoices_covered(
                &json!({"duration": "repeating", "duration_in_months": 3}),
                "month"
            ),
            Some(3)
        );
        assert_eq!(
            invoices_covered(&json!({"duration": "forever"}), "month"),
            None
        );
        assert_eq!(
            invoices_covered(&json!({"duration": "once"}), "year"),
            Some(1)
        );
    }
}
