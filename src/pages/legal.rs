//! The legal pages the customer portal links to. Placeholders: replace the text
//! with your own before going live.

use leptos::prelude::*;

#[component]
pub fn PrivacyPolicyPage() -> impl IntoView {
    view! {
        <super::PageTitle text="Privacy policy" />
        <article class="panel legal">
            <h1>"Privacy policy"</h1>
            <p class="muted">"Placeholder: replace this page (src/pages/legal.rs) with your privacy policy."</p>
            <p>
                "We store your email address, a hash of your password, and the identifiers of your "
                "Stripe customer, subscriptions and purchases. Card details are handled by Stripe and "
                "never reach our servers."
            </p>
        </article>
    }
}

#[component]
pub fn TermsOfServicePage() -> impl IntoView {
    view! {
        <super::PageTitle text="Terms of service" />
        <article class="panel legal">
            <h1>"Terms of service"</h1>
            <p class="muted">"Placeholder: replace this page (src/pages/legal.rs) with your terms."</p>
            <p>
                "Subscriptions renew automatically until canceled. You can cancel at any time from the "
                "billing page; access continues until the end of the paid period."
            </p>
        </article>
    }
}
