//! Who may read and write a repository: the one place these rules live. The hub's `Caller`
//! and the coordinator both ask here.

use commons_db::{AccessStatus, Repo, Scope, Token};

use crate::RepoError;

/// The account whose private repositories `token` reads: none for anonymous callers and for
/// lease tokens, which read what anonymous callers read (a volunteer holds them).
pub fn reader(token: Option<&Token>) -> Option<&str> {
    token.filter(|t| !t.is_lease()).map(|t| t.user.name.as_str())
}

/// Whether `reader` may see `repo`. Private repositories look missing to everyone else, so
/// that their existence does not leak.
pub fn may_read(repo: &Repo, reader: Option<&str>) -> bool {
    !repo.private || reader == Some(repo.namespace.as_str())
}

/// A write token whose user owns `namespace` (it may still be limited to one repository).
pub fn may_write_namespace(token: &Token, namespace: &str) -> Result<(), RepoError> {
    if token.scope != Scope::Write {
        return Err(RepoError::Forbidden(format!(
            "this token has {} scope and cannot write; use a token with write scope",
            token.scope.as_str()
        )));
    }
    if token.user.name != namespace {
        return Err(RepoError::Forbidden(format!("user {} cannot write to namespace {namespace}", token.user.name)));
    }
    Ok(())
}

/// A write token of the whole account that owns `namespace`: what creating, moving and deleting
/// repositories and administering their refs and settings need.
pub fn may_administer(token: &Token, namespace: &str) -> Result<(), RepoError> {
    may_write_namespace(token, namespace)?;
    if token.repo_id.is_some() {
        return Err(RepoError::Forbidden("this token is limited to one repository".into()));
    }
    Ok(())
}

/// A write token that may add content to `repo` (refs are checked by [`may_write_branch`]).
pub fn may_write_repo(token: &Token, repo: &Repo) -> Result<(), RepoError> {
    may_write_namespace(token, &repo.namespace)?;
    match token.repo_id {
        Some(only) if only != repo.id => {
            Err(RepoError::Forbidden(format!("this token is limited to another repository than {}", repo.full_name())))
        }
        _ => Ok(()),
    }
}

/// A write token that may move `branch` of `repo` (a lease token writes its unit's branch only).
pub fn may_write_branch(token: &Token, repo: &Repo, branch: &str) -> Result<(), RepoError> {
    may_write_repo(token, repo)?;
    match &token.branch {
        Some(only) if only != branch => {
            Err(RepoError::Forbidden(format!("this token may only write branch {only} of {}", repo.full_name())))
        }
        _ => Ok(()),
    }
}

/// A write token of a whole account (not a lease token, nor one limited to another
/// repository) whose user may read `repo`: what opening and commenting on discussions and
/// pushing to a pull request's own branch need. Reading is the caller's check (the repository
/// was found for this reader).
pub fn may_participate(token: &Token, repo: &Repo) -> Result<(), RepoError> {
    if token.is_lease() {
        return Err(RepoError::Forbidden("this token is limited to one branch of one repository; use a token of the account".into()));
    }
    if token.scope != Scope::Write {
        return Err(RepoError::Forbidden(format!(
            "this token has {} scope and cannot write; use a token with write scope",
            token.scope.as_str()
        )));
    }
    match token.repo_id {
        Some(only) if only != repo.id => {
            Err(RepoError::Forbidden(format!("this token is limited to another repository than {}", repo.full_name())))
        }
        _ => Ok(()),
    }
}

/// [`may_participate`], and the author of the discussion or a writer of `repo`: what renaming,
/// closing and reopening a discussion, and hiding its comments, need.
pub fn may_moderate(token: &Token, repo: &Repo, discussion_author: &str) -> Result<(), RepoError> {
    may_participate(token, repo)?;
    if token.user.name == discussion_author || may_write_repo(token, repo).is_ok() {
        return Ok(());
    }
    Err(RepoError::Forbidden(format!("only the author of this discussion or a writer of {} may change it", repo.full_name())))
}

/// A token that may send content for `repo`: a writer's ([`may_write_repo`]), or a
/// participant's ([`may_participate`]), whose content can only land on a pull request's branch.
/// Stored bytes are bound to a repository by a commit alone, which checks its own rule.
pub fn may_upload(token: &Token, repo: &Repo) -> Result<(), RepoError> {
    may_write_repo(token, repo).or_else(|_| may_participate(token, repo))
}

/// Whether `reader` may see a collection of `owner`: a private one only its owner. Its items
/// are shown only as far as `reader` may see each (a listing applies this in its query).
pub fn may_see_collection(owner: &str, private: bool, reader: Option<&str>) -> bool {
    !private || reader == Some(owner)
}

/// A write token of the whole account `owner` (not a worker's, a read token or a lease token):
/// what creating, changing and deleting `owner`'s collections need. Collections belong to users
/// only for now (no organizations).
pub fn may_curate(token: &Token, owner: &str) -> Result<(), RepoError> {
    may_administer(token, owner)
}

/// Whether the caller holding `token` may read the files of `repo` (its bytes, through any
/// route), beyond seeing it ([`may_read`]): a gated repository's files go only to its owner's
/// account and to users whose access request is accepted (`request`: where the caller's request
/// stands). Its metadata (info, tree, card) stays readable. Refused: `Gated`, with the Hub's
/// texts (anonymous callers and lease tokens, which read what anonymous callers read, are asked
/// to log in).
pub fn may_read_content(repo: &Repo, token: Option<&Token>, request: Option<AccessStatus>) -> Result<(), RepoError> {
    if repo.gated.is_none() {
        return Ok(());
    }
    let reader = reader(token);
    if reader == Some(repo.namespace.as_str()) {
        return Ok(());
    }
    let (kind, id) = (repo.kind.as_str(), repo.full_name());
    let message = match (reader, request) {
        (Some(_), Some(AccessStatus::Accepted)) => return Ok(()),
        (None, _) => {
            return Err(RepoError::Gated {
                anonymous: true,
                message: format!(
                    "Access to {kind} {id} is restricted. You must have access to it and be authenticated to access it. Please log in."
                ),
            });
        }
        (Some(_), Some(AccessStatus::Pending)) => format!("Your request to access {kind} {id} is awaiting a review from the repo authors."),
        (Some(_), Some(AccessStatus::Rejected)) => format!("Your request to access {kind} {id} has been rejected by the repo's authors."),
        (Some(_), None) => {
            let page = match repo.kind {
                commons_db::RepoKind::Model => format!("/{id}"),
                other => format!("/{}/{id}", other.plural()),
            };
            format!("Access to {kind} {id} is restricted and you are not in the authorized list. Visit {page} to ask for access.")
        }
    };
    Err(RepoError::Gated { anonymous: false, message })
}

/// A token that may ask for access to a gated repository: a user's own (read or write scope),
/// not a worker's or a lease token.
pub fn may_ask_access(token: &Token) -> Result<(), RepoError> {
    if token.is_lease() || token.scope == Scope::Worker {
        return Err(RepoError::Forbidden("only a user's own token (read or write scope) may ask for access to a repository".into()));
    }
    Ok(())
}

/// A token that may list, accept, reject and grant access requests of `repo`: an administrator's
/// ([`may_administer`]).
pub fn may_review_access(token: &Token, repo: &Repo) -> Result<(), RepoError> {
    may_administer(token, &repo.namespace)
}
