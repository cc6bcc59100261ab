//! A signed-in user, the app and the Stripe emulator, talked to over HTTP the way
//! a browser and Stripe would.

use billing_starter::webhooks::signature;
use reqwest::StatusCode;
use serde_json::Value;

use super::{TestApp, TestDb};

pub const SECRET: &str = "whsec_billing_tests";

/// The page plain form posts come from in these tests.
pub const FORM_PAGE: &str = "/pricing";

/// The message a refused plain form post was sent back with, read from the
/// redirect's `__err` as the page does; `None` for any other redirect.
pub fn returned_error(location: &str) -> Option<String> {
    let url = reqwest::Url::parse(location).ok()?;
    let (_, err) = url.query_pairs().find(|(key, _)| key == "__err")?;
    Some(billing_starter::components::form_post::url_failure_message(
        &err,
    ))
}

pub struct World {
    pub emulator: stripe_emulator::Running,
    pub app: TestApp,
    pub http: reqwest::Client,
}

pub struct Browser {
    pub cookie: String,
    pub email: String,
}

impl World {
    /// The app and an emulator holding the catalog. Events are not forwarded: tests
    /// read them from the emulator and deliver them in the order they choose.
    pub async fn start(db: &TestDb) -> Self {
        Self::start_with(db, &[]).await
    }

    pub async fn start_with(db: &TestDb, extra_env: &[(&str, &str)]) -> Self {
        // `RUST_LOG=warn cargo test … -- --nocapture` shows the app's logs.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let emulator = stripe_emulator::start(listener, Default::default())
            .await
            .unwrap();
        let app = TestApp::spawn_with_stripe(
            db.url(),
            &emulator.base_url,
            &[&[("STRIPE_WEBHOOK_SECRET", SECRET)], extra_env].concat(),
        )
        .await;
        Self {
            emulator,
            http: super::same_origin_client(&app.base_url),
            app,
        }
    }

    pub async fn stop(self) {
        self.app.stop().await.unwrap();
        self.emulator.stop().await;
    }

    /// Signs up over HTTP, keeps the session cookie, and follows the
    /// verification link the sign-up mailed (Checkout needs a proven address).
    pub async fn sign_up(&self, email: &str) -> Browser {
        let browser = self.sign_up_unverified(email).await;
        let link = self.mail_link(email, "verify_email").await;
        let page = self.get_page(Some(&browser), &link).await;
        assert!(page.1.contains("is confirmed"), "{}", page.1);
        browser
    }

