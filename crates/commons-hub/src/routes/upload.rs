//! Writing revisions: preupload (protocol §10) decides regular vs LFS per file; commit (§12)
//! applies an NDJSON list of operations atomically on a branch.

use std::collections::HashSet;

use super::{Path, Query};
use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use base64::Engine;
use commons_db::{CommitOp, NewFile, Repo};
use globset::{GlobSet, GlobSetBuilder};
use serde::Deserialize;
use serde_json::{Value, json};

use super::repos::RevPath;
use super::{base_url, kind_from_plural, query_bool, readable_repo, resolve};
use crate::AppState;
use crate::auth::Caller;
use crate::body::{RawBody, SpoolLimits, SpooledLines};
use crate::error::{ApiError, ApiResult};
use commons_repo::names::{validate_file_path, validate_ref_name};

/// Files one preupload request may ask about (the clients send 256 at a time).
const MAX_PREUPLOAD_FILES: usize = 1000;

/// Files this large always go through LFS, as on the Hugging Face Hub.
pub const LFS_SIZE_THRESHOLD: u64 = 10 * 1024 * 1024;

/// The `filter=lfs` patterns of a `.gitattributes`, with git's matching rule: a pattern without
/// `/` matches the file name at any depth, one with `/` matches the path from the root.
pub(crate) struct LfsRules {
    by_name: GlobSet,
    by_path: GlobSet,
}

impl LfsRules {
    pub fn parse(text: &str) -> Self {
        let mut by_name = GlobSetBuilder::new();
        let mut by_path = GlobSetBuilder::new();
        for line in text.lines() {
            let line = line.trim();
            if line.starts_with('#') {
                continue;
            }
            let mut parts = line.split_whitespace();
            let Some(pattern) = parts.next() else { continue };
            if !parts.any(|a| a == "filter=lfs") {
                continue;
            }
            let Ok(glob) = globset::GlobBuilder::new(pattern.trim_start_matches('/')).literal_separator(true).build() else {
                tracing::debug!(pattern, "ignoring a .gitattributes pattern that does not parse");
                continue;
            };
            if pattern.contains('/') {
                by_path.add(glob);
            } else {
                by_name.add(glob);
            }
        }
        let empty = || GlobSetBuilder::new().build().expect("an empty glob set builds");
        Self { by_name: by_name.build().unwrap_or_else(|_| empty()), by_path: by_path.build().unwrap_or_else(|_| empty()) }
    }

    pub fn matches(&self, path: &str) -> bool {
        let name = path.rsplit('/').next().unwrap_or(path);
        self.by_name.is_match(name) || self.by_path.is_match(path)
    }
}

fn default_rules() -> LfsRules {
    LfsRules::parse(commons_repo::DEFAULT_GITATTRIBUTES)
}

/// Largest `.gitattributes` or `.gitignore` read: a bigger one is not a real repository's.
const RULES_FILE_MAX: u64 = 1024 * 1024;

/// The text of a small file of `commit`: `Ok(None)` if there is none, `Err(())` if it is too
/// large to be read as rules.
async fn rules_text(state: &AppState, repo: &Repo, commit: &str, path: &str) -> ApiResult<Result<Option<String>, ()>> {
    let Some(entry) = state.db.file_at(repo, commit, path).await? else {
        return Ok(Ok(None));
    };
    if entry.size as u64 > RULES_FILE_MAX {
        return Ok(Err(()));
    }
    let bytes = state.cas.read_to_vec(&entry.sha256, RULES_FILE_MAX).await?;
    Ok(Ok(Some(String::from_utf8_lossy(&bytes).into_owned())))
}

/// The LFS rules in force at `commit`: its `.gitattributes`, or none (the defaults when it is
/// too large to be one).
async fn rules_at(state: &AppState, repo: &Repo, commit: &str) -> ApiResult<LfsRules> {
    Ok(match rules_text(state, repo, commit, ".gitattributes").await? {
        Ok(Some(text)) => LfsRules::parse(&text),
        Ok(None) => LfsRules::parse(""),
        Err(()) => default_rules(),
    })
}

/// The repository's `.gitignore` at `commit`, with git's rules (what preupload's
/// `shouldIgnore` answers from).
async fn ignore_at(state: &AppState, repo: &Repo, commit: &str) -> ApiResult<Option<ignore::gitignore::Gitignore>> {
    let Ok(Some(text)) = rules_text(state, repo, commit, ".gitignore").await? else {
        return Ok(None);
    };
    Ok(ignore_rules(&text))
}

