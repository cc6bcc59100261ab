//! Limits on sign-in attempts, per email (guessing one account's password) and
//! per client IP (trying many accounts). In memory: each app instance counts its
//! own attempts, which bounds guessing per instance; a shared store is needed to
//! make the bound global across a fleet.

use std::{net::IpAddr, num::NonZeroU32, sync::Arc};

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// Attempts allowed per email in a burst, then one more every `EMAIL_REFILL_SECS`.
const EMAIL_BURST: u32 = 5;
const EMAIL_REFILL_SECS: u64 = 60;
/// Attempts allowed per IP in a burst (an office shares one), then one more per 6 s.
const IP_BURST: u32 = 20;
const IP_REFILL_SECS: u64 = 6;

#[derive(Clone)]
pub struct SignInLimiter {
    by_email: Arc<DefaultKeyedRateLimiter<String>>,
    by_ip: Arc<DefaultKeyedRateLimiter<IpAddr>>,
}

impl Default for SignInLimiter {
    fn default() -> Self {
        let quota = |burst: u32, refill: u64| {
            Quota::with_period(std::time::Duration::from_secs(refill))
                .expect("non-zero period")
                .allow_burst(NonZeroU32::new(burst).expect("non-zero burst"))
        };
        Self {
            by_email: Arc::new(RateLimiter::keyed(quota(EMAIL_BURST, EMAIL_REFILL_SECS))),
            by_ip: Arc::new(RateLimiter::keyed(quota(IP_BURST, IP_REFILL_SECS))),
        }
    }
}

impl SignInLimiter {
    /// Counts one attempt; `false` when either limit is exhausted.
    pub fn allow(&self, email: &str, ip: Option<IpAddr>) -> bool {
        // Forget idle keys now and then so memory tracks active attackers only.
        self.by_email.retain_recent();
        self.by_ip.retain_recent();
        let email_ok = self
            .by_email
            .check_key(&email.trim().to_lowercase())
            .is_ok();
        let ip_ok = ip.is_none_or(|ip| self.by_ip.check_key(&ip).is_ok());
        email_ok && ip_ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_per_email_and_per_ip() {
        let limiter = SignInLimiter::default();
        let ip: IpAddr = "203.0.113.7".parse().unwrap();
        for _ in 0..EMAIL_BURST {
            assert!(limiter.allow("Ada@Example.com", Some(ip)));
        }
        assert!(
            !limiter.allow("ada@example.com ", Some(ip)),
            "same account, any spelling"
        );
        assert!(
            limiter.allow("bob@example.com", Some(ip)),
            "another account is not blocked"
        );

        let other_ip: IpAddr = "198.51.100.1".parse().unwrap();
        let allowed = (0..IP_BURST + 5)
            .filter(|i| limiter.allow(&format!("user{i}@example.com"), Some(other_ip)))
            .count();
        assert_eq!(
            allowed, IP_BURST as usize,
            "one IP cannot try unlimited accounts"
        );
    }
}
