use thiserror::Error;

#[derive(Debug, Error)]
pub enum DbError {
    #[error("database error: {0}")]
    Sqlx(#[from] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("{0} already exists")]
    AlreadyExists(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("revision {0} not found")]
    RevisionNotFound(String),
    #[error("parent commit mismatch: the branch is at {actual}, the commit was made on {expected}")]
    StaleParent { expected: String, actual: String },
    #[error("{0}")]
    Invalid(String),
    #[error("stored data is inconsistent: {0}")]
    Corrupt(String),
}
