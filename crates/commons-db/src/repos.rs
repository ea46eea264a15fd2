//! Repositories, commits, trees and refs.
//!
//! A revision is a commit pointing at a tree; a tree is the complete, sorted listing of the files
//! of that revision (path → blob). Trees are content-addressed, so a commit that changes nothing
//! in the listing reuses its parent's rows.

use std::collections::{BTreeMap, HashMap};

use crate::sql::{self, AssertSqlSafe, Row};
use sha1::{Digest, Sha1};

use crate::{Db, DbError, Result, now_unix};

pub use commons_protocol::RepoKind;

#[derive(Clone, Debug)]
pub struct Repo {
    pub id: i64,
    pub kind: RepoKind,
    pub namespace: String,
    pub name: String,
    pub private: bool,
    pub created_at: i64,
    pub updated_at: i64,
    /// Users who like it.
    pub likes: i64,
    /// Distinct clients that downloaded from it over the last 30 days.
    pub downloads: i64,
    /// Likes given over the last [`crate::TRENDING_DAYS`] days.
    pub trending: i64,
    /// How its files are gated (`None`: not gated; see `gated`).
    pub gated: Option<crate::GateMode>,
    /// The user who created it (an organization's contributors write only their own).
    pub created_by: Option<String>,
}

impl Repo {
    pub fn full_name(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct Commit {
    pub id: String,
    pub parent_id: Option<String>,
    pub tree_id: String,
    pub author: String,
    pub title: String,
    pub message: String,
    pub created_at: i64,
}

/// One file of a tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileEntry {
    pub path: String,
    pub sha256: String,
    pub size: i64,
    pub git_oid: String,
    pub lfs: bool,
}

/// A file to place in a commit; its blob must already be stored.
#[derive(Clone, Debug)]
pub struct NewFile {
    pub path: String,
    pub sha256: String,
    pub lfs: bool,
}

#[derive(Clone, Debug)]
pub enum CommitOp {
    Put(NewFile),
    Delete(String),
    DeleteFolder(String),
}

/// An entry of a folder listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TreeItem {
    File(FileEntry),
    /// A folder: its path (no trailing `/`) and an id that changes whenever the revision's tree
    /// does. (Git's folder oid hashes the folder's whole subtree, a cost that grows with the
    /// folder; no client relies on it.)
    Folder {
        path: String,
        oid: String,
    },
}

impl TreeItem {
    /// The key a listing page ends on: a file's path, or a folder's path with a trailing `/`.
    pub fn page_key(&self) -> String {
        match self {
            TreeItem::File(f) => f.path.clone(),
            TreeItem::Folder { path, .. } => format!("{path}/"),
        }
    }
}

/// The smallest key after `key` and everything below it: past a folder key `a/b/` is `a/b0`
/// (`0` follows `/`), past a file `x` is `x` + U+0001 (control characters never occur in paths).
fn successor_key(key: &str) -> String {
    match key.strip_suffix('/') {
        Some(folder) => format!("{folder}0"),
        None => format!("{key}\u{1}"),
    }
}

/// The first key after every path that starts with `prefix` (`None`: no bound, the root).
fn prefix_end(prefix: &str) -> Option<String> {
    prefix.strip_suffix('/').map(|p| format!("{p}0"))
}

/// The folders below `prefix` that lead to `key`, shallowest first (a folder key includes itself).
fn folders_of(key: &str, prefix: &str) -> Vec<String> {
    let Some(rest) = key.strip_prefix(prefix) else { return Vec::new() };
    let mut out = Vec::new();
    let mut end = prefix.len();
    for component in rest.split('/').collect::<Vec<_>>().split_last().map(|(_, dirs)| dirs.to_vec()).unwrap_or_default() {
        end += component.len();
        out.push(key[..end].to_string());
        end += 1;
    }
    out
}

fn folder_oid(tree: &str, path: &str) -> String {
    let mut h = Sha1::new();
    h.update(tree.as_bytes());
    h.update([0]);
    h.update(path.as_bytes());
    hex::encode(h.finalize())
}

fn entry_from_row(row: &Row) -> Result<FileEntry> {
    Ok(FileEntry {
        path: row.try_get("path")?,
        sha256: row.try_get("sha256")?,
        size: row.try_get("size")?,
        git_oid: row.try_get("git_oid")?,
        lfs: row.try_get("lfs")?,
    })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefKind {
    Branch,
    Tag,
}

impl RefKind {
    fn as_str(self) -> &'static str {
        match self {
            RefKind::Branch => "branch",
            RefKind::Tag => "tag",
        }
    }
}

#[derive(Clone, Debug)]
pub struct RefInfo {
    pub kind: RefKind,
    pub name: String,
    pub commit_id: String,
}

#[derive(Clone, Copy, Debug, Default)]
pub enum RepoSort {
    #[default]
    LastModified,
    CreatedAt,
    Name,
    Likes,
    Downloads,
    /// Recent likes ([`Repo::trending`]).
    Trending,
}

#[derive(Clone, Debug, Default)]
pub struct RepoQuery {
    pub author: Option<String>,
    pub search: Option<String>,
    /// Tags the card of the repository's `main` must all give it.
    pub tags: Vec<String>,
    /// Smallest first (`direction=1`); largest or newest first otherwise.
    pub ascending: bool,
    /// When set, private repos of this namespace owner are included.
    pub viewer: Option<String>,
    pub sort: RepoSort,
    pub limit: i64,
    pub offset: i64,
}

pub(crate) fn repo_from_row(row: &Row) -> Result<Repo> {
    let kind: String = row.try_get("kind")?;
    Ok(Repo {
        id: row.try_get("id")?,
        kind: RepoKind::parse(&kind).ok_or_else(|| DbError::Corrupt(format!("repo kind {kind:?}")))?,
        namespace: row.try_get("namespace")?,
        name: row.try_get("name")?,
        private: row.try_get("private")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        likes: row.try_get("likes")?,
        downloads: row.try_get("downloads")?,
        trending: row.try_get("trending")?,
        gated: row.try_get::<Option<String>, _>("gated")?.as_deref().and_then(crate::GateMode::parse),
        created_by: row.try_get("created_by")?,
    })
}

