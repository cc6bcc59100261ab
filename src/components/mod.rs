//! Small UI pieces shared by pages.

pub mod form_post;
pub mod mode_badge;
pub mod toast;
