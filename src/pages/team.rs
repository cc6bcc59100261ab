//! `/dashboard/team`: the account the user acts in, its members, roles,
//! invitations and seats; creating an organization; and `/invitations/accept`,
//! where an invitation link lands. Server-rendered, every action a plain form
//! post answered with a redirect (no wasm). Every server function takes the
//! user and the account from the session (`request::require_member`); an id in
//! a form names a member, invitation or account only *within* what that
//! membership may see.

use leptos::prelude::*;
use leptos_router::{components::A, hooks::use_query_map};

use crate::{
    components::form_post::url_of,
    views::{AccountChoice, InvitationView, TeamView},
};

#[cfg(feature = "ssr")]
mod act {
    use crate::{
        db::entities::memberships::Role,
        limits::{self, Key},
        request::{self, FnError},
        teams::Member,
    };
    use axum::http::StatusCode;

    /// The signed-in member, after one use of the team-actions limit.
    pub async fn member() -> Result<Member, FnError> {
        request::require_member_within(
            limits::TEAM_ACTIONS_PER_USER,
            "Too many team changes. Wait a few minutes and try again.",
        )
        .await
    }

    pub fn role(word: &str) -> Result<Role, FnError> {
        match word {
            "member" => Ok(Role::Member),
            "admin" => Ok(Role::Admin),
            "owner" => Ok(Role::Owner),
            _ => Err(FnError::User(
                StatusCode::BAD_REQUEST,
                "Choose member, admin or owner.",
            )),
        }
    }

    pub fn word(role: Role) -> String {
        sea_orm::ActiveEnum::to_value(&role)
    }

    pub fn back() {
        leptos_axum::redirect("/dashboard/team");
    }

    /// One invitation mailed at the member's request.
    pub async fn invitation_sent(member: &Member) -> Result<(), FnError> {
        request::limit(
            limits::INVITATIONS_PER_USER,
            Key::User(member.user.id),
            "Too many invitations. Wait a few minutes and try again.",
        )
        .await
    }

    /// A team change by the signed-in member: counted, done, then back to the
    /// team page.
    pub async fn run<F, Fut>(work: F) -> Result<(), leptos::prelude::ServerFnError>
    where
        F: FnOnce(Member, crate::billing::context::Billing) -> Fut,
        Fut: std::future::Future<Output = Result<(), FnError>>,
    {
        request::run(async {
            let member = member().await?;
            work(member, request::state().billing.clone()).await?;
            back();
            Ok(())
        })
        .await
    }
}

#[server(endpoint = "load_team")]
pub async fn load_team() -> Result<Option<TeamView>, ServerFnError> {
    use crate::{request, teams};
    request::run(async {
        let Some(member) = request::current_member().await? else {
            return Ok(None);
        };
        let state = request::state();
        let billing = &state.billing;
        let internal = |err| request::FnError::internal("team page", err);
        let members = teams::members::members_of(state.db(), member.account.id)
            .await
            .map_err(internal)?;
        let can_manage = member.can(teams::Action::ManageMembers);
        let invitations = if can_manage {
            teams::invitations::open_of(billing, member.account.id)
                .await
                .map_err(internal)?
        } else {
            Vec::new()
        };
        let can_manage_keys = member.can(teams::Action::ManageBilling);
        let (api_keys, new_api_key) = if can_manage_keys {
            let keys = crate::entitlements::api_keys::list(state.db(), member.account.id)
                .await
                .map_err(internal)?;
            // Shown once: taken out of the server-side session as it is read.
            let session = request::session().await?;
            let new_key = session
                .remove::<String>(NEW_API_KEY)
                .await
                .map_err(|err| request::FnError::internal("session read", err))?;
            (keys, new_key)
        } else {
            (Vec::new(), None)
        };
        let api_keys = api_keys
            .into_iter()
            .map(|key| crate::views::ApiKeyRow {
                id: key.id,
                name: key.name,
                prefix: key.prefix,
                created_on: key.created_at.format("%B %-d, %Y").to_string(),
                last_used: key.last_used_at.map_or_else(
                    || "never".to_owned(),
                    |at| at.format("%B %-d, %Y %H:%M UTC").to_string(),
                ),
            })
            .collect();
        Ok(Some(TeamView {
            account_name: if member.is_organization() {
                member.account.name.clone()
            } else {
                "Personal".to_owned()
            },
            is_organization: member.is_organization(),
            role: act::word(member.role),
            can_manage,
            can_own: member.can(teams::Action::Own),
            members: members
                .into_iter()
                .map(|(user, role)| crate::views::MemberRow {
                    is_you: user.id == member.user.id,
                    user_id: user.id,
                    email: user.email,
                    role: act::word(role),
                })
                .collect(),
            invitations: invitations
                .into_iter()
                .map(|inv| crate::views::InvitationRow {
                    id: inv.id,
                    email: inv.email,
                    role: act::word(inv.role),
                    expires_on: inv.expires_at.format("%B %-d, %Y").to_string(),
                })
                .collect(),
            seats: teams::seats::summary(billing, member.account.id).await?,
            accounts: request::account_choices().await?,
            can_manage_keys,
            api_keys,
            new_api_key,
        }))
    })
    .await
}

