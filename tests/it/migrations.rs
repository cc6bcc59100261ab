//! The schema on real databases: migrations go up, down and up again, and every
//! entity round-trips with the uniqueness rules the billing code relies on.

use crate::common::on_each_backend;
use billing_starter::{
    billing::access::{PurchaseFacts, SubscriptionFacts},
    catalog::Interval,
    db::entities::{one_time_purchases, subscriptions, users, webhook_events},
};
use chrono::{TimeZone, Utc};
use migration::{Migrator, MigratorTrait, SchemaManager};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, ModelTrait, PaginatorTrait,
    QueryFilter, Set,
};

const TABLES: [&str; 5] = [
    "users",
    "subscriptions",
    "one_time_purchases",
    "webhook_events",
    "sessions",
];

async fn table_presence(db: &DatabaseConnection) -> Vec<bool> {
    let manager = SchemaManager::new(db);
    let mut present = Vec::new();
    for table in TABLES {
        present.push(manager.has_table(table).await.unwrap());
    }
    present
}

#[tokio::test]
async fn migrations_go_up_down_and_up_again() {
    on_each_backend(|db| async move {
        Migrator::up(&db, None).await.expect("first up");
        assert_eq!(table_presence(&db).await, [true; 5]);

        Migrator::down(&db, None).await.expect("down to nothing");
        assert_eq!(table_presence(&db).await, [false; 5]);

        Migrator::up(&db, None).await.expect("second up");
        assert_eq!(table_presence(&db).await, [true; 5]);
        assert!(Migrator::get_pending_migrations(&db)
            .await
            .unwrap()
            .is_empty());

        // Up on an up-to-date schema is a no-op, as start-up relies on.
        Migrator::up(&db, None).await.expect("idempotent up");
        db.close().await.unwrap();
    })
    .await;
}

fn at(hour: u32) -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 24, hour, 0, 0).unwrap()
}

async fn insert_user(
    db: &DatabaseConnection,
    email: &str,
    customer: Option<&str>,
) -> Result<users::Model, sea_orm::DbErr> {
    users::ActiveModel {
        email: Set(email.to_owned()),
        password_hash: Set("$argon2id$v=19$placeholder".to_owned()),
        stripe_customer_id: Set(customer.map(str::to_owned)),
        email_verified_at: Set(None),
        is_operator: Set(false),
        created_at: Set(at(9)),
        updated_at: Set(at(9)),
        ..Default::default()
    }
    .insert(db)
    .await
}