/// `.gitignore` text as rules.
fn ignore_rules(text: &str) -> Option<ignore::gitignore::Gitignore> {
    let mut builder = ignore::gitignore::GitignoreBuilder::new("");
    for line in text.lines() {
        // A line git would not understand is skipped, as git skips it.
        let _ = builder.add_line(None, line);
    }
    builder.build().ok()
}

/// Whether `path` (or a folder above it) is ignored by `rules`.
fn ignored(rules: &ignore::gitignore::Gitignore, path: &str) -> bool {
    if rules.matched(path, false).is_ignore() {
        return true;
    }
    let mut dir = path;
    while let Some((parent, _)) = dir.rsplit_once('/') {
        if rules.matched(parent, true).is_ignore() {
            return true;
        }
        dir = parent;
    }
    false
}

/// Whether a file goes through LFS: large, binary, or named by `.gitattributes`; never an
/// empty one (the Hub's rule: there is nothing to point at).
fn wants_lfs(rules: &LfsRules, path: &str, size: u64, sample: &[u8]) -> bool {
    size > 0 && (size >= LFS_SIZE_THRESHOLD || sample.contains(&0) || rules.matches(path))
}

#[derive(Deserialize)]
pub struct PreuploadBody {
    files: Vec<PreuploadFile>,
    /// The `.gitignore` the commit being prepared carries, which wins over the repository's.
    #[serde(rename = "gitIgnore")]
    git_ignore: Option<String>,
}

#[derive(Deserialize)]
pub struct PreuploadFile {
    path: String,
    size: u64,
    #[serde(default)]
    sample: String,
}

pub async fn preupload(State(state): State<AppState>, caller: Caller, Path(p): Path<RevPath>, body: RawBody) -> ApiResult<Json<Value>> {
    let kind = kind_from_plural(&p.kind)?;
    let repo = readable_repo(&state, &caller, kind, &p.ns, &p.name).await?;
    // A participant's files can only land on a pull request; the commit checks where.
    caller.require_upload(&repo)?;
    let body: PreuploadBody = body.json(state.limits.json_body, "the preupload request").await?;
    let commit = resolve(&state, &repo, &p.rev).await?;
    let rules = rules_at(&state, &repo, &commit).await?;
    let ignore = match &body.git_ignore {
        Some(text) => ignore_rules(text),
        None => ignore_at(&state, &repo, &commit).await?,
    };
    if body.files.len() > MAX_PREUPLOAD_FILES {
        return Err(ApiError::bad_request(format!(
            "{} files in one preupload request; send at most {MAX_PREUPLOAD_FILES}",
            body.files.len()
        )));
    }
    let limit = state.limits.file_size;
    if let Some(big) = body.files.iter().find(|f| f.size > limit) {
        return Err(crate::body::too_large(&format!("{} ({} bytes)", big.path, big.size), limit));
    }
    let mut out = Vec::with_capacity(body.files.len());
    for f in &body.files {
        validate_file_path(&f.path)?;
        let sample = base64::engine::general_purpose::STANDARD.decode(&f.sample).unwrap_or_default();
        let lfs = wants_lfs(&rules, &f.path, f.size, &sample);
        // The client skips files whose oid it already has: sha256 for LFS, git sha1 otherwise.
        let oid = state.db.file_at(&repo, &commit, &f.path).await?.map(|e| if lfs { e.sha256 } else { e.git_oid });
        out.push(json!({"path": f.path, "uploadMode": if lfs { "lfs" } else { "regular" }, "shouldIgnore": ignore.as_ref().is_some_and(|i| ignored(i, &f.path)), "oid": oid}));
    }
    Ok(Json(json!({"files": out, "commitOid": commit})))
}

/// One line of an NDJSON commit, its value left unparsed until its key says what it is (an
/// inline file's content is then parsed once, not copied into a `Value` first).
#[derive(Deserialize)]
struct Line<'a> {
    key: String,
    #[serde(borrow)]
    value: &'a serde_json::value::RawValue,
}

/// The longest line of an NDJSON commit: an inline file of up to 48 MiB in base64. Larger
/// files belong in LFS (preupload says so from 10 MiB on), and one line is held in memory.
const COMMIT_LINE_MAX: u64 = 64 << 20;

/// Operations (lines) in one commit.
const COMMIT_LINES_MAX: usize = 100_000;

#[derive(Deserialize)]
struct Header {
    summary: Option<String>,
    description: Option<String>,
    #[serde(rename = "parentCommit")]
    parent_commit: Option<String>,
}

