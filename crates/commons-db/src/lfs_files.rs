//! The LFS objects a repository's commits name (`list_lfs_files`), and their permanent removal
//! from its history (`permanently_delete_lfs_files`): every commit whose tree holds one of them
//! is rewritten without it, with every descendant, and every ref moves to the rewritten commit.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::sql;

use crate::repos::{commit_id, load_tree, store_tree};
use crate::{Db, DbError, Repo, Result};

use crate::sql::Tx;

/// Commits one history rewrite may touch: the rewrite runs in one transaction, holding the
/// write lock, so a longer history is refused rather than stalling every writer.
pub const REWRITE_COMMITS_MAX: i64 = 100_000;

/// An LFS object of a repository.
#[derive(Clone, Debug)]
pub struct LfsObject {
    pub sha256: String,
    pub size: i64,
    /// The path it was first committed under.
    pub filename: String,
    /// The branch of that commit (unknown for commits older than this record).
    pub ref_name: Option<String>,
    pub pushed_at: i64,
}

/// What a permanent deletion did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Purged {
    /// Objects removed from the repository.
    pub objects: usize,
    /// Commits replaced by rewritten ones.
    pub commits_rewritten: usize,
}

impl Db {
    /// The repository's LFS objects in `sha256` order, from after `after`, at most `limit`.
    pub async fn lfs_objects(&self, repo: &Repo, after: Option<&str>, limit: u32) -> Result<Vec<LfsObject>> {
        let rows = sql::query(
            "SELECT f.sha256, b.size, f.filename, f.ref_name, f.pushed_at
             FROM repo_lfs_files f JOIN blobs b ON b.sha256 = f.sha256
             WHERE f.repo_id = $1 AND f.sha256 > $2 ORDER BY f.sha256 LIMIT $3",
        )
        .bind(repo.id)
        .bind(after.unwrap_or(""))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(LfsObject {
                    sha256: r.try_get("sha256")?,
                    size: r.try_get("size")?,
                    filename: r.try_get("filename")?,
                    ref_name: r.try_get("ref_name")?,
                    pushed_at: r.try_get("pushed_at")?,
                })
            })
            .collect()
    }

    /// Removes the LFS objects `shas` from `repo`: every commit whose tree holds one is replaced
    /// by a commit without it (same author, time and message), every commit after it by one on
    /// the new parent, and branches, tags and pull requests move to the replacements; the old
    /// commits are deleted. Objects the repository does not hold are ignored. One transaction:
    /// readers see the old history or the new one, never a mix.
    ///
    /// Commits elsewhere that named a replaced commit (a leaderboard entry's model commit, a
    /// discussion event) keep the old id, which no longer resolves, as after a force-push.
    pub async fn purge_lfs_objects(&self, repo: &Repo, shas: &[String]) -> Result<Purged> {
        let mut tx = self.begin_write().await?;
        let mut targets = HashSet::new();
        for sha in shas {
            let held = sql::query("SELECT 1 FROM repo_lfs_files WHERE repo_id = $1 AND sha256 = $2")
                .bind(repo.id)
                .bind(sha)
                .fetch_optional(&mut *tx)
                .await?
                .is_some();
            if held {
                targets.insert(sha.clone());
            }
        }
        if targets.is_empty() {
            return Ok(Purged::default());
        }
        let commits_rewritten = rewrite_history(&mut tx, repo, &targets).await?;
        for sha in &targets {
            sql::query("DELETE FROM repo_lfs_files WHERE repo_id = $1 AND sha256 = $2").bind(repo.id).bind(sha).execute(&mut *tx).await?;
        }
        sql::query("UPDATE repos SET updated_at = $1 WHERE id = $2").bind(crate::now_unix()).bind(repo.id).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(Purged { objects: targets.len(), commits_rewritten })
    }
}

/// One commit row, as the rewrite needs it.
struct CommitRow {
    id: String,
    parent_id: Option<String>,
    tree_id: String,
    author: String,
    title: String,
    message: String,
    created_at: i64,
    seq: i64,
}

