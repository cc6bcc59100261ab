//! The pages email links open, and the forgotten-password request:
//! `/verify-email`, `/confirm-email`, `/forgot-password`, `/reset-password`.
//! A link's token is spent by the server when the page is rendered (verify,
//! confirm) or when its form is posted (reset).

use leptos::prelude::*;
use leptos_router::{components::A, hooks::use_query_map};

use super::account_forms::{notice_text, AccountForm, Field};

#[cfg(feature = "ssr")]
mod limits {
    use crate::{
        auth,
        limits::{self, Key},
        request::{self, FnError},
    };

    const TOO_MANY: &str = "Too many requests for this address. Wait a few minutes and try again.";

    /// A request that mails `email`: bounded per client and per address.
    pub async fn mail_to(email: &str) -> Result<(), FnError> {
        if let Some(ip) = request::client_ip().await {
            request::limit(limits::MAIL_REQUESTS_PER_IP, Key::Ip(ip), TOO_MANY).await?;
        }
        if let Ok(email) = auth::accounts::normalize_email(email) {
            request::limit(limits::MAIL_PER_EMAIL, Key::Email(email), TOO_MANY).await?;
        }
        Ok(())
    }

    /// A post that hashes a password with a link's token.
    pub async fn reset() -> Result<(), FnError> {
        match request::client_ip().await {
            Some(ip) => {
                request::limit(
                    limits::SIGN_IN_PER_IP,
                    Key::Ip(ip),
                    "Too many attempts. Wait a minute and try again.",
                )
                .await
            }
            None => Ok(()),
        }
    }
}

/// Spends a verification link; the address it proved.
#[server(endpoint = "verify_email")]
pub async fn verify_email(token: String) -> Result<String, ServerFnError> {
    use crate::request;
    request::run(async {
        let user = crate::auth::verification::verify(request::state().db(), &token).await?;
        Ok(user.email)
    })
    .await
}

/// Spends a change-of-email link; the account's new address.
#[server(endpoint = "confirm_email")]
pub async fn confirm_email(token: String) -> Result<String, ServerFnError> {
    use crate::{
        auth::settings::{self, EmailChangeError},
        request::{self, FnError},
    };
    use axum::http::StatusCode;
    request::run(async {
        match settings::confirm_email_change(&request::state().billing, &token).await {
            Ok(user) => Ok(user.email),
            Err(EmailChangeError::Account(err)) => Err(err.into()),
            Err(EmailChangeError::Stripe(err)) => {
                tracing::error!(error = %err, "the Stripe customer's email could not be changed");
                Err(FnError::User(
                    StatusCode::BAD_GATEWAY,
                    "We could not update your billing details with Stripe, so nothing changed. Open the link again in a minute.",
                ))
            }
        }
    })
    .await
}

/// Mails a reset link if the address has an account; the same answer either way.
#[server(endpoint = "forgot_password")]
pub async fn forgot_password(email: String) -> Result<(), ServerFnError> {
    use crate::request;
    request::run(async {
        limits::mail_to(&email).await?;
        let state = request::state();
        crate::auth::recovery::request_reset(state.db(), &state.billing.mail, &email).await?;
        leptos_axum::redirect("/forgot-password?notice=reset_sent");
        Ok(())
    })
    .await
}

/// Sets a new password with a reset link; every session ends, then sign-in.
#[server(endpoint = "reset_password")]
pub async fn reset_password(token: String, password: String) -> Result<(), ServerFnError> {
    use crate::request::{self, FnError};
    request::run(async {
        limits::reset().await?;
        let state = request::state();
        crate::auth::recovery::reset(state.db(), &state.hashing, &token, &password).await?;
        // This browser's own session, if any, is gone from the store: forget it here too.
        request::session()
            .await?
            .flush()
            .await
            .map_err(|err| FnError::internal("session end", err))?;
        leptos_axum::redirect("/login?notice=password_reset");
        Ok(())
    })
    .await
}

fn query(name: &'static str) -> String {
    use_query_map().with_untracked(|q| q.get(name).unwrap_or_default())
}

/// A page that spends a link's token as it renders, and says what happened.
#[component]
fn LinkOutcome(
    title: &'static str,
    outcome: OnceResource<Result<String, ServerFnError>>,
    done: fn(String) -> String,
) -> impl IntoView {
    view! {
        <super::PageTitle text=title />
        <section class="panel auth">
            <h1>{title}</h1>
            <Suspense fallback=|| ()>
                {move || Suspend::new(async move {
                    match outcome.await {
                        Ok(email) => view! {
                            <p role="status" data-testid="link-outcome">{done(email)}</p>
                            <p><A href="/dashboard/billing" attr:class="button">"Go to billing"</A></p>
                        }
                        .into_any(),
                        Err(err) => view! {
                            <p class="form-error" role="alert" data-testid="link-outcome">
                                {crate::components::toast::readable(&err)}
                            </p>
                            <p><A href="/account">"Your account settings"</A></p>
                        }
                        .into_any(),
                    }
                })}
            </Suspense>
        </section>
    }
}

#[component]
pub fn VerifyEmailPage() -> impl IntoView {
    let outcome = OnceResource::new_blocking(verify_email(query("token")));
    view! {
        <LinkOutcome
            title="Confirm your email"
            outcome
            done=|email| format!("Thank you: {email} is confirmed.")
        />
    }
}

#[component]
pub fn ConfirmEmailPage() -> impl IntoView {
    let outcome = OnceResource::new_blocking(confirm_email(query("token")));
    view! {
        <LinkOutcome
            title="Confirm your new email"
            outcome
            done=|email| format!("Your account's email is now {email}.")
        />
    }
}

#[component]
pub fn ForgotPasswordPage() -> impl IntoView {
    let notice = notice_text(&query("notice"));
    view! {
        <super::PageTitle text="Forgot password" />
        <section class="panel auth">
            <h1>"Forgot your password?"</h1>
            {notice.map(|text| view! { <p class="notice" role="status">{text}</p> })}
            <p>"Enter your account's email and we will send you a link to choose a new password."</p>
            <AccountForm
                action={url_of_fn::<ForgotPassword>()}
                fields=vec![Field::new("email", "Email", "email", "email")]
                button="Send the link".to_owned()
            />
            <p><A href="/login">"Back to sign in"</A></p>
        </section>
    }
}

#[component]
pub fn ResetPasswordPage() -> impl IntoView {
    let token = query("token");
    view! {
        <super::PageTitle text="Choose a new password" />
        <section class="panel auth">
            <h1>"Choose a new password"</h1>
            <AccountForm
                action={url_of_fn::<ResetPassword>()}
                fields=vec![
                    Field::hidden("token", token),
                    Field::new("password", "New password (at least 10 characters)", "password", "new-password"),
                ]
                button="Set the new password".to_owned()
            />
        </section>
    }
}

pub(super) fn url_of_fn<F: leptos::server_fn::ServerFn>() -> String {
    crate::components::form_post::url_of::<F>().to_owned()
}
