//! Repository lifecycle and read-only views: create/delete/move (protocol §9), info (§2), tree
//! (§3), paths-info (§4), refs (§5), commits (§6), listing (§7), branches and tags (§14).

use std::collections::HashMap;
use std::sync::Arc;

use super::{Path, Query};
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use commons_db::{FileEntry, RefKind, Repo, RepoKind, RepoQuery, RepoSort, TreeItem};
use commons_repo::CardView;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{
    administered_repo, base_url, iso_time, kind_from_plural, kind_from_singular, query_bool, readable_repo, resolve, writable_repo,
};
use crate::AppState;
use crate::auth::Caller;
use crate::body::RawBody;
use crate::error::{ApiError, ApiResult};
use commons_repo::names::{validate_file_path, validate_ref_name, validate_repo_name};

#[derive(Deserialize)]
pub struct RepoPath {
    pub(super) kind: String,
    pub(super) ns: String,
    pub(super) name: String,
}

#[derive(Deserialize)]
pub(crate) struct RevPath {
    pub(crate) kind: String,
    pub(crate) ns: String,
    pub(crate) name: String,
    pub(crate) rev: String,
}

#[derive(Deserialize)]
pub struct TreePath {
    kind: String,
    ns: String,
    name: String,
    rev: String,
    path: String,
}

#[derive(Deserialize)]
pub struct BranchPath {
    kind: String,
    ns: String,
    name: String,
    branch: String,
}

fn lfs_json(e: &FileEntry) -> Value {
    json!({
        "oid": e.sha256,
        "sha256": e.sha256,
        "size": e.size,
        "pointerSize": commons_db::lfs_pointer(&e.sha256, e.size).len(),
    })
}

fn file_json(e: &FileEntry) -> Value {
    let mut v = json!({"type": "file", "oid": e.git_oid, "size": e.size, "path": e.path});
    if e.lfs {
        v["lfs"] = lfs_json(e);
    }
    v
}

/// Adds `xetHash` to the LFS files of a listing: with it, huggingface_hub (≥ 1.22) downloads a
/// snapshot through Xet without a `HEAD` per file.
async fn with_xet_hashes(state: &AppState, items: &mut [Value]) -> ApiResult<()> {
    let shas: Vec<String> = items.iter().filter_map(|v| v["lfs"]["sha256"].as_str().map(str::to_string)).collect();
    if shas.is_empty() {
        return Ok(());
    }
    let hashes = state.db.file_hashes(&shas).await?;
    for item in items.iter_mut() {
        if let Some(hash) = item["lfs"]["sha256"].as_str().and_then(|sha| hashes.get(sha)) {
            item["xetHash"] = json!(hash);
        }
    }
    Ok(())
}

/// Adds `lastCommit` (the newest commit that changed it) to each item of a listing asked for
/// with `expand=true`.
async fn with_last_commits(state: &AppState, repo: &Repo, commit: &str, items: &mut [Value]) -> ApiResult<()> {
    let paths: Vec<String> = items.iter().filter_map(|v| v["path"].as_str().map(str::to_string)).collect();
    let last = state.repos.last_commits(repo, commit, &paths).await?;
    for item in items {
        if let Some(c) = item["path"].as_str().and_then(|p| last.get(p)) {
            item["lastCommit"] = json!({"id": c.id, "title": c.title, "date": iso_time(c.created_at)});
        }
    }
    Ok(())
}

fn folder_json(path: &str, oid: &str) -> Value {
    json!({"type": "directory", "oid": oid, "size": 0, "path": path})
}

/// What `expand` may name, as the Hub's clients know it (`ExpandModelProperty_T`,
/// `ExpandDatasetProperty_T`); an algorithm takes either. Properties Commons has no data for
/// (`gguf`, `safetensors`, `spaces`, …) are accepted and left out, as the Hub leaves out what a
/// repository lacks.
const EXPAND_MODEL: &[&str] = &[
    "author",
    "baseModels",
    "cardData",
    "childrenModelCount",
    "config",
    "createdAt",
    "disabled",
    "downloads",
    "downloadsAllTime",
    "evalResults",
    "gated",
    "gguf",
    "inference",
    "inferenceProviderMapping",
    "lastModified",
    "library_name",
    "likes",
    "mask_token",
    "model-index",
    "pipeline_tag",
    "private",
    "resourceGroup",
    "safetensors",
    "sha",
    "siblings",
    "spaces",
    "tags",
    "transformersInfo",
    "trendingScore",
    "usedStorage",
    "widgetData",
    "xetEnabled",
];
const EXPAND_DATASET: &[&str] = &[
    "author",
    "cardData",
    "citation",
    "createdAt",
    "description",
    "disabled",
    "downloads",
    "downloadsAllTime",
    "gated",
    "lastModified",
    "likes",
    "mainSize",
    "paperswithcode_id",
    "private",
    "resourceGroup",
    "sha",
    "siblings",
    "tags",
    "trendingScore",
    "usedStorage",
    "xetEnabled",
];

