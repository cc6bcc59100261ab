//! Catalog rules, checked at start-up: every error names the plan and the field,
//! so a typo in `plans.toml` reads as a to-do item rather than a crash.

use std::collections::HashSet;

use super::{money, BillingType, Catalog, FeatureKind, Interval, Limit, Plan, CREDITS};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub plan: String,
    pub field: String,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "plan `{}`, {}: {}", self.plan, self.field, self.message)
    }
}

/// What is wrong (errors) and what is merely odd (warnings).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub errors: Vec<Problem>,
    pub warnings: Vec<Problem>,
}

pub fn validate(catalog: &Catalog) -> Report {
    let mut report = Report::default();
    if catalog.plans.is_empty() {
        report
            .errors
            .push(problem("-", "plans", "the catalog has no plans"));
    }
    let mut ids = HashSet::new();
    let mut lookup_keys = HashSet::new();
    for (index, plan) in catalog.plans.iter().enumerate() {
        let name = if plan.id.is_empty() {
            format!("#{}", index + 1)
        } else {
            plan.id.clone()
        };
        if !valid_id(&plan.id) {
            report.errors.push(problem(
                &name,
                "id",
                "use 1-64 lower-case letters, digits, `_` or `-`",
            ));
        }
        if !ids.insert(plan.id.as_str()) {
            report
                .errors
                .push(problem(&name, "id", "duplicate plan id"));
        }
        if plan.name.trim().is_empty() {
            report
                .errors
                .push(problem(&name, "name", "a plan needs a display name"));
        }
        for (i, price) in plan.prices.iter().enumerate() {
            let field = |f: &str| format!("prices[{i}].{f}");
            if !valid_id(&price.lookup_key) && !price.lookup_key.contains('.') {
                report.errors.push(problem(
                    &name,
                    &field("lookup_key"),
                    "use lower-case letters, digits, `_`, `-` or `.`",
                ));
            }
            if !lookup_keys.insert(price.lookup_key.as_str()) {
                report.errors.push(problem(
                    &name,
                    &field("lookup_key"),
                    &format!("duplicate lookup key `{}`", price.lookup_key),
                ));
            }
            if price.amount < 0 {
                report.errors.push(problem(
                    &name,
                    &field("amount"),
                    "amounts cannot be negative",
                ));
            }
            if price.amount == 0 && plan.billing != BillingType::Free {
                report.errors.push(problem(
                    &name,
                    &field("amount"),
                    "a paid plan's price must be above zero (use billing = \"free\")",
                ));
            }
            if price.currency != price.currency.to_ascii_lowercase()
                || money::currency(&price.currency).is_none()
            {
                report.errors.push(problem(
                    &name,
                    &field("currency"),
                    &format!(
                        "`{}` is not a lower-case ISO 4217 code such as \"usd\"",
                        price.currency
                    ),
                ));
            }
            for (env, id) in [("test", &price.stripe.test), ("live", &price.stripe.live)] {
                if id.as_deref().is_some_and(|id| !id.starts_with("price_")) {
                    report.errors.push(problem(
                        &name,
                        &field(&format!("stripe.{env}")),
                        "Stripe price ids start with `price_`",
                    ));
                }
            }
        }
        check_billing_type(plan, &name, &mut report);
        check_limits(catalog, plan, &name, &mut report);
    }
    check_features(catalog, &mut report);
    if catalog.plans.iter().filter(|p| p.popular).count() > 1 {
        report.warnings.push(problem(
            "-",
            "popular",
            "more than one plan is marked popular",
        ));
    }
    report
}

fn check_billing_type(plan: &Plan, name: &str, report: &mut Report) {
    let intervals: Vec<Interval> = plan.prices.iter().map(|p| p.interval).collect();
    match plan.billing {
        BillingType::Free => {
            if !plan.prices.is_empty() {
                report
                    .errors
                    .push(problem(name, "prices", "a free plan has no prices"));
            }
        }
        BillingType::OneTime => {
            if intervals != [Interval::OneTime] {
                report.errors.push(problem(
                    name,
                    "prices",
                    "a one-time plan has exactly one price with interval = \"one_time\"",
                ));
            }
        }
        BillingType::Subscription => {
            if intervals.contains(&Interval::OneTime) {
                report.errors.push(problem(
                    name,
                    "prices",
                    "a subscription's prices are monthly or yearly, not one_time",
                ));
            }
            for interval in [Interval::Month, Interval::Year] {
                if intervals.iter().filter(|i| **i == interval).count() > 1 {
                    report.errors.push(problem(
                        name,
                        "prices",
                        &format!("more than one {interval:?} price"),
                    ));
                }
            }
            match (plan.price(Interval::Month), plan.price(Interval::Year)) {
                (None, _) => report.errors.push(problem(
                    name,
                    "prices",
                    "a subscription needs a monthly price",
                )),
                (Some(monthly), Some(yearly)) => {
                    if monthly.currency != yearly.currency {
                        report.errors.push(problem(
                            name,
                            "prices",
                            "monthly and yearly prices must share a currency",
                        ));
                    } else if yearly.amount > monthly.amount * 12 {
                        report.warnings.push(problem(
                            name,
                            "prices",
                            "the yearly price is dearer than 12 × the monthly price",
                        ));
                    }
                }
                (Some(_), None) => {}
            }
        }
    }
    check_seats(plan, name, report);
    if let Some(days) = plan.trial_days {
        if plan.billing != BillingType::Subscription {
            report.errors.push(problem(
                name,
                "trial_days",
                "only subscriptions have trials",
            ));
        } else if !(1..=730).contains(&days) {
            report.errors.push(problem(
                name,
                "trial_days",
                "Stripe allows 1 to 730 trial days",
            ));
        }
    }
}

