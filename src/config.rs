//! Typed configuration from environment variables (and `.env` in development).
//!
//! Loaded once at start-up and validated there, so a bad deployment stops with one
//! line naming the variable instead of failing on the first customer's request.
//! Secrets are `SecretString`s: `Debug` prints `[REDACTED]`, never the value.

use std::{net::SocketAddr, path::PathBuf};

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use url::Url;

/// Where the app runs. Production turns on the strict checks (live keys, HSTS,
/// secure cookies, JSON logs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AppEnv {
    Development,
    Production,
}

/// Test or live, read off a Stripe key's prefix (`sk_test_`, `pk_live_`, `rk_test_`...).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyMode {
    Test,
    Live,
}

/// Where the app's Stripe calls go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StripeBackend {
    /// No secret key in development: the loopback emulator at this base URL.
    Emulator { api_base: Url },
    /// A real Stripe account (or, for tests, any server at `api_base` speaking its API).
    Stripe {
        mode: KeyMode,
        api_base: Option<Url>,
    },
}

#[derive(Clone, Debug)]
pub struct StripeConfig {
    pub backend: StripeBackend,
    pub secret_key: Option<SecretString>,
    pub publishable_key: Option<String>,
    /// Every secret currently valid for signatures; several during a rotation.
    pub webhook_secrets: Vec<SecretString>,
}

impl StripeConfig {
    /// A short human label for logs and the UI badge; never contains a key.
    pub fn describe(&self) -> String {
        match &self.backend {
            StripeBackend::Emulator { api_base } => format!("emulator at {api_base}"),
            StripeBackend::Stripe {
                mode: KeyMode::Test,
                ..
            } => "Stripe (test mode)".into(),
            StripeBackend::Stripe {
                mode: KeyMode::Live,
                ..
            } => "Stripe (live mode)".into(),
        }
    }

    pub fn is_emulated(&self) -> bool {
        matches!(self.backend, StripeBackend::Emulator { .. })
    }
}

/// The paths Stripe sends users and events back to, joined onto `APP_URL` where needed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Paths {
    pub checkout_success: String,
    pub checkout_cancel: String,
    pub stripe_webhook: String,
    pub customer_portal_return: String,
}

#[derive(Clone, Debug)]
pub struct Config {
    pub app_env: AppEnv,
    pub app_url: Url,
    pub project_name: String,
    pub database_url: String,
    pub listen_addr: SocketAddr,
    pub site_root: PathBuf,
    /// The plan catalog file (`plans.toml`).
    pub catalog_path: PathBuf,
    pub request_body_limit: usize,
    pub paths: Paths,
    pub stripe: StripeConfig,
    /// Days a past_due subscription keeps access while Stripe retries the card.
    pub past_due_grace_days: u32,
    /// Server-side GA4 purchase events, when configured.
    pub ga4: Option<Ga4Config>,
    /// Reverse proxies whose `X-Forwarded-For` names the client (abuse limits).
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Longest a Stripe call may take, retries included (`STRIPE_TIMEOUT_SECS`).
    pub stripe_timeout: std::time::Duration,
    /// How long shutdown waits for in-flight requests (`SHUTDOWN_GRACE_SECS`).
    pub shutdown_grace: std::time::Duration,
    /// Sign-ups one client may make per 10 minutes (`SIGN_UP_LIMIT_PER_IP`).
    pub sign_ups_per_ip: u32,
    /// Open connections at most (`MAX_CONNECTIONS`); more wait to be accepted.
    pub max_connections: usize,
    /// How long a kept-alive connection may wait for its next request
    /// (`IDLE_TIMEOUT_SECS`).
    pub idle_timeout: std::time::Duration,
    pub mail: MailConfig,
    /// What happens when a user ends up paying for two live subscriptions.
    pub duplicate_subscriptions: DuplicatePolicy,
    /// The bearer token `/metrics` asks for; without one it is served in
    /// development only.
    pub metrics_token: Option<SecretString>,
}

/// `DUPLICATE_SUBSCRIPTIONS`: two tabs that paid at once leave two live
/// subscriptions; they are always reported (billing page, `doctor`,
/// `reconcile`), and with `cancel_newer` the newer is also cancelled and its
/// payments refunded as soon as the app hears of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DuplicatePolicy {
    Report,
    CancelNewer,
}

/// Outgoing mail (`mail`): where it goes and whom it is from.
#[derive(Clone, Debug)]
pub struct MailConfig {
    /// `smtps://user:pass@host` (TLS from the start), `smtp://host:port?tls=required`
    /// (STARTTLS), `smtp://host:port` (plain, for a relay on localhost); `None`
    /// in development: mail is kept for `/dev/mail`.
    pub smtp_url: Option<SecretString>,
    /// The `From` of every message: `Name <address>` or an address.
    pub from: String,
    /// Checkout only for accounts whose email is verified (the Stripe
    /// customer's email is the account's identity).
    pub require_verified_email: bool,
    /// How often the mail worker looks for due mail when nothing woke it.
    pub poll_interval: std::time::Duration,
    /// The wait after a failed attempt, doubled after each (at most an hour).
    pub retry_base: std::time::Duration,
}

impl MailConfig {
    /// Whether mail is kept in the database for `/dev/mail` instead of sent.
    pub fn is_kept(&self) -> bool {
        self.smtp_url.is_none()
    }
}

/// GA4 Measurement Protocol settings (`GA4_MEASUREMENT_ID`, `GA4_API_SECRET`).
#[derive(Clone, Debug)]
pub struct Ga4Config {
    pub measurement_id: String,
    pub api_secret: SecretString,
    /// `GA4_ENDPOINT`: Google's collect URL, or a loopback receiver in tests.
    pub endpoint: String,
}

