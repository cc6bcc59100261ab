//! Logging: human-readable in development, one JSON object per line in production.
//! Every request gets an `x-request-id` (kept if the client sent one) that appears
//! on its span and in the response, so a user's report can be matched to the logs.
//!
//! Only the path is logged, never the query string or headers: those can carry
//! session cookies or one-time tokens.

use axum::{body::Body, http::Request};
use tracing_subscriber::{fmt, prelude::*, EnvFilter};

use crate::config::AppEnv;

/// Installs the global subscriber. `RUST_LOG` overrides the default filter.
pub fn init(app_env: AppEnv) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(crate::config::defaults::RUST_LOG));
    let registry = tracing_subscriber::registry().with(filter);
    // `try_init` so tests that build several apps in one process don't panic.
    let _ = match app_env {
        AppEnv::Production => registry
            .with(fmt::layer().json().flatten_event(true))
            .try_init(),
        AppEnv::Development => registry.with(fmt::layer().compact()).try_init(),
    };
}

/// The span of one HTTP request: method, path and request id, nothing else.
pub fn request_span(request: &Request<Body>) -> tracing::Span {
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    tracing::info_span!(
        "http",
        method = %request.method(),
        path = %request.uri().path(),
        request_id = %request_id,
    )
}
