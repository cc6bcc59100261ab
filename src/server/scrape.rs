//! `/metrics`: the Prometheus text format, and the HTTP numbers behind it.
//!
//! With `METRICS_TOKEN` set, a scrape must send `Authorization: Bearer
//! <token>` (compared in constant time); without it the route exists only in
//! development: a production deployment's business numbers are not public.

use std::{sync::Arc, time::Instant};

use axum::{
    extract::{Request, State},
    http::{header, HeaderMap, StatusCode},
    middleware::Next,
    response::{IntoResponse, Response},
};
use secrecy::ExposeSecret;

use crate::{config::AppEnv, state::AppState};

pub fn enabled(config: &crate::config::Config) -> bool {
    config.metrics_token.is_some() || config.app_env == AppEnv::Development
}

fn authorized(config: &crate::config::Config, headers: &HeaderMap) -> bool {
    let Some(token) = &config.metrics_token else {
        return true;
    };
    let sent = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    use subtle::ConstantTimeEq;
    bool::from(sent.as_bytes().ct_eq(token.expose_secret().as_bytes()))
}

pub async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if !authorized(state.config(), &headers) {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "a bearer token is required",
        )
            .into_response();
    }
    if let Err(err) = crate::prometheus::refresh_gauges(state.db()).await {
        tracing::warn!(error = %err, "metrics: queue depths not read");
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        crate::prometheus::handle().render(),
    )
        .into_response()
}

/// The routes requests are counted under: the app's pages, server functions
/// and fixed routes; anything else is `other` (so no caller can make labels).
pub struct Routes(Vec<String>);

impl Routes {
    pub fn new(pages: impl IntoIterator<Item = String>, fixed: &[&str]) -> Self {
        let mut routes: Vec<String> = pages.into_iter().collect();
        routes.extend(fixed.iter().map(|r| (*r).to_owned()));
        routes.extend(leptos::server_fn::axum::server_fn_paths().map(|(path, _)| path.to_owned()));
        routes.sort();
        routes.dedup();
        Routes(routes)
    }

    /// The label of `path`: itself when it is a route, `/pkg` for built files.
    pub fn label(&self, path: &str) -> String {
        if self.0.binary_search_by(|r| r.as_str().cmp(path)).is_ok() {
            path.to_owned()
        } else if path.starts_with("/pkg/") {
            "/pkg".to_owned()
        } else if path.starts_with("/api/v1/usage/holds/") {
            // One label for every hold, whatever its id.
            "/api/v1/usage/holds/{id}".to_owned()
        } else {
            "other".to_owned()
        }
    }
}

/// Counts every request by route and status, with its duration.
pub async fn count_requests(
    State(routes): State<Arc<Routes>>,
    request: Request,
    next: Next,
) -> Response {
    let route = routes.label(request.uri().path());
    let started = Instant::now();
    let response = next.run(request).await;
    crate::prometheus::http(
        route,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::Routes;

    #[test]
    fn labels_are_the_routes_or_a_fixed_word() {
        let routes = Routes::new(["/".to_owned(), "/pricing".to_owned()], &["/healthz"]);
        for (path, label) in [
            ("/", "/"),
            ("/pricing", "/pricing"),
            ("/healthz", "/healthz"),
            ("/pkg/billing-starter.wasm", "/pkg"),
            ("/pricing/../x", "other"),
            ("/wp-admin", "other"),
            ("/api/not_a_function_here", "other"),
        ] {
            assert_eq!(routes.label(path), label, "{path}");
        }
    }
}
