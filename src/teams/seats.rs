//! Seats: on a per-seat plan the subscription's quantity is the account's
//! seat count (members and open invitations, at least the plan's minimum, or
//! what an admin chose). Every change of membership ends with [`sync`], which
//! sets Stripe's quantity (prorated) and writes Stripe's answer through the
//! one write path.
//!
//! `sync` sets an absolute number, never "+1": a retried or repeated call
//! cannot count a seat twice. Concurrent calls in one process take turns; calls
//! from several instances each finish only once Stripe shows the count the
//! database needs *after* their own update, so whichever update lands last is
//! checked against the latest membership and corrected.

use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, PaginatorTrait, QueryFilter};

use super::{rules, TeamError};
use crate::{
    billing::{apply, context::Billing, service},
    catalog::Plan,
    db::entities::{accounts, invitations, memberships},
};

/// A plan's seat terms, when it is billed per seat.
pub fn terms(plan: &Plan) -> Option<rules::SeatTerms> {
    plan.per_seat.then(|| rules::SeatTerms {
        min: plan.min_seats.unwrap_or(1),
        max: plan.max_seats,
    })
}

/// Members and open (unexpired, unanswered) invitations of an account.
pub async fn usage<C: ConnectionTrait>(conn: &C, account_id: i64) -> Result<(u32, u32), DbErr> {
    let members = memberships::Entity::find()
        .filter(memberships::Column::AccountId.eq(account_id))
        .count(conn)
        .await?;
    let invited = invitations::Entity::find()
        .filter(invitations::Column::AccountId.eq(account_id))
        .filter(super::invitations::open_at(chrono::Utc::now()))
        .count(conn)
        .await?;
    Ok((members as u32, invited as u32))
}

/// The seats `account` needs on `plan` now (1 on a plan not billed per seat).
pub async fn needed<C: ConnectionTrait>(
    conn: &C,
    plan: &Plan,
    account: &accounts::Model,
) -> Result<u32, DbErr> {
    let Some(terms) = terms(plan) else {
        return Ok(1);
    };
    let (members, invited) = usage(conn, account.id).await?;
    let chosen = account.seats_wanted.and_then(|n| u32::try_from(n).ok());
    Ok(rules::seats_needed(terms, members, invited, chosen))
}

/// Whether the account's plan has room for one more invitation; the error
/// names the seat limit.
pub async fn check_room(billing: &Billing, account_id: i64) -> Result<(), TeamError> {
    let access = service::access_for(billing, account_id).await?;
    let Some(terms) = access
        .plan_id
        .as_deref()
        .and_then(|id| billing.catalog.plan(id))
        .and_then(terms)
    else {
        return Ok(());
    };
    let (members, invited) = usage(&billing.db, account_id).await?;
    if rules::room_for_one_more(terms, members, invited) {
        Ok(())
    } else {
        Err(TeamError::SeatsFull(terms.max.unwrap_or(members + invited)))
    }
}

/// Seats in use and paid for, for the billing and team pages; `None` when the
/// account's plan is not billed per seat.
pub async fn summary(
    billing: &Billing,
    account_id: i64,
) -> Result<Option<(u32, u32)>, service::ServiceError> {
    let access = service::access_for(billing, account_id).await?;
    summary_with(billing, account_id, &access).await
}

/// `summary` for a caller that has the account's access already.
pub async fn summary_with(
    billing: &Billing,
    account_id: i64,
    access: &crate::billing::access::Access,
) -> Result<Option<(u32, u32)>, service::ServiceError> {
    let per_seat = access
        .plan_id
        .as_deref()
        .and_then(|id| billing.catalog.plan(id))
        .is_some_and(|plan| plan.per_seat);
    let Some(sub) = access.subscription.as_ref().filter(|_| per_seat) else {
        return Ok(None);
    };
    let paid = crate::db::entities::subscriptions::Entity::find()
        .filter(
            crate::db::entities::subscriptions::Column::StripeSubscriptionId
                .eq(sub.stripe_subscription_id.as_str()),
        )
        .one(&billing.db)
        .await?
        .map(|row| row.quantity.max(0) as u32)
        .unwrap_or(1);
    let (members, invited) = usage(&billing.db, account_id).await?;
    Ok(Some((members + invited, paid)))
}

