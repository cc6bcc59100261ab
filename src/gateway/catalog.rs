//! Catalog sync through async-stripe: read the account's products and prices,
//! perform a `diff::plan`, and resolve lookup keys to price ids.

use std::collections::HashMap;

use stripe_client_core::StripeRequest;
use stripe_product::{
    price::{
        CreatePrice, CreatePriceRecurring, CreatePriceRecurringInterval, ListPrice, UpdatePrice,
    },
    product::{CreateProduct, ListProduct, UpdateProduct},
};
use stripe_shared::RecurringInterval;

use super::{idempotent, Bounded, GatewayError, StripeGateway};
use crate::catalog::{
    diff::{Change, ProductRef, Remote, RemotePrice, RemoteProduct, PRODUCT_PLAN_METADATA},
    Catalog, Interval,
};

/// A catalog price as it exists in this Stripe account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvedPrice {
    pub price_id: String,
    pub plan_id: String,
    pub lookup_key: String,
    pub interval: Interval,
}

/// Lookup key → Stripe price, for the prices of the catalog that exist.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PriceDirectory {
    pub by_lookup_key: HashMap<String, ResolvedPrice>,
}

impl PriceDirectory {
    pub fn get(&self, lookup_key: &str) -> Option<&ResolvedPrice> {
        self.by_lookup_key.get(lookup_key)
    }

    /// A short digest of which price each lookup key points at: `/healthz`
    /// shows it and `doctor` compares it with Stripe's, so a server still
    /// holding prices a `catalog apply` replaced is found without exposing them.
    pub fn fingerprint(&self) -> String {
        use sha2::Digest;
        let mut pairs: Vec<(&str, &str)> = self
            .by_lookup_key
            .iter()
            .map(|(key, price)| (key.as_str(), price.price_id.as_str()))
            .collect();
        pairs.sort();
        let text: String = pairs.iter().map(|(k, v)| format!("{k}={v};")).collect();
        hex::encode(&sha2::Sha256::digest(text.as_bytes())[..8])
    }

    /// The catalog entry a Stripe price id belongs to (webhooks carry price ids).
    pub fn by_price_id(&self, price_id: &str) -> Option<&ResolvedPrice> {
        self.by_lookup_key.values().find(|p| p.price_id == price_id)
    }
}

fn interval_of(recurring: Option<&stripe_shared::Recurring>) -> Interval {
    match recurring.map(|r| &r.interval) {
        None => Interval::OneTime,
        Some(RecurringInterval::Year) => Interval::Year,
        Some(_) => Interval::Month,
    }
}

impl StripeGateway {
    /// The account's products that belong to the catalog, and every price that is
    /// on them or holds one of the catalog's lookup keys.
    pub async fn remote_catalog(&self, catalog: &Catalog) -> Result<Remote, GatewayError> {
        let mut products = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let mut request = ListProduct::new().limit(100);
            if let Some(after) = &after {
                request = request.starting_after(after.clone());
            }
            let page = request
                .send(self.client())
                .bounded(self, "list products")
                .await?;
            after = page.data.last().map(|p| p.id.to_string());
            products.extend(page.data.into_iter().filter_map(|product| {
                let plan_id = product.metadata.get(PRODUCT_PLAN_METADATA).cloned()?;
                Some(RemoteProduct {
                    id: product.id.to_string(),
                    plan_id: Some(plan_id),
                    name: product.name,
                    description: product.description,
                    active: product.active,
                })
            }));
            if !page.has_more {
                break;
            }
        }

