//! The Git LFS batch API (protocol §11) and the signed upload endpoints it hands out.
//!
//! Uploads stream straight into the content store: the body is chunked, deduplicated and
//! hashed as it arrives, and the object becomes visible only once its size and sha256 match
//! what the client declared. Multipart parts wait on disk (written atomically) until the
//! completion call streams them, in order, into the store.

use std::collections::HashMap;
use std::path::PathBuf;

use axum::Json;
use axum::body::Body;
use axum::extract::{MatchedPath, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::base_url;
use super::files::kind_from_matched;
use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::signing::UPLOAD_URL_TTL_SECS;

/// Objects above this size are offered multipart upload, in parts of `MULTIPART_CHUNK`.
pub const MULTIPART_THRESHOLD: u64 = 10 * 1024 * 1024;
pub const MULTIPART_CHUNK: u64 = 8 * 1024 * 1024;

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
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

fn lfs_json(status: StatusCode, v: Value) -> Response {
    let mut resp = (status, Json(v)).into_response();
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/vnd.git-lfs+json"));
    resp
}

/// The signed query string for one permitted action on one object.
fn signed_query(state: &AppState, oid: &str, size: u64, action: &str) -> String {
    let exp = now() + UPLOAD_URL_TTL_SECS;
    let sig = state.signer.sign(&format!("{oid}:{size}:{exp}:{action}"));
    format!("size={size}&exp={exp}&sig={sig}")
}

#[derive(Deserialize)]
pub struct Signed {
    size: u64,
    exp: i64,
    sig: String,
}

fn check_signature(state: &AppState, oid: &str, s: &Signed, action: &str) -> ApiResult<()> {
    if !is_sha256_hex(oid) {
        return Err(ApiError::bad_request(format!("{oid:?} is not a sha256 object id")));
    }
    if s.exp < now() {
        return Err(ApiError::forbidden("this upload URL has expired; request a new one from the batch API"));
    }
    if !state.signer.verify(&format!("{oid}:{}:{}:{action}", s.size, s.exp), &s.sig) {
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
    Json(req): Json<BatchRequest>,
) -> ApiResult<Response> {
    let kind = kind_from_matched(&matched);
    let name = p.name.strip_suffix(".git").unwrap_or(&p.name);
    let repo = super::readable_repo(&state, &caller, kind, &p.ns, name).await?;
    if req.operation != "upload" {
        return Err(ApiError::bad_request("only the upload operation is served; download files through /resolve"));
    }
    caller.require_write_repo(&repo)?;
    if !matches!(req.hash_algo.as_deref(), None | Some("sha256")) {
        return Err(ApiError::bad_request("only sha256 object ids are supported"));
    }
    let base = base_url(&state, &headers);
    let multipart_ok = req.transfers.iter().any(|t| t == "multipart");
    let mut used_multipart = false;
    let mut objects = Vec::with_capacity(req.objects.len());
    for obj in &req.objects {
        let oid = obj.oid.to_ascii_lowercase();
        if !is_sha256_hex(&oid) {
            objects.push(json!({"oid": obj.oid, "size": obj.size, "error": {"code": 422, "message": "oid must be a sha256 hex digest"}}));
            continue;
        }
        if let Some((_, size, _)) = state.db.blob(&oid).await? {
            if size as u64 == obj.size {
                // Already stored, in this repository or any other: nothing to send.
                objects.push(json!({"oid": oid, "size": obj.size}));
                continue;
            }
        }
        let verify = json!({"href": format!("{base}/api/lfs/objects/{oid}/verify?{}", signed_query(&state, &oid, obj.size, "verify"))});
        let upload = if multipart_ok && obj.size > MULTIPART_THRESHOLD {
            used_multipart = true;
            let parts = obj.size.div_ceil(MULTIPART_CHUNK);
            let mut header = serde_json::Map::new();
            header.insert("chunk_size".into(), json!(MULTIPART_CHUNK.to_string()));
            for part in 1..=parts {
                let q = signed_query(&state, &oid, obj.size, &format!("part{part}"));
                header.insert(part.to_string(), json!(format!("{base}/api/lfs/objects/{oid}/part/{part}?{q}")));
            }
            let q = signed_query(&state, &oid, obj.size, "complete");
            json!({"href": format!("{base}/api/lfs/objects/{oid}/complete?{q}"), "header": header})
        } else {
            json!({"href": format!("{base}/api/lfs/objects/{oid}?{}", signed_query(&state, &oid, obj.size, "basic"))})
        };
        objects.push(json!({"oid": oid, "size": obj.size, "authenticated": true, "actions": {"upload": upload, "verify": verify}}));
    }
    let transfer = if used_multipart { "multipart" } else { "basic" };
    Ok(lfs_json(StatusCode::OK, json!({"transfer": transfer, "objects": objects, "hash_algo": "sha256"})))
}

/// Streams a request body into the store as object `oid` of `size` bytes.
async fn ingest_body(state: &AppState, oid: &str, size: u64, body: Body) -> ApiResult<()> {
    let mut writer = state.cas.writer(size, Some(oid.to_string()));
    let mut stream = body.into_data_stream();
    while let Some(frame) = stream.next().await {
        let frame = frame.map_err(|e| ApiError::bad_request(format!("upload interrupted: {e}")))?;
        writer.write(&frame).await?;
    }
    writer.finish().await?;
    Ok(())
}

pub async fn upload_basic(State(state): State<AppState>, Path(oid): Path<String>, Query(s): Query<Signed>, body: Body) -> ApiResult<StatusCode> {
    check_signature(&state, &oid, &s, "basic")?;
    if state.db.blob(&oid).await?.is_none() {
        ingest_body(&state, &oid, s.size, body).await?;
        tracing::info!(oid, size = s.size, "LFS object stored");
    }
    Ok(StatusCode::OK)
}

fn part_dir(state: &AppState, oid: &str) -> PathBuf {
    state.upload_dir.join(oid)
}

pub async fn upload_part(
    State(state): State<AppState>,
    Path((oid, part)): Path<(String, u64)>,
    Query(s): Query<Signed>,
    body: Body,
) -> ApiResult<Response> {
    check_signature(&state, &oid, &s, &format!("part{part}"))?;
    let parts = s.size.div_ceil(MULTIPART_CHUNK);
    if part == 0 || part > parts {
        return Err(ApiError::bad_request(format!("part {part} is out of range 1..={parts}")));
    }
    let expected = if part == parts { s.size - (parts - 1) * MULTIPART_CHUNK } else { MULTIPART_CHUNK };
    let dir = part_dir(&state, &oid);
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
    Json(c): Json<Completion>,
) -> ApiResult<StatusCode> {
    check_signature(&state, &oid, &s, "complete")?;
    if c.oid.to_ascii_lowercase() != oid {
        return Err(ApiError::bad_request(format!("completion names object {} but the URL is for {oid}", c.oid)));
    }
    if state.db.blob(&oid).await?.is_some() {
        return Ok(StatusCode::OK);
    }
    let parts = s.size.div_ceil(MULTIPART_CHUNK);
    if c.parts.len() as u64 != parts {
        return Err(ApiError::bad_request(format!("expected {parts} parts, the completion lists {}", c.parts.len())));
    }
    let dir = part_dir(&state, &oid);
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
    let mut writer = state.cas.writer(s.size, Some(oid.clone()));
    let mut buf = vec![0u8; 1 << 20];
    for part in 1..=parts {
        use tokio::io::AsyncReadExt;
        let mut f = tokio::fs::File::open(dir.join(part.to_string())).await.map_err(ApiError::internal)?;
        loop {
            let n = f.read(&mut buf).await.map_err(ApiError::internal)?;
            if n == 0 {
                break;
            }
            writer.write(&buf[..n]).await?;
        }
    }
    writer.finish().await?;
    tracing::info!(oid, size = s.size, parts, "multipart LFS object stored");
    if let Err(e) = tokio::fs::remove_dir_all(&dir).await {
        tracing::warn!(oid, error = %e, "could not remove finished upload parts");
    }
    Ok(StatusCode::OK)
}

pub async fn verify(
    State(state): State<AppState>,
    _caller: Caller,
    Path(oid): Path<String>,
    Query(s): Query<Signed>,
    Json(body): Json<HashMap<String, Value>>,
) -> ApiResult<Json<Value>> {
    check_signature(&state, &oid, &s, "verify")?;
    let _ = body;
    match state.db.blob(&oid).await? {
        Some((_, size, _)) if size as u64 == s.size => Ok(Json(json!({"oid": oid, "size": size}))),
        Some((_, size, _)) => Err(ApiError::bad_request(format!("object {oid} has {size} bytes, not {}", s.size))),
        None => Err(ApiError::new(StatusCode::NOT_FOUND, "NotFound", format!("object {oid} was not uploaded"))),
    }
}
