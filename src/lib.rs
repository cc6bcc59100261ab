//! Stripe billing starter: a Leptos app (SSR + hydration) served by axum.
//!
//! `app` and `pages` compile for both the server (`ssr`) and the browser (`hydrate`);
//! everything that touches the database, configuration or the network sits in
//! server-only modules declared once below.

pub mod app;
pub mod catalog;
pub mod components;
pub mod pages;
pub mod views;

#[cfg(feature = "ssr")]
pub mod analytics;
#[cfg(feature = "ssr")]
pub mod auth;
#[cfg(feature = "ssr")]
pub mod billing;
#[cfg(feature = "ssr")]
pub mod cli;
#[cfg(feature = "ssr")]
pub mod config;
#[cfg(feature = "ssr")]
pub mod db;
#[cfg(feature = "ssr")]
pub mod doctor;
#[cfg(feature = "ssr")]
pub mod entitlements;
#[cfg(feature = "ssr")]
pub mod gateway;
#[cfg(feature = "ssr")]
pub mod limits;
#[cfg(feature = "ssr")]
pub mod mail;
#[cfg(feature = "ssr")]
pub mod operations;
#[cfg(feature = "ssr")]
pub mod operator;
#[cfg(feature = "ssr")]
pub mod prometheus;
#[cfg(feature = "ssr")]
pub mod request;
#[cfg(feature = "ssr")]
pub mod security;
#[cfg(feature = "ssr")]
pub mod server;
#[cfg(feature = "ssr")]
pub mod state;
#[cfg(feature = "ssr")]
pub mod teams;
#[cfg(feature = "ssr")]
pub mod webhooks;

/// Browser entry point. Pages are server-rendered HTML; only the `#[island]`
/// components (forms, the pricing toggle, toasts) are hydrated, each from the props
/// the server serialised beside it, so the wasm holds nothing else.
#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    // Readable panics in the console while developing; the release payload leaves
    // the hook (and the formatting it pulls in) out.
    #[cfg(debug_assertions)]
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_islands();
}
