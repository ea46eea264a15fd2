//! The metadata store of Commons: who exists (users, tokens), what exists (repositories, their
//! commits, trees and refs) and where the bytes are (the CAS index the storage layer keeps).
//!
//! Invariants this crate upholds:
//! - A commit becomes visible only by moving a ref, and a ref moves only inside the transaction
//!   that wrote the commit and its tree: readers never see a half-written revision.
//! - Ref moves are compare-and-swap on the old target, so a stale `parentCommit` is rejected
//!   instead of silently overwriting a concurrent commit.
//! - The SQL is portable (`$n` placeholders, `ON CONFLICT`, no SQLite-only functions), so the same
//!   queries can run on PostgreSQL.

mod auth;
mod cache;
pub mod cas;
mod collect;
mod collections;
mod discussions;
mod error;
mod gated;
mod leaderboards;
mod lfs_files;
mod market;
mod orgs;
mod repos;
pub mod sql;
pub mod webhooks;

pub use auth::{Scope, Token, TokenInfo, User};
pub use collect::Forgotten;
pub use collections::{
    COLLECTION_ITEMS_MAX, COLLECTIONS_PER_OWNER_MAX, Collection, CollectionChanges, CollectionItem, CollectionQuery, CreatedCollection,
    ItemTarget, NewItem, is_collection_id, new_collection_id,
};
pub use discussions::{
    CommentRevision, Discussion, DiscussionEvent, DiscussionFilter, DiscussionStatus, EventKind, MergePlan, NewPullRequest, pr_number,
    pr_ref,
};
pub use error::DbError;
pub use gated::{AccessRequest, AccessStatus, GateMode, REJECTION_REASON_MAX, RequestTarget};
pub use leaderboards::{BoardEntry, BoardSummary};
pub use lfs_files::{LfsObject, Purged, REWRITE_COMMITS_MAX};
pub use market::{DOWNLOAD_DAYS, Download, TRENDING_DAYS};
pub use orgs::{Membership, ORG_FULLNAME_MAX, OrgCounts, OrgRole, Organization};
pub use repos::{
    Commit, CommitInfo, CommitOp, FileEntry, NewFile, RefInfo, RefKind, Repo, RepoKind, RepoQuery, RepoSort, TreeItem, git_blob_sha1,
    lfs_pointer,
};

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::PgPoolOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

pub use sql::Engine;
use sql::{Pool, Tx};

pub type Result<T, E = DbError> = std::result::Result<T, E>;

/// Handle on the metadata database. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Db {
    pool: Pool,
    /// The SQLite file; `None` on PostgreSQL.
    path: Option<Arc<std::path::PathBuf>>,
    turn: Arc<tokio::sync::Mutex<()>>,
    cache: Arc<cache::ReadCache>,
}

/// This process's turn to write, held for the length of a write transaction.
///
/// SQLite admits one writer at a time, and a writer that finds the lock taken polls for it with
/// growing sleeps (the busy timeout): under a steady stream of writes from one connection (the
/// compute coordinator's), another could keep missing its chance for seconds. Writers of one
/// process queue here instead, first come first served; the busy timeout remains for writers in
/// other processes.
///
/// Taking it (except [`Db::blocking_write_turn`]) and giving it back both make the answers of
/// the read cache stale (see `cache`), so no reader is answered from before a write ended.
pub struct WriteTurn {
    _guard: tokio::sync::OwnedMutexGuard<()>,
    cache: Option<Arc<cache::ReadCache>>,
}

impl Drop for WriteTurn {
    fn drop(&mut self) {
        if let Some(cache) = &self.cache {
            cache.bump();
        }
    }
}

/// A write transaction that holds this process's [`WriteTurn`] until it ends.
pub struct WriteTx {
    tx: Tx,
    _turn: WriteTurn,
}

impl std::ops::Deref for WriteTx {
    type Target = Tx;
    fn deref(&self) -> &Self::Target {
        &self.tx
    }
}

impl std::ops::DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.tx
    }
}

impl WriteTx {
    pub async fn commit(self) -> Result<()> {
        Ok(self.tx.commit().await?)
    }
}

