//! Database connection, migrations and the sea-orm entities.
//!
//! SQLite (a file under `data/`) is the zero-set-up default; PostgreSQL is chosen
//! by a `postgres://` `DATABASE_URL`. Both run the same migrations and entities.

pub mod entities;
pub mod group_commit;
pub mod reads;

use std::{path::Path, time::Duration};

use migration::{Migrator, MigratorTrait};
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, DbErr};

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("could not create the directory {dir} for the SQLite database: {source}")]
    CreateDir {
        dir: String,
        #[source]
        source: std::io::Error,
    },
    #[error("could not connect to the database ({backend}): {source}")]
    Connect {
        backend: &'static str,
        #[source]
        source: DbErr,
    },
    #[error("database migration failed: {0}")]
    Migrate(#[source] DbErr),
    #[error("database query failed: {0}")]
    Query(#[from] DbErr),
}

/// A turn to write, for transactions that are many and concurrent (webhook bursts).
///
/// SQLite has one writer at a time. Writers that collide wait in its busy handler,
/// which sleeps in growing steps of up to 100 ms, or fail at once when a read
/// transaction cannot be upgraded; under a burst of webhooks those sleeps and
/// re-runs took most of the time. Queuing such transactions in the process hands
/// the write lock over without sleeping. PostgreSQL locks rows, so it gets `None`.
/// (Process-wide rather than per pool: several pools in one process only queue
/// behind each other, which is harmless.)
pub async fn write_turn(db: &DatabaseConnection) -> Option<tokio::sync::MutexGuard<'static, ()>> {
    static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    match db.get_database_backend() {
        DbBackend::Sqlite => Some(TURN.lock().await),
        _ => None,
    }
}

/// Holds one billing account for the rest of the transaction: a row lock on
/// PostgreSQL (every instance waits on it); on SQLite a no-op write, so the
/// transaction takes the write lock from this statement on and never has to
/// upgrade a read it made. Whether the account exists.
pub async fn lock_account<C: ConnectionTrait>(conn: &C, id: i64) -> Result<bool, DbErr> {
    let backend = conn.get_database_backend();
    Ok(if backend == DbBackend::Postgres {
        conn.query_one_raw(sea_orm::Statement::from_sql_and_values(
            backend,
            "SELECT id FROM accounts WHERE id = $1 FOR UPDATE",
            [id.into()],
        ))
        .await?
        .is_some()
    } else {
        conn.execute_raw(sea_orm::Statement::from_sql_and_values(
            backend,
            "UPDATE accounts SET seats_wanted = seats_wanted WHERE id = ?",
            [id.into()],
        ))
        .await?
        .rows_affected()
            > 0
    })
}

/// Turns on SQLite's query planner stability guarantee for a connection.
///
/// Without it SQLite plans a `LIMIT ?` (every sea-orm `.one()`, the billing
/// page's `LIMIT 24`) with the bound value, and so marks the statement to be
/// parsed and planned again whenever that parameter is bound, even to the same
/// value: every run of a cached statement was a fresh prepare. Under `perf`
/// `sqlite3Reprepare` was 29 % of a kept `/dashboard/billing`'s time (issue 23).
/// With the guarantee a plan never depends on bound values (the app has no
/// `ANALYZE` statistics such plans would use). Neither sqlx nor rusqlite's
/// safe API has the setting for a pooled connection, hence the C call.
///
/// # Safety
/// `db` must be an open connection that no other thread uses during the call.
pub(crate) unsafe fn stable_plans(db: *mut rusqlite::ffi::sqlite3) -> Result<(), i32> {
    // SAFETY: the caller's promise.
    match unsafe { query_planner_stability(db, 1) } {
        Ok(true) => Ok(()),
        Ok(false) => Err(rusqlite::ffi::SQLITE_ERROR),
        Err(code) => Err(code),
    }
}

/// Whether a connection plans without bound values ([`stable_plans`]); `None`
/// when SQLite does not say.
///
/// # Safety
/// As [`stable_plans`].
pub unsafe fn plans_are_stable(db: *mut rusqlite::ffi::sqlite3) -> Option<bool> {
    // SAFETY: the caller's promise; -1 only reads the setting.
    unsafe { query_planner_stability(db, -1) }.ok()
}

/// `SQLITE_DBCONFIG_ENABLE_QPSG` set to `set` (1 on, 0 off, -1 left as it is):
/// whether it is on afterwards, or SQLite's error code.
///
/// # Safety
/// As [`stable_plans`].
unsafe fn query_planner_stability(
    db: *mut rusqlite::ffi::sqlite3,
    set: std::ffi::c_int,
) -> Result<bool, std::ffi::c_int> {
    let mut on: std::ffi::c_int = -1;
    // SAFETY: the caller's promise; the variadic arguments are the (int, int*)
    // the option takes.
    let code = unsafe {
        rusqlite::ffi::sqlite3_db_config(
            db,
            rusqlite::ffi::SQLITE_DBCONFIG_ENABLE_QPSG,
            set,
            &mut on as *mut std::ffi::c_int,
        )
    };
    if code == rusqlite::ffi::SQLITE_OK && on >= 0 {
        Ok(on == 1)
    } else {
        Err(code)
    }
}

