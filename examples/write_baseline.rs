//! The write path's physical baseline: what the database itself takes, with the
//! app's pool and durability settings and no app in front of it (issue 23).
//!
//! 32 tasks for D seconds, each request one transaction holding one insert into
//! an inbox-shaped table (a Stripe event id, its type and a payload of the size
//! of the real events) and one upsert into a subscriptions-shaped table (40
//! subscriptions, as the ingest benchmark's 40 customers). The pool is
//! `db::connect`'s (SQLite: WAL, `synchronous=FULL`, 4 connections; PostgreSQL:
//! 16 connections, the server's own `synchronous_commit`), and on SQLite each
//! transaction takes the app's in-process write turn (`db::write_turn`), as the
//! webhook path does: without it, SQLite's busy handler would make the baseline
//! slower than the app and every ratio flattering. Webhook ingest and
//! `POST /api/v1/usage` are reported as percentages of this figure.
//!
//! Prints one line of JSON.
//!
//! cargo run --release --features ssr --example write_baseline -- \
//!   --database-url sqlite://… --seconds 10

use std::time::{Duration, Instant};

use billing_starter::db;
use sea_orm::{ConnectionTrait, DbBackend, Statement, TransactionTrait};
use serde_json::json;

struct Args {
    database_url: String,
    seconds: u64,
    concurrency: usize,
    payload_bytes: usize,
}

fn args() -> Args {
    let mut args = Args {
        database_url: String::new(),
        seconds: 10,
        concurrency: 32,
        // The subscription events the ingest benchmark replays are 3–5 KB.
        payload_bytes: 4_000,
    };
    let raw: Vec<String> = std::env::args().skip(1).collect();
    for pair in raw.chunks(2) {
        let value = pair.get(1).cloned().unwrap_or_default();
        match pair[0].as_str() {
            "--database-url" => args.database_url = value,
            "--seconds" => args.seconds = value.parse().expect("--seconds N"),
            "--concurrency" => args.concurrency = value.parse().expect("--concurrency N"),
            "--payload-bytes" => args.payload_bytes = value.parse().expect("--payload-bytes N"),
            other => panic!("unknown argument {other}"),
        }
    }
    assert!(!args.database_url.is_empty(), "--database-url is required");
    args
}

/// The two tables, shaped like `webhook_events` and `subscriptions`: the same
/// unique keys (the ones each write must check), a text payload.
fn schema(backend: DbBackend) -> [String; 2] {
    let id = if backend == DbBackend::Postgres {
        "BIGSERIAL PRIMARY KEY"
    } else {
        "INTEGER PRIMARY KEY"
    };
    [
        format!(
            "CREATE TABLE IF NOT EXISTS bench_inbox (id {id}, \
             stripe_event_id TEXT NOT NULL UNIQUE, event_type TEXT NOT NULL, \
             status TEXT NOT NULL, received_at BIGINT NOT NULL, payload TEXT NOT NULL)"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS bench_subscriptions (id {id}, \
             stripe_subscription_id TEXT NOT NULL UNIQUE, status TEXT NOT NULL, \
             stripe_price_id TEXT NOT NULL, stripe_state_at BIGINT NOT NULL, updated_at BIGINT NOT NULL)"
        ),
    ]
}

fn statements(backend: DbBackend) -> (String, String) {
    let p = |n: usize| {
        if backend == DbBackend::Postgres {
            format!("${n}")
        } else {
            "?".to_owned()
        }
    };
    (
        format!(
            "INSERT INTO bench_inbox (stripe_event_id, event_type, status, received_at, payload) \
             VALUES ({}, {}, 'processed', {}, {})",
            p(1),
            p(2),
            p(3),
            p(4)
        ),
        format!(
            "INSERT INTO bench_subscriptions (stripe_subscription_id, status, stripe_price_id, \
             stripe_state_at, updated_at) VALUES ({}, 'active', 'price_bench', {}, {}) \
             ON CONFLICT (stripe_subscription_id) DO UPDATE SET status = excluded.status, \
             stripe_state_at = excluded.stripe_state_at, updated_at = excluded.updated_at",
            p(1),
            p(2),
            p(3)
        ),
    )
}

#[tokio::main]
async fn main() {
    let args = args();
    let db = db::connect(&args.database_url).await.expect("database");
    let backend = db.get_database_backend();
    for ddl in schema(backend) {
        db.execute_unprepared(&ddl).await.expect("baseline tables");
    }
    let (insert, upsert) = statements(backend);
    let payload = "x".repeat(args.payload_bytes);
    let run = std::process::id();
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let tasks: Vec<_> = (0..args.concurrency)
        .map(|task| {
            let (db, insert, upsert, payload) =
                (db.clone(), insert.clone(), upsert.clone(), payload.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut n = 0u64;
                while Instant::now() < deadline {
                    let started = Instant::now();
                    let now = chrono::Utc::now().timestamp();
                    let turn = db::write_turn(&db).await;
                    let tx = db.begin().await.expect("begin");
                    tx.execute_raw(Statement::from_sql_and_values(
                        backend,
                        &insert,
                        [
                            format!("evt_base_{run}_{task}_{n}").into(),
                            "customer.subscription.updated".into(),
                            now.into(),
                            payload.clone().into(),
                        ],
                    ))
                    .await
                    .expect("insert");
                    tx.execute_raw(Statement::from_sql_and_values(
                        backend,
                        &upsert,
                        [
                            format!("sub_base_{}", (task as u64 + n) % 40).into(),
                            now.into(),
                            now.into(),
                        ],
                    ))
                    .await
                    .expect("upsert");
                    tx.commit().await.expect("commit");
                    drop(turn);
                    latencies.push(started.elapsed().as_secs_f64() * 1000.0);
                    n += 1;
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.expect("task"));
    }
    latencies.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        let i = ((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1));
        (latencies.get(i).copied().unwrap_or(0.0) * 100.0).round() / 100.0
    };
    println!(
        "{}",
        json!({
            "figure": "write baseline",
            "backend": if backend == DbBackend::Postgres { "postgres" } else { "sqlite" },
            "ok": latencies.len(),
            "per_second": (latencies.len() as f64 / args.seconds as f64).round(),
            "p50_ms": pct(0.50),
            "p99_ms": pct(0.99),
            "concurrency": args.concurrency,
        })
    );
}
