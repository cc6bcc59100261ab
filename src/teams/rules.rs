//! What each role may do, and the arithmetic of seats: pure rules, tested by
//! table. The I/O around them is in `members`, `invitations` and `seats`.

use crate::db::entities::memberships::Role;

/// Something a member asks to do in an account.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Use what the plan gives (the gated app).
    UseProduct,
    /// Checkout, the portal, cancel and resume, seat counts.
    ManageBilling,
    /// Invite, revoke, resend, remove members, change roles below owner.
    ManageMembers,
    /// Make another member an owner, delete the organization.
    Own,
}

pub fn allows(role: Role, action: Action) -> bool {
    match action {
        Action::UseProduct => true,
        Action::ManageBilling | Action::ManageMembers => role >= Role::Admin,
        Action::Own => role == Role::Owner,
    }
}

/// Why a change of membership is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MembershipRefusal {
    #[error("An organization always keeps at least one owner. Make someone else an owner first.")]
    LastOwner,
    #[error("Only an owner can change or remove an owner.")]
    OwnersOnly,
    #[error("You do not have permission to manage members of this organization.")]
    NotAllowed,
}

/// Whether `actor` may remove `target` (themself: leaving). `owners` is how
/// many owners the organization has now.
pub fn may_remove(
    actor: Role,
    target: Role,
    is_self: bool,
    owners: usize,
) -> Result<(), MembershipRefusal> {
    if !is_self {
        if !allows(actor, Action::ManageMembers) {
            return Err(MembershipRefusal::NotAllowed);
        }
        if target == Role::Owner && actor != Role::Owner {
            return Err(MembershipRefusal::OwnersOnly);
        }
    }
    if target == Role::Owner && owners <= 1 {
        return Err(MembershipRefusal::LastOwner);
    }
    Ok(())
}

/// Whether `actor` may give `target` (now `from`) the role `to`.
pub fn may_change_role(
    actor: Role,
    from: Role,
    to: Role,
    owners: usize,
) -> Result<(), MembershipRefusal> {
    if !allows(actor, Action::ManageMembers) {
        return Err(MembershipRefusal::NotAllowed);
    }
    if (from == Role::Owner || to == Role::Owner) && actor != Role::Owner {
        return Err(MembershipRefusal::OwnersOnly);
    }
    if from == Role::Owner && to != Role::Owner && owners <= 1 {
        return Err(MembershipRefusal::LastOwner);
    }
    Ok(())
}

/// A plan's seat terms, from the catalog.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SeatTerms {
    pub min: u32,
    pub max: Option<u32>,
}

/// The seats an account needs: everyone in it and everyone invited, or the
/// number an admin chose if that is more, never below the plan's minimum.
pub fn seats_needed(
    terms: SeatTerms,
    members: u32,
    open_invitations: u32,
    chosen: Option<u32>,
) -> u32 {
    (members + open_invitations)
        .max(chosen.unwrap_or(0))
        .max(terms.min)
        .max(1)
}

/// Whether one more person (a new invitation) fits the plan.
pub fn room_for_one_more(terms: SeatTerms, members: u32, open_invitations: u32) -> bool {
    terms.max.is_none_or(|max| members + open_invitations < max)
}

/// An organization's URL name: lower-case letters, digits and single dashes,
/// from its display name; `None` when nothing usable is left.
pub fn slug_of(name: &str) -> Option<String> {
    let mut slug = String::new();
    for c in name.trim().chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            slug.push(c);
        } else if !slug.ends_with('-') && !slug.is_empty() {
            slug.push('-');
        }
    }
    let slug: String = slug.trim_end_matches('-').chars().take(40).collect();
    let slug = slug.trim_end_matches('-').to_owned();
    (slug.len() >= 2).then_some(slug)
}

/// An organization's display name, trimmed: 2 to 60 characters, no control
/// characters.
pub fn valid_name(name: &str) -> Result<String, &'static str> {
    let name = name.trim();
    let count = name.chars().count();
    if !(2..=60).contains(&count) || name.chars().any(char::is_control) {
        return Err("An organization's name is 2 to 60 characters.");
    }
    Ok(name.to_owned())
}

