//! Account settings (`/account`): the email and whether it is confirmed, a new
//! email, a new password, signing out everywhere, and deleting the account;
//! and the page that says what a deletion did (`/account/deleted`).

use leptos::prelude::*;
use leptos_router::{components::A, hooks::use_query_map};
use serde::{Deserialize, Serialize};

use super::{
    account_forms::{notice_text, AccountForm, Field},
    email_links::url_of_fn,
};

/// What the settings page shows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountView {
    pub email: String,
    pub verified: bool,
}

#[cfg(feature = "ssr")]
mod limits {
    use crate::{
        db::entities::users,
        limits::{self, Key},
        request::{self, FnError},
    };

    /// One settings action of `user` that hashes a password or sends mail.
    pub async fn action(user: &users::Model) -> Result<(), FnError> {
        request::limit(
            limits::ACCOUNT_ACTIONS_PER_USER,
            Key::User(user.id),
            "Too many account changes. Wait a few minutes and try again.",
        )
        .await
    }

    /// Mail to `email` at the user's request.
    pub async fn mail_to(email: &str) -> Result<(), FnError> {
        request::limit(
            limits::MAIL_PER_EMAIL,
            Key::Email(email.to_owned()),
            "We sent several emails to this address already. Wait a few minutes and try again.",
        )
        .await
    }
}

/// Ends this browser's session (the store's copy is already gone or going).
#[cfg(feature = "ssr")]
async fn end_this_session() -> Result<(), crate::request::FnError> {
    use crate::request::{self, FnError};
    request::session()
        .await?
        .flush()
        .await
        .map_err(|err| FnError::internal("session end", err))
}

#[server(endpoint = "load_account")]
pub async fn load_account() -> Result<Option<AccountView>, ServerFnError> {
    use crate::request;
    request::run(async {
        Ok(request::current_user().await?.map(|user| AccountView {
            verified: user.email_verified_at.is_some(),
            email: user.email,
        }))
    })
    .await
}

/// Sends the verification link again; back to `back` (a page of this site).
#[server(endpoint = "resend_verification")]
pub async fn resend_verification(back: Option<String>) -> Result<(), ServerFnError> {
    use crate::request;
    request::run(async {
        let user = request::require_user().await?;
        limits::action(&user).await?;
        limits::mail_to(&user.email).await?;
        let state = request::state();
        crate::auth::verification::resend(state.db(), &state.billing.mail, &user).await?;
        let back = crate::auth::safe_next(back.as_deref(), &state.config().app_url);
        let path = back.split(['?', '#']).next().unwrap_or("/");
        leptos_axum::redirect(&format!("{path}?notice=verification_sent"));
        Ok(())
    })
    .await
}

#[server(endpoint = "change_password")]
pub async fn change_password(current: String, password: String) -> Result<(), ServerFnError> {
    use crate::request;
    request::run(async {
        let user = request::require_user().await?;
        limits::action(&user).await?;
        let state = request::state();
        let session = request::session().await?;
        crate::auth::settings::change_password(
            state.db(),
            &state.hashing,
            &user,
            &current,
            &password,
            session.id().as_ref(),
        )
        .await?;
        leptos_axum::redirect("/account?notice=password_changed");
        Ok(())
    })
    .await
}

#[server(endpoint = "change_email")]
pub async fn change_email(email: String, password: String) -> Result<(), ServerFnError> {
    use crate::request;
    request::run(async {
        let user = request::require_user().await?;
        limits::action(&user).await?;
        if let Ok(normalized) = crate::auth::accounts::normalize_email(&email) {
            limits::mail_to(&normalized).await?;
        }
        let state = request::state();
        crate::auth::settings::request_email_change(
            &state.billing,
            &state.hashing,
            &user,
            &password,
            &email,
        )
        .await?;
        leptos_axum::redirect("/account?notice=email_change_sent");
        Ok(())
    })
    .await
}

#[server(endpoint = "sign_out_everywhere")]
pub async fn sign_out_everywhere() -> Result<(), ServerFnError> {
    use crate::request;
    request::run(async {
        let user = request::require_user().await?;
        crate::auth::settings::sign_out_everywhere(request::state().db(), &user).await?;
        end_this_session().await?;
        leptos_axum::redirect("/login");
        Ok(())
    })
    .await
}

#[server(endpoint = "delete_account")]
pub async fn delete_account(password: String) -> Result<(), ServerFnError> {
    use crate::{
        auth::deletion::{self, DeletionError},
        request::{self, FnError},
    };
    use axum::http::StatusCode;
    request::run(async {
        let user = request::require_user().await?;
        limits::action(&user).await?;
        let state = request::state();
        let done = match deletion::delete_account(&state.billing, &state.hashing, &user, &password)
            .await
        {
            Ok(done) => done,
            Err(DeletionError::Account(err)) => return Err(err.into()),
            Err(err @ DeletionError::StillOwner(_)) => {
                return Err(FnError::Readable(StatusCode::BAD_REQUEST, err.to_string()))
            }
            Err(DeletionError::Stripe(err)) => {
                tracing::error!(error = %err, "account deletion stopped at Stripe");
                return Err(FnError::User(
                    StatusCode::BAD_GATEWAY,
                    "We could not reach Stripe to cancel your billing, so your account is not deleted yet. Please try again in a minute.",
                ));
            }
        };
        end_this_session().await?;
        leptos_axum::redirect(&format!(
            "/account/deleted?subscriptions={}&customer={}",
            done.subscriptions_cancelled,
            u8::from(done.customer_deleted)
        ));
        Ok(())
    })
    .await
}

