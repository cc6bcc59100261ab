//! What the billing actions, the webhook inbox and the operator commands need,
//! and nothing of the web server: the database, the configuration, the catalog,
//! the Stripe gateway, the price directory and the portal configuration. Built
//! once; the app state, the CLI and the tests hold the same one.

use std::sync::{Arc, OnceLock, RwLock};

use sea_orm::DatabaseConnection;

use super::{access::Policy, apply};
use crate::{
    catalog::{self, Catalog},
    config::Config,
    gateway::{catalog::PriceDirectory, GatewayError, StripeGateway},
};

/// Billing's context; a clone is one reference count.
#[derive(Clone)]
pub struct Billing(Arc<Parts>);

impl std::ops::Deref for Billing {
    type Target = Parts;

    fn deref(&self) -> &Parts {
        &self.0
    }
}

/// What [`Billing`] shares; reached through `Deref` (`billing.db`, …).
pub struct Parts {
    pub db: DatabaseConnection,
    /// The per-request reads of `db` (on the request's thread for a SQLite file).
    pub reads: crate::db::reads::Reads,
    /// The webhook inbox's and the usage ledger's writes, committed in groups
    /// on SQLite.
    pub writes: crate::db::group_commit::GroupCommit,
    pub config: Arc<Config>,
    pub catalog: Arc<Catalog>,
    pub stripe: StripeGateway,
    /// Lookup key → Stripe price id; refreshed by [`Billing::refresh_prices`].
    prices: RwLock<PriceDirectory>,
    /// The portal configuration derived from the catalog, once found or created.
    pub portal_configuration: OnceLock<String>,
    /// Billing events mail people (a failed payment, a trial ending).
    pub mail: crate::mail::Mailer,
}

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(transparent)]
    Catalog(#[from] catalog::load::LoadError),
    #[error(transparent)]
    Stripe(#[from] GatewayError),
}

impl Billing {
    /// Loads the catalog and builds the Stripe client; no network calls.
    pub fn new(db: DatabaseConnection, config: Arc<Config>) -> Result<Self, SetupError> {
        let catalog = Arc::new(catalog::load::load(&config.catalog_path)?);
        let stripe = StripeGateway::from_config(&config)?;
        Ok(Billing(Arc::new(Parts {
            reads: crate::db::reads::Reads::new(&db),
            writes: crate::db::group_commit::GroupCommit::new(db.clone()),
            db,
            catalog,
            stripe,
            prices: RwLock::default(),
            portal_configuration: OnceLock::new(),
            mail: crate::mail::Mailer::new(config.clone()),
            config,
        })))
    }

    /// The access policy's settings from the configuration.
    pub fn policy(&self) -> Policy {
        Policy {
            past_due_grace: chrono::Duration::days(i64::from(self.config.past_due_grace_days)),
        }
    }

    /// What the one write path needs besides the connection.
    pub fn apply_context<'a>(
        &'a self,
        prices: &'a PriceDirectory,
        reads: &'a apply::StripeReads,
    ) -> apply::ApplyContext<'a> {
        apply::ApplyContext {
            gateway: &self.stripe,
            catalog: &self.catalog,
            prices,
            reads,
            mail: &self.mail,
            billing_page: &self.config.paths.customer_portal_return,
        }
    }

    /// Makes the emulator's account hold the catalog (development and tests only:
    /// a real account changes through `catalog apply`, deliberately).
    pub async fn apply_catalog_to_emulator(&self) -> Result<(), GatewayError> {
        let changes = catalog::diff::plan(
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
