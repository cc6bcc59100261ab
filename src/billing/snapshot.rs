//! An account's billing rows, read for the access policy.

use std::sync::OnceLock;

use sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement};

use super::access::{BillingSnapshot, PurchaseFacts, SubscriptionFacts};
use sea_orm::ActiveEnum;

use crate::{
    catalog::Interval,
    db::{
        entities::{one_time_purchases::PurchaseStatus, subscriptions},
        reads::{Kind, Reads, Row, Shape},
    },
};

pub fn interval_from_stripe(word: Option<&str>) -> Option<Interval> {
    match word? {
        "month" => Some(Interval::Month),
        "year" => Some(Interval::Year),
        _ => None,
    }
}

/// An account's subscriptions and purchases in one query (`UNION ALL`), purchases
/// newest first with what the billing page lists of them. This is the read inside
/// a transaction; a request's own read is [`read`].
pub async fn load<C: ConnectionTrait>(conn: &C, account_id: i64) -> Result<BillingSnapshot, DbErr> {
    let rows = conn
        .query_all_raw(statement(conn.get_database_backend(), account_id))
        .await?;
    Ok(decode(rows.into_iter().map(Row::from).collect())?.0)
}

/// [`load`] after taking the account's lock for the transaction
/// (`db::lock_account`); `None` when the account is gone. Every ledger write
/// starts with both, so on PostgreSQL they are one statement, a round trip fewer
/// (issue 23: the usage API's cost there is its round trips): the lock is a CTE
/// the rows' query waits on. Its rows are then read as of the statement's start,
/// before the wait for the lock: no older than a read made just before the lock,
/// and billing rows are not written under the account's lock (webhooks change
/// them at any time), so the lock never promised fresher ones. The balance the
/// ledger writes against is read by a statement after this one.
pub async fn load_locked<C: ConnectionTrait>(
    conn: &C,
    account_id: i64,
) -> Result<Option<BillingSnapshot>, DbErr> {
    let backend = conn.get_database_backend();
    if backend != DbBackend::Postgres {
        if !crate::db::lock_account(conn, account_id).await? {
            return Ok(None);
        }
        return load(conn, account_id).await.map(Some);
    }
    static SQL: OnceLock<String> = OnceLock::new();
    let sql = SQL.get_or_init(|| {
        // The lock's row comes last: PostgreSQL types a `UNION ALL`'s NULL
        // columns pairwise from the left, and the first two branches type them all.
        format!(
            r#"WITH "locked" AS MATERIALIZED (SELECT "id" FROM "accounts" WHERE "id" = $1 FOR UPDATE)
               {}
               UNION ALL
               SELECT 'l', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL
               FROM "locked""#,
            rows_sql("$1", "$2")
        )
    });
    let rows = conn
        .query_all_raw(Statement::from_sql_and_values(
            backend,
            sql.as_str(),
            [account_id.into(), account_id.into()],
        ))
        .await?;
    let (snapshot, locked) = decode(rows.into_iter().map(Row::from).collect())?;
    Ok(locked.then_some(snapshot))
}

/// [`load`] outside a transaction: every signed-in page reads these rows, so on
/// SQLite they are read on the request's thread (`db::reads`; see README,
/// Performance).
pub async fn read(reads: &Reads, account_id: i64) -> Result<BillingSnapshot, DbErr> {
    static SHAPE: OnceLock<Shape> = OnceLock::new();
    let shape = SHAPE.get_or_init(|| {
        Shape::default()
            .entity::<subscriptions::Entity>("")
            .column("kind", Kind::Text)
            // The purchases' columns of the same names share the subscriptions' types,
            // but these two are theirs alone.
            .column("amount_total", Kind::I64)
            .column("currency", Kind::Text)
    });
    let rows = reads
        .all(statement(reads.backend(), account_id), shape)
        .await?;
    Ok(decode(rows)?.0)
}

fn statement(backend: DbBackend, account_id: i64) -> Statement {
    let sql = match backend {
        DbBackend::Postgres => rows_sql("$1", "$2"),
        _ => rows_sql("?", "?"),
    };
    Statement::from_sql_and_values(backend, sql, [account_id.into(), account_id.into()])
}

/// The rows' query, with the account id's two placeholders.
fn rows_sql(first: &str, second: &str) -> String {
    // Columns a table lacks are NULL; PostgreSQL types them from the other branch.
    format!(
        r#"SELECT 's' AS "kind", "stripe_subscription_id", "status", "plan_id", "interval",
                  "quantity", "current_period_start", "current_period_end",
                  "cancel_at_period_end", "cancel_at", "trial_end",
                  NULL AS "amount_total", NULL AS "currency", NULL AS "created_at"
           FROM "subscriptions" WHERE "account_id" = {first}
           UNION ALL
           SELECT 'p', NULL, "status", "plan_id", NULL, "quantity", NULL, NULL, NULL, NULL, NULL,
                  "amount_total", "currency", "created_at"
           FROM "one_time_purchases" WHERE "account_id" = {second}"#
    )
}

/// The snapshot in `rows`, and whether they held [`load_locked`]'s row of the
/// locked account.
fn decode(rows: Vec<Row>) -> Result<(BillingSnapshot, bool), DbErr> {
    let mut snapshot = BillingSnapshot {
        subscriptions: Vec::new(),
        purchases: Vec::new(),
    };
    let mut locked = false;
    for row in rows {
        let kind: String = row.get("", "kind")?;
        if kind == "l" {
            locked = true;
            continue;
        }
        let status: String = row.get("", "status")?;
        let plan_id: Option<String> = row.get("", "plan_id")?;
        if kind == "s" {
            snapshot.subscriptions.push(SubscriptionFacts {
                interval: interval_from_stripe(
                    row.get::<Option<String>>("", "interval")?.as_deref(),
                ),
                stripe_subscription_id: row.get("", "stripe_subscription_id")?,
                status,
                plan_id,
                current_period_start: row.get("", "current_period_start")?,
                current_period_end: row.get("", "current_period_end")?,
                cancel_at_period_end: row.get("", "cancel_at_period_end")?,
                cancel_at: row.get("", "cancel_at")?,
                trial_end: row.get("", "trial_end")?,
            });
        } else {
            snapshot.purchases.push(PurchaseFacts {
                plan_id,
                quantity: row.get("", "quantity")?,
                status: PurchaseStatus::try_from_value(&status)?,
                amount_total: row.get("", "amount_total")?,
                currency: row.get("", "currency")?,
                created_at: row.get("", "created_at")?,
            });
        }
    }
    snapshot
        .purchases
        .sort_by_key(|purchase| std::cmp::Reverse(purchase.created_at));
    Ok((snapshot, locked))
}
