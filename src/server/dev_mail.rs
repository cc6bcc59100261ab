//! `/dev/mail`: in development without `SMTP_URL`, the mail the app would
//! have sent, newest first, with its links clickable — so the two-command
//! start needs no mail server. Routed only then; elsewhere the path is a 404.
//! Plain server-rendered HTML: it is a developer's tool, not a product page.

use axum::{
    extract::State,
    http::header,
    response::{Html, IntoResponse, Response},
};
use sea_orm::{EntityTrait, QueryOrder, QuerySelect};

use crate::{db::entities::outbox, state::AppState};

/// Messages shown: the latest ones are the ones a developer is looking for.
const SHOWN: u64 = 50;

pub fn enabled(config: &crate::config::Config) -> bool {
    config.app_env == crate::config::AppEnv::Development && config.mail.is_kept()
}

pub async fn inbox(State(state): State<AppState>) -> Response {
    let rows = outbox::Entity::find()
        .order_by_desc(outbox::Column::Id)
        .limit(SHOWN)
        .all(state.db())
        .await;
    let body = match rows {
        Ok(rows) => page(&rows, state.config().app_url.as_str()),
        Err(err) => {
            tracing::error!(error = %err, "dev mail: outbox unreadable");
            page(&[], "")
        }
    };
    (
        [
            // Holds live links with tokens: never kept by anything.
            (header::CACHE_CONTROL, "no-store"),
            // No script at all; the app's stylesheet and icon only.
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; style-src 'self'; img-src 'self'; \
                 frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
            ),
        ],
        Html(body),
    )
        .into_response()
}

fn page(rows: &[outbox::Model], app_url: &str) -> String {
    let esc = |s: &str| html_escape::encode_text(s).into_owned();
    let mut html = String::from(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>Mail (development) — Billing Starter</title>\
         <link rel=\"icon\" href=\"/favicon.svg\" type=\"image/svg+xml\">\
         <link rel=\"stylesheet\" href=\"/pkg/billing-starter.css\"></head>\
         <body><main class=\"site-main\"><h1>Mail (development)</h1>\
         <p>What the app sent, kept here because no <code>SMTP_URL</code> is set.</p>",
    );
    if rows.is_empty() {
        html.push_str("<p>No mail yet.</p>");
    }
    for row in rows {
        html.push_str(&format!(
            "<article class=\"panel\" data-testid=\"mail\" data-to=\"{}\">\
             <h2>{}</h2><p>To {} · {} · {}</p><pre>",
            html_escape::encode_double_quoted_attribute(&row.recipient),
            esc(&row.subject),
            esc(&row.recipient),
            row.created_at.format("%Y-%m-%d %H:%M:%S UTC"),
            esc(&format!("{:?}", row.status).to_lowercase()),
        ));
        for line in row.text_body.lines() {
            if !app_url.is_empty() && line.starts_with(app_url.trim_end_matches('/')) {
                html.push_str(&format!(
                    "<a href=\"{}\">{}</a>\n",
                    html_escape::encode_double_quoted_attribute(line),
                    esc(line)
                ));
            } else {
                html.push_str(&esc(line));
                html.push('\n');
            }
        }
        html.push_str("</pre></article>");
    }
    html.push_str("</main></body></html>");
    html
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_into_the_app_are_clickable_and_everything_is_escaped() {
        let now = chrono::Utc::now();
        let row = outbox::Model {
            id: 1,
            dedupe_key: "k".into(),
            kind: "verify_email".into(),
            user_id: Some(1),
            recipient: "a@example.com".into(),
            subject: "<b>Hi</b>".into(),
            text_body:
                "Open\nhttp://127.0.0.1:3000/verify-email?token=abc&x=1\nhttps://evil.example/\n"
                    .into(),
            html_body: String::new(),
            status: outbox::MailStatus::Sent,
            attempts: 1,
            next_attempt_at: now,
            claimed_until: None,
            last_error: None,
            created_at: now,
            sent_at: Some(now),
        };
        let html = page(&[row], "http://127.0.0.1:3000/");
        assert!(html.contains("<a href=\"http://127.0.0.1:3000/verify-email?token=abc&amp;x=1\">"));
        assert!(!html.contains("href=\"https://evil.example/"));
        assert!(html.contains("&lt;b&gt;Hi&lt;/b&gt;"));
    }
}