/// The properties `expand=` (or `expand[]=`, repeated) asks for, checked against the kind's;
/// `None` when the request names none.
fn expand_keys(kind: RepoKind, pairs: &[(String, String)]) -> ApiResult<Option<Vec<String>>> {
    let keys: Vec<&str> = pairs.iter().filter(|(k, _)| k == "expand" || k == "expand[]").map(|(_, v)| v.as_str()).collect();
    if keys.is_empty() {
        return Ok(None);
    }
    let known = |key: &str| match kind {
        RepoKind::Model => EXPAND_MODEL.contains(&key),
        RepoKind::Dataset => EXPAND_DATASET.contains(&key),
        RepoKind::Algorithm => EXPAND_MODEL.contains(&key) || EXPAND_DATASET.contains(&key),
    };
    if let Some(bad) = keys.iter().find(|k| !known(k)) {
        let list = if kind == RepoKind::Dataset { EXPAND_DATASET } else { EXPAND_MODEL };
        return Err(ApiError::bad_request(format!("\"expand\" must be one of {}; got {bad:?}", list.join(", "))));
    }
    let mut keys: Vec<String> = keys.into_iter().map(str::to_string).collect();
    keys.dedup();
    Ok(Some(keys))
}

/// A repo object cut to what `expand` asked for, plus `_id` and `id`, as the Hub answers.
fn expanded(v: &Value, keys: &[String]) -> Value {
    let mut out = json!({ "_id": v["_id"], "id": v["id"] });
    for key in keys {
        let value = match key.as_str() {
            "model-index" => &v["cardData"]["model-index"],
            key => &v[key],
        };
        if !value.is_null() {
            out[key] = value.clone();
        }
    }
    out
}

/// The repo object of info and list endpoints (HF's ModelInfo / DatasetInfo shape), written
/// straight to JSON (a listing page writes twenty of them a request; as a `Value` tree each
/// was some twenty map insertions before it was written).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RepoJson<'a> {
    #[serde(rename = "_id")]
    object_id: String,
    id: String,
    author: &'a str,
    private: bool,
    /// Read by huggingface_hub 0.3x to decide on Xet uploads (protocol §3.7).
    xet_enabled: bool,
    /// `false`, or how the files are gated.
    gated: Value,
    disabled: bool,
    downloads: i64,
    likes: i64,
    trending_score: i64,
    /// The card's tags, as the Hub derives them (`commons_card::hub_tags`).
    #[serde(serialize_with = "card_tags")]
    tags: Arc<CardView>,
    last_modified: String,
    created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    model_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sha: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    used_storage: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    siblings: Option<Vec<Value>>,
    // These two are snake_case on the Hub too.
    #[serde(rename = "pipeline_tag", skip_serializing_if = "Option::is_none")]
    pipeline_tag: Option<Value>,
    #[serde(rename = "library_name", skip_serializing_if = "Option::is_none")]
    library_name: Option<Value>,
    /// The card's front matter, when asked for.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "card_metadata")]
    card_data: Option<Arc<CardView>>,
}

fn card_tags<S: serde::Serializer>(card: &Arc<CardView>, out: S) -> Result<S::Ok, S::Error> {
    card.tags.serialize(out)
}

fn card_metadata<S: serde::Serializer>(card: &Option<Arc<CardView>>, out: S) -> Result<S::Ok, S::Error> {
    card.as_ref().map(|card| &card.metadata).serialize(out)
}

impl<'a> RepoJson<'a> {
    fn new(repo: &'a Repo, sha: Option<&'a str>, files: Option<(&[FileEntry], bool)>) -> Self {
        let id = repo.full_name();
        let siblings = files.map(|(files, blobs)| {
            files
                .iter()
                .map(|e| {
                    if blobs {
                        let mut s = json!({"rfilename": e.path, "size": e.size, "blobId": e.git_oid});
                        if e.lfs {
                            s["lfs"] = lfs_json(e);
                        }
                        s
                    } else {
                        json!({"rfilename": e.path})
                    }
                })
                .collect()
        });
        Self {
            object_id: format!("{:024x}", repo.id),
            model_id: (repo.kind == RepoKind::Model).then(|| id.clone()),
            id,
            author: &repo.namespace,
            private: repo.private,
            xet_enabled: true,
            gated: repo.gated.map_or(json!(false), |g| json!(g.as_str())),
            disabled: false,
            downloads: repo.downloads,
            likes: repo.likes,
            trending_score: repo.trending,
            tags: Arc::default(),
            last_modified: iso_time(repo.updated_at),
            created_at: iso_time(repo.created_at),
            sha,
            used_storage: files.map(|(files, _)| files.iter().map(|e| e.size).sum()),
            siblings,
            pipeline_tag: None,
            library_name: None,
            card_data: None,
        }
    }

