//! Downloads (protocol §1): `HEAD`/`GET /{prefix}{ns}/{name}/resolve/{rev}/{path}`, with the
//! metadata headers the clients verify and byte ranges served straight from the xorbs.

use super::Path;
use axum::body::Body;
use axum::extract::{MatchedPath, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use commons_db::RepoKind;
use serde::Deserialize;

use super::{readable_repo, resolve as resolve_rev};
use crate::AppState;
use crate::auth::Caller;
use crate::downloads::{Client, ClientAddress};
use crate::error::{ApiError, ApiResult};
use commons_repo::names::validate_file_path;

#[derive(Deserialize)]
pub struct ResolvePath {
    ns: String,
    name: String,
    rev: String,
    path: String,
}

pub(crate) fn kind_from_matched(matched: &MatchedPath) -> RepoKind {
    let m = matched.as_str();
    if m.starts_with("/datasets/") {
        RepoKind::Dataset
    } else if m.starts_with("/algorithms/") {
        RepoKind::Algorithm
    } else {
        RepoKind::Model
    }
}

/// A parsed `Range: bytes=...` header, for a file of `size` bytes: `Ok(None)` = whole file.
pub(crate) fn parse_range(value: &str, size: u64) -> Result<Option<(u64, u64)>, ()> {
    let spec = value.trim().strip_prefix("bytes=").ok_or(())?;
    if spec.contains(',') {
        // Multi-range responses are not served; the whole file is a valid answer.
        return Ok(None);
    }
    let (a, b) = spec.split_once('-').ok_or(())?;
    let (start, end_inclusive) = match (a.trim(), b.trim()) {
        ("", suffix) => {
            let n: u64 = suffix.parse().map_err(|_| ())?;
            (size.saturating_sub(n), size.saturating_sub(1))
        }
        (a, "") => (a.parse().map_err(|_| ())?, size.saturating_sub(1)),
        (a, b) => {
            let (s, e): (u64, u64) = (a.parse().map_err(|_| ())?, b.parse().map_err(|_| ())?);
            if e < s {
                return Err(());
            }
            (s, e.min(size.saturating_sub(1)))
        }
    };
    if start >= size {
        return Err(());
    }
    Ok(Some((start, end_inclusive + 1)))
}

pub async fn resolve(
    State(state): State<AppState>,
    caller: Caller,
    matched: MatchedPath,
    method: Method,
    headers: HeaderMap,
    Path(p): Path<ResolvePath>,
    address: ClientAddress,
) -> ApiResult<Response> {
    let kind = kind_from_matched(&matched);
    let repo = readable_repo(&state, &caller, kind, &p.ns, &p.name).await?;
    super::require_content(&state, &caller, &repo).await?;
    let commit = resolve_rev(&state, &repo, &p.rev).await?;
    validate_file_path(&p.path).map_err(|_| ApiError::entry_not_found(&p.path, &commit))?;
    let entry = state.db.file_at(&repo, &commit, &p.path).await?.ok_or_else(|| ApiError::entry_not_found(&p.path, &commit))?;
    // A GET of a file is a download (a HEAD is a client checking what it has).
    if method == Method::GET {
        let client = match (&caller.0, address.0) {
            (Some(token), _) => Client::User(token.user.id),
            (None, Some(ip)) => Client::Address(ip),
            (None, None) => Client::Unknown,
        };
        state.downloads.count(&state.signer, repo.id, client);
    }
    let (_, size, file_hash) = state
        .db
        .blob(&entry.sha256)
        .await?
        .ok_or_else(|| ApiError::internal(format!("blob {} of {} is missing", entry.sha256, entry.path)))?;
    let size = size as u64;

    let etag = if entry.lfs { entry.sha256.clone() } else { entry.git_oid.clone() };
    let mut out = HeaderMap::new();
    let hv = |s: String| HeaderValue::from_str(&s).map_err(ApiError::internal);
    out.insert("x-repo-commit", hv(commit.clone())?);
    out.insert(header::ETAG, hv(format!("\"{etag}\""))?);
    if entry.lfs {
        out.insert("x-linked-etag", hv(format!("\"{}\"", entry.sha256))?);
        out.insert("x-linked-size", hv(size.to_string())?);
        // Xet clients download the file through the CAS API instead (protocol §3.2): its Xet
        // hash, where to get a read token for this commit, and where its reconstruction is.
        let base = super::base_url(&state, &headers);
        out.insert("x-xet-hash", hv(file_hash.clone())?);
        out.insert(
            header::LINK,
            hv(format!(
                "<{base}/api/{}/{}/{}/xet-read-token/{commit}>; rel=\"xet-auth\", <{base}/xet/v2/reconstructions/{file_hash}>; rel=\"xet-reconstruction-info\"",
                kind.plural(),
                p.ns,
                p.name
            ))?,
        );
    }
    out.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    out.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type(&p.path)));
    // A file is someone's upload served from the hub's own origin: whatever it is (an SVG, an
    // HTML page), opened here it runs nothing and reaches nothing.
    out.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(FILE_POLICY));
    out.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    let filename = p.path.rsplit('/').next().unwrap_or(&p.path).replace('"', "");
    if let Ok(v) = HeaderValue::from_str(&format!("inline; filename=\"{filename}\"")) {
        out.insert(header::CONTENT_DISPOSITION, v);
    }

    let range = match headers.get(header::RANGE).and_then(|v| v.to_str().ok()) {
        None => None,
        Some(r) => match parse_range(r, size) {
            Ok(r) => r,
            // hf-hub asks `bytes=0-0` for metadata, also of empty files, and fails on 416.
            Err(()) if size == 0 => {
                out.insert(header::CONTENT_RANGE, HeaderValue::from_static("bytes */0"));
                out.insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
                return Ok((StatusCode::OK, out, Body::empty()).into_response());
            }
            Err(()) => {
                out.insert(header::CONTENT_RANGE, hv(format!("bytes */{size}"))?);
                return Ok((StatusCode::RANGE_NOT_SATISFIABLE, out, Body::empty()).into_response());
            }
        },
    };
    let (status, start, end) = match range {
        Some((s, e)) => {
            out.insert(header::CONTENT_RANGE, hv(format!("bytes {s}-{}/{size}", e - 1))?);
            (StatusCode::PARTIAL_CONTENT, s, e)
        }
        None => (StatusCode::OK, 0, size),
    };
    out.insert(header::CONTENT_LENGTH, hv((end - start).to_string())?);
    if method == Method::HEAD {
        return Ok((status, out, Body::empty()).into_response());
    }
    let stream = state.cas.read_range(&file_hash, size, start, end).await?;
    Ok((status, out, Body::from_stream(stream)).into_response())
}

/// What a served file may do when a browser opens it: nothing (no script, no requests, a
/// sandboxed origin), but show itself.
const FILE_POLICY: &str = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; sandbox";

/// The type a file is served with: images by their extension, so that cards can show them
/// (`<img>` of a repository's file); everything else as bytes to download.
fn content_type(path: &str) -> &'static str {
    let extension = path.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
    match extension.as_deref() {
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("gif") => "image/gif",
        Some("webp") => "image/webp",
        Some("svg") => "image/svg+xml",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::parse_range;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-0", 10), Ok(Some((0, 1))));
        assert_eq!(parse_range("bytes=5-", 10), Ok(Some((5, 10))));
        assert_eq!(parse_range("bytes=2-100", 10), Ok(Some((2, 10))));
        assert_eq!(parse_range("bytes=-3", 10), Ok(Some((7, 10))));
        assert_eq!(parse_range("bytes=10-", 10), Err(()));
        assert_eq!(parse_range("bytes=0-0", 0), Err(()));
        assert_eq!(parse_range("bytes=5-2", 10), Err(()));
        assert_eq!(parse_range("items=0-1", 10), Err(()));
    }
}
