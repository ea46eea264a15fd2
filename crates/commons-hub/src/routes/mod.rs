//! Route table and the helpers every handler shares.

mod access_requests;
mod collections;
mod compute;
mod discussions;
mod files;
mod inference;
mod leaderboards;
mod lfs;
mod market;
mod meta;
mod orgs;
mod repos;
mod storage;
mod upload;
mod viewer;
mod webhooks;
mod xet;

/// axum's `Query` and `Path` extractors with the API's rejection: a query string or path segment
/// that does not parse is a JSON `{"error", "message"}` 400, like every other bad input, not
/// axum's plain-text answer.
pub(crate) struct Query<T>(pub T);
pub(crate) struct Path<T>(pub T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> axum::extract::FromRequestParts<S> for Query<T> {
    type Rejection = crate::ApiError;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(Self(value)),
            Err(e) => Err(crate::ApiError::bad_request(e.body_text())),
        }
    }
}

impl<T: serde::de::DeserializeOwned + Send, S: Send + Sync> axum::extract::FromRequestParts<S> for Path<T> {
    type Rejection = crate::ApiError;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Self(value)),
            // A parameter the route does not have is our bug, not the caller's.
            Err(e) if e.status().is_server_error() => Err(crate::ApiError::internal(e.body_text())),
            Err(e) => Err(crate::ApiError::bad_request(e.body_text())),
        }
    }
}

pub(crate) use compute::{may_see_job, router as compute_router, visible_job};
pub(crate) use discussions::conflicts as pull_request_conflicts;
pub(crate) use inference::{
    IMAGE_BODY, Inputs, engine as inference_engine, load as load_model, run as run_model, run_generation, wait_for,
};
pub(crate) use lfs::sweep_stale_parts;
pub(crate) use upload::{Staged, commit_staged};
pub use viewer::ViewerCache;
pub(crate) use viewer::{ViewerPage, viewer_page};

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::HeaderMap;
use axum::routing::{get, post, put};
use commons_db::{Repo, RepoKind};
use tower_http::LatencyUnit;
use tower_http::request_id::{MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer};
use tower_http::trace::{DefaultOnResponse, TraceLayer};

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::pages;

