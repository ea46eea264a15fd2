//! The Xet protocol, upload side: the token routes of the Hub API and the CAS routes that
//! `hf_xet` (installed with `huggingface_hub` by default) uploads through. See
//! `shared/XET_PROTOCOL.md` §3.1 (tokens), §4.7 (xorbs), §4.8 (shards).
//!
//! Xet tokens are stateless: `xet.{user}.{repo}.{r|w}.{exp}.{hmac}`, signed with the hub's URL
//! key, so every server sharing a data directory accepts them. A write token lets its holder
//! upload xorbs and register files for itself (a commit to its repository then names them); it
//! cannot read anything. CAS routes this hub does not serve (reconstructions, global dedup,
//! xorb grants, v2 shards) fall through to the JSON 404, before any authentication, which is
//! what makes the clients fall back to the routes served here.

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

pub(crate) fn cas_router() -> Router<AppState> {
    Router::new()
        .route("/xet/v1/xorbs/{prefix}/{hash}", post(upload_xorb))
        .route("/xet/xorbs/{prefix}/{hash}", post(upload_xorb))
        .route("/xet/v1/shards", post(upload_shard))
        .route("/xet/shards", post(upload_shard))
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

    /// The write grant of a CAS request's bearer token, or 401/403.
    fn of_writer(state: &AppState, headers: &HeaderMap) -> ApiResult<Self> {
        let token = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .ok_or_else(ApiError::unauthorized)?;
        let grant = Self::decode(state, token.trim()).ok_or_else(ApiError::unauthorized)?;
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

/// The token as JSON (what hf_xet reads) and as the `X-Xet-*` headers (what huggingface_hub
/// 1.0–1.18 and 2.x's download path read).
fn token_response(state: &AppState, caller: &Caller, repo: &Repo, write: bool, headers: &HeaderMap) -> ApiResult<Response> {
    let user_id = caller.0.as_ref().map(|t| t.user.id).unwrap_or(0);
    let exp = commons_db::now_unix() + XET_TOKEN_TTL_SECS;
    let token = XetGrant { user_id, repo_id: repo.id, write, exp }.encode(state);
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
    let bytes = body.bytes(MAX_XORB_BYTES as u64, "a xorb").await?;
    let inserted = state.cas.put_client_xorb(&hash, bytes.to_vec()).await?;
    state.db.record_xorb_holder(&hash, grant.user_id).await?;
    Ok(Json(json!({ "was_inserted": inserted })).into_response())
}

/// `POST {casUrl}/v1/shards`: files as runs of chunks of xorbs the uploader sent. Each file is
/// checked and read back to its sha256 before it is recorded as something a commit may name.
async fn upload_shard(State(state): State<AppState>, headers: HeaderMap, body: RawBody) -> ApiResult<Response> {
    let grant = XetGrant::of_writer(&state, &headers)?;
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
    if let Some(missing) = xorbs.iter().find(|x| !held.contains(*x)) {
        return Err(ApiError::bad_request(format!("xorb {missing} was not uploaded with this account; upload it first")));
    }
    for file in &files {
        let registered = state.cas.register_shard_file(file).await?;
        state.db.record_blob_holder(&registered.sha256, grant.user_id).await?;
        tracing::info!(sha256 = %registered.sha256, size = registered.size, "file registered through Xet");
    }
    Ok(Json(json!({ "result": 1 })).into_response())
}