    /// The link in the newest `kind` mail to `to`, read from the outbox (the
    /// text every transport sends).
    pub async fn mail_link(&self, to: &str, kind: &str) -> String {
        use billing_starter::db::entities::outbox;
        use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
        let mail = outbox::Entity::find()
            .filter(outbox::Column::Recipient.eq(to))
            .filter(outbox::Column::Kind.eq(kind))
            .order_by_desc(outbox::Column::Id)
            .one(&self.app.db)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("a {kind} mail to {to}"));
        mail.text_body
            .lines()
            .find(|line| line.starts_with(&self.app.base_url))
            .unwrap_or_else(|| panic!("a link in {}", mail.text_body))
            .to_owned()
    }

    /// GETs an absolute URL of the app as `browser` (or signed out): status and body.
    pub async fn get_page(&self, browser: Option<&Browser>, url: &str) -> (StatusCode, String) {
        let mut request = self.http.get(url);
        if let Some(browser) = browser {
            request = request.header("cookie", &browser.cookie);
        }
        let response = request.send().await.unwrap();
        (response.status(), response.text().await.unwrap())
    }

    /// Signs up over HTTP and keeps the session cookie; the email stays unproven.
    pub async fn sign_up_unverified(&self, email: &str) -> Browser {
        let response = self
            .http
            .post(self.app.url("/api/sign_up"))
            .form(&[("email", email), ("password", "correct horse battery")])
            .send()
            .await
            .unwrap();
        let status = response.status();
        assert!(
            status.is_success() || status.is_redirection(),
            "sign-up: {status} {:?}",
            response.headers()
        );
        let cookie = response
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.starts_with("billing_session="))
            .expect("session cookie")
            .split(';')
            .next()
            .unwrap()
            .to_owned();
        Browser {
            cookie,
            email: email.to_owned(),
        }
    }

    /// Calls a server function as the hydrated page's client does (JSON answers).
    pub async fn call(
        &self,
        browser: Option<&Browser>,
        function: &str,
        form: &[(&str, &str)],
    ) -> (StatusCode, Option<String>, String) {
        self.request(browser, function, form, false).await
    }

    /// Posts to a server function as a plain HTML form does (no JavaScript).
    pub async fn submit(
        &self,
        browser: Option<&Browser>,
        function: &str,
        form: &[(&str, &str)],
    ) -> (StatusCode, Option<String>, String) {
        self.request(browser, function, form, true).await
    }

    async fn request(
        &self,
        browser: Option<&Browser>,
        function: &str,
        form: &[(&str, &str)],
        html: bool,
    ) -> (StatusCode, Option<String>, String) {
        let mut request = self
            .http
            .post(self.app.url(&format!("/api/{function}")))
            .form(form);
        if html {
            // A browser posting a form names the page it came from; Leptos sends
            // a refusal back there, with the message in the URL.
            request = request
                .header("accept", "text/html")
                .header("referer", self.app.url(FORM_PAGE));
        }
        if let Some(browser) = browser {
            request = request.header("cookie", &browser.cookie);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let location = response
            .headers()
            .get("location")
            .map(|v| v.to_str().unwrap().to_owned());
        (status, location, response.text().await.unwrap())
    }

    /// A page as `browser` gets it.
    pub async fn page(&self, browser: &Browser, path: &str) -> String {
        self.page_from(browser, path).await.1
    }

    /// A page and whether the page cache answered it from a kept template
    /// (`x-page-cache: hit`) rather than rendering it.
    pub async fn page_from(&self, browser: &Browser, path: &str) -> (bool, String) {
        let response = self
            .http
            .get(self.app.url(path))
            .header("cookie", &browser.cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let hit = response
            .headers()
            .get("x-page-cache")
            .is_some_and(|v| v == "hit");
        (hit, response.text().await.unwrap())
    }

    /// Starts checkout and returns the hosted page's URL.
    pub async fn checkout(&self, browser: &Browser, plan: &str, interval: &str) -> String {
        let (status, location, body) = self
            .submit(
                Some(browser),
                "start_checkout",
                &[("plan", plan), ("interval", interval)],
            )
            .await;
        assert_eq!(status, StatusCode::FOUND, "{body}");
        let location = location.expect("redirect to Stripe");
        // A refusal comes back to the form's page with its message.
        if let Some(err) = returned_error(&location) {
            panic!("checkout of {plan} ({interval}) refused: {err}");
        }
        location
    }

    /// Pays on the hosted Checkout page; returns the redirect (success URL).
    pub async fn pay(&self, checkout_url: &str, card: &str) -> (StatusCode, String) {
        let response = self
            .http
            .post(checkout_url)
            .form(&[("card_number", card), ("email", "buyer@example.com")])
            .send()
            .await
            .unwrap();
        let status = response.status();
        let location = response
            .headers()
            .get("location")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        (status, location)
    }

    pub async fn stripe_get(&self, path: &str) -> Value {
        self.http
            .get(format!("{}v1/{path}", self.emulator.base_url))
            .bearer_auth("sk_test_tests")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub async fn stripe_post(&self, path: &str, form: &[(&str, &str)]) -> Value {
        self.http
            .post(format!("{}v1/{path}", self.emulator.base_url))
            .bearer_auth("sk_test_tests")
            .form(form)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub async fn control(&self, path: &str, body: Value) -> Value {
        self.http
            .post(format!("{}_emulator/{path}", self.emulator.base_url))
            .json(&body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// How many Stripe API requests the emulator has served so far.
    pub async fn stripe_requests(&self) -> u64 {
        self.emulator_requests().await["count"].as_u64().unwrap()
    }

    /// The emulator's request counts: `count` served, `key_conflicts` answered
    /// 409 for an idempotency key in flight.
    pub async fn emulator_requests(&self) -> Value {
        self.http
            .get(format!("{}_emulator/requests", self.emulator.base_url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Every event the emulator has emitted, oldest first (the API lists newest
    /// first, 100 per page).
    pub async fn events(&self) -> Vec<Value> {
        let mut events = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let path = match &after {
                Some(id) => format!("events?limit=100&starting_after={id}"),
                None => "events?limit=100".to_owned(),
            };
            let page = self.stripe_get(&path).await;
            let data = page["data"].as_array().cloned().unwrap_or_default();
            after = data
                .last()
                .and_then(|e| e["id"].as_str().map(str::to_owned));
            events.extend(data);
            if page["has_more"] != true {
                break;
            }
        }
        events.reverse();
        events
    }

    /// The first event of this type.
    pub async fn event(&self, kind: &str) -> Value {
        self.events()
            .await
            .into_iter()
            .find(|e| e["type"] == kind)
            .unwrap_or_else(|| panic!("a {kind} event"))
    }

    /// Delivers `event` to the app's webhook route, signed as Stripe would.
    pub async fn deliver(&self, event: &Value) -> StatusCode {
        self.deliver_to(&self.app, event).await
    }

    /// Delivers `event` to another app instance (sharing this world's emulator).
    pub async fn deliver_to(&self, app: &TestApp, event: &Value) -> StatusCode {
        let body = event.to_string();
        self.http
            .post(app.url("/api/stripe/webhooks"))
            .header("content-type", "application/json")
            .header(
                "stripe-signature",
                signature::sign(body.as_bytes(), SECRET, chrono::Utc::now().timestamp()),
            )
            .body(body)
            .send()
            .await
            .unwrap()
            .status()
    }
}
