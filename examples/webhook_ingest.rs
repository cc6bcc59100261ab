//! Webhook ingest benchmark: realistic signed events against a running app.
//!
//! Signs up users and subscribes them through the app's own checkout against its
//! Stripe (the emulator), takes the real subscription and invoice events that
//! produced as templates, signs fresh copies in advance (new ids, ever newer
//! `created`, so each one is verified, recorded, applied and committed — never a
//! duplicate and never a Stripe call), then posts them from N concurrent senders
//! for D seconds. Prints events/s and latency percentiles as one line of JSON:
//! only answers of 2xx count, per event type; with `--database-url` also how
//! the inbox recorded them (applied or ignored), and the Stripe (emulator) calls
//! the app made during the window, which must be 0. Any failed delivery fails
//! the run (exit 1).
//!
//! cargo run --release --features ssr --example webhook_ingest -- \
//!   --app http://127.0.0.1:3300 --stripe http://127.0.0.1:12111/ --secret whsec_emulator_local

use std::{
    collections::BTreeMap,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use billing_starter::webhooks::signature;
use serde_json::Value;

struct Args {
    app: String,
    stripe: String,
    secret: String,
    customers: usize,
    seconds: u64,
    concurrency: usize,
    /// Upper bound on events/s: this many per second are signed in advance.
    max_rate: usize,
    /// The app's process on this machine: its peak RSS under the load is reported.
    server_pid: Option<u32>,
    /// The app's database: how the inbox recorded the run's events.
    database_url: Option<String>,
}

fn args() -> Args {
    let mut args = Args {
        app: "http://127.0.0.1:3300".into(),
        stripe: "http://127.0.0.1:12111/".into(),
        secret: "whsec_emulator_local".into(),
        customers: 40,
        seconds: 10,
        concurrency: 32,
        max_rate: 8_000,
        server_pid: None,
        database_url: None,
    };
    let raw: Vec<String> = std::env::args().skip(1).collect();
    for pair in raw.chunks(2) {
        let value = pair.get(1).cloned().unwrap_or_default();
        match pair[0].as_str() {
            "--app" => args.app = value,
            "--stripe" => args.stripe = value,
            "--secret" => args.secret = value,
            "--customers" => args.customers = value.parse().expect("--customers N"),
            "--seconds" => args.seconds = value.parse().expect("--seconds N"),
            "--concurrency" => args.concurrency = value.parse().expect("--concurrency N"),
            "--max-rate" => args.max_rate = value.parse().expect("--max-rate N"),
            "--server-pid" => args.server_pid = Some(value.parse().expect("--server-pid PID")),
            "--database-url" => args.database_url = Some(value),
            other => panic!("unknown argument {other}"),
        }
    }
    args
}

async fn stripe(http: &reqwest::Client, base: &str, path: &str, form: &[(&str, &str)]) -> Value {
    let request = if form.is_empty() {
        http.get(format!("{base}v1/{path}"))
    } else {
        http.post(format!("{base}v1/{path}")).form(form)
    };
    request
        .bearer_auth("sk_test_bench")
        .send()
        .await
        .expect("emulator reachable")
        .json()
        .await
        .expect("emulator JSON")
}

/// Signs up `n` users in the app and subscribes each one the way a customer
/// does (the app's `start_checkout`, then the hosted Checkout page with a test
/// card), so the replayed events are about subscriptions the app knows and has
/// linked to a user; returns the subscription and invoice events Stripe sent.
async fn templates(http: &reqwest::Client, app: &str, base: &str, n: usize) -> Vec<Value> {
    use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
    let tag = std::process::id().to_string();
    for i in 0..n {
        let email = format!("bench{tag}-{i}@example.com");
        let signed_up = http
            .post(format!("{app}/api/sign_up"))
            .form(&[
                ("email", email.as_str()),
                ("password", "correct horse battery"),
            ])
            .send()
            .await
            .expect("app reachable");
        let cookie = signed_up
            .headers()
            .get_all(SET_COOKIE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .find(|value| value.starts_with("billing_session="))
            .and_then(|value| value.split(';').next())
            .expect("sign-up starts a session")
            .to_owned();
        let checkout = http
            .post(format!("{app}/api/start_checkout"))
            .header(COOKIE, cookie)
            .form(&[("plan", "premium"), ("interval", "monthly")])
            .send()
            .await
            .expect("app reachable");
        let url = checkout
            .headers()
            .get(LOCATION)
            .and_then(|value| value.to_str().ok())
            .expect("start_checkout redirects to Checkout (catalog applied?)")
            .to_owned();
        let paid = http
            .post(url)
            .form(&[("card_number", "4242424242424242"), ("email", &email)])
            .send()
            .await
            .unwrap();
        assert!(paid.status().is_redirection() || paid.status().is_success());
    }
    let mut events = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let path = match &after {
            Some(id) => format!("events?limit=100&starting_after={id}"),
            None => "events?limit=100".to_owned(),
        };
        let page = stripe(http, base, &path, &[]).await;
        let data = page["data"].as_array().cloned().unwrap_or_default();
        after = data
            .last()
            .and_then(|e| e["id"].as_str().map(str::to_owned));
        events.extend(data.into_iter().filter(|e| {
            let kind = e["type"].as_str().unwrap_or_default();
            kind.starts_with("customer.subscription.") || kind.starts_with("invoice.")
        }));
        if page["has_more"] != true {
            break;
        }
    }
    events
}

/// One delivery, ready to send: body and signature made before the clock starts,
/// so the load generator's JSON and HMAC work does not compete with the server
/// for the machine's two cores while it is measured.
struct Delivery {
    body: axum::body::Bytes,
    signature: String,
    kind: String,
}

impl Delivery {
    /// Posts it to the app's webhook endpoint, as Stripe does.
    async fn send(
        &self,
        http: &reqwest::Client,
        url: &str,
    ) -> Result<reqwest::Response, reqwest::Error> {
        http.post(url)
            .header("content-type", "application/json")
            .header("stripe-signature", &self.signature)
            .body(self.body.clone())
            .send()
            .await
    }
}

/// `count` fresh events cycling through the templates: new ids and ever newer
/// `created` (so each one is applied, never stale, never re-read from Stripe).
/// The first `warm` are the warm-up's (ids of their own, not counted).
fn deliveries(templates: &[Value], count: usize, warm: usize, secret: &str) -> Vec<Delivery> {
    let run = format!("{:x}", std::process::id());
    // Newer than anything the app has seen, the set-up's live events included
    // (the emulator's clock may run ahead of the wall clock).
    let newest = templates
        .iter()
        .filter_map(|e| e["created"].as_i64())
        .max()
        .unwrap_or(0);
    let base_created = newest.max(chrono::Utc::now().timestamp()) + 3_600;
    let signed_at = chrono::Utc::now().timestamp();
    (0..count)
        .map(|n| {
            let mut event = templates[n % templates.len()].clone();
            let stage = if n < warm { "warm" } else { "bench" };
            event["id"] = Value::from(format!("evt_{stage}_{run}_{n}"));
            event["created"] = Value::from(base_created + n as i64);
            let body = event.to_string();
            let signature = signature::sign(body.as_bytes(), secret, signed_at);
            Delivery {
                body: body.into(),
                signature,
                kind: event["type"].as_str().unwrap_or_default().to_owned(),
            }
        })
        .collect()
}

#[tokio::main]
async fn main() {
    let args = args();
    // Posts to the app come from its own pages, as a browser's would.
    let origin = reqwest::Url::parse(&args.app)
        .expect("app URL")
        .origin()
        .ascii_serialization();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .default_headers(reqwest::header::HeaderMap::from_iter([(
            reqwest::header::ORIGIN,
            origin.parse().expect("origin header"),
        )]))
        .pool_max_idle_per_host(args.concurrency)
        .build()
        .unwrap();
    let templates = templates(&http, &args.app, &args.stripe, args.customers).await;
    assert!(!templates.is_empty(), "no events to replay");
    // More than the app can take in the window: running out would end the run early
    // (reported as `exhausted`), and a re-sent event would only measure duplicates.
    let warm = templates.len();
    let prepared = deliveries(
        &templates,
        warm + args.max_rate * args.seconds as usize,
        warm,
        &args.secret,
    );
    let deliveries = Arc::new(prepared);
    // Let the app finish the live deliveries of the set-up before measuring.
    tokio::time::sleep(Duration::from_secs(2)).await;
    // The server's peak so far (its sign-ups and checkouts included), before the restart.
    let peak_before = args.server_pid.map(peak_rss_mb);
    if let Some(pid) = args.server_pid {
        // The sign-ups hashed passwords (argon2id: 19 MiB each) on tokio's blocking
        // threads, whose allocator caches go when they exit after 10 s idle.
        tokio::time::sleep(Duration::from_secs(10)).await;
        // Restarts the kernel's peak RSS (VmHWM) of the server at its current RSS.
        std::fs::write(format!("/proc/{pid}/clear_refs"), "5").expect("reset the server's VmHWM");
    }

    // Warm-up: each template once, in order, before the clock. The set-up's
    // checkouts left subscriptions whose state was read from Stripe; the first
    // event that differs from such a state cannot be ordered by clocks and is
    // checked with Stripe (`billing::freshness`), as it would be in production.
    // After one pass every stored state is an event's, and the window measures
    // events applied in order, where a Stripe call would be a regression.
    let url = format!("{}/api/stripe/webhooks", args.app);
    for delivery in &deliveries[..warm] {
        let status = delivery
            .send(&http, &url)
            .await
            .expect("app reachable")
            .status();
        assert!(status.is_success(), "warm-up delivery answered {status}");
    }
    let stripe_calls_before = stripe_calls(&http, &args.stripe).await;
    let next = Arc::new(AtomicU64::new(warm as u64));
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.seconds);
    let mut senders = Vec::new();
    for _ in 0..args.concurrency {
        let (http, deliveries, next, url) =
            (http.clone(), deliveries.clone(), next.clone(), url.clone());
        senders.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut by_type = BTreeMap::<String, (u64, u64)>::new();
            while Instant::now() < deadline {
                let n = next.fetch_add(1, Ordering::Relaxed) as usize;
                let Some(delivery) = deliveries.get(n) else {
                    break;
                };
                let sent = Instant::now();
                let response = delivery.send(&http, &url).await;
                let counts = by_type.entry(delivery.kind.clone()).or_default();
                if matches!(&response, Ok(r) if r.status().is_success()) {
                    latencies.push(sent.elapsed());
                    counts.0 += 1;
                } else {
                    counts.1 += 1;
                }
            }
            (latencies, by_type)
        }));
    }
    let mut latencies = Vec::new();
    let mut by_type = BTreeMap::<String, (u64, u64)>::new();
    for sender in senders {
        let (l, counts) = sender.await.unwrap();
        latencies.extend(l);
        for (kind, (ok, failed)) in counts {
            let total = by_type.entry(kind).or_default();
            total.0 += ok;
            total.1 += failed;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let stripe_calls_during = stripe_calls(&http, &args.stripe).await - stripe_calls_before;
    let failures: u64 = by_type.values().map(|(_, failed)| failed).sum();
    let sent = latencies.len() as u64 + failures;
    assert!(!latencies.is_empty(), "no delivery succeeded");
    let recorded = match &args.database_url {
        Some(url) => Some(recorded(url).await),
        None => None,
    };
    latencies.sort();
    let pct = |p: f64| {
        latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)].as_secs_f64()
            * 1000.0
    };
    println!(
        "{}",
        serde_json::json!({
            "figure": "webhook ingest",
            "backend": args.database_url.as_deref().map(|url| if url.starts_with("postgres") { "postgres" } else { "sqlite" }),
            "events": latencies.len(),
            "events_per_second": (latencies.len() as f64 / elapsed).round(),
            "by_type": by_type.iter().map(|(kind, (ok, failed))| (kind.clone(), serde_json::json!({"ok": ok, "failed": failed}))).collect::<serde_json::Map<_, _>>(),
            "recorded": recorded,
            "stripe_calls": stripe_calls_during,
            "p50_ms": (pct(0.50) * 100.0).round() / 100.0,
            "p99_ms": (pct(0.99) * 100.0).round() / 100.0,
            "failures": failures,
            "concurrency": args.concurrency,
            "templates": templates.len(),
            "exhausted": sent as usize + warm >= deliveries.len(),
            "server_peak_rss_mb": args.server_pid.map(peak_rss_mb),
            "server_peak_rss_before_mb": peak_before,
        })
    );
    if failures > 0 || stripe_calls_during > 0 {
        eprintln!(
            "webhook ingest: {failures} failed deliveries, {stripe_calls_during} Stripe calls"
        );
        std::process::exit(1);
    }
}