/// The session key of an API key created a moment ago (shown once).
#[cfg(feature = "ssr")]
const NEW_API_KEY: &str = "new_api_key";

/// Creates an API key for the current account (owners and admins); the page
/// shows it once.
#[server(endpoint = "create_api_key")]
pub async fn create_api_key(name: String) -> Result<(), ServerFnError> {
    use crate::request::FnError;
    act::run(|member, billing| async move {
        member.may(crate::teams::Action::ManageBilling)?;
        let key = crate::entitlements::api_keys::create(
            &billing.db,
            member.account.id,
            &name,
            Some(member.user.id),
        )
        .await?;
        tracing::info!(account = member.account.id, key = key.id, "api key created");
        let session = crate::request::session().await?;
        session
            .insert(NEW_API_KEY, key.secret)
            .await
            .map_err(|err| FnError::internal("session write", err))
    })
    .await
}

/// Revokes one of the current account's API keys.
#[server(endpoint = "revoke_api_key")]
pub async fn revoke_api_key(id: i64) -> Result<(), ServerFnError> {
    act::run(|member, billing| async move {
        member.may(crate::teams::Action::ManageBilling)?;
        crate::entitlements::api_keys::revoke(&billing.db, member.account.id, id).await?;
        tracing::info!(account = member.account.id, key = id, "api key revoked");
        Ok(())
    })
    .await
}

/// Creates an organization owned by the signed-in user and acts in it.
#[server(endpoint = "create_organization")]
pub async fn create_organization(name: String) -> Result<(), ServerFnError> {
    use crate::{request, teams};
    request::run(async {
        let member = act::member().await?;
        let account =
            teams::members::create_organization(&request::state().billing, &member.user, &name)
                .await?;
        choose(account.id).await?;
        act::back();
        Ok(())
    })
    .await
}

/// Remembers the chosen account in the session (checked on every request).
#[cfg(feature = "ssr")]
async fn choose(account_id: i64) -> Result<(), crate::request::FnError> {
    let session = crate::request::session().await?;
    session
        .insert(crate::auth::ACCOUNT_ID_KEY, account_id)
        .await
        .map_err(|err| crate::request::FnError::internal("session write", err))
}

/// Acts in another of the user's accounts from now on (the header's switcher).
#[server(endpoint = "switch_account")]
pub async fn switch_account(account_id: i64, next: Option<String>) -> Result<(), ServerFnError> {
    use crate::{request, teams};
    request::run(async {
        let member = act::member().await?;
        let state = request::state();
        let Some(chosen) = teams::members::current(state.db(), &member.user, Some(account_id))
            .await
            .map_err(|err| request::FnError::internal("account switch", err))?
            .filter(|m| m.account.id == account_id)
        else {
            return Err(teams::TeamError::NotFound.into());
        };
        choose(chosen.account.id).await?;
        leptos_axum::redirect(&crate::auth::safe_next(
            next.as_deref().or(Some("/dashboard/team")),
            &state.config().app_url,
        ));
        Ok(())
    })
    .await
}