/// "Confirm your email" with a button that sends the link again; shown on the
/// account and billing pages while the address is unproven.
#[component]
pub fn VerifyNotice(back: &'static str) -> impl IntoView {
    view! {
        <div class="banner banner-warning" role="status" data-testid="verify-email">
            <p>"Confirm your email address: open the link we sent you. Until then you cannot start a paid plan."</p>
            <AccountForm
                action={url_of_fn::<ResendVerification>()}
                fields=vec![Field::hidden("back", back.to_owned())]
                button="Send the link again".to_owned()
            />
        </div>
    }
}

#[component]
pub fn AccountPage() -> impl IntoView {
    let notice = use_query_map().with_untracked(|q| q.get("notice").and_then(|c| notice_text(&c)));
    let data = OnceResource::new_blocking(load_account());
    view! {
        <super::PageTitle text="Account" />
        <section class="account">
            <h1>"Account"</h1>
            {notice.map(|text| view! { <p class="notice" role="status">{text}</p> })}
            <Suspense fallback=|| ()>
                {move || Suspend::new(async move {
                    match data.await {
                        Ok(Some(account)) => view! { <AccountSettings account /> }.into_any(),
                        Ok(None) => view! {
                            <section class="panel">
                                <p>"Sign in to change your account."</p>
                                <A href="/login?next=/account" attr:class="button">"Sign in"</A>
                            </section>
                        }
                        .into_any(),
                        Err(err) => view! {
                            <p class="form-error" role="alert">
                                {crate::components::toast::readable(&err)}
                            </p>
                        }
                        .into_any(),
                    }
                })}
            </Suspense>
        </section>
    }
}

#[component]
fn AccountSettings(account: AccountView) -> impl IntoView {
    view! {
        {(!account.verified).then(|| view! { <VerifyNotice back="/account" /> })}
        <section class="panel" aria-labelledby="email-heading">
            <h2 id="email-heading">"Email"</h2>
            <p data-testid="account-email">
                {account.email.clone()}
                {if account.verified { " (confirmed)" } else { " (not confirmed yet)" }}
            </p>
            <AccountForm
                action={url_of_fn::<ChangeEmail>()}
                fields=vec![
                    Field::new("email", "New email", "email", "email"),
                    Field::new("password", "Current password", "password", "current-password"),
                ]
                button="Change email".to_owned()
            />
        </section>
        <section class="panel" aria-labelledby="password-heading">
            <h2 id="password-heading">"Password"</h2>
            <AccountForm
                action={url_of_fn::<ChangePassword>()}
                fields=vec![
                    Field::new("current", "Current password", "password", "current-password"),
                    Field::new("password", "New password (at least 10 characters)", "password", "new-password"),
                ]
                button="Change password".to_owned()
            />
        </section>
        <section class="panel" aria-labelledby="sessions-heading">
            <h2 id="sessions-heading">"Sessions"</h2>
            <p>"Signs out this browser and every other one signed in to your account."</p>
            <form method="post" action={url_of_fn::<SignOutEverywhere>()}>
                <button type="submit" class="button button-secondary">"Sign out everywhere"</button>
            </form>
        </section>
        <section class="panel" aria-labelledby="delete-heading">
            <h2 id="delete-heading">"Delete account"</h2>
            <p>
                "Cancels your subscriptions now (no refund for the rest of the period), deletes your Stripe customer and saved cards, and deletes your account. Invoices stay in Stripe's records. This cannot be undone."
            </p>
            <AccountForm
                action={url_of_fn::<DeleteAccount>()}
                fields=vec![Field::new("password", "Your password, to confirm", "password", "current-password")]
                button="Delete my account".to_owned()
                danger=true
            />
        </section>
    }
}

#[component]
pub fn AccountDeletedPage() -> impl IntoView {
    let (subscriptions, customer) = use_query_map().with_untracked(|q| {
        (
            q.get("subscriptions")
                .and_then(|n| n.parse::<usize>().ok())
                .unwrap_or(0),
            q.get("customer").as_deref() == Some("1"),
        )
    });
    view! {
        <super::PageTitle text="Account deleted" />
        <section class="panel auth">
            <h1>"Your account is deleted"</h1>
            <p data-testid="deletion-summary">{crate::views::deletion_summary(subscriptions, customer)}</p>
            <p>"We sent a confirmation to your address. Invoices and payments stay in Stripe's records, as accounting requires."</p>
            <p><A href="/">"Home"</A></p>
        </section>
    }
}
