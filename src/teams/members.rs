//! Accounts and memberships: the personal account made at sign-up, the
//! account a session acts in, organizations and what their members do to
//! each other. Every change of membership locks the account (a row lock on
//! PostgreSQL, the write turn on SQLite), so two owners leaving at once cannot
//! leave none, and ends with the seat count pushed to Stripe (`seats::sync`).

use chrono::Utc;
use sea_orm::{
    sea_query::Expr, ActiveValue::Set, ColumnTrait, ConnectionTrait, DbBackend, DbErr, EntityTrait,
    FromQueryResult, QueryFilter, QueryOrder, SqlErr, Statement, TransactionTrait,
};

use super::{rules, Member, TeamError};
use crate::{
    billing::context::Billing,
    db::entities::{
        accounts::{self, AccountKind},
        memberships::{self, Role},
        users,
    },
};

/// The user's personal account and their owner membership of it, in the
/// caller's transaction (sign-up).
pub async fn create_personal<C: ConnectionTrait>(
    conn: &C,
    user: &users::Model,
) -> Result<accounts::Model, DbErr> {
    let now = Utc::now();
    let account = accounts::Entity::insert(accounts::ActiveModel {
        kind: Set(AccountKind::Personal),
        name: Set(user.email.clone()),
        slug: Set(None),
        personal_user_id: Set(Some(user.id)),
        stripe_customer_id: Set(None),
        seats_wanted: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    })
    .exec_with_returning(conn)
    .await?;
    join(conn, account.id, user.id, Role::Owner).await?;
    Ok(account)
}

async fn join<C: ConnectionTrait>(
    conn: &C,
    account_id: i64,
    user_id: i64,
    role: Role,
) -> Result<(), DbErr> {
    memberships::Entity::insert(memberships::ActiveModel {
        account_id: Set(account_id),
        user_id: Set(user_id),
        role: Set(role),
        created_at: Set(Utc::now()),
        ..Default::default()
    })
    .exec_without_returning(conn)
    .await?;
    Ok(())
}

#[derive(FromQueryResult)]
struct AccountRole {
    role: Role,
}

/// The account `user` acts in: `chosen` (the session's choice) if they are a
/// member of it, else their personal account. One query: every signed-in
/// page asks.
pub async fn current<C: ConnectionTrait>(
    conn: &C,
    user: &users::Model,
    chosen: Option<i64>,
) -> Result<Option<Member>, DbErr> {
    let backend = conn.get_database_backend();
    let sql = match backend {
        DbBackend::Postgres => {
            "SELECT a.*, m.role FROM memberships m JOIN accounts a ON a.id = m.account_id \
             WHERE m.user_id = $1 AND (a.id = $2 OR a.personal_user_id = $1) \
             ORDER BY (a.id = $2) DESC LIMIT 1"
        }
        _ => {
            "SELECT a.*, m.role FROM memberships m JOIN accounts a ON a.id = m.account_id \
             WHERE m.user_id = ?1 AND (a.id = ?2 OR a.personal_user_id = ?1) \
             ORDER BY (a.id = ?2) DESC LIMIT 1"
        }
    };
    let Some(row) = conn
        .query_one_raw(Statement::from_sql_and_values(
            backend,
            sql,
            [user.id.into(), chosen.unwrap_or(-1).into()],
        ))
        .await?
    else {
        return Ok(None);
    };
    let account = accounts::Model::from_query_result(&row, "")?;
    let AccountRole { role } = AccountRole::from_query_result(&row, "")?;
    Ok(Some(Member {
        user: user.clone(),
        account,
        role,
    }))
}

/// Every account the user belongs to, personal first, then organizations by name.
pub async fn accounts_of<C: ConnectionTrait>(
    conn: &C,
    user_id: i64,
) -> Result<Vec<(accounts::Model, Role)>, DbErr> {
    let rows = memberships::Entity::find()
        .filter(memberships::Column::UserId.eq(user_id))
        .find_also_related(accounts::Entity)
        .all(conn)
        .await?;
    let mut out: Vec<_> = rows
        .into_iter()
        .filter_map(|(m, a)| a.map(|a| (a, m.role)))
        .collect();
    in_switcher_order(&mut out);
    Ok(out)
}

/// Personal first, then organizations by name, ignoring case.
pub fn in_switcher_order(accounts: &mut [(accounts::Model, Role)]) {
    accounts.sort_by_cached_key(|(a, _)| (a.kind != AccountKind::Personal, a.name.to_lowercase()));
}