#[server(endpoint = "invite_member")]
pub async fn invite_member(email: String, role: String) -> Result<(), ServerFnError> {
    act::run(|member, billing| async move {
        act::invitation_sent(&member).await?;
        let role = act::role(&role)?;
        crate::teams::invitations::invite(&billing, &member, &email, role).await?;
        Ok(())
    })
    .await
}

#[server(endpoint = "resend_invitation")]
pub async fn resend_invitation(id: i64) -> Result<(), ServerFnError> {
    act::run(|member, billing| async move {
        act::invitation_sent(&member).await?;
        crate::teams::invitations::resend(&billing, &member, id).await?;
        Ok(())
    })
    .await
}

#[server(endpoint = "revoke_invitation")]
pub async fn revoke_invitation(id: i64) -> Result<(), ServerFnError> {
    act::run(|member, billing| async move {
        Ok(crate::teams::invitations::revoke(&billing, &member, id).await?)
    })
    .await
}

#[server(endpoint = "remove_member")]
pub async fn remove_member(user_id: i64) -> Result<(), ServerFnError> {
    act::run(|member, billing| async move {
        Ok(crate::teams::members::remove(&billing, &member, user_id).await?)
    })
    .await
}

/// Leaves the current organization and goes back to the personal account.
#[server(endpoint = "leave_organization")]
pub async fn leave_organization() -> Result<(), ServerFnError> {
    act::run(|member, billing| async move {
        crate::teams::members::remove(&billing, &member, member.user.id).await?;
        forget_choice().await
    })
    .await
}

#[cfg(feature = "ssr")]
async fn forget_choice() -> Result<(), crate::request::FnError> {
    let session = crate::request::session().await?;
    session
        .remove::<i64>(crate::auth::ACCOUNT_ID_KEY)
        .await
        .map_err(|err| crate::request::FnError::internal("session write", err))?;
    Ok(())
}

#[server(endpoint = "change_role")]
pub async fn change_role(user_id: i64, role: String) -> Result<(), ServerFnError> {
    act::run(|member, billing| async move {
        let role = act::role(&role)?;
        Ok(crate::teams::members::set_role(&billing, &member, user_id, role).await?)
    })
    .await
}

#[server(endpoint = "transfer_ownership")]
pub async fn transfer_ownership(user_id: i64) -> Result<(), ServerFnError> {
    act::run(|member, billing| async move {
        Ok(crate::teams::members::transfer_ownership(&billing, &member, user_id).await?)
    })
    .await
}

/// Sets the seats to pay for on a per-seat plan (empty: members and
/// invitations only).
#[server(endpoint = "choose_seats")]
pub async fn choose_seats(seats: String) -> Result<(), ServerFnError> {
    use axum::http::StatusCode;
    act::run(|member, billing| async move {
        let chosen = match seats.trim() {
            "" => None,
            n => Some(n.parse::<u32>().map_err(|_| {
                crate::request::FnError::User(StatusCode::BAD_REQUEST, "Enter a number of seats.")
            })?),
        };
        Ok(crate::teams::seats::choose(&billing, &member, chosen).await?)
    })
    .await
}

/// Deletes the current organization (owners; its name typed to confirm).
#[server(endpoint = "delete_organization")]
pub async fn delete_organization(confirm: String) -> Result<(), ServerFnError> {
    use axum::http::StatusCode;
    act::run(|member, billing| async move {
        if confirm.trim() != member.account.name {
            return Err(crate::request::FnError::User(
                StatusCode::BAD_REQUEST,
                "Type the organization's name exactly to delete it.",
            ));
        }
        crate::teams::members::delete_organization(&billing, &member).await?;
        forget_choice().await
    })
    .await
}

