//! Every integration test in one binary: each test binary links the whole app,
//! and on a 2-core machine nine of them took longer to link than to run.
//!
//! The modules share `common` (real databases, the real server on a free port,
//! the Stripe emulator). Run one module with `cargo test --test it server::`.

// The app's server side only exists with `ssr`: without it there is nothing to
// test, and a run that silently tested nothing would read as green.
#[cfg(not(feature = "ssr"))]
#[test]
fn integration_tests_need_the_ssr_feature() {
    panic!(
        "the integration tests run against the server build: \
         `cargo test --features ssr` (or `./bootstrap.sh test`)"
    );
}

#[cfg(feature = "ssr")]
mod common;

#[cfg(feature = "ssr")]
mod accounts;
#[cfg(feature = "ssr")]
mod billing;
#[cfg(feature = "ssr")]
mod catalog;
#[cfg(feature = "ssr")]
mod chaos;
#[cfg(feature = "ssr")]
mod console;
#[cfg(feature = "ssr")]
mod docs;
#[cfg(feature = "ssr")]
mod doctor;
#[cfg(feature = "ssr")]
mod mail;
#[cfg(feature = "ssr")]
mod migrations;
#[cfg(feature = "ssr")]
mod reads;
#[cfg(feature = "ssr")]
mod scrape;
#[cfg(feature = "ssr")]
mod server;
#[cfg(feature = "ssr")]
mod sessions;
#[cfg(feature = "ssr")]
mod teams;
#[cfg(feature = "ssr")]
mod usage;
#[cfg(feature = "ssr")]
mod webhooks;
#[cfg(feature = "ssr")]
mod writes;
