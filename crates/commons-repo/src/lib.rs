//! The repository service: what every part of Commons does with repositories, with no HTTP in
//! it. The hub's routes speak the Hugging Face protocol on top of it; the compute coordinator
//! pins its inputs, reads recipes and data, and publishes validated models through it.
//!
//! - [`Repos`]: find (with the access rule applied), pin a revision, read a file, list a tree,
//!   commit files, ensure a repository exists, refs.
//! - [`access`]: who may read and write (one place for the rule).
//! - [`names`]: which repository, file and ref names are valid.
//! - cards: a README's front matter, parsed once per README blob, as `cardData` and tags.
//! - search: the full-text index (`commons-search`) kept in step with repositories.
//!
//! Invariants: nothing here knows HTTP (errors are [`RepoError`]; status codes are chosen by
//! the hub's route modules); a private repository the reader may not see is reported exactly
//! as a missing one.

pub mod access;
pub mod accounts;
mod cards;
pub mod collab;
mod history;
pub mod names;
mod search;

pub use cards::{CARD_LIMIT, CardView};

use bytes::Bytes;
use commons_db::{CommitInfo, CommitOp, Db, DbError, FileEntry, NewFile, RefInfo, RefKind, Repo, RepoKind};
use commons_storage::{Cas, StorageError};
use futures::StreamExt;
use futures::stream::BoxStream;

/// Hugging Face's default `.gitattributes`: weights, archives and data files go through LFS.
pub const DEFAULT_GITATTRIBUTES: &str = "\
*.7z filter=lfs diff=lfs merge=lfs -text
*.arrow filter=lfs diff=lfs merge=lfs -text
*.bin filter=lfs diff=lfs merge=lfs -text
*.bz2 filter=lfs diff=lfs merge=lfs -text
*.ckpt filter=lfs diff=lfs merge=lfs -text
*.ftz filter=lfs diff=lfs merge=lfs -text
*.gz filter=lfs diff=lfs merge=lfs -text
*.h5 filter=lfs diff=lfs merge=lfs -text
*.joblib filter=lfs diff=lfs merge=lfs -text
*.lfs.* filter=lfs diff=lfs merge=lfs -text
*.mlmodel filter=lfs diff=lfs merge=lfs -text
*.model filter=lfs diff=lfs merge=lfs -text
*.msgpack filter=lfs diff=lfs merge=lfs -text
*.npy filter=lfs diff=lfs merge=lfs -text
*.npz filter=lfs diff=lfs merge=lfs -text
*.onnx filter=lfs diff=lfs merge=lfs -text
*.ot filter=lfs diff=lfs merge=lfs -text
*.parquet filter=lfs diff=lfs merge=lfs -text
*.pb filter=lfs diff=lfs merge=lfs -text
*.pickle filter=lfs diff=lfs merge=lfs -text
*.pkl filter=lfs diff=lfs merge=lfs -text
*.pt filter=lfs diff=lfs merge=lfs -text
*.pth filter=lfs diff=lfs merge=lfs -text
*.rar filter=lfs diff=lfs merge=lfs -text
*.safetensors filter=lfs diff=lfs merge=lfs -text
saved_model/**/* filter=lfs diff=lfs merge=lfs -text
*.tar.* filter=lfs diff=lfs merge=lfs -text
*.tar filter=lfs diff=lfs merge=lfs -text
*.tflite filter=lfs diff=lfs merge=lfs -text
*.tgz filter=lfs diff=lfs merge=lfs -text
*.wasm filter=lfs diff=lfs merge=lfs -text
*.xz filter=lfs diff=lfs merge=lfs -text
*.zip filter=lfs diff=lfs merge=lfs -text
*.zst filter=lfs diff=lfs merge=lfs -text
*tfevents* filter=lfs diff=lfs merge=lfs -text
";

