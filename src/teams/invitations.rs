//! Invitations to an organization: a single-use link mailed through the
//! outbox (in the transaction that creates the invitation), valid for
//! [`LIFETIME_DAYS`] days. Accepting is one conditional `UPDATE … WHERE
//! accepted_at IS NULL AND revoked_at IS NULL AND expires_at > now`: of two
//! clicks exactly one joins. The link joins only the person it was sent to
//! (the signed-in user's email must be the invited one).

use chrono::{Duration, Utc};
use sea_orm::{
    sea_query::Expr, ActiveValue::Set, ColumnTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
    TransactionTrait,
};

use super::{members, Member, TeamError};
use crate::{
    auth::tokens,
    billing::context::Billing,
    db::entities::{accounts, invitations, memberships::Role, users},
    mail::Template,
};

pub const LIFETIME_DAYS: i64 = 7;

/// An invitation still open at `now`: neither accepted nor revoked, and not
/// expired. Every read and the conditional accept use this one rule.
pub(crate) fn open_at(now: chrono::DateTime<Utc>) -> sea_orm::Condition {
    sea_orm::Condition::all()
        .add(invitations::Column::AcceptedAt.is_null())
        .add(invitations::Column::RevokedAt.is_null())
        .add(invitations::Column::ExpiresAt.gt(now))
}

/// What an invitation link shows before it is accepted.
#[derive(Clone, Debug)]
pub struct Pending {
    pub invitation: invitations::Model,
    pub organization: accounts::Model,
}

fn link(billing: &Billing, token: &str) -> String {
    billing
        .mail
        .link(&format!("/invitations/accept?token={token}"))
}

/// Invites `email` into the actor's organization as `role` (never owner: an
/// owner is made from a member). An address already invited gets a fresh
/// link instead of a second invitation.
#[tracing::instrument(skip_all, fields(actor = actor.user.id, account = actor.account.id, ?role))]
pub async fn invite(
    billing: &Billing,
    actor: &Member,
    email: &str,
    role: Role,
) -> Result<invitations::Model, TeamError> {
    actor.may(super::Action::ManageMembers)?;
    if !actor.is_organization() {
        return Err(TeamError::Invalid(
            "Create an organization to invite people; a personal account has one member.",
        ));
    }
    if role == Role::Owner {
        return Err(TeamError::Invalid(
            "Invite as a member or admin; make them an owner once they have joined.",
        ));
    }
    let email = crate::auth::accounts::normalize_email(email)
        .map_err(|_| TeamError::Invalid("Enter a valid email address."))?;
    let account_id = actor.account.id;
    let already = members::members_of(&billing.db, account_id)
        .await?
        .into_iter()
        .any(|(user, _)| user.email == email);
    if already {
        return Err(TeamError::AlreadyMember(email));
    }
    if let Some(open) = open_for(billing, account_id, &email).await? {
        return resend(billing, actor, open.id).await;
    }
    super::seats::check_room(billing, account_id).await?;
    let now = Utc::now();
    let token = tokens::fresh();
    let invitation = {
        let _turn = crate::db::write_turn(&billing.db).await;
        let tx = billing.db.begin().await?;
        members::lock_account(&tx, account_id).await?;
        let invitation = invitations::Entity::insert(invitations::ActiveModel {
            account_id: Set(account_id),
            email: Set(email.clone()),
            role: Set(role),
            token_hash: Set(tokens::digest(&token)),
            invited_by: Set(Some(actor.user.id)),
            expires_at: Set(now + Duration::days(LIFETIME_DAYS)),
            accepted_at: Set(None),
            revoked_at: Set(None),
            created_at: Set(now),
            updated_at: Set(now),
            ..Default::default()
        })
        .exec_with_returning(&tx)
        .await?;
        mail(billing, &tx, actor, &invitation, &token).await?;
        tx.commit().await?;
        invitation
    };
    billing.mail.wake();
    tracing::info!(invitation = invitation.id, "invitation sent");
    super::seats::sync(billing, account_id).await?;
    Ok(invitation)
}

async fn mail<C: sea_orm::ConnectionTrait>(
    billing: &Billing,
    conn: &C,
    actor: &Member,
    invitation: &invitations::Model,
    token: &str,
) -> Result<(), DbErr> {
    billing
        .mail
        .enqueue(
            conn,
            format!("invitation:{}", tokens::digest(token)),
            None,
            &invitation.email,
            Template::Invitation {
                link: link(billing, token),
                organization: actor.account.name.clone(),
                inviter: actor.user.email.clone(),
            },
        )
        .await?;
    Ok(())
}

async fn open_for(
    billing: &Billing,
    account_id: i64,
    email: &str,
) -> Result<Option<invitations::Model>, DbErr> {
    invitations::Entity::find()
        .filter(invitations::Column::AccountId.eq(account_id))
        .filter(invitations::Column::Email.eq(email))
        .filter(open_at(Utc::now()))
        .one(&billing.db)
        .await
}

/// The open invitations of an account, newest first.
pub async fn open_of(billing: &Billing, account_id: i64) -> Result<Vec<invitations::Model>, DbErr> {
    invitations::Entity::find()
        .filter(invitations::Column::AccountId.eq(account_id))
        .filter(open_at(Utc::now()))
        .order_by_desc(invitations::Column::CreatedAt)
        .all(&billing.db)
        .await
}

