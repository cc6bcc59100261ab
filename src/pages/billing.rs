//! The billing page (`/dashboard/billing`): the plan in force, renewal or end
//! date, the past_due banner, purchases and invoices, the portal, in-app cancel
//! and resume — and the landing place after Checkout, where it reads the query
//! string (the guide's SearchParamsHandler), shows the toast, and then removes the
//! query so a reload does not toast again.

use leptos::prelude::*;
use leptos_router::{components::A, hooks::use_query_map};

use crate::{
    components::{
        form_post::{url_of, PostForm, Submission},
        toast::{readable, Toast, ToastKind},
    },
    views::BillingView,
};

/// `None` when nobody is signed in. With `checkout_session` (from the success
/// redirect) the session is verified to be this user's and written through the
/// webhook's own write path before the page is computed.
#[server(endpoint = "load_billing")]
pub async fn load_billing(
    checkout_session: Option<String>,
) -> Result<Option<BillingView>, ServerFnError> {
    use crate::{billing::service, request, views::build};
    request::run(async {
        // The page cache built this very view for its key: show exactly it.
        if let Some(view) = request::known_viewer().and_then(|v| v.billing().cloned()) {
            if checkout_session.is_none() {
                return Ok(Some(view));
            }
        }
        let Some(member) = request::current_member().await? else {
            return Ok(None);
        };
        let billing = &request::state().billing;
        let checkout = match checkout_session.as_deref() {
            Some(id) => {
                request::limit_stripe_actions(&member.user).await?;
                let outcome = service::confirm_checkout(billing, &member, id).await;
                Some(build::checkout_return(outcome))
            }
            None => None,
        };
        Ok(Some(build::billing_page(billing, &member, checkout).await?))
    })
    .await
}

/// Opens the Stripe customer portal for the current account's own customer
/// (owners and admins).
#[server(endpoint = "open_portal")]
pub async fn open_portal() -> Result<(), ServerFnError> {
    use crate::request;
    request::run(async {
        let member = request::require_member().await?;
        request::limit_stripe_actions(&member.user).await?;
        let url = crate::billing::service::portal(&request::state().billing, &member, None).await?;
        leptos_axum::redirect(&url);
        Ok(())
    })
    .await
}

/// Cancels the user's own subscription at the end of the paid period.
#[server(endpoint = "cancel_subscription")]
pub async fn cancel_subscription() -> Result<(), ServerFnError> {
    cancel_at_period_end(true).await
}

/// Undoes a scheduled cancellation.
#[server(endpoint = "resume_subscription")]
pub async fn resume_subscription() -> Result<(), ServerFnError> {
    cancel_at_period_end(false).await
}

/// Schedules or unschedules the signed-in user's cancellation, then shows the
/// billing page again, rendered by the server with the new state (with or
/// without JavaScript).
#[cfg(feature = "ssr")]
async fn cancel_at_period_end(cancel: bool) -> Result<(), ServerFnError> {
    use crate::request;
    request::run(async {
        let member = request::require_member().await?;
        request::limit_stripe_actions(&member.user).await?;
        crate::billing::service::set_cancel_at_period_end(
            &request::state().billing,
            &member,
            cancel,
        )
        .await?;
        leptos_axum::redirect("/dashboard/billing");
        Ok(())
    })
    .await
}

