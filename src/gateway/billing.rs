//! Customers, Checkout, the customer portal, subscriptions and invoices through
//! async-stripe. Every create carries an idempotency key that names its effect, so
//! a retry (ours or async-stripe's) never creates a second object.

use std::collections::HashMap;

use stripe_billing::{
    billing_portal_configuration::{
        CreateBillingPortalConfiguration, CreateBillingPortalConfigurationBusinessProfile,
        CreateBillingPortalConfigurationFeatures,
        CreateBillingPortalConfigurationFeaturesSubscriptionCancel,
        CreateBillingPortalConfigurationFeaturesSubscriptionCancelMode,
        CreateBillingPortalConfigurationFeaturesSubscriptionUpdate,
        CreateBillingPortalConfigurationFeaturesSubscriptionUpdateDefaultAllowedUpdates,
        CreateBillingPortalConfigurationFeaturesSubscriptionUpdateProrationBehavior,
        InvoiceListParam, ListBillingPortalConfiguration, PaymentMethodUpdateParam,
        SubscriptionUpdateProductParam,
    },
    billing_portal_session::{
        CreateBillingPortalSession, CreateBillingPortalSessionFlowData,
        CreateBillingPortalSessionFlowDataSubscriptionUpdateConfirm,
        CreateBillingPortalSessionFlowDataSubscriptionUpdateConfirmItems,
        CreateBillingPortalSessionFlowDataType,
    },
    invoice::ListInvoice,
    invoice_payment::ListInvoicePayment,
    subscription::{
        CancelSubscription, ListSubscription, ListSubscriptionStatus, RetrieveSubscription,
        UpdateSubscription,
    },
};
use stripe_checkout::checkout_session::{
    CreateCheckoutSession, CreateCheckoutSessionLineItems, CreateCheckoutSessionPaymentIntentData,
    CreateCheckoutSessionSubscriptionData, ExpireCheckoutSession, ListCheckoutSession,
    RetrieveCheckoutSession,
};
use stripe_client_core::StripeRequest;
use stripe_core::{
    customer::{CreateCustomer, DeleteCustomer, SearchCustomer, UpdateCustomer},
    refund::CreateRefund,
};

use super::{
    idempotent,
    objects::{self, ACCOUNT_ID_METADATA, PURCHASE_PLAN_METADATA, USER_ID_METADATA},
    GatewayError, StripeGateway,
};
use crate::billing::objects::{
    CheckoutMode, CheckoutSessionState, InvoiceState, SubscriptionState,
};

/// Everything a Checkout Session is created from (the guide's §⑤).
#[derive(Clone, Debug)]
pub struct CheckoutRequest {
    pub mode: CheckoutMode,
    pub customer_id: String,
    /// The billing account checked out for.
    pub account_id: i64,
    /// Who clicked (kept in metadata for analytics and support).
    pub user_id: i64,
    pub plan_id: String,
    pub price_id: String,
    /// Seats on a per-seat plan, else 1.
    pub quantity: u32,
    pub trial_days: Option<u32>,
    pub success_url: String,
    pub cancel_url: String,
    /// Same key within a short window: a double click gets the same session.
    pub idempotency_key: String,
}

#[derive(Clone, Debug)]
pub struct CreatedSession {
    pub id: String,
    pub url: String,
}

/// A portal session that goes straight to confirming a new price.
#[derive(Clone, Debug)]
pub struct PlanChange {
    pub subscription_id: String,
    pub price_id: String,
}

/// The portal configuration the app manages, derived from the catalog.
#[derive(Clone, Debug)]
pub struct PortalConfigSpec {
    /// Product id → the price ids a subscriber may switch between.
    pub products: Vec<(String, Vec<String>)>,
    pub privacy_policy_url: String,
    pub terms_of_service_url: String,
    pub return_url: String,
    /// Marks our configuration; changes when the catalog's prices change.
    pub fingerprint: String,
}

/// Metadata key holding `PortalConfigSpec::fingerprint`.
const PORTAL_FINGERPRINT_METADATA: &str = "billing_starter_portal";