#[tokio::test]
async fn entities_round_trip_and_uniqueness_holds() {
    on_each_backend(|db| async move {
        Migrator::up(&db, None).await.unwrap();

        let user = insert_user(&db, "ada@example.com", Some("cus_1"))
            .await
            .unwrap();
        assert!(
            insert_user(&db, "ada@example.com", None).await.is_err(),
            "email is unique"
        );
        assert!(
            insert_user(&db, "bob@example.com", Some("cus_1"))
                .await
                .is_err(),
            "customer id is unique"
        );
        // NULL customer ids don't collide: many users have no Stripe customer yet.
        insert_user(&db, "carol@example.com", None).await.unwrap();
        insert_user(&db, "dan@example.com", None).await.unwrap();

        let subscription = subscriptions::ActiveModel {
            user_id: Set(Some(user.id)),
            stripe_subscription_id: Set("sub_1".into()),
            stripe_customer_id: Set("cus_1".into()),
            stripe_price_id: Set("price_1".into()),
            plan_id: Set(Some("premium".into())),
            price_lookup_key: Set(Some("premium_monthly".into())),
            interval: Set(Some("month".into())),
            quantity: Set(1),
            status: Set("active".into()),
            current_period_start: Set(Some(at(10))),
            current_period_end: Set(Some(at(11))),
            cancel_at_period_end: Set(false),
            cancel_at: Set(None),
            canceled_at: Set(None),
            ended_at: Set(None),
            trial_start: Set(None),
            trial_end: Set(None),
            stripe_state_at: Set(1_795_000_000),
            created_at: Set(at(10)),
            updated_at: Set(at(10)),
            ..Default::default()
        }
        .insert(&db)
        .await
        .unwrap();
        let read = subscriptions::Entity::find_by_id(subscription.id)
            .one(&db)
            .await
            .unwrap();
        assert_eq!(read.as_ref(), Some(&subscription));

        let purchase = one_time_purchases::ActiveModel {
            user_id: Set(Some(user.id)),
            stripe_customer_id: Set(Some("cus_1".into())),
            stripe_checkout_session_id: Set(Some("cs_1".into())),
            stripe_payment_intent_id: Set(Some("pi_1".into())),
            stripe_price_id: Set("price_pack".into()),
            plan_id: Set(Some("standard_pack".into())),
            price_lookup_key: Set(Some("standard_pack".into())),
            quantity: Set(1),
            amount_total: Set(2900),
            currency: Set("usd".into()),
            status: Set(one_time_purchases::PurchaseStatus::Paid),
            refunded_at: Set(None),
            reversed_at: Set(None),
            stripe_state_at: Set(1_795_000_000),
            created_at: Set(at(12)),
            updated_at: Set(at(12)),
            ..Default::default()
        };
        let stored = purchase.clone().insert(&db).await.unwrap();
        let read = one_time_purchases::Entity::find_by_id(stored.id)
            .one(&db)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(read, stored);
        // Read back as written, not only as the insert echoed it.
        assert_eq!(
            (read.status, read.amount_total, read.created_at),
            (one_time_purchases::PurchaseStatus::Paid, 2900, at(12))
        );
        assert_eq!(
            (
                subscription.status.as_str(),
                subscription.current_period_end
            ),
            ("active", Some(at(11)))
        );
        // One row per Stripe subscription and per Checkout Session.
        let mut again = subscriptions::ActiveModel::from(subscription.clone());
        again.id = sea_orm::ActiveValue::NotSet;
        assert!(
            again.insert(&db).await.is_err(),
            "stripe_subscription_id is unique"
        );
        let mut again = purchase.clone();
        again.stripe_payment_intent_id = Set(Some("pi_2".into()));
        assert!(
            again.insert(&db).await.is_err(),
            "stripe_checkout_session_id is unique"
        );
        // What the access policy reads: both tables in one query.
        let snapshot = billing_starter::billing::snapshot::load(&db, user.id)
            .await
            .unwrap();
        assert_eq!(
            snapshot.subscriptions,
            vec![SubscriptionFacts {
                stripe_subscription_id: "sub_1".into(),
                status: "active".into(),
                plan_id: Some("premium".into()),
                interval: Some(Interval::Month),
                current_period_start: Some(at(10)),
                current_period_end: Some(at(11)),
                cancel_at_period_end: false,
                cancel_at: None,
                trial_end: None,
            }]
        );
        assert_eq!(
            snapshot.purchases,
            vec![PurchaseFacts {
                plan_id: Some("standard_pack".into()),
                quantity: 1,
                status: billing_starter::db::entities::one_time_purchases::PurchaseStatus::Paid,
            }]
        );
        let carol = users::Entity::find()
            .filter(users::Column::Email.eq("carol@example.com"))
            .one(&db)
            .await
            .unwrap()
            .unwrap();
        let empty = billing_starter::billing::snapshot::load(&db, carol.id)
            .await
            .unwrap();
        assert!(empty.subscriptions.is_empty() && empty.purchases.is_empty());

        let mut duplicate = purchase;
        duplicate.stripe_checkout_session_id = Set(Some("cs_2".into()));
        assert!(
            duplicate.insert(&db).await.is_err(),
            "a payment intent grants once"
        );

        let event = webhook_events::ActiveModel {
            stripe_event_id: Set("evt_1".into()),
            event_type: Set("customer.subscription.updated".into()),
            api_version: Set(Some("2026-09-30.endive".into())),
            livemode: Set(false),
            stripe_created_at: Set(at(13)),
            received_at: Set(at(13)),
            processed_at: Set(None),
            status: Set(webhook_events::EventStatus::Received),
            attempts: Set(0),
            last_error: Set(None),
            payload: Set("{\"id\":\"evt_1\"}".repeat(2000)),
            ..Default::default()
        };
        let stored = event.clone().insert(&db).await.unwrap();
        assert_eq!(
            webhook_events::Entity::find_by_id(stored.id)
                .one(&db)
                .await
                .unwrap(),
            Some(stored)
        );
        assert!(
            event.insert(&db).await.is_err(),
            "an event id is recorded once"
        );

        // Deleting a user removes their billing rows with them.
        user.delete(&db).await.unwrap();
        assert_eq!(subscriptions::Entity::find().count(&db).await.unwrap(), 0);
        assert_eq!(
            one_time_purchases::Entity::find().count(&db).await.unwrap(),
            0
        );
        db.close().await.unwrap();
    })
    .await;
}
