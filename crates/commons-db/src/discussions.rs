//! Discussions and pull requests: numbered per repository, each a list of events (comments,
//! status changes, commits, title changes).
//!
//! A pull request's changes live on its own branch, `refs/pr/{num}`, created with it at the
//! commit it was opened from. Every state change is one transaction with the event that records
//! it, so the history a discussion shows is the history that happened: a merge moves the target
//! branch, marks the pull request merged and records the event, or does none of these.

use crate::sql::{self, Row};

use crate::repos::{CommitOp, RefUpdate, apply_commit};
use crate::{Commit, CommitInfo, Db, DbError, Repo, Result, now_unix};

/// Where a discussion stands. Only pull requests are ever `Draft` or `Merged`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DiscussionStatus {
    Draft,
    Open,
    Closed,
    Merged,
}

impl DiscussionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Draft => "draft",
            Self::Open => "open",
            Self::Closed => "closed",
            Self::Merged => "merged",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "draft" => Self::Draft,
            "open" => Self::Open,
            "closed" => Self::Closed,
            "merged" => Self::Merged,
            _ => return None,
        })
    }

    /// Whether the discussion still takes changes (commits, for a pull request).
    pub fn is_active(self) -> bool {
        matches!(self, Self::Draft | Self::Open)
    }
}

#[derive(Clone, Debug)]
pub struct Discussion {
    pub num: i64,
    pub author: String,
    pub title: String,
    pub is_pr: bool,
    pub status: DiscussionStatus,
    /// The branch a pull request asks to change.
    pub target_branch: Option<String>,
    /// The commit a pull request was opened from: the merge base.
    pub base_commit: Option<String>,
    pub merge_commit: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl Discussion {
    /// The branch holding a pull request's changes.
    pub fn git_ref(&self) -> Option<String> {
        self.is_pr.then(|| pr_ref(self.num))
    }
}

/// The branch of pull request `num`.
pub fn pr_ref(num: i64) -> String {
    format!("refs/pr/{num}")
}

/// The pull request whose branch `branch` is (`refs/pr/{num}`), if it is one.
pub fn pr_number(branch: &str) -> Option<i64> {
    let digits = branch.strip_prefix("refs/pr/")?;
    if digits.is_empty() || digits.len() > 12 || !digits.bytes().all(|b| b.is_ascii_digit()) || digits.starts_with('0') {
        return None;
    }
    digits.parse().ok()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    Comment,
    StatusChange,
    Commit,
    TitleChange,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Comment => "comment",
            Self::StatusChange => "status-change",
            Self::Commit => "commit",
            Self::TitleChange => "title-change",
        }
    }

    fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "comment" => Self::Comment,
            "status-change" => Self::StatusChange,
            "commit" => Self::Commit,
            "title-change" => Self::TitleChange,
            other => return Err(DbError::Corrupt(format!("discussion event kind {other:?}"))),
        })
    }
}

/// One earlier or current text of a comment.
#[derive(Clone, Debug)]
pub struct CommentRevision {
    pub author: String,
    pub body: String,
    pub created_at: i64,
}

#[derive(Clone, Debug)]
pub struct DiscussionEvent {
    /// Public id: 24 hex digits.
    pub id: String,
    pub kind: EventKind,
    pub author: String,
    pub created_at: i64,
    /// Comment: its latest text. Status change: the new status. Commit: the commit id.
    /// Title change: the new title.
    pub body: String,
    /// Title change: the old title. Commit: its summary line.
    pub detail: String,
    pub hidden: bool,
    pub hidden_by: Option<String>,
    /// A comment's texts, oldest first (empty for other events).
    pub history: Vec<CommentRevision>,
}

impl DiscussionEvent {
    pub fn edited(&self) -> bool {
        self.history.len() > 1
    }
}

