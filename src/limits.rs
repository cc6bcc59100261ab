//! Abuse limits: how often one client, one account or one user may do something
//! that costs us (a password hash, a Stripe call).
//!
//! Counters live in the database (`rate_limits`, one row per key and fixed
//! window, `INSERT … ON CONFLICT … RETURNING`), so every app instance on one
//! PostgreSQL counts against the same limits and a restart forgets nothing. Keys
//! are checked and bounded before anything is stored: an IP (IPv6 by its /64,
//! which one host is usually given whole), a normalised email of at most 254
//! bytes, a user id. Old windows are swept by [`sweep`] on the maintenance
//! schedule.

use std::net::{IpAddr, Ipv6Addr};

use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr, Statement};

/// One limit: at most `hits` per `window_secs`, per key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rule {
    pub name: &'static str,
    pub hits: u32,
    pub window_secs: i64,
}

/// Guessing one account's password.
pub const SIGN_IN_PER_EMAIL: Rule = Rule {
    name: "sign_in_email",
    hits: 5,
    window_secs: 300,
};
/// Trying many accounts from one client (an office shares one address).
pub const SIGN_IN_PER_IP: Rule = Rule {
    name: "sign_in_ip",
    hits: 20,
    window_secs: 60,
};
/// Creating accounts from one client: each costs a password hash and a row.
/// `hits` is `SIGN_UP_LIMIT_PER_IP` (default `config::defaults::SIGN_UP_LIMIT_PER_IP`).
pub fn sign_up_per_ip(hits: u32) -> Rule {
    Rule {
        name: "sign_up_ip",
        hits,
        window_secs: 600,
    }
}
/// Checkout, portal, cancel and resume clicks of one user: each is a Stripe call
/// made with the account's rate limit (a double click is two; a storm of 50 is
/// still answered, one a second is the sustained rate).
pub const STRIPE_ACTIONS_PER_USER: Rule = Rule {
    name: "stripe_user",
    hits: 60,
    window_secs: 60,
};

/// Mail one address may be sent by request of anyone (reset links, and the
/// confirmation of a new address): a stranger cannot flood an inbox.
pub const MAIL_PER_EMAIL: Rule = Rule {
    name: "mail_email",
    hits: 3,
    window_secs: 600,
};

/// Reset and "send it again" requests from one client.
pub const MAIL_REQUESTS_PER_IP: Rule = Rule {
    name: "mail_ip",
    hits: 20,
    window_secs: 600,
};

/// Account-settings actions of one user that hash a password or mail someone
/// (change password or email, resend the verification link, delete).
pub const ACCOUNT_ACTIONS_PER_USER: Rule = Rule {
    name: "account_user",
    hits: 10,
    window_secs: 600,
};

/// Team changes of one user (create, switch, roles, removals): each is a few
/// writes and may change a seat count in Stripe.
pub const TEAM_ACTIONS_PER_USER: Rule = Rule {
    name: "team_user",
    hits: 60,
    window_secs: 600,
};

/// Invitations one user may send (each mails someone).
pub const INVITATIONS_PER_USER: Rule = Rule {
    name: "invite_user",
    hits: 20,
    window_secs: 600,
};

/// Invitation links opened from one client (each a token lookup): guessing
/// tokens is hopeless at 2^256, but the lookups still cost.
pub const INVITATION_VIEWS_PER_IP: Rule = Rule {
    name: "invite_view_ip",
    hits: 60,
    window_secs: 600,
};

/// Workspace actions of one user (`/app`: use a feature, add or remove an
/// item): each is a ledger transaction.
pub const APP_ACTIONS_PER_USER: Rule = Rule {
    name: "app_user",
    hits: 120,
    window_secs: 60,
};

/// Requests to `/api/v1` with a missing or wrong API key from one client
/// (each costs a lookup; guessing a key is hopeless at 2^192).
pub const API_KEY_FAILURES_PER_IP: Rule = Rule {
    name: "api_key_ip",
    hits: 30,
    window_secs: 600,
};

/// The longest window of any rule: counters older than this are swept.
const LONGEST_WINDOW_SECS: i64 = 600;

/// What a limiter key may be; anything else is refused before it is stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Key {
    Ip(IpAddr),
    /// Already normalised by `auth::accounts::normalize_email`.
    Email(String),
    User(i64),
}

impl Key {
    fn render(&self) -> Option<String> {
        match self {
            Key::Ip(ip) => Some(ip_key(*ip)),
            Key::Email(email)
                if email.len() <= crate::auth::accounts::MAX_EMAIL_LEN
                    && email.bytes().all(|b| b.is_ascii_graphic()) =>
            {
                Some(email.clone())
            }
            Key::Email(_) => None,
            Key::User(id) => Some(id.to_string()),
        }
    }
}

