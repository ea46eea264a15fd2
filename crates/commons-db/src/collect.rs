//! The collector's half in the metadata: forgetting what no reference reaches any more, so the
//! storage layer can then delete the xorbs no file uses (`Cas::sweep_orphan_xorbs`).
//!
//! Reachable is: every commit a ref points at and its ancestors, the commits a verified result
//! (a leaderboard entry) or a pull request (its base and merge) names and their ancestors; the
//! trees of those commits; the blobs those trees list; the file reconstructions of those blobs.
//! Besides, a blob or reconstruction touched within the grace period stays (see migration
//! `0015_collection.sql`): an upload stores bytes before the commit that names them.
//!
//! Why nothing a concurrent upload or commit is about to reference is lost:
//! - The mark and the sweep are one write transaction ([`Db::begin_write`]: SQLite's write lock,
//!   or on PostgreSQL the advisory lock every write transaction of every server takes): no
//!   commit, ref move or upload record lands between deciding a row is unreachable and deleting
//!   it, in this process or another.
//! - A commit names blobs by sha256 inside its own transaction and fails (`NotFound`) if one is
//!   missing: a commit after the sweep never binds a deleted blob; one before it made the blob
//!   reachable.
//! - Bytes a client was told are stored (an LFS batch's "nothing to send", an upload that
//!   deduplicated to an existing file) were touched then; they stay for the grace period, longer
//!   than any upload URL lives, so the commit that follows finds them.
//! - Xorbs go only afterwards, by the storage layer, each in its own transaction that re-checks
//!   no file uses it and that it has been unused for the whole grace period (`unused_since`,
//!   set here when the last file using it is forgotten). An upload that reuses a chunk of such
//!   a xorb pins it first (`Db::find_chunk` starts its grace over, or finds nothing if it is
//!   gone), and recording its file clears the mark: a reused xorb is never taken from under an
//!   upload shorter than the grace period.

use crate::sql;

use crate::{Db, Result, now_unix};

/// What [`Db::forget_unreachable`] removed from the metadata.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Forgotten {
    /// Commits no ref, verified result or pull request reaches (history rewritten or squashed,
    /// branches deleted).
    pub commits: u64,
    /// Trees no remaining commit has.
    pub trees: u64,
    /// Blobs no remaining tree lists and nobody touched within the grace period.
    pub blobs: u64,
    /// File reconstructions no remaining blob is, untouched within the grace period.
    pub files: u64,
}

/// Runs each statement in turn on `conn`.
async fn run_each(mut exec: sql::Exec<'_>, statements: &[&'static str]) -> Result<()> {
    for statement in statements {
        sql::query(*statement).execute(exec.reborrow()).await?;
    }
    Ok(())
}

impl Db {
    /// Forgets the commits, trees, blobs and file reconstructions that nothing reaches, keeping
    /// blobs and reconstructions touched less than `grace_secs` ago, in one write transaction.
    /// The read cache of this process is emptied of what it held about contents (it keeps
    /// immutable answers until evicted, and these are no longer answers).
    pub async fn forget_unreachable(&self, grace_secs: i64) -> Result<Forgotten> {
        let cutoff = now_unix().saturating_sub(grace_secs);
        let mut tx = self.begin_write().await?;
        let conn = &mut *tx;
        run_each(
            (&mut *conn).into(),
            &[
                "DROP TABLE IF EXISTS live_commits",
                "CREATE TEMP TABLE live_commits (repo_id BIGINT NOT NULL, id TEXT NOT NULL, PRIMARY KEY (repo_id, id))",
                // UNION (not UNION ALL) drops what was seen: the walk ends even on a cycle.
                "WITH RECURSIVE live(repo_id, id) AS (
                 SELECT repo_id, commit_id FROM refs
                 UNION SELECT model_repo_id, model_commit FROM board_entries
                 UNION SELECT dataset_repo_id, dataset_commit FROM board_entries
                 UNION SELECT algorithm_repo_id, algorithm_commit FROM board_entries WHERE algorithm_commit IS NOT NULL
                 UNION SELECT repo_id, base_commit FROM discussions WHERE base_commit IS NOT NULL
                 UNION SELECT repo_id, merge_commit FROM discussions WHERE merge_commit IS NOT NULL
                 UNION SELECT c.repo_id, c.parent_id FROM commits c JOIN live l ON c.repo_id = l.repo_id AND c.id = l.id
                       WHERE c.parent_id IS NOT NULL
             )
             INSERT INTO live_commits (repo_id, id) SELECT repo_id, id FROM live",
            ],
        )
        .await?;
        let commits = sql::query(
            "DELETE FROM commits WHERE NOT EXISTS
                 (SELECT 1 FROM live_commits l WHERE l.repo_id = commits.repo_id AND l.id = commits.id)",
        )
        .execute(&mut *conn)
        .await?
        .rows_affected();

