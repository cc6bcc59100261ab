//! The billing actions a signed-in user takes, end to end: read the policy, decide
//! (`checkout::decide`), talk to Stripe through the gateway, write through `sync`.
//! Server functions are thin wrappers around these, so tests can drive the same
//! code over HTTP or directly.

use chrono::{DateTime, Utc};
use sea_orm::{sea_query::Expr, ColumnTrait, EntityTrait, QueryFilter, QueryOrder};

use super::{
    access::{self, Access, Notice, Policy},
    checkout::{self, CheckoutPlan, CheckoutRefusal},
    snapshot,
    sync::{self, SyncContext, SyncError},
};
use crate::{
    catalog::{display, money, BillingType, Interval},
    db::entities::{one_time_purchases, users},
    gateway::{
        billing::{CheckoutRequest, PlanChange, PortalConfigSpec},
        GatewayError,
    },
    server::AppState,
    views::{BillingView, CheckoutReturn, InvoiceView, PlanCard, PricingView, PurchaseView},
};

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Refused(#[from] CheckoutRefusal),
    #[error(
        "the catalog price `{0}` does not exist in Stripe; run `billing-starter catalog apply`"
    )]
    PriceMissing(String),
    #[error("there is no subscription to change")]
    NoSubscription,
    #[error("database: {0}")]
    Database(#[from] sea_orm::DbErr),
    #[error(transparent)]
    Stripe(#[from] GatewayError),
    #[error(transparent)]
    Sync(SyncError),
}

impl From<SyncError> for ServiceError {
    fn from(err: SyncError) -> Self {
        match err {
            SyncError::Stripe(err) => ServiceError::Stripe(err),
            SyncError::Database(err) => ServiceError::Database(err),
            other => ServiceError::Sync(other),
        }
    }
}

/// Where the user goes next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Next {
    /// A Stripe-hosted page (Checkout or the portal).
    Stripe(String),
    /// A page of the app.
    App(String),
}

pub fn policy(state: &AppState) -> Policy {
    Policy {
        past_due_grace: chrono::Duration::days(i64::from(state.config.past_due_grace_days)),
    }
}

pub async fn access_for(state: &AppState, user_id: i64) -> Result<Access, ServiceError> {
    let snapshot = snapshot::load(&state.db, user_id).await?;
    Ok(access::evaluate(
        &snapshot,
        &state.catalog,
        Utc::now(),
        &policy(state),
    ))
}

/// The Stripe price of a catalog lookup key; re-resolved once when unknown (the
/// catalog may have been applied after start-up).
async fn price_id(state: &AppState, lookup_key: &str) -> Result<String, ServiceError> {
    let known = |state: &AppState| {
        state
            .price_directory()
            .get(lookup_key)
            .map(|p| p.price_id.clone())
    };
    if let Some(id) = known(state) {
        return Ok(id);
    }
    state.refresh_prices().await?;
    known(state).ok_or_else(|| ServiceError::PriceMissing(lookup_key.to_owned()))
}

/// The user's Stripe customer, created at most once: the database keeps one id
/// per user (unique), and the create call's idempotency key is derived from the
/// user, so racing requests get the same customer from Stripe.
pub async fn ensure_customer(
    state: &AppState,
    user: &users::Model,
) -> Result<String, ServiceError> {
    if let Some(id) = &user.stripe_customer_id {
        return Ok(id.clone());
    }
    let stripe = &state.stripe;
    let customer = match stripe.find_customer(user.id, &user.email).await? {
        Some(found) => found,
        // `updated_at` changes when a deleted customer is unlinked, so a user whose
        // customer was deleted gets a new one rather than the old key's replay.
        None => {
            let key = format!("{}:{}", user.id, user.updated_at.timestamp());
            stripe.create_customer(user.id, &user.email, &key).await?
        }
    };
    users::Entity::update_many()
        .col_expr(
            users::Column::StripeCustomerId,
            Expr::value(customer.clone()),
        )
        .col_expr(users::Column::UpdatedAt, Expr::value(Utc::now()))
        .filter(users::Column::Id.eq(user.id))
        .filter(users::Column::StripeCustomerId.is_null())
        .exec(&state.db)
        .await?;
    // Whoever linked first wins; everyone returns that id.
    let linked = users::Entity::find_by_id(user.id)
        .one(&state.db)
        .await?
        .and_then(|u| u.stripe_customer_id)
        .unwrap_or(customer);
    Ok(linked)
}

fn with_query(path: &str, extra: &str) -> String {
    let sep = if path.contains('?') { '&' } else { '?' };
    format!("{path}{sep}{extra}")
}

