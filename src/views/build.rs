//! The pages' views, computed on the server from the billing state: the
//! pricing grid, the billing page, and the words for dates and statuses. The
//! billing service does the actions; this is only how their state reads.

use chrono::{DateTime, Utc};

use super::{
    BillingView, CheckoutReturn, InvoiceView, MeterView, PaywallView, PlanCard, PricingView,
    PurchaseView, WorkspaceView,
};
use crate::{
    billing::{
        access::Notice,
        context::Billing,
        service::{self, CheckoutOutcome, ServiceError},
    },
    catalog::{display, money, BillingType, FeatureKind, Interval, Limit, CREDITS},
    entitlements::{self, ledger, UsageError},
    teams::{Action, Member},
};

/// "March 7, 2026". Written out rather than `format("%B %-d, %Y")`, which
/// parses its pattern again on every call: with the billing page's dates,
/// 2 % of a kept `/dashboard/billing`'s time (`perf`, issue 23).
fn date(at: DateTime<Utc>) -> String {
    use chrono::Datelike;
    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    format!(
        "{} {}, {}",
        MONTHS[at.month0() as usize],
        at.day(),
        at.year()
    )
}

/// 1000 → "1,000".
pub fn grouped(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 {
        out.insert(0, '-');
    }
    out
}

/// The meters as pages show them.
pub fn meters(billing: &Billing, summary: &entitlements::Summary) -> Vec<MeterView> {
    summary
        .meters
        .iter()
        .map(|meter| {
            let feature = billing.catalog.features.get(&meter.feature);
            let (kind, limit) = match (meter.kind, meter.limit) {
                (FeatureKind::Boolean, _) => (
                    "boolean",
                    if meter.included() {
                        "included"
                    } else {
                        "not included"
                    }
                    .to_owned(),
                ),
                (kind, Limit::Unlimited) => (kind_word(kind), "unlimited".to_owned()),
                (kind, Limit::Count(n)) => (
                    kind_word(kind),
                    grouped(i64::try_from(n).unwrap_or(i64::MAX)),
                ),
                (kind, Limit::Included(_)) => (kind_word(kind), "not included".to_owned()),
            };
            let percent = match meter.limit {
                Limit::Count(n) if n > 0 && meter.kind != FeatureKind::Boolean => {
                    let share = (meter.used.max(0) as u128 * 100) / n as u128;
                    Some(share.min(100) as u8)
                }
                _ => None,
            };
            let text = match meter.kind {
                FeatureKind::Boolean => format!("{}: {limit}", meter.name),
                _ => format!("{}: {} of {limit} used", meter.name, grouped(meter.used)),
            };
            MeterView {
                text,
                feature: meter.feature.clone(),
                name: meter.name.clone(),
                kind: kind.to_owned(),
                unit: feature
                    .and_then(|f| f.unit.clone())
                    .unwrap_or_else(|| "unit".to_owned()),
                used: meter.used,
                limit,
                remaining: meter.remaining,
                resets_on: meter.resets_at.map(date),
                exhausted: meter.kind != FeatureKind::Boolean && meter.remaining == Some(0),
                percent,
            }
        })
        .collect()
}

fn kind_word(kind: FeatureKind) -> &'static str {
    match kind {
        FeatureKind::Boolean => "boolean",
        FeatureKind::Metered => "metered",
        FeatureKind::Counted => "counted",
    }
}

fn status_word(status: &str) -> String {
    match status {
        "past_due" => "Past due".to_owned(),
        other => {
            let mut chars = other.chars();
            chars
                .next()
                .map(|c| c.to_uppercase().collect::<String>() + chars.as_str())
                .unwrap_or_default()
                .replace('_', " ")
        }
    }
}

/// The pricing grid for this visitor, both intervals computed on the server.
pub async fn pricing(
    billing: &Billing,
    public: &std::sync::OnceLock<PricingView>,
    account_id: Option<i64>,
) -> Result<PricingView, ServiceError> {
    let holdings = match account_id {
        Some(account_id) => holdings(billing, account_id).await?,
        None => display::Holdings::default(),
    };
    Ok(pricing_for(billing, public, &holdings))
}

