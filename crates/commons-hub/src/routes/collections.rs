//! Collections, as the Hub serves them to `huggingface_hub`'s `list_collections`,
//! `get_collection`, `create_collection`, `update_collection_metadata`, `delete_collection`,
//! `add_collection_item`, `update_collection_item` and `delete_collection_item`:
//!
//! - `GET    /api/collections?owner=&item=&q=&sort=&limit=&cursor=` (pages linked by `Link`;
//!   each collection with its first 4 items, and no `position`, which the client numbers itself)
//! - `POST   /api/collections` `{title, namespace, description?, private?}`: 409 with the `slug`
//!   of the owner's collection of that title, if there is one (what `exists_ok` reads)
//! - `GET    /api/collections/{ns}/{slug}`; `PATCH` `{title?, description?, private?, theme?,
//!   position?}` → `{"success", "data"}`; `DELETE`
//! - `POST   /api/collections/{ns}/{slug}/items` `{item: {id, type}, note?}`
//! - `PATCH  /api/collections/{ns}/{slug}/items/{item}` `{note?, position?}`; `DELETE`
//!
//! A slug is `{owner}/{title as a slug}-{id}`; only the id finds the collection, so a slug from
//! before a rename keeps working. A private collection, and an item the caller may not read,
//! look missing. Writes need a write token of the owner's whole account
//! ([`access::may_curate`]), and are counted per account like discussion writes.

use super::{Path, Query};
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use commons_db::{
    Collection, CollectionChanges, CollectionItem, CollectionQuery, CreatedCollection, ItemTarget, NewItem, RepoKind, is_collection_id,
    new_collection_id,
};
use commons_repo::{RepoError, access};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{base_url, iso_time};
use crate::AppState;
use crate::auth::Caller;
use crate::body::RawBody;
use crate::error::{ApiError, ApiResult};

/// Title length in characters (the Hub's bounds).
pub const TITLE_MAX: usize = 60;
/// Description length in characters (the Hub's).
pub const DESCRIPTION_MAX: usize = 150;
/// A note on an item, in characters (the Hub's).
pub const NOTE_MAX: usize = 500;
/// The themes a collection may have (the Hub's).
pub const THEMES: [&str; 6] = ["orange", "blue", "green", "purple", "pink", "indigo"];
/// Collections per page of a listing, unless `limit` asks for fewer; `limit` above it is this.
const PAGE_MAX: usize = 100;
const PAGE_DEFAULT: usize = 20;
/// How far a listing may page: bounds the cost of an OFFSET.
const CURSOR_MAX: usize = 100_000;
/// Items shown with each collection of a listing (the Hub's).
const LISTED_ITEMS: i64 = 4;
/// `owner=` and `item=` values one listing may give.
const FILTER_VALUES_MAX: usize = 20;
/// Longest `q=`, in characters.
const SEARCH_MAX: usize = 200;

#[derive(Deserialize)]
pub struct SlugPath {
    ns: String,
    slug: String,
}

#[derive(Deserialize)]
pub struct ItemPath {
    ns: String,
    slug: String,
    item: String,
}

/// `{owner}/{title as a slug}-{id}`: lower-case ASCII letters and digits, runs of anything else
/// one `-`.
pub fn slug_of(c: &Collection) -> String {
    let mut words = String::new();
    for ch in c.title.chars() {
        if ch.is_ascii_alphanumeric() {
            words.push(ch.to_ascii_lowercase());
        } else if !words.is_empty() && !words.ends_with('-') {
            words.push('-');
        }
    }
    let words = words.trim_end_matches('-');
    let words = if words.is_empty() { "collection" } else { words };
    format!("{}/{words}-{}", c.owner, c.id)
}

fn missing(what: &str) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "CollectionNotFound", format!("Collection {what} not found"))
}

/// The collection `{ns}/{slug}` names, if the caller may see it.
async fn visible(state: &AppState, caller: &Caller, ns: &str, slug: &str) -> ApiResult<Collection> {
    let id = slug.rsplit('-').next().filter(|id| is_collection_id(id)).ok_or_else(|| missing(&format!("{ns}/{slug}")))?;
    match state.db.collection(id).await? {
        Some(c) if c.owner.eq_ignore_ascii_case(ns) && access::may_see_collection(&c.owner, c.private, caller.0.as_ref()) => Ok(c),
        _ => Err(missing(&format!("{ns}/{slug}"))),
    }
}

