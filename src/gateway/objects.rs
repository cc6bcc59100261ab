//! async-stripe's objects → the billing rules' own types (`billing::objects`), and
//! webhook events parsed with async-stripe's types (so an event whose shape does
//! not match the pinned API version is rejected here, loudly, not half-applied).

use std::collections::HashMap;

use stripe_types::miniserde_helpers::FromValueOpt;

use crate::billing::objects::{
    BillingEvent, ChargeState, CheckoutMode, CheckoutSessionState, CustomerState, DisputeState,
    EventKind, InvoiceState, StripeObject, SubscriptionState,
};

/// Metadata keys our checkout writes (the guide's names).
pub const USER_ID_METADATA: &str = "application_user_id";
pub const ACCOUNT_ID_METADATA: &str = "application_account_id";
pub const PURCHASE_PLAN_METADATA: &str = "plan_conceptual_id";

#[derive(Debug, thiserror::Error)]
pub enum EventParseError {
    #[error("the body is not a Stripe event")]
    Envelope,
    #[error("the `{0}` object does not match API version {1}")]
    Object(String, String),
}

/// Parses a verified webhook body. `Ok(None)`: an event type the app does not act on.
pub fn parse_event(body: &str) -> Result<Option<BillingEvent>, EventParseError> {
    let event: stripe_shared::Event =
        miniserde::json::from_str(body).map_err(|_| EventParseError::Envelope)?;
    let Some(kind) = EventKind::parse(event.type_.as_str()) else {
        return Ok(None);
    };
    let object = event.data.object;
    let mismatch = || EventParseError::Object(kind.to_string(), super::api_version());
    use EventKind::*;
    let parsed = match kind {
        SubscriptionCreated
        | SubscriptionUpdated
        | SubscriptionDeleted
        | SubscriptionTrialWillEnd => StripeObject::Subscription(subscription(
            &stripe_shared::Subscription::from_value(object).ok_or_else(mismatch)?,
        )),
        CheckoutSessionCompleted
        | CheckoutSessionAsyncPaymentSucceeded
        | CheckoutSessionAsyncPaymentFailed
        | CheckoutSessionExpired => StripeObject::CheckoutSession(checkout_session(
            &stripe_shared::CheckoutSession::from_value(object).ok_or_else(mismatch)?,
        )),
        InvoiceCreated
        | InvoiceFinalized
        | InvoiceUpdated
        | InvoiceVoided
        | InvoiceMarkedUncollectible
        | InvoicePaid
        | InvoicePaymentSucceeded
        | InvoicePaymentFailed
        | InvoicePaymentActionRequired => StripeObject::Invoice(invoice(
            &stripe_shared::Invoice::from_value(object).ok_or_else(mismatch)?,
        )),
        ChargeRefunded => StripeObject::Charge(charge(
            &stripe_shared::Charge::from_value(object).ok_or_else(mismatch)?,
        )),
        ChargeDisputeCreated | ChargeDisputeClosed => StripeObject::Dispute(dispute(
            &stripe_shared::Dispute::from_value(object).ok_or_else(mismatch)?,
        )),
        CustomerDeleted | CustomerUpdated => {
            let customer = stripe_shared::Customer::from_value(object).ok_or_else(mismatch)?;
            StripeObject::Customer(CustomerState {
                id: customer.id.to_string(),
                email: customer.email,
            })
        }
    };
    Ok(Some(BillingEvent {
        id: event.id.to_string(),
        kind,
        created: event.created,
        object: parsed,
    }))
}

fn user_id(metadata: Option<&HashMap<String, String>>) -> Option<i64> {
    metadata?.get(USER_ID_METADATA)?.parse().ok()
}

fn account_id(metadata: Option<&HashMap<String, String>>) -> Option<i64> {
    metadata?.get(ACCOUNT_ID_METADATA)?.parse().ok()
}

fn plan_id(metadata: Option<&HashMap<String, String>>) -> Option<String> {
    metadata?.get(PURCHASE_PLAN_METADATA).cloned()
}

