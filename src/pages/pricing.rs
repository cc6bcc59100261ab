//! `/pricing`: the plan grid from the catalog, a monthly/yearly toggle kept in the
//! URL (`?interval=yearly`, so the server renders the chosen interval and links
//! work before hydration), and a call to action per plan that posts to
//! `start_checkout` — a plain form without JavaScript, a pending button with it.
//!
//! The page is server-rendered; the grid is one island whose props are the
//! server's `PricingView` (both intervals already formatted), so the toggle
//! switches instantly in the browser without any money logic in the wasm.

use leptos::prelude::*;
use leptos_router::hooks::use_query_map;

use crate::{
    catalog::BillingType,
    components::{
        form_post::{url_of, PostForm, Submission},
        toast::{Toast, ToastKind},
    },
    views::{CardOffer, PlanCard, PricingView},
};

#[server(endpoint = "load_pricing")]
pub async fn load_pricing() -> Result<PricingView, ServerFnError> {
    use crate::request;
    request::run(async {
        if let Some(viewer) = request::known_viewer() {
            return Ok(viewer.pricing().clone());
        }
        let member = request::current_member().await?;
        Ok(request::state()
            .pricing_view(member.map(|m| m.account.id))
            .await?)
    })
    .await
}

/// Starts paying for `plan`: a Checkout Session, a plan change in the portal, or
/// nothing for the free plan. The user comes from the session; the plan is the
/// catalog's conceptual id, never a Stripe price id from the browser.
#[server(endpoint = "start_checkout")]
pub async fn start_checkout(plan: String, interval: Option<String>) -> Result<(), ServerFnError> {
    use crate::{
        billing::service::{self, Next},
        catalog::Interval,
        request::{self, FnError},
    };
    use axum::http::StatusCode;

    request::run(async {
        let member = request::require_member().await?;
        request::limit_stripe_actions(&member.user).await?;
        let interval = match interval.as_deref().unwrap_or("monthly") {
            "month" | "monthly" => Interval::Month,
            "year" | "yearly" => Interval::Year,
            "one_time" => Interval::OneTime,
            _ => {
                return Err(FnError::User(
                    StatusCode::BAD_REQUEST,
                    "Choose monthly or yearly billing.",
                ))
            }
        };
        let billing = &request::state().billing;
        let (Next::Stripe(url) | Next::App(url)) =
            service::start_checkout(billing, &member, &plan, interval).await?;
        leptos_axum::redirect(&url);
        Ok(())
    })
    .await
}