/// The collection `{ns}/{slug}`, for a change by the caller: seen, the owner's write token,
/// and the write counted (before any body is read).
async fn curated(state: &AppState, caller: &Caller, ns: &str, slug: &str) -> ApiResult<Collection> {
    let c = visible(state, caller, ns, slug).await?;
    let token = caller.require()?;
    access::may_curate(token, &c.owner)?;
    count_write(state, &token.user.name)?;
    Ok(c)
}

/// Counts a collection write by `user` in the per-account window that discussion writes use
/// (under a key of its own, so each kind has the whole budget); 429 with `Retry-After` past it.
fn count_write(state: &AppState, user: &str) -> ApiResult<()> {
    let limit = state.limits.discussion_writes;
    state.discussion_writes.take(format!("collections\u{0}{user}"), limit).map_err(|wait| {
        ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "TooManyRequests",
            format!("{limit} collection writes in ten minutes is the most one account may make; try again in {wait} s"),
        )
        .with_retry_after(wait)
    })
}

fn owner_json(name: &str) -> Value {
    json!({"name": name, "type": "user", "fullname": name, "avatarUrl": null, "isPro": false})
}

fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\n' => out.push_str("<br>"),
            c => out.push(c),
        }
    }
    out
}

fn item_json(item: &CollectionItem) -> Value {
    let mut v = match &item.target {
        ItemTarget::Repo(r) => json!({
            "_id": item.id,
            "id": r.full_name(),
            "type": r.kind.as_str(),
            "position": item.rank,
            "author": r.namespace,
            "private": r.private,
            "repoType": r.kind.as_str(),
            "lastModified": iso_time(r.updated_at),
            "likes": r.likes,
            "downloads": r.downloads,
        }),
        ItemTarget::Collection(c) => json!({
            "_id": item.id,
            "id": c.id,
            "slug": slug_of(c),
            "type": "collection",
            "position": item.rank,
            "title": c.title,
            "description": c.description,
            "owner": owner_json(&c.owner),
            "private": c.private,
            "theme": c.theme,
            "lastUpdated": iso_time(c.updated_at),
            "upvotes": 0,
        }),
    };
    if let Some(note) = &item.note {
        v["note"] = json!({"text": note, "html": escape_html(note)});
    }
    v
}

/// A collection as the Hub writes it; `rank` (`position`) only outside listings.
fn collection_json(c: &Collection, items: &[CollectionItem], rank: Option<i64>) -> Value {
    let mut v = json!({
        "id": c.id,
        "slug": slug_of(c),
        "title": c.title,
        "description": c.description,
        "owner": owner_json(&c.owner),
        "items": items.iter().map(item_json).collect::<Vec<_>>(),
        "lastUpdated": iso_time(c.updated_at),
        "private": c.private,
        "theme": c.theme,
        "upvotes": 0,
        "isUpvotedByUser": false,
    });
    if let Some(rank) = rank {
        v["position"] = json!(rank);
    }
    v
}

/// `c` whole, as `caller` may see it: every item it may see, and its rank among the owner's.
async fn full_json(state: &AppState, caller: &Caller, c: &Collection) -> ApiResult<Value> {
    let reader = caller.reader();
    let mut items = state.db.collection_items(std::slice::from_ref(&c.id), reader, commons_db::COLLECTION_ITEMS_MAX).await?;
    let rank = state.db.collection_rank(c, reader).await?;
    Ok(collection_json(c, &items.remove(&c.id).unwrap_or_default(), Some(rank)))
}

/// A title as stored: trimmed, 1 to [`TITLE_MAX`] characters, one line.
fn clean_title(title: &str) -> ApiResult<String> {
    let t = title.trim();
    let n = t.chars().count();
    if !(1..=TITLE_MAX).contains(&n) {
        return Err(ApiError::bad_request(format!("a collection's title has 1 to {TITLE_MAX} characters; this one has {n}")));
    }
    if t.chars().any(char::is_control) {
        return Err(ApiError::bad_request("a collection's title is one line of text"));
    }
    Ok(t.to_string())
}

/// A description or note as stored: trimmed, at most `max` characters; empty is none.
fn clean_text(text: &str, max: usize, what: &str) -> ApiResult<Option<String>> {
    let t = text.trim();
    let n = t.chars().count();
    if n > max {
        return Err(ApiError::bad_request(format!("{what} has at most {max} characters; this one has {n}")));
    }
    if t.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return Err(ApiError::bad_request(format!("{what} is text (no control characters but line breaks and tabs)")));
    }
    Ok((!t.is_empty()).then(|| t.to_string()))
}

