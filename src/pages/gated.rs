//! `/app`: the product itself, open only when the access policy says so.

use leptos::prelude::*;
use leptos_router::components::A;

use crate::views::GateView;

#[server(endpoint = "load_gate")]
pub async fn load_gate() -> Result<GateView, ServerFnError> {
    use crate::{catalog::Limit, request};
    request::run(async {
        let Some(member) = request::current_member().await? else {
            return Ok(GateView::SignedOut);
        };
        let billing = &request::state().billing;
        let access = crate::billing::service::access_for(billing, member.account.id).await?;
        let plan_name = access
            .plan_id
            .as_deref()
            .and_then(|id| billing.catalog.plan(id))
            .map(|p| p.name.clone())
            .unwrap_or_default();
        if !access.has_paid_plan() {
            return Ok(GateView::Closed { plan_name });
        }
        let limits = access
            .entitlements
            .iter()
            .map(|(name, limit)| {
                let value = match limit {
                    Limit::Count(n) => n.to_string(),
                    Limit::Unlimited => "unlimited".to_owned(),
                };
                (name.replace('_', " "), value)
            })
            .collect();
        Ok(GateView::Open { plan_name, limits })
    })
    .await
}

#[component]
pub fn GatedPage() -> impl IntoView {
    let gate = Resource::new_blocking(|| (), |_| load_gate());
    view! {
        <super::PageTitle text="Your workspace" />
        <section class="app-area">
            <h1>"Your workspace"</h1>
            <Suspense fallback=|| view! { <p>"Loading…"</p> }>
                // Awaited, never `.get()`: see `UserMenu`.
                {move || Suspend::new(async move { match gate.await {
                    Ok(GateView::Open { plan_name, limits }) => view! {
                        <section class="panel" data-testid="app-open">
                            <p>{format!("Welcome! Your {plan_name} plan is active.")}</p>
                            <ul class="limits">
                                {limits.into_iter().map(|(name, value)| view! {
                                    <li>{format!("{name}: {value}")}</li>
                                }).collect_view()}
                            </ul>
                        </section>
                    }.into_any(),
                    Ok(GateView::Closed { plan_name }) => view! {
                        <section class="panel" data-testid="app-closed">
                            <p>{format!("The workspace is part of the paid plans; you are on {plan_name}.")}</p>
                            <A href="/pricing" attr:class="button">"See plans"</A>
                        </section>
                    }.into_any(),
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
