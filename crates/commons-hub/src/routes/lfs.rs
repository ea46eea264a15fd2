//! The Git LFS batch API (protocol §11) and the signed upload endpoints it hands out.
//!
//! Uploads stream straight into the content store: the body is chunked, deduplicated and
//! hashed as it arrives, and the object becomes visible only once its size and sha256 match
//! what the client declared. Multipart parts wait on disk (written atomically) until the
//! completion call streams them, in order, into the store.

use std::path::PathBuf;

use super::{Path, Query};
use axum::Json;
use axum::body::Body;
use axum::extract::{MatchedPath, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use commons_db::{Repo, RepoKind};
use futures::StreamExt;
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::base_url;
use super::files::kind_from_matched;
use crate::AppState;
use crate::auth::Caller;
use crate::body::RawBody;
use crate::error::{ApiError, ApiResult};
use crate::signing::UPLOAD_URL_TTL_SECS;

/// Objects above this size are offered multipart upload, in parts of at least
/// `MULTIPART_CHUNK` and at most `MAX_PARTS` parts (larger objects get larger parts).
pub const MULTIPART_THRESHOLD: u64 = 10 * 1024 * 1024;
pub const MULTIPART_CHUNK: u64 = 8 * 1024 * 1024;
pub const MAX_PARTS: u64 = 1000;
/// Signed URLs one batch answer may carry: bounds the answer whatever the request declares.
const MAX_URLS_PER_BATCH: u64 = 10_000;

#[derive(Deserialize)]
pub struct BatchPath {
    ns: String,
    name: String,
}

#[derive(Deserialize)]
pub struct BatchRequest {
    operation: String,
    #[serde(default)]
    transfers: Vec<String>,
    objects: Vec<BatchObject>,
    hash_algo: Option<String>,
    #[serde(default, rename = "ref")]
    git_ref: Option<BatchRef>,
}

#[derive(Deserialize)]
pub struct BatchRef {
    name: String,
}

#[derive(Deserialize)]
pub struct BatchObject {
    oid: String,
    size: u64,
}

fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn now() -> i64 {
    commons_db::now_unix()
}

fn lfs_json(status: StatusCode, v: Value) -> Response {
    let mut resp = (status, Json(v)).into_response();
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/vnd.git-lfs+json"));
    resp
}

/// The part size of a multipart upload of `size` bytes: `MULTIPART_CHUNK`, or larger so that
/// there are at most `MAX_PARTS` parts.
pub fn chunk_size(size: u64) -> u64 {
    MULTIPART_CHUNK.max(size.div_ceil(MAX_PARTS))
}

/// What a signed URL permits: one action on one object of a declared size, for one user, until
/// it expires. Everything here is covered by the signature.
#[derive(Deserialize)]
pub struct Signed {
    size: u64,
    exp: i64,
    /// The user the URL was handed to: the bytes they send prove they hold the object.
    user: i64,
    sig: String,
}

impl Signed {
    fn message(oid: &str, size: u64, exp: i64, user: i64, action: &str) -> String {
        format!("{oid}:{size}:{exp}:{user}:{action}")
    }
}

/// The signed query string for one permitted action on one object.
fn signed_query(state: &AppState, oid: &str, size: u64, user: i64, action: &str) -> String {
    let exp = now() + UPLOAD_URL_TTL_SECS;
    let sig = state.signer.sign(&Signed::message(oid, size, exp, user, action));
    format!("size={size}&exp={exp}&user={user}&sig={sig}")
}

fn check_signature(state: &AppState, oid: &str, s: &Signed, action: &str) -> ApiResult<()> {
    if !is_sha256_hex(oid) {
        return Err(ApiError::bad_request(format!("{oid:?} is not a sha256 object id")));
    }
    if s.exp < now() {
        return Err(ApiError::forbidden("this upload URL has expired; request a new one from the batch API"));
    }
    if !state.signer.verify(&Signed::message(oid, s.size, s.exp, s.user, action), &s.sig) {
        return Err(ApiError::forbidden("invalid upload URL signature"));
    }
    Ok(())
}

pub async fn batch(
    State(state): State<AppState>,
    caller: Caller,
    matched: MatchedPath,
    headers: HeaderMap,
    Path(p): Path<BatchPath>,
    body: RawBody,
) -> ApiResult<Response> {
    let kind = kind_from_matched(&matched);
    let name = p.name.strip_suffix(".git").unwrap_or(&p.name);
    let repo = super::readable_repo(&state, &caller, kind, &p.ns, name).await?;
    let token = caller.require_upload(&repo)?;
    let req: BatchRequest = body.json(state.limits.json_body, "the LFS batch request").await?;
    if req.operation != "upload" {
        return Err(ApiError::bad_request("only the upload operation is served; download files through /resolve"));
    }
    if !matches!(req.hash_algo.as_deref(), None | Some("sha256")) {
        return Err(ApiError::bad_request("only sha256 object ids are supported"));
    }
    let limits = &state.limits;
    if req.objects.len() > limits.batch_objects {
        return Err(ApiError::bad_request(format!("{} objects in one batch; send at most {}", req.objects.len(), limits.batch_objects)));
    }
    if let Some(big) = req.objects.iter().find(|o| o.size > limits.file_size) {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "PayloadTooLarge",
            format!("object {} declares {} bytes; files on this hub may be at most {} bytes", big.oid, big.size, limits.file_size),
        ));
    }
    let base = base_url(&state, &headers);
    let user = token.user.id;
    if req.transfers.iter().any(|t| t == "xet") {
        return xet_batch(&state, &caller, &repo, kind, &base, &req).await;
    }
    let multipart_ok = req.transfers.iter().any(|t| t == "multipart");
    let mut used_multipart = false;
    let mut urls = 0u64;
    let mut objects = Vec::with_capacity(req.objects.len());
    for obj in &req.objects {
        let oid = match settled(&state, &caller, user, obj).await? {
            Settled::Answered(answer) => {
                objects.push(answer);
                continue;
            }
            Settled::Upload(oid) => oid,
        };
        let multipart = multipart_ok && obj.size > MULTIPART_THRESHOLD;
        let chunk = chunk_size(obj.size);
        let wanted = if multipart { obj.size.div_ceil(chunk) + 2 } else { 2 };
        urls = urls.saturating_add(wanted);
        if urls > MAX_URLS_PER_BATCH {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "PayloadTooLarge",
                format!("this batch would need over {MAX_URLS_PER_BATCH} upload URLs; send fewer objects per batch"),
            ));
        }
        let verify =
            json!({"href": format!("{base}/api/lfs/objects/{oid}/verify?{}", signed_query(&state, &oid, obj.size, user, "verify"))});
        let upload = if multipart {
            used_multipart = true;
            let parts = obj.size.div_ceil(chunk);
            let mut header = serde_json::Map::new();
            header.insert("chunk_size".into(), json!(chunk.to_string()));
            for part in 1..=parts {
                let q = signed_query(&state, &oid, obj.size, user, &format!("part{part}"));
                header.insert(part.to_string(), json!(format!("{base}/api/lfs/objects/{oid}/part/{part}?{q}")));
            }
            let q = signed_query(&state, &oid, obj.size, user, "complete");
            json!({"href": format!("{base}/api/lfs/objects/{oid}/complete?{q}"), "header": header})
        } else {
            json!({"href": format!("{base}/api/lfs/objects/{oid}?{}", signed_query(&state, &oid, obj.size, user, "basic"))})
        };
        objects.push(json!({"oid": oid, "size": obj.size, "authenticated": true, "actions": {"upload": upload, "verify": verify}}));
    }
    let transfer = if used_multipart { "multipart" } else { "basic" };
    Ok(lfs_json(StatusCode::OK, json!({"transfer": transfer, "objects": objects, "hash_algo": "sha256"})))
}

