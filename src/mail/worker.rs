//! The mail worker: claims due outbox rows, sends each over SMTP and records
//! the outcome; a failure is retried with backoff and, after the last attempt,
//! kept as failed with its error. One per app instance; several instances on
//! one PostgreSQL share the outbox without sending a row twice (`outbox::claim`).

use lettre::{
    message::{header::ContentType, Mailbox, MultiPart, SinglePart},
    AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
};
use sea_orm::DatabaseConnection;
use secrecy::ExposeSecret;
use tracing::Instrument;

use super::{outbox, Mailer};
use crate::db::entities::outbox::Model as Row;

/// Rows claimed at once: a burst is spread over instances rather than taken by one.
const BATCH: u64 = 10;

#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("SMTP_URL: {0}")]
    Url(String),
    #[error("message: {0}")]
    Message(String),
    #[error("SMTP: {0}")]
    Smtp(#[from] lettre::transport::smtp::Error),
}

/// Where mail goes.
pub enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    /// Development without `SMTP_URL`: the row itself is the delivery (`/dev/mail`).
    Kept,
}

impl Transport {
    pub fn from_config(mailer: &Mailer) -> Result<Self, SendError> {
        match &mailer.config().mail.smtp_url {
            None => Ok(Transport::Kept),
            Some(url) => {
                let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url.expose_secret())
                    .map_err(|err| SendError::Url(err.to_string()))?
                    .timeout(Some(std::time::Duration::from_secs(30)))
                    .build();
                Ok(Transport::Smtp(transport))
            }
        }
    }

    async fn send(&self, from: &str, row: &Row) -> Result<(), SendError> {
        let Transport::Smtp(smtp) = self else {
            return Ok(());
        };
        let parse = |what: &str| {
            what.parse::<Mailbox>()
                .map_err(|err| SendError::Message(format!("{what}: {err}")))
        };
        // A Message-ID and a Date: mail without them is often taken for spam.
        let message = Message::builder()
            .message_id(None)
            .date_now()
            .from(parse(from)?)
            .to(parse(&row.recipient)?)
            .subject(row.subject.clone())
            .multipart(
                MultiPart::alternative()
                    .singlepart(
                        SinglePart::builder()
                            .header(ContentType::TEXT_PLAIN)
                            .body(row.text_body.clone()),
                    )
                    .singlepart(
                        SinglePart::builder()
                            .header(ContentType::TEXT_HTML)
                            .body(row.html_body.clone()),
                    ),
            )
            .map_err(|err| SendError::Message(err.to_string()))?;
        smtp.send(message).await?;
        Ok(())
    }
}

/// Sends what is due until the task is dropped.
pub async fn run(db: DatabaseConnection, mailer: Mailer, transport: Transport) {
    let poll = mailer.config().mail.poll_interval;
    loop {
        let woken = mailer.woken();
        match send_due(&db, &mailer, &transport)
            .instrument(tracing::info_span!("mail"))
            .await
        {
            // A full batch: more may be due at once.
            Ok(sent) if sent as u64 >= BATCH => continue,
            Ok(_) => {}
            Err(err) => tracing::warn!(error = %err, "outbox unreachable"),
        }
        let _ = tokio::time::timeout(poll, woken).await;
    }
}

/// One round: claims due rows and sends them; how many were claimed.
pub async fn send_due(
    db: &DatabaseConnection,
    mailer: &Mailer,
    transport: &Transport,
) -> Result<usize, sea_orm::DbErr> {
    let claimed = outbox::claim(db, BATCH, chrono::Utc::now()).await?;
    let config = &mailer.config().mail;
    for row in &claimed {
        match transport.send(&config.from, row).await {
            Ok(()) => {
                crate::prometheus::mail("sent");
                if outbox::mark_sent(db, row).await? {
                    tracing::info!(id = row.id, kind = %row.kind, "mail sent");
                }
            }
            Err(err) => {
                crate::prometheus::mail("failed");
                tracing::warn!(id = row.id, kind = %row.kind, attempt = row.attempts, error = %err, "mail not sent");
                outbox::mark_failed(db, row, &err.to_string(), config.retry_base).await?;
            }
        }
    }
    Ok(claimed.len())
}
