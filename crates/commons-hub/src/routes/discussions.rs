//! Discussions and pull requests, as the Hub serves them to `huggingface_hub`'s
//! `get_repo_discussions`, `get_discussion_details`, `create_discussion`, `comment_discussion`,
//! `rename_discussion`, `change_discussion_status`, `merge_pull_request`,
//! `edit_discussion_comment` and `hide_discussion_comment`:
//!
//! - `GET  /api/{kind}s/{ns}/{name}/discussions?type=&status=&author=&p=`
//! - `POST /api/{kind}s/{ns}/{name}/discussions` `{title, description, pullRequest}`
//! - `GET  /api/{kind}s/{ns}/{name}/discussions/{num}?diff=1`
//! - `POST …/discussions/{num}/comment` `{comment}`, `/title` `{title}`,
//!   `/status` `{status, comment?}`, `/merge` `{comment?}`,
//!   `/comment/{id}/edit` `{content}`, `/comment/{id}/hide`
//!
//! Reading needs what reading the repository needs; writing needs a write token of an account
//! that may read it ([`commons_repo::access`]); merging needs a writer of the target branch.

use super::{Path, Query};
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use commons_db::{Discussion, DiscussionEvent, DiscussionFilter, DiscussionStatus, EventKind, Repo};
use commons_repo::access;
use commons_repo::collab::{self, FileChange, MergeRefusal};
use serde::Deserialize;
use serde_json::{Value, json};

use super::repos::RepoPath;
use super::{base_url, iso_time, kind_from_plural, readable_repo};
use crate::AppState;
use crate::auth::Caller;
use crate::body::RawBody;
use crate::error::{ApiError, ApiResult};

/// Discussions per page of a listing (the Hub's).
const PAGE: usize = 50;
/// Pages a listing may skip to: bounds the cost of an OFFSET.
const MAX_PAGE: usize = 10_000;
/// A pull request's diff shows files up to this size, this much in all, this many files.
const DIFF_FILE: i64 = 256 * 1024;
const DIFF_BYTES: i64 = 4 << 20;
const DIFF_FILES: usize = 300;
const DIFF_TIME: std::time::Duration = std::time::Duration::from_millis(200);

#[derive(Deserialize)]
pub struct DiscussionPath {
    kind: String,
    ns: String,
    name: String,
    num: String,
}

#[derive(Deserialize)]
pub struct CommentPath {
    kind: String,
    ns: String,
    name: String,
    num: String,
    id: String,
}

#[derive(Deserialize, Default)]
pub struct ListQuery {
    #[serde(rename = "type")]
    kind: Option<String>,
    status: Option<String>,
    author: Option<String>,
    p: Option<String>,
}

/// The repository and the discussion a path names.
async fn found(state: &AppState, caller: &Caller, kind: &str, ns: &str, name: &str, num: &str) -> ApiResult<(Repo, Discussion)> {
    let repo = readable_repo(state, caller, kind_from_plural(kind)?, ns, name).await?;
    let missing =
        || ApiError::new(StatusCode::NOT_FOUND, "DiscussionNotFound", format!("Discussion {num} not found in {}", repo.full_name()));
    let n: i64 = num.parse().ok().filter(|n| *n > 0).ok_or_else(missing)?;
    let d = state.db.discussion(&repo, n).await?.ok_or_else(missing)?;
    Ok((repo, d))
}

fn user(name: &str) -> Value {
    json!({"name": name, "type": "user", "fullname": name, "avatarUrl": null, "isPro": false})
}

fn summary(repo: &Repo, d: &Discussion, comments: Option<i64>) -> Value {
    json!({
        "num": d.num,
        "title": d.title,
        "status": d.status.as_str(),
        "isPullRequest": d.is_pr,
        "createdAt": iso_time(d.created_at),
        "author": user(&d.author),
        "repo": {"name": repo.full_name(), "type": repo.kind.as_str()},
        "numComments": comments,
        "pinned": false,
        "locked": false,
        "topReactions": [],
    })
}

