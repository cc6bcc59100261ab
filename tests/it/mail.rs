//! Accounts and email over a real SMTP listener (`common::smtp`), on SQLite
//! and PostgreSQL: verification, reset, change of email, deletion, billing
//! notifications, and the outbox under several instances and a failing server.

use std::time::Duration;

use billing_starter::db::entities::{account_tokens, outbox, users};
use reqwest::StatusCode;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::{json, Value};

use crate::common::{
    billing::{returned_error, Browser, World},
    smtp::SmtpSink,
    TestApp, TestDb, POSTGRES_URL_VAR,
};

const PASSWORD: &str = "correct horse battery";

fn mail_env(sink: &SmtpSink) -> Vec<(&'static str, String)> {
    vec![
        ("SMTP_URL", sink.url.clone()),
        (
            "MAIL_FROM",
            "Billing Starter <billing@example.com>".to_owned(),
        ),
        ("MAIL_POLL_MS", "50".to_owned()),
        ("MAIL_RETRY_BASE_MS", "20".to_owned()),
    ]
}

async fn world_with_smtp(db: &TestDb, sink: &SmtpSink) -> World {
    let env = mail_env(sink);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    World::start_with(db, &env).await
}

async fn user(world: &World, email: &str) -> Option<users::Model> {
    users::Entity::find()
        .filter(users::Column::Email.eq(email))
        .one(&world.app.db)
        .await
        .unwrap()
}

/// Whether `browser`'s session is still signed in.
async fn signed_in(world: &World, browser: &Browser) -> bool {
    let (status, _, body) = world.call(Some(browser), "load_account", &[]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body != "null"
}

async fn sign_in(world: &World, email: &str, password: &str) -> Option<Browser> {
    let response = world
        .http
        .post(world.app.url("/api/sign_in"))
        .form(&[("email", email), ("password", password)])
        .send()
        .await
        .unwrap();
    let cookie = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("billing_session="))?
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let status = response.status();
    (status.is_success() || status.is_redirection()).then(|| Browser {
        cookie,
        email: email.to_owned(),
    })
}

/// A copy of a real event of the emulator's, as another type and id: Stripe
/// sends `invoice.payment_failed` and `trial_will_end` with these objects.
fn as_event(event: &Value, kind: &str, id: &str) -> Value {
    let mut event = event.clone();
    event["type"] = json!(kind);
    event["id"] = json!(id);
    event
}

