//! API keys: how the product's own backend services call `/api/v1` on behalf
//! of one billing account. A key is `bsk_` and 48 hex digits (24 random bytes
//! from the OS), shown once when created; only its SHA-256 is stored, so a
//! database leak holds no usable key, and lookup is one indexed read of the
//! hash. Revoking takes effect on the next request on every instance (nothing
//! is cached).

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use argon2::password_hash::rand_core::{OsRng, RngCore};
use chrono::Utc;
use sea_orm::{
    sea_query::Expr, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr,
    EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
};
use sha2::{Digest, Sha256};

use crate::db::{entities::api_keys, reads::Reads};

const PREFIX: &str = "bsk_";
/// How much of a key is kept in clear to recognise it ("bsk_1a2b3c4d").
const SHOWN: usize = 12;
/// Live keys one account may have.
pub const MAX_KEYS: u64 = 20;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("give the key a name of 1 to 60 characters")]
    BadName,
    #[error("an account may have at most {MAX_KEYS} keys; revoke one first")]
    TooMany,
    #[error("no such key")]
    NotFound,
    #[error("key storage: {0}")]
    Database(#[from] DbErr),
}

impl KeyError {
    pub fn status(&self) -> axum::http::StatusCode {
        use axum::http::StatusCode;
        match self {
            KeyError::BadName | KeyError::TooMany => StatusCode::BAD_REQUEST,
            KeyError::NotFound => StatusCode::NOT_FOUND,
            KeyError::Database(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// What a person reads; `None` for a storage failure.
    pub fn user_message(&self) -> Option<String> {
        match self {
            KeyError::Database(_) => None,
            other => Some(other.to_string()),
        }
    }
}

/// A key just created: `secret` is shown once and never stored.
#[derive(Clone, Debug)]
pub struct NewKey {
    pub id: i64,
    pub name: String,
    pub prefix: String,
    pub secret: String,
}

fn digest(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Whether `presented` has the shape of a key we issue (refused before any query).
pub fn well_formed(presented: &str) -> bool {
    presented.len() == PREFIX.len() + 48
        && presented.starts_with(PREFIX)
        && presented[PREFIX.len()..]
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

/// A new key for `account_id`.
pub async fn create<C: ConnectionTrait>(
    conn: &C,
    account_id: i64,
    name: &str,
    created_by: Option<i64>,
) -> Result<NewKey, KeyError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 60 || name.chars().any(char::is_control) {
        return Err(KeyError::BadName);
    }
    let live = api_keys::Entity::find()
        .filter(api_keys::Column::AccountId.eq(account_id))
        .filter(api_keys::Column::RevokedAt.is_null())
        .count(conn)
        .await?;
    if live >= MAX_KEYS {
        return Err(KeyError::TooMany);
    }
    let mut bytes = [0u8; 24];
    OsRng.fill_bytes(&mut bytes);
    let secret = format!("{PREFIX}{}", hex::encode(bytes));
    let prefix = secret[..SHOWN].to_owned();
    let inserted = api_keys::Entity::insert(api_keys::ActiveModel {
        account_id: Set(account_id),
        name: Set(name.to_owned()),
        prefix: Set(prefix.clone()),
        key_hash: Set(digest(&secret)),
        created_by: Set(created_by),
        created_at: Set(Utc::now()),
        last_used_at: Set(None),
        revoked_at: Set(None),
        ..Default::default()
    })
    .exec(conn)
    .await?;
    Ok(NewKey {
        id: inserted.last_insert_id,
        name: name.to_owned(),
        prefix,
        secret,
    })
}

/// Revokes one of the account's keys (another account's id is `NotFound`).
pub async fn revoke<C: ConnectionTrait>(
    conn: &C,
    account_id: i64,
    key_id: i64,
) -> Result<(), KeyError> {
    let revoked = api_keys::Entity::update_many()
        .col_expr(api_keys::Column::RevokedAt, Expr::value(Utc::now()))
        .filter(api_keys::Column::Id.eq(key_id))
        .filter(api_keys::Column::AccountId.eq(account_id))
        .filter(api_keys::Column::RevokedAt.is_null())
        .exec(conn)
        .await?;
    if revoked.rows_affected == 0 {
        return Err(KeyError::NotFound);
    }
    Ok(())
}

/// The account's live keys, newest first.
pub async fn list<C: ConnectionTrait>(
    conn: &C,
    account_id: i64,
) -> Result<Vec<api_keys::Model>, DbErr> {
    api_keys::Entity::find()
        .filter(api_keys::Column::AccountId.eq(account_id))
        .filter(api_keys::Column::RevokedAt.is_null())
        .order_by_desc(api_keys::Column::Id)
        .all(conn)
        .await
}

/// The live key `presented` is, if any. Looked up through `reads` (on
/// SQLite on the request's own thread, not a hand-off to sqlx's: every usage
/// API call starts here); a revocation is committed before it is answered, so
/// it is seen at once.
pub async fn authenticate(
    reads: &Reads,
    db: &DatabaseConnection,
    presented: &str,
) -> Result<Option<api_keys::Model>, DbErr> {
    if !well_formed(presented) {
        return Ok(None);
    }
    let key = reads
        .models(
            api_keys::Entity::find()
                .filter(api_keys::Column::KeyHash.eq(digest(presented)))
                .filter(api_keys::Column::RevokedAt.is_null())
                .limit(1),
        )
        .await?
        .pop();
    if let Some(key) = &key {
        note_use(db, key.id).await?;
    }
    Ok(key)
}

/// Stamps `last_used_at` at most once a minute per key and process: a write
/// per request would double the cost of a usage call for a date shown to the
/// minute.
async fn note_use<C: ConnectionTrait>(conn: &C, key_id: i64) -> Result<(), DbErr> {
    static LAST: Mutex<Option<HashMap<i64, Instant>>> = Mutex::new(None);
    let due = {
        let mut last = LAST.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let map = last.get_or_insert_with(HashMap::new);
        let now = Instant::now();
        match map.get(&key_id) {
            Some(at) if now.duration_since(*at) < Duration::from_secs(60) => false,
            _ => {
                if map.len() > 10_000 {
                    map.clear();
                }
                map.insert(key_id, now);
                true
            }
        }
    };
    if due {
        api_keys::Entity::update_many()
            .col_expr(api_keys::Column::LastUsedAt, Expr::value(Utc::now()))
            .filter(api_keys::Column::Id.eq(key_id))
            .exec(conn)
            .await?;
    }
    Ok(())
}

/// The account `api-keys create --email EMAIL [--org SLUG]` names: the
/// person's own account, or an organization they own or administer.
pub async fn account_for_cli<C: ConnectionTrait>(
    conn: &C,
    email: &str,
    org: Option<&str>,
) -> Result<Result<i64, String>, DbErr> {
    use crate::db::entities::{accounts, memberships, users};
    let Ok(email) = crate::auth::accounts::normalize_email(email) else {
        return Ok(Err(format!("`{email}` is not an email address")));
    };
    let Some(user) = users::Entity::find()
        .filter(users::Column::Email.eq(email.as_str()))
        .one(conn)
        .await?
    else {
        return Ok(Err(format!("no user has the email {email}")));
    };
    let Some(slug) = org else {
        return Ok(crate::teams::members::personal(conn, user.id)
            .await?
            .map(|account| account.id)
            .ok_or_else(|| format!("{email} has no personal account")));
    };
    let Some(account) = accounts::Entity::find()
        .filter(accounts::Column::Slug.eq(slug))
        .one(conn)
        .await?
    else {
        return Ok(Err(format!("no organization has the slug `{slug}`")));
    };
    let role = memberships::Entity::find()
        .filter(memberships::Column::AccountId.eq(account.id))
        .filter(memberships::Column::UserId.eq(user.id))
        .one(conn)
        .await?
        .map(|m| m.role);
    Ok(match role {
        Some(role) if role >= memberships::Role::Admin => Ok(account.id),
        _ => Err(format!("{email} is not an owner or admin of `{slug}`")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_our_shape_is_looked_up() {
        let good = format!("bsk_{}", "a1".repeat(24));
        assert!(well_formed(&good));
        assert!(!well_formed(&good.to_uppercase()));
        assert!(!well_formed(&good[..good.len() - 1]));
        assert!(!well_formed(&format!("sk_{}", "a1".repeat(24))));
        assert!(!well_formed(&format!("bsk_{}zz", "a1".repeat(23))));
        assert!(!well_formed(""));
    }
}
