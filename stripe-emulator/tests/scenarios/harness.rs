//! The scenario harness: an emulator on a free port, the async-stripe client
//! pointed at it, a browser-like HTTP client for its hosted pages, and a webhook
//! receiver that verifies and parses every delivery with async-stripe.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{extract::State, http::HeaderMap, routing::post, Router};
use serde_json::Value;
use stripe_emulator::{EmulatorConfig, ForwardTarget, RetryPolicy, Running};

pub const SECRET: &str = "whsec_scenario_tests";

#[derive(Default)]
pub struct Received {
    pub types: Vec<String>,
    pub objects: Vec<Value>,
    pub problems: Vec<String>,
}

pub struct Harness {
    pub emulator: Running,
    pub stripe: stripe::Client,
    pub http: reqwest::Client,
    pub received: Arc<Mutex<Received>>,
}

pub async fn receive(
    State(received): State<Arc<Mutex<Received>>>,
    headers: HeaderMap,
    body: String,
) -> axum::http::StatusCode {
    let signature = headers
        .get("stripe-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let mut received = received.lock().unwrap();
    match stripe_webhook::Webhook::construct_event(&body, signature, SECRET) {
        Ok(event) => {
            if matches!(event.data.object, stripe_webhook::EventObject::Unknown(_))
                && !body.contains("\"type\":\"test_helpers")
                && !body.contains("payment_method.attached")
                && !body.contains("billing_portal.configuration")
                && !body.contains("refund.created")
            {
                received.problems.push(format!(
                    "unparsed known event: {}",
                    &body[..body.len().min(200)]
                ));
            }
            let value: Value = serde_json::from_str(&body).unwrap();
            received
                .types
                .push(value["type"].as_str().unwrap_or_default().to_owned());
            received.objects.push(value);
            axum::http::StatusCode::OK
        }
        Err(err) => {
            received
                .problems
                .push(format!("{err:?}: {}", &body[..body.len().min(300)]));
            axum::http::StatusCode::BAD_REQUEST
        }
    }
}

impl Harness {
    pub async fn start() -> Self {
        let received = Arc::new(Mutex::new(Received::default()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let hook_url = format!("http://{}/hook", listener.local_addr().unwrap());
        let app = Router::new()
            .route("/hook", post(receive))
            .with_state(received.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let emulator = stripe_emulator::start(
            listener,
            EmulatorConfig {
                forward_to: Some(ForwardTarget {
                    url: hook_url,
                    secret: SECRET.into(),
                }),
                retry: RetryPolicy {
                    max_attempts: 3,
                    base_delay: Duration::from_millis(50),
                },
                snapshot: None,
                business_name: Some("Scenario Shop".into()),
            },
        )
        .await
        .unwrap();
        let stripe = stripe::ClientBuilder::new("sk_test_scenarios")
            .url(emulator.base_url.clone())
            .build()
            .unwrap();
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Self {
            emulator,
            stripe,
            http,
            received,
        }
    }

    pub async fn api(
        &self,
        method: reqwest::Method,
        path: &str,
        form: &[(&str, &str)],
    ) -> (u16, Value) {
        let url = format!("{}v1/{path}", self.emulator.base_url);
        let request = self
            .http
            .request(method.clone(), &url)
            .bearer_auth("sk_test_scenarios");
        let request = if method == reqwest::Method::GET {
            request.query(form)
        } else {
            request.form(form)
        };
        let response = request.send().await.unwrap();
        (response.status().as_u16(), response.json().await.unwrap())
    }

    pub async fn post(&self, path: &str, form: &[(&str, &str)]) -> Value {
        let (status, body) = self.api(reqwest::Method::POST, path, form).await;
        assert_eq!(status, 200, "POST {path}: {body}");
        body
    }

    pub async fn get(&self, path: &str) -> Value {
        let (status, body) = self.api(reqwest::Method::GET, path, &[]).await;
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    /// Products and prices like the starter's catalog: Premium monthly/yearly, a one-time pack.
    pub async fn catalog(&self) -> (String, String, String) {
        let premium = self.post("products", &[("name", "Premium")]).await;
        let pack = self.post("products", &[("name", "Standard Pack")]).await;
        let premium = premium["id"].as_str().unwrap();
        let monthly = self
            .post(
                "prices",
                &[
                    ("product", premium),
                    ("currency", "usd"),
                    ("unit_amount", "4900"),
                    ("recurring[interval]", "month"),
                    ("lookup_key", "premium_monthly"),
                ],
            )
            .await;
        let yearly = self
            .post(
                "prices",
                &[
                    ("product", premium),
                    ("currency", "usd"),
                    ("unit_amount", "49000"),
                    ("recurring[interval]", "year"),
                    ("lookup_key", "premium_yearly"),
                ],
            )
            .await;
        let one_time = self
            .post(
                "prices",
                &[
                    ("product", pack["id"].as_str().unwrap()),
                    ("currency", "usd"),
                    ("unit_amount", "2900"),
                    ("lookup_key", "standard_pack"),
                ],
            )
            .await;
        for price in [&monthly, &yearly, &one_time] {
            let _: stripe_shared::Price =
                serde_json::from_value(price.clone()).expect("price parses in async-stripe");
        }
        (
            monthly["id"].as_str().unwrap().into(),
            yearly["id"].as_str().unwrap().into(),
            one_time["id"].as_str().unwrap().into(),
        )
    }

    pub async fn customer(&self, email: &str, clock: Option<&str>) -> String {
        let mut create = stripe_core::customer::CreateCustomer::new().email(email);
        if let Some(clock) = clock {
            create = create.test_clock(clock);
        }
        create
            .send(&self.stripe)
            .await
            .expect("customer via async-stripe")
            .id
            .to_string()
    }

    pub async fn checkout(
        &self,
        customer: &str,
        price: &str,
        mode: stripe_shared::CheckoutSessionMode,
    ) -> stripe_shared::CheckoutSession {
        stripe_checkout::checkout_session::CreateCheckoutSession::new()
            .mode(mode)
            .customer(customer)
            .client_reference_id("user_42")
            .line_items(vec![
                stripe_checkout::checkout_session::CreateCheckoutSessionLineItems {
                    price: Some(price.into()),
                    quantity: Some(1),
                    ..Default::default()
                },
            ])
            .success_url(
                "http://app.test/billing?checkout_status=success&session_id={CHECKOUT_SESSION_ID}",
            )
            .cancel_url("http://app.test/billing?checkout_status=canceled")
            .send(&self.stripe)
            .await
            .expect("checkout session via async-stripe")
    }

    /// Submits the hosted Checkout page with `card`; returns (status, Location, body).
    pub async fn pay(
        &self,
        session: &stripe_shared::CheckoutSession,
        card: &str,
    ) -> (u16, String, String) {
        let url = session.url.clone().expect("open session has a url");
        let page = self.http.get(&url).send().await.unwrap();
        assert_eq!(page.status(), 200);
        let response = self
            .http
            .post(&url)
            .form(&[("card_number", card), ("email", "buyer@example.com")])
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let location = response
            .headers()
            .get("location")
            .map(|l| l.to_str().unwrap().to_owned())
            .unwrap_or_default();
        (status, location, response.text().await.unwrap())
    }

    /// A customer subscribed to `price` through the hosted Checkout page with 4242;
    /// returns the customer and subscription ids.
    pub async fn subscribed(
        &self,
        email: &str,
        clock: Option<&str>,
        price: &str,
    ) -> (String, String) {
        let customer = self.customer(email, clock).await;
        let session = self
            .checkout(
                &customer,
                price,
                stripe_shared::CheckoutSessionMode::Subscription,
            )
            .await;
        let (status, _, _) = self.pay(&session, "4242424242424242").await;
        assert_eq!(status, 303, "4242 completes checkout");
        let subscription = self.get(&format!("checkout/sessions/{}", session.id)).await
            ["subscription"]
            .as_str()
            .expect("subscription set")
            .to_owned();
        (customer, subscription)
    }

    pub async fn subscription(&self, id: &str) -> stripe_shared::Subscription {
        stripe_billing::subscription::RetrieveSubscription::new(id)
            .send(&self.stripe)
            .await
            .expect("subscription via async-stripe")
    }

    /// Waits until the webhook receiver saw `kind` at least `count` times.
    pub async fn wait_for(&self, kind: &str, count: usize) {
        for _ in 0..200 {
            if self
                .received
                .lock()
                .unwrap()
                .types
                .iter()
                .filter(|t| *t == kind)
                .count()
                >= count
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!(
            "never received {count} × {kind}; got {:?}",
            self.received.lock().unwrap().types
        );
    }

    pub fn assert_events_clean(&self) {
        let received = self.received.lock().unwrap();
        assert!(
            received.problems.is_empty(),
            "webhook problems: {:#?}",
            received.problems
        );
    }
}

pub fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "stripe-emulator-test-{}-{}",
        std::process::id(),
        stripe_emulator::context::new_id("d")
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
