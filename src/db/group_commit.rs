//! SQLite's busiest writes committed in groups: a webhook's claim and effects,
//! a tracked use.
//!
//! SQLite has one writer, and with `synchronous = FULL` every commit waits for
//! the disk: an fsync took 0.4 ms on the bench machine, as long as a whole
//! inbox-shaped transaction of the write baseline, so writes one transaction
//! each were bound by the disk rather than by their work (issue 23). Here one
//! task writes for the whole pool: it takes the write turn, opens one
//! transaction, runs every write waiting at that moment each in its own
//! savepoint, commits once, and only then answers them. A write that fails rolls
//! back its savepoint alone and answers its own error; if the commit (or a
//! savepoint) fails, every write of the group is answered with that error and
//! none took effect. So an answer still means "on disk", and nothing waits for
//! a group to fill: under light load a group is one write.
//!
//! The work runs in the writer's task, not the request's: a client that hangs up
//! cannot cancel a write half-way through the others' group. PostgreSQL commits
//! each write in its own transaction, concurrently, as before; its own WAL
//! flushes already group concurrent commits.
//!
//! Inside a grouped write every read must go through the transaction it is
//! given (it sees the group's earlier writes); `db::reads` sees only commits.

use std::{
    future::Future,
    panic::AssertUnwindSafe,
    pin::Pin,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, OnceLock,
    },
};

use futures_util::FutureExt;
use sea_orm::{
    DatabaseConnection, DatabaseTransaction, DbBackend, DbErr, SqliteTransactionMode,
    TransactionOptions, TransactionTrait,
};
use tokio::sync::{mpsc, oneshot};
use tracing::Instrument;

/// The most writes one commit carries: enough to take a 32-request burst in
/// one fsync, few enough that the last of them is not kept long.
const MOST_IN_A_GROUP: usize = 64;
/// Writes waiting for the writer before callers wait to hand theirs over.
const QUEUE: usize = 1024;

/// A boxed future that borrows the group's transaction.
pub type WriteFuture<'t, T> = Pin<Box<dyn Future<Output = T> + Send + 't>>;

/// How a write is answered once its group's fate is known (`None`: committed).
type Answer = Box<dyn FnOnce(Option<DbErr>) + Send>;

/// What a finished write tells the writer: keep its savepoint or not, and how
/// to answer it.
struct Done {
    keep: bool,
    answer: Answer,
}

/// One write handed to the writer; given the error instead of a transaction
/// when the group could not be opened.
type Job =
    Box<dyn for<'t> FnOnce(Result<&'t DatabaseTransaction, DbErr>) -> WriteFuture<'t, Done> + Send>;

/// Commits grouped writes for one pool (see the module's doc).
pub struct GroupCommit {
    db: DatabaseConnection,
    /// The writer, started on the first write (a runtime is running then).
    writer: OnceLock<mpsc::Sender<Job>>,
    tally: Arc<Tally>,
}

/// Groups committed and the writes they carried, since the start.
#[derive(Default)]
struct Tally {
    groups: AtomicU64,
    writes: AtomicU64,
}

impl GroupCommit {
    pub fn new(db: DatabaseConnection) -> Self {
        GroupCommit {
            db,
            writer: OnceLock::new(),
            tally: Arc::default(),
        }
    }

    /// How many groups this pool's writer has committed, and how many writes
    /// they carried (0 and 0 on PostgreSQL).
    pub fn committed(&self) -> (u64, u64) {
        (
            self.tally.groups.load(Ordering::Relaxed),
            self.tally.writes.load(Ordering::Relaxed),
        )
    }

    /// Runs `work` in a transaction and answers once it is committed: on SQLite
    /// in a savepoint of the writer's group, elsewhere in a transaction of its
    /// own. `work`'s error rolls back its writes and is the answer.
    pub async fn run<T, E, F>(&self, work: F) -> Result<T, E>
    where
        F: for<'t> FnOnce(&'t DatabaseTransaction) -> WriteFuture<'t, Result<T, E>>
            + Send
            + 'static,
        T: Send + 'static,
        E: From<DbErr> + Send + 'static,
    {
        if self.db.get_database_backend() != DbBackend::Sqlite {
            let tx = self.db.begin().await?;
            let value = work(&tx).await?;
            tx.commit().await?;
            return Ok(value);
        }
        let (reply, answer) = oneshot::channel();
        let span = tracing::Span::current();
        let job: Job = Box::new(move |tx| {
            Box::pin(
                async move {
                    let result = match tx {
                        Ok(tx) => work(tx).await,
                        Err(err) => Err(E::from(err)),
                    };
                    Done {
                        keep: result.is_ok(),
                        answer: Box::new(move |failed: Option<DbErr>| {
                            let result = match (result, failed) {
                                (Ok(_), Some(err)) => Err(E::from(err)),
                                (result, _) => result,
                            };
                            // The caller may have gone; the write stands.
                            let _ = reply.send(result);
                        }),
                    }
                }
                .instrument(span),
            )
        });
        let gone = || E::from(DbErr::Custom("the grouped write was not committed".into()));
        self.writer().send(job).await.map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }

    fn writer(&self) -> &mpsc::Sender<Job> {
        self.writer.get_or_init(|| {
            let (sender, jobs) = mpsc::channel(QUEUE);
            tokio::spawn(write_in_groups(self.db.clone(), jobs, self.tally.clone()));
            sender
        })
    }
}

