//! Billing state from Stripe's events, on SQLite and PostgreSQL: exactly-once
//! effects, any delivery order, stale updates, failures that Stripe retries, and
//! the checkout success page sharing the webhook's write path.

use crate::common::{billing::World, TestDb};
use billing_starter::db::entities::{
    one_time_purchases::{self, PurchaseStatus},
    subscriptions, users,
    webhook_events::{self, EventStatus},
};
use reqwest::StatusCode;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::{json, Value};

/// The fields of a subscription row that describe Stripe's state (not our
/// bookkeeping: ids, timestamps of our writes, the freshness stamp).
fn state_of(row: &subscriptions::Model) -> Value {
    json!({
        "account": row.account_id, "customer": row.stripe_customer_id, "price": row.stripe_price_id,
        "plan": row.plan_id, "interval": row.interval, "status": row.status,
        "period_end": row.current_period_end.map(|t| t.timestamp()),
        "cancel_at_period_end": row.cancel_at_period_end,
        "cancel_at": row.cancel_at.map(|t| t.timestamp()),
    })
}

/// Every column of the row but our bookkeeping (row id, our clock's
/// timestamps, and the stamps that record how the state was learnt).
fn whole_row(row: &subscriptions::Model) -> String {
    let epoch = chrono::DateTime::<chrono::Utc>::UNIX_EPOCH;
    let mut row = row.clone();
    (row.id, row.created_at, row.updated_at) = (0, epoch, epoch);
    (row.stripe_state_at, row.stripe_state_read) = (0, false);
    format!("{row:?}")
}

async fn subscription_rows(world: &World) -> Vec<subscriptions::Model> {
    subscriptions::Entity::find()
        .all(&world.app.db)
        .await
        .unwrap()
}

fn permutations(n: usize) -> Vec<Vec<usize>> {
    if n == 0 {
        return vec![vec![]];
    }
    let mut all = Vec::new();
    for rest in permutations(n - 1) {
        for at in 0..=rest.len() {
            let mut p = rest.clone();
            p.insert(at, n - 1);
            all.push(p);
        }
    }
    all
}

/// Subscribes a new user to Premium monthly through the app and the hosted page,
/// then schedules a cancellation 100 s later (Stripe's clock), so the sequence
/// has a clear newest state. Returns the user's id and the subscription id.
async fn subscribe_then_cancel(world: &World, email: &str) -> (i64, String) {
    paid_checkout(world, email, "premium", "monthly").await;
    let user = users::Entity::find()
        .filter(users::Column::Email.eq(email))
        .one(&world.app.db)
        .await
        .unwrap()
        .unwrap();
    let customer = crate::common::customer_of(&world.app.db, user.id)
        .await
        .expect("customer linked");
    let subs = world
        .stripe_get(&format!("subscriptions?customer={customer}"))
        .await;
    let sub_id = subs["data"][0]["id"].as_str().unwrap().to_owned();
    world.control("advance", json!({"seconds": 100})).await;
    world
        .stripe_post(
            &format!("subscriptions/{sub_id}"),
            &[("cancel_at_period_end", "true")],
        )
        .await;
    (user.id, sub_id)
}

async fn order_independence(db: TestDb) {
    let world = World::start(&db).await;
    let (_, sub_id) = subscribe_then_cancel(&world, "orders@example.com").await;
    let events = world.events().await;
    let about_sub = |e: &&Value| {
        e["data"]["object"]["id"] == sub_id.as_str()
            || e["data"]["object"]["subscription"] == sub_id.as_str()
    };
    let pick = |kind: &str, cancel: Option<bool>| -> Value {
        events
            .iter()
            .filter(about_sub)
            .find(|e| {
                e["type"] == kind
                    && cancel.is_none_or(|c| e["data"]["object"]["cancel_at_period_end"] == c)
            })
            .unwrap_or_else(|| panic!("{kind} event"))
            .clone()
    };
    // created (incomplete), updated (active), checkout completed, updated (cancel).
    let sequence = [
        pick("customer.subscription.created", None),
        pick("customer.subscription.updated", Some(false)),
        pick("checkout.session.completed", None),
        pick("customer.subscription.updated", Some(true)),
    ];

    // In order, once: the reference state.
    for event in &sequence {
        assert_eq!(world.deliver(event).await, StatusCode::OK);
    }
    let rows = subscription_rows(&world).await;
    assert_eq!(rows.len(), 1);
    let reference = state_of(&rows[0]);
    let reference_row = whole_row(&rows[0]);
    assert_eq!(reference["status"], "active");
    assert_eq!(reference["cancel_at_period_end"], true);
    assert_eq!(reference["plan"], "premium");
    assert!(reference["account"].is_number(), "linked to the account");

    // Duplicates: each event again, twice — no new rows, no change.
    for event in sequence.iter().chain(sequence.iter()) {
        assert_eq!(world.deliver(event).await, StatusCode::OK);
    }
    assert_eq!(state_of(&subscription_rows(&world).await[0]), reference);
    assert_eq!(
        webhook_events::Entity::find()
            .count(&world.app.db)
            .await
            .unwrap(),
        4
    );

    // All 24 orders of the 4 events end in the same row.
    for order in permutations(4) {
        subscriptions::Entity::delete_many()
            .exec(&world.app.db)
            .await
            .unwrap();
        webhook_events::Entity::delete_many()
            .exec(&world.app.db)
            .await
            .unwrap();
        // Stripe is read only to settle events of the same second (the first
        // three): the cancellation, 100 s later, never needs it, and once it is
        // stored the older events are stale and need nothing either.
        let mut cancellation_stored = false;
        for &i in &order {
            let before = world.stripe_requests().await;
            assert_eq!(
                world.deliver(&sequence[i]).await,
                StatusCode::OK,
                "{order:?}"
            );
            let calls = world.stripe_requests().await - before;
            let allowed = if i == 3 || cancellation_stored { 0 } else { 1 };
            assert!(
                calls <= allowed,
                "order {order:?}: event {i} made {calls} Stripe call(s), at most {allowed}"
            );
            cancellation_stored |= i == 3;
        }
        let rows = subscription_rows(&world).await;
        assert_eq!(rows.len(), 1, "{order:?}");
        assert_eq!(state_of(&rows[0]), reference, "order {order:?}");
        assert_eq!(whole_row(&rows[0]), reference_row, "order {order:?}");
    }

    // A stale update (older than the stored state by more than the tie window)
    // is ignored, even though its content differs.
    let mut stale = sequence[1].clone();
    stale["id"] = json!("evt_stale_update");
    stale["created"] = json!(sequence[3]["created"].as_i64().unwrap() - 60);
    stale["data"]["object"]["status"] = json!("past_due");
    let stamp_before = subscription_rows(&world).await[0].stripe_state_at;
    assert_eq!(world.deliver(&stale).await, StatusCode::OK);
    assert_eq!(
        state_of(&subscription_rows(&world).await[0]),
        reference,
        "stale at {} vs stored {stamp_before}; created {:?}",
        stale["created"],
        sequence
            .iter()
            .map(|e| e["created"].clone())
            .collect::<Vec<_>>()
    );

    // A newer one applies.
    let mut newer = sequence[3].clone();
    newer["id"] = json!("evt_newer_update");
    newer["created"] = json!(sequence[3]["created"].as_i64().unwrap() + 60);
    newer["data"]["object"]["status"] = json!("past_due");
    assert_eq!(world.deliver(&newer).await, StatusCode::OK);
    assert_eq!(subscription_rows(&world).await[0].status, "past_due");

    world.stop().await;
    db.cleanup().await;
}

#[tokio::test]
async fn subscription_events_in_any_order_on_sqlite() {
    order_independence(TestDb::sqlite()).await;
}

