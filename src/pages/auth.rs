//! Sign-up, sign-in and sign-out. The forms are islands around `PostForm`s: they
//! post without JavaScript and, once hydrated, submit with fetch and show errors in
//! place. A successful sign-in redirects, so the whole page (header included) is
//! rendered again by the server for the new session.

use leptos::prelude::*;
use leptos_router::{components::A, hooks::use_query_map};

use crate::components::form_post::{url_of, PostForm, Submission};

/// The sign-in and sign-up limits; the rest comes from `request`.
#[cfg(feature = "ssr")]
mod limits {
    use crate::{
        auth,
        limits::{self, Key},
        request::{self, FnError},
    };

    const TOO_MANY_SIGN_INS: &str = "Too many sign-in attempts. Wait a minute and try again.";

    /// Sign-in limits: the client's first (cheap to key, bounds how many emails
    /// one client can make us store), then the account's, by its normalised
    /// email, only if it is a valid one.
    pub async fn sign_in(email: &str) -> Result<(), FnError> {
        if let Some(ip) = request::client_ip().await {
            request::limit(limits::SIGN_IN_PER_IP, Key::Ip(ip), TOO_MANY_SIGN_INS).await?;
        }
        if let Ok(email) = auth::accounts::normalize_email(email) {
            request::limit(
                limits::SIGN_IN_PER_EMAIL,
                Key::Email(email),
                TOO_MANY_SIGN_INS,
            )
            .await?;
        }
        Ok(())
    }

    pub async fn sign_up() -> Result<(), FnError> {
        match request::client_ip().await {
            Some(ip) => {
                request::limit(
                    limits::sign_up_per_ip(request::state().config().sign_ups_per_ip),
                    Key::Ip(ip),
                    "Too many accounts created from your network. Try again in a few minutes.",
                )
                .await
            }
            None => Ok(()),
        }
    }
}

/// Starts a session for `user` and sends the browser on to `next` (on this site).
#[cfg(feature = "ssr")]
async fn signed_in(
    user: &crate::db::entities::users::Model,
    next: Option<&str>,
) -> Result<(), crate::request::FnError> {
    use crate::request::{self, FnError};
    let session = request::session().await?;
    crate::auth::start_session(&session, user)
        .await
        .map_err(|err| FnError::internal("session start", err))?;
    leptos_axum::redirect(&crate::auth::safe_next(
        next,
        &request::state().config().app_url,
    ));
    Ok(())
}

#[server(endpoint = "sign_up")]
pub async fn sign_up(
    email: String,
    password: String,
    next: Option<String>,
) -> Result<(), ServerFnError> {
    use crate::request;
    request::run(async {
        let state = request::state();
        limits::sign_up().await?;
        let user = crate::auth::accounts::sign_up(
            state.db(),
            &state.hashing,
            &state.billing.mail,
            &email,
            &password,
        )
        .await?;
        tracing::info!(user = user.id, "signed up");
        signed_in(&user, next.as_deref()).await
    })
    .await
}

#[server(endpoint = "sign_in")]
pub async fn sign_in(
    email: String,
    password: String,
    next: Option<String>,
) -> Result<(), ServerFnError> {
    use crate::request;
    request::run(async {
        let state = request::state();
        limits::sign_in(&email).await?;
        let user =
            crate::auth::accounts::sign_in(state.db(), &state.hashing, &email, &password).await?;
        tracing::info!(user = user.id, "signed in");
        signed_in(&user, next.as_deref()).await
    })
    .await
}

#[server(endpoint = "sign_out")]
pub async fn sign_out() -> Result<(), ServerFnError> {
    use crate::request::{self, FnError};
    request::run(async {
        let session = request::session().await?;
        session
            .flush()
            .await
            .map_err(|err| FnError::internal("session end", err))?;
        leptos_axum::redirect("/");
        Ok(())
    })
    .await
}

