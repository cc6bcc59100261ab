//! Billing accounts and the people in them: every user has a personal account;
//! an organization is an account with members, roles, invitations and (on a
//! per-seat plan) seats. The billing layer bills an account, never a user.
//!
//! Who acts, and in which account, comes from the server-side session only
//! (`Member`): an account id from the browser is only ever a *choice* checked
//! against the memberships table.

pub mod invitations;
pub mod members;
pub mod rules;
pub mod seats;

use axum::http::StatusCode;

use crate::db::entities::{
    accounts::{self, AccountKind},
    memberships::Role,
    users,
};
pub use rules::Action;

/// A signed-in user acting in one account, with their role there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub user: users::Model,
    pub account: accounts::Model,
    pub role: Role,
}

impl Member {
    /// Whether the member's role allows `action` (for what a page shows).
    pub fn can(&self, action: Action) -> bool {
        rules::allows(self.role, action)
    }

    /// Refuses `action` unless the member's role allows it (logged).
    pub fn may(&self, action: Action) -> Result<(), TeamError> {
        if self.can(action) {
            Ok(())
        } else {
            tracing::warn!(user = self.user.id, account = self.account.id, role = ?self.role, ?action, "refused by role");
            Err(TeamError::NotAllowed(match action {
                Action::ManageBilling => {
                    "Only owners and admins of this organization manage its billing."
                }
                Action::ManageMembers => {
                    "Only owners and admins of this organization manage its members."
                }
                _ => "Only an owner of this organization can do that.",
            }))
        }
    }

    pub fn is_organization(&self) -> bool {
        self.account.kind == AccountKind::Organization
    }

    /// The email Stripe's customer carries: the person's for a personal
    /// account, the acting admin's for an organization's first customer.
    pub fn billing_email(&self) -> &str {
        &self.user.email
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TeamError {
    #[error("{0}")]
    NotAllowed(&'static str),
    #[error("That organization, member or invitation does not exist.")]
    NotFound,
    #[error(transparent)]
    Refused(#[from] rules::MembershipRefusal),
    #[error("{0}")]
    Invalid(&'static str),
    #[error("An organization with that name already exists. Choose another name.")]
    NameTaken,
    #[error("{0} is already a member.")]
    AlreadyMember(String),
    #[error(
        "Your plan has {0} seats and all are in use or invited. Upgrade or remove someone first."
    )]
    SeatsFull(u32),
    #[error("This invitation link is not valid: it was used, revoked or has expired. Ask for a new one.")]
    InvitationInvalid,
    #[error("This invitation is for {0}. Sign in with that address to accept it.")]
    OtherInvitee(String),
    #[error("database: {0}")]
    Database(#[from] sea_orm::DbErr),
    #[error(transparent)]
    Billing(#[from] crate::billing::service::ServiceError),
    #[error("Stripe: {0}")]
    Stripe(#[from] crate::gateway::GatewayError),
}

impl TeamError {
    pub fn status(&self) -> StatusCode {
        match self {
            TeamError::NotAllowed(_) | TeamError::OtherInvitee(_) => StatusCode::FORBIDDEN,
            TeamError::NotFound => StatusCode::NOT_FOUND,
            TeamError::Refused(rules::MembershipRefusal::NotAllowed) => StatusCode::FORBIDDEN,
            TeamError::Refused(_)
            | TeamError::Invalid(_)
            | TeamError::AlreadyMember(_)
            | TeamError::SeatsFull(_)
            | TeamError::InvitationInvalid => StatusCode::BAD_REQUEST,
            TeamError::NameTaken => StatusCode::CONFLICT,
            TeamError::Billing(err) => err.status(),
            TeamError::Stripe(_) => StatusCode::BAD_GATEWAY,
            TeamError::Database(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// What the user reads; `None` for failures not meant for users.
    pub fn user_message(&self) -> Option<String> {
        match self {
            TeamError::Database(_) => None,
            TeamError::Billing(err) => err.user_message(),
            TeamError::Stripe(_) => {
                Some("Payments are unavailable right now. Please try again in a minute.".into())
            }
            other => Some(other.to_string()),
        }
    }
}
