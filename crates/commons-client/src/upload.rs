//! Uploading files and folders as one commit.
//!
//! 1. [`collect`] maps local files to repository paths (folders recursively, relative paths kept).
//! 2. Each file is hashed once (sha256 and git blob SHA-1) and described to `preupload`, which
//!    answers `regular` or `lfs` per file and the id the file has now (unchanged files are skipped).
//! 3. LFS files go through the batch API: objects the hub already holds are skipped (dedup);
//!    the others are streamed from disk with a basic `PUT` or in multipart parts, as the hub
//!    answers, to signed URLs that get no token; then `verify` when offered.
//! 4. One NDJSON commit names the LFS objects and carries the regular files inline (base64),
//!    with `parentCommit` = the head read at the start, so a concurrent commit is a 412, not a loss.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine;
use futures::TryStreamExt;
use reqwest::header::{CONTENT_LENGTH, ETAG};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio_util::io::ReaderStream;

use crate::api::{BatchObject, PreuploadFile, send_checked};
use crate::error::{ClientError, Result};
use crate::hashing::FileDigest;
use crate::progress::{Progress, Transfer};
use crate::repo::RepoId;
use crate::{Client, CommitOutcome};

/// How many files one preupload call may describe (the hub's limit, as on Hugging Face).
const PREUPLOAD_BATCH: usize = 256;
/// How many objects one LFS batch call may list.
const LFS_BATCH: usize = 100;

/// One local file and where it goes in the repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadSource {
    pub local: PathBuf,
    pub path_in_repo: String,
}

fn join_repo_path(prefix: &str, rest: &str) -> String {
    let prefix = prefix.trim_matches('/');
    if prefix.is_empty() || prefix == "." { rest.to_string() } else { format!("{prefix}/{rest}") }
}

fn relative_repo_path(base: &Path, file: &Path) -> Result<String> {
    let rel = file.strip_prefix(base).map_err(|_| ClientError::Invalid(format!("{} is not under {}", file.display(), base.display())))?;
    let mut parts = Vec::new();
    for c in rel.components() {
        let part = c
            .as_os_str()
            .to_str()
            .ok_or_else(|| ClientError::Invalid(format!("{} is not valid UTF-8; repository paths must be", file.display())))?;
        parts.push(part.to_string());
    }
    Ok(parts.join("/"))
}

fn file_name_of(path: &Path) -> Result<String> {
    path.file_name()
        .and_then(|n| n.to_str())
        .map(str::to_string)
        .ok_or_else(|| ClientError::Invalid(format!("{} has no UTF-8 file name", path.display())))
}

/// Maps `paths` to repository paths. A single file with `path_in_repo` goes exactly there;
/// otherwise `path_in_repo` is a folder prefix: files keep their name, folders upload their
/// contents (recursively, `.git` skipped) under it.
pub fn collect(paths: &[PathBuf], path_in_repo: Option<&str>) -> Result<Vec<UploadSource>> {
    if paths.is_empty() {
        return Err(ClientError::Invalid("nothing to upload: name at least one file or folder".into()));
    }
    let single_file = paths.len() == 1 && paths[0].is_file();
    let prefix = path_in_repo.unwrap_or("");
    let mut by_repo_path: BTreeMap<String, PathBuf> = BTreeMap::new();
    let mut add = |repo_path: String, local: PathBuf| -> Result<()> {
        validate_repo_path(&repo_path)?;
        if let Some(previous) = by_repo_path.insert(repo_path.clone(), local.clone()) {
            return Err(ClientError::Invalid(format!(
                "{} and {} would both be uploaded as {repo_path}",
                previous.display(),
                local.display()
            )));
        }
        Ok(())
    };
    for path in paths {
        let meta = std::fs::metadata(path).map_err(|e| ClientError::io_at("read", path, e))?;
        if meta.is_file() {
            let repo_path = if single_file && path_in_repo.is_some() {
                prefix.trim_matches('/').to_string()
            } else {
                join_repo_path(prefix, &file_name_of(path)?)
            };
            add(repo_path, path.clone())?;
        } else if meta.is_dir() {
            let walker = walkdir::WalkDir::new(path)
                .follow_links(true)
                .sort_by_file_name()
                .into_iter()
                .filter_entry(|e| e.depth() == 0 || e.file_name() != ".git");
            for entry in walker {
                let entry = entry.map_err(|e| ClientError::Invalid(format!("cannot walk {}: {e}", path.display())))?;
                if entry.file_type().is_file() {
                    let rel = relative_repo_path(path, entry.path())?;
                    add(join_repo_path(prefix, &rel), entry.path().to_path_buf())?;
                }
            }
        } else {
            return Err(ClientError::Invalid(format!("{} is neither a file nor a folder", path.display())));
        }
    }
    if by_repo_path.is_empty() {
        return Err(ClientError::Invalid("nothing to upload: the folders named are empty".into()));
    }
    Ok(by_repo_path.into_iter().map(|(path_in_repo, local)| UploadSource { local, path_in_repo }).collect())
}

