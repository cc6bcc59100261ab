//! The benchmark's baseline: a bare Leptos 0.8 page with the pricing page's three
//! cards and a monthly/yearly toggle, and nothing else (no session, database,
//! catalog or security headers). `bench/run.sh` measures it beside `/pricing`.
//! It runs with what the app's server has that is not the app — mimalloc and
//! `TCP_NODELAY` on every accepted socket — so a "% of bare" measures the app's
//! work, not a slower allocator or Nagle's delay in the baseline (issue 23).
//!
//! cargo run --release --features ssr --example bare_page -- 127.0.0.1:3301

use axum::{serve::ListenerExt, Router};
use leptos::{config::LeptosOptions, prelude::*};
use leptos_axum::{generate_route_list, LeptosRoutes};
use leptos_router::{
    components::{Route, Router as PageRouter, Routes},
    path,
};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const PLANS: [(&str, i64, i64); 3] = [
    ("Free", 0, 0),
    ("Standard Pack", 2900, 2900),
    ("Premium", 4900, 49000),
];

#[component]
fn Cards() -> impl IntoView {
    let (yearly, set_yearly) = signal(false);
    view! {
        <h1>"Pricing"</h1>
        <button on:click=move |_| set_yearly.update(|y| *y = !*y)>
            {move || if yearly.get() { "Yearly" } else { "Monthly" }}
        </button>
        <div class="plan-grid">
            {PLANS
                .iter()
                .map(|(name, monthly, yearly_amount)| {
                    let (monthly, yearly_amount) = (*monthly, *yearly_amount);
                    view! {
                        <article class="plan-card">
                            <h2>{*name}</h2>
                            <p class="price">
                                {move || {
                                    let cents = if yearly.get() { yearly_amount } else { monthly };
                                    format!("${}", cents / 100)
                                }}
                            </p>
                            <ul>
                                <li>"Feature one"</li>
                                <li>"Feature two"</li>
                                <li>"Feature three"</li>
                            </ul>
                            <button>"Choose"</button>
                        </article>
                    }
                })
                .collect_view()}
        </div>
    }
}

#[component]
fn App() -> impl IntoView {
    view! {
        <PageRouter>
            <Routes fallback=|| "not found">
                <Route path=path!("/") view=Cards />
            </Routes>
        </PageRouter>
    }
}

fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8" />
                <HydrationScripts options />
            </head>
            <body>
                <App />
            </body>
        </html>
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:3301".to_owned());
    let options = LeptosOptions::builder()
        .output_name("bare")
        .site_addr(addr.parse::<std::net::SocketAddr>().expect("address"))
        .build();
    let routes = generate_route_list(App);
    let app = Router::new()
        .leptos_routes(&options, routes, {
            let options = options.clone();
            move || shell(options.clone())
        })
        .with_state(options);
    let listener = tokio::net::TcpListener::bind(&addr).await?.tap_io(|tcp| {
        // As the app's accept loop does (see `server::serve`).
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app).await
}
