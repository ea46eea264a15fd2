//! Webhook delivery: what handlers [`Webhooks::emit`] once a change is committed, posted to the
//! webhooks that watch it, as the Hub posts them (payload version 3).
//!
//! A change never waits for its deliveries: `emit` hands the event to a bounded queue
//! ([`QUEUE`] events) and returns; when the queue is full the event is dropped, counted and
//! logged. One background task takes events off the queue, finds the webhooks they concern
//! (enabled, listening to the event's domain, watching the repository or its namespace, and
//! whose owner may read the repository *now*, by [`commons_repo::access`]) and posts to each,
//! at most [`IN_FLIGHT`] posts at a time. A post waits [`TIMEOUT`] at most, follows no
//! redirect, reads at most [`BODY_READ`] bytes of the answer, and is tried again after a
//! connection error, a timeout, a 429 or a 5xx, [`ATTEMPTS`] times in all. How the last
//! delivery of each webhook went is recorded on it (`lastDelivery` in its JSON). Delivery is
//! best effort: what is queued or in flight when the process ends is lost.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use commons_db::webhooks::{WebhookDelivery, WebhookTarget};
use commons_db::{Commit, Db, Discussion, DiscussionEvent, DiscussionStatus, RefKind, Repo};
use commons_repo::access;
use serde_json::{Value, json};

/// Events waiting for the delivery task; past this, new events are dropped.
pub const QUEUE: usize = 1024;
/// Posts in flight at once.
pub const IN_FLIGHT: usize = 16;
/// How long one post may take, from connecting to the end of its answer's head.
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// Tries of one delivery, and the waits between them.
pub const ATTEMPTS: usize = 3;
const BACKOFF: [Duration; ATTEMPTS - 1] = [Duration::from_secs(1), Duration::from_secs(3)];
/// Bytes of a target's answer read at most (and then dropped: only its status is recorded, so
/// a webhook pointed at an internal service reads nothing of its answers back).
pub const BODY_READ: usize = 4096;
/// The payload version the Hub sends (`webhook.version`).
const VERSION: u32 = 3;

/// What changed, emitted by a handler once the change is committed.
#[derive(Clone, Debug)]
pub struct Event {
    /// The repository as it was when the change was made.
    repo: Repo,
    what: What,
}

#[derive(Clone, Debug)]
enum What {
    Created,
    Deleted,
    Moved { namespace: String, name: String },
    Refs { updates: Vec<RefUpdate>, head: Option<String> },
    Visibility { private: bool },
    Discussion { discussion: Box<Discussion>, change: DiscussionChange },
}

#[derive(Clone, Debug)]
struct RefUpdate {
    git_ref: String,
    old: Option<String>,
    new: Option<String>,
}

#[derive(Clone, Debug)]
enum DiscussionChange {
    Opened,
    OpenedWithCommit(Box<Commit>),
    Commented(Box<DiscussionEvent>),
    CommentChanged(Box<DiscussionEvent>),
    Renamed(String),
    Status(DiscussionStatus),
    Merged(String),
}

/// `refs/heads/{branch}`, or a ref already written in full (`refs/pr/1`, `refs/convert/…`).
fn branch_ref(branch: &str) -> String {
    if branch.starts_with("refs/") { branch.to_string() } else { format!("refs/heads/{branch}") }
}

impl Event {
    pub fn repo_created(repo: &Repo) -> Self {
        Self { repo: repo.clone(), what: What::Created }
    }

    pub fn repo_deleted(repo: &Repo) -> Self {
        Self { repo: repo.clone(), what: What::Deleted }
    }

    /// `repo` (by its old name) now is `namespace/name`.
    pub fn repo_moved(repo: &Repo, namespace: &str, name: &str) -> Self {
        Self { repo: repo.clone(), what: What::Moved { namespace: namespace.into(), name: name.into() } }
    }

    /// `commit` moved `branch` (a branch name or a full ref) from its parent.
    pub fn commit(repo: &Repo, branch: &str, commit: &Commit) -> Self {
        let git_ref = branch_ref(branch);
        let head = (git_ref == "refs/heads/main").then(|| commit.id.clone());
        Self {
            repo: repo.clone(),
            what: What::Refs { updates: vec![RefUpdate { git_ref, old: commit.parent_id.clone(), new: Some(commit.id.clone()) }], head },
        }
    }

