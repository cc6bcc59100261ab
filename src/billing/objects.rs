//! Stripe objects as the billing rules see them: only the fields the app acts on,
//! in our own types. The gateway converts async-stripe's types into these, so an
//! API-version change stops at the gateway.

/// A subscription's state at one moment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubscriptionState {
    pub id: String,
    pub customer_id: String,
    /// Stripe's status word (trialing, active, past_due, canceled, …).
    pub status: String,
    pub price_id: String,
    pub price_lookup_key: Option<String>,
    /// "month" or "year" (from the price's recurring interval).
    pub interval: Option<String>,
    pub quantity: i32,
    /// Since API 2025-03-31 these live on the subscription item.
    pub current_period_start: Option<i64>,
    pub current_period_end: Option<i64>,
    pub cancel_at_period_end: bool,
    pub cancel_at: Option<i64>,
    pub canceled_at: Option<i64>,
    pub ended_at: Option<i64>,
    pub trial_start: Option<i64>,
    pub trial_end: Option<i64>,
    /// `metadata.application_user_id`, set by our checkout on `subscription_data`
    /// (before billing accounts: the owner; now: who checked out).
    pub app_user_id: Option<i64>,
    /// `metadata.application_account_id`: the billing account checked out for.
    pub app_account_id: Option<i64>,
    /// The subscription's (only) item, whose quantity is the seat count.
    pub item_id: Option<String>,
    /// `metadata.plan_conceptual_id`.
    pub plan_id: Option<String>,
}

impl SubscriptionState {
    /// The account this subscription was checked out for, by our metadata.
    pub fn owner(&self) -> Option<Owner> {
        match (self.app_account_id, self.app_user_id) {
            (Some(account), _) => Some(Owner::Account(account)),
            (None, Some(user)) => Some(Owner::User(user)),
            (None, None) => None,
        }
    }

    /// Canceled and expired subscriptions never come back to life in Stripe.
    pub fn is_terminal(&self) -> bool {
        is_terminal_status(&self.status)
    }
}

pub fn is_terminal_status(status: &str) -> bool {
    matches!(status, "canceled" | "incomplete_expired")
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckoutMode {
    Subscription,
    Payment,
    Setup,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckoutSessionState {
    pub id: String,
    pub mode: CheckoutMode,
    /// open | complete | expired
    pub status: String,
    /// paid | unpaid | no_payment_required
    pub payment_status: String,
    pub customer_id: Option<String>,
    pub subscription_id: Option<String>,
    pub payment_intent_id: Option<String>,
    pub client_reference_id: Option<String>,
    pub app_user_id: Option<i64>,
    pub app_account_id: Option<i64>,
    pub plan_id: Option<String>,
    pub amount_total: i64,
    pub currency: String,
    pub created: i64,
    /// The subscription, when the gateway retrieved it with the session.
    pub subscription: Option<Box<SubscriptionState>>,
}

/// Whom a Stripe object was made for, by our own metadata.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Owner {
    /// A billing account (every session made since accounts exist).
    Account(i64),
    /// A user, by a session made before billing accounts: their personal account.
    User(i64),
}

impl CheckoutSessionState {
    /// The account this session was created for, from our own metadata only. A
    /// `client_reference_id` alone proves nothing: a Payment Link or a session
    /// made by other code on the same account can carry any value there; on our
    /// sessions it must agree with the metadata.
    pub fn owner(&self) -> Option<Owner> {
        let (owner, id) = match (self.app_account_id, self.app_user_id) {
            (Some(account), _) => (Owner::Account(account), account),
            (None, Some(user)) => (Owner::User(user), user),
            (None, None) => return None,
        };
        match self.client_reference_id.as_deref() {
            Some(reference) if reference != id.to_string() => None,
            _ => Some(owner),
        }
    }

    /// The user who checked out (analytics), if our metadata names one.
    pub fn user_id(&self) -> Option<i64> {
        self.app_user_id
    }
}

/// An invoice: what the billing page lists, and the subscription it may be
/// the first word of.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvoiceState {
    pub id: String,
    pub customer_id: Option<String>,
    pub subscription_id: Option<String>,
    pub number: Option<String>,
    /// Minor currency units.
    pub amount: i64,
    pub currency: String,
    /// Unix seconds, Stripe's clock.
    pub created: i64,
    /// draft | open | paid | void | uncollectible
    pub status: String,
    pub period_start: Option<i64>,
    pub period_end: Option<i64>,
    pub hosted_url: Option<String>,
    pub pdf_url: Option<String>,
}

