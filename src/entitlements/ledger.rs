//! The ledger on the database: decisions and records, each write in one
//! transaction that holds the account's lock from its first statement, so the
//! balance it reads is the balance it writes against (no check-then-track race).
//! On SQLite that transaction is a savepoint in a group of writes sharing one
//! commit (`db::group_commit`); a write is answered once its group is committed.

use chrono::{DateTime, Duration, Utc};
use sea_orm::{
    sea_query::Expr, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseTransaction,
    DbBackend, DbErr, EntityTrait, QueryFilter, Statement, Value,
};

use super::{
    rules::{self, GrantLeft, Period, Split, Standing},
    Balance, Decision, Exhausted, Hold, Meter, Reason, Summary, UsageError, MAX_AMOUNT,
};
use crate::{
    billing::{
        access::{Access, BillingSnapshot},
        apply::{conflict_backoff, is_transient, MAX_CONFLICT_RETRIES},
        context::Billing,
        snapshot,
    },
    catalog::{Catalog, Feature, FeatureKind, Limit},
    db::{
        entities::{credit_grants, usage_entries, usage_holds},
        group_commit::WriteFuture,
    },
};

/// A statement written with `?` placeholders, numbered for PostgreSQL.
pub(super) fn statement(backend: DbBackend, sql: &str, values: Vec<Value>) -> Statement {
    let sql = if backend == DbBackend::Postgres {
        numbered(sql)
    } else {
        sql.to_owned()
    };
    Statement::from_sql_and_values(backend, sql, values)
}

/// `sql` with its `?` placeholders numbered `$1`, `$2`, … for PostgreSQL.
fn numbered(sql: &str) -> String {
    let mut numbered = String::with_capacity(sql.len() + 16);
    let mut n = 0;
    for c in sql.chars() {
        if c == '?' {
            n += 1;
            numbered.push_str(&format!("${n}"));
        } else {
            numbered.push(c);
        }
    }
    numbered
}

/// Takes the account's lock for the transaction (`db::lock_account`);
/// `AccountGone` when the account was deleted.
pub(super) async fn lock_account<C: ConnectionTrait>(
    conn: &C,
    account_id: i64,
) -> Result<(), UsageError> {
    if crate::db::lock_account(conn, account_id).await? {
        Ok(())
    } else {
        Err(UsageError::AccountGone)
    }
}

/// What the plan in force says about one feature, and the period it counts in.
struct Terms<'c> {
    feature: &'c Feature,
    allowance: Option<i64>,
    period: Option<Period>,
}

impl Terms<'_> {
    fn period_start(&self) -> i64 {
        self.period.map_or(0, |p| p.start)
    }

    fn resets_at(&self) -> Option<DateTime<Utc>> {
        self.period
            .and_then(|p| DateTime::<Utc>::from_timestamp(p.end, 0))
    }

    fn credits_per_unit(&self) -> Option<i64> {
        match self.feature.kind {
            FeatureKind::Metered => self
                .feature
                .credits_per_unit
                .and_then(|rate| i64::try_from(rate).ok()),
            _ => None,
        }
    }
}

fn feature<'c>(catalog: &'c Catalog, id: &str) -> Result<&'c Feature, UsageError> {
    catalog
        .features
        .get(id)
        .ok_or_else(|| UsageError::UnknownFeature(id.to_owned()))
}

fn limit_of(access: &Access, id: &str) -> Limit {
    access
        .entitlements
        .get(id)
        .copied()
        .unwrap_or(Limit::Count(0))
}

/// The period metered use counts in: the subscription's, else the calendar month.
fn period_of(access: &Access, now: DateTime<Utc>) -> Period {
    let subscription = access.subscription.as_ref().and_then(|sub| {
        Some((
            sub.current_period_start?.timestamp(),
            sub.current_period_end?.timestamp(),
        ))
    });
    rules::period(subscription, now.timestamp())
}

fn terms<'c>(
    catalog: &'c Catalog,
    access: &Access,
    id: &str,
    now: DateTime<Utc>,
) -> Result<Terms<'c>, UsageError> {
    let feature = feature(catalog, id)?;
    let allowance = match limit_of(access, id) {
        Limit::Count(n) => Some(i64::try_from(n).unwrap_or(i64::MAX)),
        Limit::Unlimited => None,
        Limit::Included(_) => return Err(UsageError::NotCountable(id.to_owned())),
    };
    let period = match feature.kind {
        FeatureKind::Boolean => return Err(UsageError::NotCountable(id.to_owned())),
        FeatureKind::Metered => Some(period_of(access, now)),
        FeatureKind::Counted => None,
    };
    Ok(Terms {
        feature,
        allowance,
        period,
    })
}