/// The member a signed-in session acts as (picked by [`rules::acting_in`] from
/// the accounts read with the session) and the header's account switcher:
/// every signed-in page shows both, and neither costs a query of its own.
pub fn acting_with_choices(
    signed_in: &crate::auth::SignedIn,
) -> Option<(Member, Vec<crate::views::AccountChoice>)> {
    let user = &signed_in.user;
    let (account, role) = rules::acting_in(
        &signed_in.accounts,
        user.id,
        signed_in.chosen_account,
        |(a, _)| (a.id, a.personal_user_id),
    )?;
    Some((
        Member {
            user: user.clone(),
            account: account.clone(),
            role: *role,
        },
        choice_list(&signed_in.accounts, account.id),
    ))
}

/// The header's switcher: every account of the user, the current one marked.
fn choice_list(
    accounts: &[(accounts::Model, Role)],
    current: i64,
) -> Vec<crate::views::AccountChoice> {
    accounts
        .iter()
        .map(|(account, _)| crate::views::AccountChoice {
            id: account.id,
            name: match account.kind {
                AccountKind::Personal => "Personal".to_owned(),
                AccountKind::Organization => account.name.clone(),
            },
            current: account.id == current,
        })
        .collect()
}

/// The members of an account with their roles, owners first.
pub async fn members_of<C: ConnectionTrait>(
    conn: &C,
    account_id: i64,
) -> Result<Vec<(users::Model, Role)>, DbErr> {
    let rows = memberships::Entity::find()
        .filter(memberships::Column::AccountId.eq(account_id))
        .order_by_asc(memberships::Column::CreatedAt)
        .order_by_asc(memberships::Column::Id)
        .find_also_related(users::Entity)
        .all(conn)
        .await?;
    let mut out: Vec<_> = rows
        .into_iter()
        .filter_map(|(m, u)| u.map(|u| (u, m.role)))
        .collect();
    out.sort_by_key(|(_, role)| std::cmp::Reverse(*role));
    Ok(out)
}

/// Holds the account for a change of membership until the transaction ends
/// (`db::lock_account`; a missing account is found by the reads that follow).
pub(crate) async fn lock_account<C: ConnectionTrait>(conn: &C, id: i64) -> Result<(), DbErr> {
    crate::db::lock_account(conn, id).await.map(|_| ())
}

async fn role_in<C: ConnectionTrait>(
    conn: &C,
    account_id: i64,
    user_id: i64,
) -> Result<Option<Role>, DbErr> {
    Ok(memberships::Entity::find()
        .filter(memberships::Column::AccountId.eq(account_id))
        .filter(memberships::Column::UserId.eq(user_id))
        .one(conn)
        .await?
        .map(|m| m.role))
}

async fn owners<C: ConnectionTrait>(conn: &C, account_id: i64) -> Result<usize, DbErr> {
    use sea_orm::PaginatorTrait;
    Ok(memberships::Entity::find()
        .filter(memberships::Column::AccountId.eq(account_id))
        .filter(memberships::Column::Role.eq(Role::Owner))
        .count(conn)
        .await? as usize)
}

/// A new organization with `user` as its owner.
#[tracing::instrument(skip_all, fields(user = user.id))]
pub async fn create_organization(
    billing: &Billing,
    user: &users::Model,
    name: &str,
) -> Result<accounts::Model, TeamError> {
    let name = rules::valid_name(name).map_err(TeamError::Invalid)?;
    let slug = rules::slug_of(&name).ok_or(TeamError::Invalid(
        "An organization's name needs at least two letters or digits.",
    ))?;
    let now = Utc::now();
    let _turn = crate::db::write_turn(&billing.db).await;
    let tx = billing.db.begin().await?;
    let account = accounts::Entity::insert(accounts::ActiveModel {
        kind: Set(AccountKind::Organization),
        name: Set(name),
        slug: Set(Some(slug)),
        personal_user_id: Set(None),
        stripe_customer_id: Set(None),
        seats_wanted: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    })
    .exec_with_returning(&tx)
    .await
    .map_err(|err| match err.sql_err() {
        Some(SqlErr::UniqueConstraintViolation(_)) => TeamError::NameTaken,
        _ => err.into(),
    })?;
    join(&tx, account.id, user.id, Role::Owner).await?;
    tx.commit().await?;
    tracing::info!(account = account.id, "organization created");
    Ok(account)
}

