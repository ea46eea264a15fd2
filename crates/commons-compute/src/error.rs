//! Errors of the coordinator, and how each reaches a client: JSON `{"error", "message"}` with the
//! status a client can act on.

use axum::http::StatusCode;
use commons_hub::ApiError;

#[derive(Debug, thiserror::Error)]
pub enum ComputeError {
    #[error("{0}")]
    Db(#[from] commons_db::DbError),
    #[error("database error: {0}")]
    Sqlx(#[from] sqlx::Error),
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("{message}")]
    Api { status: StatusCode, code: &'static str, message: String },
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
        Self::Api { status: StatusCode::BAD_REQUEST, code: "BadRequest", message: message.into() }
    }
    pub fn invalid_recipe(message: impl Into<String>) -> Self {
        Self::Api { status: StatusCode::BAD_REQUEST, code: "InvalidRecipe", message: message.into() }
    }
    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::Api { status: StatusCode::NOT_FOUND, code, message: message.into() }
    }
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::Api { status: StatusCode::CONFLICT, code: "Conflict", message: message.into() }
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::Api { status: StatusCode::FORBIDDEN, code: "Forbidden", message: message.into() }
    }
}

impl From<ApiError> for ComputeError {
    fn from(e: ApiError) -> Self {
        Self::Api { status: e.status, code: e.code, message: e.message }
    }
}

impl From<ComputeError> for ApiError {
    fn from(e: ComputeError) -> Self {
        match e {
            ComputeError::Db(db) => db.into(),
            ComputeError::Api { status, code, message } => ApiError::new(status, code, message),
            e @ ComputeError::InsufficientCredits { .. } => {
                ApiError::new(StatusCode::PAYMENT_REQUIRED, "InsufficientCredits", e.to_string())
            }
            ComputeError::Gone(message) => ApiError::new(StatusCode::GONE, "Gone", message),
            other => ApiError::internal(other),
        }
    }
}

pub type Result<T, E = ComputeError> = std::result::Result<T, E>;
