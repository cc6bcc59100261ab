//! Accounts: sign-up and sign-in with argon2id password hashes. The rules and
//! messages are what the sign-in pages show; the pages and the session wiring
//! build on these functions.

use argon2::{
    password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString},
    Algorithm, Argon2, Params, Version,
};
use chrono::Utc;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, DatabaseConnection, DbErr, EntityTrait,
    QueryFilter, SqlErr, TransactionTrait,
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
    #[error("Enter a valid email address (letters, digits and . _ % + - before the @).")]
    InvalidEmail,
    #[error("{0}")]
    WeakPassword(&'static str),
    #[error("An account with this email already exists. Sign in instead.")]
    EmailTaken,
    /// Deliberately vague: saying which half was wrong helps attackers enumerate accounts.
    #[error("Wrong email or password.")]
    WrongCredentials,
    /// Settings and deletion ask for the current password again.
    #[error("Your current password is not right.")]
    WrongPassword,
    /// Used, expired, or never issued: one message, so a link reveals nothing.
    #[error("This link has expired or was already used. Ask for a new one.")]
    LinkInvalid,
    #[error("This is already your email address.")]
    SameEmail,
    #[error("account storage failed: {0}")]
    Database(#[from] DbErr),
    #[error("password hashing failed: {0}")]
    Hashing(String),
    /// Every hashing slot is busy and the queue is full: shed load (503).
    #[error("Too many people are signing in right now. Please try again in a few seconds.")]
    Busy,
}

impl AccountError {
    /// The HTTP status a request that failed with this answers.
    pub fn status(&self) -> axum::http::StatusCode {
        use axum::http::StatusCode;
        match self {
            AccountError::InvalidEmail
            | AccountError::WeakPassword(_)
            | AccountError::EmailTaken
            | AccountError::WrongCredentials
            | AccountError::WrongPassword
            | AccountError::LinkInvalid
            | AccountError::SameEmail => StatusCode::BAD_REQUEST,
            // Shed load: the client retries after `Retry-After`.
            AccountError::Busy => StatusCode::SERVICE_UNAVAILABLE,
            AccountError::Database(_) | AccountError::Hashing(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }

    /// What the user reads; `None` for failures whose text is not for users.
    pub fn user_message(&self) -> Option<String> {
        match self {
            AccountError::Database(_) | AccountError::Hashing(_) => None,
            readable => Some(readable.to_string()),
        }
    }
}

/// The longest address SMTP can carry (RFC 5321: a 256-octet path less the `<>`).
pub const MAX_EMAIL_LEN: usize = 254;
const MAX_LOCAL_LEN: usize = 64;
const MAX_LABEL_LEN: usize = 63;

/// Trimmed and lower-cased, so `Ada@Example.com ` and `ada@example.com` are one
/// account; and inside a safe subset of RFC 5321: the local part is letters,
/// digits and `. _ % + -` (no leading, trailing or doubled dot), the domain is
/// two or more labels of letters, digits and inner hyphens. Quoted local parts,
/// address literals and markup characters (`<>"'&`, which pages and emails
/// would have to escape everywhere) are refused; so is anything non-ASCII.
pub fn normalize_email(raw: &str) -> Result<String, AccountError> {
    if raw.len() > 4 * MAX_EMAIL_LEN {
        // Not even worth lower-casing.
        return Err(AccountError::InvalidEmail);
    }
    let email = raw.trim().to_ascii_lowercase();
    let (local, domain) = email.split_once('@').ok_or(AccountError::InvalidEmail)?;
    let local_ok = (1..=MAX_LOCAL_LEN).contains(&local.len())
        && local
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._%+-".contains(&b))
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..");
    let labels: Vec<&str> = domain.split('.').collect();
    let domain_ok = labels.len() >= 2
        && labels.iter().all(|label| {
            (1..=MAX_LABEL_LEN).contains(&label.len())
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
        && labels
            .last()
            .is_some_and(|tld| tld.bytes().any(|b| b.is_ascii_alphabetic()));
    if local_ok && domain_ok && email.len() <= MAX_EMAIL_LEN {
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

/// argon2id with 7 MiB, 5 passes, 1 lane: one of OWASP's equivalent settings
/// (Password Storage Cheat Sheet: m=19 MiB t=2, m=12 MiB t=3, m=9 MiB t=4,
/// m=7 MiB t=5, all p=1), about the same CPU as the crate's default (19 MiB,
/// 2 passes) but a third of the memory held while a hash runs: two hashes run
/// at once, 38 MiB on top of the server with the default (issue 23's whole-run
/// memory figure is reached during sign-ups). Hashes made before keep verifying:
/// a stored hash names its own parameters, and verification reads them.
const HASH_MEMORY_KIB: u32 = 7 * 1024;
const HASH_PASSES: u32 = 5;

fn hasher() -> Argon2<'static> {
    let params = Params::new(HASH_MEMORY_KIB, HASH_PASSES, 1, None)
        .expect("argon2 parameters within the crate's bounds");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Password hashing, bounded: argon2id takes 7 MiB and tens of milliseconds of
/// CPU per hash by design, so as many run at once as there are cores, a few more
/// wait, and beyond that a request is refused at once ([`AccountError::Busy`])
/// instead of queueing without bound (60 parallel sign-ups once took the server
/// to 1 GB). One per app (`AppState::hashing`).
pub struct HashQueue {
    running: tokio::sync::Semaphore,
    /// Hashes admitted (running or waiting for a core).
    admitted: std::sync::atomic::AtomicUsize,
    max_admitted: usize,
}

impl Default for HashQueue {
    /// As many hashes at once as there are cores, as many again waiting.
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        HashQueue {
            running: tokio::sync::Semaphore::new(cores),
            admitted: std::sync::atomic::AtomicUsize::new(0),
            max_admitted: 2 * cores,
        }
    }
}

impl HashQueue {
    /// Runs `work` on a blocking thread once a core is free, or refuses now.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, AccountError> + Send + 'static,
    ) -> Result<T, AccountError> {
        use std::sync::atomic::Ordering;
        if self.admitted.fetch_add(1, Ordering::AcqRel) >= self.max_admitted {
            self.admitted.fetch_sub(1, Ordering::AcqRel);
            return Err(AccountError::Busy);
        }
        struct Admitted<'a>(&'a std::sync::atomic::AtomicUsize);
        impl Drop for Admitted<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::AcqRel);
            }
        }
        let _admitted = Admitted(&self.admitted);
        let _core = self
            .running
            .acquire()
            .await
            .map_err(|err| AccountError::Hashing(err.to_string()))?;
        // The blocking thread logs inside the request's span.
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || span.in_scope(work))
            .await
            .map_err(|err| AccountError::Hashing(err.to_string()))?
    }
}

