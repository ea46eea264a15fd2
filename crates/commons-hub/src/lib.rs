//! The hub's HTTP API, wire-compatible with the Hugging Face Hub so that `huggingface_hub` (Python)
//! and `hf-hub` (Rust) work against Commons unchanged. See `shared/HF_HUB_PROTOCOL.md` for the
//! protocol as the clients use it; route modules cite the endpoint numbers of that document.
//!
//! Layers: `routes::*` parse and validate at the edge ([`names`]), authorize ([`auth`]), then call
//! the metadata store (`commons-db`) and the content store (`commons-storage`). Handlers own no
//! state beyond [`AppState`], so any number of servers can run against one database and store.

mod auth;
pub mod backup;
mod body;
mod downloads;
mod error;
pub mod inference;
mod limiter;
mod metrics;
mod pages;
mod routes;
mod signing;
pub mod webhooks;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use commons_db::Db;
use commons_repo::Repos;
use commons_storage::Cas;

pub use auth::Caller;
pub use body::{Limits, RawBody, too_large};
pub use error::{ApiError, ApiResult};
pub use pages::{SignInLimiter, Signup};
pub use signing::UrlSigner;

/// Everything a handler needs. Cheap to clone: one reference count, as axum clones the state
/// for every request and every extractor (cloning each field's handles instead showed up as a
/// tenth of the time of a small request).
#[derive(Clone)]
pub struct AppState(Arc<Hub>);

impl std::ops::Deref for AppState {
    type Target = Hub;
    fn deref(&self) -> &Hub {
        &self.0
    }
}

/// The hub's parts, behind [`AppState`].
#[derive(Clone)]
pub struct Hub {
    /// The repository service: what routes do with repositories beyond the wire protocol's
    /// own bookkeeping (LFS, tree pages, commit history), which reads `db` and `cas` directly.
    pub repos: Repos,
    pub db: Db,
    pub cas: Cas,
    pub signer: Arc<UrlSigner>,
    /// Where multipart upload parts wait for their completion call.
    pub upload_dir: PathBuf,
    /// Absolute base URL for links handed to clients; taken from the `Host` header when unset.
    pub public_url: Option<String>,
    /// How much callers may send.
    pub limits: Arc<Limits>,
    /// What has crossed the Xet CAS routes since start (for operators, and for tests that
    /// count what a client sent).
    pub xet_traffic: Arc<XetTraffic>,
    /// Downloads by distinct client per repository per day.
    pub downloads: Arc<downloads::DownloadCounter>,
    /// The dataset viewer's parsed splits, by the blobs they are made of.
    pub viewer: Arc<routes::ViewerCache>,
    /// The day garbage was last collected.
    last_gc_day: Arc<std::sync::atomic::AtomicI64>,
    /// Whether the sign-up page makes accounts.
    pub signup: pages::Signup,
    /// Sign-in attempts by address and account, and the password hashes being computed.
    pub sign_in: Arc<pages::SignInLimiter>,
    /// Discussion writes (new discussions and pull requests, comments, edits) by account.
    pub discussion_writes: Arc<limiter::RateWindows>,
    /// Requests, transfers and readiness for `/metrics` and `/ready`.
    pub metrics: Arc<metrics::Metrics>,
    /// The compute coordinator, for the pages of jobs, workers and credits (the compute API
    /// has its own handle); `None` in a hub that serves no compute.
    pub compute: Option<commons_compute::Coordinator>,
    /// The webhooks' delivery queue: handlers emit what changed, a background task posts it.
    pub webhooks: Arc<webhooks::Webhooks>,
    /// The engine that runs published models, with its bounds; `None` in a hub that runs none.
    pub inference: Option<Arc<inference::Inference>>,
}

/// Counters of the Xet upload routes.
#[derive(Debug, Default)]
pub struct XetTraffic {
    /// Bytes of xorb bodies received (whether or not the xorb was new).
    pub xorb_bytes_received: std::sync::atomic::AtomicU64,
    /// Xorbs received, and those of them the store did not hold yet.
    pub xorbs_received: std::sync::atomic::AtomicU64,
    pub xorbs_stored: std::sync::atomic::AtomicU64,
    /// Shards received through `v1/shards` (or its alias) and through the NDJSON `v2/shards`.
    pub shards_v1: std::sync::atomic::AtomicU64,
    pub shards_v2: std::sync::atomic::AtomicU64,
}