/// An event as the Hub writes it. A hidden comment's text is withheld.
fn event_json(repo: &Repo, e: &DiscussionEvent) -> Value {
    let data = match e.kind {
        EventKind::Comment => {
            let files = format!("/{}{}/resolve/main/", repo.kind.url_prefix(), repo.full_name());
            let shown = |text: &str| if e.hidden { "This comment has been hidden".to_string() } else { text.to_string() };
            let latest = e.history.last();
            let revision = |raw: String, author: &str, at: i64| json!({"raw": raw, "html": crate::pages::render_markdown(&raw, &files), "updatedAt": iso_time(at), "author": user(author)});
            json!({
                "edited": e.edited(),
                "hidden": e.hidden,
                "hiddenBy": e.hidden_by,
                "latest": revision(shown(&e.body), latest.map_or(&e.author, |r| &r.author), latest.map_or(e.created_at, |r| r.created_at)),
                "numEdits": e.history.len().saturating_sub(1),
                "editors": e.history.iter().map(|r| r.author.as_str()).collect::<std::collections::BTreeSet<_>>(),
                "history": e.history.iter().rev().map(|r| revision(shown(&r.body), &r.author, r.created_at)).collect::<Vec<_>>(),
                "reactions": [],
            })
        }
        EventKind::StatusChange => json!({"status": e.body}),
        EventKind::Commit => json!({"oid": e.body, "subject": e.detail}),
        EventKind::TitleChange => json!({"from": e.detail, "to": e.body}),
    };
    json!({"id": e.id, "type": e.kind.as_str(), "createdAt": iso_time(e.created_at), "author": user(&e.author), "data": data})
}

/// `GET …/discussions`: one page, newest first.
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(p): Path<RepoPath>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    let repo = readable_repo(&state, &caller, kind_from_plural(&p.kind)?, &p.ns, &p.name).await?;
    let pull_requests = match q.kind.as_deref() {
        None | Some("all") => None,
        Some("discussion") => Some(false),
        Some("pull_request") => Some(true),
        Some(other) => return Err(ApiError::bad_request(format!("type is all, discussion or pull_request, not {other:?}"))),
    };
    let open = match q.status.as_deref() {
        None | Some("all") => None,
        Some("open") => Some(true),
        Some("closed") => Some(false),
        Some(other) => return Err(ApiError::bad_request(format!("status is all, open or closed, not {other:?}"))),
    };
    let page = match q.p.as_deref().map(str::parse::<usize>) {
        None => 0,
        Some(Ok(n)) if n < MAX_PAGE => n,
        _ => return Err(ApiError::bad_request(format!("p is a page number below {MAX_PAGE}"))),
    };
    let filter = DiscussionFilter { pull_requests, open, author: q.author.filter(|a| !a.is_empty()) };
    let (items, total) = state.db.discussions(&repo, &filter, page * PAGE, PAGE).await?;
    Ok(Json(json!({
        "discussions": items.iter().map(|d| summary(&repo, d, None)).collect::<Vec<_>>(),
        "count": total,
        "start": page * PAGE,
    })))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NewDiscussion {
    title: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    pull_request: bool,
}

/// `POST …/discussions`: a discussion, or a draft pull request against `main`.
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(p): Path<RepoPath>,
    body: RawBody,
) -> ApiResult<Json<Value>> {
    let repo = readable_repo(&state, &caller, kind_from_plural(&p.kind)?, &p.ns, &p.name).await?;
    let token = caller.require_participant(&repo)?;
    state.count_discussion_write(&token.user.name)?;
    let body: NewDiscussion = body.json(state.limits.json_body, "the discussion").await?;
    let description = body.description.unwrap_or_default();
    let pr = body.pull_request.then_some(("main", true));
    let d = state.repos.open_discussion(&repo, &token.user.name, &body.title, description.trim(), pr).await?;
    state.webhooks.emit(crate::webhooks::Event::discussion_opened(&repo, &d));
    details_json(&state, &repo, &d, false, &headers).await.map(Json)
}

