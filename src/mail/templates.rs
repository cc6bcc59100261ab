//! The emails' words, from `templates/mail/` in the repository: a plain-text
//! body whose first line is `Subject: …`, and an HTML body put inside
//! `layout.html`. `{{name}}` is replaced by a value; in HTML every value is
//! escaped (an address or a product name can hold `&` or `<`).
//!
//! Hand-written rather than a template engine: seven short messages with one
//! kind of placeholder do not need a language, and `include_str!` keeps them
//! checked at compile time and shipped inside the binary.

/// One kind of message and what fills it in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Template {
    VerifyEmail {
        link: String,
    },
    ResetPassword {
        link: String,
    },
    ChangeEmail {
        link: String,
        new_email: String,
    },
    PaymentFailed {
        link: String,
        amount: String,
    },
    TrialWillEnd {
        link: String,
        date: String,
    },
    AccountDeleted {
        email: String,
        summary: String,
    },
    Invitation {
        link: String,
        organization: String,
        inviter: String,
    },
}

/// A message ready for the outbox.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rendered {
    pub kind: &'static str,
    pub subject: String,
    pub text: String,
    pub html: String,
}

const LAYOUT: &str = include_str!("../../templates/mail/layout.html");

impl Template {
    pub fn kind(&self) -> &'static str {
        match self {
            Template::VerifyEmail { .. } => "verify_email",
            Template::ResetPassword { .. } => "reset_password",
            Template::ChangeEmail { .. } => "change_email",
            Template::PaymentFailed { .. } => "payment_failed",
            Template::TrialWillEnd { .. } => "trial_will_end",
            Template::AccountDeleted { .. } => "account_deleted",
            Template::Invitation { .. } => "invitation",
        }
    }

    fn sources(&self) -> (&'static str, &'static str) {
        macro_rules! pair {
            ($name:literal) => {
                (
                    include_str!(concat!("../../templates/mail/", $name, ".txt")),
                    include_str!(concat!("../../templates/mail/", $name, ".html")),
                )
            };
        }
        match self {
            Template::VerifyEmail { .. } => pair!("verify_email"),
            Template::ResetPassword { .. } => pair!("reset_password"),
            Template::ChangeEmail { .. } => pair!("change_email"),
            Template::PaymentFailed { .. } => pair!("payment_failed"),
            Template::TrialWillEnd { .. } => pair!("trial_will_end"),
            Template::AccountDeleted { .. } => pair!("account_deleted"),
            Template::Invitation { .. } => pair!("invitation"),
        }
    }

    fn values(&self) -> Vec<(&'static str, &str)> {
        match self {
            Template::VerifyEmail { link } | Template::ResetPassword { link } => {
                vec![("link", link)]
            }
            Template::ChangeEmail { link, new_email } => {
                vec![("link", link), ("email", new_email)]
            }
            Template::PaymentFailed { link, amount } => vec![("link", link), ("amount", amount)],
            Template::TrialWillEnd { link, date } => vec![("link", link), ("date", date)],
            Template::AccountDeleted { email, summary } => {
                vec![("email", email), ("summary", summary)]
            }
            Template::Invitation {
                link,
                organization,
                inviter,
            } => vec![
                ("link", link),
                ("organization", organization),
                ("inviter", inviter),
            ],
        }
    }

    /// The message for `product` (the configured project name) at `app_url`.
    pub fn render(&self, product: &str, app_url: &str) -> Rendered {
        let (text_source, html_source) = self.sources();
        let mut values = self.values();
        values.push(("product", product));
        values.push(("app_url", app_url));
        let (subject_line, text_body) = text_source.split_once('\n').unwrap_or((text_source, ""));
        let subject = fill(
            subject_line.trim_start_matches("Subject:").trim(),
            &values,
            false,
        );
        let text = fill(text_body.trim_start_matches('\n'), &values, false);
        let content = fill(html_source, &values, true);
        let html = fill(LAYOUT, &values, true).replace("{{content}}", &content);
        Rendered {
            kind: self.kind(),
            subject,
            text,
            html,
        }
    }
}

fn fill(source: &str, values: &[(&str, &str)], html: bool) -> String {
    let mut out = source.to_owned();
    for (name, value) in values {
        let value = if html {
            html_escape::encode_double_quoted_attribute(value).into_owned()
        } else {
            (*value).to_owned()
        };
        out = out.replace(&format!("{{{{{name}}}}}"), &value);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_template() -> Vec<Template> {
        let link = "https://app.example/verify-email?token=abc".to_owned();
        vec![
            Template::VerifyEmail { link: link.clone() },
            Template::ResetPassword { link: link.clone() },
            Template::ChangeEmail {
                link: link.clone(),
                new_email: "new@example.com".into(),
            },
            Template::PaymentFailed {
                link: link.clone(),
                amount: "$19.00".into(),
            },
            Template::TrialWillEnd {
                link,
                date: "December 4, 2026".into(),
            },
            Template::AccountDeleted {
                email: "ada@example.com".into(),
                summary: "We cancelled 1 subscription.".into(),
            },
            Template::Invitation {
                link: "https://app.example/invitations/accept?token=abc".into(),
                organization: "Acme <Labs>".into(),
                inviter: "ada@example.com".into(),
            },
        ]
    }

    #[test]
    fn every_placeholder_is_filled_in_subject_text_and_html() {
        for template in every_template() {
            let rendered = template.render("Acme & Co", "https://app.example/");
            for part in [&rendered.subject, &rendered.text, &rendered.html] {
                assert!(!part.contains("{{"), "{:?}: {part}", template.kind());
            }
            assert!(
                rendered.subject.contains("Acme & Co"),
                "{}",
                rendered.subject
            );
            assert!(!rendered.subject.contains('\n'));
            assert!(rendered.html.contains("Acme &amp; Co"));
            assert!(!rendered.html.contains("Acme & Co"));
            for (name, value) in template.values() {
                assert!(rendered.text.contains(value), "{name} in text");
            }
        }
    }

    #[test]
    fn values_cannot_inject_markup() {
        let rendered = Template::ChangeEmail {
            link: "https://app.example/x?a=1&b=\"2\"".into(),
            new_email: "<script>@example.com".into(),
        }
        .render("P", "https://app.example/");
        assert!(!rendered.html.contains("<script>"));
        assert!(rendered
            .html
            .contains("href=\"https://app.example/x?a=1&amp;b=&quot;2&quot;\""));
    }
}
