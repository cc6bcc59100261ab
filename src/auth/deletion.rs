//! Deleting an account: with the password asked again, every live
//! subscription is cancelled in Stripe and the Stripe customer deleted, then
//! the user's rows go (sessions, links, and through foreign keys their
//! subscriptions, purchases and invoices). Invoices and payments stay in
//! Stripe, where accounting needs them. Stripe comes first, with nothing held:
//! if it fails, nothing here is deleted and the user can try again.

use chrono::Utc;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, TransactionTrait};

use super::{
    accounts::{self, AccountError, HashQueue},
    session_store,
};
use crate::{
    billing::{apply, context::Billing, objects::is_terminal_status},
    db::entities::{outbox, users},
    gateway::GatewayError,
    mail::Template,
};

#[derive(Debug, thiserror::Error)]
pub enum DeletionError {
    #[error(transparent)]
    Account(#[from] AccountError),
    #[error("Stripe: {0}")]
    Stripe(#[from] GatewayError),
}

impl From<sea_orm::DbErr> for DeletionError {
    fn from(err: sea_orm::DbErr) -> Self {
        DeletionError::Account(err.into())
    }
}

/// What the deletion did, as the user is told.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Deleted {
    pub subscriptions_cancelled: usize,
    pub customer_deleted: bool,
}

impl Deleted {
    pub fn summary(&self) -> String {
        crate::views::deletion_summary(self.subscriptions_cancelled, self.customer_deleted)
    }
}

#[tracing::instrument(skip_all, fields(user = user.id))]
pub async fn delete_account(
    billing: &Billing,
    hashing: &HashQueue,
    user: &users::Model,
    password: &str,
) -> Result<Deleted, DeletionError> {
    accounts::check_current_password(hashing, user, password).await?;
    let mut done = Deleted::default();
    if let Some(customer) = &user.stripe_customer_id {
        for sub in billing.stripe.customer_subscriptions(customer).await? {
            if !is_terminal_status(&sub.status) {
                billing.stripe.cancel_subscription_now(&sub.id).await?;
                done.subscriptions_cancelled += 1;
            }
        }
        billing.stripe.delete_customer(customer).await?;
        done.customer_deleted = true;
    }
    let tx = billing.db.begin().await?;
    if let Some(customer) = &user.stripe_customer_id {
        // Tombstoned: the events of the cancellation and the deletion, still
        // on their way, must not link the customer to anyone again.
        apply::forget_customer(&tx, customer).await?;
    }
    session_store::end_sessions_of(&tx, user.id, None).await?;
    // Mail not sent yet has nobody to go to.
    outbox::Entity::delete_many()
        .filter(outbox::Column::UserId.eq(user.id))
        .filter(outbox::Column::Status.eq(outbox::MailStatus::Pending))
        .exec(&tx)
        .await?;
    users::Entity::delete_by_id(user.id).exec(&tx).await?;
    billing
        .mail
        .enqueue(
            &tx,
            format!("account_deleted:{}:{}", user.id, Utc::now().timestamp()),
            None,
            &user.email,
            Template::AccountDeleted {
                email: user.email.clone(),
                summary: done.summary(),
            },
        )
        .await?;
    tx.commit().await?;
    billing.mail.wake();
    tracing::info!(
        subscriptions = done.subscriptions_cancelled,
        customer = done.customer_deleted,
        "account deleted"
    );
    Ok(done)
}