        run_each(
            (&mut *conn).into(),
            &[
                "DROP TABLE IF EXISTS dead_trees",
                "CREATE TEMP TABLE dead_trees (id TEXT PRIMARY KEY)",
                "INSERT INTO dead_trees (id) SELECT id FROM trees t WHERE NOT EXISTS (SELECT 1 FROM commits c WHERE c.tree_id = t.id)",
                "DELETE FROM tree_entries WHERE tree_id IN (SELECT id FROM dead_trees)",
            ],
        )
        .await?;
        let trees = sql::query("DELETE FROM trees WHERE id IN (SELECT id FROM dead_trees)").execute(&mut *conn).await?.rows_affected();

        run_each((&mut *conn).into(), &["DROP TABLE IF EXISTS dead_blobs", "CREATE TEMP TABLE dead_blobs (sha256 TEXT PRIMARY KEY)"])
            .await?;
        sql::query(
            "INSERT INTO dead_blobs (sha256) SELECT sha256 FROM blobs b
             WHERE b.touched_at <= $1 AND NOT EXISTS (SELECT 1 FROM tree_entries e WHERE e.sha256 = b.sha256)",
        )
        .bind(cutoff)
        .execute(&mut *conn)
        .await?;
        // Rows that only say something about a blob go with it: who uploaded it, which
        // repository's history once named it, the card its README had.
        run_each(
            (&mut *conn).into(),
            &[
                "DELETE FROM blob_holders WHERE sha256 IN (SELECT sha256 FROM dead_blobs)",
                "DELETE FROM repo_lfs_files WHERE sha256 IN (SELECT sha256 FROM dead_blobs)",
                "DELETE FROM card_tags WHERE readme_sha256 IN (SELECT sha256 FROM dead_blobs)",
                "DELETE FROM cards WHERE readme_sha256 IN (SELECT sha256 FROM dead_blobs)",
            ],
        )
        .await?;
        let blobs =
            sql::query("DELETE FROM blobs WHERE sha256 IN (SELECT sha256 FROM dead_blobs)").execute(&mut *conn).await?.rows_affected();

        run_each((&mut *conn).into(), &["DROP TABLE IF EXISTS dead_files", "CREATE TEMP TABLE dead_files (file_hash TEXT PRIMARY KEY)"])
            .await?;
        sql::query(
            "INSERT INTO dead_files (file_hash) SELECT file_hash FROM cas_files f
             WHERE f.touched_at <= $1 AND NOT EXISTS (SELECT 1 FROM blobs b WHERE b.file_hash = f.file_hash)",
        )
        .bind(cutoff)
        .execute(&mut *conn)
        .await?;
        // The xorbs those files used may now be used by none: they become the storage layer's
        // candidates from now on (their grace starts), unless a file still uses them.
        run_each((&mut *conn).into(), &[
            "DROP TABLE IF EXISTS freed_xorbs",
            "CREATE TEMP TABLE freed_xorbs (xorb_hash TEXT PRIMARY KEY)",
            "INSERT INTO freed_xorbs (xorb_hash) SELECT DISTINCT xorb_hash FROM cas_file_terms WHERE file_hash IN (SELECT file_hash FROM dead_files)",
            "DELETE FROM cas_file_terms WHERE file_hash IN (SELECT file_hash FROM dead_files)",
        ]).await?;
        sql::query(
            "UPDATE cas_xorbs SET unused_since = $1
             WHERE unused_since IS NULL AND xorb_hash IN (SELECT xorb_hash FROM freed_xorbs)
               AND NOT EXISTS (SELECT 1 FROM cas_file_terms t WHERE t.xorb_hash = cas_xorbs.xorb_hash)",
        )
        .bind(now_unix())
        .execute(&mut *conn)
        .await?;
        let files = sql::query("DELETE FROM cas_files WHERE file_hash IN (SELECT file_hash FROM dead_files)")
            .execute(&mut *conn)
            .await?
            .rows_affected();
        for table in ["live_commits", "dead_trees", "dead_blobs", "dead_files", "freed_xorbs"] {
            sql::query(sql::AssertSqlSafe(format!("DROP TABLE {table}"))).execute(&mut *conn).await?;
        }
        tx.commit().await?;
        if blobs + files + commits > 0 {
            self.cache.forget_contents();
        }
        Ok(Forgotten { commits, trees, blobs, files })
    }

    /// Marks blob `sha256` (and its reconstruction) as just promised to an upload: the
    /// collector keeps it for its grace period even if no commit names it.
    pub async fn touch_blob(&self, sha256: &str) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let now = now_unix();
        let file = sql::query("UPDATE blobs SET touched_at = $1 WHERE sha256 = $2 RETURNING file_hash")
            .bind(now)
            .bind(sha256)
            .fetch_optional(&mut *tx)
            .await?;
        if let Some(row) = file {
            let file_hash: String = row.try_get("file_hash")?;
            sql::query("UPDATE cas_files SET touched_at = $1 WHERE file_hash = $2").bind(now).bind(file_hash).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }
}
