//! A user's billing rows, read for the access policy.

use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter};

use super::access::{BillingSnapshot, PurchaseFacts, SubscriptionFacts};
use crate::{
    catalog::Interval,
    db::entities::{one_time_purchases, subscriptions},
};

pub fn interval_from_stripe(word: Option<&str>) -> Option<Interval> {
    match word? {
        "month" => Some(Interval::Month),
        "year" => Some(Interval::Year),
        _ => None,
    }
}

pub async fn load<C: ConnectionTrait>(conn: &C, user_id: i64) -> Result<BillingSnapshot, DbErr> {
    let subscriptions = subscriptions::Entity::find()
        .filter(subscriptions::Column::UserId.eq(user_id))
        .all(conn)
        .await?
        .into_iter()
        .map(|row| SubscriptionFacts {
            interval: interval_from_stripe(row.interval.as_deref()),
            stripe_subscription_id: row.stripe_subscription_id,
            status: row.status,
            plan_id: row.plan_id,
            current_period_start: row.current_period_start,
            current_period_end: row.current_period_end,
            cancel_at_period_end: row.cancel_at_period_end,
            cancel_at: row.cancel_at,
            trial_end: row.trial_end,
        })
        .collect();
    let purchases = one_time_purchases::Entity::find()
        .filter(one_time_purchases::Column::UserId.eq(user_id))
        .all(conn)
        .await?
        .into_iter()
        .map(|row| PurchaseFacts {
            plan_id: row.plan_id,
            quantity: row.quantity,
            status: row.status,
        })
        .collect();
    Ok(BillingSnapshot {
        subscriptions,
        purchases,
    })
}
