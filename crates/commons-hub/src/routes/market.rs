//! The market's own endpoints (listings themselves are in `repos`):
//! - likes: `POST`/`DELETE /api/{kind}s/{ns}/{name}/like` (what the Hub's pages call;
//!   `huggingface_hub.unlike` calls the `DELETE`), and `GET /api/users/{name}/likes`
//!   (`huggingface_hub.list_liked_repos`), `GET /api/{kind}s/{ns}/{name}/likers`
//!   (`list_repo_likers`). A like needs an account token (not a lease token)
//!   and a repository the caller may see;
//! - tag facets: `GET /api/{kind}s-tags-by-type`;
//! - lineage: `GET /api/{kind}s/{ns}/{name}/lineage`, from what cards name.
//!
//! What these list shows only repositories the caller may see.

use std::collections::HashMap;

use super::{Path, Query};
use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};

use super::repos::{page_params, page_response, query_string_with};
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
    let new = state.repos.like(token.user.id, &repo).await?;
    Ok(Json(json!({"liked": true, "new": new})))
}

pub async fn unlike(State(state): State<AppState>, caller: Caller, Path(p): Path<LikePath>) -> ApiResult<Json<Value>> {
    let token = caller.require_account()?;
    let repo = readable_repo(&state, &caller, kind_from_plural(&p.kind)?, &p.ns, &p.name).await?;
    let was = state.repos.unlike(token.user.id, &repo).await?;
    Ok(Json(json!({"liked": false, "was": was})))
}

/// `GET /api/{kind}s/{ns}/{name}/likers` (`huggingface_hub.list_repo_likers`): who likes a
/// repository the caller may see, newest like first, paged with `Link`.
pub async fn likers(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(p): Path<LikePath>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    let repo = readable_repo(&state, &caller, kind_from_plural(&p.kind)?, &p.ns, &p.name).await?;
    let (cursor, limit) = page_params(&q, 1000)?;
    let mut users = state.db.likers(&repo, (limit + 1) as i64, cursor as i64).await?;
    let more = users.len() > limit;
    users.truncate(limit);
    let items: Vec<Value> = users.iter().map(|(name, fullname)| json!({"user": name, "fullname": fullname, "avatarUrl": null})).collect();
    Ok(page_response(items, more, || {
        format!("{}/api/{}/{}/{}/likers?{}", base_url(&state, &headers), p.kind, p.ns, p.name, query_string_with(&q, cursor + limit))
    }))
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
    Ok(page_response(items, more, || {
        format!("{}/api/users/{name}/likes?{}", base_url(&state, &headers), query_string_with(&q, cursor + limit))
    }))
}

/// `GET /api/{models,datasets,algorithms}-tags-by-type`: the tags in use, grouped by facet
/// (`library`, `pipeline_tag`, `license`, `dataset`, `language`, …), each with how many
/// repositories the caller may see carry it, most used first: what the listing pages offer as
/// filters.
pub async fn tags_by_type(State(state): State<AppState>, caller: Caller, kind: commons_db::RepoKind) -> ApiResult<Json<Value>> {
    let counts = state.db.tag_counts(kind, caller.reader(), MAX_FACET_TAGS).await?;
    let mut out = serde_json::Map::new();
    for (facet, tag, count) in counts {
        let label = tag.split_once(':').map_or(tag.as_str(), |(_, label)| label).to_string();
        let entry = json!({"id": tag, "label": label, "type": facet, "count": count});
        if let Value::Array(items) = out.entry(facet).or_insert_with(|| Value::Array(Vec::new())) {
            items.push(entry);
        }
    }
    Ok(Json(Value::Object(out)))
}

/// Tags one facet listing returns at most.
const MAX_FACET_TAGS: i64 = 5_000;

/// Steps followed from the repository asked about, at most, each way.
const LINEAGE_DEPTH: usize = 8;
/// Repositories one lineage answer names at most, each way.
const LINEAGE_NODES: usize = 200;
/// Repositories whose descendants one answer looks up at most: each look-up is a tag-filtered
/// listing, whose cost grows with the hub's repositories, and anyone may ask.
const LINEAGE_LOOKUPS: usize = 16;