fn clean_theme(theme: &str) -> ApiResult<String> {
    if THEMES.contains(&theme) {
        Ok(theme.to_string())
    } else {
        Err(ApiError::bad_request(format!("theme is one of {}, not {theme:?}", THEMES.join(", "))))
    }
}

fn clean_position(position: i64) -> ApiResult<i64> {
    if position < 0 {
        return Err(ApiError::bad_request(format!("position is 0 or more, not {position}")));
    }
    Ok(position)
}

/// `GET /api/collections`: the collections the caller may see, most recently updated first.
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Query(pairs): Query<Vec<(String, String)>>,
) -> ApiResult<Response> {
    let one = |key: &str| pairs.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
    let many = |key: &str| pairs.iter().filter(|(k, _)| k == key).map(|(_, v)| v.trim()).filter(|v| !v.is_empty()).collect::<Vec<_>>();
    // Nobody upvotes on Commons yet: every sort is by the last update.
    match one("sort") {
        None | Some("lastModified" | "trending" | "upvotes") => {}
        Some(other) => return Err(ApiError::bad_request(format!("sort is lastModified, trending or upvotes, not {other:?}"))),
    }
    let limit = match one("limit").map(str::parse::<usize>) {
        None => PAGE_DEFAULT,
        Some(Ok(n)) if n >= 1 => n.min(PAGE_MAX),
        Some(_) => return Err(ApiError::bad_request(format!("limit is a number from 1 (pages hold at most {PAGE_MAX})"))),
    };
    let cursor = match one("cursor").map(str::parse::<usize>) {
        None => 0,
        Some(Ok(n)) if n <= CURSOR_MAX => n,
        Some(_) => return Err(ApiError::bad_request(format!("cursor is a number up to {CURSOR_MAX}"))),
    };
    let search = one("q").map(str::trim).filter(|q| !q.is_empty());
    if search.is_some_and(|q| q.chars().count() > SEARCH_MAX) {
        return Err(ApiError::bad_request(format!("q has at most {SEARCH_MAX} characters")));
    }
    let (owners, items) = (many("owner"), many("item"));
    if owners.len() > FILTER_VALUES_MAX || items.len() > FILTER_VALUES_MAX {
        return Err(ApiError::bad_request(format!("at most {FILTER_VALUES_MAX} owners and {FILTER_VALUES_MAX} items at once")));
    }
    let mut query = CollectionQuery {
        owners: owners.iter().map(|o| o.to_string()).collect(),
        search: search.map(str::to_string),
        viewer: caller.reader().map(str::to_string),
        limit: (limit + 1) as i64,
        offset: cursor as i64,
        ..Default::default()
    };
    for item in &items {
        let (prefix, id) = item.split_once('/').unwrap_or((item, ""));
        let (ns, name) = id.split_once('/').unwrap_or((id, ""));
        match prefix {
            // Nothing here holds what Commons does not host.
            "spaces" | "papers" | "buckets" => {}
            "collections" => match visible(&state, &caller, ns, name).await {
                Ok(c) => query.holding_collections.push(c.id),
                Err(e) if e.status == StatusCode::NOT_FOUND => {}
                Err(e) => return Err(e),
            },
            plural => {
                let kind = RepoKind::from_plural(plural).ok_or_else(|| {
                    ApiError::bad_request(format!("item is models/…, datasets/…, algorithms/… or collections/…, not {item:?}"))
                })?;
                match state.repos.find(kind, ns, name, caller.reader()).await {
                    Ok(repo) => query.holding_repos.push(repo.id),
                    Err(RepoError::RepoNotFound(_)) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
    }
    let mut found = if !items.is_empty() && query.holding_repos.is_empty() && query.holding_collections.is_empty() {
        Vec::new()
    } else {
        state.db.list_collections(&query).await?
    };
    let more = found.len() > limit;
    found.truncate(limit);
    let ids: Vec<String> = found.iter().map(|c| c.id.clone()).collect();
    let mut shown = state.db.collection_items(&ids, caller.reader(), LISTED_ITEMS).await?;
    let page: Vec<Value> = found.iter().map(|c| collection_json(c, &shown.remove(&c.id).unwrap_or_default(), None)).collect();
    let mut resp = Json(Value::Array(page)).into_response();
    if more {
        let mut next: Vec<(String, String)> = pairs.iter().filter(|(k, _)| k != "cursor").cloned().collect();
        next.push(("cursor".into(), (cursor + limit).to_string()));
        let url = format!("{}/api/collections?{}", base_url(&state, &headers), serde_urlencoded::to_string(next).unwrap_or_default());
        if let Ok(v) = axum::http::HeaderValue::from_str(&format!("<{url}>; rel=\"next\"")) {
            resp.headers_mut().insert(axum::http::header::LINK, v);
        }
    }
    Ok(resp)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NewCollection {
    title: String,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    private: bool,
    #[serde(default)]
    theme: Option<String>,
    #[serde(default)]
    resource_group_id: Option<String>,
}

/// `POST /api/collections`: a new collection of the caller, last among theirs.
pub async fn create(State(state): State<AppState>, caller: Caller, body: RawBody) -> ApiResult<Response> {
    let token = caller.require()?;
    // Who may write at all is known before the body: the namespace is checked once read.
    access::may_curate(token, &token.user.name)?;
    count_write(&state, &token.user.name)?;
    let body: NewCollection = body.json(state.limits.json_body, "the collection").await?;
    let owner = body.namespace.as_deref().unwrap_or(&token.user.name);
    access::may_curate(token, owner)?;
    if body.resource_group_id.is_some() {
        return Err(ApiError::bad_request("Commons has no resource groups: an organization's collections are its writers' to change"));
    }
    let title = clean_title(&body.title)?;
    let description =
        body.description.as_deref().map(|d| clean_text(d, DESCRIPTION_MAX, "a collection's description")).transpose()?.flatten();
    let id = new_collection_id();
    let theme = match &body.theme {
        Some(t) => clean_theme(t)?,
        None => THEMES[usize::from_str_radix(&id[..2], 16).unwrap_or(0) % THEMES.len()].to_string(),
    };
    match state.db.create_collection(&id, owner, &title, description.as_deref(), body.private, &theme).await? {
        CreatedCollection::New(c) => Ok(Json(full_json(&state, &caller, &c).await?).into_response()),
        CreatedCollection::Exists(c) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "CollectionExists",
            format!("{owner} already has a collection titled {:?}: {}", c.title, slug_of(&c)),
        )
        .with_extra("slug", json!(slug_of(&c)))),
    }
}

/// `GET /api/collections/{ns}/{slug}`: with every item the caller may see.
pub async fn get(State(state): State<AppState>, caller: Caller, Path(p): Path<SlugPath>) -> ApiResult<Json<Value>> {
    let c = visible(&state, &caller, &p.ns, &p.slug).await?;
    Ok(Json(full_json(&state, &caller, &c).await?))
}

#[derive(Deserialize)]
struct CollectionUpdate {
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    private: Option<bool>,
    #[serde(default)]
    theme: Option<String>,
    #[serde(default)]
    position: Option<i64>,
}

/// `PATCH /api/collections/{ns}/{slug}`: what the body names changes, all or nothing. An
/// empty description removes it; `position` is the rank among the owner's collections.
pub async fn update(State(state): State<AppState>, caller: Caller, Path(p): Path<SlugPath>, body: RawBody) -> ApiResult<Json<Value>> {
    let c = curated(&state, &caller, &p.ns, &p.slug).await?;
    let body: CollectionUpdate = body.json(state.limits.json_body, "the collection update").await?;
    let changes = CollectionChanges {
        title: body.title.as_deref().map(clean_title).transpose()?,
        description: body.description.as_deref().map(|d| clean_text(d, DESCRIPTION_MAX, "a collection's description")).transpose()?,
        private: body.private,
        theme: body.theme.as_deref().map(clean_theme).transpose()?,
        rank: body.position.map(clean_position).transpose()?,
    };
    let c = state.db.update_collection(&c.id, &changes, caller.reader()).await?;
    Ok(Json(json!({"success": true, "data": full_json(&state, &caller, &c).await?})))
}

/// `DELETE /api/collections/{ns}/{slug}`: it also leaves every collection that held it.
pub async fn delete(State(state): State<AppState>, caller: Caller, Path(p): Path<SlugPath>) -> ApiResult<Json<Value>> {
    let c = curated(&state, &caller, &p.ns, &p.slug).await?;
    state.db.delete_collection(&c.id).await?;
    Ok(Json(json!({"success": true})))
}

#[derive(Deserialize)]
struct ItemSpec {
    id: String,
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Deserialize)]
struct NewItemBody {
    item: ItemSpec,
    #[serde(default)]
    note: Option<String>,
}

/// `POST /api/collections/{ns}/{slug}/items`: a repository or collection the caller may read
/// (else 404), at the end; 409 if it is there already.
pub async fn add_item(State(state): State<AppState>, caller: Caller, Path(p): Path<SlugPath>, body: RawBody) -> ApiResult<Json<Value>> {
    let c = curated(&state, &caller, &p.ns, &p.slug).await?;
    let body: NewItemBody = body.json(state.limits.json_body, "the item").await?;
    let note = body.note.as_deref().map(|n| clean_text(n, NOTE_MAX, "a note")).transpose()?.flatten();
    let (ns, name) = body.item.id.split_once('/').unwrap_or((&body.item.id, ""));
    match body.item.kind.as_str() {
        "space" => {
            return Err(ApiError::bad_request("Commons hosts no Spaces: a collection holds models, datasets, algorithms and collections"));
        }
        "paper" => {
            return Err(ApiError::bad_request("Commons hosts no papers: a collection holds models, datasets, algorithms and collections"));
        }
        "collection" => {
            let target = visible(&state, &caller, ns, name).await?;
            if target.id == c.id {
                return Err(ApiError::bad_request("a collection cannot hold itself"));
            }
            state.db.add_collection_item(&c.id, NewItem::Collection(&target), note.as_deref()).await?;
        }
        other => {
            let kind = RepoKind::parse(other).ok_or_else(|| {
                ApiError::bad_request(format!("an item's type is model, dataset, algorithm or collection, not {other:?}"))
            })?;
            let repo = state.repos.find(kind, ns, name, caller.reader()).await?;
            state.db.add_collection_item(&c.id, NewItem::Repo(&repo), note.as_deref()).await?;
        }
    }
    let c = visible(&state, &caller, &p.ns, &p.slug).await?;
    Ok(Json(full_json(&state, &caller, &c).await?))
}

#[derive(Deserialize)]
struct ItemUpdate {
    #[serde(default)]
    note: Option<String>,
    #[serde(default)]
    position: Option<i64>,
}

/// The item id of a path, or 404.
fn item_id(p: &ItemPath) -> ApiResult<String> {
    let id = p.item.to_ascii_lowercase();
    if is_collection_id(&id) {
        Ok(id)
    } else {
        Err(ApiError::new(StatusCode::NOT_FOUND, "NotFound", format!("item {} of this collection not found", p.item)))
    }
}

/// `PATCH /api/collections/{ns}/{slug}/items/{item}`: its note (empty removes it) and its rank.
pub async fn update_item(State(state): State<AppState>, caller: Caller, Path(p): Path<ItemPath>, body: RawBody) -> ApiResult<Json<Value>> {
    let c = curated(&state, &caller, &p.ns, &p.slug).await?;
    let item = item_id(&p)?;
    let body: ItemUpdate = body.json(state.limits.json_body, "the item update").await?;
    let note = body.note.as_deref().map(|n| clean_text(n, NOTE_MAX, "a note")).transpose()?;
    let rank = body.position.map(clean_position).transpose()?;
    state.db.update_collection_item(&c.id, &item, note.as_ref().map(Option::as_deref), rank, caller.reader()).await?;
    let c = visible(&state, &caller, &p.ns, &p.slug).await?;
    Ok(Json(json!({"success": true, "data": full_json(&state, &caller, &c).await?})))
}

/// `DELETE /api/collections/{ns}/{slug}/items/{item}`.
pub async fn delete_item(State(state): State<AppState>, caller: Caller, Path(p): Path<ItemPath>) -> ApiResult<Json<Value>> {
    let c = curated(&state, &caller, &p.ns, &p.slug).await?;
    let item = item_id(&p)?;
    state.db.delete_collection_item(&c.id, &item).await?;
    Ok(Json(json!({"success": true})))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn titled(title: &str) -> Collection {
        Collection {
            id: "0123456789abcdef01234567".into(),
            owner: "alice".into(),
            title: title.into(),
            description: None,
            private: false,
            theme: "pink".into(),
            position: 0,
            created_at: 0,
            updated_at: 0,
        }
    }

    #[test]
    fn a_slug_is_the_owner_the_title_in_words_and_the_id() {
        let id = "0123456789abcdef01234567";
        assert_eq!(slug_of(&titled("My cool stuff 3f2a-9b")), format!("alice/my-cool-stuff-3f2a-9b-{id}"));
        assert_eq!(slug_of(&titled("  ICCV: Oct. 2023!  ")), format!("alice/iccv-oct-2023-{id}"));
        assert_eq!(slug_of(&titled("日本語")), format!("alice/collection-{id}"));
    }
}
