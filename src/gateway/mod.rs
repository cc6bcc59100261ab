//! `StripeGateway`: the only module that names async-stripe types. The rest of the
//! app sees our own types, so an API-version bump touches this module alone.

pub mod account;
pub mod billing;
pub mod catalog;
pub mod objects;

use secrecy::ExposeSecret;
use stripe::{Client, ClientBuilder, IdempotencyKey, RequestStrategy};

use crate::{
    catalog::StripeEnv,
    config::{Config, KeyMode, StripeBackend},
};

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("Stripe client configuration: {0}")]
    Config(String),
    #[error("Stripe call `{operation}` failed: {source}")]
    Stripe {
        operation: &'static str,
        #[source]
        source: stripe::StripeError,
    },
    /// Stripe did not answer in time (`STRIPE_TIMEOUT_SECS`, retries included).
    #[error("Stripe call `{operation}` timed out after {after:?}")]
    Timeout {
        operation: &'static str,
        after: std::time::Duration,
    },
}

impl GatewayError {
    /// Stripe says the customer does not exist (deleted in the dashboard, or
    /// made in another account or mode).
    pub fn is_missing_customer(&self) -> bool {
        match self {
            GatewayError::Stripe {
                source: stripe::StripeError::Stripe(err, status),
                ..
            } => {
                (*status == 400 || *status == 404)
                    && (err.param.as_deref() == Some("customer")
                        || err
                            .message
                            .as_deref()
                            .is_some_and(|m| m.contains("No such customer")))
            }
            _ => false,
        }
    }

    /// Stripe says a price we named is archived (the catalog changed while this
    /// server kept the old price ids).
    pub fn is_inactive_price(&self) -> bool {
        match self {
            GatewayError::Stripe {
                source: stripe::StripeError::Stripe(err, status),
                ..
            } => {
                *status == 400
                    && err.param.as_deref().is_some_and(|p| p.contains("price"))
                    && err
                        .message
                        .as_deref()
                        .is_some_and(|m| m.contains("inactive"))
            }
            _ => false,
        }
    }

    fn call(operation: &'static str) -> impl FnOnce(stripe::StripeError) -> Self {
        move |source| GatewayError::Stripe { operation, source }
    }
}

#[derive(Clone)]
pub struct StripeGateway {
    client: Client,
    /// Longest any one call may take, its retries included: a hung connection
    /// to Stripe must end, since the caller may be a page or a webhook waiting.
    timeout: std::time::Duration,
    /// Test or live objects: selects the catalog's pinned price ids.
    env: StripeEnv,
}

impl StripeGateway {
    /// A client for real Stripe (with the configured key) or for the emulator.
    pub fn from_config(config: &Config) -> Result<Self, GatewayError> {
        let (secret, api_base) = match &config.stripe.backend {
            StripeBackend::Emulator { api_base } => (
                crate::config::EMULATOR_SECRET_KEY.to_owned(),
                Some(api_base.clone()),
            ),
            StripeBackend::Stripe { api_base, .. } => (
                config
                    .stripe
                    .secret_key
                    .as_ref()
                    .map(|key| key.expose_secret().to_owned())
                    .ok_or_else(|| GatewayError::Config("STRIPE_SECRET_KEY is not set".into()))?,
                api_base.clone(),
            ),
        };
        // Stripe's guidance: identify the integration (shown in the dashboard's logs).
        let mut builder = ClientBuilder::new(secret).app_info(
            config.project_name.clone(),
            Some(env!("CARGO_PKG_VERSION").to_owned()),
            Some(config.app_url.to_string()),
        );
        if let Some(base) = api_base {
            builder = builder.url(base.to_string());
        }
        let client = builder
            .build()
            .map_err(|err| GatewayError::Config(err.to_string()))?;
        let env = match config.stripe.backend {
            StripeBackend::Stripe {
                mode: KeyMode::Live,
                ..
            } => StripeEnv::Live,
            _ => StripeEnv::Test,
        };
        Ok(Self {
            client,
            env,
            timeout: config.stripe_timeout,
        })
    }

    pub(crate) fn client(&self) -> &Client {
        &self.client
    }

    pub fn env(&self) -> StripeEnv {
        self.env
    }

    /// Runs a Stripe call, retrying what Stripe says may succeed later (429, 5xx,
    /// network errors) up to three attempts with backoff; a 409 for an
    /// idempotency key still in use by another request (a double click while
    /// the first is in flight) is retried until that request has answered or the
    /// call's deadline comes, since the retry then gets the first one's answer.
    /// Each attempt rebuilds the same request — creates carry the same
    /// idempotency key — so a retry can never create a second object.
    pub(crate) async fn retrying<T, F, Fut>(
        &self,
        operation: &'static str,
        mut attempt: F,
    ) -> Result<T, GatewayError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, stripe::StripeError>>,
    {
        let started = std::time::Instant::now();
        let result = self.retrying_inner(operation, &mut attempt).await;
        record_call(operation, started, &result);
        result
    }

