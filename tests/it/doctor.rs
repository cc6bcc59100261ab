//! `doctor` against the emulator and the running app: green on a correct set-up,
//! and red on the right line for each broken item.

use crate::common::{TestApp, TestDb};
use billing_starter::{
    catalog::diff,
    config::Config,
    doctor::{self, Check},
    gateway::{api_version, StripeGateway},
};

const SECRET: &str = "whsec_doctor_tests";

struct Setup {
    emulator: stripe_emulator::Running,
    app: TestApp,
    http: reqwest::Client,
}

impl Setup {
    async fn correct(db: &TestDb) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let emulator = stripe_emulator::start(listener, Default::default())
            .await
            .unwrap();
        let app = TestApp::spawn(
            db.url(),
            &[
                ("STRIPE_SECRET_KEY", "sk_test_doctor"),
                ("STRIPE_API_BASE", &emulator.base_url),
                ("STRIPE_WEBHOOK_SECRET", SECRET),
            ],
        )
        .await;
        let setup = Setup {
            emulator,
            app,
            http: reqwest::Client::new(),
        };
        let stripe = setup.gateway(&setup.app.config);
        let catalog = billing_starter::catalog::load::load(&setup.app.config.catalog_path).unwrap();
        stripe
            .apply_catalog(&diff::plan(
                &catalog,
                &stripe.remote_catalog(&catalog).await.unwrap(),
            ))
            .await
            .unwrap();
        // As after `catalog apply` then a start: the app holds the catalog's prices.
        setup.app.state.billing.refresh_prices().await.unwrap();
        let endpoint = endpoint_form(&setup.app.base_url, &api_version());
        setup.stripe_post("webhook_endpoints", &endpoint).await;
        setup
            .stripe_post(
                "billing_portal/configurations",
                &[("features[invoice_history][enabled]".into(), "true".into())],
            )
            .await;
        setup
    }

    fn gateway(&self, config: &Config) -> StripeGateway {
        StripeGateway::from_config(config).unwrap()
    }

    async fn stripe_post(&self, path: &str, form: &[(String, String)]) -> serde_json::Value {
        let response = self
            .http
            .post(format!("{}v1/{path}", self.emulator.base_url))
            .bearer_auth("sk_test_doctor")
            .form(form)
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "{path}");
        response.json().await.unwrap()
    }

    async fn stripe_get(&self, path: &str) -> serde_json::Value {
        self.http
            .get(format!("{}v1/{path}", self.emulator.base_url))
            .bearer_auth("sk_test_doctor")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    async fn doctor(&self, config: &Config) -> Vec<Check> {
        let catalog = billing_starter::catalog::load::load(&config.catalog_path).unwrap();
        doctor::run(config, &self.app.db, &self.gateway(config), &catalog).await
    }
}

/// A webhook endpoint for the app, sent every event type it handles.
fn endpoint_form(app_url: &str, api_version: &str) -> Vec<(String, String)> {
    let mut form = vec![
        ("url".to_owned(), format!("{app_url}/api/stripe/webhooks")),
        ("api_version".to_owned(), api_version.to_owned()),
    ];
    form.extend(
        billing_starter::webhooks::handled_event_types()
            .map(|e| ("enabled_events[]".to_owned(), e.to_owned())),
    );
    form
}

fn failing(checks: &[Check]) -> Vec<(&'static str, String)> {
    checks
        .iter()
        .filter(|c| !c.ok)
        .map(|c| (c.name, c.detail.clone()))
        .collect()
}

