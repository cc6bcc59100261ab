pub mod auth;
pub mod billing;
pub mod gated;
pub mod home;
pub mod legal;
pub mod not_found;
pub mod pricing;
