//! Downloading a revision into the Hugging Face cache, the layout `huggingface_hub` and `hf-hub`
//! use, so that a file fetched by any of them is found by the others:
//!
//! ```text
//! $HF_HOME/hub/{models|datasets|algorithms}--ns--name/
//!   blobs/<etag>                    content, named by sha256 (LFS) or git blob SHA-1 (regular)
//!   blobs/<etag>.incomplete         a download in progress; resumed with `Range: bytes=N-`
//!   snapshots/<commit>/<path>       relative symlink to ../../blobs/<etag> (one more ../ per folder)
//!   refs/<revision>                 the commit the revision pointed to
//! ```
//!
//! The revision is resolved to a commit first and every file is fetched at that commit, so a
//! snapshot never mixes two revisions. A blob is renamed into place only once its hash matches
//! its name; blobs already present are not fetched again.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use globset::{Glob, GlobSet, GlobSetBuilder};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::api::is_partial;
use crate::error::{ClientError, Result};
use crate::hashing::git_blob_sha1_header;
use crate::progress::{Progress, Transfer};
use crate::repo::RepoId;
use crate::{Client, TreeEntry};

#[derive(Debug, Clone)]
pub struct DownloadOptions {
    /// Branch, tag or commit; default `main`.
    pub revision: Option<String>,
    /// Glob patterns (as `huggingface_hub`'s `allow_patterns`: `*` also crosses `/`, a trailing
    /// `/` means the whole folder); empty = every file.
    pub include: Vec<String>,
    /// The hub cache root (`$HF_HOME/hub`).
    pub cache_dir: PathBuf,
    /// Also copy the files into this folder (plain files, no symlinks).
    pub local_dir: Option<PathBuf>,
    /// Files fetched at once.
    pub concurrency: usize,
}

#[derive(Debug, Clone)]
pub struct DownloadReport {
    pub commit: String,
    pub snapshot_dir: PathBuf,
    pub files: Vec<String>,
    /// Blobs that had to be fetched; the other files were in the cache or share a blob.
    pub fetched: usize,
    /// Fetches that continued a partial `.incomplete` blob.
    pub resumed: usize,
    pub bytes_fetched: u64,
}

fn include_set(patterns: &[String]) -> Result<Option<GlobSet>> {
    if patterns.is_empty() {
        return Ok(None);
    }
    let mut set = GlobSetBuilder::new();
    for p in patterns {
        let pattern = if p.ends_with('/') { format!("{p}*") } else { p.clone() };
        let glob = Glob::new(&pattern).map_err(|e| ClientError::Invalid(format!("invalid --include pattern {p:?}: {e}")))?;
        set.add(glob);
    }
    set.build().map(Some).map_err(|e| ClientError::Invalid(format!("invalid --include patterns: {e}")))
}

