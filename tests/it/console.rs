//! The operator console: operators only (401 signed out, 403 for everyone
//! else, on every page and server function), the role granted by the CLI, a
//! failed event replayed from the console fixed exactly once, and each action
//! in the audit log.

use billing_starter::db::entities::{audit_log, subscriptions, webhook_events};
use reqwest::StatusCode;
use sea_orm::{EntityTrait, PaginatorTrait};
use serde_json::json;

use crate::common::{
    billing::{Browser, World},
    TestDb,
};

const PAGES: [&str; 7] = [
    "/admin",
    "/admin/accounts?q=example",
    "/admin/audit",
    "/admin/mail",
    "/admin/drift",
    "/admin/catalog",
    "/admin/event?id=evt_1",
];
const FUNCTIONS: [(&str, &[(&str, &str)]); 12] = [
    (
        "admin_grant_credits",
        &[("account_id", "1"), ("amount", "1000"), ("reason", "x")],
    ),
    (
        "admin_take_back_credits",
        &[("account_id", "1"), ("grant_id", "1")],
    ),
    ("admin_drift", &[]),
    ("admin_catalog", &[]),
    ("admin_event", &[("id", "evt_1")]),
    ("admin_reconcile", &[]),
    ("admin_events", &[]),
    ("admin_accounts", &[("q", "example")]),
    ("admin_audit", &[]),
    ("admin_replay", &[]),
    ("admin_mail", &[]),
    ("admin_resend", &[("id", "1")]),
];

async fn promote(world: &World, email: &str) {
    let (code, out) = crate::common::run_binary(
        &["users", "promote", email],
        &[("DATABASE_URL", world.app.config.database_url.as_str())],
    )
    .await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("is an operator"), "{out}");
}