impl StripeGateway {
    /// Creates the customer for a billing account; the key makes concurrent or
    /// retried calls for one account return the same customer.
    pub async fn create_customer(
        &self,
        account_id: i64,
        name: Option<&str>,
        email: &str,
        key: &str,
    ) -> Result<String, GatewayError> {
        let customer = self
            .retrying("create customer", || async move {
                let mut create = CreateCustomer::new().email(email).metadata(HashMap::from([(
                    ACCOUNT_ID_METADATA.to_owned(),
                    account_id.to_string(),
                )]));
                if let Some(name) = name {
                    create = create.name(name);
                }
                create
                    .customize()
                    .request_strategy(idempotent(&["customer", key]))
                    .send(self.client())
                    .await
            })
            .await?;
        Ok(customer.id.to_string())
    }

    /// The customer's email follows the account's (a confirmed change of email).
    pub async fn update_customer_email(
        &self,
        customer_id: &str,
        email: &str,
    ) -> Result<(), GatewayError> {
        self.retrying("update customer", || async move {
            UpdateCustomer::new(customer_id)
                .email(email)
                .send(self.client())
                .await
        })
        .await?;
        Ok(())
    }

    /// Ends a subscription now (account deletion), without proration credit.
    pub async fn cancel_subscription_now(&self, id: &str) -> Result<(), GatewayError> {
        self.retrying("cancel subscription", || async move {
            CancelSubscription::new(id).send(self.client()).await
        })
        .await?;
        Ok(())
    }

    /// The PaymentIntents that paid `subscription`'s invoices (through each
    /// invoice's payments: since API 2025-03-31 an invoice names no PaymentIntent).
    pub async fn subscription_payments(
        &self,
        subscription_id: &str,
    ) -> Result<Vec<String>, GatewayError> {
        let invoices = self
            .retrying("list invoices", || async move {
                ListInvoice::new()
                    .subscription(subscription_id)
                    .limit(24)
                    .send(self.client())
                    .await
            })
            .await?;
        let mut intents = Vec::new();
        for invoice in invoices.data {
            let Some(invoice_id) = invoice.id.as_ref().map(|id| id.to_string()) else {
                continue;
            };
            let invoice_id = invoice_id.as_str();
            let payments = self
                .retrying("list invoice payments", || async move {
                    ListInvoicePayment::new()
                        .invoice(invoice_id)
                        .send(self.client())
                        .await
                })
                .await?;
            intents.extend(payments.data.into_iter().filter_map(|payment| {
                (payment.status == "paid")
                    .then(|| payment.payment.payment_intent.map(|pi| pi.id().to_string()))
                    .flatten()
            }));
        }
        Ok(intents)
    }

    /// Refunds a PaymentIntent in full, once (the key is the PaymentIntent's).
    pub async fn refund_payment(
        &self,
        payment_intent: &str,
        why: &str,
    ) -> Result<(), GatewayError> {
        self.retrying("create refund", || async move {
            CreateRefund::new()
                .payment_intent(payment_intent)
                .metadata(HashMap::from([(
                    "billing_starter_reason".to_owned(),
                    why.to_owned(),
                )]))
                .customize()
                .request_strategy(idempotent(&["refund", payment_intent]))
                .send(self.client())
                .await
        })
        .await?;
        Ok(())
    }

    /// Deletes the customer (account deletion); its invoices and payments stay
    /// in Stripe's records. A customer already gone counts as deleted.
    pub async fn delete_customer(&self, customer_id: &str) -> Result<(), GatewayError> {
        let deleted = self
            .retrying("delete customer", || async move {
                DeleteCustomer::new(customer_id).send(self.client()).await
            })
            .await;
        match deleted {
            Err(err) if err.is_missing_customer() => Ok(()),
            other => other.map(|_| ()),
        }
    }

