//! Document shell, router and layout shared by every page.

use leptos::{either::Either, prelude::*};
use leptos_meta::{provide_meta_context, MetaTags, Stylesheet, Title};
use leptos_router::{
    components::{Route, Router, Routes},
    path, SsrMode,
};

use crate::{
    components::mode_badge::ModeBadge,
    pages::{
        account::{AccountDeletedPage, AccountPage},
        admin::{
            AdminAccountsPage, AdminAuditPage, AdminCatalogPage, AdminDriftPage, AdminEventPage,
            AdminMailPage, AdminPage,
        },
        auth::{LoginPage, SignUpPage, UserMenu},
        billing::BillingPage,
        email_links::{ConfirmEmailPage, ForgotPasswordPage, ResetPasswordPage, VerifyEmailPage},
        gated::GatedPage,
        home::HomePage,
        legal::{PrivacyPolicyPage, TermsOfServicePage},
        not_found::NotFound,
        pricing::PricingPage,
        team::{AcceptInvitationPage, TeamPage},
    },
};

/// The HTML document the server streams. Runs on the server only, as does every
/// `#[component]` below: in islands mode the browser receives HTML plus the wasm of
/// the `#[island]`s, so navigation is a plain page load and forms post to the server.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    // The page's Content-Security-Policy carries this response's script nonce, so it
    // is set here, where Leptos has generated the nonce, rather than in a layer.
    #[cfg(feature = "ssr")]
    if let Some(state) = use_context::<crate::state::AppState>() {
        state.security.set_page_csp();
    }

    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8" />
                <meta name="viewport" content="width=device-width, initial-scale=1" />
                // Without it every first load asked for /favicon.ico and logged a 404.
                <link rel="icon" href="/favicon.svg" type="image/svg+xml" />
                <AutoReload options=options.clone() />
                <HydrationScripts options islands=true />
                <MetaTags />
            </head>
            <body>
                <App />
            </body>
        </html>
    }
}

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();

    view! {
        <Stylesheet id="leptos" href="/pkg/billing-starter.css" />
        <Title text="Billing Starter" />
        <Router>
            <header class="site-header">
                <SiteLink href="/" class="brand" text="Billing Starter" />
                <nav class="site-nav" aria-label="Main">
                    <SiteLink href="/pricing" text="Pricing" />
                    <SiteLink href="/dashboard/billing" text="Billing" />
                    <SiteLink href="/dashboard/team" text="Team" />
                    <SiteLink href="/app" text="App" />
                </nav>
                <ModeBadge />
                <UserMenu />
            </header>
            <main class="site-main">
                <Routes fallback=NotFound>
                    // InOrder: suspended parts (the account menu) render in place, so
                    // pages are complete without JavaScript.
                    <Route path=path!("/") view=HomePage ssr=SsrMode::InOrder />
                    <Route path=path!("/signup") view=SignUpPage ssr=SsrMode::InOrder />
                    <Route path=path!("/login") view=LoginPage ssr=SsrMode::InOrder />
                    <Route path=path!("/forgot-password") view=ForgotPasswordPage ssr=SsrMode::InOrder />
                    <Route path=path!("/reset-password") view=ResetPasswordPage ssr=SsrMode::InOrder />
                    <Route path=path!("/verify-email") view=VerifyEmailPage ssr=SsrMode::InOrder />
                    <Route path=path!("/confirm-email") view=ConfirmEmailPage ssr=SsrMode::InOrder />
                    <Route path=path!("/account") view=AccountPage ssr=SsrMode::InOrder />
                    <Route path=path!("/account/deleted") view=AccountDeletedPage ssr=SsrMode::InOrder />
                    <Route path=path!("/admin") view=AdminPage ssr=SsrMode::InOrder />
                    <Route path=path!("/admin/accounts") view=AdminAccountsPage ssr=SsrMode::InOrder />
                    <Route path=path!("/admin/audit") view=AdminAuditPage ssr=SsrMode::InOrder />
                    <Route path=path!("/admin/mail") view=AdminMailPage ssr=SsrMode::InOrder />
                    <Route path=path!("/admin/drift") view=AdminDriftPage ssr=SsrMode::InOrder />
                    <Route path=path!("/admin/catalog") view=AdminCatalogPage ssr=SsrMode::InOrder />
                    <Route path=path!("/admin/event") view=AdminEventPage ssr=SsrMode::InOrder />
                    <Route path=path!("/pricing") view=PricingPage ssr=SsrMode::InOrder />
                    <Route path=path!("/dashboard/billing") view=BillingPage ssr=SsrMode::InOrder />
                    <Route path=path!("/app") view=GatedPage ssr=SsrMode::InOrder />
                    <Route path=path!("/dashboard/team") view=TeamPage ssr=SsrMode::InOrder />
                    <Route path=path!("/invitations/accept") view=AcceptInvitationPage ssr=SsrMode::InOrder />
                    <Route path=path!("/privacy-policy") view=PrivacyPolicyPage />
                    <Route path=path!("/terms-of-service") view=TermsOfServicePage />
                </Routes>
            </main>
            <footer class="site-footer">
                <span>"© Billing Starter"</span>
                <nav aria-label="Legal">
                    <SiteLink href="/terms-of-service" text="Terms of service" />
                    <SiteLink href="/privacy-policy" text="Privacy policy" />
                </nav>
            </footer>
            // Last, so that every island before it is live when the mark appears.
            <HydrationMarker />
        </Router>
    }
}

/// A link of the header or footer: a plain `<a>`, with `aria-current="page"`
/// on the page it names. Every page renders these nine links; the router's `<A>`
/// resolves each href and keeps two reactive closures for it, about 6 % of a
/// page render under `perf` (issue 23), for what is a fixed path here (pages
/// are full loads in islands mode, so nothing updates them in the browser).
#[component]
fn SiteLink(
    href: &'static str,
    text: &'static str,
    #[prop(optional)] class: Option<&'static str>,
) -> impl IntoView {
    let path = leptos_router::hooks::use_location()
        .pathname
        .get_untracked();
    let current = is_current(href, &path).then_some("page");
    // Two shapes rather than `class=None`, which renders an empty `class=""`.
    match class {
        Some(class) => {
            Either::Left(view! { <a href=href class=class aria-current=current>{text}</a> })
        }
        None => Either::Right(view! { <a href=href aria-current=current>{text}</a> }),
    }
}

/// Whether the page at `path` is the one `href` names, or inside it (as the
/// router's `<A>` decides): `/` only for itself.
fn is_current(href: &str, path: &str) -> bool {
    path.strip_prefix(href)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// Marks `<body data-hydrated="true">` once the wasm has loaded and the islands are
/// live. Effects never run during server rendering, so the attribute's presence is
/// proof of hydration that end-to-end tests and support staff can both check.
#[island]
fn HydrationMarker() -> impl IntoView {
    Effect::new(move |_| {
        if let Some(body) = document().body() {
            let _ = body.set_attribute("data-hydrated", "true");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::is_current;

    #[test]
    fn a_link_is_current_on_its_page_and_below_it() {
        for (href, path, current) in [
            ("/", "/", true),
            ("/", "/pricing", false),
            ("/pricing", "/pricing", true),
            ("/pricing", "/pricing/", true),
            ("/pricing", "/pricing-old", false),
            ("/pricing", "/", false),
            ("/dashboard/billing", "/dashboard/billing", true),
            ("/dashboard/billing", "/dashboard/team", false),
            ("/app", "/application", false),
            ("/app", "/app/keys", true),
        ] {
            assert_eq!(is_current(href, path), current, "{href} on {path}");
        }
    }
}
