//! Display strings computed from the catalog's numbers, never typed by hand:
//! "$49/month", "$490/year", "$40.83/month", "Save 17%", "Buy for $29".

use super::{money, BillingType, CallToActionView, Interval, Plan, Price, PriceDisplay};

pub fn price_display(plan: &Plan, price: &Price) -> PriceDisplay {
    let amount = money::format(price.amount, &price.currency, true);
    let per = if plan.per_seat { " per seat" } else { "" };
    let label = match price.interval {
        Interval::Month if plan.per_seat => format!("{amount} per seat / month"),
        Interval::Year if plan.per_seat => format!("{amount} per seat / year"),
        Interval::Month => format!("{amount}/month"),
        Interval::Year => format!("{amount}/year"),
        Interval::OneTime => amount,
    };
    let (note, savings) = match (price.interval, plan.price(Interval::Month)) {
        (Interval::Year, monthly) => {
            let per_month = money::format(
                (price.amount as f64 / 12.0).round() as i64,
                &price.currency,
                true,
            );
            let savings = monthly
                .filter(|m| m.currency == price.currency)
                .and_then(|m| savings_percent(m.amount, price.amount))
                .map(|percent| format!("Save {percent}%"));
            (Some(format!("{per_month}{per}/month")), savings)
        }
        (Interval::OneTime, _) => (Some("one-time payment".to_owned()), None),
        _ => (None, None),
    };
    PriceDisplay {
        label,
        note,
        savings,
    }
}

/// The free plan's price, in the catalog's currency: a card without a price
/// started its feature list higher than the others.
pub fn free_price(currency: &str) -> PriceDisplay {
    PriceDisplay {
        label: money::format(0, currency, true),
        note: Some("Free forever".to_owned()),
        savings: None,
    }
}

/// Percent saved by paying yearly instead of 12 monthly payments, rounded; `None`
/// when yearly saves nothing.
pub fn savings_percent(monthly: i64, yearly: i64) -> Option<u32> {
    let full = monthly.checked_mul(12)?;
    if full <= 0 || yearly >= full {
        return None;
    }
    let percent = ((full - yearly) as f64 * 100.0 / full as f64).round() as u32;
    (percent > 0).then_some(percent)
}

/// What the visitor already has, as far as the pricing page cares: with the
/// catalog, all a pricing view is made of (`views::build::pricing_for`), so the
/// page cache keeps signed-in pricing pages under it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Holdings {
    pub signed_in: bool,
    /// The plan and interval of a live subscription.
    pub subscription: Option<(String, Interval)>,
    /// One-time plans bought and not refunded.
    pub owned: Vec<String>,
}

