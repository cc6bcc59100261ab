//! `doctor`: the going-live checklist as a command. Each check prints one line,
//! pass or fail, with what to do about a failure.

use serde_json::Value;

use crate::{
    catalog::{
        diff::{self, Change},
        Catalog,
    },
    config::{AppEnv, Config, KeyMode, StripeBackend},
    gateway::{api_version, StripeGateway},
    webhooks::{handled_event_types, signature},
};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    pub name: &'static str,
    pub ok: bool,
    pub detail: String,
}

impl std::fmt::Display for Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {:<22} {}",
            if self.ok { "PASS" } else { "FAIL" },
            self.name,
            self.detail
        )
    }
}

fn check(name: &'static str, result: Result<String, String>) -> Check {
    match result {
        Ok(detail) => Check {
            name,
            ok: true,
            detail,
        },
        Err(detail) => Check {
            name,
            ok: false,
            detail,
        },
    }
}

/// Keys present, and their mode matches `APP_ENV`.
pub fn keys(config: &Config) -> Check {
    check(
        "stripe keys",
        match (&config.stripe.backend, config.app_env) {
            (StripeBackend::Emulator { api_base }, AppEnv::Development) => {
                Ok(format!("no key: the emulator at {api_base} (test mode)"))
            }
            (StripeBackend::Emulator { .. }, AppEnv::Production) => {
                Err("STRIPE_SECRET_KEY is missing".into())
            }
            (
                StripeBackend::Stripe {
                    mode: KeyMode::Live,
                    ..
                },
                AppEnv::Production,
            ) if config.stripe.publishable_key.is_some() => Ok("live keys for production".into()),
            (StripeBackend::Stripe { .. }, AppEnv::Production) => {
                Err("production needs live STRIPE_SECRET_KEY and STRIPE_PUBLISHABLE_KEY".into())
            }
            (
                StripeBackend::Stripe {
                    mode: KeyMode::Test,
                    ..
                },
                AppEnv::Development,
            ) => Ok("test keys for development".into()),
            (
                StripeBackend::Stripe {
                    mode: KeyMode::Live,
                    ..
                },
                AppEnv::Development,
            ) => Err("live keys with APP_ENV=development: real cards would be charged".into()),
        },
    )
}

/// Stripe only redirects customers and delivers events to https in live mode.
pub fn app_url(config: &Config) -> Check {
    check(
        "APP_URL",
        match (config.app_env, config.app_url.scheme()) {
            (AppEnv::Production, "https") | (AppEnv::Development, _) => {
                Ok(config.app_url.to_string())
            }
            (AppEnv::Production, _) => {
                Err(format!("{} must be https in production", config.app_url))
            }
        },
    )
}

/// Every catalog price exists, active, with the catalog's amount.
pub async fn catalog(stripe: &StripeGateway, catalog: &Catalog) -> Check {
    let result = match stripe.remote_catalog(catalog).await {
        Err(err) => Err(format!("cannot read products and prices: {err}")),
        Ok(remote) => {
            let missing: Vec<String> = diff::plan(catalog, &remote)
                .into_iter()
                .filter_map(|change| match change {
                    Change::CreatePrice { lookup_key, .. } => Some(lookup_key),
                    _ => None,
                })
                .collect();
            if missing.is_empty() {
                Ok(format!(
                    "{} price(s) exist and are active",
                    catalog.prices().count()
                ))
            } else {
                Err(format!(
                    "missing or changed: {} — run `billing-starter catalog apply`",
                    missing.join(", ")
                ))
            }
        }
    };
    check("catalog prices", result)
}