    /// Branch or tag `name` created at `commit`.
    pub fn ref_created(repo: &Repo, kind: RefKind, name: &str, commit: &str) -> Self {
        let update = RefUpdate { git_ref: full_ref(kind, name), old: None, new: Some(commit.to_string()) };
        Self { repo: repo.clone(), what: What::Refs { updates: vec![update], head: None } }
    }

    /// Branch or tag `name` deleted.
    pub fn ref_deleted(repo: &Repo, kind: RefKind, name: &str) -> Self {
        let update = RefUpdate { git_ref: full_ref(kind, name), old: None, new: None };
        Self { repo: repo.clone(), what: What::Refs { updates: vec![update], head: None } }
    }

    /// The repository's visibility set to `private`.
    pub fn visibility(repo: &Repo, private: bool) -> Self {
        Self { repo: repo.clone(), what: What::Visibility { private } }
    }

    /// Discussion or pull request `d` opened (its first comment, if any, is sent with it).
    pub fn discussion_opened(repo: &Repo, d: &Discussion) -> Self {
        Self::discussion(repo, d, DiscussionChange::Opened)
    }

    /// Pull request `d` opened with `commit` on its branch (`create_pr=1`).
    pub fn pull_request_opened(repo: &Repo, d: &Discussion, commit: &Commit) -> Self {
        Self::discussion(repo, d, DiscussionChange::OpenedWithCommit(Box::new(commit.clone())))
    }

    pub fn commented(repo: &Repo, d: &Discussion, comment: &DiscussionEvent) -> Self {
        Self::discussion(repo, d, DiscussionChange::Commented(Box::new(comment.clone())))
    }

    /// A comment edited or hidden: `comment` as it is now.
    pub fn comment_changed(repo: &Repo, d: &Discussion, comment: &DiscussionEvent) -> Self {
        Self::discussion(repo, d, DiscussionChange::CommentChanged(Box::new(comment.clone())))
    }

    pub fn discussion_renamed(repo: &Repo, d: &Discussion, title: &str) -> Self {
        Self::discussion(repo, d, DiscussionChange::Renamed(title.to_string()))
    }

    pub fn discussion_status(repo: &Repo, d: &Discussion, status: DiscussionStatus) -> Self {
        Self::discussion(repo, d, DiscussionChange::Status(status))
    }

    /// Pull request `d` merged as `commit` (its target branch moved there).
    pub fn merged(repo: &Repo, d: &Discussion, commit: &str) -> Self {
        Self::discussion(repo, d, DiscussionChange::Merged(commit.to_string()))
    }

    fn discussion(repo: &Repo, d: &Discussion, change: DiscussionChange) -> Self {
        Self { repo: repo.clone(), what: What::Discussion { discussion: Box::new(d.clone()), change } }
    }
}

