//! The app's operating numbers, for Prometheus (`/metrics`, `server::scrape`).
//!
//! Counters and histograms are recorded where things happen (the webhook
//! route, the gateway, checkout, the mail worker, every HTTP request) through
//! the `metrics` crate; queue depths (failed webhook events, the outbox) are
//! read from the database when scraped, so every instance reports the shared
//! truth. Labels are bounded: event types the app knows, Stripe operations
//! named in code, routes the router has.

use std::sync::OnceLock;

use metrics::{
    counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram, Unit,
};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr, Statement};

/// The process's recorder (one per process: several apps in one test process
/// share it, and their numbers add up).
pub fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let handle = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Suffix("_seconds".to_owned()),
                &[
                    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
                    300.0, 600.0, 1800.0, 3600.0,
                ],
            )
            .expect("bucket list is not empty")
            .install_recorder()
            .expect("the only metrics recorder of the process");
        describe();
        handle
    })
}

/// How often recorded histogram samples are folded into their buckets.
const UPKEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Folds histogram samples into their buckets every [`UPKEEP_EVERY`], for as
/// long as the server runs. The recorder keeps each sample until a scrape or an
/// upkeep drains it, and `install_recorder` starts no upkeep of its own: with
/// no Prometheus scraping (development, or production without
/// `METRICS_TOKEN`) every request's duration stayed in memory, ~8 bytes a
/// request without end (several MB of the benchmark's peak RSS, issue 23).
pub async fn upkeep_forever() {
    let mut every = tokio::time::interval(UPKEEP_EVERY);
    loop {
        every.tick().await;
        handle().run_upkeep();
    }
}

/// The help line of every series (`promtool check metrics` asks for one).
fn describe() {
    describe_counter!(
        "billing_webhook_events_total",
        "Stripe webhook deliveries by event type and outcome (processed, duplicate, ignored, failed, rejected)."
    );
    describe_histogram!(
        "billing_webhook_processing_seconds",
        Unit::Seconds,
        "Time to answer a webhook delivery."
    );
    describe_histogram!(
        "billing_webhook_delivery_lag_seconds",
        Unit::Seconds,
        "Our receipt time less the event's created time (Stripe's clock)."
    );
    describe_gauge!(
        "billing_webhook_failed_events",
        "Stored webhook events whose processing failed (Stripe retries; `webhooks replay --failed`)."
    );
    describe_gauge!(
        "billing_webhook_oldest_failed_age_seconds",
        Unit::Seconds,
        "Age of the oldest failed webhook event (0 when none)."
    );
    describe_counter!(
        "billing_stripe_requests_total",
        "Stripe API calls (retries included) by operation and outcome (ok, error, timeout)."
    );
    describe_histogram!(
        "billing_stripe_request_seconds",
        Unit::Seconds,
        "Duration of a Stripe API call, retries included."
    );
    describe_counter!(
        "billing_checkout_sessions_started_total",
        "Checkout Sessions handed to customers, by mode."
    );
    describe_counter!(
        "billing_checkout_sessions_completed_total",
        "checkout.session.completed events applied."
    );
    describe_counter!(
        "billing_mail_attempts_total",
        "Attempts to send an outbox message, by outcome (sent, failed)."
    );
    describe_gauge!(
        "billing_outbox_messages",
        "Outbox messages by status (pending, failed)."
    );
    describe_gauge!(
        "billing_outbox_oldest_pending_age_seconds",
        Unit::Seconds,
        "Age of the oldest message waiting to be sent (0 when none)."
    );
    describe_counter!(
        "billing_usage_decisions_total",
        "Usage recorded or refused (track, hold commit), by feature and decision (allowed, denied, error)."
    );
    describe_histogram!(
        "billing_usage_track_seconds",
        Unit::Seconds,
        "Time to decide and record one use, its transaction included."
    );
    describe_counter!(
        "billing_write_groups_total",
        "SQLite's grouped writes (webhooks, usage) by outcome (committed, rolled_back): one commit each."
    );
    describe_histogram!(
        "billing_write_group_writes",
        "Writes one commit of a group carried (webhooks, usage; SQLite)."
    );
    describe_counter!(
        "billing_http_requests_total",
        "HTTP requests by route and status."
    );
    describe_histogram!(
        "billing_http_request_seconds",
        Unit::Seconds,
        "Time to answer an HTTP request, by route."
    );
}

