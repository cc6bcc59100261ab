//! Stripe's webhook signature scheme: `Stripe-Signature: t=<unix>,v1=<hex>[,v1=…]`,
//! where each v1 is HMAC-SHA256(key = the whole `whsec_…` secret, message =
//! "<t>.<raw body>"). Any v1 matching any configured secret is accepted, so
//! secrets can be rotated without downtime.
//!
//! The header is read exactly as Stripe's official libraries read it
//! (stripe-python's `WebhookSignature.verify_header`, checked against it by
//! `tests/signature_parity.rs`): entries split on `,`, names compared exactly (no
//! trimming: ` v1=…` is not a v1), the value is what lies between the first and a
//! second `=`, the first `t` counts, a `t` or `v1` without `=` makes the header
//! unreadable, and a v1 matches only as the lowercase hex of the HMAC, so an
//! unrelated or malformed extra v1 beside a good one is simply not a match.
//!
//! Cost is bounded by the body, not by the header: the header's length and its
//! number of entries are capped, one HMAC is computed per configured secret (not
//! per v1), and only 64-character lowercase hex values are compared with it, in
//! constant time. (20,000 `v1=` entries once took 11 s of CPU: an HMAC each.)

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// Stripe's default tolerance for the signature timestamp.
pub const TOLERANCE_SECS: i64 = 300;

/// Longest header read. Stripe's own is ~200 bytes; during a rotation a few v1
/// (and a v0) more.
pub const MAX_HEADER_LEN: usize = 4096;
/// Most entries read (`t`, `v1`, `v0`, schemes to come).
pub const MAX_ENTRIES: usize = 32;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("missing Stripe-Signature header")]
    Missing,
    #[error("malformed Stripe-Signature header")]
    Malformed,
    #[error("Stripe-Signature header too large")]
    TooLarge,
    #[error("signature timestamp outside the tolerance")]
    Stale,
    #[error("no signature matches")]
    NoMatch,
}

/// A header's timestamp and its v1 values that could be a signature at all.
struct Parsed<'a> {
    timestamp: i64,
    candidates: Vec<&'a str>,
    any_v1: bool,
}

fn parse(header: &str) -> Result<Parsed<'_>, SignatureError> {
    if header.len() > MAX_HEADER_LEN {
        return Err(SignatureError::TooLarge);
    }
    let mut timestamp = None;
    let mut candidates = Vec::new();
    let mut any_v1 = false;
    for (index, entry) in header.split(',').enumerate() {
        if index >= MAX_ENTRIES {
            return Err(SignatureError::TooLarge);
        }
        let mut parts = entry.splitn(3, '=');
        let name = parts.next().unwrap_or_default();
        let value = parts.next();
        match (name, value) {
            ("t" | "v1", None) => return Err(SignatureError::Malformed),
            ("t", Some(value)) if timestamp.is_none() => {
                timestamp = Some(python_int(value).ok_or(SignatureError::Malformed)?);
            }
            ("v1", Some(value)) => {
                any_v1 = true;
                if is_lower_hex_sha256(value) {
                    candidates.push(value);
                }
            }
            _ => {} // v0 and future schemes are ignored, as Stripe's libraries do
        }
    }
    let timestamp = timestamp.ok_or(SignatureError::Malformed)?;
    Ok(Parsed {
        timestamp,
        candidates,
        any_v1,
    })
}

/// Python's `int(str)`, which the reference library applies to `t`: surrounding
/// whitespace, a sign, and single underscores between digits are allowed.
fn python_int(value: &str) -> Option<i64> {
    let value = value.trim_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c']);
    let (negative, digits) = match value.as_bytes().first()? {
        b'-' => (true, &value[1..]),
        b'+' => (false, &value[1..]),
        _ => (false, value),
    };
    if digits.is_empty()
        || digits.starts_with('_')
        || digits.ends_with('_')
        || digits.contains("__")
        || !digits.bytes().all(|b| b.is_ascii_digit() || b == b'_')
    {
        return None;
    }
    let magnitude: i64 = digits.replace('_', "").parse().ok()?;
    Some(if negative { -magnitude } else { magnitude })
}

fn is_lower_hex_sha256(value: &str) -> bool {
    value.len() == 64
        && value
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Checks `payload` against the header; returns the signed timestamp.
pub fn verify(
    payload: &[u8],
    header: Option<&str>,
    secrets: &[&str],
    now: i64,
) -> Result<i64, SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    let parsed = parse(header)?;
    if !parsed.any_v1 {
        return Err(SignatureError::Malformed);
    }
    let matched = secrets.iter().any(|secret| {
        let expected = hex::encode(
            mac_for(secret, parsed.timestamp, payload)
                .finalize()
                .into_bytes(),
        );
        parsed.candidates.iter().fold(false, |found, candidate| {
            found | bool::from(expected.as_bytes().ct_eq(candidate.as_bytes()))
        })
    });
    if !matched {
        return Err(SignatureError::NoMatch);
    }
    // Saturating: a timestamp near i64::MIN must not overflow (it is stale).
    if now.saturating_sub(parsed.timestamp) > TOLERANCE_SECS {
        return Err(SignatureError::Stale);
    }
    Ok(parsed.timestamp)
}

/// The header Stripe would send for `payload` (used by `doctor` and tests).
pub fn sign(payload: &[u8], secret: &str, timestamp: i64) -> String {
    let mac = mac_for(secret, timestamp, payload);
    format!(
        "t={timestamp},v1={}",
        hex::encode(mac.finalize().into_bytes())
    )
}

