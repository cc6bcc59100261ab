//! Webhook ingest benchmark: realistic signed events against a running app.
//!
//! Signs up users and subscribes them through the app's own checkout against its
//! Stripe (the emulator), takes the real subscription and invoice events that
//! produced as templates, signs fresh copies in advance (new ids, ever newer
//! `created`, so each one is verified, recorded, applied and committed — never a
//! duplicate and never a Stripe call), then posts them from N concurrent senders
//! for D seconds. Prints events/s and latency percentiles as one line of JSON.
//!
//! cargo run --release --features ssr --example webhook_ingest -- \
//!   --app http://127.0.0.1:3300 --stripe http://127.0.0.1:12111/ --secret whsec_emulator_local

use std::{
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
}

/// `count` fresh events cycling through the templates: new ids and ever newer
/// `created` (so each one is applied, never stale, never re-read from Stripe).
fn deliveries(templates: &[Value], count: usize, secret: &str) -> Vec<Delivery> {
    let run = format!("{:x}", std::process::id());
    let base_created = chrono::Utc::now().timestamp() + 3_600;
    let signed_at = chrono::Utc::now().timestamp();
    (0..count)
        .map(|n| {
            let mut event = templates[n % templates.len()].clone();
            event["id"] = Value::from(format!("evt_bench_{run}_{n}"));
            event["created"] = Value::from(base_created + n as i64);
            let body = event.to_string();
            let signature = signature::sign(body.as_bytes(), secret, signed_at);
            Delivery {
                body: body.into(),
                signature,
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
    let prepared = deliveries(
        &templates,
        args.max_rate * args.seconds as usize,
        &args.secret,
    );
    let deliveries = Arc::new(prepared);
    // Let the app finish the live deliveries of the set-up before measuring.
    tokio::time::sleep(Duration::from_secs(2)).await;
    if let Some(pid) = args.server_pid {
        // The sign-ups hashed passwords (argon2id: 19 MiB each) on tokio's blocking
        // threads, whose allocator caches go when they exit after 10 s idle.
        tokio::time::sleep(Duration::from_secs(10)).await;
        // Restarts the kernel's peak RSS (VmHWM) of the server at its current RSS.
        std::fs::write(format!("/proc/{pid}/clear_refs"), "5").expect("reset the server's VmHWM");
    }

    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.seconds);
    let url = format!("{}/api/stripe/webhooks", args.app);
    let mut senders = Vec::new();
    for _ in 0..args.concurrency {
        let (http, deliveries, next, url) =
            (http.clone(), deliveries.clone(), next.clone(), url.clone());
        senders.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut failures = 0u64;
            while Instant::now() < deadline {
                let n = next.fetch_add(1, Ordering::Relaxed) as usize;
                let Some(delivery) = deliveries.get(n) else {
                    break;
                };
                let sent = Instant::now();
                let response = http
                    .post(&url)
                    .header("content-type", "application/json")
                    .header("stripe-signature", &delivery.signature)
                    .body(delivery.body.clone())
                    .send()
                    .await;
                latencies.push(sent.elapsed());
                if !matches!(&response, Ok(r) if r.status().is_success()) {
                    failures += 1;
                }
            }
            (latencies, failures)
        }));
    }
    let mut latencies = Vec::new();
    let mut failures = 0;
    for sender in senders {
        let (l, f) = sender.await.unwrap();
        latencies.extend(l);
        failures += f;
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort();
    let pct = |p: f64| {
        latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)].as_secs_f64()
            * 1000.0
    };
    println!(
        "{}",
        serde_json::json!({
            "events": latencies.len(),
            "events_per_second": (latencies.len() as f64 / elapsed).round(),
            "p50_ms": (pct(0.50) * 100.0).round() / 100.0,
            "p99_ms": (pct(0.99) * 100.0).round() / 100.0,
            "failures": failures,
            "concurrency": args.concurrency,
            "templates": templates.len(),
            "exhausted": latencies.len() >= deliveries.len(),
            "server_peak_rss_mb": args.server_pid.map(peak_rss_mb),
        })
    );
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
