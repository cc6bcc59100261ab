//! The billing engine: payments with test cards, subscriptions and their
//! invoices, Checkout, the customer portal, test clocks and refunds.

pub mod checkout;
pub mod clocks;
pub mod coupons;
pub mod portal;
pub mod refunds;
pub mod subscriptions;

use chrono::{DateTime, Months};
use serde_json::{json, Value};

use crate::{
    context::{new_id, Ctx},
    error::ApiError,
    objects, str_of,
};

/// What a Stripe test card number does (https://docs.stripe.com/testing).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Card {
    Succeeds,
    Declines {
        message: &'static str,
        decline_code: &'static str,
    },
    /// 4000002500003155: 3-D Secure is required before the payment can succeed.
    RequiresAuthentication,
    /// 4000000000000341: attaches to a customer, then every charge fails.
    AttachesThenFails,
}

impl Card {
    pub fn from_number(number: &str) -> Result<Card, &'static str> {
        let digits: String = number
            .chars()
            .filter(|c| !c.is_whitespace() && *c != '-')
            .collect();
        if digits.len() < 12 || !digits.chars().all(|c| c.is_ascii_digit()) {
            return Err("Your card number is incomplete.");
        }
        if !luhn(&digits) {
            return Err("Your card number is invalid.");
        }
        Ok(match digits.as_str() {
            "4000000000000002" => Card::Declines {
                message: "Your card was declined.",
                decline_code: "generic_decline",
            },
            "4000000000009995" => Card::Declines {
                message: "Your card has insufficient funds.",
                decline_code: "insufficient_funds",
            },
            "4000000000009987" => Card::Declines {
                message: "Your card was declined.",
                decline_code: "lost_card",
            },
            "4000000000000069" => Card::Declines {
                message: "Your card has expired.",
                decline_code: "expired_card",
            },
            "4000002500003155" | "4000002760003184" => Card::RequiresAuthentication,
            "4000000000000341" => Card::AttachesThenFails,
            _ => Card::Succeeds,
        })
    }

    /// The outcome of charging a card that is already saved (no customer present).
    pub fn off_session_charge(self) -> Result<(), (&'static str, &'static str)> {
        match self {
            Card::Succeeds | Card::RequiresAuthentication => Ok(()),
            Card::Declines {
                message,
                decline_code,
            } => Err((message, decline_code)),
            Card::AttachesThenFails => Err(("Your card was declined.", "generic_decline")),
        }
    }
}

