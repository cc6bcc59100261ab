//! The account's own resources (customers, products, prices); the billing
//! engine's resources are in `billing/`.

pub mod customers;
pub mod products;