/// Every limit names a declared feature, with a value of its kind; `credits`
/// is what a one-time pack grants per purchase.
fn check_limits(catalog: &Catalog, plan: &Plan, name: &str, report: &mut Report) {
    for (key, limit) in &plan.limits {
        let field = format!("limits.{key}");
        if key == CREDITS {
            if plan.billing != BillingType::OneTime {
                report.errors.push(problem(
                    name,
                    &field,
                    "credits are granted by one-time plans (packs)",
                ));
            } else if !matches!(limit, Limit::Count(n) if *n > 0) {
                report.errors.push(problem(
                    name,
                    &field,
                    "a pack grants a number of credits above zero",
                ));
            }
            continue;
        }
        let Some(feature) = catalog.features.get(key) else {
            report.errors.push(problem(
                name,
                &field,
                &format!("no feature `{key}` is declared (add `[features.{key}]`)"),
            ));
            continue;
        };
        let fits = match feature.kind {
            FeatureKind::Boolean => matches!(limit, Limit::Included(_)),
            FeatureKind::Metered | FeatureKind::Counted => {
                matches!(limit, Limit::Count(_) | Limit::Unlimited)
            }
        };
        if !fits {
            let expected = match feature.kind {
                FeatureKind::Boolean => "true or false (a boolean feature)",
                _ => "a number or \"unlimited\"",
            };
            report
                .errors
                .push(problem(name, &field, &format!("expected {expected}")));
        }
    }
}

/// Feature ids and their terms.
fn check_features(catalog: &Catalog, report: &mut Report) {
    for (id, feature) in &catalog.features {
        let name = format!("features.{id}");
        if !valid_id(id) || id == CREDITS {
            report.errors.push(problem(
                "-",
                &name,
                "use 1-64 lower-case letters, digits, `_` or `-` (and not `credits`)",
            ));
        }
        if feature.name.trim().is_empty() {
            report.errors.push(problem(
                "-",
                &format!("{name}.name"),
                "a feature needs a name",
            ));
        }
        match (feature.kind, feature.credits_per_unit) {
            (FeatureKind::Metered, Some(0)) => report.errors.push(problem(
                "-",
                &format!("{name}.credits_per_unit"),
                "a unit costs at least one credit",
            )),
            (FeatureKind::Boolean | FeatureKind::Counted, Some(_)) => report.errors.push(problem(
                "-",
                &format!("{name}.credits_per_unit"),
                "only metered features draw on credits",
            )),
            _ => {}
        }
    }
}

/// Seat terms belong to per-seat subscriptions and must leave room for one.
fn check_seats(plan: &Plan, name: &str, report: &mut Report) {
    if !plan.per_seat {
        if plan.min_seats.is_some() || plan.max_seats.is_some() {
            report.errors.push(problem(
                name,
                "min_seats",
                "seat limits need `per_seat = true`",
            ));
        }
        return;
    }
    if plan.billing != BillingType::Subscription {
        report.errors.push(problem(
            name,
            "per_seat",
            "only subscriptions are billed per seat",
        ));
    }
    match (plan.min_seats, plan.max_seats) {
        (Some(0), _) | (_, Some(0)) => report.errors.push(problem(
            name,
            "min_seats",
            "a per-seat plan has at least one seat",
        )),
        (Some(min), Some(max)) if min > max => {
            report
                .errors
                .push(problem(name, "max_seats", "max_seats is below min_seats"))
        }
        _ => {}
    }
}

fn valid_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