    /// A customer created earlier for this account whose id was lost locally
    /// (e.g. a restored backup): found by email, confirmed by our metadata (the
    /// account's id, or for a personal account made before accounts existed,
    /// its user's).
    pub async fn find_customer(
        &self,
        account_id: i64,
        legacy_user_id: Option<i64>,
        email: &str,
    ) -> Result<Option<String>, GatewayError> {
        let escaped = email.replace('\\', "\\\\").replace('\'', "\\'");
        let escaped = &escaped;
        let found = self
            .retrying("search customers", || async move {
                SearchCustomer::new(format!("email:'{escaped}'"))
                    .send(self.client())
                    .await
            })
            .await?;
        let account = account_id.to_string();
        let user = legacy_user_id.map(|id| id.to_string());
        Ok(found
            .data
            .into_iter()
            .find(|c| {
                let Some(m) = c.metadata.as_ref() else {
                    return false;
                };
                match m.get(ACCOUNT_ID_METADATA) {
                    Some(id) => *id == account,
                    None => user.is_some() && m.get(USER_ID_METADATA) == user.as_ref(),
                }
            })
            .map(|c| c.id.to_string()))
    }

    pub async fn create_checkout_session(
        &self,
        request: &CheckoutRequest,
    ) -> Result<CreatedSession, GatewayError> {
        let metadata = HashMap::from([
            (
                ACCOUNT_ID_METADATA.to_owned(),
                request.account_id.to_string(),
            ),
            (USER_ID_METADATA.to_owned(), request.user_id.to_string()),
            (PURCHASE_PLAN_METADATA.to_owned(), request.plan_id.clone()),
        ]);
        let mut create = CreateCheckoutSession::new()
            .customer(request.customer_id.clone())
            .client_reference_id(request.account_id.to_string())
            .line_items(vec![CreateCheckoutSessionLineItems {
                price: Some(request.price_id.clone()),
                quantity: Some(u64::from(request.quantity.max(1))),
                ..Default::default()
            }])
            .success_url(request.success_url.clone())
            .cancel_url(request.cancel_url.clone())
            .allow_promotion_codes(true)
            .metadata(metadata.clone());
        create = match request.mode {
            CheckoutMode::Subscription => {
                let mut data = CreateCheckoutSessionSubscriptionData::new();
                data.metadata = Some(metadata);
                data.trial_period_days = request.trial_days;
                create
                    .mode(stripe_shared::CheckoutSessionMode::Subscription)
                    .subscription_data(data)
            }
            _ => {
                let mut data = CreateCheckoutSessionPaymentIntentData::new();
                data.metadata = Some(metadata);
                create
                    .mode(stripe_shared::CheckoutSessionMode::Payment)
                    .payment_intent_data(data)
            }
        };
        let create = &create;
        let session = self
            .retrying("create checkout session", || async move {
                create
                    .clone()
                    .customize()
                    .request_strategy(idempotent(&[&request.idempotency_key]))
                    .send(self.client())
                    .await
            })
            .await?;
        Ok(CreatedSession {
            id: session.id.to_string(),
            url: session.url.unwrap_or_default(),
        })
    }

    /// The customer's open subscription Checkout Sessions, as (created, id).
    pub async fn open_subscription_sessions(
        &self,
        customer_id: &str,
    ) -> Result<Vec<(i64, String)>, GatewayError> {
        let page = self
            .retrying("list open checkout sessions", || async move {
                ListCheckoutSession::new()
                    .customer(customer_id)
                    .status(stripe_shared::CheckoutSessionStatus::Open)
                    .limit(100)
                    .send(self.client())
                    .await
            })
            .await?;
        Ok(page
            .data
            .iter()
            .map(objects::checkout_session)
            .filter(|s| s.mode == CheckoutMode::Subscription && s.status == "open")
            .map(|s| (s.created, s.id))
            .collect())
    }

