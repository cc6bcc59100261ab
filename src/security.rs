//! Security headers for every response, and the per-response Content-Security-Policy
//! of pages.
//!
//! Pages get a CSP whose `script-src` holds the nonce Leptos puts on its hydration
//! script, plus `'wasm-unsafe-eval'` so the browser may compile the app's wasm; no
//! `'unsafe-inline'` anywhere. Other responses (JSON, static files) get a CSP that
//! allows nothing, since they are never meant to be rendered as documents.

use std::sync::Arc;

use axum::{
    extract::{Request, State},
    http::{header, HeaderValue},
    middleware::Next,
    response::Response,
};
use url::Url;

use crate::config::{AppEnv, Config, StripeBackend};

/// Stripe's hosted pages; forms that start a checkout redirect there, and browsers
/// apply `form-action` to the redirect target too.
const STRIPE_HOSTED_ORIGINS: [&str; 2] =
    ["https://checkout.stripe.com", "https://billing.stripe.com"];

/// The non-document CSP: nothing may load, nothing may frame the response.
const LOCKED_DOWN_CSP: &str = "default-src 'none'; frame-ancestors 'none'";

/// What the headers depend on, computed once from the configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecurityHeaders {
    /// `Strict-Transport-Security` only in production: sending it from
    /// http://localhost would pin developers' browsers to https.
    pub hsts: bool,
    /// Origins forms may submit (or be redirected) to, besides our own.
    pub form_action: Vec<String>,
    /// Origins scripts may connect to, besides our own.
    pub connect: Vec<String>,
}

impl SecurityHeaders {
    pub fn from_config(config: &Config) -> Self {
        let production = config.app_env == AppEnv::Production;
        let mut form_action: Vec<String> = STRIPE_HOSTED_ORIGINS
            .iter()
            .map(|o| (*o).to_owned())
            .collect();
        let api_base = match &config.stripe.backend {
            StripeBackend::Emulator { api_base } => Some(api_base),
            StripeBackend::Stripe { api_base, .. } => api_base.as_ref(),
        };
        // The emulator serves its hosted checkout and portal pages from its own origin.
        if let Some(origin) = api_base.map(origin_of) {
            form_action.push(origin);
        }
        // `cargo leptos watch` reloads the page over a websocket on the reload port.
        let connect = if production {
            Vec::new()
        } else {
            vec![
                "ws://localhost:3001".to_owned(),
                "ws://127.0.0.1:3001".to_owned(),
            ]
        };
        Self {
            hsts: production,
            form_action,
            connect,
        }
    }

    /// The CSP of an HTML page whose inline scripts carry `nonce`.
    pub fn page_csp(&self, nonce: &str) -> String {
        let connect = join_sources("'self'", &self.connect);
        let form_action = join_sources("'self'", &self.form_action);
        format!(
            "default-src 'self'; \
             script-src 'nonce-{nonce}' 'strict-dynamic' 'wasm-unsafe-eval'; \
             style-src 'self'; img-src 'self' data:; font-src 'self'; \
             connect-src {connect}; form-action {form_action}; \
             frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
        )
    }
}

fn join_sources(own: &str, extra: &[String]) -> String {
    std::iter::once(own)
        .chain(extra.iter().map(String::as_str))
        .collect::<Vec<_>>()
        .join(" ")
}

fn origin_of(url: &Url) -> String {
    url.origin().ascii_serialization()
}

/// Adds the headers every response carries.
pub async fn apply_headers(
    State(policy): State<Arc<SecurityHeaders>>,
    request: Request,
    next: Next,
) -> Response {
    let mut response = next.run(request).await;
    let asset = is_static_asset(&response);
    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("strict-origin-when-cross-origin"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if policy.hsts {
        headers.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=63072000; includeSubDomains"),
        );
    }
    headers
        .entry(header::CONTENT_SECURITY_POLICY)
        .or_insert(HeaderValue::from_static(LOCKED_DOWN_CSP));
    // Pages, server function answers and redirects are made per request: nothing
    // may store them unless the page cache said they are public (`no-cache`) or
    // signed in (`private, no-store`). Built files (wasm, JS, CSS) are the same for
    // everyone and keep ServeDir's validators.
    if !asset && !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// A built file served from disk: the same bytes for every visitor.
pub fn is_static_asset(response: &Response) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|kind| {
            [
                "text/css",
                "text/javascript",
                "application/javascript",
                "application/wasm",
                "image/",
                "font/",
            ]
            .iter()
            .any(|prefix| kind.starts_with(prefix))
        })
}

impl SecurityHeaders {
    /// Sets the page CSP for the response being rendered, using the nonce Leptos
    /// generated for it. Called from the document shell.
    pub fn set_page_csp(&self) {
        use leptos::prelude::use_context;

        let (Some(nonce), Some(response)) = (
            leptos::nonce::use_nonce(),
            use_context::<leptos_axum::ResponseOptions>(),
        ) else {
            return;
        };
        match HeaderValue::from_str(&self.page_csp(&nonce)) {
            Ok(value) => response.insert_header(header::CONTENT_SECURITY_POLICY, value),
            Err(err) => tracing::error!(error = %err, "page CSP is not a valid header value"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> Config {
        Config::from_vars(vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))).unwrap()
    }

    #[test]
    fn development_allows_the_emulator_and_live_reload_but_no_hsts() {
        let headers = SecurityHeaders::from_config(&config(&[]));
        assert!(!headers.hsts);
        assert!(headers
            .form_action
            .contains(&"http://127.0.0.1:12111".to_owned()));
        assert!(headers.connect.contains(&"ws://127.0.0.1:3001".to_owned()));
    }

    #[test]
    fn production_sends_hsts_and_only_stripe_origins() {
        let headers = SecurityHeaders::from_config(&config(&[
            ("APP_ENV", "production"),
            ("SMTP_URL", "smtps://u:p@smtp.example.com"),
            ("MAIL_FROM", "billing@example.com"),
            ("STRIPE_SECRET_KEY", "sk_live_x"),
            ("STRIPE_PUBLISHABLE_KEY", "pk_live_x"),
            ("STRIPE_WEBHOOK_SECRET", "whsec_x"),
        ]));
        assert!(headers.hsts);
        assert_eq!(headers.form_action, STRIPE_HOSTED_ORIGINS);
        assert!(headers.connect.is_empty());
    }

    #[test]
    fn page_csp_allows_only_the_nonced_script_and_wasm() {
        let headers = SecurityHeaders {
            hsts: true,
            form_action: vec!["https://checkout.stripe.com".into()],
            connect: vec![],
        };
        let csp = headers.page_csp("abc123");
        assert!(
            csp.contains("script-src 'nonce-abc123' 'strict-dynamic' 'wasm-unsafe-eval';"),
            "{csp}"
        );
        assert!(
            csp.contains("form-action 'self' https://checkout.stripe.com;"),
            "{csp}"
        );
        assert!(csp.contains("connect-src 'self';"), "{csp}");
        assert!(!csp.contains("unsafe-inline"), "{csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    }
}