/// Order of an invoice's status: a state read from Stripe never moves it back,
/// and of two events in the same second the further one wins.
pub fn invoice_status_rank(status: &str) -> u8 {
    match status {
        "draft" => 0,
        "open" => 1,
        _ => 2, // paid, void, uncollectible
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChargeState {
    pub id: String,
    pub payment_intent_id: Option<String>,
    /// Fully refunded.
    pub refunded: bool,
    pub amount_refunded: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DisputeState {
    pub id: String,
    pub charge_id: String,
    pub payment_intent_id: Option<String>,
    /// needs_response | under_review | won | lost | …
    pub status: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CustomerState {
    pub id: String,
    pub email: Option<String>,
}

/// The object of an event the app handles.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StripeObject {
    Subscription(SubscriptionState),
    CheckoutSession(CheckoutSessionState),
    Invoice(InvoiceState),
    Charge(ChargeState),
    Dispute(DisputeState),
    Customer(CustomerState),
}

/// Declares [`EventKind`] from one table: each variant beside Stripe's name for
/// it, so the list of handled types, the parser and the names cannot disagree.
macro_rules! event_kinds {
    ($($variant:ident => $name:literal,)*) => {
        /// Every event type the app acts on.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum EventKind {
            $($variant,)*
        }

        impl EventKind {
            /// All of them; `doctor` checks the endpoint is sent each.
            pub const ALL: &'static [EventKind] = &[$(EventKind::$variant,)*];

            /// Stripe's name (`checkout.session.completed`, …).
            pub fn as_str(self) -> &'static str {
                match self {
                    $(EventKind::$variant => $name,)*
                }
            }

            /// `None`: a type the app does not act on.
            pub fn parse(name: &str) -> Option<Self> {
                match name {
                    $($name => Some(EventKind::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

event_kinds! {
    CheckoutSessionCompleted => "checkout.session.completed",
    CheckoutSessionAsyncPaymentSucceeded => "checkout.session.async_payment_succeeded",
    CheckoutSessionAsyncPaymentFailed => "checkout.session.async_payment_failed",
    CheckoutSessionExpired => "checkout.session.expired",
    SubscriptionCreated => "customer.subscription.created",
    SubscriptionUpdated => "customer.subscription.updated",
    SubscriptionDeleted => "customer.subscription.deleted",
    SubscriptionTrialWillEnd => "customer.subscription.trial_will_end",
    InvoiceCreated => "invoice.created",
    InvoiceFinalized => "invoice.finalized",
    InvoiceUpdated => "invoice.updated",
    InvoiceVoided => "invoice.voided",
    InvoiceMarkedUncollectible => "invoice.marked_uncollectible",
    InvoicePaid => "invoice.paid",
    InvoicePaymentSucceeded => "invoice.payment_succeeded",
    InvoicePaymentFailed => "invoice.payment_failed",
    InvoicePaymentActionRequired => "invoice.payment_action_required",
    ChargeRefunded => "charge.refunded",
    ChargeDisputeCreated => "charge.dispute.created",
    ChargeDisputeClosed => "charge.dispute.closed",
    CustomerDeleted => "customer.deleted",
    CustomerUpdated => "customer.updated",
}

impl std::fmt::Display for EventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A verified, parsed webhook event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BillingEvent {
    pub id: String,
    pub kind: EventKind,
    /// Unix seconds, Stripe's clock: the freshness of `object`.
    pub created: i64,
    pub object: StripeObject,
}

#[cfg(test)]
mod event_kind_tests {
    use super::EventKind;

    #[test]
    fn every_kind_parses_back_from_its_name_and_no_other_does() {
        let mut names = std::collections::HashSet::new();
        for kind in EventKind::ALL {
            assert_eq!(EventKind::parse(kind.as_str()), Some(*kind));
            assert!(names.insert(kind.as_str()), "{kind} listed twice");
        }
        assert_eq!(names.len(), 22);
        for other in [
            "customer.created",
            "customer.subscription.paused",
            "invoice",
            "",
        ] {
            assert_eq!(EventKind::parse(other), None, "{other}");
        }
    }
}