/// The hub's rules for repository paths, checked here so a bad name fails before any upload.
fn validate_repo_path(path: &str) -> Result<()> {
    let bad = |why: &str| Err(ClientError::Invalid(format!("invalid path in repository {path:?}: {why}")));
    if path.is_empty() {
        return bad("empty");
    }
    if path.len() > 1024 {
        return bad("longer than 1024 bytes");
    }
    if path.chars().any(|c| c.is_control() || c == '\\') {
        return bad("control characters and backslashes are not allowed");
    }
    if path.split('/').any(|s| matches!(s, "" | "." | ".." | ".git")) {
        return bad("empty, '.', '..' and '.git' segments are not allowed");
    }
    Ok(())
}

#[derive(Debug, Clone, Default)]
pub struct UploadOptions {
    /// Branch to commit to (created from `main` when missing); default `main`.
    pub revision: Option<String>,
    /// Commit title; default "Upload <file>" or "Upload N files".
    pub message: Option<String>,
    pub description: Option<String>,
}

#[derive(Debug, Clone)]
pub struct UploadReport {
    /// `None` when every file was already identical in the repository.
    pub commit: Option<CommitOutcome>,
    pub regular_files: usize,
    pub lfs_files: usize,
    /// LFS objects the hub already held: not sent again.
    pub lfs_deduplicated: usize,
    pub bytes_sent: u64,
    pub unchanged: Vec<String>,
}

struct Planned {
    source: UploadSource,
    digest: FileDigest,
    lfs: bool,
}

/// Uploads `sources` to `repo` as one commit on the branch `options.revision`.
pub async fn upload(
    client: &Client,
    repo: &RepoId,
    sources: Vec<UploadSource>,
    options: &UploadOptions,
    progress: &dyn Progress,
) -> Result<UploadReport> {
    let branch = options.revision.clone().unwrap_or_else(|| "main".to_string());
    let head = match client.repo_info(repo, &branch).await {
        Ok(info) => info.sha,
        Err(e) if e.code() == Some("RevisionNotFound") => {
            tracing::debug!(%repo, branch, "creating the branch from main");
            client.create_branch(repo, &branch, None).await?;
            client.repo_info(repo, &branch).await?.sha
        }
        Err(e) => return Err(e),
    };

    let mut digests = Vec::with_capacity(sources.len());
    let total: u64 = sources.iter().filter_map(|s| std::fs::metadata(&s.local).ok()).map(|m| m.len()).sum();
    let hashing = progress.begin("hashing", total, 0);
    for source in sources {
        let local = source.local.clone();
        let digest = tokio::task::spawn_blocking(move || FileDigest::of_file(&local))
            .await
            .map_err(|e| ClientError::Invalid(format!("hashing task failed: {e}")))??;
        hashing.advance(digest.size);
        digests.push((source, digest));
    }
    hashing.finish();

    let mut modes: HashMap<String, (bool, Option<String>)> = HashMap::new();
    for batch in digests.chunks(PREUPLOAD_BATCH) {
        let files: Vec<PreuploadFile> = batch
            .iter()
            .map(|(s, d)| PreuploadFile {
                path: s.path_in_repo.clone(),
                size: d.size,
                sample: base64::engine::general_purpose::STANDARD.encode(&d.sample),
            })
            .collect();
        for answer in client.preupload(repo, &branch, &files).await? {
            let lfs = match answer.upload_mode.as_str() {
                "lfs" => true,
                "regular" => false,
                other => return Err(ClientError::Protocol(format!("preupload: unknown upload mode {other:?} for {}", answer.path))),
            };
            modes.insert(answer.path, (lfs, answer.oid.filter(|_| !answer.should_ignore)));
        }
    }

    let mut planned = Vec::new();
    let mut unchanged = Vec::new();
    for (source, digest) in digests {
        let (lfs, existing) = modes
            .get(&source.path_in_repo)
            .cloned()
            .ok_or_else(|| ClientError::Protocol(format!("preupload did not answer for {}", source.path_in_repo)))?;
        let ours = if lfs { &digest.sha256 } else { &digest.git_sha1 };
        if existing.as_deref() == Some(ours.as_str()) {
            unchanged.push(source.path_in_repo);
            continue;
        }
        planned.push(Planned { source, digest, lfs });
    }
    let mut report = UploadReport {
        commit: None,
        regular_files: planned.iter().filter(|p| !p.lfs).count(),
        lfs_files: planned.iter().filter(|p| p.lfs).count(),
        lfs_deduplicated: 0,
        bytes_sent: 0,
        unchanged,
    };
    if planned.is_empty() {
        return Ok(report);
    }

    upload_lfs_objects(client, repo, &planned, progress, &mut report).await?;

    let title = options.message.clone().unwrap_or_else(|| match planned.as_slice() {
        [one] => format!("Upload {}", one.source.path_in_repo),
        many => format!("Upload {} files", many.len()),
    });
    let mut header = json!({"summary": title, "description": options.description.clone().unwrap_or_default()});
    if let Some(head) = &head {
        header["parentCommit"] = json!(head);
    }
    let mut body = Vec::new();
    push_line(&mut body, json!({"key": "header", "value": header}));
    for p in &planned {
        let line = if p.lfs {
            json!({"key": "lfsFile", "value": {"path": p.source.path_in_repo, "algo": "sha256", "oid": p.digest.sha256, "size": p.digest.size}})
        } else {
            let data = tokio::fs::read(&p.source.local).await.map_err(|e| ClientError::io_at("read", &p.source.local, e))?;
            check_unchanged(p, &data)?;
            report.bytes_sent += data.len() as u64;
            let content = base64::engine::general_purpose::STANDARD.encode(&data);
            json!({"key": "file", "value": {"path": p.source.path_in_repo, "content": content, "encoding": "base64"}})
        };
        push_line(&mut body, line);
    }
    report.commit = Some(client.commit(repo, &branch, body).await?);
    Ok(report)
}

