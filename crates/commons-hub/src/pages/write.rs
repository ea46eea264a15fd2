//! Writing from the browser: create a repository, upload files, edit a text file (the card),
//! delete a file, like. Each write is a form with the CSRF token, made by a signed-in account
//! that may write the repository (the same rules as the API's, `commons_repo::access`), and
//! each change of files is one commit through the API's own commit path
//! ([`crate::routes::commit_staged`]): cards checked, LFS rules applied, the parent re-checked.

use axum::extract::{FromRequest, Multipart, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use commons_db::{CommitInfo, CommitOp, Repo, RepoKind};
use commons_repo::names::{validate_file_path, validate_repo_name};
use minijinja::context;
use serde::Deserialize;

use super::session::Visitor;
use super::{PageError, PageForm, PageResult, RepoPath, encode_path, encode_rev, page, repo_url, repo_value};
use crate::AppState;
use crate::routes::{Staged, commit_staged};

/// The most a browser upload (all its files) may hold.
const BROWSER_UPLOAD_MAX: u64 = 128 << 20;

/// Files one upload form may carry.
const MAX_UPLOAD_FILES: usize = 1000;
/// Largest text file edited in the browser.
const MAX_EDITED: u64 = 1 << 20;

/// To the sign-in page, coming back to `here` after.
pub(crate) fn sign_in_first(here: &str) -> PageResult {
    let next = serde_urlencoded::to_string([("next", here)]).unwrap_or_default();
    Ok(Redirect::to(&format!("/login?{next}")).into_response())
}

/// The repository of `p`, which `visitor` must be signed in and allowed to write on `rev` (a
/// branch).
async fn writable(state: &AppState, visitor: &Visitor, p: &RepoPath, kind: RepoKind) -> Result<(Repo, String), PageError> {
    visitor.require()?;
    let repo = state.repos.find(kind, &p.ns, &p.name, visitor.reader()).await?;
    let branch = p.rev.clone().unwrap_or_else(|| "main".into());
    visitor.caller.require_write_branch(&repo, &branch)?;
    Ok((repo, branch))
}

/// The repository, branch and file a form about one file names: its token checked, the path
/// valid, the caller allowed to write the branch.
async fn file_target(
    state: &AppState,
    visitor: &Visitor,
    p: &RepoPath,
    kind: RepoKind,
    csrf: &str,
) -> Result<(Repo, String, String), PageError> {
    visitor.check_csrf(csrf)?;
    let path = p.path.clone().unwrap_or_default();
    validate_file_path(&path)?;
    let (repo, branch) = writable(state, visitor, p, kind).await?;
    Ok((repo, branch, path))
}

/// One commit of `staged` on `branch`, which must still be at `parent` (what the form showed).
async fn commit(
    state: &AppState,
    visitor: &Visitor,
    repo: &Repo,
    branch: &str,
    parent: &str,
    staged: Vec<Staged>,
    title: &str,
) -> Result<String, PageError> {
    let author = visitor.require()?.user.name.clone();
    let head = state.repos.pin(repo, branch).await?;
    let info = CommitInfo { author: &author, title, message: "" };
    let commit = commit_staged(state, repo, branch, &head, Some(parent), staged, &info).await?;
    tracing::info!(repo = %repo.full_name(), branch, commit = %commit.id, "commit from the browser");
    Ok(commit.id)
}

fn kind_of(value: &str) -> Result<RepoKind, PageError> {
    RepoKind::parse(value).ok_or_else(|| PageError::bad_request(format!("There is no kind of repository {value:?}.")))
}

#[derive(Deserialize, Default)]
pub(crate) struct NewQuery {
    kind: Option<String>,
    owner: Option<String>,
}

/// The namespaces the visitor may create repositories in: their own, then their organizations'
/// where they are at least contributors.
fn owners(visitor: &Visitor) -> Vec<String> {
    let Some(token) = visitor.caller.0.as_ref() else { return Vec::new() };
    let orgs = token.orgs.iter().filter(|m| m.role >= commons_db::OrgRole::Contributor).map(|m| m.org.clone());
    std::iter::once(token.user.name.clone()).chain(orgs).collect()
}

pub(crate) async fn new_repo_form(visitor: Visitor, Query(q): Query<NewQuery>) -> PageResult {
    if visitor.name().is_none() {
        return sign_in_first("/new");
    }
    let kind = kind_of(q.kind.as_deref().unwrap_or("model"))?;
    let owners = owners(&visitor);
    let owner = q.owner.filter(|o| owners.contains(o)).or_else(|| owners.first().cloned());
    Ok(page(&visitor, "new.html", context! { kind => kind.as_str(), owners, owner, name => "", private => false, error => None::<String> }))
}

#[derive(Deserialize)]
pub(crate) struct NewRepoForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    name: String,
    /// The namespace: the visitor's own when not said.
    owner: Option<String>,
    private: Option<String>,
}

