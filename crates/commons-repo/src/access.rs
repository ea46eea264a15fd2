//! Who may read and write a repository: the one place these rules live. The hub's `Caller`
//! and the coordinator both ask here.

use commons_db::{AccessStatus, OrgRole, Repo, RepoKind, Scope, Token};

use crate::RepoError;

/// The account whose private repositories `token` reads: none for anonymous callers and for
/// lease tokens, which read what anonymous callers read (a volunteer holds them).
pub fn reader(token: Option<&Token>) -> Option<&str> {
    token.filter(|t| !t.is_lease()).map(|t| t.user.name.as_str())
}

/// What `token`'s user may do in `namespace`: everything in their own (as an organization's
/// admin may), their role in an organization they belong to, nothing elsewhere.
fn role_over(token: &Token, namespace: &str) -> Option<OrgRole> {
    if token.user.name == namespace {
        return Some(OrgRole::Admin);
    }
    token.orgs.iter().find(|m| m.org == namespace).map(|m| m.role)
}

/// Whether `reader` may see `repo` (`role`: the reader's role in the organization that owns it,
/// when it is one's and they are a member). Private repositories look missing to everyone else,
/// so that their existence does not leak. Queries state the same rule in SQL
/// (`commons_db`'s `visible_repo`).
pub fn may_read(repo: &Repo, reader: Option<&str>, role: Option<OrgRole>) -> bool {
    !repo.private || reader == Some(repo.namespace.as_str()) || (reader.is_some() && role.is_some_and(|r| r > OrgRole::NoAccess))
}

fn require_write_scope(token: &Token) -> Result<(), RepoError> {
    if token.scope != Scope::Write {
        return Err(RepoError::Forbidden(format!(
            "this token has {} scope and cannot write; use a token with write scope",
            token.scope.as_str()
        )));
    }
    Ok(())
}

/// A write token whose user owns `namespace`, or holds the write or admin role in the
/// organization it names (the token may still be limited to one repository).
pub fn may_write_namespace(token: &Token, namespace: &str) -> Result<(), RepoError> {
    require_write_scope(token)?;
    if role_over(token, namespace) < Some(OrgRole::Write) {
        return Err(RepoError::Forbidden(format!("user {} cannot write to namespace {namespace}", token.user.name)));
    }
    Ok(())
}

/// A write token of the whole account that owns `namespace` (or of a writer of its
/// organization): what acting for the namespace as a whole needs (its collections, moving a
/// repository into it).
pub fn may_administer(token: &Token, namespace: &str) -> Result<(), RepoError> {
    may_write_namespace(token, namespace)?;
    if token.repo_id.is_some() {
        return Err(RepoError::Forbidden("this token is limited to one repository".into()));
    }
    Ok(())
}

/// A write token of the whole account that may create a repository of `kind` in `namespace`:
/// its own, or an organization's where the user is at least a contributor. Refused with the
/// Hub's words.
pub fn may_create_repo(token: &Token, kind: RepoKind, namespace: &str) -> Result<(), RepoError> {
    require_write_scope(token)?;
    if token.repo_id.is_some() {
        return Err(RepoError::Forbidden("this token is limited to one repository".into()));
    }
    if role_over(token, namespace) < Some(OrgRole::Contributor) {
        return Err(RepoError::Forbidden(format!("You don't have the rights to create a {} under this namespace", kind.as_str())));
    }
    Ok(())
}

/// A write token that may add content to `repo` (refs are checked by [`may_write_branch`]): its
/// namespace's user, a writer of its organization, or the contributor who created it.
pub fn may_write_repo(token: &Token, repo: &Repo) -> Result<(), RepoError> {
    require_write_scope(token)?;
    let role = role_over(token, &repo.namespace);
    let creator = role == Some(OrgRole::Contributor) && repo.created_by.as_deref() == Some(token.user.name.as_str());
    if role < Some(OrgRole::Write) && !creator {
        return Err(RepoError::Forbidden(format!("user {} cannot write to {}", token.user.name, repo.full_name())));
    }
    match token.repo_id {
        Some(only) if only != repo.id => {
            Err(RepoError::Forbidden(format!("this token is limited to another repository than {}", repo.full_name())))
        }
        _ => Ok(()),
    }
}

/// A write token of a whole account that may write `repo` ([`may_write_repo`]): what changing
/// its settings, refs and access, moving and deleting it need.
pub fn may_administer_repo(token: &Token, repo: &Repo) -> Result<(), RepoError> {
    may_write_repo(token, repo)?;
    if token.repo_id.is_some() {
        return Err(RepoError::Forbidden("this token is limited to one branch of one repository".into()));
    }
    Ok(())
}

/// A write token of the whole account of an admin of organization `org`: what changing its
/// members, their roles and its settings needs.
pub fn may_manage_org(token: &Token, org: &str) -> Result<(), RepoError> {
    require_write_scope(token)?;
    if token.repo_id.is_some() || role_over(token, org) != Some(OrgRole::Admin) {
        return Err(RepoError::Forbidden(format!("only an admin of {org} may change its members and settings")));
    }
    Ok(())
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
pub fn may_see_collection(owner: &str, private: bool, reader: Option<&Token>) -> bool {
    !private || reader.filter(|t| !t.is_lease()).is_some_and(|t| role_over(t, owner) > Some(OrgRole::NoAccess))
}

/// A write token of the whole account `owner` or of a writer of organization `owner` (not a
/// worker's, a read token or a lease token): what creating, changing and deleting `owner`'s
/// collections need.
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
    // Its namespace's user and its organization's members are its authors.
    if token.filter(|t| !t.is_lease()).is_some_and(|t| role_over(t, &repo.namespace) > Some(OrgRole::NoAccess)) {
        return Ok(());
    }
    let reader = reader(token);
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
/// ([`may_administer_repo`]).
pub fn may_review_access(token: &Token, repo: &Repo) -> Result<(), RepoError> {
    may_administer_repo(token, repo)
}
