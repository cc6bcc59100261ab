//! Accounts: sign-up and sign-in with argon2id password hashes. The rules and
//! messages are what the sign-in pages show; the pages and the session wiring
//! build on these functions.

use argon2::{
    password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString},
    Argon2,
};
use chrono::Utc;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, DatabaseConnection, DbErr, EntityTrait,
    QueryFilter, SqlErr,
};

use crate::db::entities::users;

pub const MIN_PASSWORD_LEN: usize = 10;
const MAX_PASSWORD_LEN: usize = 128;

/// Passwords people pick first; rejected whatever their length.
const COMMON_PASSWORDS: [&str; 12] = [
    "password123",
    "password1234",
    "1234567890",
    "12345678910",
    "qwertyuiop",
    "iloveyou123",
    "welcome123",
    "letmein123",
    "passw0rd123",
    "abc1234567",
    "qwerty12345",
    "0123456789",
];

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("Enter a valid email address.")]
    InvalidEmail,
    #[error("{0}")]
    WeakPassword(&'static str),
    #[error("An account with this email already exists. Sign in instead.")]
    EmailTaken,
    /// Deliberately vague: saying which half was wrong helps attackers enumerate accounts.
    #[error("Wrong email or password.")]
    WrongCredentials,
    #[error("account storage failed: {0}")]
    Database(#[from] DbErr),
    #[error("password hashing failed: {0}")]
    Hashing(String),
}

/// Trimmed and lower-cased, so `Ada@Example.com ` and `ada@example.com` are one account.
pub fn normalize_email(raw: &str) -> Result<String, AccountError> {
    let email = raw.trim().to_lowercase();
    let (local, domain) = email.split_once('@').ok_or(AccountError::InvalidEmail)?;
    let valid = !local.is_empty()
        && email.len() <= 254
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !email.chars().any(char::is_whitespace)
        && !domain.contains('@');
    if valid {
        Ok(email)
    } else {
        Err(AccountError::InvalidEmail)
    }
}

pub fn check_password(password: &str, email: &str) -> Result<(), AccountError> {
    let length = password.chars().count();
    if length < MIN_PASSWORD_LEN {
        return Err(AccountError::WeakPassword(
            "Use at least 10 characters for your password.",
        ));
    }
    if length > MAX_PASSWORD_LEN {
        return Err(AccountError::WeakPassword(
            "Use at most 128 characters for your password.",
        ));
    }
    let lower = password.to_lowercase();
    if COMMON_PASSWORDS.contains(&lower.as_str()) || lower.chars().all(|c| lower.starts_with(c)) {
        return Err(AccountError::WeakPassword(
            "This password is too easy to guess; choose another.",
        ));
    }
    if let Some((local, _)) = email.split_once('@') {
        if lower.contains(local) && local.len() >= 4 {
            return Err(AccountError::WeakPassword(
                "Your password must not contain your email address.",
            ));
        }
    }
    Ok(())
}

/// Hashing takes tens of milliseconds of CPU by design: off the async workers.
async fn hash(password: String) -> Result<String, AccountError> {
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|hash| hash.to_string())
            .map_err(|err| AccountError::Hashing(err.to_string()))
    })
    .await
    .map_err(|err| AccountError::Hashing(err.to_string()))?
}

async fn verify(password: String, stored: String) -> Result<bool, AccountError> {
    tokio::task::spawn_blocking(move || {
        let parsed =
            PasswordHash::new(&stored).map_err(|err| AccountError::Hashing(err.to_string()))?;
        Ok(Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok())
    })
    .await
    .map_err(|err| AccountError::Hashing(err.to_string()))?
}

pub async fn sign_up(
    db: &DatabaseConnection,
    email: &str,
    password: &str,
) -> Result<users::Model, AccountError> {
    let email = normalize_email(email)?;
    check_password(password, &email)?;
    let password_hash = hash(password.to_owned()).await?;
    let now = Utc::now();
    let inserted = users::ActiveModel {
        email: Set(email),
        password_hash: Set(password_hash),
        stripe_customer_id: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
    .insert(db)
    .await;
    match inserted {
        Ok(user) => Ok(user),
        // The unique index decides between two simultaneous sign-ups.
        Err(err) if matches!(err.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {
            Err(AccountError::EmailTaken)
        }
        Err(err) => Err(err.into()),
    }
}

pub async fn sign_in(
    db: &DatabaseConnection,
    email: &str,
    password: &str,
) -> Result<users::Model, AccountError> {
    let email = normalize_email(email).map_err(|_| AccountError::WrongCredentials)?;
    let user = users::Entity::find()
        .filter(users::Column::Email.eq(email))
        .one(db)
        .await?;
    match user {
        Some(user) if verify(password.to_owned(), user.password_hash.clone()).await? => Ok(user),
        Some(_) => Err(AccountError::WrongCredentials),
        None => {
            // Spend the same work as a real check so response time does not reveal
            // whether the email has an account.
            let _ = hash(password.to_owned()).await;
            Err(AccountError::WrongCredentials)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(
            normalize_email("  Ada@Example.COM ").unwrap(),
            "ada@example.com"
        );
        for bad in [
            "",
            "ada",
            "ada@",
            "@example.com",
            "ada@example",
            "ada@.com",
            "a da@example.com",
            "a@b@c.com",
        ] {
            assert!(normalize_email(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn weak_passwords_get_a_reason() {
        let email = "grace@example.com";
        let reason = |p: &str| check_password(p, email).err().map(|e| e.to_string());
        assert_eq!(
            reason("short"),
            Some("Use at least 10 characters for your password.".into())
        );
        assert_eq!(
            reason("Password123"),
            Some("This password is too easy to guess; choose another.".into())
        );
        assert_eq!(
            reason("aaaaaaaaaaaa"),
            Some("This password is too easy to guess; choose another.".into())
        );
        assert_eq!(
            reason("grace-rocks-2026"),
            Some("Your password must not contain your email address.".into())
        );
        assert!(reason(&"x".repeat(129)).is_some());
        assert_eq!(reason("correct horse battery"), None);
    }
}