    /// Expires an open Checkout Session so it can no longer be paid. One that
    /// completed or expired meanwhile is left as it is (Stripe answers 400).
    pub async fn expire_checkout_session(&self, id: &str) -> Result<(), GatewayError> {
        let result = self
            .retrying("expire checkout session", || async move {
                ExpireCheckoutSession::new(id).send(self.client()).await
            })
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(GatewayError::Stripe {
                source: stripe::StripeError::Stripe(_, 400),
                ..
            }) => Ok(()),
            Err(err) => Err(err),
        }
    }

    /// The session with its subscription expanded (one call on the success page).
    pub async fn checkout_session(&self, id: &str) -> Result<CheckoutSessionState, GatewayError> {
        let session = self
            .retrying("retrieve checkout session", || async move {
                RetrieveCheckoutSession::new(id)
                    .expand(vec!["subscription".to_owned()])
                    .send(self.client())
                    .await
            })
            .await?;
        Ok(objects::checkout_session(&session))
    }

    /// The Checkout Session that created `payment_intent`, if one did.
    pub async fn checkout_session_for_payment(
        &self,
        payment_intent: &str,
    ) -> Result<Option<CheckoutSessionState>, GatewayError> {
        let page = self
            .retrying("list checkout sessions", || async move {
                ListCheckoutSession::new()
                    .payment_intent(payment_intent)
                    .limit(1)
                    .send(self.client())
                    .await
            })
            .await?;
        Ok(page.data.first().map(objects::checkout_session))
    }

    pub async fn subscription(&self, id: &str) -> Result<SubscriptionState, GatewayError> {
        let sub = self
            .retrying("retrieve subscription", || async move {
                RetrieveSubscription::new(id).send(self.client()).await
            })
            .await?;
        Ok(objects::subscription(&sub))
    }

    /// Every subscription of a customer, canceled ones included (`reconcile`).
    pub async fn customer_subscriptions(
        &self,
        customer_id: &str,
    ) -> Result<Vec<SubscriptionState>, GatewayError> {
        let page = self
            .retrying("list subscriptions", || async move {
                ListSubscription::new()
                    .customer(customer_id)
                    .status(ListSubscriptionStatus::All)
                    .limit(100)
                    .send(self.client())
                    .await
            })
            .await?;
        Ok(page.data.iter().map(objects::subscription).collect())
    }

    /// Sets the seat count of a per-seat subscription, prorated (Stripe adds the
    /// difference to the next invoice). `key` names this change, so a retried
    /// call applies it once.
    pub async fn set_subscription_quantity(
        &self,
        id: &str,
        item_id: &str,
        quantity: u32,
        key: &str,
    ) -> Result<SubscriptionState, GatewayError> {
        let sub = self
            .retrying("update subscription quantity", || async move {
                UpdateSubscription::new(id)
                    .items(vec![stripe_billing::subscription::UpdateSubscriptionItems {
                        id: Some(item_id.to_owned()),
                        quantity: Some(u64::from(quantity)),
                        ..Default::default()
                    }])
                    .proration_behavior(
                        stripe_billing::subscription::UpdateSubscriptionProrationBehavior::CreateProrations,
                    )
                    .customize()
                    .request_strategy(idempotent(&["seats", id, key]))
                    .send(self.client())
                    .await
            })
            .await?;
        Ok(objects::subscription(&sub))
    }

    pub async fn set_cancel_at_period_end(
        &self,
        id: &str,
        cancel: bool,
    ) -> Result<SubscriptionState, GatewayError> {
        let sub = self
            .retrying("update subscription", || async move {
                UpdateSubscription::new(id)
                    .cancel_at_period_end(cancel)
                    .send(self.client())
                    .await
            })
            .await?;
        Ok(objects::subscription(&sub))
    }

    /// A customer's latest invoices (`reconcile` backfills the mirror with them).
    pub async fn invoices(&self, customer_id: &str) -> Result<Vec<InvoiceState>, GatewayError> {
        let page = self
            .retrying("list invoices", || async move {
                ListInvoice::new()
                    .customer(customer_id)
                    .limit(24)
                    .send(self.client())
                    .await
            })
            .await?;
        Ok(page.data.iter().map(objects::invoice).collect())
    }

    /// The id of the subscription's (first) item, needed to target a plan change.
    async fn subscription_item(&self, subscription_id: &str) -> Result<String, GatewayError> {
        let sub = self
            .retrying("retrieve subscription", || async move {
                RetrieveSubscription::new(subscription_id)
                    .send(self.client())
                    .await
            })
            .await?;
        sub.items
            .data
            .first()
            .map(|item| item.id.to_string())
            .ok_or_else(|| GatewayError::Config(format!("{subscription_id} has no items")))
    }

    pub async fn create_portal_session(
        &self,
        customer_id: &str,
        configuration: &str,
        return_url: &str,
        change: Option<&PlanChange>,
    ) -> Result<String, GatewayError> {
        let mut create = CreateBillingPortalSession::new()
            .customer(customer_id)
            .configuration(configuration)
            .return_url(return_url);
        if let Some(change) = change {
            let item = self.subscription_item(&change.subscription_id).await?;
            let mut confirm_item =
                CreateBillingPortalSessionFlowDataSubscriptionUpdateConfirmItems::new(item);
            confirm_item.price = Some(change.price_id.clone());
            let mut flow = CreateBillingPortalSessionFlowData::new(
                CreateBillingPortalSessionFlowDataType::SubscriptionUpdateConfirm,
            );
            flow.subscription_update_confirm = Some(
                CreateBillingPortalSessionFlowDataSubscriptionUpdateConfirm::new(
                    vec![confirm_item],
                    change.subscription_id.clone(),
                ),
            );
            create = create.flow_data(flow);
        }
        let create = &create;
        let session = self
            .retrying("create portal session", || async move {
                create.clone().send(self.client()).await
            })
            .await?;
        Ok(session.url)
    }

    /// Our portal configuration: found by its fingerprint, or created once. The
    /// key makes simultaneous first calls create one configuration.
    pub async fn ensure_portal_configuration(
        &self,
        spec: &PortalConfigSpec,
    ) -> Result<String, GatewayError> {
        let existing = self
            .retrying("list portal configurations", || async move {
                ListBillingPortalConfiguration::new()
                    .active(true)
                    .limit(100)
                    .send(self.client())
                    .await
            })
            .await?;
        if let Some(found) = existing.data.iter().find(|config| {
            config
                .metadata
                .as_ref()
                .and_then(|m| m.get(PORTAL_FINGERPRINT_METADATA))
                .is_some_and(|f| *f == spec.fingerprint)
        }) {
            return Ok(found.id.to_string());
        }

        let mut update = CreateBillingPortalConfigurationFeaturesSubscriptionUpdate::new(true);
        update.default_allowed_updates = Some(vec![
            CreateBillingPortalConfigurationFeaturesSubscriptionUpdateDefaultAllowedUpdates::Price,
        ]);
        update.proration_behavior = Some(
            CreateBillingPortalConfigurationFeaturesSubscriptionUpdateProrationBehavior::CreateProrations,
        );
        update.products = Some(
            spec.products
                .iter()
                .map(|(product, prices)| {
                    SubscriptionUpdateProductParam::new(prices.clone(), product.clone())
                })
                .collect(),
        );
        let mut cancel = CreateBillingPortalConfigurationFeaturesSubscriptionCancel::new(true);
        cancel.mode =
            Some(CreateBillingPortalConfigurationFeaturesSubscriptionCancelMode::AtPeriodEnd);
        let mut features = CreateBillingPortalConfigurationFeatures::new();
        features.subscription_update = Some(update);
        features.subscription_cancel = Some(cancel);
        features.payment_method_update = Some(PaymentMethodUpdateParam::new(true));
        features.invoice_history = Some(InvoiceListParam::new(true));
        let mut profile = CreateBillingPortalConfigurationBusinessProfile::new();
        profile.privacy_policy_url = Some(spec.privacy_policy_url.clone());
        profile.terms_of_service_url = Some(spec.terms_of_service_url.clone());

        let (features, profile) = (&features, &profile);
        let config = self
            .retrying("create portal configuration", || async move {
                CreateBillingPortalConfiguration::new(features.clone())
                    .business_profile(profile.clone())
                    .default_return_url(spec.return_url.clone())
                    .metadata(HashMap::from([(
                        PORTAL_FINGERPRINT_METADATA.to_owned(),
                        spec.fingerprint.clone(),
                    )]))
                    .customize()
                    .request_strategy(idempotent(&["portal-configuration", &spec.fingerprint]))
                    .send(self.client())
                    .await
            })
            .await?;
        Ok(config.id.to_string())
    }

    /// The Stripe product id of a price (the portal configuration lists products).
    pub async fn price_product(&self, price_id: &str) -> Result<String, GatewayError> {
        let price = self
            .retrying("retrieve price", || async move {
                stripe_product::price::RetrievePrice::new(price_id)
                    .send(self.client())
                    .await
            })
            .await?;
        Ok(price.product.id().to_string())
    }
}