async fn access_in<C: ConnectionTrait>(
    conn: &C,
    billing: &Billing,
    account_id: i64,
    now: DateTime<Utc>,
) -> Result<Access, UsageError> {
    let snapshot = snapshot::load(conn, account_id).await?;
    Ok(access_of(billing, &snapshot, now))
}

fn access_of(billing: &Billing, snapshot: &BillingSnapshot, now: DateTime<Utc>) -> Access {
    crate::billing::access::evaluate(snapshot, &billing.catalog, now, &billing.policy())
}

/// Takes the account's lock for the transaction and reads its access, in one
/// statement on PostgreSQL (`snapshot::load_locked`); `AccountGone` when the
/// account was deleted.
async fn locked_access(
    tx: &DatabaseTransaction,
    billing: &Billing,
    account_id: i64,
    now: DateTime<Utc>,
) -> Result<Access, UsageError> {
    let snapshot = snapshot::load_locked(tx, account_id)
        .await?
        .ok_or(UsageError::AccountGone)?;
    Ok(access_of(billing, &snapshot, now))
}

/// The account's standing on one feature, in one query: the period's use, the
/// feature's open holds, spendable credits and the credits all open holds keep.
async fn standing<C: ConnectionTrait>(
    conn: &C,
    account_id: i64,
    id: &str,
    terms: &Terms<'_>,
    now: i64,
) -> Result<Standing, DbErr> {
    Ok(standing_and_earlier(conn, account_id, id, terms, now, None)
        .await?
        .0)
}

const STANDING_SQL: &str = "SELECT \
    COALESCE((SELECT used FROM usage_totals WHERE account_id = ? AND feature = ? AND period_start = ?), 0) AS used, \
    COALESCE((SELECT CAST(SUM(allowance_part) AS BIGINT) FROM usage_holds WHERE account_id = ? AND feature = ? AND period_start = ? AND status = 'open' AND expires_at > ?), 0) AS held, \
    COALESCE((SELECT CAST(SUM(remaining) AS BIGINT) FROM credit_grants WHERE account_id = ? AND revoked_at IS NULL AND remaining > 0 AND (expires_at IS NULL OR expires_at > ?)), 0) AS credits, \
    COALESCE((SELECT CAST(SUM(credits_part) AS BIGINT) FROM usage_holds WHERE account_id = ? AND status = 'open' AND expires_at > ?), 0) AS credits_held";

/// [`standing`], and with `key` the id of the entry an earlier call with that
/// idempotency key recorded, in the same query: a `track` is one statement
/// fewer than a lookup before it (issue 23's profile: the ledger's cost is its
/// round trips to the database).
async fn standing_and_earlier<C: ConnectionTrait>(
    conn: &C,
    account_id: i64,
    id: &str,
    terms: &Terms<'_>,
    now: i64,
    key: Option<&str>,
) -> Result<(Standing, Option<i64>), DbErr> {
    let start = terms.period_start();
    let with_key;
    let sql = match key {
        Some(_) => {
            with_key = format!(
                "{STANDING_SQL}, (SELECT id FROM usage_entries WHERE account_id = ? AND idempotency_key = ?) AS earlier"
            );
            with_key.as_str()
        }
        None => STANDING_SQL,
    };
    let mut values: Vec<Value> = vec![
        account_id.into(),
        id.into(),
        start.into(),
        account_id.into(),
        id.into(),
        start.into(),
        now.into(),
        account_id.into(),
        now.into(),
        account_id.into(),
        now.into(),
    ];
    if let Some(key) = key {
        values.extend([account_id.into(), key.into()]);
    }
    let row = conn
        .query_one_raw(statement(conn.get_database_backend(), sql, values))
        .await?
        .ok_or_else(|| DbErr::RecordNotFound("usage standing".into()))?;
    let get = |column: &str| row.try_get::<i64>("", column);
    let earlier = match key {
        Some(_) => row.try_get::<Option<i64>>("", "earlier")?,
        None => None,
    };
    Ok((
        Standing {
            allowance: terms.allowance,
            used: get("used")? + get("held")?,
            credits: get("credits")? - get("credits_held")?,
            credits_per_unit: terms.credits_per_unit(),
        },
        earlier,
    ))
}