pub(crate) async fn hash(queue: &HashQueue, password: String) -> Result<String, AccountError> {
    queue
        .run(move || {
            let salt = SaltString::generate(&mut OsRng);
            hasher()
                .hash_password(password.as_bytes(), &salt)
                .map(|hash| hash.to_string())
                .map_err(|err| AccountError::Hashing(err.to_string()))
        })
        .await
}

async fn verify(queue: &HashQueue, password: String, stored: String) -> Result<bool, AccountError> {
    queue
        .run(move || {
            let parsed =
                PasswordHash::new(&stored).map_err(|err| AccountError::Hashing(err.to_string()))?;
            Ok(hasher()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok())
        })
        .await
}

/// Whether `password` is `user`'s (settings and deletion ask again).
pub async fn check_current_password(
    hashing: &HashQueue,
    user: &users::Model,
    password: &str,
) -> Result<(), AccountError> {
    if password.len() > 4 * MAX_PASSWORD_LEN
        || !verify(hashing, password.to_owned(), user.password_hash.clone()).await?
    {
        return Err(AccountError::WrongPassword);
    }
    Ok(())
}

/// A unique-index violation: another account holds the email.
pub(crate) fn email_taken(err: DbErr) -> AccountError {
    if matches!(err.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) {
        AccountError::EmailTaken
    } else {
        err.into()
    }
}

