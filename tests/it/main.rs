//! Every integration test in one binary: each test binary links the whole app,
//! and on a 2-core machine nine of them took longer to link than to run.
//!
//! The modules share `common` (real databases, the real server on a free port,
//! the Stripe emulator). Run one module with `cargo test --test it server::`.

mod common;

mod accounts;
mod billing;
mod catalog;
mod chaos;
mod docs;
mod doctor;
mod migrations;
mod server;
mod sessions;
mod webhooks;