#[component]
pub fn BillingPage() -> impl IntoView {
    let (status, session_id) = use_query_map().with_untracked(|q| {
        (
            q.get("checkout_status").or_else(|| q.get("status")),
            q.get("session_id"),
        )
    });
    let session_id = (status.as_deref() == Some("success"))
        .then_some(session_id)
        .flatten();
    let data = OnceResource::new_blocking(load_billing(session_id));

    let from_checkout = status.is_some();
    // Computed with the page, so the server's HTML already has the toast for the
    // verified session.
    let notice = move |view: Option<&BillingView>| -> Option<(ToastKind, String)> {
        match status.as_deref() {
            Some("canceled" | "cancel") => Some((
                ToastKind::Info,
                "Checkout canceled. You have not been charged.".to_owned(),
            )),
            Some("success") => Some(match view.and_then(|v| v.checkout.clone()) {
                Some(ret) if ret.success => (ToastKind::Success, ret.message),
                Some(ret) => (ToastKind::Error, ret.message),
                None => (
                    ToastKind::Success,
                    "Thank you! Your plan updates as soon as Stripe confirms the payment."
                        .to_owned(),
                ),
            }),
            _ => None,
        }
    };

    view! {
        <super::PageTitle text="Billing" />
        <section class="billing">
            <h1>"Billing"</h1>
            <Suspense fallback=|| view! { <p>"Loading…"</p> }>
                // Awaited, never `.get()`: see `UserMenu`.
                {move || {
                    let notice = notice.clone();
                    Suspend::new(async move {
                        match data.await {
                            Ok(Some(view)) => {
                                let message = notice(Some(&view));
                                view! {
                                    <ReturnNotice message clean_url=from_checkout />
                                    <BillingDetails view />
                                }
                                    .into_any()
                            }
                            Ok(None) => {
                                let message = notice(None);
                                view! {
                                    <ReturnNotice message clean_url=from_checkout />
                                    <section class="panel">
                                        <p>"Sign in to see your plan and invoices."</p>
                                        <A href="/login?next=/dashboard/billing" attr:class="button">
                                            "Sign in"
                                        </A>
                                    </section>
                                }
                                    .into_any()
                            }
                            Err(err) => {
                                view! {
                                    <p class="form-error" role="alert">
                                        {readable(&err)}
                                    </p>
                                }
                                    .into_any()
                            }
                        }
                    })
                }}
            </Suspense>
        </section>
    }
}

/// The toast about the return from Checkout. Once live it removes the query
/// string, so a reload does not announce the payment again.
#[island(lazy)]
fn ReturnNotice(message: Option<(ToastKind, String)>, clean_url: bool) -> impl IntoView {
    if clean_url {
        Effect::new(move |_| {
            if let Ok(history) = window().history() {
                let path = window().location().pathname().unwrap_or_default();
                let _ = history.replace_state_with_url(
                    &leptos::wasm_bindgen::JsValue::NULL,
                    "",
                    Some(&path),
                );
            }
        });
    }
    let message = Signal::derive(move || message.clone());
    view! { <Toast message /> }
}

/// "Manage billing" / "Update payment method": opens the portal for the user's
/// own customer; a failure is a toast, not a blank page.
#[island(lazy)]
fn PortalButton(label: String) -> impl IntoView {
    let portal = Submission::new();
    let toast = Signal::derive(move || portal.error().map(|text| (ToastKind::Error, text)));
    view! {
        <PostForm action={url_of::<OpenPortal>()} submission=portal>
            <button type="submit" class="button" disabled=move || portal.pending()>
                {label}
            </button>
        </PostForm>
        <Toast message=toast />
    }
}

/// The plan's buttons; one pending action disables the others.
#[island(lazy)]
fn PlanActions(has_customer: bool, can_cancel: bool, can_resume: bool) -> impl IntoView {
    // One submission for the three forms: one pending action disables all, and the
    // toast shows the last one's failure.
    let action = Submission::new();
    let busy = move || action.pending();
    let toast = Signal::derive(move || action.error().map(|text| (ToastKind::Error, text)));
    view! {
        <div class="actions">
            {has_customer.then(|| view! {
                <PostForm action={url_of::<OpenPortal>()} submission=action>
                    <button type="submit" class="button" disabled=busy>"Manage billing"</button>
                </PostForm>
            })}
            {can_cancel.then(|| view! {
                <PostForm action={url_of::<CancelSubscription>()} submission=action>
                    <button type="submit" class="button button-secondary" disabled=busy>
                        "Cancel at period end"
                    </button>
                </PostForm>
            })}
            {can_resume.then(|| view! {
                <PostForm action={url_of::<ResumeSubscription>()} submission=action>
                    <button type="submit" class="button" disabled=busy>"Resume subscription"</button>
                </PostForm>
            })}
            <a href="/pricing" class="button button-secondary">"Change plan"</a>
        </div>
        <Toast message=toast />
    }
}

