//! Test harness: real databases (a fresh SQLite file, a fresh PostgreSQL database)
//! and the real server on a free port, talked to over HTTP.

#![allow(dead_code)] // each test binary uses a different part of the harness

pub mod billing;
pub mod smtp;

use std::sync::atomic::{AtomicU32, Ordering};

use billing_starter::{config::Config, db, server::Application, state::AppState};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection};
use tokio::sync::oneshot;

/// The value of `nonce="..."` on the first inline script of a page.
pub fn script_nonce(html: &str) -> Option<&str> {
    let start = html.find("<script")?;
    let tag = &html[start..start + html[start..].find('>')?];
    let value = &tag[tag.find("nonce=\"")? + 7..];
    Some(&value[..value.find('"')?])
}

/// Waits, if need be, until at least `needed_secs` are left in the current
/// fixed `window_secs` window (aligned to the epoch): abuse limits count in
/// such windows, and checkout's idempotency key holds for one, so a test that
/// crosses a boundary sees a counter reset or a new key half-way.
pub async fn fresh_window(window_secs: i64, needed_secs: i64) {
    let now = chrono::Utc::now().timestamp();
    let left = window_secs - now.rem_euclid(window_secs);
    if left < needed_secs {
        tokio::time::sleep(std::time::Duration::from_secs((left + 1) as u64)).await;
    }
}

/// Runs the server binary as an operator would, with only `PATH`, a quiet log
/// filter and `env` in its environment, in a throw-away working directory;
/// its exit code and its output (stdout, then stderr). Off the async runtime:
/// the emulator it talks to lives on the test's runtime, so a blocking wait on
/// a worker would deadlock.
pub async fn run_binary(args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_billing-starter"));
    command
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "warn")
        .envs(env.iter().copied());
    tokio::task::spawn_blocking(move || {
        let dir = tempfile::tempdir().unwrap();
        let output = command.current_dir(dir.path()).output().unwrap();
        (
            output.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&output.stdout).into_owned()
                + &String::from_utf8_lossy(&output.stderr),
        )
    })
    .await
    .unwrap()
}

/// A mailer with the default configuration (mail kept in the outbox), for
/// tests that call account functions directly.
pub fn mailer() -> billing_starter::mail::Mailer {
    let config = Config::from_vars(Vec::<(String, String)>::new()).expect("default config");
    billing_starter::mail::Mailer::new(std::sync::Arc::new(config))
}

/// A new user signed up with `email` through the app's own sign-up (default
/// limits, mail kept in the outbox), for tests that need one on a database.
pub async fn sign_up(
    db: &DatabaseConnection,
    email: &str,
) -> billing_starter::db::entities::users::Model {
    billing_starter::auth::accounts::sign_up(
        db,
        &Default::default(),
        &mailer(),
        email,
        "correct horse battery",
    )
    .await
    .expect("sign up")
}

/// Set by `.ci/run` (and by developers who want both backends) to a PostgreSQL
/// server where tests may create and drop databases.
pub const POSTGRES_URL_VAR: &str = "TEST_POSTGRES_URL";

/// A database that exists only for one test and is removed afterwards.
pub enum TestDb {
    Sqlite {
        _dir: tempfile::TempDir,
        url: String,
    },
    Postgres {
        admin_url: String,
        name: String,
        url: String,
    },
}

impl TestDb {
    pub fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("nested/app.db").display()
        );
        TestDb::Sqlite { _dir: dir, url }
    }

    /// `None` when no PostgreSQL server is configured for tests. In CI
    /// (`CI=true`) an unset URL fails the test instead: the PostgreSQL halves
    /// must not pass by being skipped.
    pub async fn postgres() -> Option<Self> {
        let Some(admin_url) = std::env::var(POSTGRES_URL_VAR)
            .ok()
            .filter(|url| !url.is_empty())
        else {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI=true but {POSTGRES_URL_VAR} is not set: the PostgreSQL half of this test \
                 would be skipped"
            );
            return None;
        };
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "billing_test_{}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos()
        );
        let admin = Database::connect(&admin_url).await.unwrap_or_else(|err| {
            panic!("{POSTGRES_URL_VAR} is set but PostgreSQL is unreachable: {err}")
        });
        admin
            .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
            .await
            .expect("create test database");
        admin.close().await.ok();
        let url = replace_database(&admin_url, &name);
        Some(TestDb::Postgres {
            admin_url,
            name,
            url,
        })
    }

    pub fn url(&self) -> &str {
        match self {
            TestDb::Sqlite { url, .. } | TestDb::Postgres { url, .. } => url,
        }
    }

    pub async fn connect(&self) -> DatabaseConnection {
        db::connect(self.url())
            .await
            .expect("connect to test database")
    }

    /// Drops a PostgreSQL test database (SQLite files go with their temp dir).
    pub async fn cleanup(self) {
        if let TestDb::Postgres {
            admin_url, name, ..
        } = self
        {
            let admin = Database::connect(&admin_url)
                .await
                .expect("reconnect as admin");
            admin
                .execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                .await
                .expect("drop test database");
            admin.close().await.ok();
        }
    }
}

