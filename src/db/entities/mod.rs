//! sea-orm entities, one per table, matching the `migration` crate.

pub mod account_tokens;
pub mod accounts;
pub mod audit_log;
pub mod deleted_customers;
pub mod dispute_outcomes;
pub mod invitations;
pub mod invoices;
pub mod memberships;
pub mod one_time_purchases;
pub mod outbox;
pub mod sessions;
pub mod subscriptions;
pub mod users;
pub mod webhook_events;
