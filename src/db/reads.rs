//! Reads made on the request's own thread, for the queries every signed-in
//! request makes (the session's user and accounts, the account's billing rows).
//!
//! sqlx runs each SQLite connection on a thread of its own: a query is a command
//! sent to that thread and its rows sent back, a hand-off between threads each way.
//! On a signed-in page that hand-off, not SQLite, was most of the server's time
//! (`perf`: 36 % of the samples on sqlx's SQLite threads and 33 % in the kernel
//! switching and waking threads, SQLite's own code about 5 %; docs/performance.md).
//! So these reads go straight to the same database file through rusqlite, which
//! links the very SQLite library sqlx does (`libsqlite3-sys`). Each is a few
//! indexed rows, mostly from SQLite's page cache: microseconds, which an async
//! worker thread can spend without a hand-off. sqlx has no way to run a query on
//! the caller's thread, hence this second binding for reads only.
//!
//! What stays on the usual path (sea-orm and sqlx): PostgreSQL, an in-memory
//! SQLite, every write and every read inside a transaction. A read that finds
//! the file busy (WAL recovery or a checkpoint holding it) is made on the usual
//! path instead of waiting here.
//!
//! Rows come back as [`Row`]s, read with the same calls on both paths: a column
//! with [`Row::get`], an entity's model with [`Row::model`]. A SQLite value does not
//! say which Rust type it is (an INTEGER is an `i32`, an `i64` or a `bool`; TEXT a
//! string or a time) and sea-orm's values must be of the exact type, so a [`Shape`]
//! names each column's type, taken from the entities where the columns are theirs.
//! (sea-orm's own row type cannot be built outside sea-orm: its `proxy` feature,
//! which would allow it, does not compile with `sqlx-sqlite` in sea-orm 2.0.4.)

use std::{
    cell::RefCell,
    collections::HashMap,
    future::Future,
    path::PathBuf,
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc, Mutex,
    },
};

use chrono::{DateTime, FixedOffset, NaiveDateTime, Offset, SecondsFormat, TimeZone, Utc};
use rusqlite::{
    types::{Value as Param, ValueRef},
    Connection, ErrorCode, OpenFlags,
};
use sea_orm::{
    sea_query::{ColumnType, Value, ValueType},
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, DbErr,
    EntityTrait, FromQueryResult, IdenStatic, Iterable, QueryResult, QueryTrait, Select, Statement,
    TryGetable, TryIntoModel,
};

/// The Rust type a column decodes to, as sea-orm's values tell them apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    I64,
    I32,
    Bool,
    /// Strings and string-valued enums.
    Text,
    /// `DateTime<Utc>`.
    Time,
    F64,
}

impl Kind {
    /// The kind of an entity column (its Rust field's type, nullable or not).
    fn of(column_type: &ColumnType) -> Option<Self> {
        Some(match column_type {
            ColumnType::BigInteger | ColumnType::BigUnsigned => Kind::I64,
            ColumnType::Integer => Kind::I32,
            ColumnType::Boolean => Kind::Bool,
            ColumnType::String(_) | ColumnType::Text | ColumnType::Char(_) => Kind::Text,
            ColumnType::Enum { .. } => Kind::Text,
            ColumnType::TimestampWithTimeZone => Kind::Time,
            ColumnType::Double | ColumnType::Float => Kind::F64,
            _ => return None,
        })
    }
}

/// The type of each column a statement returns, by the name it is returned under.
/// Columns not named here are left out of the row, as a `FromQueryResult` that
/// does not ask for them ignores them.
#[derive(Clone, Debug, Default)]
pub struct Shape(HashMap<String, Kind>);