/// Which discussions a listing shows.
#[derive(Clone, Debug, Default)]
pub struct DiscussionFilter {
    /// `Some(true)`: pull requests only; `Some(false)`: discussions only.
    pub pull_requests: Option<bool>,
    /// `Some(true)`: open (and draft) ones; `Some(false)`: closed and merged ones.
    pub open: Option<bool>,
    pub author: Option<String>,
}

/// What a new pull request asks: to change `target_branch`, from `base_commit`.
#[derive(Clone, Debug)]
pub struct NewPullRequest {
    pub target_branch: String,
    pub base_commit: String,
    pub status: DiscussionStatus,
}

/// How a merge changes the target branch.
#[derive(Clone, Debug)]
pub enum MergePlan {
    /// The target has not moved since the pull request was opened: point it at the pull
    /// request's head.
    FastForward { pr_head: String },
    /// The target moved: a new commit on it applying `ops` (the tree-level three-way merge).
    Commit { ops: Vec<CommitOp> },
}

const DISCUSSION_COLUMNS: &str = "num, author, title, is_pr, status, target_branch, base_commit, merge_commit, created_at, updated_at";

fn discussion_from_row(row: &Row) -> Result<Discussion> {
    let status: String = row.try_get("status")?;
    Ok(Discussion {
        num: row.try_get("num")?,
        author: row.try_get("author")?,
        title: row.try_get("title")?,
        is_pr: row.try_get("is_pr")?,
        status: DiscussionStatus::parse(&status).ok_or_else(|| DbError::Corrupt(format!("discussion status {status:?}")))?,
        target_branch: row.try_get("target_branch")?,
        base_commit: row.try_get("base_commit")?,
        merge_commit: row.try_get("merge_commit")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn new_event_id() -> String {
    hex::encode(rand::random::<[u8; 12]>())
}

use crate::sql::Tx;

/// Appends an event to discussion `num` and marks the discussion updated.
#[allow(clippy::too_many_arguments)] // one row's columns
async fn insert_event(
    tx: &mut Tx,
    repo: &Repo,
    num: i64,
    kind: EventKind,
    author: &str,
    body: &str,
    detail: &str,
    time: i64,
) -> Result<DiscussionEvent> {
    let id = new_event_id();
    sql::query(
        "INSERT INTO discussion_events (id, repo_id, num, kind, author, created_at, body, detail) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&id)
    .bind(repo.id)
    .bind(num)
    .bind(kind.as_str())
    .bind(author)
    .bind(time)
    .bind(body)
    .bind(detail)
    .execute(&mut *tx)
    .await?;
    let mut history = Vec::new();
    if kind == EventKind::Comment {
        sql::query(
            "INSERT INTO discussion_comment_edits (event_id, repo_id, revision, author, body, created_at) VALUES ($1, $2, 0, $3, $4, $5)",
        )
        .bind(&id)
        .bind(repo.id)
        .bind(author)
        .bind(body)
        .bind(time)
        .execute(&mut *tx)
        .await?;
        history.push(CommentRevision { author: author.into(), body: body.into(), created_at: time });
    }
    sql::query("UPDATE discussions SET updated_at = $1 WHERE repo_id = $2 AND num = $3")
        .bind(time)
        .bind(repo.id)
        .bind(num)
        .execute(&mut *tx)
        .await?;
    Ok(DiscussionEvent {
        id,
        kind,
        author: author.into(),
        created_at: time,
        body: body.into(),
        detail: detail.into(),
        hidden: false,
        hidden_by: None,
        history,
    })
}

async fn discussion_in(tx: &mut Tx, repo: &Repo, num: i64) -> Result<Discussion> {
    let row = sql::query(sql::AssertSqlSafe(format!("SELECT {DISCUSSION_COLUMNS} FROM discussions WHERE repo_id = $1 AND num = $2")))
        .bind(repo.id)
        .bind(num)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| DbError::NotFound(format!("discussion #{num}")))?;
    discussion_from_row(&row)
}

/// Records commit `commit` pushed to pull request `num` (whose branch `commit` is on), inside
/// the transaction that made it, after [`check_pr_branch`].
pub(crate) async fn record_pr_commit(tx: &mut Tx, repo: &Repo, num: i64, commit: &Commit) -> Result<()> {
    insert_event(tx, repo, num, EventKind::Commit, &commit.author, &commit.id, &commit.title, commit.created_at).await?;
    Ok(())
}

/// Checks, inside a commit's transaction, that branch `branch` may take a commit: a pull
/// request's branch only while the pull request is active.
pub(crate) async fn check_pr_branch(tx: &mut Tx, repo: &Repo, branch: &str) -> Result<()> {
    if let Some(num) = pr_number(branch) {
        let d = discussion_in(tx, repo, num).await?;
        if !d.status.is_active() {
            return Err(DbError::Invalid(format!("pull request #{num} is {}: it takes no more commits", d.status.as_str())));
        }
    }
    Ok(())
}

impl Db {
    /// Opens discussion (or, with `pr`, pull request) number max+1 of `repo`, with `description`
    /// as its first comment when not empty. A pull request's branch starts at `pr.base_commit`.
    pub async fn open_discussion(
        &self,
        repo: &Repo,
        author: &str,
        title: &str,
        description: &str,
        pr: Option<&NewPullRequest>,
    ) -> Result<Discussion> {
        let mut tx = self.begin_write().await?;
        let d = open_in(&mut tx, repo, author, title, description, pr, now_unix()).await?;
        tx.commit().await?;
        Ok(d)
    }

    /// Opens pull request `title` and commits `ops` to its branch, in one transaction: the
    /// pull request exists with its commit or not at all (`create_pr=1` on the commit API). The
    /// commit's message is the pull request's first comment.
    pub async fn open_pull_request_with_commit(
        &self,
        repo: &Repo,
        title: &str,
        pr: &NewPullRequest,
        ops: &[CommitOp],
        info: &CommitInfo<'_>,
    ) -> Result<(Discussion, Commit)> {
        let mut tx = self.begin_write().await?;
        let time = now_unix();
        let d = open_in(&mut tx, repo, info.author, title, info.message, Some(pr), time).await?;
        let branch = pr_ref(d.num);
        let commit = apply_commit(&mut tx, repo, &branch, Some(&pr.base_commit), ops, info, time, RefUpdate::From(&pr.base_commit)).await?;
        record_pr_commit(&mut tx, repo, d.num, &commit).await?;
        tx.commit().await?;
        Ok((d, commit))
    }

    pub async fn discussion(&self, repo: &Repo, num: i64) -> Result<Option<Discussion>> {
        let row = sql::query(sql::AssertSqlSafe(format!("SELECT {DISCUSSION_COLUMNS} FROM discussions WHERE repo_id = $1 AND num = $2")))
            .bind(repo.id)
            .bind(num)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(discussion_from_row).transpose()
    }

    /// One page of `repo`'s discussions that pass `filter`, newest first, and how many pass it.
    pub async fn discussions(&self, repo: &Repo, filter: &DiscussionFilter, skip: usize, limit: usize) -> Result<(Vec<Discussion>, i64)> {
        let mut clause = String::from("repo_id = $1");
        if let Some(pr) = filter.pull_requests {
            clause.push_str(if pr { " AND is_pr = TRUE" } else { " AND is_pr = FALSE" });
        }
        if let Some(open) = filter.open {
            clause.push_str(if open { " AND status IN ('draft', 'open')" } else { " AND status IN ('closed', 'merged')" });
        }
        // Always bound, so every query takes the same parameters.
        clause.push_str(" AND ($2 = '' OR author = $2)");
        let author = filter.author.clone().unwrap_or_default();
        let total: i64 = sql::query(sql::AssertSqlSafe(format!("SELECT COUNT(*) AS n FROM discussions WHERE {clause}")))
            .bind(repo.id)
            .bind(&author)
            .fetch_one(&self.pool)
            .await?
            .try_get("n")?;
        let rows = sql::query(sql::AssertSqlSafe(format!(
            "SELECT {DISCUSSION_COLUMNS} FROM discussions WHERE {clause} ORDER BY num DESC LIMIT $3 OFFSET $4"
        )))
        .bind(repo.id)
        .bind(&author)
        .bind(limit as i64)
        .bind(skip as i64)
        .fetch_all(&self.pool)
        .await?;
        Ok((rows.iter().map(discussion_from_row).collect::<Result<_>>()?, total))
    }

    /// The events of discussion `num`, oldest first, each comment with its texts.
    pub async fn discussion_events(&self, repo: &Repo, num: i64) -> Result<Vec<DiscussionEvent>> {
        let rows = sql::query(
            "SELECT id, kind, author, created_at, body, detail, hidden, hidden_by FROM discussion_events
             WHERE repo_id = $1 AND num = $2 ORDER BY seq",
        )
        .bind(repo.id)
        .bind(num)
        .fetch_all(&self.pool)
        .await?;
        let edits = sql::query(
            "SELECT x.event_id, x.author, x.body, x.created_at FROM discussion_comment_edits x
             JOIN discussion_events e ON e.id = x.event_id WHERE e.repo_id = $1 AND e.num = $2 ORDER BY x.event_id, x.revision",
        )
        .bind(repo.id)
        .bind(num)
        .fetch_all(&self.pool)
        .await?;
        let mut history: std::collections::HashMap<String, Vec<CommentRevision>> = std::collections::HashMap::new();
        for row in &edits {
            history.entry(row.try_get("event_id")?).or_default().push(CommentRevision {
                author: row.try_get("author")?,
                body: row.try_get("body")?,
                created_at: row.try_get("created_at")?,
            });
        }
        rows.iter()
            .map(|row| {
                let id: String = row.try_get("id")?;
                let kind: String = row.try_get("kind")?;
                Ok(DiscussionEvent {
                    history: history.remove(&id).unwrap_or_default(),
                    id,
                    kind: EventKind::parse(&kind)?,
                    author: row.try_get("author")?,
                    created_at: row.try_get("created_at")?,
                    body: row.try_get("body")?,
                    detail: row.try_get("detail")?,
                    hidden: row.try_get("hidden")?,
                    hidden_by: row.try_get("hidden_by")?,
                })
            })
            .collect()
    }

    /// One event of discussion `num`.
    pub async fn discussion_event(&self, repo: &Repo, num: i64, id: &str) -> Result<Option<DiscussionEvent>> {
        Ok(self.discussion_events(repo, num).await?.into_iter().find(|e| e.id == id))
    }

    /// Adds a comment to discussion `num`.
    pub async fn comment_discussion(&self, repo: &Repo, num: i64, author: &str, text: &str) -> Result<DiscussionEvent> {
        let mut tx = self.begin_write().await?;
        discussion_in(&mut tx, repo, num).await?;
        let event = insert_event(&mut tx, repo, num, EventKind::Comment, author, text, "", now_unix()).await?;
        tx.commit().await?;
        Ok(event)
    }

    /// Replaces the text of comment `id` (its earlier texts are kept as its history).
    pub async fn edit_comment(&self, repo: &Repo, num: i64, id: &str, editor: &str, text: &str) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let updated = sql::query(
            "UPDATE discussion_events SET body = $1 WHERE id = $2 AND repo_id = $3 AND num = $4 AND kind = 'comment' AND hidden = FALSE",
        )
        .bind(text)
        .bind(id)
        .bind(repo.id)
        .bind(num)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if updated != 1 {
            return Err(DbError::NotFound(format!("comment {id}")));
        }
        sql::query(
            "INSERT INTO discussion_comment_edits (event_id, repo_id, revision, author, body, created_at)
             SELECT $1, $2, COALESCE(MAX(revision), 0) + 1, $3, $4, $5 FROM discussion_comment_edits WHERE event_id = $1",
        )
        .bind(id)
        .bind(repo.id)
        .bind(editor)
        .bind(text)
        .bind(now_unix())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Hides comment `id`: its text is no longer shown (the Hub keeps it for moderators).
    pub async fn hide_comment(&self, repo: &Repo, num: i64, id: &str, by: &str) -> Result<()> {
        let _turn = self.write_turn().await;
        let updated = sql::query(
            "UPDATE discussion_events SET hidden = TRUE, hidden_by = $1 WHERE id = $2 AND repo_id = $3 AND num = $4 AND kind = 'comment'",
        )
        .bind(by)
        .bind(id)
        .bind(repo.id)
        .bind(num)
        .execute(&self.pool)
        .await?
        .rows_affected();
        if updated != 1 {
            return Err(DbError::NotFound(format!("comment {id}")));
        }
        Ok(())
    }

    /// Renames discussion `num`.
    pub async fn rename_discussion(&self, repo: &Repo, num: i64, author: &str, title: &str) -> Result<DiscussionEvent> {
        let mut tx = self.begin_write().await?;
        let d = discussion_in(&mut tx, repo, num).await?;
        sql::query("UPDATE discussions SET title = $1 WHERE repo_id = $2 AND num = $3")
            .bind(title)
            .bind(repo.id)
            .bind(num)
            .execute(&mut *tx)
            .await?;
        let event = insert_event(&mut tx, repo, num, EventKind::TitleChange, author, title, &d.title, now_unix()).await?;
        tx.commit().await?;
        Ok(event)
    }

    /// Sets the status of discussion `num` (never to merged: see [`Self::merge_pull_request`]),
    /// with an optional comment posted first. A merged pull request stays merged.
    pub async fn set_discussion_status(
        &self,
        repo: &Repo,
        num: i64,
        author: &str,
        status: DiscussionStatus,
        comment: Option<&str>,
    ) -> Result<DiscussionEvent> {
        let mut tx = self.begin_write().await?;
        let d = discussion_in(&mut tx, repo, num).await?;
        if d.status == DiscussionStatus::Merged {
            return Err(DbError::Invalid(format!("pull request #{num} is merged; its status cannot change")));
        }
        if status == DiscussionStatus::Merged || (status == DiscussionStatus::Draft && !d.is_pr) {
            return Err(DbError::Invalid(format!("a discussion cannot be set to {}", status.as_str())));
        }
        let time = now_unix();
        if let Some(text) = comment {
            insert_event(&mut tx, repo, num, EventKind::Comment, author, text, "", time).await?;
        }
        sql::query("UPDATE discussions SET status = $1 WHERE repo_id = $2 AND num = $3")
            .bind(status.as_str())
            .bind(repo.id)
            .bind(num)
            .execute(&mut *tx)
            .await?;
        let event = insert_event(&mut tx, repo, num, EventKind::StatusChange, author, status.as_str(), "", time).await?;
        tx.commit().await?;
        Ok(event)
    }

    /// Merges open pull request `num` into its target branch, which must still be at
    /// `target_head` (else [`DbError::StaleParent`]), as `plan` says; records the merge.
    pub async fn merge_pull_request(
        &self,
        repo: &Repo,
        num: i64,
        target_head: &str,
        plan: &MergePlan,
        info: &CommitInfo<'_>,
        comment: Option<&str>,
    ) -> Result<String> {
        let mut tx = self.begin_write().await?;
        let d = discussion_in(&mut tx, repo, num).await?;
        if !d.is_pr || d.status != DiscussionStatus::Open {
            return Err(DbError::Invalid(format!("#{num} is not an open pull request (it is {})", d.status.as_str())));
        }
        let target = d.target_branch.clone().ok_or_else(|| DbError::Corrupt(format!("pull request #{num} has no target")))?;
        let time = now_unix();
        let merged = match plan {
            MergePlan::FastForward { pr_head } => {
                let moved =
                    sql::query("UPDATE refs SET commit_id = $1 WHERE repo_id = $2 AND kind = 'branch' AND name = $3 AND commit_id = $4")
                        .bind(pr_head)
                        .bind(repo.id)
                        .bind(&target)
                        .bind(target_head)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                if moved != 1 {
                    return Err(DbError::StaleParent { expected: target_head.into(), actual: "moved".into() });
                }
                pr_head.clone()
            }
            MergePlan::Commit { ops } => {
                apply_commit(&mut tx, repo, &target, Some(target_head), ops, info, time, RefUpdate::From(target_head)).await?.id
            }
        };
        if let Some(text) = comment {
            insert_event(&mut tx, repo, num, EventKind::Comment, info.author, text, "", time).await?;
        }
        sql::query("UPDATE discussions SET status = 'merged', merge_commit = $1 WHERE repo_id = $2 AND num = $3")
            .bind(&merged)
            .bind(repo.id)
            .bind(num)
            .execute(&mut *tx)
            .await?;
        insert_event(&mut tx, repo, num, EventKind::StatusChange, info.author, "merged", "", time).await?;
        sql::query("UPDATE repos SET updated_at = $1 WHERE id = $2").bind(time).bind(repo.id).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(merged)
    }
}

async fn open_in(
    tx: &mut Tx,
    repo: &Repo,
    author: &str,
    title: &str,
    description: &str,
    pr: Option<&NewPullRequest>,
    time: i64,
) -> Result<Discussion> {
    let num: i64 = sql::query("SELECT COALESCE(MAX(num), 0) + 1 AS n FROM discussions WHERE repo_id = $1")
        .bind(repo.id)
        .fetch_one(&mut *tx)
        .await?
        .try_get("n")?;
    let status = pr.map_or(DiscussionStatus::Open, |p| p.status);
    sql::query(
        "INSERT INTO discussions (repo_id, num, author, title, is_pr, status, target_branch, base_commit, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)",
    )
    .bind(repo.id)
    .bind(num)
    .bind(author)
    .bind(title)
    .bind(pr.is_some())
    .bind(status.as_str())
    .bind(pr.map(|p| p.target_branch.as_str()))
    .bind(pr.map(|p| p.base_commit.as_str()))
    .bind(time)
    .execute(&mut *tx)
    .await?;
    if let Some(pr) = pr {
        // A leftover branch of this name (a pull request of a deleted and re-created repository
        // cannot leave one: refs go with their repository) would be taken over, not merged into.
        sql::query(
            "INSERT INTO refs (repo_id, kind, name, commit_id) VALUES ($1, 'branch', $2, $3)
             ON CONFLICT (repo_id, kind, name) DO UPDATE SET commit_id = excluded.commit_id",
        )
        .bind(repo.id)
        .bind(pr_ref(num))
        .bind(&pr.base_commit)
        .execute(&mut *tx)
        .await?;
    }
    if !description.is_empty() {
        insert_event(tx, repo, num, EventKind::Comment, author, description, "", time).await?;
    }
    Ok(Discussion {
        num,
        author: author.into(),
        title: title.into(),
        is_pr: pr.is_some(),
        status,
        target_branch: pr.map(|p| p.target_branch.clone()),
        base_commit: pr.map(|p| p.base_commit.clone()),
        merge_commit: None,
        created_at: time,
        updated_at: time,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_canonical_pull_request_branches_name_a_number() {
        assert_eq!(pr_number("refs/pr/1"), Some(1));
        assert_eq!(pr_number("refs/pr/42"), Some(42));
        for not in ["refs/pr/", "refs/pr/01", "refs/pr/1a", "refs/pr/1/x", "refs/heads/main", "pr/1", "refs/pr/0"] {
            assert_eq!(pr_number(not), None, "{not}");
        }
    }
}
