//! The coordinator's writer: a thread that owns a write connection and runs the compute
//! layer's state changes, committed in groups (one thread on SQLite; on PostgreSQL three, one of
//! them for leases and one for reports, see below).
//!
//! Leases and reports are small transactions of about ten statements each. Through an async
//! driver every statement is a round trip to the driver's SQLite thread, and the writers' turn
//! is held across all of them: on the benchmark machine those thread hops, not SQLite, were the
//! cost (see `BENCHMARKS.md`). Here a unit of work is a plain function that the writer thread
//! runs on its own connection, start to end, without a thread switch.
//!
//! Group commit: the writer opens a transaction, runs every unit of work waiting in its queue,
//! each inside a savepoint (a unit that fails rolls back alone), and commits them with one fsync.
//! A caller is answered only after the commit that holds its unit succeeded, so an answer sent
//! to a client still means "on disk". Other writers of the database (the hub's uploads) take
//! their turn between batches: both queue for the database's in-process write turn
//! ([`commons_db::WriteTurn`]), and a batch holds it at most [`MAX_BATCH_TIME`].
//!
//! On PostgreSQL the same thread holds a connection of its own and runs each statement to
//! completion on a runtime of its own (a statement is a network round trip there anyway); a
//! batch begins by taking the advisory lock every write transaction of every server takes
//! ([`commons_db::POSTGRES_WRITE_LOCK`]), so its batches and every other writer of every server
//! take turns as the writers of one SQLite file do. The statements are written once, in SQLite's dialect (`?N`
//! placeholders); [`postgres_dialect`] rewrites what PostgreSQL spells differently.
//!
//! Leases and reports are the exceptions: on PostgreSQL each has a writer thread of its own,
//! and neither takes the process's write turn, so that the coordinators of several servers
//! lease and validate at once instead of taking turns.
//! - Leases ([`Lock::Rows`]) take no advisory lock, and keep one rule: **a lease transaction
//!   never waits for a lock.** It takes the units it hands out with `FOR UPDATE SKIP LOCKED` (a
//!   unit someone else holds is passed over), the worker with `pg_try_advisory_xact_lock` (a
//!   worker asking two servers at once gets its leases from one of them), and skips the
//!   fair-share bookkeeping of a job or submitter whose row another transaction holds. A lease
//!   inserts assignments and changes only units it holds.
//! - Reports ([`Lock::Shared`]) take the advisory lock shared
//!   ([`commons_db::POSTGRES_SHARED_WRITE_LOCK`]): beside one another, never beside the
//!   exclusive holders (the hub's writers and every other state change of the coordinator, as
//!   before). Between reports, row locks keep the invariants: a report locks its assignment and
//!   unit before reading them (`FOR UPDATE OF a, u`), so two results of one unit are decided
//!   one after the other and the second sees the first (a unit is decided once); a validation
//!   locks the unit it settles; a payment locks the balance it reads (`ledger::balance`), so two
//!   payments from one escrow cannot both spend what is left; counters are relative updates.
//!
//! Waits cannot close a circle through a lease, which waits for nothing. Two reports' batches
//! that lock the same rows in opposite orders can (a job's escrow is such a row: every payment
//! of the job locks it until its batch commits): a report waits for a row at most 50 ms
//! (`lock_timeout`), then its savepoint is undone and it is recorded again in a later batch, so
//! a circle is broken within 50 ms and the worker never sees it. On SQLite one writer runs
//! everything (the file has one write lock anyway).

use std::cell::RefCell;
use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use commons_db::sql::{self, Arg};

use crate::error::{ComputeError, Result};

/// Most units of work in one batch, and longest a batch keeps the write lock: bounds both the
/// latency of the first unit in a batch and how long the hub's writers wait.
const MAX_BATCH: usize = 512;
const MAX_BATCH_TIME: Duration = Duration::from_millis(50);