impl Shape {
    /// Every column of entity `E`, each named `prefix` + the column's name.
    ///
    /// # Panics
    /// On a column type this module does not decode (a new entity field of another
    /// type): a programming error, caught by the first test that reads it.
    pub fn entity<E: EntityTrait>(mut self, prefix: &str) -> Self {
        for column in E::Column::iter() {
            let column_type = column.def().get_column_type().clone();
            let kind = Kind::of(&column_type).unwrap_or_else(|| {
                panic!(
                    "no local read of column {} ({column_type:?})",
                    column.as_str()
                )
            });
            self.0.insert(format!("{prefix}{}", column.as_str()), kind);
        }
        self
    }

    /// One column the statement computes or renames.
    pub fn column(mut self, name: &str, kind: Kind) -> Self {
        self.0.insert(name.to_owned(), kind);
        self
    }
}

/// The reads of one database: on the request's thread for a SQLite file, through
/// sea-orm otherwise.
#[derive(Clone)]
pub struct Reads {
    db: DatabaseConnection,
    local: Option<Arc<LocalFile>>,
}

/// At most this many idle connections are kept open for local reads (two
/// worker threads here, a few more under blocking tasks).
const IDLE_CONNECTIONS: usize = 8;

/// At most this many connections are open for local reads at once; beyond
/// them a read goes through sqlx's pool, which has its own bound. A snapshot
/// scope holds its connection across the awaits of its reads, so without a
/// bound every concurrent signed-in page could open one (each with its own
/// page cache, up to 2 MB): memory grown by the number of requests in flight.
const MOST_OPEN: usize = 16;

struct LocalFile {
    path: PathBuf,
    idle: Mutex<Vec<Counted>>,
    /// Connections open for local reads, idle or in use.
    open: Arc<AtomicUsize>,
    /// Set once the file could not be opened: every read goes through sqlx.
    unavailable: AtomicBool,
}

tokio::task_local! {
    /// A task's reads in one snapshot ([`Reads::in_one_snapshot`]): the
    /// connection they go through, in its read transaction from the first read,
    /// and the file it is of ([`LocalFile::id`]): the first file read in the
    /// scope; reads of another file go their usual way.
    static SNAPSHOT: RefCell<Option<(usize, Counted)>>;
}

/// A local-read connection, counted in its file's `open` until closed.
struct Counted {
    connection: Connection,
    open: Arc<AtomicUsize>,
}

