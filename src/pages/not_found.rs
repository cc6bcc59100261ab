use leptos::prelude::*;
use leptos_router::components::A;

/// Rendered for unknown paths, with a real 404 status on the server.
#[component]
pub fn NotFound() -> impl IntoView {
    #[cfg(feature = "ssr")]
    if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
        response.set_status(axum::http::StatusCode::NOT_FOUND);
    }

    view! {
        <super::PageTitle text="Page not found" />
        <section class="panel">
            <h1>"Page not found"</h1>
            <p>"There is nothing at this address."</p>
            <A href="/">"Back to the home page"</A>
        </section>
    }
}
