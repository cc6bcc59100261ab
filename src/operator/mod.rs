//! The operator console's rules and actions, below its pages: who is an
//! operator (a column set by `users promote`, never anything a browser sends),
//! the audit log every action writes, and the actions themselves, which go
//! through the same paths as the CLI (`operations::replay`).

use chrono::Utc;
use sea_orm::{
    sea_query::Expr, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr,
    EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
};

use crate::{
    billing::context::Billing,
    db::entities::{accounts, audit_log, outbox, users, webhook_events},
    operations,
};

#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    #[error("no account with the email {0}")]
    UnknownUser(String),
    #[error("database: {0}")]
    Database(#[from] DbErr),
    #[error(transparent)]
    Ops(#[from] operations::OpsError),
}

/// `users promote` / `users demote`: sets the role; whether it changed.
pub async fn set_operator(
    db: &DatabaseConnection,
    email: &str,
    operator: bool,
) -> Result<bool, OperatorError> {
    let email = crate::auth::accounts::normalize_email(email)
        .map_err(|_| OperatorError::UnknownUser(email.to_owned()))?;
    let user = users::Entity::find()
        .filter(users::Column::Email.eq(email.as_str()))
        .one(db)
        .await?
        .ok_or_else(|| OperatorError::UnknownUser(email.clone()))?;
    if user.is_operator == operator {
        return Ok(false);
    }
    users::Entity::update_many()
        .col_expr(users::Column::IsOperator, Expr::value(operator))
        .col_expr(users::Column::UpdatedAt, Expr::value(Utc::now()))
        .filter(users::Column::Id.eq(user.id))
        .exec(db)
        .await?;
    Ok(true)
}

/// Writes one audit entry, in the caller's transaction when it has one.
pub async fn audit<C: ConnectionTrait>(
    conn: &C,
    operator: &users::Model,
    action: &str,
    target: &str,
    before: Option<String>,
    after: Option<String>,
) -> Result<(), DbErr> {
    audit_log::Entity::insert(audit_log::ActiveModel {
        operator_id: Set(operator.id),
        operator_email: Set(operator.email.clone()),
        action: Set(action.to_owned()),
        target: Set(target.to_owned()),
        before: Set(before),
        after: Set(after),
        created_at: Set(Utc::now()),
        ..Default::default()
    })
    .exec_without_returning(conn)
    .await?;
    Ok(())
}

/// A page of rows and whether there is a next one.
pub struct Page<T> {
    pub rows: Vec<T>,
    pub page: u64,
    pub has_next: bool,
}

pub const PAGE_SIZE: u64 = 50;

/// Page number `page` of `query`: one row more than a page is read to know
/// whether a next one exists.
async fn page_of<E: EntityTrait>(
    db: &DatabaseConnection,
    query: sea_orm::Select<E>,
    page: u64,
) -> Result<Page<E::Model>, DbErr> {
    let mut rows = query
        .offset(page * PAGE_SIZE)
        .limit(PAGE_SIZE + 1)
        .all(db)
        .await?;
    let has_next = rows.len() as u64 > PAGE_SIZE;
    rows.truncate(PAGE_SIZE as usize);
    Ok(Page {
        rows,
        page,
        has_next,
    })
}

/// Stored webhook events, newest first; `status` narrows them (`failed`, …).
pub async fn events(
    db: &DatabaseConnection,
    status: Option<webhook_events::EventStatus>,
    page: u64,
) -> Result<Page<webhook_events::Model>, DbErr> {
    let mut query = webhook_events::Entity::find().order_by_desc(webhook_events::Column::Id);
    if let Some(status) = status {
        query = query.filter(webhook_events::Column::Status.eq(status));
    }
    page_of(db, query, page).await
}

/// A billing account the console found, with its user if it is personal.
pub struct FoundAccount {
    pub account: accounts::Model,
    pub user: Option<users::Model>,
}

/// Personal accounts whose user's email contains `query` (lower-cased), then
/// organizations whose name or slug does, at most a page of each.
pub async fn find_accounts(
    db: &DatabaseConnection,
    query: &str,
) -> Result<Vec<FoundAccount>, DbErr> {
    let query = query.trim().to_lowercase();
    if query.is_empty() || query.len() > crate::auth::accounts::MAX_EMAIL_LEN {
        return Ok(Vec::new());
    }
    let mut found = Vec::new();
    let people = users::Entity::find()
        .filter(users::Column::Email.contains(query.as_str()))
        .order_by_asc(users::Column::Email)
        .limit(PAGE_SIZE)
        .all(db)
        .await?;
    for user in people {
        let account = accounts::Entity::find()
            .filter(accounts::Column::PersonalUserId.eq(user.id))
            .one(db)
            .await?;
        if let Some(account) = account {
            found.push(FoundAccount {
                account,
                user: Some(user),
            });
        }
    }
    let organizations = accounts::Entity::find()
        .filter(accounts::Column::Kind.eq(accounts::AccountKind::Organization))
        .filter(
            sea_orm::Condition::any()
                .add(accounts::Column::Slug.contains(query.as_str()))
                .add(accounts::Column::Name.contains(query.as_str())),
        )
        .order_by_asc(accounts::Column::Name)
        .limit(PAGE_SIZE)
        .all(db)
        .await?;
    found.extend(organizations.into_iter().map(|account| FoundAccount {
        account,
        user: None,
    }));
    Ok(found)
}

/// How many events wait in each bad state (the console's first screen).
pub async fn failed_count(db: &DatabaseConnection) -> Result<u64, DbErr> {
    webhook_events::Entity::find()
        .filter(webhook_events::Column::Status.eq(webhook_events::EventStatus::Failed))
        .count(db)
        .await
}

/// Replays one stored event (or, with `None`, every failed one) through the one
/// write path, and records what the operator did with the events' states
/// before and after.
pub async fn replay(
    billing: &Billing,
    operator: &users::Model,
    event_id: Option<&str>,
) -> Result<Vec<operations::Replayed>, OperatorError> {
    let state = |rows: &[webhook_events::Model]| {
        rows.iter()
            .map(|r| {
                format!(
                    "{} {:?} attempts={}",
                    r.stripe_event_id, r.status, r.attempts
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    let before = crate::webhooks::inbox::stored(&billing.db, event_id).await?;
    let replayed = operations::replay(billing, event_id).await?;
    let ids: Vec<&str> = before.iter().map(|r| r.stripe_event_id.as_str()).collect();
    let after = webhook_events::Entity::find()
        .filter(webhook_events::Column::StripeEventId.is_in(ids))
        .all(&billing.db)
        .await?;
    audit(
        &billing.db,
        operator,
        if event_id.is_some() {
            "replay event"
        } else {
            "replay failed events"
        },
        event_id.unwrap_or("all failed"),
        Some(state(&before)),
        Some(state(&after)),
    )
    .await?;
    Ok(replayed)
}

/// The latest audit entries, newest first.
pub async fn audit_entries(
    db: &DatabaseConnection,
    page: u64,
) -> Result<Page<audit_log::Model>, DbErr> {
    page_of(
        db,
        audit_log::Entity::find().order_by_desc(audit_log::Column::Id),
        page,
    )
    .await
}

/// Outbox messages that failed for good, newest first, a page at a time.
pub async fn failed_mail(db: &DatabaseConnection, page: u64) -> Result<Page<outbox::Model>, DbErr> {
    page_of(
        db,
        outbox::Entity::find()
            .filter(outbox::Column::Status.eq(outbox::MailStatus::Failed))
            .order_by_desc(outbox::Column::Id),
        page,
    )
    .await
}

/// Puts a failed message back in the queue with fresh attempts (the worker
/// sends it at its next round); whether it was failed. Audited.
pub async fn resend(
    db: &DatabaseConnection,
    operator: &users::Model,
    id: i64,
) -> Result<bool, DbErr> {
    let queued = outbox::Entity::update_many()
        .col_expr(
            outbox::Column::Status,
            Expr::value(outbox::MailStatus::Pending),
        )
        .col_expr(outbox::Column::Attempts, Expr::value(0))
        .col_expr(outbox::Column::NextAttemptAt, Expr::value(Utc::now()))
        .col_expr(
            outbox::Column::ClaimedUntil,
            Expr::value(None::<chrono::DateTime<Utc>>),
        )
        .filter(outbox::Column::Id.eq(id))
        .filter(outbox::Column::Status.eq(outbox::MailStatus::Failed))
        .exec(db)
        .await?
        .rows_affected
        == 1;
    if queued {
        audit(
            db,
            operator,
            "resend mail",
            &format!("outbox {id}"),
            Some("failed".to_owned()),
            Some("pending".to_owned()),
        )
        .await?;
    }
    Ok(queued)
}

/// `reconcile` from the console, for one subscription or all; audited with
/// the dry run's list before and what was fixed after.
pub async fn reconcile(
    billing: &Billing,
    operator: &users::Model,
    subscription: Option<&str>,
) -> Result<Vec<operations::Drift>, OperatorError> {
    let list = |drift: &[operations::Drift]| {
        drift
            .iter()
            .map(|d| format!("{}: {}", d.subscription_id, d.change))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let before = operations::drift(billing).await?;
    let fixed = match subscription {
        Some(id) => operations::reconcile_one(billing, id).await?,
        None => operations::reconcile(billing).await?,
    };
    audit(
        &billing.db,
        operator,
        "reconcile",
        subscription.unwrap_or("all subscriptions"),
        Some(list(&before)),
        Some(list(&fixed)),
    )
    .await?;
    Ok(fixed)
}

/// An operator's grant of credits to an account, with the reason, audited in
/// the same transaction.
pub async fn grant_credits(
    db: &DatabaseConnection,
    operator: &users::Model,
    account_id: i64,
    amount: i64,
    expires_at: Option<chrono::DateTime<Utc>>,
    reason: &str,
) -> Result<i64, crate::entitlements::UsageError> {
    use sea_orm::TransactionTrait;
    let _turn = crate::db::write_turn(db).await;
    let tx = db.begin().await?;
    let note = format!("{reason} (by {})", operator.email);
    let id = crate::entitlements::grants::grant_manual(&tx, account_id, amount, expires_at, &note)
        .await?;
    audit(
        &tx,
        operator,
        "grant credits",
        &format!("account {account_id}"),
        None,
        Some(format!(
            "grant {id}: {amount} credits{}; {reason}",
            expires_at.map_or_else(String::new, |at| format!(
                ", expiring {}",
                at.format("%Y-%m-%d")
            ))
        )),
    )
    .await?;
    tx.commit().await?;
    Ok(id)
}

/// A correction: takes back what is left of one grant, audited.
pub async fn take_back_credits(
    db: &DatabaseConnection,
    operator: &users::Model,
    account_id: i64,
    grant_id: i64,
    reason: &str,
) -> Result<i64, crate::entitlements::UsageError> {
    use sea_orm::TransactionTrait;
    let _turn = crate::db::write_turn(db).await;
    let tx = db.begin().await?;
    let taken = crate::entitlements::grants::take_back(&tx, account_id, grant_id).await?;
    if taken > 0 {
        audit(
            &tx,
            operator,
            "take back credits",
            &format!("account {account_id}"),
            Some(format!("grant {grant_id}: {taken} left")),
            Some(format!("grant {grant_id}: 0 left; {reason}")),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(taken)
}
