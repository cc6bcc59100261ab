//! The schema on real databases: migrations go up, down and up again, and every
//! entity round-trips with the uniqueness rules the billing code relies on.

use crate::common::on_each_backend;
use billing_starter::{
    billing::access::{PurchaseFacts, SubscriptionFacts},
    catalog::Interval,
    db::entities::{accounts, one_time_purchases, subscriptions, users, webhook_events},
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

/// A user and their personal account (holding `customer`); the account's id.
async fn insert_user(
    db: &DatabaseConnection,
    email: &str,
    customer: Option<&str>,
) -> Result<(users::Model, i64), sea_orm::DbErr> {
    let user = users::ActiveModel {
        email: Set(email.to_owned()),
        password_hash: Set("$argon2id$v=19$placeholder".to_owned()),
        email_verified_at: Set(None),
        is_operator: Set(false),
        created_at: Set(at(9)),
        updated_at: Set(at(9)),
        ..Default::default()
    }
    .insert(db)
    .await?;
    let account = accounts::ActiveModel {
        kind: Set(accounts::AccountKind::Personal),
        name: Set(email.to_owned()),
        slug: Set(None),
        personal_user_id: Set(Some(user.id)),
        stripe_customer_id: Set(customer.map(str::to_owned)),
        seats_wanted: Set(None),
        created_at: Set(at(9)),
        updated_at: Set(at(9)),
        ..Default::default()
    }
    .insert(db)
    .await?;
    Ok((user, account.id))
}

#[tokio::test]
async fn entities_round_trip_and_uniqueness_holds() {
    on_each_backend(|db| async move {
        Migrator::up(&db, None).await.unwrap();

        let (user, account) = insert_user(&db, "ada@example.com", Some("cus_1"))
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
            account_id: Set(Some(account)),
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
            account_id: Set(Some(account)),
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
        let snapshot = billing_starter::billing::snapshot::load(&db, account)
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
                amount_total: 2900,
                currency: "usd".into(),
                created_at: at(12),
            }]
        );
        let carol = users::Entity::find()
            .filter(users::Column::Email.eq("carol@example.com"))
            .one(&db)
            .await
            .unwrap()
            .unwrap();
        let carol = accounts::Entity::find()
            .filter(accounts::Column::PersonalUserId.eq(carol.id))
            .one(&db)
            .await
            .unwrap()
            .unwrap();
        let empty = billing_starter::billing::snapshot::load(&db, carol.id)
            .await
            .unwrap();
        assert!(empty.subscriptions.is_empty() && empty.purchases.is_empty());

        let mut duplicate = purchase.clone();
        duplicate.stripe_checkout_session_id = Set(Some("cs_2".into()));
        assert!(
            duplicate.insert(&db).await.is_err(),
            "a payment intent grants once"
        );
        // Purchases come newest first, as the billing page lists them.
        let mut newer = purchase;
        newer.stripe_checkout_session_id = Set(Some("cs_3".into()));
        newer.stripe_payment_intent_id = Set(Some("pi_3".into()));
        newer.amount_total = Set(4900);
        newer.currency = Set("eur".into());
        newer.created_at = Set(at(13));
        newer.insert(&db).await.unwrap();
        let listed: Vec<_> = billing_starter::billing::snapshot::load(&db, account)
            .await
            .unwrap()
            .purchases
            .into_iter()
            .map(|p| (p.amount_total, p.currency, p.created_at))
            .collect();
        assert_eq!(
            listed,
            [
                (4900, "eur".to_owned(), at(13)),
                (2900, "usd".to_owned(), at(12))
            ]
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

        // Deleting a user removes their personal account with them, and the
        // account's deletion its billing rows.
        billing_starter::teams::members::delete_billing_rows(&db, account)
            .await
            .unwrap();
        user.delete(&db).await.unwrap();
        assert_eq!(
            accounts::Entity::find_by_id(account)
                .one(&db)
                .await
                .unwrap(),
            None
        );
        assert_eq!(subscriptions::Entity::find().count(&db).await.unwrap(), 0);
        assert_eq!(
            one_time_purchases::Entity::find().count(&db).await.unwrap(),
            0
        );
        db.close().await.unwrap();
    })
    .await;
}