#[tokio::test]
async fn doctor_is_green_on_a_correct_set_up_and_names_each_broken_item() {
    let db = TestDb::sqlite();
    let setup = Setup::correct(&db).await;
    let config = setup.app.config.clone();

    let checks = setup.doctor(&config).await;
    assert_eq!(failing(&checks), [], "{checks:#?}");
    assert_eq!(checks.len(), 9);

    // A price replaced in Stripe while the app runs: the app's directory is
    // stale until it re-reads it.
    let old = setup
        .stripe_get("prices?lookup_keys[]=premium_monthly")
        .await["data"][0]
        .clone();
    setup
        .stripe_post(
            "prices",
            &[
                ("product".into(), old["product"].as_str().unwrap().into()),
                ("unit_amount".into(), "4900".into()),
                ("currency".into(), "usd".into()),
                ("recurring[interval]".into(), "month".into()),
                ("lookup_key".into(), "premium_monthly".into()),
                ("transfer_lookup_key".into(), "true".into()),
            ],
        )
        .await;
    let failed = failing(&setup.doctor(&config).await);
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].0, "running prices");
    assert!(
        failed[0].1.contains("before the last catalog change"),
        "{failed:?}"
    );
    setup.app.state.billing.refresh_prices().await.unwrap();
    assert_eq!(failing(&setup.doctor(&config).await), []);

    // Two live subscriptions of one user are named, with both ids.
    use billing_starter::db::entities::{subscriptions, users};
    use sea_orm::{ActiveModelTrait, ActiveValue::Set, EntityTrait};
    let now = chrono::Utc::now();
    let user = users::ActiveModel {
        email: Set("twice@example.com".into()),
        password_hash: Set("x".into()),
        is_operator: Set(false),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
    .insert(&setup.app.db)
    .await
    .unwrap();
    let account = billing_starter::teams::members::create_personal(&setup.app.db, &user)
        .await
        .unwrap();
    for id in ["sub_one", "sub_two"] {
        subscriptions::ActiveModel {
            account_id: Set(Some(account.id)),
            stripe_subscription_id: Set(id.into()),
            stripe_customer_id: Set("cus_twice".into()),
            stripe_price_id: Set("price_1".into()),
            plan_id: Set(Some("premium".into())),
            price_lookup_key: Set(Some("premium_monthly".into())),
            interval: Set(Some("month".into())),
            quantity: Set(1),
            status: Set("active".into()),
            current_period_start: Set(None),
            current_period_end: Set(None),
            cancel_at_period_end: Set(false),
            cancel_at: Set(None),
            canceled_at: Set(None),
            ended_at: Set(None),
            trial_start: Set(None),
            trial_end: Set(None),
            stripe_state_at: Set(1_795_000_000),
            created_at: Set(now),
            updated_at: Set(now),
            ..Default::default()
        }
        .insert(&setup.app.db)
        .await
        .unwrap();
    }
    let failed = failing(&setup.doctor(&config).await);
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].0, "duplicate subscriptions");
    assert!(
        failed[0]
            .1
            .contains(&format!("user {} pays for sub_one and sub_two", user.id)),
        "{failed:?}"
    );
    subscriptions::Entity::delete_many()
        .exec(&setup.app.db)
        .await
        .unwrap();

    // Mail: a listening SMTP server passes; nothing listening fails, by name.
    let sink = crate::common::smtp::SmtpSink::start().await;
    let mut with_smtp = config.clone();
    with_smtp.mail.smtp_url = Some(secrecy::SecretString::from(sink.url.clone()));
    assert_eq!(failing(&setup.doctor(&with_smtp).await), []);
    with_smtp.mail.smtp_url = Some(secrecy::SecretString::from(
        "smtp://user:hunter2@127.0.0.1:9".to_owned(),
    ));
    let failed = failing(&setup.doctor(&with_smtp).await);
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].0, "mail");
    assert!(failed[0].1.contains("unreachable"), "{failed:?}");
    assert!(
        !failed[0].1.contains("hunter2"),
        "no password in the output"
    );

    // A signing secret the app does not have: the round trip is rejected.
    let mut wrong_secret = config.clone();
    wrong_secret.stripe.webhook_secrets = vec![secrecy::SecretString::from("whsec_other")];
    let failed = failing(&setup.doctor(&wrong_secret).await);
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].0, "webhook round trip");
    assert!(failed[0].1.contains("rejected the signature"), "{failed:?}");

    // An endpoint on another API version.
    let endpoints = setup.stripe_get("webhook_endpoints").await;
    let endpoint_id = endpoints["data"][0]["id"].as_str().unwrap().to_owned();
    let old_version = endpoint_form(&setup.app.base_url, "2023-10-16");
    setup
        .http
        .delete(format!(
            "{}v1/webhook_endpoints/{endpoint_id}",
            setup.emulator.base_url
        ))
        .bearer_auth("sk_test_doctor")
        .send()
        .await
        .unwrap();
    setup.stripe_post("webhook_endpoints", &old_version).await;
    let failed = failing(&setup.doctor(&config).await);
    assert_eq!(
        failed.iter().map(|f| f.0).collect::<Vec<_>>(),
        ["webhook endpoint"]
    );
    assert!(
        failed[0].1.contains("api_version is 2023-10-16"),
        "{failed:?}"
    );

    // An endpoint missing handled events.
    let id = setup.stripe_get("webhook_endpoints").await["data"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    setup
        .stripe_post(
            &format!("webhook_endpoints/{id}"),
            &[("enabled_events[]".into(), "invoice.paid".into())],
        )
        .await;
    let failed = failing(&setup.doctor(&config).await);
    assert!(
        failed[0]
            .1
            .starts_with("endpoint is not sent: checkout.session.completed"),
        "{failed:?}"
    );

    // No endpoint at all.
    setup
        .http
        .delete(format!(
            "{}v1/webhook_endpoints/{id}",
            setup.emulator.base_url
        ))
        .bearer_auth("sk_test_doctor")
        .send()
        .await
        .unwrap();
    let failed = failing(&setup.doctor(&config).await);
    assert_eq!(failed[0].0, "webhook endpoint");
    assert!(failed[0].1.starts_with("no endpoint for"), "{failed:?}");

    // An archived catalog price.
    let prices = setup
        .stripe_get("prices?lookup_keys[]=premium_yearly")
        .await;
    let price = prices["data"][0]["id"].as_str().unwrap().to_owned();
    setup
        .stripe_post(
            &format!("prices/{price}"),
            &[("active".into(), "false".into())],
        )
        .await;
    let names: Vec<&str> = failing(&setup.doctor(&config).await)
        .iter()
        .map(|f| f.0)
        .collect();
    assert!(names.contains(&"catalog prices"), "{names:?}");

    // No active portal configuration.
    let configs = setup.stripe_get("billing_portal/configurations").await;
    let portal = configs["data"][0]["id"].as_str().unwrap().to_owned();
    setup
        .stripe_post(
            &format!("billing_portal/configurations/{portal}"),
            &[("active".into(), "false".into())],
        )
        .await;
    let names: Vec<&str> = failing(&setup.doctor(&config).await)
        .iter()
        .map(|f| f.0)
        .collect();
    assert!(names.contains(&"portal configuration"), "{names:?}");

    setup.app.stop().await.unwrap();
    setup.emulator.stop().await;
}