/// A unit of work, type-erased: runs inside its savepoint and says whether it succeeded; the
/// returned closure answers its caller once the batch's fate is known.
type Job = Box<dyn FnOnce(&Conn) -> (bool, Deliver) + Send>;
/// Answers a caller; gets the commit's error if the batch did not commit.
type Deliver = Box<dyn FnOnce(Option<&str>) + Send>;

/// The write connection, as units of work see it.
pub(crate) enum Conn {
    Sqlite(rusqlite::Connection),
    Postgres(Box<Postgres>),
}

/// The writer's PostgreSQL connection and the runtime its statements run on.
pub(crate) struct Postgres {
    runtime: tokio::runtime::Runtime,
    conn: RefCell<sqlx::PgConnection>,
    /// How `conn` was opened, to open it again when the database dropped it.
    options: sqlx::postgres::PgConnectOptions,
    /// Statements in PostgreSQL's dialect, by their SQLite text.
    dialect: RefCell<HashMap<String, Arc<str>>>,
}

/// What a writer's batches hold while they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lock {
    /// The database's write lock (SQLite's, or PostgreSQL's advisory lock every write
    /// transaction takes) and this process's write turn: one writer of the database at a time.
    Global,
    /// Only the row locks its statements take, none of them waited for (see the module
    /// documentation): leases on PostgreSQL.
    Rows,
    /// The advisory lock shared, and row locks: reports on PostgreSQL.
    Shared,
}

/// Handle on the writer thread. The thread ends when the last handle is dropped.
pub(crate) struct Writer {
    queue: mpsc::Sender<Job>,
}

impl Writer {
    /// Opens a write connection to the hub's database and starts the thread; its batches hold
    /// `lock`.
    pub(crate) fn start(db: &commons_db::Db, lock: Lock) -> Result<Self> {
        let (queue, jobs) = mpsc::channel();
        let (opened, open) = mpsc::channel::<Result<()>>();
        let hub = db.clone();
        let name = match lock {
            Lock::Global => "compute-writer",
            Lock::Rows => "compute-leases",
            Lock::Shared => "compute-reports",
        };
        std::thread::Builder::new()
            .name(name.into())
            .spawn(move || match open_conn(&hub) {
                Ok(conn) => {
                    let _ = opened.send(Ok(()));
                    run(&hub, conn, lock, jobs)
                }
                Err(e) => {
                    let _ = opened.send(Err(e));
                }
            })
            .map_err(|e| ComputeError::Corrupt(format!("cannot start the writer thread: {e}")))?;
        open.recv().map_err(|_| ComputeError::Corrupt("the writer thread stopped while opening its connection".into()))??;
        Ok(Self { queue })
    }

    /// Runs `work` as one atomic unit of work and returns its result once it is durable. An
    /// error (or a panic) in `work` undoes everything it wrote.
    pub(crate) async fn run<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Conn) -> Result<T> + Send + 'static,
    {
        let (answer, answered) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |conn| {
            let result = catch_unwind(AssertUnwindSafe(|| work(conn))).unwrap_or_else(|panic| {
                let what = panic.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| panic.downcast_ref::<String>().cloned());
                Err(ComputeError::Corrupt(format!("a unit of work panicked: {}", what.unwrap_or_default())))
            });
            let ok = result.is_ok();
            let deliver: Deliver = Box::new(move |commit_error| {
                let result = match (result, commit_error) {
                    (Ok(_), Some(e)) => Err(ComputeError::Corrupt(format!("the database did not commit: {e}"))),
                    (result, _) => result,
                };
                let _ = answer.send(result);
            });
            (ok, deliver)
        });
        self.queue.send(job).map_err(|_| ComputeError::Corrupt("the compute writer stopped".into()))?;
        // Dropped unanswered: its batch could not begin (the server log says why).
        answered.await.map_err(|_| ComputeError::Corrupt("the compute writer could not run this unit of work".into()))?
    }
}