impl std::ops::Deref for Counted {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        &self.connection
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The connection a local read goes through: the task's snapshot's (held
/// already, or `None` to begin it), or one of its own.
enum Through {
    Snapshot(Option<Counted>),
    Own,
}

/// Why a local read was not made.
enum Missed {
    /// The file is busy or cannot be opened: read on the usual path.
    Unavailable,
    Failed(DbErr),
}

impl Reads {
    /// The reads of `db`.
    pub fn new(db: &DatabaseConnection) -> Self {
        let local = match db.get_database_backend() {
            DbBackend::Sqlite => {
                let options = db.get_sqlite_connection_pool().connect_options();
                let path = options.get_filename();
                // sqlx names an in-memory database `file:sqlx-in-memory-N`: not a
                // file another connection can open.
                let in_memory = path.as_os_str() == ":memory:" || path.starts_with("file:");
                (!in_memory).then(|| {
                    Arc::new(LocalFile {
                        path: path.to_owned(),
                        idle: Mutex::default(),
                        open: Arc::default(),
                        unavailable: AtomicBool::new(false),
                    })
                })
            }
            _ => None,
        };
        Self {
            db: db.clone(),
            local,
        }
    }

    /// Whether reads are made on the caller's thread.
    pub fn local(&self) -> bool {
        self.local.is_some()
    }

    /// The database these are reads of.
    pub fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    pub fn backend(&self) -> DbBackend {
        self.db.get_database_backend()
    }

    /// Every model `select` finds.
    pub async fn models<E>(&self, select: Select<E>) -> Result<Vec<E::Model>, DbErr>
    where
        E: EntityTrait,
        E::ActiveModel: TryIntoModel<E::Model>,
    {
        let shape = Shape::default().entity::<E>("");
        self.all(select.build(self.backend()), &shape)
            .await?
            .iter()
            .map(|row| row.model::<E>(""))
            .collect()
    }

    /// Runs `reads` with every local read this task makes in it going through
    /// one connection and one read transaction: one consistent snapshot, and
    /// SQLite's locks taken and released once rather than per statement — a
    /// kept signed-in page's four reads spent 18 % of the server's time in
    /// `unixShmLock` (`perf`, issue 23). Only for reads: a write made meanwhile
    /// is not seen by the reads after it. Elsewhere (PostgreSQL, an in-memory
    /// SQLite) it only runs `reads`.
    pub async fn in_one_snapshot<F: Future>(&self, reads: F) -> F::Output {
        let Some(local) = &self.local else {
            return reads.await;
        };
        let (output, held) = SNAPSHOT
            .scope(RefCell::new(None), async {
                let output = reads.await;
                (output, SNAPSHOT.with(|held| held.borrow_mut().take()))
            })
            .await;
        // Another file's connection (a read of another database in the scope)
        // is closed, which ends its read transaction.
        if let Some((file, connection)) = held {
            if file == local.id() {
                local.end_snapshot(connection);
            }
        }
        output
    }

    /// Connections open for reads on the request's thread (0 where there are
    /// none), at most [`MOST_OPEN`].
    pub fn local_connections(&self) -> usize {
        self.local
            .as_ref()
            .map_or(0, |local| local.open.load(Ordering::Relaxed))
    }

    /// Every row of a read-only `statement`, its columns typed by `shape`.
    pub async fn all(&self, statement: Statement, shape: &Shape) -> Result<Vec<Row>, DbErr> {
        if let Some(local) = &self.local {
            match local.all(&statement, shape) {
                Ok(rows) => return Ok(rows),
                Err(Missed::Failed(err)) => return Err(err),
                Err(Missed::Unavailable) => {}
            }
        }
        Ok(self
            .db
            .query_all_raw(statement)
            .await?
            .into_iter()
            .map(Row::from)
            .collect())
    }
}

/// One row of a read, from either path.
pub struct Row(Inner);

/// A row sea-orm read (inside a transaction, say), read with the same calls.
impl From<QueryResult> for Row {
    fn from(row: QueryResult) -> Self {
        Row(Inner::Sea(row))
    }
}

enum Inner {
    Sea(QueryResult),
    /// The shaped columns' values, by the names they are shared under.
    Local {
        names: Arc<[String]>,
        values: Vec<Value>,
    },
}

impl Row {
    /// The value of column `prefix` + `column`, as sea-orm's `try_get` reads it.
    pub fn get<T: TryGetable + ValueType>(&self, prefix: &str, column: &str) -> Result<T, DbErr> {
        match &self.0 {
            Inner::Sea(row) => row.try_get(prefix, column),
            Inner::Local { .. } => {
                let value = self.local_value(prefix, column)?;
                T::try_from(value.clone()).map_err(|_| {
                    DbErr::Type(format!(
                        "column {prefix}{column}: {value:?} is not a {}",
                        T::type_name()
                    ))
                })
            }
        }
    }

    /// The model of entity `E` whose columns are named `prefix` + their names.
    pub fn model<E>(&self, prefix: &str) -> Result<E::Model, DbErr>
    where
        E: EntityTrait,
        E::ActiveModel: TryIntoModel<E::Model>,
    {
        match &self.0 {
            Inner::Sea(row) => E::Model::from_query_result(row, prefix),
            Inner::Local { .. } => {
                let mut model = <E::ActiveModel as ActiveModelTrait>::default();
                for column in E::Column::iter() {
                    model.try_set(column, self.local_value(prefix, column.as_str())?.clone())?;
                }
                model.try_into_model()
            }
        }
    }

    fn local_value(&self, prefix: &str, column: &str) -> Result<&Value, DbErr> {
        let Inner::Local { names, values } = &self.0 else {
            unreachable!("only local rows hold values")
        };
        // Lengths first: most names differ in length, and a row is read by every
        // column's name (a `memcmp` per name was a tenth of a signed-in page's time).
        names
            .iter()
            .position(|name| {
                name.len() == prefix.len() + column.len()
                    && name.starts_with(prefix)
                    && name.ends_with(column)
            })
            .map(|index| &values[index])
            .ok_or_else(|| DbErr::Type(format!("no column {prefix}{column} in the row")))
    }
}

impl LocalFile {
    fn all(&self, statement: &Statement, shape: &Shape) -> Result<Vec<Row>, Missed> {
        if self.unavailable.load(Ordering::Relaxed) {
            return Err(Missed::Unavailable);
        }
        // In a snapshot scope of this file: its connection, or one that begins it.
        let id = self.id();
        let through = SNAPSHOT
            .try_with(|held| {
                let mut held = held.borrow_mut();
                match held.take() {
                    Some((file, connection)) if file == id => Through::Snapshot(Some(connection)),
                    // Another file's snapshot: left as it is.
                    Some(other) => {
                        *held = Some(other);
                        Through::Own
                    }
                    None => Through::Snapshot(None),
                }
            })
            .unwrap_or(Through::Own);
        let in_scope = matches!(through, Through::Snapshot(_));
        let connection = match through {
            Through::Snapshot(Some(connection)) => connection,
            Through::Snapshot(None) => {
                let connection = self.connection()?;
                if let Err(err) = connection
                    .prepare_cached("BEGIN")
                    .and_then(|mut begin| begin.execute([]))
                {
                    return Err(Missed::Failed(DbErr::Custom(format!("local read: {err}"))));
                }
                connection
            }
            Through::Own => self.connection()?,
        };
        let rows = read(&connection, statement, shape);
        match (in_scope, &rows) {
            (true, Ok(_)) => {
                SNAPSHOT.with(|held| *held.borrow_mut() = Some((id, connection)));
            }
            // Busy before the snapshot could start: the next read tries again.
            (true, Err(Missed::Unavailable)) => self.end_snapshot(connection),
            (false, Ok(_) | Err(Missed::Unavailable)) => self.keep(connection),
            // A connection whose read failed otherwise is not trusted again.
            (_, Err(Missed::Failed(_))) => {}
        }
        rows
    }

    /// Which file this is, for as long as it is open.
    fn id(&self) -> usize {
        self as *const Self as usize
    }

    /// An idle connection, or a new one while fewer than [`MOST_OPEN`] are.
    fn connection(&self) -> Result<Counted, Missed> {
        let taken = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        if let Some(connection) = taken {
            return Ok(connection);
        }
        if self.open.fetch_add(1, Ordering::Relaxed) >= MOST_OPEN {
            self.open.fetch_sub(1, Ordering::Relaxed);
            return Err(Missed::Unavailable);
        }
        let open = Arc::clone(&self.open);
        match self.open() {
            Ok(connection) => Ok(Counted { connection, open }),
            Err(err) => {
                open.fetch_sub(1, Ordering::Relaxed);
                if !self.unavailable.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        error = %err,
                        path = %self.path.display(),
                        "SQLite file cannot be opened for reads on the request's thread; \
                         reading through sqlx"
                    );
                }
                Err(Missed::Unavailable)
            }
        }
    }