fn check_amount(amount: i64) -> Result<(), UsageError> {
    if (1..=MAX_AMOUNT).contains(&amount) {
        Ok(())
    } else {
        Err(UsageError::BadAmount)
    }
}

fn check_key(key: Option<&str>) -> Result<(), UsageError> {
    match key {
        Some(key) if !super::valid_key(key) => Err(UsageError::BadKey),
        _ => Ok(()),
    }
}

fn refusal(id: &str, standing: &Standing, terms: &Terms<'_>) -> Exhausted {
    let reason = if standing.allowance == Some(0) && standing.credits_per_unit.is_none() {
        Reason::NotInPlan
    } else {
        Reason::LimitReached
    };
    Exhausted {
        feature: id.to_owned(),
        remaining: standing.remaining(),
        resets_at: terms.resets_at(),
        reason,
    }
}

/// Whether `amount` more of `id` would be allowed now (records nothing). A
/// boolean feature is allowed when the plan has it.
#[tracing::instrument(skip(billing), fields(account = account_id))]
pub async fn check(
    billing: &Billing,
    account_id: i64,
    id: &str,
    amount: i64,
) -> Result<Decision, UsageError> {
    check_amount(amount)?;
    let now = Utc::now();
    let access = access_in(&billing.db, billing, account_id, now).await?;
    let feature = feature(&billing.catalog, id)?;
    if feature.kind == FeatureKind::Boolean {
        let allowed = matches!(limit_of(&access, id), Limit::Included(true));
        return Ok(Decision {
            allowed,
            remaining: None,
            resets_at: None,
            reason: (!allowed).then_some(Reason::NotInPlan),
        });
    }
    let terms = terms(&billing.catalog, &access, id, now)?;
    let standing = standing(&billing.db, account_id, id, &terms, now.timestamp()).await?;
    let allowed = standing.split(amount).is_some();
    Ok(Decision {
        allowed,
        remaining: standing.remaining(),
        resets_at: terms.resets_at(),
        reason: (!allowed).then(|| refusal(id, &standing, &terms).reason),
    })
}

/// Records `amount` units of `id`, or refuses with `Exhausted` and records
/// nothing. With `key`, a retry counts once and gets the first answer; the key
/// with another feature or amount is `KeyReused`. A refusal stores no key: the
/// same request may pass later (after a pack, a renewal).
#[tracing::instrument(skip(billing, key), fields(account = account_id))]
pub async fn track(
    billing: &Billing,
    account_id: i64,
    id: &str,
    amount: i64,
    key: Option<&str>,
) -> Result<Balance, UsageError> {
    check_amount(amount)?;
    check_key(key)?;
    let started = std::time::Instant::now();
    let (mine, feature, key) = (billing.clone(), id.to_owned(), key.map(str::to_owned));
    let result = grouped(billing, move |tx| {
        Box::pin(async move {
            track_in(
                tx,
                &mine,
                account_id,
                &feature,
                amount,
                key.as_deref(),
                None,
            )
            .await
        })
    })
    .await;
    decided(billing, id, &result, started);
    result
}

/// Runs `work` as one of the grouped writes (`db::group_commit`: on SQLite
/// many share a commit), again after a conflict the database resolved by
/// aborting it.
async fn grouped<T, F>(billing: &Billing, work: F) -> Result<T, UsageError>
where
    F: for<'t> FnOnce(&'t DatabaseTransaction) -> WriteFuture<'t, Result<T, UsageError>>
        + Clone
        + Send
        + 'static,
    T: Send + 'static,
{
    let mut retry = 0;
    loop {
        match billing.writes.run(work.clone()).await {
            Err(UsageError::Database(ref err))
                if is_transient(err) && retry < MAX_CONFLICT_RETRIES =>
            {
                conflict_backoff(retry).await;
                retry += 1;
            }
            other => break other,
        }
    }
}

/// Counts a decision for `/metrics` (features the catalog declares only, so
/// the label stays bounded).
fn decided(
    billing: &Billing,
    id: &str,
    result: &Result<Balance, UsageError>,
    started: std::time::Instant,
) {
    if !billing.catalog.features.contains_key(id) {
        return;
    }
    let decision = match result {
        Ok(_) => "allowed",
        Err(UsageError::Exhausted(_)) => "denied",
        Err(_) => "error",
    };
    crate::prometheus::usage(id, decision, started.elapsed().as_secs_f64());
}

