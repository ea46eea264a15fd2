//! People: a user's page (their models, datasets and algorithms, what they like) and their
//! settings (access tokens: create with a scope, see, revoke).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use commons_db::Scope;
use minijinja::context;
use serde::Deserialize;

use super::session::{CsrfForm, Visitor};
use super::{PageError, PageForm, PageResult, day, namespace_repos, not_found, page, repo_values};
use crate::AppState;

/// Repositories of each kind shown on a user's page.
const PROFILE_LIST: i64 = 30;

pub(crate) async fn profile(State(state): State<AppState>, visitor: Visitor, Path(user): Path<String>) -> PageResult {
    if user.len() > commons_repo::names::MAX_NAME_LEN {
        return Err(not_found("No such user."));
    }
    let Some(account) = state.db.user_by_name(&user).await? else {
        // A namespace is a user's or an organization's.
        return match state.db.org(&user).await? {
            Some(org) => super::orgs::org_page(&state, &visitor, org, None).await,
            None => Err(not_found("No such user or organization.")),
        };
    };
    let viewer = visitor.reader();
    let [models, datasets, algorithms] = namespace_repos(&state, &account.name, viewer, PROFILE_LIST).await?;
    let liked: Vec<_> = state.db.likes_of(&account.name, viewer, PROFILE_LIST, 0).await?.into_iter().map(|(r, _)| r).collect();
    let liked = repo_values(&state, &liked).await?;
    let orgs: Vec<_> =
        state.db.memberships_of(account.id).await?.into_iter().map(|m| context! { name => m.org, fullname => m.fullname }).collect();
    Ok(page(
        &visitor,
        "user.html",
        context! {
            user => context! { name => &account.name, fullname => &account.fullname, joined => day(account.created_at) },
            models, datasets, algorithms, liked, orgs,
            own => visitor.name() == Some(account.name.as_str()),
        },
    ))
}

/// Settings are the signed-in account's own.
fn signed_in(visitor: &Visitor) -> Result<&commons_db::Token, PageError> {
    let token = visitor.require()?;
    // Only what may act for the whole account may make tokens for it: a browser session, or a
    // write token (a read token must not mint itself a write one).
    visitor.caller.require_write(&token.user.name)?;
    Ok(token)
}

pub(crate) async fn tokens(State(state): State<AppState>, visitor: Visitor) -> PageResult {
    if visitor.name().is_none() {
        return Ok(Redirect::to("/login?next=%2Fsettings%2Ftokens").into_response());
    }
    let token = signed_in(&visitor)?;
    tokens_page(&state, &visitor, token.user.id, None, None).await
}

async fn tokens_page(
    state: &AppState,
    visitor: &Visitor,
    user_id: i64,
    created: Option<(String, String)>,
    error: Option<String>,
) -> PageResult {
    let tokens: Vec<_> = state
        .db
        .tokens_of(user_id)
        .await?
        .into_iter()
        .map(|t| context! { id => t.id, name => t.name, scope => t.scope.as_str(), created => day(t.created_at) })
        .collect();
    let created = created.map(|(name, secret)| context! { name, secret });
    let mut response = page(visitor, "tokens.html", context! { tokens, created, error => &error });
    if error.is_some() {
        *response.status_mut() = StatusCode::BAD_REQUEST;
    }
    // A new token's secret is on this page once: no cache may keep it.
    response.headers_mut().insert(axum::http::header::CACHE_CONTROL, axum::http::HeaderValue::from_static("no-store"));
    Ok(response)
}

#[derive(Deserialize)]
pub(crate) struct NewTokenForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    scope: String,
}

/// Tokens an account may hold: more is a script gone wrong, not a person.
const MAX_TOKENS: usize = 100;

pub(crate) async fn create_token(State(state): State<AppState>, visitor: Visitor, form: PageForm<NewTokenForm>) -> PageResult {
    let form = form.0;
    visitor.check_csrf(&form.csrf)?;
    let token = signed_in(&visitor)?;
    let user = token.user.clone();
    let name = form.name.trim().to_string();
    if name.is_empty() || name.chars().count() > 100 {
        return tokens_page(&state, &visitor, user.id, None, Some("A token needs a name of 1 to 100 characters.".into())).await;
    }
    let scope = match Scope::parse(&form.scope) {
        Ok(scope) => scope,
        Err(e) => return tokens_page(&state, &visitor, user.id, None, Some(e.to_string())).await,
    };
    if state.db.tokens_of(user.id).await?.len() >= MAX_TOKENS {
        return tokens_page(
            &state,
            &visitor,
            user.id,
            None,
            Some(format!("An account holds at most {MAX_TOKENS} tokens; revoke one first.")),
        )
        .await;
    }
    let secret = state.db.create_token(&user.name, &name, scope).await?;
    tracing::info!(user = %user.name, token = %name, scope = scope.as_str(), "token created from the browser");
    tokens_page(&state, &visitor, user.id, Some((name, secret)), None).await
}