/// The given URL with its database name replaced, keeping any query string.
fn replace_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let (server, _) = base
        .rsplit_once('/')
        .expect("postgres URL has a database path");
    match query {
        Some(query) => format!("{server}/{name}?{query}"),
        None => format!("{server}/{name}"),
    }
}

/// Runs `test` on a fresh SQLite database and, when configured, on a fresh
/// PostgreSQL database.
pub async fn on_each_backend<F, Fut>(test: F)
where
    F: Fn(DatabaseConnection) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let sqlite = TestDb::sqlite();
    test(sqlite.connect().await).await;

    match TestDb::postgres().await {
        Some(postgres) => {
            test(postgres.connect().await).await;
            postgres.cleanup().await;
        }
        None => eprintln!("note: {POSTGRES_URL_VAR} not set; PostgreSQL half of this test skipped"),
    }
}

/// An HTTP client that does not follow redirects and sends `Origin: base_url` on
/// every request, as the app's own pages do in a browser (state-changing
/// requests without it are refused). A test of a cross-site request sets its own
/// `Origin`, which replaces this one.
pub fn same_origin_client(base_url: &str) -> reqwest::Client {
    let origin = reqwest::Url::parse(base_url)
        .expect("base URL")
        .origin()
        .ascii_serialization();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .default_headers(reqwest::header::HeaderMap::from_iter([(
            reqwest::header::ORIGIN,
            origin.parse().expect("origin header"),
        )]))
        .build()
        .unwrap()
}

/// A running app on a free loopback port.
pub struct TestApp {
    pub base_url: String,
    pub config: Config,
    pub client: reqwest::Client,
    pub db: DatabaseConnection,
    /// The running app's state: tests may call its services directly.
    pub state: AppState,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl TestApp {
    /// Starts the app; `APP_URL` defaults to its own address (set it in `extra_env`
    /// to override).
    pub async fn spawn(database_url: &str, extra_env: &[(&str, &str)]) -> Self {
        Self::start(database_url, extra_env, false).await
    }

    /// Starts the app against a Stripe emulator at `api_base` whose account holds
    /// the catalog (applied and resolved before the first request).
    pub async fn spawn_with_stripe(
        database_url: &str,
        api_base: &str,
        extra_env: &[(&str, &str)],
    ) -> Self {
        let mut env = vec![("STRIPE_API_BASE", api_base)];
        env.extend_from_slice(extra_env);
        Self::start(database_url, &env, true).await
    }

    async fn start(database_url: &str, extra_env: &[(&str, &str)], with_catalog: bool) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base_url = format!("http://{}", listener.local_addr().unwrap());
        let mut vars = vec![("DATABASE_URL".to_owned(), database_url.to_owned())];
        if !extra_env.iter().any(|(name, _)| *name == "APP_URL") {
            vars.push(("APP_URL".to_owned(), base_url.clone()));
        }
        vars.extend(
            extra_env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        let config = Config::from_vars(vars).expect("test config is valid");

        let app = Application::build_on(listener, config.clone())
            .await
            .expect("app builds");
        if with_catalog {
            app.prepare_stripe().await.expect("catalog applied");
            assert!(
                !app.state()
                    .billing
                    .price_directory()
                    .by_lookup_key
                    .is_empty(),
                "prices resolved"
            );
        }
        let state = app.state().clone();
        let db = state.db().clone();
        let (tx, rx) = oneshot::channel::<()>();
        let server = tokio::spawn(app.run_until_stopped(async {
            let _ = rx.await;
        }));

        Self {
            client: same_origin_client(&base_url),
            base_url,
            config,
            db,
            state,
            shutdown: Some(tx),
            server: Some(server),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// Signals graceful shutdown and waits for the serve loop to return.
    pub async fn stop(mut self) -> std::io::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let server = self.server.take().expect("server running");
        tokio::time::timeout(std::time::Duration::from_secs(10), server)
            .await
            .expect("server stops within 10 s")
            .expect("server task did not panic")
    }
}

#[test]
fn replaces_the_database_name() {
    assert_eq!(
        replace_database("postgres://postgres@127.0.0.1:5432/test", "x"),
        "postgres://postgres@127.0.0.1:5432/x"
    );
    assert_eq!(
        replace_database("postgres://u@h/test?sslmode=disable", "x"),
        "postgres://u@h/x?sslmode=disable"
    );
}

/// The Stripe customer of a user's personal account.
pub async fn customer_of(db: &DatabaseConnection, user_id: i64) -> Option<String> {
    billing_starter::teams::members::personal(db, user_id)
        .await
        .unwrap()
        .and_then(|a| a.stripe_customer_id)
}

/// The id of a user's personal account.
pub async fn personal_account_id(db: &DatabaseConnection, user_id: i64) -> i64 {
    billing_starter::teams::members::personal(db, user_id)
        .await
        .unwrap()
        .expect("every user has a personal account")
        .id
}