fn fingerprint(id: &str, amount: i64) -> String {
    format!("{id}:{amount}")
}

fn answer_of(entry: &usage_entries::Model) -> Balance {
    Balance {
        remaining: entry.remaining_after,
        resets_at: entry
            .resets_at
            .and_then(|secs| DateTime::<Utc>::from_timestamp(secs, 0)),
        replayed: true,
    }
}

async fn track_in(
    tx: &DatabaseTransaction,
    billing: &Billing,
    account_id: i64,
    id: &str,
    amount: i64,
    key: Option<&str>,
    hold_id: Option<i64>,
) -> Result<Balance, UsageError> {
    let now = Utc::now();
    let access = locked_access(tx, billing, account_id, now).await?;
    let terms = terms(&billing.catalog, &access, id, now)?;
    let (standing, earlier) =
        standing_and_earlier(tx, account_id, id, &terms, now.timestamp(), key).await?;
    if let Some(earlier) = earlier {
        let earlier = usage_entries::Entity::find_by_id(earlier)
            .one(tx)
            .await?
            .ok_or_else(|| DbErr::RecordNotFound("usage entry".into()))?;
        return if earlier.fingerprint.as_deref() == Some(fingerprint(id, amount).as_str()) {
            Ok(answer_of(&earlier))
        } else {
            Err(UsageError::KeyReused)
        };
    }
    let Some(split) = standing.split(amount) else {
        return Err(UsageError::Exhausted(refusal(id, &standing, &terms)));
    };
    let remaining = standing.after(split).remaining();
    record(
        tx, account_id, id, amount, split, &terms, now, key, hold_id, remaining,
    )
    .await?;
    Ok(Balance {
        remaining,
        resets_at: terms.resets_at(),
        replayed: false,
    })
}

const ADD_TO_TOTAL: &str = "INSERT INTO usage_totals (account_id, feature, period_start, used) \
    VALUES (?, ?, ?, ?) ON CONFLICT (account_id, feature, period_start) \
    DO UPDATE SET used = usage_totals.used + excluded.used";

const ADD_ENTRY: &str = "INSERT INTO usage_entries (account_id, feature, amount, allowance_used, \
    credits_used, period_start, idempotency_key, fingerprint, remaining_after, resets_at, hold_id, \
    created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";

/// Writes one use: its entry (with the answer, for retries), the period's
/// total, and the credits it draws from the grants that pay.
#[allow(clippy::too_many_arguments)]
async fn record(
    tx: &DatabaseTransaction,
    account_id: i64,
    id: &str,
    amount: i64,
    split: Split,
    terms: &Terms<'_>,
    now: DateTime<Utc>,
    key: Option<&str>,
    hold_id: Option<i64>,
    remaining_after: Option<i64>,
) -> Result<(), UsageError> {
    let backend = tx.get_database_backend();
    if split.credits > 0 {
        spend_credits(tx, account_id, split.credits, now.timestamp()).await?;
    }
    let total: Vec<Value> = vec![
        account_id.into(),
        id.into(),
        terms.period_start().into(),
        split.allowance.into(),
    ];
    let entry: Vec<Value> = vec![
        account_id.into(),
        id.into(),
        amount.into(),
        split.allowance.into(),
        split.credits.into(),
        terms.period_start().into(),
        key.map(str::to_owned).into(),
        key.map(|_| fingerprint(id, amount)).into(),
        remaining_after.into(),
        terms.period.map(|p| p.end).into(),
        hold_id.into(),
        now.into(),
    ];
    if backend == DbBackend::Postgres {
        // One statement, a round trip fewer (issue 23): a data-modifying CTE
        // runs whether or not the query reads it.
        // Numbered once, not on every write as `statement` would.
        static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        let sql = SQL.get_or_init(|| {
            numbered(&format!(
                "WITH total AS ({ADD_TO_TOTAL} RETURNING 1) {ADD_ENTRY}"
            ))
        });
        tx.execute_raw(Statement::from_sql_and_values(
            backend,
            sql.as_str(),
            [total, entry].concat(),
        ))
        .await?;
    } else {
        tx.execute_raw(statement(backend, ADD_TO_TOTAL, total))
            .await?;
        tx.execute_raw(statement(backend, ADD_ENTRY, entry)).await?;
    }
    Ok(())
}

