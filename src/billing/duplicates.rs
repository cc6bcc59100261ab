//! Two live subscriptions for one user: two tabs that paid at once, or a
//! session opened before the app expired the others. Always reported (the
//! billing page, `doctor`, `reconcile`); with `DUPLICATE_SUBSCRIPTIONS=
//! cancel_newer` the newer ones are also cancelled in Stripe as soon as the app
//! hears of them, and every payment of theirs refunded in full. Their
//! `customer.subscription.deleted` and `charge.refunded` events then update
//! the mirror through the one write path, as for any cancellation.

use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};

use super::{access, context::Billing, objects::EventKind, service::ServiceError};
use crate::{
    billing::objects::{BillingEvent, StripeObject},
    config::DuplicatePolicy,
    db::entities::{accounts, subscriptions},
};

/// Of `live` (oldest first), the ones to cancel: all but the oldest.
pub fn newer_ones(live: &[String]) -> &[String] {
    live.get(1..).unwrap_or_default()
}

/// The account an event that can create a second subscription concerns.
async fn account_of_event(
    billing: &Billing,
    event: &BillingEvent,
) -> Result<Option<i64>, ServiceError> {
    let customer = match (&event.object, event.kind) {
        (
            StripeObject::Subscription(sub),
            EventKind::SubscriptionCreated | EventKind::SubscriptionUpdated,
        ) => Some(sub.customer_id.clone()),
        (StripeObject::CheckoutSession(session), EventKind::CheckoutSessionCompleted) => {
            session.customer_id.clone()
        }
        _ => None,
    };
    let Some(customer) = customer else {
        return Ok(None);
    };
    Ok(accounts::Entity::find()
        .filter(accounts::Column::StripeCustomerId.eq(customer))
        .one(&billing.db)
        .await?
        .map(|account| account.id))
}

/// After an event is applied: with `cancel_newer`, resolves the account's
/// duplicates in the background (the webhook's answer does not wait for Stripe).
pub fn after_event(billing: &Billing, event: &BillingEvent) {
    if billing.config.duplicate_subscriptions != DuplicatePolicy::CancelNewer {
        return;
    }
    let (billing, event) = (billing.clone(), event.clone());
    tokio::spawn(async move {
        let resolved = async {
            match account_of_event(&billing, &event).await? {
                Some(account) => resolve(&billing, account).await,
                None => Ok(Vec::new()),
            }
        };
        match resolved.await {
            Ok(cancelled) if !cancelled.is_empty() => {
                tracing::warn!(?cancelled, "duplicate subscriptions cancelled and refunded")
            }
            Ok(_) => {}
            Err(err) => tracing::error!(error = %err, "duplicate subscriptions not resolved"),
        }
    });
}

/// Cancels every live subscription of `account` but the oldest, and refunds what
/// each was paid; the ids cancelled. Safe to run twice at once: a subscription
/// already ended is not cancelled again, and a refund's idempotency key is its
/// PaymentIntent.
#[tracing::instrument(skip(billing))]
pub async fn resolve(billing: &Billing, account: i64) -> Result<Vec<String>, ServiceError> {
    let live: Vec<String> = subscriptions::Entity::find()
        .filter(subscriptions::Column::AccountId.eq(account))
        .filter(subscriptions::Column::Status.is_in(access::LIVE_STATUSES))
        .order_by_asc(subscriptions::Column::CurrentPeriodStart)
        .order_by_asc(subscriptions::Column::Id)
        .all(&billing.db)
        .await?
        .into_iter()
        .map(|row| row.stripe_subscription_id)
        .collect();
    let mut cancelled = Vec::new();
    for id in newer_ones(&live) {
        if !billing.stripe.subscription(id).await?.is_terminal() {
            billing.stripe.cancel_subscription_now(id).await?;
        }
        for payment in billing.stripe.subscription_payments(id).await? {
            billing
                .stripe
                .refund_payment(&payment, "duplicate_subscription")
                .await?;
        }
        cancelled.push(id.clone());
    }
    Ok(cancelled)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_oldest_stays() {
        let ids = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(super::newer_ones(&[]).is_empty());
        assert!(super::newer_ones(&ids(&["sub_a"])).is_empty());
        assert_eq!(
            super::newer_ones(&ids(&["sub_a", "sub_b", "sub_c"])),
            ids(&["sub_b", "sub_c"])
        );
    }
}