impl Config {
    /// `path` (which may carry a query) on the app's public URL.
    pub fn absolute_url(&self, path: &str) -> String {
        format!("{}{path}", self.app_url.as_str().trim_end_matches('/'))
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("{var} is required when APP_ENV=production")]
    MissingInProduction { var: &'static str },
    #[error("{var} is a test-mode key; APP_ENV=production needs a live key")]
    TestKeyInProduction { var: &'static str },
    #[error("{var} is invalid: {reason}")]
    Invalid { var: &'static str, reason: String },
}

impl ConfigError {
    fn invalid(var: &'static str, reason: impl Into<String>) -> Self {
        Self::Invalid {
            var,
            reason: reason.into(),
        }
    }
}

/// Every default of the configuration, in one place. `.env.example` states the
/// same values (checked by `env_example_names_every_variable_with_its_default`).
pub mod defaults {
    pub const APP_URL: &str = "http://localhost:3000";
    pub const PROJECT_NAME: &str = "Billing Starter";
    pub const DATABASE_URL: &str = "sqlite://data/app.db?mode=rwc";
    pub const LEPTOS_SITE_ADDR: &str = "127.0.0.1:3000";
    pub const LEPTOS_SITE_ROOT: &str = "target/site";
    pub const CATALOG_PATH: &str = "plans.toml";
    pub const REQUEST_BODY_LIMIT: usize = 1024 * 1024;
    pub const CHECKOUT_SUCCESS_PATH: &str = "/dashboard/billing?checkout_status=success";
    pub const CHECKOUT_CANCEL_PATH: &str = "/dashboard/billing?checkout_status=canceled";
    pub const STRIPE_WEBHOOK_PATH: &str = "/api/stripe/webhooks";
    pub const CUSTOMER_PORTAL_RETURN_PATH: &str = "/dashboard/billing";
    /// Without a secret key in development: the emulator here.
    pub const STRIPE_API_BASE_EMULATOR: &str = "http://127.0.0.1:12111/";
    pub const STRIPE_EMULATOR_SNAPSHOT: &str = "data/stripe-emulator.json";
    pub const PAST_DUE_GRACE_DAYS: u32 = 7;
    pub const GA4_ENDPOINT: &str = "https://www.google-analytics.com/mp/collect";
    /// Generous enough for a team signing up from one office (or a test suite
    /// from one machine); a flood is still cut to this many per window, and the
    /// hashing queue sheds what arrives at once.
    pub const SIGN_UP_LIMIT_PER_IP: u32 = 40;
    pub const STRIPE_TIMEOUT_SECS: u64 = 10;
    pub const SHUTDOWN_GRACE_SECS: u64 = 30;
    pub const MAX_CONNECTIONS: usize = 1024;
    /// Longer than the idle pools of common clients (reqwest and Go: 90 s) and
    /// proxies (AWS ALB: 60 s), so they close an idle connection before we do
    /// and never send a request into one we are closing.
    pub const IDLE_TIMEOUT_SECS: u64 = 120;
    pub const MAIL_FROM: &str = "Billing Starter <no-reply@localhost>";
    pub const REQUIRE_VERIFIED_EMAIL: bool = true;
    pub const MAIL_POLL_MS: u64 = 1000;
    pub const MAIL_RETRY_BASE_MS: u64 = 30_000;
    pub const DUPLICATE_SUBSCRIPTIONS: &str = "report";
    pub const RUST_LOG: &str = "info,sqlx=warn,sea_orm=warn";
}

/// The secret key the app presents to the emulator (any `sk_test_` key works).
pub const EMULATOR_SECRET_KEY: &str = "sk_test_emulator";

/// Signing secret shared by the app and its in-process emulator when none is set.
pub const EMULATOR_WEBHOOK_SECRET: &str = "whsec_emulator_local";

/// The variables exactly as the environment spells them. Kept private and without
/// `Debug` because it holds secrets as plain strings until validation wraps them.
#[derive(Deserialize, Default)]
#[serde(default)]
struct RawEnv {
    app_env: Option<String>,
    app_url: Option<String>,
    project_name: Option<String>,
    database_url: Option<String>,
    leptos_site_addr: Option<String>,
    leptos_site_root: Option<String>,
    catalog_path: Option<String>,
    request_body_limit: Option<String>,
    checkout_success_path: Option<String>,
    checkout_cancel_path: Option<String>,
    stripe_webhook_path: Option<String>,
    customer_portal_return_path: Option<String>,
    stripe_publishable_key: Option<String>,
    stripe_secret_key: Option<String>,
    stripe_webhook_secret: Option<String>,
    stripe_api_base: Option<String>,
    past_due_grace_days: Option<String>,
    ga4_measurement_id: Option<String>,
    ga4_api_secret: Option<String>,
    ga4_endpoint: Option<String>,
    trusted_proxies: Option<String>,
    stripe_timeout_secs: Option<String>,
    shutdown_grace_secs: Option<String>,
    sign_up_limit_per_ip: Option<String>,
    max_connections: Option<String>,
    idle_timeout_secs: Option<String>,
    smtp_url: Option<String>,
    mail_from: Option<String>,
    require_verified_email: Option<String>,
    mail_poll_ms: Option<String>,
    mail_retry_base_ms: Option<String>,
    duplicate_subscriptions: Option<String>,
    metrics_token: Option<String>,
}

impl Config {
    /// Reads `.env` (development convenience; real environment variables win), then
    /// the process environment.
    ///
    /// With `APP_ENV=production` in the environment no `.env` file is read: a
    /// stray development file on a server must not change production settings.
    /// A `.env` that itself says `APP_ENV=production` is refused for the same
    /// reason: production settings come from the environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        let production = std::env::var("APP_ENV").is_ok_and(|v| v.trim() == "production");
        let mut vars: std::collections::HashMap<String, String> = std::collections::HashMap::new();
        if !production {
            if let Ok(file) = dotenvy::dotenv_iter() {
                for (name, value) in file.flatten() {
                    if name == "APP_ENV" && value.trim() == "production" {
                        return Err(ConfigError::invalid(
                            "APP_ENV",
                            "production is set in .env; set it in the environment instead (.env is not read in production)",
                        ));
                    }
                    vars.insert(name, value);
                }
            }
        }
        // Real environment variables win over the file.
        vars.extend(std::env::vars());
        Self::from_vars(vars)
    }

    /// Builds the configuration from `(NAME, value)` pairs; the pure core of
    /// [`Config::from_env`], used directly by tests.
    pub fn from_vars(
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        // An empty value (`STRIPE_SECRET_KEY=` copied from .env.example) means "unset".
        let vars = vars
            .into_iter()
            .filter(|(_, value)| !value.trim().is_empty());
        let raw: RawEnv = envy::from_iter(vars)
            .map_err(|err| ConfigError::invalid("environment", err.to_string()))?;
        raw.validate()
    }
}

impl RawEnv {
    fn validate(self) -> Result<Config, ConfigError> {
        let app_env = match self.app_env.as_deref().map(str::trim) {
            None | Some("development") => AppEnv::Development,
            Some("production") => AppEnv::Production,
            Some(other) => {
                return Err(ConfigError::invalid(
                    "APP_ENV",
                    format!("`{other}` is not one of development, production"),
                ))
            }
        };

        let app_url = parse_http_url(
            "APP_URL",
            self.app_url.as_deref().unwrap_or(defaults::APP_URL),
        )?;

        let paths = Paths {
            checkout_success: path_var(
                "CHECKOUT_SUCCESS_PATH",
                self.checkout_success_path,
                defaults::CHECKOUT_SUCCESS_PATH,
            )?,
            checkout_cancel: path_var(
                "CHECKOUT_CANCEL_PATH",
                self.checkout_cancel_path,
                defaults::CHECKOUT_CANCEL_PATH,
            )?,
            stripe_webhook: path_var(
                "STRIPE_WEBHOOK_PATH",
                self.stripe_webhook_path,
                defaults::STRIPE_WEBHOOK_PATH,
            )?,
            customer_portal_return: path_var(
                "CUSTOMER_PORTAL_RETURN_PATH",
                self.customer_portal_return_path,
                defaults::CUSTOMER_PORTAL_RETURN_PATH,
            )?,
        };

        let listen_addr = self
            .leptos_site_addr
            .as_deref()
            .unwrap_or(defaults::LEPTOS_SITE_ADDR)
            .parse()
            .map_err(|err| ConfigError::invalid("LEPTOS_SITE_ADDR", format!("{err}")))?;

        let request_body_limit = match self.request_body_limit {
            None => defaults::REQUEST_BODY_LIMIT,
            Some(value) => value
                .trim()
                .parse::<usize>()
                .ok()
                .filter(|limit| *limit > 0)
                .ok_or_else(|| {
                    ConfigError::invalid(
                        "REQUEST_BODY_LIMIT",
                        "expected a positive number of bytes",
                    )
                })?,
        };

        let past_due_grace_days = match self.past_due_grace_days {
            None => defaults::PAST_DUE_GRACE_DAYS,
            Some(value) => value
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|days| *days <= 60)
                .ok_or_else(|| {
                    ConfigError::invalid(
                        "PAST_DUE_GRACE_DAYS",
                        "expected a number of days, 0 to 60",
                    )
                })?,
        };

        let ga4 = match (self.ga4_measurement_id, self.ga4_api_secret) {
            (None, None) => None,
            (Some(measurement_id), Some(secret)) => Some(Ga4Config {
                measurement_id,
                api_secret: SecretString::from(secret),
                endpoint: self
                    .ga4_endpoint
                    .unwrap_or_else(|| defaults::GA4_ENDPOINT.to_owned()),
            }),
            (Some(_), None) => {
                return Err(ConfigError::invalid(
                    "GA4_API_SECRET",
                    "required when GA4_MEASUREMENT_ID is set",
                ))
            }
            (None, Some(_)) => {
                return Err(ConfigError::invalid(
                    "GA4_MEASUREMENT_ID",
                    "required when GA4_API_SECRET is set",
                ))
            }
        };

        let trusted_proxies = self
            .trusted_proxies
            .as_deref()
            .map(parse_proxies)
            .transpose()?
            .unwrap_or_default();
        let seconds = |var: &'static str, value: Option<String>, default: u64, max: u64| match value
        {
            None => Ok(std::time::Duration::from_secs(default)),
            Some(value) => value
                .trim()
                .parse::<u64>()
                .ok()
                .filter(|secs| (1..=max).contains(secs))
                .map(std::time::Duration::from_secs)
                .ok_or_else(|| ConfigError::invalid(var, format!("expected 1 to {max} seconds"))),
        };
        let stripe_timeout = seconds(
            "STRIPE_TIMEOUT_SECS",
            self.stripe_timeout_secs,
            defaults::STRIPE_TIMEOUT_SECS,
            120,
        )?;
        let shutdown_grace = seconds(
            "SHUTDOWN_GRACE_SECS",
            self.shutdown_grace_secs,
            defaults::SHUTDOWN_GRACE_SECS,
            600,
        )?;
        let idle_timeout = seconds(
            "IDLE_TIMEOUT_SECS",
            self.idle_timeout_secs,
            defaults::IDLE_TIMEOUT_SECS,
            3600,
        )?;

        let sign_ups_per_ip = match self.sign_up_limit_per_ip {
            None => defaults::SIGN_UP_LIMIT_PER_IP,
            Some(value) => value
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| {
                    ConfigError::invalid("SIGN_UP_LIMIT_PER_IP", "expected a positive number")
                })?,
        };

        let max_connections = match self.max_connections {
            None => defaults::MAX_CONNECTIONS,
            Some(value) => value
                .trim()
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=1_000_000).contains(n))
                .ok_or_else(|| {
                    ConfigError::invalid("MAX_CONNECTIONS", "expected a number from 1 to 1000000")
                })?,
        };

        let stripe = stripe_config(
            app_env,
            self.stripe_secret_key,
            self.stripe_publishable_key,
            self.stripe_webhook_secret,
            self.stripe_api_base,
        )?;

        let mail = mail_config(
            app_env,
            self.smtp_url,
            self.mail_from,
            self.require_verified_email,
            self.mail_poll_ms,
            self.mail_retry_base_ms,
        )?;

        let duplicate_subscriptions = match self
            .duplicate_subscriptions
            .as_deref()
            .map(str::trim)
            .unwrap_or(defaults::DUPLICATE_SUBSCRIPTIONS)
        {
            "report" => DuplicatePolicy::Report,
            "cancel_newer" => DuplicatePolicy::CancelNewer,
            other => {
                return Err(ConfigError::invalid(
                    "DUPLICATE_SUBSCRIPTIONS",
                    format!("`{other}` is not one of report, cancel_newer"),
                ))
            }
        };

        Ok(Config {
            app_env,
            app_url,
            project_name: self
                .project_name
                .unwrap_or_else(|| defaults::PROJECT_NAME.to_owned()),
            database_url: self
                .database_url
                .unwrap_or_else(|| defaults::DATABASE_URL.to_owned()),
            listen_addr,
            catalog_path: self
                .catalog_path
                .unwrap_or_else(|| defaults::CATALOG_PATH.to_owned())
                .into(),
            site_root: self
                .leptos_site_root
                .unwrap_or_else(|| defaults::LEPTOS_SITE_ROOT.to_owned())
                .into(),
            request_body_limit,
            paths,
            stripe,
            past_due_grace_days,
            ga4,
            trusted_proxies,
            stripe_timeout,
            shutdown_grace,
            sign_ups_per_ip,
            max_connections,
            idle_timeout,
            mail,
            duplicate_subscriptions,
            metrics_token: self.metrics_token.map(SecretString::from),
        })
    }
}