async fn account_emails(db: TestDb) {
    let sink = SmtpSink::start().await;
    let world = world_with_smtp(&db, &sink).await;
    let base = world.app.base_url.clone();
    let email = "ada@example.com";

    // Sign-up mails a link; until it is followed, Checkout is refused.
    let browser = world.sign_up_unverified(email).await;
    let (status, location, _) = world
        .submit(
            Some(&browser),
            "start_checkout",
            &[("plan", "premium"), ("interval", "monthly")],
        )
        .await;
    assert_eq!(status, StatusCode::FOUND);
    let refusal = returned_error(&location.unwrap()).unwrap();
    assert!(refusal.contains("Confirm your email"), "{refusal}");
    let billing = world.page(&browser, "/dashboard/billing").await;
    assert!(billing.contains("data-testid=\"verify-email\""));

    let verify = sink.wait_for(email, 1).await.remove(0);
    assert_eq!(verify.from, "billing@example.com");
    assert!(
        verify.subject().contains("Confirm your email"),
        "{}",
        verify.subject()
    );
    assert!(
        verify.data.contains("Content-Type: text/html"),
        "an HTML part too"
    );
    for header in [
        "Date: ",
        "Message-ID: ",
        "From: \"Billing Starter\" <billing@example.com>",
        "To: ada@example.com",
    ] {
        assert!(verify.data.contains(header), "{header} in {}", verify.data);
    }
    let link = verify.link(&base).expect("a link into the app");
    assert!(link.contains("/verify-email?token="), "{link}");
    let (status, page) = world.get_page(None, &link).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("ada@example.com is confirmed"), "{page}");
    assert!(user(&world, email)
        .await
        .unwrap()
        .email_verified_at
        .is_some());
    // Single use.
    let (status, page) = world.get_page(None, &link).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("expired or was already used"), "{page}");

    // Two clicks at once: one confirms, the other is refused.
    world.sign_up_unverified("carol@example.com").await;
    let carol_link = sink.wait_for("carol@example.com", 1).await[0]
        .link(&base)
        .unwrap();
    let (a, b) = tokio::join!(
        world.get_page(None, &carol_link),
        world.get_page(None, &carol_link)
    );
    let mut statuses = [a.0, b.0];
    statuses.sort();
    assert_eq!(statuses, [StatusCode::OK, StatusCode::BAD_REQUEST]);

    // An expired link is refused.
    let bob = world.sign_up_unverified("bob@example.com").await;
    let bob_link = sink.wait_for("bob@example.com", 1).await[0]
        .link(&base)
        .unwrap();
    account_tokens::Entity::update_many()
        .col_expr(
            account_tokens::Column::ExpiresAt,
            sea_orm::sea_query::Expr::value(chrono::Utc::now() - chrono::Duration::seconds(1)),
        )
        .exec(&world.app.db)
        .await
        .unwrap();
    let (status, _) = world.get_page(Some(&bob), &bob_link).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(user(&world, "bob@example.com")
        .await
        .unwrap()
        .email_verified_at
        .is_none());

    // Forgot password: the same answer for an address with no account, and no mail.
    let world_ref = &world;
    let ask = |email: &'static str| async move {
        world_ref
            .submit(None, "forgot_password", &[("email", email)])
            .await
    };
    let (known_status, known, _) = ask(email).await;
    let (unknown_status, unknown, _) = ask("nobody@example.com").await;
    assert_eq!((known_status, &known), (unknown_status, &unknown));
    assert_eq!(known.as_deref(), Some("/forgot-password?notice=reset_sent"));
    let reset = sink.wait_for(email, 2).await.remove(1);
    assert!(
        reset.subject().contains("Reset your"),
        "{}",
        reset.subject()
    );
    assert!(sink.to("nobody@example.com").is_empty());
    let reset_link = reset.link(&base).unwrap();
    let token = reset_link.split("token=").nth(1).unwrap().to_owned();

    // A reset signs out every session (here: two browsers) and takes the new password.
    let other = sign_in(&world, email, PASSWORD).await.expect("signed in");
    assert!(signed_in(&world, &browser).await && signed_in(&world, &other).await);
    let new_password = "a brand new passphrase";
    let (status, location, body) = world
        .submit(
            None,
            "reset_password",
            &[("token", &token), ("password", new_password)],
        )
        .await;
    assert_eq!(status, StatusCode::FOUND, "{body}");
    assert_eq!(location.as_deref(), Some("/login?notice=password_reset"));
    assert!(!signed_in(&world, &browser).await, "first session ended");
    assert!(!signed_in(&world, &other).await, "second session ended");
    assert!(
        sign_in(&world, email, PASSWORD).await.is_none(),
        "old password refused"
    );
    let browser = sign_in(&world, email, new_password)
        .await
        .expect("new password works");
    let (_, location, _) = world
        .submit(
            None,
            "reset_password",
            &[("token", &token), ("password", "yet another passphrase")],
        )
        .await;
    let refusal = returned_error(&location.unwrap()).unwrap();
    assert!(refusal.contains("expired or was already used"), "{refusal}");

    // Subscribe, then change the email: confirmed from the new address, and
    // the Stripe customer follows.
    let url = world.checkout(&browser, "premium", "monthly").await;
    let (status, _) = world.pay(&url, "4242424242424242").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    world
        .page(&browser, "/dashboard/billing?checkout_status=success")
        .await;
    let customer = crate::common::customer_of(&world.app.db, user(&world, email).await.unwrap().id)
        .await
        .unwrap();
    let new_email = "ada.new@example.com";
    let (status, location, body) = world
        .submit(
            Some(&browser),
            "change_email",
            &[("email", new_email), ("password", new_password)],
        )
        .await;
    assert_eq!(status, StatusCode::FOUND, "{body}");
    assert_eq!(
        location.as_deref(),
        Some("/account?notice=email_change_sent")
    );
    assert!(
        user(&world, email).await.is_some(),
        "unchanged until confirmed"
    );
    let confirm = sink.wait_for(new_email, 1).await.remove(0);
    let (status, page) = world.get_page(None, &confirm.link(&base).unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("is now ada.new@example.com"), "{page}");
    assert!(user(&world, new_email).await.is_some());
    assert_eq!(
        world.stripe_get(&format!("customers/{customer}")).await["email"],
        new_email
    );

    // A failed payment mails its customer once, however often it is delivered.
    let events = world.events().await;
    let paid = events
        .iter()
        .find(|e| {
            e["type"] == "invoice.paid" && e["data"]["object"]["customer"] == customer.as_str()
        })
        .expect("an invoice.paid event");
    let failed = as_event(paid, "invoice.payment_failed", "evt_payment_failed_1");
    for _ in 0..3 {
        assert_eq!(world.deliver(&failed).await, StatusCode::OK);
    }
    // The inbox takes an event once; the outbox's key holds even if the
    // event's mail were asked for again (a replay, a second write path).
    let parsed = billing_starter::gateway::objects::parse_event(&failed.to_string())
        .unwrap()
        .unwrap();
    let again = billing_starter::webhooks::notify::after_event(
        &world.app.db,
        &world.app.state.billing.mail,
        "/dashboard/billing",
        &parsed,
    )
    .await
    .unwrap();
    assert!(!again, "queued once per event");
    let created = events
        .iter()
        .find(|e| e["type"] == "customer.subscription.created")
        .unwrap();
    let mut trial = as_event(
        created,
        "customer.subscription.trial_will_end",
        "evt_trial_1",
    );
    trial["data"]["object"]["trial_end"] = json!(1_796_342_400);
    for _ in 0..2 {
        assert_eq!(world.deliver(&trial).await, StatusCode::OK);
    }
    let mails = sink.wait_for(new_email, 3).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let subjects: Vec<String> = sink.to(new_email).iter().map(|m| m.subject()).collect();
    assert_eq!(
        subjects
            .iter()
            .filter(|s| s.contains("payment failed"))
            .count(),
        1,
        "{subjects:?}"
    );
    assert_eq!(
        subjects
            .iter()
            .filter(|s| s.contains("trial ends on December 4, 2026"))
            .count(),
        1,
        "{subjects:?}"
    );
    assert!(mails
        .iter()
        .any(|m| m.text().contains(&format!("{base}/dashboard/billing"))));

    // Deletion: the wrong password changes nothing; the right one cancels the
    // subscription, deletes the customer and the account, and says so.
    let (_, location, _) = world
        .submit(
            Some(&browser),
            "delete_account",
            &[("password", "not my password")],
        )
        .await;
    let refusal = returned_error(&location.unwrap()).unwrap();
    assert!(refusal.contains("not right"), "{refusal}");
    assert!(user(&world, new_email).await.is_some());
    let (status, location, body) = world
        .submit(
            Some(&browser),
            "delete_account",
            &[("password", new_password)],
        )
        .await;
    assert_eq!(status, StatusCode::FOUND, "{body}");
    let location = location.unwrap();
    assert_eq!(location, "/account/deleted?subscriptions=1&customer=1");
    let (_, page) = world.get_page(None, &world.app.url(&location)).await;
    assert!(
        page.contains("We cancelled your subscription in Stripe."),
        "{page}"
    );
    assert!(user(&world, new_email).await.is_none());
    assert!(!signed_in(&world, &browser).await);
    let gone = world.stripe_get(&format!("customers/{customer}")).await;
    assert!(
        gone["deleted"] == true || gone["error"].is_object(),
        "{gone}"
    );
    let subs = world
        .stripe_get(&format!("subscriptions?customer={customer}&status=all"))
        .await;
    for sub in subs["data"].as_array().unwrap() {
        assert_eq!(sub["status"], "canceled", "{sub}");
    }
    // The cancellation's and deletion's events arrive after: taken, and
    // nobody is linked to the customer again.
    for event in world.events().await {
        let status = world.deliver(&event).await;
        assert!(status.is_success(), "{} → {status}", event["type"]);
    }
    let linked = billing_starter::db::entities::accounts::Entity::find()
        .filter(
            billing_starter::db::entities::accounts::Column::StripeCustomerId.eq(customer.as_str()),
        )
        .count(&world.app.db)
        .await
        .unwrap();
    assert_eq!(linked, 0);
    let goodbye = sink.wait_for(new_email, 4).await;
    assert!(goodbye
        .iter()
        .any(|m| m.subject().contains("account is deleted")));

    world.stop().await;
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn account_emails_over_smtp_on_sqlite() {
    account_emails(TestDb::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn account_emails_over_smtp_on_postgres() {
    match TestDb::postgres().await {
        Some(db) => account_emails(db).await,
        None => eprintln!("note: {POSTGRES_URL_VAR} not set; skipped"),
    }
}

/// Two app instances on one database, each with its mail worker, and four
/// more workers racing them: every message is sent exactly once, and writing
/// a message twice queues it once.
async fn two_instances(db: TestDb) {
    use billing_starter::mail::{worker, Template};
    use sea_orm::TransactionTrait;
    let sink = SmtpSink::start().await;
    let env = mail_env(&sink);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let one = TestApp::spawn(db.url(), &env).await;
    let two = TestApp::spawn(db.url(), &env).await;
    const MESSAGES: usize = 60;
    // All due at once, so that every worker finds the same rows.
    let tx = one.db.begin().await.unwrap();
    for i in 0..MESSAGES {
        for mailer in [&one.state.billing.mail, &two.state.billing.mail] {
            mailer
                .enqueue(
                    &tx,
                    format!("test:{i}"),
                    None,
                    &format!("user{i}@example.com"),
                    Template::VerifyEmail {
                        link: format!("{}/verify-email?token={i}", one.base_url),
                    },
                )
                .await
                .unwrap();
        }
    }
    tx.commit().await.unwrap();
    let racers: Vec<_> = (0..4)
        .map(|_| {
            let (db, mailer) = (one.db.clone(), one.state.billing.mail.clone());
            tokio::spawn(async move {
                let transport = worker::Transport::from_config(&mailer).unwrap();
                for _ in 0..20 {
                    worker::send_due(&db, &mailer, &transport).await.unwrap();
                }
            })
        })
        .collect();
    one.state.billing.mail.wake();
    two.state.billing.mail.wake();
    for racer in racers {
        racer.await.unwrap();
    }
    for i in 0..MESSAGES {
        sink.wait_for(&format!("user{i}@example.com"), 1).await;
    }
    tokio::time::sleep(Duration::from_millis(600)).await;
    let received = sink.received();
    assert_eq!(received.len(), MESSAGES, "each message once");
    let sent = outbox::Entity::find()
        .filter(outbox::Column::Status.eq(outbox::MailStatus::Sent))
        .count(&one.db)
        .await
        .unwrap();
    assert_eq!(sent, MESSAGES as u64);
    one.stop().await.unwrap();
    two.stop().await.unwrap();
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_send_each_message_once_on_sqlite() {
    two_instances(TestDb::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_send_each_message_once_on_postgres() {
    match TestDb::postgres().await {
        Some(db) => two_instances(db).await,
        None => eprintln!("note: {POSTGRES_URL_VAR} not set; skipped"),
    }
}

/// A server that refuses, then accepts: retried with backoff until sent. A
/// server that is never reachable: failed after the last attempt, kept, with why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_smtp_server_loses_nothing() {
    let db = TestDb::sqlite();
    let sink = SmtpSink::start().await;
    sink.refuse(3);
    let env = mail_env(&sink);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let app = TestApp::spawn(db.url(), &env).await;
    let mail = &app.state.billing.mail;
    let template = || billing_starter::mail::Template::ResetPassword {
        link: "http://127.0.0.1/reset-password?token=x".into(),
    };
    mail.enqueue(
        &app.db,
        "retry:1".into(),
        None,
        "retry@example.com",
        template(),
    )
    .await
    .unwrap();
    mail.wake();
    sink.wait_for("retry@example.com", 1).await;
    let row = outbox::Entity::find().one(&app.db).await.unwrap().unwrap();
    for _ in 0..50 {
        let row = outbox::Entity::find_by_id(row.id)
            .one(&app.db)
            .await
            .unwrap()
            .unwrap();
        if row.status == outbox::MailStatus::Sent {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let row = outbox::Entity::find_by_id(row.id)
        .one(&app.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.status, outbox::MailStatus::Sent);
    assert_eq!(row.attempts, 4, "three refusals, then sent");
    assert_eq!(sink.to("retry@example.com").len(), 1);
    app.stop().await.unwrap();

    // Nothing listens on port 9 of the loopback: every attempt fails.
    let app = TestApp::spawn(
        db.url(),
        &[
            ("SMTP_URL", "smtp://127.0.0.1:9"),
            ("MAIL_POLL_MS", "20"),
            ("MAIL_RETRY_BASE_MS", "10"),
        ],
    )
    .await;
    let mail = &app.state.billing.mail;
    mail.enqueue(
        &app.db,
        "retry:2".into(),
        None,
        "lost@example.com",
        template(),
    )
    .await
    .unwrap();
    mail.wake();
    let mut last = None;
    for _ in 0..300 {
        let row = outbox::Entity::find()
            .filter(outbox::Column::DedupeKey.eq("retry:2"))
            .one(&app.db)
            .await
            .unwrap()
            .unwrap();
        if row.status == outbox::MailStatus::Failed {
            last = Some(row);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let row = last.expect("marked failed after the last attempt");
    assert_eq!(row.attempts, billing_starter::mail::outbox::MAX_ATTEMPTS);
    assert!(
        row.last_error.as_deref().is_some_and(|e| !e.is_empty()),
        "{row:?}"
    );
    app.stop().await.unwrap();
}

/// Every settings action needs a signed-in session, comes from this site, and
/// is limited; `/dev/mail` exists only in development without SMTP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn account_actions_are_authorized_same_origin_and_limited() {
    let db = TestDb::sqlite();
    let world = World::start(&db).await;
    for (function, form) in [
        (
            "change_password",
            vec![("current", PASSWORD), ("password", "a new passphrase")],
        ),
        (
            "change_email",
            vec![("email", "x@example.com"), ("password", PASSWORD)],
        ),
        ("delete_account", vec![("password", PASSWORD)]),
        ("resend_verification", vec![]),
        ("sign_out_everywhere", vec![]),
    ] {
        let (status, _, body) = world.call(None, function, &form).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{function}: {body}");
    }
    let browser = world.sign_up_unverified("limits@example.com").await;
    let cross_site = world
        .http
        .post(world.app.url("/api/delete_account"))
        .header("origin", "https://evil.example")
        .header("cookie", &browser.cookie)
        .form(&[("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(cross_site.status(), StatusCode::FORBIDDEN);
    assert!(signed_in(&world, &browser).await);

    // Three mails to one address per ten minutes (the sign-up's is not counted).
    crate::common::fresh_window(600, 30).await;
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(
            world
                .call(Some(&browser), "resend_verification", &[])
                .await
                .0,
        );
    }
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
            .count(),
        1,
        "{statuses:?}"
    );
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(
            world
                .call(None, "forgot_password", &[("email", "someone@example.com")])
                .await
                .0,
        );
    }
    assert_eq!(
        statuses.last(),
        Some(&StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );

    // Kept mail is shown in development only.
    let (status, page) = world.get_page(None, &world.app.url("/dev/mail")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("limits@example.com"), "{page}");
    world.stop().await;
    let sink = SmtpSink::start().await;
    let with_smtp = world_with_smtp(&db, &sink).await;
    let (status, _) = with_smtp
        .get_page(None, &with_smtp.app.url("/dev/mail"))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    with_smtp.stop().await;
}

/// A new password signs out the other sessions and keeps this one; "sign out
/// everywhere" ends them all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_change_and_sign_out_everywhere_end_other_sessions() {
    let db = TestDb::sqlite();
    let world = World::start(&db).await;
    let email = "sessions@example.com";
    let here = world.sign_up(email).await;
    let there = sign_in(&world, email, PASSWORD).await.unwrap();
    let (_, location, _) = world
        .submit(
            Some(&here),
            "change_password",
            &[
                ("current", "wrong passphrase here"),
                ("password", "a new passphrase"),
            ],
        )
        .await;
    assert!(returned_error(&location.unwrap())
        .unwrap()
        .contains("not right"));
    let (status, location, body) = world
        .submit(
            Some(&here),
            "change_password",
            &[("current", PASSWORD), ("password", "a new passphrase")],
        )
        .await;
    assert_eq!(status, StatusCode::FOUND, "{body}");
    assert_eq!(
        location.as_deref(),
        Some("/account?notice=password_changed")
    );
    assert!(signed_in(&world, &here).await, "this session stays");
    assert!(!signed_in(&world, &there).await, "the other ends");
    let there = sign_in(&world, email, "a new passphrase").await.unwrap();
    let (status, location, _) = world.submit(Some(&here), "sign_out_everywhere", &[]).await;
    assert_eq!(
        (status, location.as_deref()),
        (StatusCode::FOUND, Some("/login"))
    );
    assert!(!signed_in(&world, &here).await && !signed_in(&world, &there).await);
    world.stop().await;
}

/// The outbox is written in the transaction of its cause: a sign-up that
/// fails (the address is taken) queues nothing.
#[tokio::test]
async fn a_failed_sign_up_queues_no_mail() {
    crate::common::on_each_backend(|db| async move {
        billing_starter::db::migrate(&db).await.unwrap();
        let mailer = crate::common::mailer();
        let hashing = Default::default();
        let sign_up = |email: &'static str| {
            billing_starter::auth::accounts::sign_up(&db, &hashing, &mailer, email, PASSWORD)
        };
        sign_up("once@example.com").await.unwrap();
        assert!(sign_up("once@example.com").await.is_err());
        let queued = outbox::Entity::find().count(&db).await.unwrap();
        assert_eq!(queued, 1);
        let tokens = db
            .query_one_raw(sea_orm::Statement::from_string(
                db.get_database_backend(),
                "SELECT COUNT(*) AS n FROM account_tokens",
            ))
            .await
            .unwrap()
            .unwrap()
            .try_get::<i64>("", "n")
            .unwrap();
        assert_eq!(tokens, 1);
    })
    .await;
}