pub(crate) async fn revoke_token(
    State(state): State<AppState>,
    visitor: Visitor,
    Path(id): Path<i64>,
    form: PageForm<CsrfForm>,
) -> PageResult {
    visitor.check_csrf(&form.0.csrf)?;
    let token = signed_in(&visitor)?;
    if !state.db.revoke_token(token.user.id, id).await? {
        return Err(not_found("No such token."));
    }
    Ok(Redirect::to("/settings/tokens").into_response())
}

pub(crate) async fn profile_settings(State(state): State<AppState>, visitor: Visitor) -> PageResult {
    if visitor.name().is_none() {
        return Ok(Redirect::to("/login?next=%2Fsettings%2Fprofile").into_response());
    }
    let token = signed_in(&visitor)?;
    profile_page(&state, &visitor, &token.user.name, None, None).await
}

async fn profile_page(state: &AppState, visitor: &Visitor, name: &str, notice: Option<&str>, error: Option<String>) -> PageResult {
    let (user, password) = state.db.user_with_password(name).await?.ok_or_else(|| not_found("No such user."))?;
    let mut response = page(
        visitor,
        "profile_settings.html",
        context! { fullname => &user.fullname, has_password => password.is_some(), notice, error => &error },
    );
    if error.is_some() {
        *response.status_mut() = StatusCode::BAD_REQUEST;
    }
    Ok(response)
}

#[derive(Deserialize)]
pub(crate) struct ProfileForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    fullname: String,
}

pub(crate) async fn save_profile(State(state): State<AppState>, visitor: Visitor, form: PageForm<ProfileForm>) -> PageResult {
    let form = form.0;
    visitor.check_csrf(&form.csrf)?;
    let user = signed_in(&visitor)?.user.clone();
    let fullname = form.fullname.trim();
    if fullname.is_empty() || fullname.chars().count() > 200 || fullname.chars().any(char::is_control) {
        return profile_page(&state, &visitor, &user.name, None, Some("A full name has 1 to 200 characters.".into())).await;
    }
    state.db.set_fullname(user.id, fullname).await?;
    profile_page(&state, &visitor, &user.name, Some("Saved."), None).await
}

#[derive(Deserialize)]
pub(crate) struct PasswordForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    current: String,
    #[serde(default)]
    password: String,
}

/// A new password: the current one checked first (when the account has one), counted against
/// the account's sign-in limit, then every session of the account ended and this browser
/// signed in afresh.
pub(crate) async fn change_password(State(state): State<AppState>, visitor: Visitor, form: PageForm<PasswordForm>) -> PageResult {
    let form = form.0;
    visitor.check_csrf(&form.csrf)?;
    let user = signed_in(&visitor)?.user.clone();
    if let Err(wait) = state.sign_in.take(format!("user:{}", user.name.to_ascii_lowercase()), super::session::PER_ACCOUNT) {
        return Ok(super::session::too_many(wait));
    }
    let (_, phc) = state.db.user_with_password(&user.name).await?.ok_or_else(|| not_found("No such user."))?;
    if let Some(phc) = phc {
        let current = form.current;
        if !state.sign_in.hash(move || commons_repo::accounts::verify_password(&current, &phc)).await? {
            return profile_page(&state, &visitor, &user.name, None, Some("The current password is not right.".into())).await;
        }
    }
    if let Err(e) = commons_repo::accounts::validate_password(&form.password) {
        return profile_page(&state, &visitor, &user.name, None, Some(e.to_string())).await;
    }
    let password = form.password;
    let phc = state.sign_in.hash(move || commons_repo::accounts::hash_password(&password)).await?.map_err(PageError::from)?;
    state.db.set_password(&user.name, &phc).await?;
    tracing::info!(user = %user.name, "password changed from the browser; other sessions ended");
    super::session::start_session(&state, &visitor, user.id, "/settings/profile").await
}
