//! The app's pages; each module holds a page and the server functions it calls.

pub mod account;
pub mod account_forms;
pub mod admin;
pub mod auth;
pub mod billing;
pub mod email_links;
pub mod gated;
pub mod home;
pub mod legal;
pub mod not_found;
pub mod pricing;
pub mod team;

/// Percent-encodes a path for a `next=` query parameter.
pub(crate) fn encode_next(path: &str) -> String {
    path.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn next_keeps_its_whole_query() {
        assert_eq!(
            super::encode_next("/pricing?interval=yearly&plan=premium"),
            "/pricing%3Finterval%3Dyearly%26plan%3Dpremium"
        );
    }
}

/// The document's `<title>` for a page: "Pricing — Billing Starter".
#[leptos::component]
pub fn PageTitle(text: &'static str) -> impl leptos::IntoView {
    leptos::view! { <leptos_meta::Title text=format!("{text} — Billing Starter") /> }
}