/// A click on a plan: the free plan, a new Checkout Session, or a plan change in
/// the portal for a user who already has a subscription.
pub async fn start_checkout(
    state: &AppState,
    user: &users::Model,
    plan_id: &str,
    interval: Interval,
) -> Result<Next, ServiceError> {
    let access = access_for(state, user.id).await?;
    match checkout::decide(&state.catalog, plan_id, interval, &access)? {
        CheckoutPlan::Free => Ok(Next::App(state.config.paths.customer_portal_return.clone())),
        CheckoutPlan::ChangePlan {
            subscription_id,
            price,
        } => {
            let change = PlanChange {
                subscription_id,
                price_id: price_id(state, &price.lookup_key).await?,
            };
            portal(state, user, Some(change)).await.map(Next::Stripe)
        }
        CheckoutPlan::Checkout {
            plan,
            price,
            subscription,
        } => {
            let price_id = price_id(state, &price.lookup_key).await?;
            let customer_id = ensure_customer(state, user).await?;
            let billing = if subscription {
                "subscription"
            } else {
                "one_time"
            };
            let back = format!("plan={}&billing_type={billing}", plan.id);
            let paths = &state.config.paths;
            // A double click, or a retry within ten minutes, gets the same session.
            let window = Utc::now().timestamp() / 600;
            let request = CheckoutRequest {
                mode: if subscription {
                    super::objects::CheckoutMode::Subscription
                } else {
                    super::objects::CheckoutMode::Payment
                },
                customer_id,
                user_id: user.id,
                plan_id: plan.id.clone(),
                price_id: price_id.clone(),
                trial_days: plan.trial_days.filter(|_| subscription),
                success_url: state.config.absolute_url(&with_query(
                    &paths.checkout_success,
                    &format!("{back}&session_id={{CHECKOUT_SESSION_ID}}"),
                )),
                cancel_url: state
                    .config
                    .absolute_url(&with_query(&paths.checkout_cancel, &back)),
                idempotency_key: format!("checkout:{}:{price_id}:{window}", user.id),
            };
            let session = state.stripe.create_checkout_session(&request).await?;
            tracing::info!(user = user.id, plan = %plan.id, session = %session.id, "checkout session created");
            Ok(Next::Stripe(session.url))
        }
    }
}

/// The portal configuration built from the catalog, created once per catalog
/// version and remembered for the process's life.
pub async fn portal_configuration(state: &AppState) -> Result<String, ServiceError> {
    if let Some(id) = state.portal_configuration.get() {
        return Ok(id.clone());
    }
    let mut products: Vec<(String, Vec<String>)> = Vec::new();
    for plan in state
        .catalog
        .plans
        .iter()
        .filter(|p| p.billing == BillingType::Subscription)
    {
        let mut prices = Vec::new();
        for price in &plan.prices {
            prices.push(price_id(state, &price.lookup_key).await?);
        }
        let Some(first) = prices.first() else {
            continue;
        };
        let product = state.stripe.price_product(first).await?;
        products.push((product, prices));
    }
    let config = &state.config;
    let fingerprint_source = format!(
        "{products:?}|{}|{}",
        config.app_url, config.paths.customer_portal_return
    );
    let fingerprint = {
        use sha2::Digest;
        hex::encode(&sha2::Sha256::digest(fingerprint_source.as_bytes())[..8])
    };
    let spec = PortalConfigSpec {
        products,
        privacy_policy_url: config.absolute_url("/privacy-policy"),
        terms_of_service_url: config.absolute_url("/terms-of-service"),
        return_url: config.absolute_url(&config.paths.customer_portal_return),
        fingerprint,
    };
    let id = state.stripe.ensure_portal_configuration(&spec).await?;
    Ok(state.portal_configuration.get_or_init(|| id).clone())
}

/// A portal session for the user's own customer (optionally straight to
/// confirming a plan change).
pub async fn portal(
    state: &AppState,
    user: &users::Model,
    change: Option<PlanChange>,
) -> Result<String, ServiceError> {
    let customer = ensure_customer(state, user).await?;
    let configuration = portal_configuration(state).await?;
    let return_url = state
        .config
        .absolute_url(&state.config.paths.customer_portal_return);
    Ok(state
        .stripe
        .create_portal_session(&customer, &configuration, &return_url, change.as_ref())
        .await?)
}

/// In-app "Cancel at period end" / "Resume" for the user's own subscription; the
/// answer from Stripe is written through the one write path.
pub async fn set_cancel_at_period_end(
    state: &AppState,
    user: &users::Model,
    cancel: bool,
) -> Result<(), ServiceError> {
    let access = access_for(state, user.id).await?;
    let sub = access.subscription.ok_or(ServiceError::NoSubscription)?;
    let updated = state
        .stripe
        .set_cancel_at_period_end(&sub.stripe_subscription_id, cancel)
        .await?;
    let prices = state.price_directory();
    sync::from_fetched_subscription(&state.db, sync_context(state, &prices), &updated).await?;
    Ok(())
}

pub fn sync_context<'a>(
    state: &'a AppState,
    prices: &'a crate::gateway::catalog::PriceDirectory,
) -> SyncContext<'a> {
    SyncContext {
        gateway: &state.stripe,
        catalog: &state.catalog,
        prices,
    }
}

