//! `/pricing`: the plan grid from the catalog, a monthly/yearly toggle kept in the
//! URL (`?interval=yearly`, so the server renders the chosen interval and links
//! work before hydration), and a call to action per plan that posts to
//! `start_checkout` — a plain form without JavaScript, a pending button with it.
//!
//! The page is server-rendered, both intervals of it: what depends on the
//! interval (a card's price and call to action, the offer to resume a choice)
//! is rendered for the interval asked for, with the other interval's version
//! beside it in an inert `<template>`. The grid's island has no props: it swaps
//! those parts when the toggle is used, and posts the calls to action. So the
//! browser carries no pricing data, no decoder for it and no rendering code for
//! the cards (issue 23's payload goal), and the toggle needs no round trip.

use leptos::prelude::*;
use leptos_router::hooks::use_query_map;

use crate::{
    catalog::BillingType,
    components::{
        form_post::{url_of, Submission},
        toast::{Toast, ToastKind},
    },
    views::{CardOffer, PlanCard, PricingView},
};

#[server(endpoint = "load_pricing")]
pub async fn load_pricing() -> Result<PricingView, ServerFnError> {
    use crate::request;
    request::run(async {
        if let Some(view) = request::known_viewer().and_then(|v| v.pricing().cloned()) {
            return Ok(view);
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
    // Read on the server: the cards are rendered for the interval asked for.
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
                                view! {
                                    <PricingGrid>
                                        <PricingContent view yearly resume_plan />
                                    </PricingGrid>
                                }
                                    .into_any()
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

/// The live part of the grid. Its content is the server's HTML (`PricingContent`,
/// rendered inside it and never in the browser); the island only handles what
/// happens there: the toggle (`live::show` swaps each interval's parts), back and
/// forward through toggled intervals, and the calls to action, posted with
/// `fetch` (a pending button, the error toast of a failed checkout).
#[island]
fn PricingGrid(children: Children) -> impl IntoView {
    // Also shows the failure of a checkout posted before the page was live.
    let checkout = Submission::returned(url_of::<StartCheckout>());
    let toast = Signal::derive(move || checkout.error().map(|text| (ToastKind::Error, text)));
    let root = NodeRef::<leptos::html::Div>::new();
    #[cfg(feature = "hydrate")]
    let (on_click, on_key, on_submit) = live::handlers(root, checkout);
    #[cfg(not(feature = "hydrate"))]
    let (on_click, on_key, on_submit) = (
        |_: leptos::ev::MouseEvent| {},
        |_: leptos::ev::KeyboardEvent| {},
        |_: leptos::ev::SubmitEvent| {},
    );
    view! {
        // Above the cards, where the click was: in the flow, never over them.
        <Toast message=toast />
        <div class="pricing-grid" node_ref=root on:click=on_click on:keydown=on_key on:submit=on_submit>
            {children()}
        </div>
    }
}

/// Whether the `interval` query value asks for yearly prices (the server's first
/// render and the browser's back/forward read it alike).
fn is_yearly(interval: Option<&str>) -> bool {
    matches!(interval, Some("yearly" | "year"))
}

/// The interval a part shows, as `data-shown` names it.
fn interval_name(yearly: bool) -> &'static str {
    if yearly {
        "yearly"
    } else {
        "monthly"
    }
}

fn interval_word(billing: BillingType, yearly: bool) -> &'static str {
    match billing {
        BillingType::OneTime => "one_time",
        _ => interval_name(yearly),
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

/// A toggle option's `aria-checked` and `tabindex`: only the checked option is
/// in the tab order, as in any radio group (the server's render and the
/// island's switch set them alike).
fn checked_state(checked: bool) -> (&'static str, &'static str) {
    if checked {
        ("true", "0")
    } else {
        ("false", "-1")
    }
}

/// The grid's content, rendered on the server only: the toggle, the offer to
/// resume a choice made before signing in, and the cards.
#[component]
fn PricingContent(view: PricingView, yearly: bool, resume_plan: Option<String>) -> impl IntoView {
    // Without a yearly price there is no toggle, so nothing ever swaps.
    let switchable = view.has_yearly;
    let signed_in = view.signed_in;
    let resume_card = resume_plan
        .as_deref()
        .and_then(|id| view.cards.iter().find(|c| c.id == id));
    let resume = resume_card
        .filter(|_| signed_in)
        .map(|card| interval_part("resume-slot", yearly, !switchable, |y| resume(card, y)));
    let cards = view
        .cards
        .iter()
        .map(|card| plan_card(card, yearly, signed_in, switchable))
        .collect_view();
    view! {
        {switchable.then(|| view! { <IntervalToggle yearly /> })}
        {resume}
        <div class="plan-grid">{cards}</div>
    }
}

/// A part of the page that depends on the interval: rendered for `yearly`, with
/// the other interval's version in an inert `<template>` beside it, which the
/// island swaps in (`live::show`). A part that is the same either way (`same`)
/// is rendered once.
fn interval_part<V: IntoView + 'static>(
    class: &'static str,
    yearly: bool,
    same: bool,
    render: impl Fn(bool) -> V,
) -> AnyView {
    if same {
        view! { <div class=class>{render(yearly)}</div> }.into_any()
    } else {
        view! {
            <div class=class data-shown=interval_name(yearly)>
                {render(yearly)}
                <template>{render(!yearly)}</template>
            </div>
        }
        .into_any()
    }
}

/// A radio group of two links: each is a real URL (`?interval=…`) that works
/// without JavaScript; with it, the island switches in place on a click or an
/// arrow key and records the URL in history, as in any radio group.
#[component]
fn IntervalToggle(yearly: bool) -> impl IntoView {
    let option = |is_yearly: bool| {
        let (id, href, label) = interval_option(is_yearly);
        let (aria_checked, tabindex) = checked_state(yearly == is_yearly);
        view! {
            <a
                href=href
                id=id
                role="radio"
                class="interval-option"
                aria-checked=aria_checked
                tabindex=tabindex
            >
                {label}
            </a>
        }
    };
    view! {
        <div class="interval-toggle" role="radiogroup" aria-label="Billing interval">
            {option(false)}
            {option(true)}
        </div>
    }
}

fn offer(card: &PlanCard, yearly: bool) -> &CardOffer {
    if yearly {
        &card.yearly
    } else {
        &card.monthly
    }
}

fn plan_card(card: &PlanCard, yearly: bool, signed_in: bool, switchable: bool) -> AnyView {
    let heading_id = format!("plan-{}", card.id);
    let same_price = !switchable || card.monthly.price == card.yearly.price;
    let same_cta = !switchable
        || (card.monthly.cta == card.yearly.cta
            && interval_word(card.billing, false) == interval_word(card.billing, true));
    let price = |yearly: bool| {
        offer(card, yearly).price.clone().map(|price| {
            view! {
                <p class="price">{price.label}</p>
                {price.note.map(|note| view! { <p class="price-note">{note}</p> })}
                {price.savings.map(|s| view! { <p class="savings">{s}</p> })}
            }
        })
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
            {interval_part("price-block", yearly, same_price, price)}
            <ul class="features">
                {card.features.iter().map(|f| view! { <li>{f.clone()}</li> }).collect_view()}
            </ul>
            {interval_part("cta-slot", yearly, same_cta, |y| call_to_action(card, y, signed_in))}
        </article>
    }
    .into_any()
}

fn call_to_action(card: &PlanCard, yearly: bool, signed_in: bool) -> AnyView {
    let offer = offer(card, yearly);
    let interval = interval_word(card.billing, yearly);
    if offer.cta.disabled {
        view! {
            <button type="button" class="button cta" disabled>
                {offer.cta.text.clone()}
            </button>
        }
        .into_any()
    } else if !signed_in {
        // Sign in (or up, for the free plan) and come back to this choice.
        let href = if card.billing == BillingType::Free {
            "/signup?next=/pricing".to_owned()
        } else {
            let back = format!("/pricing?interval={interval}&plan={}", card.id);
            format!("/login?next={}", super::encode_next(&back))
        };
        view! {
            <a class="button cta" href=href>
                {offer.cta.text.clone()}
            </a>
        }
        .into_any()
    } else {
        checkout_form(&card.id, interval, &offer.cta.text).into_any()
    }
}

/// Back from sign-in with a plan chosen: offer to continue where they left off.
fn resume(card: &PlanCard, yearly: bool) -> Option<AnyView> {
    let offer = offer(card, yearly);
    (!offer.cta.disabled && card.billing != BillingType::Free).then(|| {
        view! {
            <div class="resume panel" role="region" aria-label="Continue">
                <p>{format!("Continue with {}?", card.name)}</p>
                {checkout_form(&card.id, interval_word(card.billing, yearly), &offer.cta.text)}
            </div>
        }
        .into_any()
    })
}

/// The call to action as a form: posts without JavaScript; with it, the island
/// sends it and shows it pending (ignoring further clicks) until Stripe's page
/// opens.
fn checkout_form(plan: &str, interval: &'static str, text: &str) -> impl IntoView {
    view! {
        <form method="post" action={url_of::<StartCheckout>()} class="cta-form">
            <input type="hidden" name="plan" value=plan.to_owned() />
            <input type="hidden" name="interval" value=interval />
            <button type="submit" class="button cta" aria-busy="false">
                {text.to_owned()}
            </button>
        </form>
    }
}

/// The island's work in the browser, on the server's HTML.
#[cfg(feature = "hydrate")]
mod live {
    use leptos::{
        ev::{KeyboardEvent, MouseEvent, SubmitEvent},
        prelude::*,
        wasm_bindgen::{JsCast, JsValue},
        web_sys::{Element, HtmlElement, HtmlFormElement, HtmlTemplateElement},
    };

    use super::{checked_state, interval_name, interval_option, is_yearly};
    use crate::components::form_post::{self, Submission};

    type Root = NodeRef<leptos::html::Div>;

    /// The grid's click, keydown and submit handlers, and its listeners for
    /// back/forward and for the end of a checkout post.
    pub fn handlers(
        root: Root,
        checkout: Submission,
    ) -> (
        impl Fn(MouseEvent) + 'static,
        impl Fn(KeyboardEvent) + 'static,
        impl Fn(SubmitEvent) + 'static,
    ) {
        let listener = window_event_listener(leptos::ev::popstate, move |_| {
            let search = window().location().search().unwrap_or_default();
            let interval = search
                .trim_start_matches('?')
                .split('&')
                .find_map(|pair| pair.strip_prefix("interval="));
            if let Some(root) = root.get_untracked() {
                show(&root, is_yearly(interval));
            }
        });
        on_cleanup(move || listener.remove());
        // A post that failed, or a page restored by the back button: live again.
        Effect::new(move |_| {
            if !checkout.pending() {
                if let Some(root) = root.get_untracked() {
                    idle(&root);
                }
            }
        });

        let on_click = move |ev: MouseEvent| {
            // A modified click keeps its meaning (new tab, new window).
            if ev.ctrl_key() || ev.meta_key() || ev.shift_key() || ev.button() != 0 {
                return;
            }
            let option = target(&ev).and_then(|t| t.closest(".interval-option").ok().flatten());
            if let (Some(option), Some(root)) = (option, root.get_untracked()) {
                ev.prevent_default();
                select(&root, option.id() == interval_option(true).0);
            }
        };
        let on_key = move |ev: KeyboardEvent| {
            let to_yearly = match ev.key().as_str() {
                "ArrowRight" | "ArrowDown" => true,
                "ArrowLeft" | "ArrowUp" => false,
                _ => return,
            };
            let in_toggle = target(&ev)
                .and_then(|t| t.closest(".interval-toggle").ok().flatten())
                .is_some();
            if let (true, Some(root)) = (in_toggle, root.get_untracked()) {
                ev.prevent_default();
                select(&root, to_yearly);
            }
        };
        let on_submit = move |ev: SubmitEvent| {
            let Some(form) = target(&ev).and_then(|t| t.dyn_into::<HtmlFormElement>().ok()) else {
                return;
            };
            ev.prevent_default();
            if form_post::post(form.clone(), checkout) {
                if let Some(root) = root.get_untracked() {
                    busy(&root, &form);
                }
            }
        };
        (on_click, on_key, on_submit)
    }

    fn target(ev: &leptos::web_sys::Event) -> Option<Element> {
        ev.target().and_then(|t| t.dyn_into::<Element>().ok())
    }

    /// Switches to `yearly` as a radio group does: the URL recorded in history,
    /// focus kept on the checked option.
    fn select(root: &Element, yearly: bool) {
        show(root, yearly);
        let (id, href, _) = interval_option(yearly);
        if let Ok(history) = window().history() {
            let _ = history.push_state_with_url(&JsValue::NULL, "", Some(href));
        }
        if let Some(option) = document()
            .get_element_by_id(id)
            .and_then(|e| e.dyn_into::<HtmlElement>().ok())
        {
            let _ = option.focus();
        }
    }

    /// Shows `yearly`'s prices and calls to action: the toggle's options are
    /// checked accordingly, and every part showing the other interval trades
    /// places with the version kept in its `<template>`.
    pub fn show(root: &Element, yearly: bool) {
        for option_yearly in [false, true] {
            let (id, _, _) = interval_option(option_yearly);
            if let Some(option) = document().get_element_by_id(id) {
                let (aria_checked, tabindex) = checked_state(option_yearly == yearly);
                let _ = option.set_attribute("aria-checked", aria_checked);
                let _ = option.set_attribute("tabindex", tabindex);
            }
        }
        let wanted = interval_name(yearly);
        for slot in all(root, "[data-shown]") {
            if slot.get_attribute("data-shown").as_deref() != Some(wanted) {
                swap(&slot);
                let _ = slot.set_attribute("data-shown", wanted);
            }
        }
    }

    /// Moves the part's shown nodes into its template and the template's into view.
    fn swap(part: &Element) {
        let Some(template) = part
            .last_element_child()
            .and_then(|e| e.dyn_into::<HtmlTemplateElement>().ok())
        else {
            return;
        };
        let shown = document().create_document_fragment();
        while let Some(node) = part.first_child() {
            if node.is_same_node(Some(&template)) {
                break;
            }
            let _ = shown.append_child(&node);
        }
        let _ = part.insert_before(&template.content(), Some(&template));
        let _ = template.content().append_child(&shown);
    }

    fn all(root: &Element, selector: &str) -> Vec<Element> {
        elements(root.query_selector_all(selector))
    }

    /// As `all`, with the other interval's parts kept in templates: a toggle while
    /// a checkout is on its way brings them into view.
    fn all_with_templates(root: &Element, selector: &str) -> Vec<Element> {
        let mut found = all(root, selector);
        for template in all(root, "template") {
            if let Ok(template) = template.dyn_into::<HtmlTemplateElement>() {
                found.extend(elements(template.content().query_selector_all(selector)));
            }
        }
        found
    }

    fn elements(list: Result<leptos::web_sys::NodeList, JsValue>) -> Vec<Element> {
        let Ok(list) = list else {
            return Vec::new();
        };
        (0..list.length())
            .filter_map(|i| list.item(i).and_then(|n| n.dyn_into::<Element>().ok()))
            .collect()
    }

    /// While a checkout is on its way every call to action is disabled, and the
    /// pressed one says where it is going.
    fn busy(root: &Element, pressed: &HtmlFormElement) {
        for button in all_with_templates(root, "button.cta:not([disabled])") {
            let _ = button.set_attribute("disabled", "");
            let _ = button.set_attribute("data-busy", "");
        }
        if let Ok(Some(button)) = pressed.query_selector("button[type=submit]") {
            let _ = button.set_attribute("data-label", &button.text_content().unwrap_or_default());
            button.set_text_content(Some("Redirecting…"));
            let _ = button.set_attribute("aria-busy", "true");
        }
    }

    /// Undoes `busy`.
    fn idle(root: &Element) {
        for button in all_with_templates(root, "[data-busy]") {
            let _ = button.remove_attribute("disabled");
            let _ = button.remove_attribute("data-busy");
        }
        for button in all_with_templates(root, "[data-label]") {
            button.set_text_content(button.get_attribute("data-label").as_deref());
            let _ = button.remove_attribute("data-label");
            let _ = button.set_attribute("aria-busy", "false");
        }
    }
}
