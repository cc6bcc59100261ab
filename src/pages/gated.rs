//! `/app`: the product surface of the example — the account's meters (used /
//! limit, when they reset, credits left), an action that uses a metered
//! feature, one that creates and removes a counted item, and the paywall when
//! a limit is reached (a bigger plan, or a pack of credits). Every action goes
//! through `entitlements::ledger`, as the product's own code would.
//! Server-rendered plain forms (no wasm).

use leptos::prelude::*;
use leptos_router::{components::A, hooks::use_query_map};

use crate::{
    components::form_post::url_of,
    views::{GateView, MeterView, PaywallView, WorkspaceView},
};

#[server(endpoint = "load_gate")]
pub async fn load_gate(limit: Option<String>) -> Result<GateView, ServerFnError> {
    use crate::{request, views::build};
    request::run(async {
        // The page cache built this very view for its key: show exactly it.
        if let Some(view) = request::known_viewer().and_then(|v| v.workspace().cloned()) {
            if limit.is_none() {
                return Ok(GateView::Open(view));
            }
        }
        let Some(member) = request::current_member().await? else {
            return Ok(GateView::SignedOut);
        };
        let billing = &request::state().billing;
        let view = build::workspace(billing, &member, limit.as_deref(), fresh_key()).await?;
        Ok(GateView::Open(view))
    })
    .await
}

/// A random idempotency key for one render's forms.
#[cfg(feature = "ssr")]
pub fn fresh_key() -> String {
    use argon2::password_hash::rand_core::{OsRng, RngCore};
    let mut bytes = [0u8; 16];
    OsRng.fill_bytes(&mut bytes);
    format!("form_{}", hex::encode(bytes))
}

#[cfg(feature = "ssr")]
mod act {
    use crate::{
        entitlements::UsageError,
        limits,
        request::{self, FnError},
        teams::Member,
    };

    /// The signed-in member, after one use of the workspace-actions limit.
    pub async fn member() -> Result<Member, FnError> {
        request::require_member_within(
            limits::APP_ACTIONS_PER_USER,
            "Too many actions. Wait a minute and try again.",
        )
        .await
    }

    /// Back to the workspace; a refusal shows the paywall for `feature`.
    pub fn back<T>(feature: &str, result: Result<T, UsageError>) -> Result<(), FnError> {
        match result {
            Ok(_) => {
                leptos_axum::redirect("/app");
                Ok(())
            }
            Err(UsageError::Exhausted(_)) => {
                leptos_axum::redirect(&format!("/app?limit={}", urlencode(feature)));
                Ok(())
            }
            Err(err) => Err(err.into()),
        }
    }

    fn urlencode(text: &str) -> String {
        url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
    }
}

/// Uses `amount` units of a metered feature (the example's "make API calls").
#[server(endpoint = "use_feature")]
pub async fn use_feature(feature: String, amount: i64, key: String) -> Result<(), ServerFnError> {
    use crate::{entitlements::ledger, request};
    request::run(async {
        let member = act::member().await?;
        let billing = &request::state().billing;
        let result = ledger::track(billing, member.account.id, &feature, amount, Some(&key)).await;
        act::back(&feature, result)
    })
    .await
}

/// Creates one item of a counted feature (the example's "projects").
#[server(endpoint = "add_item")]
pub async fn add_item(feature: String, key: String) -> Result<(), ServerFnError> {
    use crate::{entitlements::ledger, request};
    request::run(async {
        let member = act::member().await?;
        let billing = &request::state().billing;
        let result = ledger::track(billing, member.account.id, &feature, 1, Some(&key)).await;
        act::back(&feature, result)
    })
    .await
}

/// Removes one item of a counted feature.
#[server(endpoint = "remove_item")]
pub async fn remove_item(feature: String) -> Result<(), ServerFnError> {
    use crate::{entitlements::ledger, request};
    request::run(async {
        let member = act::member().await?;
        let billing = &request::state().billing;
        let result = ledger::untrack(billing, member.account.id, &feature, 1).await;
        act::back(&feature, result)
    })
    .await
}

/// A refusal carried back in the URL by a form posted without JavaScript.
#[component]
fn Returned() -> impl IntoView {
    crate::components::form_post::any_returned_failure()
        .map(|message| view! { <p class="form-error" role="alert">{message}</p> })
}