/// An IPv4 address as is; an IPv6 address by its /64 (a host gets a whole /64
/// and could otherwise walk through 2^64 keys). IPv4-mapped IPv6 is IPv4.
fn ip_key(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{}/64", Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LimitError {
    #[error("limit key is not valid")]
    BadKey,
    #[error("rate limit storage: {0}")]
    Database(#[from] DbErr),
}

/// Counts one hit of `key` under `rule`; `Ok(false)` when the limit is used up.
pub async fn hit(
    db: &DatabaseConnection,
    rule: Rule,
    key: &Key,
    now: i64,
) -> Result<bool, LimitError> {
    let key = key.render().ok_or(LimitError::BadKey)?;
    let bucket = format!("{}:{key}", rule.name);
    let window_start = now - now.rem_euclid(rule.window_secs);
    let backend = db.get_database_backend();
    let sql = match backend {
        sea_orm::DbBackend::Postgres => {
            "INSERT INTO rate_limits (bucket, window_start, hits) VALUES ($1, $2, 1) \
             ON CONFLICT (bucket, window_start) DO UPDATE SET hits = rate_limits.hits + 1 \
             RETURNING hits"
        }
        _ => {
            "INSERT INTO rate_limits (bucket, window_start, hits) VALUES (?, ?, 1) \
             ON CONFLICT (bucket, window_start) DO UPDATE SET hits = rate_limits.hits + 1 \
             RETURNING hits"
        }
    };
    let statement =
        Statement::from_sql_and_values(backend, sql, [bucket.into(), window_start.into()]);
    let _turn = crate::db::write_turn(db).await;
    let row = db
        .query_one_raw(statement)
        .await?
        .ok_or_else(|| DbErr::RecordNotFound("rate limit counter".into()))?;
    let hits: i32 = row.try_get("", "hits")?;
    Ok(hits as i64 <= rule.hits as i64)
}

/// Drops counters of windows that have ended; returns how many.
pub async fn sweep(db: &DatabaseConnection, now: i64) -> Result<u64, DbErr> {
    let backend = db.get_database_backend();
    let sql = match backend {
        sea_orm::DbBackend::Postgres => "DELETE FROM rate_limits WHERE window_start < $1",
        _ => "DELETE FROM rate_limits WHERE window_start < ?",
    };
    let _turn = crate::db::write_turn(db).await;
    let result = db
        .execute_raw(Statement::from_sql_and_values(
            backend,
            sql,
            [(now - LONGEST_WINDOW_SECS).into()],
        ))
        .await?;
    Ok(result.rows_affected())
}

/// The client's address: the peer's, or behind a trusted reverse proxy the
/// right-most `X-Forwarded-For` entry that is not itself a trusted proxy (entries
/// further left are whatever the client chose to send).
pub fn client_ip(
    peer: IpAddr,
    forwarded_for: Option<&str>,
    trusted_proxies: &[ipnet::IpNet],
) -> IpAddr {
    let trusted = |ip: &IpAddr| trusted_proxies.iter().any(|net| net.contains(ip));
    if !trusted(&peer) {
        return peer;
    }
    let Some(forwarded_for) = forwarded_for else {
        return peer;
    };
    let mut client = peer;
    for entry in forwarded_for.rsplit(',') {
        match entry.trim().parse::<IpAddr>() {
            Ok(ip) if trusted(&ip) => client = ip,
            Ok(ip) => return ip,
            // A malformed entry: nothing to its left can be trusted either.
            Err(_) => return client,
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_is_keyed_by_its_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff:ffff:ffff:ffff".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(ip_key(a), ip_key(b));
        assert_ne!(ip_key(a), ip_key(c));
        assert_eq!(ip_key(a), "2001:db8:1:2::/64");
        assert_eq!(ip_key("::ffff:203.0.113.9".parse().unwrap()), "203.0.113.9");
        assert_eq!(ip_key("203.0.113.9".parse().unwrap()), "203.0.113.9");
    }

    #[test]
    fn keys_are_bounded_before_they_are_stored() {
        assert!(Key::Email("ada@example.com".into()).render().is_some());
        assert!(Key::Email("a".repeat(255)).render().is_none());
        assert!(Key::Email("a b@example.com".into()).render().is_none());
        assert!(Key::Email("ä@example.com".into()).render().is_none());
    }

    #[test]
    fn forwarded_for_counts_only_behind_a_trusted_proxy() {
        let proxies: Vec<ipnet::IpNet> =
            vec!["10.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()];
        let proxy: IpAddr = "10.1.2.3".parse().unwrap();
        let outsider: IpAddr = "198.51.100.7".parse().unwrap();
        let cases: &[(IpAddr, Option<&str>, &str)] = &[
            // Not from a proxy: the header is the client's own invention.
            (outsider, Some("203.0.113.1"), "198.51.100.7"),
            (proxy, None, "10.1.2.3"),
            (proxy, Some("203.0.113.1"), "203.0.113.1"),
            // A client's spoofed entry sits left of what our proxy appended.
            (proxy, Some("1.1.1.1, 203.0.113.1"), "203.0.113.1"),
            // Chained proxies of ours are skipped.
            (proxy, Some("203.0.113.1, 10.9.9.9"), "203.0.113.1"),
            (proxy, Some("garbage, 10.9.9.9"), "10.9.9.9"),
            (proxy, Some(" 2001:db8::5 "), "2001:db8::5"),
        ];
        for (peer, header, expected) in cases {
            assert_eq!(
                client_ip(*peer, *header, &proxies).to_string(),
                *expected,
                "{peer} {header:?}"
            );
        }
    }
}
