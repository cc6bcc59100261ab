//! The session store on real databases.

use std::collections::HashMap;

use crate::common::on_each_backend;
use billing_starter::auth::session_store::SeaOrmSessionStore;
use sea_orm::{EntityTrait, PaginatorTrait};
use time::{Duration, OffsetDateTime};
use tower_sessions::{
    session::{Id, Record},
    session_store::ExpiredDeletion,
    SessionStore,
};

fn record(minutes: i64) -> Record {
    Record {
        id: Id::default(),
        data: HashMap::from([("user_id".to_owned(), serde_json::json!(42))]),
        // Whole seconds: PostgreSQL keeps microseconds, not nanoseconds.
        expiry_date: OffsetDateTime::from_unix_timestamp(
            (OffsetDateTime::now_utc() + Duration::minutes(minutes)).unix_timestamp(),
        )
        .unwrap(),
    }
}

#[tokio::test]
async fn sessions_round_trip_expire_and_are_deleted() {
    on_each_backend(|db| async move {
        billing_starter::db::migrate(&db).await.unwrap();
        let store = SeaOrmSessionStore::new(db.clone());

        let mut live = record(30);
        store.create(&mut live).await.unwrap();
        assert_eq!(store.load(&live.id).await.unwrap(), Some(live.clone()));

        // save() updates in place (sign-in adds data, activity extends expiry).
        live.data.insert("csrf".into(), serde_json::json!("x"));
        live.expiry_date += Duration::minutes(10);
        store.save(&live).await.unwrap();
        assert_eq!(store.load(&live.id).await.unwrap(), Some(live.clone()));

        // create() never overwrites an existing session: a colliding id is redrawn.
        let mut colliding = record(30);
        colliding.id = live.id;
        colliding.data.clear();
        store.create(&mut colliding).await.unwrap();
        assert_ne!(colliding.id, live.id);
        assert_eq!(store.load(&live.id).await.unwrap().unwrap().data.len(), 2);

        // Expired sessions are never loaded, and delete_expired removes them.
        let mut expired = record(-1);
        store.create(&mut expired).await.unwrap();
        assert_eq!(store.load(&expired.id).await.unwrap(), None);
        let rows = || async {
            billing_starter::db::entities::sessions::Entity::find()
                .count(&db)
                .await
                .unwrap()
        };
        assert_eq!(rows().await, 3, "the expired row is stored until swept");
        store.delete_expired().await.unwrap();
        assert_eq!(rows().await, 2, "the sweep removed the expired row only");
        // The scheduled sweep (operations::sweep) removes what expires later.
        let mut later = record(-1);
        store.create(&mut later).await.unwrap();
        let (sessions, _) = billing_starter::operations::sweep(&db).await.unwrap();
        assert_eq!((sessions, rows().await), (1, 2));
        assert_eq!(
            store.load(&live.id).await.unwrap(),
            Some(live.clone()),
            "live sessions survive the sweep"
        );

        store.delete(&live.id).await.unwrap();
        assert_eq!(store.load(&live.id).await.unwrap(), None);
        db.close().await.unwrap();
    })
    .await;
}

/// The one-query lookup of signed-in pages finds the user of a live session only,
/// with every account they belong to and their role there (and no one else's).
#[tokio::test]
async fn a_live_session_finds_its_user_and_their_accounts_in_one_query() {
    use billing_starter::{
        auth::{session_store::user_of, ACCOUNT_ID_KEY, USER_ID_KEY},
        db::entities::{
            accounts::{self as billing_accounts, AccountKind},
            memberships::{self, Role},
        },
        teams::members::acting_with_choices,
    };
    use sea_orm::{ActiveModelTrait, ActiveValue::Set};
    on_each_backend(|db| async move {
        billing_starter::db::migrate(&db).await.unwrap();
        let store = SeaOrmSessionStore::new(db.clone());
        let user = crate::common::sign_up(&db, "one-query@example.com").await;
        let reads = billing_starter::db::reads::Reads::new(&db);
        let other = crate::common::sign_up(&db, "someone-else@example.com").await;
        let now = chrono::Utc::now();
        let organization = |name: &str| billing_accounts::ActiveModel {
            kind: Set(AccountKind::Organization),
            name: Set(name.to_owned()),
            slug: Set(Some(name.to_lowercase())),
            created_at: Set(now),
            updated_at: Set(now),
            ..Default::default()
        };
        let join = |account_id: i64, user_id: i64, role: Role| memberships::ActiveModel {
            account_id: Set(account_id),
            user_id: Set(user_id),
            role: Set(role),
            created_at: Set(now),
            ..Default::default()
        };
        let zeta = organization("Zeta").insert(&db).await.unwrap();
        let alpha = organization("alpha").insert(&db).await.unwrap();
        let theirs = organization("Theirs").insert(&db).await.unwrap();
        for (account, member, role) in [
            (zeta.id, user.id, Role::Admin),
            (alpha.id, user.id, Role::Member),
            (alpha.id, other.id, Role::Owner),
            (theirs.id, other.id, Role::Owner),
        ] {
            join(account, member, role).insert(&db).await.unwrap();
        }

        let signed_in = |minutes, chosen: Option<i64>| {
            let mut record = record(minutes);
            record.data = HashMap::from([(USER_ID_KEY.to_owned(), serde_json::json!(user.id))]);
            if let Some(chosen) = chosen {
                record
                    .data
                    .insert(ACCOUNT_ID_KEY.to_owned(), serde_json::json!(chosen));
            }
            record
        };

        let mut live = signed_in(30, Some(alpha.id));
        store.create(&mut live).await.unwrap();
        let found = user_of(&reads, &live.id).await.unwrap().expect("signed in");
        assert_eq!(found.user, user);
        assert_eq!(found.chosen_account, Some(alpha.id));
        let accounts: Vec<(String, Role)> = found
            .accounts
            .iter()
            .map(|(account, role)| (account.name.clone(), *role))
            .collect();
        assert_eq!(
            accounts,
            [
                ("one-query@example.com".to_owned(), Role::Owner),
                ("alpha".to_owned(), Role::Member),
                ("Zeta".to_owned(), Role::Admin),
            ],
            "personal first, then organizations by name; nobody else's"
        );
        let (member, choices) = acting_with_choices(&found).expect("a member");
        assert_eq!((member.account.id, member.role), (alpha.id, Role::Member));
        assert_eq!(
            choices
                .iter()
                .filter(|c| c.current)
                .map(|c| c.id)
                .collect::<Vec<_>>(),
            [alpha.id]
        );

        // A choice the user is no member of falls back to their personal account.
        let mut elsewhere = signed_in(30, Some(theirs.id));
        store.create(&mut elsewhere).await.unwrap();
        let found = user_of(&reads, &elsewhere.id)
            .await
            .unwrap()
            .expect("signed in");
        let (member, _) = acting_with_choices(&found).expect("a member");
        assert_eq!(member.account.personal_user_id, Some(user.id));

        let mut expired = signed_in(-1, None);
        store.create(&mut expired).await.unwrap();
        assert!(user_of(&reads, &expired.id).await.unwrap().is_none());

        let mut anonymous = record(30);
        anonymous.data.clear();
        store.create(&mut anonymous).await.unwrap();
        assert!(user_of(&reads, &anonymous.id).await.unwrap().is_none());
        assert!(user_of(&reads, &Id::default()).await.unwrap().is_none());

        store.delete(&live.id).await.unwrap();
        assert!(user_of(&reads, &live.id).await.unwrap().is_none());
        db.close().await.unwrap();
    })
    .await;
}
