//! The per-request reads made on the request's thread (`db::reads`): the same
//! rows as sea-orm reads through sqlx, and really made without sqlx on SQLite.

use billing_starter::{
    billing::snapshot,
    db::{
        entities::{
            accounts as billing_accounts, invoices, memberships, one_time_purchases,
            one_time_purchases::PurchaseStatus, sessions, subscriptions, users,
        },
        reads::Reads,
    },
};
use chrono::{DurationRound, TimeDelta, Utc};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter,
    TryIntoModel,
};
use tower_sessions::{session::Record, SessionStore};

use crate::common::on_each_backend;

/// Every row of `E` read both ways decodes to the same models, and there are some.
async fn same_rows<E>(db: &DatabaseConnection, reads: &Reads)
where
    E: EntityTrait,
    E::Model: PartialEq + std::fmt::Debug,
    E::ActiveModel: TryIntoModel<E::Model>,
{
    let read = reads.models(E::find()).await.unwrap();
    let through_sea_orm = E::find().all(db).await.unwrap();
    assert!(
        !read.is_empty(),
        "{} has rows to compare",
        E::default().table_name()
    );
    assert_eq!(read, through_sea_orm, "{}", E::default().table_name());
}

#[tokio::test]
async fn the_requests_reads_decode_every_column_as_sea_orm_does() {
    on_each_backend(|db| async move {
        billing_starter::db::migrate(&db).await.unwrap();
        let user = crate::common::sign_up(&db, "reads@example.com").await;
        let account = billing_accounts::Entity::find()
            .filter(billing_accounts::Column::PersonalUserId.eq(user.id))
            .one(&db)
            .await
            .unwrap()
            .unwrap();
        // Times with sub-second parts, as Utc::now() has (PostgreSQL keeps micros).
        let now = Utc::now()
            .duration_trunc(TimeDelta::microseconds(1))
            .unwrap();
        let later = now + TimeDelta::days(30);
        // One row with every optional column set, one with none of them.
        subscriptions::ActiveModel {
            account_id: Set(Some(account.id)),
            stripe_subscription_id: Set("sub_full".into()),
            stripe_customer_id: Set("cus_reads".into()),
            stripe_price_id: Set("price_pro".into()),
            plan_id: Set(Some("pro".into())),
            price_lookup_key: Set(Some("pro_monthly".into())),
            interval: Set(Some("month".into())),
            quantity: Set(3),
            status: Set("trialing".into()),
            current_period_start: Set(Some(now)),
            current_period_end: Set(Some(later)),
            cancel_at_period_end: Set(true),
            cancel_at: Set(Some(later)),
            canceled_at: Set(Some(now)),
            ended_at: Set(Some(later)),
            trial_start: Set(Some(now)),
            trial_end: Set(Some(later)),
            stripe_state_at: Set(1_765_000_000),
            stripe_state_read: Set(true),
            created_at: Set(now),
            updated_at: Set(now),
            ..Default::default()
        }
        .insert(&db)
        .await
        .unwrap();
        subscriptions::ActiveModel {
            account_id: Set(None),
            stripe_subscription_id: Set("sub_bare".into()),
            stripe_customer_id: Set("cus_other".into()),
            stripe_price_id: Set("price_basic".into()),
            plan_id: Set(None),
            price_lookup_key: Set(None),
            interval: Set(None),
            quantity: Set(1),
            status: Set("active".into()),
            current_period_start: Set(None),
            current_period_end: Set(None),
            cancel_at_period_end: Set(false),
            cancel_at: Set(None),
            canceled_at: Set(None),
            ended_at: Set(None),
            trial_start: Set(None),
            trial_end: Set(None),
            stripe_state_at: Set(0),
            stripe_state_read: Set(false),
            created_at: Set(now),
            updated_at: Set(now),
            ..Default::default()
        }
        .insert(&db)
        .await
        .unwrap();
        for (minutes, status) in [(0, PurchaseStatus::Paid), (5, PurchaseStatus::Refunded)] {
            one_time_purchases::ActiveModel {
                account_id: Set(Some(account.id)),
                stripe_customer_id: Set(Some("cus_reads".into())),
                stripe_checkout_session_id: Set(Some(format!("cs_{minutes}"))),
                stripe_payment_intent_id: Set(None),
                stripe_price_id: Set("price_pack".into()),
                plan_id: Set(Some("pack".into())),
                price_lookup_key: Set(None),
                quantity: Set(2),
                amount_total: Set(4_900_000_000),
                currency: Set("eur".into()),
                status: Set(status),
                refunded_at: Set((status == PurchaseStatus::Refunded).then_some(later)),
                reversed_at: Set(None),
                stripe_state_at: Set(1_765_000_000 + minutes),
                created_at: Set(now + TimeDelta::minutes(minutes)),
                updated_at: Set(now),
                ..Default::default()
            }
            .insert(&db)
            .await
            .unwrap();
        }
        for (id, number) in [("in_1", Some("A-0001")), ("in_2", None)] {
            invoices::ActiveModel {
                account_id: Set(number.map(|_| account.id)),
                stripe_invoice_id: Set(id.into()),
                stripe_customer_id: Set(number.map(|_| "cus_reads".into())),
                stripe_subscription_id: Set(number.map(|_| "sub_full".into())),
                number: Set(number.map(str::to_owned)),
                amount_total: Set(1_900),
                currency: Set("usd".into()),
                status: Set("paid".into()),
                period_start: Set(number.map(|_| 1_765_000_000)),
                period_end: Set(number.map(|_| 1_767_000_000)),
                hosted_invoice_url: Set(number.map(|_| "https://invoice.example/1".into())),
                invoice_pdf: Set(None),
                stripe_created: Set(1_765_000_000),
                stripe_state_at: Set(1_765_000_000),
                created_at: Set(now),
                updated_at: Set(now),
                ..Default::default()
            }
            .insert(&db)
            .await
            .unwrap();
        }
        let store = billing_starter::auth::session_store::SeaOrmSessionStore::new(db.clone());
        let mut record = Record {
            id: Default::default(),
            data: Default::default(),
            expiry_date: time::OffsetDateTime::now_utc() + time::Duration::minutes(30),
        };
        store.create(&mut record).await.unwrap();

        let reads = Reads::new(&db);
        same_rows::<users::Entity>(&db, &reads).await;
        same_rows::<billing_accounts::Entity>(&db, &reads).await;
        same_rows::<memberships::Entity>(&db, &reads).await;
        same_rows::<subscriptions::Entity>(&db, &reads).await;
        same_rows::<one_time_purchases::Entity>(&db, &reads).await;
        same_rows::<sessions::Entity>(&db, &reads).await;
        same_rows::<invoices::Entity>(&db, &reads).await;

        let read = snapshot::read(&reads, account.id).await.unwrap();
        assert_eq!(read, snapshot::load(&db, account.id).await.unwrap());
        assert_eq!(
            (read.subscriptions.len(), read.purchases.len()),
            (1, 2),
            "the account's own rows"
        );
    })
    .await;
}