/// How much of the database file reads may map (SQLite's `mmap_size`).
const MMAP_SIZE: u64 = 1 << 30;

/// The statement that takes the PostgreSQL advisory lock every write transaction takes, first
/// thing (see [`Db::begin_write`]); held to the transaction's end. The key is "commons" in ASCII.
pub const POSTGRES_WRITE_LOCK: &str = "SELECT pg_advisory_xact_lock(27988538472492659)";

/// The same lock, shared: writers that take it run beside one another (each keeping its own
/// rows consistent with row locks) and never beside a holder of [`POSTGRES_WRITE_LOCK`]. The
/// compute coordinators' reports take it.
pub const POSTGRES_SHARED_WRITE_LOCK: &str = "SELECT pg_advisory_xact_lock_shared(27988538472492659)";

/// Connections a PostgreSQL pool keeps at most: each server of several holds its own.
const POSTGRES_CONNECTIONS: u32 = 16;

impl Db {
    /// Opens (creating if needed) the SQLite database at `path` and applies pending migrations.
    ///
    /// WAL with `synchronous=FULL`: a commit acknowledged to a client survives a crash of the
    /// process or of the machine.
    pub async fn open(path: &Path) -> Result<Self> {
        let url = format!("sqlite://{}", path.display());
        let options = SqliteConnectOptions::from_str(&url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(30))
            // Reads from the OS page cache shared by every connection, not through a read()
            // into each connection's own small cache: a listing's point lookups then cost no
            // system call. (Address space only; the file is still written through the WAL.)
            .pragma("mmap_size", MMAP_SIZE.to_string());
        let pool = SqlitePoolOptions::new().max_connections(8).connect_with(options).await?;
        sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
        let shared = cache::SharedCount::open(path)
            .inspect_err(|e| tracing::warn!(error = %e, "no shared write generation beside the database; mutable answers are not cached"))
            .ok();
        Ok(Self {
            pool: Pool::Sqlite(pool),
            path: Some(Arc::new(path.to_path_buf())),
            turn: Arc::new(tokio::sync::Mutex::new(())),
            cache: cache::ReadCache::new(shared),
        })
    }

