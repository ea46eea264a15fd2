//! The Xet protocol: the token routes of the Hub API and the CAS routes that `hf_xet`
//! (installed with `huggingface_hub` by default) uploads and downloads through. See
//! `shared/XET_PROTOCOL.md` §3.1 (tokens), §4.2–4.4 (reconstructions, xorb byte URLs), §4.7
//! (xorbs), §4.8 (shards).
//!
//! Xet tokens are stateless: `xet.{user}.{repo}.{r|w}.{exp}.{hmac}`, signed with the hub's URL
//! key, so every server sharing a data directory accepts them. A write token lets its holder
//! upload xorbs and register files for itself (a commit to its repository then names them); it
//! cannot read anything. A read token (or a write token) reconstructs files that some revision
//! of its repository holds, and nothing else; the xorb byte URLs in a reconstruction carry
//! their own signature over the xorb, the byte range and an expiry, as clients fetch them
//! without credentials. Global dedup tells a caller about a xorb only when it could read the
//! xorb's bytes anyway (a file of a repository it may read uses it), and a shard may then build
//! files from it. CAS routes this hub does not serve (xorb grants, v2 shards) fall through to
//! the JSON 404, before any authentication, which is what makes the clients fall back to the
//! routes served here.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use commons_db::{Repo, RepoKind};
use commons_storage::xet::{MAX_XORB_BYTES, parse_shard};
use serde::Deserialize;
use serde_json::json;

use super::{base_url, kind_from_plural, readable_repo};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::{AppState, RawBody};

/// How long a Xet token lives. Clients refresh it 30 s before it expires; a CAS call with an
/// expired token is a 401 the client does not retry, so it must outlive one xorb upload.
const XET_TOKEN_TTL_SECS: i64 = 3600;
/// Largest shard a client uploads (the Xet format's limit; clients split larger ones).
const MAX_SHARD_BYTES: u64 = 64 * 1024 * 1024;
/// Files one shard may register, and their bytes in all: each is read back whole to check its
/// sha256, so a shard describing many files over the same few xorbs must not buy unbounded
/// work. Clients make a shard per upload session; one over these is asked to split.
const MAX_SHARD_FILES: usize = 10_000;
const MAX_SHARD_FILE_BYTES: u64 = 64 * 1024 * 1024 * 1024;

/// Xorb uploads and shard registrations verified at once by this server: each holds up to
/// three copies of a 64 MiB xorb (body, decompressed check, rebuilt object) or reads whole
/// xorbs back, so memory stays bounded however many clients upload. A caller waits for a
/// permit before its body is read.
static XORB_UPLOADS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(4);
static SHARD_REGISTRATIONS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);

pub(crate) fn cas_router() -> Router<AppState> {
    Router::new()
        .route("/xet/v1/xorbs/{prefix}/{hash}", post(upload_xorb))
        .route("/xet/xorbs/{prefix}/{hash}", post(upload_xorb))
        .route("/xet/v1/shards", post(upload_shard))
        .route("/xet/shards", post(upload_shard))
        .route("/xet/v2/reconstructions/{file_id}", get(reconstruction_v2))
        .route("/xet/v1/reconstructions/{file_id}", get(reconstruction_v1))
        .route("/xet/reconstructions/{file_id}", get(reconstruction_v1))
        .route("/xet/v1/xorb-data/default/{hash}", get(xorb_data))
        .route("/xet/v1/chunks/{prefix}/{hash}", get(global_dedup))
        .route("/xet/chunks/{prefix}/{hash}", get(global_dedup))
}

pub(crate) fn token_routes() -> Router<AppState> {
    Router::new().route("/xet-read-token/{rev}", get(read_token)).route("/xet-write-token/{rev}", get(write_token))
}

/// What a Xet token grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct XetGrant {
    user_id: i64,
    repo_id: i64,
    write: bool,
    exp: i64,
}

impl XetGrant {
    fn encode(&self, state: &AppState) -> String {
        let message = format!("xet.{}.{}.{}.{}", self.user_id, self.repo_id, if self.write { "w" } else { "r" }, self.exp);
        let signature = state.signer.sign(&message);
        format!("{message}.{signature}")
    }

