//! sea-orm entities, one per table, matching the `migration` crate.

pub mod account_tokens;
pub mod accounts;
pub mod api_keys;
pub mod audit_log;
pub mod credit_grants;
pub mod deleted_customers;
pub mod dispute_outcomes;
pub mod invitations;
pub mod invoices;
pub mod memberships;
pub mod one_time_purchases;
pub mod outbox;
pub mod sessions;
pub mod subscriptions;
pub mod usage_entries;
pub mod usage_holds;
pub mod users;
pub mod webhook_events;