/// What an invitation link names (no sign-in needed to see it).
#[server(endpoint = "load_invitation")]
pub async fn load_invitation(token: String) -> Result<InvitationView, ServerFnError> {
    use crate::{request, teams};
    request::run(async {
        request::limit(
            crate::limits::INVITATION_VIEWS_PER_IP,
            crate::limits::Key::Ip(
                request::client_ip()
                    .await
                    .ok_or_else(|| request::FnError::internal("invitation", "no client address"))?,
            ),
            "Too many requests. Wait a few minutes and try again.",
        )
        .await?;
        let pending = teams::invitations::peek(&request::state().billing, &token).await?;
        Ok(InvitationView {
            organization: pending.organization.name,
            email: pending.invitation.email,
            signed_in_as: request::current_user().await?.map(|u| u.email),
        })
    })
    .await
}

/// Joins the organization the link invites to, as the signed-in user.
#[server(endpoint = "accept_invitation")]
pub async fn accept_invitation(token: String) -> Result<(), ServerFnError> {
    use crate::{request, teams};
    request::run(async {
        let member = act::member().await?;
        let joined =
            teams::invitations::accept(&request::state().billing, &member.user, &token).await?;
        choose(joined.id).await?;
        act::back();
        Ok(())
    })
    .await
}

/// The header's switcher between the personal account and organizations:
/// a plain form (a select and a button), shown once there is a choice.
#[component]
pub fn AccountSwitcher(accounts: Vec<AccountChoice>) -> impl IntoView {
    (accounts.len() > 1).then(|| {
        let action = url_of::<SwitchAccount>();
        view! {
            <form method="post" action=action class="account-switcher" data-testid="account-switcher">
                <label class="visually-hidden" for="account-switch">"Account"</label>
                <select id="account-switch" name="account_id">
                    {accounts.into_iter().map(|a| view! {
                        <option value=a.id.to_string() selected=a.current>{a.name}</option>
                    }).collect_view()}
                </select>
                <button type="submit" class="button button-secondary">"Switch"</button>
            </form>
        }
    })
}

/// A refusal carried back in the URL by a form posted without JavaScript.
#[component]
fn Returned() -> impl IntoView {
    crate::components::form_post::any_returned_failure()
        .map(|message| view! { <p class="form-error" role="alert">{message}</p> })
}

#[component]
pub fn TeamPage() -> impl IntoView {
    let data = OnceResource::new_blocking(load_team());
    view! {
        <super::PageTitle text="Team" />
        <section class="team">
            <h1>"Team"</h1>
            <Returned />
            <Suspense fallback=|| view! { <p>"Loading…"</p> }>
                {move || Suspend::new(async move { match data.await {
                    Ok(Some(view)) => team(view).into_any(),
                    Ok(None) => view! {
                        <p>"Sign in to see your team."</p>
                        <A href="/login?next=/dashboard/team" attr:class="button">"Sign in"</A>
                    }.into_any(),
                    Err(err) => view! {
                        <p class="form-error" role="alert">{crate::components::toast::readable(&err)}</p>
                    }.into_any(),
                }})}
            </Suspense>
        </section>
    }
}

