//! A `tower_sessions::SessionStore` over sea-orm: sessions live in the app's own
//! database (SQLite or PostgreSQL), so there is no second sqlx version and no
//! extra service. The cookie carries only the random session id.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sea_orm::{
    sea_query::OnConflict, ActiveValue::Set, ColumnTrait, DatabaseConnection, DbBackend, DbErr,
    EntityTrait, QueryFilter, Statement,
};
use time::OffsetDateTime;
use tower_sessions::{
    session::{Id, Record},
    session_store::{self, ExpiredDeletion},
    SessionStore,
};

use crate::db::{
    entities::{accounts, sessions, users},
    reads::{Kind, Reads, Shape},
};

/// The user of an unexpired stored session, the account they chose to act in
/// and every account they belong to with their role there, read with the
/// session in one query: the ids under `USER_ID_KEY` and `ACCOUNT_ID_KEY` in the
/// session's JSON, as `start_session` and the account switcher store them. One
/// row per membership (a user without any still gets theirs, its account NULL).
pub async fn user_of(reads: &Reads, id: &Id) -> Result<Option<super::SignedIn>, DbErr> {
    static SHAPE: std::sync::OnceLock<Shape> = std::sync::OnceLock::new();
    let shape = SHAPE.get_or_init(|| {
        Shape::default()
            .entity::<users::Entity>("")
            .entity::<accounts::Entity>(ACCOUNT_PREFIX)
            .column("chosen_account", Kind::I64)
            .column("member_role", Kind::Text)
    });
    let backend = reads.backend();
    let rows = reads
        .all(
            Statement::from_sql_and_values(
                backend,
                user_of_sql(backend),
                [id.to_string().into(), Utc::now().into()],
            ),
            shape,
        )
        .await?;
    let Some(first) = rows.first() else {
        return Ok(None);
    };
    let user = first.model::<users::Entity>("")?;
    let chosen_account = first.get("", "chosen_account")?;
    let mut accounts = Vec::with_capacity(rows.len());
    for row in &rows {
        if row.get::<Option<i64>>(ACCOUNT_PREFIX, "id")?.is_some() {
            accounts.push((
                row.model::<accounts::Entity>(ACCOUNT_PREFIX)?,
                row.get("", "member_role")?,
            ));
        }
    }
    crate::teams::members::in_switcher_order(&mut accounts);
    Ok(Some(super::SignedIn {
        user,
        chosen_account,
        accounts,
    }))
}

/// How [`user_of`] names the account's columns (`a_id`, `a_name`, …) beside the user's.
const ACCOUNT_PREFIX: &str = "a_";

/// [`user_of`]'s statement, built once per backend from the entity's columns.
fn user_of_sql(backend: DbBackend) -> &'static str {
    use sea_orm::{IdenStatic, Iterable};
    static SQLITE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    static POSTGRES: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let build = || {
        let (key, account) = (super::USER_ID_KEY, super::ACCOUNT_ID_KEY);
        let (user_id, chosen) = match backend {
            DbBackend::Postgres => (
                format!("(s.data::jsonb ->> '{key}')::bigint"),
                format!("(s.data::jsonb ->> '{account}')::bigint"),
            ),
            _ => (
                format!("json_extract(s.data, '$.{key}')"),
                format!("json_extract(s.data, '$.{account}')"),
            ),
        };
        let account_columns: Vec<String> = accounts::Column::iter()
            .map(|column| {
                let name = column.as_str();
                format!(r#"a."{name}" AS "{ACCOUNT_PREFIX}{name}""#)
            })
            .collect();
        let (first, second) = match backend {
            DbBackend::Postgres => ("$1", "$2"),
            _ => ("?", "?"),
        };
        format!(
            "SELECT u.*, {chosen} AS chosen_account, m.role AS member_role, {} \
             FROM sessions s JOIN users u ON u.id = {user_id} \
             LEFT JOIN memberships m ON m.user_id = u.id \
             LEFT JOIN accounts a ON a.id = m.account_id \
             WHERE s.id = {first} AND s.expiry_date > {second}",
            account_columns.join(", ")
        )
    };
    match backend {
        DbBackend::Postgres => POSTGRES.get_or_init(build),
        _ => SQLITE.get_or_init(build),
    }
}