/// Creates the account and, in the same transaction, the link that verifies
/// its email and the mail carrying it.
pub async fn sign_up(
    db: &DatabaseConnection,
    hashing: &HashQueue,
    mailer: &crate::mail::Mailer,
    email: &str,
    password: &str,
) -> Result<users::Model, AccountError> {
    let email = normalize_email(email)?;
    check_password(password, &email)?;
    let password_hash = hash(hashing, password.to_owned()).await?;
    let now = Utc::now();
    let tx = db.begin().await?;
    // The unique index decides between two simultaneous sign-ups.
    let user = users::ActiveModel {
        email: Set(email),
        password_hash: Set(password_hash),
        email_verified_at: Set(None),
        is_operator: Set(false),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
    .insert(&tx)
    .await
    .map_err(email_taken)?;
    crate::teams::members::create_personal(&tx, &user).await?;
    super::verification::send(&tx, mailer, &user).await?;
    tx.commit().await?;
    mailer.wake();
    Ok(user)
}

pub async fn sign_in(
    db: &DatabaseConnection,
    hashing: &HashQueue,
    email: &str,
    password: &str,
) -> Result<users::Model, AccountError> {
    let email = normalize_email(email).map_err(|_| AccountError::WrongCredentials)?;
    // No password can be longer than sign-up allows: refuse before hashing
    // megabytes (the same answer for every account, so nothing is revealed).
    if password.len() > 4 * MAX_PASSWORD_LEN {
        return Err(AccountError::WrongCredentials);
    }
    let user = users::Entity::find()
        .filter(users::Column::Email.eq(email))
        .one(db)
        .await?;
    match user {
        Some(user) if verify(hashing, password.to_owned(), user.password_hash.clone()).await? => {
            Ok(user)
        }
        Some(_) => Err(AccountError::WrongCredentials),
        None => {
            // Spend the same work as a real check so response time does not reveal
            // whether the email has an account.
            if let Err(AccountError::Busy) = hash(hashing, password.to_owned()).await {
                return Err(AccountError::Busy);
            }
            Err(AccountError::WrongCredentials)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether `stored` accepts the right password and refuses a wrong one.
    async fn right_and_wrong(queue: &HashQueue, stored: &str) -> (bool, bool) {
        let check = |password: &str| verify(queue, password.into(), stored.into());
        (
            check("correct horse battery").await.unwrap(),
            check("wrong horse battery").await.unwrap(),
        )
    }

    #[tokio::test]
    async fn hashes_take_seven_mib_and_older_hashes_still_verify() {
        let queue = HashQueue::default();
        let stored = hash(&queue, "correct horse battery".into()).await.unwrap();
        assert!(
            stored.starts_with("$argon2id$v=19$m=7168,t=5,p=1$"),
            "{stored}"
        );
        assert_eq!(right_and_wrong(&queue, &stored).await, (true, false));
        // An account made with the crate's default (19 MiB, 2 passes) signs in.
        let salt = SaltString::generate(&mut OsRng);
        let older = Argon2::default()
            .hash_password(b"correct horse battery", &salt)
            .unwrap()
            .to_string();
        assert!(older.contains("m=19456,t=2,p=1"), "{older}");
        assert_eq!(right_and_wrong(&queue, &older).await, (true, false));
    }

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
            "<img/src=x>@example.com",
            "ada<b>@example.com",
            "\"ada\"@example.com",
            "o'brien@example.com",
            "a&b@example.com",
            "ada@exa_mple.com",
            "ada@-example.com",
            "ada@example-.com",
            "ada@example..com",
            "ada@[127.0.0.1]",
            "ada@127.0.0.1",
            ".ada@example.com",
            "ada.@example.com",
            "a..da@example.com",
            "adá@example.com",
            "ada@exámple.com",
            "ada\u{0}@example.com",
        ] {
            assert!(normalize_email(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn safe_addresses_are_accepted_up_to_the_smtp_limit() {
        for good in [
            "ada.lovelace+billing@example.co.uk",
            "a_b-c%d@sub-domain.example.com",
            "1@example.io",
        ] {
            assert_eq!(normalize_email(good).unwrap(), good);
        }
        let longest = format!(
            "{}@{}.{}.{}.com",
            "a".repeat(64),
            "b".repeat(63),
            "c".repeat(63),
            "d".repeat(57)
        );
        assert_eq!(longest.len(), MAX_EMAIL_LEN);
        assert!(normalize_email(&longest).is_ok());
        let one_more = format!(
            "{}@{}.{}.{}.com",
            "a".repeat(64),
            "b".repeat(63),
            "c".repeat(63),
            "d".repeat(58)
        );
        assert!(normalize_email(&one_more).is_err());
        assert!(normalize_email(&format!("{}@example.com", "a".repeat(65))).is_err());
        assert!(normalize_email(&"a".repeat(1 << 20)).is_err());
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
