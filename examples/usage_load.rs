//! Usage API benchmark: `POST /api/v1/usage` against a running app (`bench/run.sh`
//! reports it as a percentage of `examples/write_baseline.rs` on the same
//! database in the same run).
//!
//! - usage: N accounts signed up through the app, each with an API key and
//!   1,000,000 credits granted (so calls past the month's allowance draw on
//!   credits: the full path), 32 connections each posting `track(1)` with a
//!   fresh idempotency key for D seconds;
//! - zero overspend: afterwards every account's ledger holds exactly the
//!   calls answered 200, and its credits exactly what those calls drew.
//!
//! Prints one line of JSON per figure.
//!
//! cargo run --release --features ssr --example usage_load -- \
//!   --app http://127.0.0.1:3300 --database-url sqlite://… --seconds 10

use std::time::{Duration, Instant};

use billing_starter::{
    db,
    db::entities::{credit_grants, usage_entries, users},
    entitlements::{api_keys, grants},
};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};
use serde_json::json;

struct Args {
    app: String,
    database_url: String,
    seconds: u64,
    concurrency: usize,
    accounts: usize,
}

fn args() -> Args {
    let mut args = Args {
        app: "http://127.0.0.1:3300".into(),
        database_url: String::new(),
        seconds: 10,
        concurrency: 32,
        accounts: 8,
    };
    let raw: Vec<String> = std::env::args().skip(1).collect();
    for pair in raw.chunks(2) {
        let value = pair.get(1).cloned().unwrap_or_default();
        match pair[0].as_str() {
            "--app" => args.app = value,
            "--database-url" => args.database_url = value,
            "--seconds" => args.seconds = value.parse().expect("--seconds N"),
            "--concurrency" => args.concurrency = value.parse().expect("--concurrency N"),
            "--accounts" => args.accounts = value.parse().expect("--accounts N"),
            other => panic!("unknown argument {other}"),
        }
    }
    assert!(!args.database_url.is_empty(), "--database-url is required");
    args
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

fn report(label: &str, backend: &str, ok: u64, failed: u64, seconds: f64, mut latencies: Vec<f64>) {
    latencies.sort_by(f64::total_cmp);
    let rate = ok as f64 / seconds;
    println!(
        "{}",
        json!({
            "figure": label,
            "backend": backend,
            "ok": ok,
            "failed": failed,
            "per_second": rate.round(),
            "p50_ms": (percentile(&latencies, 0.50) * 100.0).round() / 100.0,
            "p99_ms": (percentile(&latencies, 0.99) * 100.0).round() / 100.0,
        })
    );
}

async fn account_of(db: &DatabaseConnection, email: &str) -> i64 {
    let user = users::Entity::find()
        .filter(users::Column::Email.eq(email))
        .one(db)
        .await
        .unwrap()
        .expect("signed up");
    billing_starter::teams::members::personal(db, user.id)
        .await
        .unwrap()
        .expect("a personal account")
        .id
}

const CREDITS: i64 = 1_000_000;

#[tokio::main]
async fn main() {
    let args = args();
    let db = db::connect(&args.database_url).await.expect("database");
    let backend = match db.get_database_backend() {
        sea_orm::DbBackend::Postgres => "postgres",
        _ => "sqlite",
    };
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .build()
        .unwrap();
    let run = std::process::id();
    let mut keys = Vec::new();
    for i in 0..args.accounts {
        let email = format!("usage-{run}-{i}@example.com");
        let response = http
            .post(format!("{}/api/sign_up", args.app))
            .header("origin", &args.app)
            .form(&[
                ("email", email.as_str()),
                ("password", "correct horse battery"),
            ])
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_success() || response.status().is_redirection(),
            "sign-up: {}",
            response.status()
        );
        let account = account_of(&db, &email).await;
        grants::grant_manual(&db, account, CREDITS, None, "bench")
            .await
            .unwrap();
        let key = api_keys::create(&db, account, "bench", None).await.unwrap();
        keys.push((account, key.secret));
    }

    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let tasks: Vec<_> = (0..args.concurrency)
        .map(|task| {
            let http = http.clone();
            let (account, key) = keys[task % keys.len()].clone();
            let url = format!("{}/api/v1/usage", args.app);
            tokio::spawn(async move {
                let (mut latencies, mut failed) = (Vec::new(), 0u64);
                let mut n = 0u64;
                while Instant::now() < deadline {
                    let started = Instant::now();
                    let status = http
                        .post(&url)
                        .bearer_auth(&key)
                        .json(&json!({
                            "feature": "api_calls",
                            "amount": 1,
                            "idempotency_key": format!("bench-{task}-{n}"),
                        }))
                        .send()
                        .await
                        .map(|r| r.status());
                    n += 1;
                    match status {
                        Ok(status) if status.is_success() => {
                            latencies.push(started.elapsed().as_secs_f64() * 1000.0)
                        }
                        _ => failed += 1,
                    }
                }
                (account, latencies, failed)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    let mut failed = 0;
    let mut allowed_by_account = std::collections::HashMap::<i64, i64>::new();
    for task in tasks {
        let (account, l, f) = task.await.unwrap();
        *allowed_by_account.entry(account).or_default() += l.len() as i64;
        latencies.extend(l);
        failed += f;
    }
    let ok = latencies.len() as u64;
    report(
        "POST /api/v1/usage",
        backend,
        ok,
        failed,
        args.seconds as f64,
        latencies,
    );

    // Zero overspend: each account's ledger holds exactly its 200s, and its
    // credits paid exactly for what went past the month's 1,000.
    let mut overspent = 0;
    for (account, allowed) in &allowed_by_account {
        let recorded: i64 = usage_entries::Entity::find()
            .filter(usage_entries::Column::AccountId.eq(*account))
            .all(&db)
            .await
            .unwrap()
            .iter()
            .map(|e| e.amount)
            .sum();
        let left: i64 = credit_grants::Entity::find()
            .filter(credit_grants::Column::AccountId.eq(*account))
            .all(&db)
            .await
            .unwrap()
            .iter()
            .map(|g| g.remaining)
            .sum();
        let drawn = (allowed - 1000).max(0);
        if recorded != *allowed || left != CREDITS - drawn || left < 0 {
            overspent += 1;
            eprintln!(
                "account {account}: {allowed} allowed, {recorded} recorded, {left} credits left"
            );
        }
    }
    println!(
        "{}",
        json!({"figure": "accounts with a ledger mismatch", "backend": backend, "count": overspent})
    );
    if overspent > 0 || failed > 0 {
        std::process::exit(1);
    }
}