/// What a signed-in account holds, as far as the pricing page cares.
pub async fn holdings(
    billing: &Billing,
    account_id: i64,
) -> Result<display::Holdings, ServiceError> {
    let access = service::access_for(billing, account_id).await?;
    Ok(display::Holdings {
        signed_in: true,
        subscription: access
            .subscription
            .as_ref()
            .and_then(|s| Some((s.plan_id.clone(), s.interval?))),
        owned: access.owned,
    })
}

/// The pricing view for a visitor holding `holdings` (the default: signed out).
/// A pure function of the catalog and `holdings`, which the page cache relies on.
pub fn pricing_for(
    billing: &Billing,
    public: &std::sync::OnceLock<PricingView>,
    holdings: &display::Holdings,
) -> PricingView {
    // Prices and plans are the same for every visitor; only the calls to action
    // are a signed-in visitor's own. So the signed-out grid is built once and a
    // visitor's is that grid with their calls to action (formatting every price
    // again was a few per cent of a signed-in page's time).
    let grid = public.get_or_init(|| signed_out_grid(billing));
    if !holdings.signed_in {
        return grid.clone();
    }
    let mut view = grid.clone();
    view.signed_in = true;
    for (card, plan) in view.cards.iter_mut().zip(&billing.catalog.plans) {
        card.monthly.cta = display::call_to_action(plan, Interval::Month, holdings);
        card.yearly.cta = display::call_to_action(plan, Interval::Year, holdings);
    }
    view
}

fn signed_out_grid(billing: &Billing) -> PricingView {
    let holdings = display::Holdings::default();
    // The free plan shows $0 in the currency the paid plans are sold in.
    let currency = billing
        .catalog
        .prices()
        .next()
        .map_or_else(|| "usd".to_owned(), |(_, price)| price.currency.clone());
    let offer = |plan: &crate::catalog::Plan, interval: Interval| {
        let price_interval = match plan.billing {
            BillingType::OneTime => Interval::OneTime,
            _ => interval,
        };
        crate::views::CardOffer {
            price: match plan.billing {
                BillingType::Free => Some(display::free_price(&currency)),
                _ => plan
                    .price(price_interval)
                    .map(|price| display::price_display(plan, price)),
            },
            cta: display::call_to_action(plan, interval, &holdings),
        }
    };
    PricingView {
        signed_in: false,
        has_yearly: billing
            .catalog
            .prices()
            .any(|(_, price)| price.interval == Interval::Year),
        cards: billing
            .catalog
            .plans
            .iter()
            .map(|plan| PlanCard {
                id: plan.id.clone(),
                name: plan.name.clone(),
                description: plan.description.clone(),
                billing: plan.billing,
                features: plan.features.clone(),
                popular: plan.popular,
                monthly: offer(plan, Interval::Month),
                yearly: offer(plan, Interval::Year),
            })
            .collect(),
    }
}

