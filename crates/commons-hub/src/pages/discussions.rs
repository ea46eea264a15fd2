//! A repository's community tab: discussions and pull requests, one discussion with its
//! comments and (for a pull request) its changes, conflicts and merge button; the forms to open
//! a discussion, comment, close or reopen, and merge. Each form carries the CSRF token and is
//! checked by the API's rules (`commons_repo::access`): the pages add no rule of their own.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect};
use commons_db::{Discussion, DiscussionFilter, DiscussionStatus, EventKind, Repo, RepoKind};
use commons_repo::access;
use commons_repo::collab::{self, MergeRefusal};
use minijinja::Value;
use minijinja::context;
use serde::Deserialize;

use super::session::Visitor;
use super::{PageError, PageForm, PageResult, RepoPath, day, file_diffs, page, page_number, repo_url, repo_value, short};
use crate::AppState;

/// Discussions on a page of the list.
const PAGE: usize = 30;
const MAX_PAGES: usize = 1_000;

async fn found(state: &AppState, visitor: &Visitor, p: &RepoPath, kind: RepoKind) -> Result<(Repo, Discussion), PageError> {
    let repo = state.repos.find(kind, &p.ns, &p.name, visitor.reader()).await?;
    let num = p.num.as_deref().unwrap_or_default();
    let missing = || super::not_found(&format!("There is no discussion #{num} in this repository."));
    let n: i64 = num.parse().ok().filter(|n| *n > 0).ok_or_else(missing)?;
    let d = state.db.discussion(&repo, n).await?.ok_or_else(missing)?;
    Ok((repo, d))
}

fn summary(repo_base: &str, d: &Discussion) -> Value {
    context! {
        num => d.num, title => &d.title, author => &d.author, status => d.status.as_str(), is_pr => d.is_pr,
        date => day(d.created_at), url => format!("{repo_base}/discussions/{}", d.num),
    }
}

/// `/{repo}/discussions?type=&status=&p=`.
pub(crate) async fn list(
    State(state): State<AppState>,
    visitor: Visitor,
    Path(p): Path<RepoPath>,
    Query(q): Query<HashMap<String, String>>,
    kind: RepoKind,
) -> PageResult {
    let repo = state.repos.find(kind, &p.ns, &p.name, visitor.reader()).await?;
    let base = repo_url(kind, &repo.namespace, &repo.name);
    let show = q.get("type").map(String::as_str).unwrap_or("all");
    let status = q.get("status").map(String::as_str).unwrap_or("open");
    let filter = DiscussionFilter {
        pull_requests: match show {
            "pull_request" => Some(true),
            "discussion" => Some(false),
            _ => None,
        },
        open: match status {
            "closed" => Some(false),
            "all" => None,
            _ => Some(true),
        },
        author: None,
    };
    let page_no = page_number(&q, MAX_PAGES)?;
    let (items, total) = state.db.discussions(&repo, &filter, page_no * PAGE, PAGE).await?;
    let link = |t: &str, s: &str, n: usize| format!("{base}/discussions?type={t}&status={s}&p={n}");
    Ok(page(
        &visitor,
        "discussions.html",
        context! {
            repo => repo_value(&repo, None), tab => "community",
            items => items.iter().map(|d| summary(&base, d)).collect::<Vec<_>>(), total,
            show, status,
            filters => [("all", "All"), ("pull_request", "Pull requests"), ("discussion", "Discussions")]
                .iter().map(|(t, label)| context! { label, url => link(t, status, 0), current => *t == show }).collect::<Vec<_>>(),
            statuses => [("open", "Open"), ("closed", "Closed"), ("all", "All")]
                .iter().map(|(s, label)| context! { label, url => link(show, s, 0), current => *s == status }).collect::<Vec<_>>(),
            previous => (page_no > 0).then(|| link(show, status, page_no - 1)),
            next => ((page_no + 1) * PAGE < total as usize).then(|| link(show, status, page_no + 1)),
            may_open => visitor.caller.0.as_ref().is_some_and(|t| access::may_participate(t, &repo).is_ok()),
        },
    ))
}

