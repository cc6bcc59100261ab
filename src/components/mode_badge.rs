//! The header badge that says which Stripe the app is talking to, so nobody mistakes
//! the emulator or test mode for real payments.

use leptos::prelude::*;

/// "Test mode — emulator", "Test mode", or nothing in live mode.
#[server]
pub async fn stripe_mode_label() -> Result<Option<String>, ServerFnError> {
    use crate::config::{KeyMode, StripeBackend};

    let state = expect_context::<crate::server::AppState>();
    Ok(match state.config.stripe.backend {
        StripeBackend::Emulator { .. } => Some("Test mode — emulator".to_owned()),
        StripeBackend::Stripe {
            mode: KeyMode::Test,
            ..
        } => Some("Test mode".to_owned()),
        StripeBackend::Stripe {
            mode: KeyMode::Live,
            ..
        } => None,
    })
}

#[component]
pub fn ModeBadge() -> impl IntoView {
    let label = OnceResource::new(stripe_mode_label());
    view! {
        <Suspense fallback=|| ()>
            {move || {
                label
                    .get()
                    .and_then(Result::ok)
                    .flatten()
                    .map(|text| view! { <span class="mode-badge" role="note">{text}</span> })
            }}
        </Suspense>
    }
}
