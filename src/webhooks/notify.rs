//! What an event tells the person it concerns, by email: a failed payment
//! ("update your card"), a trial about to end. Queued in the transaction that
//! records the event, keyed by the event's id, so a re-delivered or replayed
//! event never mails twice and a rolled-back one mails nothing.

use chrono::{TimeZone, Utc};
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter};

use crate::{
    billing::objects::{BillingEvent, EventKind, StripeObject},
    catalog::money,
    db::entities::accounts,
    mail::{Mailer, Template},
};

/// Queues the mail `event` calls for, if any; whether one was queued.
pub async fn after_event<C: ConnectionTrait>(
    conn: &C,
    mailer: &Mailer,
    billing_page: &str,
    event: &BillingEvent,
) -> Result<bool, DbErr> {
    let Some((customer, template)) = message_for(event, &mailer.link(billing_page)) else {
        return Ok(false);
    };
    let Some(account) = accounts::Entity::find()
        .filter(accounts::Column::StripeCustomerId.eq(customer))
        .one(conn)
        .await?
    else {
        return Ok(false);
    };
    // An organization's billing mail goes to each of its owners and admins.
    let mut queued = false;
    for (user, role) in crate::teams::members::members_of(conn, account.id).await? {
        if !crate::teams::rules::allows(role, crate::teams::Action::ManageBilling) {
            continue;
        }
        let key = match account.kind {
            accounts::AccountKind::Personal => format!("stripe:{}", event.id),
            accounts::AccountKind::Organization => format!("stripe:{}:{}", event.id, user.id),
        };
        queued |= mailer
            .enqueue(conn, key, Some(user.id), &user.email, template.clone())
            .await?;
    }
    Ok(queued)
}

/// The customer an event's mail goes to and the mail; pure.
fn message_for<'e>(event: &'e BillingEvent, link: &str) -> Option<(&'e str, Template)> {
    match (&event.object, event.kind) {
        (StripeObject::Invoice(invoice), EventKind::InvoicePaymentFailed) => Some((
            invoice.customer_id.as_deref()?,
            Template::PaymentFailed {
                link: link.to_owned(),
                amount: money::format(invoice.amount, &invoice.currency, false),
            },
        )),
        (StripeObject::Subscription(sub), EventKind::SubscriptionTrialWillEnd) => {
            let date = sub
                .trial_end
                .and_then(|secs| Utc.timestamp_opt(secs, 0).single())
                .map(|at| at.format("%B %-d, %Y").to_string())?;
            Some((
                sub.customer_id.as_str(),
                Template::TrialWillEnd {
                    link: link.to_owned(),
                    date,
                },
            ))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::billing::objects::{InvoiceState, SubscriptionState};

    fn invoice() -> InvoiceState {
        InvoiceState {
            id: "in_1".into(),
            customer_id: Some("cus_1".into()),
            subscription_id: Some("sub_1".into()),
            number: None,
            amount: 1900,
            currency: "usd".into(),
            created: 0,
            status: "open".into(),
            period_start: None,
            period_end: None,
            hosted_url: None,
            pdf_url: None,
        }
    }

    fn event(kind: EventKind, object: StripeObject) -> BillingEvent {
        BillingEvent {
            id: "evt_1".into(),
            kind,
            created: 0,
            object,
        }
    }

    #[test]
    fn failed_payments_and_ending_trials_mail_their_customer_and_nothing_else_does() {
        let link = "https://app.example/dashboard/billing";
        let failed = event(
            EventKind::InvoicePaymentFailed,
            StripeObject::Invoice(invoice()),
        );
        assert_eq!(
            message_for(&failed, link),
            Some((
                "cus_1",
                Template::PaymentFailed {
                    link: link.into(),
                    amount: "$19.00".into()
                }
            ))
        );
        let paid = event(EventKind::InvoicePaid, StripeObject::Invoice(invoice()));
        assert_eq!(message_for(&paid, link), None);
        let sub = SubscriptionState {
            trial_end: Some(1_796_342_400), // 2026-12-04
            id: "sub_1".into(),
            customer_id: "cus_1".into(),
            status: "trialing".into(),
            price_id: "price_1".into(),
            price_lookup_key: None,
            interval: Some("month".into()),
            quantity: 1,
            app_account_id: None,
            item_id: None,
            current_period_start: None,
            current_period_end: None,
            cancel_at_period_end: false,
            cancel_at: None,
            canceled_at: None,
            ended_at: None,
            trial_start: None,
            app_user_id: None,
            plan_id: None,
        };
        let ending = event(
            EventKind::SubscriptionTrialWillEnd,
            StripeObject::Subscription(sub.clone()),
        );
        assert_eq!(
            message_for(&ending, link),
            Some((
                "cus_1",
                Template::TrialWillEnd {
                    link: link.into(),
                    date: "December 4, 2026".into()
                }
            ))
        );
        let updated = event(
            EventKind::SubscriptionUpdated,
            StripeObject::Subscription(sub),
        );
        assert_eq!(message_for(&updated, link), None);
    }
}
