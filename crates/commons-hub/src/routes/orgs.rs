//! Organizations and people, as `huggingface_hub` reads them (access protocol §2.3–2.4):
//!
//! - `GET /api/organizations/{org}/overview`: the organization's card (`get_organization_overview`)
//! - `GET /api/organizations/{org}/members?limit=&cursor=`: its members by name, pages linked by
//!   `Link` (`list_organization_members`); their roles only to its members
//! - `PUT /api/organizations/{org}/members/{user}/role` `{"role"}`: an admin adds a member or
//!   changes their role (`no_access`, `read`, `contributor`, `write`, `admin`); `{"success": true}`
//! - `DELETE /api/organizations/{org}/members/{user}`: an admin removes a member (a member may
//!   leave); the last admin stays
//! - `PUT /api/organizations/{org}/settings` `{"fullname"?, "defaultRepoVisibility"?}`: an admin
//!   renames it, or makes its new repositories private unless said otherwise
//! - `GET /api/users/{user}/overview`: a user's card (`get_user_overview`), their organizations
//!
//! Creating an organization is a web page (`/organizations/new`) and `commons org create`, as on
//! the Hub, where it is web-only. Who may do what is `commons_repo::access`.

use std::collections::HashMap;

use super::{Path, Query};
use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use commons_db::{ORG_FULLNAME_MAX, OrgRole, Organization};
use serde::Deserialize;
use serde_json::{Value, json};

use super::base_url;
use super::repos::page_response;
use crate::AppState;
use crate::auth::Caller;
use crate::body::RawBody;
use crate::error::{ApiError, ApiResult};

/// Members per page, unless `limit` asks for fewer.
const MEMBERS_PAGE_MAX: usize = 500;

async fn org_named(state: &AppState, name: &str) -> ApiResult<Organization> {
    if name.len() > commons_repo::names::MAX_NAME_LEN {
        return Err(org_not_found(name));
    }
    state.db.org(name).await?.ok_or_else(|| org_not_found(name))
}

fn org_not_found(name: &str) -> ApiError {
    ApiError::new(axum::http::StatusCode::NOT_FOUND, "NotFound", format!("Organization {name} not found"))
}

pub async fn overview(State(state): State<AppState>, caller: Caller, Path(org): Path<String>) -> ApiResult<Json<Value>> {
    let org = org_named(&state, &org).await?;
    let counts = state.db.org_counts(&org).await?;
    let member = caller.0.as_ref().filter(|t| !t.is_lease()).and_then(|t| t.orgs.iter().find(|m| m.org_id == org.id));
    Ok(Json(json!({
        "_id": format!("{:024x}", org.id),
        "type": "org",
        "name": org.name,
        "fullname": org.fullname,
        "avatarUrl": "",
        "details": null,
        "isVerified": false,
        "isFollowing": false,
        "numUsers": counts.members,
        "numModels": counts.models,
        "numDatasets": counts.datasets,
        "numAlgorithms": counts.algorithms,
        "numSpaces": 0,
        "numFollowers": 0,
        "numPapers": 0,
        "plan": null,
        "defaultRepoVisibility": if org.default_private { "private" } else { "public" },
        "roleInOrg": member.map(|m| m.role.as_str()),
    })))
}

pub async fn members(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(org): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    let org = org_named(&state, &org).await?;
    let limit = match q.get("limit") {
        Some(l) => l.parse::<usize>().map_err(|_| ApiError::bad_request(format!("invalid limit {l:?}")))?.clamp(1, MEMBERS_PAGE_MAX),
        None => MEMBERS_PAGE_MAX,
    };
    // The cursor is the name the previous page ended on: a page costs its own rows however far.
    let after = q.get("cursor").map(String::as_str).filter(|c| !c.is_empty());
    if after.is_some_and(|c| c.len() > commons_repo::names::MAX_NAME_LEN) {
        return Err(ApiError::bad_request("invalid cursor: a member's name is the cursor"));
    }
    let mut members = state.db.org_members(org.id, after, (limit + 1) as i64).await?;
    let more = members.len() > limit;
    members.truncate(limit);
    // Roles are the organization's business: its members see them, others see who belongs.
    let insider = caller.0.as_ref().filter(|t| !t.is_lease()).is_some_and(|t| t.orgs.iter().any(|m| m.org_id == org.id));
    let items: Vec<Value> = members
        .iter()
        .map(|(user, role)| {
            let mut item = json!({"user": user.name, "fullname": user.fullname, "avatarUrl": "", "type": "user", "isPro": false, "isFollowing": false});
            if insider {
                item["role"] = json!(role.as_str());
            }
            item
        })
        .collect();
    let last = members.last().map(|(u, _)| u.name.clone()).unwrap_or_default();
    Ok(page_response(items, more, || {
        let mut pairs: Vec<(String, String)> = q.iter().filter(|(k, _)| *k != "cursor").map(|(k, v)| (k.clone(), v.clone())).collect();
        pairs.sort();
        pairs.push(("cursor".into(), last));
        let query = serde_urlencoded::to_string(pairs).unwrap_or_default();
        format!("{}/api/organizations/{}/members?{query}", base_url(&state, &headers), org.name)
    }))
}

