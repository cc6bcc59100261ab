//! The outbox: every email is a row written in the transaction of what causes
//! it (a sign-up, a reset request, a webhook event), so a rolled-back cause
//! sends nothing and a committed one cannot lose its mail. The worker claims
//! due rows, sends them and records the outcome.
//!
//! - Exactly once per cause: `dedupe_key` is unique, and a second insert with
//!   the same key (a re-delivered event, a retried request) does nothing.
//! - One sender per row among several app instances: a claim is one `UPDATE`
//!   of due rows to a lease; on PostgreSQL the rows are chosen `FOR UPDATE SKIP
//!   LOCKED`, so two workers never take the same row; SQLite has one writer.
//!   Each claim increments `attempts`, and the outcome is recorded only by the
//!   worker whose `attempts` still matches (a fencing token), so a worker whose
//!   lease ran out cannot overwrite a newer attempt's result.
//! - A worker that dies between sending and recording leaves the row to be sent
//!   again once its lease expires: at least once in that one case, never lost.

use chrono::{DateTime, Utc};
use sea_orm::{
    sea_query::OnConflict, ActiveValue::Set, ConnectionTrait, DatabaseConnection, DbBackend, DbErr,
    EntityTrait, Statement,
};

use super::templates::Rendered;
use crate::db::entities::outbox::{self, MailStatus};

/// Attempts before a message is marked failed (and kept, visible).
pub const MAX_ATTEMPTS: i32 = 8;
/// How long a claim holds a row: longer than one SMTP exchange may take.
pub const LEASE: std::time::Duration = std::time::Duration::from_secs(120);

/// A message to write to the outbox.
pub struct NewMail<'a> {
    /// What makes it once (see the module docs).
    pub dedupe_key: String,
    pub user_id: Option<i64>,
    pub recipient: &'a str,
    pub message: Rendered,
}

/// Writes `mail` in the caller's transaction; `false` when a message with the
/// same key was written before (nothing is sent twice).
pub async fn enqueue<C: ConnectionTrait>(conn: &C, mail: NewMail<'_>) -> Result<bool, DbErr> {
    let now = Utc::now();
    let inserted = outbox::Entity::insert(outbox::ActiveModel {
        dedupe_key: Set(mail.dedupe_key),
        kind: Set(mail.message.kind.to_owned()),
        user_id: Set(mail.user_id),
        recipient: Set(mail.recipient.to_owned()),
        subject: Set(mail.message.subject),
        text_body: Set(mail.message.text),
        html_body: Set(mail.message.html),
        status: Set(MailStatus::Pending),
        attempts: Set(0),
        next_attempt_at: Set(now),
        claimed_until: Set(None),
        last_error: Set(None),
        created_at: Set(now),
        sent_at: Set(None),
        ..Default::default()
    })
    .on_conflict(
        OnConflict::column(outbox::Column::DedupeKey)
            .do_nothing()
            .to_owned(),
    )
    .exec_without_returning(conn)
    .await?;
    Ok(inserted == 1)
}

/// Claims up to `batch` due messages for this worker until `now + LEASE`.
pub async fn claim(
    db: &DatabaseConnection,
    batch: u64,
    now: DateTime<Utc>,
) -> Result<Vec<outbox::Model>, DbErr> {
    let backend = db.get_database_backend();
    let lease = now + chrono::Duration::from_std(LEASE).unwrap_or_default();
    let sql = match backend {
        DbBackend::Postgres => {
            "UPDATE outbox SET claimed_until = $1, attempts = attempts + 1 WHERE id IN ( \
               SELECT id FROM outbox WHERE status = 'pending' AND next_attempt_at <= $2 \
               AND (claimed_until IS NULL OR claimed_until < $2) \
               ORDER BY id LIMIT $3 FOR UPDATE SKIP LOCKED) RETURNING *"
        }
        _ => {
            "UPDATE outbox SET claimed_until = ?, attempts = attempts + 1 WHERE id IN ( \
               SELECT id FROM outbox WHERE status = 'pending' AND next_attempt_at <= ? \
               AND (claimed_until IS NULL OR claimed_until < ?) \
               ORDER BY id LIMIT ?) RETURNING *"
        }
    };
    let values: Vec<sea_orm::Value> = match backend {
        DbBackend::Postgres => vec![lease.into(), now.into(), (batch as i64).into()],
        _ => vec![lease.into(), now.into(), now.into(), (batch as i64).into()],
    };
    let mut claimed = outbox::Entity::find()
        .from_raw_sql(Statement::from_sql_and_values(backend, sql, values))
        .all(db)
        .await?;
    claimed.sort_by_key(|row| row.id);
    Ok(claimed)
}

