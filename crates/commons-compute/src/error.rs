//! Errors of the coordinator, in its own terms. The hub's compute routes choose the HTTP status
//! of each (`commons-hub/src/routes/compute.rs`): nothing here knows HTTP.

use commons_repo::RepoError;

#[derive(Debug, thiserror::Error)]
pub enum ComputeError {
    #[error("{0}")]
    Db(#[from] commons_db::DbError),
    #[error("database error: {0}")]
    Sqlx(#[from] sqlx::Error),
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A repository a job names or writes: missing, unreadable, or a bad name.
    #[error("{0}")]
    Repo(#[from] RepoError),
    /// The request cannot be carried out as asked.
    #[error("{0}")]
    BadRequest(String),
    /// The job's recipe does not parse, does not check, or cannot run here.
    #[error("{0}")]
    InvalidRecipe(String),
    /// A job, worker, assignment or repository revision that does not exist (or is not the
    /// caller's); `what` is the API's error code for it.
    #[error("{message}")]
    NotFound { what: &'static str, message: String },
    /// The request contradicts the state it acts on (a unit already decided, a cancelled job).
    #[error("{0}")]
    Conflict(String),
    /// The caller may not do this.
    #[error("{0}")]
    Forbidden(String),
    #[error("this job needs {needed} credits in escrow and your balance is {balance}")]
    InsufficientCredits { needed: i64, balance: i64 },
    #[error("stored compute state is inconsistent: {0}")]
    Corrupt(String),
    /// Something a job needs was deleted by its owner (its output repository).
    #[error("{0}")]
    Gone(String),
}

impl ComputeError {
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::BadRequest(message.into())
    }
    pub fn invalid_recipe(message: impl Into<String>) -> Self {
        Self::InvalidRecipe(message.into())
    }
    pub fn not_found(what: &'static str, message: impl Into<String>) -> Self {
        Self::NotFound { what, message: message.into() }
    }
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::Conflict(message.into())
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::Forbidden(message.into())
    }

    /// PostgreSQL gave up waiting for a row another transaction holds (`lock_timeout`), or broke
    /// a deadlock by failing this statement: nothing is wrong with the request, and the same
    /// work done again once the other transaction is over succeeds.
    pub(crate) fn is_lock_conflict(&self) -> bool {
        matches!(self, Self::Sqlx(sqlx::Error::Database(e)) if matches!(e.code().as_deref(), Some("55P03" | "40P01")))
    }
}

pub type Result<T, E = ComputeError> = std::result::Result<T, E>;