fn team(view: TeamView) -> impl IntoView {
    let TeamView {
        account_name,
        is_organization,
        role,
        can_manage,
        can_own,
        members,
        invitations,
        seats,
        accounts,
        can_manage_keys,
        api_keys,
        new_api_key,
    } = view;
    let org_name = account_name.clone();
    view! {
        <section class="panel">
            <h2 data-testid="team-account">{account_name}</h2>
            <p data-testid="team-role">{format!("Your role: {role}")}</p>
            {seats.map(|(used, paid)| view! {
                <p data-testid="team-seats">{format!("Seats: {used} in use, {paid} paid")}</p>
                {can_manage.then(|| view! {
                    <form method="post" action={url_of::<ChooseSeats>()} class="inline" data-testid="choose-seats">
                        <label for="seats-wanted">"Seats to pay for"</label>
                        <input id="seats-wanted" name="seats" type="number" min="1" inputmode="numeric" placeholder=used.to_string() />
                        <button type="submit" class="button button-secondary">"Set seats"</button>
                    </form>
                })}
            })}
            <AccountSwitcher accounts />
        </section>
        {is_organization.then(|| view! {
            <section class="panel">
                <h2>"Members"</h2>
                <table class="members" data-testid="members">
                    <thead><tr><th>"Email"</th><th>"Role"</th><th></th></tr></thead>
                    <tbody>
                        {members.into_iter().map(|m| member_row(m, can_manage, can_own)).collect_view()}
                    </tbody>
                </table>
            </section>
        })}
        {(is_organization && can_manage).then(|| view! {
            <section class="panel">
                <h2>"Invite someone"</h2>
                <form method="post" action={url_of::<InviteMember>()} class="stack" data-testid="invite-form">
                    <label for="invite-email">"Email"</label>
                    <input id="invite-email" name="email" type="email" required autocomplete="off" />
                    <label for="invite-role">"Role"</label>
                    <select id="invite-role" name="role">
                        <option value="member" selected>"Member"</option>
                        <option value="admin">"Admin"</option>
                    </select>
                    <button type="submit" class="button">"Send invitation"</button>
                </form>
                {(!invitations.is_empty()).then(|| view! {
                    <h3>"Open invitations"</h3>
                    <ul class="invitations" data-testid="invitations">
                        {invitations.into_iter().map(|inv| view! {
                            <li>
                                {format!("{} ({}) until {}", inv.email, inv.role, inv.expires_on)}
                                <form method="post" action={url_of::<ResendInvitation>()} class="inline">
                                    <input type="hidden" name="id" value=inv.id.to_string() />
                                    <button type="submit" class="button button-secondary">"Send again"</button>
                                </form>
                                <form method="post" action={url_of::<RevokeInvitation>()} class="inline">
                                    <input type="hidden" name="id" value=inv.id.to_string() />
                                    <button type="submit" class="button button-secondary">"Revoke"</button>
                                </form>
                            </li>
                        }).collect_view()}
                    </ul>
                })}
            </section>
        })}
        {is_organization.then(|| view! {
            <section class="panel">
                <h2>"Leave"</h2>
                <form method="post" action={url_of::<LeaveOrganization>()}>
                    <button type="submit" class="button button-secondary">"Leave this organization"</button>
                </form>
            </section>
        })}
        {(is_organization && can_own).then(|| view! {
            <section class="panel danger">
                <h2>"Delete the organization"</h2>
                <p>"Its subscriptions are cancelled and its Stripe customer deleted."</p>
                <form method="post" action={url_of::<DeleteOrganization>()} class="stack">
                    <label for="delete-confirm">{format!("Type “{org_name}” to confirm")}</label>
                    <input id="delete-confirm" name="confirm" type="text" required autocomplete="off" />
                    <button type="submit" class="button button-danger">"Delete organization"</button>
                </form>
            </section>
        })}
        {can_manage_keys.then(|| view! {
            <section class="panel" data-testid="api-keys">
                <h2>"API keys"</h2>
                <p>"Your backend services call "<code>"/api/v1"</code>" with these keys to check and record this account's usage."</p>
                {new_api_key.map(|secret| view! {
                    <p class="notice" role="status">"Copy this key now; it is not shown again:"</p>
                    <p><code data-testid="new-api-key">{secret}</code></p>
                })}
                {(!api_keys.is_empty()).then(|| view! {
                    <table class="members">
                        <thead><tr><th>"Name"</th><th>"Key"</th><th>"Created"</th><th>"Last used"</th><th></th></tr></thead>
                        <tbody>
                            {api_keys.into_iter().map(|key| view! {
                                <tr data-testid="api-key">
                                    <td>{key.name}</td>
                                    <td><code>{format!("{}…", key.prefix)}</code></td>
                                    <td>{key.created_on}</td>
                                    <td>{key.last_used}</td>
                                    <td>
                                        <form method="post" action={url_of::<RevokeApiKey>()} class="inline">
                                            <input type="hidden" name="id" value=key.id.to_string() />
                                            <button type="submit" class="button button-secondary">"Revoke"</button>
                                        </form>
                                    </td>
                                </tr>
                            }).collect_view()}
                        </tbody>
                    </table>
                })}
                <form method="post" action={url_of::<CreateApiKey>()} class="inline">
                    <label for="api-key-name">"Key name"</label>
                    <input id="api-key-name" name="name" type="text" required maxlength="60" placeholder="backend" />
                    <button type="submit" class="button">"Create API key"</button>
                </form>
            </section>
        })}
        <section class="panel">
            <h2>"New organization"</h2>
            <p>"An organization has its own plan and billing, shared by its members."</p>
            <form method="post" action={url_of::<CreateOrganization>()} class="stack" data-testid="create-org">
                <label for="org-name">"Name"</label>
                <input id="org-name" name="name" type="text" required maxlength="60" />
                <button type="submit" class="button">"Create organization"</button>
            </form>
        </section>
    }
}

