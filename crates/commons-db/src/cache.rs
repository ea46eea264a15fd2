//! The answers every download asks for, kept in memory: which repository a name is, which
//! commit a revision names, which file a path of a commit is, what a blob is, whose a token is.
//! The HF clients send a HEAD of `/resolve` for every file on every load; with these, such a
//! request reads no database at all once warm.
//!
//! Two kinds of answer, two rules:
//! - *Immutable* ones (a path or the whole tree of a commit, a blob, a file's terms) never change, so they stay until evicted.
//! - *Mutable* ones (a repository by name or id, a revision, a token, the namespaces a user
//!   reads) are used only while no write of any Commons process on this database has begun or
//!   ended since they were read: every write through [`crate::Db::write_turn`] bumps a
//!   generation when its turn starts and again when it ends, both this process's own and the
//!   one shared by every process that opens the database ([`SharedCount`], a file beside it),
//!   and an answer stamped with another generation is not used. So a token revoked or a
//!   repository made private by `commons` on the command line, or by a second server, stops
//!   being answered at once. [`FRESH_FOR`] bounds the rest: writes made outside Commons (the
//!   `sqlite3` shell) are seen within it.
//!
//! Every cache is bounded in entries, so names nobody has (a scan for repositories, a probe
//! for missing files) cannot grow memory.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use quick_cache::sync::Cache;

use crate::cas::FileTerm;
use crate::{BoardEntry, FileEntry, Repo, RepoKind, Token, TreeItem};

/// How long a mutable answer may be used when no Commons process wrote since it was read: the
/// bound on what a write made outside Commons may leave unseen.
pub const FRESH_FOR: Duration = Duration::from_secs(10);

/// Entries per cache.
const ENTRIES: usize = 50_000;

/// Trees with more files than this are read each time (their listing costs more than the read).
const MAX_CACHED_TREE: usize = 1_000;

/// Reconstructions longer than this are read each time (a large file's download is long anyway).
const MAX_CACHED_TERMS: usize = 64;

#[derive(Clone)]
struct Fresh<T> {
    value: T,
    generation: Generation,
    read_at: Instant,
}

/// The writes an answer was read after: this process's own count, and the count shared by
/// every process on the database (`None` when it could not be read: nothing stamped so is used).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Generation {
    local: u64,
    shared: Option<u64>,
}

/// When cached answers are checked (see [`ReadCache::now`]).
pub(crate) struct Now {
    generation: Generation,
    at: Instant,
}

/// A count of the writes begun and ended by every Commons process on one database, in a file
/// beside it (`commons.db-generation`): eight bytes, raised under an exclusive lock of the file
/// by each write turn, read without one (an aligned eight-byte read, one system call) whenever a
/// cached answer is about to be used.
#[derive(Debug)]
pub(crate) struct SharedCount {
    file: std::fs::File,
}

impl SharedCount {
    pub(crate) fn open(database: &std::path::Path) -> std::io::Result<Self> {
        let mut path = database.as_os_str().to_owned();
        path.push("-generation");
        let file = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path)?;
        Ok(Self { file })
    }

    fn read(&self) -> std::io::Result<u64> {
        use std::os::unix::fs::FileExt;
        let mut bytes = [0u8; 8];
        match self.file.read_at(&mut bytes, 0)? {
            // A file no process has written yet.
            0 => Ok(0),
            8 => Ok(u64::from_le_bytes(bytes)),
            n => Err(std::io::Error::other(format!("the generation file holds {n} bytes, not 8"))),
        }
    }

    fn bump(&self) -> std::io::Result<()> {
        use std::os::unix::fs::FileExt;
        self.file.lock()?;
        // Under the lock no other process writes between this read and the write below, so the
        // count only ever grows (a lost update could bring back an old value and its answers).
        let bumped = self.read().and_then(|n| self.file.write_all_at(&(n.wrapping_add(1)).to_le_bytes(), 0));
        self.file.unlock()?;
        bumped
    }
}

pub(crate) type BlobRow = (String, i64, String);

