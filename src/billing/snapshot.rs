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
    decode(rows.into_iter().map(Row::from).collect())
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
    decode(rows)
}

fn statement(backend: DbBackend, account_id: i64) -> Statement {
    let (first, second) = match backend {
        DbBackend::Postgres => ("$1", "$2"),
        _ => ("?", "?"),
    };
    // Columns a table lacks are NULL; PostgreSQL types them from the other branch.
    let sql = format!(
        r#"SELECT 's' AS "kind", "stripe_subscription_id", "status", "plan_id", "interval",
                  "quantity", "current_period_start", "current_period_end",
                  "cancel_at_period_end", "cancel_at", "trial_end",
                  NULL AS "amount_total", NULL AS "currency", NULL AS "created_at"
           FROM "subscriptions" WHERE "account_id" = {first}
           UNION ALL
           SELECT 'p', NULL, "status", "plan_id", NULL, "quantity", NULL, NULL, NULL, NULL, NULL,
                  "amount_total", "currency", "created_at"
           FROM "one_time_purchases" WHERE "account_id" = {second}"#
    );
    Statement::from_sql_and_values(backend, sql, [account_id.into(), account_id.into()])
}

fn decode(rows: Vec<Row>) -> Result<BillingSnapshot, DbErr> {
    let mut snapshot = BillingSnapshot {
        subscriptions: Vec::new(),
        purchases: Vec::new(),
    };
    for row in rows {
        let status: String = row.get("", "status")?;
        let plan_id: Option<String> = row.get("", "plan_id")?;
        if row.get::<String>("", "kind")? == "s" {
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
    Ok(snapshot)
}