/// Opens a pool for `url`, creating the SQLite file (and its directory) if needed.
pub async fn connect(url: &str) -> Result<DatabaseConnection, DbError> {
    let backend = backend_name(url);
    if backend == "sqlite" {
        ensure_sqlite_dir(url)?;
    }

    let mut options = ConnectOptions::new(url.to_owned());
    options
        // SQLite: one thread per connection and one writer at a time; four keep
        // two cores busy, and each more costs a thread, its heap and a page cache
        // (issue 7's memory budget).
        .max_connections(if backend == "sqlite" { 4 } else { 16 })
        .acquire_timeout(Duration::from_secs(5))
        // Our logs are per request and per unit of work (the request span, the
        // webhook and billing-action spans); sqlx's per-statement logs would drown them.
        .sqlx_logging(false)
        .map_sqlx_sqlite_opts(|opts| {
            // WAL lets readers proceed during a write; the busy timeout turns write
            // contention into a short wait instead of an immediate "database is locked".
            // FULL: a commit is on disk before it returns. With NORMAL in WAL mode
            // the last commits can be lost at power loss, and a webhook answered
            // 200 would then never be re-sent by Stripe.
            opts.journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                .synchronous(sea_orm::sqlx::sqlite::SqliteSynchronous::Full)
                .busy_timeout(Duration::from_secs(5))
                .foreign_keys(true)
        })
        .map_sqlx_sqlite_pool_opts(|pool| {
            pool.after_connect(|connection, _| {
                Box::pin(async move {
                    let mut handle = connection.lock_handle().await?;
                    // SAFETY: a new connection, locked for this call.
                    let stable = unsafe { stable_plans(handle.as_raw_handle().as_ptr()) };
                    stable.map_err(|code| {
                        sea_orm::sqlx::Error::Configuration(
                            format!("sqlite3_db_config(ENABLE_QPSG) failed: {code}").into(),
                        )
                    })
                })
            })
        });

    // sqlx pings every connection it hands out by default: one more round trip per
    // query (on SQLite a hand-off to the connection's thread and back, the largest
    // cost of a signed-in page). A SQLite connection is in-process and nothing can
    // drop it, so it is never pinged; a PostgreSQL one is pinged only after a
    // minute idle, when a server restart or a proxy may have dropped it, and a
    // hot one goes straight to its query.
    if backend == "sqlite" {
        options.test_before_acquire(false);
    } else {
        options.test_before_acquire_if_idle_for(Duration::from_secs(60));
    }
    Database::connect(options)
        .await
        .map_err(|source| DbError::Connect { backend, source })
}

/// Applies every pending migration.
pub async fn migrate(db: &DatabaseConnection) -> Result<(), DbError> {
    Migrator::up(db, None).await.map_err(DbError::Migrate)
}

/// Runs a trivial query; returns the backend's name when the database answers.
pub async fn ping(db: &DatabaseConnection) -> Result<&'static str, DbError> {
    db.execute_unprepared("SELECT 1").await?;
    Ok(match db.get_database_backend() {
        DbBackend::Sqlite => "sqlite",
        DbBackend::Postgres => "postgres",
        _ => "other",
    })
}

fn backend_name(url: &str) -> &'static str {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        "postgres"
    } else if url.starts_with("sqlite:") {
        "sqlite"
    } else {
        "unknown"
    }
}

/// SQLite creates the file (with `mode=rwc`) but not its directory.
fn ensure_sqlite_dir(url: &str) -> Result<(), DbError> {
    let Some(path) = sqlite_file_path(url) else {
        return Ok(());
    };
    match Path::new(path).parent() {
        Some(dir) if !dir.as_os_str().is_empty() => {
            std::fs::create_dir_all(dir).map_err(|source| DbError::CreateDir {
                dir: dir.display().to_string(),
                source,
            })
        }
        _ => Ok(()),
    }
}

/// The file path inside a `sqlite://path?query` URL; `None` for in-memory databases.
fn sqlite_file_path(url: &str) -> Option<&str> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or_default();
    (!path.is_empty() && path != ":memory:").then_some(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// How often a cached `LIMIT ?` statement was prepared again over runs
    /// binding different limits, with and without stable plans.
    fn reprepares(stable: bool) -> i32 {
        let connection = rusqlite::Connection::open_in_memory().unwrap();
        // SAFETY: the connection is open and used only here.
        let db = unsafe { connection.handle() };
        if stable {
            // SAFETY: as above.
            unsafe { stable_plans(db) }.unwrap();
        }
        // SAFETY: as above.
        assert_eq!(unsafe { plans_are_stable(db) }, Some(stable));
        connection
            .execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, a INTEGER)")
            .unwrap();
        for limit in 1..=5 {
            let mut statement = connection
                .prepare_cached("SELECT id FROM t WHERE a = ? LIMIT ?")
                .unwrap();
            statement.query_map((7, limit), |_| Ok(())).unwrap().count();
        }
        let statement = connection
            .prepare_cached("SELECT id FROM t WHERE a = ? LIMIT ?")
            .unwrap();
        statement.get_status(rusqlite::StatementStatus::RePrepare)
    }

    #[test]
    fn a_cached_statement_binding_its_limit_is_not_prepared_again() {
        assert!(
            reprepares(false) >= 4,
            "SQLite's default: again per binding"
        );
        assert_eq!(reprepares(true), 0);
    }

    #[test]
    fn finds_the_sqlite_file_path() {
        assert_eq!(
            sqlite_file_path("sqlite://data/app.db?mode=rwc"),
            Some("data/app.db")
        );
        assert_eq!(sqlite_file_path("sqlite:///tmp/x.db"), Some("/tmp/x.db"));
        assert_eq!(sqlite_file_path("sqlite::memory:"), None);
        assert_eq!(sqlite_file_path("postgres://localhost/db"), None);
    }

    #[test]
    fn names_backends() {
        assert_eq!(backend_name("postgres://u@h/db"), "postgres");
        assert_eq!(backend_name("postgresql://u@h/db"), "postgres");
        assert_eq!(backend_name("sqlite://data/app.db"), "sqlite");
        assert_eq!(backend_name("mysql://h/db"), "unknown");
    }
}
