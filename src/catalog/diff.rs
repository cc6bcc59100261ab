//! What a catalog change requires in Stripe: a pure diff between `plans.toml` and
//! the account's products and prices. Prices are immutable in Stripe, so a new
//! amount means a new price that takes over the lookup key, and the old one is
//! archived. Our products are recognised by `metadata.catalog_plan_id`.

use std::fmt;

use super::{BillingType, Catalog, Interval, StripeEnv};

/// Metadata key that ties a Stripe product to a catalog plan.
pub const PRODUCT_PLAN_METADATA: &str = "catalog_plan_id";

/// The account as far as the catalog is concerned.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Remote {
    /// Test or live: selects the catalog's explicit price ids, if any.
    pub env: StripeEnv,
    pub products: Vec<RemoteProduct>,
    pub prices: Vec<RemotePrice>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteProduct {
    pub id: String,
    pub plan_id: Option<String>,
    pub name: String,
    pub description: Option<String>,
    pub active: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemotePrice {
    pub id: String,
    pub product: String,
    pub lookup_key: Option<String>,
    pub amount: Option<i64>,
    pub currency: String,
    pub interval: Interval,
    pub active: bool,
}

/// The product a new price goes on: one that exists, or one this plan creates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProductRef {
    Existing(String),
    Created { plan_id: String },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    CreateProduct {
        plan_id: String,
        name: String,
        description: String,
    },
    UpdateProduct {
        product_id: String,
        plan_id: String,
        name: String,
        description: String,
    },
    ArchiveProduct {
        product_id: String,
        plan_id: String,
    },
    CreatePrice {
        plan_id: String,
        product: ProductRef,
        lookup_key: String,
        amount: i64,
        currency: String,
        interval: Interval,
        /// The price that holds the lookup key now (it moves to the new one).
        /// Part of the idempotency key: reverting 4900 → 5900 → 4900 is three
        /// different changes, not the first one again.
        replaces: Option<String>,
    },
    ArchivePrice {
        price_id: String,
        lookup_key: Option<String>,
        reason: &'static str,
    },
    /// A price the project pinned by id (`stripe = { test = "price_…" }`) takes
    /// the lookup key, so the app finds it like any other.
    AdoptPrice {
        price_id: String,
        lookup_key: String,
        transfer_lookup_key: bool,
    },
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::CreateProduct { plan_id, name, .. } => {
                write!(f, "+ product for plan `{plan_id}` (\"{name}\")")
            }
            Change::UpdateProduct {
                product_id,
                plan_id,
                name,
                ..
            } => {
                write!(f, "~ product {product_id} (plan `{plan_id}`): name/description → \"{name}\", active")
            }
            Change::ArchiveProduct {
                product_id,
                plan_id,
            } => write!(
                f,
                "- product {product_id} (plan `{plan_id}` is no longer sold)"
            ),
            Change::CreatePrice {
                lookup_key,
                amount,
                currency,
                interval,
                replaces,
                ..
            } => write!(
                f,
                "+ price `{lookup_key}`: {amount} {currency} {interval:?}{}",
                if replaces.is_some() {
                    " (takes over the lookup key)"
                } else {
                    ""
                }
            ),
            Change::AdoptPrice {
                price_id,
                lookup_key,
                ..
            } => write!(
                f,
                "~ price {price_id}: takes lookup key `{lookup_key}` (pinned in the catalog)"
            ),
            Change::ArchivePrice {
                price_id,
                lookup_key,
                reason,
            } => {
                write!(
                    f,
                    "- price {price_id}{}: {reason}",
                    lookup_key
                        .as_ref()
                        .map(|k| format!(" (`{k}`)"))
                        .unwrap_or_default()
                )
            }
        }
    }
}

