//! What a click on a plan means for this user: a pure decision, so the rules
//! (free makes no Stripe call, a subscriber changes plan in the portal instead of
//! buying a second subscription, an owned pack is not sold twice) have unit tests.

use super::access::Access;
use crate::catalog::{BillingType, Catalog, Interval, Plan, Price};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CheckoutPlan<'a> {
    /// The free plan: nothing to buy.
    Free,
    /// A new Checkout Session for this price.
    Checkout {
        plan: &'a Plan,
        price: &'a Price,
        subscription: bool,
    },
    /// A live subscription moves to `price` through the portal's confirm flow.
    ChangePlan {
        subscription_id: String,
        price: &'a Price,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CheckoutRefusal {
    #[error("That plan does not exist.")]
    UnknownPlan,
    #[error("That plan has no {0} price.")]
    NoPrice(&'static str),
    #[error("You are already on this plan.")]
    AlreadyCurrent,
    #[error("You already own this pack.")]
    AlreadyOwned,
    /// The Stripe customer's email is the account's identity: it must be proven first.
    #[error("Confirm your email address first: open the link we sent you (your billing page can send it again).")]
    EmailNotVerified,
}

fn word(interval: Interval) -> &'static str {
    match interval {
        Interval::Month => "monthly",
        Interval::Year => "yearly",
        Interval::OneTime => "one-time",
    }
}

pub fn decide<'a>(
    catalog: &'a Catalog,
    plan_id: &str,
    interval: Interval,
    access: &Access,
) -> Result<CheckoutPlan<'a>, CheckoutRefusal> {
    let plan = catalog.plan(plan_id).ok_or(CheckoutRefusal::UnknownPlan)?;
    match plan.billing {
        BillingType::Free => Ok(CheckoutPlan::Free),
        BillingType::OneTime => {
            if access.owned.contains(&plan.id) {
                return Err(CheckoutRefusal::AlreadyOwned);
            }
            let price = plan
                .price(Interval::OneTime)
                .ok_or(CheckoutRefusal::NoPrice(word(Interval::OneTime)))?;
            Ok(CheckoutPlan::Checkout {
                plan,
                price,
                subscription: false,
            })
        }
        BillingType::Subscription => {
            let interval = match interval {
                Interval::OneTime => Interval::Month,
                other => other,
            };
            let price = plan
                .price(interval)
                .ok_or(CheckoutRefusal::NoPrice(word(interval)))?;
            if let Some(current) = &access.subscription {
                if current.plan_id == plan.id && current.interval == Some(interval) {
                    return Err(CheckoutRefusal::AlreadyCurrent);
                }
            }
            match &access.live_subscription_id {
                Some(subscription_id) => Ok(CheckoutPlan::ChangePlan {
                    subscription_id: subscription_id.clone(),
                    price,
                }),
                None => Ok(CheckoutPlan::Checkout {
                    plan,
                    price,
                    subscription: true,
                }),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        billing::access::{evaluate, BillingSnapshot, Policy, PurchaseFacts, SubscriptionFacts},
        catalog::load::parse,
    };
    use chrono::{TimeZone, Utc};

    fn catalog() -> Catalog {
        parse(include_str!("../../plans.toml")).unwrap()
    }

    fn access(snapshot: BillingSnapshot) -> Access {
        evaluate(
            &snapshot,
            &catalog(),
            Utc.timestamp_opt(1_800_000_000, 0).unwrap(),
            &Policy::default(),
        )
    }

    fn subscribed(status: &str, interval: Interval) -> Access {
        access(BillingSnapshot {
            subscriptions: vec![SubscriptionFacts {
                stripe_subscription_id: "sub_1".into(),
                status: status.into(),
                plan_id: Some("premium".into()),
                interval: Some(interval),
                current_period_start: Some(Utc.timestamp_opt(1_799_990_000, 0).unwrap()),
                current_period_end: Some(Utc.timestamp_opt(1_802_000_000, 0).unwrap()),
                cancel_at_period_end: false,
                cancel_at: None,
                trial_end: None,
            }],
            purchases: vec![],
        })
    }

    #[test]
    fn free_needs_no_stripe() {
        let catalog = catalog();
        assert_eq!(
            decide(
                &catalog,
                "free",
                Interval::Month,
                &access(Default::default())
            ),
            Ok(CheckoutPlan::Free)
        );
    }

    #[test]
    fn unknown_plans_are_refused() {
        let catalog = catalog();
        assert_eq!(
            decide(
                &catalog,
                "price_123",
                Interval::Month,
                &access(Default::default())
            ),
            Err(CheckoutRefusal::UnknownPlan)
        );
    }

    #[test]
    fn a_visitor_without_a_subscription_checks_out_the_chosen_interval() {
        let catalog = catalog();
        let Ok(CheckoutPlan::Checkout {
            price,
            subscription,
            ..
        }) = decide(
            &catalog,
            "premium",
            Interval::Year,
            &access(Default::default()),
        )
        else {
            panic!("checkout expected");
        };
        assert_eq!(price.lookup_key, "premium_yearly");
        assert!(subscription);
    }

    #[test]
    fn a_subscriber_changes_plan_instead_of_subscribing_twice() {
        let catalog = catalog();
        for status in ["active", "trialing", "past_due"] {
            let result = decide(
                &catalog,
                "premium",
                Interval::Year,
                &subscribed(status, Interval::Month),
            );
            let Ok(CheckoutPlan::ChangePlan {
                subscription_id,
                price,
            }) = result
            else {
                panic!("{status}: plan change expected, got {result:?}");
            };
            assert_eq!(subscription_id, "sub_1");
            assert_eq!(price.lookup_key, "premium_yearly");
        }
        assert_eq!(
            decide(
                &catalog,
                "premium",
                Interval::Month,
                &subscribed("active", Interval::Month)
            ),
            Err(CheckoutRefusal::AlreadyCurrent)
        );
        // A canceled subscription binds nothing: a new checkout.
        assert!(matches!(
            decide(
                &catalog,
                "premium",
                Interval::Month,
                &subscribed("canceled", Interval::Month)
            ),
            Ok(CheckoutPlan::Checkout { .. })
        ));
    }

    #[test]
    fn packs_are_sold_once() {
        let catalog = catalog();
        let owned = access(BillingSnapshot {
            subscriptions: vec![],
            purchases: vec![PurchaseFacts {
                plan_id: Some("standard_pack".into()),
                quantity: 1,
                status: crate::db::entities::one_time_purchases::PurchaseStatus::Paid,
                amount_total: 2900,
                currency: "usd".into(),
                created_at: chrono::Utc::now(),
            }],
        });
        assert_eq!(
            decide(&catalog, "standard_pack", Interval::OneTime, &owned),
            Err(CheckoutRefusal::AlreadyOwned)
        );
        assert!(matches!(
            decide(
                &catalog,
                "standard_pack",
                Interval::OneTime,
                &access(Default::default())
            ),
            Ok(CheckoutPlan::Checkout {
                subscription: false,
                ..
            })
        ));
    }
}