    fn keep(&self, connection: Counted) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < IDLE_CONNECTIONS {
            idle.push(connection);
        }
    }

    /// Ends a snapshot's read transaction and keeps its connection.
    fn end_snapshot(&self, connection: Counted) {
        let ended = connection
            .prepare_cached("COMMIT")
            .and_then(|mut commit| commit.execute([]));
        if ended.is_ok() || connection.is_autocommit() {
            self.keep(connection);
        }
    }

    fn open(&self) -> rusqlite::Result<Connection> {
        // Never created here: the file is sqlx's, created and migrated at start-up.
        let connection = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        // Reads only, whatever a statement says; and never wait on the file (a
        // busy one is read through sqlx, which waits off this thread).
        connection.pragma_update(None, "query_only", true)?;
        connection.busy_timeout(std::time::Duration::ZERO)?;
        // Plans that do not depend on bound values, so a cached statement is
        // not prepared again for every `LIMIT ?` it binds (`db::stable_plans`).
        connection.set_db_config(
            rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
            true,
        )?;
        Ok(connection)
    }
}

fn read(connection: &Connection, statement: &Statement, shape: &Shape) -> Result<Vec<Row>, Missed> {
    let failed = |err: rusqlite::Error| match err.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => Missed::Unavailable,
        _ => Missed::Failed(DbErr::Custom(format!("local read: {err}"))),
    };
    let mut prepared = connection.prepare_cached(&statement.sql).map_err(failed)?;
    let params = match &statement.values {
        Some(values) => values
            .0
            .iter()
            .map(param)
            .collect::<Result<Vec<_>, _>>()
            .map_err(Missed::Failed)?,
        None => Vec::new(),
    };
    // The shaped columns, by their index in the statement's rows.
    let (indexes, names): (Vec<(usize, Kind)>, Vec<String>) = prepared
        .column_names()
        .into_iter()
        .enumerate()
        .filter_map(|(index, name)| Some(((index, *shape.0.get(name)?), name.to_owned())))
        .unzip();
    let names: Arc<[String]> = names.into();
    let mut rows = prepared
        .query(rusqlite::params_from_iter(params))
        .map_err(failed)?;
    let mut results = Vec::new();
    while let Some(row) = rows.next().map_err(failed)? {
        let mut values = Vec::with_capacity(indexes.len());
        for (&(index, kind), name) in indexes.iter().zip(names.iter()) {
            let raw = row.get_ref(index).map_err(failed)?;
            values.push(decode(kind, raw).map_err(|problem| {
                Missed::Failed(DbErr::Type(format!("column {name}: {problem}")))
            })?);
        }
        results.push(Row(Inner::Local {
            names: names.clone(),
            values,
        }));
    }
    Ok(results)
}