    /// What the README's card adds: tags, task and library, and its front matter when
    /// `card_data`.
    fn with_card(mut self, card: Arc<CardView>, card_data: bool) -> Self {
        let string = |key: &str| card.metadata.get(key).filter(|value| value.is_string()).cloned();
        self.pipeline_tag = string("pipeline_tag");
        self.library_name = string("library_name");
        self.card_data = card_data.then(|| card.clone());
        self.tags = card;
        self
    }

    /// As JSON, cut to the properties `expand` names when it names any.
    fn into_value(self, expand: Option<&[String]>) -> Value {
        let v = serde_json::to_value(self).unwrap_or_default();
        match expand {
            Some(keys) => expanded(&v, keys),
            None => v,
        }
    }
}

async fn info_response(state: &AppState, caller: &Caller, p: &RepoPath, rev: &str, pairs: &[(String, String)]) -> ApiResult<Json<Value>> {
    let kind = kind_from_plural(&p.kind)?;
    let expand = expand_keys(kind, pairs)?;
    let q: HashMap<String, String> = pairs.iter().cloned().collect();
    let repo = readable_repo(state, caller, kind, &p.ns, &p.name).await?;
    let commit = resolve(state, &repo, rev).await?;
    let files = state.db.tree_at(&repo, &commit).await?;
    let blobs = query_bool(q.get("blobs"));
    let card = match files.iter().find(|e| e.path == "README.md") {
        Some(readme) => state.repos.card_of(&readme.sha256, readme.size).await?,
        None => Default::default(),
    };
    let v = RepoJson::new(&repo, Some(&commit), Some((&files[..], blobs))).with_card(card, true);
    Ok(Json(v.into_value(expand.as_deref())))
}

pub async fn info(
    State(state): State<AppState>,
    caller: Caller,
    Path(p): Path<RepoPath>,
    Query(q): Query<Vec<(String, String)>>,
) -> ApiResult<Json<Value>> {
    info_response(&state, &caller, &p, "main", &q).await
}

pub async fn info_at(
    State(state): State<AppState>,
    caller: Caller,
    Path(p): Path<RevPath>,
    Query(q): Query<Vec<(String, String)>>,
) -> ApiResult<Json<Value>> {
    let rp = RepoPath { kind: p.kind, ns: p.ns, name: p.name };
    info_response(&state, &caller, &rp, &p.rev, &q).await
}

/// The target of create/delete: `organization` + `name`, a `ns/name` name, or the caller's own.
fn namespace_and_name(name: &str, organization: Option<&str>, user: &str) -> (String, String) {
    match (organization, name.split_once('/')) {
        (Some(org), _) => (org.to_string(), name.to_string()),
        (None, Some((ns, name))) => (ns.to_string(), name.to_string()),
        (None, None) => (user.to_string(), name.to_string()),
    }
}

#[derive(Deserialize)]
pub struct CreateRepo {
    name: String,
    organization: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    private: Option<bool>,
    visibility: Option<String>,
}

