//! The one access policy: what a user may use now. A pure function of the user's
//! billing rows, the catalog, the time and the policy settings; pages, server
//! functions and the gated area all ask it, and nothing else decides.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};

use crate::{
    catalog::{BillingType, Catalog, Interval, Limit},
    db::entities::one_time_purchases::PurchaseStatus,
};

/// A subscription row as the policy needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubscriptionFacts {
    pub stripe_subscription_id: String,
    pub status: String,
    pub plan_id: Option<String>,
    pub interval: Option<Interval>,
    pub current_period_start: Option<DateTime<Utc>>,
    pub current_period_end: Option<DateTime<Utc>>,
    pub cancel_at_period_end: bool,
    pub cancel_at: Option<DateTime<Utc>>,
    pub trial_end: Option<DateTime<Utc>>,
}

/// A one-time purchase row as the policy needs it, and as the billing page lists
/// it (amount and date): one read serves both.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PurchaseFacts {
    pub plan_id: Option<String>,
    pub quantity: i32,
    pub status: PurchaseStatus,
    /// In the currency's minor unit, as Stripe charged it.
    pub amount_total: i64,
    pub currency: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BillingSnapshot {
    pub subscriptions: Vec<SubscriptionFacts>,
    pub purchases: Vec<PurchaseFacts>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    /// How long a past_due subscription keeps access while Stripe retries the card.
    pub past_due_grace: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            past_due_grace: Duration::days(7),
        }
    }
}

/// What the UI must tell the user about their subscription.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Notice {
    /// Canceled at period end: access until then.
    EndsOn(DateTime<Utc>),
    TrialEndsOn(DateTime<Utc>),
    /// A renewal failed: access until the grace ends; update the card.
    PaymentFailed {
        grace_until: DateTime<Utc>,
    },
}

/// The subscription that grants access now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CurrentSubscription {
    pub stripe_subscription_id: String,
    pub plan_id: String,
    pub status: String,
    pub interval: Option<Interval>,
    pub renews_on: Option<DateTime<Utc>>,
    pub cancel_at_period_end: bool,
    /// The billing period metered features reset with (`entitlements`).
    pub current_period_start: Option<DateTime<Utc>>,
    pub current_period_end: Option<DateTime<Utc>>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Access {
    /// The plan in force: a subscription's, else the catalog's free plan.
    pub plan_id: Option<String>,
    pub subscription: Option<CurrentSubscription>,
    pub notice: Option<Notice>,
    /// The plan's limits (credits live in the usage ledger).
    pub entitlements: BTreeMap<String, Limit>,
    /// One-time plans bought and not refunded or disputed.
    pub owned: Vec<String>,
    /// Subscriptions that still bind the customer (for "no second subscription"),
    /// with or without access: active, trialing, past_due, unpaid, incomplete.
    pub live_subscription_id: Option<String>,
}

impl Access {
    /// Whether a paid plan is in force (the gated area's question).
    pub fn has_paid_plan(&self) -> bool {
        self.subscription.is_some()
    }
}

/// Stripe statuses under which a subscription still exists for the customer.
pub const LIVE_STATUSES: [&str; 3] = ["active", "trialing", "past_due"];

pub fn is_live_status(status: &str) -> bool {
    LIVE_STATUSES.contains(&status)
}

/// When access from one subscription ends, or `None` when it grants none now.
fn access_until(
    sub: &SubscriptionFacts,
    now: DateTime<Utc>,
    policy: &Policy,
) -> Option<(Option<DateTime<Utc>>, Option<Notice>)> {
    // A scheduled cancellation ends access at the period end (or `cancel_at`), even
    // if the `deleted` event has not arrived yet.
    let scheduled_end = if sub.cancel_at_period_end {
        sub.current_period_end.or(sub.cancel_at)
    } else {
        sub.cancel_at
    };
    if scheduled_end.is_some_and(|end| now >= end) {
        return None;
    }
    let ending = scheduled_end.map(Notice::EndsOn);
    match sub.status.as_str() {
        "active" => Some((scheduled_end, ending)),
        "trialing" => Some((
            scheduled_end,
            ending.or(sub.trial_end.map(Notice::TrialEndsOn)),
        )),
        "past_due" => {
            // The failed renewal opened the current period; grace counts from there.
            let since = sub.current_period_start.unwrap_or(now);
            let grace_until = since + policy.past_due_grace;
            (now < grace_until).then_some((
                Some(grace_until),
                Some(Notice::PaymentFailed { grace_until }),
            ))
        }
        // incomplete, incomplete_expired, unpaid, canceled, paused: no access.
        _ => None,
    }
}

