//! The operator console (`/admin`): failed webhook events and their replay,
//! accounts by email with their billing rows and Stripe links, the audit log.
//! Server-rendered and usable without JavaScript: every action is a plain form
//! post answered with a redirect. Every server function checks the operator
//! role first (`request::require_operator`): 401 signed out, 403 otherwise.

use leptos::prelude::*;
use leptos_router::{components::A, hooks::use_query_map};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventRow {
    pub id: String,
    pub kind: String,
    pub status: String,
    pub received: String,
    pub attempts: i32,
    pub last_error: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventsView {
    pub failed: u64,
    pub status: String,
    pub events: Vec<EventRow>,
    pub page: u64,
    pub has_next: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountRow {
    pub id: i64,
    pub email: String,
    pub verified: bool,
    pub operator: bool,
    pub customer: Option<String>,
    /// The customer in the Stripe dashboard of the configured mode.
    pub dashboard: Option<String>,
    pub subscriptions: Vec<String>,
    pub purchases: Vec<String>,
    /// This period's use of each feature ("API calls: 340 of 1,000 used").
    pub usage: Vec<String>,
    pub credits: i64,
    /// Grants with something left: (id, description).
    pub grants: Vec<(i64, String)>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MailRow {
    pub id: i64,
    pub kind: String,
    pub recipient: String,
    pub created: String,
    pub attempts: i32,
    pub last_error: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRow {
    pub at: String,
    pub operator: String,
    pub action: String,
    pub target: String,
    pub before: Option<String>,
    pub after: Option<String>,
}

#[cfg(feature = "ssr")]
fn when(at: chrono::DateTime<chrono::Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

#[server(endpoint = "admin_events")]
pub async fn admin_events(
    status: Option<String>,
    page: Option<u64>,
) -> Result<EventsView, ServerFnError> {
    use crate::{db::entities::webhook_events::EventStatus, request};
    use sea_orm::ActiveEnum;
    request::run(async {
        request::require_operator().await?;
        let db = request::state().db().clone();
        let wanted = match status.as_deref().unwrap_or("failed") {
            "all" => None,
            "processed" => Some(EventStatus::Processed),
            "ignored" => Some(EventStatus::Ignored),
            "received" => Some(EventStatus::Received),
            _ => Some(EventStatus::Failed),
        };
        let page = page.unwrap_or(0).min(10_000);
        let found = crate::operator::events(&db, wanted, page)
            .await
            .map_err(|err| request::FnError::internal("console events", err))?;
        let failed = crate::operator::failed_count(&db)
            .await
            .map_err(|err| request::FnError::internal("console events", err))?;
        Ok(EventsView {
            failed,
            status: wanted.map_or("all".to_owned(), |s| s.to_value()),
            events: found
                .rows
                .into_iter()
                .map(|row| EventRow {
                    id: row.stripe_event_id,
                    kind: row.event_type,
                    status: row.status.to_value(),
                    received: when(row.received_at),
                    attempts: row.attempts,
                    last_error: row.last_error,
                })
                .collect(),
            page: found.page,
            has_next: found.has_next,
        })
    })
    .await
}

/// Replays one event, or every failed one without `event`, through the one
/// write path; back to the inbox.
#[server(endpoint = "admin_replay")]
pub async fn admin_replay(event: Option<String>) -> Result<(), ServerFnError> {
    use crate::request;
    request::run(async {
        let operator = request::require_operator().await?;
        let event = event.filter(|id| !id.is_empty());
        if event
            .as_deref()
            .is_some_and(|id| id.len() > 255 || !id.starts_with("evt_"))
        {
            return Err(request::FnError::User(
                axum::http::StatusCode::BAD_REQUEST,
                "That is not a Stripe event id.",
            ));
        }
        let replayed =
            crate::operator::replay(&request::state().billing, &operator, event.as_deref())
                .await
                .map_err(|err| request::FnError::internal("console replay", err))?;
        let failed = replayed.iter().filter(|r| r.result.is_err()).count();
        tracing::info!(
            operator = operator.id,
            replayed = replayed.len(),
            failed,
            "console replay"
        );
        leptos_axum::redirect(&format!(
            "/admin?replayed={}&still_failing={failed}",
            replayed.len()
        ));
        Ok(())
    })
    .await
}

#[server(endpoint = "admin_accounts")]
pub async fn admin_accounts(q: Option<String>) -> Result<Vec<AccountRow>, ServerFnError> {
    use crate::{
        config::{KeyMode, StripeBackend},
        db::entities::{one_time_purchases, subscriptions},
        request,
    };
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    request::run(async {
        request::require_operator().await?;
        let state = request::state();
        let db = state.db();
        let internal = |err| request::FnError::internal("console accounts", err);
        let users = crate::operator::find_accounts(db, q.as_deref().unwrap_or_default())
            .await
            .map_err(internal)?;
        let dashboard = match state.config().stripe.backend {
            StripeBackend::Stripe {
                mode: KeyMode::Live,
                ..
            } => "https://dashboard.stripe.com/customers/",
            _ => "https://dashboard.stripe.com/test/customers/",
        };
        let mut rows = Vec::new();
        for crate::operator::FoundAccount { account, user } in users {
            let subs = subscriptions::Entity::find()
                .filter(subscriptions::Column::AccountId.eq(account.id))
                .all(db)
                .await
                .map_err(internal)?;
            let packs = one_time_purchases::Entity::find()
                .filter(one_time_purchases::Column::AccountId.eq(account.id))
                .all(db)
                .await
                .map_err(internal)?;
            let summary = crate::entitlements::ledger::summary(&state.billing, account.id).await?;
            let usage = crate::views::build::meters(&state.billing, &summary)
                .into_iter()
                .map(|m| m.text)
                .collect();
            let grants = crate::entitlements::grants::of_account(db, account.id)
                .await
                .map_err(internal)?
                .into_iter()
                .filter(|g| g.revoked_at.is_none() && g.remaining > 0)
                .map(|g| {
                    (
                        g.id,
                        format!(
                            "{} of {} left ({}{})",
                            g.remaining,
                            g.amount,
                            g.note.unwrap_or_else(|| g.source.clone()),
                            g.expires_at
                                .and_then(|t| chrono::DateTime::from_timestamp(t, 0))
                                .map_or_else(String::new, |t| format!(
                                    ", expires {}",
                                    t.format("%Y-%m-%d")
                                ))
                        ),
                    )
                })
                .collect();
            rows.push(AccountRow {
                usage,
                credits: summary.credits,
                grants,
                id: account.id,
                verified: user.as_ref().is_some_and(|u| u.email_verified_at.is_some()),
                operator: user.as_ref().is_some_and(|u| u.is_operator),
                dashboard: account
                    .stripe_customer_id
                    .as_ref()
                    .map(|c| format!("{dashboard}{c}")),
                customer: account.stripe_customer_id,
                email: match user {
                    Some(user) => user.email,
                    None => format!("Organization: {}", account.name),
                },
                subscriptions: subs
                    .into_iter()
                    .map(|s| {
                        format!(
                            "{} {} {} {}",
                            s.stripe_subscription_id,
                            s.plan_id.unwrap_or_default(),
                            s.interval.unwrap_or_default(),
                            s.status
                        )
                    })
                    .collect(),
                purchases: packs
                    .into_iter()
                    .map(|p| {
                        format!(
                            "{} {} {:?}",
                            p.stripe_payment_intent_id.unwrap_or_default(),
                            p.plan_id.unwrap_or_default(),
                            p.status
                        )
                    })
                    .collect(),
            });
        }
        Ok(rows)
    })
    .await
}

#[server(endpoint = "admin_mail")]
pub async fn admin_mail(page: Option<u64>) -> Result<Vec<MailRow>, ServerFnError> {
    use crate::request;
    request::run(async {
        request::require_operator().await?;
        let found =
            crate::operator::failed_mail(request::state().db(), page.unwrap_or(0).min(10_000))
                .await
                .map_err(|err| request::FnError::internal("console mail", err))?;
        Ok(found
            .rows
            .into_iter()
            .map(|row| MailRow {
                id: row.id,
                kind: row.kind,
                recipient: row.recipient,
                created: when(row.created_at),
                attempts: row.attempts,
                last_error: row.last_error,
            })
            .collect())
    })
    .await
}

/// Grants credits to an account, with a reason (required) and an optional
/// expiry in days; audited. Back to the accounts page.
#[server(endpoint = "admin_grant_credits")]
pub async fn admin_grant_credits(
    account_id: i64,
    amount: i64,
    reason: String,
    expires_in_days: Option<String>,
    q: Option<String>,
) -> Result<(), ServerFnError> {
    use crate::request::{self, FnError};
    use axum::http::StatusCode;
    request::run(async {
        let operator = request::require_operator().await?;
        let reason = reason.trim();
        if reason.is_empty() || reason.len() > 200 {
            return Err(FnError::User(
                StatusCode::BAD_REQUEST,
                "Give a reason (up to 200 characters) for the audit log.",
            ));
        }
        let expires_at = match expires_in_days.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(days) => match days.parse::<i64>() {
                Ok(days) if (1..=3650).contains(&days) => {
                    Some(chrono::Utc::now() + chrono::Duration::days(days))
                }
                _ => {
                    return Err(FnError::User(
                        StatusCode::BAD_REQUEST,
                        "Expiry is 1 to 3650 days, or empty for never.",
                    ))
                }
            },
        };
        let state = request::state();
        crate::operator::grant_credits(
            state.db(),
            &operator,
            account_id,
            amount,
            expires_at,
            reason,
        )
        .await?;
        leptos_axum::redirect(&accounts_back(q.as_deref()));
        Ok(())
    })
    .await
}

/// A correction: takes back what is left of one grant; audited.
#[server(endpoint = "admin_take_back_credits")]
pub async fn admin_take_back_credits(
    account_id: i64,
    grant_id: i64,
    q: Option<String>,
) -> Result<(), ServerFnError> {
    use crate::request;
    request::run(async {
        let operator = request::require_operator().await?;
        crate::operator::take_back_credits(
            request::state().db(),
            &operator,
            account_id,
            grant_id,
            "correction from the console",
        )
        .await?;
        leptos_axum::redirect(&accounts_back(q.as_deref()));
        Ok(())
    })
    .await
}

#[cfg(feature = "ssr")]
fn accounts_back(q: Option<&str>) -> String {
    match q {
        Some(q) if !q.is_empty() => format!(
            "/admin/accounts?q={}",
            url::form_urlencoded::byte_serialize(q.as_bytes()).collect::<String>()
        ),
        _ => "/admin/accounts".to_owned(),
    }
}

/// Queues a failed message again; back to the outbox page.
#[server(endpoint = "admin_resend")]
pub async fn admin_resend(id: i64) -> Result<(), ServerFnError> {
    use crate::request;
    request::run(async {
        let operator = request::require_operator().await?;
        let state = request::state();
        let queued = crate::operator::resend(state.db(), &operator, id)
            .await
            .map_err(|err| request::FnError::internal("console resend", err))?;
        if queued {
            state.billing.mail.wake();
        }
        leptos_axum::redirect(&format!("/admin/mail?resent={}", u8::from(queued)));
        Ok(())
    })
    .await
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DriftRow {
    pub subscription: String,
    pub change: String,
}

/// One stored event in full, for the inbox's payload view.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventDetail {
    pub row: EventRow,
    pub api_version: Option<String>,
    /// The payload as Stripe sent it, indented for reading.
    pub payload: String,
}

#[server(endpoint = "admin_event")]
pub async fn admin_event(id: String) -> Result<EventDetail, ServerFnError> {
    use crate::db::entities::webhook_events;
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    crate::request::run(async move {
        crate::request::require_operator().await?;
        let state = crate::request::state();
        let event = webhook_events::Entity::find()
            .filter(webhook_events::Column::StripeEventId.eq(id.as_str()))
            .one(state.db())
            .await
            .map_err(|err| crate::request::FnError::internal("console event", err))?
            .ok_or(crate::request::FnError::User(
                axum::http::StatusCode::NOT_FOUND,
                "No stored event has that id.",
            ))?;
        let payload = serde_json::from_str::<serde_json::Value>(&event.payload)
            .ok()
            .and_then(|v| serde_json::to_string_pretty(&v).ok())
            .unwrap_or_else(|| event.payload.clone());
        Ok(EventDetail {
            row: EventRow {
                id: event.stripe_event_id,
                kind: event.event_type,
                status: format!("{:?}", event.status).to_lowercase(),
                received: when(event.received_at),
                attempts: event.attempts,
                last_error: event.last_error,
            },
            api_version: event.api_version,
            payload,
        })
    })
    .await
}

/// `catalog plan`'s output: what `catalog apply` would change in Stripe
/// (reads Stripe, writes nothing; applying stays a deliberate CLI step).
#[server(endpoint = "admin_catalog")]
pub async fn admin_catalog() -> Result<Vec<String>, ServerFnError> {
    use crate::request;
    request::run(async {
        let operator = request::require_operator().await?;
        request::limit_stripe_actions(&operator).await?;
        let billing = &request::state().billing;
        let remote = billing
            .stripe
            .remote_catalog(&billing.catalog)
            .await
            .map_err(|err| request::FnError::Service(err.into()))?;
        Ok(crate::catalog::diff::plan(&billing.catalog, &remote)
            .iter()
            .map(ToString::to_string)
            .collect())
    })
    .await
}

/// `reconcile`'s dry run: what differs from Stripe (reads Stripe, writes nothing).
#[server(endpoint = "admin_drift")]
pub async fn admin_drift() -> Result<Vec<DriftRow>, ServerFnError> {
    use crate::request;
    request::run(async {
        let operator = request::require_operator().await?;
        request::limit_stripe_actions(&operator).await?;
        let drift = crate::operations::drift(&request::state().billing)
            .await
            .map_err(|err| request::FnError::internal("console drift", err))?;
        Ok(drift
            .into_iter()
            .map(|d| DriftRow {
                subscription: d.subscription_id,
                change: d.change,
            })
            .collect())
    })
    .await
}

/// Applies the reconcile for one subscription (or all without one).
#[server(endpoint = "admin_reconcile")]
pub async fn admin_reconcile(subscription: Option<String>) -> Result<(), ServerFnError> {
    use crate::request;
    request::run(async {
        let operator = request::require_operator().await?;
        request::limit_stripe_actions(&operator).await?;
        let subscription = subscription.filter(|s| !s.is_empty());
        if subscription
            .as_deref()
            .is_some_and(|id| id.len() > 255 || !id.starts_with("sub_"))
        {
            return Err(request::FnError::User(
                axum::http::StatusCode::BAD_REQUEST,
                "That is not a Stripe subscription id.",
            ));
        }
        let fixed = crate::operator::reconcile(
            &request::state().billing,
            &operator,
            subscription.as_deref(),
        )
        .await
        .map_err(|err| request::FnError::internal("console reconcile", err))?;
        leptos_axum::redirect(&format!("/admin/drift?fixed={}", fixed.len()));
        Ok(())
    })
    .await
}

#[server(endpoint = "admin_audit")]
pub async fn admin_audit(page: Option<u64>) -> Result<Vec<AuditRow>, ServerFnError> {
    use crate::request;
    request::run(async {
        request::require_operator().await?;
        let found =
            crate::operator::audit_entries(request::state().db(), page.unwrap_or(0).min(10_000))
                .await
                .map_err(|err| request::FnError::internal("console audit", err))?;
        Ok(found
            .rows
            .into_iter()
            .map(|row| AuditRow {
                at: when(row.created_at),
                operator: row.operator_email,
                action: row.action,
                target: row.target,
                before: row.before,
                after: row.after,
            })
            .collect())
    })
    .await
}

fn query(name: &'static str) -> Option<String> {
    use_query_map().with_untracked(|q| q.get(name))
}

#[component]
fn ConsoleNav() -> impl IntoView {
    view! {
        <nav class="console-nav" aria-label="Console">
            <A href="/admin">"Webhook inbox"</A>
            <A href="/admin/accounts">"Accounts"</A>
            <A href="/admin/mail">"Failed mail"</A>
            <A href="/admin/drift">"Drift"</A>
            <A href="/admin/catalog">"Catalog"</A>
            <A href="/admin/audit">"Audit log"</A>
        </nav>
    }
}

/// Every console page: its title, the console's heading and navigation, and
/// the page's own heading when it has one outside its data.
#[component]
fn ConsoleShell(
    title: &'static str,
    #[prop(optional)] heading: Option<&'static str>,
    children: Children,
) -> impl IntoView {
    view! {
        <super::PageTitle text=title />
        <section class="console">
            <h1>"Operator console"</h1>
            <ConsoleNav />
            {heading.map(|heading| view! { <h2>{heading}</h2> })}
            {children()}
        </section>
    }
}

/// A refusal (401/403) or failure, as the console shows it.
#[component]
fn Refused(err: ServerFnError) -> impl IntoView {
    view! {
        <p class="form-error" role="alert" data-testid="console-refused">
            {crate::components::toast::readable(&err)}
        </p>
    }
}

#[component]
pub fn AdminPage() -> impl IntoView {
    let status = query("status");
    let page = query("page").and_then(|p| p.parse::<u64>().ok());
    let replayed = query("replayed");
    let still = query("still_failing");
    let data = OnceResource::new_blocking(admin_events(status, page));
    let replay_url = crate::components::form_post::url_of::<AdminReplay>();
    view! {
        <ConsoleShell title="Console">
            {replayed.map(|n| view! {
                <p class="notice" role="status">
                    {format!("Replayed {n} event(s); {} still failing.", still.unwrap_or_default())}
                </p>
            })}
            <Suspense fallback=|| ()>
                {move || Suspend::new(async move {
                    match data.await {
                        Ok(view) => view! {
                            <h2>"Webhook inbox"</h2>
                            <p data-testid="failed-count">{format!("{} failed event(s)", view.failed)}</p>
                            <p class="console-filters">
                                "Show: "
                                <a href="/admin?status=failed">"failed"</a>" · "
                                <a href="/admin?status=processed">"processed"</a>" · "
                                <a href="/admin?status=ignored">"ignored"</a>" · "
                                <a href="/admin?status=all">"all"</a>
                            </p>
                            {(view.failed > 0).then(|| view! {
                                <form method="post" action=replay_url>
                                    <button type="submit" class="button">"Replay every failed event"</button>
                                </form>
                            })}
                            <table class="table console-table" data-testid="events">
                                <thead><tr><th>"Event"</th><th>"Type"</th><th>"Status"</th><th>"Received"</th><th>"Attempts"</th><th>"Last error"</th><th></th></tr></thead>
                                <tbody>
                                    {view.events.into_iter().map(|event| {
                                        let id = event.id.clone();
                                        let shown = event.id.clone();
                                        view! {
                                            <tr data-event=event.id>
                                                <td><a href=format!("/admin/event?id={shown}")><code>{shown.clone()}</code></a></td>
                                                <td>{event.kind}</td>
                                                <td>{event.status}</td>
                                                <td>{event.received}</td>
                                                <td>{event.attempts}</td>
                                                <td class="console-error">{event.last_error.unwrap_or_default()}</td>
                                                <td>
                                                    <form method="post" action=replay_url>
                                                        <input type="hidden" name="event" value=id />
                                                        <button type="submit" class="button button-secondary">"Replay"</button>
                                                    </form>
                                                </td>
                                            </tr>
                                        }
                                    }).collect_view()}
                                </tbody>
                            </table>
                            <p>
                                {(view.page > 0).then(|| view! { <a href=format!("/admin?status={}&page={}", view.status, view.page - 1)>"← Newer"</a> })}
                                " "
                                {view.has_next.then(|| view! { <a href=format!("/admin?status={}&page={}", view.status, view.page + 1)>"Older →"</a> })}
                            </p>
                        }.into_any(),
                        Err(err) => view! { <Refused err /> }.into_any(),
                    }
                })}
            </Suspense>
        </ConsoleShell>
    }
}

#[component]
pub fn AdminAccountsPage() -> impl IntoView {
    let q = query("q");
    let q_back = q.clone().unwrap_or_default();
    let data = OnceResource::new_blocking(admin_accounts(q.clone()));
    view! {
        <ConsoleShell title="Console: accounts" heading="Accounts">
            <form method="get" action="/admin/accounts" class="console-search">
                <label for="q">"Email contains"</label>
                <input id="q" name="q" type="search" value=q.unwrap_or_default() />
                <button type="submit" class="button">"Find"</button>
            </form>
            <Suspense fallback=|| ()>
                {move || { let q_back = q_back.clone(); Suspend::new(async move {
                    match data.await {
                        Ok(rows) => view! {
                            <table class="table console-table" data-testid="accounts">
                                <thead><tr><th>"Email"</th><th>"Stripe customer"</th><th>"Subscriptions"</th><th>"Purchases"</th><th>"Usage and credits"</th></tr></thead>
                                <tbody>
                                    {rows.into_iter().map(|row| {
                                        let email = row.email.clone();
                                        let account = row.id.to_string();
                                        let q = q_back.clone();
                                        view! {
                                        <tr data-account=row.email>
                                            <td>
                                                {email}
                                                {(!row.verified).then_some(" (not confirmed)")}
                                                {row.operator.then_some(" · operator")}
                                            </td>
                                            <td>
                                                {match (row.customer, row.dashboard) {
                                                    (Some(customer), Some(link)) => view! { <a href=link rel="noreferrer">{customer}</a> }.into_any(),
                                                    _ => view! { <span class="muted">"none"</span> }.into_any(),
                                                }}
                                            </td>
                                            <td>{row.subscriptions.into_iter().map(|s| view! { <div>{s}</div> }).collect_view()}</td>
                                            <td>{row.purchases.into_iter().map(|p| view! { <div>{p}</div> }).collect_view()}</td>
                                            <td data-testid="account-usage">
                                                {row.usage.into_iter().map(|u| view! { <div>{u}</div> }).collect_view()}
                                                <div>{format!("Credits left: {}", row.credits)}</div>
                                                {row.grants.into_iter().map(|(grant, text)| {
                                                    let account = account.clone();
                                                    let q = q.clone();
                                                    view! {
                                                    <form method="post" action={crate::components::form_post::url_of::<AdminTakeBackCredits>()} class="inline">
                                                        <span>{text}</span>
                                                        <input type="hidden" name="account_id" value=account />
                                                        <input type="hidden" name="grant_id" value=grant.to_string() />
                                                        <input type="hidden" name="q" value=q />
                                                        <button type="submit" class="button button-secondary">"Take back"</button>
                                                    </form>
                                                }}).collect_view()}
                                                <form method="post" action={crate::components::form_post::url_of::<AdminGrantCredits>()} class="stack" data-testid="grant-credits">
                                                    <input type="hidden" name="account_id" value=account.clone() />
                                                    <input type="hidden" name="q" value=q.clone() />
                                                    <label>"Credits"<input name="amount" type="number" min="1" required /></label>
                                                    <label>"Reason"<input name="reason" type="text" required maxlength="200" /></label>
                                                    <label>"Expires in days (empty: never)"<input name="expires_in_days" type="number" min="1" /></label>
                                                    <button type="submit" class="button">"Grant credits"</button>
                                                </form>
                                            </td>
                                        </tr>
                                    }}).collect_view()}
                                </tbody>
                            </table>
                        }.into_any(),
                        Err(err) => view! { <Refused err /> }.into_any(),
                    }
                })}}
            </Suspense>
        </ConsoleShell>
    }
}

#[component]
pub fn AdminAuditPage() -> impl IntoView {
    let page = query("page").and_then(|p| p.parse::<u64>().ok());
    let data = OnceResource::new_blocking(admin_audit(page));
    view! {
        <ConsoleShell title="Console: audit log" heading="Audit log">
            <Suspense fallback=|| ()>
                {move || Suspend::new(async move {
                    match data.await {
                        Ok(rows) => view! {
                            <table class="table console-table" data-testid="audit">
                                <thead><tr><th>"When"</th><th>"Operator"</th><th>"Action"</th><th>"On"</th><th>"Before"</th><th>"After"</th></tr></thead>
                                <tbody>
                                    {rows.into_iter().map(|row| view! {
                                        <tr>
                                            <td>{row.at}</td>
                                            <td>{row.operator}</td>
                                            <td>{row.action}</td>
                                            <td><code>{row.target}</code></td>
                                            <td><pre>{row.before.unwrap_or_default()}</pre></td>
                                            <td><pre>{row.after.unwrap_or_default()}</pre></td>
                                        </tr>
                                    }).collect_view()}
                                </tbody>
                            </table>
                        }.into_any(),
                        Err(err) => view! { <Refused err /> }.into_any(),
                    }
                })}
            </Suspense>
        </ConsoleShell>
    }
}

#[component]
pub fn AdminMailPage() -> impl IntoView {
    let page = query("page").and_then(|p| p.parse::<u64>().ok());
    let resent = query("resent");
    let data = OnceResource::new_blocking(admin_mail(page));
    let resend_url = crate::components::form_post::url_of::<AdminResend>();
    view! {
        <ConsoleShell title="Console: failed mail" heading="Failed mail">
            {resent.map(|r| view! {
                <p class="notice" role="status">
                    {if r == "1" { "Queued again: the mail worker sends it now." } else { "That message is not failed (any more)." }}
                </p>
            })}
            <Suspense fallback=|| ()>
                {move || Suspend::new(async move {
                    match data.await {
                        Ok(rows) => view! {
                            <p data-testid="failed-mail">{format!("{} failed message(s)", rows.len())}</p>
                            <table class="table console-table">
                                <thead><tr><th>"Kind"</th><th>"To"</th><th>"Written"</th><th>"Attempts"</th><th>"Last error"</th><th></th></tr></thead>
                                <tbody>
                                    {rows.into_iter().map(|row| view! {
                                        <tr>
                                            <td>{row.kind}</td>
                                            <td>{row.recipient}</td>
                                            <td>{row.created}</td>
                                            <td>{row.attempts}</td>
                                            <td class="console-error">{row.last_error.unwrap_or_default()}</td>
                                            <td>
                                                <form method="post" action=resend_url>
                                                    <input type="hidden" name="id" value=row.id.to_string() />
                                                    <button type="submit" class="button button-secondary">"Send again"</button>
                                                </form>
                                            </td>
                                        </tr>
                                    }).collect_view()}
                                </tbody>
                            </table>
                        }.into_any(),
                        Err(err) => view! { <Refused err /> }.into_any(),
                    }
                })}
            </Suspense>
        </ConsoleShell>
    }
}

#[component]
pub fn AdminDriftPage() -> impl IntoView {
    let fixed = query("fixed");
    let data = OnceResource::new_blocking(admin_drift());
    let reconcile_url = crate::components::form_post::url_of::<AdminReconcile>();
    view! {
        <ConsoleShell title="Console: drift" heading="Drift from Stripe">
            <p>"What `reconcile` would change, read from Stripe now; nothing changes until you apply it."</p>
            {fixed.map(|n| view! { <p class="notice" role="status">{format!("Fixed {n} subscription(s).")}</p> })}
            <Suspense fallback=|| ()>
                {move || Suspend::new(async move {
                    match data.await {
                        Ok(rows) => view! {
                            <p data-testid="drift-count">{format!("{} subscription(s) differ", rows.len())}</p>
                            {(!rows.is_empty()).then(|| view! {
                                <form method="post" action=reconcile_url>
                                    <button type="submit" class="button">"Apply all"</button>
                                </form>
                            })}
                            <table class="table console-table">
                                <thead><tr><th>"Subscription"</th><th>"Difference"</th><th></th></tr></thead>
                                <tbody>
                                    {rows.into_iter().map(|row| {
                                        let id = row.subscription.clone();
                                        view! {
                                            <tr>
                                                <td><code>{row.subscription}</code></td>
                                                <td>{row.change}</td>
                                                <td>
                                                    <form method="post" action=reconcile_url>
                                                        <input type="hidden" name="subscription" value=id />
                                                        <button type="submit" class="button button-secondary">"Apply"</button>
                                                    </form>
                                                </td>
                                            </tr>
                                        }
                                    }).collect_view()}
                                </tbody>
                            </table>
                        }.into_any(),
                        Err(err) => view! { <Refused err /> }.into_any(),
                    }
                })}
            </Suspense>
        </ConsoleShell>
    }
}

#[component]
pub fn AdminEventPage() -> impl IntoView {
    let id = query("id").unwrap_or_default();
    let data = OnceResource::new_blocking(admin_event(id));
    let replay_url = crate::components::form_post::url_of::<AdminReplay>();
    view! {
        <ConsoleShell title="Console: event" heading="Stored event">
            <Suspense fallback=|| ()>
                {move || Suspend::new(async move {
                    match data.await {
                        Ok(detail) => view! {
                            <dl class="plan-facts" data-testid="event-detail">
                                <dt>"Event"</dt><dd><code>{detail.row.id.clone()}</code></dd>
                                <dt>"Type"</dt><dd>{detail.row.kind}</dd>
                                <dt>"Status"</dt><dd>{detail.row.status}</dd>
                                <dt>"Received"</dt><dd>{detail.row.received}</dd>
                                <dt>"Attempts"</dt><dd>{detail.row.attempts}</dd>
                                <dt>"API version"</dt><dd>{detail.api_version.unwrap_or_default()}</dd>
                                <dt>"Last error"</dt><dd class="console-error">{detail.row.last_error.unwrap_or_default()}</dd>
                            </dl>
                            <form method="post" action=replay_url>
                                <input type="hidden" name="event" value=detail.row.id />
                                <button type="submit" class="button">"Replay"</button>
                            </form>
                            <h3>"Payload"</h3>
                            <pre data-testid="event-payload">{detail.payload}</pre>
                        }.into_any(),
                        Err(err) => view! { <Refused err /> }.into_any(),
                    }
                })}
            </Suspense>
        </ConsoleShell>
    }
}

#[component]
pub fn AdminCatalogPage() -> impl IntoView {
    let data = OnceResource::new_blocking(admin_catalog());
    view! {
        <ConsoleShell title="Console: catalog" heading="Catalog drift">
            <p>"What `billing-starter catalog apply` would change in Stripe to match plans.toml, read from Stripe now."</p>
            <Suspense fallback=|| ()>
                {move || Suspend::new(async move {
                    match data.await {
                        Ok(changes) if changes.is_empty() => view! {
                            <p data-testid="catalog-drift">"Stripe matches the catalog."</p>
                        }.into_any(),
                        Ok(changes) => view! {
                            <p data-testid="catalog-drift">{format!("{} change(s); run `billing-starter catalog apply` to make them.", changes.len())}</p>
                            <ul>{changes.into_iter().map(|c| view! { <li><code>{c}</code></li> }).collect_view()}</ul>
                        }.into_any(),
                        Err(err) => view! { <Refused err /> }.into_any(),
                    }
                })}
            </Suspense>
        </ConsoleShell>
    }
}