pub async fn create(State(state): State<AppState>, caller: Caller, headers: HeaderMap, body: RawBody) -> ApiResult<Response> {
    let token = caller.require_account()?;
    let body: CreateRepo = body.json(state.limits.json_body, "the create request").await?;
    let kind = kind_from_singular(body.kind.as_deref())?;
    let (ns, name) = namespace_and_name(&body.name, body.organization.as_deref(), &token.user.name);
    validate_repo_name(&ns, "namespace")?;
    validate_repo_name(&name, "repository name")?;
    caller.require_create_repo(kind, &ns)?;
    let private = match (body.visibility.as_deref(), body.private) {
        (Some("private"), _) => true,
        (Some("public"), _) => false,
        (Some(other), _) => return Err(ApiError::bad_request(format!("unknown visibility {other:?}: use public or private"))),
        (None, Some(private)) => private,
        // Unsaid: the organization's default (the Hub's "private by default"), else public.
        (None, None) => state.db.org(&ns).await?.is_some_and(|org| org.default_private),
    };
    let base = base_url(&state, &headers);
    let url = format!("{base}/{}{ns}/{name}", kind.url_prefix());
    match state.repos.create(kind, &ns, &name, private, &token.user.name).await {
        Ok(repo) => {
            tracing::info!(repo = %repo.full_name(), kind = kind.as_str(), "repository created");
            state.webhooks.emit(crate::webhooks::Event::repo_created(&repo));
            Ok(Json(json!({"url": url, "name": format!("{ns}/{name}"), "id": format!("{:024x}", repo.id)})).into_response())
        }
        Err(commons_repo::RepoError::Db(commons_db::DbError::AlreadyExists(_))) => {
            Err(ApiError::new(StatusCode::CONFLICT, "RepoExists", "You already created this repo").with_extra("url", json!(url)))
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize)]
pub struct DeleteRepo {
    name: String,
    organization: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
}

pub async fn delete(State(state): State<AppState>, caller: Caller, body: RawBody) -> ApiResult<Json<Value>> {
    let token = caller.require_account()?;
    let body: DeleteRepo = body.json(state.limits.json_body, "the delete request").await?;
    let kind = kind_from_singular(body.kind.as_deref())?;
    let (ns, name) = namespace_and_name(&body.name, body.organization.as_deref(), &token.user.name);
    let repo = administered_repo(&state, &caller, kind, &ns, &name).await?;
    state.db.delete_repo(&repo).await?;
    state.repos.unindex(repo.id).await;
    tracing::info!(repo = %repo.full_name(), "repository deleted");
    state.webhooks.emit(crate::webhooks::Event::repo_deleted(&repo));
    Ok(Json(json!({})))
}

#[derive(Deserialize)]
pub struct MoveRepo {
    #[serde(rename = "fromRepo")]
    from: String,
    #[serde(rename = "toRepo")]
    to: String,
    #[serde(rename = "type")]
    kind: Option<String>,
}

pub async fn move_repo(State(state): State<AppState>, caller: Caller, body: RawBody) -> ApiResult<Json<Value>> {
    caller.require_account()?;
    let body: MoveRepo = body.json(state.limits.json_body, "the move request").await?;
    let kind = kind_from_singular(body.kind.as_deref())?;
    let split = |s: &str| -> ApiResult<(String, String)> {
        s.split_once('/')
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .ok_or_else(|| ApiError::bad_request(format!("{s:?} is not of the form namespace/name")))
    };
    let (from_ns, from_name) = split(&body.from)?;
    let (to_ns, to_name) = split(&body.to)?;
    validate_repo_name(&to_ns, "namespace")?;
    validate_repo_name(&to_name, "repository name")?;
    let repo = administered_repo(&state, &caller, kind, &from_ns, &from_name).await?;
    caller.require_create_repo(kind, &to_ns)?;
    // The Hub's words, which clients match.
    state.db.move_repo(&repo, &to_ns, &to_name).await.map_err(|e| match e {
        commons_db::DbError::AlreadyExists(_) => ApiError::new(
            StatusCode::CONFLICT,
            "Conflict",
            format!("A {} repository called {to_ns}/{to_name} already exists", kind.as_str()),
        ),
        other => other.into(),
    })?;
    state.repos.reindex_or_log(&repo).await;
    state.webhooks.emit(crate::webhooks::Event::repo_moved(&repo, &to_ns, &to_name));
    Ok(Json(json!({})))
}

#[derive(Deserialize)]
pub struct Settings {
    private: Option<bool>,
    visibility: Option<String>,
    /// `false`, `"auto"` or `"manual"`.
    gated: Option<Value>,
}

pub async fn settings(State(state): State<AppState>, caller: Caller, Path(p): Path<RepoPath>, body: RawBody) -> ApiResult<Json<Value>> {
    let kind = kind_from_plural(&p.kind)?;
    let repo = administered_repo(&state, &caller, kind, &p.ns, &p.name).await?;
    let body: Settings = body.json(state.limits.json_body, "the settings request").await?;
    let private = match body.visibility.as_deref() {
        Some("private") => Some(true),
        Some("public") => Some(false),
        Some(other) => return Err(ApiError::bad_request(format!("unknown visibility {other:?}"))),
        None => body.private,
    };
    let gated = match &body.gated {
        None => None,
        Some(Value::Bool(false)) => Some(None),
        Some(Value::String(mode)) if commons_db::GateMode::parse(mode).is_some() => Some(commons_db::GateMode::parse(mode)),
        Some(other) => return Err(ApiError::bad_request(format!("gated must be false, \"auto\" or \"manual\", not {other}"))),
    };
    if let Some(gated) = gated {
        state.db.set_gated(&repo, gated).await?;
    }
    if let Some(private) = private {
        state.db.set_private(&repo, private).await?;
        state.repos.reindex_or_log(&repo).await;
        state.webhooks.emit(crate::webhooks::Event::visibility(&repo, private));
    }
    let gated = gated.unwrap_or(repo.gated);
    Ok(Json(json!({"private": private.unwrap_or(repo.private), "gated": gated.map_or(json!(false), |g| json!(g.as_str()))})))
}

/// A page of a listing: its items as a JSON array and, when there are more, a `Link` to the next
/// page (built only then).
pub(super) fn page_response<T: Serialize>(items: Vec<T>, more: bool, next: impl FnOnce() -> String) -> Response {
    let mut resp = Json(items).into_response();
    if more {
        set_next_page(&mut resp, &next());
    }
    resp
}

/// Points a listing's `Link: <url>; rel="next"` header at its next page.
pub(super) fn set_next_page(resp: &mut Response, url: &str) {
    if let Ok(v) = HeaderValue::from_str(&format!("<{url}>; rel=\"next\"")) {
        resp.headers_mut().insert(axum::http::header::LINK, v);
    }
}

pub(super) fn page_params(q: &HashMap<String, String>, default_limit: usize) -> ApiResult<(usize, usize)> {
    let cursor = match q.get("cursor") {
        Some(c) => c.parse().map_err(|_| ApiError::bad_request(format!("invalid cursor {c:?}")))?,
        None => 0,
    };
    let limit = match q.get("limit") {
        Some(l) => l.parse::<usize>().map_err(|_| ApiError::bad_request(format!("invalid limit {l:?}")))?.clamp(1, default_limit),
        None => default_limit,
    };
    Ok((cursor, limit))
}

pub(super) fn query_string_with(q: &HashMap<String, String>, cursor: usize) -> String {
    let mut pairs: Vec<(String, String)> = q.iter().filter(|(k, _)| *k != "cursor").map(|(k, v)| (k.clone(), v.clone())).collect();
    pairs.sort();
    pairs.push(("cursor".into(), cursor.to_string()));
    serde_urlencoded::to_string(pairs).unwrap_or_default()
}

/// Revisions travel as one path segment, `/` included (`feature%2Fx`).
fn encode_rev(rev: &str) -> String {
    percent_encoding::utf8_percent_encode(rev, percent_encoding::NON_ALPHANUMERIC).to_string()
}

const TREE_PAGE: usize = 1000;

async fn tree_listing(
    state: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    p: TreePath,
    q: HashMap<String, String>,
) -> ApiResult<Response> {
    let kind = kind_from_plural(&p.kind)?;
    let repo = readable_repo(state, caller, kind, &p.ns, &p.name).await?;
    let commit = resolve(state, &repo, &p.rev).await?;
    let recursive = query_bool(q.get("recursive"));
    let dir = p.path.trim_matches('/');
    if !dir.is_empty() {
        validate_file_path(dir)?;
    }
    let limit = match q.get("limit") {
        Some(l) => l.parse::<usize>().map_err(|_| ApiError::bad_request(format!("invalid limit {l:?}")))?.clamp(1, TREE_PAGE),
        None => TREE_PAGE,
    };
    // The cursor is the key the previous page ended on (a path, a folder with a trailing `/`).
    let after = q.get("cursor").filter(|c| !c.is_empty());
    if let Some(cursor) = after {
        validate_file_path(cursor.strip_suffix('/').unwrap_or(cursor))
            .map_err(|_| ApiError::bad_request(format!("invalid cursor {cursor:?}")))?;
    }
    let items = state.db.tree_page(&repo, &commit, dir, recursive, after.map(String::as_str), limit).await?;
    if items.is_empty() && after.is_none() && !dir.is_empty() {
        return Err(ApiError::entry_not_found(dir, &commit));
    }
    let mut out: Vec<Value> = items
        .iter()
        .map(|item| match item {
            TreeItem::File(e) => file_json(e),
            TreeItem::Folder { path, oid } => folder_json(path, oid),
        })
        .collect();
    with_xet_hashes(state, &mut out).await?;
    if query_bool(q.get("expand")) {
        with_last_commits(state, &repo, &commit, &mut out).await?;
    }
    let mut resp = Json(Value::Array(out)).into_response();
    // A full page may have more after it (a recursive page counts files, not the folders added).
    let files = items.iter().filter(|i| !recursive || matches!(i, TreeItem::File(_))).count();
    if files >= limit
        && let Some(last) = items.last()
    {
        let path_part = if dir.is_empty() { String::new() } else { format!("/{dir}") };
        let base = base_url(state, headers);
        let mut next: Vec<(String, String)> = q.iter().filter(|(k, _)| *k != "cursor").map(|(k, v)| (k.clone(), v.clone())).collect();
        next.sort();
        next.push(("cursor".into(), last.page_key()));
        let link = format!(
            "{base}/api/{}/{}/{}/tree/{}{path_part}?{}",
            p.kind,
            p.ns,
            p.name,
            encode_rev(&p.rev),
            serde_urlencoded::to_string(next).unwrap_or_default()
        );
        set_next_page(&mut resp, &link);
    }
    Ok(resp)
}

pub async fn tree_root(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(p): Path<RevPath>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    let tp = TreePath { kind: p.kind, ns: p.ns, name: p.name, rev: p.rev, path: String::new() };
    tree_listing(&state, &caller, &headers, tp, q).await
}

pub async fn tree_path(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(p): Path<TreePath>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    tree_listing(&state, &caller, &headers, p, q).await
}

/// Paths one paths-info request may ask about.
const MAX_PATHS_INFO: usize = 1000;

pub async fn paths_info(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(p): Path<RevPath>,
    body: RawBody,
) -> ApiResult<Json<Value>> {
    let kind = kind_from_plural(&p.kind)?;
    let repo = readable_repo(&state, &caller, kind, &p.ns, &p.name).await?;
    let body = body.bytes(state.limits.json_body, "the paths-info request").await?;
    let commit = resolve(&state, &repo, &p.rev).await?;
    // The Python client sends a form; some clients send JSON, and say so.
    let json =
        headers.get(axum::http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|t| t.starts_with("application/json"));
    let (paths, expand): (Vec<String>, bool) = if json {
        let v: Value =
            serde_json::from_slice(&body).map_err(|e| ApiError::bad_request(format!("the paths-info request is not valid JSON: {e}")))?;
        let paths = v
            .get("paths")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
            .unwrap_or_default();
        let expand = match v.get("expand") {
            Some(Value::Bool(b)) => *b,
            Some(Value::String(s)) => query_bool(Some(s)),
            _ => false,
        };
        (paths, expand)
    } else {
        let form = serde_urlencoded::from_bytes::<Vec<(String, String)>>(&body)
            .map_err(|e| ApiError::bad_request(format!("the paths-info request is not a valid form: {e}")))?;
        let expand = query_bool(form.iter().find(|(k, _)| k == "expand").map(|(_, v)| v));
        (form.into_iter().filter(|(k, _)| k == "paths" || k == "paths[]").map(|(_, v)| v).collect(), expand)
    };
    if paths.len() > MAX_PATHS_INFO {
        return Err(ApiError::bad_request(format!("{} paths in one request; ask about at most {MAX_PATHS_INFO}", paths.len())));
    }
    let mut out = Vec::new();
    for path in &paths {
        let path = path.trim_matches('/');
        if path.is_empty() || validate_file_path(path).is_err() {
            continue;
        }
        match state.db.path_info(&repo, &commit, path).await? {
            Some(TreeItem::File(e)) => out.push(file_json(&e)),
            Some(TreeItem::Folder { path, oid }) => out.push(folder_json(&path, &oid)),
            None => {}
        }
    }
    with_xet_hashes(&state, &mut out).await?;
    if expand {
        with_last_commits(&state, &repo, &commit, &mut out).await?;
    }
    Ok(Json(Value::Array(out)))
}

#[derive(Deserialize, Default)]
pub struct SquashBody {
    message: Option<String>,
}

/// `POST …/super-squash/{branch}`: the branch's history becomes one commit of its current
/// files; by a writer who administers the repository.
pub async fn super_squash(
    State(state): State<AppState>,
    caller: Caller,
    Path(p): Path<BranchPath>,
    body: RawBody,
) -> ApiResult<Json<Value>> {
    let kind = kind_from_plural(&p.kind)?;
    let repo = administered_repo(&state, &caller, kind, &p.ns, &p.name).await?;
    let token = caller.require_write_branch(&repo, &p.branch)?;
    let body: SquashBody = body.json_or_default(state.limits.json_body, "the squash request").await?;
    let title = body.message.unwrap_or_else(|| format!("Super-squash branch '{}'", p.branch));
    let info = commons_db::CommitInfo { author: &token.user.name, title: &title, message: "" };
    let commit = state.db.squash_branch(&repo, &p.branch, &info).await?;
    state.webhooks.emit(crate::webhooks::Event::commit(&repo, &p.branch, &commit));
    if p.branch == "main" {
        state.repos.reindex_or_log(&repo).await;
    }
    Ok(Json(json!({"commitId": commit.id})))
}

#[derive(Deserialize)]
pub struct AuthCheckPath {
    kind: String,
    ns: String,
    name: String,
    write: Option<String>,
}

/// `GET …/auth-check` and `…/auth-check/write`: whether the caller may read (write) the
/// repository, answered as every other route would refuse it.
pub async fn auth_check(State(state): State<AppState>, caller: Caller, Path(p): Path<AuthCheckPath>) -> ApiResult<Json<Value>> {
    let kind = kind_from_plural(&p.kind)?;
    let repo = readable_repo(&state, &caller, kind, &p.ns, &p.name).await?;
    match p.write.as_deref() {
        None => super::require_content(&state, &caller, &repo).await?,
        Some("write") => {
            caller.require_write_repo(&repo)?;
        }
        Some(other) => return Err(ApiError::new(StatusCode::NOT_FOUND, "NotFound", format!("no such check {other:?}"))),
    }
    Ok(Json(json!({})))
}

pub async fn refs(
    State(state): State<AppState>,
    caller: Caller,
    Path(p): Path<RepoPath>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    let kind = kind_from_plural(&p.kind)?;
    let repo = readable_repo(&state, &caller, kind, &p.ns, &p.name).await?;
    let mut branches = Vec::new();
    let mut tags = Vec::new();
    let mut converts = Vec::new();
    let mut pulls = Vec::new();
    let with_pulls = query_bool(q.get("include_prs"));
    for r in state.db.refs(&repo).await? {
        match r.kind {
            // Pull requests' branches are listed apart, and only when asked for.
            RefKind::Branch if commons_db::pr_number(&r.name).is_some() => {
                if with_pulls {
                    pulls.push(json!({"name": &r.name["refs/pr/".len()..], "ref": r.name, "targetCommit": r.commit_id}));
                }
            }
            // The hub's own branches (a dataset's Parquet export) are listed as the Hub lists them.
            RefKind::Branch if r.name.starts_with("refs/convert/") => {
                converts.push(json!({"name": &r.name["refs/convert/".len()..], "ref": r.name, "targetCommit": r.commit_id}))
            }
            RefKind::Branch => branches.push(json!({"name": r.name, "ref": format!("refs/heads/{}", r.name), "targetCommit": r.commit_id})),
            RefKind::Tag => tags.push(json!({"name": r.name, "ref": format!("refs/tags/{}", r.name), "targetCommit": r.commit_id})),
        }
    }
    let mut out = json!({"branches": branches, "tags": tags, "converts": converts});
    if with_pulls {
        out["pullRequests"] = json!(pulls);
    }
    Ok(Json(out))
}

const COMMITS_PAGE: usize = 500;

pub async fn commits(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(p): Path<RevPath>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    let kind = kind_from_plural(&p.kind)?;
    let repo = readable_repo(&state, &caller, kind, &p.ns, &p.name).await?;
    let commit = resolve(&state, &repo, &p.rev).await?;
    let (cursor, limit) = page_params(&q, COMMITS_PAGE)?;
    // One more than the page, to know whether another follows.
    let mut history = state.db.commit_history(&repo, &commit, cursor, limit + 1).await?;
    let more = history.len() > limit;
    history.truncate(limit);
    // `expand[]=formatted`: the title and message as HTML too (the message is Markdown).
    let formatted = q.get("expand[]").or_else(|| q.get("expand")).is_some_and(|v| v == "formatted");
    let files = format!("/{}{}/resolve/main/", repo.kind.url_prefix(), repo.full_name());
    let items: Vec<Value> = history
        .iter()
        .map(|c| {
            let mut item = json!({
                "id": c.id,
                "title": c.title,
                "message": c.message,
                "date": iso_time(c.created_at),
                "authors": [{"user": c.author, "avatar": null}],
            });
            if formatted {
                item["formatted"] =
                    json!({"title": ammonia::clean_text(&c.title), "message": crate::pages::render_markdown(&c.message, &files)});
            }
            item
        })
        .collect();
    Ok(page_response(items, more, || {
        let base = base_url(&state, &headers);
        format!("{base}/api/{}/{}/{}/commits/{}?{}", p.kind, p.ns, p.name, encode_rev(&p.rev), query_string_with(&q, cursor + limit))
    }))
}

/// Longest search text: each of its letters is a term of the query.
const MAX_SEARCH_BYTES: usize = 256;

/// Tags one listing may filter on: each is a join.
const MAX_FILTERS: usize = 16;

pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(kind): Path<String>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> ApiResult<Response> {
    let kind = kind_from_plural(&kind)?;
    let q: HashMap<String, String> = pairs.iter().cloned().collect();
    let (cursor, limit) = page_params(&q, 1000)?;
    let expand = expand_keys(kind, &pairs)?;
    let sort = match q.get("sort").map(String::as_str) {
        None | Some("lastModified" | "last_modified") => RepoSort::LastModified,
        Some("createdAt" | "created_at") => RepoSort::CreatedAt,
        Some("id" | "name") => RepoSort::Name,
        Some("downloads") => RepoSort::Downloads,
        Some("likes") => RepoSort::Likes,
        // Trending: likes of the last `TRENDING_DAYS` days.
        Some("trending_score" | "trendingScore") => RepoSort::Trending,
        Some(other) => return Err(ApiError::bad_request(format!("unknown sort key {other:?}"))),
    };
    let ascending = match q.get("direction").map(String::as_str) {
        None | Some("-1") => false,
        Some("1") => true,
        Some(other) => return Err(ApiError::bad_request(format!("direction must be 1 or -1, not {other:?}"))),
    };
    // `filter=` may repeat (all must hold) and each may list tags separated by commas.
    let tags: Vec<String> = pairs
        .iter()
        .filter(|(k, _)| k == "filter")
        .flat_map(|(_, v)| v.split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect();
    if tags.len() > MAX_FILTERS {
        return Err(ApiError::bad_request(format!("at most {MAX_FILTERS} filters at once")));
    }
    // Full text over ids, cards and tags, and substrings of ids, through the search index.
    if q.get("search").is_some_and(|text| text.len() > MAX_SEARCH_BYTES) {
        return Err(ApiError::bad_request(format!("a search is at most {MAX_SEARCH_BYTES} bytes")));
    }
    let query = RepoQuery {
        author: q.get("author").cloned(),
        search: q.get("search").cloned(),
        tags,
        ascending,
        viewer: caller.reader().map(str::to_string),
        sort,
        limit: (limit + 1) as i64,
        offset: cursor as i64,
    };
    let mut repos = state.repos.list(kind, &query).await?;
    let more = repos.len() > limit;
    repos.truncate(limit);
    let wants = |key: &str| expand.as_ref().is_some_and(|keys| keys.iter().any(|k| k == key));
    // The whole listing of `main` is read only when asked for.
    let full = query_bool(q.get("full")) || wants("siblings") || wants("usedStorage");
    let card_data = full || query_bool(q.get("cardData")) || wants("cardData") || wants("model-index");
    // Each one's head and README, for the whole page at once.
    let mut heads = state.db.main_readmes(&repos).await?;
    let mut heads_and_cards = Vec::with_capacity(repos.len());
    for repo in &repos {
        let (head, readme) = heads.remove(&repo.id).map_or((None, None), |(head, readme)| (Some(head), readme));
        // The README alone unless the whole listing was asked for (`full`).
        let files = match &head {
            Some(h) if full => Some(state.db.tree_at(repo, h).await?),
            _ => None,
        };
        let card = match readme {
            Some(readme) => state.repos.card_of(&readme.sha256, readme.size).await?,
            None => Default::default(),
        };
        heads_and_cards.push((head, files, card));
    }
    let items = repos.iter().zip(heads_and_cards.iter()).map(|(repo, (head, files, card))| {
        RepoJson::new(repo, head.as_deref(), files.as_ref().map(|files| (&files[..], false))).with_card(card.clone(), card_data)
    });
    // A page asked for whole is written as it is built; one cut to `expand`'s keys goes through
    // a `Value` (the Hub's `expand` names the JSON's own keys).
    let next = || {
        let base = base_url(&state, &headers);
        let mut next: Vec<(String, String)> = pairs.into_iter().filter(|(k, _)| k != "cursor").collect();
        next.push(("cursor".into(), (cursor + limit).to_string()));
        format!("{base}/api/{}s?{}", kind.as_str(), serde_urlencoded::to_string(next).unwrap_or_default())
    };
    Ok(match &expand {
        Some(keys) => page_response(items.map(|item| item.into_value(Some(keys))).collect(), more, next),
        None => page_response(items.collect(), more, next),
    })
}

#[derive(Deserialize, Default)]
pub struct BranchBody {
    #[serde(rename = "startingPoint")]
    starting_point: Option<String>,
}

pub async fn create_branch(
    State(state): State<AppState>,
    caller: Caller,
    Path(p): Path<BranchPath>,
    body: RawBody,
) -> ApiResult<Json<Value>> {
    let kind = kind_from_plural(&p.kind)?;
    let repo = writable_repo(&state, &caller, kind, &p.ns, &p.name).await?;
    validate_ref_name(&p.branch)?;
    caller.require_write_branch(&repo, &p.branch)?;
    let body: BranchBody = body.json_or_default(state.limits.json_body, "the branch request").await?;
    let from = resolve(&state, &repo, body.starting_point.as_deref().unwrap_or("main")).await?;
    state.db.create_ref(&repo, RefKind::Branch, &p.branch, &from).await.map_err(|e| match e {
        commons_db::DbError::AlreadyExists(_) => {
            ApiError::new(StatusCode::CONFLICT, "Conflict", format!("Reference refs/heads/{} already exists", p.branch))
        }
        other => other.into(),
    })?;
    state.webhooks.emit(crate::webhooks::Event::ref_created(&repo, RefKind::Branch, &p.branch, &from));
    Ok(Json(json!({})))
}

pub async fn delete_branch(State(state): State<AppState>, caller: Caller, Path(p): Path<BranchPath>) -> ApiResult<Json<Value>> {
    let kind = kind_from_plural(&p.kind)?;
    let repo = administered_repo(&state, &caller, kind, &p.ns, &p.name).await?;
    if p.branch == "main" {
        return Err(ApiError::forbidden("Cannot delete refs/heads/main: it is the default branch"));
    }
    state.db.delete_ref(&repo, RefKind::Branch, &p.branch).await?;
    state.webhooks.emit(crate::webhooks::Event::ref_deleted(&repo, RefKind::Branch, &p.branch));
    Ok(Json(json!({})))
}

#[derive(Deserialize)]
pub struct TagBody {
    tag: String,
}

pub async fn create_tag(State(state): State<AppState>, caller: Caller, Path(p): Path<RevPath>, body: RawBody) -> ApiResult<Json<Value>> {
    let kind = kind_from_plural(&p.kind)?;
    let repo = administered_repo(&state, &caller, kind, &p.ns, &p.name).await?;
    let body: TagBody = body.json(state.limits.json_body, "the tag request").await?;
    // A missing revision is the first thing the Hub reports.
    let commit = resolve(&state, &repo, &p.rev).await?;
    validate_ref_name(&body.tag)?;
    state.db.create_ref(&repo, RefKind::Tag, &body.tag, &commit).await?;
    state.webhooks.emit(crate::webhooks::Event::ref_created(&repo, RefKind::Tag, &body.tag, &commit));
    Ok(Json(json!({})))
}

pub async fn delete_tag(State(state): State<AppState>, caller: Caller, Path(p): Path<RevPath>) -> ApiResult<Json<Value>> {
    let kind = kind_from_plural(&p.kind)?;
    let repo = administered_repo(&state, &caller, kind, &p.ns, &p.name).await?;
    state.db.delete_ref(&repo, RefKind::Tag, &p.rev).await?;
    state.webhooks.emit(crate::webhooks::Event::ref_deleted(&repo, RefKind::Tag, &p.rev));
    Ok(Json(json!({})))
}
