//! Who is looking at a page: a browser signed in with a password (a session cookie), a client
//! with a Bearer token, or nobody. Sign-up, sign-in, sign-out, and the CSRF rule of every form.
//!
//! - A session's secret lives only in an `HttpOnly`, `SameSite=Lax` cookie (`Secure` when the
//!   hub is reached over TLS); the database keeps its sha256. The API never reads it: the API
//!   takes Bearer tokens only, so a cookie can never act on the API behind a page's back.
//! - Every form carries a CSRF token derived from the secret of the cookie it is sent with (the
//!   session's, or before sign-in a random `commons_csrf` cookie): another site can make a
//!   browser send the cookie, never read it, so it cannot know the token.
//! - Sign-in and sign-up are limited per client address and per account name, and at most two
//!   password hashes are computed at once (each takes 19 MiB and tens of milliseconds).

use std::net::SocketAddr;

use std::time::Duration;

use axum::extract::{ConnectInfo, FromRef, FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use commons_db::{Scope, Token};
use commons_repo::accounts;
use minijinja::{Value, context};
use serde::Deserialize;
use sha2::Digest;

use super::{PageError, PageResult, page};
use crate::AppState;
use crate::auth::Caller;

pub(crate) const SESSION_COOKIE: &str = "commons_session";
const PRE_SESSION_COOKIE: &str = "commons_csrf";
/// How long a sign-in lasts.
const SESSION_SECONDS: i64 = 30 * 86_400;

/// Whether people may make their own accounts from the sign-up page (`commons serve --signup`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Signup {
    Open,
    /// Accounts are made by the operator (`commons user create`).
    #[default]
    Closed,
}

/// The visitor of a page: the caller (from a session cookie, or a Bearer token as the API reads
/// it) and the secret the forms' CSRF tokens are derived from.
pub(crate) struct Visitor {
    pub caller: Caller,
    /// The session's secret, or the pre-session cookie's value; `None` when neither was sent.
    seed: Option<String>,
    /// Set when the caller came from a cookie: forms then need the CSRF token.
    by_cookie: bool,
    /// Whether the browser reached the hub over TLS (cookies are then `Secure`).
    pub(crate) secure: bool,
    /// The client's address, as sign-in limits count it.
    address: String,
}

impl std::ops::Deref for Visitor {
    type Target = Caller;
    fn deref(&self) -> &Caller {
        &self.caller
    }
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .and_then(|c| c.value_raw())
        // A secret is hex after a short prefix: anything else is not ours, and not looked up.
        .filter(|v| v.len() <= 80 && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
}

impl<S: Send + Sync> FromRequestParts<S> for Visitor
where
    AppState: FromRef<S>,
{
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, PageError> {
        let hub = AppState::from_ref(state);
        let address = parts.extensions.get::<ConnectInfo<SocketAddr>>().map_or_else(|| "unknown".to_string(), |c| c.0.ip().to_string());
        let secure = hub.public_url.as_deref().is_some_and(|u| u.starts_with("https://"))
            || parts.headers.get("x-forwarded-proto").is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"));
        if parts.headers.contains_key(header::AUTHORIZATION) {
            let caller = Caller::from_request_parts(parts, state).await?;
            return Ok(Visitor { caller, seed: None, by_cookie: false, secure, address });
        }
        if let Some(secret) = cookie(&parts.headers, SESSION_COOKIE) {
            // A session that ended (signed out, expired, password changed) is simply anonymous:
            // the page shows "Sign in", as any site does.
            if let Some(user) = hub.db.session_user(secret).await? {
                let orgs = hub.db.memberships_of(user.id).await?;
                let token = Token { user, name: "browser session".into(), scope: Scope::Write, repo_id: None, branch: None, orgs };
                return Ok(Visitor { caller: Caller(Some(token)), seed: Some(secret.to_string()), by_cookie: true, secure, address });
            }
        }
        let seed = cookie(&parts.headers, PRE_SESSION_COOKIE).map(str::to_string);
        Ok(Visitor { caller: Caller(None), seed, by_cookie: true, secure, address })
    }
}

fn csrf_of(seed: &str) -> String {
    let digest = sha2::Sha256::digest(format!("commons csrf\0{seed}").as_bytes());
    hex::encode(&digest[..16])
}

/// Equal in time independent of where they differ.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Visitor {
    /// The token the forms of this page carry, if the browser holds a cookie to derive it from.
    pub(crate) fn csrf(&self) -> Option<String> {
        self.seed.as_deref().map(csrf_of)
    }