fn commit_from_row(row: &Row) -> Result<Commit> {
    Ok(Commit {
        id: row.try_get("id")?,
        parent_id: row.try_get("parent_id")?,
        tree_id: row.try_get("tree_id")?,
        author: row.try_get("author")?,
        title: row.try_get("title")?,
        message: row.try_get("message")?,
        created_at: row.try_get("created_at")?,
    })
}

pub(crate) const REPO_COLUMNS: &str =
    "id, kind, namespace, name, private, created_at, updated_at, likes, downloads, trending, gated, created_by";
/// The file whose front matter is a repository's card.
const README: &str = "README.md";

const COMMIT_COLUMNS: &str = "id, parent_id, tree_id, author, title, message, created_at";

fn is_full_commit_id(rev: &str) -> bool {
    rev.len() == 40 && rev.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

/// Tree ids hash the sorted listing, so equal listings share storage.
fn tree_id(entries: &BTreeMap<String, FileEntry>) -> String {
    let mut h = Sha1::new();
    for e in entries.values() {
        h.update(e.path.as_bytes());
        h.update([0]);
        h.update(e.sha256.as_bytes());
        h.update(if e.lfs { b"L\n" } else { b"R\n" });
    }
    hex::encode(h.finalize())
}

pub(crate) fn commit_id(parent: Option<&str>, tree: &str, author: &str, time: i64, title: &str, message: &str) -> String {
    let mut h = Sha1::new();
    h.update(format!("tree {tree}\n"));
    if let Some(p) = parent {
        h.update(format!("parent {p}\n"));
    }
    h.update(format!("author {author} {time} +0000\n\n{title}\n\n{message}"));
    hex::encode(h.finalize())
}

/// Content of a git-lfs pointer file, whose git blob sha1 is the tree `oid` of an LFS file.
pub fn lfs_pointer(sha256: &str, size: i64) -> String {
    format!("version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n")
}

pub fn git_blob_sha1(content: &[u8]) -> String {
    let mut h = Sha1::new();
    h.update(format!("blob {}\0", content.len()));
    h.update(content);
    hex::encode(h.finalize())
}

use crate::sql::Tx;

pub(crate) async fn load_tree(exec: sql::Exec<'_>, tree: &str) -> Result<BTreeMap<String, FileEntry>> {
    let rows =
        sql::query("SELECT path, sha256, size, git_oid, lfs FROM tree_entries WHERE tree_id = $1").bind(tree).fetch_all(exec).await?;
    let mut out = BTreeMap::new();
    for row in rows {
        let e = entry_from_row(&row)?;
        out.insert(e.path.clone(), e);
    }
    Ok(out)
}

pub(crate) async fn store_tree(tx: &mut Tx, entries: &BTreeMap<String, FileEntry>) -> Result<String> {
    let id = tree_id(entries);
    let inserted =
        sql::query("INSERT INTO trees (id) VALUES ($1) ON CONFLICT DO NOTHING").bind(&id).execute(&mut *tx).await?.rows_affected();
    if inserted == 1 {
        for e in entries.values() {
            sql::query("INSERT INTO tree_entries (tree_id, path, sha256, size, git_oid, lfs) VALUES ($1, $2, $3, $4, $5, $6)")
                .bind(&id)
                .bind(&e.path)
                .bind(&e.sha256)
                .bind(e.size)
                .bind(&e.git_oid)
                .bind(e.lfs)
                .execute(&mut *tx)
                .await?;
        }
    }
    Ok(id)
}

impl Db {
    pub async fn get_repo(&self, kind: RepoKind, namespace: &str, name: &str) -> Result<Option<Repo>> {
        let key = (kind, namespace.to_string(), name.to_string());
        if let Some(repo) = self.cache.repo(&key) {
            return Ok(repo);
        }
        let generation = self.cache.generation();
        let repo = self.get_repo_uncached(kind, namespace, name).await?;
        self.cache.put_repo(key, repo.clone(), generation);
        Ok(repo)
    }

    async fn get_repo_uncached(&self, kind: RepoKind, namespace: &str, name: &str) -> Result<Option<Repo>> {
        // Repository ids are matched without regard to case, as on the Hub (names are ASCII,
        // which `lower` folds alike on SQLite and PostgreSQL); the index on the folded names
        // makes this one lookup, and keeps two ids that differ only in case from both existing.
        let row = sql::query(AssertSqlSafe(format!(
            "SELECT {REPO_COLUMNS} FROM repos WHERE kind = $1 AND lower(namespace) = lower($2) AND lower(name) = lower($3)"
        )))
        .bind(kind.as_str())
        .bind(namespace)
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        if let Some(row) = row {
            return repo_from_row(&row).map(Some);
        }
        // A name the repository had before it moved still leads to it.
        let row = sql::query(AssertSqlSafe(format!(
            "SELECT {REPO_COLUMNS} FROM repos WHERE id =
             (SELECT repo_id FROM repo_redirects WHERE kind = $1 AND namespace = lower($2) AND name = lower($3))"
        )))
        .bind(kind.as_str())
        .bind(namespace)
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(repo_from_row).transpose()
    }

    /// Creates a repository with a first commit on `main` holding `initial_files`.
    pub async fn create_repo(
        &self,
        kind: RepoKind,
        namespace: &str,
        name: &str,
        private: bool,
        author: &str,
        initial_files: &[NewFile],
    ) -> Result<Repo> {
        let mut tx = self.begin_write().await?;
        let now = now_unix();
        let res = sql::query(
            "INSERT INTO repos (kind, namespace, name, private, created_at, updated_at, created_by) VALUES ($1, $2, $3, $4, $5, $5, $6) RETURNING id",
        )
        .bind(kind.as_str())
        .bind(namespace)
        .bind(name)
        .bind(private)
        .bind(now)
        .bind(author)
        .fetch_one(&mut *tx)
        .await;
        let id: i64 = match res {
            Ok(row) => row.try_get("id")?,
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                return Err(DbError::AlreadyExists(format!("repository {namespace}/{name}")));
            }
            Err(e) => return Err(e.into()),
        };
        let repo = Repo {
            id,
            kind,
            namespace: namespace.into(),
            name: name.into(),
            private,
            created_at: now,
            updated_at: now,
            likes: 0,
            downloads: 0,
            trending: 0,
            gated: None,
            created_by: Some(author.into()),
        };
        // A repository that takes a moved one's old name is what that name means from now on.
        sql::query("DELETE FROM repo_redirects WHERE kind = $1 AND namespace = lower($2) AND name = lower($3)")
            .bind(kind.as_str())
            .bind(namespace)
            .bind(name)
            .execute(&mut *tx)
            .await?;
        let ops: Vec<CommitOp> = initial_files.iter().cloned().map(CommitOp::Put).collect();
        let info = CommitInfo { author, title: "initial commit", message: "" };
        apply_commit(&mut tx, &repo, "main", None, &ops, &info, now, RefUpdate::Create).await?;
        tx.commit().await?;
        Ok(repo)
    }

    pub async fn delete_repo(&self, repo: &Repo) -> Result<()> {
        let mut tx = self.begin_write().await?;
        // Lease tokens limited to this repository die with it (they reference it).
        for table in [
            "tokens",
            "refs",
            "commits",
            "likes",
            "repo_downloads",
            "discussion_comment_edits",
            "discussion_events",
            "discussions",
            "repo_redirects",
            "repo_lfs_files",
            "access_requests",
        ] {
            sql::query(AssertSqlSafe(format!("DELETE FROM {table} WHERE repo_id = $1"))).bind(repo.id).execute(&mut *tx).await?;
        }
        // A board entry names its model, dataset and algorithm: it goes with any of them.
        for column in ["model_repo_id", "dataset_repo_id", "algorithm_repo_id"] {
            sql::query(AssertSqlSafe(format!("DELETE FROM board_entries WHERE {column} = $1"))).bind(repo.id).execute(&mut *tx).await?;
        }
        sql::query("DELETE FROM repos WHERE id = $1").bind(repo.id).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Renames `repo`; its old name keeps leading to it (a redirect) until another repository
    /// takes it.
    pub async fn move_repo(&self, repo: &Repo, namespace: &str, name: &str) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let res = sql::query("UPDATE repos SET namespace = $1, name = $2, updated_at = $3 WHERE id = $4")
            .bind(namespace)
            .bind(name)
            .bind(now_unix())
            .bind(repo.id)
            .execute(&mut *tx)
            .await;
        match res {
            Ok(_) => {}
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                return Err(DbError::AlreadyExists(format!("repository {namespace}/{name}")));
            }
            Err(e) => return Err(e.into()),
        }
        let kind = repo.kind.as_str();
        sql::query("DELETE FROM repo_redirects WHERE kind = $1 AND namespace = lower($2) AND name = lower($3)")
            .bind(kind)
            .bind(namespace)
            .bind(name)
            .execute(&mut *tx)
            .await?;
        sql::query(
            "INSERT INTO repo_redirects (kind, namespace, name, repo_id) VALUES ($1, lower($2), lower($3), $4)
             ON CONFLICT (kind, namespace, name) DO UPDATE SET repo_id = excluded.repo_id",
        )
        .bind(kind)
        .bind(&repo.namespace)
        .bind(&repo.name)
        .bind(repo.id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn set_private(&self, repo: &Repo, private: bool) -> Result<()> {
        let _turn = self.write_turn().await;
        sql::query("UPDATE repos SET private = $1 WHERE id = $2").bind(private).bind(repo.id).execute(&self.pool).await?;
        Ok(())
    }

    pub async fn list_repos(&self, kind: RepoKind, q: &RepoQuery) -> Result<Vec<Repo>> {
        let (column, natural) = match q.sort {
            RepoSort::LastModified => ("updated_at", "DESC"),
            RepoSort::CreatedAt => ("created_at", "DESC"),
            RepoSort::Name => ("namespace, name", "ASC"),
            RepoSort::Likes => ("likes", "DESC"),
            RepoSort::Downloads => ("downloads", "DESC"),
            RepoSort::Trending => ("trending", "DESC"),
        };
        let direction = match (q.ascending, natural) {
            (true, _) => "ASC",
            (false, natural) => natural,
        };
        let order = match q.sort {
            RepoSort::Name => format!("namespace {direction}, name {direction}"),
            _ => format!("{column} {direction}, id {direction}"),
        };
        // One condition per tag, each through the card of the README at the head of `main`.
        let tags: String = (0..q.tags.len())
            .map(|i| {
                format!(
                    " AND EXISTS (SELECT 1 FROM refs f
                        JOIN commits c ON c.repo_id = f.repo_id AND c.id = f.commit_id
                        JOIN tree_entries te ON te.tree_id = c.tree_id AND te.path = 'README.md'
                        JOIN card_tags t ON t.readme_sha256 = te.sha256 AND t.tag = ${}
                        WHERE f.repo_id = repos.id AND f.kind = 'branch' AND f.name = 'main')",
                    i + 7
                )
            })
            .collect();
        let sql = format!(
            "SELECT {REPO_COLUMNS} FROM repos WHERE kind = $1
               AND ($2 IS NULL OR namespace = $2)
               AND ($3 IS NULL OR LOWER(namespace || '/' || name) LIKE $3)
               AND {}{tags}
             ORDER BY {order} LIMIT $5 OFFSET $6",
            crate::orgs::visible_repo("", "$4")
        );
        let pattern = q.search.as_ref().map(|s| format!("%{}%", s.to_lowercase()));
        let mut query = sql::query(AssertSqlSafe(sql))
            .bind(kind.as_str())
            .bind(q.author.as_deref())
            .bind(pattern)
            .bind(q.viewer.as_deref().unwrap_or(""))
            .bind(q.limit)
            .bind(q.offset);
        for tag in &q.tags {
            query = query.bind(tag);
        }
        let rows = query.fetch_all(&self.pool).await?;
        rows.iter().map(repo_from_row).collect()
    }

    /// The repositories of `kind` among `ids` that a viewer who reads the private repositories
    /// of namespaces `readable` may see, in the order of `ids` (a page the search index found,
    /// sorted and cut; visibility is checked here once more).
    pub async fn repos_by_ids(&self, kind: RepoKind, ids: &[i64], readable: &[String]) -> Result<Vec<Repo>> {
        // A search page asks for the same popular repositories again and again: those read
        // since the last write of any process (and within `FRESH_FOR`) are not read again.
        let mut found: HashMap<i64, Repo> = HashMap::with_capacity(ids.len());
        let now = self.cache.now();
        let missing: Vec<i64> = ids
            .iter()
            .copied()
            .filter(|&id| match self.cache.repo_by_id(id, &now) {
                Some(repo) => {
                    found.insert(id, repo);
                    false
                }
                None => true,
            })
            .collect();
        if !missing.is_empty() {
            let generation = self.cache.generation();
            // Ids are numbers, so they are written into the query itself. Only the primary key
            // is in the condition: with `kind` there too, SQLite walks an index of every
            // repository of the kind instead.
            let list = missing.iter().map(i64::to_string).collect::<Vec<_>>().join(", ");
            let rows =
                sql::query(AssertSqlSafe(format!("SELECT {REPO_COLUMNS} FROM repos WHERE id IN ({list})"))).fetch_all(&self.pool).await?;
            for row in &rows {
                let repo = repo_from_row(row)?;
                self.cache.put_repo_by_id(repo.clone(), generation);
                found.insert(repo.id, repo);
            }
        }
        // In the order asked for, as the reader may see them.
        Ok(ids
            .iter()
            .filter_map(|id| found.remove(id))
            .filter(|repo| repo.kind == kind && (!repo.private || readable.contains(&repo.namespace)))
            .collect())
    }

    /// For each of `repos` that has a `main` branch: its head commit, and the `README.md` there
    /// if any. One query for a whole page of a listing (a listing shows each one's card), and
    /// none for the repositories whose head and README this process knows.
    pub async fn main_readmes(&self, repos: &[Repo]) -> Result<HashMap<i64, (String, Option<FileEntry>)>> {
        let mut heads = HashMap::with_capacity(repos.len());
        let mut missing = Vec::new();
        let now = self.cache.now();
        for repo in repos {
            let known = self.cache.revision_at(repo.id, "main", &now).and_then(|head| {
                let readme = self.cache.file(&(repo.id, head.clone(), README.to_string()))?;
                Some((head, readme))
            });
            match known {
                Some(known) => {
                    heads.insert(repo.id, known);
                }
                None => missing.push(repo.id.to_string()),
            }
        }
        if missing.is_empty() {
            return Ok(heads);
        }
        let generation = self.cache.generation();
        let sql = format!(
            "SELECT f.repo_id, f.commit_id, e.path, e.sha256, e.size, e.git_oid, e.lfs FROM refs f
               JOIN commits c ON c.repo_id = f.repo_id AND c.id = f.commit_id
               LEFT JOIN tree_entries e ON e.tree_id = c.tree_id AND e.path = '{README}'
              WHERE f.kind = 'branch' AND f.name = 'main' AND f.repo_id IN ({})",
            missing.join(", ")
        );
        let rows = sql::query(AssertSqlSafe(sql)).fetch_all(&self.pool).await?;
        for row in &rows {
            let readme = match row.try_get::<Option<String>, _>("path")? {
                Some(_) => Some(entry_from_row(row)?),
                None => None,
            };
            let (repo_id, head): (i64, String) = (row.try_get("repo_id")?, row.try_get("commit_id")?);
            // The head is a mutable answer; a commit's README never changes.
            self.cache.put_revision(repo_id, "main", head.clone(), generation);
            self.cache.put_file((repo_id, head.clone(), README.to_string()), readme.clone());
            heads.insert(repo_id, (head, readme));
        }
        Ok(heads)
    }

    /// Resolves a branch, tag or full commit id of `repo` to a commit id.
    pub async fn resolve_revision(&self, repo: &Repo, rev: &str) -> Result<String> {
        if let Some(commit) = self.cache.revision(repo.id, rev) {
            return Ok(commit);
        }
        let generation = self.cache.generation();
        let commit = self.resolve_revision_uncached(repo, rev).await?;
        self.cache.put_revision(repo.id, rev, commit.clone(), generation);
        Ok(commit)
    }

    async fn resolve_revision_uncached(&self, repo: &Repo, rev: &str) -> Result<String> {
        let rev = rev.strip_prefix("refs/heads/").unwrap_or(rev);
        if let Some(tag) = rev.strip_prefix("refs/tags/") {
            return self.ref_target(repo, RefKind::Tag, tag).await?.ok_or_else(|| DbError::RevisionNotFound(rev.into()));
        }
        if let Some(c) = self.ref_target(repo, RefKind::Branch, rev).await? {
            return Ok(c);
        }
        if let Some(c) = self.ref_target(repo, RefKind::Tag, rev).await? {
            return Ok(c);
        }
        if is_full_commit_id(rev) && self.get_commit(repo, rev).await?.is_some() {
            return Ok(rev.to_string());
        }
        // A short commit id (7 hex digits or more, as git abbreviates), if it names one commit.
        if (7..40).contains(&rev.len()) && rev.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            let rows = sql::query("SELECT id FROM commits WHERE repo_id = $1 AND id >= $2 AND id < $3 LIMIT 2")
                .bind(repo.id)
                .bind(rev)
                .bind(format!("{rev}g"))
                .fetch_all(&self.pool)
                .await?;
            if let [only] = &rows[..] {
                return Ok(only.try_get("id")?);
            }
        }
        Err(DbError::RevisionNotFound(rev.into()))
    }

    async fn ref_target(&self, repo: &Repo, kind: RefKind, name: &str) -> Result<Option<String>> {
        let row = sql::query("SELECT commit_id FROM refs WHERE repo_id = $1 AND kind = $2 AND name = $3")
            .bind(repo.id)
            .bind(kind.as_str())
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get("commit_id")).transpose()?)
    }

    pub async fn get_commit(&self, repo: &Repo, id: &str) -> Result<Option<Commit>> {
        let row = sql::query(AssertSqlSafe(format!("SELECT {COMMIT_COLUMNS} FROM commits WHERE repo_id = $1 AND id = $2")))
            .bind(repo.id)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(commit_from_row).transpose()
    }

    /// Up to `limit` commits of the history reachable from `commit_id`, newest first, after
    /// skipping the `skip` newest: one index lookup per commit walked, so a page costs what it
    /// returns plus what it skips, never the repository's whole history.
    pub async fn commit_history(&self, repo: &Repo, commit_id: &str, skip: usize, limit: usize) -> Result<Vec<Commit>> {
        let rows = sql::query(
            "WITH RECURSIVE walk(id, n) AS (
                 SELECT $2, 0
                 UNION ALL
                 SELECT c.parent_id, w.n + 1 FROM walk w JOIN commits c ON c.repo_id = $1 AND c.id = w.id
                 WHERE c.parent_id IS NOT NULL AND w.n + 1 < $3
             )
             SELECT c.id, c.parent_id, c.tree_id, c.author, c.title, c.message, c.created_at
             FROM walk w JOIN commits c ON c.repo_id = $1 AND c.id = w.id WHERE w.n >= $4 ORDER BY w.n",
        )
        .bind(repo.id)
        .bind(commit_id)
        .bind(skip.saturating_add(limit) as i64)
        .bind(skip as i64)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(commit_from_row).collect()
    }

    /// The full listing of a commit's tree, sorted by path.
    /// Every file of a commit, in path order; shared, as a cached tree is not copied per caller.
    pub async fn tree_at(&self, repo: &Repo, commit_id: &str) -> Result<std::sync::Arc<[FileEntry]>> {
        // A commit's tree never changes.
        let key = (repo.id, commit_id.to_string());
        if let Some(files) = self.cache.tree(&key) {
            return Ok(files);
        }
        let files: std::sync::Arc<[FileEntry]> = self.tree_at_uncached(repo, commit_id).await?.into();
        self.cache.put_tree(key, &files);
        Ok(files)
    }

    async fn tree_at_uncached(&self, repo: &Repo, commit_id: &str) -> Result<Vec<FileEntry>> {
        let commit = self.get_commit(repo, commit_id).await?.ok_or_else(|| DbError::RevisionNotFound(commit_id.into()))?;
        let mut conn = self.pool.acquire().await?;
        Ok(load_tree((&mut conn).into(), &commit.tree_id).await?.into_values().collect())
    }

    pub async fn file_at(&self, repo: &Repo, commit_id: &str, path: &str) -> Result<Option<FileEntry>> {
        // A commit's tree never changes, so neither does this answer, found or not.
        let key = (repo.id, commit_id.to_string(), path.to_string());
        if let Some(entry) = self.cache.file(&key) {
            return Ok(entry);
        }
        let entry = self.file_at_uncached(repo, commit_id, path).await?;
        self.cache.put_file(key, entry.clone());
        Ok(entry)
    }

    async fn file_at_uncached(&self, repo: &Repo, commit_id: &str, path: &str) -> Result<Option<FileEntry>> {
        let row = sql::query(
            "SELECT e.path, e.sha256, e.size, e.git_oid, e.lfs FROM commits c
             JOIN tree_entries e ON e.tree_id = c.tree_id
             WHERE c.repo_id = $1 AND c.id = $2 AND e.path = $3",
        )
        .bind(repo.id)
        .bind(commit_id)
        .bind(path)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(entry_from_row(&row)?))
    }

    /// The tree id of a commit of `repo`.
    async fn tree_of(&self, repo: &Repo, commit_id: &str) -> Result<String> {
        let row = sql::query("SELECT tree_id FROM commits WHERE repo_id = $1 AND id = $2")
            .bind(repo.id)
            .bind(commit_id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| DbError::RevisionNotFound(commit_id.into()))?;
        Ok(row.try_get("tree_id")?)
    }

    /// One page of the listing of folder `dir` (`""` for the root) at `commit_id`, in git's order
    /// (a folder where its first file would be), starting after `after` (the last key of the
    /// previous page: a file path, or a folder path with a trailing `/`), at most `limit` entries
    /// (a recursive page may add the folders that lead to its files).
    ///
    /// Cost is O(limit · log n) whatever the size of the tree: a recursive page is one range scan
    /// of the `(tree_id, path)` key; a folder page walks it with one index seek per entry (a
    /// skip scan, in one statement), so a folder of 20,000 sub-folders is never read whole.
    pub async fn tree_page(
        &self,
        repo: &Repo,
        commit_id: &str,
        dir: &str,
        recursive: bool,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<TreeItem>> {
        let tree = self.tree_of(repo, commit_id).await?;
        let prefix = if dir.is_empty() { String::new() } else { format!("{dir}/") };
        let end = prefix_end(&prefix);
        let start = match after {
            Some(key) => successor_key(key),
            None => prefix.clone(),
        };
        let limit = limit.clamp(1, 10_000) as i64;
        let rows = if recursive {
            sql::query(
                "SELECT path, sha256, size, git_oid, lfs FROM tree_entries
                 WHERE tree_id = $1 AND path >= $2 AND ($3 IS NULL OR path < $3) ORDER BY path LIMIT $4",
            )
            .bind(&tree)
            .bind(&start)
            .bind(end.as_deref())
            .bind(limit)
            .fetch_all(&self.pool)
            .await?
        } else {
            // Each step seeks the first path at or after the previous entry's successor: past a
            // file, or past the whole sub-folder the previous path went into. `substr` and the
            // position function count characters, so the prefix length is given in characters
            // ($4 = length + 1); $6 is U+0001, the smallest character a path may follow with.
            let position = self.engine().position_function();
            sql::query(AssertSqlSafe(format!(
                "WITH RECURSIVE walk(path, n) AS (
                     SELECT (SELECT path FROM tree_entries WHERE tree_id = $1 AND path >= $2 AND ($3 IS NULL OR path < $3) ORDER BY path LIMIT 1), 1
                     UNION ALL
                     SELECT (SELECT e.path FROM tree_entries e WHERE e.tree_id = $1 AND ($3 IS NULL OR e.path < $3) AND e.path >= (
                                CASE WHEN {position}(substr(w.path, CAST($4 AS INTEGER)), '/') > 0
                                     THEN substr(w.path, 1, CAST($4 AS INTEGER) - 2 + {position}(substr(w.path, CAST($4 AS INTEGER)), '/')) || '0'
                                     ELSE w.path || $6 END)
                             ORDER BY e.path LIMIT 1), w.n + 1
                     FROM walk w WHERE w.path IS NOT NULL AND w.n < $5
                 )
                 SELECT e.path, e.sha256, e.size, e.git_oid, e.lfs FROM walk w JOIN tree_entries e ON e.tree_id = $1 AND e.path = w.path ORDER BY e.path",
            )))
            .bind(&tree)
            .bind(&start)
            .bind(end.as_deref())
            .bind(prefix.chars().count() as i64 + 1)
            .bind(limit)
            .bind("\u{1}")
            .fetch_all(&self.pool)
            .await?
        };
        // Folders already listed: those leading to the key the page starts after.
        let mut listed: Vec<String> = after.map(|key| folders_of(key, &prefix)).unwrap_or_default();
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let entry = entry_from_row(row)?;
            let rest = &entry.path[prefix.len()..];
            if recursive {
                for folder in folders_of(&entry.path, &prefix) {
                    if !listed.contains(&folder) {
                        out.push(TreeItem::Folder { oid: folder_oid(&tree, &folder), path: folder.clone() });
                        listed.push(folder);
                    }
                }
                out.push(TreeItem::File(entry));
            } else if let Some((first, _)) = rest.split_once('/') {
                let path = format!("{prefix}{first}");
                out.push(TreeItem::Folder { oid: folder_oid(&tree, &path), path });
            } else {
                out.push(TreeItem::File(entry));
            }
        }
        Ok(out)
    }

    /// What `path` is at `commit_id`: a file, a folder (some file lies below it), or nothing. Two
    /// index lookups at most.
    pub async fn path_info(&self, repo: &Repo, commit_id: &str, path: &str) -> Result<Option<TreeItem>> {
        let key = (repo.id, commit_id.to_string(), path.to_string());
        if let Some(item) = self.cache.path(&key) {
            return Ok(item);
        }
        let item = self.path_info_uncached(repo, commit_id, path).await?;
        self.cache.put_path(key, item.clone());
        Ok(item)
    }

    async fn path_info_uncached(&self, repo: &Repo, commit_id: &str, path: &str) -> Result<Option<TreeItem>> {
        let tree = self.tree_of(repo, commit_id).await?;
        let row = sql::query("SELECT path, sha256, size, git_oid, lfs FROM tree_entries WHERE tree_id = $1 AND path = $2")
            .bind(&tree)
            .bind(path)
            .fetch_optional(&self.pool)
            .await?;
        if let Some(row) = row {
            return Ok(Some(TreeItem::File(entry_from_row(&row)?)));
        }
        let prefix = format!("{path}/");
        let below = sql::query("SELECT 1 FROM tree_entries WHERE tree_id = $1 AND path >= $2 AND path < $3 LIMIT 1")
            .bind(&tree)
            .bind(&prefix)
            .bind(prefix_end(&prefix))
            .fetch_optional(&self.pool)
            .await?;
        Ok(below.map(|_| TreeItem::Folder { path: path.to_string(), oid: folder_oid(&tree, path) }))
    }

    /// Applies `ops` on top of `branch` in one transaction and moves the branch to the new commit.
    ///
    /// `expected_parent`, when given, must equal the branch head (else [`DbError::StaleParent`]).
    pub async fn commit(
        &self,
        repo: &Repo,
        branch: &str,
        expected_parent: Option<&str>,
        ops: &[CommitOp],
        info: &CommitInfo<'_>,
    ) -> Result<Commit> {
        let mut tx = self.begin_write().await?;
        let head = sql::query("SELECT commit_id FROM refs WHERE repo_id = $1 AND kind = 'branch' AND name = $2")
            .bind(repo.id)
            .bind(branch)
            .fetch_optional(&mut *tx)
            .await?
            .map(|r| r.try_get::<String, _>("commit_id"))
            .transpose()?
            .ok_or_else(|| DbError::RevisionNotFound(branch.into()))?;
        if let Some(expected) = expected_parent
            && expected != head
        {
            return Err(DbError::StaleParent { expected: expected.into(), actual: head });
        }
        crate::discussions::check_pr_branch(&mut tx, repo, branch).await?;
        let commit = apply_commit(&mut tx, repo, branch, Some(&head), ops, info, now_unix(), RefUpdate::From(&head)).await?;
        match crate::discussions::pr_number(branch) {
            // A pull request's commit is an event of the pull request, not a change of the repository.
            Some(num) => crate::discussions::record_pr_commit(&mut tx, repo, num, &commit).await?,
            None => {
                sql::query("UPDATE repos SET updated_at = $1 WHERE id = $2")
                    .bind(commit.created_at)
                    .bind(repo.id)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await?;
        Ok(commit)
    }

    /// Applies `ops` on top of commit `parent` of `repo`, dated `time`, and points `branch` at the
    /// result whatever it pointed at before (creating the branch if missing).
    ///
    /// The new commit depends only on the arguments, so a retry makes the same commit: the
    /// compute coordinator publishes a validated model this way, built by itself on exactly the
    /// commit that was evaluated, whatever anyone pushed to the branch meanwhile.
    pub async fn commit_onto(
        &self,
        repo: &Repo,
        branch: &str,
        parent: &str,
        ops: &[CommitOp],
        info: &CommitInfo<'_>,
        time: i64,
    ) -> Result<Commit> {
        if self.get_commit(repo, parent).await?.is_none() {
            return Err(DbError::RevisionNotFound(parent.into()));
        }
        let mut tx = self.begin_write().await?;
        let commit = apply_commit(&mut tx, repo, branch, Some(parent), ops, info, time, RefUpdate::Force).await?;
        // The hub's own branches (`refs/convert/parquet`) are not the owner's change.
        if !branch.starts_with("refs/") {
            sql::query("UPDATE repos SET updated_at = $1 WHERE id = $2").bind(now_unix()).bind(repo.id).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(commit)
    }

    /// Replaces the history of `branch` by one commit with its head's tree and no parent (the
    /// Hub's super-squash). Other refs keep the old commits; the branch moves compare-and-swap.
    pub async fn squash_branch(&self, repo: &Repo, branch: &str, info: &CommitInfo<'_>) -> Result<Commit> {
        let mut tx = self.begin_write().await?;
        let head: String = sql::query("SELECT commit_id FROM refs WHERE repo_id = $1 AND kind = 'branch' AND name = $2")
            .bind(repo.id)
            .bind(branch)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| DbError::RevisionNotFound(branch.into()))?
            .try_get("commit_id")?;
        let tree: String = sql::query("SELECT tree_id FROM commits WHERE repo_id = $1 AND id = $2")
            .bind(repo.id)
            .bind(&head)
            .fetch_one(&mut *tx)
            .await?
            .try_get("tree_id")?;
        let time = now_unix();
        let CommitInfo { author, title, message } = *info;
        let id = commit_id(None, &tree, author, time, title, message);
        sql::query(
            "INSERT INTO commits (id, repo_id, parent_id, tree_id, author, title, message, created_at, seq)
             VALUES ($1, $2, NULL, $3, $4, $5, $6, $7, 0) ON CONFLICT (repo_id, id) DO NOTHING",
        )
        .bind(&id)
        .bind(repo.id)
        .bind(&tree)
        .bind(author)
        .bind(title)
        .bind(message)
        .bind(time)
        .execute(&mut *tx)
        .await?;
        sql::query("UPDATE refs SET commit_id = $1 WHERE repo_id = $2 AND kind = 'branch' AND name = $3 AND commit_id = $4")
            .bind(&id)
            .bind(repo.id)
            .bind(branch)
            .bind(&head)
            .execute(&mut *tx)
            .await?;
        sql::query("UPDATE repos SET updated_at = $1 WHERE id = $2").bind(time).bind(repo.id).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(Commit {
            id,
            parent_id: None,
            tree_id: tree,
            author: author.into(),
            title: title.into(),
            message: message.into(),
            created_at: time,
        })
    }

    pub async fn refs(&self, repo: &Repo) -> Result<Vec<RefInfo>> {
        let rows = sql::query("SELECT kind, name, commit_id FROM refs WHERE repo_id = $1 ORDER BY kind, name")
            .bind(repo.id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                let kind: String = row.try_get("kind")?;
                Ok(RefInfo {
                    kind: if kind == "tag" { RefKind::Tag } else { RefKind::Branch },
                    name: row.try_get("name")?,
                    commit_id: row.try_get("commit_id")?,
                })
            })
            .collect()
    }

    /// Creates a branch or tag pointing at `commit_id`; fails if the name is taken.
    pub async fn create_ref(&self, repo: &Repo, kind: RefKind, name: &str, commit_id: &str) -> Result<()> {
        let _turn = self.write_turn().await;
        let res = sql::query("INSERT INTO refs (repo_id, kind, name, commit_id) VALUES ($1, $2, $3, $4)")
            .bind(repo.id)
            .bind(kind.as_str())
            .bind(name)
            .bind(commit_id)
            .execute(&self.pool)
            .await;
        match res {
            Ok(_) => Ok(()),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Err(DbError::AlreadyExists(format!("{} {name}", kind.as_str()))),
            Err(e) => Err(e.into()),
        }
    }

    /// Moves branch `name` from `expected` to `commit_id` (compare-and-swap): a concurrent move
    /// makes this fail with [`DbError::StaleParent`] instead of being overwritten.
    pub async fn move_branch(&self, repo: &Repo, name: &str, expected: &str, commit_id: &str) -> Result<()> {
        if self.get_commit(repo, commit_id).await?.is_none() {
            return Err(DbError::RevisionNotFound(commit_id.into()));
        }
        let mut tx = self.begin_write().await?;
        let moved = sql::query("UPDATE refs SET commit_id = $1 WHERE repo_id = $2 AND kind = 'branch' AND name = $3 AND commit_id = $4")
            .bind(commit_id)
            .bind(repo.id)
            .bind(name)
            .bind(expected)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if moved == 0 {
            let actual = sql::query("SELECT commit_id FROM refs WHERE repo_id = $1 AND kind = 'branch' AND name = $2")
                .bind(repo.id)
                .bind(name)
                .fetch_optional(&mut *tx)
                .await?
                .map(|r| r.try_get::<String, _>("commit_id"))
                .transpose()?
                .ok_or_else(|| DbError::RevisionNotFound(name.into()))?;
            return Err(DbError::StaleParent { expected: expected.into(), actual });
        }
        sql::query("UPDATE repos SET updated_at = $1 WHERE id = $2").bind(now_unix()).bind(repo.id).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn delete_ref(&self, repo: &Repo, kind: RefKind, name: &str) -> Result<()> {
        let _turn = self.write_turn().await;
        let n = sql::query("DELETE FROM refs WHERE repo_id = $1 AND kind = $2 AND name = $3")
            .bind(repo.id)
            .bind(kind.as_str())
            .bind(name)
            .execute(&self.pool)
            .await?
            .rows_affected();
        if n == 0 {
            return Err(DbError::RevisionNotFound(name.into()));
        }
        Ok(())
    }

    /// Whether user `user_id` may name blob `sha256` without sending its bytes: they proved they
    /// hold it (uploaded it, [`Self::record_blob_holder`]), or it is in a revision of a
    /// repository they may read (a public one, or one in namespace `reader`). Cross-repository
    /// dedup saves storage; it never grants access to bytes.
    pub async fn may_reference_blob(&self, sha256: &str, user_id: i64, reader: Option<&str>) -> Result<bool> {
        let held = sql::query("SELECT 1 FROM blob_holders WHERE sha256 = $1 AND user_id = $2")
            .bind(sha256)
            .bind(user_id)
            .fetch_optional(&self.pool)
            .await?;
        if held.is_some() {
            return Ok(true);
        }
        let readable = sql::query(sql::AssertSqlSafe(format!(
            "SELECT 1 FROM tree_entries e JOIN commits c ON c.tree_id = e.tree_id JOIN repos r ON r.id = c.repo_id
             WHERE e.sha256 = $1 AND {} LIMIT 1",
            crate::orgs::visible_repo("r", "$2")
        )))
        .bind(sha256)
        .bind(reader.unwrap_or(""))
        .fetch_optional(&self.pool)
        .await?;
        Ok(readable.is_some())
    }

    /// Records that user `user_id` sent the bytes of blob `sha256` (which must be stored).
    pub async fn record_blob_holder(&self, sha256: &str, user_id: i64) -> Result<()> {
        let _turn = self.write_turn().await;
        sql::query("INSERT INTO blob_holders (sha256, user_id, created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
            .bind(sha256)
            .bind(user_id)
            .bind(now_unix())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Looks up a stored blob: (git sha1 of the content, size).
    pub async fn blob(&self, sha256: &str) -> Result<Option<(String, i64, String)>> {
        // A blob, once recorded, is what it is; one not recorded yet may be soon, so only
        // what is found is kept.
        if let Some(row) = self.cache.blob(sha256) {
            return Ok(Some(row));
        }
        let row =
            sql::query("SELECT git_sha1, size, file_hash FROM blobs WHERE sha256 = $1").bind(sha256).fetch_optional(&self.pool).await?;
        let row = row.map(|r| -> Result<_> { Ok((r.try_get("git_sha1")?, r.try_get("size")?, r.try_get("file_hash")?)) }).transpose()?;
        if let Some(row) = &row {
            self.cache.put_blob(sha256, row.clone());
        }
        Ok(row)
    }
}

/// How a new commit moves its branch.
#[derive(Clone, Copy)]
pub(crate) enum RefUpdate<'a> {
    /// The branch is new (a repository's first commit).
    Create,
    /// Compare-and-swap from the parent: a concurrent move is a [`DbError::StaleParent`].
    From(&'a str),
    /// Set whatever the branch pointed at, creating it if missing.
    Force,
}

/// Who makes a commit and why.
#[derive(Clone, Copy, Debug)]
pub struct CommitInfo<'a> {
    pub author: &'a str,
    pub title: &'a str,
    pub message: &'a str,
}

#[allow(clippy::too_many_arguments)] // the one private step behind every public commit path
pub(crate) async fn apply_commit(
    tx: &mut Tx,
    repo: &Repo,
    branch: &str,
    parent: Option<&str>,
    ops: &[CommitOp],
    info: &CommitInfo<'_>,
    time: i64,
    update: RefUpdate<'_>,
) -> Result<Commit> {
    let (mut entries, seq) = match parent {
        Some(base) => {
            let row = sql::query("SELECT tree_id, seq FROM commits WHERE repo_id = $1 AND id = $2")
                .bind(repo.id)
                .bind(base)
                .fetch_one(&mut *tx)
                .await?;
            let tree: String = row.try_get("tree_id")?;
            let seq: i64 = row.try_get("seq")?;
            (load_tree(tx.into(), &tree).await?, seq + 1)
        }
        None => (BTreeMap::new(), 0),
    };
    for op in ops {
        match op {
            CommitOp::Put(f) => {
                let row = sql::query("SELECT git_sha1, size FROM blobs WHERE sha256 = $1")
                    .bind(&f.sha256)
                    .fetch_optional(&mut *tx)
                    .await?
                    .ok_or_else(|| DbError::NotFound(format!("object {} for {}", f.sha256, f.path)))?;
                let size: i64 = row.try_get("size")?;
                let git_oid = if f.lfs { git_blob_sha1(lfs_pointer(&f.sha256, size).as_bytes()) } else { row.try_get("git_sha1")? };
                // A file replaces a directory of the same name and vice versa, as in git.
                let dir_prefix = format!("{}/", f.path);
                entries.retain(|p, _| !p.starts_with(&dir_prefix));
                let mut parent = f.path.as_str();
                while let Some((dir, _)) = parent.rsplit_once('/') {
                    entries.remove(dir);
                    parent = dir;
                }
                entries.insert(f.path.clone(), FileEntry { path: f.path.clone(), sha256: f.sha256.clone(), size, git_oid, lfs: f.lfs });
                if f.lfs {
                    // The first commit naming an object says where and when it was pushed.
                    sql::query(
                        "INSERT INTO repo_lfs_files (repo_id, sha256, filename, ref_name, pushed_at) VALUES ($1, $2, $3, $4, $5)
                         ON CONFLICT (repo_id, sha256) DO NOTHING",
                    )
                    .bind(repo.id)
                    .bind(&f.sha256)
                    .bind(&f.path)
                    .bind(branch)
                    .bind(time)
                    .execute(&mut *tx)
                    .await?;
                }
            }
            CommitOp::Delete(path) => {
                if entries.remove(path).is_none() {
                    // A `deletedFile` naming a folder deletes the folder, as the Hub does.
                    let prefix = format!("{}/", path.trim_end_matches('/'));
                    let before = entries.len();
                    entries.retain(|p, _| !p.starts_with(&prefix));
                    if entries.len() == before {
                        return Err(DbError::NotFound(format!("file {path}")));
                    }
                }
            }
            CommitOp::DeleteFolder(path) => {
                let prefix = format!("{}/", path.trim_end_matches('/'));
                let before = entries.len();
                entries.retain(|p, _| !p.starts_with(&prefix));
                if entries.len() == before {
                    return Err(DbError::NotFound(format!("folder {path}")));
                }
            }
        }
    }
    let tree = store_tree(tx, &entries).await?;
    let CommitInfo { author, title, message } = *info;
    let id = commit_id(parent, &tree, author, time, title, message);
    // The id hashes tree, parent, author, time and message: an existing row with this id is this
    // very commit (the same change made twice in one second, on two branches or by a retry).
    sql::query(
        "INSERT INTO commits (id, repo_id, parent_id, tree_id, author, title, message, created_at, seq)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (repo_id, id) DO NOTHING",
    )
    .bind(&id)
    .bind(repo.id)
    .bind(parent)
    .bind(&tree)
    .bind(author)
    .bind(title)
    .bind(message)
    .bind(time)
    .bind(seq)
    .execute(&mut *tx)
    .await?;
    match update {
        RefUpdate::Create => {
            sql::query("INSERT INTO refs (repo_id, kind, name, commit_id) VALUES ($1, 'branch', $2, $3)")
                .bind(repo.id)
                .bind(branch)
                .bind(&id)
                .execute(&mut *tx)
                .await?;
        }
        RefUpdate::From(old) => {
            // Compare-and-swap: the transaction holds the write lock, the WHERE clause states the rule.
            let moved =
                sql::query("UPDATE refs SET commit_id = $1 WHERE repo_id = $2 AND kind = 'branch' AND name = $3 AND commit_id = $4")
                    .bind(&id)
                    .bind(repo.id)
                    .bind(branch)
                    .bind(old)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
            if moved != 1 {
                return Err(DbError::StaleParent { expected: old.into(), actual: "moved".into() });
            }
        }
        RefUpdate::Force => {
            sql::query(
                "INSERT INTO refs (repo_id, kind, name, commit_id) VALUES ($1, 'branch', $2, $3)
                 ON CONFLICT (repo_id, kind, name) DO UPDATE SET commit_id = excluded.commit_id",
            )
            .bind(repo.id)
            .bind(branch)
            .bind(&id)
            .execute(&mut *tx)
            .await?;
        }
    }
    Ok(Commit {
        id,
        parent_id: parent.map(str::to_string),
        tree_id: tree,
        author: author.into(),
        title: title.into(),
        message: message.into(),
        created_at: time,
    })
}
