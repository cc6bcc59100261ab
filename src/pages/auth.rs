//! Sign-up, sign-in and sign-out. Forms are `ActionForm`s: they post without
//! JavaScript and upgrade to fetch once hydrated.

use leptos::prelude::*;
use leptos_router::{components::A, hooks::use_query_map};

/// The three auth actions, shared so the header can refresh after any of them.
#[derive(Clone, Copy)]
pub struct AuthActions {
    pub sign_up: ServerAction<SignUp>,
    pub sign_in: ServerAction<SignIn>,
    pub sign_out: ServerAction<SignOut>,
}

impl AuthActions {
    pub fn new() -> Self {
        Self {
            sign_up: ServerAction::new(),
            sign_in: ServerAction::new(),
            sign_out: ServerAction::new(),
        }
    }
}

impl Default for AuthActions {
    fn default() -> Self {
        Self::new()
    }
}

/// What only the auth functions need; the rest comes from `server::fns`.
#[cfg(feature = "ssr")]
mod server {
    use axum::http::StatusCode;
    use leptos::prelude::*;

    use crate::{auth, server::fns};

    /// User errors keep their message (400); anything else is logged and hidden.
    pub fn readable(err: auth::accounts::AccountError) -> ServerFnError {
        use auth::accounts::AccountError::*;
        match err {
            InvalidEmail | WeakPassword(_) | EmailTaken | WrongCredentials => {
                fns::user_error(StatusCode::BAD_REQUEST, err.to_string())
            }
            other => fns::internal_error("account operation", other),
        }
    }

    pub fn session_failed(err: auth::SessionError) -> ServerFnError {
        fns::internal_error("session operation", err)
    }

    /// The connecting peer's address. Behind a reverse proxy this is the proxy's; a
    /// deployment there should limit at the proxy as well.
    pub async fn client_ip() -> Option<std::net::IpAddr> {
        leptos_axum::extract::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .await
            .ok()
            .map(|info| info.0.ip())
    }
}

#[server(endpoint = "sign_up")]
pub async fn sign_up(
    email: String,
    password: String,
    next: Option<String>,
) -> Result<(), ServerFnError> {
    let state = crate::server::fns::state();
    let user = crate::auth::accounts::sign_up(&state.db, &email, &password)
        .await
        .map_err(server::readable)?;
    let session = crate::server::fns::session().await?;
    crate::auth::start_session(&session, &user)
        .await
        .map_err(server::session_failed)?;
    tracing::info!(user = user.id, "signed up");
    leptos_axum::redirect(&crate::auth::safe_next(next.as_deref()));
    Ok(())
}

#[server(endpoint = "sign_in")]
pub async fn sign_in(
    email: String,
    password: String,
    next: Option<String>,
) -> Result<(), ServerFnError> {
    let state = crate::server::fns::state();
    if !state
        .sign_in_limiter
        .allow(&email, server::client_ip().await)
    {
        tracing::warn!("sign-in attempts limited");
        return Err(crate::server::fns::user_error(
            axum::http::StatusCode::TOO_MANY_REQUESTS,
            "Too many sign-in attempts. Wait a minute and try again.",
        ));
    }
    let user = crate::auth::accounts::sign_in(&state.db, &email, &password)
        .await
        .map_err(server::readable)?;
    let session = crate::server::fns::session().await?;
    crate::auth::start_session(&session, &user)
        .await
        .map_err(server::session_failed)?;
    tracing::info!(user = user.id, "signed in");
    leptos_axum::redirect(&crate::auth::safe_next(next.as_deref()));
    Ok(())
}

#[server(endpoint = "sign_out")]
pub async fn sign_out() -> Result<(), ServerFnError> {
    let session = crate::server::fns::session().await?;
    session
        .flush()
        .await
        .map_err(|err| server::session_failed(err.into()))?;
    leptos_axum::redirect("/");
    Ok(())
}

/// The signed-in user's email, for the header.
#[server(endpoint = "current_user_email")]
pub async fn current_user_email() -> Result<Option<String>, ServerFnError> {
    let user = crate::server::fns::current_user().await?;
    Ok(user.map(|u| u.email))
}

fn error_text(result: Option<Result<(), ServerFnError>>) -> Option<String> {
    match result {
        Some(Err(ServerFnError::ServerError(message))) => Some(message),
        Some(Err(other)) => Some(other.to_string()),
        _ => None,
    }
}

#[component]
fn Field(
    id: &'static str,
    label: &'static str,
    kind: &'static str,
    autocomplete: &'static str,
) -> impl IntoView {
    view! {
        <label for=id>{label}</label>
        <input id=id name=id type=kind autocomplete=autocomplete required />
    }
}

#[component]
pub fn SignUpPage() -> impl IntoView {
    let action = expect_context::<AuthActions>().sign_up;
    let query = use_query_map();
    let next = move || query.read().get("next").unwrap_or_default();
    view! {
        <section class="panel auth">
            <h1>"Create your account"</h1>
            <ActionForm action=action>
                <input type="hidden" name="next" prop:value=next />
                <Field id="email" label="Email" kind="email" autocomplete="email" />
                <Field id="password" label="Password (at least 10 characters)" kind="password" autocomplete="new-password" />
                <button type="submit" class="button" disabled=move || action.pending().get()>"Create account"</button>
            </ActionForm>
            <p class="form-error" role="alert">{move || error_text(action.value().get())}</p>
            <p>"Already have an account? " <A href=move || format!("/login?next={}", super::encode_next(&next()))>"Sign in"</A></p>
        </section>
    }
}

#[component]
pub fn LoginPage() -> impl IntoView {
    let action = expect_context::<AuthActions>().sign_in;
    let query = use_query_map();
    let next = move || query.read().get("next").unwrap_or_default();
    view! {
        <section class="panel auth">
            <h1>"Sign in"</h1>
            <ActionForm action=action>
                <input type="hidden" name="next" prop:value=next />
                <Field id="email" label="Email" kind="email" autocomplete="email" />
                <Field id="password" label="Password" kind="password" autocomplete="current-password" />
                <button type="submit" class="button" disabled=move || action.pending().get()>"Sign in"</button>
            </ActionForm>
            <p class="form-error" role="alert">{move || error_text(action.value().get())}</p>
            <p>"No account yet? " <A href=move || format!("/signup?next={}", super::encode_next(&next()))>"Create one"</A></p>
        </section>
    }
}

/// Header: the signed-in email and a sign-out button, or sign-in links.
#[component]
pub fn UserMenu() -> impl IntoView {
    let actions = expect_context::<AuthActions>();
    // Blocking: rendered in place during SSR, so the header is right even before
    // (or without) JavaScript; out-of-order streaming would need a script to show it.
    let user = Resource::new_blocking(
        move || {
            (
                actions.sign_up.version().get(),
                actions.sign_in.version().get(),
                actions.sign_out.version().get(),
            )
        },
        |_| current_user_email(),
    );
    view! {
        <nav class="user-menu" aria-label="Account">
            <Transition fallback=|| ()>
                {move || {
                    user.get().map(|result| match result {
                        Ok(Some(email)) => view! {
                            <span class="user-email">{email}</span>
                            <ActionForm action=actions.sign_out>
                                <button type="submit" class="button button-secondary">"Sign out"</button>
                            </ActionForm>
                        }
                        .into_any(),
                        _ => view! {
                            <A href="/login">"Sign in"</A>
                            <A href="/signup" attr:class="button">"Create account"</A>
                        }
                        .into_any(),
                    })
                }}
            </Transition>
        </nav>
    }
}