    /// A form's CSRF token checked: required whenever the browser's cookie made the caller (a
    /// Bearer client is not a browser another site can drive).
    pub(crate) fn check_csrf(&self, sent: &str) -> Result<(), PageError> {
        if !self.by_cookie {
            return Ok(());
        }
        match self.csrf() {
            Some(expected) if same(&expected, sent) => Ok(()),
            _ => Err(PageError {
                status: StatusCode::FORBIDDEN,
                message: "This form has expired or did not come from this site. Go back, reload the page and send it again.".into(),
            }),
        }
    }

    /// The signed-in account's name.
    pub(crate) fn name(&self) -> Option<&str> {
        self.caller.0.as_ref().map(|t| t.user.name.as_str())
    }

    /// The signed-in account's id.
    pub(crate) fn account_id(&self) -> Option<i64> {
        self.caller.0.as_ref().map(|t| t.user.id)
    }

    /// Whether the page should offer to change `branch` of `repo` (a revision that is a commit id
    /// is no branch; a tag is refused when the form is sent).
    pub(crate) fn may_write(&self, repo: &commons_db::Repo, branch: &str) -> bool {
        let commit_id = branch.len() == 40 && branch.bytes().all(|b| b.is_ascii_hexdigit());
        !commit_id && self.caller.require_write_branch(repo, branch).is_ok()
    }

    /// The signed-in account, or the sign-in page's 401.
    pub(crate) fn require(&self) -> Result<&Token, PageError> {
        self.caller.0.as_ref().ok_or_else(|| PageError { status: StatusCode::UNAUTHORIZED, message: "Sign in to do this.".into() })
    }

    /// What every page's header shows of the visitor.
    pub(crate) fn context(&self) -> Value {
        context! { me => self.name(), csrf => self.csrf() }
    }

    /// A cookie for this browser: HttpOnly, SameSite=Lax, on the whole site.
    fn set_cookie(&self, name: &str, value: &str, max_age: i64) -> HeaderValue {
        let secure = if self.secure { "; Secure" } else { "" };
        let value = format!("{name}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Lax{secure}");
        HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static("commons_invalid=; Max-Age=0"))
    }

    /// A form page for a browser without a cookie to derive the CSRF token from: a fresh
    /// pre-session cookie, and the token derived from it.
    pub(crate) fn ensure_seed(&mut self) -> Option<HeaderValue> {
        // A Bearer client's forms need no token (`check_csrf`).
        if self.seed.is_some() || !self.by_cookie {
            return None;
        }
        let seed = hex::encode(rand::random::<[u8; 24]>());
        let cookie = self.set_cookie(PRE_SESSION_COOKIE, &seed, SESSION_SECONDS);
        self.seed = Some(seed);
        Some(cookie)
    }
}

/// Sign-in and sign-up attempts per client address and per account, in fixed windows.
pub struct SignInLimiter {
    windows: crate::limiter::RateWindows,
    /// Password hashes being computed.
    hashing: tokio::sync::Semaphore,
}

impl Default for SignInLimiter {
    fn default() -> Self {
        Self { windows: crate::limiter::RateWindows::new(WINDOW), hashing: tokio::sync::Semaphore::new(2) }
    }
}

/// Attempts allowed per window: from one address, and against one account.
const PER_ADDRESS: u32 = 20;
pub(crate) const PER_ACCOUNT: u32 = 10;
const WINDOW: Duration = Duration::from_secs(300);

impl SignInLimiter {
    /// Counts one attempt under `key`; the seconds to wait when it is over `limit`.
    pub(crate) fn take(&self, key: String, limit: u32) -> Result<(), u64> {
        self.windows.take(key, limit)
    }