#[derive(Deserialize, Default)]
pub struct DetailsQuery {
    diff: Option<String>,
}

/// `GET …/discussions/{num}`: the discussion with its events; a pull request with its target,
/// conflicting files and (with `?diff=1`) its diff.
pub async fn details(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(p): Path<DiscussionPath>,
    Query(q): Query<DetailsQuery>,
) -> ApiResult<Json<Value>> {
    let (repo, d) = found(&state, &caller, &p.kind, &p.ns, &p.name, &p.num).await?;
    let with_diff = super::query_bool(q.diff.as_ref()) && super::require_content(&state, &caller, &repo).await.is_ok();
    details_json(&state, &repo, &d, with_diff, &headers).await.map(Json)
}

async fn details_json(state: &AppState, repo: &Repo, d: &Discussion, with_diff: bool, headers: &HeaderMap) -> ApiResult<Value> {
    let events = state.db.discussion_events(repo, d.num).await?;
    let comments = events.iter().filter(|e| e.kind == EventKind::Comment).count() as i64;
    let mut out = summary(repo, d, Some(comments));
    out["events"] = events.iter().map(|e| event_json(repo, e)).collect();
    out["url"] = json!(format!("{}/{}{}/discussions/{}", base_url(state, headers), repo.kind.url_prefix(), repo.full_name(), d.num));
    if d.is_pr {
        out["changes"] = json!({
            "base": format!("refs/heads/{}", d.target_branch.as_deref().unwrap_or("main")),
            "mergeCommitId": d.merge_commit,
        });
        out["filesWithConflicts"] = json!(conflicts(state, repo, d).await?);
        if with_diff {
            let changes = state.repos.pull_request_changes(repo, d).await?;
            out["diff"] = json!(git_diff(state, &changes).await?);
        }
    }
    Ok(out)
}

/// The paths that would conflict if pull request `d` were merged now (none once it is not open).
pub(crate) async fn conflicts(state: &AppState, repo: &Repo, d: &Discussion) -> ApiResult<Vec<String>> {
    if !d.status.is_active() {
        return Ok(Vec::new());
    }
    Ok(match state.repos.merge_plan(repo, d).await?.1 {
        Err(MergeRefusal::Conflicts(paths)) => paths,
        Ok(_) => Vec::new(),
    })
}

/// A pull request's changes as `git diff` writes them. An LFS file's lines are its pointer, as
/// in git; a file over [`DIFF_FILE`] or past the budget is named without its lines.
async fn git_diff(state: &AppState, changes: &[FileChange]) -> ApiResult<String> {
    let mut out = String::new();
    let mut budget = DIFF_BYTES;
    for (i, c) in changes.iter().enumerate() {
        if i == DIFF_FILES {
            out.push_str(&format!("# … and {} more files\n", changes.len() - DIFF_FILES));
            break;
        }
        let path = &c.path;
        out.push_str(&format!("diff --git a/{path} b/{path}\n"));
        match (&c.old, &c.new) {
            (None, Some(_)) => out.push_str("new file mode 100644\n"),
            (Some(_), None) => out.push_str("deleted file mode 100644\n"),
            _ => {}
        }
        let mut sides = Vec::with_capacity(2);
        let mut shown = true;
        for side in [&c.old, &c.new] {
            sides.push(match side {
                None => Some(String::new()),
                Some(f) if f.lfs => Some(commons_db::lfs_pointer(&f.sha256, f.size)),
                Some(f) if f.size > DIFF_FILE || f.size > budget => {
                    shown = false;
                    None
                }
                Some(f) => {
                    budget -= f.size;
                    String::from_utf8(state.cas.read_to_vec(&f.sha256, DIFF_FILE as u64).await?).ok()
                }
            });
        }
        match (sides[0].take(), sides[1].take()) {
            (Some(old), Some(new)) => {
                let (a, b) = (
                    if c.old.is_some() { format!("a/{path}") } else { "/dev/null".into() },
                    if c.new.is_some() { format!("b/{path}") } else { "/dev/null".into() },
                );
                let diff = similar::TextDiff::configure().timeout(DIFF_TIME).diff_lines(&old, &new);
                out.push_str(&diff.unified_diff().context_radius(3).header(&a, &b).to_string());
            }
            _ if !shown => out.push_str(&format!("# {path}: too large to show here\n")),
            _ => out.push_str(&format!("Binary files a/{path} and b/{path} differ\n")),
        }
    }
    Ok(out)
}

