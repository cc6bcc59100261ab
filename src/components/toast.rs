//! Toasts: short messages about what just happened, announced to screen readers.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ToastKind {
    Success,
    Info,
    Error,
}

impl ToastKind {
    /// For `data-kind` (tests and styling); a literal keeps formatting code out of the wasm.
    fn name(self) -> &'static str {
        match self {
            ToastKind::Success => "success",
            ToastKind::Info => "info",
            ToastKind::Error => "error",
        }
    }

    fn class(self) -> &'static str {
        match self {
            ToastKind::Success => "toast toast-success",
            ToastKind::Info => "toast toast-info",
            ToastKind::Error => "toast toast-error",
        }
    }
}

/// Strips Leptos' error-kind prefix so a person reads the message, not the plumbing.
pub fn readable(err: &ServerFnError) -> String {
    match err {
        ServerFnError::ServerError(message) => message.clone(),
        _ => super::form_post::GENERIC.to_owned(),
    }
}

/// How long a success or information toast stays; an error stays until closed.
pub const AUTO_DISMISS: std::time::Duration = std::time::Duration::from_secs(5);

/// Used inside islands only: the dismiss button needs the wasm. Shown in the
/// page's flow, never over it, so it cannot cover a control.
#[component]
pub fn Toast(#[prop(into)] message: Signal<Option<(ToastKind, String)>>) -> impl IntoView {
    let (dismissed, set_dismissed) = signal(None::<String>);
    let visible = move || {
        message
            .get()
            .filter(|(_, text)| dismissed.get().as_deref() != Some(text.as_str()))
    };
    // Effects run in the browser only: good news goes away by itself.
    Effect::new(move |_| {
        if let Some((kind, text)) = visible() {
            if kind != ToastKind::Error {
                set_timeout(move || set_dismissed.set(Some(text)), AUTO_DISMISS);
            }
        }
    });
    view! {
        <div class="toast-region" role="status" aria-live="polite">
            {move || {
                visible()
                    .map(|(kind, text)| {
                        let shown = text.clone();
                        view! {
                            <div class=kind.class() data-kind=kind.name()>
                                <span class="toast-text">{shown}</span>
                                <button
                                    type="button"
                                    class="toast-close"
                                    aria-label="Dismiss"
                                    on:click=move |_| set_dismissed.set(Some(text.clone()))
                                >
                                    "×"
                                </button>
                            </div>
                        }
                    })
            }}
        </div>
    }
}
