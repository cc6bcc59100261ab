//! One island for the account's forms (settings, reset, forgot password):
//! the fields are data, so each form is not a wasm island of its own. Every
//! server function behind them answers with a redirect to a page carrying a
//! fixed notice code, so they work the same with and without JavaScript.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::components::form_post::{PostForm, Submission};

/// One input of a form.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Field {
    pub name: String,
    pub label: String,
    /// `email`, `password` or `hidden`.
    pub kind: String,
    pub autocomplete: String,
    /// For hidden fields (a link's token).
    pub value: String,
}

impl Field {
    pub fn new(
        name: &'static str,
        label: &'static str,
        kind: &'static str,
        autocomplete: &'static str,
    ) -> Self {
        Field {
            name: name.to_owned(),
            label: label.to_owned(),
            kind: kind.to_owned(),
            autocomplete: autocomplete.to_owned(),
            value: String::new(),
        }
    }

    pub fn hidden(name: &'static str, value: String) -> Self {
        Field {
            name: name.to_owned(),
            label: String::new(),
            kind: "hidden".to_owned(),
            autocomplete: "off".to_owned(),
            value,
        }
    }
}

#[island(lazy)]
pub fn AccountForm(
    action: String,
    fields: Vec<Field>,
    button: String,
    /// Styles the button as a destructive action.
    #[prop(optional)]
    danger: Option<bool>,
) -> impl IntoView {
    let submission = Submission::new();
    let class = if danger.unwrap_or(false) {
        "button button-danger"
    } else {
        "button"
    };
    let form_id = format!("form-{}", action.trim_start_matches("/api/"));
    view! {
        <PostForm action=action submission=submission>
            {fields
                .into_iter()
                .map(|field| {
                    let id = format!("{form_id}-{}", field.name);
                    if field.kind == "hidden" {
                        view! { <input type="hidden" name=field.name value=field.value /> }.into_any()
                    } else {
                        view! {
                            <label for=id.clone()>{field.label}</label>
                            <input
                                id=id
                                name=field.name
                                type=field.kind
                                autocomplete=field.autocomplete
                                required
                            />
                        }
                            .into_any()
                    }
                })
                .collect_view()}
            <button type="submit" class=class disabled=move || submission.pending()>
                {button}
            </button>
        </PostForm>
        <p class="form-error" role="alert">{move || submission.error()}</p>
    }
}

/// The fixed notices a redirect may ask a page to show (`?notice=…`): only
/// these texts, never one taken from the URL.
pub fn notice_text(code: &str) -> Option<&'static str> {
    Some(match code {
        "verification_sent" => "We sent you a new confirmation link. It works for 24 hours.",
        "password_changed" => "Your password is changed. Your other sessions are signed out.",
        "email_change_sent" => {
            "We sent a confirmation link to your new address. Your email changes once you open it."
        }
        "reset_sent" => {
            "If an account uses that address, we sent it a link to choose a new password. It works for one hour."
        }
        "password_reset" => "Your password is changed and every session signed out. Sign in with the new password.",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_known_codes_have_a_notice() {
        for code in [
            "verification_sent",
            "password_changed",
            "email_change_sent",
            "reset_sent",
            "password_reset",
        ] {
            assert!(super::notice_text(code).is_some(), "{code}");
        }
        assert_eq!(super::notice_text("<script>"), None);
        assert_eq!(super::notice_text(""), None);
    }
}
