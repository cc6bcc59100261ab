//! Billing rules and the one write path into the billing tables.
//!
//! - `objects`: Stripe objects in our own types (the gateway converts to them).
//! - `freshness`: which of two views of a subscription wins (pure).
//! - `access`: the one access policy (pure).
//! - `checkout`: what a click on a plan means for this user (pure).
//! - `apply`: the one write path — every write to subscriptions, purchases and invoices.
//! - `snapshot`: a user's billing rows, read for `access`.
//! - `service`: the user's billing actions end to end (server functions call these).
//! - `duplicates`: a user's second live subscription, cancelled and refunded on request.

pub mod access;
pub mod apply;
pub mod checkout;
pub mod context;
pub mod duplicates;
pub mod freshness;
pub mod objects;
pub mod service;
pub mod snapshot;