/// The signed-in user's email and the accounts they can act in, for the header.
#[server(endpoint = "current_user_email")]
pub async fn current_user_email(
) -> Result<Option<(String, Vec<crate::views::AccountChoice>)>, ServerFnError> {
    use crate::request;
    request::run(async {
        let Some(user) = request::current_user().await? else {
            return Ok(None);
        };
        Ok(Some((user.email, request::account_choices().await?)))
    })
    .await
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

/// Where to go after signing in, from the query (read on the server).
fn next_from_query() -> String {
    use_query_map().with_untracked(|q| q.get("next").unwrap_or_default())
}

#[component]
pub fn SignUpPage() -> impl IntoView {
    let next = next_from_query();
    let login = format!("/login?next={}", super::encode_next(&next));
    view! {
        <super::PageTitle text="Create account" />
        <section class="panel auth">
            <h1>"Create your account"</h1>
            <SignUpForm next />
            <p>"Already have an account? " <A href=login>"Sign in"</A></p>
        </section>
    }
}

#[island(lazy)]
fn SignUpForm(next: String) -> impl IntoView {
    let action = Submission::new();
    view! {
        <PostForm action={url_of::<SignUp>()} submission=action>
            <input type="hidden" name="next" value=next />
            <Field id="email" label="Email" kind="email" autocomplete="email" />
            <Field id="password" label="Password (at least 10 characters)" kind="password" autocomplete="new-password" />
            <button type="submit" class="button" disabled=move || action.pending()>"Create account"</button>
        </PostForm>
        <p class="form-error" role="alert">{move || action.error()}</p>
    }
}

#[component]
pub fn LoginPage() -> impl IntoView {
    let next = next_from_query();
    let notice = use_query_map().with_untracked(|q| {
        q.get("notice")
            .and_then(|code| super::account_forms::notice_text(&code))
    });
    let signup = format!("/signup?next={}", super::encode_next(&next));
    view! {
        <super::PageTitle text="Sign in" />
        <section class="panel auth">
            <h1>"Sign in"</h1>
            {notice.map(|text| view! { <p class="notice" role="status">{text}</p> })}
            <LoginForm next />
            <p><A href="/forgot-password">"Forgot your password?"</A></p>
            <p>"No account yet? " <A href=signup>"Create one"</A></p>
        </section>
    }
}

#[island(lazy)]
fn LoginForm(next: String) -> impl IntoView {
    let action = Submission::new();
    view! {
        <PostForm action={url_of::<SignIn>()} submission=action>
            <input type="hidden" name="next" value=next />
            <Field id="email" label="Email" kind="email" autocomplete="email" />
            <Field id="password" label="Password" kind="password" autocomplete="current-password" />
            <button type="submit" class="button" disabled=move || action.pending()>"Sign in"</button>
        </PostForm>
        <p class="form-error" role="alert">{move || action.error()}</p>
    }
}

/// Header: the signed-in email and a sign-out button, or sign-in links. Server
/// only: sign-out is a plain form post answered with a redirect, so it needs no wasm.
#[component]
pub fn UserMenu() -> impl IntoView {
    let user = OnceResource::new_blocking(current_user_email());
    let sign_out_url = <SignOut as leptos::server_fn::ServerFn>::url();
    view! {
        <nav class="user-menu" aria-label="Account">
            <Suspense fallback=|| ()>
                // Awaited, never `.get()`: a resource's `get` takes its value's lock
                // with a try-lock, so while the value is being written on another
                // worker thread it reads as "disposed" and panics (seen in the
                // server tests, about one run in 30). Awaiting takes the lock.
                {move || Suspend::new(async move {
                    match user.await {
                        Ok(Some((email, accounts))) => view! {
                            <super::team::AccountSwitcher accounts />
                            <A href="/account" attr:class="user-email">{email}</A>
                            <form method="post" action=sign_out_url>
                                <button type="submit" class="button button-secondary">"Sign out"</button>
                            </form>
                        }
                        .into_any(),
                        _ => view! {
                            <A href="/login">"Sign in"</A>
                            <A href="/signup" attr:class="button">"Create account"</A>
                        }
                        .into_any(),
                    }
                })}
            </Suspense>
        </nav>
    }
}