/// A webhook delivery's outcome: `processed`, `duplicate`, `ignored`, `failed`
/// or `rejected` (bad signature or body), by event type.
pub fn webhook(kind: &str, outcome: &'static str) {
    let kind = if crate::webhooks::is_handled(kind) {
        kind.to_owned()
    } else {
        "other".to_owned()
    };
    counter!("billing_webhook_events_total", "type" => kind, "outcome" => outcome).increment(1);
}

/// How long a delivery took to answer, and how late it came: our receipt
/// time less the event's `created` (Stripe's clock).
pub fn webhook_timing(seconds: f64, lag_seconds: Option<f64>) {
    histogram!("billing_webhook_processing_seconds").record(seconds);
    if let Some(lag) = lag_seconds {
        histogram!("billing_webhook_delivery_lag_seconds").record(lag.max(0.0));
    }
}

/// One Stripe call (its retries included): `ok`, `error` or `timeout`.
pub fn stripe_call(operation: &'static str, outcome: &'static str, seconds: f64) {
    counter!("billing_stripe_requests_total", "operation" => operation, "outcome" => outcome)
        .increment(1);
    histogram!("billing_stripe_request_seconds", "operation" => operation).record(seconds);
}

/// A Checkout Session handed to a customer (`subscription` or `payment`).
pub fn checkout_started(mode: &'static str) {
    counter!("billing_checkout_sessions_started_total", "mode" => mode).increment(1);
}

/// A Checkout Session Stripe says is complete (its event applied).
pub fn checkout_completed() {
    counter!("billing_checkout_sessions_completed_total").increment(1);
}

/// A mail attempt: `sent` or `failed`.
pub fn mail(outcome: &'static str) {
    counter!("billing_mail_attempts_total", "outcome" => outcome).increment(1);
}

/// One usage decision for a catalog feature: `allowed`, `denied` or `error`.
pub fn usage(feature: &str, decision: &'static str, seconds: f64) {
    counter!("billing_usage_decisions_total", "feature" => feature.to_owned(), "decision" => decision)
        .increment(1);
    histogram!("billing_usage_track_seconds").record(seconds);
}

/// One group of SQLite writes ended (`db::group_commit`), with how many writes
/// it carried.
pub fn write_group(writes: usize, committed: bool) {
    let outcome = if committed {
        "committed"
    } else {
        "rolled_back"
    };
    counter!("billing_write_groups_total", "outcome" => outcome).increment(1);
    histogram!("billing_write_group_writes").record(writes as f64);
}

/// An HTTP request answered, by route (bounded) and status.
pub fn http(route: String, status: u16, seconds: f64) {
    counter!("billing_http_requests_total", "route" => route.clone(), "status" => status.to_string())
        .increment(1);
    histogram!("billing_http_request_seconds", "route" => route).record(seconds);
}

/// Queue depths, read from the database at scrape time.
pub async fn refresh_gauges(db: &DatabaseConnection) -> Result<(), DbErr> {
    let (failed, oldest) = depth(db, "webhook_events", "received_at", "failed").await?;
    gauge!("billing_webhook_failed_events").set(failed);
    gauge!("billing_webhook_oldest_failed_age_seconds").set(oldest);
    let (pending, oldest) = depth(db, "outbox", "created_at", "pending").await?;
    gauge!("billing_outbox_messages", "status" => "pending").set(pending);
    gauge!("billing_outbox_oldest_pending_age_seconds").set(oldest);
    let (failed, _) = depth(db, "outbox", "created_at", "failed").await?;
    gauge!("billing_outbox_messages", "status" => "failed").set(failed);
    Ok(())
}

/// How many rows of `table` have `status`, and the age in seconds of the
/// oldest by `since` (0 when there are none). Table and column names are
/// this module's own literals.
async fn depth(
    db: &DatabaseConnection,
    table: &'static str,
    since: &'static str,
    status: &'static str,
) -> Result<(f64, f64), DbErr> {
    let sql = format!(
        "SELECT COUNT(*) AS n, MIN({since}) AS oldest FROM {table} WHERE status = '{status}'"
    );
    let row = db
        .query_one_raw(Statement::from_string(db.get_database_backend(), sql))
        .await?;
    let count = row
        .as_ref()
        .and_then(|r| r.try_get::<i64>("", "n").ok())
        .unwrap_or(0);
    let oldest = row
        .as_ref()
        .and_then(|r| {
            r.try_get::<Option<chrono::DateTime<chrono::Utc>>>("", "oldest")
                .ok()
        })
        .flatten();
    let age = oldest.map_or(0.0, |at| {
        (chrono::Utc::now() - at).num_milliseconds().max(0) as f64 / 1000.0
    });
    Ok((count as f64, age))
}
