//! Web pages for people: server-rendered HTML from the same router as the API, templates
//! compiled into the binary (minijinja, autoescaped), one hand-written stylesheet served under
//! its content hash, no script. URLs have the Hugging Face site's shapes (`/{ns}/{name}`,
//! `/datasets/{ns}/{name}`, `…/tree/{rev}/{path}`, `…/blob/{rev}/{path}`, `/models?search=`).
//!
//! Pages read what the API reads, through the same services and the same access rule: a
//! private repository is a 404 page to whoever may not read it, as in the API. A README is
//! rendered with pulldown-cmark and then sanitised with ammonia, so no script, event handler
//! or `javascript:` URL of a card reaches a browser.

mod account;
mod compute;
mod discussions;
mod markdown;
mod orgs;
mod session;
mod try_model;
mod viewer;
mod write;

pub(crate) use markdown::render as render_markdown;
use session::Visitor;
pub use session::{SignInLimiter, Signup};

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use commons_db::{Repo, RepoKind, RepoQuery, RepoSort, TreeItem};
use minijinja::{Environment, Value, context};
use serde::Deserialize;
use sha2::Digest;

use crate::AppState;
use crate::error::ApiError;

const STYLE: &str = include_str!("style.css");
/// The one script: parts of a page marked `data-live` reload themselves while what they show
/// changes (a running job). Pages read whole without it.
const LIVE: &str = include_str!("live.js");

/// Repositories on a page of a listing, and on each list of the home page.
const LIST_PAGE: usize = 30;
/// Pages of a listing one may ask for (each skips the ones before it).
const MAX_LIST_PAGES: usize = 1000;
const HOME_LIST: usize = 8;
/// Entries on a page of a folder.
const TREE_PAGE: usize = 200;
/// Files larger than this are not shown inline (a download link instead).
const BLOB_SHOWN: i64 = 512 * 1024;

/// Cards rendered, by README blob and the repository's files URL (relative links point there):
/// a README's HTML never changes, and rendering a large one costs more than serving it.
/// Bounded by the bytes held.
static RENDERED: LazyLock<quick_cache::sync::Cache<(String, String), Arc<str>, HtmlWeight>> =
    LazyLock::new(|| quick_cache::sync::Cache::with_weighter(1024, RENDERED_BYTES, HtmlWeight));
const RENDERED_BYTES: u64 = 64 << 20;

#[derive(Clone)]
struct HtmlWeight;

impl quick_cache::Weighter<(String, String), Arc<str>> for HtmlWeight {
    fn weight(&self, key: &(String, String), html: &Arc<str>) -> u64 {
        (key.0.len() + key.1.len() + html.len()) as u64
    }
}

struct Pages {
    templates: Environment<'static>,
    /// `style.{hash}.css`: the stylesheet's name changes with its content, so browsers may
    /// keep it forever.
    stylesheet: String,
    /// `live.{hash}.js`, likewise.
    script: String,
}

static PAGES: LazyLock<Pages> = LazyLock::new(|| {
    let mut templates = Environment::new();
    templates.set_formatter(escape_html);
    // Templates are part of the binary: one that does not parse is a bug caught by any test.
    for (name, source) in [
        ("base.html", include_str!("templates/base.html")),
        ("macros.html", include_str!("templates/macros.html")),
        ("home.html", include_str!("templates/home.html")),
        ("list.html", include_str!("templates/list.html")),
        ("repo_header.html", include_str!("templates/repo_header.html")),
        ("try.html", include_str!("templates/try.html")),
        ("try_form.html", include_str!("templates/try_form.html")),
        ("repo.html", include_str!("templates/repo.html")),
        ("tree.html", include_str!("templates/tree.html")),
        ("blob.html", include_str!("templates/blob.html")),
        ("error.html", include_str!("templates/error.html")),
        ("commits.html", include_str!("templates/commits.html")),
        ("commit.html", include_str!("templates/commit.html")),
        ("login.html", include_str!("templates/login.html")),
        ("join.html", include_str!("templates/join.html")),
        ("new.html", include_str!("templates/new.html")),
        ("org.html", include_str!("templates/org.html")),
        ("org_new.html", include_str!("templates/org_new.html")),
        ("upload.html", include_str!("templates/upload.html")),
        ("edit.html", include_str!("templates/edit.html")),
        ("tokens.html", include_str!("templates/tokens.html")),
        ("user.html", include_str!("templates/user.html")),
        ("profile_settings.html", include_str!("templates/profile_settings.html")),
        ("settings_tabs.html", include_str!("templates/settings_tabs.html")),
        ("viewer.html", include_str!("templates/viewer.html")),
        ("viewer_table.html", include_str!("templates/viewer_table.html")),
        ("jobs.html", include_str!("templates/jobs.html")),
        ("job.html", include_str!("templates/job.html")),
        ("workers.html", include_str!("templates/workers.html")),
        ("credits.html", include_str!("templates/credits.html")),
        ("boards.html", include_str!("templates/boards.html")),
        ("board.html", include_str!("templates/board.html")),
        ("discussions.html", include_str!("templates/discussions.html")),
        ("discussion.html", include_str!("templates/discussion.html")),
        ("discussion_new.html", include_str!("templates/discussion_new.html")),
    ] {
        if let Err(e) = templates.add_template(name, source) {
            panic!("page template {name} does not parse: {e}");
        }
    }
    let hash = hex::encode(sha2::Sha256::digest(STYLE.as_bytes()));
    let script_hash = hex::encode(sha2::Sha256::digest(LIVE.as_bytes()));
    Pages { templates, stylesheet: format!("style.{}.css", &hash[..12]), script: format!("live.{}.js", &script_hash[..12]) }
});