    /// Opens the database at `url`: `postgres://…` (or `postgresql://…`) for PostgreSQL,
    /// `sqlite://PATH` or a plain path for SQLite; applies pending migrations.
    ///
    /// On PostgreSQL several servers share the database: what one caches could be changed by
    /// another without its knowing, so answers that can change are not cached (a commit's tree,
    /// which never changes, still is).
    pub async fn connect(url: &str) -> Result<Self> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let pool = PgPoolOptions::new().max_connections(POSTGRES_CONNECTIONS).connect(url).await?;
            // Listings page by comparing text (`path > $1`, prefix bounds computed here): that
            // needs text ordered by code point, as SQLite orders it, not by a language's rules.
            let collation: String = sql::query_scalar("SELECT datcollate::TEXT FROM pg_database WHERE datname = current_database()")
                .fetch_one(sql::Exec::PostgresPool(&pool))
                .await?;
            // C.UTF-8 orders by code point too (glibc's definition of it).
            if !matches!(collation.as_str(), "C" | "POSIX" | "C.UTF-8" | "C.utf8") {
                return Err(DbError::Invalid(format!(
                    "the database's collation is {collation}; Commons needs C (text ordered by code point): \
                     CREATE DATABASE … TEMPLATE template0 ENCODING 'UTF8' LOCALE 'C'"
                )));
            }
            // Two servers starting at once would both apply the migrations: the lock makes the
            // second wait and then find them applied.
            sqlx::migrate!("./migrations/postgres").run(&pool).await?;
            return Ok(Self {
                pool: Pool::Postgres(pool),
                path: None,
                turn: Arc::new(tokio::sync::Mutex::new(())),
                cache: cache::ReadCache::new(None),
            });
        }
        let path = url.strip_prefix("sqlite://").unwrap_or(url);
        Self::open(Path::new(path)).await
    }

    /// The engine this database runs on.
    pub fn engine(&self) -> Engine {
        self.pool.engine()
    }

    /// The SQLite database file (`None` on PostgreSQL): a layer that keeps its own connection
    /// (the compute coordinator's writer thread) opens this.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref().map(|p| p.as_path())
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Starts a write transaction that holds the database's write lock from its first
    /// statement, so two writers never deadlock upgrading from a read lock and every invariant
    /// argued for one writer at a time holds: on SQLite `BEGIN IMMEDIATE`; on PostgreSQL an
    /// advisory lock held to the end of the transaction, which serialises the writers of every
    /// server sharing the database the same way. It waits for this process's write turn first.
    pub async fn begin_write(&self) -> Result<WriteTx> {
        let turn = self.write_turn().await;
        let tx = match &self.pool {
            Pool::Sqlite(p) => Tx::Sqlite(p.begin_with("BEGIN IMMEDIATE").await?),
            Pool::Postgres(p) => {
                let mut tx = Tx::Postgres(p.begin().await?);
                sql::query(POSTGRES_WRITE_LOCK).execute(&mut tx).await?;
                tx
            }
        };
        Ok(WriteTx { tx, _turn: turn })
    }

    /// Waits for this process's turn to write (see [`WriteTurn`]). Every write of this crate
    /// takes it; so does any other layer that writes the database on its own connection.
    pub async fn write_turn(&self) -> WriteTurn {
        let guard = self.turn.clone().lock_owned().await;
        self.cache.bump();
        WriteTurn { _guard: guard, cache: Some(self.cache.clone()) }
    }

    /// A write made on a connection of its own, under [`Self::blocking_write_turn`], changed
    /// what the read cache answers (the compute coordinator finished a job and recorded its
    /// verified results): answers read before now are stale, in every process. Called once the
    /// write has committed.
    pub fn note_write(&self) {
        self.cache.bump();
    }

    /// [`Self::write_turn`] for a thread outside the async runtime. Panics if called from
    /// inside one. For writers of tables the read cache does not hold (the compute
    /// coordinator's): it leaves the cache as it is; a writer that changed what it holds (the
    /// boards) says so with [`Self::note_write`] once committed.
    pub fn blocking_write_turn(&self) -> WriteTurn {
        WriteTurn { _guard: self.turn.clone().blocking_lock_owned(), cache: None }
    }

    /// Writes a consistent copy of the whole database to the new file `path` (SQLite's
    /// `VACUUM INTO`: one read transaction, so writers carry on meanwhile).
    /// On PostgreSQL, backups are the database's own tools' job (`pg_dump`): an error.
    pub async fn snapshot_into(&self, path: &Path) -> Result<()> {
        let target = path.to_str().ok_or_else(|| DbError::Invalid(format!("{} is not a UTF-8 path", path.display())))?;
        if self.engine() != Engine::Sqlite {
            return Err(DbError::Invalid("a snapshot is taken of the embedded SQLite database; back PostgreSQL up with pg_dump".into()));
        }
        sql::query("VACUUM INTO $1").bind(target).execute(&self.pool).await?;
        Ok(())
    }

    /// The secret `name` that every server sharing this PostgreSQL database uses: the one
    /// stored, or `candidate` when none is yet (the first server to ask stores its own; the
    /// insert is atomic, so two servers starting at once agree). `None` on SQLite, whose hub
    /// keeps its secrets in files of its data directory.
    pub async fn shared_key(&self, name: &str, candidate: &[u8]) -> Result<Option<Vec<u8>>> {
        if self.engine() != Engine::Postgres {
            return Ok(None);
        }
        sql::query("INSERT INTO hub_keys (name, key) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
            .bind(name)
            .bind(candidate)
            .execute(&self.pool)
            .await?;
        Ok(Some(sql::query_scalar("SELECT key FROM hub_keys WHERE name = $1").bind(name).fetch_one(&self.pool).await?))
    }

    /// Whether the database answers a query.
    pub async fn ping(&self) -> Result<()> {
        sql::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Seconds since the Unix epoch: the time unit of every table.
pub fn now_unix() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}
