//! Grouped writes (`db::group_commit`): on SQLite many writes share one commit,
//! each in its own savepoint, and each is answered only once its group is on
//! disk; a write that fails takes only its own changes back; a group that
//! cannot commit answers every write with the error.

use std::{sync::Arc, time::Duration};

use billing_starter::db::group_commit::GroupCommit;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr, Statement};

use crate::common::{on_each_backend, TestDb};

async fn execute(db: &impl ConnectionTrait, sql: &str) -> Result<u64, DbErr> {
    let backend = db.get_database_backend();
    Ok(db
        .execute_raw(Statement::from_string(backend, sql.to_owned()))
        .await?
        .rows_affected())
}

/// The numbers in `tally`, read through the pool: what is committed.
async fn committed_numbers(db: &DatabaseConnection) -> Vec<i64> {
    let rows = db
        .query_all_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT n FROM tally ORDER BY n",
        ))
        .await
        .unwrap();
    rows.iter()
        .map(|row| row.try_get("", "n").unwrap())
        .collect()
}

/// A `tally` table in `db` and the grouped writes of its pool.
async fn tally(db: &DatabaseConnection) -> Arc<GroupCommit> {
    execute(db, "CREATE TABLE tally (n BIGINT NOT NULL UNIQUE)")
        .await
        .unwrap();
    Arc::new(GroupCommit::new(db.clone()))
}

/// Writes `n` into `tally`, after `pause` holding its transaction.
async fn write(group: &GroupCommit, n: i64, pause: Duration) -> Result<(), DbErr> {
    group
        .run(move |tx| {
            Box::pin(async move {
                execute(tx, &format!("INSERT INTO tally (n) VALUES ({n})")).await?;
                tokio::time::sleep(pause).await;
                Ok(())
            })
        })
        .await
}

#[tokio::test]
async fn writes_share_commits_and_each_answer_means_committed() {
    on_each_backend(|db| async move {
        let group = tally(&db).await;
        // The first write holds the writer for a while, so the others queue
        // up behind it as a burst of requests does.
        let first = tokio::spawn({
            let group = group.clone();
            async move { write(&group, 0, Duration::from_millis(150)).await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        let mut tasks = Vec::new();
        for n in 1..=32 {
            let (group, db) = (group.clone(), db.clone());
            tasks.push(tokio::spawn(async move {
                match n {
                    // The first write's number again: the unique index refuses it.
                    7 => write(&group, 0, Duration::ZERO).await.map(|()| false),
                    // Writes, then fails: its row must go with it.
                    9 => group
                        .run(|tx| {
                            Box::pin(async move {
                                execute(tx, "INSERT INTO tally (n) VALUES (9)").await?;
                                Err::<(), _>(DbErr::Custom("changed its mind".into()))
                            })
                        })
                        .await
                        .map(|()| false),
                    _ => {
                        write(&group, n, Duration::ZERO).await?;
                        // Answered: another connection sees it.
                        Ok(committed_numbers(&db).await.contains(&n))
                    }
                }
            }));
        }
        first.await.unwrap().unwrap();
        for (n, task) in (1..=32).zip(tasks) {
            let answer = task.await.unwrap();
            match n {
                7 | 9 => assert!(answer.is_err(), "write {n} fails: {answer:?}"),
                _ => assert_eq!(answer, Ok(true), "write {n} is committed when answered"),
            }
        }
        let expected: Vec<i64> = (0..=32).filter(|n| *n != 7 && *n != 9).collect();
        assert_eq!(committed_numbers(&db).await, expected);
        let (groups, writes) = group.committed();
        if db.get_database_backend() == sea_orm::DbBackend::Sqlite {
            assert_eq!(writes, 31, "every kept write was carried by a group");
            assert!(
                groups <= 4,
                "31 writes queued behind one took {groups} commits"
            );
        } else {
            assert_eq!((groups, writes), (0, 0), "PostgreSQL commits each alone");
        }
    })
    .await;
}

#[tokio::test]
async fn a_group_that_cannot_commit_answers_every_write_with_the_error() {
    let test_db = TestDb::sqlite();
    let db = test_db.connect().await;
    execute(&db, "CREATE TABLE parent (id INTEGER PRIMARY KEY)")
        .await
        .unwrap();
    // Checked at the commit, not at the insert: the one way to make a
    // commit fail on demand.
    execute(
        &db,
        "CREATE TABLE child (id INTEGER PRIMARY KEY, \
         parent INTEGER REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED)",
    )
    .await
    .unwrap();
    let group = Arc::new(GroupCommit::new(db.clone()));
    let insert = |sql: &'static str, pause: u64| {
        let group = group.clone();
        tokio::spawn(async move {
            group
                .run(move |tx| {
                    Box::pin(async move {
                        execute(tx, sql).await?;
                        tokio::time::sleep(Duration::from_millis(pause)).await;
                        Ok::<_, DbErr>(())
                    })
                })
                .await
        })
    };
    let good = insert("INSERT INTO parent (id) VALUES (1)", 150);
    tokio::time::sleep(Duration::from_millis(20)).await;
    let also_good = insert("INSERT INTO child (id, parent) VALUES (1, 1)", 0);
    let orphan = insert("INSERT INTO child (id, parent) VALUES (2, 999)", 0);
    for task in [good, also_good, orphan] {
        let answer = task.await.unwrap();
        assert!(answer.is_err(), "a write of the failed group: {answer:?}");
    }
    let count = |table: &'static str| {
        let db = db.clone();
        async move {
            db.query_one_raw(Statement::from_string(
                db.get_database_backend(),
                format!("SELECT COUNT(*) AS n FROM {table}"),
            ))
            .await
            .unwrap()
            .unwrap()
            .try_get::<i64>("", "n")
            .unwrap()
        }
    };
    assert_eq!((count("parent").await, count("child").await), (0, 0));
    assert_eq!(group.committed(), (0, 0));
    // The writer goes on with the next group.
    insert("INSERT INTO parent (id) VALUES (2)", 0)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(count("parent").await, 1);
}

#[tokio::test]
async fn a_caller_that_gives_up_does_not_undo_its_write_nor_a_panic_the_writer() {
    let test_db = TestDb::sqlite();
    let db = test_db.connect().await;
    let group = tally(&db).await;
    // A request dropped (its client hung up) half-way through its write.
    let gave_up = tokio::time::timeout(
        Duration::from_millis(20),
        write(&group, 1, Duration::from_millis(100)),
    )
    .await;
    assert!(gave_up.is_err(), "the caller stopped waiting");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(committed_numbers(&db).await, vec![1], "the write stands");

    // A write that panics loses its group, not the writer: the write before
    // it in the group is told it failed, and neither is kept.
    let before = tokio::spawn({
        let group = group.clone();
        async move { write(&group, 3, Duration::from_millis(100)).await }
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    let panics = group
        .run(|tx| {
            Box::pin(async move {
                execute(tx, "INSERT INTO tally (n) VALUES (2)").await?;
                panic!("a bug in a grouped write");
                #[allow(unreachable_code)]
                Ok::<_, DbErr>(())
            })
        })
        .await;
    assert!(panics.is_err());
    assert!(before.await.unwrap().is_err(), "its group was rolled back");
    assert_eq!(committed_numbers(&db).await, vec![1]);
    write(&group, 4, Duration::ZERO).await.unwrap();
    assert!(committed_numbers(&db).await.contains(&4));
}