/// Values into HTML: escaped unless marked safe (a sanitised card). Only the five characters
/// that matter in text and quoted attributes are escaped, so URLs stay readable (minijinja's
/// own escaping also turns `/` into `&#x2f;`).
fn escape_html(out: &mut minijinja::Output, _state: &minijinja::State, value: &Value) -> Result<(), minijinja::Error> {
    let io = |e: std::fmt::Error| minijinja::Error::new(minijinja::ErrorKind::WriteFailure, "could not write a page").with_source(e);
    if value.is_undefined() || value.is_none() {
        return Ok(());
    }
    if value.is_safe() {
        return write!(out, "{value}").map_err(io);
    }
    // Runs of plain text are written whole; strings are not copied first.
    let owned;
    let mut rest = match value.as_str() {
        Some(text) => text,
        None => {
            owned = value.to_string();
            owned.as_str()
        }
    };
    while let Some(at) = rest.find(['&', '<', '>', '"', '\'']) {
        out.write_str(&rest[..at]).map_err(io)?;
        let entity = match rest.as_bytes()[at] {
            b'&' => "&amp;",
            b'<' => "&lt;",
            b'>' => "&gt;",
            b'"' => "&quot;",
            _ => "&#39;",
        };
        out.write_str(entity).map_err(io)?;
        // The five are one byte each in UTF-8.
        rest = &rest[at + 1..];
    }
    out.write_str(rest).map_err(io)
}

/// A page that could not be shown: rendered as an HTML page with its status.
pub(crate) struct PageError {
    status: StatusCode,
    message: String,
}

/// The 404 page.
pub(crate) fn not_found(message: &str) -> PageError {
    PageError { status: StatusCode::NOT_FOUND, message: message.to_string() }
}

impl From<ApiError> for PageError {
    fn from(e: ApiError) -> Self {
        Self { status: e.status, message: e.message }
    }
}

impl From<commons_repo::RepoError> for PageError {
    fn from(e: commons_repo::RepoError) -> Self {
        ApiError::from(e).into()
    }
}

impl From<commons_db::DbError> for PageError {
    fn from(e: commons_db::DbError) -> Self {
        ApiError::from(e).into()
    }
}

impl PageError {
    pub(crate) fn internal(message: impl std::fmt::Display) -> Self {
        Self { status: StatusCode::INTERNAL_SERVER_ERROR, message: message.to_string() }
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self { status: StatusCode::BAD_REQUEST, message: message.into() }
    }
}

/// A submitted form (`application/x-www-form-urlencoded`), refused with an error page.
pub(crate) struct PageForm<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> axum::extract::FromRequest<S> for PageForm<T> {
    type Rejection = PageError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, PageError> {
        match axum::Form::<T>::from_request(req, state).await {
            Ok(axum::Form(form)) => Ok(PageForm(form)),
            Err(e) => Err(PageError { status: e.status(), message: format!("This form could not be read: {}", e.body_text()) }),
        }
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let title = match self.status {
            StatusCode::NOT_FOUND => "Not found",
            s if s.is_client_error() => "This request cannot be answered",
            _ => "Something went wrong",
        };
        let message = if self.status.is_server_error() {
            tracing::error!(message = %self.message, "page failed");
            "The server could not show this page. Try again in a moment.".to_string()
        } else {
            self.message
        };
        let mut response = render("error.html", context! { title, message }).into_response();
        *response.status_mut() = self.status;
        response
    }
}

type PageResult = Result<Response, PageError>;