        let pinned: Vec<&str> = catalog
            .prices()
            .filter_map(|(_, p)| p.explicit_id(self.env()))
            .collect();
        let keys: Vec<&str> = catalog
            .prices()
            .map(|(_, p)| p.lookup_key.as_str())
            .collect();
        let mut prices = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let mut request = ListPrice::new().limit(100);
            if let Some(after) = &after {
                request = request.starting_after(after.clone());
            }
            let page = request
                .send(self.client())
                .bounded(self, "list prices")
                .await?;
            after = page.data.last().map(|p| p.id.to_string());
            for price in page.data {
                let product = price.product.id().to_string();
                let ours = products.iter().any(|p: &RemoteProduct| p.id == product)
                    || pinned.contains(&price.id.as_str());
                let holds_key = price
                    .lookup_key
                    .as_deref()
                    .is_some_and(|k| keys.contains(&k));
                if ours || holds_key {
                    prices.push(RemotePrice {
                        id: price.id.to_string(),
                        product,
                        lookup_key: price.lookup_key,
                        amount: price.unit_amount,
                        currency: price.currency.to_string(),
                        interval: interval_of(price.recurring.as_ref()),
                        active: price.active,
                    });
                }
            }
            if !page.has_more {
                break;
            }
        }
        Ok(Remote {
            env: self.env(),
            products,
            prices,
        })
    }

    /// Performs `changes` in order (products first, as `diff::plan` orders them).
    /// Every create carries an idempotency key derived from what it creates.
    pub async fn apply_catalog(&self, changes: &[Change]) -> Result<(), GatewayError> {
        let mut created_products: HashMap<String, String> = HashMap::new();
        for change in changes {
            match change {
                Change::CreateProduct {
                    plan_id,
                    name,
                    description,
                } => {
                    let mut request = CreateProduct::new(name.clone()).metadata(HashMap::from([(
                        PRODUCT_PLAN_METADATA.to_owned(),
                        plan_id.clone(),
                    )]));
                    if !description.is_empty() {
                        request = request.description(description.clone());
                    }
                    let product = request
                        .customize()
                        .request_strategy(idempotent(&[
                            "catalog-product",
                            plan_id,
                            name,
                            description,
                        ]))
                        .send(self.client())
                        .bounded(self, "create product")
                        .await?;
                    created_products.insert(plan_id.clone(), product.id.to_string());
                }
                Change::UpdateProduct {
                    product_id,
                    name,
                    description,
                    ..
                } => {
                    UpdateProduct::new(product_id.as_str())
                        .name(name.clone())
                        .description(description.clone())
                        .active(true)
                        .send(self.client())
                        .bounded(self, "update product")
                        .await?;
                }
                Change::ArchiveProduct { product_id, .. } => {
                    UpdateProduct::new(product_id.as_str())
                        .active(false)
                        .send(self.client())
                        .bounded(self, "archive product")
                        .await?;
                }
                Change::CreatePrice {
                    plan_id,
                    product,
                    lookup_key,
                    amount,
                    currency,
                    interval,
                    replaces,
                } => {
                    let product_id = match product {
                        ProductRef::Existing(id) => id.clone(),
                        ProductRef::Created { plan_id } => {
                            created_products.get(plan_id).cloned().ok_or_else(|| {
                                GatewayError::Config(format!(
                                    "product for plan `{plan_id}` was not created first"
                                ))
                            })?
                        }
                    };
                    let stripe_currency =
                        currency.parse::<stripe_types::Currency>().map_err(|_| {
                            GatewayError::Config(format!("unknown currency {currency}"))
                        })?;
                    let mut request = CreatePrice::new(stripe_currency)
                        .product(product_id.clone())
                        .unit_amount(*amount)
                        .lookup_key(lookup_key.clone())
                        .transfer_lookup_key(replaces.is_some())
                        .metadata(HashMap::from([(
                            PRODUCT_PLAN_METADATA.to_owned(),
                            plan_id.clone(),
                        )]));
                    match interval {
                        Interval::Month => {
                            request = request.recurring(CreatePriceRecurring::new(
                                CreatePriceRecurringInterval::Month,
                            ))
                        }
                        Interval::Year => {
                            request = request.recurring(CreatePriceRecurring::new(
                                CreatePriceRecurringInterval::Year,
                            ))
                        }
                        Interval::OneTime => {}
                    }
                    request
                        .customize()
                        .request_strategy(idempotent(&[
                            "catalog-price",
                            &product_id,
                            lookup_key,
                            &amount.to_string(),
                            currency,
                            &format!("{interval:?}"),
                            replaces.as_deref().unwrap_or("new"),
                        ]))
                        .send(self.client())
                        .bounded(self, "create price")
                        .await?;
                }
                Change::AdoptPrice {
                    price_id,
                    lookup_key,
                    transfer_lookup_key,
                } => {
                    UpdatePrice::new(price_id.as_str())
                        .lookup_key(lookup_key.clone())
                        .transfer_lookup_key(*transfer_lookup_key)
                        .active(true)
                        .send(self.client())
                        .bounded(self, "adopt pinned price")
                        .await?;
                }
                Change::ArchivePrice { price_id, .. } => {
                    UpdatePrice::new(price_id.as_str())
                        .active(false)
                        .send(self.client())
                        .bounded(self, "archive price")
                        .await?;
                }
            }
        }
        Ok(())
    }

    /// Resolves every catalog lookup key to its active Stripe price (10 keys per
    /// call, Stripe's limit for `lookup_keys[]`).
    pub async fn resolve_prices(&self, catalog: &Catalog) -> Result<PriceDirectory, GatewayError> {
        let wanted: Vec<(String, String, Interval)> = catalog
            .prices()
            .map(|(plan, price)| (price.lookup_key.clone(), plan.id.clone(), price.interval))
            .collect();
        let mut directory = PriceDirectory::default();
        // Pinned ids need no lookup: the project named them.
        for (plan, price) in catalog.prices() {
            if let Some(id) = price.explicit_id(self.env()) {
                directory.by_lookup_key.insert(
                    price.lookup_key.clone(),
                    ResolvedPrice {
                        price_id: id.to_owned(),
                        plan_id: plan.id.clone(),
                        lookup_key: price.lookup_key.clone(),
                        interval: price.interval,
                    },
                );
            }
        }
        let wanted: Vec<(String, String, Interval)> = wanted
            .into_iter()
            .filter(|(key, _, _)| !directory.by_lookup_key.contains_key(key))
            .collect();
        for chunk in wanted.chunks(10) {
            let keys: Vec<String> = chunk.iter().map(|(key, _, _)| key.clone()).collect();
            let page = ListPrice::new()
                .lookup_keys(keys)
                .active(true)
                .limit(100)
                .send(self.client())
                .bounded(self, "list prices by lookup key")
                .await?;
            for price in page.data {
                let Some(key) = price.lookup_key.clone() else {
                    continue;
                };
                if let Some((_, plan_id, interval)) = chunk.iter().find(|(k, _, _)| *k == key) {
                    directory.by_lookup_key.insert(
                        key.clone(),
                        ResolvedPrice {
                            price_id: price.id.to_string(),
                            plan_id: plan_id.clone(),
                            lookup_key: key,
                            interval: *interval,
                        },
                    );
                }
            }
        }
        Ok(directory)
    }
}