    fn decode(state: &AppState, token: &str) -> Option<Self> {
        let (message, signature) = token.rsplit_once('.')?;
        if !state.signer.verify(message, signature) {
            return None;
        }
        let mut parts = message.split('.');
        let (Some("xet"), Some(user), Some(repo), Some(mode), Some(exp), None) =
            (parts.next(), parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        let grant = XetGrant { user_id: user.parse().ok()?, repo_id: repo.parse().ok()?, write: mode == "w", exp: exp.parse().ok()? };
        (grant.exp > commons_db::now_unix()).then_some(grant)
    }

    /// The grant of a CAS request's bearer token (a read or a write token), or 401.
    fn of_request(state: &AppState, headers: &HeaderMap) -> ApiResult<Self> {
        let token = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .ok_or_else(ApiError::unauthorized)?;
        Self::decode(state, token.trim()).ok_or_else(ApiError::unauthorized)
    }

    /// The write grant of a CAS request's bearer token, or 401/403.
    fn of_writer(state: &AppState, headers: &HeaderMap) -> ApiResult<Self> {
        let grant = Self::of_request(state, headers)?;
        if !grant.write {
            return Err(ApiError::forbidden("this Xet token may read, not upload"));
        }
        Ok(grant)
    }
}

#[derive(Deserialize)]
struct TokenQuery {
    create_pr: Option<String>,
}

async fn read_token(
    State(state): State<AppState>,
    caller: Caller,
    Path((kind, ns, name, rev)): Path<(String, String, String, String)>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let kind = kind_from_plural(&kind)?;
    let repo = readable_repo(&state, &caller, kind, &ns, &name).await?;
    super::resolve(&state, &repo, &rev).await?;
    token_response(&state, &caller, &repo, false, &headers)
}

async fn write_token(
    State(state): State<AppState>,
    caller: Caller,
    Path((kind, ns, name, rev)): Path<(String, String, String, String)>,
    Query(query): Query<TokenQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let kind: RepoKind = kind_from_plural(&kind)?;
    let repo = readable_repo(&state, &caller, kind, &ns, &name).await?;
    // `None` with `?create_pr=1` is how huggingface_hub asks for a pull request's upload; a
    // branch must be one the caller may move.
    if rev == "None" && super::query_bool(query.create_pr.as_ref()) {
        caller.require_write_repo(&repo)?;
    } else {
        caller.require_write_branch(&repo, &rev)?;
    }
    token_response(&state, &caller, &repo, true, &headers)
}

/// A Xet token for `user_id` on repository `repo_id`, and when it expires.
pub(crate) fn mint(state: &AppState, user_id: i64, repo_id: i64, write: bool) -> (String, i64) {
    let exp = commons_db::now_unix() + XET_TOKEN_TTL_SECS;
    (XetGrant { user_id, repo_id, write, exp }.encode(state), exp)
}

/// The token as JSON (what hf_xet reads) and as the `X-Xet-*` headers (what huggingface_hub
/// 1.0–1.18 and 2.x's download path read).
fn token_response(state: &AppState, caller: &Caller, repo: &Repo, write: bool, headers: &HeaderMap) -> ApiResult<Response> {
    let user_id = caller.0.as_ref().map(|t| t.user.id).unwrap_or(0);
    let (token, exp) = mint(state, user_id, repo.id, write);
    let cas_url = format!("{}/xet", base_url(state, headers));
    let mut response = Json(json!({ "casUrl": cas_url, "accessToken": token, "exp": exp })).into_response();
    let out = response.headers_mut();
    for (name, value) in [("x-xet-cas-url", cas_url), ("x-xet-access-token", token), ("x-xet-token-expiration", exp.to_string())] {
        out.insert(name, HeaderValue::from_str(&value).map_err(ApiError::internal)?);
    }
    Ok(response)
}

/// `POST {casUrl}/v1/xorbs/{prefix}/{hash}`: a xorb without its footer, verified to its hash.
async fn upload_xorb(
    State(state): State<AppState>,
    Path((prefix, hash)): Path<(String, String)>,
    headers: HeaderMap,
    body: RawBody,
) -> ApiResult<Response> {
    let grant = XetGrant::of_writer(&state, &headers)?;
    if prefix != "default" {
        return Err(ApiError::new(StatusCode::NOT_FOUND, "NotFound", format!("unknown xorb prefix {prefix:?}")));
    }
    let hash = hash.to_ascii_lowercase();
    let _permit = XORB_UPLOADS.acquire().await.map_err(ApiError::internal)?;
    let bytes = body.bytes(MAX_XORB_BYTES as u64, "a xorb").await?;
    let inserted = state.cas.put_client_xorb(&hash, bytes).await?;
    state.db.record_xorb_holder(&hash, grant.user_id).await?;
    Ok(Json(json!({ "was_inserted": inserted })).into_response())
}

/// `POST {casUrl}/v1/shards`: files as runs of chunks of xorbs the uploader sent. Each file is
/// checked and read back to its sha256 before it is recorded as something a commit may name.
async fn upload_shard(State(state): State<AppState>, headers: HeaderMap, body: RawBody) -> ApiResult<Response> {
    let grant = XetGrant::of_writer(&state, &headers)?;
    let _permit = SHARD_REGISTRATIONS.acquire().await.map_err(ApiError::internal)?;
    let bytes = body.bytes(MAX_SHARD_BYTES, "a shard").await?;
    let files = parse_shard(&bytes)?;
    let total: u64 = files.iter().flat_map(|f| &f.segments).map(|s| s.unpacked_bytes).sum();
    if files.len() > MAX_SHARD_FILES || total > MAX_SHARD_FILE_BYTES {
        return Err(ApiError::bad_request(format!(
            "a shard registers at most {MAX_SHARD_FILES} files and {MAX_SHARD_FILE_BYTES} bytes; this one has {} files of {total} bytes",
            files.len()
        )));
    }
    let mut xorbs: Vec<String> = files.iter().flat_map(|f| f.segments.iter().map(|s| s.xorb_hash.clone())).collect();
    xorbs.sort();
    xorbs.dedup();
    let held = state.db.xorbs_held(grant.user_id, &xorbs).await?;
    let others: Vec<String> = xorbs.iter().filter(|x| !held.contains(*x)).cloned().collect();
    let readable = match others.is_empty() {
        true => Default::default(),
        false => state.db.xorbs_readable(&others, &reader_name(&state, grant.user_id).await?).await?,
    };
    if let Some(missing) = others.iter().find(|x| !readable.contains(*x)) {
        return Err(ApiError::bad_request(format!(
            "xorb {missing} was not uploaded with this account and is in no repository it may read; upload it first"
        )));
    }
    for file in &files {
        let registered = state.cas.register_shard_file(file).await?;
        state.db.record_blob_holder(&registered.sha256, grant.user_id).await?;
        tracing::info!(sha256 = %registered.sha256, size = registered.size, "file registered through Xet");
    }
    Ok(Json(json!({ "result": 1 })).into_response())
}

/// How long a xorb byte URL of a reconstruction stays valid; a client that gets a 403 asks for
/// the reconstruction again.
const XORB_URL_TTL_SECS: i64 = 3600;

/// `GET {casUrl}/v1/reconstructions/{file_id}`: the terms of (a range of) a file and where to
/// fetch them.
async fn reconstruction_v1(state: State<AppState>, path: Path<String>, headers: HeaderMap) -> ApiResult<Response> {
    reconstruction(state, path, headers, false).await
}

/// `GET {casUrl}/v2/reconstructions/{file_id}`: as v1, fetch information grouped by xorb.
async fn reconstruction_v2(state: State<AppState>, path: Path<String>, headers: HeaderMap) -> ApiResult<Response> {
    reconstruction(state, path, headers, true).await
}

async fn reconstruction(State(state): State<AppState>, Path(file_id): Path<String>, headers: HeaderMap, v2: bool) -> ApiResult<Response> {
    let grant = XetGrant::of_request(&state, &headers)?;
    let not_found = || ApiError::new(StatusCode::NOT_FOUND, "NotFound", format!("file {file_id} not found"));
    if file_id.len() != 64 || !file_id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ApiError::bad_request(format!("{file_id:?} is not a file hash")));
    }
    let size = state.db.repo_file_size(grant.repo_id, &file_id.to_ascii_lowercase()).await?.ok_or_else(not_found)?;
    let file_id = file_id.to_ascii_lowercase();
    // The range asked for, clamped to the file; past its end is a 416 (how clients find EOF).
    let (start, end) = match headers.get(axum::http::header::RANGE).and_then(|v| v.to_str().ok()) {
        None => (0, size),
        Some(value) => match super::files::parse_range(value, size) {
            Ok(Some(range)) => range,
            Ok(None) => (0, size),
            Err(()) if size == 0 => (0, 0),
            Err(()) => {
                return Err(ApiError::new(StatusCode::RANGE_NOT_SATISFIABLE, "InvalidRange", format!("the file has {size} bytes")));
            }
        },
    };
    let cas_url = format!("{}/xet", base_url(&state, &headers));
    let exp = commons_db::now_unix() + XORB_URL_TTL_SECS;
    let all = if start < end { state.db.file_terms(&file_id).await? } else { Vec::new() };
    let terms: Vec<_> = all.iter().filter(|t| t.file_offset < end && t.file_offset + t.raw_size > start).collect();
    let offset_into_first_range = terms.first().map(|t| start - t.file_offset).unwrap_or(0);
    let mut term_list = Vec::with_capacity(terms.len());
    let mut fetch: serde_json::Map<String, serde_json::Value> = serde_json::Map::new();
    for t in &terms {
        term_list.push(json!({
            "hash": t.xorb_hash,
            "unpacked_length": t.raw_size,
            "range": {"start": t.chunk_start, "end": t.chunk_end},
        }));
        let last = t.byte_end - 1;
        let url = xorb_url(&state, &cas_url, &t.xorb_hash, t.byte_start, last, exp);
        let entry = if v2 {
            json!({"url": url, "ranges": [{"chunks": {"start": t.chunk_start, "end": t.chunk_end}, "bytes": {"start": t.byte_start, "end": last}}]})
        } else {
            json!({"range": {"start": t.chunk_start, "end": t.chunk_end}, "url": url, "url_range": {"start": t.byte_start, "end": last}})
        };
        let list = fetch.entry(t.xorb_hash.clone()).or_insert_with(|| json!([]));
        if let Some(list) = list.as_array_mut()
            && !list.contains(&entry)
        {
            list.push(entry);
        }
    }
    let body = if v2 {
        json!({"offset_into_first_range": offset_into_first_range, "terms": term_list, "xorbs": fetch})
    } else {
        json!({"offset_into_first_range": offset_into_first_range, "terms": term_list, "fetch_info": fetch})
    };
    Ok(Json(body).into_response())
}

