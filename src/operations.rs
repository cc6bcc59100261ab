//! Operator commands: `webhooks replay` and `reconcile`. Both write through
//! `billing::apply`, so they obey the same ordering and idempotency rules as the
//! webhook route.

use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

use crate::{
    billing::{
        apply::{self, ApplyError, Outcome},
        context::Billing,
        objects::SubscriptionState,
    },
    db::entities::{accounts, subscriptions},
    gateway::{objects::parse_event, GatewayError},
    webhooks::inbox,
};

#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    #[error("database: {0}")]
    Database(#[from] sea_orm::DbErr),
    #[error(transparent)]
    Stripe(#[from] GatewayError),
    #[error(transparent)]
    Sync(#[from] ApplyError),
    #[error("no stored event {0}")]
    UnknownEvent(String),
}

/// One replayed event and how it went.
#[derive(Debug)]
pub struct Replayed {
    pub event_id: String,
    pub event_type: String,
    pub result: Result<(), String>,
}

/// Re-applies one stored event, or every event that failed or was never applied.
#[tracing::instrument(skip(billing))]
pub async fn replay(billing: &Billing, event_id: Option<&str>) -> Result<Vec<Replayed>, OpsError> {
    let rows = inbox::stored(&billing.db, event_id).await?;
    if let (Some(id), true) = (event_id, rows.is_empty()) {
        return Err(OpsError::UnknownEvent(id.to_owned()));
    }
    let prices = billing.price_directory();
    let mut done = Vec::new();
    for row in rows {
        let reads = crate::billing::apply::StripeReads::default();
        let result = match parse_event(&row.payload) {
            Ok(Some(event)) => inbox::replay(
                &billing.db,
                billing.apply_context(&prices, &reads),
                &row,
                &event,
            )
            .await
            .map_err(|err| err.to_string()),
            Ok(None) => Err("not an event type the app handles".to_owned()),
            Err(err) => Err(err.to_string()),
        };
        done.push(Replayed {
            event_id: row.stripe_event_id,
            event_type: row.event_type,
            result,
        });
    }
    Ok(done)
}

/// A difference `reconcile` found and fixed.
#[derive(Debug, PartialEq, Eq)]
pub struct Drift {
    pub subscription_id: String,
    pub change: String,
}

fn describe(local: Option<&subscriptions::Model>, remote: &SubscriptionState) -> Option<String> {
    let Some(local) = local else {
        return Some(format!("missing locally; added as {}", remote.status));
    };
    let mut changes = Vec::new();
    if local.status != remote.status {
        changes.push(format!("status {} → {}", local.status, remote.status));
    }
    if local.stripe_price_id != remote.price_id {
        changes.push(format!(
            "price {} → {}",
            local.stripe_price_id, remote.price_id
        ));
    }
    if local.cancel_at_period_end != remote.cancel_at_period_end {
        changes.push(format!(
            "cancel_at_period_end {} → {}",
            local.cancel_at_period_end, remote.cancel_at_period_end
        ));
    }
    let end = local.current_period_end.map(|t| t.timestamp());
    if end != remote.current_period_end {
        changes.push(format!(
            "period end {:?} → {:?}",
            end, remote.current_period_end
        ));
    }
    (!changes.is_empty()).then(|| changes.join(", "))
}

/// Compares every local subscription, and every subscription of every known
/// customer, with Stripe; fixes drift through the one upsert and reports it.
/// One subscription at a time: each is read from Stripe and at once written
/// under its lock (by the freshness rule), so a webhook that lands meanwhile is
/// never reverted by a read older than it.
#[tracing::instrument(skip_all)]
pub async fn reconcile(billing: &Billing) -> Result<Vec<Drift>, OpsError> {
    reconcile_with(billing, Reconcile::Apply, None).await
}

/// What `reconcile` would change, without changing it (the console's dry run).
pub async fn drift(billing: &Billing) -> Result<Vec<Drift>, OpsError> {
    reconcile_with(billing, Reconcile::DryRun, None).await
}

/// Reconciles one subscription only (the console's "apply" for one row).
pub async fn reconcile_one(billing: &Billing, subscription: &str) -> Result<Vec<Drift>, OpsError> {
    reconcile_with(billing, Reconcile::Apply, Some(subscription)).await
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Reconcile {
    Apply,
    DryRun,
}

async fn reconcile_with(
    billing: &Billing,
    mode: Reconcile,
    only: Option<&str>,
) -> Result<Vec<Drift>, OpsError> {
    let wanted = |id: &str| only.is_none_or(|only| only == id);
    let local = subscriptions::Entity::find().all(&billing.db).await?;
    let prices = billing.price_directory();
    let mut seen = std::collections::HashSet::new();
    let mut drift = Vec::new();
    let settle = |sub: SubscriptionState| {
        let before = local
            .iter()
            .find(|r| r.stripe_subscription_id == sub.id)
            .cloned();
        let prices = &prices;
        async move {
            let change = describe(before.as_ref(), &sub);
            if mode == Reconcile::DryRun {
                return Ok(change.map(|change| Drift {
                    subscription_id: sub.id.clone(),
                    change,
                }));
            }
            let reads = apply::StripeReads::default();
            let outcomes = apply::write(
                &billing.db,
                billing.apply_context(prices, &reads),
                apply::Write::Fetched(&sub),
            )
            .await?;
            Ok::<_, OpsError>(match (change, outcomes.as_slice()) {
                (Some(change), [Outcome::SubscriptionWritten(_)]) => Some(Drift {
                    subscription_id: sub.id.clone(),
                    change,
                }),
                _ => None,
            })
        }
    };
    for row in local.iter().filter(|r| wanted(&r.stripe_subscription_id)) {
        seen.insert(row.stripe_subscription_id.clone());
        let sub = billing
            .stripe
            .subscription(&row.stripe_subscription_id)
            .await?;
        drift.extend(settle(sub).await?);
    }
    let customers = accounts::Entity::find()
        .filter(accounts::Column::StripeCustomerId.is_not_null())
        .all(&billing.db)
        .await?;
    for account in customers {
        let Some(customer) = account.stripe_customer_id else {
            continue;
        };
        for sub in billing.stripe.customer_subscriptions(&customer).await? {
            if wanted(&sub.id) && seen.insert(sub.id.clone()) {
                drift.extend(settle(sub).await?);
            }
        }
        if mode == Reconcile::DryRun || only.is_some() {
            continue;
        }
        // The invoice mirror: what events were missed (or came before it existed).
        for invoice in billing.stripe.invoices(&customer).await? {
            let reads = apply::StripeReads::default();
            apply::write(
                &billing.db,
                billing.apply_context(&prices, &reads),
                apply::Write::FetchedInvoice(&invoice),
            )
            .await?;
        }
    }
    Ok(drift)
}

/// How often [`sweep`] runs while serving.
pub const SWEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(600);

/// Housekeeping on a schedule: expired sessions (the cookie's 14 days of
/// inactivity end here too, not only in the browser) and abuse-limit counters
/// of windows that have ended. Returns how many of each were removed.
pub async fn sweep(db: &sea_orm::DatabaseConnection) -> Result<(u64, u64), sea_orm::DbErr> {
    let sessions = {
        let _turn = crate::db::write_turn(db).await;
        crate::auth::session_store::delete_expired(db).await?
    };
    let counters = crate::limits::sweep(db, chrono::Utc::now().timestamp()).await?;
    Ok((sessions, counters))
}
