//! The axum server: start-up, router, middleware and the serve loop.

pub mod connection_timeouts;
pub mod dev_mail;
pub mod dev_stripe;
pub mod health;
pub mod memory;
pub mod origin;
pub mod page_cache;
pub mod scrape;
pub mod telemetry;
pub mod usage_api;

use std::{future::Future, sync::Arc};

use axum::{routing::get, Router};
use leptos::prelude::provide_context;
use leptos_axum::{generate_route_list, AxumRouteListing, LeptosRoutes};
use tokio::net::TcpListener;
use tower::ServiceBuilder;
use tower_http::{
    limit::RequestBodyLimitLayer,
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    trace::{DefaultOnResponse, TraceLayer},
};
use tracing::Level;

use crate::{
    app::{shell, App},
    billing::context::SetupError,
    config::Config,
    gateway::GatewayError,
    security,
    state::AppState,
};

/// The app, started: its database connected and migrated, its state built, its
/// socket bound. `main` and the tests start it the same way:
/// [`Application::build`] (or [`Application::build_on`] a bound socket), then
/// [`Application::prepare_stripe`] where Stripe holds the catalog, then
/// [`Application::run_until_stopped`].
pub struct Application {
    state: AppState,
    listener: TcpListener,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("binding {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Database(#[from] crate::db::DbError),
    #[error(transparent)]
    Setup(#[from] SetupError),
    #[error(transparent)]
    Stripe(#[from] GatewayError),
}

impl Application {
    /// Binds `LISTEN_ADDR`, then as [`Application::build_on`].
    pub async fn build(config: Config) -> Result<Self, StartError> {
        let addr = config.listen_addr;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| StartError::Bind { addr, source })?;
        Self::build_on(listener, config).await
    }

    /// Connects to and migrates the database and builds the state, serving on
    /// `listener` (bound first, so `APP_URL` can name its port, and so an
    /// emulator's first events queue on it instead of failing).
    pub async fn build_on(listener: TcpListener, config: Config) -> Result<Self, StartError> {
        // Before anything counts.
        crate::prometheus::handle();
        let db = crate::db::connect(&config.database_url).await?;
        crate::db::migrate(&db).await?;
        tracing::info!(
            env = ?config.app_env,
            stripe = %config.stripe.describe(),
            database = %crate::db::ping(&db).await?,
            "starting"
        );
        let state = AppState::new(db, config)?;
        Ok(Application { state, listener })
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    pub fn local_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.listener.local_addr()
    }

    /// With the emulator, makes its account hold the catalog (a fresh clone gets
    /// a working pricing page with zero set-up; a real account changes only
    /// through `catalog apply`); then reads the catalog's prices. Prices that
    /// cannot be read are logged, not fatal: pages render from the catalog and
    /// checkout looks them up again.
    pub async fn prepare_stripe(&self) -> Result<(), StartError> {
        let billing = &self.state.billing;
        if billing.config.stripe.is_emulated() {
            billing.apply_catalog_to_emulator().await?;
        }
        if let Err(err) = billing.refresh_prices().await {
            tracing::warn!(error = %err, "could not resolve catalog prices at start-up");
            return Ok(());
        }
        // Made now rather than at the first portal click, so `doctor` is green
        // from the first start.
        if let Err(err) = crate::billing::service::portal_configuration(billing).await {
            tracing::warn!(error = %err, "could not prepare the portal configuration at start-up");
        }
        Ok(())
    }

    /// Serves, with the housekeeping sweep and the mail worker, until `shutdown` resolves (see [`serve`]).
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let sweeper = tokio::spawn(sweep_forever(self.state.db().clone()));
        let upkeep = tokio::spawn(crate::prometheus::upkeep_forever());
        let mailer = self.state.billing.mail.clone();
        let transport = crate::mail::worker::Transport::from_config(&mailer)
            .map_err(|err| std::io::Error::new(std::io::ErrorKind::InvalidInput, err))?;
        let mail = tokio::spawn(crate::mail::worker::run(
            self.state.db().clone(),
            mailer,
            transport,
        ));
        let addr = self.listener.local_addr()?;
        tracing::info!("listening on http://{addr}");
        let served = serve(self.listener, self.state, shutdown).await;
        sweeper.abort();
        upkeep.abort();
        // A send cut off here is sent again once its lease expires.
        mail.abort();
        served
    }
}

/// Runs `operations::sweep` every `SWEEP_EVERY`, in its own span.
async fn sweep_forever(db: sea_orm::DatabaseConnection) {
    use tracing::Instrument;
    let mut every = tokio::time::interval(crate::operations::SWEEP_EVERY);
    loop {
        every.tick().await;
        match crate::operations::sweep(&db)
            .instrument(tracing::info_span!("sweep"))
            .await
        {
            Ok((sessions, counters)) => {
                tracing::debug!(sessions, counters, "expired sessions and counters swept")
            }
            Err(err) => tracing::warn!(error = %err, "sweep failed"),
        }
    }
}

/// The session cookie's name (the page cache tells visitors with a session by it).
pub const SESSION_COOKIE: &str = "billing_session";

/// The app's routes, generated once per process. Generating them renders the app
/// with resource loading switched off by a process-wide flag (leptos_server's
/// `SuppressResourceLoad`), and a resource first polled meanwhile by a request to
/// another router in the same process waits forever (leptos issue #4773). A
/// server builds one router before it serves; tests build many, in parallel, and
/// hung about one run in ten before this.
fn routes() -> Vec<AxumRouteListing> {
    static ROUTES: std::sync::OnceLock<Vec<AxumRouteListing>> = std::sync::OnceLock::new();
    ROUTES.get_or_init(|| generate_route_list(App)).clone()
}

/// The whole HTTP surface: pages, server functions, static files and `/healthz`.
pub fn router(state: AppState) -> Router {
    let routes = routes();
    let context = {
        let state = state.clone();
        move || {
            provide_context(state.clone());
            provide_context(crate::request::RequestUser::default());
        }
    };
    // Behind an `Arc`: axum clones a route's handler, this closure included, for
    // every request it routes (a kept page too, which never renders), and Leptos'
    // options are a dozen strings; a render still takes its own copy.
    let pages_shell = {
        let options = Arc::new(state.leptos_options.clone());
        move || shell(leptos::config::LeptosOptions::clone(&options))
    };

    let body_limit = state.config().request_body_limit;
    // Cookie holds only the session id: HttpOnly, SameSite=Lax (sent on top-level
    // returns from Stripe's hosted pages), Secure in production.
    let sessions = tower_sessions::SessionManagerLayer::new(
        crate::auth::session_store::SeaOrmSessionStore::new(state.db().clone()),
    )
    .with_name(SESSION_COOKIE)
    .with_http_only(true)
    .with_same_site(tower_sessions::cookie::SameSite::Lax)
    .with_secure(state.config().app_env == crate::config::AppEnv::Production)
    .with_expiry(tower_sessions::Expiry::OnInactivity(time::Duration::days(
        14,
    )));

    let webhook_path = state.config().paths.stripe_webhook.clone();
    let mut app = Router::new()
        .route("/healthz", get(health::healthz))
        .route(&webhook_path, axum::routing::post(crate::webhooks::receive))
        .merge(usage_api::routes());
    if dev_mail::enabled(state.config()) {
        app = app.route("/dev/mail", get(dev_mail::inbox));
    }
    if scrape::enabled(state.config()) {
        app = app.route("/metrics", get(scrape::metrics));
    }
    let counted = Arc::new(scrape::Routes::new(
        routes.iter().map(|route| route.path().to_owned()),
        &[
            "/healthz",
            &webhook_path,
            "/metrics",
            "/dev/mail",
            "/favicon.svg",
            "/robots.txt",
            "/api/v1/entitlements",
            "/api/v1/usage",
            "/api/v1/usage/holds",
        ],
    ));
    let app = app.leptos_routes_with_context(&state, routes, context.clone(), pages_shell);
    static_files(app, &state, context)
        .layer(axum::middleware::from_fn(page_cache::mark_sessions))
        .layer(sessions)
        // Outside the sessions layer: a kept page needs no session at all.
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(page_cache::PageCache::new(state.clone())),
            page_cache::serve,
        ))
        .layer(RequestBodyLimitLayer::new(body_limit))
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(origin::OriginPolicy::from_config(state.config())),
            origin::refuse_cross_site,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.security.clone(),
            security::apply_headers,
        ))
        .layer(axum::middleware::from_fn_with_state(
            counted,
            scrape::count_requests,
        ))
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
                .layer(
                    TraceLayer::new_for_http()
                        .make_span_with(telemetry::request_span)
                        .on_response(DefaultOnResponse::new().level(Level::INFO)),
                )
                .layer(PropagateRequestIdLayer::x_request_id()),
        )
        .with_state(state)
}

