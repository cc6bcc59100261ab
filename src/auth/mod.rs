//! Identity: server-side sessions (sign-up, sign-in and the `CurrentUser`
//! extractor arrive with the sign-in issue and build on this store).

pub mod accounts;
pub mod session_store;