pub fn evaluate(
    snapshot: &BillingSnapshot,
    catalog: &Catalog,
    now: DateTime<Utc>,
    policy: &Policy,
) -> Access {
    let granting = snapshot
        .subscriptions
        .iter()
        .filter(|sub| {
            sub.plan_id
                .as_deref()
                .and_then(|id| catalog.plan(id))
                .is_some_and(|plan| plan.billing == BillingType::Subscription)
        })
        .filter_map(|sub| {
            access_until(sub, now, policy).map(|(until, notice)| (sub, until, notice))
        })
        // The one that lasts longest wins (None = open-ended).
        .max_by_key(|(_, until, _)| until.map_or(i64::MAX, |t| t.timestamp()));

    let owned: Vec<String> = snapshot
        .purchases
        .iter()
        .filter(|p| p.status == PurchaseStatus::Paid)
        .filter_map(|p| p.plan_id.clone())
        .fold(Vec::new(), |mut owned, id| {
            if !owned.contains(&id) {
                owned.push(id);
            }
            owned
        });

    let plan = match &granting {
        Some((sub, _, _)) => sub.plan_id.as_deref().and_then(|id| catalog.plan(id)),
        None => catalog
            .plans
            .iter()
            .find(|plan| plan.billing == BillingType::Free),
    };
    // Credits are not a limit of the plan: packs grant them into the usage
    // ledger (`entitlements::grants`), which holds the balance.
    let entitlements = plan.map(|p| p.limits.clone()).unwrap_or_default();

    let live_subscription_id = snapshot
        .subscriptions
        .iter()
        .find(|sub| is_live_status(&sub.status))
        .map(|sub| sub.stripe_subscription_id.clone());

    Access {
        plan_id: plan.map(|p| p.id.clone()),
        subscription: granting.as_ref().map(|(sub, _, _)| CurrentSubscription {
            stripe_subscription_id: sub.stripe_subscription_id.clone(),
            plan_id: sub.plan_id.clone().unwrap_or_default(),
            status: sub.status.clone(),
            interval: sub.interval,
            renews_on: if sub.cancel_at_period_end || sub.status == "past_due" {
                None
            } else {
                sub.current_period_end
            },
            cancel_at_period_end: sub.cancel_at_period_end,
            current_period_start: sub.current_period_start,
            current_period_end: sub.current_period_end,
        }),
        notice: granting.and_then(|(_, _, notice)| notice),
        entitlements,
        owned,
        live_subscription_id,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::load::parse;
    use chrono::TimeZone;

    fn catalog() -> Catalog {
        parse(include_str!("../../plans.toml")).unwrap()
    }

    fn at(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(secs, 0).unwrap()
    }

    const START: i64 = 1_800_000_000;
    const END: i64 = START + 30 * 86_400;

    fn sub(status: &str) -> SubscriptionFacts {
        SubscriptionFacts {
            stripe_subscription_id: "sub_1".into(),
            status: status.into(),
            plan_id: Some("premium".into()),
            interval: Some(Interval::Month),
            current_period_start: Some(at(START)),
            current_period_end: Some(at(END)),
            cancel_at_period_end: false,
            cancel_at: None,
            trial_end: None,
        }
    }

    fn eval(subs: Vec<SubscriptionFacts>, now: i64) -> Access {
        evaluate(
            &BillingSnapshot {
                subscriptions: subs,
                purchases: vec![],
            },
            &catalog(),
            at(now),
            &Policy::default(),
        )
    }

    #[test]
    fn every_status() {
        let now = START + 86_400;
        // (status, paid plan?, notice kind)
        let table = [
            ("active", true),
            ("trialing", true),
            ("past_due", true),
            ("incomplete", false),
            ("incomplete_expired", false),
            ("unpaid", false),
            ("canceled", false),
            ("paused", false),
        ];
        for (status, paid) in table {
            let access = eval(vec![sub(status)], now);
            assert_eq!(access.has_paid_plan(), paid, "{status}");
            let expected_plan = if paid { "premium" } else { "free" };
            assert_eq!(access.plan_id.as_deref(), Some(expected_plan), "{status}");
        }
    }

    #[test]
    fn no_rows_is_the_free_plan() {
        let access = eval(vec![], START);
        assert_eq!(access.plan_id.as_deref(), Some("free"));
        assert_eq!(access.entitlements.get("projects"), Some(&Limit::Count(1)));
        assert!(access.notice.is_none());
        assert!(access.live_subscription_id.is_none());
    }

    #[test]
    fn cancel_at_period_end_keeps_access_until_the_exact_end() {
        let mut s = sub("active");
        s.cancel_at_period_end = true;
        let before = eval(vec![s.clone()], END - 1);
        assert!(before.has_paid_plan());
        assert_eq!(before.notice, Some(Notice::EndsOn(at(END))));
        assert_eq!(before.subscription.unwrap().renews_on, None);
        assert!(!eval(vec![s.clone()], END).has_paid_plan(), "at the end");
        assert!(!eval(vec![s], END + 1).has_paid_plan());
    }

    #[test]
    fn cancel_at_a_date_ends_access_then() {
        let mut s = sub("active");
        s.cancel_at = Some(at(START + 10));
        assert!(eval(vec![s.clone()], START + 9).has_paid_plan());
        assert!(!eval(vec![s], START + 10).has_paid_plan());
    }

    #[test]
    fn past_due_has_a_grace_period_with_a_banner() {
        let grace_end = START + 7 * 86_400;
        let during = eval(vec![sub("past_due")], grace_end - 1);
        assert!(during.has_paid_plan());
        assert_eq!(
            during.notice,
            Some(Notice::PaymentFailed {
                grace_until: at(grace_end)
            })
        );
        assert!(!eval(vec![sub("past_due")], grace_end).has_paid_plan());
        // Still live for "no second subscription" even after the grace.
        assert_eq!(
            eval(vec![sub("past_due")], grace_end).live_subscription_id,
            Some("sub_1".into())
        );
    }

    #[test]
    fn grace_is_a_setting() {
        let access = evaluate(
            &BillingSnapshot {
                subscriptions: vec![sub("past_due")],
                purchases: vec![],
            },
            &catalog(),
            at(START + 86_400),
            &Policy {
                past_due_grace: Duration::zero(),
            },
        );
        assert!(!access.has_paid_plan());
    }

    #[test]
    fn trial_shows_its_end() {
        let mut s = sub("trialing");
        s.trial_end = Some(at(END));
        let access = eval(vec![s], START);
        assert!(access.has_paid_plan());
        assert_eq!(access.notice, Some(Notice::TrialEndsOn(at(END))));
    }

    #[test]
    fn active_beats_an_old_canceled_one() {
        let mut old = sub("canceled");
        old.stripe_subscription_id = "sub_old".into();
        let access = eval(vec![old, sub("active")], START + 5);
        assert_eq!(
            access.subscription.unwrap().stripe_subscription_id,
            "sub_1".to_owned()
        );
    }

    #[test]
    fn unknown_plans_grant_nothing() {
        let mut s = sub("active");
        s.plan_id = Some("gone".into());
        assert!(!eval(vec![s], START).has_paid_plan());
    }

    #[test]
    fn packs_are_owned_until_refunded() {
        let purchase = |status, quantity| PurchaseFacts {
            plan_id: Some("standard_pack".into()),
            quantity,
            status,
            amount_total: 2900,
            currency: "usd".into(),
            created_at: Utc::now(),
        };
        let snapshot = BillingSnapshot {
            subscriptions: vec![],
            purchases: vec![
                purchase(PurchaseStatus::Paid, 2),
                purchase(PurchaseStatus::Refunded, 1),
                purchase(PurchaseStatus::Pending, 1),
            ],
        };
        let access = evaluate(&snapshot, &catalog(), at(START), &Policy::default());
        assert_eq!(access.owned, vec!["standard_pack".to_owned()]);
        assert_eq!(access.entitlements.get("credits"), None);

        let refunded = BillingSnapshot {
            subscriptions: vec![],
            purchases: vec![
                purchase(PurchaseStatus::Refunded, 1),
                purchase(PurchaseStatus::Reversed, 1),
            ],
        };
        let access = evaluate(&refunded, &catalog(), at(START), &Policy::default());
        assert!(access.owned.is_empty());
    }
}
