//! Stripe's webhook signature scheme: `Stripe-Signature: t=<unix>,v1=<hex>[,v1=…]`,
//! where each v1 is HMAC-SHA256(key = the whole `whsec_…` secret, message =
//! "<t>.<raw body>"). Any v1 matching any configured secret is accepted, so
//! secrets can be rotated without downtime. Comparison is constant-time.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Stripe's default tolerance for the signature timestamp.
pub const TOLERANCE_SECS: i64 = 300;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("missing Stripe-Signature header")]
    Missing,
    #[error("malformed Stripe-Signature header")]
    Malformed,
    #[error("signature timestamp outside the tolerance")]
    Stale,
    #[error("no signature matches")]
    NoMatch,
}

/// Checks `payload` against the header; returns the signed timestamp.
pub fn verify(
    payload: &[u8],
    header: Option<&str>,
    secrets: &[&str],
    now: i64,
) -> Result<i64, SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", value)) => timestamp = value.parse::<i64>().ok(),
            Some(("v1", value)) => {
                signatures.push(hex::decode(value).map_err(|_| SignatureError::Malformed)?)
            }
            _ => {} // v0 and future schemes are ignored, as Stripe's libraries do
        }
    }
    let timestamp = timestamp.ok_or(SignatureError::Malformed)?;
    if signatures.is_empty() {
        return Err(SignatureError::Malformed);
    }
    if now - timestamp > TOLERANCE_SECS {
        return Err(SignatureError::Stale);
    }
    let matched = secrets.iter().any(|secret| {
        signatures.iter().any(|signature| {
            // `verify_slice` compares in constant time.
            mac_for(secret, timestamp, payload)
                .verify_slice(signature)
                .is_ok()
        })
    });
    if matched {
        Ok(timestamp)
    } else {
        Err(SignatureError::NoMatch)
    }
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
    fn rejects_what_stripe_rejects() {
        let header = sign(b"body", "whsec_a", NOW);
        let cases = [
            (None, ["whsec_a"], NOW, SignatureError::Missing),
            (Some("v1=abcd"), ["whsec_a"], NOW, SignatureError::Malformed),
            (
                Some("t=1,v1=zz"),
                ["whsec_a"],
                NOW,
                SignatureError::Malformed,
            ),
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