fn problem(plan: &str, field: &str, message: &str) -> Problem {
    Problem {
        plan: plan.to_owned(),
        field: field.to_owned(),
        message: message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::load::parse;

    const EXAMPLE: &str = include_str!("../../plans.toml");

    fn errors_of(toml: &str) -> Vec<String> {
        validate(&parse(toml).unwrap())
            .errors
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn the_shipped_example_is_valid() {
        let report = validate(&parse(EXAMPLE).unwrap());
        assert_eq!(report, Report::default());
    }

    #[test]
    fn each_rule_names_the_plan_and_field() {
        let plan = |body: &str| format!("[[plans]]\nname = \"P\"\n{body}\n");
        let cases = [
            (plan("id = \"Bad Id\"\nbilling = \"free\""), "plan `Bad Id`, id: use 1-64"),
            (format!("{}{}", plan("id = \"a\"\nbilling = \"free\""), plan("id = \"a\"\nbilling = \"free\"")), "plan `a`, id: duplicate plan id"),
            (plan("id = \"s\"\nbilling = \"subscription\"\n[[plans.prices]]\nlookup_key = \"s_y\"\namount = 100\ncurrency = \"usd\"\ninterval = \"year\""), "plan `s`, prices: a subscription needs a monthly price"),
            (plan("id = \"s\"\nbilling = \"subscription\"\n[[plans.prices]]\nlookup_key = \"s_m\"\namount = -5\ncurrency = \"usd\"\ninterval = \"month\""), "plan `s`, prices[0].amount: amounts cannot be negative"),
            (plan("id = \"s\"\nbilling = \"subscription\"\n[[plans.prices]]\nlookup_key = \"s_m\"\namount = 100\ncurrency = \"usx\"\ninterval = \"month\""), "plan `s`, prices[0].currency: `usx` is not"),
            (plan("id = \"o\"\nbilling = \"one_time\"\n[[plans.prices]]\nlookup_key = \"k\"\namount = 100\ncurrency = \"usd\"\ninterval = \"one_time\"\n[[plans.prices]]\nlookup_key = \"k\"\namount = 100\ncurrency = \"usd\"\ninterval = \"one_time\""), "plan `o`, prices[1].lookup_key: duplicate lookup key `k`"),
            (plan("id = \"f\"\nbilling = \"free\"\ntrial_days = 14"), "plan `f`, trial_days: only subscriptions have trials"),
            (plan("id = \"f\"\nbilling = \"free\"\nper_seat = true"), "plan `f`, per_seat: only subscriptions are billed per seat"),
            (plan("id = \"f\"\nbilling = \"free\"\nmax_seats = 3"), "plan `f`, min_seats: seat limits need `per_seat = true`"),
            (plan("id = \"s\"\nbilling = \"subscription\"\nper_seat = true\nmin_seats = 5\nmax_seats = 2\n[[plans.prices]]\nlookup_key = \"s_m\"\namount = 100\ncurrency = \"usd\"\ninterval = \"month\""), "plan `s`, max_seats: max_seats is below min_seats"),
            (plan("id = \"f\"\nbilling = \"free\"\n[[plans.prices]]\nlookup_key = \"f\"\namount = 0\ncurrency = \"usd\"\ninterval = \"one_time\""), "plan `f`, prices: a free plan has no prices"),
            (plan("id = \"o\"\nbilling = \"one_time\"\n[[plans.prices]]\nlookup_key = \"o\"\namount = 100\ncurrency = \"usd\"\ninterval = \"one_time\"\nstripe = { test = \"prod_x\" }"), "plan `o`, prices[0].stripe.test: Stripe price ids start with `price_`"),
            (plan("id = \"f\"\nbilling = \"free\"\nlimits = { seats = 3 }"), "plan `f`, limits.seats: no feature `seats` is declared"),
            (plan("id = \"f\"\nbilling = \"free\"\nlimits = { credits = 3 }"), "plan `f`, limits.credits: credits are granted by one-time plans"),
            (format!("[features.calls]\nkind = \"metered\"\nname = \"Calls\"\n{}", plan("id = \"f\"\nbilling = \"free\"\nlimits = { calls = true }")), "plan `f`, limits.calls: expected a number or \"unlimited\""),
            (format!("[features.sso]\nkind = \"boolean\"\nname = \"SSO\"\n{}", plan("id = \"f\"\nbilling = \"free\"\nlimits = { sso = 3 }")), "plan `f`, limits.sso: expected true or false"),
            (format!("[features.sso]\nkind = \"boolean\"\nname = \"SSO\"\ncredits_per_unit = 2\n{}", plan("id = \"f\"\nbilling = \"free\"")), "plan `-`, features.sso.credits_per_unit: only metered features draw on credits"),
            (format!("[features.Calls]\nkind = \"metered\"\nname = \"\"\n{}", plan("id = \"f\"\nbilling = \"free\"")), "plan `-`, features.Calls: use 1-64"),
        ];
        for (toml, expected) in cases {
            let errors = errors_of(&toml);
            assert!(
                errors.iter().any(|e| e.starts_with(expected)),
                "expected `{expected}` in {errors:?}"
            );
        }
    }

    #[test]
    fn a_dear_yearly_price_is_a_warning_not_an_error() {
        let toml = "[[plans]]\nid = \"p\"\nname = \"P\"\nbilling = \"subscription\"\n\
            [[plans.prices]]\nlookup_key = \"m\"\namount = 1000\ncurrency = \"usd\"\ninterval = \"month\"\n\
            [[plans.prices]]\nlookup_key = \"y\"\namount = 13000\ncurrency = \"usd\"\ninterval = \"year\"\n";
        let report = validate(&parse(toml).unwrap());
        assert!(report.errors.is_empty());
        assert_eq!(
            report.warnings[0].to_string(),
            "plan `p`, prices: the yearly price is dearer than 12 × the monthly price"
        );
    }
}