/// The writer's own connection to the hub's database (opened on the writer thread: the
/// PostgreSQL one belongs to the thread's runtime).
fn open_conn(db: &commons_db::Db) -> Result<Conn> {
    match db.pool() {
        sql::Pool::Sqlite(_) => {
            let path = db.path().ok_or_else(|| ComputeError::Corrupt("a SQLite database without a file".into()))?;
            let conn = rusqlite::Connection::open(path)?;
            // The file is already in WAL mode (the hub's pool set it); durability as the hub's.
            // `temp_store = MEMORY` keeps each unit of work's savepoint journal in memory: SQLite
            // otherwise spills it to a temporary file past 64 KiB, and a batch's savepoints then
            // cost a `pwrite` per page they touch (40% of the writer's time at 32 leases a request).
            conn.execute_batch("PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; PRAGMA temp_store = MEMORY;")?;
            conn.busy_timeout(Duration::from_secs(30))?;
            conn.set_prepared_statement_cache_capacity(128);
            Ok(Conn::Sqlite(conn))
        }
        sql::Pool::Postgres(pool) => {
            use sqlx::ConnectOptions as _;
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| ComputeError::Corrupt(format!("cannot start the writer's runtime: {e}")))?;
            // Every statement of the coordinator stays prepared on this connection.
            let options = (*pool.connect_options()).clone().statement_cache_capacity(256);
            let conn = runtime.block_on(options.connect())?;
            Ok(Conn::Postgres(Box::new(Postgres { runtime, conn: RefCell::new(conn), options, dialect: RefCell::default() })))
        }
    }
}

/// The writer thread: batch, run, commit, answer, until every handle is gone.
fn run(db: &commons_db::Db, conn: Conn, lock: Lock, jobs: mpsc::Receiver<Job>) {
    while let Ok(first) = jobs.recv() {
        let mut settled: Vec<Deliver> = Vec::new();
        // The hub's writers queue for the same turn, so they get the lock between two batches.
        let turn = (lock == Lock::Global).then(|| db.blocking_write_turn());
        let outcome = batch(&conn, lock, first, &jobs, &mut settled);
        let error = outcome.err().map(|e| e.to_string());
        if let Some(e) = &error {
            tracing::error!(error = %e, units = settled.len(), "a compute write batch failed; its units are undone");
            // Whatever the failure left behind, the next batch starts clean.
            let _ = conn.exec("ROLLBACK", ());
        }
        drop(turn);
        for deliver in settled {
            deliver(error.as_deref());
        }
    }
}

fn batch(conn: &Conn, lock: Lock, first: Job, jobs: &mpsc::Receiver<Job>, settled: &mut Vec<Deliver>) -> Result<()> {
    match conn {
        Conn::Sqlite(_) => conn.exec("BEGIN IMMEDIATE", ())?,
        Conn::Postgres(pg) => {
            // A connection the database dropped (a restart, a failover, an administrator's
            // `pg_terminate_backend`) fails here, before any unit of work ran: open it again
            // rather than fail every batch until the server restarts.
            if let Err(e) = conn.exec("BEGIN", ()) {
                tracing::warn!(error = %e, "the compute writer's database connection failed; connecting again");
                pg.reconnect()?;
                conn.exec("BEGIN", ())?;
            }
            match lock {
                Lock::Global => conn.exec(commons_db::POSTGRES_WRITE_LOCK, ())?,
                Lock::Shared => {
                    conn.exec(commons_db::POSTGRES_SHARED_WRITE_LOCK, ())?;
                    // A report waits for a row at most this long, then is done again in a later
                    // batch (`Coordinator::record_reports_until_done`): two batches that wait for each other's rows
                    // part at once instead of after PostgreSQL's deadlock check (a second).
                    conn.exec("SET LOCAL lock_timeout = '50ms'", ())?
                }
                Lock::Rows => 0,
            }
        }
    };
    let started = Instant::now();
    let mut next = Some(first);
    while let Some(job) = next.take() {
        conn.exec("SAVEPOINT unit_of_work", ())?;
        let (ok, deliver) = job(conn);
        settled.push(deliver);
        if !ok {
            conn.exec("ROLLBACK TO unit_of_work", ())?;
        }
        conn.exec("RELEASE unit_of_work", ())?;
        if settled.len() < MAX_BATCH && started.elapsed() < MAX_BATCH_TIME {
            next = jobs.try_recv().ok();
        }
    }
    conn.exec("COMMIT", ())?;
    Ok(())
}

