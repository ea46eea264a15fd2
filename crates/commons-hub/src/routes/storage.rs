//! A repository's storage as its administrators manage it: its LFS objects listed
//! (`list_lfs_files`) and permanently deleted (`permanently_delete_lfs_files`), which rewrites
//! the repository's history without them.

use std::collections::HashMap;

use super::{Path, Query};
use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::repos::{RepoPath, page_response};
use super::{administered_repo, base_url, iso_time, kind_from_plural};
use crate::AppState;
use crate::auth::Caller;
use crate::body::RawBody;
use crate::error::{ApiError, ApiResult};

/// Objects in one page of the listing.
const PAGE: u32 = 1000;

/// Objects one deletion request may name (the client sends 1000 at a time).
const DELETIONS_MAX: usize = 1000;

/// `GET /api/{kind}s/{id}/lfs-files`: the repository's LFS objects, each with the path, branch
/// and time of the first commit naming it, in pages linked by `Link: rel="next"`.
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    headers: axum::http::HeaderMap,
    Path(p): Path<RepoPath>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    let kind = kind_from_plural(&p.kind)?;
    let repo = administered_repo(&state, &caller, kind, &p.ns, &p.name).await?;
    let after = q.get("cursor").map(String::as_str);
    if let Some(c) = after
        && !is_sha256(c)
    {
        return Err(ApiError::bad_request(format!("invalid cursor {c:?}")));
    }
    let objects = state.db.lfs_objects(&repo, after, PAGE + 1).await?;
    let more = objects.len() > PAGE as usize;
    let items: Vec<_> = objects
        .iter()
        .take(PAGE as usize)
        .map(|o| {
            json!({
                "fileOid": o.sha256,
                "oid": o.sha256,
                "filename": o.filename,
                "ref": o.ref_name,
                "pushedAt": iso_time(o.pushed_at),
                "size": o.size,
            })
        })
        .collect();
    let next = || {
        let last = &objects[PAGE as usize - 1].sha256;
        format!("{}/api/{}/{}/lfs-files?cursor={last}", base_url(&state, &headers), p.kind, repo.full_name())
    };
    Ok(page_response(items, more, next))
}

#[derive(Deserialize)]
pub struct DeletionRequest {
    deletions: Deletions,
}

#[derive(Deserialize)]
struct Deletions {
    sha: Vec<String>,
    #[serde(rename = "rewriteHistory", default = "yes")]
    rewrite_history: bool,
}

fn yes() -> bool {
    true
}

/// `POST /api/{kind}s/{id}/lfs-files/batch` with `{"deletions": {"sha": [...],
/// "rewriteHistory": true}}`: removes the objects from every commit, branch, tag and pull
/// request of the repository. Objects it does not hold are ignored.
pub async fn delete(State(state): State<AppState>, caller: Caller, Path(p): Path<RepoPath>, body: RawBody) -> ApiResult<Response> {
    let kind = kind_from_plural(&p.kind)?;
    let repo = administered_repo(&state, &caller, kind, &p.ns, &p.name).await?;
    let request: DeletionRequest = body.json(state.limits.json_body, "the deletion request").await?;
    let shas = request.deletions.sha;
    if shas.len() > DELETIONS_MAX {
        return Err(ApiError::bad_request(format!("at most {DELETIONS_MAX} objects per request; this one names {}", shas.len())));
    }
    if let Some(bad) = shas.iter().find(|s| !is_sha256(s)) {
        return Err(ApiError::bad_request(format!("{bad:?} is not a sha256 object id")));
    }
    if !request.deletions.rewrite_history {
        // The bytes are shared with every repository holding the same content (deduplication),
        // so deleting them while this history still names them would break other repositories
        // or leave this one with files that cannot be read. The history goes; the bytes are
        // collected once nothing names them.
        return Err(ApiError::new(
            axum::http::StatusCode::UNPROCESSABLE_ENTITY,
            "RewriteHistoryRequired",
            "this hub deletes LFS files by rewriting the history without them: send rewriteHistory true",
        ));
    }
    let purged = state.db.purge_lfs_objects(&repo, &shas).await?;
    tracing::info!(repo = %repo.full_name(), objects = purged.objects, commits = purged.commits_rewritten, "LFS objects purged");
    if purged.commits_rewritten > 0 {
        state.repos.reindex_or_log(&repo).await;
    }
    Ok(Json(json!({"deleted": purged.objects, "commitsRewritten": purged.commits_rewritten})).into_response())
}

fn is_sha256(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}