/// `/{repo}/discussions/new`: the form to open a discussion.
pub(crate) async fn new_form(State(state): State<AppState>, visitor: Visitor, Path(p): Path<RepoPath>, kind: RepoKind) -> PageResult {
    let repo = state.repos.find(kind, &p.ns, &p.name, visitor.reader()).await?;
    let base = repo_url(kind, &repo.namespace, &repo.name);
    if visitor.name().is_none() {
        return super::write::sign_in_first(&format!("{base}/discussions/new"));
    }
    Ok(page(
        &visitor,
        "discussion_new.html",
        context! { repo => repo_value(&repo, None), tab => "community", title => "", description => "", error => None::<String> },
    ))
}

#[derive(Deserialize)]
pub(crate) struct NewForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    title: String,
    #[serde(default)]
    description: String,
}

/// Opens a discussion from the form.
pub(crate) async fn create(
    State(state): State<AppState>,
    visitor: Visitor,
    Path(p): Path<RepoPath>,
    form: PageForm<NewForm>,
    kind: RepoKind,
) -> PageResult {
    let form = form.0;
    visitor.check_csrf(&form.csrf)?;
    let repo = state.repos.find(kind, &p.ns, &p.name, visitor.reader()).await?;
    let token = visitor.require()?;
    access::may_participate(token, &repo)?;
    state.count_discussion_write(&token.user.name)?;
    let description = form.description.trim();
    match state.repos.open_discussion(&repo, &token.user.name, &form.title, description, None).await {
        Ok(d) => {
            state.webhooks.emit(crate::webhooks::Event::discussion_opened(&repo, &d));
            Ok(Redirect::to(&format!("{}/discussions/{}", repo_url(kind, &repo.namespace, &repo.name), d.num)).into_response())
        }
        Err(commons_repo::RepoError::Invalid(error)) => {
            let mut response = page(
                &visitor,
                "discussion_new.html",
                context! { repo => repo_value(&repo, None), tab => "community", title => &form.title, description, error },
            );
            *response.status_mut() = axum::http::StatusCode::BAD_REQUEST;
            Ok(response)
        }
        Err(e) => Err(e.into()),
    }
}

/// `/{repo}/discussions/{num}`: the conversation; for a pull request its changes too.
pub(crate) async fn show(State(state): State<AppState>, visitor: Visitor, Path(p): Path<RepoPath>, kind: RepoKind) -> PageResult {
    let (repo, d) = found(&state, &visitor, &p, kind).await?;
    let base = repo_url(kind, &repo.namespace, &repo.name);
    let files_base = format!("{base}/resolve/main/");
    let events: Vec<Value> = state
        .db
        .discussion_events(&repo, d.num)
        .await?
        .iter()
        .map(|e| {
            let (html, text) = match e.kind {
                EventKind::Comment if e.hidden => (None, "This comment has been hidden.".to_string()),
                EventKind::Comment => (Some(super::markdown::render(&e.body, &files_base)), String::new()),
                EventKind::StatusChange => (None, format!("changed the status to {}", e.body)),
                EventKind::Commit => (None, format!("pushed {}: {}", short(&e.body), e.detail)),
                EventKind::TitleChange => (None, format!("renamed “{}” to “{}”", e.detail, e.body)),
            };
            context! {
                kind => e.kind.as_str(), author => &e.author, date => day(e.created_at), html, text,
                edited => e.edited(), hidden => e.hidden,
                commit_url => (e.kind == EventKind::Commit).then(|| format!("{base}/commit/{}", e.body)),
            }
        })
        .collect();
    let token = visitor.caller.0.as_ref();
    let may_comment = token.is_some_and(|t| access::may_participate(t, &repo).is_ok());
    let may_moderate = token.is_some_and(|t| access::may_moderate(t, &repo, &d.author).is_ok());
    let mut pr = None;
    let (mut files, mut more_files) = (Vec::new(), false);
    if d.is_pr {
        let target = d.target_branch.clone().unwrap_or_else(|| "main".into());
        let conflicts = crate::routes::pull_request_conflicts(&state, &repo, &d).await?;
        let changes = state.repos.pull_request_changes(&repo, &d).await?;
        let head = d.git_ref().unwrap_or_default();
        if crate::routes::require_content(&state, &visitor.caller, &repo).await.is_ok() {
            (files, more_files) = file_diffs(&state, &changes, &base, &head, d.base_commit.as_deref().unwrap_or_default()).await?;
        }
        pr = Some(context! {
            git_ref => &head, target => &target, conflicts,
            merge_commit => &d.merge_commit, merge_short => d.merge_commit.as_deref().map(short),
            may_merge => d.status == DiscussionStatus::Open && visitor.may_write(&repo, &target),
        });
    }
    Ok(page(
        &visitor,
        "discussion.html",
        context! {
            repo => repo_value(&repo, None), tab => "community",
            discussion => summary(&base, &d), events, pr, files, more_files,
            may_comment, may_moderate,
            may_close => may_moderate && d.status.is_active(),
            may_reopen => may_moderate && d.status == DiscussionStatus::Closed,
            may_publish => may_moderate && d.status == DiscussionStatus::Draft,
        },
    ))
}

