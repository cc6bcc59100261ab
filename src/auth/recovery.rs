//! A forgotten password: the request always answers the same way (whether an
//! account has the address is nobody's business), and an account's owner gets
//! a one-hour single-use link; using it sets the password, proves the
//! address, and signs out every session of the account.

use chrono::Utc;
use sea_orm::{
    sea_query::Expr, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, TransactionTrait,
};

use super::{
    accounts::{self, AccountError, HashQueue},
    session_store, tokens,
};
use crate::{
    db::entities::{account_tokens::TokenPurpose, users},
    mail::{Mailer, Template},
};

/// Queues a reset link if `email` has an account; the same `Ok` either way.
pub async fn request_reset(
    db: &DatabaseConnection,
    mailer: &Mailer,
    email: &str,
) -> Result<(), AccountError> {
    let Ok(email) = accounts::normalize_email(email) else {
        return Ok(());
    };
    let Some(user) = users::Entity::find()
        .filter(users::Column::Email.eq(email))
        .one(db)
        .await?
    else {
        tracing::info!("password reset asked for an unknown address");
        return Ok(());
    };
    let tx = db.begin().await?;
    let token = tokens::issue(&tx, user.id, TokenPurpose::ResetPassword, None, Utc::now()).await?;
    mailer
        .enqueue(
            &tx,
            format!("reset_password:{}", &token[..16]),
            Some(user.id),
            &user.email,
            Template::ResetPassword {
                link: mailer.link(&format!("/reset-password?token={token}")),
            },
        )
        .await?;
    tx.commit().await?;
    mailer.wake();
    Ok(())
}

/// Sets a new password with a reset link; every session of the account ends.
pub async fn reset(
    db: &DatabaseConnection,
    hashing: &HashQueue,
    token: &str,
    password: &str,
) -> Result<users::Model, AccountError> {
    if !tokens::well_formed(token) {
        return Err(AccountError::LinkInvalid);
    }
    let now = Utc::now();
    // Checked against the account's address before the (costly) hash; the
    // token is only spent once the new password is acceptable.
    let tx = db.begin().await?;
    let Some(used) = tokens::redeem(&tx, TokenPurpose::ResetPassword, token, now).await? else {
        return Err(AccountError::LinkInvalid);
    };
    let user = users::Entity::find_by_id(used.user_id)
        .one(&tx)
        .await?
        .ok_or(AccountError::LinkInvalid)?;
    accounts::check_password(password, &user.email)?;
    tx.rollback().await?;
    let password_hash = accounts::hash(hashing, password.to_owned()).await?;

    let tx = db.begin().await?;
    // Redeemed for good now, in the transaction that changes the password.
    if tokens::redeem(&tx, TokenPurpose::ResetPassword, token, now)
        .await?
        .is_none()
    {
        return Err(AccountError::LinkInvalid);
    }
    users::Entity::update_many()
        .col_expr(users::Column::PasswordHash, Expr::value(password_hash))
        .col_expr(
            users::Column::EmailVerifiedAt,
            Expr::value(user.email_verified_at.unwrap_or(now)),
        )
        .col_expr(users::Column::UpdatedAt, Expr::value(now))
        .filter(users::Column::Id.eq(user.id))
        .exec(&tx)
        .await?;
    let ended = session_store::end_sessions_of(&tx, user.id, None).await?;
    tx.commit().await?;
    tracing::info!(user = user.id, sessions_ended = ended, "password reset");
    Ok(user)
}