/// What a batch answers for an object before any transfer is chosen.
enum Settled {
    /// An invalid oid (its error), or one the caller may already name (nothing to send).
    Answered(Value),
    /// The bytes must be sent; the oid, normalised.
    Upload(String),
}

async fn settled(state: &AppState, caller: &Caller, user: i64, obj: &BatchObject) -> ApiResult<Settled> {
    let oid = obj.oid.to_ascii_lowercase();
    if !is_sha256_hex(&oid) {
        return Ok(Settled::Answered(
            json!({"oid": obj.oid, "size": obj.size, "error": {"code": 422, "message": "oid must be a sha256 hex digest"}}),
        ));
    }
    // Nothing to send only when the caller may already read the object: whether the store holds
    // bytes someone else uploaded is not the caller's business.
    if let Some((_, size, _)) = state.db.blob(&oid).await?
        && size as u64 == obj.size
        && state.db.may_reference_blob(&oid, user, caller.reader()).await?
    {
        // The client will commit it without sending it: the collector must keep it till then.
        state.db.touch_blob(&oid).await?;
        return Ok(Settled::Answered(json!({"oid": oid, "size": obj.size})));
    }
    Ok(Settled::Upload(oid))
}

/// A batch answered with the Xet transfer (protocol §3.5): objects the caller may already name
/// need nothing; the others carry the write-token route and a token, which huggingface.js and
/// git-xet read (huggingface_hub 1.0–1.19 fetches the token itself).
async fn xet_batch(state: &AppState, caller: &Caller, repo: &Repo, kind: RepoKind, base: &str, req: &BatchRequest) -> ApiResult<Response> {
    let token = caller.require_upload(repo)?;
    let branch = req.git_ref.as_ref().map(|r| r.name.strip_prefix("refs/heads/").unwrap_or(&r.name)).unwrap_or("main");
    let encoded = percent_encoding::utf8_percent_encode(branch, percent_encoding::NON_ALPHANUMERIC).to_string();
    let href = format!("{base}/api/{}/{}/xet-write-token/{encoded}", kind.plural(), repo.full_name());
    let (access, exp) = super::xet::mint(state, token.user.id, repo.id, true);
    let mut objects = Vec::with_capacity(req.objects.len());
    for obj in &req.objects {
        let oid = match settled(state, caller, token.user.id, obj).await? {
            Settled::Answered(answer) => {
                objects.push(answer);
                continue;
            }
            Settled::Upload(oid) => oid,
        };
        let header = json!({
            "X-Xet-Cas-Url": format!("{base}/xet"),
            "X-Xet-Access-Token": access,
            "X-Xet-Token-Expiration": exp.to_string(),
        });
        objects.push(json!({"oid": oid, "size": obj.size, "authenticated": true, "actions": {"upload": {"href": href, "header": header}}}));
    }
    Ok(lfs_json(StatusCode::OK, json!({"transfer": "xet", "objects": objects, "hash_algo": "sha256"})))
}