/// An endpoint for this app's URL, enabled for every handled event, on the API
/// version async-stripe parses.
pub async fn webhook_endpoint(stripe: &StripeGateway, config: &Config) -> Check {
    let url = webhook_url(config);
    let result = match stripe.webhook_endpoints().await {
        Err(err) => Err(format!("cannot list webhook endpoints: {err}")),
        Ok(endpoints) => match endpoints.iter().find(|e| e["url"] == url.as_str()) {
            None if config.stripe.is_emulated() => {
                Ok("the emulator forwards every event to this app".into())
            }
            None => Err(format!(
                "no endpoint for {url}: create one in the dashboard or with the API"
            )),
            Some(endpoint) => {
                let enabled: Vec<&str> = endpoint["enabled_events"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .collect();
                let missing: Vec<&str> = handled_event_types()
                    .filter(|e| !enabled.contains(&"*") && !enabled.contains(e))
                    .collect();
                let version = endpoint["api_version"]
                    .as_str()
                    .unwrap_or("the account default");
                if endpoint["status"] != "enabled" {
                    Err(format!(
                        "endpoint {} is disabled",
                        endpoint["id"].as_str().unwrap_or_default()
                    ))
                } else if !missing.is_empty() {
                    Err(format!("endpoint is not sent: {}", missing.join(", ")))
                } else if version != api_version() {
                    Err(format!(
                        "endpoint api_version is {version}; the app parses {}",
                        api_version()
                    ))
                } else {
                    Ok(format!("{url} (api_version {version})"))
                }
            }
        },
    };
    check("webhook endpoint", result)
}

/// A customer portal configuration to open sessions with.
pub async fn portal(stripe: &StripeGateway) -> Check {
    let result = match stripe.portal_configurations().await {
        Err(err) => Err(format!("cannot list portal configurations: {err}")),
        Ok(configs) => match configs.iter().find(|c| c["active"] == true) {
            Some(config) => Ok(format!(
                "{} is active",
                config["id"].as_str().unwrap_or_default()
            )),
            None => Err("no active customer portal configuration".into()),
        },
    };
    check("portal configuration", result)
}

/// Signs a test event with the configured secret and posts it to the app's own
/// webhook route, as Stripe would.
pub async fn round_trip(config: &Config) -> Check {
    use secrecy::ExposeSecret;
    let url = webhook_url(config);
    let Some(secret) = config.stripe.webhook_secrets.first() else {
        return check(
            "webhook round trip",
            Err("STRIPE_WEBHOOK_SECRET is not set".into()),
        );
    };
    let now = chrono::Utc::now().timestamp();
    let payload = serde_json::json!({
        "id": format!("evt_doctor_{now}_{}", std::process::id()), "object": "event", "type": "billing_starter.doctor",
        "created": now, "api_version": api_version(), "livemode": false,
        "data": {"object": {}}, "pending_webhooks": 1, "request": {"id": null, "idempotency_key": null},
    })
    .to_string();
    let header = signature::sign(payload.as_bytes(), secret.expose_secret(), now);
    let result = match reqwest_post(&url, &payload, &header).await {
        Ok(200..=299) => Ok(format!("a signed test event was accepted by {url}")),
        Ok(400) => Err(format!(
            "{url} rejected the signature: STRIPE_WEBHOOK_SECRET differs from the app's"
        )),
        Ok(status) => Err(format!("{url} answered {status}")),
        Err(err) => Err(format!("{url} is unreachable: {err}")),
    };
    check("webhook round trip", result)
}

fn webhook_url(config: &Config) -> String {
    config
        .app_url
        .join(&config.paths.stripe_webhook)
        .map(|u| u.to_string())
        .unwrap_or_default()
}

async fn reqwest_post(url: &str, body: &str, signature: &str) -> Result<u16, String> {
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .map_err(|e| e.to_string())?;
    client
        .post(url)
        .header("content-type", "application/json")
        .header("stripe-signature", signature)
        .body(body.to_owned())
        .send()
        .await
        .map(|r| r.status().as_u16())
        .map_err(|e| e.to_string())
}

/// The SMTP server in `SMTP_URL` answers and takes our credentials (lettre's
/// connection test: EHLO, TLS and AUTH as configured, then QUIT; nothing sent).
pub async fn mail(config: &Config) -> Check {
    use lettre::{AsyncSmtpTransport, Tokio1Executor};
    use secrecy::ExposeSecret;
    let Some(url) = &config.mail.smtp_url else {
        return check(
            "mail",
            Ok("no SMTP_URL: mail is kept in the database and shown at /dev/mail".into()),
        );
    };
    let result = match AsyncSmtpTransport::<Tokio1Executor>::from_url(url.expose_secret()) {
        Err(err) => Err(format!("SMTP_URL is not usable: {err}")),
        Ok(builder) => {
            let transport: AsyncSmtpTransport<Tokio1Executor> = builder
                .timeout(Some(std::time::Duration::from_secs(10)))
                .build();
            match transport.test_connection().await {
                Ok(true) => Ok(format!(
                    "the SMTP server accepts a connection; mail is sent as {}",
                    config.mail.from
                )),
                Ok(false) => Err("the SMTP server did not accept a connection".into()),
                // lettre's errors never print the URL's password.
                Err(err) => Err(format!("the SMTP server is unreachable: {err}")),
            }
        }
    };
    check("mail", result)
}

/// The running app (at `APP_URL`) holds the prices Stripe has now: after a
/// `catalog apply` elsewhere it re-reads them at its next checkout, or restart.
pub async fn running_prices(config: &Config, stripe: &StripeGateway, catalog_: &Catalog) -> Check {
    let url = config.absolute_url("/healthz");
    let result = async {
        let current = stripe
            .resolve_prices(catalog_)
            .await
            .map_err(|err| format!("Stripe's prices could not be read: {err}"))?;
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .map_err(|e| e.to_string())?;
        let health: Value = client
            .get(&url)
            .send()
            .await
            .map_err(|err| format!("{url} is unreachable: {err}"))?
            .json()
            .await
            .map_err(|err| format!("{url} did not answer JSON: {err}"))?;
        match health["prices"].as_str() {
            Some(held) if held == current.fingerprint() => {
                Ok("the running app uses the prices Stripe has now".to_owned())
            }
            Some(_) => Err(format!(
                "the app at {} holds price ids from before the last catalog change; it re-reads them at its next checkout (or restart it)",
                config.app_url
            )),
            None => Err(format!("{url} does not say which prices it holds")),
        }
    }
    .await;
    check("running prices", result)
}

/// No user pays for two live subscriptions (two tabs that paid at once).
pub async fn duplicate_subscriptions(db: &sea_orm::DatabaseConnection) -> Check {
    let result = match crate::billing::service::live_subscriptions_beyond_one(db, None).await {
        Err(err) => Err(format!("the database could not be read: {err}")),
        Ok(found) if found.is_empty() => Ok("no user has more than one live subscription".into()),
        Ok(found) => Err(found
            .iter()
            .map(|(user, ids)| format!("user {user} pays for {}", ids.join(" and ")))
            .chain(std::iter::once(
                "cancel the extra ones in the portal or the Stripe dashboard".to_owned(),
            ))
            .collect::<Vec<_>>()
            .join("; ")),
    };
    check("duplicate subscriptions", result)
}

/// Every check, in checklist order.
pub async fn run(
    config: &Config,
    db: &sea_orm::DatabaseConnection,
    stripe: &StripeGateway,
    catalog_: &Catalog,
) -> Vec<Check> {
    vec![
        keys(config),
        app_url(config),
        catalog(stripe, catalog_).await,
        webhook_endpoint(stripe, config).await,
        portal(stripe).await,
        round_trip(config).await,
        running_prices(config, stripe, catalog_).await,
        mail(config).await,
        duplicate_subscriptions(db).await,
    ]
}