/// Adds `user` to the account as `role` in the caller's transaction (an
/// accepted invitation); `false` if they already were a member.
pub(crate) async fn add<C: ConnectionTrait>(
    conn: &C,
    account_id: i64,
    user_id: i64,
    role: Role,
) -> Result<bool, DbErr> {
    if role_in(conn, account_id, user_id).await?.is_some() {
        return Ok(false);
    }
    join(conn, account_id, user_id, role).await?;
    Ok(true)
}

/// The roles a change of membership is judged by, read under the account's
/// lock (the actor's own role may have changed since the page).
struct Locked {
    actor: Role,
    target: Role,
    owners: usize,
}

async fn lock_and_read<C: ConnectionTrait>(
    conn: &C,
    actor: &Member,
    user_id: i64,
) -> Result<Locked, TeamError> {
    lock_account(conn, actor.account.id).await?;
    let actor_role = role_in(conn, actor.account.id, actor.user.id)
        .await?
        .ok_or(TeamError::NotFound)?;
    let target = role_in(conn, actor.account.id, user_id)
        .await?
        .ok_or(TeamError::NotFound)?;
    Ok(Locked {
        actor: actor_role,
        target,
        owners: owners(conn, actor.account.id).await?,
    })
}

/// Removes `user_id` from the actor's organization (the actor themself:
/// leaving), then brings the seat count down.
#[tracing::instrument(skip_all, fields(actor = actor.user.id, account = actor.account.id, target = user_id))]
pub async fn remove(billing: &Billing, actor: &Member, user_id: i64) -> Result<(), TeamError> {
    if !actor.is_organization() {
        return Err(TeamError::NotFound);
    }
    {
        let _turn = crate::db::write_turn(&billing.db).await;
        let tx = billing.db.begin().await?;
        let roles = lock_and_read(&tx, actor, user_id).await?;
        rules::may_remove(
            roles.actor,
            roles.target,
            user_id == actor.user.id,
            roles.owners,
        )?;
        memberships::Entity::delete_many()
            .filter(memberships::Column::AccountId.eq(actor.account.id))
            .filter(memberships::Column::UserId.eq(user_id))
            .exec(&tx)
            .await?;
        tx.commit().await?;
    }
    tracing::info!("member removed");
    super::seats::sync(billing, actor.account.id).await?;
    Ok(())
}

/// Gives a member another role (`Owner` included: ownership shared or, with
/// the actor stepping down afterwards, transferred).
#[tracing::instrument(skip_all, fields(actor = actor.user.id, account = actor.account.id, target = user_id, ?role))]
pub async fn set_role(
    billing: &Billing,
    actor: &Member,
    user_id: i64,
    role: Role,
) -> Result<(), TeamError> {
    if !actor.is_organization() {
        return Err(TeamError::NotFound);
    }
    let _turn = crate::db::write_turn(&billing.db).await;
    let tx = billing.db.begin().await?;
    let roles = lock_and_read(&tx, actor, user_id).await?;
    rules::may_change_role(roles.actor, roles.target, role, roles.owners)?;
    memberships::Entity::update_many()
        .col_expr(memberships::Column::Role, Expr::value(role))
        .filter(memberships::Column::AccountId.eq(actor.account.id))
        .filter(memberships::Column::UserId.eq(user_id))
        .exec(&tx)
        .await?;
    tx.commit().await?;
    tracing::info!("role changed");
    Ok(())
}

/// Makes `user_id` an owner and the acting owner an admin, in one transaction.
#[tracing::instrument(skip_all, fields(actor = actor.user.id, account = actor.account.id, target = user_id))]
pub async fn transfer_ownership(
    billing: &Billing,
    actor: &Member,
    user_id: i64,
) -> Result<(), TeamError> {
    if !actor.is_organization() {
        return Err(TeamError::NotFound);
    }
    if user_id == actor.user.id {
        return Err(TeamError::Invalid(
            "Choose another member to transfer ownership to.",
        ));
    }
    let _turn = crate::db::write_turn(&billing.db).await;
    let tx = billing.db.begin().await?;
    if lock_and_read(&tx, actor, user_id).await?.actor != Role::Owner {
        return Err(rules::MembershipRefusal::OwnersOnly.into());
    }
    for (user, role) in [(user_id, Role::Owner), (actor.user.id, Role::Admin)] {
        memberships::Entity::update_many()
            .col_expr(memberships::Column::Role, Expr::value(role))
            .filter(memberships::Column::AccountId.eq(actor.account.id))
            .filter(memberships::Column::UserId.eq(user))
            .exec(&tx)
            .await?;
    }
    tx.commit().await?;
    tracing::info!("ownership transferred");
    Ok(())
}