/// A statement's value as sqlx binds it for SQLite, so comparisons in SQL (a
/// time stored as text against a bound time) come out the same on both paths.
fn param(value: &Value) -> Result<Param, DbErr> {
    let integer = |v: Option<i64>| v.map_or(Param::Null, Param::Integer);
    Ok(match value {
        Value::Bool(v) => integer(v.map(i64::from)),
        Value::TinyInt(v) => integer(v.map(i64::from)),
        Value::SmallInt(v) => integer(v.map(i64::from)),
        Value::Int(v) => integer(v.map(i64::from)),
        Value::BigInt(v) => integer(*v),
        Value::TinyUnsigned(v) => integer(v.map(i64::from)),
        Value::SmallUnsigned(v) => integer(v.map(i64::from)),
        Value::Unsigned(v) => integer(v.map(i64::from)),
        // What sea-query binds a LIMIT or an OFFSET with.
        Value::BigUnsigned(v) => integer(
            v.map(<i64 as TryFrom<u64>>::try_from)
                .transpose()
                .map_err(|_| DbErr::Custom(format!("{v:?} is out of SQLite's range")))?,
        ),
        Value::Float(v) => v.map_or(Param::Null, |v| Param::Real(v.into())),
        Value::Double(v) => v.map_or(Param::Null, Param::Real),
        Value::String(v) => v.clone().map_or(Param::Null, Param::Text),
        Value::Char(v) => v.map_or(Param::Null, |c| Param::Text(c.to_string())),
        Value::Bytes(v) => v.clone().map_or(Param::Null, Param::Blob),
        Value::ChronoDateTimeUtc(v) => v.map_or(Param::Null, |t| {
            Param::Text(t.to_rfc3339_opts(SecondsFormat::AutoSi, false))
        }),
        other => return Err(DbErr::Custom(format!("no local read binds {other:?}"))),
    })
}

