//! The header badge that says which Stripe the app is talking to, so nobody mistakes
//! the emulator or test mode for real payments.

use leptos::prelude::*;

/// "Test mode — emulator", "Test mode", or nothing in live mode. A plain component
/// (not an island): it renders on the server only, straight from the configuration,
/// with no server function or resource on every page's way out.
#[component]
pub fn ModeBadge() -> impl IntoView {
    mode_label().map(|text| view! { <span class="mode-badge" role="note">{text}</span> })
}

#[cfg(feature = "ssr")]
fn mode_label() -> Option<&'static str> {
    use crate::config::{KeyMode, StripeBackend};

    // Absent only while Leptos walks the routes at start-up.
    let state = use_context::<crate::state::AppState>()?;
    match state.config().stripe.backend {
        StripeBackend::Emulator { .. } => Some("Test mode — emulator"),
        StripeBackend::Stripe {
            mode: KeyMode::Test,
            ..
        } => Some("Test mode"),
        StripeBackend::Stripe {
            mode: KeyMode::Live,
            ..
        } => None,
    }
}

#[cfg(not(feature = "ssr"))]
fn mode_label() -> Option<&'static str> {
    None
}