#[tokio::test]
async fn on_a_sqlite_file_the_requests_reads_need_no_sqlx_connection() {
    on_each_backend(|db| async move {
        billing_starter::db::migrate(&db).await.unwrap();
        let reads = Reads::new(&db);
        let sqlite = db.get_database_backend() == sea_orm::DbBackend::Sqlite;
        assert_eq!(reads.local(), sqlite, "local reads on SQLite only");
        let user = crate::common::sign_up(&db, "no-sqlx@example.com").await;
        if sqlite {
            // With sqlx's pool closed, only a read of the file itself can answer.
            db.close_by_ref().await.unwrap();
            let found = reads
                .models(users::Entity::find())
                .await
                .expect("read without sqlx");
            assert_eq!(found, [user]);
        }
    })
    .await;
}

/// `Reads::in_one_snapshot`: the reads inside see the database as at the first
/// of them, a write committed meanwhile only after the scope; a scope leaves
/// nothing behind for the next.
#[tokio::test]
async fn reads_in_one_snapshot_see_one_state_and_the_next_scope_sees_the_new_one() {
    on_each_backend(|db| async move {
        billing_starter::db::migrate(&db).await.unwrap();
        let reads = Reads::new(&db);
        crate::common::sign_up(&db, "first@example.com").await;
        let count = || async { reads.models(users::Entity::find()).await.unwrap().len() };
        let (before, during) = reads
            .in_one_snapshot(async {
                let before = count().await;
                crate::common::sign_up(&db, "second@example.com").await;
                (before, count().await)
            })
            .await;
        assert_eq!(before, 1);
        if reads.local() {
            assert_eq!(during, 1, "one snapshot: the sign-up is not seen inside");
        } else {
            // PostgreSQL reads through sea-orm, each its own statement.
            assert_eq!(during, 2);
        }
        assert_eq!(count().await, 2, "after the scope, the new state");
        let again = reads.in_one_snapshot(count()).await;
        assert_eq!(again, 2, "the next scope starts from the new state");
    })
    .await;
}

