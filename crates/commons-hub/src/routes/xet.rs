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
//! files from it. Nothing in the CAS is per revision: a write token is checked against the
//! branch it is asked for when minted, and the commit that names the files is checked again,
//! with the hub token, for the branch it moves. CAS routes this hub does not serve (xorb
//! grants, telemetry) fall through to the JSON 404, before any authentication, which is what
//! makes the clients fall back to the routes served here.

use std::sync::atomic::Ordering;

use futures::StreamExt;

use super::{Path, Query};
use axum::extract::State;
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
use crate::downloads::{Client, ClientAddress};
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

/// Xorb uploads verified at once by this server. Each is checked as it arrives and holds about
/// one store part (8 MiB) and one chunk, not the xorb; the bound keeps that, and the hashing,
/// in proportion however many clients upload. A caller waits for a permit before its body is
/// read.
static XORB_UPLOADS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(4);
static SHARD_REGISTRATIONS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);

/// Other xorbs a global dedup answer may describe besides the one holding the chunk asked
/// about, nearest first, and their chunks in all (48 bytes each in the answer): 32,768 chunks
/// are about 2 GiB of data in a 1.5 MiB answer. Clients ask again about every thousandth chunk
/// or so (~64 MiB), so consecutive answers overlap and a re-upload finds every stored xorb.
const DEDUP_NEIGHBOUR_XORBS: u32 = 64;
const DEDUP_NEIGHBOUR_CHUNKS: u32 = 32_768;

pub(crate) fn cas_router() -> Router<AppState> {
    Router::new()
        .route("/xet/v1/xorbs/{prefix}/{hash}", post(upload_xorb))
        .route("/xet/xorbs/{prefix}/{hash}", post(upload_xorb))
        .route("/xet/v2/shards", post(upload_shard_v2))
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
    super::require_content(&state, &caller, &repo).await?;
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
    // `None` with `?create_pr=1` is how huggingface_hub asks for a pull request's upload, and
    // a pull request's branch takes anyone's commits; another branch must be one the caller
    // may move.
    if (rev == "None" && super::query_bool(query.create_pr.as_ref())) || commons_db::pr_number(&rev).is_some() {
        caller.require_upload(&repo)?;
    } else {
        caller.require_write_branch(&repo, &rev)?;
    }
    // A write grant reconstructs the repository's files too.
    super::require_content(&state, &caller, &repo).await?;
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
    let traffic = &state.xet_traffic;
    traffic.xorbs_received.fetch_add(1, Ordering::Relaxed);
    let mut frames = std::pin::pin!(body.frames(MAX_XORB_BYTES as u64, "a xorb").await?);
    let mut upload = state.cas.begin_client_xorb(&hash).await?;
    let received = async {
        while let Some(frame) = frames.next().await {
            let frame = frame?;
            traffic.xorb_bytes_received.fetch_add(frame.len() as u64, Ordering::Relaxed);
            upload.write(&frame).await?;
        }
        Ok::<_, ApiError>(())
    }
    .await;
    if let Err(e) = received {
        upload.abort().await;
        return Err(e);
    }
    let inserted = upload.finish().await?;
    if inserted {
        traffic.xorbs_stored.fetch_add(1, Ordering::Relaxed);
    }
    state.db.record_xorb_holder(&hash, grant.user_id).await?;
    Ok(Json(json!({ "was_inserted": inserted })).into_response())
}

/// `POST {casUrl}/v1/shards`: files as runs of chunks of xorbs the uploader sent. Each file is
/// checked and read back to its sha256 before it is recorded as something a commit may name;
/// the answer comes when all of that is done.
async fn upload_shard(State(state): State<AppState>, headers: HeaderMap, body: RawBody) -> ApiResult<Response> {
    let shard = ShardUpload::accept(&state, &headers, body).await?;
    state.xet_traffic.shards_v1.fetch_add(1, Ordering::Relaxed);
    shard.register(&state, |_| {}).await?;
    Ok(Json(json!({ "result": 1 })).into_response())
}