/// The window of [`Limits::discussion_writes`].
const DISCUSSION_WINDOW: std::time::Duration = std::time::Duration::from_secs(600);

impl AppState {
    /// Counts a discussion write (a new discussion or pull request, a comment, an edit) by
    /// `user`; 429 with `Retry-After` past [`Limits::discussion_writes`] in ten minutes.
    pub(crate) fn count_discussion_write(&self, user: &str) -> Result<(), ApiError> {
        let limit = self.limits.discussion_writes;
        self.discussion_writes.take(user.to_string(), limit).map_err(|wait| {
            ApiError::new(
                axum::http::StatusCode::TOO_MANY_REQUESTS,
                "TooManyRequests",
                format!("{limit} discussion writes in ten minutes is the most one account may make; try again in {wait} s"),
            )
            .with_retry_after(wait)
        })
    }

    /// Opens a hub on `data_dir` (created if needed): the SQLite metadata database, the object
    /// store (`store_url`, or `data_dir/objects` on local disk), the URL-signing key and the
    /// multipart staging area.
    pub async fn open(data_dir: &std::path::Path, store_url: Option<&str>, public_url: Option<String>) -> Result<Self, OpenError> {
        Self::open_with_database(data_dir, None, store_url, public_url).await
    }

    /// [`Self::open`] on the database at `database_url` (`postgres://…`; see [`Db::connect`])
    /// instead of `data_dir/commons.db`. The data directory still holds what is this server's
    /// own: the multipart staging area and the search index. The URL-signing key is the
    /// database's on PostgreSQL (every server sharing it signs alike), the data directory's
    /// `signing.key` on SQLite.
    pub async fn open_with_database(
        data_dir: &std::path::Path,
        database_url: Option<&str>,
        store_url: Option<&str>,
        public_url: Option<String>,
    ) -> Result<Self, OpenError> {
        std::fs::create_dir_all(data_dir)?;
        let db = match database_url {
            Some(url) => Db::connect(url).await?,
            None => Db::open(&data_dir.join("commons.db")).await?,
        };
        let cas = match store_url {
            Some(url) => Cas::from_url(db.clone(), url)?,
            None => Cas::local(db.clone(), &data_dir.join("objects"))?,
        };
        // Servers sharing a PostgreSQL database share its key; a hub on SQLite keeps its own file.
        let signer = match db.shared_key("url-signing", &UrlSigner::fresh_key()).await? {
            Some(key) => UrlSigner::from_key(&key)
                .ok_or_else(|| commons_db::DbError::Corrupt("the stored URL-signing key is not 32 bytes".into()))?,
            None => UrlSigner::load_or_create(&data_dir.join("signing.key"))?,
        };
        let signer = Arc::new(signer);
        let upload_dir = data_dir.join("uploads");
        std::fs::create_dir_all(&upload_dir)?;
        let mut repos = Repos::new(db.clone(), cas.clone());
        // One process writes the search index (tantivy locks it): another process on the same
        // data directory (`commons gc` beside a server, a second server) serves search by
        // substring of ids from the database instead.
        match commons_search::SearchIndex::open(&data_dir.join("search")) {
            Ok(index) => repos = repos.with_search(Arc::new(index)),
            Err(e) => tracing::warn!(error = %e, "no search index in this process; `search=` matches ids by substring"),
        }
        let downloads = Arc::new(downloads::DownloadCounter::start(db.clone(), repos.clone()));
        let webhooks = webhooks::Webhooks::start(db.clone(), public_url.clone());
        let catch_up = repos.clone();
        tokio::spawn(async move {
            // A hub upgraded in place has READMEs whose cards were never recorded: listings
            // filter on their tags once this is done.
            match catch_up.index_missing_cards().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(cards = n, "recorded the cards of READMEs stored before cards were"),
                Err(e) => tracing::warn!(error = %e, "could not record the cards of earlier READMEs"),
            }
            // What changed while no index was kept in step (a crash, an older version).
            match catch_up.sync_search().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(documents = n, "brought the search index up to date"),
                Err(e) => tracing::warn!(error = %e, "could not bring the search index up to date"),
            }
        });
        Ok(Self(Arc::new(Hub {
            repos,
            db,
            cas,
            signer,
            upload_dir,
            public_url,
            limits: Arc::new(Limits::default()),
            xet_traffic: Arc::default(),
            metrics: Arc::default(),
            downloads,
            viewer: Arc::default(),
            last_gc_day: Arc::default(),
            signup: pages::Signup::default(),
            sign_in: Arc::default(),
            discussion_writes: Arc::new(limiter::RateWindows::new(DISCUSSION_WINDOW)),
            compute: None,
            inference: None,
            webhooks,
        })))
    }

    /// Runs [`Self::housekeeping`] every minute until the process ends.
    pub fn spawn_housekeeping(&self) -> tokio::task::JoinHandle<()> {
        let state = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Err(e) = state.housekeeping().await {
                    tracing::warn!(error = %e.message, "hub housekeeping failed; retrying");
                }
            }
        })
    }

    /// Periodic housekeeping: expired tokens go at once; once a day, what uploads left behind
    /// (see [`Self::collect_garbage`]) once it is [`GC_GRACE`] old.
    pub async fn housekeeping(&self) -> Result<(), ApiError> {
        self.db.purge_expired_tokens().await?;
        let day = commons_db::now_unix() / 86_400;
        let new_day = self.last_gc_day.swap(day, std::sync::atomic::Ordering::Relaxed) != day;
        // Other servers sharing a PostgreSQL database change repositories this process's search
        // index never hears of: it catches up from the database every round.
        if !new_day
            && self.db.engine() == commons_db::Engine::Postgres
            && let Err(e) = self.repos.sync_search().await
        {
            tracing::warn!(error = %e, "could not bring the search index up to date");
        }
        if new_day {
            self.db.forget_old_downloads(day).await?;
            // Counters of many repositories may have changed; searches sort by them.
            if let Err(e) = self.repos.sync_search().await {
                tracing::warn!(error = %e, "could not bring the search index up to date");
            }
            let report = self.collect_garbage(GC_GRACE).await?;
            if report != GcReport::default() {
                tracing::info!(?report, "collected what failed and abandoned uploads left behind");
            }
        }
        Ok(())
    }

    /// Removes what nothing reaches any more, once it is older than `grace` (uploads in flight
    /// are younger): first the metadata no ref reaches (commits of rewritten, squashed or
    /// deleted history, their trees, blobs no tree lists, their reconstructions: see
    /// `commons_db::collect`), then multipart parts never completed, then the xorbs no file uses
    /// (those of what was just forgotten, and those of uploads that failed their checks or were
    /// cut off). Deleted repositories free their bytes here.
    pub async fn collect_garbage(&self, grace: std::time::Duration) -> Result<GcReport, ApiError> {
        let forgotten = self.db.forget_unreachable(i64::try_from(grace.as_secs()).unwrap_or(i64::MAX)).await?;
        let parts = routes::sweep_stale_parts(self, grace).await.map_err(ApiError::internal)?;
        let (xorbs, xorb_bytes) = self.cas.sweep_orphan_xorbs(grace).await?;
        Ok(GcReport { forgotten, upload_folders: parts, xorbs, xorb_bytes })
    }

    /// This hub with other size limits.
    pub fn with_limits(self, limits: Limits) -> Self {
        let mut hub = (*self.0).clone();
        hub.limits = Arc::new(limits);
        Self(Arc::new(hub))
    }

    /// This hub running published models with `engine`, within `limits`.
    pub fn with_inference(self, engine: Arc<dyn inference::Engine>, limits: inference::InferenceLimits) -> Self {
        let mut hub = (*self.0).clone();
        hub.inference = Some(Arc::new(inference::Inference::new(engine, limits)));
        Self(Arc::new(hub))
    }

    /// This hub with sign-ups open or closed.
    pub fn with_signup(self, signup: pages::Signup) -> Self {
        let mut hub = (*self.0).clone();
        hub.signup = signup;
        Self(Arc::new(hub))
    }
}

