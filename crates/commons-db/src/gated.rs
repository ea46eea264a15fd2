//! Gated repositories: a repository's gate (`repos.gated`) and the access requests of its users
//! (`access_requests`, one per user and repository). Who may read a gated repository's files is
//! `commons_repo::access::may_read_content`; this module only keeps the facts it decides on.
//!
//! Every change goes through [`Db::begin_write`] (or the write turn), so the read cache of this
//! process never answers from before it: a decision takes effect on the next request.

use crate::sql::{self, Row};

use crate::{Db, DbError, Repo, Result, now_unix};

/// How a gated repository admits its users: `Auto` accepts each request when it is made,
/// `Manual` leaves it pending until an admin decides.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum GateMode {
    Auto,
    Manual,
}

impl GateMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Manual => "manual",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "auto" => Some(Self::Auto),
            "manual" => Some(Self::Manual),
            _ => None,
        }
    }
}

/// Where an access request stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AccessStatus {
    Pending,
    Accepted,
    Rejected,
}

impl AccessStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Accepted => "accepted",
            Self::Rejected => "rejected",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(Self::Pending),
            "accepted" => Some(Self::Accepted),
            "rejected" => Some(Self::Rejected),
            _ => None,
        }
    }
}

/// One user's request for access to one repository.
#[derive(Clone, Debug)]
pub struct AccessRequest {
    pub id: i64,
    pub user: String,
    pub fullname: String,
    pub status: AccessStatus,
    /// Given by an admin without a request.
    pub granted: bool,
    pub rejection_reason: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// Which request an admin decides on.
#[derive(Clone, Copy, Debug)]
pub enum RequestTarget<'a> {
    User(&'a str),
    Id(i64),
}

/// The longest rejection reason kept, in characters (the Hub's limit).
pub const REJECTION_REASON_MAX: usize = 200;

const REQUEST_COLUMNS: &str = "a.id, u.name AS user_name, u.fullname, a.status, a.granted, a.rejection_reason, a.created_at, a.updated_at";

fn request_from_row(row: &Row) -> Result<AccessRequest> {
    let status: String = row.try_get("status")?;
    Ok(AccessRequest {
        id: row.try_get("id")?,
        user: row.try_get("user_name")?,
        fullname: row.try_get("fullname")?,
        status: AccessStatus::parse(&status).ok_or_else(|| DbError::Corrupt(format!("access request status {status:?}")))?,
        granted: row.try_get("granted")?,
        rejection_reason: row.try_get("rejection_reason")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

impl Db {
    /// Gates `repo` (`Some`) or opens it (`None`). Requests already made are kept.
    pub async fn set_gated(&self, repo: &Repo, gated: Option<GateMode>) -> Result<()> {
        let mut tx = self.begin_write().await?;
        sql::query("UPDATE repos SET gated = $1 WHERE id = $2").bind(gated.map(GateMode::as_str)).bind(repo.id).execute(&mut *tx).await?;
        tx.commit().await
    }

    /// Where `user`'s request for `repo` stands; `None` when it made none.
    pub async fn access_status(&self, repo: &Repo, user_id: i64) -> Result<Option<AccessStatus>> {
        let row = sql::query("SELECT status FROM access_requests WHERE repo_id = $1 AND user_id = $2")
            .bind(repo.id)
            .bind(user_id)
            .fetch_optional(&self.pool)
            .await?;
        match row {
            None => Ok(None),
            Some(row) => {
                let status: String = row.try_get("status")?;
                Ok(Some(AccessStatus::parse(&status).ok_or_else(|| DbError::Corrupt(format!("access request status {status:?}")))?))
            }
        }
    }

    /// `user_id` asks for access to `repo`: a new request is `accepted` at once when the gate is
    /// `Auto`, else `pending`. A request already made stays as it is (a rejected user cannot ask
    /// again). Returns where it stands.
    pub async fn ask_access(&self, repo: &Repo, user_id: i64, mode: GateMode) -> Result<AccessStatus> {
        let mut tx = self.begin_write().await?;
        let status = if mode == GateMode::Auto { AccessStatus::Accepted } else { AccessStatus::Pending };
        let now = now_unix();
        sql::query(
            "INSERT INTO access_requests (repo_id, user_id, status, granted, created_at, updated_at)
             VALUES ($1, $2, $3, FALSE, $4, $4) ON CONFLICT (repo_id, user_id) DO NOTHING",
        )
        .bind(repo.id)
        .bind(user_id)
        .bind(status.as_str())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let row = sql::query("SELECT status FROM access_requests WHERE repo_id = $1 AND user_id = $2")
            .bind(repo.id)
            .bind(user_id)
            .fetch_one(&mut *tx)
            .await?;
        let stored: String = row.try_get("status")?;
        tx.commit().await?;
        AccessStatus::parse(&stored).ok_or_else(|| DbError::Corrupt(format!("access request status {stored:?}")))
    }

    /// A page of `repo`'s requests in `status`, oldest first, after request id `after`; at most
    /// `limit` (and whether more follow).
    pub async fn access_requests(&self, repo: &Repo, status: AccessStatus, after: i64, limit: i64) -> Result<(Vec<AccessRequest>, bool)> {
        let rows = sql::query(sql::AssertSqlSafe(format!(
            "SELECT {REQUEST_COLUMNS} FROM access_requests a JOIN users u ON u.id = a.user_id
             WHERE a.repo_id = $1 AND a.status = $2 AND a.id > $3 ORDER BY a.id LIMIT $4"
        )))
        .bind(repo.id)
        .bind(status.as_str())
        .bind(after)
        .bind(limit + 1)
        .fetch_all(&self.pool)
        .await?;
        let mut out = rows.iter().map(request_from_row).collect::<Result<Vec<_>>>()?;
        let more = out.len() as i64 > limit;
        out.truncate(limit.max(0) as usize);
        Ok((out, more))
    }

    /// An admin moves a request of `repo` to `status` (with `reason` when rejecting). A request
    /// that does not exist is `NotFound`; one already in `status` is `AlreadyExists` (nothing
    /// changes either way).
    pub async fn decide_access(
        &self,
        repo: &Repo,
        target: RequestTarget<'_>,
        status: AccessStatus,
        reason: Option<&str>,
    ) -> Result<AccessRequest> {
        let mut tx = self.begin_write().await?;
        let found = match target {
            RequestTarget::User(name) => {
                sql::query(sql::AssertSqlSafe(select_one("lower(u.name) = lower($2)")))
                    .bind(repo.id)
                    .bind(name)
                    .fetch_optional(&mut *tx)
                    .await?
            }
            RequestTarget::Id(id) => {
                sql::query(sql::AssertSqlSafe(select_one("a.id = $2"))).bind(repo.id).bind(id).fetch_optional(&mut *tx).await?
            }
        };
        let Some(row) = found else {
            return Err(DbError::NotFound(match target {
                RequestTarget::User(name) => format!("an access request of {name} to {}", repo.full_name()),
                RequestTarget::Id(id) => format!("access request {id} of {}", repo.full_name()),
            }));
        };
        let mut request = request_from_row(&row)?;
        if request.status == status {
            return Err(DbError::AlreadyExists(format!(
                "a {} access request of {} to {}",
                status.as_str(),
                request.user,
                repo.full_name()
            )));
        }
        let now = now_unix();
        let reason = if status == AccessStatus::Rejected { reason } else { None };
        sql::query("UPDATE access_requests SET status = $1, rejection_reason = $2, updated_at = $3 WHERE id = $4")
            .bind(status.as_str())
            .bind(reason)
            .bind(now)
            .bind(request.id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        request.status = status;
        request.rejection_reason = reason.map(str::to_string);
        request.updated_at = now;
        Ok(request)
    }

    /// An admin gives `user_id` access to `repo` without a request (or accepts the one it made).
    /// A user who already has access is `AlreadyExists`.
    pub async fn grant_access(&self, repo: &Repo, user: &crate::User) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let now = now_unix();
        let changed = sql::query(
            "INSERT INTO access_requests (repo_id, user_id, status, granted, created_at, updated_at)
             VALUES ($1, $2, 'accepted', TRUE, $3, $3)
             ON CONFLICT (repo_id, user_id) DO UPDATE SET status = 'accepted', granted = TRUE, rejection_reason = NULL,
                 updated_at = excluded.updated_at
             WHERE access_requests.status <> 'accepted'",
        )
        .bind(repo.id)
        .bind(user.id)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if changed == 0 {
            return Err(DbError::AlreadyExists(format!("access of {} to {}", user.name, repo.full_name())));
        }
        tx.commit().await
    }
}

fn select_one(clause: &str) -> String {
    format!("SELECT {REQUEST_COLUMNS} FROM access_requests a JOIN users u ON u.id = a.user_id WHERE a.repo_id = $1 AND {clause}")
}
