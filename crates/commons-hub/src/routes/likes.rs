//! Likes: `POST`/`DELETE /api/{kind}s/{ns}/{name}/like` (what the Hub's pages call;
//! `huggingface_hub.unlike` calls the `DELETE`), and `GET /api/users/{name}/likes`
//! (`huggingface_hub.list_liked_repos`). A like needs an account token (not a lease token) and
//! a repository the caller may see; a listing shows only repositories its viewer may see.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::repos::{page_params, query_string_with, set_next_page};
use super::{base_url, iso_time, kind_from_plural, readable_repo};
use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiResult;

#[derive(Deserialize)]
pub struct LikePath {
    kind: String,
    ns: String,
    name: String,
}

pub async fn like(State(state): State<AppState>, caller: Caller, Path(p): Path<LikePath>) -> ApiResult<Json<Value>> {
    let token = caller.require_account()?;
    let repo = readable_repo(&state, &caller, kind_from_plural(&p.kind)?, &p.ns, &p.name).await?;
    let new = state.db.like(token.user.id, &repo).await?;
    Ok(Json(json!({"liked": true, "new": new})))
}

pub async fn unlike(State(state): State<AppState>, caller: Caller, Path(p): Path<LikePath>) -> ApiResult<Json<Value>> {
    let token = caller.require_account()?;
    let repo = readable_repo(&state, &caller, kind_from_plural(&p.kind)?, &p.ns, &p.name).await?;
    let was = state.db.unlike(token.user.id, &repo).await?;
    Ok(Json(json!({"liked": false, "was": was})))
}

/// The repositories `name` likes, newest like first, paged with `Link` like other listings.
pub async fn of_user(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(name): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    let (cursor, limit) = page_params(&q, 1000)?;
    let mut liked = state.db.likes_of(&name, caller.reader(), (limit + 1) as i64, cursor as i64).await?;
    let more = liked.len() > limit;
    liked.truncate(limit);
    let items: Vec<Value> = liked
        .iter()
        .map(|(repo, at)| json!({"createdAt": iso_time(*at), "repo": {"name": repo.full_name(), "type": repo.kind.as_str()}}))
        .collect();
    let mut resp = Json(Value::Array(items)).into_response();
    if more {
        let link = format!("{}/api/users/{name}/likes?{}", base_url(&state, &headers), query_string_with(&q, cursor + limit));
        set_next_page(&mut resp, &link);
    }
    Ok(resp)
}