/// Rewrites `repo`'s commits without the objects `targets`; answers how many were replaced.
async fn rewrite_history(tx: &mut Tx, repo: &Repo, targets: &HashSet<String>) -> Result<usize> {
    let count: i64 =
        sql::query("SELECT COUNT(*) AS n FROM commits WHERE repo_id = $1").bind(repo.id).fetch_one(&mut *tx).await?.try_get("n")?;
    if count > REWRITE_COMMITS_MAX {
        return Err(DbError::Invalid(format!(
            "{} has {count} commits; this hub rewrites histories of at most {REWRITE_COMMITS_MAX}",
            repo.full_name()
        )));
    }
    // A parent's `seq` is below its children's, so this order is topological.
    let rows = sql::query(
        "SELECT id, parent_id, tree_id, author, title, message, created_at, seq FROM commits WHERE repo_id = $1 ORDER BY seq, created_at",
    )
    .bind(repo.id)
    .fetch_all(&mut *tx)
    .await?;
    let commits = rows
        .iter()
        .map(|r| {
            Ok(CommitRow {
                id: r.try_get("id")?,
                parent_id: r.try_get("parent_id")?,
                tree_id: r.try_get("tree_id")?,
                author: r.try_get("author")?,
                title: r.try_get("title")?,
                message: r.try_get("message")?,
                created_at: r.try_get("created_at")?,
                seq: r.try_get("seq")?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    // The trees of this repository that hold a target.
    let mut dirty_trees = HashSet::new();
    for sha in targets {
        let rows = sql::query(
            "SELECT DISTINCT e.tree_id FROM tree_entries e JOIN commits c ON c.tree_id = e.tree_id
             WHERE e.sha256 = $1 AND c.repo_id = $2",
        )
        .bind(sha)
        .bind(repo.id)
        .fetch_all(&mut *tx)
        .await?;
        for r in rows {
            dirty_trees.insert(r.try_get::<String, _>("tree_id")?);
        }
    }
    let mut new_trees: HashMap<String, String> = HashMap::new();
    let mut replaced: HashMap<String, String> = HashMap::new();
    for c in &commits {
        let parent = c.parent_id.as_ref().map(|p| replaced.get(p).unwrap_or(p).clone());
        let tree = if dirty_trees.contains(&c.tree_id) {
            match new_trees.get(&c.tree_id) {
                Some(t) => t.clone(),
                None => {
                    let mut entries: BTreeMap<_, _> = load_tree((&mut *tx).into(), &c.tree_id).await?;
                    entries.retain(|_, e| !(e.lfs && targets.contains(&e.sha256)));
                    let t = store_tree(tx, &entries).await?;
                    new_trees.insert(c.tree_id.clone(), t.clone());
                    t
                }
            }
        } else {
            c.tree_id.clone()
        };
        if parent == c.parent_id && tree == c.tree_id {
            continue;
        }
        let id = commit_id(parent.as_deref(), &tree, &c.author, c.created_at, &c.title, &c.message);
        sql::query(
            "INSERT INTO commits (id, repo_id, parent_id, tree_id, author, title, message, created_at, seq)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (repo_id, id) DO NOTHING",
        )
        .bind(&id)
        .bind(repo.id)
        .bind(&parent)
        .bind(&tree)
        .bind(&c.author)
        .bind(&c.title)
        .bind(&c.message)
        .bind(c.created_at)
        .bind(c.seq)
        .execute(&mut *tx)
        .await?;
        replaced.insert(c.id.clone(), id);
    }
    for (old, new) in &replaced {
        sql::query("UPDATE refs SET commit_id = $1 WHERE repo_id = $2 AND commit_id = $3")
            .bind(new)
            .bind(repo.id)
            .bind(old)
            .execute(&mut *tx)
            .await?;
        for column in ["base_commit", "merge_commit"] {
            sql::query(sql::AssertSqlSafe(format!("UPDATE discussions SET {column} = $1 WHERE repo_id = $2 AND {column} = $3")))
                .bind(new)
                .bind(repo.id)
                .bind(old)
                .execute(&mut *tx)
                .await?;
        }
        sql::query("DELETE FROM commits WHERE repo_id = $1 AND id = $2").bind(repo.id).bind(old).execute(&mut *tx).await?;
    }
    Ok(replaced.len())
}