    /// Runs a password hash or check off the async threads, at most two at once.
    pub(crate) async fn hash<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> Result<T, PageError> {
        let _permit = self.hashing.acquire().await.map_err(|_| PageError::internal("the hub is shutting down"))?;
        tokio::task::spawn_blocking(work).await.map_err(|e| PageError::internal(format!("password check failed: {e}")))
    }
}

pub(crate) fn too_many(wait: u64) -> Response {
    let mut response = PageError {
        status: StatusCode::TOO_MANY_REQUESTS,
        message: format!("Too many attempts. Try again in {} minutes.", wait.div_ceil(60)),
    }
    .into_response();
    if let Ok(v) = HeaderValue::from_str(&wait.to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, v);
    }
    response
}

/// Where to go after signing in: a path of this site only (never `//host` or a URL).
fn local_path(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') && n.len() <= 2048 => n.to_string(),
        _ => "/".to_string(),
    }
}

#[derive(Deserialize, Default)]
pub(crate) struct NextQuery {
    next: Option<String>,
}

pub(crate) async fn login_form(State(state): State<AppState>, mut visitor: Visitor, Query(q): Query<NextQuery>) -> PageResult {
    let cookie = visitor.ensure_seed();
    let signup = state.signup == Signup::Open;
    let mut response =
        page(&visitor, "login.html", context! { next => local_path(q.next.as_deref()), signup, name => "", error => None::<String> });
    if let Some(cookie) = cookie {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    Ok(response)
}

#[derive(Deserialize)]
pub(crate) struct LoginForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    password: String,
    next: Option<String>,
}

pub(crate) async fn login(State(state): State<AppState>, visitor: Visitor, form: super::PageForm<LoginForm>) -> PageResult {
    let form = form.0;
    visitor.check_csrf(&form.csrf)?;
    let name = form.name.trim().to_string();
    if let Err(wait) = state.sign_in.take(format!("ip:{}", visitor.address), PER_ADDRESS) {
        return Ok(too_many(wait));
    }
    if let Err(wait) = state.sign_in.take(format!("user:{}", name.to_ascii_lowercase()), PER_ACCOUNT) {
        return Ok(too_many(wait));
    }
    let account =
        if name.is_empty() || name.len() > commons_repo::names::MAX_NAME_LEN { None } else { state.db.user_with_password(&name).await? };
    let (user, phc) = match account {
        Some((user, Some(phc))) => (Some(user), phc),
        // No such account, or one without a password: the same work and the same answer, so the
        // page does not tell which names exist.
        _ => (None, accounts::decoy_hash().to_string()),
    };
    let password = form.password;
    let matches = state.sign_in.hash(move || accounts::verify_password(&password, &phc)).await?;
    let Some(user) = user.filter(|_| matches) else {
        let signup = state.signup == Signup::Open;
        let mut response = page(
            &visitor,
            "login.html",
            context! { next => local_path(form.next.as_deref()), signup, name, error => "Wrong name or password." },
        );
        *response.status_mut() = StatusCode::UNAUTHORIZED;
        return Ok(response);
    };
    start_session(&state, &visitor, user.id, &local_path(form.next.as_deref())).await
}

/// Signs the browser in as `user_id` and sends it to `to`: a new session secret (never one the
/// browser had before), and the pre-session cookie dropped.
pub(crate) async fn start_session(state: &AppState, visitor: &Visitor, user_id: i64, to: &str) -> PageResult {
    let secret = state.db.create_session(user_id, SESSION_SECONDS).await?;
    let mut response = Redirect::to(to).into_response();
    response.headers_mut().append(header::SET_COOKIE, visitor.set_cookie(SESSION_COOKIE, &secret, SESSION_SECONDS));
    response.headers_mut().append(header::SET_COOKIE, visitor.set_cookie(PRE_SESSION_COOKIE, "", 0));
    Ok(response)
}

#[derive(Deserialize)]
pub(crate) struct CsrfForm {
    #[serde(default)]
    pub(crate) csrf: String,
}