/// A SQLite value as the sea-orm value of `kind`, decoded as sqlx decodes it.
fn decode(kind: Kind, raw: ValueRef<'_>) -> Result<Value, String> {
    let wrong = || format!("{:?} is not a {kind:?}", raw.data_type());
    Ok(match (kind, raw) {
        (Kind::I64, ValueRef::Null) => Value::BigInt(None),
        (Kind::I32, ValueRef::Null) => Value::Int(None),
        (Kind::Bool, ValueRef::Null) => Value::Bool(None),
        (Kind::Text, ValueRef::Null) => Value::String(None),
        (Kind::Time, ValueRef::Null) => Value::ChronoDateTimeUtc(None),
        (Kind::F64, ValueRef::Null) => Value::Double(None),
        (Kind::I64, ValueRef::Integer(v)) => Value::BigInt(Some(v)),
        (Kind::I32, ValueRef::Integer(v)) => Value::Int(Some(
            <i32 as TryFrom<i64>>::try_from(v).map_err(|_| format!("{v} is not an i32"))?,
        )),
        (Kind::Bool, ValueRef::Integer(v)) => Value::Bool(Some(v != 0)),
        (Kind::Text, ValueRef::Text(text)) => Value::String(Some(
            std::str::from_utf8(text)
                .map_err(|_| "text is not UTF-8".to_owned())?
                .to_owned(),
        )),
        (Kind::Time, ValueRef::Text(text)) => {
            let text = std::str::from_utf8(text).map_err(|_| "text is not UTF-8".to_owned())?;
            let at = time_from_text(text).ok_or_else(|| format!("{text:?} is not a time"))?;
            Value::ChronoDateTimeUtc(Some(at))
        }
        (Kind::Time, ValueRef::Integer(secs)) => Value::ChronoDateTimeUtc(Some(
            Utc.timestamp_opt(secs, 0)
                .single()
                .ok_or_else(|| format!("{secs} is not a time"))?,
        )),
        (Kind::F64, ValueRef::Real(v)) => Value::Double(Some(v)),
        (Kind::F64, ValueRef::Integer(v)) => Value::Double(Some(v as f64)),
        _ => return Err(wrong()),
    })
}

