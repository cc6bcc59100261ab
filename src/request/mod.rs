//! What a server function reads from its request: the shared state, the
//! session, the signed-in user, the client's address and its abuse limits.
//! Every helper returns a typed [`FnError`]; [`error::run`] answers it once.

pub mod error;

use axum::http::StatusCode;
use leptos::prelude::*;

pub use self::error::{run, FnError};
use crate::{
    auth,
    db::entities::users,
    state::AppState,
    teams::Member,
    views::{AccountChoice, BillingView, PricingView, WorkspaceView},
};

pub fn state() -> AppState {
    expect_context::<AppState>()
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
        &state().config().trusted_proxies,
    ))
}

/// Counts one use of `rule` by `key`: refused with `message` once used up.
pub async fn limit(
    rule: crate::limits::Rule,
    key: crate::limits::Key,
    message: &'static str,
) -> Result<(), FnError> {
    let now = chrono::Utc::now().timestamp();
    match crate::limits::hit(state().db(), rule, &key, now).await {
        Ok(true) => Ok(()),
        Ok(false) => {
            tracing::warn!(rule = rule.name, "request limited");
            Err(FnError::Limited {
                message,
                retry_after: rule.window_secs - now.rem_euclid(rule.window_secs),
            })
        }
        Err(crate::limits::LimitError::BadKey) => Err(FnError::User(
            StatusCode::BAD_REQUEST,
            "This request is not valid.",
        )),
        Err(err) => Err(FnError::internal("rate limit", err)),
    }
}

/// Counts one action of `user` that calls Stripe (checkout, portal, cancel,
/// resume, the success page's read): a click storm spends our Stripe rate limit.
pub async fn limit_stripe_actions(user: &users::Model) -> Result<(), FnError> {
    limit(
        crate::limits::STRIPE_ACTIONS_PER_USER,
        crate::limits::Key::User(user.id),
        "Too many billing requests. Wait a minute and try again.",
    )
    .await
}

pub async fn session() -> Result<tower_sessions::Session, FnError> {
    leptos_axum::extract::<tower_sessions::Session>()
        .await
        .map_err(|err| FnError::internal("session extraction", err))
}

/// The signed-in user and the account they act in, each looked up at most once
/// per request: a page's header and its body both ask. Provided fresh for
/// every request by the router's context.
#[derive(Clone, Default)]
pub struct RequestUser(std::sync::Arc<RequestLookups>);

#[derive(Default)]
pub struct RequestLookups {
    signed_in: tokio::sync::OnceCell<Option<auth::SignedIn>>,
    /// The member and the header's account switcher, picked from `signed_in`.
    member: tokio::sync::OnceCell<Option<(Member, Vec<AccountChoice>)>>,
}

/// The signed-in visitor of a page request and what the page shows them, as
/// the page cache read them (`server::page_cache`), so the page shows exactly
/// what the cache keeps its template under. Put in the request's extensions.
#[derive(Clone)]
pub struct KnownViewer(std::sync::Arc<(Member, Shown, Vec<AccountChoice>)>);

/// The view a kept signed-in page is rendered from.
#[derive(Debug)]
pub enum Shown {
    Pricing(PricingView),
    Billing(BillingView),
    Workspace(WorkspaceView),
}

impl KnownViewer {
    pub fn new(member: Member, shown: Shown, accounts: Vec<AccountChoice>) -> Self {
        KnownViewer(std::sync::Arc::new((member, shown, accounts)))
    }

    /// The header's account switcher (part of the page cache's key).
    pub fn accounts(&self) -> &[AccountChoice] {
        &self.0 .2
    }

    pub fn user(&self) -> &users::Model {
        &self.0 .0.user
    }

    pub fn member(&self) -> &Member {
        &self.0 .0
    }

    pub fn pricing(&self) -> Option<&PricingView> {
        match &self.0 .1 {
            Shown::Pricing(view) => Some(view),
            _ => None,
        }
    }