pub fn router(state: AppState) -> Router {
    // Per-repo API routes, mounted under /api/{models|datasets|algorithms}/{ns}/{name}.
    let repo_api = Router::new()
        // Another method on `/api/{kind}/{id}/{endpoint}` is a one-segment id, not a 405.
        .route("/", get(repos::info).fallback(crate::not_found))
        .route("/revision/{rev}", get(repos::info_at))
        .route("/tree/{rev}", get(repos::tree_root))
        .route("/tree/{rev}/{*path}", get(repos::tree_path))
        .route("/paths-info/{rev}", post(repos::paths_info))
        .route("/refs", get(repos::refs))
        .route("/auth-check", get(repos::auth_check))
        .route("/super-squash/{branch}", post(repos::super_squash))
        .route("/lfs-files", get(storage::list))
        .route("/lfs-files/batch", post(storage::delete))
        .route("/auth-check/{write}", get(repos::auth_check))
        .route("/commits/{rev}", get(repos::commits))
        .route("/preupload/{rev}", post(upload::preupload))
        .route("/commit/{rev}", post(upload::commit))
        .route("/branch/{branch}", post(repos::create_branch).delete(repos::delete_branch))
        .route("/tag/{rev}", post(repos::create_tag).delete(repos::delete_tag))
        .route("/settings", put(repos::settings))
        .route("/ask-access", post(access_requests::ask))
        .route("/user-access-request/handle", post(access_requests::handle))
        .route("/user-access-request/grant", post(access_requests::grant))
        .route("/user-access-request/{status}", get(access_requests::list))
        .route("/like", post(market::like).delete(market::unlike))
        .route("/likers", get(market::likers))
        .route("/lineage", get(market::lineage))
        .route("/discussions", get(discussions::list).post(discussions::create))
        .route("/discussions/{num}", get(discussions::details))
        .route("/discussions/{num}/comment", post(discussions::comment))
        .route("/discussions/{num}/title", post(discussions::title))
        .route("/discussions/{num}/status", post(discussions::status))
        .route("/discussions/{num}/merge", post(discussions::merge))
        .route("/discussions/{num}/comment/{id}/edit", post(discussions::edit_comment))
        .route("/discussions/{num}/comment/{id}/hide", post(discussions::hide_comment))
        .route("/leaderboards", get(leaderboards::of_model))
        .route("/parquet", get(viewer::hub_parquet))
        .route("/parquet/{config}", get(viewer::hub_parquet))
        .route("/parquet/{config}/{split}", get(viewer::hub_parquet))
        .route("/parquet/{config}/{split}/{file}", get(viewer::hub_parquet))
        .merge(xet::token_routes());

    let file_routes = Router::new()
        .route("/resolve/{rev}/{*path}", get(files::resolve).head(files::resolve))
        .route("/info/lfs/objects/batch", post(lfs::batch));

    Router::new()
        .route("/api/whoami-v2", get(meta::whoami))
        .route("/api/validate-yaml", post(meta::validate_yaml))
        .route("/api/users/{name}/likes", get(market::of_user))
        .route("/api/users/{name}/overview", get(orgs::user_overview))
        .route("/api/organizations/{org}/overview", get(orgs::overview))
        .route("/api/organizations/{org}/members", get(orgs::members))
        .route("/api/organizations/{org}/members/{user}", axum::routing::delete(orgs::remove))
        .route("/api/organizations/{org}/members/{user}/role", put(orgs::set_role))
        .route("/api/organizations/{org}/settings", put(orgs::settings))
        .nest("/api/datasets-server", viewer::routes())
        .route("/api/leaderboards", get(leaderboards::boards))
        .route("/api/leaderboards/{ns}/{name}", get(leaderboards::board))
        .route("/api/models-tags-by-type", get(|s, c| market::tags_by_type(s, c, RepoKind::Model)))
        .route("/api/datasets-tags-by-type", get(|s, c| market::tags_by_type(s, c, RepoKind::Dataset)))
        .route("/api/algorithms-tags-by-type", get(|s, c| market::tags_by_type(s, c, RepoKind::Algorithm)))
        .route("/api/repos/create", post(repos::create))
        .route("/api/repos/delete", axum::routing::delete(repos::delete))
        .route("/api/repos/move", post(repos::move_repo))
        .route("/api/collections", get(collections::list).post(collections::create))
        .route("/api/collections/{ns}/{slug}", get(collections::get).patch(collections::update).delete(collections::delete))
        .route("/api/collections/{ns}/{slug}/items", post(collections::add_item))
        .route("/api/collections/{ns}/{slug}/items/{item}", axum::routing::patch(collections::update_item).delete(collections::delete_item))
        .route("/api/{kind}", get(repos::list))
        .nest("/api/{kind}/{ns}/{name}", repo_api)
        .route("/api/lfs/objects/{oid}", put(lfs::upload_basic))
        .route("/api/lfs/objects/{oid}/part/{part}", put(lfs::upload_part))
        .route("/api/lfs/objects/{oid}/complete", post(lfs::complete_multipart))
        .route("/api/lfs/objects/{oid}/verify", post(lfs::verify))
        .nest("/datasets/{ns}/{name}", file_routes.clone().merge(pages::repo_routes(RepoKind::Dataset)))
        .nest("/algorithms/{ns}/{name}", file_routes.clone().merge(pages::repo_routes(RepoKind::Algorithm)))
        .nest("/{ns}/{name}", file_routes.merge(pages::repo_routes(RepoKind::Model)))
        .merge(pages::routes())
        .merge(xet::cas_router())
        .merge(webhooks::routes())
        .merge(inference::routes())
        .route("/health", get(|| async { "ok" }))
        .route("/ready", get(crate::metrics::ready))
        .route("/metrics", get(crate::metrics::scrape))
        // Handlers read bodies themselves, after authorisation and within `AppState::limits`
        // (crate::body); this bounds any extractor that would buffer one anyway.
        .layer(DefaultBodyLimit::max(state.limits.json_body as usize))
        // One line per answered request at INFO (an access log: method, path without its
        // query, which may hold a signed URL's signature; status, latency), in a span naming the
        // request id the answer carries, so a client's quoted id finds the server's lines.
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|request: &axum::http::Request<axum::body::Body>| {
                    let id = request.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or_default();
                    tracing::info_span!("request", method = %request.method(), path = request.uri().path(), request_id = id)
                })
                .on_response(DefaultOnResponse::new().level(tracing::Level::INFO).latency_unit(LatencyUnit::Micros)),
        )
        // Every answer names its request, as the Hub's do (clients quote it in their errors).
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(RandomRequestId))
        .with_state(state)
}