/// Takes `cost` credits from the grants that pay, soonest to expire first.
async fn spend_credits(
    tx: &DatabaseTransaction,
    account_id: i64,
    cost: i64,
    now: i64,
) -> Result<(), UsageError> {
    // Most often the first grant in `rules::draw`'s order covers the whole cost:
    // then one statement takes it, as `draw` would (all of it from that grant).
    let first_pays = tx
        .execute_raw(statement(
            tx.get_database_backend(),
            "UPDATE credit_grants SET remaining = remaining - ? WHERE remaining >= ? AND id = \
             (SELECT id FROM credit_grants WHERE account_id = ? AND revoked_at IS NULL \
              AND remaining > 0 AND (expires_at IS NULL OR expires_at > ?) \
              ORDER BY (expires_at IS NULL), expires_at, id LIMIT 1)",
            vec![cost.into(), cost.into(), account_id.into(), now.into()],
        ))
        .await?
        .rows_affected()
        == 1;
    if first_pays {
        return Ok(());
    }
    let grants: Vec<GrantLeft> = credit_grants::Entity::find()
        .filter(credit_grants::Column::AccountId.eq(account_id))
        .filter(credit_grants::Column::RevokedAt.is_null())
        .filter(credit_grants::Column::Remaining.gt(0))
        .filter(
            sea_orm::Condition::any()
                .add(credit_grants::Column::ExpiresAt.is_null())
                .add(credit_grants::Column::ExpiresAt.gt(now)),
        )
        .all(tx)
        .await?
        .into_iter()
        .map(|g| GrantLeft {
            id: g.id,
            remaining: g.remaining,
            expires_at: g.expires_at,
        })
        .collect();
    let Some(taken) = rules::draw(&grants, cost) else {
        // The standing read under this lock said they cover it.
        return Err(DbErr::Custom("credit grants changed under the account lock".into()).into());
    };
    for (grant, take) in taken {
        let updated = credit_grants::Entity::update_many()
            .col_expr(
                credit_grants::Column::Remaining,
                sea_orm::sea_query::ExprTrait::sub(
                    Expr::col(credit_grants::Column::Remaining),
                    take,
                ),
            )
            .filter(credit_grants::Column::Id.eq(grant))
            .filter(credit_grants::Column::Remaining.gte(take))
            .exec(tx)
            .await?;
        if updated.rows_affected != 1 {
            return Err(
                DbErr::Custom("a credit grant changed under the account lock".into()).into(),
            );
        }
    }
    Ok(())
}

/// Takes back `amount` of a counted feature (an item deleted). Never below zero.
#[tracing::instrument(skip(billing), fields(account = account_id))]
pub async fn untrack(
    billing: &Billing,
    account_id: i64,
    id: &str,
    amount: i64,
) -> Result<Balance, UsageError> {
    check_amount(amount)?;
    if feature(&billing.catalog, id)?.kind != FeatureKind::Counted {
        return Err(UsageError::NotCountable(id.to_owned()));
    }
    let (mine, feature) = (billing.clone(), id.to_owned());
    grouped(billing, move |tx| {
        Box::pin(async move { untrack_in(tx, &mine, account_id, &feature, amount).await })
    })
    .await
}

async fn untrack_in(
    tx: &DatabaseTransaction,
    billing: &Billing,
    account_id: i64,
    id: &str,
    amount: i64,
) -> Result<Balance, UsageError> {
    let now = Utc::now();
    let access = locked_access(tx, billing, account_id, now).await?;
    let terms = terms(&billing.catalog, &access, id, now)?;
    let standing = standing(tx, account_id, id, &terms, now.timestamp()).await?;
    let taken = amount.min(standing.used);
    let split = Split {
        allowance: -taken,
        credits: 0,
    };
    if taken > 0 {
        let remaining = standing.after(split).remaining();
        record(
            tx, account_id, id, -taken, split, &terms, now, None, None, remaining,
        )
        .await?;
    }
    Ok(Balance {
        remaining: standing.after(split).remaining(),
        resets_at: None,
        replayed: false,
    })
}

/// The longest a hold may be asked to last.
pub const MAX_HOLD: Duration = Duration::hours(24);

