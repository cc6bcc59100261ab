//! Identity: accounts and their server-side sessions, and what a person does
//! with their account by email link (verify, reset, change of address) or in
//! its settings (password, sign out everywhere, deletion).

pub mod accounts;
pub mod deletion;
pub mod recovery;
pub mod session_store;
pub mod settings;
pub mod tokens;
pub mod verification;

use sea_orm::EntityTrait;
use tower_sessions::Session;

use crate::db::entities::{memberships::Role, users};

/// Session key holding the signed-in user's id; nothing else about the user is
/// kept in the session, so a changed email or a deleted account takes effect at once.
pub const USER_ID_KEY: &str = "user_id";

/// Session key holding the account the user chose to act in (the header's
/// switcher). Only a choice: `teams::members::acting_with_choices` checks it
/// against the memberships read with the session on every request, and falls
/// back to the personal account.
pub const ACCOUNT_ID_KEY: &str = "account_id";

/// A signed-in session: its user, the account chosen in it (if any), and every
/// account the user belongs to with their role there, personal first (the
/// header's switcher; `teams::members::acting_with_choices` picks the one acted in).
#[derive(Clone, Debug)]
pub struct SignedIn {
    pub user: users::Model,
    pub chosen_account: Option<i64>,
    pub accounts: Vec<(crate::db::entities::accounts::Model, Role)>,
}

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("session store: {0}")]
    Store(#[from] tower_sessions::session::Error),
    #[error("database: {0}")]
    Database(#[from] sea_orm::DbErr),
}

/// The signed-in user, from the server-side session only (never from anything the
/// browser sends in a form or URL).
pub async fn signed_in(
    session: &Session,
    reads: &crate::db::reads::Reads,
) -> Result<Option<SignedIn>, SessionError> {
    match session.id() {
        // Every signed-in page asks: the stored session, its user and their
        // accounts in one query rather than three (on SQLite each query is a round
        // trip to a database thread, the largest cost of a signed-in page). An
        // unchanged session is exactly what is stored, so the answer is the same.
        Some(id) if !session.is_modified() => Ok(session_store::user_of(reads, &id).await?),
        _ => {
            let Some(id) = session.get::<i64>(USER_ID_KEY).await? else {
                return Ok(None);
            };
            let chosen_account = session.get::<i64>(ACCOUNT_ID_KEY).await?;
            let db = reads.db();
            let Some(user) = users::Entity::find_by_id(id).one(db).await? else {
                return Ok(None);
            };
            let accounts = crate::teams::members::accounts_of(db, user.id).await?;
            Ok(Some(SignedIn {
                user,
                chosen_account,
                accounts,
            }))
        }
    }
}

/// Starts a signed-in session under a new id: a session id an attacker planted
/// before sign-in (session fixation) is worthless afterwards.
pub async fn start_session(session: &Session, user: &users::Model) -> Result<(), SessionError> {
    session.cycle_id().await?;
    session.insert(USER_ID_KEY, user.id).await?;
    Ok(())
}

/// Where to go after signing in: a place on this site, never another origin.
///
/// `next` is resolved as a URL against `app_url` exactly as a browser would
/// resolve the `Location` it becomes, and must keep that origin. Control
/// characters and backslashes are refused outright: browsers drop tabs and
/// newlines from URLs and read `\` as `/`, so `/<TAB>/evil.example` and
/// `/\evil.example` are `//evil.example` to them (and a newline cannot go in a
/// header at all). Anything refused goes to `/`.
pub fn safe_next(next: Option<&str>, app_url: &url::Url) -> String {
    const HOME: &str = "/";
    let Some(next) = next.filter(|n| n.starts_with('/')) else {
        return HOME.to_owned();
    };
    if next.chars().any(|c| c.is_control() || c == '\\') {
        return HOME.to_owned();
    }
    let Ok(resolved) = app_url.join(next) else {
        return HOME.to_owned();
    };
    if resolved.origin() != app_url.origin() {
        return HOME.to_owned();
    }
    // Dot segments can leave `//host` as the path (`/.//evil.example`): as a
    // relative `Location` that is another host, so the path keeps one slash.
    let path = format!("/{}", resolved.path().trim_start_matches('/'));
    let mut target = path;
    if let Some(query) = resolved.query() {
        target.push('?');
        target.push_str(query);
    }
    if let Some(fragment) = resolved.fragment() {
        target.push('#');
        target.push_str(fragment);
    }
    target
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn next_stays_on_this_site() {
        let app = url::Url::parse("https://app.example/").unwrap();
        for (next, expected) in [
            ("/pricing?interval=yearly", "/pricing?interval=yearly"),
            (
                "/pricing?interval=yearly&plan=premium",
                "/pricing?interval=yearly&plan=premium",
            ),
            ("/dashboard/billing#invoices", "/dashboard/billing#invoices"),
            ("/a/../b", "/b"),
            // Resolves to the path `//evil.example` on our host; kept on our host.
            ("/.//evil.example", "/evil.example"),
            ("/%2F%2Fevil.example", "/%2F%2Fevil.example"),
        ] {
            assert_eq!(safe_next(Some(next), &app), expected, "{next:?}");
        }
        for outside in [
            "",
            "pricing",
            "https://evil.example",
            "//evil.example",
            "///evil.example",
            "/\\evil.example",
            "/\t/evil.example",
            "/\n",
            "/\r\nSet-Cookie: a=b",
            "/\u{0}",
            "/\u{7f}",
            "/\u{85}x",
            "https://app.example.evil.example/",
            "/ /evil.example\\",
        ] {
            assert_eq!(safe_next(Some(outside), &app), "/", "{outside:?}");
        }
        assert_eq!(safe_next(None, &app), "/");
    }
}
