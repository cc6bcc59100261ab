//! Outgoing email: messages are written to the outbox in the transaction that
//! causes them ([`outbox`]), rendered from the repository's templates
//! ([`templates`]), and sent by one background worker per app instance
//! ([`worker`]) over SMTP, or, in development without `SMTP_URL`, kept in the
//! database and shown at `/dev/mail`.

pub mod outbox;
pub mod templates;
pub mod worker;

use std::sync::Arc;

use sea_orm::{ConnectionTrait, DbErr};

use crate::config::Config;

pub use self::templates::Template;

/// What every part of the app that causes mail holds: enqueueing in the
/// caller's transaction, then waking this instance's worker.
#[derive(Clone)]
pub struct Mailer(Arc<Parts>);

pub struct Parts {
    config: Arc<Config>,
    wake: tokio::sync::Notify,
}

impl Mailer {
    pub fn new(config: Arc<Config>) -> Self {
        Mailer(Arc::new(Parts {
            config,
            wake: tokio::sync::Notify::new(),
        }))
    }

    /// An absolute link into the app (`/verify-email?token=…`).
    pub fn link(&self, path_and_query: &str) -> String {
        self.0.config.absolute_url(path_and_query)
    }

    /// Writes `template` for `recipient` in `conn`'s transaction, once per
    /// `dedupe_key`; `false` when that key was written before.
    pub async fn enqueue<C: ConnectionTrait>(
        &self,
        conn: &C,
        dedupe_key: String,
        user_id: Option<i64>,
        recipient: &str,
        template: Template,
    ) -> Result<bool, DbErr> {
        let config = &self.0.config;
        let message = template.render(&config.project_name, config.app_url.as_str());
        let inserted = outbox::enqueue(
            conn,
            outbox::NewMail {
                dedupe_key,
                user_id,
                recipient,
                message,
            },
        )
        .await?;
        if inserted {
            tracing::info!(kind = template.kind(), user = user_id, "mail queued");
        }
        Ok(inserted)
    }

    /// Tells this instance's worker to look now (call after the commit).
    pub fn wake(&self) {
        self.0.wake.notify_one();
    }

    pub(crate) fn woken(&self) -> tokio::sync::futures::Notified<'_> {
        self.0.wake.notified()
    }

    pub(crate) fn config(&self) -> &Config {
        &self.0.config
    }
}