/// A statement of the coordinator in PostgreSQL's dialect: `?N` placeholders become `$N`,
/// SQLite's index hints (`INDEXED BY name`) go (PostgreSQL's planner keeps statistics), and what
/// only PostgreSQL has is written in a comment SQLite skips, `/*pg: FOR UPDATE SKIP LOCKED*/`,
/// which loses its comment marks here (row locks: SQLite locks the whole file anyway).
pub(crate) fn postgres_dialect(statement: &str) -> String {
    let mut out = String::with_capacity(statement.len());
    let mut rest = statement;
    while let Some(at) = rest.find(['?', 'I', '/']) {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        if let Some(after) = rest.strip_prefix("/*pg:") {
            let end = after.find("*/").unwrap_or(after.len());
            out.push_str(after[..end].trim());
            rest = after.get(end + 2..).unwrap_or("");
        } else if let Some(after) = rest.strip_prefix('?') {
            out.push('$');
            rest = after;
        } else if let Some(after) = rest.strip_prefix("INDEXED BY ") {
            let name_end = after.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(after.len());
            rest = after[name_end..].trim_start_matches(' ');
        } else {
            // 'I' or '/', both one byte.
            out.push_str(&rest[..1]);
            rest = &rest[1..];
        }
    }
    out.push_str(rest);
    out
}

impl Conn {
    /// The engine this connection writes to.
    pub(crate) fn engine(&self) -> sql::Engine {
        match self {
            Conn::Sqlite(_) => sql::Engine::Sqlite,
            Conn::Postgres(_) => sql::Engine::Postgres,
        }
    }
}

/// A row of the write connection.
pub(crate) enum Row<'a> {
    Sqlite(&'a rusqlite::Row<'a>),
    Postgres(&'a sql::Row),
}

/// A column by name or position, on either engine.
pub(crate) trait ColumnIndex: rusqlite::RowIndex + sql::Index {}
impl<I: rusqlite::RowIndex + sql::Index> ColumnIndex for I {}

/// What a column of a writer row can be read as.
pub(crate) trait Column: rusqlite::types::FromSql + sql::Value {}
impl<T: rusqlite::types::FromSql + sql::Value> Column for T {}

impl Row<'_> {
    pub(crate) fn get<I: ColumnIndex, T: Column>(&self, index: I) -> Result<T> {
        match self {
            Row::Sqlite(row) => Ok(row.get(index)?),
            Row::Postgres(row) => Ok(row.try_get(index)?),
        }
    }
}