/// The built site (wasm, JS, CSS, public assets) straight from disk, and the app's
/// 404 page for anything else. Leptos' own file handler is only the 404 here: it
/// serves files inside a reactive owner whose parent is whatever owner the worker
/// thread last left current, so a file could inherit an earlier page's status —
/// seen as a 404 on the wasm-split loader right after a 404 for /favicon.ico.
fn static_files(
    router: Router<AppState>,
    state: &AppState,
    context: impl Fn() + Clone + Send + Sync + 'static,
) -> Router<AppState> {
    let not_found = axum::handler::Handler::with_state(
        leptos_axum::file_and_error_handler_with_context::<AppState, _>(context, shell),
        state.clone(),
    );
    router.fallback_service(
        tower_http::services::ServeDir::new(&*state.leptos_options.site_root)
            .append_index_html_on_directories(false)
            .fallback(not_found),
    )
}

/// Serves until `shutdown` resolves, then stops accepting and lets in-flight
/// requests finish for at most `SHUTDOWN_GRACE_SECS`, then returns.
///
/// Our own accept loop over hyper rather than `axum::serve`, which has no
/// header-read or idle timeout, no connection cap and no bound on the drain.
/// A request's head is due within 10 s, a kept-alive connection may idle for
/// `IDLE_TIMEOUT_SECS` ([`connection_timeouts`]). At most
/// `MAX_CONNECTIONS` are open at once; beyond that new ones wait in the
/// listen backlog until one closes.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    use tower::ServiceExt;

    let grace = state.config().shutdown_grace;
    let idle = state.config().idle_timeout;
    let connections = Arc::new(tokio::sync::Semaphore::new(state.config().max_connections));
    let app = router(state);
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    // hyper's header timer would also close idle kept-alive connections after
    // the head's 10 s; `connection_timeouts` keeps the two deadlines apart.
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(None);
    builder.http2().timer(TokioTimer::new());
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            () = &mut shutdown => break,
            permit = connections.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let (tcp, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors and the like: pause, as axum does.
                    tracing::warn!(error = %err, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        // Pages stream in several chunks; with Nagle's algorithm on, each small
        // chunk after the first waits for the client's delayed ACK (~40 ms a page).
        if let Err(err) = tcp.set_nodelay(true) {
            tracing::debug!(error = %err, "could not set TCP_NODELAY");
        }
        let app = app.clone();
        let watch = connection_timeouts::Watch::opened(idle);
        let socket = watch.socket(tcp);
        let service = hyper::service::service_fn(
            move |mut request: hyper::Request<hyper::body::Incoming>| {
                // Connect info gives server functions the client address (abuse limits).
                request
                    .extensions_mut()
                    .insert(axum::extract::ConnectInfo(peer));
                let answering = watch.request(request.version() == hyper::Version::HTTP_2);
                let response = app.clone().oneshot(request.map(axum::body::Body::new));
                async move {
                    let response = response.await?;
                    Ok::<_, std::convert::Infallible>(response.map(|body| answering.body(body)))
                }
            },
        );
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(socket), service)
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(error = %err, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections drained"),
        () = tokio::time::sleep(grace) => {
            tracing::warn!(?grace, "shutdown grace period over; closing remaining connections");
        }
    }
    Ok(())
}

/// Resolves on SIGTERM (what orchestrators send) or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %err, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();

    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown signal received; draining in-flight requests");
}