/// Records that the claimed `row` was sent; `false` if another attempt took it over.
pub async fn mark_sent(db: &DatabaseConnection, row: &outbox::Model) -> Result<bool, DbErr> {
    let backend = db.get_database_backend();
    let sql = match backend {
        DbBackend::Postgres => {
            "UPDATE outbox SET status = 'sent', sent_at = $1, claimed_until = NULL, \
             last_error = NULL WHERE id = $2 AND attempts = $3 AND status = 'pending'"
        }
        _ => {
            "UPDATE outbox SET status = 'sent', sent_at = ?, claimed_until = NULL, \
             last_error = NULL WHERE id = ? AND attempts = ? AND status = 'pending'"
        }
    };
    let done = db
        .execute_raw(Statement::from_sql_and_values(
            backend,
            sql,
            [Utc::now().into(), row.id.into(), row.attempts.into()],
        ))
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Records a failed attempt: tried again after [`retry_delay`], or failed for good.
pub async fn mark_failed(
    db: &DatabaseConnection,
    row: &outbox::Model,
    error: &str,
    retry_base: std::time::Duration,
) -> Result<(), DbErr> {
    let backend = db.get_database_backend();
    let (status, next) = match retry_delay(row.attempts, retry_base) {
        Some(delay) => (
            "pending",
            Utc::now() + chrono::Duration::from_std(delay).unwrap_or_default(),
        ),
        None => ("failed", row.next_attempt_at),
    };
    let sql = match backend {
        DbBackend::Postgres => {
            "UPDATE outbox SET status = $1, next_attempt_at = $2, claimed_until = NULL, \
             last_error = $3 WHERE id = $4 AND attempts = $5 AND status = 'pending'"
        }
        _ => {
            "UPDATE outbox SET status = ?, next_attempt_at = ?, claimed_until = NULL, \
             last_error = ? WHERE id = ? AND attempts = ? AND status = 'pending'"
        }
    };
    // SMTP replies can be long; the first kilobyte says why.
    let error: String = error.chars().take(1000).collect();
    db.execute_raw(Statement::from_sql_and_values(
        backend,
        sql,
        [
            status.into(),
            next.into(),
            error.into(),
            row.id.into(),
            row.attempts.into(),
        ],
    ))
    .await?;
    Ok(())
}

/// The wait after failed attempt number `attempts` (1, 2, …): `base`, doubled
/// each time, at most an hour; `None` once [`MAX_ATTEMPTS`] are spent.
pub fn retry_delay(attempts: i32, base: std::time::Duration) -> Option<std::time::Duration> {
    if attempts >= MAX_ATTEMPTS {
        return None;
    }
    let doublings = attempts.clamp(1, 30) as u32 - 1;
    Some(
        base.saturating_mul(2u32.saturating_pow(doublings))
            .min(std::time::Duration::from_secs(3600)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn retries_back_off_then_stop() {
        let base = Duration::from_secs(30);
        let cases = [
            (1, Some(30)),
            (2, Some(60)),
            (3, Some(120)),
            (7, Some(1920)),
            (MAX_ATTEMPTS, None),
            (MAX_ATTEMPTS + 5, None),
        ];
        for (attempts, expected) in cases {
            assert_eq!(
                retry_delay(attempts, base),
                expected.map(Duration::from_secs),
                "{attempts}"
            );
        }
        assert_eq!(
            retry_delay(7, Duration::from_secs(600)),
            Some(Duration::from_secs(3600)),
            "capped at an hour"
        );
    }
}
