//! Access requests of gated repositories, as the Hub serves them to `huggingface_hub`'s
//! `list_{pending,accepted,rejected}_access_requests`, `accept_access_request`,
//! `reject_access_request`, `cancel_access_request` and `grant_access`:
//!
//! - `POST /api/{kind}s/{id}/ask-access`: a user asks (accepted at once when the gate is `auto`,
//!   pending when `manual`; a request already made stays as it is)
//! - `GET  /api/{kind}s/{id}/user-access-request/{pending|accepted|rejected}?limit=&cursor=`:
//!   oldest first, pages linked by `Link`
//! - `POST /api/{kind}s/{id}/user-access-request/handle` `{user | requestId, status,
//!   rejectionReason?}`: moving a request to where it already is is a 409, an unknown one a 404
//! - `POST /api/{kind}s/{id}/user-access-request/grant` `{user}`: 409 if the user has access
//!
//! Only a user's own token may ask ([`access::may_ask_access`]); only an administrator of the
//! repository lists and decides ([`access::may_review_access`]). Who then reads the files is
//! [`access::may_read_content`].

use std::collections::HashMap;

use super::{Path, Query};
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use commons_db::{AccessRequest, AccessStatus, REJECTION_REASON_MAX, Repo, RequestTarget};
use commons_repo::access;
use serde::Deserialize;
use serde_json::{Value, json};

use super::repos::RepoPath;
use super::{base_url, iso_time, kind_from_plural, readable_repo};
use crate::AppState;
use crate::auth::Caller;
use crate::body::RawBody;
use crate::error::{ApiError, ApiResult};

/// Requests per page of a listing, unless `limit` asks for fewer.
const PAGE_MAX: i64 = 100;

#[derive(Deserialize)]
pub struct ListPath {
    kind: String,
    ns: String,
    name: String,
    status: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Handle {
    user: Option<String>,
    request_id: Option<String>,
    status: String,
    rejection_reason: Option<String>,
}

#[derive(Deserialize)]
struct Grant {
    user: String,
}

/// A request's public id: its row id as 24 hex digits, the form of the Hub's ids.
fn request_id(r: &AccessRequest) -> String {
    format!("{:024x}", r.id)
}

fn request_json(r: &AccessRequest) -> Value {
    json!({
        "requestId": request_id(r),
        // Commons keeps no e-mail addresses: `email` is always null.
        "user": {"user": r.user, "fullname": r.fullname, "email": null},
        "status": r.status.as_str(),
        "timestamp": iso_time(r.created_at),
        "reviewedAt": (r.updated_at != r.created_at || r.status != AccessStatus::Pending).then(|| iso_time(r.updated_at)),
        "rejectionReason": r.rejection_reason,
        "fields": {},
    })
}

fn not_gated(repo: &Repo) -> ApiError {
    ApiError::bad_request(format!("{} is not gated", repo.full_name()))
}

/// The repository of `p` when the caller may review its requests, and it is gated.
async fn reviewed(state: &AppState, caller: &Caller, kind: &str, ns: &str, name: &str) -> ApiResult<Repo> {
    let token = caller.require()?;
    let repo = readable_repo(state, caller, kind_from_plural(kind)?, ns, name).await?;
    access::may_review_access(token, &repo)?;
    if repo.gated.is_none() {
        return Err(not_gated(&repo));
    }
    Ok(repo)
}

pub async fn ask(State(state): State<AppState>, caller: Caller, Path(p): Path<RepoPath>) -> ApiResult<Json<Value>> {
    let token = caller.require()?;
    access::may_ask_access(token)?;
    let repo = readable_repo(&state, &caller, kind_from_plural(&p.kind)?, &p.ns, &p.name).await?;
    let Some(mode) = repo.gated else { return Err(not_gated(&repo)) };
    // Its authors (its namespace's user, its organization's members) read it already.
    if access::may_read_content(&repo, Some(token), None).is_ok() {
        return Err(ApiError::bad_request(format!("you are among the authors of {} and read its files without asking", repo.full_name())));
    }
    let status = state.db.ask_access(&repo, token.user.id, mode).await?;
    Ok(Json(json!({"status": status.as_str()})))
}

pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(p): Path<ListPath>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    let repo = reviewed(&state, &caller, &p.kind, &p.ns, &p.name).await?;
    let status = AccessStatus::parse(&p.status)
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "NotFound", format!("no list of {:?} access requests", p.status)))?;
    let after = match q.get("cursor") {
        Some(c) => i64::from_str_radix(c, 16).map_err(|_| ApiError::bad_request(format!("invalid cursor {c:?}")))?,
        None => 0,
    };
    let limit = match q.get("limit") {
        Some(l) => l.parse::<i64>().map_err(|_| ApiError::bad_request(format!("invalid limit {l:?}")))?.clamp(1, PAGE_MAX),
        None => PAGE_MAX,
    };
    let (requests, more) = state.db.access_requests(&repo, status, after, limit).await?;
    let next = || {
        let last = requests.last().map(request_id).unwrap_or_default();
        format!(
            "{}/api/{}/{}/user-access-request/{}?limit={limit}&cursor={last}",
            base_url(&state, &headers),
            repo.kind.plural(),
            repo.full_name(),
            status.as_str()
        )
    };
    let items = requests.iter().map(request_json).collect();
    Ok(super::repos::page_response(items, more, next))
}

pub async fn handle(State(state): State<AppState>, caller: Caller, Path(p): Path<RepoPath>, body: RawBody) -> ApiResult<Json<Value>> {
    let repo = reviewed(&state, &caller, &p.kind, &p.ns, &p.name).await?;
    let body: Handle = body.json(state.limits.json_body, "the access request decision").await?;
    let status = AccessStatus::parse(&body.status)
        .ok_or_else(|| ApiError::bad_request(format!("status must be \"pending\", \"accepted\" or \"rejected\", not {:?}", body.status)))?;
    if body.rejection_reason.is_some() && status != AccessStatus::Rejected {
        return Err(ApiError::bad_request("rejectionReason is only for a rejection"));
    }
    if body.rejection_reason.as_ref().is_some_and(|r| r.chars().count() > REJECTION_REASON_MAX) {
        return Err(ApiError::bad_request(format!("rejectionReason may be at most {REJECTION_REASON_MAX} characters")));
    }
    let target = match (&body.user, &body.request_id) {
        (Some(user), None) => RequestTarget::User(user),
        (None, Some(id)) => RequestTarget::Id(
            i64::from_str_radix(id, 16)
                .ok()
                .filter(|_| id.len() <= 24)
                .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "NotFound", format!("access request {id} not found")))?,
        ),
        _ => return Err(ApiError::bad_request("give exactly one of user and requestId")),
    };
    let decided = state.db.decide_access(&repo, target, status, body.rejection_reason.as_deref()).await?;
    Ok(Json(request_json(&decided)))
}

pub async fn grant(State(state): State<AppState>, caller: Caller, Path(p): Path<RepoPath>, body: RawBody) -> ApiResult<Json<Value>> {
    let repo = reviewed(&state, &caller, &p.kind, &p.ns, &p.name).await?;
    let body: Grant = body.json(state.limits.json_body, "the access grant").await?;
    let user = state
        .db
        .user_by_name(&body.user)
        .await?
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "NotFound", format!("user {} not found", body.user)))?;
    state.db.grant_access(&repo, &user).await?;
    Ok(Json(json!({"status": "accepted", "user": user.name})))
}