/// The workspace (`/app`) of `member`'s account: its meters, and the paywall
/// for `limit` (the feature the last action ran out of) or else the first
/// feature used to the last unit. `form_key` is the render's idempotency key.
pub async fn workspace(
    billing: &Billing,
    member: &Member,
    limit: Option<&str>,
    form_key: String,
) -> Result<WorkspaceView, ServiceError> {
    let access = service::access_for(billing, member.account.id).await?;
    let summary = usage_summary(billing, member.account.id, &access).await?;
    let meters = meters(billing, &summary);
    let plan_name = access
        .plan_id
        .as_deref()
        .and_then(|id| billing.catalog.plan(id))
        .map(|p| p.name.clone())
        .unwrap_or_default();
    // The paywall: the feature the last action ran out of, else the first
    // one used to the last unit.
    let blocked = meters
        .iter()
        .find(|m| limit == Some(m.feature.as_str()) && m.kind != "boolean")
        .or_else(|| meters.iter().find(|m| m.exhausted));
    let paywall = blocked.map(|meter| {
        let draws_credits = billing
            .catalog
            .features
            .get(&meter.feature)
            .is_some_and(|f| f.credits_per_unit.is_some());
        let pack = billing
            .catalog
            .plans
            .iter()
            .filter(|_| draws_credits)
            .find(|p| p.billing == BillingType::OneTime && p.limits.contains_key(CREDITS))
            .and_then(|plan| {
                let price = plan.price(Interval::OneTime)?;
                let credits = match plan.limits.get(CREDITS)? {
                    Limit::Count(n) => *n,
                    _ => return None,
                };
                Some((
                    plan.id.clone(),
                    format!(
                        "Buy {} — {} credits for {}",
                        plan.name,
                        grouped(i64::try_from(credits).unwrap_or(i64::MAX)),
                        display::price_display(plan, price).label
                    ),
                ))
            });
        let message = match (&meter.resets_on, meter.kind.as_str()) {
            _ if !meter.exhausted => format!(
                "That is more than is left: {} {} this period.",
                meter
                    .remaining
                    .map_or_else(|| "unlimited".to_owned(), grouped),
                meter.name
            ),
            (Some(on), "metered") => format!(
                "You have used all {} {} of this period (they reset on {on}).",
                meter.limit, meter.name
            ),
            _ => format!(
                "All {} of your plan's {} are in use.",
                meter.limit,
                meter.name.to_lowercase()
            ),
        };
        PaywallView {
            feature_name: meter.name.clone(),
            message,
            pack,
        }
    });
    Ok(WorkspaceView {
        plan_name,
        paid: access.has_paid_plan(),
        meters,
        credits: summary.credits,
        form_key,
        paywall,
        can_buy: member.can(Action::ManageBilling),
    })
}

/// This period's usage of `account_id` under `access`.
async fn usage_summary(
    billing: &Billing,
    account_id: i64,
    access: &crate::billing::access::Access,
) -> Result<entitlements::Summary, ServiceError> {
    ledger::summary_with(billing, account_id, access, Utc::now())
        .await
        .map_err(|err| match err {
            UsageError::Database(err) => ServiceError::Database(err),
            other => ServiceError::Database(sea_orm::DbErr::Custom(other.to_string())),
        })
}

/// The toast for a return from Checkout.
pub fn checkout_return(outcome: CheckoutOutcome) -> CheckoutReturn {
    let (success, message) = match outcome {
        CheckoutOutcome::Complete => (true, "Payment successful. Thank you!"),
        CheckoutOutcome::NotCompleted => (
            false,
            "That checkout was not completed; you have not been charged.",
        ),
        CheckoutOutcome::NotYours => (
            false,
            "That checkout session does not belong to your account.",
        ),
        // The webhook will still deliver it; the page says so.
        CheckoutOutcome::Pending => (true, "Payment received; your plan will update in a moment."),
    };
    CheckoutReturn {
        success,
        message: message.to_owned(),
    }
}