/// An admin's choice of seats to pay for beyond the members and invitations
/// (`None`: count them only); the subscription follows at once.
#[tracing::instrument(skip_all, fields(actor = actor.user.id, account = actor.account.id, ?chosen))]
pub async fn choose(
    billing: &Billing,
    actor: &super::Member,
    chosen: Option<u32>,
) -> Result<(), TeamError> {
    actor.may(super::Action::ManageBilling)?;
    if let Some(n) = chosen {
        let access = service::access_for(billing, actor.account.id).await?;
        let max = access
            .plan_id
            .as_deref()
            .and_then(|id| billing.catalog.plan(id))
            .and_then(terms)
            .and_then(|t| t.max)
            .unwrap_or(MAX_CHOSEN_SEATS);
        if n == 0 || n > max {
            return Err(TeamError::Invalid(
                "Choose a number of seats between 1 and your plan's limit.",
            ));
        }
    }
    accounts::Entity::update_many()
        .col_expr(
            accounts::Column::SeatsWanted,
            sea_orm::sea_query::Expr::value(chosen.map(|n| n as i32)),
        )
        .col_expr(
            accounts::Column::UpdatedAt,
            sea_orm::sea_query::Expr::value(chrono::Utc::now()),
        )
        .filter(accounts::Column::Id.eq(actor.account.id))
        .exec(&billing.db)
        .await?;
    sync(billing, actor.account.id).await
}

/// The most seats an admin may choose on a plan without its own `max_seats`.
pub const MAX_CHOSEN_SEATS: u32 = 10_000;

/// How many rounds one call makes at most before it leaves the rest to the
/// next membership change (each round: one read, at most one update).
const MAX_ROUNDS: usize = 6;

/// Makes the account's per-seat subscription in Stripe carry the seats the
/// account needs now. Nothing happens without a live per-seat subscription.
#[tracing::instrument(skip_all, fields(account = account_id))]
pub async fn sync(billing: &Billing, account_id: i64) -> Result<(), TeamError> {
    // One process: one sync at a time (each a read and at most one update).
    static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _turn = TURN.lock().await;
    for _ in 0..MAX_ROUNDS {
        let access = service::access_for(billing, account_id).await?;
        let Some(plan) = access
            .plan_id
            .as_deref()
            .and_then(|id| billing.catalog.plan(id))
            .filter(|plan| plan.per_seat)
        else {
            return Ok(());
        };
        let Some(live) = access.subscription else {
            return Ok(());
        };
        let Some(account) = accounts::Entity::find_by_id(account_id)
            .one(&billing.db)
            .await?
        else {
            return Ok(());
        };
        let needed = needed(&billing.db, plan, &account).await?;
        let current = billing
            .stripe
            .subscription(&live.stripe_subscription_id)
            .await?;
        let prices = billing.price_directory();
        let reads = apply::StripeReads::default();
        if current.quantity.max(0) as u32 == needed {
            // Stripe agrees; the mirror learns it (webhooks would too, later).
            apply::write(
                &billing.db,
                billing.apply_context(&prices, &reads),
                apply::Write::Fetched(&current),
            )
            .await
            .map_err(service::ServiceError::from)?;
            return Ok(());
        }
        let Some(item) = current.item_id.as_deref() else {
            return Ok(());
        };
        // Names this change: a network retry of it replays, a later change to
        // the same number (after another in between) is a new change.
        let key = format!("{needed}:{}", chrono::Utc::now().timestamp_micros());
        let updated = billing
            .stripe
            .set_subscription_quantity(&live.stripe_subscription_id, item, needed, &key)
            .await?;
        tracing::info!(
            from = current.quantity,
            to = needed,
            "seats changed in Stripe"
        );
        apply::write(
            &billing.db,
            billing.apply_context(&prices, &reads),
            apply::Write::Fetched(&updated),
        )
        .await
        .map_err(service::ServiceError::from)?;
    }
    tracing::warn!("seat count still moving; the next change of membership settles it");
    Ok(())
}