/// Where an upload's bytes go: into the store, or, when the store already has the object, only
/// through a hash that proves the sender holds it.
enum Sink {
    Store(Box<commons_storage::IngestWriter>),
    Prove { oid: String, size: u64, received: u64, sha256: Sha256 },
}

impl Sink {
    async fn for_object(state: &AppState, oid: &str, size: u64) -> ApiResult<Self> {
        Ok(match state.db.blob(oid).await? {
            Some(_) => Sink::Prove { oid: oid.to_string(), size, received: 0, sha256: Sha256::new() },
            None => Sink::Store(Box::new(state.cas.writer(size, Some(oid.to_string())))),
        })
    }

    async fn write(&mut self, data: &[u8]) -> ApiResult<()> {
        match self {
            Sink::Store(writer) => Ok(writer.write(data).await?),
            Sink::Prove { size, received, sha256, .. } => {
                *received += data.len() as u64;
                if *received > *size {
                    return Err(commons_storage::StorageError::SizeMismatch { expected: *size, actual: *received }.into());
                }
                sha256.update(data);
                Ok(())
            }
        }
    }

    async fn finish(self) -> ApiResult<()> {
        match self {
            Sink::Store(writer) => {
                writer.finish().await?;
            }
            Sink::Prove { oid, size, received, sha256 } => {
                if received != size {
                    return Err(commons_storage::StorageError::SizeMismatch { expected: size, actual: received }.into());
                }
                let actual = hex::encode(sha256.finalize());
                if actual != oid {
                    return Err(commons_storage::StorageError::Sha256Mismatch { expected: oid, actual }.into());
                }
            }
        }
        Ok(())
    }
}