/// A self-authorising URL for bytes `[start, last]` of xorb `hash`.
fn xorb_url(state: &AppState, cas_url: &str, hash: &str, start: u64, last: u64, exp: i64) -> String {
    let sig = state.signer.sign(&format!("xorb-data:{hash}:{start}:{last}:{exp}"));
    format!("{cas_url}/v1/xorb-data/default/{hash}?start={start}&last={last}&exp={exp}&sig={sig}")
}

#[derive(Deserialize)]
struct XorbDataQuery {
    start: u64,
    last: u64,
    exp: i64,
    sig: String,
}

/// `GET` of a xorb byte URL: the signed range, or the `Range` asked for within it (one range:
/// 206; several: `multipart/byteranges`). No credentials: the URL is the permission.
async fn xorb_data(
    State(state): State<AppState>,
    Path(hash): Path<String>,
    Query(q): Query<XorbDataQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let message = format!("xorb-data:{hash}:{}:{}:{}", q.start, q.last, q.exp);
    if q.exp < commons_db::now_unix() || !state.signer.verify(&message, &q.sig) {
        return Err(ApiError::forbidden("this xorb URL is expired or not signed by this hub; ask for the reconstruction again"));
    }
    let mut ranges = Vec::new();
    match headers.get(axum::http::header::RANGE).and_then(|v| v.to_str().ok()) {
        None => ranges.push((q.start, q.last)),
        Some(value) => {
            let spec = value.trim().strip_prefix("bytes=").ok_or_else(|| ApiError::bad_request("Range must be in bytes"))?;
            for part in spec.split(',') {
                let (a, b) = part.trim().split_once('-').ok_or_else(|| ApiError::bad_request(format!("bad range {part:?}")))?;
                let (a, b): (u64, u64) = (
                    a.parse().map_err(|_| ApiError::bad_request("bad range"))?,
                    b.parse().map_err(|_| ApiError::bad_request("bad range"))?,
                );
                if a > b || a < q.start || b > q.last {
                    return Err(ApiError::new(
                        StatusCode::RANGE_NOT_SATISFIABLE,
                        "InvalidRange",
                        format!("bytes {a}-{b} are outside the signed range {}-{}", q.start, q.last),
                    ));
                }
                ranges.push((a, b));
            }
            if ranges.len() > 64 {
                return Err(ApiError::bad_request("at most 64 ranges per request"));
            }
        }
    }
    if let [(a, b)] = ranges[..] {
        let (bytes, total) = state.cas.read_xorb_range(&hash, a, b + 1).await?;
        let mut response = (StatusCode::PARTIAL_CONTENT, bytes).into_response();
        let out = response.headers_mut();
        out.insert(
            axum::http::header::CONTENT_RANGE,
            HeaderValue::from_str(&format!("bytes {a}-{b}/{total}")).map_err(ApiError::internal)?,
        );
        out.insert(axum::http::header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
        return Ok(response);
    }
    const BOUNDARY: &str = "commons-xorb-ranges";
    let mut body = Vec::new();
    for (a, b) in ranges {
        let (bytes, total) = state.cas.read_xorb_range(&hash, a, b + 1).await?;
        body.extend_from_slice(
            format!("--{BOUNDARY}\r\nContent-Type: application/octet-stream\r\nContent-Range: bytes {a}-{b}/{total}\r\n\r\n").as_bytes(),
        );
        body.extend_from_slice(&bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    let mut response = (StatusCode::PARTIAL_CONTENT, body).into_response();
    response.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_str(&format!("multipart/byteranges; boundary={BOUNDARY}")).map_err(ApiError::internal)?,
    );
    Ok(response)
}

/// The account name of `user_id`: whose private repositories it reads.
async fn reader_name(state: &AppState, user_id: i64) -> ApiResult<String> {
    Ok(state.db.user_name(user_id).await?.unwrap_or_default())
}

/// `GET {casUrl}/v1/chunks/{prefix}/{chunk}`: global dedup. A shard describing the xorb that
/// holds the chunk, when the caller may read that xorb's bytes anyway; 404 otherwise, the same
/// whether the chunk is unknown or only in repositories the caller may not read.
async fn global_dedup(
    State(state): State<AppState>,
    Path((prefix, chunk)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let grant = XetGrant::of_request(&state, &headers)?;
    let not_found = || ApiError::new(StatusCode::NOT_FOUND, "NotFound", "no such chunk");
    if !matches!(prefix.as_str(), "default" | "default-merkledb") || chunk.len() != 64 || !chunk.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(not_found());
    }
    let Some(xorb) = state.cas.xorb_of_chunk(&chunk.to_ascii_lowercase()).await? else { return Err(not_found()) };
    let reader = reader_name(&state, grant.user_id).await?;
    if !state.db.xorbs_readable(std::slice::from_ref(&xorb), &reader).await?.contains(&xorb) {
        return Err(not_found());
    }
    let shard = state.cas.dedup_shard(&xorb).await?;
    let mut response = (StatusCode::OK, shard).into_response();
    response.headers_mut().insert(axum::http::header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    Ok(response)
}