fn date(at: DateTime<Utc>) -> String {
    at.format("%B %-d, %Y").to_string()
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
    state: &AppState,
    user: Option<&users::Model>,
) -> Result<PricingView, ServiceError> {
    if user.is_none() {
        if let Some(view) = state.public_pricing.get() {
            return Ok(view.clone());
        }
    }
    let holdings = match user {
        None => display::Holdings::default(),
        Some(user) => {
            let access = access_for(state, user.id).await?;
            display::Holdings {
                signed_in: true,
                subscription: access
                    .subscription
                    .as_ref()
                    .and_then(|s| Some((s.plan_id.clone(), s.interval?))),
                owned: access.owned.clone(),
            }
        }
    };
    let offer = |plan: &crate::catalog::Plan, interval: Interval| {
        let price_interval = match plan.billing {
            BillingType::OneTime => Interval::OneTime,
            _ => interval,
        };
        crate::views::CardOffer {
            price: plan
                .price(price_interval)
                .map(|price| display::price_display(plan, price)),
            cta: display::call_to_action(plan, interval, &holdings),
        }
    };
    let view = PricingView {
        signed_in: user.is_some(),
        has_yearly: state
            .catalog
            .prices()
            .any(|(_, price)| price.interval == Interval::Year),
        cards: state
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
    };
    if user.is_none() {
        let _ = state.public_pricing.set(view.clone());
    }
    Ok(view)
}

/// The billing page. With a Checkout Session id from the success redirect, the
/// session is read from Stripe and written through `sync` first, so the page
/// shows the new plan whether or not the webhook has arrived.
pub async fn overview(
    state: &AppState,
    user: &users::Model,
    checkout_session: Option<&str>,
) -> Result<BillingView, ServiceError> {
    let checkout = match checkout_session {
        None => None,
        Some(id) => {
            let prices = state.price_directory();
            match sync::from_checkout_session(&state.db, sync_context(state, &prices), id, user.id)
                .await
            {
                Ok(session) if session.status == "complete" => Some(CheckoutReturn {
                    success: true,
                    message: "Payment successful. Thank you!".to_owned(),
                }),
                Ok(_) => Some(CheckoutReturn {
                    success: false,
                    message: "That checkout was not completed; you have not been charged."
                        .to_owned(),
                }),
                Err(SyncError::NotYours(_)) => {
                    tracing::warn!(
                        user = user.id,
                        session = id,
                        "checkout session of another user"
                    );
                    Some(CheckoutReturn {
                        success: false,
                        message: "That checkout session does not belong to your account."
                            .to_owned(),
                    })
                }
                Err(err) => {
                    // The webhook will still deliver it; the page says so.
                    tracing::error!(user = user.id, error = %err, "checkout session sync failed");
                    Some(CheckoutReturn {
                        success: true,
                        message: "Payment received; your plan will update in a moment.".to_owned(),
                    })
                }
            }
        }
    };

    let access = access_for(state, user.id).await?;
    let plan = access
        .plan_id
        .as_deref()
        .and_then(|id| state.catalog.plan(id));
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
        has_customer: user.stripe_customer_id.is_some(),
        purchases: Vec::new(),
        invoices: Vec::new(),
        invoices_unavailable: false,
        checkout,
    };
    match access.notice {
        Some(Notice::EndsOn(at)) => view.ends_on = Some(date(at)),
        Some(Notice::TrialEndsOn(at)) => view.trial_ends_on = Some(date(at)),
        Some(Notice::PaymentFailed { grace_until }) => {
            view.past_due_until = Some(date(grace_until))
        }
        None => {}
    }

    view.purchases = one_time_purchases::Entity::find()
        .filter(one_time_purchases::Column::UserId.eq(user.id))
        .order_by_desc(one_time_purchases::Column::CreatedAt)
        .all(&state.db)
        .await?
        .into_iter()
        .map(|row| PurchaseView {
            name: row
                .plan_id
                .as_deref()
                .and_then(|id| state.catalog.plan(id))
                .map(|p| p.name.clone())
                .unwrap_or_else(|| "One-time purchase".into()),
            amount: money::format(row.amount_total, &row.currency, true),
            date: date(row.created_at),
            status: status_word(&row.status),
        })
        .collect();

    // The customer id may have been linked just now (by the checkout sync).
    let customer = users::Entity::find_by_id(user.id)
        .one(&state.db)
        .await?
        .and_then(|u| u.stripe_customer_id);
    view.has_customer = customer.is_some();
    if let Some(customer) = customer {
        match state.stripe.invoices(&customer).await {
            Ok(invoices) => {
                view.invoices = invoices
                    .into_iter()
                    .map(|inv| InvoiceView {
                        number: inv.number.unwrap_or(inv.id),
                        amount: money::format(inv.amount, &inv.currency, true),
                        date: chrono::TimeZone::timestamp_opt(&Utc, inv.created, 0)
                            .single()
                            .map(date)
                            .unwrap_or_default(),
                        status: status_word(&inv.status),
                        hosted_url: inv.hosted_url,
                        pdf_url: inv.pdf_url,
                    })
                    .collect();
            }
            Err(err) => {
                tracing::warn!(error = %err, "invoices unavailable");
                view.invoices_unavailable = true;
            }
        }
    }
    Ok(view)
}