#[component]
pub fn PricingPage() -> impl IntoView {
    // Read on the server: the island gets plain values, not the router.
    let (yearly, resume_plan) = use_query_map()
        .with_untracked(|q| (is_yearly(q.get("interval").as_deref()), q.get("plan")));
    let pricing = OnceResource::new_blocking(load_pricing());

    view! {
        <super::PageTitle text="Pricing" />
        <section class="pricing">
            <h1>"Pricing"</h1>
            <p class="lead">"Start free. Upgrade when you need more. Cancel any time."</p>
            <Suspense fallback=|| view! { <p>"Loading plans…"</p> }>
                // Awaited, never `.get()`: see `UserMenu`.
                {move || {
                    let resume_plan = resume_plan.clone();
                    Suspend::new(async move {
                        match pricing.await {
                            Ok(view) => {
                                view! { <PricingGrid view yearly resume_plan /> }.into_any()
                            }
                            Err(err) => {
                                view! {
                                    <p class="form-error" role="alert">
                                        {crate::components::toast::readable(&err)}
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

/// The interactive part of the page: toggle, cards, calls to action and the
/// error toast of a failed checkout.
#[island]
fn PricingGrid(view: PricingView, yearly: bool, resume_plan: Option<String>) -> impl IntoView {
    let (yearly, set_yearly) = signal(yearly);
    let yearly = Signal::from(yearly);
    let checkout = Submission::new();
    let toast = Signal::derive(move || checkout.error().map(|text| (ToastKind::Error, text)));
    // Back and forward through toggled intervals.
    #[cfg(feature = "hydrate")]
    {
        let listener = window_event_listener(leptos::ev::popstate, move |_| {
            let search = window().location().search().unwrap_or_default();
            let interval = search
                .trim_start_matches('?')
                .split('&')
                .find_map(|pair| pair.strip_prefix("interval="));
            set_yearly.set(is_yearly(interval));
        });
        on_cleanup(move || listener.remove());
    }

    let signed_in = view.signed_in;
    let cards = view.cards.clone();
    // Back from sign-in with a plan chosen: offer to continue where they left off.
    let resume = move || {
        let plan_id = resume_plan.as_deref()?;
        let card = view.cards.iter().find(|c| c.id == plan_id)?.clone();
        let offer = if yearly.get() {
            &card.yearly
        } else {
            &card.monthly
        };
        (signed_in && !offer.cta.disabled && card.billing != BillingType::Free).then(|| {
            let interval = interval_word(card.billing, yearly.get());
            view! {
                <div class="resume panel" role="region" aria-label="Continue">
                    <p>{format!("Continue with {}?", card.name)}</p>
                    <CheckoutForm
                        plan=card.id.clone()
                        interval
                        text=offer.cta.text.clone()
                        checkout
                    />
                </div>
            }
        })
    };
    view! {
        {view.has_yearly.then(|| view! { <IntervalToggle yearly set_yearly /> })}
        // Above the cards, where the click was: in the flow, never over them.
        <Toast message=toast />
        {resume}
        <div class="plan-grid">
            {cards
                .into_iter()
                .map(|card| view! { <PlanCardView card yearly signed_in checkout /> })
                .collect_view()}
        </div>
    }
}

/// Whether the `interval` query value asks for yearly prices (the server's first
/// render and the browser's back/forward read it alike).
fn is_yearly(interval: Option<&str>) -> bool {
    matches!(interval, Some("yearly" | "year"))
}

fn interval_word(billing: BillingType, yearly: bool) -> &'static str {
    match (billing, yearly) {
        (BillingType::OneTime, _) => "one_time",
        (_, true) => "yearly",
        (_, false) => "monthly",
    }
}

/// A toggle option's element id, URL and label.
fn interval_option(yearly: bool) -> (&'static str, &'static str, &'static str) {
    if yearly {
        ("interval-yearly", "/pricing?interval=yearly", "Yearly")
    } else {
        ("interval-monthly", "/pricing?interval=monthly", "Monthly")
    }
}

/// A radio group of two links: each is a real URL (`?interval=…`) that works
/// without JavaScript; with it, a click or an arrow key switches in place and
/// records the URL in history, as in any radio group.
#[component]
fn IntervalToggle(yearly: Signal<bool>, set_yearly: WriteSignal<bool>) -> impl IntoView {
    let select = move |to_yearly: bool| {
        set_yearly.set(to_yearly);
        let (id, href, _) = interval_option(to_yearly);
        if let Ok(history) = window().history() {
            let _ =
                history.push_state_with_url(&leptos::wasm_bindgen::JsValue::NULL, "", Some(href));
        }
        // Keep focus on the checked option, as a radio group does.
        if let Some(el) = document().get_element_by_id(id) {
            use leptos::wasm_bindgen::JsCast;
            if let Ok(el) = el.dyn_into::<leptos::web_sys::HtmlElement>() {
                let _ = el.focus();
            }
        }
    };
    let on_key = move |ev: leptos::ev::KeyboardEvent| {
        let target = match ev.key().as_str() {
            "ArrowRight" | "ArrowDown" => Some(true),
            "ArrowLeft" | "ArrowUp" => Some(false),
            _ => None,
        };
        if let Some(to_yearly) = target {
            ev.prevent_default();
            select(to_yearly);
        }
    };
    let option = move |is_yearly: bool| {
        let (id, href, label) = interval_option(is_yearly);
        let checked = move || yearly.get() == is_yearly;
        let on_click = move |ev: leptos::ev::MouseEvent| {
            // A modified click keeps its meaning (new tab, new window).
            if ev.ctrl_key() || ev.meta_key() || ev.shift_key() || ev.button() != 0 {
                return;
            }
            ev.prevent_default();
            select(is_yearly);
        };
        view! {
            <a
                href=href
                id=id
                role="radio"
                class="interval-option"
                aria-checked=move || checked().to_string()
                tabindex=move || if checked() { "0" } else { "-1" }
                on:click=on_click
            >
                {label}
            </a>
        }
    };
    view! {
        <div class="interval-toggle" role="radiogroup" aria-label="Billing interval" on:keydown=on_key>
            {option(false)}
            {option(true)}
        </div>
    }
}
#[component]
fn PlanCardView(
    card: PlanCard,
    yearly: Signal<bool>,
    signed_in: bool,
    checkout: Submission,
) -> impl IntoView {
    let billing = card.billing;
    let monthly = card.monthly.clone();
    let yearly_offer = card.yearly.clone();
    let offer = move || -> CardOffer {
        if yearly.get() {
            yearly_offer.clone()
        } else {
            monthly.clone()
        }
    };
    let plan_id = card.id.clone();
    let heading_id = format!("plan-{}", card.id);
    let price = {
        let offer = offer.clone();
        move || {
            offer().price.map(|price| {
                view! {
                    <p class="price">{price.label}</p>
                    {price.note.map(|note| view! { <p class="price-note">{note}</p> })}
                    {price.savings.map(|s| view! { <p class="savings">{s}</p> })}
                }
            })
        }
    };
    let cta = move || {
        let offer = offer();
        let interval = interval_word(billing, yearly.get());
        if offer.cta.disabled {
            view! {
                <button type="button" class="button cta" disabled>
                    {offer.cta.text}
                </button>
            }
            .into_any()
        } else if !signed_in {
            // Sign in (or up, for the free plan) and come back to this choice.
            let back = format!("/pricing?interval={interval}&plan={}", plan_id);
            let href = if billing == BillingType::Free {
                "/signup?next=/pricing".to_owned()
            } else {
                format!("/login?next={}", super::encode_next(&back))
            };
            view! {
                <a class="button cta" href=href>
                    {offer.cta.text}
                </a>
            }
            .into_any()
        } else {
            view! { <CheckoutForm plan=plan_id.clone() interval text=offer.cta.text checkout /> }
                .into_any()
        }
    };
    view! {
        <article
            class="plan-card"
            class:popular=card.popular
            data-plan=card.id.clone()
            aria-labelledby=heading_id.clone()
        >
            {card.popular.then(|| view! { <span class="badge">"Most popular"</span> })}
            <h2 id=heading_id.clone()>{card.name.clone()}</h2>
            <p class="description">{card.description.clone()}</p>
            <div class="price-block">{price}</div>
            <ul class="features">
                {card.features.iter().map(|f| view! { <li>{f.clone()}</li> }).collect_view()}
            </ul>
            {cta}
        </article>
    }
}

/// The call to action as a form: posts without JavaScript, and with it shows a
/// pending state (and ignores further clicks) until Stripe's page opens.
#[component]
fn CheckoutForm(
    plan: String,
    interval: &'static str,
    text: String,
    checkout: Submission,
) -> impl IntoView {
    let this_plan = plan.clone();
    let pending = Signal::derive(move || checkout.pending_for(&this_plan));
    let busy = move || checkout.pending();
    view! {
        <PostForm action={url_of::<StartCheckout>()} submission=checkout tag=plan.clone() class="cta-form">
            <input type="hidden" name="plan" value=plan />
            <input type="hidden" name="interval" value=interval />
            <button type="submit" class="button cta" disabled=busy aria-busy=move || pending.get().to_string()>
                {move || if pending.get() { "Redirecting…".to_owned() } else { text.clone() }}
            </button>
        </PostForm>
    }
}