/// The membership a session acts in, of all the user's (each as `(account id,
/// the account's personal user)`): the session's `chosen` account if the user
/// is a member of it, else their personal account; `None` without either.
pub fn acting_in<T>(
    memberships: &[T],
    user_id: i64,
    chosen: Option<i64>,
    ids: impl Fn(&T) -> (i64, Option<i64>),
) -> Option<&T> {
    chosen
        .and_then(|chosen| memberships.iter().find(|m| ids(m).0 == chosen))
        .or_else(|| memberships.iter().find(|m| ids(m).1 == Some(user_id)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use Role::*;

    #[test]
    fn roles_allow_what_the_readme_says() {
        for (role, action, allowed) in [
            (Member, Action::UseProduct, true),
            (Member, Action::ManageBilling, false),
            (Member, Action::ManageMembers, false),
            (Member, Action::Own, false),
            (Admin, Action::ManageBilling, true),
            (Admin, Action::ManageMembers, true),
            (Admin, Action::Own, false),
            (Owner, Action::ManageBilling, true),
            (Owner, Action::Own, true),
        ] {
            assert_eq!(allows(role, action), allowed, "{role:?} {action:?}");
        }
    }

    #[test]
    fn an_organization_keeps_an_owner() {
        use MembershipRefusal::*;
        for (actor, target, is_self, owners, expected) in [
            (Owner, Owner, true, 1, Err(LastOwner)),
            (Owner, Owner, true, 2, Ok(())),
            (Owner, Member, false, 1, Ok(())),
            (Admin, Member, false, 1, Ok(())),
            (Admin, Admin, false, 1, Ok(())),
            (Admin, Owner, false, 2, Err(OwnersOnly)),
            (Member, Member, false, 1, Err(NotAllowed)),
            (Member, Member, true, 1, Ok(())),
            // Permission is judged before the owner count.
            (Member, Owner, false, 1, Err(NotAllowed)),
            (Admin, Owner, false, 1, Err(OwnersOnly)),
        ] {
            assert_eq!(
                may_remove(actor, target, is_self, owners),
                expected,
                "{actor:?} removes {target:?} self={is_self} owners={owners}"
            );
        }
        for (actor, from, to, owners, expected) in [
            (Owner, Member, Admin, 1, Ok(())),
            (Owner, Owner, Admin, 1, Err(LastOwner)),
            (Owner, Owner, Admin, 2, Ok(())),
            (Owner, Member, Owner, 1, Ok(())),
            (Admin, Member, Admin, 1, Ok(())),
            (Admin, Member, Owner, 1, Err(OwnersOnly)),
            (Admin, Owner, Member, 2, Err(OwnersOnly)),
            (Member, Member, Admin, 1, Err(NotAllowed)),
        ] {
            assert_eq!(may_change_role(actor, from, to, owners), expected);
        }
    }

    #[test]
    fn seats_count_members_and_invitations() {
        let open = SeatTerms { min: 1, max: None };
        let team = SeatTerms {
            min: 3,
            max: Some(5),
        };
        for (terms, members, invited, chosen, needed) in [
            (open, 1, 0, None, 1),
            (open, 20, 1, None, 21),
            (open, 2, 1, Some(10), 10),
            (open, 4, 0, Some(2), 4),
            (team, 1, 0, None, 3),
            (team, 4, 1, None, 5),
            (SeatTerms { min: 0, max: None }, 0, 0, None, 1),
        ] {
            assert_eq!(seats_needed(terms, members, invited, chosen), needed);
        }
        assert!(room_for_one_more(team, 3, 1));
        assert!(!room_for_one_more(team, 4, 1));
        assert!(room_for_one_more(open, 1000, 1000));
    }

    #[test]
    fn slugs_are_url_safe() {
        for (name, slug) in [
            ("Acme", Some("acme")),
            ("  Acme & Co. Ltd ", Some("acme-co-ltd")),
            ("Zürich Team", Some("z-rich-team")),
            ("---", None),
            ("a", None),
            (&"x".repeat(80), Some(&*"x".repeat(40))),
        ] {
            assert_eq!(slug_of(name).as_deref(), slug, "{name}");
        }
        assert!(valid_name(" Acme ").is_ok());
        assert!(valid_name("a").is_err());
        assert!(valid_name("a\u{0}b").is_err());
        assert!(valid_name(&"x".repeat(61)).is_err());
    }

    #[test]
    fn a_session_acts_in_its_chosen_account_only_as_a_member() {
        // (account, personal user): 1 is user 7's own, 2 and 3 organizations.
        let memberships = [(1, Some(7)), (2, None), (3, None)];
        let ids = |m: &(i64, Option<i64>)| *m;
        for (chosen, acting) in [
            (None, Some(1)),
            (Some(2), Some(2)),
            (Some(3), Some(3)),
            // Not a member of 9 (left it, or a forged choice): the personal account.
            (Some(9), Some(1)),
            (Some(1), Some(1)),
        ] {
            assert_eq!(
                acting_in(&memberships, 7, chosen, ids).map(|m| m.0),
                acting,
                "{chosen:?}"
            );
        }
        // Someone else's personal account is never the fallback.
        assert_eq!(acting_in(&memberships[1..], 7, Some(9), ids), None);
        assert_eq!(acting_in(&memberships, 8, None, ids), None);
    }
}
