//! The billing actions a signed-in user takes, end to end: read the policy, decide
//! (`checkout::decide`), talk to Stripe through the gateway, write through `sync`.
//! Server functions are thin wrappers around these, so tests can drive the same
//! code over HTTP or directly.

use chrono::{DateTime, Utc};
use sea_orm::{
    sea_query::Expr, ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};

use super::{
    access::{self, Access, Notice, Policy},
    checkout::{self, CheckoutPlan, CheckoutRefusal},
    snapshot,
    sync::{self, SyncContext, SyncError},
};
use crate::{
    catalog::{display, money, BillingType, Interval},
    db::entities::{invoices, one_time_purchases, users},
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
    let found = match stripe.find_customer(user.id, &user.email).await? {
        Some(found) if sync::is_deleted_customer(&state.db, &found).await? => None,
        other => other,
    };
    let customer = match found {
        Some(found) => found,
        // `updated_at` changes when a deleted customer is unlinked, so a user whose
        // customer was deleted gets a new one rather than the old key's replay
        // (to the microsecond: a deletion can follow the first customer within
        // the same second).
        None => {
            let key = format!("{}:{}", user.id, user.updated_at.timestamp_micros());
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

/// Users with more than one live subscription (active, trialing or past_due),
/// with those subscriptions' ids: two tabs paid at once got through. `user`
/// narrows it to one user.
pub async fn live_subscriptions_beyond_one(
    db: &sea_orm::DatabaseConnection,
    user: Option<i64>,
) -> Result<Vec<(i64, Vec<String>)>, ServiceError> {
    use crate::db::entities::subscriptions;
    let mut query = subscriptions::Entity::find()
        .filter(subscriptions::Column::Status.is_in(access::LIVE_STATUSES))
        .filter(subscriptions::Column::UserId.is_not_null())
        .order_by_asc(subscriptions::Column::UserId)
        .order_by_asc(subscriptions::Column::Id);
    if let Some(user) = user {
        query = query.filter(subscriptions::Column::UserId.eq(user));
    }
    let mut by_user: Vec<(i64, Vec<String>)> = Vec::new();
    for row in query.all(db).await? {
        let user = row.user_id.unwrap_or_default();
        match by_user.last_mut() {
            Some((last, ids)) if *last == user => ids.push(row.stripe_subscription_id),
            _ => by_user.push((user, vec![row.stripe_subscription_id])),
        }
    }
    by_user.retain(|(_, ids)| ids.len() > 1);
    Ok(by_user)
}

/// The user's linked customer now (it may have been replaced during checkout).
async fn customer_of(state: &AppState, user_id: i64) -> Result<String, ServiceError> {
    Ok(users::Entity::find_by_id(user_id)
        .one(&state.db)
        .await?
        .and_then(|u| u.stripe_customer_id)
        .unwrap_or_default())
}

/// Makes `session` the customer's only payable subscription session: every other
/// open one is expired (monthly and yearly tabs, or two clicks ten minutes apart,
/// were both payable: two subscriptions, charged twice). If `session` itself was
/// expired earlier (its idempotency key replayed an answer Stripe gave before),
/// a new one is made under a key derived from it, so the click still leads to a
/// page that can be paid. Two requests racing may expire each other's session;
/// the next click makes a payable one, and a second subscription that gets
/// through anyway is shown on the billing page and by `reconcile`.
async fn only_payable_session(
    state: &AppState,
    customer: &str,
    request: &CheckoutRequest,
    session: crate::gateway::billing::CreatedSession,
) -> Result<crate::gateway::billing::CreatedSession, ServiceError> {
    if customer.is_empty() {
        return Ok(session);
    }
    let open = match state.stripe.open_subscription_sessions(customer).await {
        Ok(open) => open,
        // Best effort: the session is good; only the others stay payable.
        Err(err) => {
            tracing::warn!(error = %err, "could not list open checkout sessions");
            return Ok(session);
        }
    };
    let session = if open.iter().any(|(_, id)| *id == session.id) {
        session
    } else {
        let again = CheckoutRequest {
            idempotency_key: format!("{}:after:{}", request.idempotency_key, session.id),
            ..request.clone()
        };
        state.stripe.create_checkout_session(&again).await?
    };
    for (_, id) in open.iter().filter(|(_, id)| *id != session.id) {
        match state.stripe.expire_checkout_session(id).await {
            Ok(()) => tracing::info!(session = %id, "other open checkout session expired"),
            Err(err) => {
                tracing::warn!(session = %id, error = %err, "could not expire checkout session")
            }
        }
    }
    Ok(session)
}

/// The Checkout Session's idempotency key: a double click or a retry within
/// the ten-minute `window` gets the same session, for the same customer.
fn checkout_key(user_id: i64, customer_id: &str, price_id: &str, window: i64) -> String {
    format!("checkout:{user_id}:{customer_id}:{price_id}:{window}")
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
            let mut request = CheckoutRequest {
                mode: if subscription {
                    super::objects::CheckoutMode::Subscription
                } else {
                    super::objects::CheckoutMode::Payment
                },
                idempotency_key: checkout_key(user.id, &customer_id, &price_id, window),
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
            };
            let first = state.stripe.create_checkout_session(&request).await;
            let session = match first {
                // The linked customer was deleted in Stripe (and its event not
                // heard, or not yet): forget it and check out with a new one,
                // rather than failing this user's every checkout from now on.
                Err(err) if err.is_missing_customer() => {
                    tracing::warn!(user = user.id, customer = %request.customer_id, "linked Stripe customer no longer exists; creating a new one");
                    {
                        let _turn = crate::db::write_turn(&state.db).await;
                        sync::forget_customer(&state.db, &request.customer_id).await?;
                    }
                    let user = users::Entity::find_by_id(user.id)
                        .one(&state.db)
                        .await?
                        .ok_or(ServiceError::NoSubscription)?;
                    request.customer_id = ensure_customer(state, &user).await?;
                    request.idempotency_key =
                        checkout_key(user.id, &request.customer_id, &price_id, window);
                    state.stripe.create_checkout_session(&request).await?
                }
                other => other?,
            };
            let session = if subscription {
                let customer = customer_of(state, user.id).await?;
                only_payable_session(state, &customer, &request, session).await?
            } else {
                session
            };
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
    let reads = sync::StripeReads::default();
    sync::write(
        &state.db,
        sync_context(state, &prices, &reads),
        sync::Write::Fetched(&updated),
    )
    .await?;
    Ok(())
}

pub fn sync_context<'a>(
    state: &'a AppState,
    prices: &'a crate::gateway::catalog::PriceDirectory,
    reads: &'a sync::StripeReads,
) -> SyncContext<'a> {
    SyncContext {
        gateway: &state.stripe,
        catalog: &state.catalog,
        prices,
        reads,
    }
}

/// The shape of a Checkout Session id (`cs_test_…`/`cs_live_…`; Stripe's ids
/// are under 255 characters of letters, digits and `_`).
pub fn is_checkout_session_id(id: &str) -> bool {
    id.starts_with("cs_")
        && (4..=255).contains(&id.len())
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
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
        // Not a Checkout Session id at all: Stripe is not asked.
        Some(id) if !is_checkout_session_id(id) => {
            tracing::warn!(user = user.id, "malformed session_id on the billing page");
            Some(CheckoutReturn {
                success: false,
                message: "That checkout session does not belong to your account.".to_owned(),
            })
        }
        Some(id) => {
            let prices = state.price_directory();
            let reads = sync::StripeReads::default();
            let written = async {
                // Read from Stripe first, with nothing held; then written.
                let session = state.stripe.checkout_session(id).await?;
                sync::write(
                    &state.db,
                    sync_context(state, &prices, &reads),
                    sync::Write::CheckoutSession {
                        session: &session,
                        user_id: user.id,
                    },
                )
                .await?;
                Ok::<_, SyncError>(session)
            };
            match written.await {
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
        duplicate_subscriptions: Vec::new(),
        checkout,
    };
    if let Some((_, ids)) = live_subscriptions_beyond_one(&state.db, Some(user.id))
        .await?
        .into_iter()
        .next()
    {
        view.duplicate_subscriptions = ids;
    }
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
    // From the mirror the invoice events keep (`billing::sync`): a page view
    // never calls Stripe, so viewing cannot spend the account's rate limit.
    let mut owned = Condition::any().add(invoices::Column::UserId.eq(user.id));
    if let Some(customer) = &customer {
        owned = owned.add(invoices::Column::StripeCustomerId.eq(customer.as_str()));
    }
    view.invoices = invoices::Entity::find()
        .filter(owned)
        .filter(invoices::Column::Status.ne("draft"))
        .order_by_desc(invoices::Column::StripeCreated)
        .limit(24)
        .all(&state.db)
        .await?
        .into_iter()
        .map(|inv| InvoiceView {
            number: inv.number.unwrap_or(inv.stripe_invoice_id),
            amount: money::format(inv.amount_total, &inv.currency, true),
            date: chrono::TimeZone::timestamp_opt(&Utc, inv.stripe_created, 0)
                .single()
                .map(date)
                .unwrap_or_default(),
            status: status_word(&inv.status),
            hosted_url: inv.hosted_invoice_url,
            pdf_url: inv.invoice_pdf,
        })
        .collect();
    Ok(view)
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_checkout_session_ids_reach_stripe() {
        for good in ["cs_test_a1B2c3", "cs_live_XYZ_123"] {
            assert!(super::is_checkout_session_id(good), "{good}");
        }
        for bad in [
            "",
            "cs_",
            "sub_123",
            "cs_test/../../v1/customers",
            "cs_test_a?expand[]=customer",
            "cs_test_ä",
            &format!("cs_{}", "a".repeat(300)),
        ] {
            assert!(!super::is_checkout_session_id(bad), "{bad}");
        }
    }
}
