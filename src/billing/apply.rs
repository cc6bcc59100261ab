//! The one write path into the billing tables. Webhooks, the checkout success
//! page, `reconcile` and `webhooks replay` all call `apply`; ordering and
//! idempotency live here, so they hold for every caller.
//!
//! - Subscriptions: an upsert guarded by freshness (`freshness::decide` in Rust,
//!   and `stripe_state_at <= excluded.stripe_state_at` in SQL, so two writers
//!   racing on one row still keep the newer state).
//! - One-time purchases: one row per Checkout Session, status only moves forward
//!   (pending → paid/failed → refunded/reversed).
//! - An event about a row we do not have yet creates it from its own object or
//!   from Stripe; it never fails just because another event is late.
//! - No Stripe call is made while a transaction (or SQLite's write turn) is
//!   held: a hung Stripe connection would stop every write. When deciding needs
//!   something from Stripe, the write stops with [`ApplyError::NeedsStripe`], the
//!   transaction rolls back, [`StripeReads::fetch`] reads it with nothing held,
//!   and the write runs again from the start with the answer at hand, so it
//!   decides under the lock from what the database holds then ([`write`]).

use std::{collections::HashMap, sync::Mutex};

use chrono::{DateTime, TimeZone, Utc};
use sea_orm::{
    sea_query::{Expr, OnConflict},
    ActiveValue::Set,
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter,
    TransactionTrait,
};

use super::{
    freshness::{self, Decision, Source, Stamp},
    objects::{
        invoice_status_rank, is_terminal_status, BillingEvent, ChargeState, CheckoutMode,
        CheckoutSessionState, DisputeState, EventKind, InvoiceState, Owner, StripeObject,
        SubscriptionState,
    },
};
use crate::{
    catalog::{BillingType, Catalog, Interval},
    db::entities::{
        accounts, deleted_customers, dispute_outcomes, invoices,
        one_time_purchases::{self, PurchaseStatus},
        subscriptions,
    },
    entitlements::grants,
    gateway::{catalog::PriceDirectory, GatewayError, StripeGateway},
};

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("database: {0}")]
    Database(#[from] DbErr),
    #[error(transparent)]
    Stripe(#[from] GatewayError),
    #[error("checkout session {0} belongs to another user")]
    NotYours(String),
    /// Deciding needs this from Stripe; read it with nothing held, then re-run.
    #[error("needs {0:?} from Stripe first")]
    NeedsStripe(StripeRead),
}

/// Something a write needs to know from Stripe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StripeRead {
    Subscription(String),
    SessionForPayment(String),
}

/// Stripe's answers gathered for one write, outside its transaction.
#[derive(Default)]
pub struct StripeReads {
    subscriptions: Mutex<HashMap<String, SubscriptionState>>,
    sessions_for_payment: Mutex<HashMap<String, Option<CheckoutSessionState>>>,
}

/// Enough rounds for every read one event can need (a refetch, then a lookup).
pub const MAX_READ_ROUNDS: usize = 4;
/// Re-runs of a write the database aborted for a concurrent conflict.
pub const MAX_CONFLICT_RETRIES: usize = 5;

/// Waits before re-running after conflict number `retry` (0, 1, …): 10, 20, 40,
/// 80, 160 ms. Re-running at once met the same lock again (a write outside the
/// write turn — a session save, a limit counter — still holding SQLite's write
/// lock), and all three immediate re-runs of a success-page write failed.
pub async fn conflict_backoff(retry: usize) {
    let millis = 10u64 << retry.min(6);
    tokio::time::sleep(std::time::Duration::from_millis(millis)).await;
}

/// A conflict between concurrent transactions that the database resolved by
/// aborting one of them (a PostgreSQL deadlock or serialization failure, or
/// SQLite's busy snapshot when another connection wrote after this read):
/// running it again is the documented remedy.
pub fn is_transient(err: &DbErr) -> bool {
    use sea_orm::{sqlx, RuntimeErr};
    let (DbErr::Exec(RuntimeErr::SqlxError(err)) | DbErr::Query(RuntimeErr::SqlxError(err))) = err
    else {
        return false;
    };
    let sqlx::Error::Database(err) = &**err else {
        return false;
    };
    err.code().is_some_and(|code| is_transient_code(&code))
}

/// PostgreSQL's SQLSTATE `40P01` (deadlock detected) and `40001` (could not
/// serialize access); SQLite's extended result codes whose primary code is
/// `SQLITE_BUSY` (5: busy, busy snapshot, …) or `SQLITE_LOCKED` (6).
fn is_transient_code(code: &str) -> bool {
    match code {
        "40P01" | "40001" => true,
        sqlite => sqlite
            .parse::<i32>()
            .is_ok_and(|extended| matches!(extended & 0xff, 5 | 6)),
    }
}

