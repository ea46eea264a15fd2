//! The coordinator's writer: one thread that owns the write connection and runs every state
//! change of the compute layer, committed in groups.
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

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rusqlite::{Connection, Params, Row};

use crate::error::{ComputeError, Result};

/// The write connection, as units of work see it.
pub(crate) type Conn = Connection;

/// Most units of work in one batch, and longest a batch keeps the write lock: bounds both the
/// latency of the first unit in a batch and how long the hub's writers wait.
const MAX_BATCH: usize = 512;
const MAX_BATCH_TIME: Duration = Duration::from_millis(50);

/// A unit of work, type-erased: runs inside its savepoint and says whether it succeeded; the
/// returned closure answers its caller once the batch's fate is known.
type Job = Box<dyn FnOnce(&Conn) -> (bool, Deliver) + Send>;
/// Answers a caller; gets the commit's error if the batch did not commit.
type Deliver = Box<dyn FnOnce(Option<&str>) + Send>;

/// Handle on the writer thread. The thread ends when the last handle is dropped.
pub(crate) struct Writer {
    queue: mpsc::Sender<Job>,
}

impl Writer {
    /// Opens a write connection to the hub's database and starts the thread.
    pub(crate) fn start(db: &commons_db::Db) -> Result<Self> {
        // The writer is a rusqlite connection on the hub's file; PostgreSQL needs a writer of
        // its own (see ARCHITECTURE.md, "Database engines").
        let path = db.path().ok_or_else(|| {
            ComputeError::Unsupported("the compute coordinator runs on the embedded SQLite database only, not yet on PostgreSQL".into())
        })?;
        let conn = Connection::open(path)?;
        // The file is already in WAL mode (the hub's pool set it); durability as the hub's.
        // `temp_store = MEMORY` keeps each unit of work's savepoint journal in memory: SQLite
        // otherwise spills it to a temporary file past 64 KiB, and a batch's savepoints then
        // cost a `pwrite` per page they touch (40% of the writer's time at 32 leases a request).
        conn.execute_batch("PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; PRAGMA temp_store = MEMORY;")?;
        conn.busy_timeout(Duration::from_secs(30))?;
        conn.set_prepared_statement_cache_capacity(128);
        let (queue, jobs) = mpsc::channel();
        let db = db.clone();
        std::thread::Builder::new()
            .name("compute-writer".into())
            .spawn(move || run(&db, conn, jobs))
            .map_err(|e| ComputeError::Corrupt(format!("cannot start the writer thread: {e}")))?;
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

/// The writer thread: batch, run, commit, answer, until every handle is gone.
fn run(db: &commons_db::Db, conn: Conn, jobs: mpsc::Receiver<Job>) {
    while let Ok(first) = jobs.recv() {
        let mut settled: Vec<Deliver> = Vec::new();
        // The hub's writers queue for the same turn, so they get the lock between two batches.
        let turn = db.blocking_write_turn();
        let outcome = batch(&conn, first, &jobs, &mut settled);
        let error = outcome.err().map(|e| e.to_string());
        if let Some(e) = &error {
            tracing::error!(error = %e, units = settled.len(), "a compute write batch failed; its units are undone");
            // Whatever the failure left behind, the next batch starts clean.
            let _ = conn.execute_batch("ROLLBACK");
        }
        drop(turn);
        for deliver in settled {
            deliver(error.as_deref());
        }
    }
}

fn batch(conn: &Conn, first: Job, jobs: &mpsc::Receiver<Job>, settled: &mut Vec<Deliver>) -> rusqlite::Result<()> {
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let started = Instant::now();
    let mut next = Some(first);
    // Prepared once and kept (`execute_batch` would parse each again, at every unit of work).
    let step = |sql: &str| conn.prepare_cached(sql)?.execute([]).map(|_| ());
    while let Some(job) = next.take() {
        step("SAVEPOINT unit_of_work")?;
        let (ok, deliver) = job(conn);
        settled.push(deliver);
        if !ok {
            step("ROLLBACK TO unit_of_work")?;
        }
        step("RELEASE unit_of_work")?;
        if settled.len() < MAX_BATCH && started.elapsed() < MAX_BATCH_TIME {
            next = jobs.try_recv().ok();
        }
    }
    conn.execute_batch("COMMIT")
}

/// Statement helpers on the write connection: each statement is prepared once and cached.
/// A state enum from its text column of a writer row (`AssignmentState`, `Role`, ...): a value no
/// variant knows is a conversion failure, as a wrong type would be.
pub(crate) fn text_col<T>(row: &Row<'_>, column: &str) -> rusqlite::Result<T>
where
    T: for<'a> TryFrom<&'a str, Error = commons_protocol::UnknownValue>,
{
    let text: String = row.get(column)?;
    T::try_from(text.as_str()).map_err(|e| rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e)))
}

pub(crate) trait Sql {
    /// Executes a statement; returns the number of rows changed.
    fn exec(&self, sql: &str, params: impl Params) -> Result<usize>;
    /// The first row, mapped; an error if there is none.
    fn one<T>(&self, sql: &str, params: impl Params, map: impl FnOnce(&Row<'_>) -> rusqlite::Result<T>) -> Result<T>;
    /// The first row, mapped, if any.
    fn maybe<T>(&self, sql: &str, params: impl Params, map: impl FnOnce(&Row<'_>) -> rusqlite::Result<T>) -> Result<Option<T>>;
    /// Every row, mapped.
    fn all<T>(&self, sql: &str, params: impl Params, map: impl FnMut(&Row<'_>) -> rusqlite::Result<T>) -> Result<Vec<T>>;
}

impl Sql for Conn {
    fn exec(&self, sql: &str, params: impl Params) -> Result<usize> {
        Ok(self.prepare_cached(sql)?.execute(params)?)
    }

    fn one<T>(&self, sql: &str, params: impl Params, map: impl FnOnce(&Row<'_>) -> rusqlite::Result<T>) -> Result<T> {
        Ok(self.prepare_cached(sql)?.query_row(params, map)?)
    }

    fn maybe<T>(&self, sql: &str, params: impl Params, map: impl FnOnce(&Row<'_>) -> rusqlite::Result<T>) -> Result<Option<T>> {
        let mut statement = self.prepare_cached(sql)?;
        let mut rows = statement.query(params)?;
        match rows.next()? {
            Some(row) => Ok(Some(map(row)?)),
            None => Ok(None),
        }
    }

    fn all<T>(&self, sql: &str, params: impl Params, mut map: impl FnMut(&Row<'_>) -> rusqlite::Result<T>) -> Result<Vec<T>> {
        let mut statement = self.prepare_cached(sql)?;
        let rows = statement.query_map(params, |row| map(row))?;
        Ok(rows.collect::<rusqlite::Result<Vec<T>>>()?)
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

    fn insert(conn: &Conn, name: &str) -> Result<()> {
        conn.exec("INSERT INTO users (name, fullname, created_at) VALUES (?1, ?1, 0)", [name])?;
        Ok(())
    }

    #[tokio::test]
    async fn a_failed_unit_of_work_is_undone_and_its_neighbours_are_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = commons_db::Db::open(&dir.path().join("db.sqlite")).await.expect("db");
        let writer = std::sync::Arc::new(Writer::start(&db).expect("writer"));
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