pub(crate) fn subscription(sub: &stripe_shared::Subscription) -> SubscriptionState {
    let item = sub.items.data.first();
    let price = item.map(|item| &item.price);
    SubscriptionState {
        id: sub.id.to_string(),
        customer_id: sub.customer.id().to_string(),
        status: sub.status.as_str().to_owned(),
        price_id: price.map(|p| p.id.to_string()).unwrap_or_default(),
        price_lookup_key: price.and_then(|p| p.lookup_key.clone()),
        interval: price
            .and_then(|p| p.recurring.as_ref())
            .map(|r| r.interval.as_str().to_owned()),
        quantity: item
            .and_then(|item| item.quantity)
            .and_then(|q| i32::try_from(q).ok())
            .unwrap_or(1),
        current_period_start: item.map(|item| item.current_period_start),
        current_period_end: item.map(|item| item.current_period_end),
        cancel_at_period_end: sub.cancel_at_period_end,
        cancel_at: sub.cancel_at,
        canceled_at: sub.canceled_at,
        ended_at: sub.ended_at,
        trial_start: sub.trial_start,
        trial_end: sub.trial_end,
        app_user_id: user_id(Some(&sub.metadata)),
        app_account_id: account_id(Some(&sub.metadata)),
        item_id: item.map(|item| item.id.to_string()),
        plan_id: plan_id(Some(&sub.metadata)),
    }
}

pub(crate) fn checkout_session(session: &stripe_shared::CheckoutSession) -> CheckoutSessionState {
    use stripe_shared::CheckoutSessionMode;
    CheckoutSessionState {
        id: session.id.to_string(),
        mode: match session.mode {
            CheckoutSessionMode::Subscription => CheckoutMode::Subscription,
            CheckoutSessionMode::Payment => CheckoutMode::Payment,
            _ => CheckoutMode::Setup,
        },
        status: session
            .status
            .as_ref()
            .map(|s| s.as_str().to_owned())
            .unwrap_or_default(),
        payment_status: session.payment_status.as_str().to_owned(),
        customer_id: session.customer.as_ref().map(|c| c.id().to_string()),
        subscription_id: session.subscription.as_ref().map(|s| s.id().to_string()),
        payment_intent_id: session.payment_intent.as_ref().map(|p| p.id().to_string()),
        client_reference_id: session.client_reference_id.clone(),
        app_user_id: user_id(session.metadata.as_ref()),
        app_account_id: account_id(session.metadata.as_ref()),
        plan_id: plan_id(session.metadata.as_ref()),
        amount_total: session.amount_total.unwrap_or(0),
        currency: session
            .currency
            .as_ref()
            .map(|c| c.to_string())
            .unwrap_or_else(|| "usd".to_owned()),
        created: session.created,
        subscription: session
            .subscription
            .as_ref()
            .and_then(|s| s.as_object())
            .map(|s| Box::new(subscription(s))),
    }
}

pub(crate) fn invoice(invoice: &stripe_shared::Invoice) -> InvoiceState {
    InvoiceState {
        id: invoice
            .id
            .as_ref()
            .map(|id| id.to_string())
            .unwrap_or_default(),
        customer_id: invoice.customer.as_ref().map(|c| c.id().to_string()),
        subscription_id: invoice
            .parent
            .as_ref()
            .and_then(|parent| parent.subscription_details.as_ref())
            .map(|details| details.subscription.id().to_string()),
        number: invoice.number.clone(),
        amount: invoice.total,
        currency: invoice.currency.to_string(),
        created: invoice.created,
        status: invoice
            .status
            .as_ref()
            .map(|s| s.as_str().to_owned())
            .unwrap_or_else(|| "draft".to_owned()),
        period_start: Some(invoice.period_start),
        period_end: Some(invoice.period_end),
        hosted_url: invoice.hosted_invoice_url.clone(),
        pdf_url: invoice.invoice_pdf.clone(),
    }
}

fn charge(charge: &stripe_shared::Charge) -> ChargeState {
    ChargeState {
        id: charge.id.to_string(),
        payment_intent_id: charge.payment_intent.as_ref().map(|p| p.id().to_string()),
        refunded: charge.refunded,
        amount_refunded: charge.amount_refunded,
    }
}

fn dispute(dispute: &stripe_shared::Dispute) -> DisputeState {
    DisputeState {
        id: dispute.id.to_string(),
        charge_id: dispute.charge.id().to_string(),
        payment_intent_id: dispute.payment_intent.as_ref().map(|p| p.id().to_string()),
        status: dispute.status.as_str().to_owned(),
    }
}