/// Pages run no script but the hub's own file (`live.js`): the browser is told to run no other,
/// inline or from elsewhere (a second wall behind the card's sanitising), and not to let
/// another site frame them.
const SECURITY_HEADERS: [(header::HeaderName, &str); 3] = [
    (
        header::CONTENT_SECURITY_POLICY,
        "default-src 'self'; img-src * data:; script-src 'self'; object-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    ),
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (header::REFERRER_POLICY, "same-origin"),
];

/// A page for `visitor`: its header shows who is signed in, and its forms carry their token.
fn page(visitor: &Visitor, name: &str, ctx: Value) -> Response {
    render(name, context! { ..visitor.context(), ..ctx })
}

fn render(name: &str, ctx: Value) -> Response {
    let pages = &*PAGES;
    let ctx = context! { stylesheet => &pages.stylesheet, script => &pages.script, ..ctx };
    match pages.templates.get_template(name).and_then(|t| t.render(ctx)) {
        Ok(html) => (SECURITY_HEADERS, Html(html)).into_response(),
        Err(e) => {
            tracing::error!(template = name, error = %e, "page template failed");
            (StatusCode::INTERNAL_SERVER_ERROR, Html("<!doctype html><title>Error</title><p>The page could not be rendered.</p>"))
                .into_response()
        }
    }
}

/// Pages being made at once: eight per core (measured with 100 clients on 2 cores: 2, 4, 8,
/// 16, 24 and 50 per core; 8 kept the tail shortest at the highest throughput).
static PAGE_TURNS: std::sync::LazyLock<tokio::sync::Semaphore> =
    std::sync::LazyLock::new(|| tokio::sync::Semaphore::new(std::thread::available_parallelism().map_or(2, |n| n.get()) * 8));

/// Pages are made in turns, a few per core at once, in the order they were asked for. Without
/// turns, a hundred browsers' requests share the runtime's threads in slices: a page whose
/// answers are all in memory is made in one go, while one that reads the database waits its
/// slice again after each read, behind everyone, and the unlucky ones finish last (a cold
/// repository page took 185 ms under load where it takes 1.4 ms alone). Only reads take turns:
/// a form or an upload arrives at the sender's pace, and a slow sender must not hold a turn.
async fn take_turn(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    if !matches!(*request.method(), axum::http::Method::GET | axum::http::Method::HEAD) {
        return next.run(request).await;
    }
    let Ok(_turn) = PAGE_TURNS.acquire().await else {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down").into_response();
    };
    next.run(request).await
}

/// The pages that are not a repository's: home, listings, the stylesheet.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route("/models", get(|s, c, q| listing(s, c, q, RepoKind::Model)))
        .route("/datasets", get(|s, c, q| listing(s, c, q, RepoKind::Dataset)))
        .route("/algorithms", get(|s, c, q| listing(s, c, q, RepoKind::Algorithm)))
        .route("/static/{file}", get(stylesheet))
        .route("/login", get(session::login_form).post(session::login))
        .route("/logout", post(session::logout))
        .route("/join", get(session::join_form).post(session::join))
        .route("/new", get(write::new_repo_form).post(write::new_repo))
        .route("/settings/tokens", get(account::tokens).post(account::create_token))
        .route("/settings/tokens/{id}/delete", post(account::revoke_token))
        .route("/settings/profile", get(account::profile_settings).post(account::save_profile))
        .route("/settings/password", post(account::change_password))
        .route("/jobs", get(compute::jobs))
        .route("/jobs/{id}", get(compute::job))
        .route("/jobs/{id}/cancel", post(compute::cancel))
        .route("/workers", get(compute::workers))
        .route("/credits", get(compute::credits))
        .route("/leaderboards", get(compute::boards))
        .route("/leaderboards/{ns}/{name}", get(compute::board))
        .route("/organizations/new", get(orgs::new_org_form).post(orgs::create_org))
        .route("/organizations/{org}/members", post(orgs::set_member))
        .route("/{user}", get(account::profile))
        .layer(axum::middleware::from_fn(take_turn))
}

/// A repository's pages, nested under its URL (`/{ns}/{name}`, `/datasets/{ns}/{name}`, …).
pub(crate) fn repo_routes(kind: RepoKind) -> Router<AppState> {
    let router = match kind {
        RepoKind::Dataset => Router::new().route("/viewer", get(viewer::viewer)).route("/viewer/{config}/{split}", get(viewer::viewer)),
        RepoKind::Algorithm => Router::new().route("/run", post(compute::run)),
        RepoKind::Model => Router::new().route("/try", get(try_model::form).post(try_model::submit)),
    };
    router
        .route("/", get(move |s, c, p| repo_page(s, c, p, kind)))
        .route("/tree/{rev}", get(move |s, c, p, q| tree(s, c, p, q, kind)))
        .route("/tree/{rev}/{*path}", get(move |s, c, p, q| tree(s, c, p, q, kind)))
        .route("/blob/{rev}/{*path}", get(move |s, c, p| blob(s, c, p, kind)))
        .route("/commits/{rev}", get(move |s, c, p, q| commits(s, c, p, q, kind)))
        .route("/commit/{id}", get(move |s, c, p| commit(s, c, p, kind)))
        .route("/like", post(move |s, c, p, f| write::like(s, c, p, f, kind)))
        .route(
            "/upload/{rev}",
            get(move |s, c, p| write::upload_form(s, c, p, kind)).post(move |s, c, p, m| write::upload(s, c, p, m, kind)),
        )
        .route(
            "/edit/{rev}/{*path}",
            get(move |s, c, p| write::edit_form(s, c, p, kind)).post(move |s, c, p, f| write::edit(s, c, p, f, kind)),
        )
        .route("/delete/{rev}/{*path}", post(move |s, c, p, f| write::delete(s, c, p, f, kind)))
        .route(
            "/discussions",
            get(move |s, c, p, q| discussions::list(s, c, p, q, kind)).post(move |s, c, p, f| discussions::create(s, c, p, f, kind)),
        )
        .route("/discussions/new", get(move |s, c, p| discussions::new_form(s, c, p, kind)))
        .route("/discussions/{num}", get(move |s, c, p| discussions::show(s, c, p, kind)))
        .route("/discussions/{num}/comment", post(move |s, c, p, f| discussions::comment(s, c, p, f, kind)))
        .route("/discussions/{num}/status", post(move |s, c, p, f| discussions::status(s, c, p, f, kind)))
        .route("/discussions/{num}/merge", post(move |s, c, p, f| discussions::merge(s, c, p, f, kind)))
        .layer(axum::middleware::from_fn(take_turn))
}

/// The stylesheet and the script, under names that change with their content.
async fn stylesheet(Path(file): Path<String>) -> Response {
    let (kind, body) = if file == PAGES.stylesheet {
        ("text/css; charset=utf-8", STYLE)
    } else if file == PAGES.script {
        ("text/javascript; charset=utf-8", LIVE)
    } else {
        return PageError { status: StatusCode::NOT_FOUND, message: "No such file.".into() }.into_response();
    };
    ([(header::CONTENT_TYPE, kind), (header::CACHE_CONTROL, "public, max-age=31536000, immutable")], body).into_response()
}