/// The same error again for another write of the group (`DbErr` is not `Clone`).
fn again(err: &DbErr) -> DbErr {
    DbErr::Custom(format!("the group's transaction failed: {err}"))
}

/// Answers `job` with `err` without running its work (its group could not
/// give it a transaction).
async fn refuse(job: Job, err: &DbErr) {
    let done = job(Err(again(err))).await;
    (done.answer)(None);
}

/// The writer: one group per turn, until every sender is gone.
async fn write_in_groups(db: DatabaseConnection, mut jobs: mpsc::Receiver<Job>, tally: Arc<Tally>) {
    while let Some(first) = jobs.recv().await {
        let turn = super::write_turn(&db).await;
        // IMMEDIATE takes the write lock at once, so no write of the group finds
        // its snapshot stale because another connection wrote since.
        let opened = db
            .begin_with_options(TransactionOptions {
                sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
                ..TransactionOptions::default()
            })
            .await;
        let group = match opened {
            Ok(group) => group,
            Err(err) => {
                tracing::error!(error = %err, "could not open a group of writes");
                refuse(first, &err).await;
                while let Ok(job) = jobs.try_recv() {
                    refuse(job, &err).await;
                }
                continue;
            }
        };
        let mut waiting = Vec::new();
        let mut broken = None;
        let mut next = Some(first);
        while let Some(job) = next.take() {
            match write_one(&group, job).await {
                Ok(Some(answer)) => waiting.push(answer),
                Ok(None) => {}
                Err(err) => {
                    broken = Some(err);
                    break;
                }
            }
            if waiting.len() < MOST_IN_A_GROUP {
                next = jobs.try_recv().ok();
            }
        }
        let outcome = match broken {
            None => group.commit().await,
            Some(err) => {
                if let Err(rollback) = group.rollback().await {
                    tracing::error!(error = %rollback, "could not roll the group back");
                }
                Err(err)
            }
        };
        drop(turn);
        match &outcome {
            Ok(()) => {
                tally.groups.fetch_add(1, Ordering::Relaxed);
                tally
                    .writes
                    .fetch_add(waiting.len() as u64, Ordering::Relaxed);
            }
            Err(err) => tracing::error!(
                error = %err,
                writes = waiting.len(),
                "a group of writes was not committed"
            ),
        }
        crate::prometheus::write_group(waiting.len(), outcome.is_ok());
        for answer in waiting {
            answer(outcome.as_ref().err().map(again));
        }
    }
}

/// Runs one write in a savepoint of `group`. `Ok(Some(answer))`: its writes
/// wait for the commit; `Ok(None)`: it failed, rolled back alone and was
/// answered; `Err`: the group can no longer be trusted (a savepoint that could
/// not be taken, kept or rolled back — SQLite may have rolled back the whole
/// transaction — or a write that panicked) and must be rolled back.
async fn write_one(group: &DatabaseTransaction, job: Job) -> Result<Option<Answer>, DbErr> {
    let savepoint = match group.begin().await {
        Ok(savepoint) => savepoint,
        Err(err) => {
            refuse(job, &err).await;
            return Err(err);
        }
    };
    // A panic drops the write's reply, so its caller hears the write was lost.
    let Ok(done) = AssertUnwindSafe(job(Ok(&savepoint))).catch_unwind().await else {
        let _ = savepoint.rollback().await;
        return Err(DbErr::Custom("a grouped write panicked".into()));
    };
    let settled = if done.keep {
        savepoint.commit().await
    } else {
        savepoint.rollback().await
    };
    match settled {
        Ok(()) if done.keep => Ok(Some(done.answer)),
        Ok(()) => {
            (done.answer)(None);
            Ok(None)
        }
        Err(err) => {
            (done.answer)(Some(again(&err)));
            Err(err)
        }
    }
}