/// Organizations in which `user_id` is the only owner while others remain, or
/// that are billed in Stripe: the user must hand them over (or delete them)
/// before deleting their own account.
pub async fn solely_owned_with_others<C: ConnectionTrait>(
    conn: &C,
    user_id: i64,
) -> Result<Vec<accounts::Model>, DbErr> {
    let mut out = Vec::new();
    for (account, role) in accounts_of(conn, user_id).await? {
        if account.kind != AccountKind::Organization || role != Role::Owner {
            continue;
        }
        let members = members_of(conn, account.id).await?;
        let owners = members.iter().filter(|(_, r)| *r == Role::Owner).count();
        if owners == 1 && (members.len() > 1 || account.stripe_customer_id.is_some()) {
            out.push(account);
        }
    }
    Ok(out)
}

/// The user's personal account.
pub async fn personal<C: ConnectionTrait>(
    conn: &C,
    user_id: i64,
) -> Result<Option<accounts::Model>, DbErr> {
    accounts::Entity::find()
        .filter(accounts::Column::PersonalUserId.eq(user_id))
        .one(conn)
        .await
}

/// Removes an account's billing rows (they carry no foreign key: SQLite cannot
/// add one to an existing table), in the caller's transaction, before the
/// account itself goes.
pub async fn delete_billing_rows<C: ConnectionTrait>(
    conn: &C,
    account_id: i64,
) -> Result<(), DbErr> {
    use crate::db::entities::{invoices, one_time_purchases, subscriptions};
    subscriptions::Entity::delete_many()
        .filter(subscriptions::Column::AccountId.eq(account_id))
        .exec(conn)
        .await?;
    one_time_purchases::Entity::delete_many()
        .filter(one_time_purchases::Column::AccountId.eq(account_id))
        .exec(conn)
        .await?;
    invoices::Entity::delete_many()
        .filter(invoices::Column::AccountId.eq(account_id))
        .exec(conn)
        .await?;
    Ok(())
}

/// What deleting an account in Stripe did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StripeErased {
    pub subscriptions_cancelled: usize,
    pub customer_deleted: bool,
}

/// Cancels the account's live subscriptions and deletes its Stripe customer,
/// with nothing held (a failure leaves everything here as it was).
pub async fn erase_in_stripe(
    billing: &Billing,
    account: &accounts::Model,
) -> Result<StripeErased, crate::gateway::GatewayError> {
    let mut done = StripeErased::default();
    if let Some(customer) = &account.stripe_customer_id {
        for sub in billing.stripe.customer_subscriptions(customer).await? {
            if !crate::billing::objects::is_terminal_status(&sub.status) {
                billing.stripe.cancel_subscription_now(&sub.id).await?;
                done.subscriptions_cancelled += 1;
            }
        }
        billing.stripe.delete_customer(customer).await?;
        done.customer_deleted = true;
    }
    Ok(done)
}

/// Deletes the actor's organization (owners only): its subscriptions are
/// cancelled and its Stripe customer deleted first, then its rows, members
/// and invitations go.
#[tracing::instrument(skip_all, fields(actor = actor.user.id, account = actor.account.id))]
pub async fn delete_organization(
    billing: &Billing,
    actor: &Member,
) -> Result<StripeErased, TeamError> {
    if !actor.is_organization() {
        return Err(TeamError::NotFound);
    }
    actor.may(super::Action::Own)?;
    // The customer as stored now (it may have been linked since the page).
    let account = accounts::Entity::find_by_id(actor.account.id)
        .one(&billing.db)
        .await?
        .ok_or(TeamError::NotFound)?;
    let done = erase_in_stripe(billing, &account).await?;
    let _turn = crate::db::write_turn(&billing.db).await;
    let tx = billing.db.begin().await?;
    if let Some(customer) = &account.stripe_customer_id {
        crate::billing::apply::forget_customer(&tx, customer).await?;
    }
    delete_billing_rows(&tx, account.id).await?;
    accounts::Entity::delete_by_id(account.id).exec(&tx).await?;
    tx.commit().await?;
    tracing::info!(
        subscriptions = done.subscriptions_cancelled,
        "organization deleted"
    );
    Ok(done)
}
