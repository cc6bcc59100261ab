//! What every server function needs: the shared state, the session, the signed-in
//! user, and errors that are readable to the user without leaking internals.

use axum::http::StatusCode;
use leptos::prelude::*;

use crate::{auth, db::entities::users, server::AppState};

pub fn state() -> AppState {
    expect_context::<AppState>()
}

/// A failed server function's HTTP status, so logs and monitors tell user errors
/// from failures. Not for a form a browser posted without JavaScript: Leptos
/// answers that with a redirect back to the page carrying the message in the
/// URL (`components::form_post`), and a status set here would replace the 302.
fn set_error_status(status: StatusCode) {
    let plain_form_post = use_context::<axum::http::request::Parts>().is_some_and(|req| {
        req.headers
            .get(axum::http::header::ACCEPT)
            .and_then(|accept| accept.to_str().ok())
            .is_some_and(|accept| accept.contains("text/html"))
    });
    if plain_form_post {
        return;
    }
    if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
        response.set_status(status);
    }
}

/// A message for the user, with the HTTP status that describes it.
pub fn user_error(status: StatusCode, message: impl Into<String>) -> ServerFnError {
    set_error_status(status);
    ServerFnError::new(message.into())
}

/// A failure: logged with its cause, shown to the user as a generic message.
pub fn internal_error(what: &str, err: impl std::fmt::Display) -> ServerFnError {
    tracing::error!(error = %err, "{what} failed");
    set_error_status(StatusCode::INTERNAL_SERVER_ERROR);
    ServerFnError::new(crate::components::form_post::GENERIC)
}

/// Stripe could not be reached or refused: the user may retry; nothing was kept.
pub fn stripe_error(what: &str, err: impl std::fmt::Display) -> ServerFnError {
    tracing::error!(error = %err, "{what} failed");
    set_error_status(StatusCode::BAD_GATEWAY);
    ServerFnError::new("Payments are unavailable right now. Please try again in a minute.")
}

/// Asks the client to come back after `secs` (429 and 503 answers).
fn set_retry_after(secs: i64) {
    if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
        response.insert_header(
            axum::http::header::RETRY_AFTER,
            axum::http::HeaderValue::from(secs.max(1)),
        );
    }
}

/// Too much at once: 503 with `Retry-After`, so clients back off.
pub fn overloaded(message: impl Into<String>) -> ServerFnError {
    set_retry_after(5);
    user_error(StatusCode::SERVICE_UNAVAILABLE, message)
}

/// The client's address for abuse limits: the peer, or behind `TRUSTED_PROXIES`
/// the client their `X-Forwarded-For` names.
pub async fn client_ip() -> Option<std::net::IpAddr> {
    let peer = leptos_axum::extract::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .await
        .ok()?
        .0
        .ip();
    let parts = use_context::<axum::http::request::Parts>();
    let forwarded_for = parts.as_ref().and_then(|parts| {
        parts
            .headers
            .get("x-forwarded-for")
            .and_then(|value| value.to_str().ok())
    });
    Some(crate::limits::client_ip(
        peer,
        forwarded_for,
        &state().config.trusted_proxies,
    ))
}

/// Counts one use of `rule` by `key`: a 429 with a readable message once used up.
pub async fn limit(
    rule: crate::limits::Rule,
    key: crate::limits::Key,
    message: &str,
) -> Result<(), ServerFnError> {
    let now = chrono::Utc::now().timestamp();
    match crate::limits::hit(&state().db, rule, &key, now).await {
        Ok(true) => Ok(()),
        Ok(false) => {
            tracing::warn!(rule = rule.name, "request limited");
            set_retry_after(rule.window_secs - now.rem_euclid(rule.window_secs));
            Err(user_error(StatusCode::TOO_MANY_REQUESTS, message))
        }
        Err(crate::limits::LimitError::BadKey) => Err(user_error(
            StatusCode::BAD_REQUEST,
            "This request is not valid.",
        )),
        Err(err) => Err(internal_error("rate limit", err)),
    }
}

/// Counts one action of `user` that calls Stripe (checkout, portal, cancel,
/// resume, the success page's read): a click storm spends our Stripe rate limit.
pub async fn limit_stripe_actions(user: &users::Model) -> Result<(), ServerFnError> {
    limit(
        crate::limits::STRIPE_ACTIONS_PER_USER,
        crate::limits::Key::User(user.id),
        "Too many billing requests. Wait a minute and try again.",
    )
    .await
}

pub async fn session() -> Result<tower_sessions::Session, ServerFnError> {
    leptos_axum::extract::<tower_sessions::Session>()
        .await
        .map_err(|err| internal_error("session extraction", err))
}

/// The signed-in user, looked up at most once per request: a page's header and its
/// body both ask. Provided fresh for every request by the router's context.
#[derive(Clone, Default)]
pub struct RequestUser(std::sync::Arc<tokio::sync::OnceCell<Option<users::Model>>>);

/// The signed-in visitor and pricing view the page cache read for this page
/// request (`server::page_cache`), so the page shows exactly what it keeps.
pub fn known_viewer() -> Option<crate::server::page_cache::KnownViewer> {
    use_context::<axum::http::request::Parts>()?
        .extensions
        .get::<crate::server::page_cache::KnownViewer>()
        .cloned()
}

/// The signed-in user, from the server-side session only.
pub async fn current_user() -> Result<Option<users::Model>, ServerFnError> {
    if let Some(viewer) = known_viewer() {
        return Ok(Some(viewer.user().clone()));
    }
    let lookup = || async {
        let session = session().await?;
        auth::current_user(&session, &state().db)
            .await
            .map_err(|err| internal_error("session lookup", err))
    };
    match use_context::<RequestUser>() {
        Some(cached) => cached.0.get_or_try_init(lookup).await.cloned(),
        None => lookup().await,
    }
}

/// The signed-in user, or a 401 with a readable message.
pub async fn require_user() -> Result<users::Model, ServerFnError> {
    current_user()
        .await?
        .ok_or_else(|| user_error(StatusCode::UNAUTHORIZED, "Please sign in first."))
}
