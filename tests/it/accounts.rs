//! Sign-up and sign-in on real databases.

use crate::common::on_each_backend;
use billing_starter::auth::accounts::{self, AccountError};

#[tokio::test]
async fn sign_up_then_sign_in_with_clear_errors() {
    on_each_backend(|db| async move {
        billing_starter::db::migrate(&db).await.unwrap();

        let user = accounts::sign_up(
            &db,
            &Default::default(),
            &crate::common::mailer(),
            " Ada@Example.com",
            "correct horse battery",
        )
        .await
        .unwrap();
        assert_eq!(user.email, "ada@example.com");
        assert!(
            user.password_hash.starts_with("$argon2id$"),
            "stored as an argon2id hash, never plain"
        );

        let again = accounts::sign_up(
            &db,
            &Default::default(),
            &crate::common::mailer(),
            "ada@example.com",
            "another good passphrase",
        )
        .await;
        assert!(matches!(again, Err(AccountError::EmailTaken)), "{again:?}");
        assert!(matches!(
            accounts::sign_up(
                &db,
                &Default::default(),
                &crate::common::mailer(),
                "bob@example.com",
                "short"
            )
            .await,
            Err(AccountError::WeakPassword(_))
        ));

        let signed_in = accounts::sign_in(
            &db,
            &Default::default(),
            "ADA@example.com ",
            "correct horse battery",
        )
        .await
        .unwrap();
        assert_eq!(signed_in.id, user.id);
        for (email, password) in [
            ("ada@example.com", "wrong horse battery"),
            ("nobody@example.com", "correct horse battery"),
            ("not an email", "x"),
        ] {
            let err = accounts::sign_in(&db, &Default::default(), email, password)
                .await
                .unwrap_err();
            assert_eq!(err.to_string(), "Wrong email or password.", "{email}");
        }

        // Two simultaneous sign-ups for one email: exactly one account.
        let hashing = accounts::HashQueue::default();
        let mailer = crate::common::mailer();
        let (a, b) = tokio::join!(
            accounts::sign_up(
                &db,
                &hashing,
                &mailer,
                "race@example.com",
                "first good passphrase"
            ),
            accounts::sign_up(
                &db,
                &hashing,
                &mailer,
                "race@example.com",
                "second good passphrase"
            ),
        );
        assert_eq!(
            [a.is_ok(), b.is_ok()].iter().filter(|ok| **ok).count(),
            1,
            "{a:?} {b:?}"
        );
        let loser = if a.is_ok() { &b } else { &a };
        assert!(
            matches!(loser, Err(AccountError::EmailTaken)),
            "the loser is told the email is taken: {loser:?}"
        );
        db.close().await.unwrap();
    })
    .await;
}
