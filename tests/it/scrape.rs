//! `/metrics` scraped over HTTP: the numbers move as events, checkouts and
//! requests happen, the queue depths come from the database, the token is
//! asked for, and `promtool check metrics` accepts the text.

use std::collections::BTreeMap;

use reqwest::StatusCode;
use serde_json::json;

use crate::common::{billing::World, TestApp, TestDb};

/// Every sample of a scrape: (name, labels) → value.
fn samples(text: &str) -> BTreeMap<(String, BTreeMap<String, String>), f64> {
    let mut out = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let (series, value) = line.rsplit_once(' ').unwrap();
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => {
                let labels = rest
                    .trim_end_matches('}')
                    .split(',')
                    .filter(|pair| !pair.is_empty())
                    .map(|pair| {
                        let (k, v) = pair.split_once('=').unwrap();
                        (k.to_owned(), v.trim_matches('"').to_owned())
                    })
                    .collect();
                (name.to_owned(), labels)
            }
            None => (series.to_owned(), BTreeMap::new()),
        };
        out.insert((name, labels), value.parse().unwrap());
    }
    out
}

fn value(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    let want: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    samples(text)
        .get(&(name.to_owned(), want))
        .copied()
        .unwrap_or(0.0)
}

async fn scrape(world: &World) -> String {
    let response = world
        .http
        .get(world.app.url("/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    response.text().await.unwrap()
}

/// `promtool check metrics` reads the scrape from stdin. CI installs promtool
/// (`bootstrap.sh`); elsewhere the check says it was skipped.
fn promtool_accepts(text: &str) {
    use std::io::Write;
    let Ok(mut child) = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true but promtool is not installed: the format check would be skipped"
        );
        eprintln!("note: promtool not installed; format check skipped");
        return;
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "promtool check metrics: {said}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_move_as_events_checkouts_and_requests_happen() {
    let db = TestDb::sqlite();
    let world = World::start(&db).await;
    let before = scrape(&world).await;

    let browser = world.sign_up("counted@example.com").await;
    world.page(&browser, "/pricing").await;
    let url = world.checkout(&browser, "premium", "monthly").await;
    let (status, _) = world.pay(&url, "4242424242424242").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let completed = world.event("checkout.session.completed").await;
    assert_eq!(world.deliver(&completed).await, StatusCode::OK);
    assert_eq!(world.deliver(&completed).await, StatusCode::OK);
    // A handled type whose object does not parse: stored as failed, 500.
    let mut broken = completed.clone();
    broken["id"] = json!("evt_broken_for_metrics");
    broken["type"] = json!("customer.subscription.updated");
    broken["data"]["object"] = json!({"id": "sub_broken", "object": "subscription"});
    assert_eq!(
        world.deliver(&broken).await,
        StatusCode::INTERNAL_SERVER_ERROR
    );

    // Usage from the workspace: one call allowed, one beyond Premium's 100,000 refused.
    for (amount, key) in [("1", "metrics-a"), ("100001", "metrics-b")] {
        let (status, _, _) = world
            .submit(
                Some(&browser),
                "use_feature",
                &[("feature", "api_calls"), ("amount", amount), ("key", key)],
            )
            .await;
        assert_eq!(status, StatusCode::FOUND);
    }

    let after = scrape(&world).await;
    let moved = |name: &str, labels: &[(&str, &str)]| {
        value(&after, name, labels) - value(&before, name, labels)
    };
    let completed_kind = [
        ("type", "checkout.session.completed"),
        ("outcome", "processed"),
    ];
    assert!(
        moved("billing_webhook_events_total", &completed_kind) >= 1.0,
        "{after}"
    );
    assert!(
        moved(
            "billing_webhook_events_total",
            &[
                ("type", "checkout.session.completed"),
                ("outcome", "duplicate")
            ]
        ) >= 1.0
    );
    assert!(
        moved(
            "billing_webhook_events_total",
            &[
                ("type", "customer.subscription.updated"),
                ("outcome", "failed")
            ]
        ) >= 1.0
    );
    assert!(moved("billing_webhook_processing_seconds_count", &[]) >= 3.0);
    assert!(moved("billing_webhook_delivery_lag_seconds_count", &[]) >= 3.0);
    assert!(
        moved(
            "billing_checkout_sessions_started_total",
            &[("mode", "subscription")]
        ) >= 1.0
    );
    assert!(moved("billing_checkout_sessions_completed_total", &[]) >= 1.0);
    for decision in ["allowed", "denied"] {
        // At least: other tests in this process count too.
        assert!(
            moved(
                "billing_usage_decisions_total",
                &[("feature", "api_calls"), ("decision", decision)]
            ) >= 1.0,
            "{decision}: {after}"
        );
    }
    assert!(moved("billing_usage_track_seconds_count", &[]) >= 2.0);
    // This world is on SQLite: its webhook and usage writes were committed in groups.
    assert!(
        moved("billing_write_groups_total", &[("outcome", "committed")]) >= 1.0,
        "{after}"
    );
    assert!(moved("billing_write_group_writes_count", &[]) >= 1.0);
    assert!(
        moved(
            "billing_stripe_requests_total",
            &[("operation", "create checkout session"), ("outcome", "ok")]
        ) >= 1.0,
        "{after}"
    );
    assert!(
        moved(
            "billing_http_requests_total",
            &[("route", "/pricing"), ("status", "200")]
        ) >= 1.0
    );
    assert!(
        moved(
            "billing_http_requests_total",
            &[("route", "/api/start_checkout"), ("status", "302")]
        ) >= 1.0,
        "{after}"
    );
    // Queue depths are this database's: one failed event, the sign-up's mail sent.
    assert_eq!(value(&after, "billing_webhook_failed_events", &[]), 1.0);
    assert!(value(&after, "billing_webhook_oldest_failed_age_seconds", &[]) >= 0.0);
    // A path nobody routes is counted as `other`, never as itself.
    world
        .http
        .get(world.app.url("/no-such-thing-42"))
        .send()
        .await
        .unwrap();
    let last = scrape(&world).await;
    assert!(!last.contains("no-such-thing-42"));
    promtool_accepts(&last);
    world.stop().await;
}

#[tokio::test]
async fn metrics_ask_for_their_token_and_stay_private_in_production() {
    let db = TestDb::sqlite();
    let app = TestApp::spawn(db.url(), &[("METRICS_TOKEN", "scrape-secret")]).await;
    let get = |token: Option<&'static str>| {
        let mut request = app.client.get(app.url("/metrics"));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };
    assert_eq!(get(None).await.unwrap().status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        get(Some("wrong")).await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        get(Some("scrape-secret")).await.unwrap().status(),
        StatusCode::OK
    );
    app.stop().await.unwrap();

    let app = TestApp::spawn(
        db.url(),
        &[
            ("APP_ENV", "production"),
            ("APP_URL", "https://billing.example.com"),
            ("STRIPE_SECRET_KEY", "sk_live_metrics"),
            ("STRIPE_PUBLISHABLE_KEY", "pk_live_metrics"),
            ("STRIPE_WEBHOOK_SECRET", "whsec_metrics"),
            ("SMTP_URL", "smtp://127.0.0.1:9"),
            ("MAIL_FROM", "billing@example.com"),
        ],
    )
    .await;
    let response = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    app.stop().await.unwrap();
}

/// The example alert rules in `docs/` are valid Prometheus rules.
#[test]
fn the_example_alert_rules_are_valid() {
    let rules = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/alerts.yml");
    let Ok(output) = std::process::Command::new("promtool")
        .args(["check", "rules", rules])
        .output()
    else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true but promtool is not installed"
        );
        eprintln!("note: promtool not installed; rules check skipped");
        return;
    };
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