impl StripeReads {
    /// Reads `what` from Stripe. Called with no transaction or turn held.
    pub async fn fetch(
        &self,
        gateway: &StripeGateway,
        what: &StripeRead,
    ) -> Result<(), ApplyError> {
        match what {
            StripeRead::Subscription(id) => {
                let sub = gateway.subscription(id).await?;
                self.subscriptions
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(id.clone(), sub);
            }
            StripeRead::SessionForPayment(pi) => {
                let session = gateway.checkout_session_for_payment(pi).await?;
                self.sessions_for_payment
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(pi.clone(), session);
            }
        }
        Ok(())
    }

    fn subscription(&self, id: &str) -> Result<SubscriptionState, ApplyError> {
        self.subscriptions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
            .ok_or_else(|| ApplyError::NeedsStripe(StripeRead::Subscription(id.to_owned())))
    }

    fn session_for_payment(&self, pi: &str) -> Result<Option<CheckoutSessionState>, ApplyError> {
        self.sessions_for_payment
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(pi)
            .cloned()
            .ok_or_else(|| ApplyError::NeedsStripe(StripeRead::SessionForPayment(pi.to_owned())))
    }
}

/// What `apply` needs besides the connection.
#[derive(Clone, Copy)]
pub struct ApplyContext<'a> {
    pub gateway: &'a StripeGateway,
    pub catalog: &'a Catalog,
    pub prices: &'a PriceDirectory,
    /// Stripe's answers read for this write before its transaction began.
    pub reads: &'a StripeReads,
    /// The webhook inbox mails what an event tells the person (`webhooks::notify`).
    pub mail: &'a crate::mail::Mailer,
    /// Where those mails link to.
    pub billing_page: &'a str,
}