#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    /// Missing, or private and not the reader's: the two look the same.
    #[error("Repository {0} not found")]
    RepoNotFound(String),
    #[error("Invalid rev id: {0}")]
    RevisionNotFound(String),
    #[error("Entry not found: {path}")]
    EntryNotFound { path: String, commit: String },
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Forbidden(String),
    /// A gated repository's files, refused ([`access::may_read_content`]): the Hub's `GatedRepo`,
    /// 401 to an anonymous caller, else 403.
    #[error("{message}")]
    Gated { anonymous: bool, message: String },
    /// Well-formed but refused (the Hub's 422): a path that would escape on Windows.
    #[error("{0}")]
    Unprocessable(String),
    #[error("{0}")]
    Db(#[from] DbError),
    #[error("{0}")]
    Storage(#[from] StorageError),
    #[error("{0}")]
    Search(#[from] commons_search::SearchError),
}

pub type Result<T, E = RepoError> = std::result::Result<T, E>;

/// A file to write in a commit: bytes to store, or a folder to drop.
pub enum Change {
    Put { path: String, bytes: Vec<u8> },
    DeleteFolder(String),
}

/// The repository service over the metadata store and the content store. Cheap to clone.
#[derive(Clone)]
pub struct Repos {
    db: Db,
    cas: Cas,
    /// The search index, when this process keeps one.
    search: Option<std::sync::Arc<commons_search::SearchIndex>>,
    /// Last commits already found (see `history`).
    last_commits: std::sync::Arc<history::LastCommits>,
    /// Cards already read (see `cards`).
    cards: std::sync::Arc<cards::Cards>,
}

impl Repos {
    pub fn new(db: Db, cas: Cas) -> Self {
        Self { db, cas, search: None, last_commits: std::sync::Arc::default(), cards: std::sync::Arc::default() }
    }

    /// This service, keeping `index` in step with the repositories it creates and commits to.
    pub fn with_search(mut self, index: std::sync::Arc<commons_search::SearchIndex>) -> Self {
        self.search = Some(index);
        self
    }

    /// `namespace/name` as `reader` (an account name, `None` for anonymous) may see it.
    pub async fn find(&self, kind: RepoKind, namespace: &str, name: &str, reader: Option<&str>) -> Result<Repo> {
        let Some(repo) = self.db.get_repo(kind, namespace, name).await? else {
            return Err(RepoError::RepoNotFound(format!("{namespace}/{name}")));
        };
        // The reader's role in the organization that owns it, asked only when it decides.
        let role = match reader {
            Some(user) if repo.private && user != repo.namespace => self.db.org_role(&repo.namespace, user).await?,
            _ => None,
        };
        if access::may_read(&repo, reader, role) { Ok(repo) } else { Err(RepoError::RepoNotFound(format!("{namespace}/{name}"))) }
    }

    /// `namespace/name` whatever its visibility: for Commons itself (the coordinator acting on
    /// the output repositories of jobs), never on behalf of a caller.
    pub async fn find_as_system(&self, kind: RepoKind, namespace: &str, name: &str) -> Result<Option<Repo>> {
        Ok(self.db.get_repo(kind, namespace, name).await?)
    }

    /// The commit id `revision` (a branch, tag or commit id) names now.
    pub async fn pin(&self, repo: &Repo, revision: &str) -> Result<String> {
        match self.db.resolve_revision(repo, revision).await {
            Ok(commit) => Ok(commit),
            Err(DbError::RevisionNotFound(rev)) => Err(RepoError::RevisionNotFound(rev)),
            Err(e) => Err(e.into()),
        }
    }

    /// The file at `path` of a pinned commit.
    pub async fn file(&self, repo: &Repo, commit: &str, path: &str) -> Result<Option<FileEntry>> {
        Ok(self.db.file_at(repo, commit, path).await?)
    }

    /// The bytes of the file at `path`, if it has at most `limit` of them.
    pub async fn read_file(&self, repo: &Repo, commit: &str, path: &str, limit: u64) -> Result<Option<Vec<u8>>> {
        let Some(entry) = self.file(repo, commit, path).await? else { return Ok(None) };
        Ok(Some(self.cas.read_to_vec(&entry.sha256, limit).await?))
    }

    /// The bytes of a file of a tree, as a stream of chunks.
    pub async fn stream_file(&self, entry: &FileEntry) -> Result<BoxStream<'static, Result<Bytes>>> {
        let (_, size, file_hash) = self
            .db
            .blob(&entry.sha256)
            .await?
            .ok_or_else(|| StorageError::Corrupt(format!("the content of {} ({}) is missing", entry.path, entry.sha256)))?;
        let size = size.max(0) as u64;
        let stream = self.cas.read_range(&file_hash, size, 0, size).await?;
        Ok(stream.map(|chunk| chunk.map_err(RepoError::from)).boxed())
    }

    /// Every file of a pinned commit, in path order.
    pub async fn tree(&self, repo: &Repo, commit: &str) -> Result<std::sync::Arc<[FileEntry]>> {
        Ok(self.db.tree_at(repo, commit).await?)
    }

    /// Stores the bytes of `changes` and commits them onto `parent` as the new head of `branch`,
    /// whatever the branch pointed at (the caller decided `parent` is the right base). Dated
    /// `time`, so the same inputs make the same commit.
    pub async fn commit_onto(
        &self,
        repo: &Repo,
        branch: &str,
        parent: &str,
        changes: Vec<Change>,
        info: &CommitInfo<'_>,
        time: i64,
    ) -> Result<String> {
        let mut ops = Vec::with_capacity(changes.len());
        for change in changes {
            ops.push(match change {
                Change::Put { path, bytes } => {
                    names::validate_file_path(&path)?;
                    let stored = self.cas.put_bytes(&bytes).await?;
                    if path == "README.md" {
                        self.index_card(&stored.sha256, &bytes).await?;
                    }
                    CommitOp::Put(NewFile { path, sha256: stored.sha256, lfs: false })
                }
                Change::DeleteFolder(path) => CommitOp::DeleteFolder(path),
            });
        }
        let commit = self.db.commit_onto(repo, branch, parent, &ops, info, time).await?.id;
        if branch == "main" {
            self.reindex_or_log(repo).await;
        }
        Ok(commit)
    }

    /// The public repository `namespace/name`, created (with the hub's default `.gitattributes`)
    /// when it does not exist yet.
    pub async fn ensure(&self, kind: RepoKind, namespace: &str, name: &str, author: &str) -> Result<Repo> {
        if let Some(repo) = self.db.get_repo(kind, namespace, name).await? {
            return Ok(repo);
        }
        match self.create(kind, namespace, name, false, author).await {
            Ok(repo) => Ok(repo),
            // Created concurrently: take that one.
            Err(RepoError::Db(DbError::AlreadyExists(_))) => self
                .db
                .get_repo(kind, namespace, name)
                .await?
                .ok_or_else(|| RepoError::RepoNotFound(format!("{namespace}/{name} (vanished after creation)"))),
            Err(e) => Err(e),
        }
    }

    /// Creates `namespace/name` with the hub's default `.gitattributes` as its first commit
    /// (both names checked first).
    pub async fn create(&self, kind: RepoKind, namespace: &str, name: &str, private: bool, author: &str) -> Result<Repo> {
        names::validate_repo_name(namespace, "namespace")?;
        names::validate_repo_name(name, "repository name")?;
        let attrs = self.cas.put_bytes(DEFAULT_GITATTRIBUTES.as_bytes()).await?;
        let initial = [NewFile { path: ".gitattributes".into(), sha256: attrs.sha256, lfs: false }];
        let repo = self.db.create_repo(kind, namespace, name, private, author, &initial).await?;
        self.reindex_or_log(&repo).await;
        Ok(repo)
    }

    /// `user_id` likes `repo` (which the caller checked they may read); whether that is new.
    /// Searches sort by likes, so the index learns it at once.
    pub async fn like(&self, user_id: i64, repo: &Repo) -> Result<bool> {
        let new = self.db.like(user_id, repo).await?;
        if new {
            self.reindex_or_log(repo).await;
        }
        Ok(new)
    }

    /// `user_id` no longer likes `repo`; whether they did.
    pub async fn unlike(&self, user_id: i64, repo: &Repo) -> Result<bool> {
        let was = self.db.unlike(user_id, repo).await?;
        if was {
            self.reindex_or_log(repo).await;
        }
        Ok(was)
    }

    /// Branches and tags.
    pub async fn refs(&self, repo: &Repo) -> Result<Vec<RefInfo>> {
        Ok(self.db.refs(repo).await?)
    }

    /// Deletes a branch; one already gone is fine.
    pub async fn delete_branch(&self, repo: &Repo, name: &str) -> Result<()> {
        match self.db.delete_ref(repo, RefKind::Branch, name).await {
            Ok(()) | Err(DbError::RevisionNotFound(_)) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Moves `branch` to `commit`, if it is not there already.
    pub async fn move_branch(&self, repo: &Repo, branch: &str, commit: &str) -> Result<()> {
        let head = self.pin(repo, branch).await?;
        if head != commit {
            self.db.move_branch(repo, branch, &head, commit).await?;
            // Listings and searches read `main`'s card (a job's validated model lands this way).
            if branch == "main" {
                self.reindex_or_log(repo).await;
            }
        }
        Ok(())
    }
}