/// Sets `amount` units aside for work whose real use is known later; they
/// count against the balance until `commit`, `release` or `ttl` passes.
#[tracing::instrument(skip(billing, key), fields(account = account_id))]
pub async fn reserve(
    billing: &Billing,
    account_id: i64,
    id: &str,
    amount: i64,
    ttl: Duration,
    key: Option<&str>,
) -> Result<Hold, UsageError> {
    check_amount(amount)?;
    check_key(key)?;
    let ttl = ttl.clamp(Duration::seconds(1), MAX_HOLD);
    let (mine, feature, key) = (billing.clone(), id.to_owned(), key.map(str::to_owned));
    grouped(billing, move |tx| {
        Box::pin(async move {
            reserve_in(tx, &mine, account_id, &feature, amount, ttl, key.as_deref()).await
        })
    })
    .await
}

fn hold_of(hold: &usage_holds::Model, remaining: Option<i64>) -> Hold {
    Hold {
        id: hold.id,
        feature: hold.feature.clone(),
        amount: hold.amount,
        expires_at: DateTime::<Utc>::from_timestamp(hold.expires_at, 0).unwrap_or_default(),
        remaining,
    }
}

async fn reserve_in(
    tx: &DatabaseTransaction,
    billing: &Billing,
    account_id: i64,
    id: &str,
    amount: i64,
    ttl: Duration,
    key: Option<&str>,
) -> Result<Hold, UsageError> {
    let now = Utc::now();
    let access = locked_access(tx, billing, account_id, now).await?;
    let terms = terms(&billing.catalog, &access, id, now)?;
    let standing = standing(tx, account_id, id, &terms, now.timestamp()).await?;
    if let Some(key) = key {
        let earlier = usage_holds::Entity::find()
            .filter(usage_holds::Column::AccountId.eq(account_id))
            .filter(usage_holds::Column::IdempotencyKey.eq(key))
            .one(tx)
            .await?;
        if let Some(earlier) = earlier {
            return if earlier.feature == id && earlier.amount == amount {
                Ok(hold_of(&earlier, standing.remaining()))
            } else {
                Err(UsageError::KeyReused)
            };
        }
    }
    let Some(split) = standing.split(amount) else {
        return Err(UsageError::Exhausted(refusal(id, &standing, &terms)));
    };
    let hold = usage_holds::Entity::insert(usage_holds::ActiveModel {
        account_id: Set(account_id),
        feature: Set(id.to_owned()),
        amount: Set(amount),
        allowance_part: Set(split.allowance),
        credits_part: Set(split.credits),
        period_start: Set(terms.period_start()),
        idempotency_key: Set(key.map(str::to_owned)),
        status: Set("open".to_owned()),
        expires_at: Set((now + ttl).timestamp()),
        created_at: Set(now),
        settled_at: Set(None),
        ..Default::default()
    })
    .exec_with_returning(tx)
    .await?;
    Ok(hold_of(&hold, standing.after(split).remaining()))
}

/// Why a hold cannot be settled: gone (or another account's), or settled.
async fn closed_hold<C: ConnectionTrait>(
    conn: &C,
    account_id: i64,
    hold_id: i64,
    now: i64,
) -> Result<UsageError, DbErr> {
    let hold = usage_holds::Entity::find_by_id(hold_id)
        .filter(usage_holds::Column::AccountId.eq(account_id))
        .one(conn)
        .await?;
    Ok(match hold {
        None => UsageError::HoldNotFound,
        Some(hold) if hold.status == "committed" => UsageError::HoldClosed("committed"),
        Some(hold) if hold.status == "released" => UsageError::HoldClosed("released"),
        Some(hold) if hold.expires_at <= now => UsageError::HoldClosed("expired"),
        Some(_) => UsageError::HoldNotFound,
    })
}

/// Settles a hold with the amount really used (0 records nothing): the hold's
/// units go back, and `actual` is recorded as one use — more than was held only
/// if the balance covers the difference (else `Exhausted`, the hold still
/// open). Committing again with the same amount gives the first answer.
#[tracing::instrument(skip(billing), fields(account = account_id))]
pub async fn commit(
    billing: &Billing,
    account_id: i64,
    hold_id: i64,
    actual: i64,
) -> Result<Balance, UsageError> {
    if !(0..=MAX_AMOUNT).contains(&actual) {
        return Err(UsageError::BadAmount);
    }
    let mine = billing.clone();
    grouped(billing, move |tx| {
        Box::pin(async move { commit_in(tx, &mine, account_id, hold_id, actual).await })
    })
    .await
}

