//! Proving an email address: sign-up (and "send it again") writes a 24-hour
//! single-use link to the outbox; following it marks the address verified.

use chrono::Utc;
use sea_orm::{
    sea_query::Expr, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    TransactionTrait,
};

use super::{accounts::AccountError, tokens};
use crate::{
    db::entities::{account_tokens::TokenPurpose, users},
    mail::{Mailer, Template},
};

/// Issues a verification link for `user` and queues its mail, in `conn`'s transaction.
pub async fn send<C: ConnectionTrait>(
    conn: &C,
    mailer: &Mailer,
    user: &users::Model,
) -> Result<(), sea_orm::DbErr> {
    let token = tokens::issue(conn, user.id, TokenPurpose::VerifyEmail, None, Utc::now()).await?;
    mailer
        .enqueue(
            conn,
            format!("verify_email:{}", &token[..16]),
            Some(user.id),
            &user.email,
            Template::VerifyEmail {
                link: mailer.link(&format!("/verify-email?token={token}")),
            },
        )
        .await?;
    Ok(())
}

/// "Send it again" (rate-limited by the caller); nothing for a verified address.
pub async fn resend(
    db: &DatabaseConnection,
    mailer: &Mailer,
    user: &users::Model,
) -> Result<bool, AccountError> {
    if user.email_verified_at.is_some() {
        return Ok(false);
    }
    let tx = db.begin().await?;
    send(&tx, mailer, user).await?;
    tx.commit().await?;
    mailer.wake();
    Ok(true)
}

/// Follows a verification link: the user whose address it proved.
pub async fn verify(db: &DatabaseConnection, token: &str) -> Result<users::Model, AccountError> {
    let now = Utc::now();
    let tx = db.begin().await?;
    let Some(used) = tokens::redeem(&tx, TokenPurpose::VerifyEmail, token, now).await? else {
        return Err(AccountError::LinkInvalid);
    };
    users::Entity::update_many()
        .col_expr(users::Column::EmailVerifiedAt, Expr::value(now))
        .col_expr(users::Column::UpdatedAt, Expr::value(now))
        .filter(users::Column::Id.eq(used.user_id))
        .filter(users::Column::EmailVerifiedAt.is_null())
        .exec(&tx)
        .await?;
    let user = users::Entity::find_by_id(used.user_id)
        .one(&tx)
        .await?
        .ok_or(AccountError::LinkInvalid)?;
    tx.commit().await?;
    tracing::info!(user = user.id, "email verified");
    Ok(user)
}