pub(crate) async fn new_repo(State(state): State<AppState>, visitor: Visitor, form: PageForm<NewRepoForm>) -> PageResult {
    let form = form.0;
    visitor.check_csrf(&form.csrf)?;
    let me = visitor.require()?.user.name.clone();
    let owner = form.owner.filter(|o| !o.is_empty()).unwrap_or(me);
    let kind = kind_of(&form.kind)?;
    let name = form.name.trim().to_string();
    let private = form.private.is_some();
    let owners = owners(&visitor);
    let refuse = |status: StatusCode, error: String| {
        let mut response = page(
            &visitor,
            "new.html",
            context! { kind => kind.as_str(), owners => &owners, owner => &owner, name => &name, private, error },
        );
        *response.status_mut() = status;
        Ok(response)
    };
    if let Err(e) = validate_repo_name(&name, "repository name") {
        return refuse(StatusCode::BAD_REQUEST, e.to_string());
    }
    visitor.caller.require_create_repo(kind, &owner)?;
    let author = visitor.require()?.user.name.clone();
    match state.repos.create(kind, &owner, &name, private, &author).await {
        Ok(repo) => {
            tracing::info!(repo = %repo.full_name(), kind = kind.as_str(), "repository created from the browser");
            Ok(Redirect::to(&repo_url(kind, &owner, &name)).into_response())
        }
        Err(commons_repo::RepoError::Db(commons_db::DbError::AlreadyExists(_))) => {
            refuse(StatusCode::CONFLICT, format!("{owner} already has a {} named {name}.", kind.as_str()))
        }
        Err(e) => Err(e.into()),
    }
}

pub(crate) async fn upload_form(State(state): State<AppState>, visitor: Visitor, Path(p): Path<RepoPath>, kind: RepoKind) -> PageResult {
    let here = format!("{}/upload/{}", repo_url(kind, &p.ns, &p.name), encode_rev(p.rev.as_deref().unwrap_or("main")));
    if visitor.name().is_none() {
        return sign_in_first(&here);
    }
    let (repo, branch) = writable(&state, &visitor, &p, kind).await?;
    let parent = state.repos.pin(&repo, &branch).await?;
    Ok(page(
        &visitor,
        "upload.html",
        context! { repo => repo_value(&repo, None), tab => "files", branch, action => here, parent, error => None::<String> },
    ))
}

