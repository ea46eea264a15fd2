//! Group commit: many logical write transactions share one physical SQLite transaction.
//!
//! Leases and reports are small transactions, and the cost of each is dominated by what every
//! transaction pays once: taking the write lock, the round trips of BEGIN and COMMIT, and the WAL
//! fsync. Here each logical transaction ([`Tx`]) is a savepoint inside the current physical
//! transaction; a flusher commits the physical transaction as soon as it gets its turn, so
//! everything that queued meanwhile becomes durable with one fsync. A logical commit returns
//! only after the physical commit that contains it succeeded, so an answer sent to a client
//! still means "on disk". A logical transaction dropped without commit rolls back to its
//! savepoint before the next one starts.

use std::collections::HashSet;
use std::sync::{Arc, Mutex as StdMutex};

use tokio::sync::{Mutex, Notify, OwnedMutexGuard, watch};

use crate::error::{ComputeError, Result};

/// The physical transaction and the number of the batch it commits.
pub(crate) struct Batch {
    tx: Option<sqlx::Transaction<'static, sqlx::Sqlite>>,
    number: u64,
    /// A logical transaction was dropped mid-way: undo it before anything else.
    rollback_pending: bool,
}

pub(crate) struct GroupCommit {
    db: commons_db::Db,
    batch: Arc<Mutex<Batch>>,
    flush: Arc<Notify>,
    /// The number of the last batch the flusher finished (committed or failed).
    finished: watch::Sender<u64>,
    failed: Arc<StdMutex<HashSet<u64>>>,
}

const SAVEPOINT: &str = "SAVEPOINT unit_of_work";

impl GroupCommit {
    /// Starts the flusher task.
    pub(crate) fn start(db: commons_db::Db) -> Arc<Self> {
        let (finished, _) = watch::channel(0);
        let group = Arc::new(Self {
            db,
            batch: Arc::new(Mutex::new(Batch { tx: None, number: 1, rollback_pending: false })),
            flush: Arc::new(Notify::new()),
            finished,
            failed: Arc::new(StdMutex::new(HashSet::new())),
        });
        let flusher = group.clone();
        tokio::spawn(async move {
            loop {
                flusher.flush.notified().await;
                flusher.flush_now().await;
            }
        });
        group
    }

    async fn flush_now(&self) {
        let mut batch = self.batch.lock().await;
        undo_pending(&mut batch).await;
        let Some(tx) = batch.tx.take() else { return };
        let number = batch.number;
        batch.number += 1;
        if let Err(e) = tx.commit().await {
            tracing::error!(error = %e, batch = number, "group commit failed; its transactions are lost");
            if let Ok(mut failed) = self.failed.lock() {
                failed.insert(number);
            }
        }
        drop(batch);
        self.finished.send_replace(number);
    }

    /// Begins a logical write transaction.
    pub(crate) async fn begin(self: &Arc<Self>) -> Result<Tx> {
        let mut batch = self.batch.clone().lock_owned().await;
        undo_pending(&mut batch).await;
        if batch.tx.is_none() {
            batch.tx = Some(self.db.begin_write().await?);
        }
        let tx = batch.tx.as_mut().ok_or_else(|| ComputeError::Corrupt("no physical transaction".into()))?;
        sqlx::query(SAVEPOINT).execute(&mut **tx).await?;
        Ok(Tx { batch: Some(batch), group: self.clone() })
    }
}

async fn undo_pending(batch: &mut Batch) {
    if !batch.rollback_pending {
        return;
    }
    batch.rollback_pending = false;
    if let Some(tx) = batch.tx.as_mut() {
        let undone = async {
            sqlx::query("ROLLBACK TO unit_of_work").execute(&mut **tx).await?;
            sqlx::query("RELEASE unit_of_work").execute(&mut **tx).await
        };
        if let Err(e) = undone.await {
            // The savepoint could not be undone: abandon the whole batch rather than commit it.
            tracing::error!(error = %e, "rolling back a failed unit of work failed; dropping its batch");
            batch.tx = None;
        }
    }
}

