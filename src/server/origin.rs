//! Cross-site request refusal: every state-changing request (server functions,
//! sign-in, sign-up and sign-out among them) must come from the app's own pages.
//!
//! Browsers send `Origin` on every POST (form posts included, with or without
//! JavaScript); where an old browser or a privacy extension drops it, the fetch
//! metadata header `Sec-Fetch-Site` or the `Referer` tells the same. A request
//! carrying none of them cannot be shown to be ours and is refused too: the
//! only legitimate caller without them is a script, which can send `Origin`.
//! The webhook route is exempt: Stripe is another site by definition, and the
//! route is authenticated by its signature instead.
//!
//! Written by hand rather than with a CSRF-token crate: same-origin checks need
//! no state, no token in every form and no cookie, and work for the forms that
//! post before hydration.

use std::sync::Arc;

use axum::{
    extract::{Request, State},
    http::{header, HeaderMap, Method, StatusCode},
    middleware::Next,
    response::{IntoResponse, Response},
};
use url::Url;

use crate::config::{AppEnv, Config};

/// The origins whose pages may post here, and the path that is exempt.
/// Routes authenticated by API keys, never by the session cookie.
pub const API_PREFIX: &str = "/api/v1/";

#[derive(Clone, Debug)]
pub struct OriginPolicy {
    allowed: Vec<String>,
    exempt_path: String,
}

impl OriginPolicy {
    /// `APP_URL`'s origin; in development also the listen address under both
    /// loopback names, since `serve` prints 127.0.0.1 while `APP_URL` defaults to
    /// localhost.
    pub fn from_config(config: &Config) -> Self {
        let mut allowed = vec![config.app_url.origin().ascii_serialization()];
        if config.app_env == AppEnv::Development {
            let port = config.listen_addr.port();
            for host in ["localhost", "127.0.0.1"] {
                let origin = format!("http://{host}:{port}");
                if !allowed.contains(&origin) {
                    allowed.push(origin);
                }
            }
        }
        Self {
            allowed,
            exempt_path: config.paths.stripe_webhook.clone(),
        }
    }

    fn is_allowed(&self, origin: &str) -> bool {
        self.allowed.iter().any(|own| own == origin)
    }

    /// Why a request would be refused, or `None` when it may proceed.
    pub fn refusal(
        &self,
        method: &Method,
        path: &str,
        headers: &HeaderMap,
    ) -> Option<&'static str> {
        if matches!(
            *method,
            Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
        ) || path == self.exempt_path
            // Bearer-key API: no cookie authenticates it, so another site's
            // page gains nothing by posting to it.
            || path.starts_with(API_PREFIX)
        {
            return None;
        }
        let text = |name: header::HeaderName| headers.get(name).map(|v| v.to_str().ok());
        if let Some(origin) = text(header::ORIGIN) {
            // `Origin: null` (sandboxed frames, some redirects) is never ours.
            return match origin {
                Some(origin) if self.is_allowed(origin) => None,
                _ => Some("cross-origin request"),
            };
        }
        if let Some(site) = text(header::HeaderName::from_static("sec-fetch-site")) {
            return match site {
                Some("same-origin") => None,
                _ => Some("cross-site request"),
            };
        }
        match text(header::REFERER) {
            Some(Some(referer)) => match Url::parse(referer) {
                Ok(url) if self.is_allowed(&url.origin().ascii_serialization()) => None,
                _ => Some("cross-origin referer"),
            },
            _ => Some("request origin unknown"),
        }
    }
}

/// Middleware: 403 for a state-changing request that is not from our pages.
pub async fn refuse_cross_site(
    State(policy): State<Arc<OriginPolicy>>,
    request: Request,
    next: Next,
) -> Response {
    if let Some(reason) = policy.refusal(request.method(), request.uri().path(), request.headers())
    {
        tracing::warn!(reason, "state-changing request refused");
        return (
            StatusCode::FORBIDDEN,
            "This request did not come from this site's own pages.",
        )
            .into_response();
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> OriginPolicy {
        OriginPolicy {
            allowed: vec!["https://app.example".into()],
            exempt_path: "/api/stripe/webhooks".into(),
        }
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn only_our_own_pages_may_change_state() {
        type Case<'a> = (&'a str, &'a str, &'a [(&'static str, &'a str)], bool);
        let cases: &[Case] = &[
            ("GET", "/api/sign_in", &[], true),
            ("HEAD", "/", &[("origin", "https://evil.example")], true),
            (
                "POST",
                "/api/sign_in",
                &[("origin", "https://app.example")],
                true,
            ),
            (
                "POST",
                "/api/sign_in",
                &[("origin", "https://evil.example")],
                false,
            ),
            ("POST", "/api/sign_in", &[("origin", "null")], false),
            // The key-authenticated API is called from other servers.
            (
                "POST",
                "/api/v1/usage",
                &[("origin", "https://evil.example")],
                true,
            ),
            ("DELETE", "/api/v1/usage/holds/hold_1", &[], true),
            (
                "POST",
                "/api/v1x",
                &[("origin", "https://evil.example")],
                false,
            ),
            // Same host, other scheme or port: another origin.
            (
                "POST",
                "/api/sign_in",
                &[("origin", "http://app.example")],
                false,
            ),
            (
                "POST",
                "/api/x",
                &[("origin", "https://app.example:8443")],
                false,
            ),
            (
                "POST",
                "/api/x",
                &[("origin", "https://app.example.evil.example")],
                false,
            ),
            // Origin decides even if the others agree.
            (
                "POST",
                "/api/x",
                &[
                    ("origin", "https://evil.example"),
                    ("sec-fetch-site", "same-origin"),
                ],
                false,
            ),
            ("POST", "/api/x", &[("sec-fetch-site", "same-origin")], true),
            ("POST", "/api/x", &[("sec-fetch-site", "same-site")], false),
            ("POST", "/api/x", &[("sec-fetch-site", "cross-site")], false),
            ("POST", "/api/x", &[("sec-fetch-site", "none")], false),
            (
                "POST",
                "/api/x",
                &[("referer", "https://app.example/login?next=/")],
                true,
            ),
            (
                "POST",
                "/api/x",
                &[("referer", "https://evil.example/app.example")],
                false,
            ),
            ("POST", "/api/x", &[("referer", "not a url")], false),
            ("POST", "/api/x", &[], false),
            ("DELETE", "/api/x", &[], false),
            ("PUT", "/api/x", &[("origin", "https://app.example")], true),
            // Stripe posts from its own site; its signature authenticates it.
            (
                "POST",
                "/api/stripe/webhooks",
                &[("origin", "https://evil.example")],
                true,
            ),
            ("POST", "/api/stripe/webhooks", &[], true),
        ];
        let policy = policy();
        for (method, path, pairs, allowed) in cases {
            let method: Method = method.parse().unwrap();
            let verdict = policy.refusal(&method, path, &headers(pairs));
            assert_eq!(
                verdict.is_none(),
                *allowed,
                "{method} {path} {pairs:?}: {verdict:?}"
            );
        }
    }

    #[test]
    fn development_accepts_both_loopback_names() {
        let config =
            Config::from_vars([("LEPTOS_SITE_ADDR".to_owned(), "127.0.0.1:3000".to_owned())])
                .unwrap();
        let policy = OriginPolicy::from_config(&config);
        assert!(policy.is_allowed("http://localhost:3000"));
        assert!(policy.is_allowed("http://127.0.0.1:3000"));
        assert!(!policy.is_allowed("http://127.0.0.1:3001"));
    }
}