/// `POST …/upload/{branch}`, `multipart/form-data` with `csrf` and `parent` first, then
/// `folder`, `summary` and any number of `files`. The caller's right to write is checked
/// before the body is read, and the body is read up to the hub's commit limit.
pub(crate) async fn upload(
    State(state): State<AppState>,
    visitor: Visitor,
    Path(p): Path<RepoPath>,
    mut request: axum::extract::Request,
    kind: RepoKind,
) -> PageResult {
    let (repo, branch) = writable(&state, &visitor, &p, kind).await?;
    // The body is counted below against the hub's commit limit, now that the caller may write
    // here; the router's small default for bodies read whole does not apply to it.
    axum::extract::DefaultBodyLimit::disable().apply(&mut request);
    let bad_form = |e: axum::extract::multipart::MultipartRejection| PageError { status: e.status(), message: e.body_text() };
    let mut form = Multipart::from_request(request, &()).await.map_err(bad_form)?;
    // A browser's files are held in memory until the commit is made, so they have a bound of
    // their own, below the (spooled) API commit's.
    let limit = state.limits.commit_body.min(BROWSER_UPLOAD_MAX);
    let bad = |e: axum::extract::multipart::MultipartError| PageError {
        status: e.status(),
        message: format!("The upload could not be read: {}", e.body_text()),
    };
    let (mut csrf, mut parent, mut folder, mut summary) = (None, None, String::new(), String::new());
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    let mut total = 0u64;
    while let Some(mut field) = form.next_field().await.map_err(bad)? {
        let name = field.name().unwrap_or_default().to_string();
        if csrf.is_none() && name != "csrf" {
            // Nothing of a form that does not open with its token is read.
            return Err(PageError { status: StatusCode::FORBIDDEN, message: "This form did not come from this site.".into() });
        }
        match name.as_str() {
            "files" => {
                let Some(file_name) = field.file_name().map(str::to_string).filter(|n| !n.is_empty()) else { continue };
                if files.len() == MAX_UPLOAD_FILES {
                    return Err(PageError::bad_request(format!("At most {MAX_UPLOAD_FILES} files can be uploaded at once.")));
                }
                let mut data = Vec::new();
                while let Some(chunk) = field.chunk().await.map_err(bad)? {
                    total += chunk.len() as u64;
                    if total > limit {
                        return Err(PageError {
                            status: StatusCode::PAYLOAD_TOO_LARGE,
                            message: format!(
                                "Uploads from the browser are limited to {} in all; use `commons upload` or huggingface_hub for larger files.",
                                super::human_size(limit as i64)
                            ),
                        });
                    }
                    data.extend_from_slice(&chunk);
                }
                files.push((file_name, data));
            }
            other => {
                // Read up to the bound, never the whole field first: the body's limit is off.
                let mut bytes = Vec::new();
                while let Some(chunk) = field.chunk().await.map_err(bad)? {
                    if bytes.len() + chunk.len() > 4096 {
                        return Err(PageError::bad_request(format!("The field {other} is too long.")));
                    }
                    bytes.extend_from_slice(&chunk);
                }
                let value = String::from_utf8(bytes).map_err(|_| PageError::bad_request(format!("The field {other} is not UTF-8.")))?;
                match other {
                    "csrf" => {
                        visitor.check_csrf(&value)?;
                        csrf = Some(value);
                    }
                    "parent" => parent = Some(value),
                    "folder" => folder = value.trim().trim_matches('/').to_string(),
                    "summary" => summary = value.trim().to_string(),
                    _ => {}
                }
            }
        }
    }
    if csrf.is_none() {
        return Err(PageError { status: StatusCode::FORBIDDEN, message: "This form did not come from this site.".into() });
    }
    let parent = parent.ok_or_else(|| PageError::bad_request("The form names no parent commit."))?;
    if files.is_empty() {
        return Err(PageError::bad_request("Choose at least one file to upload."));
    }
    let mut staged = Vec::with_capacity(files.len());
    let mut names = std::collections::HashSet::new();
    for (file_name, data) in files {
        // A browser sends a file's name, not its folder: the form's folder says where it goes.
        let base = file_name.rsplit(['/', '\\']).next().unwrap_or(&file_name);
        let path = if folder.is_empty() { base.to_string() } else { format!("{folder}/{base}") };
        validate_file_path(&path)?;
        if !names.insert(path.clone()) {
            return Err(PageError::bad_request(format!("{path} is chosen twice.")));
        }
        staged.push(Staged::Inline { path, data });
    }
    let title = match summary.as_str() {
        "" if staged.len() == 1 => match &staged[0] {
            Staged::Inline { path, .. } | Staged::Spooled { path, .. } => format!("Upload {path}"),
            Staged::Op(_) => "Upload files".into(),
        },
        "" => format!("Upload {} files", staged.len()),
        s => s.chars().take(200).collect(),
    };
    commit(&state, &visitor, &repo, &branch, &parent, staged, &title).await?;
    Ok(Redirect::to(&format!("{}/tree/{}", repo_url(kind, &repo.namespace, &repo.name), encode_rev(&branch))).into_response())
}

pub(crate) async fn edit_form(State(state): State<AppState>, visitor: Visitor, Path(p): Path<RepoPath>, kind: RepoKind) -> PageResult {
    let path = p.path.clone().unwrap_or_default();
    let here = format!("{}/edit/{}/{}", repo_url(kind, &p.ns, &p.name), encode_rev(p.rev.as_deref().unwrap_or("main")), encode_path(&path));
    if visitor.name().is_none() {
        return sign_in_first(&here);
    }
    validate_file_path(&path)?;
    let (repo, branch) = writable(&state, &visitor, &p, kind).await?;
    crate::routes::require_content(&state, &visitor.caller, &repo).await?;
    let parent = state.repos.pin(&repo, &branch).await?;
    let content = match state.repos.file(&repo, &parent, &path).await? {
        None => String::new(),
        Some(entry) if entry.size as u64 > MAX_EDITED => {
            return Err(PageError::bad_request(format!("{path} is too large to edit here ({}).", super::human_size(entry.size))));
        }
        Some(entry) => {
            let bytes = state.cas.read_to_vec(&entry.sha256, MAX_EDITED).await.map_err(crate::error::ApiError::from)?;
            String::from_utf8(bytes).map_err(|_| PageError::bad_request(format!("{path} is not text.")))?
        }
    };
    Ok(page(
        &visitor,
        "edit.html",
        context! { repo => repo_value(&repo, None), tab => "files", branch, path, action => here, parent, content, error => None::<String> },
    ))
}

