//! Organizations for people: an organization's page (its repositories, its members), the form
//! that creates one, and its admins' forms for members and settings. The rules are
//! `commons_repo::access`'s, as for the API (`routes::orgs`).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use commons_db::{ORG_FULLNAME_MAX, OrgRole, Organization};
use minijinja::context;
use serde::Deserialize;

use super::session::Visitor;
use super::write::sign_in_first;
use super::{PageForm, PageResult, day, namespace_repos, not_found, page};
use crate::AppState;

/// Repositories of each kind, and members, shown on an organization's page.
const ORG_LIST: i64 = 30;
const MEMBERS_SHOWN: i64 = 200;

/// `/{name}` when `name` is an organization's: its repositories the visitor may see, its
/// members (their roles to members), and for its admins the forms that manage it.
pub(crate) async fn org_page(state: &AppState, visitor: &Visitor, org: Organization, notice: Option<String>) -> PageResult {
    let [models, datasets, algorithms] = namespace_repos(state, &org.name, visitor.reader(), ORG_LIST).await?;
    let role = visitor.caller.0.as_ref().and_then(|t| t.orgs.iter().find(|m| m.org_id == org.id)).map(|m| m.role);
    let members: Vec<_> = state
        .db
        .org_members(org.id, None, MEMBERS_SHOWN)
        .await?
        .into_iter()
        .map(|(user, r)| context! { name => user.name, fullname => user.fullname, role => role.map(|_| r.as_str()) })
        .collect();
    let mut response = page(
        visitor,
        "org.html",
        context! {
            org => context! { name => &org.name, fullname => &org.fullname, joined => day(org.created_at), default_private => org.default_private },
            models, datasets, algorithms, members,
            role => role.map(OrgRole::as_str),
            admin => role == Some(OrgRole::Admin),
            can_create => role >= Some(OrgRole::Contributor),
            roles => ["no_access", "read", "contributor", "write", "admin"],
            notice => &notice,
        },
    );
    if notice.is_some() {
        // Only refusals are told: a change redirects to the page afresh.
        *response.status_mut() = StatusCode::BAD_REQUEST;
    }
    Ok(response)
}

pub(crate) async fn new_org_form(visitor: Visitor) -> PageResult {
    if visitor.name().is_none() {
        return sign_in_first("/organizations/new");
    }
    Ok(page(&visitor, "org_new.html", context! { name => "", fullname => "", error => None::<String> }))
}

#[derive(Deserialize)]
pub(crate) struct NewOrgForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    fullname: String,
}

/// Creates an organization with the visitor its first admin, then shows its page.
pub(crate) async fn create_org(State(state): State<AppState>, visitor: Visitor, form: PageForm<NewOrgForm>) -> PageResult {
    let form = form.0;
    visitor.check_csrf(&form.csrf)?;
    let me = visitor.require()?.user.name.clone();
    // What acts for the whole account (a session or a write token) may found an organization.
    visitor.caller.require_write(&me)?;
    let name = form.name.trim().to_string();
    let fullname = match form.fullname.trim() {
        "" => name.clone(),
        f => f.to_string(),
    };
    let refuse = |status: StatusCode, error: String| {
        let mut response = page(&visitor, "org_new.html", context! { name => &name, fullname => &fullname, error });
        *response.status_mut() = status;
        Ok(response)
    };
    if let Err(e) = commons_repo::names::validate_org_name(&name) {
        return refuse(StatusCode::BAD_REQUEST, e.to_string());
    }
    if fullname.chars().count() > ORG_FULLNAME_MAX || fullname.chars().any(char::is_control) {
        return refuse(StatusCode::BAD_REQUEST, format!("A full name has at most {ORG_FULLNAME_MAX} characters."));
    }
    match state.db.create_org(&name, &fullname, &me).await {
        Ok(org) => {
            tracing::info!(org = %org.name, admin = %me, "organization created from the browser");
            Ok(Redirect::to(&format!("/{}", org.name)).into_response())
        }
        Err(commons_db::DbError::AlreadyExists(_)) => refuse(StatusCode::CONFLICT, format!("The name {name} is taken.")),
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize)]
pub(crate) struct MemberForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    user: String,
    /// A role, or `remove`.
    #[serde(default)]
    role: String,
}

/// An admin adds a member, changes a role or removes a member; a refusal is said on the page.
pub(crate) async fn set_member(
    State(state): State<AppState>,
    visitor: Visitor,
    Path(name): Path<String>,
    form: PageForm<MemberForm>,
) -> PageResult {
    let form = form.0;
    visitor.check_csrf(&form.csrf)?;
    let org = state.db.org(&name).await?.ok_or_else(|| not_found("No such organization."))?;
    visitor.caller.require_manage_org(&org.name)?;
    let user = form.user.trim();
    let outcome = if form.role == "remove" {
        match state.db.remove_member(org.id, user).await {
            Ok(false) => Err(commons_db::DbError::NotFound(format!("member {user}"))),
            other => other,
        }
    } else {
        match OrgRole::parse(&form.role) {
            Ok(role) => state.db.set_member_role(org.id, user, role).await.map(|()| true),
            Err(e) => Err(e),
        }
    };
    match outcome {
        // After a change, the page afresh (the visitor's own role may have changed with it).
        Ok(_) => Ok(Redirect::to(&format!("/{}", org.name)).into_response()),
        Err(e @ (commons_db::DbError::Invalid(_) | commons_db::DbError::NotFound(_))) => {
            org_page(&state, &visitor, org, Some(format!("Refused: {e}."))).await
        }
        Err(e) => Err(e.into()),
    }
}