fn stripe_config(
    app_env: AppEnv,
    secret_key: Option<String>,
    publishable_key: Option<String>,
    webhook_secrets: Option<String>,
    api_base: Option<String>,
) -> Result<StripeConfig, ConfigError> {
    let production = app_env == AppEnv::Production;
    let api_base = api_base
        .map(|base| parse_http_url("STRIPE_API_BASE", &base))
        .transpose()?;

    let webhook_secrets: Vec<SecretString> = webhook_secrets
        .as_deref()
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|secret| !secret.is_empty())
        .map(|secret| {
            if secret.starts_with("whsec_") {
                Ok(SecretString::from(secret.to_owned()))
            } else {
                Err(ConfigError::invalid(
                    "STRIPE_WEBHOOK_SECRET",
                    "each comma-separated secret must start with whsec_",
                ))
            }
        })
        .collect::<Result<_, _>>()?;

    let secret_key = secret_key.map(|key| key.trim().to_owned());
    let publishable_key = publishable_key.map(|key| key.trim().to_owned());

    let Some(secret) = secret_key else {
        if production {
            return Err(ConfigError::MissingInProduction {
                var: "STRIPE_SECRET_KEY",
            });
        }
        return Ok(StripeConfig {
            backend: StripeBackend::Emulator {
                api_base: match api_base {
                    Some(base) => base,
                    None => {
                        Url::parse(defaults::STRIPE_API_BASE_EMULATOR).expect("constant URL parses")
                    }
                },
            },
            secret_key: None,
            publishable_key,
            webhook_secrets: if webhook_secrets.is_empty() {
                vec![SecretString::from(EMULATOR_WEBHOOK_SECRET)]
            } else {
                webhook_secrets
            },
        });
    };

    let mode = key_mode(&secret, &["sk_", "rk_"]).ok_or_else(|| {
        ConfigError::invalid(
            "STRIPE_SECRET_KEY",
            "expected a secret (sk_test_/sk_live_) or restricted (rk_test_/rk_live_) key",
        )
    })?;
    if let Some(key) = &publishable_key {
        let publishable_mode = key_mode(key, &["pk_"]).ok_or_else(|| {
            ConfigError::invalid("STRIPE_PUBLISHABLE_KEY", "expected pk_test_ or pk_live_")
        })?;
        if publishable_mode != mode {
            return Err(ConfigError::invalid(
                "STRIPE_PUBLISHABLE_KEY",
                "its mode (test/live) differs from STRIPE_SECRET_KEY's",
            ));
        }
    }

    if production {
        if mode == KeyMode::Test {
            return Err(ConfigError::TestKeyInProduction {
                var: "STRIPE_SECRET_KEY",
            });
        }
        if publishable_key.is_none() {
            return Err(ConfigError::MissingInProduction {
                var: "STRIPE_PUBLISHABLE_KEY",
            });
        }
        if webhook_secrets.is_empty() {
            return Err(ConfigError::MissingInProduction {
                var: "STRIPE_WEBHOOK_SECRET",
            });
        }
        if webhook_secrets
            .iter()
            .any(|s| s.expose_secret() == EMULATOR_WEBHOOK_SECRET)
        {
            return Err(ConfigError::invalid(
                "STRIPE_WEBHOOK_SECRET",
                "is the emulator's published secret; use the endpoint's signing secret",
            ));
        }
    }
    if mode == KeyMode::Live {
        // A live key goes to Stripe only: never over plain http, never to a test
        // double or another host that would then hold it.
        if let Some(base) = &api_base {
            let stripe = base.scheme() == "https" && base.host_str() == Some("api.stripe.com");
            if !stripe {
                return Err(ConfigError::invalid(
                    "STRIPE_API_BASE",
                    "a live key is only sent to https://api.stripe.com/; unset STRIPE_API_BASE",
                ));
            }
        }
    }

    Ok(StripeConfig {
        backend: StripeBackend::Stripe { mode, api_base },
        secret_key: Some(SecretString::from(secret)),
        publishable_key,
        webhook_secrets,
    })
}