fn is_hex_id(s: &str) -> bool {
    matches!(s.len(), 40 | 64) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Paths come from the server and become local paths: refuse anything that could leave the
/// snapshot folder.
fn check_server_path(path: &str) -> Result<()> {
    let escapes = path.is_empty()
        || path.starts_with('/')
        || path.contains('\\')
        || path.chars().any(char::is_control)
        || path.split('/').any(|s| matches!(s, "" | "." | ".."));
    if escapes {
        return Err(ClientError::Protocol(format!("the hub listed an unsafe file path {path:?}")));
    }
    Ok(())
}

/// Downloads `repo` at `options.revision` into the cache; returns where the snapshot is.
pub async fn download(client: &Client, repo: &RepoId, options: &DownloadOptions, progress: &dyn Progress) -> Result<DownloadReport> {
    let revision = options.revision.clone().unwrap_or_else(|| "main".to_string());
    let info = client.repo_info(repo, &revision).await?;
    let commit = info.sha.ok_or_else(|| ClientError::Protocol(format!("the info of {repo} at {revision} has no commit sha")))?;
    if !is_hex_id(&commit) {
        return Err(ClientError::Protocol(format!("{commit:?} is not a commit id")));
    }
    let filter = include_set(&options.include)?;
    let mut files: Vec<TreeEntry> = client
        .list_tree(repo, &commit)
        .await?
        .into_iter()
        .filter(TreeEntry::is_file)
        .filter(|e| filter.as_ref().is_none_or(|f| f.is_match(&e.path)))
        .collect();
    if files.is_empty() && filter.is_some() {
        return Err(ClientError::Invalid(format!("no file of {repo} at {revision} matches --include {}", options.include.join(" "))));
    }
    for f in &files {
        check_server_path(&f.path)?;
        if !is_hex_id(f.etag()) {
            return Err(ClientError::Protocol(format!("{} has no usable object id ({:?})", f.path, f.etag())));
        }
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));

    let repo_dir = options.cache_dir.join(repo.cache_folder_name());
    let blobs = repo_dir.join("blobs");
    let snapshot_dir = repo_dir.join("snapshots").join(&commit);
    for dir in [&blobs, &snapshot_dir] {
        tokio::fs::create_dir_all(dir).await.map_err(|e| ClientError::io_at("create", dir, e))?;
    }
    if revision != commit {
        write_ref(&repo_dir, &revision, &commit).await?;
    }

    // Identical contents under several paths share one blob: fetch each blob once (two
    // concurrent writers of one `.incomplete` would corrupt it), then link every path.
    let mut seen = std::collections::HashSet::new();
    let unique: Vec<&TreeEntry> = files.iter().filter(|f| seen.insert(f.etag().to_ascii_lowercase())).collect();
    let ctx = FetchContext { client, repo, commit: &commit, blobs: &blobs, progress };
    let outcomes: Vec<Fetched> =
        futures::stream::iter(unique.into_iter().map(|f| ctx.fetch(f))).buffer_unordered(options.concurrency.max(1)).try_collect().await?;
    for f in &files {
        link_pointer(&snapshot_dir.join(&f.path), &blobs.join(f.etag()), &f.path).await?;
    }

    if let Some(local) = &options.local_dir {
        for f in &files {
            copy_into(&blobs.join(f.etag()), &local.join(&f.path)).await?;
        }
    }
    Ok(DownloadReport {
        commit: commit.clone(),
        snapshot_dir,
        files: files.iter().map(|f| f.path.clone()).collect(),
        fetched: outcomes.iter().filter(|o| o.fetched).count(),
        resumed: outcomes.iter().filter(|o| o.resumed).count(),
        bytes_fetched: outcomes.iter().map(|o| o.bytes).sum(),
    })
}

/// `refs/<revision>` holds the commit, no newline, as the Python client writes it.
async fn write_ref(repo_dir: &Path, revision: &str, commit: &str) -> Result<()> {
    if revision.split('/').any(|s| matches!(s, "" | "." | "..")) {
        return Err(ClientError::Invalid(format!("invalid revision {revision:?}")));
    }
    let path = repo_dir.join("refs").join(revision);
    let dir = path.parent().unwrap_or(repo_dir);
    tokio::fs::create_dir_all(dir).await.map_err(|e| ClientError::io_at("create", dir, e))?;
    if tokio::fs::read_to_string(&path).await.ok().as_deref() == Some(commit) {
        return Ok(());
    }
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    tokio::fs::write(&tmp, commit).await.map_err(|e| ClientError::io_at("write", &tmp, e))?;
    tokio::fs::rename(&tmp, &path).await.map_err(|e| ClientError::io_at("replace", &path, e))
}

struct Fetched {
    fetched: bool,
    resumed: bool,
    bytes: u64,
}

struct FetchContext<'a> {
    client: &'a Client,
    repo: &'a RepoId,
    commit: &'a str,
    blobs: &'a Path,
    progress: &'a dyn Progress,
}

/// The running hash that names a blob: sha256 for LFS files, git blob SHA-1 otherwise.
enum BlobHasher {
    Sha256(Sha256),
    GitSha1(Sha1),
}

impl BlobHasher {
    fn new(lfs: bool, size: u64) -> Self {
        if lfs {
            Self::Sha256(Sha256::new())
        } else {
            let mut h = Sha1::new();
            h.update(git_blob_sha1_header(size));
            Self::GitSha1(h)
        }
    }
    fn update(&mut self, data: &[u8]) {
        match self {
            Self::Sha256(h) => h.update(data),
            Self::GitSha1(h) => h.update(data),
        }
    }
    fn algo(&self) -> &'static str {
        match self {
            Self::Sha256(_) => "sha256",
            Self::GitSha1(_) => "git blob sha1",
        }
    }
    fn finish(self) -> String {
        match self {
            Self::Sha256(h) => hex::encode(h.finalize()),
            Self::GitSha1(h) => hex::encode(h.finalize()),
        }
    }
}

fn header_etag(resp: &reqwest::Response, name: &str) -> Option<String> {
    let v = resp.headers().get(name)?.to_str().ok()?;
    Some(v.trim().trim_start_matches("W/").trim_matches('"').to_string())
}