/// `GET /api/{kind}s/{ns}/{name}/lineage`: where a repository comes from and what was made from
/// it, as cards say: a model's `base_model` (followed up through the base's own card), its
/// `datasets` and the `algorithm` a compute job ran to make it (a job writes both into the card
/// of the model it publishes); and, the other way, the repositories whose cards name this one.
/// Each node says how it is related (`relation`), to which node (`of`), and how far (`depth`);
/// descendants are looked up breadth first for at most 16 repositories.
/// Repositories the caller may not see are left out, never named.
pub async fn lineage(State(state): State<AppState>, caller: Caller, Path(p): Path<LikePath>) -> ApiResult<Json<Value>> {
    let kind = kind_from_plural(&p.kind)?;
    let repo = readable_repo(&state, &caller, kind, &p.ns, &p.name).await?;
    let node = |r: &commons_db::Repo, relation: &str, of: &commons_db::Repo, depth: usize| json!({"id": r.full_name(), "type": r.kind.as_str(), "relation": relation, "of": of.full_name(), "depth": depth});

    let mut ancestors = Vec::new();
    let mut seen = std::collections::HashSet::from([(repo.kind, repo.full_name())]);
    let mut frontier = vec![(repo.clone(), 0usize)];
    while let Some((current, depth)) = frontier.pop() {
        if depth >= LINEAGE_DEPTH || ancestors.len() >= LINEAGE_NODES {
            continue;
        }
        let Ok(head) = state.repos.pin(&current, "main").await else { continue };
        let card = state.repos.card_at(&current, &head).await?;
        for (key, parent_kind) in [
            ("base_model", commons_db::RepoKind::Model),
            ("datasets", commons_db::RepoKind::Dataset),
            ("algorithm", commons_db::RepoKind::Algorithm),
        ] {
            for id in commons_card::strings(&card.metadata, key).into_iter().take(LINEAGE_NODES) {
                let Some((ns, name)) = id.split_once('/') else { continue };
                let Ok(parent) = state.repos.find(parent_kind, ns, name, caller.reader()).await else { continue };
                if ancestors.len() < LINEAGE_NODES && seen.insert((parent.kind, parent.full_name())) {
                    ancestors.push(node(&parent, key, &current, depth + 1));
                    frontier.push((parent, depth + 1));
                }
            }
        }
    }

    let mut descendants = Vec::new();
    let mut seen = std::collections::HashSet::from([(repo.kind, repo.full_name())]);
    let mut frontier = std::collections::VecDeque::from([(repo.clone(), 0usize)]);
    let mut lookups = 0;
    while let Some((current, depth)) = frontier.pop_front() {
        if depth >= LINEAGE_DEPTH || descendants.len() >= LINEAGE_NODES || lookups >= LINEAGE_LOOKUPS {
            continue;
        }
        lookups += 1;
        let relation = match current.kind {
            commons_db::RepoKind::Model => "base_model",
            commons_db::RepoKind::Dataset => "datasets",
            commons_db::RepoKind::Algorithm => "algorithm",
        };
        let tag = match current.kind {
            commons_db::RepoKind::Model => format!("base_model:{}", current.full_name()),
            commons_db::RepoKind::Dataset => format!("dataset:{}", current.full_name()),
            commons_db::RepoKind::Algorithm => format!("algorithm:{}", current.full_name()),
        };
        for child in state.db.repos_with_tag(&tag, caller.reader(), LINEAGE_NODES as i64).await? {
            if descendants.len() < LINEAGE_NODES && seen.insert((child.kind, child.full_name())) {
                descendants.push(node(&child, relation, &current, depth + 1));
                frontier.push_back((child, depth + 1));
            }
        }
    }
    Ok(Json(json!({"id": repo.full_name(), "type": repo.kind.as_str(), "ancestors": ancestors, "descendants": descendants})))
}
