//! The app's shared state: what a page, a server function or a middleware may
//! need, built once at start-up (`server::Application::build`). It sits below
//! the web server and the pages, which both read it; billing, the webhook
//! inbox and the operator commands take only their own context
//! ([`Billing`]).

use std::sync::{Arc, OnceLock};

use leptos::config::LeptosOptions;
use sea_orm::DatabaseConnection;

use crate::{
    auth::accounts::HashQueue,
    billing::context::{Billing, SetupError},
    config::Config,
    security::SecurityHeaders,
    views::PricingView,
};

/// Cloned several times per request (router, Leptos context, server functions),
/// so a clone is one reference count: field-by-field clones were ~4 % of a page
/// render's CPU.
#[derive(Clone)]
pub struct AppState(Arc<SharedState>);

impl std::ops::Deref for AppState {
    type Target = SharedState;

    fn deref(&self) -> &SharedState {
        &self.0
    }
}

/// What `AppState` shares; reached through `Deref` (`state.billing`, `state.db()`, …).
pub struct SharedState {
    /// Billing's own context (database, configuration, catalog, gateway, prices,
    /// portal configuration).
    pub billing: Billing,
    /// Password hashing, bounded.
    pub hashing: HashQueue,
    /// The pricing grid for signed-out visitors: the same for all of them.
    pub public_pricing: OnceLock<PricingView>,
    pub security: Arc<SecurityHeaders>,
    pub leptos_options: LeptosOptions,
}

impl axum::extract::FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.leptos_options.clone()
    }
}

impl axum::extract::FromRef<AppState> for Billing {
    fn from_ref(state: &AppState) -> Self {
        state.billing.clone()
    }
}

impl AppState {
    /// Loads the catalog and builds the Stripe client; no network calls.
    pub fn new(db: DatabaseConnection, config: Config) -> Result<Self, SetupError> {
        let config = Arc::new(config);
        Ok(Self(Arc::new(SharedState {
            leptos_options: leptos_options(&config),
            security: Arc::new(SecurityHeaders::from_config(&config)),
            billing: Billing::new(db, config)?,
            hashing: HashQueue::default(),
            public_pricing: OnceLock::new(),
        })))
    }
}

impl SharedState {
    /// The one pool: billing's, also used for sessions, accounts and limits.
    pub fn db(&self) -> &DatabaseConnection {
        &self.billing.db
    }

    /// The configuration billing holds.
    pub fn config(&self) -> &Config {
        &self.billing.config
    }

    /// The pricing grid for this visitor (`None`: signed out, the shared one).
    pub async fn pricing_view(
        &self,
        account_id: Option<i64>,
    ) -> Result<PricingView, crate::billing::service::ServiceError> {
        crate::views::build::pricing(&self.billing, &self.public_pricing, account_id).await
    }

    /// The pricing grid for a visitor holding `holdings`.
    pub fn pricing_for(&self, holdings: &crate::catalog::display::Holdings) -> PricingView {
        crate::views::build::pricing_for(&self.billing, &self.public_pricing, holdings)
    }
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
