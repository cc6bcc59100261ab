//! The single-use tokens of email links (verify, reset, change email).
//!
//! A token is 32 random bytes from the OS, sent as 64 hex digits; only its
//! SHA-256 is stored, so a database leak holds no usable link. Redeeming is one
//! conditional `UPDATE … WHERE used_at IS NULL AND expires_at > now`: of two
//! clicks at once exactly one wins, and an expired or used token is refused.

use argon2::password_hash::rand_core::{OsRng, RngCore};
use chrono::{DateTime, Duration, Utc};
use sea_orm::{
    sea_query::Expr, ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait,
    QueryFilter,
};
use sha2::{Digest, Sha256};

use crate::db::entities::account_tokens::{self, TokenPurpose};

/// How long each kind of link works.
pub fn lifetime(purpose: TokenPurpose) -> Duration {
    match purpose {
        TokenPurpose::VerifyEmail | TokenPurpose::ChangeEmail => Duration::hours(24),
        TokenPurpose::ResetPassword => Duration::hours(1),
    }
}

pub(crate) fn digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A new random token (32 bytes from the OS, as 64 hex digits).
pub(crate) fn fresh() -> String {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// Whether `token` has the shape of one we issue (refused before any query).
pub fn well_formed(token: &str) -> bool {
    token.len() == 64 && token.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A new token for `user_id`, stored (hashed) in the caller's transaction.
pub async fn issue<C: ConnectionTrait>(
    conn: &C,
    user_id: i64,
    purpose: TokenPurpose,
    new_email: Option<String>,
    now: DateTime<Utc>,
) -> Result<String, DbErr> {
    let token = fresh();
    account_tokens::Entity::insert(account_tokens::ActiveModel {
        user_id: Set(user_id),
        purpose: Set(purpose),
        token_hash: Set(digest(&token)),
        new_email: Set(new_email),
        expires_at: Set(now + lifetime(purpose)),
        used_at: Set(None),
        created_at: Set(now),
        ..Default::default()
    })
    .exec_without_returning(conn)
    .await?;
    Ok(token)
}

/// Uses `token` for `purpose` if it is unused and unexpired; `None` otherwise.
/// Every other open token of the same purpose for that user is retired with
/// it: an older reset link must not work after a newer one was used.
pub async fn redeem<C: ConnectionTrait>(
    conn: &C,
    purpose: TokenPurpose,
    token: &str,
    now: DateTime<Utc>,
) -> Result<Option<account_tokens::Model>, DbErr> {
    if !well_formed(token) {
        return Ok(None);
    }
    let hash = digest(token);
    let used = account_tokens::Entity::update_many()
        .col_expr(account_tokens::Column::UsedAt, Expr::value(now))
        .filter(account_tokens::Column::TokenHash.eq(hash.as_str()))
        .filter(account_tokens::Column::Purpose.eq(purpose))
        .filter(account_tokens::Column::UsedAt.is_null())
        .filter(account_tokens::Column::ExpiresAt.gt(now))
        .exec(conn)
        .await?;
    if used.rows_affected != 1 {
        return Ok(None);
    }
    let Some(row) = account_tokens::Entity::find()
        .filter(account_tokens::Column::TokenHash.eq(hash))
        .one(conn)
        .await?
    else {
        return Ok(None);
    };
    retire(conn, row.user_id, purpose, now).await?;
    Ok(Some(row))
}

/// Retires every open token of `purpose` for `user_id`.
pub async fn retire<C: ConnectionTrait>(
    conn: &C,
    user_id: i64,
    purpose: TokenPurpose,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    account_tokens::Entity::update_many()
        .col_expr(account_tokens::Column::UsedAt, Expr::value(now))
        .filter(account_tokens::Column::UserId.eq(user_id))
        .filter(account_tokens::Column::Purpose.eq(purpose))
        .filter(account_tokens::Column::UsedAt.is_null())
        .exec(conn)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_our_shape_is_looked_up() {
        assert!(well_formed(&"ab".repeat(32)));
        for bad in ["", "abc", &"g".repeat(64), &"a".repeat(65), &"é".repeat(32)] {
            assert!(!well_formed(bad), "{bad}");
        }
    }

    #[test]
    fn links_live_as_long_as_their_emails_say() {
        assert_eq!(lifetime(TokenPurpose::VerifyEmail), Duration::hours(24));
        assert_eq!(lifetime(TokenPurpose::ChangeEmail), Duration::hours(24));
        assert_eq!(lifetime(TokenPurpose::ResetPassword), Duration::hours(1));
    }
}