impl FetchContext<'_> {
    /// Makes sure the entry's blob is in the cache.
    async fn fetch(&self, entry: &TreeEntry) -> Result<Fetched> {
        let blob = self.blobs.join(entry.etag());
        if tokio::fs::metadata(&blob).await.is_ok() {
            return Ok(Fetched { fetched: false, resumed: false, bytes: 0 });
        }
        self.fetch_blob(entry, &blob).await
    }

    async fn fetch_blob(&self, entry: &TreeEntry, blob: &Path) -> Result<Fetched> {
        let size = entry.lfs.as_ref().map(|l| l.size).unwrap_or(entry.size);
        let expected = entry.etag().to_ascii_lowercase();
        let incomplete = blob.with_file_name(format!("{expected}.incomplete"));
        let mut have = tokio::fs::metadata(&incomplete).await.map(|m| m.len()).unwrap_or(0);
        if have > size {
            have = 0;
        }
        let mut file = tokio::fs::OpenOptions::new()
            .create(true)
            .read(true)
            .write(true)
            .truncate(false)
            .open(&incomplete)
            .await
            .map_err(|e| ClientError::io_at("open", &incomplete, e))?;
        file.set_len(have).await.map_err(|e| ClientError::io_at("truncate", &incomplete, e))?;
        let mut hasher = BlobHasher::new(entry.lfs.is_some(), size);
        hash_prefix(&mut file, have, &mut hasher, &incomplete).await?;

        let resumed = have > 0;
        let bar = self.progress.begin(&entry.path, size, have);
        let result = self.receive(entry, &mut file, &incomplete, have, size, &mut hasher, bar.clone()).await;
        bar.finish();
        let fetched_bytes = match result {
            Ok(n) => n,
            // The partial file stays for the next attempt: that is what makes the download resumable.
            Err(e) => return Err(e),
        };
        file.sync_all().await.map_err(|e| ClientError::io_at("flush", &incomplete, e))?;
        drop(file);
        let actual = hasher.finish_checked();
        if actual.1 != expected {
            let _ = tokio::fs::remove_file(&incomplete).await;
            return Err(ClientError::Integrity { path: entry.path.clone(), algo: actual.0, expected, actual: actual.1 });
        }
        tokio::fs::rename(&incomplete, blob).await.map_err(|e| ClientError::io_at("rename into", blob, e))?;
        tracing::debug!(path = %entry.path, bytes = fetched_bytes, resumed, "blob stored");
        Ok(Fetched { fetched: true, resumed, bytes: fetched_bytes })
    }

    /// Appends the missing bytes `have..size` to `file`; restarts from zero if the server
    /// ignores the range. Returns the bytes received.
    #[allow(clippy::too_many_arguments)]
    async fn receive(
        &self,
        entry: &TreeEntry,
        file: &mut tokio::fs::File,
        incomplete: &Path,
        mut have: u64,
        size: u64,
        hasher: &mut BlobHasher,
        bar: Arc<dyn Transfer>,
    ) -> Result<u64> {
        if have == size && size > 0 {
            return Ok(0);
        }
        let resp = self.client.resolve_from(self.repo, self.commit, &entry.path, have).await?;
        let served = header_etag(&resp, "x-linked-etag").or_else(|| header_etag(&resp, "etag"));
        if served.as_deref().map(str::to_ascii_lowercase).as_deref() != Some(entry.etag().to_ascii_lowercase().as_str()) {
            return Err(ClientError::Protocol(format!(
                "{} is served with etag {served:?}, but the tree lists {}",
                entry.path,
                entry.etag()
            )));
        }
        if let Some(served_commit) = resp.headers().get("x-repo-commit").and_then(|v| v.to_str().ok())
            && served_commit != self.commit
        {
            return Err(ClientError::Protocol(format!("{} was served from commit {served_commit}, not {}", entry.path, self.commit)));
        }
        if have > 0 && !is_partial(resp.status()) {
            tracing::debug!(path = %entry.path, "the hub ignored the range request; starting over");
            file.set_len(0).await.map_err(|e| ClientError::io_at("truncate", incomplete, e))?;
            *hasher = BlobHasher::new(entry.lfs.is_some(), size);
            have = 0;
            bar.reset(0);
        }
        use std::io::SeekFrom;
        use tokio::io::AsyncSeekExt;
        file.seek(SeekFrom::Start(have)).await.map_err(|e| ClientError::io_at("seek in", incomplete, e))?;
        let url = resp.url().to_string();
        let mut stream = resp.bytes_stream();
        let mut received = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| ClientError::Http { url: url.clone(), source: e })?;
            if have + received + chunk.len() as u64 > size {
                return Err(ClientError::Protocol(format!("{} is longer than the {size} bytes the tree lists", entry.path)));
            }
            file.write_all(&chunk).await.map_err(|e| ClientError::io_at("write", incomplete, e))?;
            hasher.update(&chunk);
            received += chunk.len() as u64;
            bar.advance(chunk.len() as u64);
        }
        if have + received != size {
            return Err(ClientError::Protocol(format!(
                "{} ended after {} of {size} bytes; run the download again to resume",
                entry.path,
                have + received
            )));
        }
        Ok(received)
    }
}

