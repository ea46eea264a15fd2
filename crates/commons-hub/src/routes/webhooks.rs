//! Webhook settings, as the Hub serves them to `huggingface_hub`'s `create_webhook`,
//! `get_webhook`, `list_webhooks`, `update_webhook`, `enable_webhook`, `disable_webhook` and
//! `delete_webhook`:
//!
//! - `GET  /api/settings/webhooks` → `[webhook, …]`
//! - `POST /api/settings/webhooks` `{url, watched, domains, secret?}` → `{"webhook": …}`
//! - `GET  /api/settings/webhooks/{id}`, `POST …/{id}` (update), `DELETE …/{id}`
//! - `POST /api/settings/webhooks/{id}/enable`, `…/disable`
//!
//! A webhook belongs to the user whose write token made it; every route needs a write token of
//! that whole account (not a lease token, nor a worker or read token: a webhook's JSON carries
//! its secret). Another user's webhook looks missing (404). Commons posts to URLs only: a
//! webhook that would start a Job (`jobSourceId`) is refused. What is delivered, and when:
//! `crate::webhooks`.

use super::Path;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use commons_db::webhooks::{NewWebhook, WatchedItem, Webhook, WebhookChange, WebhookDomains};
use commons_db::{Scope, Token};
use commons_repo::names::validate_repo_name;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{base_url, iso_time};
use crate::AppState;
use crate::auth::Caller;
use crate::body::RawBody;
use crate::error::{ApiError, ApiResult};

/// Webhooks one account may have.
pub const MAX_WEBHOOKS: usize = 25;
/// Items one webhook may watch.
pub const MAX_WATCHED: usize = 100;
/// Longest target URL, and longest secret (in characters).
pub const MAX_URL: usize = 2048;
pub const MAX_SECRET: usize = 200;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/settings/webhooks", get(list).post(create))
        .route("/api/settings/webhooks/{id}", get(one).post(update).delete(delete))
        .route("/api/settings/webhooks/{id}/enable", post(enable))
        .route("/api/settings/webhooks/{id}/disable", post(disable))
}

/// A write token of a whole account: the owner of the webhooks it manages.
fn owner(caller: &Caller) -> ApiResult<&Token> {
    let token = caller.require_account()?;
    if token.scope != Scope::Write {
        return Err(ApiError::forbidden(format!("this token has {} scope; managing webhooks needs a write token", token.scope.as_str())));
    }
    Ok(token)
}

fn not_found(id: &str) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "NotFound", format!("Webhook {id} not found"))
}

fn webhook_json(h: &Webhook) -> Value {
    let mut domains = Vec::new();
    if h.domains.repo {
        domains.push("repo");
    }
    if h.domains.discussion {
        domains.push("discussion");
    }
    json!({
        "id": h.id,
        "url": h.url,
        "job": null,
        "watched": h.watched.iter().map(|w| json!({"type": w.kind, "name": w.name})).collect::<Vec<_>>(),
        "domains": domains,
        "secret": h.secret,
        "disabled": h.disabled,
        "createdAt": iso_time(h.created_at),
        "updatedAt": iso_time(h.updated_at),
        "lastDelivery": h.last_delivery.as_ref().map(|d| json!({
            "at": iso_time(d.at),
            "event": d.event,
            "status": d.status,
            "error": d.error,
            "attempts": d.attempts,
            "ok": d.error.is_none(),
        })),
    })
}

