//! The content-addressed store of Commons, in Hugging Face's Xet format.
//!
//! Bytes enter through an [`IngestWriter`]: they are cut into content-defined chunks (gearhash,
//! 64 KiB target, BLAKE3-keyed chunk hashes — `xet-data`'s chunker), each chunk is looked up in
//! the global chunk index, and only chunks never seen before are packed into new xorbs
//! (`xet-core-structures`' xorb format, LZ4/byte-grouping compression chosen per block). A file
//! is recorded as its reconstruction: runs of chunks of xorbs. So every byte is stored once,
//! across files, revisions and repositories.
//!
//! Memory stays bounded whatever the file size: an ingest holds at most one open xorb
//! (`XORB_TARGET_BYTES`), its file hash as a `MerkleHashSubtree` (O(log n) nodes), and the
//! file's terms (runs of chunks: its reconstruction, what it records at the end); a read holds
//! at most one read window.
//!
//! Invariants:
//! - A xorb object is durable (written, and fsynced on local disk) before any index row names it.
//! - A xorb's index rows (it and its chunks) are written once it is durable, so an ingest keeps
//!   no per-chunk state of the xorbs it finished; a file's rows, and its blob row, are written in
//!   one transaction after all its xorbs. A crash mid-ingest leaves at worst xorbs no file
//!   references (collected by [`Cas::sweep_orphan_xorbs`]), never a file with missing bytes.

mod ingest;
mod read;
pub mod xet;