/// Streams a request body in as object `oid` of `size` bytes, sent by `user`.
async fn receive(state: &AppState, oid: &str, size: u64, user: i64, body: Body) -> ApiResult<()> {
    let mut sink = Sink::for_object(state, oid, size).await?;
    let mut stream = body.into_data_stream();
    while let Some(frame) = stream.next().await {
        let frame = frame.map_err(|e| ApiError::bad_request(format!("upload interrupted: {e}")))?;
        sink.write(&frame).await?;
    }
    sink.finish().await?;
    state.db.record_blob_holder(oid, user).await?;
    Ok(())
}

pub async fn upload_basic(
    State(state): State<AppState>,
    Path(oid): Path<String>,
    Query(s): Query<Signed>,
    body: Body,
) -> ApiResult<StatusCode> {
    check_signature(&state, &oid, &s, "basic")?;
    receive(&state, &oid, s.size, s.user, body).await?;
    tracing::info!(oid, size = s.size, "LFS object received");
    Ok(StatusCode::OK)
}

/// Where the parts of `user`'s multipart upload of `oid` wait: one folder per user and object,
/// so two users uploading the same object never see each other's parts.
fn part_dir(state: &AppState, oid: &str, user: i64) -> PathBuf {
    state.upload_dir.join(format!("{user}-{oid}"))
}

/// Removes multipart staging folders untouched for `grace`: parts of uploads never completed.
pub async fn sweep_stale_parts(state: &AppState, grace: std::time::Duration) -> std::io::Result<usize> {
    let cutoff = std::time::SystemTime::now().checked_sub(grace).unwrap_or(std::time::UNIX_EPOCH);
    let mut removed = 0;
    let mut dir = tokio::fs::read_dir(&state.upload_dir).await?;
    while let Some(entry) = dir.next_entry().await? {
        let modified = entry.metadata().await?.modified()?;
        if modified < cutoff {
            tokio::fs::remove_dir_all(entry.path()).await?;
            removed += 1;
        }
    }
    Ok(removed)
}

pub async fn upload_part(
    State(state): State<AppState>,
    Path((oid, part)): Path<(String, u64)>,
    Query(s): Query<Signed>,
    body: Body,
) -> ApiResult<Response> {
    check_signature(&state, &oid, &s, &format!("part{part}"))?;
    let chunk = chunk_size(s.size);
    let parts = s.size.div_ceil(chunk);
    if part == 0 || part > parts {
        return Err(ApiError::bad_request(format!("part {part} is out of range 1..={parts}")));
    }
    let expected = if part == parts { s.size - (parts - 1) * chunk } else { chunk };
    let dir = part_dir(&state, &oid, s.user);
    tokio::fs::create_dir_all(&dir).await.map_err(ApiError::internal)?;
    let tmp = dir.join(format!("{part}.tmp-{}", rand::random::<u64>()));
    let mut file = tokio::fs::File::create(&tmp).await.map_err(ApiError::internal)?;
    let mut hasher = Sha256::new();
    let mut received = 0u64;
    let mut stream = body.into_data_stream();
    let result: ApiResult<()> = async {
        while let Some(frame) = stream.next().await {
            let frame = frame.map_err(|e| ApiError::bad_request(format!("upload interrupted: {e}")))?;
            received += frame.len() as u64;
            if received > expected {
                return Err(ApiError::bad_request(format!("part {part} is larger than its {expected} bytes")));
            }
            hasher.update(&frame);
            file.write_all(&frame).await.map_err(ApiError::internal)?;
        }
        if received != expected {
            return Err(ApiError::bad_request(format!("part {part} has {received} bytes, expected {expected}")));
        }
        file.sync_all().await.map_err(ApiError::internal)?;
        Ok(())
    }
    .await;
    if let Err(e) = result {
        let _ = tokio::fs::remove_file(&tmp).await;
        return Err(e);
    }
    let etag = hex::encode(hasher.finalize());
    tokio::fs::write(dir.join(format!("{part}.etag")), &etag).await.map_err(ApiError::internal)?;
    tokio::fs::rename(&tmp, dir.join(part.to_string())).await.map_err(ApiError::internal)?;
    let mut resp = StatusCode::OK.into_response();
    resp.headers_mut().insert(header::ETAG, HeaderValue::from_str(&format!("\"{etag}\"")).map_err(ApiError::internal)?);
    Ok(resp)
}