/// One write through the one write path (the webhook inbox has its own loop,
/// since its claim shares the transaction).
pub enum Write<'a> {
    /// A checkout session read from Stripe for `account_id` (the success page).
    CheckoutSession {
        session: &'a CheckoutSessionState,
        account_id: i64,
    },
    /// A subscription read from or returned by Stripe (reconcile, cancel/resume).
    Fetched(&'a SubscriptionState),
    /// A stored event again (`webhooks replay`).
    Event(&'a BillingEvent),
    /// An invoice read from Stripe (`reconcile` backfills the mirror).
    FetchedInvoice(&'a InvoiceState),
}

/// Runs `what` in one transaction, in the SQLite write turn, with the
/// subscription locked on PostgreSQL; whatever it needs from Stripe is read
/// between attempts with nothing held.
pub async fn write(
    db: &DatabaseConnection,
    ctx: ApplyContext<'_>,
    what: Write<'_>,
) -> Result<Vec<Outcome>, ApplyError> {
    let (mut reads_left, mut conflicts_left) = (MAX_READ_ROUNDS, MAX_CONFLICT_RETRIES);
    loop {
        let attempt = async {
            let _turn = crate::db::write_turn(db).await;
            let tx = db.begin().await?;
            let outcomes = match &what {
                Write::CheckoutSession {
                    session,
                    account_id,
                } => checkout_session_for_account(&tx, ctx, session, *account_id).await?,
                Write::Fetched(sub) => {
                    vec![upsert_subscription(&tx, ctx, sub, 0, Source::Fetched).await?]
                }
                Write::Event(event) => apply_event(&tx, ctx, event).await?,
                Write::FetchedInvoice(invoice) => {
                    vec![upsert_invoice(&tx, invoice, 0, Source::Fetched).await?]
                }
            };
            tx.commit().await?;
            Ok::<_, ApplyError>(outcomes)
        }
        .await;
        match attempt {
            Err(ApplyError::NeedsStripe(read)) if reads_left > 0 => {
                reads_left -= 1;
                ctx.reads.fetch(ctx.gateway, &read).await?;
            }
            Err(ApplyError::NeedsStripe(_)) => {
                return Err(ApplyError::Database(DbErr::Custom(
                    "a write kept needing more from Stripe".into(),
                )))
            }
            Err(ApplyError::Database(err)) if conflicts_left > 0 && is_transient(&err) => {
                tracing::info!(error = %err, "transaction conflict; re-running");
                conflict_backoff(MAX_CONFLICT_RETRIES - conflicts_left).await;
                conflicts_left -= 1;
            }
            other => return other,
        }
    }
}

/// What a write did, for logs and tests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    SubscriptionWritten(String),
    SubscriptionStale(String),
    PurchaseWritten(String),
    PurchaseUnchanged(String),
    InvoiceWritten(String),
    InvoiceStale(String),
    CustomerUnlinked(String),
    Nothing,
}

fn time(secs: Option<i64>) -> Option<DateTime<Utc>> {
    secs.and_then(|s| Utc.timestamp_opt(s, 0).single())
}

/// Applies one webhook event.
pub async fn apply_event<C: ConnectionTrait>(
    conn: &C,
    ctx: ApplyContext<'_>,
    event: &BillingEvent,
) -> Result<Vec<Outcome>, ApplyError> {
    let outcomes = match &event.object {
        StripeObject::Subscription(sub) => {
            vec![upsert_subscription(conn, ctx, sub, event.created, Source::Event).await?]
        }
        StripeObject::CheckoutSession(session) => {
            apply_checkout_session(conn, ctx, session, Some(event.kind), event.created).await?
        }
        StripeObject::Invoice(invoice) => {
            let mut outcomes = Vec::new();
            // Invoices carry no subscription state of their own; for the
            // subscription they matter only when they are its first word.
            // Read after the invoice existed, so no older than its event.
            if let Some(id) = &invoice.subscription_id {
                if find_subscription(conn, id).await?.is_none() {
                    let sub = ctx.reads.subscription(id)?;
                    outcomes.push(
                        upsert_subscription(conn, ctx, &sub, event.created, Source::Fetched)
                            .await?,
                    );
                }
            }
            // Locked after the subscription (always in this order: no deadlock).
            outcomes.push(upsert_invoice(conn, invoice, event.created, Source::Event).await?);
            outcomes
        }
        // A partial refund keeps the pack; only a full refund takes it back.
        StripeObject::Charge(ChargeState {
            refunded: true,
            payment_intent_id: Some(pi),
            ..
        }) => vec![reverse_payment(conn, ctx, pi, PurchaseStatus::Refunded).await?],
        // Won: the money came back, and so does the pack. The outcome is kept
        // first, so the dispute's `created` arriving after this changes nothing.
        StripeObject::Dispute(dispute) if event.kind == EventKind::ChargeDisputeClosed => {
            record_dispute_outcome(conn, dispute).await?;
            match &dispute.payment_intent_id {
                Some(pi) if dispute.status == "won" => vec![restore_disputed(conn, ctx, pi).await?],
                // Closed otherwise (lost): the reversal at `created` stands.
                _ => vec![Outcome::Nothing],
            }
        }
        StripeObject::Dispute(DisputeState {
            id,
            payment_intent_id: Some(pi),
            ..
        }) => {
            if dispute_was_won(conn, id).await? {
                vec![Outcome::Nothing]
            } else {
                vec![reverse_payment(conn, ctx, pi, PurchaseStatus::Reversed).await?]
            }
        }
        StripeObject::Charge(_) | StripeObject::Dispute(_) => vec![Outcome::Nothing],
        StripeObject::Customer(customer) if event.kind == EventKind::CustomerDeleted => {
            forget_customer(conn, &customer.id).await?;
            vec![Outcome::CustomerUnlinked(customer.id.clone())]
        }
        StripeObject::Customer(_) => vec![Outcome::Nothing],
    };
    Ok(outcomes)
}

/// The success page: the session read from Stripe (with its subscription), checked
/// to belong to `account_id`, then written exactly as the webhook would.
async fn checkout_session_for_account<C: ConnectionTrait>(
    conn: &C,
    ctx: ApplyContext<'_>,
    session: &CheckoutSessionState,
    account_id: i64,
) -> Result<Vec<Outcome>, ApplyError> {
    let session_id = session.id.as_str();
    let account_customer = accounts::Entity::find_by_id(account_id)
        .one(conn)
        .await?
        .and_then(|a| a.stripe_customer_id);
    let owner = match session.owner() {
        Some(owner) => account_of_owner(conn, owner).await?,
        None => None,
    };
    let ours = owner == Some(account_id)
        && (session.customer_id.is_none() || session.customer_id == account_customer);
    if !ours {
        return Err(ApplyError::NotYours(session_id.to_owned()));
    }
    // Read after the session was created: its `created` is a Stripe time the
    // state is no older than.
    apply_checkout_session(conn, ctx, session, None, session.created).await
}

/// A Stripe time that a state read from the API is no older than: the caller's
/// bound, or the start of the period it shows (which had begun when it was read).
/// Never our clock: Stripe's may be far ahead of it or behind it.
fn read_no_earlier_than(sub: &SubscriptionState, bound: i64) -> i64 {
    bound.max(sub.current_period_start.unwrap_or(0))
}

/// A customer Stripe no longer has (`customer.deleted`, or "No such customer" at
/// checkout): tombstoned first, so that any event of this customer's that
/// arrives later (a checkout completed before the deletion, say) does not link
/// it to the user again; then unlinked, with `updated_at` moved so the user's
/// next customer gets a new idempotency key.
pub async fn forget_customer<C: ConnectionTrait>(conn: &C, customer: &str) -> Result<(), DbErr> {
    deleted_customers::Entity::insert(deleted_customers::ActiveModel {
        stripe_customer_id: Set(customer.to_owned()),
        deleted_at: Set(Utc::now()),
    })
    .on_conflict(
        OnConflict::column(deleted_customers::Column::StripeCustomerId)
            .do_nothing()
            .to_owned(),
    )
    .exec_without_returning(conn)
    .await?;
    accounts::Entity::update_many()
        .col_expr(
            accounts::Column::StripeCustomerId,
            Expr::value(None::<String>),
        )
        .col_expr(accounts::Column::UpdatedAt, Expr::value(Utc::now()))
        .filter(accounts::Column::StripeCustomerId.eq(customer))
        .exec(conn)
        .await?;
    Ok(())
}

/// Whether `customer` is known to have been deleted in Stripe.
pub async fn is_deleted_customer<C: ConnectionTrait>(
    conn: &C,
    customer: &str,
) -> Result<bool, DbErr> {
    Ok(deleted_customers::Entity::find_by_id(customer.to_owned())
        .one(conn)
        .await?
        .is_some())
}

/// The invoice mirror: an upsert by invoice id, ordered by Stripe time like
/// subscriptions; of two states of the same second, the further status wins,
/// and a state read from Stripe never moves the status back.
async fn upsert_invoice<C: ConnectionTrait>(
    conn: &C,
    invoice: &InvoiceState,
    observed_at: i64,
    source: Source,
) -> Result<Outcome, ApplyError> {
    if invoice.id.is_empty() {
        return Ok(Outcome::Nothing);
    }
    lock_subscription(conn, &invoice.id).await?;
    let existing = invoices::Entity::find()
        .filter(invoices::Column::StripeInvoiceId.eq(invoice.id.as_str()))
        .one(conn)
        .await?;
    let rank = invoice_status_rank(&invoice.status);
    let stale = Outcome::InvoiceStale(invoice.id.clone());
    let stamp = match (source, &existing) {
        (Source::Event, Some(row))
            if observed_at < row.stripe_state_at
                || (observed_at == row.stripe_state_at
                    && rank < invoice_status_rank(&row.status)) =>
        {
            return Ok(stale)
        }
        (Source::Event, _) => observed_at,
        (Source::Fetched, Some(row)) if rank < invoice_status_rank(&row.status) => {
            return Ok(stale)
        }
        (Source::Fetched, Some(row)) => row.stripe_state_at.max(invoice.created),
        (Source::Fetched, None) => invoice.created,
    };
    let account_id = match existing.as_ref().and_then(|row| row.account_id) {
        Some(id) => Some(id),
        None => match resolve_account(conn, invoice.customer_id.as_deref(), None).await? {
            Some(id) => Some(id),
            None => match &invoice.subscription_id {
                Some(sub) => find_subscription(conn, sub)
                    .await?
                    .and_then(|row| row.account_id),
                None => None,
            },
        },
    };
    let at = Utc::now();
    let row = invoices::ActiveModel {
        account_id: Set(account_id),
        stripe_invoice_id: Set(invoice.id.clone()),
        stripe_customer_id: Set(invoice.customer_id.clone()),
        stripe_subscription_id: Set(invoice.subscription_id.clone()),
        number: Set(invoice.number.clone()),
        amount_total: Set(invoice.amount),
        currency: Set(invoice.currency.clone()),
        status: Set(invoice.status.clone()),
        period_start: Set(invoice.period_start),
        period_end: Set(invoice.period_end),
        hosted_invoice_url: Set(invoice.hosted_url.clone()),
        invoice_pdf: Set(invoice.pdf_url.clone()),
        stripe_created: Set(invoice.created),
        stripe_state_at: Set(stamp),
        created_at: Set(at),
        updated_at: Set(at),
        ..Default::default()
    };
    use invoices::Column as I;
    let written = invoices::Entity::insert(row)
        .on_conflict(
            OnConflict::column(I::StripeInvoiceId)
                .update_columns([
                    I::AccountId,
                    I::StripeCustomerId,
                    I::StripeSubscriptionId,
                    I::Number,
                    I::AmountTotal,
                    I::Currency,
                    I::Status,
                    I::PeriodStart,
                    I::PeriodEnd,
                    I::HostedInvoiceUrl,
                    I::InvoicePdf,
                    I::StripeStateAt,
                    I::UpdatedAt,
                ])
                .action_and_where(sea_orm::sea_query::ExprTrait::lte(
                    Expr::col((invoices::Entity, I::StripeStateAt)),
                    Expr::cust("excluded.stripe_state_at"),
                ))
                .to_owned(),
        )
        .exec_without_returning(conn)
        .await?;
    Ok(if written > 0 {
        Outcome::InvoiceWritten(invoice.id.clone())
    } else {
        stale
    })
}

async fn find_subscription<C: ConnectionTrait>(
    conn: &C,
    id: &str,
) -> Result<Option<subscriptions::Model>, DbErr> {
    subscriptions::Entity::find()
        .filter(subscriptions::Column::StripeSubscriptionId.eq(id))
        .one(conn)
        .await
}

/// The billing account a Stripe object belongs to: by its customer first (set
/// by our own `ensure_customer`), else by the account our checkout put in its
/// metadata (or, on an object made before accounts existed, its user's
/// personal account).
async fn resolve_account<C: ConnectionTrait>(
    conn: &C,
    customer_id: Option<&str>,
    owner: Option<Owner>,
) -> Result<Option<i64>, DbErr> {
    if let Some(customer) = customer_id {
        if let Some(account) = accounts::Entity::find()
            .filter(accounts::Column::StripeCustomerId.eq(customer))
            .one(conn)
            .await?
        {
            return Ok(Some(account.id));
        }
    }
    match owner {
        Some(owner) => account_of_owner(conn, owner).await,
        None => Ok(None),
    }
}

/// The existing account an owner in our metadata names.
async fn account_of_owner<C: ConnectionTrait>(
    conn: &C,
    owner: Owner,
) -> Result<Option<i64>, DbErr> {
    let query = match owner {
        Owner::Account(id) => accounts::Entity::find_by_id(id),
        Owner::User(id) => accounts::Entity::find().filter(accounts::Column::PersonalUserId.eq(id)),
    };
    Ok(query.one(conn).await?.map(|a| a.id))
}

/// The catalog plan a subscription is on: by the price's lookup key (survives
/// plan changes in the portal), then by price id, then by our metadata.
fn plan_of(ctx: ApplyContext<'_>, sub: &SubscriptionState) -> Option<String> {
    sub.price_lookup_key
        .as_deref()
        .and_then(|key| ctx.catalog.price_by_lookup_key(key))
        .map(|(plan, _)| plan.id.clone())
        .or_else(|| {
            ctx.prices
                .by_price_id(&sub.price_id)
                .map(|p| p.plan_id.clone())
        })
        .or_else(|| sub.plan_id.clone())
}

fn same_state(row: &subscriptions::Model, sub: &SubscriptionState) -> bool {
    row.status == sub.status
        && row.stripe_price_id == sub.price_id
        && row.quantity == sub.quantity
        && row.cancel_at_period_end == sub.cancel_at_period_end
        && row.cancel_at == time(sub.cancel_at)
        && row.current_period_end == time(sub.current_period_end)
        && row.current_period_start == time(sub.current_period_start)
        && row.trial_end == time(sub.trial_end)
        && row.ended_at == time(sub.ended_at)
}

/// Makes read, decide and write one step per subscription on PostgreSQL (across
/// instances too). Without it two events of the same second could both read "no
/// row" (or the same row), and the later commit would win whatever its content —
/// the SQL guard cannot tell equal stamps apart; the chaos test caught an
/// `incomplete` left over an `active` this way. The lock ends with the
/// transaction. SQLite needs none: its webhook transactions take turns
/// (`db::write_turn`) and it has a single writer.
async fn lock_subscription<C: ConnectionTrait>(conn: &C, id: &str) -> Result<(), DbErr> {
    if conn.get_database_backend() == sea_orm::DbBackend::Postgres {
        conn.query_one_raw(sea_orm::Statement::from_sql_and_values(
            sea_orm::DbBackend::Postgres,
            "SELECT pg_advisory_xact_lock(hashtext($1))::text",
            [id.into()],
        ))
        .await?;
    }
    Ok(())
}

async fn upsert_subscription<C: ConnectionTrait>(
    conn: &C,
    ctx: ApplyContext<'_>,
    sub: &SubscriptionState,
    observed_at: i64,
    source: Source,
) -> Result<Outcome, ApplyError> {
    lock_subscription(conn, &sub.id).await?;
    let existing = find_subscription(conn, &sub.id).await?;
    let stored = existing.as_ref().map(|row| freshness::Stored {
        stamp: row.stripe_state_at,
        kind: if row.stripe_state_read {
            Stamp::ReadAfter
        } else {
            Stamp::Exact
        },
        terminal: is_terminal_status(&row.status),
        same_state: same_state(row, sub),
    });
    let observed_at = match source {
        Source::Event => observed_at,
        Source::Fetched => read_no_earlier_than(sub, observed_at),
    };
    let (sub, stamp, kind) = match freshness::decide(stored, observed_at, sub.is_terminal(), source)
    {
        Decision::Ignore => return Ok(Outcome::SubscriptionStale(sub.id.clone())),
        Decision::Apply { stamp, kind } => (sub.clone(), stamp, kind),
        Decision::Refetch => {
            let fresh = ctx.reads.subscription(&sub.id)?;
            let floor = existing.as_ref().map_or(0, |row| row.stripe_state_at);
            // Read after the event, so no older than it. If Stripe still
            // shows the event's state, that state held at the event's time:
            // the stamp is exact, and later events apply without a read.
            let kind = if fresh == *sub {
                Stamp::Exact
            } else {
                Stamp::ReadAfter
            };
            let stamp = floor.max(read_no_earlier_than(&fresh, observed_at));
            (fresh, stamp, kind)
        }
    };
    let account_id = match existing.as_ref().and_then(|row| row.account_id) {
        Some(id) => Some(id),
        None => resolve_account(conn, Some(&sub.customer_id), sub.owner()).await?,
    };
    let interval = sub.interval.clone().or_else(|| {
        sub.price_lookup_key
            .as_deref()
            .and_then(|key| ctx.catalog.price_by_lookup_key(key))
            .and_then(|(_, price)| price.interval.stripe_interval().map(str::to_owned))
    });
    let at = Utc::now();
    let row = subscriptions::ActiveModel {
        account_id: Set(account_id),
        stripe_subscription_id: Set(sub.id.clone()),
        stripe_customer_id: Set(sub.customer_id.clone()),
        stripe_price_id: Set(sub.price_id.clone()),
        plan_id: Set(plan_of(ctx, &sub)),
        price_lookup_key: Set(sub.price_lookup_key.clone()),
        interval: Set(interval),
        quantity: Set(sub.quantity),
        status: Set(sub.status.clone()),
        current_period_start: Set(time(sub.current_period_start)),
        current_period_end: Set(time(sub.current_period_end)),
        cancel_at_period_end: Set(sub.cancel_at_period_end),
        cancel_at: Set(time(sub.cancel_at)),
        canceled_at: Set(time(sub.canceled_at)),
        ended_at: Set(time(sub.ended_at)),
        trial_start: Set(time(sub.trial_start)),
        trial_end: Set(time(sub.trial_end)),
        stripe_state_at: Set(stamp),
        stripe_state_read: Set(kind == Stamp::ReadAfter),
        created_at: Set(at),
        updated_at: Set(at),
        ..Default::default()
    };
    use subscriptions::Column as S;
    let written = subscriptions::Entity::insert(row)
        .on_conflict(
            OnConflict::column(S::StripeSubscriptionId)
                .update_columns([
                    S::AccountId,
                    S::StripeCustomerId,
                    S::StripePriceId,
                    S::PlanId,
                    S::PriceLookupKey,
                    S::Interval,
                    S::Quantity,
                    S::Status,
                    S::CurrentPeriodStart,
                    S::CurrentPeriodEnd,
                    S::CancelAtPeriodEnd,
                    S::CancelAt,
                    S::CanceledAt,
                    S::EndedAt,
                    S::TrialStart,
                    S::TrialEnd,
                    S::StripeStateAt,
                    S::StripeStateRead,
                    S::UpdatedAt,
                ])
                // The database has the last word: a concurrent writer with newer
                // state wins even if it committed after our read.
                .action_and_where(sea_orm::sea_query::ExprTrait::lte(
                    Expr::col((subscriptions::Entity, S::StripeStateAt)),
                    Expr::cust("excluded.stripe_state_at"),
                ))
                .to_owned(),
        )
        .exec_without_returning(conn)
        .await?;
    Ok(if written > 0 {
        Outcome::SubscriptionWritten(sub.id.clone())
    } else {
        Outcome::SubscriptionStale(sub.id.clone())
    })
}

async fn apply_checkout_session<C: ConnectionTrait>(
    conn: &C,
    ctx: ApplyContext<'_>,
    session: &CheckoutSessionState,
    // The event that brought it; `None` when it was read from the API.
    kind: Option<EventKind>,
    // A Stripe time any subscription read here is no older than.
    observed_at: i64,
) -> Result<Vec<Outcome>, ApplyError> {
    let mut outcomes = Vec::new();
    match session.mode {
        CheckoutMode::Subscription => {
            let Some(sub_id) = &session.subscription_id else {
                return Ok(vec![Outcome::Nothing]);
            };
            match (
                &session.subscription,
                find_subscription(conn, sub_id).await?,
            ) {
                // Only a session the gateway retrieved carries its subscription.
                (Some(sub), _) => {
                    outcomes.push(
                        upsert_subscription(conn, ctx, sub, observed_at, Source::Fetched).await?,
                    );
                }
                (None, None) => {
                    let sub = ctx.reads.subscription(sub_id)?;
                    outcomes.push(
                        upsert_subscription(conn, ctx, &sub, observed_at, Source::Fetched).await?,
                    );
                }
                (None, Some(row)) if row.account_id.is_none() => {
                    let account =
                        resolve_account(conn, session.customer_id.as_deref(), session.owner())
                            .await?;
                    subscriptions::Entity::update_many()
                        .col_expr(subscriptions::Column::AccountId, Expr::value(account))
                        .filter(subscriptions::Column::Id.eq(row.id))
                        .exec(conn)
                        .await?;
                    outcomes.push(Outcome::SubscriptionWritten(sub_id.clone()));
                }
                (None, Some(_)) => outcomes.push(Outcome::Nothing),
            }
        }
        CheckoutMode::Payment => {
            outcomes.push(upsert_purchase(conn, ctx, session, kind).await?);
        }
        CheckoutMode::Setup => outcomes.push(Outcome::Nothing),
    }
    // Remember the customer on the account if our own link is missing (a
    // restored database, or a customer Checkout created). Last, so the account
    // row is locked after the billing rows, in the order other writes take them.
    if let (Some(customer), Some(owner)) = (&session.customer_id, session.owner()) {
        if is_deleted_customer(conn, customer).await? {
            return Ok(outcomes);
        }
        if let Some(account_id) = account_of_owner(conn, owner).await? {
            accounts::Entity::update_many()
                .col_expr(
                    accounts::Column::StripeCustomerId,
                    Expr::value(customer.clone()),
                )
                .filter(accounts::Column::Id.eq(account_id))
                .filter(accounts::Column::StripeCustomerId.is_null())
                .exec(conn)
                .await?;
        }
    }
    Ok(outcomes)
}

async fn upsert_purchase<C: ConnectionTrait>(
    conn: &C,
    ctx: ApplyContext<'_>,
    session: &CheckoutSessionState,
    kind: Option<EventKind>,
) -> Result<Outcome, ApplyError> {
    let status = match (
        kind,
        session.status.as_str(),
        session.payment_status.as_str(),
    ) {
        (Some(EventKind::CheckoutSessionAsyncPaymentFailed), _, _) => PurchaseStatus::Failed,
        (_, "complete", "paid" | "no_payment_required") => PurchaseStatus::Paid,
        (_, "complete", _) => PurchaseStatus::Pending,
        (_, "expired", _) => PurchaseStatus::Failed,
        // An open session is nothing yet.
        _ => return Ok(Outcome::Nothing),
    };
    let existing = one_time_purchases::Entity::find()
        .filter(one_time_purchases::Column::StripeCheckoutSessionId.eq(session.id.as_str()))
        .one(conn)
        .await?;
    let at = Utc::now();
    if let Some(row) = existing {
        if status.rank() <= row.status.rank() {
            return Ok(Outcome::PurchaseUnchanged(session.id.clone()));
        }
        one_time_purchases::Entity::update_many()
            .col_expr(one_time_purchases::Column::Status, Expr::value(status))
            .col_expr(
                one_time_purchases::Column::StripePaymentIntentId,
                Expr::value(
                    session
                        .payment_intent_id
                        .clone()
                        .or(row.stripe_payment_intent_id),
                ),
            )
            .col_expr(one_time_purchases::Column::UpdatedAt, Expr::value(at))
            .filter(one_time_purchases::Column::Id.eq(row.id))
            .exec(conn)
            .await?;
        grants::follow_purchase(conn, ctx.catalog, row.id).await?;
        return Ok(Outcome::PurchaseWritten(session.id.clone()));
    }
    if status == PurchaseStatus::Failed && session.status == "expired" {
        // Nothing was bought; there is nothing to record.
        return Ok(Outcome::Nothing);
    }
    let plan = session
        .plan_id
        .as_deref()
        .and_then(|id| ctx.catalog.plan(id))
        .filter(|plan| plan.billing == BillingType::OneTime);
    let price = plan.and_then(|plan| plan.price(Interval::OneTime));
    let price_id = price
        .and_then(|p| ctx.prices.get(&p.lookup_key))
        .map(|p| p.price_id.clone())
        .unwrap_or_default();
    let account_id = resolve_account(conn, session.customer_id.as_deref(), session.owner()).await?;
    let row = one_time_purchases::ActiveModel {
        account_id: Set(account_id),
        stripe_customer_id: Set(session.customer_id.clone()),
        stripe_checkout_session_id: Set(Some(session.id.clone())),
        stripe_payment_intent_id: Set(session.payment_intent_id.clone()),
        stripe_price_id: Set(price_id),
        plan_id: Set(plan.map(|p| p.id.clone())),
        price_lookup_key: Set(price.map(|p| p.lookup_key.clone())),
        quantity: Set(1),
        amount_total: Set(session.amount_total),
        currency: Set(session.currency.clone()),
        status: Set(status),
        refunded_at: Set(None),
        reversed_at: Set(None),
        stripe_state_at: Set(session.created),
        created_at: Set(at),
        updated_at: Set(at),
        ..Default::default()
    };
    let inserted = one_time_purchases::Entity::insert(row)
        .on_conflict(
            OnConflict::column(one_time_purchases::Column::StripeCheckoutSessionId)
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(conn)
        .await?;
    if inserted > 0 {
        let row = one_time_purchases::Entity::find()
            .filter(one_time_purchases::Column::StripeCheckoutSessionId.eq(session.id.as_str()))
            .one(conn)
            .await?;
        if let Some(row) = row {
            grants::follow_purchase(conn, ctx.catalog, row.id).await?;
        }
    }
    Ok(if inserted > 0 {
        Outcome::PurchaseWritten(session.id.clone())
    } else {
        Outcome::PurchaseUnchanged(session.id.clone())
    })
}

/// Finds the purchase paid by `payment_intent`; when its checkout event has not
/// arrived yet, records it from the session Stripe has for that payment.
async fn purchase_for_payment<C: ConnectionTrait>(
    conn: &C,
    ctx: ApplyContext<'_>,
    payment_intent: &str,
) -> Result<Option<one_time_purchases::Model>, ApplyError> {
    let find = || {
        one_time_purchases::Entity::find()
            .filter(one_time_purchases::Column::StripePaymentIntentId.eq(payment_intent))
            .one(conn)
    };
    if let Some(row) = find().await? {
        return Ok(Some(row));
    }
    let Some(session) = ctx.reads.session_for_payment(payment_intent)? else {
        return Ok(None);
    };
    upsert_purchase(
        conn,
        ctx,
        &session,
        Some(EventKind::CheckoutSessionCompleted),
    )
    .await?;
    Ok(find().await?)
}

async fn reverse_purchase<C: ConnectionTrait>(
    conn: &C,
    ctx: ApplyContext<'_>,
    row: one_time_purchases::Model,
    status: PurchaseStatus,
) -> Result<Outcome, ApplyError> {
    if row.status.rank() >= status.rank() {
        return Ok(Outcome::PurchaseUnchanged(
            row.stripe_checkout_session_id.unwrap_or_default(),
        ));
    }
    let at = Utc::now();
    let column = if status == PurchaseStatus::Refunded {
        one_time_purchases::Column::RefundedAt
    } else {
        one_time_purchases::Column::ReversedAt
    };
    one_time_purchases::Entity::update_many()
        .col_expr(one_time_purchases::Column::Status, Expr::value(status))
        .col_expr(column, Expr::value(at))
        .col_expr(one_time_purchases::Column::UpdatedAt, Expr::value(at))
        .filter(one_time_purchases::Column::Id.eq(row.id))
        .exec(conn)
        .await?;
    grants::follow_purchase(conn, ctx.catalog, row.id).await?;
    Ok(Outcome::PurchaseWritten(
        row.stripe_checkout_session_id.unwrap_or_default(),
    ))
}

/// A dispute the merchant won gives back what its opening took: a `reversed`
/// purchase is `paid` again (the one move back a status makes; a refunded one
/// stays refunded). Not yet order-independent: a `closed` (won) delivered before
/// its `created` leaves the pack reversed (the `created` event's object shows
/// the dispute as it was opened); Stripe sends them days apart.
async fn record_dispute_outcome<C: ConnectionTrait>(
    conn: &C,
    dispute: &DisputeState,
) -> Result<(), DbErr> {
    dispute_outcomes::Entity::insert(dispute_outcomes::ActiveModel {
        stripe_dispute_id: Set(dispute.id.clone()),
        status: Set(dispute.status.clone()),
        closed_at: Set(Utc::now()),
    })
    .on_conflict(
        OnConflict::column(dispute_outcomes::Column::StripeDisputeId)
            .update_column(dispute_outcomes::Column::Status)
            .to_owned(),
    )
    .exec_without_returning(conn)
    .await?;
    Ok(())
}

/// Whether `dispute` is known to have closed in the merchant's favour.
async fn dispute_was_won<C: ConnectionTrait>(conn: &C, dispute: &str) -> Result<bool, DbErr> {
    Ok(dispute_outcomes::Entity::find_by_id(dispute.to_owned())
        .one(conn)
        .await?
        .is_some_and(|outcome| outcome.status == "won"))
}

async fn restore_disputed<C: ConnectionTrait>(
    conn: &C,
    ctx: ApplyContext<'_>,
    payment_intent: &str,
) -> Result<Outcome, ApplyError> {
    let restored = one_time_purchases::Entity::update_many()
        .col_expr(
            one_time_purchases::Column::Status,
            Expr::value(PurchaseStatus::Paid),
        )
        .col_expr(
            one_time_purchases::Column::ReversedAt,
            Expr::value(None::<DateTime<Utc>>),
        )
        .col_expr(
            one_time_purchases::Column::UpdatedAt,
            Expr::value(Utc::now()),
        )
        .filter(one_time_purchases::Column::StripePaymentIntentId.eq(payment_intent))
        .filter(one_time_purchases::Column::Status.eq(PurchaseStatus::Reversed))
        .exec(conn)
        .await?;
    if restored.rows_affected > 0 {
        let rows = one_time_purchases::Entity::find()
            .filter(one_time_purchases::Column::StripePaymentIntentId.eq(payment_intent))
            .all(conn)
            .await?;
        for row in rows {
            grants::follow_purchase(conn, ctx.catalog, row.id).await?;
        }
    }
    Ok(if restored.rows_affected > 0 {
        Outcome::PurchaseWritten(payment_intent.to_owned())
    } else {
        Outcome::Nothing
    })
}

/// Takes back the purchase paid by `payment_intent` (`refunded` or `reversed`).
async fn reverse_payment<C: ConnectionTrait>(
    conn: &C,
    ctx: ApplyContext<'_>,
    payment_intent: &str,
    status: PurchaseStatus,
) -> Result<Outcome, ApplyError> {
    match purchase_for_payment(conn, ctx, payment_intent).await? {
        Some(row) => reverse_purchase(conn, ctx, row, status).await,
        // A payment that is not a one-time purchase (e.g. a subscription invoice).
        None => Ok(Outcome::Nothing),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn transient_conflicts_are_known_by_their_codes() {
        for code in ["40P01", "40001", "5", "517", "261", "6", "262"] {
            assert!(super::is_transient_code(code), "{code}");
        }
        // Unique violations, constraint failures, syntax errors, I/O errors.
        for code in ["23505", "2067", "1555", "19", "1", "42601", "10", ""] {
            assert!(!super::is_transient_code(code), "{code}");
        }
    }
}
