//! Credits given to an account: by a pack purchase, following the purchase's
//! state as the one write path moves it (paid: granted once; refunded or lost
//! in a dispute: what is unspent is taken back and recorded; dispute won:
//! given back), and by an operator, with a reason.

use chrono::{DateTime, Utc};
use sea_orm::{
    sea_query::Expr, ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait,
    QueryFilter,
};

use super::{ledger, UsageError};
use crate::{
    catalog::{Catalog, Limit, CREDITS},
    db::entities::{
        credit_grants,
        one_time_purchases::{self, PurchaseStatus},
    },
};

/// Credits spendable now (not counting holds).
pub async fn spendable<C: ConnectionTrait>(
    conn: &C,
    account_id: i64,
    now: i64,
) -> Result<i64, DbErr> {
    let row = conn
        .query_one_raw(ledger::statement(
            conn.get_database_backend(),
            "SELECT COALESCE(CAST(SUM(remaining) AS BIGINT), 0) AS credits FROM credit_grants \
             WHERE account_id = ? AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?)",
            vec![account_id.into(), now.into()],
        ))
        .await?;
    Ok(match row {
        Some(row) => row.try_get("", "credits")?,
        None => 0,
    })
}

/// The credits one purchase of `plan_id` grants (`limits.credits` × quantity).
fn credits_of(catalog: &Catalog, purchase: &one_time_purchases::Model) -> Option<i64> {
    let plan = catalog.plan(purchase.plan_id.as_deref()?)?;
    match plan.limits.get(CREDITS)? {
        Limit::Count(n) => i64::try_from(*n)
            .ok()?
            .checked_mul(i64::from(purchase.quantity.max(1))),
        _ => None,
    }
}

/// Makes the purchase's grant agree with the purchase's state; called in the
/// transaction that wrote the purchase, so re-delivered and reordered events
/// change nothing twice (one grant per purchase: `source_ref` is unique).
pub async fn follow_purchase<C: ConnectionTrait>(
    conn: &C,
    catalog: &Catalog,
    purchase_id: i64,
) -> Result<(), DbErr> {
    let Some(purchase) = one_time_purchases::Entity::find_by_id(purchase_id)
        .one(conn)
        .await?
    else {
        return Ok(());
    };
    let (Some(account_id), Some(credits)) = (purchase.account_id, credits_of(catalog, &purchase))
    else {
        return Ok(());
    };
    // Spending and taking back share the account's lock.
    match ledger::lock_account(conn, account_id).await {
        Ok(()) => {}
        Err(UsageError::Database(err)) => return Err(err),
        Err(_) => return Ok(()),
    }
    let source_ref = format!("purchase:{}", purchase.id);
    let grant = credit_grants::Entity::find()
        .filter(credit_grants::Column::SourceRef.eq(source_ref.as_str()))
        .one(conn)
        .await?;
    let now = Utc::now();
    match (purchase.status, grant) {
        (PurchaseStatus::Paid, None) => {
            credit_grants::Entity::insert(credit_grants::ActiveModel {
                account_id: Set(account_id),
                source: Set("pack".to_owned()),
                source_ref: Set(source_ref),
                amount: Set(credits),
                remaining: Set(credits),
                revoked_amount: Set(0),
                expires_at: Set(None),
                revoked_at: Set(None),
                note: Set(purchase.plan_id.clone()),
                created_at: Set(now),
                ..Default::default()
            })
            .on_conflict(
                sea_orm::sea_query::OnConflict::column(credit_grants::Column::SourceRef)
                    .do_nothing()
                    .to_owned(),
            )
            .exec_without_returning(conn)
            .await?;
        }
        // A dispute won: what was taken back is spendable again.
        (PurchaseStatus::Paid, Some(grant)) if grant.revoked_at.is_some() => {
            credit_grants::Entity::update_many()
                .col_expr(
                    credit_grants::Column::Remaining,
                    sea_orm::sea_query::ExprTrait::add(
                        Expr::col(credit_grants::Column::Remaining),
                        Expr::col(credit_grants::Column::RevokedAmount),
                    ),
                )
                .col_expr(credit_grants::Column::RevokedAmount, Expr::value(0))
                .col_expr(
                    credit_grants::Column::RevokedAt,
                    Expr::value(None::<DateTime<Utc>>),
                )
                .filter(credit_grants::Column::Id.eq(grant.id))
                .filter(credit_grants::Column::RevokedAt.is_not_null())
                .exec(conn)
                .await?;
        }
        // Refunded or lost: the unspent part is taken back and recorded; what
        // was spent stays spent (amount − revoked_amount).
        (PurchaseStatus::Refunded | PurchaseStatus::Reversed, Some(grant))
            if grant.revoked_at.is_none() =>
        {
            revoke_unspent(conn, grant.id).await?;
        }
        _ => {}
    }
    Ok(())
}