/// `POST {casUrl}/v2/shards`: as v1, but the answer is a stream of NDJSON events while the
/// files are checked (`validating`, `committing`), ending with `result` or `error`; the last
/// event is repeated while a long check is quiet, so the client's read timeout never fires.
/// What can be refused before any file is read (authorisation, size, an unknown xorb) is still
/// an HTTP error status.
async fn upload_shard_v2(State(state): State<AppState>, headers: HeaderMap, body: RawBody) -> ApiResult<Response> {
    let shard = ShardUpload::accept(&state, &headers, body).await?;
    state.xet_traffic.shards_v2.fetch_add(1, Ordering::Relaxed);
    let (events, received) = tokio::sync::mpsc::channel::<serde_json::Value>(16);
    tokio::spawn(async move {
        let progress = events.clone();
        let outcome = shard
            .register(&state, move |event| {
                // A client that stopped reading does not stop the registration.
                let _ = progress.try_send(event);
            })
            .await;
        let last = match outcome {
            Ok(()) => json!({"type": "result", "result": 1}),
            Err(e) => json!({"type": "error", "message": e.message, "retryable": e.status.is_server_error()}),
        };
        let _ = events.send(last).await;
    });
    let first = json!({"type": "validating", "verified": 0, "total": 0});
    let stream = futures::stream::unfold(Some((received, first)), |state| async move {
        let (mut received, last) = state?;
        let line = |event: &serde_json::Value| Ok::<_, std::convert::Infallible>(bytes::Bytes::from(format!("{event}\n")));
        match tokio::time::timeout(SHARD_HEARTBEAT, received.recv()).await {
            Ok(Some(event)) if matches!(event["type"].as_str(), Some("result" | "error")) => Some((line(&event), None)),
            Ok(Some(event)) => Some((line(&event), Some((received, event)))),
            Ok(None) => None,
            Err(_) => Some((line(&last), Some((received, last)))),
        }
    });
    let mut response = axum::body::Body::from_stream(stream).into_response();
    response.headers_mut().insert(axum::http::header::CONTENT_TYPE, HeaderValue::from_static("application/x-ndjson"));
    Ok(response)
}

/// How often a quiet `v2/shards` stream repeats its last event (hf_xet's read timeout is longer).
const SHARD_HEARTBEAT: std::time::Duration = std::time::Duration::from_secs(10);

/// A shard whose caller, size and xorbs have been checked, holding a registration permit.
struct ShardUpload {
    grant: XetGrant,
    files: Vec<commons_storage::xet::ShardFile>,
    _permit: tokio::sync::SemaphorePermit<'static>,
}

impl ShardUpload {
    /// Everything that can be checked before a file is read: the token may write, the shard
    /// parses and is within bounds, and every xorb it names was uploaded by this account or is
    /// in a repository it may read.
    async fn accept(state: &AppState, headers: &HeaderMap, body: RawBody) -> ApiResult<Self> {
        let grant = XetGrant::of_writer(state, headers)?;
        let permit = SHARD_REGISTRATIONS.acquire().await.map_err(ApiError::internal)?;
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
            false => state.db.xorbs_readable(&others, &reader_name(state, grant.user_id).await?).await?,
        };
        if let Some(missing) = others.iter().find(|x| !readable.contains(*x)) {
            return Err(ApiError::bad_request(format!(
                "xorb {missing} was not uploaded with this account and is in no repository it may read; upload it first"
            )));
        }
        Ok(Self { grant, files, _permit: permit })
    }

    /// Checks and indexes each file, reporting progress as v2 events, then records the
    /// uploader as holding them (what lets a commit of theirs name the files).
    async fn register(&self, state: &AppState, mut progress: impl FnMut(serde_json::Value)) -> ApiResult<()> {
        let total = self.files.len();
        progress(json!({"type": "validating", "verified": 0, "total": total}));
        let mut registered = Vec::with_capacity(total);
        for (i, file) in self.files.iter().enumerate() {
            registered.push(state.cas.register_shard_file(file).await?);
            progress(json!({"type": "validating", "verified": i + 1, "total": total}));
        }
        progress(json!({"type": "committing", "stage": "syncing"}));
        for file in registered {
            state.db.record_blob_holder(&file.sha256, self.grant.user_id).await?;
            tracing::info!(sha256 = %file.sha256, size = file.size, "file registered through Xet");
        }
        Ok(())
    }
}