#[tokio::test]
async fn subscription_events_in_any_order_on_postgres() {
    match TestDb::postgres().await {
        Some(db) => order_independence(db).await,
        None => eprintln!("note: {} not set; skipped", crate::common::POSTGRES_URL_VAR),
    }
}

/// A handler that fails (Stripe unreachable while the event needs it) answers 500
/// and records the error; Stripe's retry then succeeds.
async fn failure_then_retry(db: TestDb) {
    let world = World::start(&db).await;
    let (_, sub_id) = subscribe_then_cancel(&world, "retry@example.com").await;
    let invoice = world
        .events()
        .await
        .into_iter()
        .find(|e| {
            e["type"] == "invoice.paid"
                && e["data"]["object"]["parent"]["subscription_details"]["subscription"]
                    == sub_id.as_str()
        })
        .expect("invoice.paid");

    // The invoice is the first word of this subscription: the app must read it
    // from Stripe, which now fails every call.
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
    let failed = webhook_events::Entity::find()
        .one(&world.app.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((failed.status, failed.attempts), (EventStatus::Failed, 1));
    assert!(failed.last_error.is_some());
    assert_eq!(
        subscription_rows(&world).await.len(),
        0,
        "nothing half-done"
    );

    world
        .control("faults", json!({"rate": 0.0, "kinds": [], "hang_ms": 0}))
        .await;
    assert_eq!(world.deliver(&invoice).await, StatusCode::OK);
    let done = webhook_events::Entity::find()
        .one(&world.app.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((done.status, done.attempts), (EventStatus::Processed, 2));
    assert_eq!(done.last_error, None);
    let rows = subscription_rows(&world).await;
    assert_eq!(rows.len(), 1, "created from Stripe's copy");
    assert!(rows[0].cancel_at_period_end, "with Stripe's current state");
    // And a later re-delivery is a duplicate.
    assert_eq!(world.deliver(&invoice).await, StatusCode::OK);
    world.stop().await;
    db.cleanup().await;
}

#[tokio::test]
async fn failing_handler_then_retry_on_sqlite() {
    failure_then_retry(TestDb::sqlite()).await;
}

#[tokio::test]
async fn failing_handler_then_retry_on_postgres() {
    match TestDb::postgres().await {
        Some(db) => failure_then_retry(db).await,
        None => eprintln!("note: {} not set; skipped", crate::common::POSTGRES_URL_VAR),
    }
}

/// The success page stores the subscription before any webhook arrives, and the
/// webhooks that come later change nothing.
#[tokio::test]
async fn success_page_shows_the_plan_before_the_webhook() {
    success_page_then_webhooks(0).await;
}

/// The same with Stripe's clock 62 days ahead of ours (the emulator's time
/// control; a test clock in Stripe): the `customer.subscription.created`
/// (`incomplete`) that arrives after the success page carries a time far later
/// than anything our clock could stamp, yet must not undo the plan, not even for
/// a moment.
#[tokio::test]
async fn success_page_holds_against_events_from_a_clock_running_ahead() {
    success_page_then_webhooks(62 * 86_400).await;
}

async fn success_page_then_webhooks(stripe_clock_ahead_secs: i64) {
    let db = TestDb::sqlite();
    let world = World::start(&db).await;
    if stripe_clock_ahead_secs > 0 {
        world
            .control("advance", json!({"seconds": stripe_clock_ahead_secs}))
            .await;
    }
    let browser = world.sign_up("first@example.com").await;
    let url = world.checkout(&browser, "premium", "yearly").await;
    let (_, success) = world.pay(&url, "4242424242424242").await;
    assert!(success.contains("checkout_status=success"), "{success}");
    assert!(success.contains("plan=premium&billing_type=subscription"));
    let session_id = success.split("session_id=").nth(1).unwrap().to_owned();

    let (status, _, body) = world
        .call(
            Some(&browser),
            "load_billing",
            &[("checkout_session", &session_id)],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let view: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(view["plan_name"], "Premium", "{view}");
    assert_eq!(view["interval"], "Yearly");
    assert_eq!(view["checkout"]["success"], true);
    assert_eq!(subscription_rows(&world).await.len(), 1);
    let before = state_of(&subscription_rows(&world).await[0]);

    // Now every webhook arrives, in Stripe's order: the same state after each.
    for event in world.events().await {
        assert_eq!(world.deliver(&event).await, StatusCode::OK);
        assert_eq!(
            state_of(&subscription_rows(&world).await[0]),
            before,
            "after {}",
            event["type"]
        );
    }
    // The last update confirmed what the page read: from now on its time is
    // exact, and newer events apply without asking Stripe.
    assert!(!subscription_rows(&world).await[0].stripe_state_read);

    // Another user cannot claim this session.
    let other = world.sign_up("second@example.com").await;
    let (_, _, body) = world
        .call(
            Some(&other),
            "load_billing",
            &[("checkout_session", &session_id)],
        )
        .await;
    let view: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(view["plan_name"], "Free", "{view}");
    assert_eq!(view["checkout"]["success"], false);
    assert_eq!(
        subscriptions::Entity::find()
            .filter(
                subscriptions::Column::AccountId.ne(crate::common::personal_account_id(
                    &world.app.db,
                    users::Entity::find()
                        .filter(users::Column::Email.eq("first@example.com"))
                        .one(&world.app.db)
                        .await
                        .unwrap()
                        .unwrap()
                        .id
                )
                .await)
            )
            .count(&world.app.db)
            .await
            .unwrap(),
        0
    );
    world.stop().await;
    db.cleanup().await;
}

/// A page with its per-response nonce (in `nonce` and `crossorigin`) blanked,
/// to compare two responses.
fn without_nonces(html: &str) -> String {
    let nonce = crate::common::script_nonce(html).expect("a nonce");
    assert!(nonce.len() >= 16, "{nonce}");
    html.replace(nonce, "")
}

/// Signed-in pricing pages come from kept templates (`server::page_cache`):
/// the same page a render gives, each visitor's own email, and a change of plan
/// shows at once.
#[tokio::test]
async fn signed_in_pricing_pages_are_kept_by_what_they_show() {
    let db = TestDb::sqlite();
    let world = World::start(&db).await;
    let ann = world.sign_up("ann@example.com").await;
    let bob = world.sign_up("bob@example.com").await;

    // The first is rendered (and kept), the second is the kept page.
    let (hit, rendered) = world.page_from(&ann, "/pricing").await;
    assert!(!hit, "the first visit renders");
    let (hit, kept) = world.page_from(&ann, "/pricing").await;
    assert!(hit, "the second visit is answered from the kept template");
    assert!(rendered.contains("ann@example.com"), "{rendered}");
    assert_ne!(rendered, kept, "fresh nonces");
    assert_eq!(without_nonces(&rendered), without_nonces(&kept));
    assert!(!kept.contains('\0'), "no placeholder left");
    // Bob's plans look the same: Ann's page with Bob's email, never Ann's.
    let (hit, bobs) = world.page_from(&bob, "/pricing").await;
    assert!(
        hit,
        "another visitor with the same view gets the kept template"
    );
    assert!(!bobs.contains("ann@example.com"));
    assert_eq!(
        without_nonces(&bobs),
        without_nonces(&rendered).replace("ann@example.com", "bob@example.com")
    );

    // Ann subscribes: her very next page shows it; Bob's is unchanged.
    let before = without_nonces(&world.page(&ann, "/pricing?interval=monthly").await);
    let url = world.checkout(&ann, "premium", "monthly").await;
    world.pay(&url, "4242424242424242").await;
    for event in world.events().await {
        assert_eq!(world.deliver(&event).await, StatusCode::OK);
    }
    let after = without_nonces(&world.page(&ann, "/pricing?interval=monthly").await);
    assert_ne!(before, after);
    let premium = &after[after.find("data-plan=\"premium\"").unwrap()..];
    let premium = &premium[..premium.find("</article>").unwrap()];
    assert!(premium.contains("Current Plan"), "{premium}");
    assert_eq!(
        without_nonces(&world.page(&bob, "/pricing").await),
        without_nonces(&bobs)
    );

    // A signed-out session cookie gets the signed-out page, not a kept one.
    let stale = crate::common::billing::Browser {
        cookie: "billing_session=AAAAAAAAAAAAAAAAAAAAAA".to_owned(),
        email: String::new(),
    };
    let page = world.page(&stale, "/pricing").await;
    assert!(page.contains("Sign in") && !page.contains("@example.com"));
    world.stop().await;
    db.cleanup().await;
}

/// The billing page and the workspace of a signed-in visitor come from kept
/// templates too, keyed by their whole view (read fresh for every request): the
/// same bytes as a render, a fresh form key in every workspace, and a use, a
/// confirmed email or a subscription shows on the very next page.
#[tokio::test]
async fn billing_pages_and_workspaces_are_kept_by_what_they_show() {
    let db = TestDb::sqlite();
    let world = World::start(&db).await;
    let ann = world.sign_up("ann@example.com").await;
    let bob = world.sign_up("bob@example.com").await;
    let form_key = |page: &str| {
        let at = page.find("name=\"key\" value=\"").expect("a form key") + 18;
        page[at..at + 37].to_owned()
    };

    for path in ["/dashboard/billing", "/app"] {
        let (hit, rendered) = world.page_from(&ann, path).await;
        assert!(!hit, "the first visit to {path} renders");
        let (hit, kept) = world.page_from(&ann, path).await;
        assert!(hit, "the second visit to {path} is the kept template");
        assert!(!kept.contains('\0'), "no placeholder left");
        let (hit, bobs) = world.page_from(&bob, path).await;
        assert!(hit, "Bob's {path} looks the same as Ann's");
        assert!(bobs.contains("bob@example.com") && !bobs.contains("ann@example.com"));
        let same = |page: &str| {
            let page = without_nonces(page);
            match path {
                "/app" => page.replace(&form_key(&page), ""),
                _ => page,
            }
        };
        assert_eq!(same(&rendered), same(&kept), "{path}");
        assert_eq!(
            same(&rendered).replace("ann@example.com", "bob@example.com"),
            same(&bobs)
        );
    }
    // Every workspace answer has its own form key: a double submit of one page
    // counts once, a submit from another page counts again.
    let keys: std::collections::HashSet<String> = [
        world.page(&ann, "/app").await,
        world.page(&ann, "/app").await,
        world.page(&bob, "/app").await,
    ]
    .iter()
    .map(|page| form_key(page))
    .collect();
    assert_eq!(keys.len(), 3, "{keys:?}");

    // Ann uses the product: her next workspace and billing page count it;
    // Bob's pages are unchanged (and still kept).
    let app = world.page(&ann, "/app").await;
    let key = format!("{}-api_calls", form_key(&app));
    let (status, _, _) = world
        .submit(
            Some(&ann),
            "use_feature",
            &[("feature", "api_calls"), ("amount", "7"), ("key", &key)],
        )
        .await;
    assert_eq!(status, StatusCode::FOUND);
    for path in ["/app", "/dashboard/billing"] {
        let (hit, page) = world.page_from(&ann, path).await;
        assert!(!hit, "a new view renders");
        assert!(page.contains("API calls: 7 of"), "{path}: {page}");
        let (hit, page) = world.page_from(&bob, path).await;
        assert!(hit && page.contains("API calls: 0 of"), "{path}: {page}");
    }

    // An unconfirmed email's banner (with its form's empty error line) is
    // kept too, and goes with the confirmation.
    let cy = world.sign_up_unverified("cy@example.com").await;
    world.page(&cy, "/dashboard/billing").await;
    let (hit, page) = world.page_from(&cy, "/dashboard/billing").await;
    assert!(
        hit && page.contains("data-testid=\"verify-email\""),
        "{page}"
    );
    let link = world.mail_link("cy@example.com", "verify_email").await;
    world.get_page(Some(&cy), &link).await;
    let page = world.page(&cy, "/dashboard/billing").await;
    assert!(!page.contains("data-testid=\"verify-email\""), "{page}");

    // Ann subscribes: her very next billing page shows the plan and invoice.
    let url = world.checkout(&ann, "premium", "monthly").await;
    world.pay(&url, "4242424242424242").await;
    for event in world.events().await {
        assert_eq!(world.deliver(&event).await, StatusCode::OK);
    }
    // The plan's name and what follows it.
    let plan = |page: &str| {
        let at = page
            .find("data-testid=\"plan-name\"")
            .expect("the plan's name");
        page[at..at + 80].to_owned()
    };
    let page = world.page(&ann, "/dashboard/billing").await;
    assert!(plan(&page).contains("Premium"), "{page}");
    assert!(page.contains("data-testid=\"invoices\""), "{page}");
    let bobs = world.page(&bob, "/dashboard/billing").await;
    assert!(!plan(&bobs).contains("Premium"), "{bobs}");
    world.stop().await;
    db.cleanup().await;
}

/// `/pricing` is complete HTML for the interval asked for, and the other
/// interval's prices and calls to action wait beside them in inert `<template>`s
/// for the toggle to swap in: the grid's island has no props, so the browser gets
/// no pricing data to decode (issue 23's payload).
#[tokio::test]
async fn the_pricing_page_carries_the_other_interval_in_templates() {
    let db = TestDb::sqlite();
    let world = World::start(&db).await;
    let ann = world.sign_up("ann@example.com").await;
    let monthly = ("$49/month", "Go Premium Monthly");
    let yearly = ("$490/year", "Go Premium Yearly");
    for (browser, path, (shown, shown_cta), (kept, kept_cta)) in [
        (None, "/pricing", monthly, yearly),
        (None, "/pricing?interval=yearly", yearly, monthly),
        (Some(&ann), "/pricing?interval=monthly", monthly, yearly),
        (Some(&ann), "/pricing?interval=yearly", yearly, monthly),
    ] {
        let (status, page) = world.get_page(browser, &world.app.url(path)).await;
        assert_eq!(status, StatusCode::OK);
        assert!(!page.contains("data-props"), "{page}");
        let premium = &page[page.find("data-plan=\"premium\"").unwrap()..];
        let premium = &premium[..premium.find("</article>").unwrap()];
        // What is in view: every template's content cut out.
        let mut visible = String::new();
        let mut templates = String::new();
        let mut rest = premium;
        while let Some((before, after)) = rest.split_once("<template>") {
            let (inside, after) = after.split_once("</template>").unwrap();
            visible.push_str(before);
            templates.push_str(inside);
            rest = after;
        }
        visible.push_str(rest);
        for (text, in_view) in [
            (shown, true),
            (shown_cta, true),
            (kept, false),
            (kept_cta, false),
        ] {
            assert_eq!(
                visible.contains(text),
                in_view,
                "{text} in view on {path}: {premium}"
            );
            assert_eq!(
                templates.contains(text),
                !in_view,
                "{text} kept on {path}: {premium}"
            );
        }
    }
    world.stop().await;
    db.cleanup().await;
}

/// A pack bought once is granted once however often its events arrive, and a
/// refund takes it back — even when the refund is delivered first.
#[tokio::test]
async fn one_time_pack_is_granted_once_and_refunds_reverse_it() {
    let db = TestDb::sqlite();
    let world = World::start(&db).await;
    let browser = world.sign_up("pack@example.com").await;
    let url = world.checkout(&browser, "standard_pack", "one_time").await;
    let (status, _) = world.pay(&url, "4242424242424242").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let completed = world.event("checkout.session.completed").await;
    for _ in 0..3 {
        assert_eq!(world.deliver(&completed).await, StatusCode::OK);
    }
    let purchases = one_time_purchases::Entity::find()
        .all(&world.app.db)
        .await
        .unwrap();
    assert_eq!(purchases.len(), 1);
    assert_eq!(purchases[0].status, PurchaseStatus::Paid);
    assert_eq!(purchases[0].plan_id.as_deref(), Some("standard_pack"));
    assert_eq!(purchases[0].amount_total, 2900);

    let (_, _, body) = world.call(Some(&browser), "load_pricing", &[]).await;
    let pricing: Value = serde_json::from_str(&body).unwrap();
    let pack = pricing["cards"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "standard_pack")
        .unwrap();
    assert_eq!(pack["monthly"]["cta"]["text"], "Purchased");
    assert_eq!(pack["monthly"]["cta"]["disabled"], true);
    // Buying it again is refused.
    let (status, _, body) = world
        .call(
            Some(&browser),
            "start_checkout",
            &[("plan", "standard_pack"), ("interval", "one_time")],
        )
        .await;
    assert!(
        status.is_client_error() || body.contains("already own"),
        "{status} {body}"
    );

    // Refund, then deliver the refund event to a fresh database that has never
    // seen the purchase: the row is created from Stripe and marked refunded.
    let pi = purchases[0].stripe_payment_intent_id.clone().unwrap();
    world
        .stripe_post("refunds", &[("payment_intent", &pi)])
        .await;
    let refunded = world.event("charge.refunded").await;
    one_time_purchases::Entity::delete_many()
        .exec(&world.app.db)
        .await
        .unwrap();
    webhook_events::Entity::delete_many()
        .exec(&world.app.db)
        .await
        .unwrap();
    assert_eq!(world.deliver(&refunded).await, StatusCode::OK);
    assert_eq!(
        world.deliver(&completed).await,
        StatusCode::OK,
        "late, duplicate-free"
    );
    let purchases = one_time_purchases::Entity::find()
        .all(&world.app.db)
        .await
        .unwrap();
    assert_eq!(purchases.len(), 1);
    assert_eq!(
        purchases[0].status,
        PurchaseStatus::Refunded,
        "a late completion does not re-grant"
    );
    world.stop().await;
    db.cleanup().await;
}

/// The checkout server function: identity from the session only, plans from the
/// catalog only, one customer and one session however hard it is clicked, and a
/// plan change (not a second subscription) for a subscriber.
#[tokio::test]
async fn checkout_server_function_rules() {
    let db = TestDb::sqlite();
    let world = World::start(&db).await;

    // Not signed in: 401 with a readable message, nothing created in Stripe.
    let (status, _, body) = world
        .call(
            None,
            "start_checkout",
            &[("plan", "premium"), ("interval", "monthly")],
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(body.contains("Please sign in"), "{body}");

    let browser = world.sign_up("rules@example.com").await;
    // A raw Stripe price id, an unknown plan, an unknown interval: refused.
    let price = world
        .stripe_get("prices?lookup_keys[]=premium_monthly")
        .await["data"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for (plan, interval, message) in [
        (price.as_str(), "monthly", "That plan does not exist."),
        ("enterprise", "monthly", "That plan does not exist."),
        ("premium", "weekly", "Choose monthly or yearly billing."),
    ] {
        let (status, _, body) = world
            .call(
                Some(&browser),
                "start_checkout",
                &[("plan", plan), ("interval", interval)],
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{plan}: {body}");
        assert!(body.contains(message), "{plan}: {body}");
    }
    assert_eq!(
        world.stripe_get("customers?limit=100").await["data"]
            .as_array()
            .unwrap()
            .len(),
        0,
        "refusals make no Stripe call"
    );
    // The free plan makes no Stripe call either.
    let (_, location, _) = world
        .submit(Some(&browser), "start_checkout", &[("plan", "free")])
        .await;
    assert_eq!(location.as_deref(), Some("/dashboard/billing"));

    // 50 concurrent clicks: one customer, one Checkout Session. The session's
    // idempotency key holds for a ten-minute window; the burst starts in a fresh one.
    crate::common::fresh_window(
        billing_starter::billing::service::CHECKOUT_KEY_WINDOW_SECS,
        60,
    )
    .await;
    let clicks = (0..50).map(|_| world.checkout(&browser, "premium", "monthly"));
    let urls = futures_util::future::join_all(clicks).await;
    assert!(
        urls.iter().all(|url| *url == urls[0]),
        "one session for all clicks"
    );
    let customers = world
        .stripe_get("customers/search?query=email:'rules@example.com'")
        .await;
    assert_eq!(
        customers["data"].as_array().unwrap().len(),
        1,
        "{customers}"
    );
    let sessions = world.stripe_get("checkout/sessions?limit=100").await;
    assert_eq!(sessions["data"].as_array().unwrap().len(), 1);

    // Subscribed: picking yearly goes to the portal's confirm flow instead.
    let (status, _) = world.pay(&urls[0], "4242424242424242").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    for event in world.events().await {
        world.deliver(&event).await;
    }
    let (status, location, body) = world
        .submit(
            Some(&browser),
            "start_checkout",
            &[("plan", "premium"), ("interval", "yearly")],
        )
        .await;
    assert_eq!(status, StatusCode::FOUND, "{body}");
    let portal = location.unwrap();
    assert!(portal.contains("/portal/"), "{portal}");
    let page = world
        .http
        .get(&portal)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("Confirm plan change"), "{page}");
    // And the same plan and interval is refused as current.
    let (status, _, body) = world
        .call(
            Some(&browser),
            "start_checkout",
            &[("plan", "premium"), ("interval", "monthly")],
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("already on this plan"), "{body}");
    // One portal configuration, reused.
    world.submit(Some(&browser), "open_portal", &[]).await;
    let configs = world.stripe_get("billing_portal/configurations").await;
    assert_eq!(configs["data"].as_array().unwrap().len(), 1, "{configs}");
    world.stop().await;
    db.cleanup().await;
}

/// The server binary run as an operator runs it, against the test's database
/// and emulator; its exit code and output.
async fn operator_command(world: &World, db: &TestDb, args: &[&str]) -> (i32, String) {
    crate::common::run_binary(
        args,
        &[
            ("DATABASE_URL", db.url()),
            ("STRIPE_SECRET_KEY", "sk_test_operator"),
            ("STRIPE_API_BASE", &world.emulator.base_url),
            (
                "CATALOG_PATH",
                concat!(env!("CARGO_MANIFEST_DIR"), "/plans.toml"),
            ),
        ],
    )
    .await
}

/// `reconcile` finds and fixes drift (events that never arrived) through the same
/// upsert; `webhooks replay` re-applies an event that failed. Both through the
/// binary as well as through `operations`.
#[tokio::test]
async fn reconcile_and_replay() {
    let db = TestDb::sqlite();
    let world = World::start(&db).await;
    let browser = world.sign_up("ops@example.com").await;
    let url = world.checkout(&browser, "premium", "monthly").await;
    let (_, success) = world.pay(&url, "4242424242424242").await;
    let session_id = success.split("session_id=").nth(1).unwrap().to_owned();
    world
        .call(
            Some(&browser),
            "load_billing",
            &[("checkout_session", &session_id)],
        )
        .await;
    let sub_id = subscription_rows(&world).await[0]
        .stripe_subscription_id
        .clone();
    assert!(
        billing_starter::operations::reconcile(&world.app.state.billing)
            .await
            .unwrap()
            .is_empty()
    );

    // Canceled in Stripe; the webhook is lost.
    world
        .stripe_post(
            &format!("subscriptions/{sub_id}"),
            &[("cancel_at_period_end", "true")],
        )
        .await;
    // Through the binary, as an operator runs it.
    let (code, output) = operator_command(&world, &db, &["reconcile"]).await;
    assert_eq!(code, 0, "{output}");
    assert!(
        output.contains(&format!(
            "fixed   {sub_id}: cancel_at_period_end false → true"
        )),
        "{output}"
    );
    assert!(
        output.contains("1 subscription(s) differed from Stripe"),
        "{output}"
    );
    assert!(subscription_rows(&world).await[0].cancel_at_period_end);
    assert!(
        billing_starter::operations::reconcile(&world.app.state.billing)
            .await
            .unwrap()
            .is_empty()
    );

    // An event that failed while Stripe was down is replayed once it is back.
    let mut invoice_event = world.event("invoice.paid").await;
    invoice_event["id"] = json!("evt_replay_me");
    subscriptions::Entity::delete_many()
        .exec(&world.app.db)
        .await
        .unwrap();
    world
        .control(
            "faults",
            json!({"rate": 1.0, "kinds": ["500"], "hang_ms": 0}),
        )
        .await;
    assert_eq!(
        world.deliver(&invoice_event).await,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    world
        .control("faults", json!({"rate": 0.0, "kinds": [], "hang_ms": 0}))
        .await;
    let (code, output) =
        operator_command(&world, &db, &["webhooks", "replay", "evt_replay_me"]).await;
    assert_eq!(code, 0, "{output}");
    assert!(
        output.contains("ok      evt_replay_me invoice.paid"),
        "{output}"
    );
    assert!(output.contains("1 replayed, 0 failed"), "{output}");
    assert_eq!(
        subscription_rows(&world).await.len(),
        1,
        "restored from Stripe"
    );
    let row = webhook_events::Entity::find()
        .filter(webhook_events::Column::StripeEventId.eq("evt_replay_me"))
        .one(&world.app.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((row.status, row.attempts), (EventStatus::Processed, 2));
    assert!(
        billing_starter::operations::replay(&world.app.state.billing, None)
            .await
            .unwrap()
            .is_empty()
    );
    world.stop().await;
    db.cleanup().await;
}

/// A completed purchase sends one GA4 `purchase` event, however often Stripe
/// delivers it; an unreachable GA4 never fails the webhook.
#[tokio::test]
async fn ga4_purchase_is_sent_once_per_payment() {
    use std::sync::{Arc, Mutex};
    let received: Arc<Mutex<Vec<(String, Value)>>> = Arc::default();
    let sink = received.clone();
    let receiver = axum::Router::new().route(
        "/mp/collect",
        axum::routing::post(
            move |uri: axum::http::Uri, axum::Json(body): axum::Json<Value>| {
                let sink = sink.clone();
                async move {
                    sink.lock()
                        .unwrap()
                        .push((uri.query().unwrap_or_default().to_owned(), body));
                    axum::http::StatusCode::NO_CONTENT
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}/mp/collect", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, receiver).await });

    let db = TestDb::sqlite();
    let world = World::start_with(
        &db,
        &[
            ("GA4_MEASUREMENT_ID", "G-TEST123"),
            ("GA4_API_SECRET", "ga4-secret"),
            ("GA4_ENDPOINT", &endpoint),
        ],
    )
    .await;
    let browser = world.sign_up("ga4@example.com").await;
    let url = world.checkout(&browser, "standard_pack", "one_time").await;
    world.pay(&url, "4242424242424242").await;
    let completed = world.event("checkout.session.completed").await;
    for _ in 0..3 {
        assert_eq!(world.deliver(&completed).await, StatusCode::OK);
    }
    // Subscription and other events send nothing.
    for event in world.events().await {
        world.deliver(&event).await;
    }
    // Poll for the one send (it runs after the commit, in the background), then
    // make sure no other arrives.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while received.lock().unwrap().is_empty() && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let sent = received.lock().unwrap().clone();
    assert_eq!(sent.len(), 1, "{sent:?}");
    let (query, body) = &sent[0];
    assert_eq!(query, "measurement_id=G-TEST123&api_secret=ga4-secret");
    let purchase = &body["events"][0];
    assert_eq!(purchase["name"], "purchase");
    assert_eq!(purchase["params"]["value"], 29.0);
    assert_eq!(purchase["params"]["currency"], "USD");
    assert_eq!(
        purchase["params"]["transaction_id"],
        completed["data"]["object"]["id"]
    );
    assert_eq!(purchase["params"]["items"][0]["item_id"], "standard_pack");
    world.stop().await;

    // GA4 down: the webhook still succeeds.
    let db = TestDb::sqlite();
    let world = World::start_with(
        &db,
        &[
            ("GA4_MEASUREMENT_ID", "G-TEST123"),
            ("GA4_API_SECRET", "ga4-secret"),
            ("GA4_ENDPOINT", "http://127.0.0.1:9/mp/collect"),
        ],
    )
    .await;
    let browser = world.sign_up("ga4-down@example.com").await;
    let url = world.checkout(&browser, "standard_pack", "one_time").await;
    world.pay(&url, "4242424242424242").await;
    let completed = world.event("checkout.session.completed").await;
    assert_eq!(world.deliver(&completed).await, StatusCode::OK);
    world.stop().await;
}

/// A new user who has paid for `plan` on the hosted Checkout page with 4242….
async fn paid_checkout(
    world: &World,
    email: &str,
    plan: &str,
    interval: &str,
) -> crate::common::billing::Browser {
    let browser = world.sign_up(email).await;
    let url = world.checkout(&browser, plan, interval).await;
    let (status, _) = world.pay(&url, "4242424242424242").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    browser
}

/// Stripe hangs (every API call): a Stripe call ends at `STRIPE_TIMEOUT_SECS`,
/// and no transaction or write turn is held while it waits, so webhooks that
/// need no Stripe call, and sign-ups, go on meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_stripe_holds_no_writes() {
    let db = TestDb::sqlite();
    let world = World::start_with(&db, &[("STRIPE_TIMEOUT_SECS", "2")]).await;
    let (_, sub_id) = subscribe_then_cancel(&world, "hung@example.com").await;
    let events = world.events().await;
    let of_sub = |kind: &str| {
        events
            .iter()
            .find(|e| {
                e["type"] == kind
                    && (e["data"]["object"]["id"] == sub_id.as_str()
                        || e["data"]["object"]["parent"]["subscription_details"]["subscription"]
                            == sub_id.as_str())
            })
            .cloned()
            .unwrap_or_else(|| panic!("{kind}"))
    };
    // The invoice is the first word of the subscription: it needs Stripe.
    let invoice = of_sub("invoice.paid");
    let update = of_sub("customer.subscription.updated");
    let browser = world.sign_up("buyer@example.com").await;
    world
        .control(
            "faults",
            json!({"rate": 1.0, "kinds": ["hang"], "hang_ms": 60000}),
        )
        .await;

    let started = std::time::Instant::now();
    let hung = async {
        let status = world.deliver(&invoice).await;
        (status, started.elapsed())
    };
    let checkout = async {
        let (status, _, body) = world
            .call(
                Some(&browser),
                "start_checkout",
                &[("plan", "premium"), ("interval", "monthly")],
            )
            .await;
        (status, body, started.elapsed())
    };
    let others = async {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let status = world.deliver(&update).await;
        let during = started.elapsed();
        world.sign_up("meanwhile@example.com").await;
        (status, during, started.elapsed())
    };
    let (
        (hung_status, hung_took),
        (checkout_status, body, checkout_took),
        (other_status, update_done, sign_up_done),
    ) = tokio::join!(hung, checkout, others);
    assert_eq!(other_status, StatusCode::OK);
    assert!(
        update_done < std::time::Duration::from_millis(1800),
        "a webhook waited for Stripe: {update_done:?}"
    );
    assert!(
        sign_up_done < hung_took,
        "a sign-up waited for Stripe: {sign_up_done:?} vs {hung_took:?}"
    );
    assert_eq!(
        hung_status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "Stripe will retry it"
    );
    assert!(
        hung_took < std::time::Duration::from_secs(6),
        "{hung_took:?}"
    );
    assert_eq!(checkout_status, StatusCode::BAD_GATEWAY, "{body}");
    assert!(body.contains("Payments are unavailable"), "{body}");
    assert!(
        checkout_took < std::time::Duration::from_secs(6),
        "{checkout_took:?}"
    );
    // Stripe back: the retry applies it.
    world
        .control("faults", json!({"rate": 0.0, "kinds": [], "hang_ms": 0}))
        .await;
    assert_eq!(world.deliver(&invoice).await, StatusCode::OK);
    world.stop().await;
    db.cleanup().await;
}

/// Monthly then yearly (two tabs, or two clicks ten minutes apart): only the
/// newest subscription session can still be paid. A second subscription that
/// gets through anyway (paid at once elsewhere) is shown on the billing page.
#[tokio::test]
async fn one_payable_subscription_session_per_customer() {
    let db = TestDb::sqlite();
    let world = World::start(&db).await;
    let browser = world.sign_up("tabs@example.com").await;
    let monthly = world.checkout(&browser, "premium", "monthly").await;
    let yearly = world.checkout(&browser, "premium", "yearly").await;
    assert_ne!(monthly, yearly);
    let sessions = world.stripe_get("checkout/sessions?limit=100").await;
    let mut statuses: Vec<(String, String)> = sessions["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["url"].as_str().unwrap_or_default().to_owned(),
                s["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    statuses.sort();
    assert_eq!(statuses.len(), 2);
    assert!(
        statuses.contains(&(yearly.clone(), "open".to_owned())),
        "{statuses:?}"
    );
    // An expired session has no URL any more, as on Stripe.
    assert!(
        statuses.iter().any(|(_, status)| status == "expired"),
        "{statuses:?}"
    );
    let (status, _) = world.pay(&monthly, "4242424242424242").await;
    assert_ne!(
        status,
        StatusCode::SEE_OTHER,
        "the expired session cannot be paid"
    );
    let (status, _) = world.pay(&yearly, "4242424242424242").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let tabs = users::Entity::find()
        .filter(users::Column::Email.eq("tabs@example.com"))
        .one(&world.app.db)
        .await
        .unwrap()
        .unwrap();
    let customer = crate::common::customer_of(&world.app.db, tabs.id)
        .await
        .unwrap();
    let subs = world
        .stripe_get(&format!("subscriptions?customer={customer}"))
        .await;
    assert_eq!(
        subs["data"].as_array().unwrap().len(),
        1,
        "one subscription"
    );

    // A second one made outside this app's checkout (say, a session opened
    // before this protection): the page says so.
    let price = world
        .stripe_get("prices?lookup_keys[]=premium_monthly")
        .await["data"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let user_id = users::Entity::find()
        .filter(users::Column::Email.eq("tabs@example.com"))
        .one(&world.app.db)
        .await
        .unwrap()
        .unwrap()
        .id
        .to_string();
    subscribed_outside_the_app(&world, &customer, &user_id, &price).await;
    for event in world.events().await {
        world.deliver(&event).await;
    }
    let page = world.page(&browser, "/dashboard/billing").await;
    assert!(
        page.contains("duplicate-subscriptions")
            && page.contains("You have 2 active subscriptions"),
        "{page}"
    );
    world.stop().await;
    db.cleanup().await;
}

/// A second subscription made outside this app's checkout (say, a session
/// opened before the app expired the others), paid; its id.
async fn subscribed_outside_the_app(
    world: &World,
    customer: &str,
    user_id: &str,
    price: &str,
) -> String {
    let other = world
        .stripe_post(
            "checkout/sessions",
            &[
                ("mode", "subscription"),
                ("customer", customer),
                ("line_items[0][price]", price),
                ("line_items[0][quantity]", "1"),
                ("success_url", "http://127.0.0.1/ok"),
                ("metadata[application_user_id]", user_id),
                ("subscription_data[metadata][application_user_id]", user_id),
            ],
        )
        .await;
    let (status, _) = world
        .pay(other["url"].as_str().unwrap(), "4242424242424242")
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    world
        .stripe_get(&format!(
            "checkout/sessions/{}",
            other["id"].as_str().unwrap()
        ))
        .await["subscription"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn deleted_customer_stays_deleted(db: TestDb) {
    let world = World::start(&db).await;
    let browser = paid_checkout(&world, "gone@example.com", "premium", "monthly").await;
    let user = users::Entity::find()
        .filter(users::Column::Email.eq("gone@example.com"))
        .one(&world.app.db)
        .await
        .unwrap()
        .unwrap();
    let customer = crate::common::customer_of(&world.app.db, user.id)
        .await
        .expect("linked at checkout");
    let deleted = world
        .http
        .delete(format!(
            "{}v1/customers/{customer}",
            world.emulator.base_url
        ))
        .bearer_auth("sk_test_tests")
        .send()
        .await
        .unwrap();
    assert!(deleted.status().is_success());
    let events = world.events().await;
    let pick = |kind: &str| {
        events
            .iter()
            .find(|e| e["type"] == kind)
            .cloned()
            .unwrap_or_else(|| panic!("{kind}"))
    };
    // The customer's last checkout, and its deletion.
    let sequence = [
        pick("checkout.session.completed"),
        pick("customer.subscription.created"),
        pick("customer.deleted"),
    ];
    let relink = || async {
        use billing_starter::db::entities::accounts;
        use sea_orm::{sea_query::Expr, ConnectionTrait};
        accounts::Entity::update_many()
            .col_expr(
                accounts::Column::StripeCustomerId,
                Expr::value(customer.clone()),
            )
            .filter(accounts::Column::PersonalUserId.eq(user.id))
            .exec(&world.app.db)
            .await
            .unwrap();
        for table in ["webhook_events", "subscriptions", "deleted_customers"] {
            world
                .app
                .db
                .execute_unprepared(&format!("DELETE FROM {table}"))
                .await
                .unwrap();
        }
    };
    for order in permutations(sequence.len()) {
        relink().await;
        // Stripe is read only to settle events of the same second (the first
        // three): the cancellation, 100 s later, never needs it, and once it is
        // stored the older events are stale and need nothing either.
        let mut cancellation_stored = false;
        for &i in &order {
            let before = world.stripe_requests().await;
            assert_eq!(
                world.deliver(&sequence[i]).await,
                StatusCode::OK,
                "{order:?}"
            );
            let calls = world.stripe_requests().await - before;
            let allowed = if i == 3 || cancellation_stored { 0 } else { 1 };
            assert!(
                calls <= allowed,
                "order {order:?}: event {i} made {calls} Stripe call(s), at most {allowed}"
            );
            cancellation_stored |= i == 3;
        }
        assert_eq!(
            crate::common::customer_of(&world.app.db, user.id).await,
            None,
            "order {order:?} linked the deleted customer again"
        );
    }
    // A new checkout gets a new customer.
    let url = world.checkout(&browser, "premium", "monthly").await;
    assert!(url.contains("/checkout/"), "{url}");
    assert!(crate::common::customer_of(&world.app.db, user.id)
        .await
        .is_some_and(|c| c != customer));

    // The deletion never heard of (the event lost): checkout replaces the link
    // instead of failing from now on.
    relink().await;
    let url = world.checkout(&browser, "premium", "yearly").await;
    assert!(url.contains("/checkout/"), "{url}");
    assert!(crate::common::customer_of(&world.app.db, user.id)
        .await
        .is_some_and(|c| c != customer));
    world.stop().await;
    db.cleanup().await;
}

#[tokio::test]
async fn deleted_customers_stay_deleted_on_sqlite() {
    deleted_customer_stays_deleted(TestDb::sqlite()).await;
}

#[tokio::test]
async fn deleted_customers_stay_deleted_on_postgres() {
    match TestDb::postgres().await {
        Some(db) => deleted_customer_stays_deleted(db).await,
        None => eprintln!("note: {} not set; skipped", crate::common::POSTGRES_URL_VAR),
    }
}

/// Invoices come from the mirror the invoice events keep: the billing page
/// shows them with Stripe failing every call, and a malformed `session_id` is
/// refused without asking Stripe.
#[tokio::test]
async fn billing_page_views_make_no_stripe_calls() {
    let db = TestDb::sqlite();
    let world = World::start(&db).await;
    let browser = paid_checkout(&world, "views@example.com", "premium", "monthly").await;
    for event in world.events().await {
        assert_eq!(
            world.deliver(&event).await,
            StatusCode::OK,
            "{}",
            event["type"]
        );
    }
    let rows = billing_starter::db::entities::invoices::Entity::find()
        .all(&world.app.db)
        .await
        .unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].status, "paid");
    assert_eq!(rows[0].amount_total, 4900);
    assert!(rows[0].account_id.is_some() && rows[0].hosted_invoice_url.is_some());

    world
        .control(
            "faults",
            json!({"rate": 1.0, "kinds": ["500"], "hang_ms": 0}),
        )
        .await;
    let page = world.page(&browser, "/dashboard/billing").await;
    assert!(
        page.contains("data-testid=\"invoices\""),
        "listed with Stripe down"
    );
    assert!(page.contains("<td>$49</td>"), "{page}");
    assert!(page.contains(
        rows[0]
            .number
            .as_deref()
            .unwrap_or(&rows[0].stripe_invoice_id)
    ));
    for bad in ["cs_test_../../v1/customers", "sub_123", "x"] {
        let (_, _, body) = world
            .call(Some(&browser), "load_billing", &[("checkout_session", bad)])
            .await;
        assert!(
            body.contains("does not belong to your account"),
            "{bad}: {body}"
        );
    }
    world
        .control("faults", json!({"rate": 0.0, "kinds": [], "hang_ms": 0}))
        .await;

    // Reconcile backfills an invoice the app never heard of.
    billing_starter::db::entities::invoices::Entity::delete_many()
        .exec(&world.app.db)
        .await
        .unwrap();
    billing_starter::operations::reconcile(&world.app.state.billing)
        .await
        .unwrap();
    let rows = billing_starter::db::entities::invoices::Entity::find()
        .all(&world.app.db)
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].status, "paid");
    world.stop().await;
    db.cleanup().await;
}

/// A dispute the merchant won gives the pack back; one lost keeps it reversed.
#[tokio::test]
async fn a_won_dispute_restores_the_pack() {
    let db = TestDb::sqlite();
    let world = World::start(&db).await;
    paid_checkout(&world, "dispute@example.com", "standard_pack", "one_time").await;
    let completed = world.event("checkout.session.completed").await;
    assert_eq!(world.deliver(&completed).await, StatusCode::OK);
    let pi = completed["data"]["object"]["payment_intent"]
        .as_str()
        .unwrap()
        .to_owned();
    let charge = world.stripe_get(&format!("payment_intents/{pi}")).await["latest_charge"]
        .as_str()
        .unwrap()
        .to_owned();
    let dispute = world
        .control(&format!("charges/{charge}/dispute"), json!({}))
        .await;
    assert_eq!(
        world
            .deliver(&world.event("charge.dispute.created").await)
            .await,
        StatusCode::OK
    );
    let status_now = || async {
        one_time_purchases::Entity::find()
            .one(&world.app.db)
            .await
            .unwrap()
            .unwrap()
            .status
    };
    assert_eq!(status_now().await, PurchaseStatus::Reversed);
    // The pack's credits follow it: taken back while disputed, back when won.
    let credits_now = || async {
        billing_starter::db::entities::credit_grants::Entity::find()
            .all(&world.app.db)
            .await
            .unwrap()
            .iter()
            .map(|g| (g.remaining, g.revoked_amount))
            .collect::<Vec<_>>()
    };
    assert_eq!(credits_now().await, [(0, 500)]);
    world
        .control(
            &format!("disputes/{}/close", dispute["id"].as_str().unwrap()),
            json!({"status": "won"}),
        )
        .await;
    assert_eq!(
        world
            .deliver(&world.event("charge.dispute.closed").await)
            .await,
        StatusCode::OK
    );
    assert_eq!(status_now().await, PurchaseStatus::Paid);
    assert_eq!(credits_now().await, [(500, 0)]);

    // The same events to a database that hears the dispute's close (won)
    // before its creation: the pack stays with its buyer.
    let fresh_db = TestDb::sqlite();
    let fresh = crate::common::TestApp::spawn_with_stripe(
        fresh_db.url(),
        &world.emulator.base_url,
        &[("STRIPE_WEBHOOK_SECRET", crate::common::billing::SECRET)],
    )
    .await;
    for kind in [
        "checkout.session.completed",
        "charge.dispute.closed",
        "charge.dispute.created",
    ] {
        let event = world.event(kind).await;
        assert_eq!(
            world.deliver_to(&fresh, &event).await,
            StatusCode::OK,
            "{kind}"
        );
    }
    let row = one_time_purchases::Entity::find()
        .one(&fresh.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.status, PurchaseStatus::Paid);
    fresh.stop().await.unwrap();
    world.stop().await;
    db.cleanup().await;
}

/// `catalog apply` run elsewhere replaced a price while this server kept the
/// old id: the next checkout re-reads the directory and uses the new price.
#[tokio::test]
async fn a_price_replaced_while_running_is_picked_up_at_checkout() {
    let db = TestDb::sqlite();
    let world = World::start(&db).await;
    let old = world
        .stripe_get("prices?lookup_keys[]=premium_monthly")
        .await["data"][0]
        .clone();
    let new = world
        .stripe_post(
            "prices",
            &[
                ("product", old["product"].as_str().unwrap()),
                ("unit_amount", "5900"),
                ("currency", "usd"),
                ("recurring[interval]", "month"),
                ("lookup_key", "premium_monthly"),
                ("transfer_lookup_key", "true"),
            ],
        )
        .await;
    world
        .stripe_post(
            &format!("prices/{}", old["id"].as_str().unwrap()),
            &[("active", "false")],
        )
        .await;
    let browser = world.sign_up("stale-price@example.com").await;
    let url = world.checkout(&browser, "premium", "monthly").await;
    let session_id = url.rsplit('/').next().unwrap().to_owned();
    let items = world
        .stripe_get(&format!("checkout/sessions/{session_id}/line_items"))
        .await;
    assert_eq!(items["data"][0]["price"]["id"], new["id"], "{items}");
    world.stop().await;
}

/// With `DUPLICATE_SUBSCRIPTIONS=cancel_newer`, a second live subscription
/// (a session opened outside the app's checkout, paid) is cancelled at once and
/// its payment refunded; the first one stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_newer_of_two_live_subscriptions_is_cancelled_and_refunded() {
    let db = TestDb::sqlite();
    let world = World::start_with(&db, &[("DUPLICATE_SUBSCRIPTIONS", "cancel_newer")]).await;
    let browser = paid_checkout(&world, "twice@example.com", "premium", "monthly").await;
    for event in world.events().await {
        world.deliver(&event).await;
    }
    let user = users::Entity::find()
        .filter(users::Column::Email.eq("twice@example.com"))
        .one(&world.app.db)
        .await
        .unwrap()
        .unwrap();
    let customer = crate::common::customer_of(&world.app.db, user.id)
        .await
        .unwrap();
    let first = world
        .stripe_get(&format!("subscriptions?customer={customer}"))
        .await["data"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let price = world
        .stripe_get("prices?lookup_keys[]=premium_yearly")
        .await["data"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let user_id = user.id.to_string();
    world.control("advance", json!({"seconds": 5})).await;
    let second = subscribed_outside_the_app(&world, &customer, &user_id, &price).await;
    for event in world.events().await {
        world.deliver(&event).await;
    }
    // Stripe is told in the background, after the webhook's answer.
    let mut ended = Value::Null;
    for _ in 0..100 {
        ended = world.stripe_get(&format!("subscriptions/{second}")).await;
        if ended["status"] == "canceled" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(ended["status"], "canceled", "{ended}");
    let invoice = ended["latest_invoice"].as_str().unwrap().to_owned();
    let payments = world
        .stripe_get(&format!("invoice_payments?invoice={invoice}"))
        .await;
    let pi = payments["data"][0]["payment"]["payment_intent"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut charge = Value::Null;
    for _ in 0..100 {
        let intent = world.stripe_get(&format!("payment_intents/{pi}")).await;
        charge = world
            .stripe_get(&format!(
                "charges/{}",
                intent["latest_charge"].as_str().unwrap()
            ))
            .await;
        if charge["refunded"] == true {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(charge["refunded"], true, "{charge}");
    assert_eq!(
        world.stripe_get(&format!("subscriptions/{first}")).await["status"],
        "active",
        "the first one stays"
    );
    // Its cancellation arrives as events; the page then shows one plan.
    for event in world.events().await {
        world.deliver(&event).await;
    }
    let page = world.page(&browser, "/dashboard/billing").await;
    assert!(!page.contains("duplicate-subscriptions"), "{page}");
    assert!(page.contains("Premium"), "{page}");
    world.stop().await;
}

/// A second click while the first one's Stripe calls are still in flight: the
/// emulator answers Stripe's 409 for the idempotency key in use, the app
/// retries until the first call has answered, and both clicks get the one
/// session (no error, no second customer or session).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_click_during_the_first_ones_stripe_call_waits_for_its_answer() {
    let db = TestDb::sqlite();
    let world = World::start(&db).await;
    let browser = world.sign_up("inflight@example.com").await;
    crate::common::fresh_window(600, 60).await;
    // Every Stripe answer takes 400 ms: the first click's calls are in flight
    // when the second click's arrive.
    world
        .control(
            "faults",
            json!({"rate": 1.0, "kinds": ["hang"], "hang_ms": 400}),
        )
        .await;
    let click = || {
        world.submit(
            Some(&browser),
            "start_checkout",
            &[("plan", "premium"), ("interval", "monthly")],
        )
    };
    let (first, second) = tokio::join!(click(), async {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        click().await
    });
    world
        .control("faults", json!({"rate": 0.0, "kinds": [], "hang_ms": 0}))
        .await;
    assert_eq!(first.0, StatusCode::FOUND, "{first:?}");
    assert_eq!(second.0, StatusCode::FOUND, "{second:?}");
    assert_eq!(first.1, second.1, "one Checkout Session for both clicks");
    assert!(
        first.1.as_deref().unwrap().contains("/checkout/"),
        "{first:?}"
    );
    let counted = world.emulator_requests().await;
    assert!(
        counted["key_conflicts"].as_u64().unwrap() > 0,
        "the second click met a key in flight: {counted}"
    );
    let customers = world
        .stripe_get("customers/search?query=email:'inflight@example.com'")
        .await;
    assert_eq!(customers["data"].as_array().unwrap().len(), 1);
    world.stop().await;
}

/// The billing page lists the account's invoices and those of its Stripe
/// customer that no event has tied to an account yet, newest first; never a
/// draft, another account's, or (for an account without a customer) a row
/// without one. On both databases: the statement is written out per backend.
#[tokio::test]
async fn the_billing_page_lists_its_own_invoices_newest_first() {
    use billing_starter::{
        billing::context::Billing,
        config::Config,
        db::entities::{accounts, invoices, memberships::Role},
        teams::Member,
    };
    use sea_orm::{ActiveModelTrait, ActiveValue::Set, IntoActiveModel};

    crate::common::on_each_backend(|db| async move {
        billing_starter::db::migrate(&db).await.unwrap();
        let config = Config::from_vars(Vec::<(String, String)>::new()).unwrap();
        let billing = Billing::new(db.clone(), std::sync::Arc::new(config)).unwrap();
        let member = |email: &'static str| {
            let db = db.clone();
            async move {
                let user = crate::common::sign_up(&db, email).await;
                let account = billing_starter::teams::members::personal(&db, user.id)
                    .await
                    .unwrap()
                    .unwrap();
                (user, account)
            }
        };
        let (ann, ann_account) = member("ann-invoices@example.com").await;
        let mut linked = ann_account.into_active_model();
        linked.stripe_customer_id = Set(Some("cus_ann".into()));
        let ann_account: accounts::Model = linked.update(&db).await.unwrap();
        let (bob, bob_account) = member("bob-invoices@example.com").await;

        let now = chrono::Utc::now();
        let rows = [
            // (id, number, account, customer, status, created, amount)
            (
                "in_own",
                Some("ANN-1"),
                Some(ann_account.id),
                Some("cus_ann"),
                "paid",
                100,
                4900,
            ),
            (
                "in_draft",
                Some("ANN-D"),
                Some(ann_account.id),
                Some("cus_ann"),
                "draft",
                300,
                4900,
            ),
            (
                "in_customer",
                Some("ANN-2"),
                None,
                Some("cus_ann"),
                "open",
                200,
                1500,
            ),
            (
                "in_unnumbered",
                None,
                Some(ann_account.id),
                None,
                "void",
                50,
                0,
            ),
            (
                "in_bob",
                Some("BOB-1"),
                Some(bob_account.id),
                Some("cus_bob"),
                "paid",
                250,
                900,
            ),
            ("in_orphan", Some("ORPHAN"), None, None, "paid", 400, 100),
        ];
        for (id, number, account, customer, status, created, amount) in rows {
            invoices::ActiveModel {
                account_id: Set(account),
                stripe_invoice_id: Set(id.into()),
                stripe_customer_id: Set(customer.map(Into::into)),
                stripe_subscription_id: Set(None),
                number: Set(number.map(Into::into)),
                amount_total: Set(amount),
                currency: Set("usd".into()),
                status: Set(status.into()),
                period_start: Set(None),
                period_end: Set(None),
                hosted_invoice_url: Set(Some(format!("https://invoice.stripe.com/{id}"))),
                invoice_pdf: Set(None),
                stripe_created: Set(1_767_225_600 + created * 86_400),
                stripe_state_at: Set(created),
                created_at: Set(now),
                updated_at: Set(now),
                ..Default::default()
            }
            .insert(&db)
            .await
            .unwrap();
        }

        let view = |user, account| {
            let billing = billing.clone();
            async move {
                let member = Member {
                    user,
                    account,
                    role: Role::Owner,
                };
                billing_starter::views::build::billing_page(&billing, &member, None)
                    .await
                    .unwrap()
                    .invoices
            }
        };
        let listed = view(ann, ann_account).await;
        let shown: Vec<_> = listed
            .iter()
            .map(|i| (i.number.as_str(), i.status.as_str(), i.amount.as_str()))
            .collect();
        assert_eq!(
            shown,
            [
                ("ANN-2", "Open", "$15"),
                ("ANN-1", "Paid", "$49"),
                ("in_unnumbered", "Void", "$0")
            ]
        );
        assert_eq!(listed[1].date, "April 11, 2026");
        assert_eq!(
            listed[0].hosted_url.as_deref(),
            Some("https://invoice.stripe.com/in_customer")
        );
        assert_eq!(listed[0].pdf_url, None);
        let listed = view(bob, bob_account).await;
        assert_eq!(
            listed.iter().map(|i| i.number.as_str()).collect::<Vec<_>>(),
            ["BOB-1"]
        );
    })
    .await;
}