/// Takes back what is unspent of a grant (once: only while it is not revoked).
async fn revoke_unspent<C: ConnectionTrait>(conn: &C, grant_id: i64) -> Result<(), DbErr> {
    credit_grants::Entity::update_many()
        .col_expr(
            credit_grants::Column::RevokedAmount,
            Expr::col(credit_grants::Column::Remaining),
        )
        .col_expr(credit_grants::Column::Remaining, Expr::value(0))
        .col_expr(credit_grants::Column::RevokedAt, Expr::value(Utc::now()))
        .filter(credit_grants::Column::Id.eq(grant_id))
        .filter(credit_grants::Column::RevokedAt.is_null())
        .exec(conn)
        .await?;
    Ok(())
}

/// An operator's grant (or, with `expires_at`, a trial of credits), in the
/// caller's transaction when it has one (the console audits in it); its id.
pub async fn grant_manual<C: ConnectionTrait>(
    conn: &C,
    account_id: i64,
    amount: i64,
    expires_at: Option<DateTime<Utc>>,
    note: &str,
) -> Result<i64, UsageError> {
    if !(1..=super::MAX_AMOUNT).contains(&amount) {
        return Err(UsageError::BadAmount);
    }
    let now = Utc::now();
    let mut nonce = [0u8; 12];
    argon2::password_hash::rand_core::RngCore::fill_bytes(
        &mut argon2::password_hash::rand_core::OsRng,
        &mut nonce,
    );
    let inserted = credit_grants::Entity::insert(credit_grants::ActiveModel {
        account_id: Set(account_id),
        source: Set("manual".to_owned()),
        source_ref: Set(format!("manual:{}", hex::encode(nonce))),
        amount: Set(amount),
        remaining: Set(amount),
        revoked_amount: Set(0),
        expires_at: Set(expires_at.map(|t| t.timestamp())),
        revoked_at: Set(None),
        note: Set(Some(note.to_owned())),
        created_at: Set(now),
        ..Default::default()
    })
    .exec(conn)
    .await?;
    Ok(inserted.last_insert_id)
}

/// A correction: takes back what is unspent of one of the account's grants;
/// how much (0 when nothing was left or it was taken back already).
pub async fn take_back<C: ConnectionTrait>(
    conn: &C,
    account_id: i64,
    grant_id: i64,
) -> Result<i64, UsageError> {
    ledger::lock_account(conn, account_id).await?;
    let Some(grant) = credit_grants::Entity::find_by_id(grant_id)
        .filter(credit_grants::Column::AccountId.eq(account_id))
        .one(conn)
        .await?
    else {
        return Ok(0);
    };
    if grant.revoked_at.is_some() {
        return Ok(0);
    }
    revoke_unspent(conn, grant.id).await?;
    Ok(grant.remaining)
}

/// An account's grants, newest first (the billing page, the console).
pub async fn of_account<C: ConnectionTrait>(
    conn: &C,
    account_id: i64,
) -> Result<Vec<credit_grants::Model>, DbErr> {
    use sea_orm::QueryOrder;
    credit_grants::Entity::find()
        .filter(credit_grants::Column::AccountId.eq(account_id))
        .order_by_desc(credit_grants::Column::Id)
        .all(conn)
        .await
}