/// The API requests the emulator has answered so far.
async fn stripe_calls(http: &reqwest::Client, base: &str) -> u64 {
    let counts: Value = http
        .get(format!("{base}_emulator/requests"))
        .send()
        .await
        .expect("emulator reachable")
        .json()
        .await
        .expect("emulator JSON");
    counts["count"].as_u64().expect("a request count")
}

/// How the inbox recorded this run's events: per type, per status.
async fn recorded(url: &str) -> Value {
    use sea_orm::ConnectionTrait;
    let db = billing_starter::db::connect(url).await.expect("database");
    let rows = db
        .query_all_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            format!(
                "SELECT event_type, status, COUNT(*) AS n FROM webhook_events \
                 WHERE stripe_event_id LIKE 'evt_bench_{:x}_%' GROUP BY event_type, status",
                std::process::id()
            ),
        ))
        .await
        .expect("inbox counts");
    let mut by_type = serde_json::Map::new();
    for row in rows {
        let kind: String = row.try_get("", "event_type").expect("event_type");
        let status: String = row.try_get("", "status").expect("status");
        let n: i64 = row.try_get("", "n").expect("count");
        by_type
            .entry(kind)
            .or_insert_with(|| Value::Object(Default::default()))[status] = Value::from(n);
    }
    Value::Object(by_type)
}

/// The kernel's peak resident set (VmHWM) of `pid`, in MB.
fn peak_rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("server status");
    let kb: f64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/PID/status");
    (kb / 1024.0 * 10.0).round() / 10.0
}