pub(crate) struct ReadCache {
    generation: AtomicU64,
    /// `None` when the file could not be opened: then nothing mutable is answered from memory.
    shared: Option<SharedCount>,
    repos: Cache<(RepoKind, String, String), Fresh<Option<Repo>>>,
    /// Repositories by id: the rows of a search's page.
    repos_by_id: Cache<i64, Fresh<Repo>>,
    revisions: Cache<(i64, String), Fresh<String>>,
    files: Cache<(i64, String, String), Option<FileEntry>>,
    paths: Cache<(i64, String, String), Option<TreeItem>>,
    trees: Cache<(i64, String), Arc<[FileEntry]>>,
    blobs: Cache<String, BlobRow>,
    terms: Cache<String, Arc<Vec<FileTerm>>>,
    tokens: Cache<String, Fresh<Token>>,
    /// The namespaces whose private repositories a user reads (theirs, their organizations'):
    /// asked by every listing and search a signed-in caller makes.
    readable: Cache<String, Fresh<Arc<[String]>>>,
    /// Leaderboard answers by viewer and question: a page of a board, a board's sibling
    /// boards, a model's verified results. Up to a page of entries each: fewer of them.
    boards: Cache<(String, BoardQuestion), Fresh<Arc<BoardAnswer>>>,
}

/// What a leaderboard query asked (the viewer aside).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum BoardQuestion {
    Page { dataset: i64, split: String, metric: String, limit: i64, offset: i64 },
    Names { dataset: i64, limit: i64 },
    OfModel { model: i64, limit: i64 },
}

/// What it was answered.
#[derive(Clone, Debug)]
pub(crate) enum BoardAnswer {
    Page(Option<Vec<BoardEntry>>),
    Names(Vec<(String, String)>),
    Entries(Vec<BoardEntry>),
}

impl std::fmt::Debug for ReadCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadCache").field("generation", &self.generation.load(Ordering::Relaxed)).finish_non_exhaustive()
    }
}

impl ReadCache {
    pub(crate) fn new(shared: Option<SharedCount>) -> Arc<Self> {
        Arc::new(Self {
            generation: AtomicU64::new(0),
            shared,
            repos: Cache::new(ENTRIES),
            repos_by_id: Cache::new(ENTRIES),
            revisions: Cache::new(ENTRIES),
            files: Cache::new(ENTRIES),
            paths: Cache::new(ENTRIES),
            // Up to 1,000 files each: fewer of them.
            trees: Cache::new(ENTRIES / 50),
            blobs: Cache::new(ENTRIES),
            terms: Cache::new(ENTRIES),
            tokens: Cache::new(ENTRIES),
            readable: Cache::new(ENTRIES),
            boards: Cache::new(ENTRIES / 50),
        })
    }

    /// The collector removed contents: what was immutable about them (paths, trees, blobs,
    /// reconstructions) is no longer an answer.
    pub(crate) fn forget_contents(&self) {
        self.files.clear();
        self.paths.clear();
        self.trees.clear();
        self.blobs.clear();
        self.terms.clear();
    }

    /// A write begins or ends: mutable answers read before now are stale, in this process and
    /// in every other on the database.
    pub(crate) fn bump(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        if let Some(shared) = &self.shared
            && let Err(e) = shared.bump()
        {
            // This process's own answers are stale already; other processes may miss this write
            // for up to FRESH_FOR.
            tracing::warn!(error = %e, "could not raise the shared write generation");
        }
    }

    /// The generation to stamp on an answer about to be read from the database: taken before
    /// the read, so a write that overlaps the read makes the answer stale at once.
    pub(crate) fn generation(&self) -> Generation {
        let local = self.generation.load(Ordering::Acquire);
        Generation { local, shared: self.shared.as_ref().and_then(|shared| shared.read().ok()) }
    }

    /// The moment cached answers are checked against: one read of the shared count serves a
    /// whole page of answers (a search page uses some forty).
    pub(crate) fn now(&self) -> Now {
        Now { generation: self.generation(), at: Instant::now() }
    }

    fn fresh<T: Clone>(&self, entry: Option<Fresh<T>>) -> Option<T> {
        Self::fresh_at(entry, &self.now())
    }

    fn fresh_at<T: Clone>(entry: Option<Fresh<T>>, now: &Now) -> Option<T> {
        let entry = entry?;
        (entry.generation.shared.is_some()
            && entry.generation == now.generation
            && now.at.saturating_duration_since(entry.read_at) < FRESH_FOR)
            .then_some(entry.value)
    }