fn member_row(m: crate::views::MemberRow, can_manage: bool, can_own: bool) -> impl IntoView {
    let id = m.user_id.to_string();
    let is_owner = m.role == "owner";
    let manage = can_manage && !m.is_you && (can_own || !is_owner);
    view! {
        <tr data-testid="member">
            <td>{m.email.clone()}{m.is_you.then_some(" (you)")}</td>
            <td>{m.role.clone()}</td>
            <td>
                {manage.then(|| view! {
                    <form method="post" action={url_of::<ChangeRole>()} class="inline">
                        <input type="hidden" name="user_id" value=id.clone() />
                        <select name="role" aria-label="Role">
                            <option value="member" selected=m.role == "member">"Member"</option>
                            <option value="admin" selected=m.role == "admin">"Admin"</option>
                            {can_own.then(|| view! { <option value="owner" selected=is_owner>"Owner"</option> })}
                        </select>
                        <button type="submit" class="button button-secondary">"Change role"</button>
                    </form>
                    <form method="post" action={url_of::<RemoveMember>()} class="inline">
                        <input type="hidden" name="user_id" value=id.clone() />
                        <button type="submit" class="button button-secondary">"Remove"</button>
                    </form>
                })}
                {(can_own && !m.is_you && !is_owner).then(|| view! {
                    <form method="post" action={url_of::<TransferOwnership>()} class="inline">
                        <input type="hidden" name="user_id" value=id.clone() />
                        <button type="submit" class="button button-secondary">"Make owner, step down"</button>
                    </form>
                })}
            </td>
        </tr>
    }
}

/// `/invitations/accept?token=…`: who invites, and a button to join (or the
/// way to sign up or sign in first, coming back here).
#[component]
pub fn AcceptInvitationPage() -> impl IntoView {
    let token = use_query_map().with_untracked(|q| q.get("token").unwrap_or_default());
    let data = OnceResource::new_blocking(load_invitation(token.clone()));
    view! {
        <super::PageTitle text="Invitation" />
        <section class="narrow">
            <h1>"Invitation"</h1>
            <Returned />
            <Suspense fallback=|| view! { <p>"Loading…"</p> }>
                {move || { let token = token.clone(); Suspend::new(async move { match data.await {
                    Ok(view) => invitation(view, token).into_any(),
                    Err(err) => view! {
                        <p class="form-error" role="alert" data-testid="invitation-invalid">{crate::components::toast::readable(&err)}</p>
                    }.into_any(),
                }})}}
            </Suspense>
        </section>
    }
}

fn invitation(view: InvitationView, token: String) -> impl IntoView {
    let back = format!("/invitations/accept?token={token}");
    let next = super::encode_next(&back);
    let InvitationView {
        organization,
        email,
        signed_in_as,
    } = view;
    view! {
        <p data-testid="invitation">{format!("You are invited to join {organization} as {email}.")}</p>
        {match signed_in_as {
            Some(me) if me == email => view! {
                <form method="post" action={url_of::<AcceptInvitation>()}>
                    <input type="hidden" name="token" value=token />
                    <button type="submit" class="button">{format!("Join {organization}")}</button>
                </form>
            }.into_any(),
            Some(me) => view! {
                <p class="form-error" role="alert">{format!("You are signed in as {me}. Sign out, then sign in as {email} to accept.")}</p>
            }.into_any(),
            None => view! {
                <p>
                    <A href=format!("/signup?next={next}") attr:class="button">"Create an account"</A>
                    " or "
                    <A href=format!("/login?next={next}")>"sign in"</A>
                    {format!(" as {email} to accept.")}
                </p>
            }.into_any(),
        }}
    }
}