/// How long a xorb byte URL of a reconstruction stays valid; a client that gets a 403 asks for
/// the reconstruction again.
const XORB_URL_TTL_SECS: i64 = 3600;

/// `GET {casUrl}/v1/reconstructions/{file_id}`: the terms of (a range of) a file and where to
/// fetch them.
async fn reconstruction_v1(state: State<AppState>, path: Path<String>, headers: HeaderMap, address: ClientAddress) -> ApiResult<Response> {
    reconstruction(state, path, headers, address, false).await
}

/// `GET {casUrl}/v2/reconstructions/{file_id}`: as v1, fetch information grouped by xorb.
async fn reconstruction_v2(state: State<AppState>, path: Path<String>, headers: HeaderMap, address: ClientAddress) -> ApiResult<Response> {
    reconstruction(state, path, headers, address, true).await
}

async fn reconstruction(
    State(state): State<AppState>,
    Path(file_id): Path<String>,
    headers: HeaderMap,
    address: ClientAddress,
    v2: bool,
) -> ApiResult<Response> {
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
    // A Xet client downloads a file here, never with a GET of `/resolve`: this is its download.
    let client = match (grant.user_id, address.0) {
        (0, Some(ip)) => Client::Address(ip),
        (0, None) => Client::Unknown,
        (user, _) => Client::User(user),
    };
    state.downloads.count(&state.signer, grant.repo_id, client);
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
        let (bytes, total) = state.cas.stream_xorb_range(&hash, a, b + 1).await?;
        let mut response = (StatusCode::PARTIAL_CONTENT, axum::body::Body::from_stream(bytes)).into_response();
        let out = response.headers_mut();
        out.insert(
            axum::http::header::CONTENT_RANGE,
            HeaderValue::from_str(&format!("bytes {a}-{b}/{total}")).map_err(ApiError::internal)?,
        );
        out.insert(axum::http::header::CONTENT_LENGTH, HeaderValue::from(b + 1 - a));
        out.insert(axum::http::header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
        return Ok(response);
    }
    // Several ranges: each part streamed in turn between its multipart headers.
    const BOUNDARY: &str = "commons-xorb-ranges";
    let mut parts = Vec::with_capacity(ranges.len() * 3 + 1);
    for (a, b) in ranges {
        let (bytes, total) = state.cas.stream_xorb_range(&hash, a, b + 1).await?;
        let head = format!("--{BOUNDARY}\r\nContent-Type: application/octet-stream\r\nContent-Range: bytes {a}-{b}/{total}\r\n\r\n");
        parts.push(futures::stream::once(futures::future::ready(Ok(bytes::Bytes::from(head)))).boxed());
        parts.push(bytes.boxed());
        parts.push(futures::stream::once(futures::future::ready(Ok(bytes::Bytes::from_static(b"\r\n")))).boxed());
    }
    parts.push(futures::stream::once(futures::future::ready(Ok(bytes::Bytes::from(format!("--{BOUNDARY}--\r\n"))))).boxed());
    let body = futures::stream::iter(parts).flatten();
    let mut response = (StatusCode::PARTIAL_CONTENT, axum::body::Body::from_stream(body)).into_response();
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
    // Clients ask about few chunks of a file (its first, then about one in a thousand), so the
    // answer also describes the other xorbs of files that use this one, as a shard uploaded
    // with it would: a file re-uploaded with small changes then sends only what changed.
    let mut xorbs = vec![xorb.clone()];
    let mut chunks = 0u32;
    for (neighbour, num_chunks) in state.db.xorbs_near(&xorb, &reader, DEDUP_NEIGHBOUR_XORBS).await? {
        chunks += num_chunks;
        if chunks > DEDUP_NEIGHBOUR_CHUNKS {
            break;
        }
        xorbs.push(neighbour);
    }
    let shard = state.cas.dedup_shard_of(&xorbs).await?;
    let mut response = (StatusCode::OK, shard).into_response();
    response.headers_mut().insert(axum::http::header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    Ok(response)
}