/// Reads test/live from a key's prefix, given the key kinds allowed in this place.
pub fn key_mode(key: &str, kinds: &[&str]) -> Option<KeyMode> {
    kinds.iter().find_map(|kind| {
        let rest = key.strip_prefix(kind)?;
        if rest.starts_with("test_") {
            Some(KeyMode::Test)
        } else if rest.starts_with("live_") {
            Some(KeyMode::Live)
        } else {
            None
        }
    })
}

fn mail_config(
    app_env: AppEnv,
    smtp_url: Option<String>,
    from: Option<String>,
    require_verified_email: Option<String>,
    poll_ms: Option<String>,
    retry_base_ms: Option<String>,
) -> Result<MailConfig, ConfigError> {
    let production = app_env == AppEnv::Production;
    let smtp_url = match smtp_url {
        // Production never keeps mail in a table nobody reads.
        None if production => return Err(ConfigError::MissingInProduction { var: "SMTP_URL" }),
        None => None,
        Some(value) => {
            let url = Url::parse(value.trim())
                .map_err(|err| ConfigError::invalid("SMTP_URL", err.to_string()))?;
            if !matches!(url.scheme(), "smtp" | "smtps") || url.host_str().is_none() {
                return Err(ConfigError::invalid(
                    "SMTP_URL",
                    "expected smtp://host:port or smtps://user:password@host",
                ));
            }
            Some(SecretString::from(value.trim().to_owned()))
        }
    };
    let from = match from {
        None if production => return Err(ConfigError::MissingInProduction { var: "MAIL_FROM" }),
        None => defaults::MAIL_FROM.to_owned(),
        Some(from) => from.trim().to_owned(),
    };
    if from.parse::<lettre::message::Mailbox>().is_err() {
        return Err(ConfigError::invalid(
            "MAIL_FROM",
            "expected `Name <address@example.com>` or an address",
        ));
    }
    let require_verified_email = match require_verified_email.as_deref().map(str::trim) {
        None => defaults::REQUIRE_VERIFIED_EMAIL,
        Some("true" | "1") => true,
        Some("false" | "0") => false,
        Some(_) => {
            return Err(ConfigError::invalid(
                "REQUIRE_VERIFIED_EMAIL",
                "expected true or false",
            ))
        }
    };
    let millis = |var: &'static str, value: Option<String>, default: u64, max: u64| match value {
        None => Ok(std::time::Duration::from_millis(default)),
        Some(value) => value
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|ms| (10..=max).contains(ms))
            .map(std::time::Duration::from_millis)
            .ok_or_else(|| ConfigError::invalid(var, format!("expected 10 to {max} milliseconds"))),
    };
    Ok(MailConfig {
        smtp_url,
        from,
        require_verified_email,
        poll_interval: millis("MAIL_POLL_MS", poll_ms, defaults::MAIL_POLL_MS, 60_000)?,
        retry_base: millis(
            "MAIL_RETRY_BASE_MS",
            retry_base_ms,
            defaults::MAIL_RETRY_BASE_MS,
            3_600_000,
        )?,
    })
}