#[test]
fn configuration_checks_follow_app_env() {
    let config = |vars: &[(&str, &str)]| {
        Config::from_vars(vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))).unwrap()
    };
    let production = [
        ("APP_ENV", "production"),
        ("STRIPE_SECRET_KEY", "sk_live_x"),
        ("STRIPE_PUBLISHABLE_KEY", "pk_live_x"),
        ("STRIPE_WEBHOOK_SECRET", "whsec_x"),
        ("SMTP_URL", "smtp://127.0.0.1:2525"),
        ("MAIL_FROM", "billing@example.com"),
    ];
    let mut http = production.to_vec();
    http.push(("APP_URL", "http://billing.example.com"));
    let check = doctor::app_url(&config(&http));
    assert!(
        !check.ok && check.detail.contains("must be https"),
        "{check}"
    );
    let mut https = production.to_vec();
    https.push(("APP_URL", "https://billing.example.com"));
    assert!(doctor::app_url(&config(&https)).ok);
    assert!(doctor::keys(&config(&https)).ok);

    let live_in_dev = doctor::keys(&config(&[("STRIPE_SECRET_KEY", "sk_live_x")]));
    assert!(
        !live_in_dev.ok && live_in_dev.detail.contains("real cards"),
        "{live_in_dev}"
    );
    assert!(
        doctor::keys(&config(&[])).ok,
        "the emulator is fine in development"
    );
}