pub fn call_to_action(plan: &Plan, interval: Interval, holdings: &Holdings) -> CallToActionView {
    let current = || CallToActionView {
        text: plan
            .cta
            .current
            .clone()
            .unwrap_or_else(|| "Current Plan".to_owned()),
        disabled: true,
    };
    let enabled = |text: String| CallToActionView {
        text,
        disabled: false,
    };
    match plan.billing {
        BillingType::Free => {
            if holdings.signed_in && holdings.subscription.is_none() {
                current()
            } else {
                enabled(
                    plan.cta
                        .start
                        .clone()
                        .unwrap_or_else(|| "Get Started Free".to_owned()),
                )
            }
        }
        BillingType::OneTime => {
            if holdings.owned.contains(&plan.id) {
                CallToActionView {
                    text: plan
                        .cta
                        .owned
                        .clone()
                        .unwrap_or_else(|| "Purchased".to_owned()),
                    disabled: true,
                }
            } else {
                let price = plan
                    .price(Interval::OneTime)
                    .map(|p| money::format(p.amount, &p.currency, true))
                    .unwrap_or_default();
                let template = plan
                    .cta
                    .buy
                    .clone()
                    .unwrap_or_else(|| "Buy for {price}".to_owned());
                enabled(template.replace("{price}", &price))
            }
        }
        BillingType::Subscription => {
            let interval = if interval == Interval::Year && plan.price(Interval::Year).is_some() {
                Interval::Year
            } else {
                Interval::Month
            };
            if holdings
                .subscription
                .as_ref()
                .is_some_and(|(id, i)| *id == plan.id && *i == interval)
            {
                return current();
            }
            let (custom, word) = match interval {
                Interval::Year => (&plan.cta.yearly, "Yearly"),
                _ => (&plan.cta.monthly, "Monthly"),
            };
            let price = plan
                .price(interval)
                .map(|p| price_display(plan, p).label)
                .unwrap_or_default();
            enabled(
                custom
                    .clone()
                    .unwrap_or_else(|| format!("Go {} {word}", plan.name))
                    .replace("{price}", &price),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::load::parse;

    fn example() -> crate::catalog::Catalog {
        parse(include_str!("../../plans.toml")).unwrap()
    }

    #[test]
    fn premium_strings_match_the_guide() {
        let catalog = example();
        let premium = catalog.plan("premium").unwrap();
        let monthly = price_display(premium, premium.price(Interval::Month).unwrap());
        let yearly = price_display(premium, premium.price(Interval::Year).unwrap());
        assert_eq!(
            monthly,
            PriceDisplay {
                label: "$49/month".into(),
                note: None,
                savings: None
            }
        );
        assert_eq!(
            yearly,
            PriceDisplay {
                label: "$490/year".into(),
                note: Some("$40.83/month".into()),
                savings: Some("Save 17%".into())
            }
        );
        let pack = catalog.plan("standard_pack").unwrap();
        let pack_price = price_display(pack, &pack.prices[0]);
        assert_eq!(pack_price.label, "$29");
        assert_eq!(pack_price.note.as_deref(), Some("one-time payment"));
        assert_eq!(
            free_price("usd"),
            PriceDisplay {
                label: "$0".into(),
                note: Some("Free forever".into()),
                savings: None
            }
        );
        assert_eq!(free_price("jpy").label, "¥0");
        let team = catalog.plan("team").unwrap();
        assert_eq!(
            price_display(team, team.price(Interval::Month).unwrap()).label,
            "$12 per seat / month"
        );
        let yearly = price_display(team, team.price(Interval::Year).unwrap());
        assert_eq!(yearly.label, "$120 per seat / year");
        assert_eq!(yearly.note.as_deref(), Some("$10 per seat/month"));
    }

    #[test]
    fn savings_are_computed_not_typed() {
        assert_eq!(savings_percent(4900, 49_000), Some(17));
        assert_eq!(savings_percent(1000, 10_000), Some(17));
        assert_eq!(savings_percent(1000, 12_000), None);
        assert_eq!(savings_percent(1000, 13_000), None);
        assert_eq!(savings_percent(0, 0), None);
        assert_eq!(savings_percent(1500, 15_000), Some(17));
        assert_eq!(savings_percent(2000, 18_000), Some(25));
    }

    #[test]
    fn zero_decimal_currencies_format_without_minor_units() {
        let catalog = parse(
            "[[plans]]\nid = \"p\"\nname = \"Pro\"\nbilling = \"subscription\"\n\
             [[plans.prices]]\nlookup_key = \"m\"\namount = 1200\ncurrency = \"jpy\"\ninterval = \"month\"\n\
             [[plans.prices]]\nlookup_key = \"y\"\namount = 12000\ncurrency = \"jpy\"\ninterval = \"year\"\n",
        )
        .unwrap();
        let plan = &catalog.plans[0];
        let yearly = price_display(plan, plan.price(Interval::Year).unwrap());
        assert_eq!(yearly.label, "¥12,000/year");
        assert_eq!(yearly.note.as_deref(), Some("¥1,000/month"));
        assert_eq!(yearly.savings.as_deref(), Some("Save 17%"));
    }

    #[test]
    fn calls_to_action_know_the_visitors_plan() {
        let catalog = example();
        let (free, pack, premium) = (
            catalog.plan("free").unwrap(),
            catalog.plan("standard_pack").unwrap(),
            catalog.plan("premium").unwrap(),
        );
        let visitor = Holdings::default();
        let signed_in = Holdings {
            signed_in: true,
            ..Holdings::default()
        };
        let monthly_subscriber = Holdings {
            signed_in: true,
            subscription: Some(("premium".into(), Interval::Month)),
            owned: vec!["standard_pack".into()],
        };
        let cta = |plan, interval, holdings| call_to_action(plan, interval, holdings);

        assert_eq!(
            cta(free, Interval::Month, &visitor),
            CallToActionView {
                text: "Get Started Free".into(),
                disabled: false
            }
        );
        assert_eq!(
            cta(free, Interval::Month, &signed_in),
            CallToActionView {
                text: "Current Plan".into(),
                disabled: true
            }
        );
        assert_eq!(
            cta(pack, Interval::Month, &visitor),
            CallToActionView {
                text: "Buy for $29".into(),
                disabled: false
            }
        );
        assert_eq!(
            cta(pack, Interval::Month, &monthly_subscriber),
            CallToActionView {
                text: "Purchased".into(),
                disabled: true
            }
        );
        assert_eq!(
            cta(premium, Interval::Month, &visitor).text,
            "Go Premium Monthly"
        );
        assert_eq!(
            cta(premium, Interval::Year, &visitor).text,
            "Go Premium Yearly"
        );
        assert_eq!(
            cta(premium, Interval::Month, &monthly_subscriber),
            CallToActionView {
                text: "Current Plan".into(),
                disabled: true
            }
        );
        assert_eq!(
            cta(premium, Interval::Year, &monthly_subscriber).text,
            "Go Premium Yearly"
        );
        assert_eq!(
            cta(free, Interval::Month, &monthly_subscriber).text,
            "Get Started Free"
        );
    }
}