/// The page `?p=` asks for (0 without it), below `max`.
fn page_number(q: &HashMap<String, String>, max: usize) -> Result<usize, PageError> {
    match q.get("p").map(|p| p.parse::<usize>()) {
        None => Ok(0),
        Some(Ok(p)) if p < max => Ok(p),
        Some(_) => Err(PageError { status: StatusCode::BAD_REQUEST, message: "No such page.".into() }),
    }
}

/// The repository of `p` as `caller` may read it, and the commit its revision names (`main`
/// when it names none).
async fn pinned(state: &AppState, caller: &Visitor, p: &RepoPath, kind: RepoKind) -> Result<(Repo, String, String), PageError> {
    let repo = state.repos.find(kind, &p.ns, &p.name, caller.reader()).await?;
    let rev = p.rev.clone().unwrap_or_else(|| "main".into());
    let commit = state.repos.pin(&repo, &rev).await?;
    Ok((repo, rev, commit))
}

/// Where a repository's pages live: the Hugging Face site's URL shapes.
fn repo_url(kind: RepoKind, namespace: &str, name: &str) -> String {
    match kind {
        RepoKind::Model => format!("/{namespace}/{name}"),
        other => format!("/{}s/{namespace}/{name}", other.as_str()),
    }
}

fn listing_url(kind: RepoKind) -> String {
    format!("/{}s", kind.as_str())
}

fn day(unix: i64) -> String {
    crate::routes::iso_time(unix).chars().take(10).collect()
}

/// What a template shows of a repository.
fn repo_value(repo: &Repo, pipeline_tag: Option<String>) -> Value {
    let id = format!("{}/{}", repo.namespace, repo.name);
    let cli_id = match repo.kind {
        RepoKind::Model => id.clone(),
        other => format!("{}s/{id}", other.as_str()),
    };
    context! {
        id,
        cli_id,
        url => repo_url(repo.kind, &repo.namespace, &repo.name),
        kind => repo.kind.as_str(),
        namespace => &repo.namespace,
        name => &repo.name,
        private => repo.private,
        likes => repo.likes,
        downloads => repo.downloads,
        updated => day(repo.updated_at),
        pipeline_tag,
    }
}

/// The `limit` most recently changed models, datasets and algorithms of `namespace` that
/// `viewer` may see, as the templates list them: what a user's and an organization's pages show.
async fn namespace_repos(state: &AppState, namespace: &str, viewer: Option<&str>, limit: i64) -> Result<[Vec<Value>; 3], PageError> {
    let mut lists = Vec::with_capacity(3);
    for kind in [RepoKind::Model, RepoKind::Dataset, RepoKind::Algorithm] {
        let q = RepoQuery {
            author: Some(namespace.to_string()),
            viewer: viewer.map(str::to_string),
            sort: RepoSort::LastModified,
            limit,
            ..Default::default()
        };
        let repos = state.db.list_repos(kind, &q).await?;
        lists.push(repo_values(state, &repos).await?);
    }
    Ok(lists.try_into().unwrap_or_default())
}

/// A page of repositories as the templates list them, with each one's task from its card:
/// the page's heads and READMEs in one query, each card from the card cache.
async fn repo_values(state: &AppState, repos: &[Repo]) -> Result<Vec<Value>, PageError> {
    let mut heads = state.db.main_readmes(repos).await?;
    let mut out = Vec::with_capacity(repos.len());
    for repo in repos {
        let pipeline_tag = match heads.remove(&repo.id) {
            Some((_, Some(readme))) => state
                .repos
                .card_of(&readme.sha256, readme.size)
                .await?
                .metadata
                .get("pipeline_tag")
                .and_then(|v| v.as_str())
                .map(str::to_string),
            _ => None,
        };
        out.push(repo_value(repo, pipeline_tag));
    }
    Ok(out)
}

async fn home(State(state): State<AppState>, caller: Visitor) -> PageResult {
    let viewer = caller.reader().map(str::to_string);
    let mut lists = Vec::new();
    for sort in [RepoSort::LastModified, RepoSort::Likes, RepoSort::Downloads] {
        let q = RepoQuery { sort, viewer: viewer.clone(), limit: HOME_LIST as i64, ..Default::default() };
        let repos = state.db.list_repos(RepoKind::Model, &q).await?;
        lists.push(repo_values(&state, &repos).await?);
    }
    let [recent, liked, downloaded]: [Vec<Value>; 3] = lists.try_into().unwrap_or_default();
    Ok(page(&caller, "home.html", context! { recent, liked, downloaded }))
}

const SORTS: [(&str, &str); 5] = [
    ("trending", "Trending"),
    ("modified", "Recently updated"),
    ("created", "Recently created"),
    ("downloads", "Most downloads"),
    ("likes", "Most likes"),
];