fn mac_for(secret: &str, timestamp: i64, payload: &[u8]) -> Hmac<Sha256> {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC accepts any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(payload);
    mac
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    #[test]
    fn matches_stripes_published_scheme() {
        // HMAC-SHA256("whsec_test", "1700000000.{}"), computed with openssl.
        assert_eq!(
            sign(b"{}", "whsec_test", 1_700_000_000),
            "t=1700000000,v1=35495024f4ef3f94e5a93e22221544c4b75e9a42300cd965ab81cb85cd994e91"
        );
    }

    #[test]
    fn accepts_any_secret_and_any_v1() {
        let header = sign(b"body", "whsec_new", NOW);
        assert_eq!(
            verify(b"body", Some(&header), &["whsec_old", "whsec_new"], NOW),
            Ok(NOW)
        );
        let two = format!("{header},v1={}", "00".repeat(32));
        assert_eq!(
            verify(b"body", Some(&two), &["whsec_new"], NOW + 10),
            Ok(NOW)
        );
    }

    #[test]
    fn reads_the_header_as_the_official_libraries_do() {
        let good = sign(b"body", "whsec_a", NOW);
        let v1 = good.split_once(",v1=").unwrap().1;
        let ok = |header: &str| verify(b"body", Some(header), &["whsec_a"], NOW);
        // A malformed or foreign extra v1 beside a good one: still accepted.
        assert_eq!(ok(&format!("{good},v1=zz")), Ok(NOW));
        assert_eq!(ok(&format!("{good},v1=")), Ok(NOW));
        assert_eq!(ok(&format!("t={NOW},v1=zz,v1={v1},v0=abc,v9=x")), Ok(NOW));
        // Uppercase hex and whitespace around entries are not the signature.
        assert_eq!(
            ok(&format!("t={NOW},v1={}", v1.to_uppercase())),
            Err(SignatureError::NoMatch)
        );
        assert_eq!(
            ok(&format!("t={NOW}, v1={v1}")),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            ok(&format!(" t={NOW},v1={v1}")),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            ok(&format!("t={NOW},v1= {v1}")),
            Err(SignatureError::NoMatch)
        );
        // The first t counts.
        assert_eq!(ok(&format!("t={NOW},t=1,v1={v1}")), Ok(NOW));
        assert_eq!(
            ok(&format!("t=1,t={NOW},v1={v1}")),
            Err(SignatureError::NoMatch)
        );
        // What lies after a second `=` is not part of the value.
        assert_eq!(ok(&format!("t={NOW},v1={v1}=tail")), Ok(NOW));
        // A bare `t` or `v1` makes the header unreadable.
        assert_eq!(ok(&format!("{good},v1")), Err(SignatureError::Malformed));
        assert_eq!(ok(&format!("{good},t")), Err(SignatureError::Malformed));
        // Python's int(): whitespace, sign and underscores.
        assert_eq!(python_int(" 17 "), Some(17));
        assert_eq!(python_int("+1_7"), Some(17));
        assert_eq!(python_int("-3"), Some(-3));
        for bad in [
            "",
            "_1",
            "1_",
            "1__2",
            "0x10",
            "1.0",
            "- 1",
            "99999999999999999999",
        ] {
            assert_eq!(python_int(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn huge_headers_cost_nothing() {
        let good = sign(b"body", "whsec_a", NOW);
        let many = format!("{good}{}", ",v1=00".repeat(20_000));
        let started = std::time::Instant::now();
        assert_eq!(
            verify(b"body", Some(&many), &["whsec_a"], NOW),
            Err(SignatureError::TooLarge)
        );
        let entries = format!("t={NOW}{}", ",x=1".repeat(MAX_ENTRIES));
        assert_eq!(
            verify(b"body", Some(&entries), &["whsec_a"], NOW),
            Err(SignatureError::TooLarge)
        );
        // Within the caps, each v1 costs a comparison, not an HMAC.
        let within = format!(
            "t={NOW}{}",
            format!(",v1={}", "0".repeat(64)).repeat(MAX_ENTRIES - 1)
        );
        assert!(within.len() <= MAX_HEADER_LEN);
        let _ = verify(b"body", Some(&within), &["whsec_a"], NOW);
        assert!(started.elapsed() < std::time::Duration::from_millis(200));
    }

    #[test]
    fn extreme_timestamps_do_not_overflow() {
        for t in [i64::MIN, i64::MIN + 1, i64::MAX] {
            let header = format!("t={t},v1={}", "0".repeat(64));
            assert!(verify(b"body", Some(&header), &["whsec_a"], NOW).is_err());
        }
        assert!(verify(b"body", Some("t=1,v1=00"), &["whsec_a"], i64::MAX).is_err());
    }

    #[test]
    fn rejects_what_stripe_rejects() {
        let header = sign(b"body", "whsec_a", NOW);
        let cases = [
            (None, ["whsec_a"], NOW, SignatureError::Missing),
            (Some("v1=abcd"), ["whsec_a"], NOW, SignatureError::Malformed),
            (Some("t=1,v1=zz"), ["whsec_a"], NOW, SignatureError::NoMatch),
            (
                Some("t=x,v1=zz"),
                ["whsec_a"],
                NOW,
                SignatureError::Malformed,
            ),
            (Some("t=1"), ["whsec_a"], NOW, SignatureError::Malformed),
            (
                Some(header.as_str()),
                ["whsec_a"],
                NOW + 301,
                SignatureError::Stale,
            ),
            (
                Some(header.as_str()),
                ["whsec_b"],
                NOW,
                SignatureError::NoMatch,
            ),
        ];
        for (header, secrets, now, expected) in cases {
            assert_eq!(
                verify(b"body", header, &secrets, now),
                Err(expected.clone()),
                "{header:?}"
            );
        }
        assert_eq!(
            verify(b"tampered", Some(&header), &["whsec_a"], NOW),
            Err(SignatureError::NoMatch)
        );
    }
}
