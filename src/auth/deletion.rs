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
    billing::{apply, context::Billing},
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
    #[error("You are the only owner of {0}. Make another member an owner, or delete the organization, first.")]
    StillOwner(String),
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
    if let Some(org) = crate::teams::members::solely_owned_with_others(&billing.db, user.id)
        .await?
        .into_iter()
        .next()
    {
        return Err(DeletionError::StillOwner(org.name));
    }
    let personal = crate::teams::members::personal(&billing.db, user.id).await?;
    let mut done = Deleted::default();
    if let Some(account) = &personal {
        let erased = crate::teams::members::erase_in_stripe(billing, account).await?;
        done.subscriptions_cancelled = erased.subscriptions_cancelled;
        done.customer_deleted = erased.customer_deleted;
    }
    let tx = billing.db.begin().await?;
    if let Some(account) = &personal {
        if let Some(customer) = &account.stripe_customer_id {
            // Tombstoned: the events of the cancellation and the deletion, still
            // on their way, must not link the customer to anyone again.
            apply::forget_customer(&tx, customer).await?;
        }
        crate::teams::members::delete_billing_rows(&tx, account.id).await?;
    }
    // Organizations left without anyone (the user was their only member)
    // go too; their Stripe customers were never shared with anyone else.
    for (org, _) in crate::teams::members::accounts_of(&tx, user.id).await? {
        if org.kind == crate::db::entities::accounts::AccountKind::Organization
            && crate::teams::members::members_of(&tx, org.id).await?.len() == 1
            && org.stripe_customer_id.is_none()
        {
            crate::db::entities::accounts::Entity::delete_by_id(org.id)
                .exec(&tx)
                .await?;
        }
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