#[component]
fn BillingDetails(view: BillingView) -> impl IntoView {
    let row = |label: &'static str, value: Option<String>| {
        value.map(|value| {
            view! {
                <dt>{label}</dt>
                <dd>{value}</dd>
            }
        })
    };
    let duplicates = view.duplicate_subscriptions.len();
    view! {
        {view.email_unverified.then(|| view! {
            <super::account::VerifyNotice back="/dashboard/billing" />
        })}
        {(duplicates > 1).then(|| view! {
            <div class="banner banner-warning" role="alert" data-testid="duplicate-subscriptions">
                <p>
                    {format!(
                        "You have {duplicates} active subscriptions and each one is charged. Open Manage billing to cancel the one you do not want."
                    )}
                </p>
                <PortalButton label="Manage billing".to_owned() />
            </div>
        })}
        {view.past_due_until.clone().map(|until| view! {
            <div class="banner banner-warning" role="alert" data-testid="past-due-banner">
                <p>
                    {format!(
                        "Your last payment failed. Update your payment method before {until} to keep {}.",
                        view.plan_name,
                    )}
                </p>
                <PortalButton label="Update payment method".to_owned() />
            </div>
        })}
        <section class="panel current-plan" aria-labelledby="current-plan-heading">
            <h2 id="current-plan-heading">"Current plan"</h2>
            {view.organization.clone().map(|name| view! {
                <p class="muted" data-testid="billed-account">{format!("Billed to {name}")}</p>
            })}
            <p class="plan-name" data-testid="plan-name">{view.plan_name.clone()}</p>
            <dl class="plan-facts">
                {row("Status", view.status.clone())}
                {row("Billing", view.interval.clone())}
                {row("Renews on", view.renews_on.clone())}
                {view.seats.map(|(used, paid)| view! {
                    <dt>"Seats"</dt>
                    <dd data-testid="seats">{format!("{used} in use, {paid} paid")}</dd>
                })}
                {row("Trial ends on", view.trial_ends_on.clone())}
                {view.ends_on.clone().map(|on| view! {
                    <dt>"Ends on"</dt>
                    <dd data-testid="ends-on">{on}</dd>
                })}
            </dl>
            {if view.can_manage {
                view! {
                    <PlanActions
                        has_customer=view.has_customer
                        can_cancel=view.can_cancel
                        can_resume=view.can_resume
                    />
                }.into_any()
            } else {
                view! {
                    <p class="muted" data-testid="billing-managed-by">"Owners and admins of this organization manage its billing."</p>
                }.into_any()
            }}
        </section>

        <section class="panel" aria-labelledby="usage-heading" data-testid="billing-usage">
            <h2 id="usage-heading">"Usage this period"</h2>
            <super::gated::Meters meters=view.usage.clone() credits=view.credits />
        </section>

        <section class="panel" aria-labelledby="purchases-heading">
            <h2 id="purchases-heading">"One-time purchases"</h2>
            {if view.purchases.is_empty() {
                view! { <p class="muted">"None yet."</p> }.into_any()
            } else {
                view! {
                    <table class="table" data-testid="purchases">
                        <thead><tr><th>"Item"</th><th>"Amount"</th><th>"Date"</th><th>"Status"</th></tr></thead>
                        <tbody>
                            {view.purchases.iter().map(|p| view! {
                                <tr>
                                    <td>{p.name.clone()}</td>
                                    <td>{p.amount.clone()}</td>
                                    <td>{p.date.clone()}</td>
                                    <td>{p.status.clone()}</td>
                                </tr>
                            }).collect_view()}
                        </tbody>
                    </table>
                }.into_any()
            }}
        </section>

        <section class="panel" aria-labelledby="invoices-heading">
            <h2 id="invoices-heading">"Invoices"</h2>
            {if view.invoices.is_empty() {
                view! { <p class="muted">"No invoices yet."</p> }.into_any()
            } else {
                view! {
                    <table class="table" data-testid="invoices">
                        <thead><tr><th>"Invoice"</th><th>"Amount"</th><th>"Date"</th><th>"Status"</th><th></th></tr></thead>
                        <tbody>
                            {view.invoices.iter().map(|inv| view! {
                                <tr>
                                    <td>{inv.number.clone()}</td>
                                    <td>{inv.amount.clone()}</td>
                                    <td>{inv.date.clone()}</td>
                                    <td>{inv.status.clone()}</td>
                                    <td>
                                        {inv.hosted_url.clone().map(|url| view! { <a href=url rel="noopener">"View"</a> })}
                                        " "
                                        {inv.pdf_url.clone().map(|url| view! { <a href=url rel="noopener">"PDF"</a> })}
                                    </td>
                                </tr>
                            }).collect_view()}
                        </tbody>
                    </table>
                }.into_any()
            }}
        </section>
    }
}