#[derive(Deserialize)]
pub struct Completion {
    oid: String,
    parts: Vec<CompletedPart>,
}

#[derive(Deserialize)]
pub struct CompletedPart {
    #[serde(rename = "partNumber")]
    part_number: u64,
    etag: String,
}

pub async fn complete_multipart(
    State(state): State<AppState>,
    Path(oid): Path<String>,
    Query(s): Query<Signed>,
    body: RawBody,
) -> ApiResult<StatusCode> {
    check_signature(&state, &oid, &s, "complete")?;
    let c: Completion = body.json(state.limits.json_body, "the multipart completion").await?;
    if c.oid.to_ascii_lowercase() != oid {
        return Err(ApiError::bad_request(format!("completion names object {} but the URL is for {oid}", c.oid)));
    }
    let parts = s.size.div_ceil(chunk_size(s.size));
    if c.parts.len() as u64 != parts {
        return Err(ApiError::bad_request(format!("expected {parts} parts, the completion lists {}", c.parts.len())));
    }
    let dir = part_dir(&state, &oid, s.user);
    for (i, part) in c.parts.iter().enumerate() {
        if part.part_number != i as u64 + 1 {
            return Err(ApiError::bad_request("parts must be listed in order, numbered from 1"));
        }
        let stored = tokio::fs::read_to_string(dir.join(format!("{}.etag", part.part_number)))
            .await
            .map_err(|_| ApiError::bad_request(format!("part {} was never uploaded", part.part_number)))?;
        if stored.trim() != part.etag.trim_matches('"') {
            return Err(ApiError::bad_request(format!("part {} etag does not match the uploaded part", part.part_number)));
        }
    }
    let mut sink = Sink::for_object(&state, &oid, s.size).await?;
    let mut buf = vec![0u8; 1 << 20];
    for part in 1..=parts {
        use tokio::io::AsyncReadExt;
        let mut f = tokio::fs::File::open(dir.join(part.to_string())).await.map_err(ApiError::internal)?;
        loop {
            let n = f.read(&mut buf).await.map_err(ApiError::internal)?;
            if n == 0 {
                break;
            }
            sink.write(&buf[..n]).await?;
        }
    }
    let finished = sink.finish().await;
    // The parts are of no further use whether or not they made the object.
    if let Err(e) = tokio::fs::remove_dir_all(&dir).await {
        tracing::warn!(oid, error = %e, "could not remove finished upload parts");
    }
    finished?;
    state.db.record_blob_holder(&oid, s.user).await?;
    tracing::info!(oid, size = s.size, parts, "multipart LFS object received");
    Ok(StatusCode::OK)
}

#[derive(Deserialize)]
pub struct VerifyBody {
    oid: String,
    size: u64,
}

pub async fn verify(
    State(state): State<AppState>,
    Path(oid): Path<String>,
    Query(s): Query<Signed>,
    body: RawBody,
) -> ApiResult<Json<Value>> {
    check_signature(&state, &oid, &s, "verify")?;
    // The body names the object again (LFS's verify request); it must be the one signed.
    let named: VerifyBody = body.json(state.limits.json_body, "the verify request").await?;
    if named.oid.to_ascii_lowercase() != oid || named.size != s.size {
        return Err(ApiError::bad_request(format!(
            "the verify request names {} ({} bytes), the URL {oid} ({} bytes)",
            named.oid, named.size, s.size
        )));
    }
    // Only the bytes this user sent (or could read) are confirmed: for anyone else the object
    // was not uploaded, whether or not the store holds it.
    let not_uploaded = || ApiError::new(StatusCode::NOT_FOUND, "NotFound", format!("object {oid} was not uploaded"));
    match state.db.blob(&oid).await? {
        Some(_) if !state.db.may_reference_blob(&oid, s.user, None).await? => Err(not_uploaded()),
        Some((_, size, _)) if size as u64 == s.size => Ok(Json(json!({"oid": oid, "size": size}))),
        Some((_, size, _)) => Err(ApiError::bad_request(format!("object {oid} has {size} bytes, not {}", s.size))),
        None => Err(not_uploaded()),
    }
}