fn push_line(body: &mut Vec<u8>, v: Value) {
    body.extend_from_slice(v.to_string().as_bytes());
    body.push(b'\n');
}

/// A regular file is read twice (hash, then commit): refuse to commit bytes that were not hashed.
fn check_unchanged(p: &Planned, data: &[u8]) -> Result<()> {
    use sha1::{Digest, Sha1};
    let mut h = Sha1::new();
    h.update(crate::hashing::git_blob_sha1_header(data.len() as u64));
    h.update(data);
    if hex::encode(h.finalize()) != p.digest.git_sha1 {
        return Err(ClientError::Invalid(format!("{} changed during the upload; run it again", p.source.local.display())));
    }
    Ok(())
}

async fn upload_lfs_objects(
    client: &Client,
    repo: &RepoId,
    planned: &[Planned],
    progress: &dyn Progress,
    report: &mut UploadReport,
) -> Result<()> {
    // One object per sha256: the same content under two paths is sent once.
    let mut by_oid: BTreeMap<&str, &Planned> = BTreeMap::new();
    for p in planned.iter().filter(|p| p.lfs) {
        by_oid.entry(p.digest.sha256.as_str()).or_insert(p);
    }
    let objects: Vec<(String, u64)> = by_oid.values().map(|p| (p.digest.sha256.clone(), p.digest.size)).collect();
    for batch in objects.chunks(LFS_BATCH) {
        let answer = client.lfs_batch(repo, batch).await?;
        for object in &answer.objects {
            if let Some(err) = &object.error {
                return Err(ClientError::Api {
                    status: err.code.and_then(|c| u16::try_from(c).ok()).unwrap_or(422),
                    code: Some("LfsObjectError".into()),
                    message: format!("LFS object {}: {}", object.oid, err.message),
                });
            }
            let p = by_oid
                .get(object.oid.to_ascii_lowercase().as_str())
                .ok_or_else(|| ClientError::Protocol(format!("the LFS batch answered for an object never asked for: {}", object.oid)))?;
            match object.action("upload")? {
                None => {
                    tracing::debug!(path = %p.source.path_in_repo, oid = %object.oid, "LFS object already on the hub");
                    report.lfs_deduplicated += 1;
                }
                Some(action) => {
                    report.bytes_sent += send_object(client, p, object, &action, progress).await?;
                }
            }
            if let Some(verify) = object.action("verify")? {
                let body = json!({"oid": object.oid, "size": object.size});
                client.send(client.http().post(&verify.href).json(&body)).await?;
            }
        }
    }
    Ok(())
}

