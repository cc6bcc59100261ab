//! Account settings: a new password (the current one asked again; every other
//! session ends), a new email (confirmed from the new address; the Stripe
//! customer follows), and signing out everywhere.

use chrono::Utc;
use sea_orm::{
    sea_query::Expr, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, TransactionTrait,
};
use tower_sessions::session::Id;

use super::{
    accounts::{self, AccountError, HashQueue},
    session_store, tokens,
};
use crate::{
    billing::context::Billing,
    db::entities::{account_tokens::TokenPurpose, users},
    mail::Template,
};

/// Sets a new password; every session but `keep` (the one asking) ends.
pub async fn change_password(
    db: &DatabaseConnection,
    hashing: &HashQueue,
    user: &users::Model,
    current: &str,
    new: &str,
    keep: Option<&Id>,
) -> Result<u64, AccountError> {
    accounts::check_current_password(hashing, user, current).await?;
    accounts::check_password(new, &user.email)?;
    let password_hash = accounts::hash(hashing, new.to_owned()).await?;
    let tx = db.begin().await?;
    users::Entity::update_many()
        .col_expr(users::Column::PasswordHash, Expr::value(password_hash))
        .col_expr(users::Column::UpdatedAt, Expr::value(Utc::now()))
        .filter(users::Column::Id.eq(user.id))
        .exec(&tx)
        .await?;
    let ended = session_store::end_sessions_of(&tx, user.id, keep).await?;
    tx.commit().await?;
    tracing::info!(user = user.id, sessions_ended = ended, "password changed");
    Ok(ended)
}

/// Sends a confirmation link to `new_email`; the account keeps its address
/// until the link is followed. The normalised new address.
pub async fn request_email_change(
    billing: &Billing,
    hashing: &HashQueue,
    user: &users::Model,
    password: &str,
    new_email: &str,
) -> Result<String, AccountError> {
    let new_email = accounts::normalize_email(new_email)?;
    if new_email == user.email {
        return Err(AccountError::SameEmail);
    }
    accounts::check_current_password(hashing, user, password).await?;
    let taken = users::Entity::find()
        .filter(users::Column::Email.eq(new_email.as_str()))
        .one(&billing.db)
        .await?
        .is_some();
    if taken {
        return Err(AccountError::EmailTaken);
    }
    let mailer = &billing.mail;
    let tx = billing.db.begin().await?;
    // One open change at a time: an older link for another address stops working.
    tokens::retire(&tx, user.id, TokenPurpose::ChangeEmail, Utc::now()).await?;
    let token = tokens::issue(
        &tx,
        user.id,
        TokenPurpose::ChangeEmail,
        Some(new_email.clone()),
        Utc::now(),
    )
    .await?;
    mailer
        .enqueue(
            &tx,
            format!("change_email:{}", &token[..16]),
            Some(user.id),
            &new_email,
            Template::ChangeEmail {
                link: mailer.link(&format!("/confirm-email?token={token}")),
                new_email: new_email.clone(),
            },
        )
        .await?;
    tx.commit().await?;
    mailer.wake();
    Ok(new_email)
}

#[derive(Debug, thiserror::Error)]
pub enum EmailChangeError {
    #[error(transparent)]
    Account(#[from] AccountError),
    /// Stripe could not be told; nothing changed and the link still works.
    #[error("Stripe: {0}")]
    Stripe(#[from] crate::gateway::GatewayError),
}

impl From<sea_orm::DbErr> for EmailChangeError {
    fn from(err: sea_orm::DbErr) -> Self {
        EmailChangeError::Account(err.into())
    }
}

/// Follows a change-of-email link: the account (and its Stripe customer) take
/// the new address. Stripe is told first, with nothing held: if it cannot be
/// reached nothing changes here and the link still works, so the two never
/// disagree for long.
pub async fn confirm_email_change(
    billing: &Billing,
    token: &str,
) -> Result<users::Model, EmailChangeError> {
    use crate::db::entities::account_tokens;
    if !tokens::well_formed(token) {
        return Err(AccountError::LinkInvalid.into());
    }
    let now = Utc::now();
    let pending = account_tokens::Entity::find()
        .filter(account_tokens::Column::TokenHash.eq(tokens::digest(token)))
        .filter(account_tokens::Column::Purpose.eq(TokenPurpose::ChangeEmail))
        .filter(account_tokens::Column::UsedAt.is_null())
        .filter(account_tokens::Column::ExpiresAt.gt(now))
        .one(&billing.db)
        .await?
        .ok_or(AccountError::LinkInvalid)?;
    let new_email = pending.new_email.clone().ok_or(AccountError::LinkInvalid)?;
    let user = users::Entity::find_by_id(pending.user_id)
        .one(&billing.db)
        .await?
        .ok_or(AccountError::LinkInvalid)?;
    let personal = crate::teams::members::personal(&billing.db, user.id).await?;
    if let Some(customer) = personal
        .as_ref()
        .and_then(|a| a.stripe_customer_id.as_ref())
    {
        billing
            .stripe
            .update_customer_email(customer, &new_email)
            .await?;
    }
    let tx = billing.db.begin().await?;
    if tokens::redeem(&tx, TokenPurpose::ChangeEmail, token, now)
        .await?
        .is_none()
    {
        return Err(AccountError::LinkInvalid.into());
    }
    users::Entity::update_many()
        .col_expr(users::Column::Email, Expr::value(new_email.as_str()))
        .col_expr(users::Column::EmailVerifiedAt, Expr::value(now))
        .col_expr(users::Column::UpdatedAt, Expr::value(now))
        .filter(users::Column::Id.eq(user.id))
        .exec(&tx)
        .await
        .map_err(accounts::email_taken)?;
    let user = users::Entity::find_by_id(user.id)
        .one(&tx)
        .await?
        .ok_or(AccountError::LinkInvalid)?;
    tx.commit().await?;
    tracing::info!(user = user.id, "email changed");
    Ok(user)
}

/// Ends every session of the account, this one included.
pub async fn sign_out_everywhere(
    db: &DatabaseConnection,
    user: &users::Model,
) -> Result<u64, AccountError> {
    let ended = session_store::end_sessions_of(db, user.id, None).await?;
    tracing::info!(
        user = user.id,
        sessions_ended = ended,
        "signed out everywhere"
    );
    Ok(ended)
}