#[derive(Deserialize)]
struct InlineFile {
    path: String,
    content: String,
    encoding: Option<String>,
}

#[derive(Deserialize)]
struct LfsFile {
    path: String,
    algo: Option<String>,
    oid: String,
    size: Option<u64>,
}

/// An operation read for its path alone (deletions; an inline file once checked).
#[derive(Deserialize)]
struct PathOnly {
    path: String,
}

fn parse<T: serde::de::DeserializeOwned>(n: usize, key: &str, value: Value) -> ApiResult<T> {
    serde_json::from_value(value).map_err(|e| ApiError::bad_request(format!("line {n} ({key}): {e}")))
}

/// What a commit writes, each checked on its own: a file's bytes to store, or an operation on
/// what the store already holds (an LFS object the caller may reference, a deletion).
pub(crate) enum Staged {
    Inline {
        path: String,
        data: Vec<u8>,
    },
    /// An inline file still in the spooled commit body: line `line` of `body`, decoded when it
    /// is stored, so a commit of many files holds one of them in memory at a time.
    Spooled {
        path: String,
        body: std::sync::Arc<SpooledLines>,
        line: usize,
    },
    Op(CommitOp),
}

/// The path and decoded bytes of the `file` line `line` (0-based) of a spooled commit.
async fn inline_file(body: &SpooledLines, line: usize) -> ApiResult<(String, Vec<u8>)> {
    let raw = body.line(line).await?;
    let parsed: Line<'_> =
        serde_json::from_slice(&raw).map_err(|e| ApiError::bad_request(format!("line {}: not a JSON operation: {e}", line + 1)))?;
    decode_inline(line + 1, parsed.value)
}

/// The path and decoded bytes of the value of `file` line `n`.
fn decode_inline(n: usize, value: &serde_json::value::RawValue) -> ApiResult<(String, Vec<u8>)> {
    let f: InlineFile = serde_json::from_str(value.get()).map_err(|e| ApiError::bad_request(format!("line {n} (file): {e}")))?;
    if !matches!(f.encoding.as_deref(), None | Some("base64")) {
        return Err(ApiError::bad_request(format!("line {n}: unsupported encoding {:?}", f.encoding)));
    }
    let data = base64::engine::general_purpose::STANDARD
        .decode(f.content.as_bytes())
        .map_err(|e| ApiError::bad_request(format!("line {n}: content of {} is not valid base64: {e}", f.path)))?;
    Ok((f.path, data))
}

/// The one way a commit is made from outside: the NDJSON commit of the clients and the pages'
/// forms both end here. Cards are checked before anything is stored, inline files are stored
/// (in LFS when `.gitattributes` at `head` or their size says so), then the commit is made in
/// one transaction that re-checks `parent` against the head it locks: a concurrent commit is a
/// 412, never a lost update; without a parent the operations apply on whatever the head is then.
pub(crate) async fn commit_staged(
    state: &AppState,
    repo: &Repo,
    branch: &str,
    head: &str,
    parent: Option<&str>,
    staged: Vec<Staged>,
    info: &commons_db::CommitInfo<'_>,
) -> ApiResult<commons_db::Commit> {
    let ops = stage(state, repo, head, staged).await?;
    let commit = state.db.commit(repo, branch, parent, &ops, info).await?;
    state.webhooks.emit(crate::webhooks::Event::commit(repo, branch, &commit));
    if branch == "main" {
        state.repos.reindex_or_log(repo).await;
    }
    Ok(commit)
}

/// The operations of a commit on `head`: cards checked, then inline files stored.
async fn stage(state: &AppState, repo: &Repo, head: &str, staged: Vec<Staged>) -> ApiResult<Vec<CommitOp>> {
    for item in &staged {
        // A card whose metadata does not parse is refused, naming its line.
        match item {
            Staged::Inline { path, data } if path == "README.md" => commons_repo::Repos::check_card(data)?,
            Staged::Spooled { path, body, line } if path == "README.md" => {
                commons_repo::Repos::check_card(&inline_file(body, *line).await?.1)?
            }
            _ => {}
        }
    }
    let rules = rules_at(state, repo, head).await?;
    let mut ops = Vec::with_capacity(staged.len());
    for item in staged {
        let (path, data) = match item {
            Staged::Op(op) => {
                ops.push(op);
                continue;
            }
            Staged::Inline { path, data } => (path, data),
            Staged::Spooled { body, line, .. } => inline_file(&body, line).await?,
        };
        let stored = state.cas.put_bytes(&data).await?;
        if path == "README.md" {
            state.repos.index_card(&stored.sha256, &data).await?;
        }
        let sample = &data[..data.len().min(512)];
        let lfs = wants_lfs(&rules, &path, stored.size, sample);
        ops.push(CommitOp::Put(NewFile { path, sha256: stored.sha256, lfs }));
    }
    Ok(ops)
}