/// A state enum from its text column of a writer row (`AssignmentState`, `Role`, ...): a value no
/// variant knows means the stored state is broken.
pub(crate) fn text_col<T>(row: &Row<'_>, column: &str) -> Result<T>
where
    T: for<'a> TryFrom<&'a str, Error = commons_protocol::UnknownValue>,
{
    let text: String = row.get(column)?;
    T::try_from(text.as_str()).map_err(|e| ComputeError::Corrupt(e.to_string()))
}

/// A statement's arguments: `[a, b]` of one type, `params![a, b]` of several, `()` for none.
pub(crate) trait Params {
    fn args(self) -> Vec<Arg>;
}

impl Params for () {
    fn args(self) -> Vec<Arg> {
        Vec::new()
    }
}

impl Params for Vec<Arg> {
    fn args(self) -> Vec<Arg> {
        self
    }
}

impl<T: sql::IntoArg, const N: usize> Params for [T; N] {
    fn args(self) -> Vec<Arg> {
        self.into_iter().map(sql::IntoArg::into_arg).collect()
    }
}

/// Arguments of several types, in order.
macro_rules! params {
    ($($arg:expr),* $(,)?) => {
        vec![$(commons_db::sql::IntoArg::into_arg(&$arg)),*]
    };
}
pub(crate) use params;

fn sqlite_value(arg: Arg) -> rusqlite::types::Value {
    use rusqlite::types::Value;
    match arg {
        Arg::Int(v) => v.map_or(Value::Null, Value::Integer),
        Arg::Real(v) => v.map_or(Value::Null, Value::Real),
        Arg::Bool(v) => v.map_or(Value::Null, |b| Value::Integer(i64::from(b))),
        Arg::Text(v) => v.map_or(Value::Null, Value::Text),
        Arg::Bytes(v) => v.map_or(Value::Null, Value::Blob),
    }
}

impl Postgres {
    /// `statement` in PostgreSQL's dialect with `args` bound (its text is copied only the first
    /// time: this is every statement's path).
    fn query(&self, statement: &str, args: Vec<Arg>) -> sql::Query {
        let cached = self.dialect.borrow().get(statement).cloned();
        let text = cached.unwrap_or_else(|| {
            let text: Arc<str> = postgres_dialect(statement).into();
            self.dialect.borrow_mut().insert(statement.to_string(), text.clone());
            text
        });
        sql::query(sql::AssertSqlSafe(text)).args(args)
    }

    /// Replaces the connection with a new one.
    fn reconnect(&self) -> Result<()> {
        use sqlx::ConnectOptions as _;
        let conn = self.runtime.block_on(self.options.connect())?;
        *self.conn.borrow_mut() = conn;
        Ok(())
    }

    fn rows(&self, statement: &str, args: Vec<Arg>) -> Result<Vec<sql::Row>> {
        let query = self.query(statement, args);
        let mut conn = self.conn.borrow_mut();
        Ok(self.runtime.block_on(query.fetch_all(sql::Exec::Postgres(&mut conn)))?)
    }
}

/// Statement helpers on the write connection: each statement is prepared once and cached.
pub(crate) trait Sql {
    /// Executes a statement; returns the number of rows changed.
    fn exec(&self, sql: &str, params: impl Params) -> Result<usize>;
    /// The first row, mapped; an error if there is none.
    fn one<T>(&self, sql: &str, params: impl Params, map: impl FnOnce(&Row<'_>) -> Result<T>) -> Result<T>;
    /// The first row, mapped, if any.
    fn maybe<T>(&self, sql: &str, params: impl Params, map: impl FnOnce(&Row<'_>) -> Result<T>) -> Result<Option<T>>;
    /// Every row, mapped.
    fn all<T>(&self, sql: &str, params: impl Params, map: impl FnMut(&Row<'_>) -> Result<T>) -> Result<Vec<T>>;
}

impl Sql for Conn {
    fn exec(&self, statement: &str, params: impl Params) -> Result<usize> {
        match self {
            Conn::Sqlite(conn) => {
                Ok(conn.prepare_cached(statement)?.execute(rusqlite::params_from_iter(params.args().into_iter().map(sqlite_value)))?)
            }
            Conn::Postgres(pg) => {
                let query = pg.query(statement, params.args());
                let mut conn = pg.conn.borrow_mut();
                Ok(pg.runtime.block_on(query.execute(sql::Exec::Postgres(&mut conn)))?.rows_affected() as usize)
            }
        }
    }

    fn one<T>(&self, statement: &str, params: impl Params, map: impl FnOnce(&Row<'_>) -> Result<T>) -> Result<T> {
        self.maybe(statement, params, map)?.ok_or(ComputeError::Sqlite(rusqlite::Error::QueryReturnedNoRows))
    }

    fn maybe<T>(&self, statement: &str, params: impl Params, map: impl FnOnce(&Row<'_>) -> Result<T>) -> Result<Option<T>> {
        match self {
            Conn::Sqlite(conn) => {
                let mut prepared = conn.prepare_cached(statement)?;
                let mut rows = prepared.query(rusqlite::params_from_iter(params.args().into_iter().map(sqlite_value)))?;
                match rows.next()? {
                    Some(row) => Ok(Some(map(&Row::Sqlite(row))?)),
                    None => Ok(None),
                }
            }
            Conn::Postgres(pg) => pg.rows(statement, params.args())?.first().map(|row| map(&Row::Postgres(row))).transpose(),
        }
    }

    fn all<T>(&self, statement: &str, params: impl Params, mut map: impl FnMut(&Row<'_>) -> Result<T>) -> Result<Vec<T>> {
        match self {
            Conn::Sqlite(conn) => {
                let mut prepared = conn.prepare_cached(statement)?;
                let mut rows = prepared.query(rusqlite::params_from_iter(params.args().into_iter().map(sqlite_value)))?;
                let mut out = Vec::new();
                while let Some(row) = rows.next()? {
                    out.push(map(&Row::Sqlite(row))?);
                }
                Ok(out)
            }
            Conn::Postgres(pg) => pg.rows(statement, params.args())?.iter().map(|row| map(&Row::Postgres(row))).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn names(db: &commons_db::Db) -> Vec<String> {
        let rows: Vec<(String,)> =
            commons_db::sql::query_as("SELECT name FROM users ORDER BY name").fetch_all(db.pool()).await.expect("read");
        rows.into_iter().map(|(n,)| n).collect()
    }

    #[test]
    fn postgres_statements_number_their_placeholders_and_drop_index_hints() {
        assert_eq!(
            postgres_dialect("SELECT 1 FROM units u INDEXED BY units_by_job WHERE u.id = ?1 AND u.job_id = ?12 AND 'INDEX' = ?2"),
            "SELECT 1 FROM units u WHERE u.id = $1 AND u.job_id = $12 AND 'INDEX' = $2"
        );
        assert_eq!(
            postgres_dialect("SELECT id FROM units WHERE id = ?1 AND 4/2 = 2 /*pg: FOR UPDATE SKIP LOCKED*/ LIMIT 1"),
            "SELECT id FROM units WHERE id = $1 AND 4/2 = 2 FOR UPDATE SKIP LOCKED LIMIT 1"
        );
    }

    fn insert(conn: &Conn, name: &str) -> Result<()> {
        conn.exec("INSERT INTO users (name, fullname, created_at) VALUES (?1, ?1, 0)", [name])?;
        Ok(())
    }

    #[tokio::test]
    async fn a_failed_unit_of_work_is_undone_and_its_neighbours_are_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = commons_db::Db::open(&dir.path().join("db.sqlite")).await.expect("db");
        let writer = std::sync::Arc::new(Writer::start(&db, Lock::Global).expect("writer"));
        writer.run(|conn| insert(conn, "kept")).await.expect("commit");
        let failed = writer
            .run(|conn| {
                insert(conn, "failed")?;
                Err::<(), _>(ComputeError::bad_request("changed my mind"))
            })
            .await;
        assert!(matches!(failed, Err(ComputeError::BadRequest(_))), "{failed:?}");
        let panicked = writer.run(|conn| -> Result<()> {
            insert(conn, "panicked")?;
            panic!("boom")
        });
        assert!(matches!(panicked.await, Err(ComputeError::Corrupt(m)) if m.contains("boom")));
        // Concurrent units of work land in shared batches; each returns once it is durable.
        let tasks: Vec<_> = (0..50)
            .map(|i| {
                let writer = writer.clone();
                tokio::spawn(async move { writer.run(move |conn| insert(conn, &format!("u{i:02}"))).await })
            })
            .collect();
        for task in tasks {
            task.await.expect("task").expect("commit");
        }
        let all = names(&db).await;
        assert!(all.contains(&"kept".to_string()), "{all:?}");
        assert!(!all.iter().any(|n| n == "failed" || n == "panicked"), "{all:?}");
        assert_eq!(all.len(), 51);
        // A violated constraint fails its unit alone.
        let duplicate = writer.run(|conn| insert(conn, "kept")).await;
        assert!(duplicate.is_err());
        writer.run(|conn| insert(conn, "after")).await.expect("the writer goes on");
        // Between batches the write lock is free: another connection can write at once.
        commons_db::sql::query("INSERT INTO users (name, fullname, created_at) VALUES ('outside', 'o', 0)")
            .execute(db.pool())
            .await
            .expect("write lock released");
    }
}
