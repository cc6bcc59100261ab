//! Identity: server-side sessions (sign-up, sign-in and the `CurrentUser`
//! extractor arrive with the sign-in issue and build on this store).

pub mod accounts;
pub mod limits;
pub mod session_store;

use sea_orm::{DatabaseConnection, EntityTrait};
use tower_sessions::Session;

use crate::db::entities::users;

/// Session key holding the signed-in user's id; nothing else about the user is
/// kept in the session, so a changed email or a deleted account takes effect at once.
pub const USER_ID_KEY: &str = "user_id";

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("session store: {0}")]
    Store(#[from] tower_sessions::session::Error),
    #[error("database: {0}")]
    Database(#[from] sea_orm::DbErr),
}

/// The signed-in user, from the server-side session only (never from anything the
/// browser sends in a form or URL).
pub async fn current_user(
    session: &Session,
    db: &DatabaseConnection,
) -> Result<Option<users::Model>, SessionError> {
    match session.id() {
        // Every signed-in page asks: the stored session and its user in one query
        // rather than two (on SQLite each query is a round trip to a database
        // thread, the largest cost of a signed-in page). An unchanged session is
        // exactly what is stored, so the answer is the same.
        Some(id) if !session.is_modified() => Ok(session_store::user_of(db, &id).await?),
        _ => {
            let Some(id) = session.get::<i64>(USER_ID_KEY).await? else {
                return Ok(None);
            };
            Ok(users::Entity::find_by_id(id).one(db).await?)
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

/// Where to go after signing in: only a path on this site, never another origin.
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(path) if path.starts_with('/') && !path.starts_with("//") && !path.contains('\\') => {
            path.to_owned()
        }
        _ => "/".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn next_stays_on_this_site() {
        assert_eq!(
            safe_next(Some("/pricing?interval=yearly")),
            "/pricing?interval=yearly"
        );
        for outside in [
            None,
            Some(""),
            Some("https://evil.example"),
            Some("//evil.example"),
            Some("/\\evil.example"),
        ] {
            assert_eq!(safe_next(outside), "/", "{outside:?}");
        }
    }
}