    pub fn billing(&self) -> Option<&BillingView> {
        match &self.0 .1 {
            Shown::Billing(view) => Some(view),
            _ => None,
        }
    }

    pub fn workspace(&self) -> Option<&WorkspaceView> {
        match &self.0 .1 {
            Shown::Workspace(view) => Some(view),
            _ => None,
        }
    }
}

/// The page cache's reading of this request's viewer, if it made one.
pub fn known_viewer() -> Option<KnownViewer> {
    use_context::<axum::http::request::Parts>()?
        .extensions
        .get::<KnownViewer>()
        .cloned()
}

async fn signed_in() -> Result<Option<auth::SignedIn>, FnError> {
    let lookup = || async {
        let session = session().await?;
        auth::signed_in(&session, &state().billing.reads)
            .await
            .map_err(|err| FnError::internal("session lookup", err))
    };
    match use_context::<RequestUser>() {
        Some(cached) => cached.0.signed_in.get_or_try_init(lookup).await.cloned(),
        None => lookup().await,
    }
}

/// The signed-in user, from the server-side session only.
pub async fn current_user() -> Result<Option<users::Model>, FnError> {
    if let Some(viewer) = known_viewer() {
        return Ok(Some(viewer.user().clone()));
    }
    Ok(signed_in().await?.map(|s| s.user))
}

/// The signed-in user acting in their current account, with their role there:
/// the session's choice of account if they are a member of it, else their
/// personal account. Nothing the browser sends names the account.
pub async fn current_member() -> Result<Option<Member>, FnError> {
    if let Some(viewer) = known_viewer() {
        return Ok(Some(viewer.member().clone()));
    }
    Ok(member_and_choices().await?.map(|(member, _)| member))
}

/// The member and the accounts they can switch between, from the accounts read
/// with the session (a page shows both), picked at most once per request.
async fn member_and_choices() -> Result<Option<(Member, Vec<AccountChoice>)>, FnError> {
    let pick = || async {
        Ok(signed_in()
            .await?
            .as_ref()
            .and_then(crate::teams::members::acting_with_choices))
    };
    match use_context::<RequestUser>() {
        Some(cached) => cached.0.member.get_or_try_init(pick).await.cloned(),
        None => pick().await,
    }
}

/// The accounts the signed-in member can switch between, for the header.
pub async fn account_choices() -> Result<Vec<AccountChoice>, FnError> {
    if let Some(viewer) = known_viewer() {
        return Ok(viewer.accounts().to_vec());
    }
    Ok(member_and_choices()
        .await?
        .map(|(_, choices)| choices)
        .unwrap_or_default())
}

/// The signed-in member, or a 401 with a readable message.
pub async fn require_member() -> Result<Member, FnError> {
    current_member().await?.ok_or(FnError::User(
        StatusCode::UNAUTHORIZED,
        "Please sign in first.",
    ))
}

/// The signed-in member, after one use of `rule` by them (refused with
/// `message` once used up): the start of every counted page action.
pub async fn require_member_within(
    rule: crate::limits::Rule,
    message: &'static str,
) -> Result<Member, FnError> {
    let member = require_member().await?;
    limit(rule, crate::limits::Key::User(member.user.id), message).await?;
    Ok(member)
}

/// The signed-in operator: 401 signed out, 403 for anyone else. The role is
/// the user row's, set by `users promote`; nothing the browser sends counts.
pub async fn require_operator() -> Result<users::Model, FnError> {
    let user = require_user().await?;
    if user.is_operator {
        Ok(user)
    } else {
        tracing::warn!(user = user.id, "operator console refused");
        Err(FnError::User(
            StatusCode::FORBIDDEN,
            "This page is for operators only.",
        ))
    }
}

/// The signed-in user, or a 401 with a readable message.
pub async fn require_user() -> Result<users::Model, FnError> {
    current_user().await?.ok_or(FnError::User(
        StatusCode::UNAUTHORIZED,
        "Please sign in first.",
    ))
}
