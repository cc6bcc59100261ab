//! Usage, credits and entitlements over the real `/api/v1` and the app's own
//! forms, on SQLite, PostgreSQL and two instances on one PostgreSQL: parallel
//! requests never spend past the last unit, retried keys count once, holds
//! never let tracks exceed the limit, periods reset with the subscription's
//! renewal, and a pack's credits arrive once and leave with its refund.

use crate::common::{
    billing::{Browser, World},
    TestApp, TestDb,
};
use billing_starter::db::entities::{credit_grants, usage_entries};
use futures_util::StreamExt;
use reqwest::StatusCode;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{json, Value};

/// An API key for the browser's current account, made on the team page as a
/// person would: created by a form post, read once from the page's data.
async fn api_key(world: &World, browser: &Browser) -> String {
    let (status, location, body) = world
        .submit(Some(browser), "create_api_key", &[("name", "backend")])
        .await;
    assert_eq!(status, StatusCode::FOUND, "{body}");
    assert!(
        crate::common::billing::returned_error(&location.unwrap_or_default()).is_none(),
        "key refused"
    );
    let (_, _, body) = world.call(Some(browser), "load_team", &[]).await;
    let team: Value = serde_json::from_str(&body).unwrap();
    let key = team["new_api_key"]
        .as_str()
        .expect("the new key, once")
        .to_owned();
    // Shown once: the next read of the page has it no more.
    let (_, _, body) = world.call(Some(browser), "load_team", &[]).await;
    let again: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(again["new_api_key"], Value::Null);
    key
}

async fn post(app: &TestApp, key: &str, path: &str, body: Value) -> (StatusCode, Value) {
    let response = reqwest::Client::new()
        .post(app.url(path))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

async fn track(app: &TestApp, key: &str, feature: &str, amount: i64) -> (StatusCode, Value) {
    post(
        app,
        key,
        "/api/v1/usage",
        json!({"feature": feature, "amount": amount}),
    )
    .await
}

async fn entitlements(app: &TestApp, key: &str) -> Value {
    let response = reqwest::Client::new()
        .get(app.url("/api/v1/entitlements"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["cache-control"].to_str().unwrap(),
        "no-store"
    );
    response.json().await.unwrap()
}

fn feature<'a>(entitlements: &'a Value, id: &str) -> &'a Value {
    entitlements["features"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["feature"] == id)
        .unwrap_or_else(|| panic!("{id} in {entitlements}"))
}

/// Fires `count` `track(1)` at once, spread over `apps`; how many passed.
async fn burst(apps: &[&TestApp], key: &str, count: usize) -> (usize, usize) {
    let answers: Vec<(StatusCode, Value)> = futures_util::stream::iter(0..count)
        .map(|i| {
            let app = apps[i % apps.len()];
            async move { track(app, key, "api_calls", 1).await }
        })
        .buffer_unordered(count)
        .collect()
        .await;
    let allowed = answers
        .iter()
        .filter(|(status, _)| *status == StatusCode::OK)
        .count();
    let refused = answers
        .iter()
        .filter(|(status, body)| {
            *status == StatusCode::PAYMENT_REQUIRED && body["allowed"] == false
        })
        .count();
    assert_eq!(
        allowed + refused,
        count,
        "every answer is 200 or 402: {answers:?}"
    );
    (allowed, refused)
}