fn full_ref(kind: RefKind, name: &str) -> String {
    match kind {
        RefKind::Tag => format!("refs/tags/{name}"),
        _ => branch_ref(name),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Domain {
    Repo,
    Discussion,
}

/// One payload an event makes, before the webhook's own part is added.
struct Payload {
    domain: Domain,
    scope: &'static str,
    body: Value,
}

/// How deliveries went since the process started.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct WebhookStats {
    /// Events dropped because the queue was full.
    pub dropped: u64,
    /// Deliveries the target took (2xx), and those that failed after every attempt.
    pub delivered: u64,
    pub failed: u64,
}

/// The webhooks' queue and counters; the hub holds one.
pub struct Webhooks {
    tx: tokio::sync::mpsc::Sender<Event>,
    counters: Arc<Counters>,
}

#[derive(Default)]
struct Counters {
    dropped: AtomicU64,
    delivered: AtomicU64,
    failed: AtomicU64,
}

impl Webhooks {
    /// Starts the delivery task on the current runtime.
    pub fn start(db: Db, public_url: Option<String>) -> Arc<Self> {
        let (tx, rx) = tokio::sync::mpsc::channel(QUEUE);
        let counters = Arc::new(Counters::default());
        let hooks = Arc::new(Self { tx, counters: counters.clone() });
        let public_url = public_url.map(|u| u.trim_end_matches('/').to_string());
        let client = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .connect_timeout(TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(format!("commons-webhooks/{}", env!("CARGO_PKG_VERSION")))
            .build();
        match client {
            Ok(client) => {
                tokio::spawn(dispatch(rx, Dispatcher { db, client, counters, public_url }));
            }
            Err(e) => tracing::error!(error = %e, "no HTTP client for webhooks: none will be delivered"),
        }
        hooks
    }

    /// Queues `event` for delivery; never waits. A full queue drops it.
    pub fn emit(&self, event: Event) {
        match self.tx.try_send(event) {
            Ok(()) => {}
            Err(tokio::sync::mpsc::error::TrySendError::Full(event)) => {
                let dropped = self.counters.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                tracing::warn!(repo = %event.repo.full_name(), dropped, "webhook queue full: event dropped");
            }
            Err(tokio::sync::mpsc::error::TrySendError::Closed(_)) => {
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    pub fn stats(&self) -> WebhookStats {
        WebhookStats {
            dropped: self.counters.dropped.load(Ordering::Relaxed),
            delivered: self.counters.delivered.load(Ordering::Relaxed),
            failed: self.counters.failed.load(Ordering::Relaxed),
        }
    }
}

struct Dispatcher {
    db: Db,
    client: reqwest::Client,
    counters: Arc<Counters>,
    /// The base of links in payloads; without one, each webhook's `link_base` (the address
    /// its owner saved it through: a Host header misleads only its sender).
    public_url: Option<String>,
}

async fn dispatch(mut rx: tokio::sync::mpsc::Receiver<Event>, d: Dispatcher) {
    let d = Arc::new(d);
    let slots = Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
    while let Some(event) = rx.recv().await {
        let deliveries = match plan(&d, &event).await {
            Ok(deliveries) => deliveries,
            Err(e) => {
                tracing::warn!(repo = %event.repo.full_name(), error = %e, "could not find the webhooks of an event");
                continue;
            }
        };
        for (target, scope, body) in deliveries {
            let Ok(slot) = slots.clone().acquire_owned().await else { return };
            let d = d.clone();
            tokio::spawn(async move {
                let outcome = deliver(&d.client, &target, scope, body).await;
                let counter = if outcome.error.is_none() { &d.counters.delivered } else { &d.counters.failed };
                counter.fetch_add(1, Ordering::Relaxed);
                if let Some(error) = &outcome.error {
                    tracing::info!(webhook = %target.id, error, "webhook delivery failed");
                }
                if let Err(e) = d.db.record_webhook_delivery(&target.id, &outcome).await {
                    tracing::warn!(webhook = %target.id, error = %e, "could not record a webhook delivery");
                }
                drop(slot);
            });
        }
    }
}

/// The posts `event` makes: to which webhook, in which scope, with which body.
async fn plan(d: &Dispatcher, event: &Event) -> Result<Vec<(WebhookTarget, &'static str, Vec<u8>)>, commons_db::DbError> {
    let repo = &event.repo;
    // Reading rights are those of now: a repository made private since the event is not told
    // about to whom it is hidden.
    let now = d.db.repo_now(repo.id).await?;
    let readable = now.as_ref().unwrap_or(repo);
    let mut names = vec![repo.full_name()];
    let mut namespaces = vec![repo.namespace.clone()];
    if let What::Moved { namespace, name } = &event.what {
        names.push(format!("{namespace}/{name}"));
        namespaces.push(namespace.clone());
    }
    let targets = d.db.webhooks_watching(repo.kind.as_str(), &names, &namespaces).await?;
    let mut seen = Vec::with_capacity(targets.len());
    for t in targets {
        // A member of the organization that owns it is told as they may read it.
        let role = match readable.private && t.owner != readable.namespace {
            true => d.db.org_role(&readable.namespace, &t.owner).await?,
            false => None,
        };
        if access::may_read(readable, Some(&t.owner), role) {
            seen.push(t);
        }
    }
    let targets = seen;
    if targets.is_empty() {
        return Ok(Vec::new());
    }
    let base_of = |t: &WebhookTarget| match &d.public_url {
        Some(url) => url.clone(),
        None if t.link_base.is_empty() => "http://localhost".to_string(),
        None => t.link_base.clone(),
    };
    let mut bases: Vec<String> = targets.iter().map(base_of).collect();
    bases.sort();
    bases.dedup();
    let mut out = Vec::new();
    for base in &bases {
        let payloads = payloads(d, event, now.as_ref(), base).await?;
        for (payload, target) in payloads.iter().flat_map(|p| targets.iter().filter(|t| base_of(t) == *base).map(move |t| (p, t))) {
            let listens = match payload.domain {
                Domain::Repo => target.domains.repo,
                Domain::Discussion => target.domains.discussion,
            };
            if !listens {
                continue;
            }
            let mut body = payload.body.clone();
            body["webhook"] = json!({"id": target.id, "version": VERSION});
            out.push((target.clone(), payload.scope, serde_json::to_vec(&body).unwrap_or_default()));
        }
    }
    Ok(out)
}

/// An id of the Hub's form (24 hex digits) for a row id.
fn object_id(id: i64) -> String {
    format!("{id:024x}")
}

async fn user_id(db: &Db, name: &str) -> Result<Value, commons_db::DbError> {
    let id = db.user_by_name(name).await?.map_or(0, |u| u.id);
    Ok(json!({"id": object_id(id), "name": name}))
}

fn repo_urls(base: &str, repo: &Repo) -> Value {
    json!({
        "web": format!("{base}/{}{}", repo.kind.url_prefix(), repo.full_name()),
        "api": format!("{base}/api/{}/{}", repo.kind.plural(), repo.full_name()),
    })
}

async fn payloads(d: &Dispatcher, event: &Event, now: Option<&Repo>, base: &str) -> Result<Vec<Payload>, commons_db::DbError> {
    let repo = &event.repo;
    let mut repo_json = json!({
        "type": repo.kind.as_str(),
        "name": repo.full_name(),
        "id": object_id(repo.id),
        "private": now.map_or(repo.private, |r| r.private),
        "url": repo_urls(base, repo),
        "owner": user_id(&d.db, &repo.namespace).await?,
    });
    if let What::Visibility { private } = &event.what {
        repo_json["private"] = json!(private);
    }
    // The head of `main` as the event left it, or as it is now.
    let head = match &event.what {
        What::Refs { head: Some(head), .. } => Some(head.clone()),
        What::Deleted => None,
        _ => match now {
            Some(r) => d.db.resolve_revision(r, "main").await.ok(),
            None => None,
        },
    };
    let repo_event = |action: &str, scope: &'static str, extra: Value| {
        let mut r = repo_json.clone();
        if let Some(head) = &head {
            r["headSha"] = json!(head);
        }
        let mut body = json!({"event": {"action": action, "scope": scope}, "repo": r});
        if let Value::Object(extra) = extra {
            body.as_object_mut().expect("an object").extend(extra);
        }
        Payload { domain: Domain::Repo, scope, body }
    };
    let refs_json =
        |updates: &[RefUpdate]| -> Value { updates.iter().map(|u| json!({"ref": u.git_ref, "oldSha": u.old, "newSha": u.new})).collect() };
    Ok(match &event.what {
        What::Created => vec![repo_event("create", "repo", json!({}))],
        What::Deleted => vec![repo_event("delete", "repo", json!({}))],
        What::Moved { namespace, name } => {
            vec![repo_event(
                "move",
                "repo",
                json!({"movedTo": {"name": format!("{namespace}/{name}"), "owner": user_id(&d.db, namespace).await?}}),
            )]
        }
        What::Refs { updates, .. } => vec![repo_event("update", "repo.content", json!({"updatedRefs": refs_json(updates)}))],
        What::Visibility { private } => vec![repo_event("update", "repo.config", json!({"updatedConfig": {"private": private}}))],
        What::Discussion { discussion, change } => {
            let mut discussion = (**discussion).clone();
            let url = json!({
                "web": format!("{base}/{}{}/discussions/{}", repo.kind.url_prefix(), repo.full_name(), discussion.num),
                "api": format!("{base}/api/{}/{}/discussions/{}", repo.kind.plural(), repo.full_name(), discussion.num),
            });
            let comment_json = |c: &DiscussionEvent, author: Value| {
                json!({
                    "id": c.id,
                    "author": author,
                    "hidden": c.hidden,
                    "content": if c.hidden { None } else { Some(&c.body) },
                    "url": {"web": format!("{}#{}", url["web"].as_str().unwrap_or_default(), c.id)},
                })
            };
            let (action, scope, comment) = match change {
                DiscussionChange::Opened | DiscussionChange::OpenedWithCommit(_) => {
                    // The first comment, when the discussion was opened with one.
                    let first =
                        d.db.discussion_events(repo, discussion.num)
                            .await
                            .ok()
                            .and_then(|events| events.into_iter().find(|e| e.kind == commons_db::EventKind::Comment));
                    ("create", "discussion", first)
                }
                DiscussionChange::Commented(c) => ("create", "discussion.comment", Some((**c).clone())),
                DiscussionChange::CommentChanged(c) => ("update", "discussion.comment", Some((**c).clone())),
                DiscussionChange::Renamed(title) => {
                    discussion.title = title.clone();
                    ("update", "discussion", None)
                }
                DiscussionChange::Status(status) => {
                    discussion.status = *status;
                    ("update", "discussion", None)
                }
                DiscussionChange::Merged(commit) => {
                    discussion.status = DiscussionStatus::Merged;
                    discussion.merge_commit = Some(commit.clone());
                    ("update", "discussion", None)
                }
            };
            let mut dj = json!({
                "id": format!("{:016x}{:08x}", repo.id, discussion.num),
                "num": discussion.num,
                "author": user_id(&d.db, &discussion.author).await?,
                "url": url,
                "title": discussion.title,
                "isPullRequest": discussion.is_pr,
                "status": discussion.status.as_str(),
                "pinned": false,
            });
            if discussion.is_pr {
                dj["changes"] = json!({
                    "base": branch_ref(discussion.target_branch.as_deref().unwrap_or("main")),
                    "mergeCommitId": discussion.merge_commit,
                });
            }
            let mut body = json!({"event": {"action": action, "scope": scope}, "repo": repo_json.clone(), "discussion": dj});
            if let Some(c) = &comment {
                body["comment"] = comment_json(c, user_id(&d.db, &c.author).await?);
            }
            let mut out = vec![Payload { domain: Domain::Discussion, scope, body }];
            // What the change did to the repository's refs, for webhooks of the repo domain.
            match change {
                DiscussionChange::OpenedWithCommit(commit) => {
                    let update = RefUpdate {
                        git_ref: commons_db::pr_ref(discussion.num),
                        old: commit.parent_id.clone(),
                        new: Some(commit.id.clone()),
                    };
                    out.push(repo_event("update", "repo.content", json!({"updatedRefs": refs_json(&[update])})));
                }
                DiscussionChange::Merged(commit) => {
                    let target = branch_ref(discussion.target_branch.as_deref().unwrap_or("main"));
                    let update = RefUpdate { git_ref: target, old: None, new: Some(commit.clone()) };
                    out.push(repo_event("update", "repo.content", json!({"updatedRefs": refs_json(&[update])})));
                }
                _ => {}
            }
            out
        }
    })
}

/// Posts `body` to `target`, trying again after failures worth retrying.
async fn deliver(client: &reqwest::Client, target: &WebhookTarget, scope: &str, body: Vec<u8>) -> WebhookDelivery {
    let mut attempts = 0;
    let (status, error) = loop {
        attempts += 1;
        let mut request = client.post(&target.url).header(reqwest::header::CONTENT_TYPE, "application/json").body(body.clone());
        if let Some(secret) = &target.secret {
            request = request.header("X-Webhook-Secret", secret);
        }
        let (status, error, retry) = match request.send().await {
            Ok(mut response) => {
                let status = response.status();
                // The answer is read a little, so the connection can serve again, never whole;
                // what it says is not kept.
                let mut read = 0;
                while read < BODY_READ {
                    match tokio::time::timeout(TIMEOUT, response.chunk()).await {
                        Ok(Ok(Some(chunk))) => read += chunk.len(),
                        _ => break,
                    }
                }
                drop(response);
                if status.is_success() {
                    (Some(status.as_u16()), None, false)
                } else {
                    let error = if status.is_redirection() {
                        format!("HTTP {status}: redirects are not followed")
                    } else {
                        format!("HTTP {status}")
                    };
                    let retry = status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS;
                    (Some(status.as_u16()), Some(error), retry)
                }
            }
            Err(e) => {
                let what = if e.is_timeout() {
                    "timed out"
                } else if e.is_connect() {
                    "could not connect"
                } else {
                    "request failed"
                };
                (None, Some(format!("{what}: {}", e.without_url())), true)
            }
        };
        if error.is_none() || !retry || attempts == ATTEMPTS {
            break (status, error);
        }
        tokio::time::sleep(BACKOFF[attempts - 1]).await;
    };
    WebhookDelivery {
        at: commons_db::now_unix(),
        status: status.map(i64::from),
        error,
        event: scope.to_string(),
        attempts: attempts as i64,
    }
}