fn parse_http_url(var: &'static str, value: &str) -> Result<Url, ConfigError> {
    let url = Url::parse(value.trim()).map_err(|err| ConfigError::invalid(var, err.to_string()))?;
    match url.scheme() {
        "http" | "https" => Ok(url),
        other => Err(ConfigError::invalid(
            var,
            format!("scheme `{other}` is not http or https"),
        )),
    }
}

/// `TRUSTED_PROXIES`: comma-separated addresses or CIDR ranges.
fn parse_proxies(value: &str) -> Result<Vec<ipnet::IpNet>, ConfigError> {
    value
        .split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .map(|entry| {
            entry
                .parse::<ipnet::IpNet>()
                .or_else(|_| entry.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| {
                    ConfigError::invalid(
                        "TRUSTED_PROXIES",
                        format!("`{entry}` is not an IP address or CIDR range"),
                    )
                })
        })
        .collect()
}

fn path_var(
    var: &'static str,
    value: Option<String>,
    default: &str,
) -> Result<String, ConfigError> {
    let value = value.unwrap_or_else(|| default.to_owned());
    if value.starts_with('/') && !value.starts_with("//") {
        Ok(value)
    } else {
        Err(ConfigError::invalid(
            var,
            "must be a path starting with a single /",
        ))
    }
}

