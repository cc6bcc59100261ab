//! Small UI pieces shared by pages.

pub mod mode_badge;
pub mod toast;