pub async fn commit(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(p): Path<RevPath>,
    Query(q): Query<std::collections::HashMap<String, String>>,
    body: RawBody,
) -> ApiResult<Json<Value>> {
    let kind = kind_from_plural(&p.kind)?;
    let repo = readable_repo(&state, &caller, kind, &p.ns, &p.name).await?;
    let token = caller.require()?;
    let author = token.user.name.clone();
    let create_pr = query_bool(q.get("create_pr"));
    let branch = p.rev.strip_prefix("refs/heads/").unwrap_or(&p.rev).to_string();
    // Where the commit goes: a new pull request against `branch`, an existing pull request's
    // branch (both open to anyone who may read the repository), or a branch the caller may move.
    let new_pr = if create_pr {
        let token = caller.require_participant(&repo)?;
        state.count_discussion_write(&token.user.name)?;
        Some(state.repos.new_pull_request(&repo, &branch, false).await?)
    } else if let Some(num) = commons_db::pr_number(&branch) {
        caller.require_participant(&repo)?;
        match state.db.discussion(&repo, num).await? {
            Some(d) if d.is_pr => None,
            _ => return Err(ApiError::revision_not_found(&branch)),
        }
    } else {
        validate_ref_name(&branch)?;
        caller.require_write_branch(&repo, &branch)?;
        None
    };
    // Read only now that the caller may write here; kept on disk, so a commit's size is bounded
    // by `commit_body`, what it holds in memory by one line.
    let limits = SpoolLimits { total: state.limits.commit_body, line: COMMIT_LINE_MAX, max_lines: COMMIT_LINES_MAX };
    let body = std::sync::Arc::new(body.spool_lines(&state.upload_dir, limits, "the commit").await?);
    let head = match &new_pr {
        Some(pr) => pr.base_commit.clone(),
        None => resolve(&state, &repo, &branch).await?,
    };

    // Validate every line before storing anything, so a bad request changes nothing. Inline
    // files are decoded here to be checked, and again, one at a time, when they are stored.
    let mut header: Option<Header> = None;
    let mut planned: Vec<(usize, String, Value)> = Vec::new();
    let mut seen = HashSet::new();
    for i in 0..body.len() {
        // Lines are numbered among the non-blank ones.
        let n = i + 1;
        let raw = body.line(i).await?;
        let line: Line<'_> =
            serde_json::from_slice(&raw).map_err(|e| ApiError::bad_request(format!("line {n}: not a JSON operation: {e}")))?;
        let value = if line.key == "file" {
            let (path, _) = decode_inline(n, line.value)?;
            json!({ "path": path })
        } else {
            serde_json::from_str::<Value>(line.value.get()).map_err(|e| ApiError::bad_request(format!("line {n}: {e}")))?
        };
        match line.key.as_str() {
            "header" => header = Some(parse(n, "header", value)?),
            "file" | "lfsFile" | "deletedFile" | "deletedFolder" => {
                let path = value.get("path").and_then(Value::as_str).unwrap_or_default().to_string();
                // Only a folder may be named with a trailing `/`; a file path ending in `/` could
                // be stored but never read back.
                if line.key == "deletedFolder" {
                    validate_file_path(path.strip_suffix('/').unwrap_or(&path))?;
                } else {
                    validate_file_path(&path)?;
                }
                if !seen.insert(path.clone()) {
                    return Err(ApiError::bad_request(format!("line {n}: {path} appears twice in one commit")));
                }
                planned.push((n, line.key, value));
            }
            other => return Err(ApiError::bad_request(format!("line {n}: unknown operation {other:?}"))),
        }
    }
    let header = header.ok_or_else(|| ApiError::bad_request("the commit has no header line"))?;
    let mut new_pr = new_pr;
    if let (Some(pr), Some(parent)) = (&mut new_pr, &header.parent_commit) {
        // A pull request made from `parentCommit` starts there (a commit of this repository).
        if state.db.get_commit(&repo, parent).await?.is_none() {
            return Err(ApiError::revision_not_found(parent));
        }
        pr.base_commit = parent.clone();
    } else if let Some(parent) = &header.parent_commit
        && *parent != head
    {
        return Err(ApiError::from(commons_db::DbError::StaleParent { expected: parent.clone(), actual: head.clone() }));
    }

    // Every line is checked (inline contents decoded, LFS objects found and readable by the
    // caller) before the first inline file is stored.
    let mut checked = Vec::with_capacity(planned.len());
    for (n, key, value) in planned {
        match key.as_str() {
            // Decoded above; stored from the spooled body, one at a time.
            "file" => checked.push(Staged::Spooled { path: parse::<PathOnly>(n, &key, value)?.path, body: body.clone(), line: n - 1 }),
            "lfsFile" => {
                let f: LfsFile = parse(n, &key, value)?;
                if !matches!(f.algo.as_deref(), None | Some("sha256")) {
                    return Err(ApiError::bad_request(format!("line {n}: unsupported hash algorithm {:?}", f.algo)));
                }
                let oid = f.oid.to_ascii_lowercase();
                let never_uploaded = || {
                    ApiError::bad_request(format!(
                        "line {n}: LFS object {oid} for {} was never uploaded; upload it through the LFS batch API first",
                        f.path
                    ))
                };
                let Some((_, size, _)) = state.db.blob(&oid).await? else {
                    return Err(never_uploaded());
                };
                // The store holding these bytes for someone else is no proof that the caller has
                // them: the same answer as for an object that does not exist.
                if !state.db.may_reference_blob(&oid, token.user.id, caller.reader()).await? {
                    return Err(never_uploaded());
                }
                if let Some(declared) = f.size
                    && declared != size as u64
                {
                    return Err(ApiError::bad_request(format!(
                        "line {n}: {} declares {declared} bytes but LFS object {oid} has {size}",
                        f.path
                    )));
                }
                checked.push(Staged::Op(CommitOp::Put(NewFile { path: f.path, sha256: oid, lfs: true })));
            }
            "deletedFile" => checked.push(Staged::Op(CommitOp::Delete(parse::<PathOnly>(n, &key, value)?.path))),
            "deletedFolder" => checked.push(Staged::Op(CommitOp::DeleteFolder(parse::<PathOnly>(n, &key, value)?.path))),
            _ => unreachable!("operation keys were checked above"),
        }
    }
    let title = header.summary.unwrap_or_else(|| "Update files".into());
    let message = header.description.unwrap_or_default();
    let info = commons_db::CommitInfo { author: &author, title: &title, message: &message };
    let base = base_url(&state, &headers);
    let (commit, pr_url) = match new_pr {
        Some(pr) => {
            // The commit's summary titles the pull request and its description opens it, within
            // a discussion's bounds.
            if message.len() > commons_repo::collab::COMMENT_MAX {
                return Err(ApiError::bad_request(format!(
                    "a pull request's description has at most {} bytes; this one has {}",
                    commons_repo::collab::COMMENT_MAX,
                    message.len()
                )));
            }
            let pr_title: String = title.chars().filter(|c| !c.is_control()).take(commons_repo::collab::TITLE_MAX).collect();
            let ops = stage(&state, &repo, &pr.base_commit, checked).await?;
            let (d, commit) = state.db.open_pull_request_with_commit(&repo, &pr_title, &pr, &ops, &info).await?;
            state.webhooks.emit(crate::webhooks::Event::pull_request_opened(&repo, &d, &commit));
            (commit, Some(format!("{base}/{}{}/discussions/{}", repo.kind.url_prefix(), repo.full_name(), d.num)))
        }
        None => (commit_staged(&state, &repo, &branch, &head, header.parent_commit.as_deref(), checked, &info).await?, None),
    };
    tracing::info!(repo = %repo.full_name(), branch, commit = %commit.id, pull_request = pr_url.is_some(), "commit");
    Ok(Json(json!({
        "commitOid": commit.id,
        "commitUrl": format!("{base}/{}{}/commit/{}", repo.kind.url_prefix(), repo.full_name(), commit.id),
        "commitMessage": title,
        "pullRequestUrl": pr_url,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gitattributes_rules_follow_git() {
        let rules = LfsRules::parse("*.bin filter=lfs diff=lfs\nsaved_model/**/* filter=lfs\n# *.txt filter=lfs\n*.md text\n");
        assert!(rules.matches("model.bin"));
        assert!(rules.matches("deep/dir/model.bin"));
        assert!(rules.matches("saved_model/a/b.pb"));
        assert!(!rules.matches("other/saved_model/a.pb"));
        assert!(!rules.matches("notes.txt"));
        assert!(!rules.matches("README.md"));
        let d = default_rules();
        assert!(d.matches("model.safetensors") && d.matches("data/train.parquet") && !d.matches("config.json"));
    }
}