/// Exposes a secret for the one place that must send it (the Stripe client).
pub fn expose(secret: &SecretString) -> &str {
    secret.expose_secret()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The variables `from_vars` reads: `RawEnv`'s fields, as serde asks for
    /// them (a probe deserializer records the field list and stops).
    fn raw_env_variables() -> Vec<String> {
        use serde::de::{value::Error, Error as _, Visitor};
        struct Probe<'a>(&'a mut Vec<&'static str>);
        impl<'de> serde::Deserializer<'de> for Probe<'_> {
            type Error = Error;
            fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Error> {
                Err(Error::custom("only structs are probed"))
            }
            fn deserialize_struct<V: Visitor<'de>>(
                self,
                _: &'static str,
                fields: &'static [&'static str],
                _: V,
            ) -> Result<V::Value, Error> {
                self.0.extend_from_slice(fields);
                Err(Error::custom("probed"))
            }
            serde::forward_to_deserialize_any! {
                bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
                byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map
                enum identifier ignored_any
            }
        }
        let mut fields = Vec::new();
        let _ = RawEnv::deserialize(Probe(&mut fields));
        fields.iter().map(|f| f.to_ascii_uppercase()).collect()
    }

    /// Variables read straight from the process environment anywhere in `src/`.
    fn variables_read_elsewhere() -> Vec<String> {
        fn walk(dir: &std::path::Path, found: &mut Vec<String>) {
            for entry in std::fs::read_dir(dir).unwrap().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    walk(&path, found);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    let text = std::fs::read_to_string(&path).unwrap();
                    for call in ["env::var(\"", "env::var_os(\""] {
                        for (at, _) in text.match_indices(call) {
                            let rest = &text[at + call.len()..];
                            found.push(rest[..rest.find('"').unwrap()].to_owned());
                        }
                    }
                }
            }
        }
        let mut found = Vec::new();
        walk(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
            &mut found,
        );
        // tracing-subscriber reads the log filter itself.
        found.push("RUST_LOG".to_owned());
        found
    }

    #[test]
    fn env_example_names_every_variable_with_its_default() {
        let example =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/.env.example")).unwrap();
        // `NAME=value` lines, commented out or not.
        let stated: std::collections::HashMap<&str, &str> = example
            .lines()
            .filter_map(|line| {
                let (name, value) = line.trim_start_matches('#').trim().split_once('=')?;
                let is_name = !name.is_empty()
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
                is_name.then_some((name, value))
            })
            .collect();
        let read = [raw_env_variables(), variables_read_elsewhere()].concat();
        assert!(read.len() > 20, "the probe found the variables: {read:?}");
        for name in &read {
            assert!(
                stated.contains_key(name.as_str()),
                "{name} is read but not in .env.example"
            );
        }
        let body_limit = defaults::REQUEST_BODY_LIMIT.to_string();
        let grace = defaults::PAST_DUE_GRACE_DAYS.to_string();
        let sign_ups = defaults::SIGN_UP_LIMIT_PER_IP.to_string();
        let timeout = defaults::STRIPE_TIMEOUT_SECS.to_string();
        let shutdown = defaults::SHUTDOWN_GRACE_SECS.to_string();
        let connections = defaults::MAX_CONNECTIONS.to_string();
        let idle = defaults::IDLE_TIMEOUT_SECS.to_string();
        let poll = defaults::MAIL_POLL_MS.to_string();
        let retry = defaults::MAIL_RETRY_BASE_MS.to_string();
        let verified = defaults::REQUIRE_VERIFIED_EMAIL.to_string();
        for (name, default) in [
            ("APP_ENV", "development"),
            ("APP_URL", defaults::APP_URL),
            ("PROJECT_NAME", defaults::PROJECT_NAME),
            ("DATABASE_URL", defaults::DATABASE_URL),
            ("LEPTOS_SITE_ADDR", defaults::LEPTOS_SITE_ADDR),
            ("LEPTOS_SITE_ROOT", defaults::LEPTOS_SITE_ROOT),
            ("CATALOG_PATH", defaults::CATALOG_PATH),
            ("REQUEST_BODY_LIMIT", body_limit.as_str()),
            ("CHECKOUT_SUCCESS_PATH", defaults::CHECKOUT_SUCCESS_PATH),
            ("CHECKOUT_CANCEL_PATH", defaults::CHECKOUT_CANCEL_PATH),
            ("STRIPE_WEBHOOK_PATH", defaults::STRIPE_WEBHOOK_PATH),
            (
                "CUSTOMER_PORTAL_RETURN_PATH",
                defaults::CUSTOMER_PORTAL_RETURN_PATH,
            ),
            (
                "STRIPE_EMULATOR_SNAPSHOT",
                defaults::STRIPE_EMULATOR_SNAPSHOT,
            ),
            ("PAST_DUE_GRACE_DAYS", grace.as_str()),
            ("GA4_ENDPOINT", defaults::GA4_ENDPOINT),
            ("SIGN_UP_LIMIT_PER_IP", sign_ups.as_str()),
            ("STRIPE_TIMEOUT_SECS", timeout.as_str()),
            ("SHUTDOWN_GRACE_SECS", shutdown.as_str()),
            ("MAX_CONNECTIONS", connections.as_str()),
            ("IDLE_TIMEOUT_SECS", idle.as_str()),
            ("RUST_LOG", defaults::RUST_LOG),
            ("MAIL_FROM", defaults::MAIL_FROM),
            ("REQUIRE_VERIFIED_EMAIL", verified.as_str()),
            ("MAIL_POLL_MS", poll.as_str()),
            ("MAIL_RETRY_BASE_MS", retry.as_str()),
            ("DUPLICATE_SUBSCRIPTIONS", defaults::DUPLICATE_SUBSCRIPTIONS),
        ] {
            assert_eq!(
                stated.get(name).copied(),
                Some(default),
                "{name} in .env.example is not the default"
            );
        }
    }

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn live_production() -> Vec<(&'static str, &'static str)> {
        vec![
            ("APP_ENV", "production"),
            ("APP_URL", "https://example.com"),
            ("STRIPE_SECRET_KEY", "sk_live_abc"),
            ("STRIPE_PUBLISHABLE_KEY", "pk_live_abc"),
            ("STRIPE_WEBHOOK_SECRET", "whsec_one"),
            ("SMTP_URL", "smtps://mailer:secret@smtp.example.com"),
            ("MAIL_FROM", "Example <billing@example.com>"),
        ]
    }

    #[test]
    fn production_refuses_unsafe_set_ups() {
        let with = |extra: &[(&'static str, &'static str)]| {
            let mut all = live_production();
            all.retain(|(k, _)| !extra.iter().any(|(e, _)| e == k));
            all.extend_from_slice(extra);
            Config::from_vars(vars(&all))
        };
        assert!(with(&[]).is_ok());
        for unsafe_base in [
            "http://api.stripe.com/",
            "https://stripe-proxy.example.com/",
            "http://127.0.0.1:12111/",
        ] {
            let err = with(&[("STRIPE_API_BASE", unsafe_base)]).unwrap_err();
            assert!(
                err.to_string().starts_with("STRIPE_API_BASE"),
                "{unsafe_base}: {err}"
            );
        }
        assert!(with(&[("STRIPE_API_BASE", "https://api.stripe.com/")]).is_ok());
        let err = with(&[("STRIPE_WEBHOOK_SECRET", "whsec_new,whsec_emulator_local")]).unwrap_err();
        assert!(err.to_string().contains("emulator"), "{err}");
        // A live key is never sent elsewhere in development either.
        let err = Config::from_vars(vars(&[
            ("STRIPE_SECRET_KEY", "sk_live_abc"),
            ("STRIPE_API_BASE", "http://127.0.0.1:12111/"),
        ]))
        .unwrap_err();
        assert!(err.to_string().starts_with("STRIPE_API_BASE"), "{err}");
    }

    #[test]
    fn limits_and_timeouts_are_read_and_checked() {
        let config = Config::from_vars(vars(&[])).unwrap();
        assert_eq!(config.stripe_timeout, std::time::Duration::from_secs(10));
        assert_eq!(config.shutdown_grace, std::time::Duration::from_secs(30));
        assert_eq!(config.idle_timeout, std::time::Duration::from_secs(120));
        assert!(config.trusted_proxies.is_empty());
        let config = Config::from_vars(vars(&[
            ("TRUSTED_PROXIES", "10.0.0.0/8, 192.0.2.1,::1"),
            ("STRIPE_TIMEOUT_SECS", "3"),
            ("MAX_CONNECTIONS", "64"),
            ("IDLE_TIMEOUT_SECS", "5"),
        ]))
        .unwrap();
        assert_eq!(config.trusted_proxies.len(), 3);
        assert_eq!(config.stripe_timeout, std::time::Duration::from_secs(3));
        assert_eq!(config.max_connections, 64);
        assert_eq!(config.idle_timeout, std::time::Duration::from_secs(5));
        for (var, value) in [
            ("TRUSTED_PROXIES", "10.0.0.0/33"),
            ("TRUSTED_PROXIES", "proxy.internal"),
            ("STRIPE_TIMEOUT_SECS", "0"),
            ("SHUTDOWN_GRACE_SECS", "x"),
            ("MAX_CONNECTIONS", "0"),
            ("IDLE_TIMEOUT_SECS", "0"),
            ("SIGN_UP_LIMIT_PER_IP", "-1"),
        ] {
            let err = Config::from_vars(vars(&[(var, value)])).unwrap_err();
            assert!(err.to_string().starts_with(var), "{var}={value}: {err}");
        }
    }

    #[test]
    fn defaults_match_the_guide() {
        let config = Config::from_vars(vars(&[])).unwrap();
        assert_eq!(config.app_env, AppEnv::Development);
        assert_eq!(config.app_url.as_str(), "http://localhost:3000/");
        assert_eq!(config.database_url, defaults::DATABASE_URL);
        assert_eq!(
            config.paths.checkout_success,
            "/dashboard/billing?checkout_status=success"
        );
        assert_eq!(
            config.paths.checkout_cancel,
            "/dashboard/billing?checkout_status=canceled"
        );
        assert_eq!(config.paths.stripe_webhook, "/api/stripe/webhooks");
        assert_eq!(config.paths.customer_portal_return, "/dashboard/billing");
        assert_eq!(config.listen_addr, "127.0.0.1:3000".parse().unwrap());
        assert_eq!(config.request_body_limit, defaults::REQUEST_BODY_LIMIT);
    }

    #[test]
    fn no_keys_in_development_means_the_emulator() {
        let config = Config::from_vars(vars(&[])).unwrap();
        assert!(config.stripe.is_emulated());
        assert_eq!(
            config.stripe.backend,
            StripeBackend::Emulator {
                api_base: Url::parse(defaults::STRIPE_API_BASE_EMULATOR).unwrap()
            }
        );
        // Empty values copied from .env.example count as unset.
        let config = Config::from_vars(vars(&[
            ("STRIPE_SECRET_KEY", ""),
            ("STRIPE_API_BASE", "http://127.0.0.1:9999"),
        ]))
        .unwrap();
        assert_eq!(
            config.stripe.backend,
            StripeBackend::Emulator {
                api_base: Url::parse("http://127.0.0.1:9999/").unwrap()
            }
        );
    }

    #[test]
    fn webhook_secrets_are_a_comma_separated_list_for_rotation() {
        let config =
            Config::from_vars(vars(&[("STRIPE_WEBHOOK_SECRET", "whsec_old, whsec_new,")])).unwrap();
        let secrets: Vec<&str> = config.stripe.webhook_secrets.iter().map(expose).collect();
        assert_eq!(secrets, ["whsec_old", "whsec_new"]);

        let err =
            Config::from_vars(vars(&[("STRIPE_WEBHOOK_SECRET", "whsec_ok,oops")])).unwrap_err();
        assert!(matches!(
            err,
            ConfigError::Invalid {
                var: "STRIPE_WEBHOOK_SECRET",
                ..
            }
        ));
    }

    #[test]
    fn production_with_live_keys_starts() {
        let config = Config::from_vars(vars(&live_production())).unwrap();
        assert_eq!(config.app_env, AppEnv::Production);
        assert_eq!(
            config.stripe.backend,
            StripeBackend::Stripe {
                mode: KeyMode::Live,
                api_base: None
            }
        );
    }

    #[test]
    fn production_names_the_missing_or_test_mode_variable() {
        let cases: [(&str, Option<&str>, ConfigError); 7] = [
            (
                "SMTP_URL",
                None,
                ConfigError::MissingInProduction { var: "SMTP_URL" },
            ),
            (
                "MAIL_FROM",
                None,
                ConfigError::MissingInProduction { var: "MAIL_FROM" },
            ),
            (
                "SMTP_URL",
                Some("http://smtp.example.com"),
                ConfigError::Invalid {
                    var: "SMTP_URL",
                    reason: "expected smtp://host:port or smtps://user:password@host".into(),
                },
            ),
            (
                "STRIPE_SECRET_KEY",
                None,
                ConfigError::MissingInProduction {
                    var: "STRIPE_SECRET_KEY",
                },
            ),
            (
                "STRIPE_SECRET_KEY",
                Some("sk_test_abc"),
                ConfigError::Invalid {
                    var: "STRIPE_PUBLISHABLE_KEY",
                    reason: "its mode (test/live) differs from STRIPE_SECRET_KEY's".into(),
                },
            ),
            (
                "STRIPE_PUBLISHABLE_KEY",
                None,
                ConfigError::MissingInProduction {
                    var: "STRIPE_PUBLISHABLE_KEY",
                },
            ),
            (
                "STRIPE_WEBHOOK_SECRET",
                None,
                ConfigError::MissingInProduction {
                    var: "STRIPE_WEBHOOK_SECRET",
                },
            ),
        ];
        for (var, value, expected) in cases {
            let mut env = live_production();
            env.retain(|(name, _)| *name != var);
            if let Some(value) = value {
                env.push((var, value));
            }
            assert_eq!(
                Config::from_vars(vars(&env)).unwrap_err(),
                expected,
                "{var}={value:?}"
            );
        }

        let mut env = live_production();
        env.retain(|(name, _)| !name.starts_with("STRIPE_"));
        env.extend([
            ("STRIPE_SECRET_KEY", "sk_test_abc"),
            ("STRIPE_PUBLISHABLE_KEY", "pk_test_abc"),
            ("STRIPE_WEBHOOK_SECRET", "whsec_x"),
        ]);
        let err = Config::from_vars(vars(&env)).unwrap_err();
        assert_eq!(
            err,
            ConfigError::TestKeyInProduction {
                var: "STRIPE_SECRET_KEY"
            }
        );
        assert_eq!(
            err.to_string(),
            "STRIPE_SECRET_KEY is a test-mode key; APP_ENV=production needs a live key"
        );
    }

    #[test]
    fn rejects_malformed_values_by_name() {
        let cases = [
            ("APP_ENV", "staging"),
            ("APP_URL", "localhost:3000"),
            ("APP_URL", "ftp://example.com"),
            ("STRIPE_SECRET_KEY", "pk_test_wrong_kind"),
            ("STRIPE_WEBHOOK_PATH", "api/stripe/webhooks"),
            ("CHECKOUT_SUCCESS_PATH", "//evil.example/steal"),
            ("REQUEST_BODY_LIMIT", "0"),
            ("LEPTOS_SITE_ADDR", "not an address"),
        ];
        for (var, value) in cases {
            let err = Config::from_vars(vars(&[(var, value)])).unwrap_err();
            assert!(
                matches!(&err, ConfigError::Invalid { var: v, .. } if *v == var),
                "{var}={value}: {err}"
            );
        }
    }

    #[test]
    fn key_mode_reads_prefixes() {
        assert_eq!(key_mode("sk_test_1", &["sk_"]), Some(KeyMode::Test));
        assert_eq!(key_mode("rk_live_1", &["sk_", "rk_"]), Some(KeyMode::Live));
        assert_eq!(key_mode("sk_live_1", &["pk_"]), None);
        assert_eq!(key_mode("sk_other", &["sk_"]), None);
    }

    #[test]
    fn debug_output_never_contains_secrets() {
        let config = Config::from_vars(vars(&live_production())).unwrap();
        let printed = format!("{config:?}");
        assert!(!printed.contains("sk_live_abc"), "{printed}");
        assert!(!printed.contains("whsec_one"), "{printed}");
    }
}