    pub(crate) fn repo(&self, key: &(RepoKind, String, String)) -> Option<Option<Repo>> {
        self.fresh(self.repos.get(key))
    }

    pub(crate) fn put_repo(&self, key: (RepoKind, String, String), value: Option<Repo>, generation: Generation) {
        self.repos.insert(key, Fresh { value, generation, read_at: Instant::now() });
    }

    pub(crate) fn repo_by_id(&self, id: i64, now: &Now) -> Option<Repo> {
        Self::fresh_at(self.repos_by_id.get(&id), now)
    }

    pub(crate) fn put_repo_by_id(&self, repo: Repo, generation: Generation) {
        self.repos_by_id.insert(repo.id, Fresh { value: repo, generation, read_at: Instant::now() });
    }

    pub(crate) fn revision(&self, repo_id: i64, rev: &str) -> Option<String> {
        self.revision_at(repo_id, rev, &self.now())
    }

    pub(crate) fn revision_at(&self, repo_id: i64, rev: &str, now: &Now) -> Option<String> {
        Self::fresh_at(self.revisions.get(&(repo_id, rev.to_string())), now)
    }

    pub(crate) fn put_revision(&self, repo_id: i64, rev: &str, commit: String, generation: Generation) {
        self.revisions.insert((repo_id, rev.to_string()), Fresh { value: commit, generation, read_at: Instant::now() });
    }

    pub(crate) fn file(&self, key: &(i64, String, String)) -> Option<Option<FileEntry>> {
        self.files.get(key)
    }

    pub(crate) fn put_file(&self, key: (i64, String, String), value: Option<FileEntry>) {
        self.files.insert(key, value);
    }

    pub(crate) fn path(&self, key: &(i64, String, String)) -> Option<Option<TreeItem>> {
        self.paths.get(key)
    }

    pub(crate) fn put_path(&self, key: (i64, String, String), value: Option<TreeItem>) {
        self.paths.insert(key, value);
    }

    pub(crate) fn tree(&self, key: &(i64, String)) -> Option<Arc<[FileEntry]>> {
        self.trees.get(key)
    }

    pub(crate) fn put_tree(&self, key: (i64, String), files: &Arc<[FileEntry]>) {
        if files.len() <= MAX_CACHED_TREE {
            self.trees.insert(key, files.clone());
        }
    }

    pub(crate) fn blob(&self, sha256: &str) -> Option<BlobRow> {
        self.blobs.get(sha256)
    }

    pub(crate) fn put_blob(&self, sha256: &str, row: BlobRow) {
        self.blobs.insert(sha256.to_string(), row);
    }

    pub(crate) fn terms(&self, file_hash: &str) -> Option<Vec<FileTerm>> {
        self.terms.get(file_hash).map(|terms| terms.as_ref().clone())
    }

    pub(crate) fn put_terms(&self, file_hash: &str, terms: &[FileTerm]) {
        if terms.len() <= MAX_CACHED_TERMS {
            self.terms.insert(file_hash.to_string(), Arc::new(terms.to_vec()));
        }
    }

    pub(crate) fn token(&self, hash: &str) -> Option<Token> {
        self.fresh(self.tokens.get(hash))
    }

    pub(crate) fn put_token(&self, hash: String, token: Token, generation: Generation) {
        self.tokens.insert(hash, Fresh { value: token, generation, read_at: Instant::now() });
    }

    pub(crate) fn board(&self, viewer: &str, question: &BoardQuestion) -> Option<Arc<BoardAnswer>> {
        self.fresh(self.boards.get(&(viewer.to_string(), question.clone())))
    }

    pub(crate) fn put_board(&self, viewer: &str, question: BoardQuestion, answer: BoardAnswer, generation: Generation) {
        self.boards.insert((viewer.to_string(), question), Fresh { value: Arc::new(answer), generation, read_at: Instant::now() });
    }

    pub(crate) fn readable(&self, user: &str) -> Option<Arc<[String]>> {
        self.fresh(self.readable.get(user))
    }

    pub(crate) fn put_readable(&self, user: &str, namespaces: Arc<[String]>, generation: Generation) {
        self.readable.insert(user.to_string(), Fresh { value: namespaces, generation, read_at: Instant::now() });
    }
}