/// Billing accounts arrive on a database filled by the per-user schema: each
/// user gets a personal account holding their Stripe customer, and every
/// subscription, purchase and invoice of theirs moves onto it, nothing lost;
/// going down puts the customer back on the user.
#[tokio::test]
async fn per_user_billing_moves_onto_personal_accounts() {
    use sea_orm::{ConnectionTrait, DbBackend, Statement};
    on_each_backend(|db| async move {
        Migrator::up(&db, Some(11)).await.unwrap();
        let backend = db.get_database_backend();
        let run = |sql: &str, values: Vec<sea_orm::Value>| {
            let sql = match backend {
                DbBackend::Postgres => {
                    let mut n = 0;
                    sql.chars()
                        .map(|c| {
                            if c == '?' {
                                n += 1;
                                format!("${n}")
                            } else {
                                c.to_string()
                            }
                        })
                        .collect()
                }
                _ => sql.to_owned(),
            };
            let db = db.clone();
            async move {
                db.execute_raw(Statement::from_sql_and_values(backend, sql, values))
                    .await
                    .unwrap();
            }
        };
        for (email, customer) in [("old@example.com", Some("cus_old")), ("plain@example.com", None)] {
            run(
                "INSERT INTO users (email, password_hash, stripe_customer_id, is_operator, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)",
                vec![email.into(), "x".into(), customer.map(str::to_owned).into(), false.into(), at(9).into(), at(9).into()],
            )
            .await;
        }
        let old = users::Entity::find()
            .filter(users::Column::Email.eq("old@example.com"))
            .one(&db)
            .await
            .unwrap()
            .unwrap();
        run(
            "INSERT INTO subscriptions (user_id, stripe_subscription_id, stripe_customer_id, stripe_price_id, plan_id, quantity, status, cancel_at_period_end, stripe_state_at, created_at, updated_at) VALUES (?, 'sub_old', 'cus_old', 'price_1', 'premium', 1, 'active', ?, 1, ?, ?)",
            vec![old.id.into(), false.into(), at(10).into(), at(10).into()],
        )
        .await;
        run(
            "INSERT INTO one_time_purchases (user_id, stripe_customer_id, stripe_checkout_session_id, stripe_price_id, plan_id, quantity, amount_total, currency, status, stripe_state_at, created_at, updated_at) VALUES (?, 'cus_old', 'cs_old', 'price_pack', 'standard_pack', 1, 2900, 'usd', 'paid', 1, ?, ?)",
            vec![old.id.into(), at(10).into(), at(10).into()],
        )
        .await;
        run(
            "INSERT INTO invoices (user_id, stripe_invoice_id, stripe_customer_id, amount_total, currency, status, stripe_created, stripe_state_at, created_at, updated_at) VALUES (?, 'in_old', 'cus_old', 4900, 'usd', 'paid', 1, 1, ?, ?)",
            vec![old.id.into(), at(10).into(), at(10).into()],
        )
        .await;

        Migrator::up(&db, None).await.unwrap();
        let accounts_now = accounts::Entity::find().all(&db).await.unwrap();
        assert_eq!(accounts_now.len(), 2, "{accounts_now:?}");
        let personal = accounts_now
            .iter()
            .find(|a| a.personal_user_id == Some(old.id))
            .unwrap();
        assert_eq!(personal.kind, accounts::AccountKind::Personal);
        assert_eq!(personal.stripe_customer_id.as_deref(), Some("cus_old"));
        let member = billing_starter::teams::members::current(&db, &old, None)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(member.account.id, personal.id);
        assert_eq!(member.role, billing_starter::db::entities::memberships::Role::Owner);
        let snapshot = billing_starter::billing::snapshot::load(&db, personal.id)
            .await
            .unwrap();
        assert_eq!(snapshot.subscriptions.len(), 1);
        assert_eq!(snapshot.subscriptions[0].stripe_subscription_id, "sub_old");
        assert_eq!(snapshot.purchases.len(), 1);
        let invoice = billing_starter::db::entities::invoices::Entity::find()
            .one(&db)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(invoice.account_id, Some(personal.id));
        let plain = accounts_now
            .iter()
            .find(|a| a.personal_user_id != Some(old.id))
            .unwrap();
        assert_eq!(plain.stripe_customer_id, None);

        // Down two steps (the usage ledger, then the accounts): the customer is
        // the user's again.
        Migrator::down(&db, Some(2)).await.unwrap();
        let row = db
            .query_one_raw(Statement::from_string(
                backend,
                "SELECT stripe_customer_id FROM users WHERE email = 'old@example.com'",
            ))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            row.try_get::<Option<String>>("", "stripe_customer_id").unwrap().as_deref(),
            Some("cus_old")
        );
        db.close().await.unwrap();
    })
    .await;
}

/// `db::connect` hands out pooled connections without pinging each first (sqlx's
/// default): a ping is one more round trip per query, on SQLite a hand-off to the
/// connection's thread and back. Queries still work on both backends.
#[tokio::test]
async fn pooled_connections_go_to_their_query_without_a_ping() {
    use sea_orm::DbBackend;
    on_each_backend(|db| async move {
        let pinged = match db.get_database_backend() {
            DbBackend::Postgres => db
                .get_postgres_connection_pool()
                .options()
                .get_test_before_acquire(),
            _ => db
                .get_sqlite_connection_pool()
                .options()
                .get_test_before_acquire(),
        };
        assert!(!pinged, "a ping before every query");
        for _ in 0..3 {
            billing_starter::db::ping(&db).await.expect("a query");
        }
        db.close().await.unwrap();
    })
    .await;
}

/// Every SQLite connection `db::connect` opens plans its statements without the
/// values bound to them (`db::stable_plans`): otherwise every cached statement
/// with a `LIMIT ?` (each sea-orm `.one()`) is parsed and planned again on
/// every run.
#[tokio::test]
async fn pooled_sqlite_connections_plan_without_bound_values() {
    let test_db = crate::common::TestDb::sqlite();
    let db = test_db.connect().await;
    let pool = db.get_sqlite_connection_pool();
    // More than one connection: each is set as it opens.
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut connection = pool.acquire().await.unwrap();
        let mut handle = connection.lock_handle().await.unwrap();
        let raw = handle.as_raw_handle().as_ptr();
        // SAFETY: the handle is locked for this task until dropped below.
        let stable = unsafe { billing_starter::db::plans_are_stable(raw) };
        assert_eq!(stable, Some(true));
        drop(handle);
        held.push(connection);
    }
    drop(held);
    db.close().await.unwrap();
}
