//! Bearer-token authentication and the access rules for repositories.

use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use commons_db::{Repo, Scope, Token};

use crate::AppState;
use crate::error::ApiError;

/// The caller: `None` for anonymous requests. A token that does not exist is a 401, not anonymous.
pub struct Caller(pub Option<Token>);

impl<S: Send + Sync> FromRequestParts<S> for Caller
where
    AppState: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let state = AppState::from_ref(state);
        let Some(value) = parts.headers.get(axum::http::header::AUTHORIZATION) else {
            return Ok(Caller(None));
        };
        let value = value.to_str().map_err(|_| ApiError::unauthorized())?;
        let secret = value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer ")).ok_or_else(ApiError::unauthorized)?.trim();
        match state.db.authenticate(secret).await? {
            Some(token) => Ok(Caller(Some(token))),
            None => Err(ApiError::unauthorized()),
        }
    }
}

impl Caller {
    /// The account whose private repositories this caller reads: none for anonymous callers and
    /// for lease tokens, which read what anonymous callers read (a volunteer holds them).
    pub fn reader(&self) -> Option<&str> {
        self.0.as_ref().filter(|t| !t.is_lease()).map(|t| t.user.name.as_str())
    }

    /// The authenticated user, or 401.
    pub fn require(&self) -> Result<&Token, ApiError> {
        self.0.as_ref().ok_or_else(ApiError::unauthorized)
    }

    /// A token that acts for its whole account (read, write or worker scope; not a lease token),
    /// or 401/403.
    pub fn require_account(&self) -> Result<&Token, ApiError> {
        let token = self.require()?;
        if token.is_lease() {
            return Err(ApiError::forbidden("this token is limited to one branch of one repository; use a token of the account"));
        }
        Ok(token)
    }

    /// Whether the caller may see `repo`. Private repos look missing to everyone else, so that
    /// their existence does not leak.
    pub fn can_read(&self, repo: &Repo) -> bool {
        !repo.private || self.reader() == Some(repo.namespace.as_str())
    }

    /// A write token whose user owns `namespace`. Tokens limited to one repository cannot create,
    /// move or delete repositories.
    pub fn require_write(&self, namespace: &str) -> Result<&Token, ApiError> {
        let token = self.require_write_any(namespace)?;
        if token.repo_id.is_some() {
            return Err(ApiError::forbidden("this token is limited to one repository"));
        }
        Ok(token)
    }

    /// A write token that may move `branch` of `repo`.
    pub fn require_write_branch(&self, repo: &Repo, branch: &str) -> Result<&Token, ApiError> {
        let token = self.require_write_repo(repo)?;
        match &token.branch {
            Some(only) if only != branch => {
                Err(ApiError::forbidden(format!("this token may only write branch {only} of {}", repo.full_name())))
            }
            _ => Ok(token),
        }
    }

    /// A write token that may add content to `repo` (refs are checked by
    /// [`Caller::require_write_branch`]).
    pub fn require_write_repo(&self, repo: &Repo) -> Result<&Token, ApiError> {
        let token = self.require_write_any(&repo.namespace)?;
        match token.repo_id {
            Some(only) if only != repo.id => {
                Err(ApiError::forbidden(format!("this token is limited to another repository than {}", repo.full_name())))
            }
            _ => Ok(token),
        }
    }

    fn require_write_any(&self, namespace: &str) -> Result<&Token, ApiError> {
        let token = self.require()?;
        if token.scope != Scope::Write {
            return Err(ApiError::forbidden(format!(
                "this token has {} scope and cannot write; use a token with write scope",
                token.scope.as_str()
            )));
        }
        if token.user.name != namespace {
            return Err(ApiError::forbidden(format!("user {} cannot write to namespace {namespace}", token.user.name)));
        }
        Ok(token)
    }
}