/// How old an upload's leftovers must be before they are collected: longer than an upload URL
/// lives ([`signing::UPLOAD_URL_TTL_SECS`]), with a day to spare.
pub const GC_GRACE: std::time::Duration = std::time::Duration::from_secs(48 * 3600);

/// What [`AppState::collect_garbage`] removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct GcReport {
    /// Commits, trees, blobs and reconstructions nothing reaches.
    pub forgotten: commons_db::Forgotten,
    /// Multipart staging folders of uploads never completed.
    pub upload_folders: usize,
    /// Xorbs no file references, and their bytes.
    pub xorbs: u64,
    pub xorb_bytes: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("data directory: {0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Db(#[from] commons_db::DbError),
    #[error("{0}")]
    Storage(#[from] commons_storage::StorageError),
}

/// The hub API as an axum router.
pub fn router(state: AppState) -> Router {
    router_with(state, Router::new())
}

/// The hub API and the compute API of `coordinator`: what `commons serve` serves.
pub fn router_with_compute(state: AppState, coordinator: commons_compute::Coordinator) -> Router {
    let mut hub = (*state.0).clone();
    hub.compute = Some(coordinator.clone());
    let state = AppState(Arc::new(hub));
    router_with(state.clone(), routes::compute_router(state, coordinator))
}

/// The hub API plus `extra`, under one JSON fallback for unknown endpoints.
fn router_with(state: AppState, extra: Router) -> Router {
    // Outermost but for the request id: every answer is counted, under the route it matched.
    routes::router(state.clone()).merge(extra).fallback(not_found).layer(axum::middleware::from_fn_with_state(state, metrics::track))
}

/// An unknown URL: an HTML page for a browser (which asks for `text/html`), the API's JSON
/// error for everyone else.
pub(crate) async fn not_found(
    axum::extract::OriginalUri(uri): axum::extract::OriginalUri,
    headers: axum::http::HeaderMap,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let browser = headers.get(axum::http::header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains("text/html"));
    if browser {
        pages::not_found("There is no page here.").into_response()
    } else if let Some(id) = repo_id_without_namespace(uri.path()) {
        // A repository id with no namespace names no repository: the Hub answers
        // `RepoNotFound`, which `repo_exists`, `file_exists` and friends turn into `False`.
        ApiError::repo_not_found(id).into_response()
    } else {
        ApiError::new(axum::http::StatusCode::NOT_FOUND, "NotFound", "no such endpoint").into_response()
    }
}

/// The repository id of an unrouted path that names a repository by one segment:
/// `/api/models/{id}`, `/api/models/{id}/{endpoint}/…`, `/{id}/resolve/…`,
/// `/datasets/{id}/resolve/…`. Decided by the path's shape alone, so the answer says nothing
/// about which repositories exist.
fn repo_id_without_namespace(path: &str) -> Option<&str> {
    const REPO_ENDPOINTS: &[&str] = &[
        "revision",
        "tree",
        "paths-info",
        "refs",
        "commits",
        "preupload",
        "commit",
        "branch",
        "tag",
        "settings",
        "like",
        "likers",
        "lineage",
        "leaderboards",
        "parquet",
        "discussions",
        "xet-read-token",
        "xet-write-token",
        "auth-check",
        "lfs-files",
        "super-squash",
    ];
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match parts.as_slice() {
        ["api", "models" | "datasets" | "algorithms", id] => Some(id),
        ["api", "models" | "datasets" | "algorithms", id, endpoint, ..] if REPO_ENDPOINTS.contains(endpoint) => Some(id),
        ["datasets" | "algorithms", id, "resolve", ..] => Some(id),
        [id, "resolve", ..] => Some(id),
        _ => None,
    }
    .copied()
    .filter(|id| !id.is_empty())
}

/// Serves `app` on `listener` until `shutdown` resolves, then drains in-flight requests.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = app.into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app).with_graceful_shutdown(shutdown).await
}
