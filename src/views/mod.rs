//! What the server sends the pages: plain, already-formatted data. Shared by the
//! server (which computes it) and the browser (which renders it), so no money,
//! date or policy logic needs to ship in the wasm.

use serde::{Deserialize, Serialize};

use crate::catalog::{BillingType, CallToActionView, PriceDisplay};

/// Building the views from billing state (server only).
#[cfg(feature = "ssr")]
pub mod build;

/// One interval's price and call to action on a plan card.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CardOffer {
    pub price: Option<PriceDisplay>,
    pub cta: CallToActionView,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PlanCard {
    pub id: String,
    pub name: String,
    pub description: String,
    pub billing: BillingType,
    pub features: Vec<String>,
    pub popular: bool,
    pub monthly: CardOffer,
    pub yearly: CardOffer,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PricingView {
    pub signed_in: bool,
    /// Whether any plan has a yearly price (otherwise the toggle is hidden).
    pub has_yearly: bool,
    pub cards: Vec<PlanCard>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PurchaseView {
    pub name: String,
    pub amount: String,
    pub date: String,
    pub status: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct InvoiceView {
    pub number: String,
    pub amount: String,
    pub date: String,
    pub status: String,
    pub hosted_url: Option<String>,
    pub pdf_url: Option<String>,
}

/// The result of coming back from Checkout, for the toast.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CheckoutReturn {
    pub success: bool,
    pub message: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct BillingView {
    pub plan_id: String,
    pub plan_name: String,
    /// "Active", "Trialing", "Past due" — for a paid plan.
    pub status: Option<String>,
    /// "Monthly" / "Yearly".
    pub interval: Option<String>,
    pub renews_on: Option<String>,
    pub ends_on: Option<String>,
    pub trial_ends_on: Option<String>,
    /// Set while a failed renewal is being retried: access ends then.
    pub past_due_until: Option<String>,
    pub can_cancel: bool,
    pub can_resume: bool,
    pub has_customer: bool,
    /// The account's email is not proven yet (Checkout may wait for it).
    pub email_unverified: bool,
    pub purchases: Vec<PurchaseView>,
    pub invoices: Vec<InvoiceView>,
    /// Every live subscription's id when there is more than one (two checkouts
    /// paid at once): the page warns, since each is charged.
    pub duplicate_subscriptions: Vec<String>,
    pub checkout: Option<CheckoutReturn>,
    /// The organization billed, when the user acts in one (else their own).
    pub organization: Option<String>,
    /// Whether the viewer's role manages billing (owner or admin).
    pub can_manage: bool,
    /// On a per-seat plan: seats in use (members and open invitations) and
    /// seats paid for.
    pub seats: Option<(u32, u32)>,
    /// This period's usage of each feature, and the credits left.
    pub usage: Vec<MeterView>,
    pub credits: i64,
}

/// One account the signed-in user can act in, for the header's switcher.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AccountChoice {
    pub id: i64,
    /// "Personal" for the user's own account, else the organization's name.
    pub name: String,
    pub current: bool,
}

/// The team page: the current account's members, invitations and seats.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TeamView {
    pub account_name: String,
    pub is_organization: bool,
    /// "owner", "admin" or "member".
    pub role: String,
    pub can_manage: bool,
    pub can_own: bool,
    pub members: Vec<MemberRow>,
    pub invitations: Vec<InvitationRow>,
    /// On a per-seat plan: seats in use and seats paid for.
    pub seats: Option<(u32, u32)>,
    pub accounts: Vec<AccountChoice>,
    /// Owners and admins manage the account's API keys.
    pub can_manage_keys: bool,
    pub api_keys: Vec<ApiKeyRow>,
    /// A key created just now, shown this once.
    pub new_api_key: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyRow {
    pub id: i64,
    pub name: String,
    pub prefix: String,
    pub created_on: String,
    pub last_used: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberRow {
    pub user_id: i64,
    pub email: String,
    pub role: String,
    pub is_you: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvitationRow {
    pub id: i64,
    pub email: String,
    pub role: String,
    pub expires_on: String,
}

/// What an invitation link shows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvitationView {
    pub organization: String,
    pub email: String,
    /// The signed-in user's email, if anyone is signed in.
    pub signed_in_as: Option<String>,
}

/// The workspace (`/app`): what the account may use and has used.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum GateView {
    SignedOut,
    Open(WorkspaceView),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct WorkspaceView {
    pub plan_name: String,
    /// A paid plan is in force.
    pub paid: bool,
    pub meters: Vec<MeterView>,
    /// Credits left (packs, grants).
    pub credits: i64,
    /// A fresh idempotency key for this render's forms: a double submit
    /// counts once.
    pub form_key: String,
    /// What to offer when a limit is reached.
    pub paywall: Option<PaywallView>,
    /// The viewer may buy (owner or admin).
    pub can_buy: bool,
}

/// One feature on the meters (`/app`, the billing page).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MeterView {
    pub feature: String,
    pub name: String,
    /// "metered", "counted" or "boolean".
    pub kind: String,
    pub unit: String,
    /// "API calls: 340 of 1,000 used".
    pub text: String,
    pub used: i64,
    /// "1,000", "unlimited", "included", "not included".
    pub limit: String,
    pub remaining: Option<i64>,
    pub resets_on: Option<String>,
    /// Used to the last unit.
    pub exhausted: bool,
    /// Share used, 0-100, for the bar (`None`: unlimited or boolean).
    pub percent: Option<u8>,
}

/// The way on when a limit is reached: a bigger plan, or a pack of credits.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PaywallView {
    pub feature_name: String,
    pub message: String,
    /// A one-time pack whose credits this feature draws on: (plan id, label).
    pub pack: Option<(String, String)>,
}

/// What an account deletion did, in words (the page after it and its email).
pub fn deletion_summary(subscriptions_cancelled: usize, customer_deleted: bool) -> String {
    let subscriptions = match subscriptions_cancelled {
        0 => "You had no active subscription.".to_owned(),
        1 => "We cancelled your subscription in Stripe.".to_owned(),
        n => format!("We cancelled your {n} subscriptions in Stripe."),
    };
    let customer = if customer_deleted {
        " Your Stripe customer record and saved cards are deleted."
    } else {
        ""
    };
    format!("{subscriptions}{customer}")
}
