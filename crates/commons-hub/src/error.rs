//! API errors: JSON `{"error": text, "message": text, "code": code}` with the status the clients
//! expect, plus the `X-Error-Code` / `X-Error-Message` headers the Hugging Face clients read.
//!
//! `error` and `X-Error-Message` hold the Hub's text, not a code, because huggingface_hub appends
//! them to its own message unless its own message already says them: a code there would be shown
//! after every failure ("…\nRepoNotFound"), and where the client words the error itself
//! ("Repository Not Found for url: …") the Hub's exact words keep the message clean. `message`
//! is Commons' own, possibly more precise, text (our client shows it); the code travels in
//! `code` and `X-Error-Code`.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use commons_db::DbError;
use commons_repo::RepoError;
use commons_storage::StorageError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// The Hub's wording where it differs from `message` (sent as `error` and `X-Error-Message`).
    pub hub_text: Option<&'static str>,
    /// Set on not-found errors of a resolved revision: clients read it even from a 404.
    pub repo_commit: Option<String>,
    /// Extra JSON fields (e.g. `url` on 409 repo exists).
    /// Boxed: every handler returns this error type, and it stays small that way.
    pub extra: Option<Box<serde_json::Map<String, serde_json::Value>>>,
    /// Seconds to wait before trying again (`Retry-After`, on 429).
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), hub_text: None, repo_commit: None, extra: None, retry_after: None }
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BadRequest", message)
    }
    pub fn repo_not_found(name: &str) -> Self {
        let mut e = Self::new(StatusCode::NOT_FOUND, "RepoNotFound", format!("Repository {name} not found"));
        e.hub_text = Some("Repository not found");
        e
    }
    pub fn revision_not_found(rev: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, "RevisionNotFound", format!("Invalid rev id: {rev}"))
    }
    pub fn entry_not_found(path: &str, commit: &str) -> Self {
        let mut e = Self::new(StatusCode::NOT_FOUND, "EntryNotFound", format!("Entry not found: {path}"));
        e.repo_commit = Some(commit.to_string());
        e
    }
    pub fn unauthorized() -> Self {
        // The exact message the Python client needs to tell a bad token from a missing repo.
        Self::new(StatusCode::UNAUTHORIZED, "Unauthorized", "Invalid credentials in Authorization header")
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "Forbidden", message)
    }
    pub fn internal(message: impl std::fmt::Display) -> Self {
        tracing::error!(error = %message, "internal error");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", format!("internal error: {message}"))
    }
    pub fn with_retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }
    pub fn with_extra(mut self, key: &str, value: serde_json::Value) -> Self {
        self.extra.get_or_insert_with(Default::default).insert(key.into(), value);
        self
    }
}

impl From<DbError> for ApiError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::AlreadyExists(what) => Self::new(StatusCode::CONFLICT, "Conflict", format!("{what} already exists")),
            DbError::NotFound(what) => Self::new(StatusCode::NOT_FOUND, "NotFound", format!("{what} not found")),
            DbError::RevisionNotFound(rev) => Self::revision_not_found(&rev),
            // The Hub's words come first: clients match them.
            e @ DbError::StaleParent { .. } => Self::new(
                StatusCode::PRECONDITION_FAILED,
                "StaleParent",
                format!("The branch was updated since you opened this page. Please refresh and try again. ({e})"),
            ),
            DbError::Invalid(msg) => Self::bad_request(msg),
            other => Self::internal(other),
        }
    }
}

impl From<RepoError> for ApiError {
    fn from(e: RepoError) -> Self {
        match e {
            RepoError::RepoNotFound(name) => Self::repo_not_found(&name),
            RepoError::RevisionNotFound(rev) => Self::revision_not_found(&rev),
            RepoError::EntryNotFound { path, commit } => Self::entry_not_found(&path, &commit),
            RepoError::Invalid(message) => Self::bad_request(message),
            RepoError::Forbidden(message) => Self::forbidden(message),
            RepoError::Gated { anonymous, message } => {
                Self::new(if anonymous { StatusCode::UNAUTHORIZED } else { StatusCode::FORBIDDEN }, "GatedRepo", message)
            }
            RepoError::Unprocessable(message) => Self::new(StatusCode::UNPROCESSABLE_ENTITY, "InvalidPath", message),
            RepoError::Db(e) => e.into(),
            RepoError::Storage(e) => e.into(),
            RepoError::Search(e) => Self::internal(e),
        }
    }
}

impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> Self {
        match e {
            e @ (StorageError::SizeMismatch { .. } | StorageError::Sha256Mismatch { .. }) => {
                Self::new(StatusCode::BAD_REQUEST, "ContentMismatch", e.to_string())
            }
            StorageError::InvalidUpload(message) => Self::new(StatusCode::BAD_REQUEST, "InvalidUpload", message),
            e @ StorageError::InvalidRange { .. } => Self::new(StatusCode::RANGE_NOT_SATISFIABLE, "InvalidRange", e.to_string()),
            StorageError::Db(db) => db.into(),
            other => Self::internal(other),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = serde_json::Map::new();
        let text = self.hub_text.map_or_else(|| self.message.clone(), str::to_string);
        body.insert("error".into(), text.clone().into());
        body.insert("message".into(), self.message.into());
        body.insert("code".into(), self.code.into());
        if let Some(extra) = self.extra {
            body.extend(*extra);
        }
        let mut resp = (self.status, axum::Json(serde_json::Value::Object(body))).into_response();
        let headers = resp.headers_mut();
        headers.insert("x-error-code", HeaderValue::from_static(self.code));
        if let Ok(v) = HeaderValue::from_str(&text.replace(['\r', '\n'], " ")) {
            headers.insert("x-error-message", v);
        }
        if let Some(commit) = self.repo_commit.and_then(|c| HeaderValue::from_str(&c).ok()) {
            headers.insert("x-repo-commit", commit);
        }
        if let Some(wait) = self.retry_after {
            headers.insert(axum::http::header::RETRY_AFTER, HeaderValue::from(wait));
        }
        resp
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