#[derive(Deserialize)]
pub(crate) struct ActionForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    comment: String,
    #[serde(default)]
    status: String,
}

/// Comments on a discussion from its page.
pub(crate) async fn comment(
    State(state): State<AppState>,
    visitor: Visitor,
    Path(p): Path<RepoPath>,
    form: PageForm<ActionForm>,
    kind: RepoKind,
) -> PageResult {
    let form = form.0;
    visitor.check_csrf(&form.csrf)?;
    let (repo, d) = found(&state, &visitor, &p, kind).await?;
    let token = visitor.require()?;
    access::may_participate(token, &repo)?;
    state.count_discussion_write(&token.user.name)?;
    let text = collab::clean_comment(&form.comment)?;
    let event = state.db.comment_discussion(&repo, d.num, &token.user.name, text).await?;
    state.webhooks.emit(crate::webhooks::Event::commented(&repo, &d, &event));
    Ok(back_to(kind, &repo, &d))
}

/// Closes, reopens or publishes (draft → open) a discussion from its page.
pub(crate) async fn status(
    State(state): State<AppState>,
    visitor: Visitor,
    Path(p): Path<RepoPath>,
    form: PageForm<ActionForm>,
    kind: RepoKind,
) -> PageResult {
    let form = form.0;
    visitor.check_csrf(&form.csrf)?;
    let (repo, d) = found(&state, &visitor, &p, kind).await?;
    let token = visitor.require()?;
    access::may_moderate(token, &repo, &d.author)?;
    let status = match DiscussionStatus::parse(&form.status) {
        Some(s @ (DiscussionStatus::Open | DiscussionStatus::Closed)) => s,
        _ => return Err(PageError::bad_request(format!("A discussion can be open or closed, not {:?}.", form.status))),
    };
    let comment = Some(form.comment.trim()).filter(|c| !c.is_empty()).map(collab::clean_comment).transpose()?;
    state.db.set_discussion_status(&repo, d.num, &token.user.name, status, comment).await?;
    state.webhooks.emit(crate::webhooks::Event::discussion_status(&repo, &d, status));
    Ok(back_to(kind, &repo, &d))
}

/// Merges a pull request from its page: a writer of its target; conflicts are shown, not merged.
pub(crate) async fn merge(
    State(state): State<AppState>,
    visitor: Visitor,
    Path(p): Path<RepoPath>,
    form: PageForm<ActionForm>,
    kind: RepoKind,
) -> PageResult {
    let form = form.0;
    visitor.check_csrf(&form.csrf)?;
    let (repo, d) = found(&state, &visitor, &p, kind).await?;
    let target = d.target_branch.clone().ok_or_else(|| PageError::bad_request("A discussion cannot be merged."))?;
    let token = visitor.caller.require_write_branch(&repo, &target)?;
    if d.status != DiscussionStatus::Open {
        return Err(PageError::bad_request(format!("Pull request #{} is {}; only an open one can be merged.", d.num, d.status.as_str())));
    }
    let comment = Some(form.comment.trim()).filter(|c| !c.is_empty()).map(collab::clean_comment).transpose()?;
    match state.repos.merge(&repo, &d, &token.user.name, comment).await? {
        Ok(commit) => {
            state.webhooks.emit(crate::webhooks::Event::merged(&repo, &d, &commit));
            Ok(back_to(kind, &repo, &d))
        }
        Err(MergeRefusal::Conflicts(paths)) => Err(PageError {
            status: axum::http::StatusCode::CONFLICT,
            message: format!("Pull request #{} cannot be merged: {target} changed {} too.", d.num, paths.join(", ")),
        }),
    }
}

fn back_to(kind: RepoKind, repo: &Repo, d: &Discussion) -> axum::response::Response {
    Redirect::to(&format!("{}/discussions/{}", repo_url(kind, &repo.namespace, &repo.name), d.num)).into_response()
}