/// A time stored as text, read as sqlx's SQLite driver reads it: RFC 3339 (what
/// it writes), then SQLite's own formats, a missing offset meaning UTC.
fn time_from_text(text: &str) -> Option<DateTime<Utc>> {
    const FORMATS: [&str; 12] = [
        "%F %T%.f",
        "%F %R",
        "%F %RZ",
        "%F %R%:z",
        "%F %T%.fZ",
        "%F %T%.f%:z",
        "%FT%R",
        "%FT%RZ",
        "%FT%R%:z",
        "%FT%T%.f",
        "%FT%T%.fZ",
        "%FT%T%.f%:z",
    ];
    let parsed: Option<DateTime<FixedOffset>> =
        DateTime::parse_from_rfc3339(text).ok().or_else(|| {
            FORMATS.iter().find_map(|format| {
                DateTime::parse_from_str(text, format).ok().or_else(|| {
                    NaiveDateTime::parse_from_str(text, format)
                        .ok()
                        .map(|naive| Utc.fix().from_utc_datetime(&naive))
                })
            })
        });
    parsed.map(|at| at.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_read_connections_plan_without_bound_values() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.db");
        rusqlite::Connection::open(&path).unwrap();
        let file = LocalFile {
            path,
            idle: Mutex::default(),
            open: Arc::default(),
            unavailable: AtomicBool::new(false),
        };
        let connection = file.open().unwrap();
        // SAFETY: the connection is open and used only here.
        let stable = unsafe { crate::db::plans_are_stable(connection.handle()) };
        assert_eq!(stable, Some(true));
    }

    #[test]
    fn times_read_as_sqlx_writes_and_sqlite_stores_them() {
        let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        for (text, expected) in [
            // sqlx's encoding of a DateTime<Utc> (RFC 3339, fractions as needed).
            (
                "2026-12-07T11:17:42.123456+00:00",
                Some(at("2026-12-07T11:17:42.123456Z")),
            ),
            (
                "2026-12-07T11:17:42+00:00",
                Some(at("2026-12-07T11:17:42Z")),
            ),
            // Another offset is the same instant.
            (
                "2026-12-07T12:17:42+01:00",
                Some(at("2026-12-07T11:17:42Z")),
            ),
            // SQLite's CURRENT_TIMESTAMP: no offset, UTC.
            ("2026-12-07 11:17:42", Some(at("2026-12-07T11:17:42Z"))),
            ("2026-12-07 11:17:42.5", Some(at("2026-12-07T11:17:42.5Z"))),
            ("2026-12-07 11:17", Some(at("2026-12-07T11:17:00Z"))),
            ("yesterday", None),
        ] {
            assert_eq!(time_from_text(text), expected, "{text}");
        }
    }

    #[test]
    fn values_decode_to_the_kind_asked_for_or_say_why_not() {
        for (kind, raw, expected) in [
            (Kind::I64, ValueRef::Integer(7), Ok(Value::BigInt(Some(7)))),
            (Kind::I32, ValueRef::Integer(7), Ok(Value::Int(Some(7)))),
            (
                Kind::Bool,
                ValueRef::Integer(1),
                Ok(Value::Bool(Some(true))),
            ),
            (
                Kind::Bool,
                ValueRef::Integer(0),
                Ok(Value::Bool(Some(false))),
            ),
            (
                Kind::Text,
                ValueRef::Text(b"pro"),
                Ok(Value::String(Some("pro".into()))),
            ),
            (
                Kind::F64,
                ValueRef::Integer(2),
                Ok(Value::Double(Some(2.0))),
            ),
            (Kind::Text, ValueRef::Null, Ok(Value::String(None))),
            (
                Kind::Time,
                ValueRef::Null,
                Ok(Value::ChronoDateTimeUtc(None)),
            ),
            (Kind::I64, ValueRef::Null, Ok(Value::BigInt(None))),
            (
                Kind::Time,
                ValueRef::Integer(0),
                Ok(Value::ChronoDateTimeUtc(Some(DateTime::UNIX_EPOCH))),
            ),
            (Kind::I32, ValueRef::Integer(1 << 40), Err(())),
            (Kind::I64, ValueRef::Text(b"7"), Err(())),
            (Kind::Time, ValueRef::Text(b"soon"), Err(())),
        ] {
            assert_eq!(
                decode(kind, raw).map_err(|_| ()),
                expected,
                "{kind:?} {raw:?}"
            );
        }
    }

    #[test]
    fn parameters_bind_as_sqlx_binds_them() {
        let at = DateTime::parse_from_rfc3339("2026-12-07T11:17:42.5Z")
            .unwrap()
            .with_timezone(&Utc);
        for (value, expected) in [
            (Value::BigInt(Some(3)), Param::Integer(3)),
            (Value::BigUnsigned(Some(24)), Param::Integer(24)),
            (Value::Int(None), Param::Null),
            (Value::Bool(Some(true)), Param::Integer(1)),
            (Value::String(Some("a".into())), Param::Text("a".into())),
            (Value::String(None), Param::Null),
            (
                Value::ChronoDateTimeUtc(Some(at)),
                Param::Text("2026-12-07T11:17:42.500+00:00".into()),
            ),
        ] {
            assert_eq!(param(&value).unwrap(), expected, "{value:?}");
        }
    }
}