fn luhn(digits: &str) -> bool {
    let sum: u32 = digits
        .chars()
        .rev()
        .filter_map(|c| c.to_digit(10))
        .enumerate()
        .map(|(i, d)| {
            if i % 2 == 1 {
                let d = d * 2;
                if d > 9 {
                    d - 9
                } else {
                    d
                }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// `start` moved on by one billing interval, in calendar terms (Jan 31 + 1 month = Feb 28).
pub fn add_interval(start: i64, interval: &str, count: i64) -> i64 {
    let count = count.max(1);
    let Some(time) = DateTime::from_timestamp(start, 0) else {
        return start;
    };
    let next = match interval {
        "day" => Some(time + chrono::Duration::days(count)),
        "week" => Some(time + chrono::Duration::weeks(count)),
        "year" => time.checked_add_months(Months::new(12 * count as u32)),
        _ => time.checked_add_months(Months::new(count as u32)),
    };
    next.map_or(start, |t| t.timestamp())
}

/// Saves a card as a payment method of `customer` (`payment_method.attached`).
pub fn attach_card(ctx: &mut Ctx<'_>, customer: &str, number: &str) -> Value {
    let pm = card_for_one_payment(ctx, customer, number);
    let id = pm["id"].as_str().unwrap_or_default().to_owned();
    let pm = ctx
        .update(&id, None, |pm| pm["customer"] = json!(customer))
        .unwrap_or(pm);
    ctx.emit("payment_method.attached", &pm, None);
    pm
}

/// A card used for one payment and not kept: a payment-mode Checkout saves it
/// to the customer only when asked (`payment_intent_data[setup_future_usage]`).
pub fn card_for_one_payment(ctx: &mut Ctx<'_>, customer: &str, number: &str) -> Value {
    let id = new_id("pm");
    let now = ctx.now_for_customer(customer);
    let pm = objects::payment_method(&id, now, None, number);
    ctx.store.insert(pm.clone());
    ctx.store.private(&id)["number"] = json!(number);
    pm
}

pub fn card_of(ctx: &mut Ctx<'_>, payment_method: &str) -> Card {
    let number = ctx.store.private(payment_method)["number"]
        .as_str()
        .unwrap_or("4242424242424242")
        .to_owned();
    Card::from_number(&number).unwrap_or(Card::Succeeds)
}

pub struct Charge<'a> {
    pub customer: Option<&'a str>,
    pub amount: i64,
    pub currency: &'a str,
    pub payment_method: &'a str,
    pub metadata: Value,
    pub description: Option<String>,
}

/// Creates a PaymentIntent and tries to charge it. Returns the PaymentIntent, which
/// is `succeeded` (with a charge) or `requires_payment_method` with
/// `last_payment_error` set, plus the decline if there was one.
pub fn charge(
    ctx: &mut Ctx<'_>,
    spec: Charge<'_>,
    card: Card,
) -> (Value, Option<(&'static str, &'static str)>) {
    let now = spec
        .customer
        .map_or_else(|| ctx.now(), |c| ctx.now_for_customer(c));
    let pi_id = new_id("pi");
    let mut pi = objects::payment_intent(
        &pi_id,
        now,
        spec.amount,
        spec.currency,
        spec.customer,
        spec.metadata.clone(),
    );
    pi["payment_method"] = json!(spec.payment_method);
    pi["description"] = json!(spec.description);
    ctx.store.insert(pi.clone());
    ctx.emit("payment_intent.created", &pi, None);

    let outcome = card.off_session_charge();
    let charge_id = new_id("ch");
    let number = ctx.store.private(spec.payment_method)["number"]
        .as_str()
        .unwrap_or("4242424242424242")
        .to_owned();
    let last4: String = number
        .chars()
        .skip(number.len().saturating_sub(4))
        .collect();
    let (status, failure) = match outcome {
        Ok(()) => ("succeeded", None),
        Err(failure) => ("failed", Some(failure)),
    };
    let charge = objects::build(
        "charge",
        json!({
            "id": charge_id, "created": now, "amount": spec.amount, "amount_captured": if failure.is_none() { spec.amount } else { 0 },
            "amount_refunded": 0, "currency": spec.currency, "customer": spec.customer, "payment_intent": pi_id,
            "payment_method": spec.payment_method, "metadata": spec.metadata, "description": spec.description,
            "captured": failure.is_none(), "paid": failure.is_none(), "status": status, "refunded": false, "disputed": false,
            "balance_transaction": null, "billing_details": {"address": null, "email": null, "name": null, "phone": null, "tax_id": null},
            "failure_code": failure.map(|_| "card_declined"), "failure_message": failure.map(|f| f.0),
            "outcome": {"advice_code": null, "network_advice_code": null, "network_decline_code": null,
                "network_status": if failure.is_none() { "approved_by_network" } else { "declined_by_network" },
                "reason": failure.map(|f| f.1), "risk_level": "normal", "seller_message": if failure.is_none() { "Payment complete." } else { "The bank did not return any further details with this decline." },
                "type": if failure.is_none() { "authorized" } else { "issuer_declined" }},
            "payment_method_details": {"type": "card", "card": {"brand": "visa", "country": "US", "exp_month": 12, "exp_year": 2034,
                "funding": "credit", "last4": last4, "network": "visa", "checks": null, "three_d_secure": null, "wallet": null,
                "amount_authorized": spec.amount, "authorization_code": null, "fingerprint": format!("fp{last4}"),
                "installments": null, "mandate": null, "network_token": null,
                "network_transaction_id": null, "regulated_status": "unregulated", "transaction_link_id": null}},
            "receipt_url": null, "refunds": objects::list(&format!("/v1/charges/{charge_id}/refunds"), vec![], false),
            "fraud_details": {}, "shipping": null, "source_transfer": null, "transfer_data": null, "transfer_group": null,
            "review": null,
        }),
    );
    ctx.store.insert(charge.clone());
    match failure {
        None => {
            ctx.emit("charge.succeeded", &charge, None);
            let pi = ctx
                .update(&pi_id, Some("payment_intent.succeeded"), |pi| {
                    pi["status"] = json!("succeeded");
                    pi["amount_received"] = json!(spec.amount);
                    pi["latest_charge"] = json!(charge_id);
                })
                .expect("payment intent exists");
            (pi, None)
        }
        Some((message, decline_code)) => {
            ctx.emit("charge.failed", &charge, None);
            // Errors carry the whole payment method, not its id.
            let payment_method = ctx
                .store
                .get(spec.payment_method)
                .cloned()
                .unwrap_or(Value::Null);
            let pi = ctx
                .update(&pi_id, Some("payment_intent.payment_failed"), |pi| {
                    pi["latest_charge"] = json!(charge_id);
                    pi["last_payment_error"] = json!({
                        "type": "card_error", "code": "card_declined", "decline_code": decline_code,
                        "message": message, "charge": charge_id, "payment_method": payment_method,
                    });
                })
                .expect("payment intent exists");
            (pi, Some((message, decline_code)))
        }
    }
}

/// The price and quantity a subscription item or line item refers to.
pub fn price_of(ctx: &Ctx<'_>, price_id: &str, param: &str) -> Result<Value, ApiError> {
    let price = ctx.fetch(price_id, "price", param)?;
    if price["active"] != true {
        return Err(ApiError::invalid_parameter(param, format!("The price specified is inactive. This field only accepts active prices. ({price_id})")));
    }
    Ok(price)
}

pub fn product_name(ctx: &Ctx<'_>, price: &Value) -> String {
    str_of(price, "product")
        .and_then(|product| ctx.store.get(product))
        .and_then(|product| str_of(product, "name"))
        .unwrap_or("Item")
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_cards_behave_as_documented() {
        assert_eq!(Card::from_number("4242 4242 4242 4242"), Ok(Card::Succeeds));
        assert!(matches!(
            Card::from_number("4000000000000002"),
            Ok(Card::Declines {
                decline_code: "generic_decline",
                ..
            })
        ));
        assert!(matches!(
            Card::from_number("4000000000009995"),
            Ok(Card::Declines {
                decline_code: "insufficient_funds",
                ..
            })
        ));
        assert_eq!(
            Card::from_number("4000002500003155"),
            Ok(Card::RequiresAuthentication)
        );
        assert_eq!(
            Card::from_number("4000000000000341"),
            Ok(Card::AttachesThenFails)
        );
        assert_eq!(
            Card::from_number("4242424242424241"),
            Err("Your card number is invalid.")
        );
        assert_eq!(
            Card::from_number("4242"),
            Err("Your card number is incomplete.")
        );
    }

    #[test]
    fn intervals_follow_the_calendar() {
        let jan_31 = 1_769_817_600; // 2026-01-31T00:00:00Z
        assert_eq!(add_interval(jan_31, "month", 1), 1_772_236_800); // 2026-02-28
        assert_eq!(add_interval(jan_31, "year", 1), 1_801_353_600); // 2027-01-31
        assert_eq!(add_interval(jan_31, "day", 2), jan_31 + 2 * 86_400);
    }
}