async fn status_of(world: &World, browser: Option<&Browser>, path: &str) -> StatusCode {
    let mut request = world.http.get(world.app.url(path));
    if let Some(browser) = browser {
        request = request.header("cookie", &browser.cookie);
    }
    request.send().await.unwrap().status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_is_for_operators_and_fixes_a_failed_event_once() {
    let db = TestDb::sqlite();
    let world = World::start(&db).await;

    // Signed out: 401; a customer: 403; every page and server function.
    let customer = world.sign_up("customer@example.com").await;
    for path in PAGES {
        assert_eq!(
            status_of(&world, None, path).await,
            StatusCode::UNAUTHORIZED,
            "{path}"
        );
        assert_eq!(
            status_of(&world, Some(&customer), path).await,
            StatusCode::FORBIDDEN,
            "{path}"
        );
    }
    for (function, form) in FUNCTIONS {
        let (status, _, body) = world.call(None, function, form).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{function}: {body}");
        let (status, _, body) = world.call(Some(&customer), function, form).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{function}: {body}");
        assert!(body.contains("operators only"), "{body}");
    }

    // A failed event: the first word of a subscription arrives while every
    // Stripe call fails.
    let url = world.checkout(&customer, "premium", "monthly").await;
    world.pay(&url, "4242424242424242").await;
    let invoice = world.event("invoice.paid").await;
    world
        .control(
            "faults",
            json!({"rate": 1.0, "kinds": ["500"], "hang_ms": 0}),
        )
        .await;
    assert_eq!(
        world.deliver(&invoice).await,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    world
        .control("faults", json!({"rate": 0.0, "kinds": [], "hang_ms": 0}))
        .await;
    let event_id = invoice["id"].as_str().unwrap();

    // The operator (promoted by the CLI) sees it and replays it.
    let operator = world.sign_up("ops@example.com").await;
    assert_eq!(
        status_of(&world, Some(&operator), "/admin").await,
        StatusCode::FORBIDDEN
    );
    promote(&world, "ops@example.com").await;
    let inbox = world.page(&operator, "/admin").await;
    assert!(inbox.contains("1 failed event(s)"), "{inbox}");
    assert!(inbox.contains(event_id), "{inbox}");
    // Its payload and last error, as stored.
    let detail = world
        .page(&operator, &format!("/admin/event?id={event_id}"))
        .await;
    let invoice_id = invoice["data"]["object"]["id"].as_str().unwrap();
    assert!(
        detail.contains("event-payload") && detail.contains(invoice_id),
        "{detail}"
    );
    assert!(detail.contains("failed"), "{detail}");
    // The catalog matches Stripe (the world applied it at start-up).
    let catalog = world.page(&operator, "/admin/catalog").await;
    assert!(catalog.contains("Stripe matches the catalog."), "{catalog}");
    let accounts = world.page(&operator, "/admin/accounts?q=customer@").await;
    assert!(accounts.contains("customer@example.com"), "{accounts}");
    assert!(
        accounts.contains("https://dashboard.stripe.com/test/customers/cus_"),
        "{accounts}"
    );

    // Twice at once: the event is fixed, its effects once.
    let form = [("event", event_id)];
    let replay = || world.submit(Some(&operator), "admin_replay", &form);
    let (first, second) = tokio::join!(replay(), replay());
    for (status, location, body) in [first, second] {
        assert_eq!(status, StatusCode::FOUND, "{body}");
        assert!(location
            .unwrap()
            .starts_with("/admin?replayed=1&still_failing=0"));
    }
    let event = webhook_events::Entity::find()
        .one(&world.app.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(event.status, webhook_events::EventStatus::Processed);
    assert_eq!(
        subscriptions::Entity::find()
            .count(&world.app.db)
            .await
            .unwrap(),
        1
    );
    let inbox = world.page(&operator, "/admin").await;
    assert!(inbox.contains("0 failed event(s)"), "{inbox}");

    // Each replay is in the audit log: who, what, the state before and after.
    let entries = audit_log::Entity::find().all(&world.app.db).await.unwrap();
    assert_eq!(entries.len(), 2, "{entries:?}");
    for entry in &entries {
        assert_eq!(entry.operator_email, "ops@example.com");
        assert_eq!(entry.action, "replay event");
        assert_eq!(entry.target, event_id);
        assert!(
            entry.after.as_deref().unwrap().contains("Processed"),
            "{entry:?}"
        );
    }
    assert!(entries
        .iter()
        .any(|e| e.before.as_deref().unwrap().contains("Failed")));
    let audit = world.page(&operator, "/admin/audit").await;
    assert!(
        audit.contains("replay event") && audit.contains("ops@example.com"),
        "{audit}"
    );
    // The customer still cannot see it.
    assert_eq!(
        status_of(&world, Some(&customer), "/admin/audit").await,
        StatusCode::FORBIDDEN
    );
    world.stop().await;
}

/// An operator grants credits with a reason (the account can spend them at
/// once) and takes back what is left as a correction; both audited, both
/// refused to a customer.
#[tokio::test]
async fn credits_are_granted_and_taken_back_from_the_console() {
    let db = TestDb::sqlite();
    let world = World::start(&db).await;
    let customer = world.sign_up("credited@example.com").await;
    let operator = world.sign_up("ops-credits@example.com").await;
    promote(&world, "ops-credits@example.com").await;
    let (_, _, body) = world
        .call(Some(&operator), "admin_accounts", &[("q", "credited@")])
        .await;
    let rows: serde_json::Value = serde_json::from_str(&body).unwrap();
    let account = rows[0]["id"].to_string();
    assert_eq!(rows[0]["credits"], 0);

    let grant = [
        ("account_id", account.as_str()),
        ("amount", "50"),
        ("reason", "outage on 2026-11-30"),
        ("expires_in_days", "30"),
        ("q", "credited@"),
    ];
    let (status, _, _) = world
        .call(Some(&customer), "admin_grant_credits", &grant)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, location, body) = world
        .submit(Some(&operator), "admin_grant_credits", &grant)
        .await;
    assert_eq!(status, StatusCode::FOUND, "{body}");
    assert_eq!(location.as_deref(), Some("/admin/accounts?q=credited%40"));
    let page = world.page(&operator, "/admin/accounts?q=credited@").await;
    assert!(page.contains("Credits left: 50"), "{page}");
    assert!(page.contains("outage on 2026-11-30"), "{page}");
    let (status, _, _) = world
        .submit(
            Some(&operator),
            "admin_grant_credits",
            &[
                ("account_id", account.as_str()),
                ("amount", "5"),
                ("reason", " "),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::FOUND, "refused back to the form");

    // Spent first after the month's allowance: the customer uses 1,010 calls.
    let (_, _, body) = world.call(Some(&customer), "load_gate", &[]).await;
    let gate: serde_json::Value = serde_json::from_str(&body).unwrap();
    let key = gate["Open"]["form_key"].as_str().unwrap();
    world
        .submit(
            Some(&customer),
            "use_feature",
            &[("feature", "api_calls"), ("amount", "1010"), ("key", key)],
        )
        .await;
    let (_, _, body) = world
        .call(Some(&operator), "admin_accounts", &[("q", "credited@")])
        .await;
    let rows: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(rows[0]["credits"], 40, "{rows}");
    let grant_id = rows[0]["grants"][0][0].to_string();

    let take_back = [
        ("account_id", account.as_str()),
        ("grant_id", grant_id.as_str()),
    ];
    let (status, _, _) = world
        .call(Some(&customer), "admin_take_back_credits", &take_back)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, _) = world
        .submit(Some(&operator), "admin_take_back_credits", &take_back)
        .await;
    assert_eq!(status, StatusCode::FOUND);
    let (_, _, body) = world
        .call(Some(&operator), "admin_accounts", &[("q", "credited@")])
        .await;
    let rows: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(rows[0]["credits"], 0, "{rows}");

    let entries = audit_log::Entity::find().all(&world.app.db).await.unwrap();
    let actions: Vec<&str> = entries.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        ["grant credits", "take back credits"],
        "{entries:?}"
    );
    assert!(entries[0].after.as_deref().unwrap().contains("50 credits"));
    assert!(entries[1].before.as_deref().unwrap().contains("40 left"));
    world.stop().await;
}

/// The drift page lists what differs from Stripe without changing anything;
/// applying it for one subscription fixes exactly that, audited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_is_listed_then_fixed_for_one_subscription() {
    let db = TestDb::sqlite();
    let world = World::start(&db).await;
    let customer = world.sign_up("drifting@example.com").await;
    let url = world.checkout(&customer, "premium", "monthly").await;
    let (_, success) = world.pay(&url, "4242424242424242").await;
    let success = reqwest::Url::parse(&success).unwrap();
    world
        .page(
            &customer,
            &format!("{}?{}", success.path(), success.query().unwrap()),
        )
        .await;
    let row = subscriptions::Entity::find()
        .one(&world.app.db)
        .await
        .unwrap()
        .unwrap();
    assert!(!row.cancel_at_period_end);
    // Changed in Stripe behind the app's back (its event never delivered).
    world
        .stripe_post(
            &format!("subscriptions/{}", row.stripe_subscription_id),
            &[("cancel_at_period_end", "true")],
        )
        .await;

    let operator = world.sign_up("drift-ops@example.com").await;
    promote(&world, "drift-ops@example.com").await;
    let page = world.page(&operator, "/admin/drift").await;
    assert!(page.contains("1 subscription(s) differ"), "{page}");
    assert!(page.contains("cancel_at_period_end false → true"), "{page}");
    let unchanged = subscriptions::Entity::find()
        .one(&world.app.db)
        .await
        .unwrap()
        .unwrap();
    assert!(
        !unchanged.cancel_at_period_end,
        "the dry run writes nothing"
    );

    let id = row.stripe_subscription_id.clone();
    let (status, location, body) = world
        .submit(
            Some(&operator),
            "admin_reconcile",
            &[("subscription", id.as_str())],
        )
        .await;
    assert_eq!(status, StatusCode::FOUND, "{body}");
    assert_eq!(location.as_deref(), Some("/admin/drift?fixed=1"));
    let fixed = subscriptions::Entity::find()
        .one(&world.app.db)
        .await
        .unwrap()
        .unwrap();
    assert!(fixed.cancel_at_period_end);
    let page = world.page(&operator, "/admin/drift").await;
    assert!(page.contains("0 subscription(s) differ"), "{page}");
    let entry = audit_log::Entity::find()
        .one(&world.app.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (entry.action.as_str(), entry.target.as_str()),
        ("reconcile", id.as_str())
    );
    assert!(entry
        .before
        .unwrap()
        .contains("cancel_at_period_end false → true"));
    world.stop().await;
}