    async fn retrying_inner<T, F, Fut>(
        &self,
        operation: &'static str,
        attempt: &mut F,
    ) -> Result<T, GatewayError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, stripe::StripeError>>,
    {
        let deadline = tokio::time::Instant::now() + self.timeout;
        let timed_out = GatewayError::Timeout {
            operation,
            after: self.timeout,
        };
        let mut failures = 0;
        let mut retry = 0;
        loop {
            let outcome = match tokio::time::timeout_at(deadline, attempt()).await {
                Err(_) => {
                    tracing::warn!(operation, "Stripe call timed out");
                    return Err(timed_out);
                }
                Ok(outcome) => outcome,
            };
            let again = match &outcome {
                Err(err) if is_key_in_use(err) => true,
                Err(err) if retryable(err) => {
                    failures += 1;
                    failures < MAX_ATTEMPTS
                }
                _ => false,
            };
            if !again {
                return outcome.map_err(GatewayError::call(operation));
            }
            let delay = retry_delay(retry);
            retry += 1;
            if let Err(err) = &outcome {
                tracing::warn!(operation, error = %err, ?delay, "Stripe call failed; retrying");
            }
            if tokio::time::Instant::now() + delay >= deadline {
                return Err(timed_out);
            }
            tokio::time::sleep(delay).await;
        }
    }
}

/// Counts one Stripe call (retries included) by its outcome, with its duration.
fn record_call<T>(
    operation: &'static str,
    started: std::time::Instant,
    result: &Result<T, GatewayError>,
) {
    let outcome = match result {
        Ok(_) => "ok",
        Err(GatewayError::Timeout { .. }) => "timeout",
        Err(_) => "error",
    };
    crate::prometheus::stripe_call(operation, outcome, started.elapsed().as_secs_f64());
}

/// The wait before retry number `retry` (0, 1, …): 50 ms, then four times
/// longer each time, at most a second.
fn retry_delay(retry: u32) -> std::time::Duration {
    std::time::Duration::from_millis(50u64.saturating_mul(4u64.saturating_pow(retry)).min(1000))
}

/// Stripe's 409 for a request whose idempotency key another one is using.
fn is_key_in_use(err: &stripe::StripeError) -> bool {
    matches!(err, stripe::StripeError::Stripe(_, 409))
}

/// A single Stripe call bounded by the gateway's timeout (calls that are not
/// retried: catalog and account administration).
pub(crate) trait Bounded<T>:
    std::future::Future<Output = Result<T, stripe::StripeError>> + Sized
{
    async fn bounded(
        self,
        gateway: &StripeGateway,
        operation: &'static str,
    ) -> Result<T, GatewayError> {
        let started = std::time::Instant::now();
        let result = match tokio::time::timeout(gateway.timeout, self).await {
            Ok(result) => result.map_err(GatewayError::call(operation)),
            Err(_) => Err(GatewayError::Timeout {
                operation,
                after: gateway.timeout,
            }),
        };
        record_call(operation, started, &result);
        result
    }
}

impl<T, F> Bounded<T> for F where F: std::future::Future<Output = Result<T, stripe::StripeError>> {}

const MAX_ATTEMPTS: u32 = 3;

fn retryable(err: &stripe::StripeError) -> bool {
    match err {
        stripe::StripeError::Stripe(_, status) => *status == 429 || *status >= 500,
        stripe::StripeError::ClientError(_) | stripe::StripeError::Timeout => true,
        _ => false,
    }
}

/// The Stripe API version async-stripe pins and parses (webhook endpoints must
/// send events in this version).
pub fn api_version() -> String {
    stripe_shared::version::VERSION.as_str().to_owned()
}

/// An idempotency key for a write whose effect is fully described by `parts`, so a
/// retried or re-run command cannot create the same thing twice.
pub(crate) fn idempotent(parts: &[&str]) -> RequestStrategy {
    RequestStrategy::Idempotent(
        IdempotencyKey::new(idempotency_key(parts)).expect("non-empty key under 255 bytes"),
    )
}

/// Stripe takes keys up to 255 characters. A longer one is replaced by its
/// SHA-256 (distinct effects keep distinct keys; cutting bytes off would merge
/// keys that differ only at the end, and could split a UTF-8 character).
fn idempotency_key(parts: &[&str]) -> String {
    use sha2::Digest;
    let key = parts.join(":");
    if key.len() <= 200 && !key.is_empty() {
        key
    } else {
        format!(
            "sha256:{}",
            hex::encode(sha2::Sha256::digest(key.as_bytes()))
        )
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn long_idempotency_keys_are_hashed_not_cut() {
        assert_eq!(super::idempotency_key(&["customer", "7"]), "customer:7");
        let long_a = "é".repeat(150);
        let long_b = format!("{}x", "é".repeat(150));
        let a = super::idempotency_key(&["catalog-product", &long_a]);
        let b = super::idempotency_key(&["catalog-product", &long_b]);
        assert!(a.starts_with("sha256:") && a.len() == 7 + 64, "{a}");
        assert_ne!(a, b);
        assert!(super::idempotency_key(&[""]).starts_with("sha256:"));
    }

    #[test]
    fn retries_wait_longer_each_time_up_to_a_second() {
        let waits: Vec<u64> = (0..6)
            .map(|n| super::retry_delay(n).as_millis() as u64)
            .collect();
        assert_eq!(waits, [50, 200, 800, 1000, 1000, 1000]);
    }
}