/// Sends one LFS object: multipart when the action lists parts, else one basic `PUT`.
async fn send_object(
    client: &Client,
    p: &Planned,
    object: &BatchObject,
    action: &crate::api::BatchAction,
    progress: &dyn Progress,
) -> Result<u64> {
    let size = p.digest.size;
    let bar = progress.begin(&p.source.path_in_repo, size, 0);
    let header = action.header.clone().unwrap_or_default();
    let chunk_size = header.get("chunk_size").and_then(|v| v.as_str().map(str::to_string).or_else(|| v.as_u64().map(|n| n.to_string())));
    let result = match chunk_size {
        None => {
            let mut rb = client.http().put(&action.href);
            // Headers the server asks for (e.g. a storage provider's), but never our token.
            for (k, v) in &header {
                if let Some(v) = v.as_str() {
                    rb = rb.header(k.as_str(), v);
                }
            }
            let body = file_body(&p.source.local, 0, size, bar.clone()).await?;
            send_checked(rb.header(CONTENT_LENGTH, size).body(body)).await.map(|_| ())
        }
        Some(chunk) => {
            let chunk: u64 = chunk
                .parse()
                .ok()
                .filter(|c| *c > 0)
                .ok_or_else(|| ClientError::Protocol(format!("multipart chunk_size {chunk:?} is not a positive number")))?;
            let parts = size.div_ceil(chunk);
            let mut done = Vec::with_capacity(parts as usize);
            for part in 1..=parts {
                let url = header
                    .get(&part.to_string())
                    .and_then(Value::as_str)
                    .ok_or_else(|| ClientError::Protocol(format!("multipart upload of {}: no URL for part {part}", object.oid)))?;
                let offset = (part - 1) * chunk;
                let len = chunk.min(size - offset);
                let body = file_body(&p.source.local, offset, len, bar.clone()).await?;
                let resp = send_checked(client.http().put(url).header(CONTENT_LENGTH, len).body(body)).await?;
                let etag = resp
                    .headers()
                    .get(ETAG)
                    .and_then(|v| v.to_str().ok())
                    .ok_or_else(|| ClientError::Protocol(format!("part {part} of {} was stored without an ETag", object.oid)))?
                    .to_string();
                done.push(json!({"partNumber": part, "etag": etag}));
            }
            let completion = json!({"oid": object.oid, "parts": done});
            send_checked(client.http().post(&action.href).json(&completion)).await.map(|_| ())
        }
    };
    bar.finish();
    result.map(|()| size)
}

/// `len` bytes of `path` from `offset`, streamed from disk with progress.
async fn file_body(path: &Path, offset: u64, len: u64, bar: Arc<dyn Transfer>) -> Result<reqwest::Body> {
    let mut file = tokio::fs::File::open(path).await.map_err(|e| ClientError::io_at("open", path, e))?;
    file.seek(std::io::SeekFrom::Start(offset)).await.map_err(|e| ClientError::io_at("seek in", path, e))?;
    let stream = ReaderStream::with_capacity(file.take(len), 256 * 1024).inspect_ok(move |chunk| bar.advance(chunk.len() as u64));
    Ok(reqwest::Body::wrap_stream(stream))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collect_maps_files_and_folders() {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path().join("model");
        std::fs::create_dir_all(root.join("sub/deeper")).expect("dirs");
        std::fs::create_dir_all(root.join(".git")).expect("dirs");
        std::fs::write(root.join("config.json"), "{}").expect("write");
        std::fs::write(root.join("sub/deeper/w.bin"), [0u8; 4]).expect("write");
        std::fs::write(root.join(".git/HEAD"), "ref").expect("write");
        let single = dir.path().join("notes.txt");
        std::fs::write(&single, "n").expect("write");

        let paths: Vec<String> = collect(std::slice::from_ref(&root), None).expect("collect").into_iter().map(|s| s.path_in_repo).collect();
        assert_eq!(paths, ["config.json", "sub/deeper/w.bin"]);
        let under: Vec<String> =
            collect(&[root.clone(), single.clone()], Some("v1")).expect("collect").into_iter().map(|s| s.path_in_repo).collect();
        assert_eq!(under, ["v1/config.json", "v1/notes.txt", "v1/sub/deeper/w.bin"]);
        let renamed = collect(std::slice::from_ref(&single), Some("docs/README.md")).expect("collect");
        assert_eq!(renamed[0].path_in_repo, "docs/README.md");
        assert!(collect(&[single.clone(), single], None).is_err(), "a path uploaded twice is refused");
        assert!(collect(&[root], Some("../x")).is_err(), "'..' is refused before any upload");
        assert!(collect(&[dir.path().join("missing")], None).is_err());
    }
}
