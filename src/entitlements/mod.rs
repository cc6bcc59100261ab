//! Usage, credits and entitlements: what an account may use, how much is left,
//! and the record of what it used. The catalog declares the features
//! (`[features.*]`) and each plan's limits; this module decides and records,
//! on our own database, with no other service.
//!
//! - `rules`: the arithmetic (allowance first, then credits; which grants pay;
//!   which period), pure and table-tested.
//! - `ledger`: `check`, `track`, `reserve` / `commit` / `release`, and the
//!   account's meters. Every write holds the account's lock for its
//!   transaction (a row lock on PostgreSQL, the write lock on SQLite), so
//!   parallel requests, several instances and retried keys never spend a unit
//!   twice or below zero.
//! - `grants`: credits given by packs (following the purchase's state through
//!   the one write path) and by operators.
//! - `api_keys`: the keys the product's own services call `/api/v1` with.

pub mod api_keys;
pub mod grants;
pub mod ledger;
pub mod rules;

use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use sea_orm::DbErr;

use crate::catalog::{FeatureKind, Limit};

/// Why a use was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// The plan's allowance (and any credits) is used up.
    LimitReached,
    /// The plan does not include the feature at all.
    NotInPlan,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::LimitReached => "limit_reached",
            Reason::NotInPlan => "not_in_plan",
        }
    }
}

/// `check`'s answer: whether `amount` more would be allowed now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// Units left (allowance and what credits buy); `None`: unlimited.
    pub remaining: Option<i64>,
    pub resets_at: Option<DateTime<Utc>>,
    pub reason: Option<Reason>,
}

/// A recorded use's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Balance {
    /// Units left after it; `None`: unlimited.
    pub remaining: Option<i64>,
    pub resets_at: Option<DateTime<Utc>>,
    /// True when an earlier request with the same idempotency key counted,
    /// and this is its answer again.
    pub replayed: bool,
}

/// A refused use: nothing was recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exhausted {
    pub feature: String,
    pub remaining: Option<i64>,
    pub resets_at: Option<DateTime<Utc>>,
    pub reason: Reason,
}

/// Units set aside by `reserve`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hold {
    pub id: i64,
    pub feature: String,
    pub amount: i64,
    pub expires_at: DateTime<Utc>,
    /// Units left besides the hold.
    pub remaining: Option<i64>,
}

/// One feature as the account stands on it now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Meter {
    pub feature: String,
    pub name: String,
    pub kind: FeatureKind,
    /// The plan's value (`Count(0)` when the plan does not name it).
    pub limit: Limit,
    /// This period's use (metered), the count (counted).
    pub used: i64,
    pub remaining: Option<i64>,
    pub resets_at: Option<DateTime<Utc>>,
}

impl Meter {
    /// A boolean feature in the plan, or any allowance above zero.
    pub fn included(&self) -> bool {
        match self.limit {
            Limit::Included(included) => included,
            Limit::Unlimited => true,
            Limit::Count(n) => n > 0,
        }
    }
}

/// Every feature of the catalog for one account, and its credits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summary {
    pub plan_id: Option<String>,
    pub meters: Vec<Meter>,
    pub credits: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum UsageError {
    #[error("no feature `{0}` is declared in the catalog")]
    UnknownFeature(String),
    #[error("the amount must be a whole number from 1 to 1000000000")]
    BadAmount,
    #[error("`{0}` is a boolean feature: check it, there is nothing to count")]
    NotCountable(String),
    #[error("this idempotency key was already used with a different request")]
    KeyReused,
    #[error("the idempotency key must be 1-255 visible ASCII characters")]
    BadKey,
    #[error("no such hold")]
    HoldNotFound,
    #[error("the hold is already {0}")]
    HoldClosed(&'static str),
    #[error("`{}` is used up", .0.feature)]
    Exhausted(Exhausted),
    #[error("the account no longer exists")]
    AccountGone,
    #[error("usage storage: {0}")]
    Database(#[from] DbErr),
}

impl UsageError {
    /// The HTTP status a request that failed with this answers.
    pub fn status(&self) -> StatusCode {
        match self {
            UsageError::UnknownFeature(_)
            | UsageError::BadAmount
            | UsageError::NotCountable(_)
            | UsageError::BadKey => StatusCode::BAD_REQUEST,
            UsageError::KeyReused | UsageError::HoldClosed(_) => StatusCode::CONFLICT,
            UsageError::HoldNotFound => StatusCode::NOT_FOUND,
            UsageError::Exhausted(_) => StatusCode::PAYMENT_REQUIRED,
            UsageError::AccountGone => StatusCode::UNAUTHORIZED,
            UsageError::Database(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The machine-readable code the API answers with.
    pub fn code(&self) -> &'static str {
        match self {
            UsageError::UnknownFeature(_) => "unknown_feature",
            UsageError::BadAmount => "invalid_amount",
            UsageError::NotCountable(_) => "not_countable",
            UsageError::BadKey => "invalid_idempotency_key",
            UsageError::KeyReused => "idempotency_key_reused",
            UsageError::HoldNotFound => "hold_not_found",
            UsageError::HoldClosed(_) => "hold_closed",
            UsageError::Exhausted(_) => "limit_reached",
            UsageError::AccountGone => "unauthorized",
            UsageError::Database(_) => "server_error",
        }
    }

    /// What a person reads; `None` for a storage failure (logged, generic text).
    pub fn user_message(&self) -> Option<String> {
        match self {
            UsageError::Database(_) => None,
            UsageError::Exhausted(_) => {
                Some("That is more than is left this period. Upgrade, or buy credits.".to_owned())
            }
            other => Some(other.to_string()),
        }
    }
}

/// The largest amount one request may record (far beyond any real use, and
/// far from `i64` overflow however many are summed).
pub const MAX_AMOUNT: i64 = 1_000_000_000;

/// An idempotency key we store: bounded and printable.
pub fn valid_key(key: &str) -> bool {
    (1..=255).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_graphic())
}
