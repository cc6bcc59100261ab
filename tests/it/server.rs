//! The real server on a free port: health, security headers, SSR, limits, shutdown.

use crate::common::{script_nonce, TestApp, TestDb};
use reqwest::{header, StatusCode};
use sea_orm::EntityTrait;

#[tokio::test]
async fn healthz_reports_the_database() {
    let db = TestDb::sqlite();
    let app = TestApp::spawn(db.url(), &[]).await;

    let response = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["status"], "ok");
    assert_eq!(body["database"], "ok");
    // Only a digest of the price directory (for `doctor`), never the ids.
    let prices = body["prices"].as_str().unwrap();
    assert!(
        prices.len() == 16 && prices.bytes().all(|b| b.is_ascii_hexdigit()),
        "{body}"
    );
    assert_eq!(body.as_object().unwrap().len(), 3, "{body}");

    // With the pool closed the instance must say it cannot serve.
    app.db.clone().close().await.unwrap();
    let response = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn healthz_works_on_postgres() {
    let Some(db) = TestDb::postgres().await else {
        eprintln!("note: {} not set; skipped", crate::common::POSTGRES_URL_VAR);
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
    assert_eq!(headers[header::X_FRAME_OPTIONS], "DENY");
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
            // Nothing listens here: the test sends no mail.
            ("SMTP_URL", "smtp://127.0.0.1:9"),
            ("MAIL_FROM", "billing@example.com"),
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

/// Every page says what it is in its `<title>` (tabs, history and bookmarks
/// read it), and names the site's icon so browsers do not ask for a missing
/// `/favicon.ico`; its footer links the legal pages.
#[tokio::test]
async fn every_page_has_its_own_title_the_icon_and_the_footer() {
    let db = TestDb::sqlite();
    let app = TestApp::spawn(db.url(), &[]).await;
    for (path, title) in [
        ("/", "Billing Starter"),
        ("/pricing", "Pricing — Billing Starter"),
        ("/signup", "Create account — Billing Starter"),
        ("/login", "Sign in — Billing Starter"),
        ("/forgot-password", "Forgot password — Billing Starter"),
        (
            "/reset-password?token=x",
            "Choose a new password — Billing Starter",
        ),
        (
            "/verify-email?token=x",
            "Confirm your email — Billing Starter",
        ),
        (
            "/confirm-email?token=x",
            "Confirm your new email — Billing Starter",
        ),
        ("/account", "Account — Billing Starter"),
        ("/account/deleted", "Account deleted — Billing Starter"),
        ("/dashboard/billing", "Billing — Billing Starter"),
        ("/app", "Your workspace — Billing Starter"),
        ("/privacy-policy", "Privacy policy — Billing Starter"),
        ("/terms-of-service", "Terms of service — Billing Starter"),
        ("/no/such/page", "Page not found — Billing Starter"),
    ] {
        let html = app
            .client
            .get(app.url(path))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let titles: Vec<&str> = html
            .match_indices("<title>")
            .map(|(at, _)| {
                let rest = &html[at + "<title>".len()..];
                &rest[..rest.find("</title>").unwrap()]
            })
            .collect();
        assert_eq!(titles, [title], "{path}");
        assert!(
            html.contains(r#"<link rel="icon" href="/favicon.svg" type="image/svg+xml">"#),
            "{path}"
        );
        let footer = &html[html
            .find(r#"<footer class="site-footer">"#)
            .expect("a footer")..];
        assert!(
            footer.contains(r#"href="/terms-of-service""#)
                && footer.contains(r#"href="/privacy-policy""#),
            "{path}: the footer links the legal pages"
        );
    }
    assert!(
        std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/public/favicon.svg")).exists()
    );
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
    crate::common::fresh_window(billing_starter::limits::SIGN_IN_PER_EMAIL.window_secs, 15).await;
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

/// Signs up over HTTP; returns the `billing_session` cookie's value.
async fn signed_up(app: &TestApp, email: &str) -> String {
    let response = app
        .client
        .post(app.url("/api/sign_up"))
        .form(&[("email", email), ("password", "correct horse battery")])
        .send()
        .await
        .unwrap();
    assert!(
        response.status().is_redirection() || response.status().is_success(),
        "{}",
        response.status()
    );
    response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix("billing_session="))
        .and_then(|v| v.split(';').next())
        .expect("session cookie")
        .to_owned()
}

async fn get_with_cookie(app: &TestApp, path: &str, cookie: Option<&[u8]>) -> reqwest::Response {
    let mut request = app.client.get(app.url(path));
    if let Some(cookie) = cookie {
        request = request.header(
            header::COOKIE,
            header::HeaderValue::from_bytes(cookie).unwrap(),
        );
    }
    request.send().await.unwrap()
}

/// The public page cache keeps only renders that saw no session, whatever form
/// the session cookie came in: an attacker's page must never show one visitor's
/// email (and "Sign out") to every anonymous visitor. Signed-in responses are
/// `private, no-store` (the Back button after signing out showed the billing
/// page from the browser's cache); kept public pages vary by cookie.
#[tokio::test]
async fn public_pages_never_keep_a_signed_in_render() {
    let pages = ["/", "/pricing", "/pricing?interval=yearly"];
    let variants: [fn(&str) -> Vec<u8>; 5] = [
        |id| format!("billing_session={id}").into_bytes(),
        |id| format!("billing_session ={id}").into_bytes(),
        |id| format!("billing%5Fsession={id}").into_bytes(),
        |id| {
            [
                b"theme=caf\xe9; ".as_slice(),
                format!("billing_session={id}").as_bytes(),
            ]
            .concat()
        },
        |id| format!("billing_session={id}; billing_session={id}").into_bytes(),
    ];
    let mut signed_in_renders = 0;
    for (n, variant) in variants.iter().enumerate() {
        // A fresh app each time: its cache is empty, so the variant's request is
        // the one that renders (and could be kept).
        let db = TestDb::sqlite();
        let app = TestApp::spawn(db.url(), &[]).await;
        let email = format!("victim{n}@example.com");
        let id = signed_up(&app, &email).await;
        for page in pages {
            let response = get_with_cookie(&app, page, Some(&variant(&id))).await;
            assert_eq!(response.status(), StatusCode::OK);
            let cache_control = response.headers().get(header::CACHE_CONTROL).cloned();
            let html = response.text().await.unwrap();
            if html.contains(&email) {
                signed_in_renders += 1;
                assert_eq!(
                    cache_control.as_ref().map(|v| v.to_str().unwrap()),
                    Some("private, no-store"),
                    "variant {n} {page}"
                );
            }
            for _ in 0..2 {
                let anonymous = get_with_cookie(&app, page, None).await;
                assert_eq!(anonymous.status(), StatusCode::OK);
                let headers = anonymous.headers().clone();
                let html = anonymous.text().await.unwrap();
                assert!(
                    !html.contains(&email),
                    "variant {n}: {page} leaked the email"
                );
                assert!(
                    !html.contains("Sign out"),
                    "variant {n}: {page} leaked a session"
                );
                assert_eq!(headers[header::CACHE_CONTROL], "no-cache", "{page}");
                assert_eq!(headers[header::VARY], "Cookie", "{page}");
            }
        }
        app.stop().await.unwrap();
    }
    assert!(
        signed_in_renders > pages.len(),
        "the variants include signed-in renders besides the plain cookie: {signed_in_renders}"
    );
}

#[tokio::test]
async fn signed_in_pages_and_server_answers_are_never_stored() {
    let db = TestDb::sqlite();
    let app = TestApp::spawn(db.url(), &[]).await;
    let id = signed_up(&app, "private@example.com").await;
    let cookie = format!("billing_session={id}");
    for page in [
        "/dashboard/billing",
        "/app",
        "/pricing",
        "/",
        "/no-such-page",
    ] {
        let response = get_with_cookie(&app, page, Some(cookie.as_bytes())).await;
        assert_eq!(
            response.headers()[header::CACHE_CONTROL],
            "private, no-store",
            "{page}"
        );
    }
    // Anonymous pages that are not kept, and server function answers: no-store.
    for page in ["/login", "/signup"] {
        let response = get_with_cookie(&app, page, None).await;
        assert_eq!(
            response.headers()[header::CACHE_CONTROL],
            "no-store",
            "{page}"
        );
    }
    let response = app
        .client
        .post(app.url("/api/sign_out"))
        .header(header::COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.headers()[header::CACHE_CONTROL],
        "private, no-store"
    );
    app.stop().await.unwrap();
}

#[tokio::test]
async fn markup_emails_are_refused_at_sign_up() {
    let db = TestDb::sqlite();
    let app = TestApp::spawn(db.url(), &[]).await;
    for email in [
        "<img/src=x>@example.com",
        "\"><script>alert(1)</script>@example.com",
        "o'brien@example.com",
        "a&b@example.com",
    ] {
        let response = app
            .client
            .post(app.url("/api/sign_up"))
            .header("accept", "application/json")
            .form(&[("email", email), ("password", "correct horse battery")])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{email}");
        assert!(
            response
                .text()
                .await
                .unwrap()
                .contains("Enter a valid email address"),
            "{email}"
        );
    }
    let users = billing_starter::db::entities::users::Entity::find()
        .all(&app.db)
        .await
        .unwrap();
    assert!(users.is_empty());
    app.stop().await.unwrap();
}

/// Login CSRF and every other cross-site write: refused with 403 before any
/// server function runs, whichever header tells the request's origin; the
/// webhook route (authenticated by its signature) is not affected.
#[tokio::test]
async fn cross_site_writes_are_refused() {
    let db = TestDb::sqlite();
    let app = TestApp::spawn(db.url(), &[]).await;
    let id = signed_up(&app, "csrf@example.com").await;
    let cookie = format!("billing_session={id}");
    let plain = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let attacks: &[&[(&str, &str)]] = &[
        &[("origin", "https://evil.example")],
        &[("origin", "null")],
        &[("origin", "http://127.0.0.1:1")],
        &[("sec-fetch-site", "cross-site")],
        &[("sec-fetch-site", "same-site")],
        &[("referer", "https://evil.example/login")],
        &[],
    ];
    for function in [
        "sign_in",
        "sign_up",
        "sign_out",
        "start_checkout",
        "open_portal",
        "cancel_subscription",
        "load_billing",
    ] {
        for headers in attacks {
            let mut request = plain
                .post(app.url(&format!("/api/{function}")))
                .header(header::COOKIE, &cookie)
                .form(&[
                    ("email", "attacker@example.com"),
                    ("password", "correct horse battery"),
                    ("plan", "premium"),
                ]);
            for (name, value) in *headers {
                request = request.header(*name, *value);
            }
            let response = request.send().await.unwrap();
            assert_eq!(
                response.status(),
                StatusCode::FORBIDDEN,
                "{function} {headers:?}"
            );
            assert!(response.headers().get(header::SET_COOKIE).is_none());
        }
    }
    let users = billing_starter::db::entities::users::Entity::find()
        .all(&app.db)
        .await
        .unwrap();
    assert_eq!(users.len(), 1, "no account made by a cross-site post");
    // The session survived the cross-site sign-out.
    let page = get_with_cookie(&app, "/dashboard/billing", Some(cookie.as_bytes())).await;
    assert!(page.text().await.unwrap().contains("csrf@example.com"));

    // The same posts from our own pages work: Origin, or without it the
    // browser's fetch metadata or Referer.
    for headers in [
        vec![("origin", app.base_url.clone())],
        vec![("sec-fetch-site", "same-origin".to_owned())],
        vec![("referer", app.url("/login"))],
    ] {
        let mut request = plain
            .post(app.url("/api/sign_in"))
            .header("accept", "application/json")
            .form(&[
                ("email", "csrf@example.com"),
                ("password", "correct horse battery"),
            ]);
        for (name, value) in &headers {
            request = request.header(*name, value);
        }
        let response = request.send().await.unwrap();
        assert!(
            response.status().is_success() || response.status().is_redirection(),
            "{headers:?}: {}",
            response.status()
        );
    }
    // Stripe's deliveries come from Stripe's site: judged by their signature.
    let webhook = plain
        .post(app.url("/api/stripe/webhooks"))
        .header("origin", "https://stripe.com")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(webhook.status(), StatusCode::BAD_REQUEST);
    app.stop().await.unwrap();
}

/// `next` after sign-in: only places on this site, and nothing in it can make
/// the request fail.
#[tokio::test]
async fn sign_in_redirects_stay_on_the_site() {
    let db = TestDb::sqlite();
    let app = TestApp::spawn(db.url(), &[]).await;
    let own = reqwest::Url::parse(&app.base_url).unwrap();
    for (i, next) in [
        "/\t/evil.example",
        "/\n",
        "/\r\nSet-Cookie: x=1",
        "//evil.example",
        "/\\evil.example",
        "/.//evil.example",
        "https://evil.example/",
        "http:evil.example",
        "/%09/evil.example",
        "\u{0}",
        "/pricing?interval=yearly",
    ]
    .into_iter()
    .enumerate()
    {
        // One account each: five sign-ins per account are allowed per window.
        let email = format!("next{i}@example.com");
        signed_up(&app, &email).await;
        let response = app
            .client
            .post(app.url("/api/sign_in"))
            .header("accept", "application/json")
            .form(&[
                ("email", email.as_str()),
                ("password", "correct horse battery"),
                ("next", next),
            ])
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_redirection() || response.status().is_success(),
            "{next:?}: {}",
            response.status()
        );
        let location = response
            .headers()
            .get("location")
            .or_else(|| response.headers().get("serverfnredirect"))
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_else(|| panic!("{next:?}: a redirect"));
        let target = own.join(&location).unwrap();
        assert_eq!(target.origin(), own.origin(), "{next:?} -> {location}");
        assert!(!location.starts_with("//"), "{next:?} -> {location}");
        assert!(!location.contains('\\'), "{next:?} -> {location}");
    }
    app.stop().await.unwrap();
}

/// A line of this process's `/proc/self/status` (Linux), in MB.
fn status_mb(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb / 1024)
}

/// Starts a fresh peak-memory window and returns the resident size now: the
/// peak left by earlier tests in this binary must not count against this one.
fn reset_peak_rss_mb() -> u64 {
    // Writing 5 to clear_refs resets VmHWM to the current RSS (Linux >= 4.0).
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    status_mb("VmRSS:")
}

/// A sign-up flood from one client: the per-client limit answers 429, and
/// password hashing runs behind a bounded queue that sheds the rest with 503
/// and `Retry-After`, so memory stays bounded (60 parallel sign-ups once took
/// the server to 1 GB).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_up_floods_are_limited_and_shed() {
    let db = TestDb::sqlite();
    // The per-client limit out of the way: the hashing queue alone.
    let app = TestApp::spawn(db.url(), &[("SIGN_UP_LIMIT_PER_IP", "1000")]).await;
    let before = reset_peak_rss_mb();
    let posts = (0..60).map(|i| {
        let app = &app;
        async move {
            app.client
                .post(app.url("/api/sign_up"))
                .header("accept", "application/json")
                .form(&[
                    ("email", format!("flood{i}@example.com")),
                    ("password", "correct horse battery".to_owned()),
                ])
                .send()
                .await
                .unwrap()
        }
    });
    let responses = futures_util::future::join_all(posts).await;
    let shed: Vec<_> = responses
        .iter()
        .filter(|r| r.status() == StatusCode::SERVICE_UNAVAILABLE)
        .collect();
    assert!(!shed.is_empty(), "some sign-ups were shed");
    assert!(shed
        .iter()
        .all(|r| r.headers().contains_key(header::RETRY_AFTER)));
    let ok = responses
        .iter()
        .filter(|r| r.status().is_redirection() || r.status().is_success())
        .count();
    assert!(ok >= 2, "the queue still serves: {ok}");
    assert_eq!(
        ok + shed.len(),
        60,
        "nothing else: {:?}",
        responses.iter().map(|r| r.status()).collect::<Vec<_>>()
    );
    // Unbounded, 60 Argon2 hashes at 7 MiB each take over 420 MB at once; the
    // queue keeps a few. Other tests of this binary run beside this one, so
    // the bound leaves them room rather than measuring the queue to the MB.
    let grown = status_mb("VmHWM:").saturating_sub(before);
    assert!(grown < 250, "peak RSS grew by {grown} MB");
    app.stop().await.unwrap();

    // With the default limit, one client gets 429 after 40 sign-ups.
    crate::common::fresh_window(billing_starter::limits::sign_up_per_ip(40).window_secs, 60).await;
    let db = TestDb::sqlite();
    let app = TestApp::spawn(db.url(), &[]).await;
    let mut statuses = Vec::new();
    for i in 0..45 {
        let response = app
            .client
            .post(app.url("/api/sign_up"))
            .header("accept", "application/json")
            .form(&[
                ("email", format!("one{i}@example.com").as_str()),
                ("password", "correct horse battery"),
            ])
            .send()
            .await
            .unwrap();
        statuses.push(response.status());
    }
    assert!(
        statuses[..40]
            .iter()
            .all(|s| s.is_redirection() || s.is_success()),
        "{statuses:?}"
    );
    assert!(
        statuses[40..]
            .iter()
            .all(|s| *s == StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
    app.stop().await.unwrap();
}

/// Huge "emails" cost no memory: the client's limit is checked first, and an
/// email that cannot be an address is never stored as a limiter key.
#[tokio::test]
async fn oversized_sign_in_emails_are_not_stored() {
    crate::common::fresh_window(billing_starter::limits::SIGN_IN_PER_IP.window_secs, 15).await;
    let db = TestDb::sqlite();
    let app = TestApp::spawn(db.url(), &[("REQUEST_BODY_LIMIT", "2000000")]).await;
    let huge = "a".repeat(1 << 20);
    let mut statuses = Vec::new();
    for _ in 0..25 {
        let response = app
            .client
            .post(app.url("/api/sign_in"))
            .header("accept", "application/json")
            .form(&[
                ("email", huge.as_str()),
                ("password", "correct horse battery"),
            ])
            .send()
            .await
            .unwrap();
        statuses.push(response.status());
    }
    assert!(
        statuses[..20].iter().all(|s| *s == StatusCode::BAD_REQUEST),
        "{statuses:?}"
    );
    assert!(
        statuses[20..]
            .iter()
            .all(|s| *s == StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
    use sea_orm::ConnectionTrait;
    let rows = app
        .db
        .query_one_raw(sea_orm::Statement::from_string(
            app.db.get_database_backend(),
            "SELECT COUNT(*) AS n, COALESCE(MAX(LENGTH(bucket)), 0) AS longest FROM rate_limits",
        ))
        .await
        .unwrap()
        .unwrap();
    let n: i64 = rows.try_get("", "n").unwrap();
    let longest: i64 = rows.try_get("", "longest").unwrap();
    assert_eq!(n, 1, "only the client's counter");
    assert!(longest < 100, "{longest}");
    app.stop().await.unwrap();
}

/// Behind a trusted proxy the client is the one `X-Forwarded-For` names (so two
/// clients are limited apart); from anyone else the header is ignored.
#[tokio::test]
async fn forwarded_for_is_trusted_only_from_trusted_proxies() {
    crate::common::fresh_window(billing_starter::limits::SIGN_IN_PER_IP.window_secs, 15).await;
    for (trusted, limited_apart) in [("127.0.0.1", true), ("10.0.0.0/8", false)] {
        let db = TestDb::sqlite();
        let app = TestApp::spawn(db.url(), &[("TRUSTED_PROXIES", trusted)]).await;
        let attempt = |client: &'static str, i: usize| {
            let app = &app;
            async move {
                app.client
                    .post(app.url("/api/sign_in"))
                    .header("accept", "application/json")
                    .header("x-forwarded-for", client)
                    .form(&[
                        ("email", format!("user{i}@example.com")),
                        ("password", "guess-guess-guess".to_owned()),
                    ])
                    .send()
                    .await
                    .unwrap()
                    .status()
            }
        };
        for i in 0..20 {
            assert_eq!(attempt("203.0.113.1", i).await, StatusCode::BAD_REQUEST);
        }
        assert_eq!(
            attempt("203.0.113.1", 99).await,
            StatusCode::TOO_MANY_REQUESTS
        );
        let other = attempt("198.51.100.2", 100).await;
        if limited_apart {
            assert_eq!(
                other,
                StatusCode::BAD_REQUEST,
                "another client behind the proxy"
            );
        } else {
            assert_eq!(
                other,
                StatusCode::TOO_MANY_REQUESTS,
                "an untrusted peer's header is ignored"
            );
        }
        app.stop().await.unwrap();
    }
}

/// Limits are counted in the database: two app instances on one database
/// share them (PostgreSQL, as deployed; skipped without it).
#[tokio::test]
async fn limits_hold_across_app_instances() {
    crate::common::fresh_window(billing_starter::limits::SIGN_IN_PER_EMAIL.window_secs, 15).await;
    let Some(db) = TestDb::postgres().await else {
        eprintln!("note: {} not set; skipped", crate::common::POSTGRES_URL_VAR);
        return;
    };
    let one = TestApp::spawn(db.url(), &[]).await;
    let two = TestApp::spawn(db.url(), &[]).await;
    for i in 0..5 {
        let app = if i % 2 == 0 { &one } else { &two };
        let status = wrong_sign_in(
            app,
            &app.url("/api/sign_in"),
            "application/json",
            "shared@example.com",
        )
        .await
        .status();
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }
    for app in [&one, &two] {
        let status = wrong_sign_in(
            app,
            &app.url("/api/sign_in"),
            "application/json",
            "shared@example.com",
        )
        .await
        .status();
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    }
    one.stop().await.unwrap();
    two.stop().await.unwrap();
    db.cleanup().await;
}

/// A client that trickles its headers is cut off, connections beyond the cap
/// wait, and shutdown ends after its grace period even with a request hanging.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_and_shutdown_are_bounded() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let db = TestDb::sqlite();
    let app = TestApp::spawn(
        db.url(),
        &[("MAX_CONNECTIONS", "4"), ("SHUTDOWN_GRACE_SECS", "1")],
    )
    .await;
    let addr = app.base_url.trim_start_matches("http://").to_owned();
    // Slowloris: an unfinished request head is closed within the header timeout.
    let mut slow = tokio::net::TcpStream::connect(&addr).await.unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(20),
        slow.read_to_end(&mut buf),
    )
    .await;
    assert!(read.is_ok(), "closed by the server");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );

    // Four idle connections hold every slot: a fifth waits, then is served when one closes.
    let mut idle = Vec::new();
    for _ in 0..4 {
        idle.push(tokio::net::TcpStream::connect(&addr).await.unwrap());
    }
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let waiting = tokio::time::timeout(
        std::time::Duration::from_millis(500),
        reqwest::get(app.url("/healthz")),
    )
    .await;
    assert!(waiting.is_err(), "over the cap, a connection waits");
    drop(idle);
    let served = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        reqwest::get(app.url("/healthz")),
    )
    .await;
    assert_eq!(
        served.expect("served once slots free").unwrap().status(),
        StatusCode::OK
    );

    // A connection mid-request (headers sent, body never finished) does not hold
    // shutdown past its grace period.
    let mut hanging = tokio::net::TcpStream::connect(&addr).await.unwrap();
    hanging
        .write_all(b"POST /api/stripe/webhooks HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let started = std::time::Instant::now();
    app.stop().await.unwrap();
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    drop(hanging);
}

/// A kept-alive connection waits past the 10 s head deadline for its next
/// request (a pooled client reusing it is answered, not cut off), a head
/// trickled on it is still cut 10 s after its first byte, and an idle one is
/// closed after `IDLE_TIMEOUT_SECS`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kept_alive_connections_idle_longer_than_a_head_may_take() {
    use std::time::{Duration, Instant};
    use tokio::{
        io::{AsyncReadExt, AsyncWriteExt},
        net::TcpStream,
    };
    const REQUEST: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    /// Sends `REQUEST` and reads one response: its status line.
    async fn exchange(stream: &mut TcpStream) -> String {
        stream.write_all(REQUEST).await.unwrap();
        let mut read = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            let n = stream.read(&mut chunk).await.unwrap();
            assert!(n > 0, "closed before answering");
            read.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&read).into_owned();
            let Some(end) = text.find("\r\n\r\n") else {
                continue;
            };
            let length: usize = text[..end]
                .lines()
                .find_map(|line| {
                    line.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse().unwrap())
                })
                .expect("a content-length");
            if read.len() >= end + 4 + length {
                return text.lines().next().unwrap().to_owned();
            }
        }
    }
    /// Waits for the server to close `stream`: how long after `since`.
    async fn closed(mut stream: TcpStream, since: Instant) -> Duration {
        let mut rest = Vec::new();
        tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut rest))
            .await
            .expect("closed by the server")
            .ok();
        since.elapsed()
    }

    let db = TestDb::sqlite();
    let app = TestApp::spawn(db.url(), &[("IDLE_TIMEOUT_SECS", "15")]).await;
    let addr = app.base_url.trim_start_matches("http://").to_owned();
    let connect = || TcpStream::connect(addr.as_str());
    let ok = "HTTP/1.1 200 OK";

    let reused = async {
        let mut stream = connect().await.unwrap();
        assert_eq!(exchange(&mut stream).await, ok);
        tokio::time::sleep(Duration::from_secs(11)).await;
        assert_eq!(exchange(&mut stream).await, ok, "answered after 11 s idle");
    };
    let trickled = async {
        let mut stream = connect().await.unwrap();
        assert_eq!(exchange(&mut stream).await, ok);
        let answered = Instant::now();
        tokio::time::sleep(Duration::from_secs(1)).await;
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\n")
            .await
            .unwrap();
        closed(stream, answered).await
    };
    let idle = async {
        let mut stream = connect().await.unwrap();
        assert_eq!(exchange(&mut stream).await, ok);
        closed(stream, Instant::now()).await
    };
    let ((), trickled, idle) = tokio::join!(reused, trickled, idle);
    // The head's first byte came 1 s after the answer: cut about 11 s after it,
    // well before the idle deadline (15 s).
    assert!(
        trickled >= Duration::from_secs(10) && trickled < Duration::from_secs(14),
        "trickled head cut after {trickled:?}"
    );
    assert!(
        idle >= Duration::from_secs(14) && idle < Duration::from_secs(22),
        "idle connection closed after {idle:?}"
    );
    app.stop().await.unwrap();
    db.cleanup().await;
}