/// Ends every stored session of `user_id` except `keep` (the session making the
/// request, when it stays signed in); how many were ended. The user id is read
/// from the session's JSON exactly as [`user_of`] reads it.
pub async fn end_sessions_of<C: sea_orm::ConnectionTrait>(
    conn: &C,
    user_id: i64,
    keep: Option<&Id>,
) -> Result<u64, DbErr> {
    let key = super::USER_ID_KEY;
    let backend = conn.get_database_backend();
    let sql = match backend {
        DbBackend::Postgres => format!(
            "DELETE FROM sessions WHERE (data::jsonb ->> '{key}')::bigint = $1 AND id <> $2"
        ),
        _ => format!("DELETE FROM sessions WHERE json_extract(data, '$.{key}') = ? AND id <> ?"),
    };
    let keep = keep.map(|id| id.to_string()).unwrap_or_default();
    let done = conn
        .execute_raw(Statement::from_sql_and_values(
            backend,
            sql,
            [user_id.into(), keep.into()],
        ))
        .await?;
    Ok(done.rows_affected())
}

#[derive(Clone, Debug)]
pub struct SeaOrmSessionStore {
    db: DatabaseConnection,
}

impl SeaOrmSessionStore {
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }
}

fn backend(err: impl std::fmt::Display) -> session_store::Error {
    session_store::Error::Backend(err.to_string())
}

fn to_chrono(at: OffsetDateTime) -> DateTime<Utc> {
    DateTime::from_timestamp(at.unix_timestamp(), at.nanosecond()).unwrap_or_default()
}

fn to_time(at: DateTime<Utc>) -> session_store::Result<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(at.timestamp_micros()) * 1_000)
        .map_err(|err| session_store::Error::Decode(err.to_string()))
}

fn row(record: &Record) -> session_store::Result<sessions::ActiveModel> {
    Ok(sessions::ActiveModel {
        id: Set(record.id.to_string()),
        data: Set(serde_json::to_string(&record.data)
            .map_err(|err| session_store::Error::Encode(err.to_string()))?),
        expiry_date: Set(to_chrono(record.expiry_date)),
    })
}

#[async_trait]
impl SessionStore for SeaOrmSessionStore {
    /// Inserts under a fresh id; on the (astronomically unlikely) collision with an
    /// existing session, draws another id rather than overwrite someone's session.
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        for _ in 0..8 {
            let inserted = sessions::Entity::insert(row(record)?)
                .on_conflict(
                    OnConflict::column(sessions::Column::Id)
                        .do_nothing()
                        .to_owned(),
                )
                .exec_without_returning(&self.db)
                .await
                .map_err(backend)?;
            if inserted == 1 {
                return Ok(());
            }
            record.id = Id::default();
        }
        Err(backend("could not allocate a unique session id"))
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        sessions::Entity::insert(row(record)?)
            .on_conflict(
                OnConflict::column(sessions::Column::Id)
                    .update_columns([sessions::Column::Data, sessions::Column::ExpiryDate])
                    .to_owned(),
            )
            .exec_without_returning(&self.db)
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn load(&self, session_id: &Id) -> session_store::Result<Option<Record>> {
        let found = sessions::Entity::find_by_id(session_id.to_string())
            .filter(sessions::Column::ExpiryDate.gt(Utc::now()))
            .one(&self.db)
            .await
            .map_err(backend)?;
        found
            .map(|row| {
                Ok(Record {
                    id: *session_id,
                    data: serde_json::from_str(&row.data)
                        .map_err(|err| session_store::Error::Decode(err.to_string()))?,
                    expiry_date: to_time(row.expiry_date)?,
                })
            })
            .transpose()
    }

    async fn delete(&self, session_id: &Id) -> session_store::Result<()> {
        sessions::Entity::delete_by_id(session_id.to_string())
            .exec(&self.db)
            .await
            .map_err(backend)?;
        Ok(())
    }
}

#[async_trait]
impl ExpiredDeletion for SeaOrmSessionStore {
    async fn delete_expired(&self) -> session_store::Result<()> {
        delete_expired(&self.db).await.map_err(backend)?;
        Ok(())
    }
}

/// Removes every expired session; returns how many (the store's
/// `delete_expired`, and `operations::sweep` on the schedule).
pub async fn delete_expired(db: &DatabaseConnection) -> Result<u64, DbErr> {
    Ok(sessions::Entity::delete_many()
        .filter(sessions::Column::ExpiryDate.lte(Utc::now()))
        .exec(db)
        .await?
        .rows_affected)
}
