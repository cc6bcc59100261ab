//! The billing catalog: plans and prices as plain data, shared by the server and
//! the browser. Loading and validation (`load`, `validate`) and money formatting
//! (`money`, `display`) run on the server; the browser receives computed strings.

#[cfg(feature = "ssr")]
pub mod diff;
#[cfg(feature = "ssr")]
pub mod display;
#[cfg(feature = "ssr")]
pub mod load;
#[cfg(feature = "ssr")]
pub mod money;
#[cfg(feature = "ssr")]
pub mod validate;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Catalog {
    pub plans: Vec<Plan>,
    /// What plans may limit, declared once (`[features.<id>]`); a plan's
    /// `limits` name these ids (and `credits`, which a pack grants).
    #[serde(default)]
    pub features: BTreeMap<String, Feature>,
}

/// The key in a one-time plan's `limits` for the credits each purchase grants.
pub const CREDITS: &str = "credits";

/// What a feature is, and so how `entitlements` decides about it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FeatureKind {
    /// The plan has it or not (`priority_support = true`).
    Boolean,
    /// An allowance per billing period that resets (`api_calls = 1000`).
    Metered,
    /// A cap on things the account holds (`projects = 1`); no period.
    Counted,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Feature {
    pub kind: FeatureKind,
    /// "API calls".
    pub name: String,
    /// Singular unit for messages ("call").
    #[serde(default)]
    pub unit: Option<String>,
    /// Metered only: credits one unit costs once the period's allowance is
    /// used; absent, the allowance is all there is.
    #[serde(default)]
    pub credits_per_unit: Option<u64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BillingType {
    Free,
    OneTime,
    Subscription,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Interval {
    Month,
    Year,
    OneTime,
}

impl Interval {
    /// Stripe's `recurring.interval`, or `None` for one-time prices.
    pub fn stripe_interval(self) -> Option<&'static str> {
        match self {
            Interval::Month => Some("month"),
            Interval::Year => Some("year"),
            Interval::OneTime => None,
        }
    }
}

/// An entitlement limit: a count, no limit at all (`"unlimited"` in the
/// file), or for a boolean feature whether the plan has it (`true`/`false`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    Count(u64),
    Unlimited,
    Included(bool),
}

impl Serialize for Limit {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Limit::Count(count) => serializer.serialize_u64(*count),
            Limit::Unlimited => serializer.serialize_str("unlimited"),
            Limit::Included(included) => serializer.serialize_bool(*included),
        }
    }
}

impl<'de> Deserialize<'de> for Limit {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Count(u64),
            Flag(bool),
            Word(String),
        }
        match Raw::deserialize(deserializer)? {
            Raw::Count(count) => Ok(Limit::Count(count)),
            Raw::Flag(included) => Ok(Limit::Included(included)),
            Raw::Word(word) if word == "unlimited" => Ok(Limit::Unlimited),
            Raw::Word(word) => Err(serde::de::Error::custom(format!(
                "expected a non-negative number, true, false or \"unlimited\", found \"{word}\""
            ))),
        }
    }
}

/// Call-to-action texts; `{price}` is replaced by the price for the interval.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallToAction {
    pub start: Option<String>,
    pub buy: Option<String>,
    pub owned: Option<String>,
    pub monthly: Option<String>,
    pub yearly: Option<String>,
    pub current: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    /// Conceptual id, stable across environments ("premium").
    pub id: String,
    pub billing: BillingType,
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub features: Vec<String>,
    #[serde(default)]
    pub limits: BTreeMap<String, Limit>,
    #[serde(default)]
    pub popular: bool,
    #[serde(default)]
    pub cta: CallToAction,
    #[serde(default)]
    pub trial_days: Option<u32>,
    /// Billed per seat: the subscription's quantity is the account's seats
    /// (members and open invitations, `teams::seats`).
    #[serde(default)]
    pub per_seat: bool,
    /// A per-seat plan's fewest seats billed.
    #[serde(default)]
    pub min_seats: Option<u32>,
    /// A per-seat plan's most seats; invitations beyond it are refused.
    #[serde(default)]
    pub max_seats: Option<u32>,
    #[serde(default)]
    pub prices: Vec<Price>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    /// Stable key the app resolves to a Stripe price id in each environment.
    pub lookup_key: String,
    /// Minor currency units (cents).
    pub amount: i64,
    /// ISO 4217 code, lower case as Stripe writes it.
    pub currency: String,
    pub interval: Interval,
    /// Explicit Stripe ids for projects that already have prices; by environment.
    #[serde(default)]
    pub stripe: StripeIds,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StripeIds {
    pub test: Option<String>,
    pub live: Option<String>,
}

/// Which set of Stripe objects an account holds (the emulator counts as test).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StripeEnv {
    #[default]
    Test,
    Live,
}

impl Price {
    /// The price id this project pinned for `env`, if any.
    pub fn explicit_id(&self, env: StripeEnv) -> Option<&str> {
        match env {
            StripeEnv::Test => self.stripe.test.as_deref(),
            StripeEnv::Live => self.stripe.live.as_deref(),
        }
    }
}

impl Catalog {
    pub fn plan(&self, id: &str) -> Option<&Plan> {
        self.plans.iter().find(|plan| plan.id == id)
    }

    /// Every price with the plan it belongs to.
    pub fn prices(&self) -> impl Iterator<Item = (&Plan, &Price)> {
        self.plans
            .iter()
            .flat_map(|plan| plan.prices.iter().map(move |price| (plan, price)))
    }

    pub fn price_by_lookup_key(&self, lookup_key: &str) -> Option<(&Plan, &Price)> {
        self.prices()
            .find(|(_, price)| price.lookup_key == lookup_key)
    }
}

impl Plan {
    pub fn price(&self, interval: Interval) -> Option<&Price> {
        self.prices.iter().find(|price| price.interval == interval)
    }
}

/// A price as the pricing page shows it; computed on the server (`display`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PriceDisplay {
    /// "$49/month", "$490/year", "$29", "$0".
    pub label: String,
    /// The line under it: "$40.83/month" for a yearly price, "one-time payment"
    /// for a pack, "Free forever" for the free plan.
    pub note: Option<String>,
    /// For yearly prices cheaper than 12 months: "Save 17%".
    pub savings: Option<String>,
}

/// A plan's call to action for one visitor.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CallToActionView {
    pub text: String,
    /// Current plan, or a pack already owned: nothing to do.
    pub disabled: bool,
}