#[derive(Deserialize)]
pub struct RoleBody {
    role: String,
}

pub async fn set_role(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, user)): Path<(String, String)>,
    body: RawBody,
) -> ApiResult<Json<Value>> {
    let org = org_named(&state, &org).await?;
    let token = caller.require_manage_org(&org.name)?;
    let body: RoleBody = body.json(state.limits.json_body, "the role request").await?;
    let role = OrgRole::parse(&body.role)?;
    state.db.set_member_role(org.id, &user, role).await?;
    tracing::info!(org = %org.name, member = %user, role = role.as_str(), by = %token.user.name, "organization role set");
    Ok(Json(json!({"success": true})))
}

pub async fn remove(State(state): State<AppState>, caller: Caller, Path((org, user)): Path<(String, String)>) -> ApiResult<Json<Value>> {
    let org = org_named(&state, &org).await?;
    let token = caller.require_account()?;
    // A member may leave; only an admin removes someone else.
    if token.user.name != user {
        caller.require_manage_org(&org.name)?;
    }
    if !state.db.remove_member(org.id, &user).await? {
        return Err(ApiError::new(axum::http::StatusCode::NOT_FOUND, "NotFound", format!("{user} is not a member of {}", org.name)));
    }
    tracing::info!(org = %org.name, member = %user, by = %token.user.name, "organization member removed");
    Ok(Json(json!({"success": true})))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SettingsBody {
    fullname: Option<String>,
    default_repo_visibility: Option<String>,
}

pub async fn settings(State(state): State<AppState>, caller: Caller, Path(org): Path<String>, body: RawBody) -> ApiResult<Json<Value>> {
    let org = org_named(&state, &org).await?;
    caller.require_manage_org(&org.name)?;
    let body: SettingsBody = body.json(state.limits.json_body, "the settings request").await?;
    let fullname = body.fullname.as_deref().map(str::trim);
    if let Some(name) = fullname
        && (name.is_empty() || name.chars().count() > ORG_FULLNAME_MAX || name.chars().any(char::is_control))
    {
        return Err(ApiError::bad_request(format!("a full name has 1 to {ORG_FULLNAME_MAX} characters")));
    }
    let default_private = match body.default_repo_visibility.as_deref() {
        None => None,
        Some("private") => Some(true),
        Some("public") => Some(false),
        Some(other) => return Err(ApiError::bad_request(format!("unknown visibility {other:?}: use public or private"))),
    };
    state.db.set_org_settings(org.id, fullname, default_private).await?;
    Ok(Json(json!({"success": true})))
}

pub async fn user_overview(State(state): State<AppState>, Path(name): Path<String>) -> ApiResult<Json<Value>> {
    let user = match name.len() <= commons_repo::names::MAX_NAME_LEN {
        true => state.db.user_by_name(&name).await?,
        false => None,
    };
    let Some(user) = user else {
        return Err(ApiError::new(axum::http::StatusCode::NOT_FOUND, "NotFound", format!("User {name} not found")));
    };
    let orgs: Vec<Value> = state
        .db
        .memberships_of(user.id)
        .await?
        .iter()
        .map(|m| json!({"type": "org", "name": m.org, "fullname": m.fullname, "avatarUrl": ""}))
        .collect();
    Ok(Json(json!({
        "_id": format!("{:024x}", user.id),
        "type": "user",
        "user": user.name,
        "fullname": user.fullname,
        "avatarUrl": "",
        "isPro": false,
        "isFollowing": false,
        "details": null,
        "createdAt": super::iso_time(user.created_at),
        "orgs": orgs,
    })))
}
