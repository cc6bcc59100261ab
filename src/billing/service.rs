//! The billing actions a signed-in user takes, end to end: read the policy, decide
//! (`checkout::decide`), talk to Stripe through the gateway, write through `apply`.
//! Server functions are thin wrappers around these, so tests can drive the same
//! code over HTTP or directly.

use axum::http::StatusCode;
use chrono::Utc;
use sea_orm::{sea_query::Expr, ColumnTrait, EntityTrait, QueryFilter, QueryOrder};

use crate::teams::Member;

use super::{
    access::{self, Access},
    apply::{self, ApplyError},
    checkout::{self, CheckoutPlan, CheckoutRefusal},
    context::Billing,
    snapshot,
};
use crate::{
    catalog::{BillingType, Interval},
    db::entities::accounts,
    gateway::{
        billing::{CheckoutRequest, PlanChange, PortalConfigSpec},
        GatewayError,
    },
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
    /// The member's role does not allow it (a member opening the portal).
    #[error("{0}")]
    NotAllowed(&'static str),
    #[error("database: {0}")]
    Database(#[from] sea_orm::DbErr),
    #[error(transparent)]
    Stripe(#[from] GatewayError),
    #[error(transparent)]
    Apply(ApplyError),
}

impl ServiceError {
    /// The HTTP status a request that failed with this answers.
    pub fn status(&self) -> StatusCode {
        match self {
            ServiceError::Refused(_) | ServiceError::NoSubscription => StatusCode::BAD_REQUEST,
            ServiceError::NotAllowed(_) => StatusCode::FORBIDDEN,
            ServiceError::PriceMissing(_) => StatusCode::SERVICE_UNAVAILABLE,
            ServiceError::Stripe(_) => StatusCode::BAD_GATEWAY,
            ServiceError::Database(_) | ServiceError::Apply(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// What the user reads; `None` when the text is not for users (a database
    /// or write-path failure: logged, and shown as the generic message).
    pub fn user_message(&self) -> Option<String> {
        let fixed = match self {
            ServiceError::Refused(refusal) => return Some(refusal.to_string()),
            ServiceError::NoSubscription => "You have no subscription to change.",
            ServiceError::NotAllowed(message) => message,
            // The catalog and Stripe disagree: the operator's to fix.
            ServiceError::PriceMissing(_) => {
                "This plan is not available right now. Please try again later."
            }
            // Stripe could not be reached or refused: the user may retry.
            ServiceError::Stripe(_) => {
                "Payments are unavailable right now. Please try again in a minute."
            }
            ServiceError::Database(_) | ServiceError::Apply(_) => return None,
        };
        Some(fixed.to_owned())
    }
}

impl From<ApplyError> for ServiceError {
    fn from(err: ApplyError) -> Self {
        match err {
            ApplyError::Stripe(err) => ServiceError::Stripe(err),
            ApplyError::Database(err) => ServiceError::Database(err),
            other => ServiceError::Apply(other),
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

/// Refuses a billing action to a member whose role does not manage billing.
fn may_manage(member: &Member) -> Result<(), ServiceError> {
    member
        .may(crate::teams::Action::ManageBilling)
        .map_err(|_| {
            ServiceError::NotAllowed(
                "Only owners and admins of this organization manage its billing.",
            )
        })
}

pub async fn access_for(billing: &Billing, account_id: i64) -> Result<Access, ServiceError> {
    Ok(access_with_snapshot(billing, account_id).await?.0)
}

/// [`access_for`] and the billing rows it was decided from, for a page that
/// shows more of them (one read, not one per question).
pub async fn access_with_snapshot(
    billing: &Billing,
    account_id: i64,
) -> Result<(Access, access::BillingSnapshot), ServiceError> {
    let snapshot = snapshot::read(&billing.reads, account_id).await?;
    let access = access::evaluate(&snapshot, &billing.catalog, Utc::now(), &billing.policy());
    Ok((access, snapshot))
}

/// The Stripe price of a catalog lookup key; re-resolved once when unknown (the
/// catalog may have been applied after start-up).
async fn price_id(billing: &Billing, lookup_key: &str) -> Result<String, ServiceError> {
    let known = |billing: &Billing| {
        billing
            .price_directory()
            .get(lookup_key)
            .map(|p| p.price_id.clone())
    };
    if let Some(id) = known(billing) {
        return Ok(id);
    }
    billing.refresh_prices().await?;
    known(billing).ok_or_else(|| ServiceError::PriceMissing(lookup_key.to_owned()))
}

/// The account's Stripe customer, created at most once: the database keeps one
/// id per account (unique), and the create call's idempotency key is derived
/// from the account, so racing requests get the same customer from Stripe.
#[tracing::instrument(skip_all, fields(account = account.id))]
pub async fn ensure_customer(
    billing: &Billing,
    account: &accounts::Model,
    email: &str,
) -> Result<String, ServiceError> {
    if let Some(id) = &account.stripe_customer_id {
        return Ok(id.clone());
    }
    let stripe = &billing.stripe;
    let found = match stripe
        .find_customer(account.id, account.personal_user_id, email)
        .await?
    {
        Some(found) if apply::is_deleted_customer(&billing.db, &found).await? => None,
        other => other,
    };
    let customer = match found {
        Some(found) => found,
        // `updated_at` changes when a deleted customer is unlinked, so an account
        // whose customer was deleted gets a new one rather than the old key's
        // replay (to the microsecond: a deletion can follow the first customer
        // within the same second).
        None => {
            let key = format!(
                "account:{}:{}",
                account.id,
                account.updated_at.timestamp_micros()
            );
            let name = (account.kind == accounts::AccountKind::Organization)
                .then_some(account.name.as_str());
            stripe
                .create_customer(account.id, name, email, &key)
                .await?
        }
    };
    accounts::Entity::update_many()
        .col_expr(
            accounts::Column::StripeCustomerId,
            Expr::value(customer.clone()),
        )
        .col_expr(accounts::Column::UpdatedAt, Expr::value(Utc::now()))
        .filter(accounts::Column::Id.eq(account.id))
        .filter(accounts::Column::StripeCustomerId.is_null())
        .exec(&billing.db)
        .await?;
    // Whoever linked first wins; everyone returns that id.
    Ok(customer_of(billing, account.id).await?.unwrap_or(customer))
}

/// Accounts with more than one live subscription (active, trialing or
/// past_due), with those subscriptions' ids: two tabs paid at once got
/// through. `account` narrows it to one account.
pub async fn live_subscriptions_beyond_one(
    db: &sea_orm::DatabaseConnection,
    account: Option<i64>,
) -> Result<Vec<(i64, Vec<String>)>, ServiceError> {
    use crate::db::entities::subscriptions;
    let mut query = subscriptions::Entity::find()
        .filter(subscriptions::Column::Status.is_in(access::LIVE_STATUSES))
        .filter(subscriptions::Column::AccountId.is_not_null())
        .order_by_asc(subscriptions::Column::AccountId)
        .order_by_asc(subscriptions::Column::Id);
    if let Some(account) = account {
        query = query.filter(subscriptions::Column::AccountId.eq(account));
    }
    let mut by_user: Vec<(i64, Vec<String>)> = Vec::new();
    for row in query.all(db).await? {
        let user = row.account_id.unwrap_or_default();
        match by_user.last_mut() {
            Some((last, ids)) if *last == user => ids.push(row.stripe_subscription_id),
            _ => by_user.push((user, vec![row.stripe_subscription_id])),
        }
    }
    by_user.retain(|(_, ids)| ids.len() > 1);
    Ok(by_user)
}

/// The account's linked customer now (it may have been replaced during checkout).
pub async fn customer_of(
    billing: &Billing,
    account_id: i64,
) -> Result<Option<String>, ServiceError> {
    Ok(accounts::Entity::find_by_id(account_id)
        .one(&billing.db)
        .await?
        .and_then(|a| a.stripe_customer_id))
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
    billing: &Billing,
    customer: &str,
    request: &CheckoutRequest,
    session: crate::gateway::billing::CreatedSession,
) -> Result<crate::gateway::billing::CreatedSession, ServiceError> {
    if customer.is_empty() {
        return Ok(session);
    }
    let open = match billing.stripe.open_subscription_sessions(customer).await {
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
        billing.stripe.create_checkout_session(&again).await?
    };
    for (_, id) in open.iter().filter(|(_, id)| *id != session.id) {
        match billing.stripe.expire_checkout_session(id).await {
            Ok(()) => tracing::info!(session = %id, "other open checkout session expired"),
            Err(err) => {
                tracing::warn!(session = %id, error = %err, "could not expire checkout session")
            }
        }
    }
    Ok(session)
}

/// How long a Checkout Session's idempotency key holds (fixed windows from the
/// epoch): a double click or a retry within it gets the same session.
pub const CHECKOUT_KEY_WINDOW_SECS: i64 = 600;

/// The Checkout Session's idempotency key: a double click or a retry within
/// the ten-minute `window` gets the same session, for the same customer.
fn checkout_key(
    account_id: i64,
    customer_id: &str,
    price_id: &str,
    quantity: u32,
    window: i64,
) -> String {
    format!("checkout:{account_id}:{customer_id}:{price_id}:{quantity}:{window}")
}

fn with_query(path: &str, extra: &str) -> String {
    let sep = if path.contains('?') { '&' } else { '?' };
    format!("{path}{sep}{extra}")
}

/// A click on a plan: the free plan, a new Checkout Session, or a plan change in
/// the portal for an account that already has a subscription. Owners and
/// admins only.
#[tracing::instrument(skip_all, fields(user = member.user.id, account = member.account.id, plan = plan_id, ?interval))]
pub async fn start_checkout(
    billing: &Billing,
    member: &Member,
    plan_id: &str,
    interval: Interval,
) -> Result<Next, ServiceError> {
    may_manage(member)?;
    let user = &member.user;
    let account = &member.account;
    let access = access_for(billing, account.id).await?;
    match checkout::decide(&billing.catalog, plan_id, interval, &access)? {
        CheckoutPlan::Free => Ok(Next::App(
            billing.config.paths.customer_portal_return.clone(),
        )),
        CheckoutPlan::ChangePlan {
            subscription_id,
            price,
        } => {
            let change = PlanChange {
                subscription_id,
                price_id: price_id(billing, &price.lookup_key).await?,
            };
            portal(billing, member, Some(change))
                .await
                .map(Next::Stripe)
        }
        CheckoutPlan::Checkout {
            plan,
            price,
            subscription,
        } => {
            if billing.config.mail.require_verified_email && user.email_verified_at.is_none() {
                return Err(CheckoutRefusal::EmailNotVerified.into());
            }
            let price_id = price_id(billing, &price.lookup_key).await?;
            let quantity = crate::teams::seats::needed(&billing.db, plan, account).await?;
            let customer_id = ensure_customer(billing, account, member.billing_email()).await?;
            let billing_type = if subscription {
                "subscription"
            } else {
                "one_time"
            };
            let back = format!("plan={}&billing_type={billing_type}", plan.id);
            let paths = &billing.config.paths;
            // A double click, or a retry within ten minutes, gets the same session.
            let window = Utc::now().timestamp() / CHECKOUT_KEY_WINDOW_SECS;
            let mut request = CheckoutRequest {
                mode: if subscription {
                    super::objects::CheckoutMode::Subscription
                } else {
                    super::objects::CheckoutMode::Payment
                },
                idempotency_key: checkout_key(
                    account.id,
                    &customer_id,
                    &price_id,
                    quantity,
                    window,
                ),
                customer_id,
                account_id: account.id,
                user_id: user.id,
                plan_id: plan.id.clone(),
                price_id: price_id.clone(),
                quantity,
                trial_days: plan.trial_days.filter(|_| subscription),
                success_url: billing.config.absolute_url(&with_query(
                    &paths.checkout_success,
                    &format!("{back}&session_id={{CHECKOUT_SESSION_ID}}"),
                )),
                cancel_url: billing
                    .config
                    .absolute_url(&with_query(&paths.checkout_cancel, &back)),
            };
            let first = billing.stripe.create_checkout_session(&request).await;
            let session = match first {
                // The linked customer was deleted in Stripe (and its event not
                // heard, or not yet): forget it and check out with a new one,
                // rather than failing this user's every checkout from now on.
                Err(err) if err.is_missing_customer() => {
                    tracing::warn!(customer = %request.customer_id, "linked Stripe customer no longer exists; creating a new one");
                    {
                        let _turn = crate::db::write_turn(&billing.db).await;
                        apply::forget_customer(&billing.db, &request.customer_id).await?;
                    }
                    let account = accounts::Entity::find_by_id(account.id)
                        .one(&billing.db)
                        .await?
                        .ok_or(ServiceError::NoSubscription)?;
                    request.customer_id =
                        ensure_customer(billing, &account, member.billing_email()).await?;
                    request.idempotency_key = checkout_key(
                        account.id,
                        &request.customer_id,
                        &price_id,
                        quantity,
                        window,
                    );
                    billing.stripe.create_checkout_session(&request).await?
                }
                // `catalog apply` replaced the price since this server read its
                // directory: read it again and try once with the current price.
                Err(err) if err.is_inactive_price() => {
                    tracing::warn!(price = %request.price_id, "catalog price archived in Stripe; re-reading the price directory");
                    billing.refresh_prices().await?;
                    let current = self::price_id(billing, &price.lookup_key).await?;
                    if current == request.price_id {
                        return Err(err.into());
                    }
                    request.price_id = current;
                    request.idempotency_key = checkout_key(
                        account.id,
                        &request.customer_id,
                        &request.price_id,
                        quantity,
                        window,
                    );
                    billing.stripe.create_checkout_session(&request).await?
                }
                other => other?,
            };
            let session = if subscription {
                let customer = customer_of(billing, account.id).await?.unwrap_or_default();
                only_payable_session(billing, &customer, &request, session).await?
            } else {
                session
            };
            tracing::info!(session = %session.id, "checkout session created");
            crate::prometheus::checkout_started(if subscription {
                "subscription"
            } else {
                "payment"
            });
            Ok(Next::Stripe(session.url))
        }
    }
}

/// The portal configuration built from the catalog, created once per catalog
/// version and remembered for the process's life.
pub async fn portal_configuration(billing: &Billing) -> Result<String, ServiceError> {
    if let Some(id) = billing.portal_configuration.get() {
        return Ok(id.clone());
    }
    // Every catalog price resolved first (a missing one is refused by name).
    for (_, price) in billing.catalog.prices() {
        price_id(billing, &price.lookup_key).await?;
    }
    let id = ensure_portal(
        &billing.stripe,
        &billing.catalog,
        &billing.config,
        &billing.price_directory(),
    )
    .await?;
    Ok(billing.portal_configuration.get_or_init(|| id).clone())
}

/// Finds or creates the portal configuration for this catalog and these
/// prices (its fingerprint names both, and the app's URLs): the start-up and
/// `catalog apply` make it, so it exists before anyone opens the portal.
pub async fn ensure_portal(
    stripe: &crate::gateway::StripeGateway,
    catalog: &crate::catalog::Catalog,
    config: &crate::config::Config,
    directory: &crate::gateway::catalog::PriceDirectory,
) -> Result<String, ServiceError> {
    let mut products: Vec<(String, Vec<String>)> = Vec::new();
    for plan in catalog
        .plans
        .iter()
        .filter(|p| p.billing == BillingType::Subscription)
    {
        let mut prices = Vec::new();
        for price in &plan.prices {
            let resolved = directory
                .get(&price.lookup_key)
                .ok_or_else(|| ServiceError::PriceMissing(price.lookup_key.clone()))?;
            prices.push(resolved.price_id.clone());
        }
        let Some(first) = prices.first() else {
            continue;
        };
        let product = stripe.price_product(first).await?;
        products.push((product, prices));
    }
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
    Ok(stripe.ensure_portal_configuration(&spec).await?)
}

/// A portal session for the account's own customer (optionally straight to
/// confirming a plan change). Owners and admins only.
#[tracing::instrument(skip_all, fields(user = member.user.id, account = member.account.id, change = change.is_some()))]
pub async fn portal(
    billing: &Billing,
    member: &Member,
    change: Option<PlanChange>,
) -> Result<String, ServiceError> {
    may_manage(member)?;
    let customer = ensure_customer(billing, &member.account, member.billing_email()).await?;
    let configuration = portal_configuration(billing).await?;
    let return_url = billing
        .config
        .absolute_url(&billing.config.paths.customer_portal_return);
    Ok(billing
        .stripe
        .create_portal_session(&customer, &configuration, &return_url, change.as_ref())
        .await?)
}

/// In-app "Cancel at period end" / "Resume" for the account's own
/// subscription; the answer from Stripe is written through the one write path.
#[tracing::instrument(skip_all, fields(user = member.user.id, account = member.account.id, cancel))]
pub async fn set_cancel_at_period_end(
    billing: &Billing,
    member: &Member,
    cancel: bool,
) -> Result<(), ServiceError> {
    may_manage(member)?;
    let access = access_for(billing, member.account.id).await?;
    let sub = access.subscription.ok_or(ServiceError::NoSubscription)?;
    let updated = billing
        .stripe
        .set_cancel_at_period_end(&sub.stripe_subscription_id, cancel)
        .await?;
    let prices = billing.price_directory();
    let reads = apply::StripeReads::default();
    apply::write(
        &billing.db,
        billing.apply_context(&prices, &reads),
        apply::Write::Fetched(&updated),
    )
    .await?;
    Ok(())
}

/// The shape of a Checkout Session id (`cs_test_…`/`cs_live_…`; Stripe's ids
/// are under 255 characters of letters, digits and `_`).
pub fn is_checkout_session_id(id: &str) -> bool {
    id.starts_with("cs_")
        && (4..=255).contains(&id.len())
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// What came of a return from Checkout, once the session was read and written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckoutOutcome {
    /// Paid (or a trial started): the plan is in force.
    Complete,
    /// The session was left or expired: nothing was charged.
    NotCompleted,
    /// Not a Checkout Session of this account (or not one at all).
    NotYours,
    /// Stripe could not be read now; the webhook will still deliver it.
    Pending,
}

/// The success page's read: the Checkout Session from Stripe, written through
/// `apply` first, so the page shows the new plan whether or not the webhook has
/// arrived.
#[tracing::instrument(skip_all, fields(user = member.user.id, account = member.account.id))]
pub async fn confirm_checkout(
    billing: &Billing,
    member: &Member,
    session_id: &str,
) -> CheckoutOutcome {
    // Not a Checkout Session id at all: Stripe is not asked.
    if !is_checkout_session_id(session_id) {
        tracing::warn!("malformed session_id on the billing page");
        return CheckoutOutcome::NotYours;
    }
    let prices = billing.price_directory();
    let reads = apply::StripeReads::default();
    let written = async {
        // Read from Stripe first, with nothing held; then written.
        let session = billing.stripe.checkout_session(session_id).await?;
        apply::write(
            &billing.db,
            billing.apply_context(&prices, &reads),
            apply::Write::CheckoutSession {
                session: &session,
                account_id: member.account.id,
            },
        )
        .await?;
        Ok::<_, ApplyError>(session)
    };
    match written.await {
        Ok(session) if session.status == "complete" => CheckoutOutcome::Complete,
        Ok(_) => CheckoutOutcome::NotCompleted,
        Err(ApplyError::NotYours(_)) => {
            tracing::warn!(session = session_id, "checkout session of another account");
            CheckoutOutcome::NotYours
        }
        Err(err) => {
            tracing::error!(error = %err, "checkout session write failed");
            CheckoutOutcome::Pending
        }
    }
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