pub(crate) async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    visitor: Visitor,
    form: super::PageForm<CsrfForm>,
) -> PageResult {
    visitor.check_csrf(&form.0.csrf)?;
    if let Some(secret) = cookie(&headers, SESSION_COOKIE) {
        state.db.end_session(secret).await?;
    }
    let mut response = Redirect::to("/").into_response();
    response.headers_mut().append(header::SET_COOKIE, visitor.set_cookie(SESSION_COOKIE, "", 0));
    Ok(response)
}

pub(crate) async fn join_form(State(state): State<AppState>, mut visitor: Visitor) -> PageResult {
    if state.signup != Signup::Open {
        return Err(signup_closed());
    }
    let cookie = visitor.ensure_seed();
    let mut response = page(&visitor, "join.html", context! { name => "", fullname => "", error => None::<String> });
    if let Some(cookie) = cookie {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    Ok(response)
}

fn signup_closed() -> PageError {
    PageError { status: StatusCode::NOT_FOUND, message: "This hub does not take sign-ups; ask its operator for an account.".into() }
}

#[derive(Deserialize)]
pub(crate) struct JoinForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    fullname: String,
    #[serde(default)]
    password: String,
}

pub(crate) async fn join(State(state): State<AppState>, visitor: Visitor, form: super::PageForm<JoinForm>) -> PageResult {
    if state.signup != Signup::Open {
        return Err(signup_closed());
    }
    let form = form.0;
    visitor.check_csrf(&form.csrf)?;
    if let Err(wait) = state.sign_in.take(format!("join:{}", visitor.address), PER_ACCOUNT) {
        return Ok(too_many(wait));
    }
    let name = form.name.trim().to_string();
    let fullname = match form.fullname.trim() {
        "" => name.clone(),
        f => f.chars().take(200).collect(),
    };
    let refuse = |error: String| {
        let mut response = page(&visitor, "join.html", context! { name => &name, fullname => &fullname, error });
        *response.status_mut() = StatusCode::BAD_REQUEST;
        Ok(response)
    };
    if let Err(e) = commons_repo::names::validate_user_name(&name) {
        return refuse(e.to_string());
    }
    if let Err(e) = accounts::validate_password(&form.password) {
        return refuse(e.to_string());
    }
    if state.db.user_by_name(&name).await?.is_some() {
        return refuse(format!("The name {name:?} is taken."));
    }
    let password = form.password;
    let phc = state.sign_in.hash(move || accounts::hash_password(&password)).await?.map_err(PageError::from)?;
    let user = match state.db.create_user_with_password(&name, &fullname, Some(&phc)).await {
        Ok(user) => user,
        Err(commons_db::DbError::AlreadyExists(_)) => return refuse(format!("The name {name:?} is taken.")),
        Err(e) => return Err(e.into()),
    };
    tracing::info!(user = %user.name, "account created from the sign-up page");
    start_session(&state, &visitor, user.id, "/").await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_paths_of_this_site_are_followed_after_sign_in() {
        assert_eq!(local_path(Some("/datasets/a/b")), "/datasets/a/b");
        for outside in ["//evil.example/x", "https://evil.example", "/\\evil.example", "evil"] {
            assert_eq!(local_path(Some(outside)), "/", "{outside}");
        }
    }

    #[test]
    fn attempts_past_the_limit_wait_for_the_window() {
        let limiter = SignInLimiter::default();
        for _ in 0..3 {
            assert!(limiter.take("ip:a".into(), 3).is_ok());
        }
        let wait = limiter.take("ip:a".into(), 3).expect_err("the fourth attempt waits");
        assert!(wait > 0 && wait <= WINDOW.as_secs());
        assert!(limiter.take("ip:b".into(), 3).is_ok(), "another address has its own window");
    }

    #[test]
    fn a_csrf_token_belongs_to_its_cookie() {
        assert_eq!(csrf_of("abc"), csrf_of("abc"));
        assert_ne!(csrf_of("abc"), csrf_of("abd"));
        assert!(same(&csrf_of("abc"), &csrf_of("abc")) && !same(&csrf_of("abc"), "x"));
    }
}
