//! Bearer-token authentication; the access rules themselves are `commons_repo::access`.

use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use commons_db::{Repo, RepoKind, Token};
use commons_repo::access;

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
    /// The account whose private repositories this caller reads ([`access::reader`]).
    pub fn reader(&self) -> Option<&str> {
        access::reader(self.0.as_ref())
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

    /// A write token of the whole account that owns `namespace`, or of a writer of the
    /// organization it names ([`access::may_administer`]).
    pub fn require_write(&self, namespace: &str) -> Result<&Token, ApiError> {
        let token = self.require()?;
        access::may_administer(token, namespace)?;
        Ok(token)
    }

    /// A token that may create a repository of `kind` in `namespace` ([`access::may_create_repo`]).
    pub fn require_create_repo(&self, kind: RepoKind, namespace: &str) -> Result<&Token, ApiError> {
        let token = self.require()?;
        access::may_create_repo(token, kind, namespace)?;
        Ok(token)
    }

    /// A token that may change `repo`'s settings, refs and access ([`access::may_administer_repo`]).
    pub fn require_administer_repo(&self, repo: &Repo) -> Result<&Token, ApiError> {
        let token = self.require()?;
        access::may_administer_repo(token, repo)?;
        Ok(token)
    }

    /// A token of an admin of organization `org` ([`access::may_manage_org`]).
    pub fn require_manage_org(&self, org: &str) -> Result<&Token, ApiError> {
        let token = self.require()?;
        access::may_manage_org(token, org)?;
        Ok(token)
    }

    /// A write token that may move `branch` of `repo` ([`access::may_write_branch`]).
    pub fn require_write_branch(&self, repo: &Repo, branch: &str) -> Result<&Token, ApiError> {
        let token = self.require()?;
        access::may_write_branch(token, repo, branch)?;
        Ok(token)
    }

    /// A write token that may add content to `repo` ([`access::may_write_repo`]).
    pub fn require_write_repo(&self, repo: &Repo) -> Result<&Token, ApiError> {
        let token = self.require()?;
        access::may_write_repo(token, repo)?;
        Ok(token)
    }

    /// A token that may send content for `repo` ([`access::may_upload`]).
    pub fn require_upload(&self, repo: &Repo) -> Result<&Token, ApiError> {
        let token = self.require()?;
        access::may_upload(token, repo)?;
        Ok(token)
    }

    /// A token that may open, comment on and push to discussions of `repo`
    /// ([`access::may_participate`]).
    pub fn require_participant(&self, repo: &Repo) -> Result<&Token, ApiError> {
        let token = self.require()?;
        access::may_participate(token, repo)?;
        Ok(token)
    }
}
