//! The real server on a free port: health, security headers, SSR, limits, shutdown.

mod common;

use common::{script_nonce, TestApp, TestDb};
use reqwest::{header, StatusCode};

#[tokio::test]
async fn healthz_reports_the_database() {
    let db = TestDb::sqlite();
    let app = TestApp::spawn(db.url(), &[]).await;

    let response = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body, serde_json::json!({"status": "ok", "database": "ok"}));

    // With the pool closed the instance must say it cannot serve.
    app.db.clone().close().await.unwrap();
    let response = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn healthz_works_on_postgres() {
    let Some(db) = TestDb::postgres().await else {
        eprintln!("note: {} not set; skipped", common::POSTGRES_URL_VAR);
        return;
    };
    let app = TestApp::spawn(db.url(), &[]).await;
    let response = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    app.stop().await.unwrap();
    db.cleanup().await;
}

#[tokio::test]
async fn pages_are_server_rendered_with_a_nonced_csp() {
    let db = TestDb::sqlite();
    let app = TestApp::spawn(db.url(), &[]).await;

    let response = app.client.get(app.url("/")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers().clone();
    let html = response.text().await.unwrap();

    assert!(
        html.contains("Stripe billing for your Rust SaaS"),
        "SSR output: {html}"
    );
    assert!(
        html.contains("/pkg/billing-starter.js"),
        "hydration script is referenced"
    );

    let nonce = script_nonce(&html).expect("inline scripts carry a nonce");
    let csp = headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
    assert!(
        csp.contains(&format!("'nonce-{nonce}'")),
        "CSP {csp} allows nonce {nonce}"
    );
    assert!(csp.contains("'wasm-unsafe-eval'"), "{csp}");
    assert!(!csp.contains("unsafe-inline"), "{csp}");

    assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    assert_eq!(
        headers[header::REFERRER_POLICY],
        "strict-origin-when-cross-origin"
    );
    assert!(
        headers.get(header::STRICT_TRANSPORT_SECURITY).is_none(),
        "no HSTS in development"
    );
    assert!(headers.contains_key("x-request-id"));

    // Later responses (kept signed-out pages among them) get a fresh nonce each,
    // and a CSP that allows exactly that one.
    let mut seen = vec![nonce.to_owned()];
    for path in ["/", "/", "/pricing", "/pricing"] {
        let response = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let csp = response.headers()[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .to_owned();
        let html = response.text().await.unwrap();
        let fresh = script_nonce(&html).expect("nonce").to_owned();
        assert!(
            csp.contains(&format!("'nonce-{fresh}'")),
            "{csp} vs {fresh}"
        );
        assert!(!html.contains('\0'), "no placeholder left in {path}");
        assert!(!seen.contains(&fresh), "nonce {fresh} reused");
        seen.push(fresh);
    }
    app.stop().await.unwrap();
}

#[tokio::test]
async fn production_sends_hsts_and_non_pages_are_locked_down() {
    let db = TestDb::sqlite();
    let app = TestApp::spawn(
        db.url(),
        &[
            ("APP_ENV", "production"),
            ("APP_URL", "https://billing.example.com"),
            ("STRIPE_SECRET_KEY", "sk_live_test_harness"),
            ("STRIPE_PUBLISHABLE_KEY", "pk_live_test_harness"),
            ("STRIPE_WEBHOOK_SECRET", "whsec_test_harness"),
        ],
    )
    .await;
    let response = app.client.get(app.url("/healthz")).send().await.unwrap();
    let headers = response.headers();
    assert!(headers[header::STRICT_TRANSPORT_SECURITY]
        .to_str()
        .unwrap()
        .starts_with("max-age="));
    assert_eq!(
        headers[header::CONTENT_SECURITY_POLICY],
        "default-src 'none'; frame-ancestors 'none'"
    );
    app.stop().await.unwrap();
}

#[tokio::test]
async fn unknown_paths_get_a_rendered_404() {
    let db = TestDb::sqlite();
    let app = TestApp::spawn(db.url(), &[]).await;
    let response = app
        .client
        .get(app.url("/no/such/page"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert!(response.text().await.unwrap().contains("Page not found"));
    app.stop().await.unwrap();
}

#[tokio::test]
async fn request_bodies_over_the_limit_are_refused() {
    let db = TestDb::sqlite();
    let app = TestApp::spawn(db.url(), &[("REQUEST_BODY_LIMIT", "1024")]).await;
    let response = app
        .client
        .post(app.url("/api/anything"))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(vec![b'a'; 4096])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn shutdown_lets_the_server_stop_cleanly() {
    let db = TestDb::sqlite();
    let app = TestApp::spawn(db.url(), &[]).await;
    let url = app.url("/healthz");
    let client = app.client.clone();
    assert_eq!(
        client.get(&url).send().await.unwrap().status(),
        StatusCode::OK
    );
    app.stop()
        .await
        .expect("serve loop returns Ok after the signal");
    assert!(
        client.get(&url).send().await.is_err(),
        "no longer accepting connections"
    );
}

/// The sign-in form's server function URL, read from the page as a browser would.
async fn sign_in_url(app: &TestApp) -> String {
    let html = app
        .client
        .get(app.url("/login"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let start = html.find("action=\"/api/sign_in").expect("sign-in form") + "action=\"".len();
    let end = start + html[start..].find('"').unwrap();
    app.url(&html[start..end])
}

/// Posts the sign-in form to `url` with a wrong password, as a browser with
/// (`accept` JSON) or without (`text/html`) JavaScript would.
async fn wrong_sign_in(app: &TestApp, url: &str, accept: &str, email: &str) -> reqwest::Response {
    app.client
        .post(url)
        .header("accept", accept)
        .header("referer", app.url("/login"))
        .form(&[
            ("email", email),
            ("password", "guess-guess-guess"),
            ("next", ""),
        ])
        .send()
        .await
        .unwrap()
}

/// Built files come from disk with their own status, missing ones get the app's
/// 404 page. Files used to go through Leptos' file handler, which gave a file
/// the status of a 404 page rendered before it on another worker thread (in the
/// end-to-end run: the wasm-split loader after /favicon.ico, so no island came
/// alive; see `server::static_files`).
// Several worker threads, as the server runs in production: on one thread the old
// handler never showed the fault.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_are_served_after_a_not_found_page() {
    let site = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(site.path().join("pkg")).unwrap();
    std::fs::write(site.path().join("pkg/app.js"), "export const x = 1;").unwrap();
    let db = TestDb::sqlite();
    let site_root = site.path().to_str().unwrap();
    let app = TestApp::spawn(db.url(), &[("LEPTOS_SITE_ROOT", site_root)]).await;
    for _ in 0..50 {
        let missing = app
            .client
            .get(app.url("/favicon.ico"))
            .send()
            .await
            .unwrap();
        assert_eq!(missing.status(), StatusCode::NOT_FOUND);
        assert!(
            missing.text().await.unwrap().contains("site-header"),
            "the app's 404 page"
        );
        let file = app.client.get(app.url("/pkg/app.js")).send().await.unwrap();
        assert_eq!(file.status(), StatusCode::OK);
        assert_eq!(file.text().await.unwrap(), "export const x = 1;");
    }
    app.stop().await.unwrap();
}

/// Without JavaScript the browser posts the form itself: a refusal must come back
/// as a redirect to the form's page with the message in the URL (shown there),
/// not as a bare error body.
#[tokio::test]
async fn a_refused_plain_form_post_goes_back_with_its_message() {
    let db = TestDb::sqlite();
    let app = TestApp::spawn(db.url(), &[]).await;
    let url = sign_in_url(&app).await;
    let response = wrong_sign_in(&app, &url, "text/html", "nobody@example.com").await;
    assert_eq!(response.status(), StatusCode::FOUND);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        location.contains("/login?__path=") && location.contains("__err="),
        "{location}"
    );

    let page = app
        .client
        .get(&location)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("Wrong email or password."),
        "the login page shows the message"
    );
    app.stop().await.unwrap();
}

#[tokio::test]
async fn sign_in_attempts_are_limited_per_email() {
    let db = TestDb::sqlite();
    let app = TestApp::spawn(db.url(), &[]).await;
    let url = sign_in_url(&app).await;
    let attempt = || wrong_sign_in(&app, &url, "application/json", "target@example.com");
    for _ in 0..5 {
        assert_eq!(
            attempt().await.status(),
            StatusCode::BAD_REQUEST,
            "wrong password"
        );
    }
    let limited = attempt().await;
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(limited
        .text()
        .await
        .unwrap()
        .contains("Too many sign-in attempts"));
    app.stop().await.unwrap();
}

/// Pages keep rendering while another router is built in the same process (each
/// test app builds one). Leptos' route generation turns resource loading off for
/// the whole process while it runs (leptos issue #4773), and a page whose
/// resource first ran in that window never finished; the routes are now
/// generated once per process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_render_while_other_routers_are_built() {
    let db = TestDb::sqlite();
    let app = TestApp::spawn(db.url(), &[]).await;
    let state = app.state.clone();
    let building = tokio::task::spawn_blocking(move || {
        for _ in 0..200 {
            drop(billing_starter::server::router(state.clone()));
        }
    });
    // Pages not kept by the page cache: each render runs the header's resource.
    for path in ["/login", "/no-such-page"].iter().cycle().take(200) {
        let page = tokio::time::timeout(std::time::Duration::from_secs(10), async {
            app.client
                .get(app.url(path))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        })
        .await
        .unwrap_or_else(|_| panic!("{path} did not finish within 10 s"));
        assert!(page.contains("site-header"), "{path}");
    }
    building.await.unwrap();
    app.stop().await.unwrap();
}