#[derive(Deserialize)]
struct WatchedBody {
    #[serde(rename = "type")]
    kind: String,
    name: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WebhookBody {
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    watched: Option<Vec<WatchedBody>>,
    #[serde(default)]
    domains: Option<Vec<String>>,
    #[serde(default)]
    secret: Option<String>,
    #[serde(default)]
    job_source_id: Option<Value>,
    #[serde(default)]
    secrets: Option<Value>,
}

impl WebhookBody {
    /// Commons posts to URLs; it runs no Job from a webhook.
    fn refuse_jobs(&self) -> ApiResult<()> {
        if self.job_source_id.as_ref().is_some_and(|v| !v.is_null()) || self.secrets.as_ref().is_some_and(|v| !v.is_null()) {
            return Err(ApiError::bad_request("Commons webhooks post to a url; they cannot start a Job (jobSourceId, secrets)"));
        }
        Ok(())
    }
}

/// An http or https URL with a host, at most [`MAX_URL`] characters, no spaces.
fn checked_url(url: &str) -> ApiResult<String> {
    if url.chars().count() > MAX_URL {
        return Err(ApiError::bad_request(format!("a webhook's url has {MAX_URL} characters at most")));
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(ApiError::bad_request("a webhook's url has no spaces or control characters"));
    }
    let parsed = reqwest::Url::parse(url).map_err(|e| ApiError::bad_request(format!("the webhook's url {url:?} is not a URL: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(ApiError::bad_request(format!("a webhook's url is http or https, not {}", parsed.scheme())));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(ApiError::bad_request("a webhook's url names a host"));
    }
    Ok(url.to_string())
}

/// Watched items by their shape: a user or organization by a namespace, a repository by
/// `namespace/name`. They need not exist (yet). Repeats are dropped.
fn checked_watched(items: Vec<WatchedBody>) -> ApiResult<Vec<WatchedItem>> {
    if items.len() > MAX_WATCHED {
        return Err(ApiError::bad_request(format!("a webhook watches {MAX_WATCHED} items at most, not {}", items.len())));
    }
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        match item.kind.as_str() {
            "user" | "org" => validate_repo_name(&item.name, &format!("{} name", item.kind))?,
            "model" | "dataset" | "space" | "algorithm" => {
                let Some((ns, name)) = item.name.split_once('/') else {
                    return Err(ApiError::bad_request(format!("a watched {} is named namespace/name, not {:?}", item.kind, item.name)));
                };
                validate_repo_name(ns, "namespace")?;
                validate_repo_name(name, &format!("{} name", item.kind))?;
            }
            other => {
                return Err(ApiError::bad_request(format!(
                    "a watched item's type is user, org, model, dataset, space or algorithm, not {other:?}"
                )));
            }
        }
        if seen.insert((item.kind.clone(), item.name.to_ascii_lowercase())) {
            out.push(WatchedItem { kind: item.kind, name: item.name });
        }
    }
    Ok(out)
}

fn checked_domains(domains: &[String]) -> ApiResult<WebhookDomains> {
    let mut out = WebhookDomains { repo: false, discussion: false };
    for domain in domains {
        match domain.as_str() {
            "repo" => out.repo = true,
            "discussion" => out.discussion = true,
            other => return Err(ApiError::bad_request(format!("a webhook's domains are repo and discussion, not {other:?}"))),
        }
    }
    if !out.repo && !out.discussion {
        return Err(ApiError::bad_request("a webhook listens to one domain at least: repo, discussion"));
    }
    Ok(out)
}

/// At most [`MAX_SECRET`] printable ASCII characters (it travels in a header); empty is none.
fn checked_secret(secret: &str) -> ApiResult<Option<String>> {
    if secret.is_empty() {
        return Ok(None);
    }
    if secret.chars().count() > MAX_SECRET {
        return Err(ApiError::bad_request(format!("a webhook's secret has {MAX_SECRET} characters at most")));
    }
    if !secret.chars().all(|c| c.is_ascii_graphic() || c == ' ') || secret.starts_with(' ') || secret.ends_with(' ') {
        return Err(ApiError::bad_request(
            "a webhook's secret is printable ASCII (it is sent in the X-Webhook-Secret header), with no space at either end",
        ));
    }
    Ok(Some(secret.to_string()))
}

/// `GET /api/settings/webhooks`: the caller's webhooks, oldest first.
async fn list(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    let token = owner(&caller)?;
    let hooks = state.db.webhooks_of(token.user.id).await?;
    Ok(Json(Value::Array(hooks.iter().map(webhook_json).collect())))
}

/// `POST /api/settings/webhooks`.
async fn create(State(state): State<AppState>, caller: Caller, headers: HeaderMap, body: RawBody) -> ApiResult<Json<Value>> {
    let token = owner(&caller)?;
    let body: WebhookBody = body.json(state.limits.json_body, "the webhook").await?;
    body.refuse_jobs()?;
    let url = checked_url(body.url.as_deref().ok_or_else(|| ApiError::bad_request("a webhook needs a url"))?)?;
    let watched = checked_watched(body.watched.unwrap_or_default())?;
    if watched.is_empty() {
        return Err(ApiError::bad_request("a webhook watches one item at least (a user, an org or a repository)"));
    }
    let domains = match &body.domains {
        Some(domains) => checked_domains(domains)?,
        None => WebhookDomains { repo: true, discussion: true },
    };
    let secret = match body.secret.as_deref() {
        Some(s) => checked_secret(s)?,
        None => None,
    };
    let link_base = base_url(&state, &headers);
    let hook = state.db.create_webhook(token.user.id, &NewWebhook { url, watched, domains, secret, link_base }, MAX_WEBHOOKS).await?;
    tracing::info!(webhook = %hook.id, owner = %token.user.name, "webhook created");
    Ok(Json(json!({"webhook": webhook_json(&hook)})))
}

/// `GET /api/settings/webhooks/{id}`.
async fn one(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let token = owner(&caller)?;
    let hook = state.db.webhook(token.user.id, &id).await?.ok_or_else(|| not_found(&id))?;
    Ok(Json(json!({"webhook": webhook_json(&hook)})))
}

/// `POST /api/settings/webhooks/{id}`: what the body names changes. `watched` empty or left
/// out keeps the watched items (the client sends `[]` when it changes something else).
async fn update(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: RawBody,
) -> ApiResult<Json<Value>> {
    let token = owner(&caller)?;
    // Another user's webhook is missing before its body is read.
    state.db.webhook(token.user.id, &id).await?.ok_or_else(|| not_found(&id))?;
    let body: WebhookBody = body.json(state.limits.json_body, "the webhook").await?;
    body.refuse_jobs()?;
    let change = WebhookChange {
        url: body.url.as_deref().map(checked_url).transpose()?,
        watched: checked_watched(body.watched.unwrap_or_default()).map(|w| Some(w).filter(|w| !w.is_empty()))?,
        domains: body.domains.as_deref().map(checked_domains).transpose()?,
        secret: body.secret.as_deref().map(checked_secret).transpose()?,
        link_base: Some(base_url(&state, &headers)),
    };
    let hook = state.db.update_webhook(token.user.id, &id, &change).await.map_err(|e| missing_as(e, &id))?;
    Ok(Json(json!({"webhook": webhook_json(&hook)})))
}

/// `POST /api/settings/webhooks/{id}/enable`.
async fn enable(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    set_disabled(state, caller, id, false).await
}

/// `POST /api/settings/webhooks/{id}/disable`: it receives nothing until enabled again.
async fn disable(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    set_disabled(state, caller, id, true).await
}

async fn set_disabled(state: AppState, caller: Caller, id: String, disabled: bool) -> ApiResult<Json<Value>> {
    let token = owner(&caller)?;
    let hook = state.db.set_webhook_disabled(token.user.id, &id, disabled).await.map_err(|e| missing_as(e, &id))?;
    Ok(Json(json!({"webhook": webhook_json(&hook)})))
}

/// `DELETE /api/settings/webhooks/{id}`.
async fn delete(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let token = owner(&caller)?;
    if !state.db.delete_webhook(token.user.id, &id).await? {
        return Err(not_found(&id));
    }
    tracing::info!(webhook = %id, owner = %token.user.name, "webhook deleted");
    Ok(Json(json!({})))
}

/// The database's not-found as this API's.
fn missing_as(e: commons_db::DbError, id: &str) -> ApiError {
    match e {
        commons_db::DbError::NotFound(_) => not_found(id),
        other => other.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_domains_secrets_and_watched_items_are_checked_by_shape() {
        assert!(checked_url("https://webhook.site/test").is_ok());
        assert!(checked_url("http://127.0.0.1:8080/hook?x=1").is_ok());
        for bad in ["ftp://example.com/", "not a url", "https://", "file:///etc/passwd", "javascript:alert(1)"] {
            assert!(checked_url(bad).is_err(), "{bad}");
        }
        assert!(checked_url(&format!("https://example.com/{}", "a".repeat(MAX_URL))).is_err());
        assert!(checked_domains(&["repo".into()]).is_ok());
        assert!(checked_domains(&[]).is_err());
        assert!(checked_domains(&["space".into()]).is_err());
        assert_eq!(checked_secret("").unwrap(), None);
        assert!(checked_secret("my-secret").unwrap().is_some());
        assert!(checked_secret(&"s".repeat(MAX_SECRET + 1)).is_err());
        assert!(checked_secret("line\nbreak").is_err());
        let item = |kind: &str, name: &str| WatchedBody { kind: kind.into(), name: name.into() };
        let ok =
            checked_watched(vec![item("user", "julien-c"), item("org", "HuggingFaceH4"), item("model", "a/b"), item("user", "JULIEN-C")]);
        assert_eq!(ok.unwrap().len(), 3, "a repeat is dropped");
        assert!(checked_watched(vec![item("model", "no-namespace")]).is_err());
        assert!(checked_watched(vec![item("bucket", "x")]).is_err());
        assert!(checked_watched(vec![item("user", "../x")]).is_err());
        assert!(checked_watched((0..=MAX_WATCHED).map(|i| item("user", &format!("u{i}"))).collect()).is_err());
    }
}