/// A request id: 16 random bytes in hex.
#[derive(Clone, Copy)]
struct RandomRequestId;

impl MakeRequestId for RandomRequestId {
    fn make_request_id<B>(&mut self, _request: &axum::http::Request<B>) -> Option<RequestId> {
        axum::http::HeaderValue::from_str(&hex::encode(rand::random::<[u8; 16]>())).ok().map(RequestId::new)
    }
}

/// `models` / `datasets` / `algorithms` (API path form) to a repo kind.
pub(crate) fn kind_from_plural(plural: &str) -> ApiResult<RepoKind> {
    match RepoKind::from_plural(plural) {
        Some(kind) => Ok(kind),
        None if plural == "spaces" => {
            Err(ApiError::new(axum::http::StatusCode::NOT_FOUND, "RepoNotFound", "Spaces are not hosted on Commons"))
        }
        None => Err(ApiError::new(axum::http::StatusCode::NOT_FOUND, "NotFound", format!("unknown repository type {plural:?}"))),
    }
}

/// `model` / `dataset` / `algorithm` (the `type` field of request bodies) to a repo kind.
pub(crate) fn kind_from_singular(s: Option<&str>) -> ApiResult<RepoKind> {
    let s = s.unwrap_or("model");
    RepoKind::parse(s).ok_or_else(|| ApiError::bad_request(commons_protocol::UnknownRepoKind(s.to_string()).to_string()))
}

/// Loads a repository the caller may read; private repos of others look missing.
pub(crate) async fn readable_repo(state: &AppState, caller: &Caller, kind: RepoKind, ns: &str, name: &str) -> ApiResult<Repo> {
    Ok(state.repos.find(kind, ns, name, caller.reader()).await?)
}

/// Refuses `repo`'s files (their bytes, through any route) to a caller who may not read them:
/// a gated repository's ([`commons_repo::access::may_read_content`]).
pub(crate) async fn require_content(state: &AppState, caller: &Caller, repo: &Repo) -> ApiResult<()> {
    let token = caller.0.as_ref();
    let request = match (repo.gated, token.filter(|t| !t.is_lease())) {
        (Some(_), Some(t)) => state.db.access_status(repo, t.user.id).await?,
        _ => None,
    };
    Ok(commons_repo::access::may_read_content(repo, token, request)?)
}

/// Loads a repository the caller may write to.
pub(crate) async fn writable_repo(state: &AppState, caller: &Caller, kind: RepoKind, ns: &str, name: &str) -> ApiResult<Repo> {
    let repo = readable_repo(state, caller, kind, ns, name).await?;
    caller.require_write_repo(&repo)?;
    Ok(repo)
}

/// Loads a repository whose settings and refs the caller may administer: a write token of a
/// whole account that writes it (a token limited to one branch may only commit to it).
pub(crate) async fn administered_repo(state: &AppState, caller: &Caller, kind: RepoKind, ns: &str, name: &str) -> ApiResult<Repo> {
    let repo = readable_repo(state, caller, kind, ns, name).await?;
    caller.require_administer_repo(&repo)?;
    Ok(repo)
}

/// Resolves a revision; a missing one is `RevisionNotFound`.
pub(crate) async fn resolve(state: &AppState, repo: &Repo, rev: &str) -> ApiResult<String> {
    Ok(state.repos.pin(repo, rev).await?)
}

/// The absolute base URL clients should use for links we hand out.
pub(crate) fn base_url(state: &AppState, headers: &HeaderMap) -> String {
    if let Some(url) = &state.public_url {
        return url.trim_end_matches('/').to_string();
    }
    let host = headers.get(axum::http::header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("localhost");
    let scheme = headers.get("x-forwarded-proto").and_then(|h| h.to_str().ok()).unwrap_or("http");
    format!("{scheme}://{host}")
}

/// HF's timestamp form: RFC 3339 with milliseconds and `Z`.
pub(crate) fn iso_time(unix: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(unix).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let fmt = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].000Z");
    t.format(&fmt).unwrap_or_default()
}

/// Query booleans arrive as `true`, `True` or `1` depending on the HTTP library.
pub(crate) fn query_bool(v: Option<&String>) -> bool {
    matches!(v.map(|s| s.to_ascii_lowercase()).as_deref(), Some("true" | "1" | "yes"))
}
