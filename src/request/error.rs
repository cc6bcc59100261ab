//! The one mapping from a server function's error to its answer. Everything a
//! server function calls returns a typed error; [`answer`] (through [`run`]) is
//! the only place that logs it, sets the HTTP status and `Retry-After`, and
//! turns it into the message the user reads.

use axum::http::{header, HeaderValue, StatusCode};
use leptos::prelude::*;

use crate::{auth::accounts::AccountError, billing::service::ServiceError};

/// Why a server function did not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum FnError {
    /// The user can fix this; the message says how.
    #[error("{1}")]
    User(StatusCode, &'static str),
    /// An abuse limit is used up until `retry_after` seconds from now.
    #[error("{message}")]
    Limited {
        message: &'static str,
        retry_after: i64,
    },
    #[error(transparent)]
    Service(#[from] ServiceError),
    #[error(transparent)]
    Account(#[from] AccountError),
    #[error(transparent)]
    Team(#[from] crate::teams::TeamError),
    #[error(transparent)]
    Usage(#[from] crate::entitlements::UsageError),
    #[error(transparent)]
    Key(#[from] crate::entitlements::api_keys::KeyError),
    /// The user can fix this; the message (made at run time) says how.
    #[error("{1}")]
    Readable(StatusCode, String),
    /// A failure whose text is not for the user: logged, shown as generic.
    #[error("{what} failed: {detail}")]
    Internal { what: &'static str, detail: String },
}

impl FnError {
    pub fn internal(what: &'static str, err: impl std::fmt::Display) -> Self {
        FnError::Internal {
            what,
            detail: err.to_string(),
        }
    }

    /// The HTTP status that describes it, so logs and monitors tell user errors
    /// from failures.
    pub fn status(&self) -> StatusCode {
        match self {
            FnError::User(status, _) => *status,
            FnError::Limited { .. } => StatusCode::TOO_MANY_REQUESTS,
            FnError::Service(err) => err.status(),
            FnError::Account(err) => err.status(),
            FnError::Team(err) => err.status(),
            FnError::Usage(err) => err.status(),
            FnError::Key(err) => err.status(),
            FnError::Readable(status, _) => *status,
            FnError::Internal { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// What the user reads; `None` for a failure whose text is not meant for them.
    pub fn user_message(&self) -> Option<String> {
        match self {
            FnError::User(_, message) | FnError::Limited { message, .. } => {
                Some((*message).to_owned())
            }
            FnError::Service(err) => err.user_message(),
            FnError::Account(err) => err.user_message(),
            FnError::Team(err) => err.user_message(),
            FnError::Usage(err) => err.user_message(),
            FnError::Key(err) => err.user_message(),
            FnError::Readable(_, message) => Some(message.clone()),
            FnError::Internal { .. } => None,
        }
    }

    /// How long the client should wait before asking again (429 and 503).
    pub fn retry_after(&self) -> Option<i64> {
        match self {
            FnError::Limited { retry_after, .. } => Some((*retry_after).max(1)),
            FnError::Account(AccountError::Busy) => Some(5),
            _ => None,
        }
    }
}

/// Runs a server function's body and answers its error, once.
pub async fn run<T>(
    work: impl std::future::Future<Output = Result<T, FnError>>,
) -> Result<T, ServerFnError> {
    work.await.map_err(answer)
}

/// The error as the response and the user see it; logged here, by its status.
pub fn answer(err: FnError) -> ServerFnError {
    let status = err.status();
    let message = err.user_message();
    match (&message, status.is_server_error()) {
        (None, _) | (Some(_), true) => tracing::error!(error = %err, %status, "request failed"),
        (Some(_), false) => tracing::info!(error = %err, %status, "request refused"),
    }
    if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
        if let Some(secs) = err.retry_after() {
            response.insert_header(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        // A form a browser posted without JavaScript is answered by Leptos with
        // a redirect back to the page carrying the message in the URL
        // (`components::form_post`); a status set here would replace the 302.
        if !is_plain_form_post() {
            response.set_status(status);
        }
    }
    ServerFnError::new(message.unwrap_or_else(|| crate::components::form_post::GENERIC.to_owned()))
}

fn is_plain_form_post() -> bool {
    use_context::<axum::http::request::Parts>().is_some_and(|req| {
        req.headers
            .get(header::ACCEPT)
            .and_then(|accept| accept.to_str().ok())
            .is_some_and(|accept| accept.contains("text/html"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::billing::checkout::CheckoutRefusal;

    #[test]
    fn each_error_has_its_status_message_and_retry() {
        let cases: Vec<(FnError, StatusCode, Option<&str>, Option<i64>)> = vec![
            (
                FnError::User(StatusCode::UNAUTHORIZED, "Please sign in first."),
                StatusCode::UNAUTHORIZED,
                Some("Please sign in first."),
                None,
            ),
            (
                FnError::Limited {
                    message: "Slow down.",
                    retry_after: 0,
                },
                StatusCode::TOO_MANY_REQUESTS,
                Some("Slow down."),
                Some(1),
            ),
            (
                ServiceError::Refused(CheckoutRefusal::AlreadyCurrent).into(),
                StatusCode::BAD_REQUEST,
                Some("You are already on this plan."),
                None,
            ),
            (
                ServiceError::NoSubscription.into(),
                StatusCode::BAD_REQUEST,
                Some("You have no subscription to change."),
                None,
            ),
            (
                ServiceError::PriceMissing("pro_monthly".into()).into(),
                StatusCode::SERVICE_UNAVAILABLE,
                Some("This plan is not available right now. Please try again later."),
                None,
            ),
            (
                ServiceError::Database(sea_orm::DbErr::Custom("secret detail".into())).into(),
                StatusCode::INTERNAL_SERVER_ERROR,
                None,
                None,
            ),
            (
                AccountError::EmailTaken.into(),
                StatusCode::BAD_REQUEST,
                Some("An account with this email already exists. Sign in instead."),
                None,
            ),
            (
                AccountError::Busy.into(),
                StatusCode::SERVICE_UNAVAILABLE,
                Some(
                    "Too many people are signing in right now. Please try again in a few seconds.",
                ),
                Some(5),
            ),
            (
                AccountError::Hashing("argon2 detail".into()).into(),
                StatusCode::INTERNAL_SERVER_ERROR,
                None,
                None,
            ),
            (
                FnError::internal("session lookup", "connection reset"),
                StatusCode::INTERNAL_SERVER_ERROR,
                None,
                None,
            ),
        ];
        for (err, status, message, retry) in cases {
            assert_eq!(err.status(), status, "{err}");
            assert_eq!(err.user_message().as_deref(), message, "{err}");
            assert_eq!(err.retry_after(), retry, "{err}");
        }
    }
}