#[derive(Deserialize)]
struct CommentBody {
    comment: String,
}

/// `POST …/discussions/{num}/comment`.
pub async fn comment(
    State(state): State<AppState>,
    caller: Caller,
    Path(p): Path<DiscussionPath>,
    body: RawBody,
) -> ApiResult<Json<Value>> {
    let (repo, d) = found(&state, &caller, &p.kind, &p.ns, &p.name, &p.num).await?;
    let token = caller.require_participant(&repo)?;
    state.count_discussion_write(&token.user.name)?;
    let body: CommentBody = body.json(state.limits.json_body, "the comment").await?;
    let text = collab::clean_comment(&body.comment)?;
    let event = state.db.comment_discussion(&repo, d.num, &token.user.name, text).await?;
    state.webhooks.emit(crate::webhooks::Event::commented(&repo, &d, &event));
    Ok(Json(json!({"newMessage": event_json(&repo, &event)})))
}

#[derive(Deserialize)]
struct TitleBody {
    title: String,
}

/// `POST …/discussions/{num}/title`: by its author or a writer of the repository.
pub async fn title(State(state): State<AppState>, caller: Caller, Path(p): Path<DiscussionPath>, body: RawBody) -> ApiResult<Json<Value>> {
    let (repo, d) = found(&state, &caller, &p.kind, &p.ns, &p.name, &p.num).await?;
    let token = caller.require()?;
    access::may_moderate(token, &repo, &d.author)?;
    let body: TitleBody = body.json(state.limits.json_body, "the title").await?;
    let title = collab::clean_title(&body.title)?;
    let event = state.db.rename_discussion(&repo, d.num, &token.user.name, &title).await?;
    state.webhooks.emit(crate::webhooks::Event::discussion_renamed(&repo, &d, &title));
    Ok(Json(json!({"newTitle": event_json(&repo, &event)})))
}

#[derive(Deserialize)]
struct StatusBody {
    status: String,
    #[serde(default)]
    comment: Option<String>,
}

/// `POST …/discussions/{num}/status`: `open` or `closed`, by its author or a writer.
pub async fn status(State(state): State<AppState>, caller: Caller, Path(p): Path<DiscussionPath>, body: RawBody) -> ApiResult<Json<Value>> {
    let (repo, d) = found(&state, &caller, &p.kind, &p.ns, &p.name, &p.num).await?;
    let token = caller.require()?;
    access::may_moderate(token, &repo, &d.author)?;
    let body: StatusBody = body.json(state.limits.json_body, "the status change").await?;
    let status = match DiscussionStatus::parse(&body.status) {
        Some(s @ (DiscussionStatus::Open | DiscussionStatus::Closed)) => s,
        _ => return Err(ApiError::bad_request(format!("status is open or closed, not {:?}", body.status))),
    };
    let comment = body.comment.as_deref().map(str::trim).filter(|c| !c.is_empty()).map(collab::clean_comment).transpose()?;
    let event = state.db.set_discussion_status(&repo, d.num, &token.user.name, status, comment).await?;
    state.webhooks.emit(crate::webhooks::Event::discussion_status(&repo, &d, status));
    Ok(Json(json!({"newStatus": event_json(&repo, &event)})))
}

#[derive(Deserialize, Default)]
struct MergeBody {
    #[serde(default)]
    comment: Option<String>,
}