/// The billing page: the plan in force from the access policy, purchases and
/// invoices from the mirror (a page view never calls Stripe).
pub async fn billing_page(
    billing: &Billing,
    member: &Member,
    checkout: Option<CheckoutReturn>,
) -> Result<BillingView, ServiceError> {
    let (user, account) = (&member.user, &member.account);
    let (access, snapshot) = service::access_with_snapshot(billing, account.id).await?;
    let plan = access
        .plan_id
        .as_deref()
        .and_then(|id| billing.catalog.plan(id));
    let sub = access.subscription.as_ref();
    let mut view = BillingView {
        plan_id: plan.map(|p| p.id.clone()).unwrap_or_default(),
        plan_name: plan
            .map(|p| p.name.clone())
            .unwrap_or_else(|| "No plan".into()),
        status: sub.map(|s| status_word(&s.status)),
        interval: sub.and_then(|s| match s.interval? {
            Interval::Month => Some("Monthly".to_owned()),
            Interval::Year => Some("Yearly".to_owned()),
            Interval::OneTime => None,
        }),
        renews_on: sub.and_then(|s| s.renews_on).map(date),
        ends_on: None,
        trial_ends_on: None,
        past_due_until: None,
        can_cancel: sub.is_some_and(|s| !s.cancel_at_period_end),
        can_resume: sub.is_some_and(|s| s.cancel_at_period_end),
        has_customer: account.stripe_customer_id.is_some(),
        email_unverified: user.email_verified_at.is_none(),
        purchases: Vec::new(),
        invoices: Vec::new(),
        duplicate_subscriptions: Vec::new(),
        checkout,
        organization: member.is_organization().then(|| account.name.clone()),
        can_manage: member.can(Action::ManageBilling),
        seats: crate::teams::seats::summary_with(billing, account.id, &access).await?,
        usage: Vec::new(),
        credits: 0,
    };
    let summary = usage_summary(billing, account.id, &access).await?;
    view.usage = meters(billing, &summary);
    view.credits = summary.credits;
    // The rows just read tell whether there is more than one to list.
    let live = snapshot
        .subscriptions
        .iter()
        .filter(|s| crate::billing::access::is_live_status(&s.status))
        .count();
    if live > 1 {
        if let Some((_, ids)) =
            service::live_subscriptions_beyond_one(&billing.db, Some(account.id))
                .await?
                .into_iter()
                .next()
        {
            view.duplicate_subscriptions = ids;
        }
    }
    match access.notice {
        Some(Notice::EndsOn(at)) => view.ends_on = Some(date(at)),
        Some(Notice::TrialEndsOn(at)) => view.trial_ends_on = Some(date(at)),
        Some(Notice::PaymentFailed { grace_until }) => {
            view.past_due_until = Some(date(grace_until))
        }
        None => {}
    }

    // Read with the plan above (`snapshot::load`), newest first.
    view.purchases = snapshot
        .purchases
        .iter()
        .map(|row| PurchaseView {
            name: row
                .plan_id
                .as_deref()
                .and_then(|id| billing.catalog.plan(id))
                .map(|p| p.name.clone())
                .unwrap_or_else(|| "One-time purchase".into()),
            amount: money::format(row.amount_total, &row.currency, true),
            date: date(row.created_at),
            status: status_word(&sea_orm::ActiveEnum::to_value(&row.status)),
        })
        .collect();

    // The customer id may have been linked just now, by the checkout sync of
    // a return from Checkout; otherwise this request's read of the account is current.
    let customer = match view.checkout {
        Some(_) => service::customer_of(billing, account.id).await?,
        None => account.stripe_customer_id.clone(),
    };
    view.has_customer = customer.is_some();
    view.invoices = listed_invoices(billing, account.id, customer.as_deref()).await?;
    Ok(view)
}