#[component]
pub fn GatedPage() -> impl IntoView {
    let limit = use_query_map().with_untracked(|q| q.get("limit"));
    let gate = OnceResource::new_blocking(load_gate(limit));
    view! {
        <super::PageTitle text="Your workspace" />
        <section class="app-area">
            <h1>"Your workspace"</h1>
            <Returned />
            <Suspense fallback=|| view! { <p>"Loading…"</p> }>
                // Awaited, never `.get()`: see `UserMenu`.
                {move || Suspend::new(async move { match gate.await {
                    Ok(GateView::Open(view)) => workspace(view).into_any(),
                    Ok(GateView::SignedOut) => view! {
                        <section class="panel" data-testid="app-closed">
                            <p>"Sign in to open your workspace."</p>
                            <A href="/login?next=/app" attr:class="button">"Sign in"</A>
                        </section>
                    }.into_any(),
                    Err(err) => view! {
                        <p class="form-error" role="alert">{crate::components::toast::readable(&err)}</p>
                    }.into_any(),
                }})}
            </Suspense>
        </section>
    }
}

fn workspace(view: WorkspaceView) -> impl IntoView {
    let WorkspaceView {
        plan_name,
        paid,
        meters,
        credits,
        form_key,
        paywall,
        can_buy,
    } = view;
    let actions: Vec<MeterView> = meters
        .iter()
        .filter(|m| m.kind != "boolean")
        .cloned()
        .collect();
    view! {
        <section class="panel" data-testid="app-open" data-paid=paid.to_string()>
            <p data-testid="app-plan">{format!("You are on the {plan_name} plan.")}</p>
            <Meters meters=meters credits />
        </section>
        {paywall.map(|wall| paywall_panel(wall, can_buy))}
        <section class="panel">
            <h2>"Try it"</h2>
            {actions.into_iter().map(|meter| action(meter, form_key.clone())).collect_view()}
        </section>
    }
}

fn action(meter: MeterView, key: String) -> impl IntoView {
    let feature = meter.feature.clone();
    if meter.kind == "metered" {
        let id = format!("use-{feature}");
        view! {
            <form method="post" action={url_of::<UseFeature>()} class="inline" data-testid=format!("use-{feature}")>
                <input type="hidden" name="feature" value=feature.clone() />
                <input type="hidden" name="key" value=format!("{key}-{feature}") />
                <label for=id.clone()>{format!("{} to make", meter.name)}</label>
                <input id=id name="amount" type="number" min="1" max="1000000" value="1" inputmode="numeric" />
                <button type="submit" class="button">{format!("Use {}", meter.name)}</button>
            </form>
        }
        .into_any()
    } else {
        view! {
            <div class="inline" data-testid=format!("items-{}", meter.feature)>
                <form method="post" action={url_of::<AddItem>()} class="inline">
                    <input type="hidden" name="feature" value=feature.clone() />
                    <input type="hidden" name="key" value=format!("{key}-{feature}") />
                    <button type="submit" class="button">{format!("Create a {}", meter.unit)}</button>
                </form>
                <form method="post" action={url_of::<RemoveItem>()} class="inline">
                    <input type="hidden" name="feature" value=feature />
                    <button type="submit" class="button button-secondary" disabled=meter.used < 1>
                        {format!("Delete a {}", meter.unit)}
                    </button>
                </form>
            </div>
        }
        .into_any()
    }
}

fn paywall_panel(wall: PaywallView, can_buy: bool) -> impl IntoView {
    view! {
        <section class="panel paywall" data-testid="paywall" role="status">
            <h2>{format!("You have reached your {} limit", wall.feature_name)}</h2>
            <p>{wall.message}</p>
            <p class="paywall-actions">
                <A href="/pricing" attr:class="button">"See bigger plans"</A>
                {match (wall.pack, can_buy) {
                    (Some((plan, label)), true) => view! {
                        <form method="post" action={url_of::<super::pricing::StartCheckout>()} class="inline">
                            <input type="hidden" name="plan" value=plan />
                            <button type="submit" class="button button-secondary">{label}</button>
                        </form>
                    }.into_any(),
                    (Some(_), false) => view! {
                        <span>"An owner or admin of this organization can buy credits."</span>
                    }.into_any(),
                    (None, _) => ().into_any(),
                }}
            </p>
        </section>
    }
}

/// The meters: used of limit with a bar, when it resets, and the credits left.
#[component]
pub fn Meters(meters: Vec<MeterView>, credits: i64) -> impl IntoView {
    view! {
        <ul class="meters" data-testid="meters">
            {meters.into_iter().map(|m| {
                view! {
                    <li data-testid=format!("meter-{}", m.feature) data-exhausted=m.exhausted.to_string()>
                        <span>{m.text}</span>
                        // A native meter: the page's CSP allows no inline styles.
                        {m.percent.map(|p| view! {
                            <meter class="meter-bar" min="0" max="100" high="90" value=p.to_string() aria-hidden="true"></meter>
                        })}
                        {m.resets_on.map(|on| view! { <small>{format!(" resets on {on}")}</small> })}
                    </li>
                }
            }).collect_view()}
            <li data-testid="credits">{format!("Credits left: {credits}")}</li>
        </ul>
    }
}