/// The changes that make `remote` match `catalog`, products first.
pub fn plan(catalog: &Catalog, remote: &Remote) -> Vec<Change> {
    let mut products = Vec::new();
    let mut prices = Vec::new();

    for plan in catalog
        .plans
        .iter()
        .filter(|p| p.billing != BillingType::Free)
    {
        let existing = remote
            .products
            .iter()
            .find(|p| p.plan_id.as_deref() == Some(&plan.id));
        let product = match existing {
            None => {
                products.push(Change::CreateProduct {
                    plan_id: plan.id.clone(),
                    name: plan.name.clone(),
                    description: plan.description.clone(),
                });
                ProductRef::Created {
                    plan_id: plan.id.clone(),
                }
            }
            Some(product) => {
                let description = (!plan.description.is_empty()).then(|| plan.description.clone());
                if product.name != plan.name
                    || product.description != description
                    || !product.active
                {
                    products.push(Change::UpdateProduct {
                        product_id: product.id.clone(),
                        plan_id: plan.id.clone(),
                        name: plan.name.clone(),
                        description: plan.description.clone(),
                    });
                }
                ProductRef::Existing(product.id.clone())
            }
        };

        for price in &plan.prices {
            let holder = remote
                .prices
                .iter()
                .find(|p| p.lookup_key.as_deref() == Some(&price.lookup_key));
            if let Some(pinned) = price.explicit_id(remote.env) {
                let adopted = remote.prices.iter().any(|p| {
                    p.id == pinned && p.active && p.lookup_key.as_deref() == Some(&price.lookup_key)
                });
                if !adopted {
                    prices.push(Change::AdoptPrice {
                        price_id: pinned.to_owned(),
                        lookup_key: price.lookup_key.clone(),
                        transfer_lookup_key: holder.is_some_and(|h| h.id != pinned),
                    });
                }
                continue;
            }
            let matches = holder.is_some_and(|h| {
                h.active
                    && h.amount == Some(price.amount)
                    && h.currency == price.currency
                    && h.interval == price.interval
                    && ProductRef::Existing(h.product.clone()) == product
            });
            if matches {
                continue;
            }
            prices.push(Change::CreatePrice {
                plan_id: plan.id.clone(),
                product: product.clone(),
                lookup_key: price.lookup_key.clone(),
                amount: price.amount,
                currency: price.currency.clone(),
                interval: price.interval,
                replaces: holder.map(|h| h.id.clone()),
            });
            if let Some(old) = holder.filter(|h| h.active) {
                prices.push(Change::ArchivePrice {
                    price_id: old.id.clone(),
                    lookup_key: old.lookup_key.clone(),
                    reason: "replaced (prices are immutable)",
                });
            }
        }
    }

    // Our products and prices that the catalog no longer mentions.
    let sold: Vec<&str> = catalog
        .plans
        .iter()
        .filter(|p| p.billing != BillingType::Free)
        .map(|p| p.id.as_str())
        .collect();
    let keys: Vec<&str> = catalog
        .prices()
        .map(|(_, p)| p.lookup_key.as_str())
        .collect();
    let pinned: Vec<&str> = catalog
        .prices()
        .filter_map(|(_, p)| p.explicit_id(remote.env))
        .collect();
    for product in remote.products.iter().filter(|p| p.plan_id.is_some()) {
        let plan_id = product.plan_id.clone().unwrap_or_default();
        if !sold.contains(&plan_id.as_str()) && product.active {
            products.push(Change::ArchiveProduct {
                product_id: product.id.clone(),
                plan_id,
            });
        }
        for price in remote
            .prices
            .iter()
            .filter(|p| p.product == product.id && p.active)
        {
            let kept = price
                .lookup_key
                .as_deref()
                .is_some_and(|k| keys.contains(&k))
                || pinned.contains(&price.id.as_str());
            let already = prices.iter().any(
                |c| matches!(c, Change::ArchivePrice { price_id, .. } if *price_id == price.id),
            );
            if !kept && !already {
                prices.push(Change::ArchivePrice {
                    price_id: price.id.clone(),
                    lookup_key: price.lookup_key.clone(),
                    reason: "not in the catalog",
                });
            }
        }
    }

    products.extend(prices);
    products
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::load::parse;

    /// The shipped catalog's free plan, pack and Premium (the tables below
    /// spell out their products and prices; the per-seat Team plan adds
    /// nothing the diff treats differently).
    fn example() -> Catalog {
        let mut catalog = parse(include_str!("../../plans.toml")).unwrap();
        catalog.plans.retain(|plan| plan.id != "team");
        catalog
    }

    fn synced() -> Remote {
        let product = |id: &str, plan: &str, name: &str, description: &str| RemoteProduct {
            id: id.into(),
            plan_id: Some(plan.into()),
            name: name.into(),
            description: Some(description.into()),
            active: true,
        };
        let price =
            |id: &str, product: &str, key: &str, amount: i64, interval: Interval| RemotePrice {
                id: id.into(),
                product: product.into(),
                lookup_key: Some(key.into()),
                amount: Some(amount),
                currency: "usd".into(),
                interval,
                active: true,
            };
        Remote {
            env: StripeEnv::Test,
            products: vec![
                product(
                    "prod_pack",
                    "standard_pack",
                    "Standard Pack",
                    "A one-time pack of credits. No subscription.",
                ),
                product(
                    "prod_premium",
                    "premium",
                    "Premium",
                    "For teams that ship every day.",
                ),
            ],
            prices: vec![
                price(
                    "price_pack",
                    "prod_pack",
                    "standard_pack",
                    2900,
                    Interval::OneTime,
                ),
                price(
                    "price_m",
                    "prod_premium",
                    "premium_monthly",
                    4900,
                    Interval::Month,
                ),
                price(
                    "price_y",
                    "prod_premium",
                    "premium_yearly",
                    49_000,
                    Interval::Year,
                ),
            ],
        }
    }

    #[test]
    fn an_empty_account_gets_every_paid_plan() {
        let changes = plan(&example(), &Remote::default());
        let text: Vec<String> = changes.iter().map(ToString::to_string).collect();
        assert_eq!(
            text,
            [
                "+ product for plan `standard_pack` (\"Standard Pack\")",
                "+ product for plan `premium` (\"Premium\")",
                "+ price `standard_pack`: 2900 usd OneTime",
                "+ price `premium_monthly`: 4900 usd Month",
                "+ price `premium_yearly`: 49000 usd Year",
            ]
        );
    }

    #[test]
    fn a_synced_account_has_no_drift() {
        assert_eq!(plan(&example(), &synced()), []);
    }

    #[test]
    fn a_new_amount_is_a_new_price_that_takes_the_key() {
        let mut catalog = example();
        catalog.plans[2].prices[0].amount = 5900;
        assert_eq!(
            plan(&catalog, &synced()),
            [
                Change::CreatePrice {
                    plan_id: "premium".into(),
                    product: ProductRef::Existing("prod_premium".into()),
                    lookup_key: "premium_monthly".into(),
                    amount: 5900,
                    currency: "usd".into(),
                    interval: Interval::Month,
                    replaces: Some("price_m".into()),
                },
                Change::ArchivePrice {
                    price_id: "price_m".into(),
                    lookup_key: Some("premium_monthly".into()),
                    reason: "replaced (prices are immutable)"
                },
            ]
        );
    }

    #[test]
    fn renamed_and_removed_things_are_updated_and_archived() {
        let mut catalog = example();
        catalog.plans[2].name = "Premium Plus".into();
        catalog.plans[2].prices.pop(); // no more yearly
        catalog.plans.remove(1); // pack no longer sold
        let changes: Vec<String> = plan(&catalog, &synced())
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            changes,
            [
                "~ product prod_premium (plan `premium`): name/description → \"Premium Plus\", active",
                "- product prod_pack (plan `standard_pack` is no longer sold)",
                "- price price_pack (`standard_pack`): not in the catalog",
                "- price price_y (`premium_yearly`): not in the catalog",
            ]
        );
    }

    #[test]
    fn pinned_price_ids_are_adopted_per_environment() {
        let mut catalog = example();
        catalog.plans[2].prices[0].stripe.live = Some("price_legacy_live".into());
        let mut remote = synced();
        assert_eq!(plan(&catalog, &remote), [], "test env ignores live pins");
        remote.env = StripeEnv::Live;
        remote.prices.push(RemotePrice {
            id: "price_legacy_live".into(),
            product: "prod_other".into(),
            lookup_key: None,
            amount: Some(3900),
            currency: "usd".into(),
            interval: Interval::Month,
            active: true,
        });
        assert_eq!(
            plan(&catalog, &remote),
            [Change::AdoptPrice {
                price_id: "price_legacy_live".into(),
                lookup_key: "premium_monthly".into(),
                transfer_lookup_key: true
            }]
        );
        remote.prices.last_mut().unwrap().lookup_key = Some("premium_monthly".into());
        remote.prices[1].lookup_key = None;
        // The managed price that lost the key is archived; the pinned one never is.
        assert_eq!(
            plan(&catalog, &remote),
            [Change::ArchivePrice {
                price_id: "price_m".into(),
                lookup_key: None,
                reason: "not in the catalog"
            }]
        );
        remote.prices[1].active = false;
        assert_eq!(plan(&catalog, &remote), []);
    }

    #[test]
    fn an_archived_holder_of_the_key_is_transferred_from() {
        let mut remote = synced();
        remote.prices[1].active = false;
        let changes = plan(&example(), &remote);
        assert!(
            matches!(
                &changes[..],
                [Change::CreatePrice {
                    replaces: Some(_),
                    ..
                }]
            ),
            "{changes:?}"
        );
    }
}
