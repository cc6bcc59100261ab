//! The axum server: shared state, router, middleware and the serve loop.

pub mod dev_stripe;
pub mod fns;
pub mod health;
pub mod origin;
pub mod page_cache;
pub mod security;
pub mod telemetry;

use std::{
    future::Future,
    sync::{Arc, RwLock},
};

use axum::{extract::FromRef, routing::get, Router};
use leptos::{config::LeptosOptions, prelude::provide_context};
use leptos_axum::{generate_route_list, AxumRouteListing, LeptosRoutes};
use sea_orm::DatabaseConnection;
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
    catalog::{self, Catalog},
    config::Config,
    gateway::{catalog::PriceDirectory, GatewayError, StripeGateway},
};

/// Everything a request may need, built once at start-up. Cloned several times
/// per request (router, Leptos context, server functions), so a clone is one
/// reference count: field-by-field clones were ~4 % of a page render's CPU.
#[derive(Clone)]
pub struct AppState(Arc<SharedState>);

impl std::ops::Deref for AppState {
    type Target = SharedState;

    fn deref(&self) -> &SharedState {
        &self.0
    }
}

/// What `AppState` shares; reached through `Deref` (`state.db`, `state.catalog`, …).
pub struct SharedState {
    pub db: DatabaseConnection,
    pub config: Arc<Config>,
    pub catalog: Arc<Catalog>,
    pub stripe: StripeGateway,
    /// Lookup key → Stripe price id; refreshed by `refresh_prices`.
    pub prices: Arc<RwLock<PriceDirectory>>,
    /// Password hashing, bounded (`auth::accounts::HashQueue`).
    pub hashing: crate::auth::accounts::HashQueue,
    /// The portal configuration derived from the catalog, once found or created.
    pub portal_configuration: Arc<std::sync::OnceLock<String>>,
    /// The pricing grid for signed-out visitors: the same for all of them.
    pub public_pricing: Arc<std::sync::OnceLock<crate::views::PricingView>>,
    pub security: Arc<security::SecurityHeaders>,
    pub leptos_options: LeptosOptions,
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.leptos_options.clone()
    }
}

impl AppState {
    /// Loads the catalog and builds the Stripe client; no network calls.
    pub fn new(db: DatabaseConnection, config: Config) -> Result<Self, StartupError> {
        let leptos_options = leptos_options(&config);
        let security = Arc::new(security::SecurityHeaders::from_config(&config));
        let catalog = Arc::new(catalog::load::load(&config.catalog_path)?);
        let stripe = StripeGateway::from_config(&config)?;
        Ok(Self(Arc::new(SharedState {
            db,
            config: Arc::new(config),
            catalog,
            stripe,
            prices: Arc::default(),
            hashing: Default::default(),
            portal_configuration: Arc::default(),
            public_pricing: Arc::default(),
            security,
            leptos_options,
        })))
    }

    /// Makes the emulator's account hold the catalog (development and tests only:
    /// a real account changes through `catalog apply`, deliberately).
    pub async fn apply_catalog_to_emulator(&self) -> Result<(), GatewayError> {
        let changes = catalog::sync::plan(
            &self.catalog,
            &self.stripe.remote_catalog(&self.catalog).await?,
        );
        if !changes.is_empty() {
            self.stripe.apply_catalog(&changes).await?;
            tracing::info!(changes = changes.len(), "catalog applied to the emulator");
        }
        Ok(())
    }

    /// A copy of the current lookup key → price directory (a handful of entries).
    pub fn price_directory(&self) -> PriceDirectory {
        self.prices
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Re-reads which Stripe price each catalog lookup key points at.
    pub async fn refresh_prices(&self) -> Result<(), GatewayError> {
        let directory = self.stripe.resolve_prices(&self.catalog).await?;
        let missing: Vec<&str> = self
            .catalog
            .prices()
            .map(|(_, price)| price.lookup_key.as_str())
            .filter(|key| directory.get(key).is_none())
            .collect();
        if !missing.is_empty() {
            tracing::warn!(
                ?missing,
                "catalog prices missing in Stripe; run `billing-starter catalog apply`"
            );
        }
        *self.prices.write().unwrap_or_else(|p| p.into_inner()) = directory;
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Catalog(#[from] catalog::load::LoadError),
    #[error(transparent)]
    Stripe(#[from] GatewayError),
}

/// Leptos' options from our own config, so the binary runs the same with or without
/// cargo-leptos' environment variables (tests spawn it directly).
fn leptos_options(config: &Config) -> LeptosOptions {
    LeptosOptions::builder()
        .output_name(option_env!("LEPTOS_OUTPUT_NAME").unwrap_or("billing-starter"))
        .site_root(config.site_root.to_string_lossy().into_owned())
        .site_pkg_dir("pkg")
        .site_addr(config.listen_addr)
        .build()
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
            provide_context(fns::RequestUser::default());
        }
    };
    let pages_shell = {
        let options = state.leptos_options.clone();
        move || shell(options.clone())
    };

    let body_limit = state.config.request_body_limit;
    // Cookie holds only the session id: HttpOnly, SameSite=Lax (sent on top-level
    // returns from Stripe's hosted pages), Secure in production.
    let sessions = tower_sessions::SessionManagerLayer::new(
        crate::auth::session_store::SeaOrmSessionStore::new(state.db.clone()),
    )
    .with_name(SESSION_COOKIE)
    .with_http_only(true)
    .with_same_site(tower_sessions::cookie::SameSite::Lax)
    .with_secure(state.config.app_env == crate::config::AppEnv::Production)
    .with_expiry(tower_sessions::Expiry::OnInactivity(time::Duration::days(
        14,
    )));

    let webhook_path = state.config.paths.stripe_webhook.clone();
    let app = Router::new()
        .route("/healthz", get(health::healthz))
        .route(&webhook_path, axum::routing::post(crate::webhooks::receive))
        .leptos_routes_with_context(&state, routes, context.clone(), pages_shell);
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
            Arc::new(origin::OriginPolicy::from_config(&state.config)),
            origin::refuse_cross_site,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.security.clone(),
            security::apply_headers,
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

/// How long a client may take to send a request's headers: a client that
/// trickles them (slowloris) holds a connection for no more than this.
const HEADER_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Serves until `shutdown` resolves, then stops accepting and lets in-flight
/// requests finish for at most `SHUTDOWN_GRACE_SECS`, then returns.
///
/// Our own accept loop over hyper rather than `axum::serve`, which has no
/// header-read timeout, no connection cap and no bound on the drain. At most
/// `MAX_CONNECTIONS` are open at once; beyond that new ones wait in the
/// listen backlog until one closes.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    use tower::ServiceExt;

    let grace = state.config.shutdown_grace;
    let connections = Arc::new(tokio::sync::Semaphore::new(state.config.max_connections));
    let app = router(state);
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
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
        // Connect info gives server functions the client address (abuse limits).
        let service = hyper::service::service_fn(
            move |mut request: hyper::Request<hyper::body::Incoming>| {
                request
                    .extensions_mut()
                    .insert(axum::extract::ConnectInfo(peer));
                app.clone().oneshot(request.map(axum::body::Body::new))
            },
        );
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(tcp), service)
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