async fn listing(State(state): State<AppState>, caller: Visitor, Query(q): Query<HashMap<String, String>>, kind: RepoKind) -> PageResult {
    let get = |key: &str| q.get(key).map(|v| v.trim().to_string()).unwrap_or_default();
    let (search, pipeline_tag, library, license, other) =
        (get("search"), get("pipeline_tag"), get("library"), get("license"), get("other"));
    let sort_key = match get("sort").as_str() {
        "" => "trending".to_string(),
        s => s.to_string(),
    };
    let sort = match sort_key.as_str() {
        "trending" => RepoSort::Trending,
        "modified" => RepoSort::LastModified,
        "created" => RepoSort::CreatedAt,
        "downloads" => RepoSort::Downloads,
        "likes" => RepoSort::Likes,
        other => return Err(PageError { status: StatusCode::BAD_REQUEST, message: format!("There is no sort {other:?}.") }),
    };
    if search.len() > 256 || [&pipeline_tag, &library, &license, &other].iter().any(|v| v.len() > 200) {
        return Err(PageError { status: StatusCode::BAD_REQUEST, message: "That search is too long.".into() });
    }
    let page_no = page_number(&q, MAX_LIST_PAGES)?;
    // The Hub's facets are tags of the card: a task and a library as themselves, a licence as
    // `license:…`.
    let mut tags = Vec::new();
    for (value, prefix) in [(&pipeline_tag, ""), (&library, ""), (&license, "license:"), (&other, "")] {
        if !value.is_empty() {
            tags.push(format!("{prefix}{value}"));
        }
    }
    let query = RepoQuery {
        search: (!search.is_empty()).then(|| search.clone()),
        tags,
        viewer: caller.reader().map(str::to_string),
        sort,
        limit: (LIST_PAGE + 1) as i64,
        offset: (page_no * LIST_PAGE) as i64,
        ..Default::default()
    };
    let mut repos = state.repos.list(kind, &query).await?;
    let more = repos.len() > LIST_PAGE;
    repos.truncate(LIST_PAGE);
    let path = listing_url(kind);
    let link = |p: usize| {
        let mut pairs: Vec<(&str, String)> = q.iter().filter(|(k, _)| k.as_str() != "p").map(|(k, v)| (k.as_str(), v.clone())).collect();
        pairs.sort();
        pairs.push(("p", p.to_string()));
        format!("{path}?{}", serde_urlencoded::to_string(pairs).unwrap_or_default())
    };
    let title = match kind {
        RepoKind::Model => "Models",
        RepoKind::Dataset => "Datasets",
        RepoKind::Algorithm => "Algorithms",
    };
    Ok(page(
        &caller,
        "list.html",
        context! {
            title, path => &path, search, pipeline_tag, library, license,
            sort => sort_key, sorts => SORTS.to_vec(),
            repos => repo_values(&state, &repos).await?,
            previous => (page_no > 0).then(|| link(page_no - 1)),
            next => more.then(|| link(page_no + 1)),
        },
    ))
}

#[derive(Deserialize)]
struct RepoPath {
    ns: String,
    name: String,
    rev: Option<String>,
    path: Option<String>,
    id: Option<String>,
    num: Option<String>,
}