/// A logical write transaction: a savepoint of the current batch. Holds the writers' turn.
pub(crate) struct Tx {
    batch: Option<OwnedMutexGuard<Batch>>,
    group: Arc<GroupCommit>,
}

impl std::ops::Deref for Tx {
    type Target = sqlx::Transaction<'static, sqlx::Sqlite>;
    fn deref(&self) -> &Self::Target {
        // Both options are `Some` from `begin` until `commit` or drop consumes the Tx.
        self.batch.as_ref().and_then(|b| b.tx.as_ref()).expect("a live Tx holds its batch")
    }
}

impl std::ops::DerefMut for Tx {
    fn deref_mut(&mut self) -> &mut Self::Target {
        self.batch.as_mut().and_then(|b| b.tx.as_mut()).expect("a live Tx holds its batch")
    }
}

impl Tx {
    /// Ends this unit of work and waits until the batch holding it is durable.
    pub(crate) async fn commit(mut self) -> Result<()> {
        let mut batch = self.batch.take().ok_or_else(|| ComputeError::Corrupt("transaction already ended".into()))?;
        let number = batch.number;
        let released = match batch.tx.as_mut() {
            Some(tx) => sqlx::query("RELEASE unit_of_work").execute(&mut **tx).await.map(|_| ()),
            None => return Err(ComputeError::Corrupt("the batch was abandoned".into())),
        };
        if let Err(e) = released {
            batch.rollback_pending = true;
            self.group.flush.notify_one();
            return Err(e.into());
        }
        drop(batch);
        let mut finished = self.group.finished.subscribe();
        self.group.flush.notify_one();
        finished.wait_for(|done| *done >= number).await.map_err(|_| ComputeError::Corrupt("the group-commit flusher stopped".into()))?;
        let failed = self.group.failed.lock().map(|f| f.contains(&number)).unwrap_or(true);
        if failed {
            return Err(ComputeError::Corrupt(format!("the database did not commit batch {number}")));
        }
        Ok(())
    }
}

impl Drop for Tx {
    fn drop(&mut self) {
        if let Some(batch) = self.batch.as_mut() {
            batch.rollback_pending = true;
            // The batch holds SQLite's write lock: have it undone and closed promptly even if no
            // other unit of work follows.
            self.group.flush.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn names(db: &commons_db::Db) -> Vec<String> {
        let rows: Vec<(String,)> = sqlx::query_as("SELECT name FROM users ORDER BY name").fetch_all(db.pool()).await.expect("read");
        rows.into_iter().map(|(n,)| n).collect()
    }

    async fn insert(tx: &mut Tx, name: &str) {
        sqlx::query("INSERT INTO users (name, fullname, created_at) VALUES ($1, $1, 0)").bind(name).execute(&mut ***tx).await.expect("insert");
    }

    #[tokio::test]
    async fn a_dropped_unit_of_work_is_undone_and_its_neighbours_are_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = commons_db::Db::open(&dir.path().join("db.sqlite")).await.expect("db");
        let group = GroupCommit::start(db.clone());
        let mut kept = group.begin().await.expect("begin");
        insert(&mut kept, "kept").await;
        kept.commit().await.expect("commit");
        let mut dropped = group.begin().await.expect("begin");
        insert(&mut dropped, "dropped").await;
        drop(dropped);
        // Concurrent units of work land in one batch; each commit returns once it is durable.
        let tasks: Vec<_> = (0..20)
            .map(|i| {
                let group = group.clone();
                tokio::spawn(async move {
                    let mut tx = group.begin().await.expect("begin");
                    insert(&mut tx, &format!("u{i:02}")).await;
                    tx.commit().await.expect("commit");
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("task");
        }
        let all = names(&db).await;
        assert!(all.contains(&"kept".to_string()) && !all.contains(&"dropped".to_string()), "{all:?}");
        assert_eq!(all.len(), 21);
        // The write lock is free again: another connection can write at once.
        sqlx::query("INSERT INTO users (name, fullname, created_at) VALUES ('outside', 'o', 0)").execute(db.pool()).await.expect("write lock released");
    }
}
