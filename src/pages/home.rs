//! The landing page. It proves the stack end to end: server-rendered HTML, a
//! control that only works once hydrated, and a server function that reaches the
//! database.

use leptos::prelude::*;
use leptos_router::components::A;
use serde::{Deserialize, Serialize};

use crate::components::form_post::{url_of, Outcome, PostForm, Submission};

/// What the server reports about itself to the landing page.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerStatus {
    /// Database backend that answered, e.g. "sqlite" or "postgres".
    pub database: String,
    /// Where Stripe calls go: "Stripe (test mode)", "Stripe (live mode)" or the emulator.
    pub stripe: String,
}

#[server(endpoint = "check_server")]
pub async fn check_server() -> Result<ServerStatus, ServerFnError> {
    use crate::request::{self, FnError};
    request::run(async {
        let state = request::state();
        let database = crate::db::ping(state.db()).await.map_err(|err| {
            tracing::warn!(error = %err, "status check: database unavailable");
            FnError::User(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "The database is not reachable right now.",
            )
        })?;
        Ok(ServerStatus {
            database: database.to_string(),
            stripe: state.config().stripe.describe(),
        })
    })
    .await
}

const INCLUDED: [&str; 5] = [
    "A plan catalog in the repository, pushed to Stripe by the app itself",
    "Checkout and Customer Portal sessions for the signed-in user only",
    "Verified, exactly-once webhooks that tolerate any delivery order",
    "SQLite by default, PostgreSQL for production",
    "A loopback Stripe emulator for offline development and tests",
];

#[component]
pub fn HomePage() -> impl IntoView {
    view! {
        <section class="hero">
            <h1>"Stripe billing for your Rust SaaS"</h1>
            <p class="lead">
                "Plans, checkout, the customer portal and webhooks, built with Leptos, axum and sea-orm."
            </p>
            <A href="/pricing" attr:class="button">"See pricing"</A>
        </section>

        <section class="panel">
            <IncludedList />
        </section>

        <section class="panel">
            <ServerCheck />
        </section>
    }
}

/// A disclosure that only works once hydrated (no server round trip).
#[island(lazy)]
fn IncludedList() -> impl IntoView {
    let (show_included, set_show_included) = signal(false);
    view! {
        <button
            type="button"
            class="button"
            aria-expanded=move || show_included.get().to_string()
            aria-controls="included-list"
            on:click=move |_| set_show_included.update(|open| *open = !*open)
        >
            {move || if show_included.get() { "Hide what's included" } else { "Show what's included" }}
        </button>
        <ul id="included-list" class="included" hidden=move || !show_included.get()>
            {INCLUDED.iter().map(|item| view! { <li>{*item}</li> }).collect_view()}
        </ul>
    }
}

/// Calls a server function that reaches the database, through fetch once hydrated.
#[island(lazy)]
fn ServerCheck() -> impl IntoView {
    let check = Submission::new();
    view! {
        <PostForm action={url_of::<CheckServer>()} submission=check>
            <button type="submit" class="button button-secondary">"Check the server"</button>
        </PostForm>
        <p class="status" role="status" aria-live="polite">
            {move || match check.outcome() {
                None => String::new(),
                Some(Outcome::Done(body)) => match leptos::serde_json::from_str::<ServerStatus>(&body) {
                    Ok(status) => format!("Database: {} · Stripe: {}", status.database, status.stripe),
                    Err(_) => "Server check failed: the answer was not understood.".to_owned(),
                },
                Some(Outcome::Failed(message)) => format!("Server check failed: {message}"),
            }}
        </p>
    }
}