/// The invoices the billing page lists: the account's own or its customer's,
/// not drafts, newest first, at most 24. From the mirror the invoice events
/// keep (`billing::apply`): a page view never calls Stripe, so viewing cannot
/// spend the account's rate limit.
///
/// One fixed statement of the columns shown, read on the request's thread
/// (`db::reads`): built with sea-query, with every column of the model and its
/// shape, each view spent some 5 % of a kept `/dashboard/billing`'s time
/// building SQL and maps (`perf`, issue 23).
async fn listed_invoices(
    billing: &Billing,
    account_id: i64,
    customer: Option<&str>,
) -> Result<Vec<InvoiceView>, ServiceError> {
    use crate::db::reads::{Kind, Shape};
    static SHAPE: std::sync::OnceLock<Shape> = std::sync::OnceLock::new();
    let shape = SHAPE.get_or_init(|| {
        [
            ("stripe_invoice_id", Kind::Text),
            ("number", Kind::Text),
            ("amount_total", Kind::I64),
            ("currency", Kind::Text),
            ("status", Kind::Text),
            ("stripe_created", Kind::I64),
            ("hosted_invoice_url", Kind::Text),
            ("invoice_pdf", Kind::Text),
        ]
        .into_iter()
        .fold(Shape::default(), |shape, (name, kind)| {
            shape.column(name, kind)
        })
    });
    let backend = billing.reads.backend();
    static SQLITE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    static POSTGRES: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let (sql, account, customer_id) = match backend {
        sea_orm::DbBackend::Postgres => (&POSTGRES, "$1", "$2"),
        _ => (&SQLITE, "?", "?"),
    };
    // Without a customer id, `= NULL` matches no row.
    let sql = sql.get_or_init(|| {
        format!(
            r#"SELECT "stripe_invoice_id", "number", "amount_total", "currency", "status",
                      "stripe_created", "hosted_invoice_url", "invoice_pdf"
               FROM "invoices"
               WHERE ("account_id" = {account} OR "stripe_customer_id" = {customer_id})
                 AND "status" <> 'draft'
               ORDER BY "stripe_created" DESC LIMIT 24"#
        )
    });
    let rows = billing
        .reads
        .all(
            sea_orm::Statement::from_sql_and_values(
                backend,
                sql.as_str(),
                [account_id.into(), customer.map(str::to_owned).into()],
            ),
            shape,
        )
        .await?;
    rows.iter()
        .map(|row| {
            let currency: String = row.get("", "currency")?;
            let status: String = row.get("", "status")?;
            Ok(InvoiceView {
                number: match row.get::<Option<String>>("", "number")? {
                    Some(number) => number,
                    None => row.get("", "stripe_invoice_id")?,
                },
                amount: money::format(row.get("", "amount_total")?, &currency, true),
                date: chrono::TimeZone::timestamp_opt(&Utc, row.get("", "stripe_created")?, 0)
                    .single()
                    .map(date)
                    .unwrap_or_default(),
                status: status_word(&status),
                hosted_url: row.get("", "hosted_invoice_url")?,
                pdf_url: row.get("", "invoice_pdf")?,
            })
        })
        .collect::<Result<_, sea_orm::DbErr>>()
        .map_err(ServiceError::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_grouped_by_thousands() {
        for (n, text) in [
            (0, "0"),
            (999, "999"),
            (1000, "1,000"),
            (100_000, "100,000"),
            (1_234_567, "1,234,567"),
            (-1500, "-1,500"),
        ] {
            assert_eq!(grouped(n), text);
        }
    }

    #[test]
    fn statuses_read_as_words() {
        for (status, word) in [
            ("active", "Active"),
            ("trialing", "Trialing"),
            ("past_due", "Past due"),
            ("incomplete_expired", "Incomplete expired"),
            ("paid", "Paid"),
            ("", ""),
        ] {
            assert_eq!(status_word(status), word);
        }
    }

    #[test]
    fn dates_read_as_month_day_year() {
        for ((y, m, d), text) in [
            ((2026, 3, 7), "March 7, 2026"),
            ((2026, 1, 31), "January 31, 2026"),
            ((2025, 12, 1), "December 1, 2025"),
            ((2028, 2, 29), "February 29, 2028"),
        ] {
            let at = chrono::TimeZone::with_ymd_and_hms(&Utc, y, m, d, 23, 59, 0).unwrap();
            assert_eq!(date(at), text);
            assert_eq!(date(at), at.format("%B %-d, %Y").to_string());
        }
    }

    #[test]
    fn every_checkout_outcome_has_its_toast() {
        assert!(checkout_return(CheckoutOutcome::Complete).success);
        assert!(checkout_return(CheckoutOutcome::Pending).success);
        assert!(!checkout_return(CheckoutOutcome::NotCompleted).success);
        let not_yours = checkout_return(CheckoutOutcome::NotYours);
        assert!(!not_yours.success);
        assert!(not_yours.message.contains("does not belong"));
    }
}