#[derive(Deserialize)]
pub(crate) struct EditForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    parent: String,
    #[serde(default)]
    content: String,
    #[serde(default)]
    summary: String,
}

pub(crate) async fn edit(
    State(state): State<AppState>,
    visitor: Visitor,
    Path(p): Path<RepoPath>,
    form: PageForm<EditForm>,
    kind: RepoKind,
) -> PageResult {
    let form = form.0;
    let (repo, branch, path) = file_target(&state, &visitor, &p, kind, &form.csrf).await?;
    if form.content.len() as u64 > MAX_EDITED {
        return Err(PageError::bad_request(format!("A file edited here may have at most {}.", super::human_size(MAX_EDITED as i64))));
    }
    // Browsers send a text area's lines ending in CRLF; files here end them as they were typed.
    let content = form.content.replace("\r\n", "\n");
    let title = match form.summary.trim() {
        "" => format!("Update {path}"),
        s => s.chars().take(200).collect(),
    };
    let staged = vec![Staged::Inline { path: path.clone(), data: content.clone().into_bytes() }];
    match commit(&state, &visitor, &repo, &branch, &form.parent, staged, &title).await {
        Ok(_) => {
            let url = repo_url(kind, &repo.namespace, &repo.name);
            let to = if path == "README.md" { url } else { format!("{url}/blob/{}/{}", encode_rev(&branch), encode_path(&path)) };
            Ok(Redirect::to(&to).into_response())
        }
        // A card that does not parse, or a branch that moved since the form was shown: the form
        // again, with what was typed and why it was not saved.
        Err(e) if e.status.is_client_error() => {
            let action = format!("{}/edit/{}/{}", repo_url(kind, &repo.namespace, &repo.name), encode_rev(&branch), encode_path(&path));
            let mut response = page(
                &visitor,
                "edit.html",
                context! { repo => repo_value(&repo, None), tab => "files", branch, path, action, parent => form.parent, content, error => e.message },
            );
            *response.status_mut() = e.status;
            Ok(response)
        }
        Err(e) => Err(e),
    }
}

#[derive(Deserialize)]
pub(crate) struct DeleteForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    parent: String,
}

pub(crate) async fn delete(
    State(state): State<AppState>,
    visitor: Visitor,
    Path(p): Path<RepoPath>,
    form: PageForm<DeleteForm>,
    kind: RepoKind,
) -> PageResult {
    let form = form.0;
    let (repo, branch, path) = file_target(&state, &visitor, &p, kind, &form.csrf).await?;
    if state.repos.file(&repo, &form.parent, &path).await?.is_none() {
        return Err(super::not_found(&format!("{path} is not in this revision.")));
    }
    let staged = vec![Staged::Op(CommitOp::Delete(path.clone()))];
    commit(&state, &visitor, &repo, &branch, &form.parent, staged, &format!("Delete {path}")).await?;
    Ok(Redirect::to(&format!("{}/tree/{}", repo_url(kind, &repo.namespace, &repo.name), encode_rev(&branch))).into_response())
}

#[derive(Deserialize)]
pub(crate) struct LikeForm {
    #[serde(default)]
    csrf: String,
    /// `like` or `unlike`: the button says which, so a form sent twice does not undo itself.
    #[serde(default)]
    action: String,
}

pub(crate) async fn like(
    State(state): State<AppState>,
    visitor: Visitor,
    Path(p): Path<RepoPath>,
    form: PageForm<LikeForm>,
    kind: RepoKind,
) -> PageResult {
    let form = form.0;
    visitor.check_csrf(&form.csrf)?;
    let url = repo_url(kind, &p.ns, &p.name);
    if visitor.name().is_none() {
        return sign_in_first(&url);
    }
    let token = visitor.caller.require_account()?;
    let repo = state.repos.find(kind, &p.ns, &p.name, visitor.reader()).await?;
    match form.action.as_str() {
        "like" => state.repos.like(token.user.id, &repo).await?,
        "unlike" => state.repos.unlike(token.user.id, &repo).await?,
        other => return Err(PageError::bad_request(format!("There is no action {other:?}."))),
    };
    Ok(Redirect::to(&url).into_response())
}