async fn commit_in(
    tx: &DatabaseTransaction,
    billing: &Billing,
    account_id: i64,
    hold_id: i64,
    actual: i64,
) -> Result<Balance, UsageError> {
    let now = Utc::now();
    let access = locked_access(tx, billing, account_id, now).await?;
    let settled = usage_holds::Entity::update_many()
        .col_expr(usage_holds::Column::Status, Expr::value("committed"))
        .col_expr(usage_holds::Column::SettledAt, Expr::value(now))
        .filter(usage_holds::Column::Id.eq(hold_id))
        .filter(usage_holds::Column::AccountId.eq(account_id))
        .filter(usage_holds::Column::Status.eq("open"))
        .filter(usage_holds::Column::ExpiresAt.gt(now.timestamp()))
        .exec(tx)
        .await?;
    if settled.rows_affected == 0 {
        let err = closed_hold(tx, account_id, hold_id, now.timestamp()).await?;
        if matches!(err, UsageError::HoldClosed("committed")) {
            let entry = usage_entries::Entity::find()
                .filter(usage_entries::Column::HoldId.eq(hold_id))
                .one(tx)
                .await?;
            let same = match &entry {
                Some(entry) => entry.amount == actual,
                None => actual == 0,
            };
            if same {
                return Ok(entry.as_ref().map(answer_of).unwrap_or(Balance {
                    remaining: None,
                    resets_at: None,
                    replayed: true,
                }));
            }
        }
        return Err(err);
    }
    let hold = usage_holds::Entity::find_by_id(hold_id)
        .one(tx)
        .await?
        .ok_or(UsageError::HoldNotFound)?;
    let terms = terms(&billing.catalog, &access, &hold.feature, now)?;
    // The hold no longer counts (committed above), so this is the balance
    // without it.
    let standing = standing(tx, account_id, &hold.feature, &terms, now.timestamp()).await?;
    if actual == 0 {
        return Ok(Balance {
            remaining: standing.remaining(),
            resets_at: terms.resets_at(),
            replayed: false,
        });
    }
    let Some(split) = standing.split(actual) else {
        return Err(UsageError::Exhausted(refusal(
            &hold.feature,
            &standing,
            &terms,
        )));
    };
    let remaining = standing.after(split).remaining();
    record(
        tx,
        account_id,
        &hold.feature,
        actual,
        split,
        &terms,
        now,
        None,
        Some(hold_id),
        remaining,
    )
    .await?;
    Ok(Balance {
        remaining,
        resets_at: terms.resets_at(),
        replayed: false,
    })
}

/// Gives a hold's units back without recording any use.
#[tracing::instrument(skip(billing), fields(account = account_id))]
pub async fn release(billing: &Billing, account_id: i64, hold_id: i64) -> Result<(), UsageError> {
    let now = Utc::now();
    let released = usage_holds::Entity::update_many()
        .col_expr(usage_holds::Column::Status, Expr::value("released"))
        .col_expr(usage_holds::Column::SettledAt, Expr::value(now))
        .filter(usage_holds::Column::Id.eq(hold_id))
        .filter(usage_holds::Column::AccountId.eq(account_id))
        .filter(usage_holds::Column::Status.eq("open"))
        .exec(&billing.db)
        .await?;
    if released.rows_affected > 0 {
        return Ok(());
    }
    match closed_hold(&billing.db, account_id, hold_id, now.timestamp()).await? {
        UsageError::HoldClosed("released") => Ok(()),
        err => Err(err),
    }
}

/// Every feature of the catalog as the account stands on it, and its credits.
pub async fn summary(billing: &Billing, account_id: i64) -> Result<Summary, UsageError> {
    let now = Utc::now();
    let access = access_in(&billing.db, billing, account_id, now).await?;
    summary_with(billing, account_id, &access, now).await
}