/// An open invitation of the actor's own account (by id: any other account's
/// id is "not found").
async fn own_open(
    billing: &Billing,
    actor: &Member,
    id: i64,
) -> Result<invitations::Model, TeamError> {
    actor.may(super::Action::ManageMembers)?;
    open_of(billing, actor.account.id)
        .await?
        .into_iter()
        .find(|inv| inv.id == id)
        .ok_or(TeamError::NotFound)
}

/// Mails a new link for an open invitation; the old link stops working.
#[tracing::instrument(skip_all, fields(actor = actor.user.id, invitation = id))]
pub async fn resend(
    billing: &Billing,
    actor: &Member,
    id: i64,
) -> Result<invitations::Model, TeamError> {
    let invitation = own_open(billing, actor, id).await?;
    let now = Utc::now();
    let token = tokens::fresh();
    let invitation = {
        let _turn = crate::db::write_turn(&billing.db).await;
        let tx = billing.db.begin().await?;
        let moved = invitations::Entity::update_many()
            .col_expr(
                invitations::Column::TokenHash,
                Expr::value(tokens::digest(&token)),
            )
            .col_expr(
                invitations::Column::ExpiresAt,
                Expr::value(now + Duration::days(LIFETIME_DAYS)),
            )
            .col_expr(invitations::Column::UpdatedAt, Expr::value(now))
            .filter(invitations::Column::Id.eq(invitation.id))
            .filter(invitations::Column::AcceptedAt.is_null())
            .filter(invitations::Column::RevokedAt.is_null())
            .exec(&tx)
            .await?;
        if moved.rows_affected != 1 {
            return Err(TeamError::NotFound);
        }
        mail(billing, &tx, actor, &invitation, &token).await?;
        tx.commit().await?;
        invitations::Entity::find_by_id(invitation.id)
            .one(&billing.db)
            .await?
            .ok_or(TeamError::NotFound)?
    };
    billing.mail.wake();
    tracing::info!("invitation sent again");
    Ok(invitation)
}

/// Revokes an open invitation: its link stops working, its seat is freed.
#[tracing::instrument(skip_all, fields(actor = actor.user.id, invitation = id))]
pub async fn revoke(billing: &Billing, actor: &Member, id: i64) -> Result<(), TeamError> {
    let invitation = own_open(billing, actor, id).await?;
    invitations::Entity::update_many()
        .col_expr(invitations::Column::RevokedAt, Expr::value(Utc::now()))
        .filter(invitations::Column::Id.eq(invitation.id))
        .filter(invitations::Column::AcceptedAt.is_null())
        .exec(&billing.db)
        .await?;
    tracing::info!("invitation revoked");
    super::seats::sync(billing, actor.account.id).await?;
    Ok(())
}

/// The open invitation a link's token names, with its organization.
pub async fn peek(billing: &Billing, token: &str) -> Result<Pending, TeamError> {
    if !tokens::well_formed(token) {
        return Err(TeamError::InvitationInvalid);
    }
    let invitation = invitations::Entity::find()
        .filter(invitations::Column::TokenHash.eq(tokens::digest(token)))
        .filter(open_at(Utc::now()))
        .one(&billing.db)
        .await?
        .ok_or(TeamError::InvitationInvalid)?;
    let organization = accounts::Entity::find_by_id(invitation.account_id)
        .one(&billing.db)
        .await?
        .ok_or(TeamError::InvitationInvalid)?;
    Ok(Pending {
        invitation,
        organization,
    })
}

/// `user` accepts the invitation `token` names: they join with its role (the
/// link also proves their address, as a verification link would), and the
/// seat count follows. Returns the organization joined.
#[tracing::instrument(skip_all, fields(user = user.id))]
pub async fn accept(
    billing: &Billing,
    user: &users::Model,
    token: &str,
) -> Result<accounts::Model, TeamError> {
    let pending = peek(billing, token).await?;
    if pending.invitation.email != user.email {
        return Err(TeamError::OtherInvitee(pending.invitation.email));
    }
    let now = Utc::now();
    {
        let _turn = crate::db::write_turn(&billing.db).await;
        let tx = billing.db.begin().await?;
        members::lock_account(&tx, pending.organization.id).await?;
        let used = invitations::Entity::update_many()
            .col_expr(invitations::Column::AcceptedAt, Expr::value(now))
            .filter(invitations::Column::TokenHash.eq(tokens::digest(token)))
            .filter(open_at(now))
            .exec(&tx)
            .await?;
        if used.rows_affected != 1 {
            return Err(TeamError::InvitationInvalid);
        }
        members::add(
            &tx,
            pending.organization.id,
            user.id,
            pending.invitation.role,
        )
        .await?;
        if user.email_verified_at.is_none() {
            users::Entity::update_many()
                .col_expr(users::Column::EmailVerifiedAt, Expr::value(now))
                .filter(users::Column::Id.eq(user.id))
                .exec(&tx)
                .await?;
        }
        tx.commit().await?;
    }
    tracing::info!(account = pending.organization.id, "invitation accepted");
    super::seats::sync(billing, pending.organization.id).await?;
    Ok(pending.organization)
}