impl BlobHasher {
    fn finish_checked(self) -> (&'static str, String) {
        let algo = self.algo();
        (algo, self.finish())
    }
}

/// Feeds the first `len` bytes of a partial download to the hasher.
async fn hash_prefix(file: &mut tokio::fs::File, len: u64, hasher: &mut BlobHasher, path: &Path) -> Result<()> {
    let mut buf = vec![0u8; 1 << 20];
    let mut left = len;
    while left > 0 {
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = file.read(&mut buf[..want]).await.map_err(|e| ClientError::io_at("read", path, e))?;
        if n == 0 {
            return Err(ClientError::io(format!("{} shrank while being read", path.display()), std::io::ErrorKind::UnexpectedEof.into()));
        }
        hasher.update(&buf[..n]);
        left -= n as u64;
    }
    Ok(())
}

/// The snapshot entry for `repo_path`: a relative symlink `../../blobs/<etag>` with one more
/// `../` per folder level, as `huggingface_hub` makes it (the cache can then be moved whole).
async fn link_pointer(pointer: &Path, blob: &Path, repo_path: &str) -> Result<()> {
    let dir = pointer.parent().ok_or_else(|| ClientError::Invalid(format!("no folder for {}", pointer.display())))?;
    tokio::fs::create_dir_all(dir).await.map_err(|e| ClientError::io_at("create", dir, e))?;
    let blob_name = blob.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    let depth = repo_path.matches('/').count() + 2;
    let target = PathBuf::from(format!("{}blobs/{blob_name}", "../".repeat(depth)));
    match tokio::fs::read_link(pointer).await {
        Ok(existing) if existing == target => return Ok(()),
        Ok(_) => tokio::fs::remove_file(pointer).await.map_err(|e| ClientError::io_at("replace", pointer, e))?,
        Err(_) if tokio::fs::symlink_metadata(pointer).await.is_ok() => {
            tokio::fs::remove_file(pointer).await.map_err(|e| ClientError::io_at("replace", pointer, e))?
        }
        Err(_) => {}
    }
    #[cfg(unix)]
    tokio::fs::symlink(&target, pointer).await.map_err(|e| ClientError::io_at("link", pointer, e))?;
    #[cfg(not(unix))]
    tokio::fs::copy(blob, pointer).await.map_err(|e| ClientError::io_at("copy to", pointer, e))?;
    Ok(())
}

/// Copies a blob to `dest` through a temporary file, so `dest` is never half written.
async fn copy_into(blob: &Path, dest: &Path) -> Result<()> {
    let dir = dest.parent().ok_or_else(|| ClientError::Invalid(format!("no folder for {}", dest.display())))?;
    tokio::fs::create_dir_all(dir).await.map_err(|e| ClientError::io_at("create", dir, e))?;
    let tmp = dir.join(format!(".{}.tmp-{}", dest.file_name().and_then(|n| n.to_str()).unwrap_or("file"), std::process::id()));
    tokio::fs::copy(blob, &tmp).await.map_err(|e| ClientError::io_at("copy to", &tmp, e))?;
    tokio::fs::rename(&tmp, dest).await.map_err(|e| ClientError::io_at("replace", dest, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn include_patterns_follow_fnmatch() {
        let set = include_set(&["*.json".into(), "weights/".into()]).expect("patterns").expect("non-empty");
        assert!(set.is_match("config.json"));
        assert!(set.is_match("nested/config.json"), "`*` crosses folders, as fnmatch does");
        assert!(set.is_match("weights/a/b.bin"));
        assert!(!set.is_match("model.bin"));
        assert!(include_set(&[]).expect("empty").is_none());
        assert!(include_set(&["[".into()]).is_err());
    }

    #[test]
    fn server_paths_cannot_escape() {
        for bad in ["../x", "/etc/passwd", "a/../../b", "a//b", "a\\b", ""] {
            assert!(check_server_path(bad).is_err(), "{bad:?}");
        }
        check_server_path("dir/file.txt").expect("a plain path");
    }
}