/// `summary` for a caller that has the account's access already.
pub async fn summary_with(
    billing: &Billing,
    account_id: i64,
    access: &Access,
    now: DateTime<Utc>,
) -> Result<Summary, UsageError> {
    let counts = Counts::read(
        &billing.reads,
        account_id,
        period_of(access, now).start,
        now.timestamp(),
    )
    .await?;
    let mut meters = Vec::new();
    for (id, feature) in &billing.catalog.features {
        let limit = limit_of(access, id);
        if feature.kind == FeatureKind::Boolean {
            meters.push(Meter {
                feature: id.clone(),
                name: feature.name.clone(),
                kind: feature.kind,
                limit,
                used: 0,
                remaining: None,
                resets_at: None,
            });
            continue;
        }
        let terms = terms(&billing.catalog, access, id, now)?;
        let standing = counts.standing(id, &terms);
        meters.push(Meter {
            feature: id.clone(),
            name: feature.name.clone(),
            kind: feature.kind,
            limit,
            used: standing.used,
            remaining: standing.remaining(),
            resets_at: terms.resets_at(),
        });
    }
    Ok(Summary {
        plan_id: access.plan_id.clone(),
        meters,
        credits: (counts.credits - counts.credits_held).max(0),
    })
}

/// Everything [`standing`] reads, for every feature at once: a page's meters
/// are one query, not one per feature (issue 23: the signed-in pages' cost is
/// their round trips to the database).
struct Counts {
    /// Recorded use by (feature, period start), for the current period and
    /// for counted features (period 0).
    used: std::collections::HashMap<(String, i64), i64>,
    /// Open holds' allowance, likewise.
    held: std::collections::HashMap<(String, i64), i64>,
    credits: i64,
    credits_held: i64,
}

impl Counts {
    async fn read(
        reads: &crate::db::reads::Reads,
        account_id: i64,
        period_start: i64,
        now: i64,
    ) -> Result<Self, DbErr> {
        use crate::db::reads::{Kind, Shape};
        static SHAPE: std::sync::OnceLock<Shape> = std::sync::OnceLock::new();
        let shape = SHAPE.get_or_init(|| {
            Shape::default()
                .column("kind", Kind::Text)
                .column("feature", Kind::Text)
                .column("period_start", Kind::I64)
                .column("n", Kind::I64)
        });
        // Literal kinds and NULL columns are typed by PostgreSQL from the first branch.
        let sql = "SELECT 'u' AS kind, feature, period_start, used AS n FROM usage_totals \
                WHERE account_id = ? AND period_start IN (0, ?) \
            UNION ALL SELECT 'h', feature, period_start, CAST(SUM(allowance_part) AS BIGINT) \
                FROM usage_holds WHERE account_id = ? AND status = 'open' AND expires_at > ? \
                GROUP BY feature, period_start \
            UNION ALL SELECT 'c', NULL, NULL, CAST(SUM(remaining) AS BIGINT) FROM credit_grants \
                WHERE account_id = ? AND revoked_at IS NULL AND remaining > 0 \
                AND (expires_at IS NULL OR expires_at > ?) \
            UNION ALL SELECT 'k', NULL, NULL, CAST(SUM(credits_part) AS BIGINT) FROM usage_holds \
                WHERE account_id = ? AND status = 'open' AND expires_at > ?";
        let values: Vec<Value> = vec![
            account_id.into(),
            period_start.into(),
            account_id.into(),
            now.into(),
            account_id.into(),
            now.into(),
            account_id.into(),
            now.into(),
        ];
        let rows = reads
            .all(statement(reads.backend(), sql, values), shape)
            .await?;
        let mut counts = Counts {
            used: Default::default(),
            held: Default::default(),
            credits: 0,
            credits_held: 0,
        };
        for row in rows {
            let n = row.get::<Option<i64>>("", "n")?.unwrap_or(0);
            let key = || -> Result<(String, i64), DbErr> {
                Ok((row.get("", "feature")?, row.get("", "period_start")?))
            };
            match row.get::<String>("", "kind")?.as_str() {
                "u" => *counts.used.entry(key()?).or_default() += n,
                "h" => *counts.held.entry(key()?).or_default() += n,
                "c" => counts.credits += n,
                _ => counts.credits_held += n,
            }
        }
        Ok(counts)
    }

    fn standing(&self, id: &str, terms: &Terms<'_>) -> Standing {
        let key = (id.to_owned(), terms.period_start());
        Standing {
            allowance: terms.allowance,
            used: self.used.get(&key).copied().unwrap_or(0)
                + self.held.get(&key).copied().unwrap_or(0),
            credits: self.credits - self.credits_held,
            credits_per_unit: terms.credits_per_unit(),
        }
    }
}