pub use ingest::IngestWriter;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use commons_db::Db;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum StorageError {
    #[error("size mismatch: declared {expected} bytes, received {actual}")]
    SizeMismatch { expected: u64, actual: u64 },
    #[error("sha256 mismatch: declared {expected}, content hashes to {actual}")]
    Sha256Mismatch { expected: String, actual: String },
    #[error("object {0} not found in the store")]
    MissingObject(String),
    #[error("invalid store URL {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("requested range {start}-{end} is outside the file ({size} bytes)")]
    InvalidRange { start: u64, end: u64, size: u64 },
    #[error("metadata: {0}")]
    Db(#[from] commons_db::DbError),
    #[error("object store: {0}")]
    ObjectStore(#[from] object_store::Error),
    #[error("xet format: {0}")]
    Xet(#[from] xet_core_structures::CoreError),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("corrupt store: {0}")]
    Corrupt(String),
    #[error("file of {size} bytes is over the {limit}-byte limit of this read")]
    TooLarge { size: u64, limit: u64 },
    /// What a Xet client uploaded does not check out.
    #[error("{0}")]
    InvalidUpload(String),
}

pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// The time `grace` ago, in the object store's clock type.
fn chrono_cutoff(grace: std::time::Duration) -> chrono::DateTime<chrono::Utc> {
    let grace = chrono::Duration::from_std(grace).unwrap_or(chrono::Duration::MAX);
    chrono::Utc::now().checked_sub_signed(grace).unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC)
}

/// Xorbs are sealed at this size (the format allows 64 MiB): a smaller open xorb bounds the memory
/// of each concurrent upload while keeping objects large enough for efficient range reads.
pub const XORB_TARGET_BYTES: usize = 16 * 1024 * 1024;

/// A file as stored: its identities (content sha256, git blob sha1, Xet file hash) and size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredFile {
    pub sha256: String,
    pub git_sha1: String,
    pub file_hash: String,
    pub size: u64,
}

/// Handle on the store. Cheap to clone.
#[derive(Clone)]
pub struct Cas {
    db: Db,
    objects: Arc<dyn ObjectStore>,
    /// Set when the objects live on local disk, so writes can be fsynced.
    local_root: Option<PathBuf>,
    /// What reads keep between calls, shared by the clones of this store.
    reads: Arc<Reads>,
}

/// What reads keep: small files' bytes, xorbs' chunk offsets, and a count of the bytes fetched
/// from the object store.
pub(crate) struct Reads {
    /// The bytes of small files recently read, by Xet file hash (a file's bytes never change).
    pub(crate) small_files: SmallFiles,
    /// Chunk offsets of xorbs read from the middle of a term, by xorb hash.
    pub(crate) chunk_offsets: quick_cache::sync::Cache<String, Arc<ChunkOffsets>>,
    /// Bytes fetched from the object store by reads since the store was opened.
    pub(crate) fetched: std::sync::atomic::AtomicU64,
}

/// Where each chunk of a xorb ends, stored and unpacked (a xorb's footer, without its hashes).
pub(crate) struct ChunkOffsets {
    pub(crate) stored: Vec<u32>,
    pub(crate) unpacked: Vec<u32>,
}

/// Small files kept in memory, at most [`SMALL_FILES_TOTAL`] bytes of them.
pub(crate) type SmallFiles = quick_cache::sync::Cache<String, bytes::Bytes, ByteWeight>;

/// Memory for small files' bytes.
const SMALL_FILES_TOTAL: u64 = 64 * 1024 * 1024;

#[derive(Clone)]
pub(crate) struct ByteWeight;

impl quick_cache::Weighter<String, bytes::Bytes> for ByteWeight {
    fn weight(&self, key: &String, value: &bytes::Bytes) -> u64 {
        (key.len() + value.len()) as u64 + 64
    }
}

/// Xorbs whose chunk offsets are kept (each a few KiB).
const CHUNK_OFFSETS_KEPT: usize = 4096;

/// Xorbs the collector forgets in one transaction: about 4,000 chunk rows at 16 MiB a xorb, a
/// few milliseconds of the write lock, one fsync for sixteen xorbs.
const FORGET_BATCH: usize = 16;

fn reads() -> Arc<Reads> {
    Arc::new(Reads {
        // Entries are estimated at 4 KiB each for the cache's sizing; the weight bounds the bytes.
        small_files: SmallFiles::with_weighter((SMALL_FILES_TOTAL / 4096) as usize, SMALL_FILES_TOTAL, ByteWeight),
        chunk_offsets: quick_cache::sync::Cache::new(CHUNK_OFFSETS_KEPT),
        fetched: std::sync::atomic::AtomicU64::new(0),
    })
}

/// The directory a store URL names when it names one (`file:///path` or a bare path), `None`
/// for a remote store (`s3://…`).
pub fn local_path_of(url: &str) -> Result<Option<PathBuf>> {
    if !url.contains("://") {
        return Ok(Some(PathBuf::from(url)));
    }
    let parsed = url::Url::parse(url).map_err(|e| StorageError::InvalidUrl { url: url.into(), reason: e.to_string() })?;
    if parsed.scheme() != "file" {
        return Ok(None);
    }
    let path = parsed.to_file_path().map_err(|_| StorageError::InvalidUrl { url: url.into(), reason: "not a local path".into() })?;
    Ok(Some(path))
}

impl Cas {
    /// A store on a local directory (created if needed).
    pub fn local(db: Db, root: &Path) -> Result<Self> {
        std::fs::create_dir_all(root)?;
        let root = root.canonicalize()?;
        let objects = object_store::local::LocalFileSystem::new_with_prefix(&root)?;
        Ok(Self { db, objects: Arc::new(objects), local_root: Some(root), reads: reads() })
    }

    /// A store named by URL: `file:///path` or a bare path for local disk, `s3://bucket/prefix`
    /// (credentials and endpoint from the usual `AWS_*` environment variables) for S3-compatible
    /// object storage.
    pub fn from_url(db: Db, url: &str) -> Result<Self> {
        if let Some(path) = local_path_of(url)? {
            return Self::local(db, &path);
        }
        let parsed = url::Url::parse(url).map_err(|e| StorageError::InvalidUrl { url: url.into(), reason: e.to_string() })?;
        let opts = std::env::vars().filter(|(k, _)| k.starts_with("AWS_")).map(|(k, v)| (k.to_ascii_lowercase(), v));
        let (store, prefix) = object_store::parse_url_opts(&parsed, opts)?;
        let store: Arc<dyn ObjectStore> =
            if prefix.as_ref().is_empty() { Arc::from(store) } else { Arc::new(object_store::prefix::PrefixStore::new(store, prefix)) };
        Ok(Self { db, objects: store, local_root: None, reads: reads() })
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Bytes that reads have fetched from the object store since it was opened: what a ranged
    /// read really costs (e.g. a viewer's page of a large file), and what a benchmark measures.
    pub fn bytes_fetched(&self) -> u64 {
        self.reads.fetched.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Starts storing a file of `size` bytes. `expected_sha256`, when known, is checked at the end.
    pub fn writer(&self, size: u64, expected_sha256: Option<String>) -> IngestWriter {
        IngestWriter::new(self.clone(), size, expected_sha256)
    }

    /// Stores a whole in-memory buffer.
    pub async fn put_bytes(&self, data: &[u8]) -> Result<StoredFile> {
        let mut w = self.writer(data.len() as u64, None);
        w.write(data).await?;
        w.finish().await
    }

    /// Reads a whole file by its content sha256, refusing files over `limit` bytes (for small
    /// files the server itself reads: repo cards, recipes).
    pub async fn read_to_vec(&self, sha256: &str, limit: u64) -> Result<Vec<u8>> {
        let (_, size, _) =
            self.db.blob(sha256).await?.ok_or_else(|| StorageError::Corrupt(format!("blob {sha256} is not in the store")))?;
        let size = size as u64;
        if size > limit {
            return Err(StorageError::TooLarge { size, limit });
        }
        self.read_span(sha256, 0, size).await
    }

    /// Bytes `start..end` of a file by its content sha256 (only the xorb ranges that hold them
    /// are read), e.g. the records of a fixed-size record file a viewer pages through.
    pub async fn read_span(&self, sha256: &str, start: u64, end: u64) -> Result<Vec<u8>> {
        use futures::StreamExt;
        let (_, size, file_hash) =
            self.db.blob(sha256).await?.ok_or_else(|| StorageError::Corrupt(format!("blob {sha256} is not in the store")))?;
        let mut stream = Box::pin(self.read_range(&file_hash, size as u64, start, end).await?);
        let mut bytes = Vec::with_capacity(end.saturating_sub(start) as usize);
        while let Some(piece) = stream.next().await {
            bytes.extend_from_slice(&piece?);
        }
        Ok(bytes)
    }

    /// Whether the object store answers: one listing of its top level.
    pub async fn ping(&self) -> Result<()> {
        self.objects.list_with_delimiter(None).await?;
        Ok(())
    }

    /// Bytes of xorbs referenced by the index.
    pub async fn stored_bytes(&self) -> Result<u64> {
        Ok(self.db.stored_bytes().await?)
    }

    /// Deletes xorbs that no file references and that are older than `grace`: what uploads that
    /// failed or were cut off left behind (an ingest writes its xorbs before the index names
    /// them), and those whose last file the collector forgot once they have been unused for
    /// `grace` (`Db::forget_unreferenced_xorbs`). The grace period keeps the xorbs of uploads
    /// still in flight. Returns how many objects and bytes were removed.
    pub async fn sweep_orphan_xorbs(&self, grace: std::time::Duration) -> Result<(u64, u64)> {
        use futures::TryStreamExt;
        let cutoff = chrono_cutoff(grace);
        let prefix = ObjectPath::from("xorbs/default");
        let old: Vec<object_store::ObjectMeta> =
            self.objects.list(Some(&prefix)).try_filter(|meta| std::future::ready(meta.last_modified < cutoff)).try_collect().await?;
        let hashes: Vec<String> = old.iter().filter_map(|m| m.location.filename().map(str::to_string)).collect();
        let used = self.db.referenced_xorbs(&hashes).await?;
        let unused: Vec<object_store::ObjectMeta> =
            old.into_iter().filter(|meta| meta.location.filename().is_some_and(|hash| !used.contains(hash))).collect();
        let (mut removed, mut bytes) = (0, 0);
        // In batches: one transaction (one fsync) forgets a batch's index rows, then its objects
        // go. A batch holds the write lock while it deletes up to FORGET_BATCH xorbs' chunk rows.
        for batch in unused.chunks(FORGET_BATCH) {
            let mut xorbs = Vec::with_capacity(batch.len());
            for meta in batch {
                let hash = meta.location.filename().unwrap_or_default().to_string();
                // An ingest indexes each xorb as it writes it; one that never finished its file
                // left index rows to drop before the object goes.
                let chunks = if self.db.xorb_indexed(&hash).await? {
                    self.xorb_footer(&hash).await?.0.info.chunk_hashes.iter().map(|h| h.hex()).collect()
                } else {
                    Vec::new()
                };
                xorbs.push((hash, chunks));
            }
            let forgotten = self.db.forget_unreferenced_xorbs(&xorbs, cutoff.timestamp()).await?;
            for (meta, _) in batch.iter().zip(forgotten).filter(|(_, forgotten)| *forgotten) {
                match self.objects.delete(&meta.location).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => {
                        removed += 1;
                        bytes += meta.size;
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok((removed, bytes))
    }

    fn xorb_path(hash: &str) -> ObjectPath {
        ObjectPath::from(format!("xorbs/default/{hash}"))
    }

    async fn put_xorb(&self, hash: &str, data: impl Into<object_store::PutPayload>) -> Result<()> {
        let path = Self::xorb_path(hash);
        self.objects.put(&path, data.into()).await?;
        self.sync_xorb(hash).await
    }

    /// On local disk, fsyncs xorb `hash` and its directory: object_store renames a complete
    /// temp file into place but does not fsync, and a xorb must be on disk before the index
    /// names it.
    async fn sync_xorb(&self, hash: &str) -> Result<()> {
        if let Some(root) = &self.local_root {
            let file = root.join("xorbs").join("default").join(hash);
            let dir = root.join("xorbs").join("default");
            tokio::task::spawn_blocking(move || -> std::io::Result<()> {
                std::fs::File::open(&file)?.sync_all()?;
                std::fs::File::open(&dir)?.sync_all()
            })
            .await
            .map_err(|e| StorageError::Corrupt(format!("fsync task failed: {e}")))??;
        }
        Ok(())
    }
}