/// A snapshot scope holds the first SQLite file read in it; another file's
/// reads in the scope go their usual way, and each file keeps its own
/// connections afterwards.
#[tokio::test]
async fn a_snapshot_scope_holds_one_file_and_leaves_another_as_it_is() {
    let (first_db, other_db) = (
        crate::common::TestDb::sqlite(),
        crate::common::TestDb::sqlite(),
    );
    let (first, other) = (first_db.connect().await, other_db.connect().await);
    for db in [&first, &other] {
        billing_starter::db::migrate(db).await.unwrap();
        crate::common::sign_up(db, "one@example.com").await;
    }
    let (first_reads, other_reads) = (Reads::new(&first), Reads::new(&other));
    let users = |reads: &Reads| {
        let reads = reads.clone();
        async move { reads.models(users::Entity::find()).await.unwrap().len() }
    };
    let seen = first_reads
        .in_one_snapshot(async {
            let first_before = users(&first_reads).await;
            let other_before = users(&other_reads).await;
            crate::common::sign_up(&first, "two@example.com").await;
            crate::common::sign_up(&other, "two@example.com").await;
            (
                first_before,
                other_before,
                users(&first_reads).await,
                users(&other_reads).await,
            )
        })
        .await;
    assert_eq!(
        seen,
        (1, 1, 1, 2),
        "the first file's snapshot, the other's latest"
    );
    assert_eq!(
        (users(&first_reads).await, users(&other_reads).await),
        (2, 2)
    );
}

/// Snapshot scopes hold their connection across the awaits of their reads:
/// 64 of them at once open at most 16 connections on the request's thread, the
/// rest read through sqlx, every read answers, and the idle ones kept after are
/// within the bound too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_snapshots_open_a_bounded_number_of_connections() {
    let db_file = crate::common::TestDb::sqlite();
    let db = db_file.connect().await;
    billing_starter::db::migrate(&db).await.unwrap();
    crate::common::sign_up(&db, "one@example.com").await;
    let reads = Reads::new(&db);
    let users =
        |reads: Reads| async move { reads.models(users::Entity::find()).await.unwrap().len() };
    // All 64 scopes have read once and wait; the count is taken; they go on.
    let all_in = std::sync::Arc::new(tokio::sync::Barrier::new(65));
    let go_on = std::sync::Arc::new(tokio::sync::Barrier::new(65));
    let scopes: Vec<_> = (0..64)
        .map(|_| {
            let (reads, all_in, go_on) = (reads.clone(), all_in.clone(), go_on.clone());
            tokio::spawn(async move {
                reads
                    .clone()
                    .in_one_snapshot(async {
                        let before = users(reads.clone()).await;
                        all_in.wait().await;
                        go_on.wait().await;
                        (before, users(reads.clone()).await)
                    })
                    .await
            })
        })
        .collect();
    all_in.wait().await;
    let open = reads.local_connections();
    go_on.wait().await;
    for scope in scopes {
        assert_eq!(scope.await.unwrap(), (1, 1));
    }
    assert_eq!(open, 16, "64 scopes in flight hold the bound, no more");
    assert!(reads.local_connections() <= 16);
}