/// `POST …/discussions/{num}/merge`: by a writer of the target branch; 409 with the
/// conflicting paths when the target changed them too.
pub async fn merge(State(state): State<AppState>, caller: Caller, Path(p): Path<DiscussionPath>, body: RawBody) -> ApiResult<Json<Value>> {
    let (repo, d) = found(&state, &caller, &p.kind, &p.ns, &p.name, &p.num).await?;
    let target = d.target_branch.clone().ok_or_else(|| ApiError::bad_request(format!("#{} is a discussion, not a pull request", d.num)))?;
    let token = caller.require_write_branch(&repo, &target)?;
    let body: MergeBody = body.json_or_default(state.limits.json_body, "the merge").await?;
    let comment = body.comment.as_deref().map(str::trim).filter(|c| !c.is_empty()).map(collab::clean_comment).transpose()?;
    if d.status != DiscussionStatus::Open {
        let why = if d.status == DiscussionStatus::Draft { "a draft; open it first" } else { d.status.as_str() };
        return Err(ApiError::bad_request(format!("pull request #{} is {why}", d.num)));
    }
    match state.repos.merge(&repo, &d, &token.user.name, comment).await? {
        Ok(commit) => {
            state.webhooks.emit(crate::webhooks::Event::merged(&repo, &d, &commit));
            Ok(Json(json!({"mergeCommitId": commit})))
        }
        Err(MergeRefusal::Conflicts(paths)) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "MergeConflict",
            format!("pull request #{} conflicts with {target} in {}", d.num, paths.join(", ")),
        )
        .with_extra("conflictingFiles", json!(paths))),
    }
}

#[derive(Deserialize)]
struct EditBody {
    content: String,
}

/// `POST …/discussions/{num}/comment/{id}/edit`: by the comment's author.
pub async fn edit_comment(
    State(state): State<AppState>,
    caller: Caller,
    Path(p): Path<CommentPath>,
    body: RawBody,
) -> ApiResult<Json<Value>> {
    let (repo, d) = found(&state, &caller, &p.kind, &p.ns, &p.name, &p.num).await?;
    let token = caller.require_participant(&repo)?;
    let event = comment_event(&state, &repo, &d, &p.id).await?;
    if event.author != token.user.name {
        return Err(ApiError::forbidden("only its author may edit a comment"));
    }
    state.count_discussion_write(&token.user.name)?;
    let body: EditBody = body.json(state.limits.json_body, "the comment").await?;
    let text = collab::clean_comment(&body.content)?;
    state.db.edit_comment(&repo, d.num, &event.id, &token.user.name, text).await?;
    let event = comment_event(&state, &repo, &d, &p.id).await?;
    state.webhooks.emit(crate::webhooks::Event::comment_changed(&repo, &d, &event));
    Ok(Json(json!({"updatedComment": event_json(&repo, &event)})))
}

/// `POST …/discussions/{num}/comment/{id}/hide`: by the comment's author, the discussion's
/// author or a writer of the repository.
pub async fn hide_comment(State(state): State<AppState>, caller: Caller, Path(p): Path<CommentPath>) -> ApiResult<Json<Value>> {
    let (repo, d) = found(&state, &caller, &p.kind, &p.ns, &p.name, &p.num).await?;
    let token = caller.require_participant(&repo)?;
    let event = comment_event(&state, &repo, &d, &p.id).await?;
    if event.author != token.user.name {
        access::may_moderate(token, &repo, &d.author)?;
    }
    state.db.hide_comment(&repo, d.num, &event.id, &token.user.name).await?;
    let event = comment_event(&state, &repo, &d, &p.id).await?;
    state.webhooks.emit(crate::webhooks::Event::comment_changed(&repo, &d, &event));
    Ok(Json(json!({"updatedComment": event_json(&repo, &event)})))
}

async fn comment_event(state: &AppState, repo: &Repo, d: &Discussion, id: &str) -> ApiResult<DiscussionEvent> {
    let id = id.to_ascii_lowercase();
    match state.db.discussion_event(repo, d.num, &id).await? {
        Some(e) if e.kind == EventKind::Comment => Ok(e),
        _ => Err(ApiError::new(StatusCode::NOT_FOUND, "NotFound", format!("comment {id} not found in discussion #{}", d.num))),
    }
}
