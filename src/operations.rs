//! Operator commands: `webhooks replay` and `reconcile`. Both write through
//! `billing::sync`, so they obey the same ordering and idempotency rules as the
//! webhook route.

use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

use crate::{
    billing::{
        objects::SubscriptionState,
        service::sync_context,
        sync::{self, Outcome, SyncError},
    },
    db::entities::{subscriptions, users},
    gateway::{objects::parse_event, GatewayError},
    server::AppState,
    webhooks::inbox,
};

#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    #[error("database: {0}")]
    Database(#[from] sea_orm::DbErr),
    #[error(transparent)]
    Stripe(#[from] GatewayError),
    #[error(transparent)]
    Sync(#[from] SyncError),
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
pub async fn replay(state: &AppState, event_id: Option<&str>) -> Result<Vec<Replayed>, OpsError> {
    let rows = inbox::stored(&state.db, event_id).await?;
    if let (Some(id), true) = (event_id, rows.is_empty()) {
        return Err(OpsError::UnknownEvent(id.to_owned()));
    }
    let prices = state.price_directory();
    let mut done = Vec::new();
    for row in rows {
        let result = match parse_event(&row.payload) {
            Ok(Some(event)) => inbox::replay(&state.db, sync_context(state, &prices), &row, &event)
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
pub async fn reconcile(state: &AppState) -> Result<Vec<Drift>, OpsError> {
    let local = subscriptions::Entity::find().all(&state.db).await?;
    let mut remote: Vec<SubscriptionState> = Vec::new();
    for row in &local {
        remote.push(
            state
                .stripe
                .subscription(&row.stripe_subscription_id)
                .await?,
        );
    }
    let customers = users::Entity::find()
        .filter(users::Column::StripeCustomerId.is_not_null())
        .all(&state.db)
        .await?;
    for user in customers {
        let Some(customer) = user.stripe_customer_id else {
            continue;
        };
        for sub in state.stripe.customer_subscriptions(&customer).await? {
            if !remote.iter().any(|r| r.id == sub.id) {
                remote.push(sub);
            }
        }
    }
    let prices = state.price_directory();
    let mut drift = Vec::new();
    for sub in remote {
        let before = local.iter().find(|r| r.stripe_subscription_id == sub.id);
        let change = describe(before, &sub);
        let outcome =
            sync::from_fetched_subscription(&state.db, sync_context(state, &prices), &sub).await?;
        if let (Some(change), Outcome::SubscriptionWritten(_)) = (change, outcome) {
            drift.push(Drift {
                subscription_id: sub.id.clone(),
                change,
            });
        }
    }
    Ok(drift)
}