async fn repo_page(State(state): State<AppState>, mut caller: Visitor, Path(p): Path<RepoPath>, kind: RepoKind) -> PageResult {
    let repo = state.repos.find(kind, &p.ns, &p.name, caller.reader()).await?;
    let head = state.repos.pin(&repo, "main").await.ok();
    let readme = match &head {
        Some(head) => state.db.file_at(&repo, head, "README.md").await?,
        None => None,
    };
    let (mut card, mut body) = (Arc::<commons_repo::CardView>::default(), None);
    if let Some(readme) = readme.filter(|r| r.size as u64 <= commons_repo::CARD_LIMIT) {
        let files = format!("{}/resolve/main/", repo_url(kind, &repo.namespace, &repo.name));
        let key = (readme.sha256.clone(), files);
        body = Some(match RENDERED.get(&key) {
            Some(html) => html,
            None => {
                let bytes = state.cas.read_to_vec(&readme.sha256, commons_repo::CARD_LIMIT).await.map_err(ApiError::from)?;
                let text = String::from_utf8_lossy(&bytes);
                let (_, markdown) = commons_card::split(&text);
                let html: Arc<str> = markdown::render(markdown, &key.1).into();
                RENDERED.insert(key, html.clone());
                html
            }
        });
        card = state.repos.card_of(&readme.sha256, readme.size).await?;
    }
    let metadata = &card.metadata;
    let text = |key: &str| metadata.get(key).and_then(|v| v.as_str()).map(str::to_string);
    let list = |key: &str| -> Vec<String> {
        match metadata.get(key) {
            Some(serde_json::Value::String(s)) => vec![s.clone()],
            Some(serde_json::Value::Array(items)) => items.iter().filter_map(|v| v.as_str().map(str::to_string)).collect(),
            _ => Vec::new(),
        }
    };
    let pipeline_tag = text("pipeline_tag");
    // A model Commons trained (`library_name: commons-engine`, as `commons train` writes the
    // card) for a task the inference route runs offers a "Try it" form, to
    // those who may read its files.
    let try_modality = match (kind, pipeline_tag.as_deref(), text("library_name").as_deref()) {
        (RepoKind::Model, Some(tag @ ("image-classification" | "text-classification" | "text-generation")), Some("commons-engine"))
            if state.inference.is_some() && crate::routes::require_content(&state, &caller.caller, &repo).await.is_ok() =>
        {
            Some(match tag {
                "image-classification" => "image",
                "text-classification" => "text",
                _ => "generate",
            })
        }
        _ => None,
    };
    // The form's token needs a cookie to derive from, for a browser that has none yet.
    let cookie = if try_modality.is_some() { caller.ensure_seed() } else { None };
    let mut response = page(
        &caller,
        "repo.html",
        context! {
            repo => repo_value(&repo, pipeline_tag.clone()),
            tab => "card",
            preview => match kind {
                RepoKind::Dataset => viewer::preview(&state, &caller, &repo.namespace, &repo.name).await,
                _ => None,
            },
            // A recipe is the algorithm's content: a gated one shows it to those who may read.
            recipe => match kind {
                RepoKind::Algorithm if crate::routes::require_content(&state, &caller.caller, &repo).await.is_ok() => {
                    compute::recipe_of(&state, &repo).await
                }
                _ => None,
            },
            can_write => caller.may_write(&repo, "main"),
            try_modality,
            liked => match caller.account_id() {
                Some(id) => state.db.likes_repo(id, &repo).await?,
                None => false,
            },
            listing => listing_url(kind),
            card_html => body,
            license => text("license"),
            pipeline_tag,
            library => text("library_name"),
            base_models => list("base_model"),
            algorithm => text("algorithm"),
            results => match kind {
                RepoKind::Model => verified_results(&state, &caller, &repo).await?,
                _ => Vec::new(),
            },
            datasets => list("datasets"),
            tags => list("tags"),
        },
    );
    if let Some(cookie) = cookie {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    Ok(response)
}

/// Verified results of a model on the sidebar: what the leaderboards hold of it, newest first.
async fn verified_results(state: &AppState, caller: &Visitor, repo: &Repo) -> Result<Vec<Value>, PageError> {
    const SHOWN: i64 = 10;
    let entries = state.db.board_entries_of_model(caller.reader(), repo.id, SHOWN).await?;
    Ok(entries
        .iter()
        .map(|e| {
            let query = serde_urlencoded::to_string([("split", &e.split), ("metric", &e.metric)]).unwrap_or_default();
            context! {
                text => format!("{} {:.4} on {} ({})", e.metric, e.value, e.dataset, e.split),
                url => format!("/leaderboards/{}?{query}", e.dataset),
                job => e.job_id,
            }
        })
        .collect())
}

/// `a/b/c` as links to each folder on the way, at `rev`.
fn crumbs(base: &str, rev: &str, path: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut so_far = String::new();
    for part in path.split('/').filter(|p| !p.is_empty()) {
        if !so_far.is_empty() {
            so_far.push('/');
        }
        so_far.push_str(part);
        out.push(context! { name => part, url => format!("{base}/tree/{}/{}", encode_rev(rev), encode_path(&so_far)) });
    }
    out
}

/// A revision is one path segment in these URLs (`refs%2Fconvert%2Fparquet`), as on the Hub.
fn encode_rev(rev: &str) -> String {
    percent_encoding::utf8_percent_encode(rev, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// A file path keeps its `/` and has every other byte that could be misread encoded.
fn encode_path(path: &str) -> String {
    const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');
    path.split('/').map(|s| percent_encoding::utf8_percent_encode(s, SEGMENT).to_string()).collect::<Vec<_>>().join("/")
}

fn human_size(bytes: i64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut size = bytes as f64;
    let mut unit = 0;
    while size >= 1000.0 && unit < UNITS.len() - 1 {
        size /= 1000.0;
        unit += 1;
    }
    if unit == 0 { format!("{bytes} B") } else { format!("{size:.1} {}", UNITS[unit]) }
}

async fn tree(
    State(state): State<AppState>,
    caller: Visitor,
    Path(p): Path<RepoPath>,
    Query(q): Query<HashMap<String, String>>,
    kind: RepoKind,
) -> PageResult {
    let (repo, rev, commit) = pinned(&state, &caller, &p, kind).await?;
    let dir = p.path.unwrap_or_default().trim_matches('/').to_string();
    let after = q.get("after").map(String::as_str);
    let mut items = state.db.tree_page(&repo, &commit, &dir, false, after, TREE_PAGE + 1).await?;
    if items.is_empty() && !dir.is_empty() {
        return Err(PageError { status: StatusCode::NOT_FOUND, message: format!("There is no folder {dir} at {rev}.") });
    }
    let more = items.len() > TREE_PAGE;
    items.truncate(TREE_PAGE);
    let base = repo_url(kind, &repo.namespace, &repo.name);
    let entries: Vec<Value> = items
        .iter()
        .map(|item| match item {
            TreeItem::Folder { path, .. } => context! {
                name => path.rsplit('/').next().unwrap_or(path),
                folder => true,
                url => format!("{base}/tree/{}/{}", encode_rev(&rev), encode_path(path)),
            },
            TreeItem::File(f) => context! {
                name => f.path.rsplit('/').next().unwrap_or(&f.path),
                folder => false,
                size => human_size(f.size),
                lfs => f.lfs,
                url => format!("{base}/blob/{}/{}", encode_rev(&rev), encode_path(&f.path)),
                download => format!("{base}/resolve/{}/{}?download=true", encode_rev(&rev), encode_path(&f.path)),
            },
        })
        .collect();
    let next = match (more, items.last()) {
        (true, Some(TreeItem::File(f))) => Some(f.path.clone()),
        (true, Some(TreeItem::Folder { path, .. })) => Some(format!("{path}/")),
        _ => None,
    }
    .map(|after| {
        let here = if dir.is_empty() { String::new() } else { format!("/{}", encode_path(&dir)) };
        format!("{base}/tree/{}{here}?{}", encode_rev(&rev), serde_urlencoded::to_string([("after", after)]).unwrap_or_default())
    });
    Ok(page(
        &caller,
        "tree.html",
        context! {
            repo => repo_value(&repo, None), tab => "files", can_write => caller.may_write(&repo, &rev),
            rev_url => encode_rev(&rev), crumbs => crumbs(&base, &rev, &dir), rev, entries, next,
        },
    ))
}

async fn blob(State(state): State<AppState>, caller: Visitor, Path(p): Path<RepoPath>, kind: RepoKind) -> PageResult {
    let (repo, rev, commit) = pinned(&state, &caller, &p, kind).await?;
    crate::routes::require_content(&state, &caller.caller, &repo).await?;
    let path = p.path.unwrap_or_default();
    let Some(file) = state.db.file_at(&repo, &commit, &path).await? else {
        return Err(PageError { status: StatusCode::NOT_FOUND, message: format!("There is no file {path} at {rev}.") });
    };
    let (text, why_not_shown) = if file.size > BLOB_SHOWN {
        (None, format!("This file is {}; download it to see it.", human_size(file.size)))
    } else {
        let bytes = state.cas.read_to_vec(&file.sha256, BLOB_SHOWN as u64).await.map_err(ApiError::from)?;
        match String::from_utf8(bytes) {
            Ok(text) => (Some(text), String::new()),
            Err(_) => (None, "This file is binary; download it to see it.".to_string()),
        }
    };
    let base = repo_url(kind, &repo.namespace, &repo.name);
    let folder = path.rsplit_once('/').map(|(dir, _)| dir).unwrap_or("");
    let mut trail = crumbs(&base, &rev, folder);
    trail.push(context! { name => path.rsplit('/').next().unwrap_or(&path), url => format!("{base}/blob/{}/{}", encode_rev(&rev), encode_path(&path)) });
    Ok(page(
        &caller,
        "blob.html",
        context! {
            repo => repo_value(&repo, None), tab => "files",
            rev_url => encode_rev(&rev), crumbs => trail, rev => &rev, path => &path, path_url => encode_path(&path),
            can_write => caller.may_write(&repo, &rev), commit => &commit,
            size => human_size(file.size), lfs => file.lfs, sha256 => &file.sha256,
            download => format!("{base}/resolve/{}/{}?download=true", encode_rev(&rev), encode_path(&path)),
            text, why_not_shown,
        },
    ))
}

/// Commits on a page of a history.
const COMMITS_PAGE: usize = 50;
const MAX_COMMIT_PAGES: usize = 200;
/// Changed files a commit page lists at most, and lines of diff it shows in all.
const COMMIT_FILES: usize = 300;
const DIFF_LINES: usize = 5_000;
/// Bytes of files a commit page reads to diff, in all, and time one file's diff may take: an
/// anonymous reader cannot make a page cost more than this, however large the commit.
const DIFF_BYTES: i64 = 4 << 20;
const DIFF_TIME: std::time::Duration = std::time::Duration::from_millis(200);
/// Files larger than this (either side) get sizes, not a line diff.
const DIFF_FILE: i64 = 256 * 1024;

fn short(id: &str) -> &str {
    id.get(..7).unwrap_or(id)
}

async fn commits(
    State(state): State<AppState>,
    caller: Visitor,
    Path(p): Path<RepoPath>,
    Query(q): Query<HashMap<String, String>>,
    kind: RepoKind,
) -> PageResult {
    let (repo, rev, head) = pinned(&state, &caller, &p, kind).await?;
    // Each page walks the history from the head: a bound on how far back, as on the listings.
    let page_no = page_number(&q, MAX_COMMIT_PAGES)?;
    // One more than the page_no, to know whether an older one follows.
    let mut history = state.db.commit_history(&repo, &head, page_no * COMMITS_PAGE, COMMITS_PAGE + 1).await?;
    let more = history.len() > COMMITS_PAGE;
    history.truncate(COMMITS_PAGE);
    let base = repo_url(kind, &repo.namespace, &repo.name);
    let link = |p: usize| format!("{base}/commits/{}?p={p}", encode_rev(&rev));
    let (mut branches, mut tags) = (Vec::new(), Vec::new());
    for r in state.repos.refs(&repo).await? {
        let item = context! { url => encode_rev(&r.name), name => &r.name };
        match r.kind {
            commons_db::RefKind::Branch if !r.name.starts_with("refs/") => branches.push(item),
            commons_db::RefKind::Tag => tags.push(item),
            _ => {}
        }
    }
    let commits: Vec<Value> = history
        .iter()
        .map(|c| context! { id => &c.id, short => short(&c.id), title => &c.title, author => &c.author, date => day(c.created_at) })
        .collect();
    Ok(page(
        &caller,
        "commits.html",
        context! {
            repo => repo_value(&repo, None), tab => "commits", rev, commits, branches, tags,
            previous => (page_no > 0).then(|| link(page_no - 1)),
            next => more.then(|| link(page_no + 1)),
        },
    ))
}

async fn commit(State(state): State<AppState>, caller: Visitor, Path(p): Path<RepoPath>, kind: RepoKind) -> PageResult {
    let repo = state.repos.find(kind, &p.ns, &p.name, caller.reader()).await?;
    crate::routes::require_content(&state, &caller.caller, &repo).await?;
    let id = p.id.unwrap_or_default();
    let Some(commit) = state.db.get_commit(&repo, &id).await? else {
        return Err(PageError { status: StatusCode::NOT_FOUND, message: format!("There is no commit {id} in this repository.") });
    };
    let after = state.db.tree_at(&repo, &commit.id).await?;
    let before = match &commit.parent_id {
        Some(parent) => state.db.tree_at(&repo, parent).await?,
        None => Vec::new().into(),
    };
    let base = repo_url(kind, &repo.namespace, &repo.name);
    let changes = commons_repo::collab::tree_changes(&before, &after);
    let old_rev = commit.parent_id.clone().unwrap_or_default();
    let (files, more_files) = file_diffs(&state, &changes, &base, &commit.id, &old_rev).await?;
    Ok(page(
        &caller,
        "commit.html",
        context! {
            repo => repo_value(&repo, None), tab => "commits",
            commit => context! {
                id => &commit.id, title => &commit.title, message => &commit.message, author => &commit.author,
                date => day(commit.created_at), parent => &commit.parent_id,
                parent_short => commit.parent_id.as_deref().map(short),
            },
            files, more_files,
        },
    ))
}

/// The changed files of a page (a commit's, a pull request's), each with its diff within the
/// page's budget, and whether there were more than [`COMMIT_FILES`]. Links lead to the new
/// side at `new_rev`, or to the old one at `old_rev` for a removed file.
async fn file_diffs(
    state: &AppState,
    changes: &[commons_repo::collab::FileChange],
    base: &str,
    new_rev: &str,
    old_rev: &str,
) -> Result<(Vec<Value>, bool), PageError> {
    let more_files = changes.len() > COMMIT_FILES;
    let mut budget = DiffBudget { lines: DIFF_LINES, bytes: DIFF_BYTES };
    let mut files = Vec::with_capacity(changes.len().min(COMMIT_FILES));
    for change in changes.iter().take(COMMIT_FILES) {
        let (old, new) = (change.old.as_ref(), change.new.as_ref());
        let status = match (old, new) {
            (Some(_), Some(_)) => "modified",
            (None, _) => "added",
            (Some(_), None) => "removed",
        };
        let sizes = match (old, new) {
            (Some(o), Some(n)) => format!("{} → {}", human_size(o.size), human_size(n.size)),
            (_, Some(n)) => human_size(n.size),
            (Some(o), _) => human_size(o.size),
            (None, None) => String::new(),
        };
        let rev = encode_rev(if new.is_some() { new_rev } else { old_rev });
        let url = format!("{base}/blob/{rev}/{}", encode_path(&change.path));
        let (lines, note) = diff_lines(state, old, new, &mut budget).await?;
        files.push(context! { status, path => &change.path, sizes, url, lines, note });
    }
    Ok((files, more_files))
}

/// What is left of a commit page's diff budget.
struct DiffBudget {
    lines: usize,
    bytes: i64,
}

/// The lines of a unified diff of one file's two sides (either may be absent), within what is
/// left of the page's budget; or why none is shown.
async fn diff_lines(
    state: &AppState,
    old: Option<&commons_db::FileEntry>,
    new: Option<&commons_db::FileEntry>,
    budget: &mut DiffBudget,
) -> Result<(Vec<Value>, Option<&'static str>), PageError> {
    if old.iter().chain(new.iter()).any(|f| f.lfs || f.size > DIFF_FILE) {
        return Ok((Vec::new(), Some("Large or LFS file: sizes only.")));
    }
    let bytes: i64 = old.iter().chain(new.iter()).map(|f| f.size).sum();
    if budget.lines == 0 || bytes > budget.bytes {
        return Ok((Vec::new(), Some("This page shows no more diffs; open the file to see it.")));
    }
    budget.bytes -= bytes;
    let lines_left = &mut budget.lines;
    let mut sides = Vec::with_capacity(2);
    for side in [old, new] {
        sides.push(match side {
            Some(f) => match String::from_utf8(state.cas.read_to_vec(&f.sha256, DIFF_FILE as u64).await.map_err(ApiError::from)?) {
                Ok(text) => text,
                Err(_) => return Ok((Vec::new(), Some("Binary file."))),
            },
            None => String::new(),
        });
    }
    let diff = similar::TextDiff::configure().timeout(DIFF_TIME).diff_lines(&sides[0], &sides[1]);
    let mut lines = Vec::new();
    for group in diff.grouped_ops(3) {
        if *lines_left == 0 {
            break;
        }
        if let (Some(first), Some(last)) = (group.first(), group.last()) {
            let (old_range, new_range) = (first.old_range().start..last.old_range().end, first.new_range().start..last.new_range().end);
            lines.push(context! {
                kind => "hunk",
                text => format!("@@ -{},{} +{},{} @@", old_range.start + 1, old_range.len(), new_range.start + 1, new_range.len()),
            });
        }
        for op in group {
            for change in diff.iter_changes(&op) {
                if *lines_left == 0 {
                    break;
                }
                *lines_left -= 1;
                let (kind, sign) = match change.tag() {
                    similar::ChangeTag::Insert => ("add", '+'),
                    similar::ChangeTag::Delete => ("del", '-'),
                    similar::ChangeTag::Equal => ("ctx", ' '),
                };
                lines.push(context! { kind, text => format!("{sign}{}", change.value().trim_end_matches(['\n', '\r'])) });
            }
        }
    }
    Ok((lines, None))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_escaped_in_text_and_quoted_attributes_and_safe_ones_are_not() {
        let mut env = Environment::new();
        env.set_formatter(escape_html);
        env.add_template("t", r#"<p title="{{ v }}">{{ v }}</p>{{ n }}{{ s }}{{ none }}{{ missing }}"#).unwrap();
        let out = env
            .get_template("t")
            .unwrap()
            .render(context! {
                v => r#"a<b>"c"&'d' é/x"#,
                n => 42,
                s => Value::from_safe_string("<em>kept</em>".into()),
                none => Value::from(()),
            })
            .unwrap();
        let v = "a&lt;b&gt;&quot;c&quot;&amp;&#39;d&#39; é/x";
        assert_eq!(out, format!(r#"<p title="{v}">{v}</p>42<em>kept</em>"#));
    }
}