/// The free plan's 1,000 calls a month, ten left, and 64 parallel calls of one
/// each (over `apps`, which share one database): exactly ten pass. Then a hold
/// beside parallel tracks, and one idempotency key sent ten times at once.
async fn never_overspend(world: &World, apps: &[&TestApp]) {
    let ada = world.sign_up("meter@example.com").await;
    let key = api_key(world, &ada).await;
    let (status, body) = track(apps[0], &key, "api_calls", 990).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["remaining"], 10);

    assert_eq!(burst(apps, &key, 64).await, (10, 54));
    let now = entitlements(apps[0], &key).await;
    let calls = feature(&now, "api_calls");
    assert_eq!(
        (calls["used"].clone(), calls["remaining"].clone()),
        (json!(1000), json!(0)),
        "{now}"
    );
    let (status, body) = track(apps[0], &key, "api_calls", 1).await;
    assert_eq!(status, StatusCode::PAYMENT_REQUIRED);
    assert_eq!(body["reason"], "limit_reached");
    assert_eq!(body["remaining"], 0);
    // This app's own pricing page (not another instance's of the process).
    assert_eq!(
        body["upgrade_url"],
        format!("{}/pricing", apps[0].base_url),
        "{body}"
    );
    let (_, other) = track(apps[apps.len() - 1], &key, "api_calls", 1).await;
    assert_eq!(
        other["upgrade_url"],
        format!("{}/pricing", apps[apps.len() - 1].base_url)
    );
    let recorded: i64 = usage_entries::Entity::find()
        .filter(usage_entries::Column::Feature.eq("api_calls"))
        .all(&world.app.db)
        .await
        .unwrap()
        .iter()
        .map(|e| e.amount)
        .sum();
    assert_eq!(recorded, 1000, "the ledger holds exactly what was allowed");

    // `check` decides without recording: nothing left, and Free has no
    // priority support.
    let account = personal_account(world, "meter@example.com").await;
    let billing = &world.app.state.billing;
    use billing_starter::entitlements::{ledger, Reason};
    let decision = ledger::check(billing, account, "api_calls", 1)
        .await
        .unwrap();
    assert_eq!(
        (decision.allowed, decision.remaining, decision.reason),
        (false, Some(0), Some(Reason::LimitReached))
    );
    assert!(decision.resets_at.is_some());
    let decision = ledger::check(billing, account, "priority_support", 1)
        .await
        .unwrap();
    assert_eq!(
        (decision.allowed, decision.reason),
        (false, Some(Reason::NotInPlan))
    );
    let decision = ledger::check(billing, account, "projects", 1)
        .await
        .unwrap();
    assert_eq!((decision.allowed, decision.remaining), (true, Some(1)));

    // A hold beside parallel tracks: an operator's 10 credits, 6 held, 20
    // tracks at once: 4 pass; the hold commits 3, so 3 more fit.
    billing_starter::entitlements::grants::grant_manual(&world.app.db, account, 10, None, "test")
        .await
        .unwrap();
    let (status, hold) = post(
        apps[0],
        &key,
        "/api/v1/usage/holds",
        json!({"feature": "api_calls", "amount": 6}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{hold}");
    assert_eq!(hold["remaining"], 4);
    assert_eq!(burst(apps, &key, 20).await, (4, 16));
    let hold_id = hold["hold_id"].as_str().unwrap();
    let (status, body) = post(
        apps[1 % apps.len()],
        &key,
        &format!("/api/v1/usage/holds/{hold_id}/commit"),
        json!({"amount": 3}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["remaining"], 3);
    // Committing again with the same amount is the same answer; another is 409.
    let (status, again) = post(
        apps[0],
        &key,
        &format!("/api/v1/usage/holds/{hold_id}/commit"),
        json!({"amount": 3}),
    )
    .await;
    assert_eq!(
        (status, again["remaining"].clone()),
        (StatusCode::OK, json!(3))
    );
    let (status, _) = post(
        apps[0],
        &key,
        &format!("/api/v1/usage/holds/{hold_id}/commit"),
        json!({"amount": 4}),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(burst(apps, &key, 12).await, (3, 9));
    let credits: i64 = credit_grants::Entity::find()
        .all(&world.app.db)
        .await
        .unwrap()
        .iter()
        .map(|g| g.remaining)
        .sum();
    assert_eq!(credits, 0, "never below zero");

    // One key, ten times at once: one use, ten identical answers.
    let bob = world.sign_up("retry@example.com").await;
    let bob_key = api_key(world, &bob).await;
    let answers: Vec<(StatusCode, Value)> = futures_util::stream::iter(0..10)
        .map(|i| {
            let app = apps[i % apps.len()];
            let bob_key = &bob_key;
            async move {
                post(
                    app,
                    bob_key,
                    "/api/v1/usage",
                    json!({"feature": "api_calls", "amount": 7, "idempotency_key": "job-42"}),
                )
                .await
            }
        })
        .buffer_unordered(10)
        .collect()
        .await;
    for (status, body) in &answers {
        assert_eq!(*status, StatusCode::OK, "{body}");
        assert_eq!(body["remaining"], 993, "{body}");
    }
    assert_eq!(
        answers
            .iter()
            .filter(|(_, b)| b["replayed"] == false)
            .count(),
        1
    );
    let now = entitlements(apps[0], &bob_key).await;
    assert_eq!(feature(&now, "api_calls")["used"], 7);
    let (status, body) = post(
        apps[0],
        &bob_key,
        "/api/v1/usage",
        json!({"feature": "api_calls", "amount": 8, "idempotency_key": "job-42"}),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "idempotency_key_reused");
}

/// The personal account of the user with `email`.
async fn personal_account(world: &World, email: &str) -> i64 {
    use billing_starter::db::entities::users;
    let user = users::Entity::find()
        .filter(users::Column::Email.eq(email))
        .one(&world.app.db)
        .await
        .unwrap()
        .unwrap();
    billing_starter::teams::members::personal(&world.app.db, user.id)
        .await
        .unwrap()
        .unwrap()
        .id
}

/// Credits are drawn soonest to expire first, never-expiring last, whether one
/// grant covers a use (one statement) or it spans several (read and split).
#[tokio::test]
async fn credits_are_drawn_soonest_to_expire_first() {
    let test_db = TestDb::sqlite();
    let world = World::start(&test_db).await;
    let ada = world.sign_up("draws@example.com").await;
    let key = api_key(&world, &ada).await;
    assert_eq!(
        track(&world.app, &key, "api_calls", 1000).await.0,
        StatusCode::OK
    );
    let account = personal_account(&world, "draws@example.com").await;
    let db = &world.app.db;
    let day = chrono::Duration::days(1);
    let grant = |amount, expires| {
        billing_starter::entitlements::grants::grant_manual(db, account, amount, expires, "test")
    };
    let never = grant(5, None).await.unwrap();
    let soon = grant(5, Some(chrono::Utc::now() + day)).await.unwrap();
    let later = grant(3, Some(chrono::Utc::now() + day * 2)).await.unwrap();
    let left = || async {
        let rows = credit_grants::Entity::find()
            .filter(credit_grants::Column::AccountId.eq(account))
            .all(db)
            .await
            .unwrap();
        [soon, later, never].map(|id| rows.iter().find(|g| g.id == id).unwrap().remaining)
    };
    for (amount, expected, remaining) in [
        // The soonest grant covers it alone.
        (2, [3, 3, 5], 11),
        // 3 from the soonest, 1 from the next.
        (4, [0, 2, 5], 7),
        // The rest of the later one, then the never-expiring one.
        (5, [0, 0, 2], 2),
    ] {
        let (status, body) = track(&world.app, &key, "api_calls", amount).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["remaining"], remaining, "{body}");
        assert_eq!(left().await, expected, "after {amount}");
    }
    let (status, _) = track(&world.app, &key, "api_calls", 3).await;
    assert_eq!(status, StatusCode::PAYMENT_REQUIRED);
    assert_eq!(left().await, [0, 0, 2], "a refusal draws nothing");
    world.stop().await;
}

#[tokio::test]
async fn parallel_tracks_never_overspend_on_sqlite() {
    let db = TestDb::sqlite();
    let world = World::start(&db).await;
    never_overspend(&world, &[&world.app]).await;
    world.stop().await;
}

#[tokio::test]
async fn parallel_tracks_never_overspend_on_postgres() {
    let Some(db) = TestDb::postgres().await else {
        eprintln!("note: {} not set; skipped", crate::common::POSTGRES_URL_VAR);
        return;
    };
    let world = World::start(&db).await;
    never_overspend(&world, &[&world.app]).await;
    world.stop().await;
    db.cleanup().await;
}

/// Two instances on one PostgreSQL: the in-process write turn spans neither,
/// so only the account's row lock keeps them from spending one unit twice.
#[tokio::test]
async fn parallel_tracks_never_overspend_across_two_instances_on_postgres() {
    let Some(db) = TestDb::postgres().await else {
        eprintln!("note: {} not set; skipped", crate::common::POSTGRES_URL_VAR);
        return;
    };
    let world = World::start(&db).await;
    let second = TestApp::spawn_with_stripe(
        db.url(),
        &world.emulator.base_url,
        &[("STRIPE_WEBHOOK_SECRET", crate::common::billing::SECRET)],
    )
    .await;
    never_overspend(&world, &[&world.app, &second]).await;
    second.stop().await.unwrap();
    world.stop().await;
    db.cleanup().await;
}

/// What the API answers to bad keys and bad bodies, and that a key reaches
/// only its own account.
#[tokio::test]
async fn the_api_refuses_clearly() {
    let db = TestDb::sqlite();
    let world = World::start(&db).await;
    let ada = world.sign_up("api@example.com").await;
    let key = api_key(&world, &ada).await;
    let app = &world.app;

    for bad in [
        None,
        Some("bsk_nope"),
        Some(&*format!("bsk_{}", "0".repeat(48))),
    ] {
        let mut request = reqwest::Client::new().get(app.url("/api/v1/entitlements"));
        if let Some(bad) = bad {
            request = request.bearer_auth(bad);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{bad:?}");
        assert_eq!(response.headers()["www-authenticate"], "Bearer");
    }
    // The scheme is case-insensitive; the key is not.
    let response = reqwest::Client::new()
        .get(app.url("/api/v1/entitlements"))
        .header("authorization", format!("bearer {key}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let response = reqwest::Client::new()
        .get(app.url("/api/v1/entitlements"))
        .bearer_auth(key.to_uppercase())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    // A session cookie is not a key.
    let response = reqwest::Client::new()
        .get(app.url("/api/v1/entitlements"))
        .header("cookie", &ada.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    for (body, code) in [
        (json!({"feature": "nope", "amount": 1}), "unknown_feature"),
        (
            json!({"feature": "api_calls", "amount": 0}),
            "invalid_amount",
        ),
        (
            json!({"feature": "api_calls", "amount": -5}),
            "invalid_amount",
        ),
        (
            json!({"feature": "priority_support", "amount": 1}),
            "not_countable",
        ),
        (
            json!({"feature": "api_calls", "amount": 1.5}),
            "invalid_request",
        ),
        (
            json!({"feature": "api_calls", "amonut": 1}),
            "invalid_request",
        ),
        (
            json!({"feature": "api_calls", "idempotency_key": ""}),
            "invalid_idempotency_key",
        ),
    ] {
        let (status, answer) = post(app, &key, "/api/v1/usage", body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body} → {answer}");
        assert_eq!(answer["error"]["code"], code, "{body} → {answer}");
    }
    let response = reqwest::Client::new()
        .post(app.url("/api/v1/usage"))
        .bearer_auth(&key)
        .body("not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);

    // Counted: the free plan's one project.
    assert_eq!(track(app, &key, "projects", 1).await.0, StatusCode::OK);
    let (status, body) = track(app, &key, "projects", 1).await;
    assert_eq!(status, StatusCode::PAYMENT_REQUIRED, "{body}");
    assert_eq!(
        body["resets_at"],
        Value::Null,
        "counted features never reset"
    );

    // Another account's hold is not found; a released one cannot be committed.
    let bob = world.sign_up("api-other@example.com").await;
    let bob_key = api_key(&world, &bob).await;
    let (_, hold) = post(
        app,
        &bob_key,
        "/api/v1/usage/holds",
        json!({"feature": "api_calls", "amount": 2, "expires_in": 60}),
    )
    .await;
    let hold_id = hold["hold_id"].as_str().unwrap().to_owned();
    let (status, _) = post(
        app,
        &key,
        &format!("/api/v1/usage/holds/{hold_id}/commit"),
        json!({"amount": 1}),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let response = reqwest::Client::new()
        .delete(app.url(&format!("/api/v1/usage/holds/{hold_id}")))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let response = reqwest::Client::new()
        .delete(app.url(&format!("/api/v1/usage/holds/{hold_id}")))
        .bearer_auth(&bob_key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let (status, body) = post(
        app,
        &bob_key,
        &format!("/api/v1/usage/holds/{hold_id}/commit"),
        json!({"amount": 1}),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (StatusCode::CONFLICT, json!("hold_closed"))
    );

    // A hold expires on its own: its units come back, and it cannot be committed.
    let (_, hold) = post(
        app,
        &bob_key,
        "/api/v1/usage/holds",
        json!({"feature": "api_calls", "amount": 900, "expires_in": 1}),
    )
    .await;
    assert_eq!(hold["remaining"], 100, "{hold}");
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    assert_eq!(
        feature(&entitlements(app, &bob_key).await, "api_calls")["remaining"],
        1000
    );
    let (status, body) = post(
        app,
        &bob_key,
        &format!(
            "/api/v1/usage/holds/{}/commit",
            hold["hold_id"].as_str().unwrap()
        ),
        json!({"amount": 900}),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");

    // A revoked key stops at once.
    let (_, _, body) = world.call(Some(&ada), "load_team", &[]).await;
    let team: Value = serde_json::from_str(&body).unwrap();
    let id = team["api_keys"][0]["id"].to_string();
    let (status, _, _) = world
        .submit(Some(&ada), "revoke_api_key", &[("id", &id)])
        .await;
    assert_eq!(status, StatusCode::FOUND);
    assert_eq!(
        track(app, &key, "api_calls", 1).await.0,
        StatusCode::UNAUTHORIZED
    );

    // Wrong keys from one client are limited.
    crate::common::fresh_window(600, 30).await;
    let mut last = StatusCode::OK;
    for _ in 0..31 {
        last = reqwest::Client::new()
            .get(app.url("/api/v1/entitlements"))
            .bearer_auth("bsk_wrong")
            .send()
            .await
            .unwrap()
            .status();
    }
    assert_eq!(last, StatusCode::TOO_MANY_REQUESTS);
    world.stop().await;
}

/// Members use the product but do not manage keys: a member's key request is
/// refused, an admin's works, and a personal key never reaches the organization.
#[tokio::test]
async fn only_owners_and_admins_create_keys() {
    let db = TestDb::sqlite();
    let world = World::start(&db).await;
    let owner = world.sign_up("keys-owner@example.com").await;
    let (status, _, _) = world
        .submit(Some(&owner), "create_organization", &[("name", "Keyed")])
        .await;
    assert_eq!(status, StatusCode::FOUND);
    world
        .submit(
            Some(&owner),
            "invite_member",
            &[("email", "keys-member@example.com"), ("role", "member")],
        )
        .await;
    let link = world
        .mail_link("keys-member@example.com", "invitation")
        .await;
    let token = link.split("token=").nth(1).unwrap().to_owned();
    let member = world.sign_up("keys-member@example.com").await;
    let (status, _, body) = world
        .call(Some(&member), "accept_invitation", &[("token", &token)])
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _, _) = world
        .call(Some(&member), "create_api_key", &[("name", "mine")])
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let org_key = api_key(&world, &owner).await;
    // Nobody but its owners and admins revokes it: the member is refused, and
    // another account's owner does not find it.
    let (_, _, body) = world.call(Some(&owner), "load_team", &[]).await;
    let team: Value = serde_json::from_str(&body).unwrap();
    let org_key_id = team["api_keys"][0]["id"].to_string();
    let (status, _, _) = world
        .call(Some(&member), "revoke_api_key", &[("id", &org_key_id)])
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let stranger = world.sign_up("keys-stranger@example.com").await;
    let (status, _, _) = world
        .call(Some(&stranger), "revoke_api_key", &[("id", &org_key_id)])
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // The organization's usage is its own.
    assert_eq!(
        track(&world.app, &org_key, "api_calls", 5).await.0,
        StatusCode::OK
    );
    let member_key_personal = {
        // The member's own account (switch back to it) has its own meters.
        let (_, _, body) = world.call(Some(&member), "load_team", &[]).await;
        let team: Value = serde_json::from_str(&body).unwrap();
        let personal = team["accounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["name"] == "Personal")
            .unwrap()["id"]
            .to_string();
        world
            .submit(
                Some(&member),
                "switch_account",
                &[("account_id", &personal)],
            )
            .await;
        api_key(&world, &member).await
    };
    let mine = entitlements(&world.app, &member_key_personal).await;
    assert_eq!(feature(&mine, "api_calls")["used"], 0);
    let org = entitlements(&world.app, &org_key).await;
    assert_eq!(feature(&org, "api_calls")["used"], 5);
    world.stop().await;
}

/// A pack's 500 credits arrive with the purchase (once, however often its
/// event is delivered), are spent after the month's allowance, and what is
/// left goes with a refund — what was spent is recorded.
#[tokio::test]
async fn pack_credits_arrive_once_and_leave_with_the_refund() {
    let db = TestDb::sqlite();
    let world = World::start(&db).await;
    let ada = world.sign_up("credits@example.com").await;
    let key = api_key(&world, &ada).await;
    assert_eq!(
        track(&world.app, &key, "api_calls", 1000).await.0,
        StatusCode::OK
    );
    assert_eq!(
        track(&world.app, &key, "api_calls", 1).await.0,
        StatusCode::PAYMENT_REQUIRED
    );

    let url = world.checkout(&ada, "standard_pack", "one_time").await;
    let (_, success) = world.pay(&url, "4242424242424242").await;
    // The success page writes the purchase (and its credits) at once.
    world.get_page(Some(&ada), &success).await;
    assert_eq!(entitlements(&world.app, &key).await["credits"], 500);
    let completed = world.event("checkout.session.completed").await;
    for _ in 0..3 {
        assert_eq!(world.deliver(&completed).await, StatusCode::OK);
    }
    assert_eq!(entitlements(&world.app, &key).await["credits"], 500);

    let (status, body) = track(&world.app, &key, "api_calls", 30).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["remaining"], 470);
    let page = world.page(&ada, "/dashboard/billing").await;
    assert!(
        page.contains("Credits left: 470"),
        "the billing page shows them"
    );

    let purchase = billing_starter::db::entities::one_time_purchases::Entity::find()
        .one(&world.app.db)
        .await
        .unwrap()
        .unwrap();
    world
        .stripe_post(
            "refunds",
            &[(
                "payment_intent",
                &purchase.stripe_payment_intent_id.unwrap(),
            )],
        )
        .await;
    let refunded = world.event("charge.refunded").await;
    for _ in 0..2 {
        assert_eq!(world.deliver(&refunded).await, StatusCode::OK);
    }
    assert_eq!(world.deliver(&completed).await, StatusCode::OK, "late");
    let grants = credit_grants::Entity::find()
        .all(&world.app.db)
        .await
        .unwrap();
    assert_eq!(grants.len(), 1);
    assert_eq!(
        (
            grants[0].amount,
            grants[0].remaining,
            grants[0].revoked_amount
        ),
        (500, 0, 470),
        "470 taken back, 30 recorded as spent"
    );
    assert_eq!(entitlements(&world.app, &key).await["credits"], 0);
    assert_eq!(
        track(&world.app, &key, "api_calls", 1).await.0,
        StatusCode::PAYMENT_REQUIRED
    );
    world.stop().await;
}

/// Premium's 100,000 calls count in the subscription's period: when Stripe's
/// clock passes the renewal and its events arrive, the count starts again.
#[tokio::test]
async fn the_period_resets_with_the_renewal() {
    let db = TestDb::sqlite();
    let world = World::start(&db).await;
    let ada = world.sign_up("period@example.com").await;
    let key = api_key(&world, &ada).await;
    let url = world.checkout(&ada, "premium", "monthly").await;
    let (_, success) = world.pay(&url, "4242424242424242").await;
    world.get_page(Some(&ada), &success).await;
    assert_eq!(
        track(&world.app, &key, "api_calls", 250).await.0,
        StatusCode::OK
    );
    let before = entitlements(&world.app, &key).await;
    let calls = feature(&before, "api_calls");
    assert_eq!(
        (calls["limit"].clone(), calls["used"].clone()),
        (json!(100000), json!(250))
    );
    let first_reset = calls["resets_at"].as_str().unwrap().to_owned();
    assert_eq!(feature(&before, "priority_support")["included"], true);

    world
        .control("advance", json!({"seconds": 31 * 86_400}))
        .await;
    for event in world.events().await {
        assert_eq!(world.deliver(&event).await, StatusCode::OK);
    }
    let after = entitlements(&world.app, &key).await;
    let calls = feature(&after, "api_calls");
    assert_eq!(calls["used"], 0, "{after}");
    assert_eq!(calls["remaining"], 100000);
    assert!(
        calls["resets_at"].as_str().unwrap() > first_reset.as_str(),
        "{first_reset} → {}",
        calls["resets_at"]
    );
    world.stop().await;
}

/// The workspace's own forms: a free user uses the allowance, is shown the
/// paywall with the pack, and a double-submitted form counts once.
#[tokio::test]
async fn the_workspace_counts_and_shows_the_paywall() {
    // The flood at the end counts in one fixed minute; waiting here, before
    // any request, leaves no idle pooled connection for the server to close.
    crate::common::fresh_window(60, 45).await;
    let db = TestDb::sqlite();
    let world = World::start(&db).await;
    let ada = world.sign_up("workspace@example.com").await;
    let (_, _, body) = world.call(Some(&ada), "load_gate", &[]).await;
    let gate: Value = serde_json::from_str(&body).unwrap();
    let key = gate["Open"]["form_key"].as_str().unwrap().to_owned();
    for _ in 0..2 {
        let (status, location, _) = world
            .submit(
                Some(&ada),
                "use_feature",
                &[("feature", "api_calls"), ("amount", "600"), ("key", &key)],
            )
            .await;
        assert_eq!(status, StatusCode::FOUND);
        assert!(location.unwrap().ends_with("/app"));
    }
    let page = world.page(&ada, "/app").await;
    assert!(
        page.contains("API calls: 600 of 1,000 used"),
        "counted once"
    );
    assert!(!page.contains("data-testid=\"paywall\""));
    let (_, location, _) = world
        .submit(
            Some(&ada),
            "use_feature",
            &[
                ("feature", "api_calls"),
                ("amount", "600"),
                ("key", "another"),
            ],
        )
        .await;
    assert!(location.unwrap().ends_with("/app?limit=api_calls"));
    let page = world.page(&ada, "/app?limit=api_calls").await;
    assert!(page.contains("data-testid=\"paywall\""), "{page}");
    assert!(page.contains("Buy Standard Pack"), "the pack is offered");

    // Signed out, nothing is counted; a flood of actions is limited (120 a minute).
    let (status, _, _) = world
        .call(
            None,
            "add_item",
            &[("feature", "projects"), ("key", "anon")],
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let mut last = StatusCode::OK;
    for i in 0..121 {
        let key = format!("flood-{i}");
        last = world
            .call(
                Some(&ada),
                "use_feature",
                &[("feature", "api_calls"), ("amount", "1"), ("key", &key)],
            )
            .await
            .0;
    }
    assert_eq!(last, StatusCode::TOO_MANY_REQUESTS);
    world.stop().await;
}

/// `snapshot::load_locked`, which every ledger write starts with (on PostgreSQL
/// the lock and the read are one statement): the account's billing rows, `None`
/// for an account that does not exist, and the account's lock held until the
/// transaction ends, so a second writer waits for it.
#[tokio::test]
async fn a_ledger_write_takes_the_accounts_lock_with_its_billing_rows() {
    use billing_starter::{
        billing::snapshot,
        db::entities::{accounts, subscriptions},
    };
    use sea_orm::{ActiveModelTrait, ActiveValue::Set, TransactionTrait};

    crate::common::on_each_backend(|db| async move {
        billing_starter::db::migrate(&db).await.unwrap();
        let now = chrono::Utc::now();
        let account = accounts::ActiveModel {
            kind: Set(accounts::AccountKind::Organization),
            name: Set("Locked Inc".into()),
            slug: Set(Some("locked".into())),
            created_at: Set(now),
            updated_at: Set(now),
            ..Default::default()
        }
        .insert(&db)
        .await
        .unwrap();
        subscriptions::ActiveModel {
            account_id: Set(Some(account.id)),
            stripe_subscription_id: Set("sub_locked".into()),
            stripe_customer_id: Set("cus_locked".into()),
            stripe_price_id: Set("price_locked".into()),
            plan_id: Set(Some("pro".into())),
            interval: Set(Some("month".into())),
            quantity: Set(1),
            status: Set("active".into()),
            cancel_at_period_end: Set(false),
            stripe_state_at: Set(1),
            stripe_state_read: Set(false),
            created_at: Set(now),
            updated_at: Set(now),
            ..Default::default()
        }
        .insert(&db)
        .await
        .unwrap();

        let tx = db.begin().await.unwrap();
        assert!(snapshot::load_locked(&tx, account.id + 1000)
            .await
            .unwrap()
            .is_none());
        let rows = snapshot::load_locked(&tx, account.id)
            .await
            .unwrap()
            .expect("the account's rows");
        assert_eq!(rows.subscriptions.len(), 1);
        assert_eq!(rows.subscriptions[0].plan_id.as_deref(), Some("pro"));
        assert!(rows.purchases.is_empty());

        let (other, id) = (db.clone(), account.id);
        let waiting = tokio::spawn(async move {
            let tx = other.begin().await?;
            let found = billing_starter::db::lock_account(&tx, id).await?;
            tx.commit().await?;
            Ok::<_, sea_orm::DbErr>(found)
        });
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert!(!waiting.is_finished(), "the account's lock is held");
        tx.commit().await.unwrap();
        assert!(waiting.await.unwrap().unwrap());
    })
    .await;
}
