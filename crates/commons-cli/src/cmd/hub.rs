//! `commons serve`, `commons user`, `commons token`: running a hub and administering it.
//!
//! Settings come from flags, then `COMMONS_*` environment variables, then an optional
//! `commons.toml` (in the working directory or named by `--config`), then defaults.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use commons_db::{Db, Scope};
use serde::Deserialize;

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Directory holding the database, the object store and keys (created if missing).
    #[arg(long, env = "COMMONS_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Address to listen on.
    #[arg(long, env = "COMMONS_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Object store URL (`s3://bucket/prefix`, `file:///path`); default: DATA_DIR/objects.
    #[arg(long, env = "COMMONS_STORE_URL")]
    pub store_url: Option<String>,
    /// Public base URL of this hub, for links handed to clients (default: from the Host header).
    #[arg(long, env = "COMMONS_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Configuration file (default: ./commons.toml when it exists).
    #[arg(long, env = "COMMONS_CONFIG")]
    pub config: Option<PathBuf>,
    /// Do not run the embedded worker (by default this machine also works on jobs).
    #[arg(long, env = "COMMONS_NO_WORKER")]
    pub no_worker: bool,
    /// Seconds without a heartbeat after which a worker's lease lapses and its unit moves on.
    #[arg(long, env = "COMMONS_LEASE_SECONDS")]
    pub lease_seconds: Option<u64>,
    /// Cores of the embedded worker (default: all).
    #[arg(long, env = "COMMONS_WORKER_CORES")]
    pub worker_cores: Option<usize>,
    /// Largest file (LFS object) a client may upload, in bytes (default: 50 GiB).
    #[arg(long, env = "COMMONS_MAX_FILE_BYTES")]
    pub max_file_bytes: Option<u64>,
    /// Largest NDJSON commit body, inline files included, in bytes (default: 128 MiB).
    #[arg(long, env = "COMMONS_MAX_COMMIT_BYTES")]
    pub max_commit_bytes: Option<u64>,
    /// Largest JSON request body, in bytes (default: 1 MiB).
    #[arg(long, env = "COMMONS_MAX_JSON_BYTES")]
    pub max_json_bytes: Option<u64>,
}

#[derive(Deserialize, Default, Debug)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    data_dir: Option<PathBuf>,
    listen: Option<SocketAddr>,
    store_url: Option<String>,
    public_url: Option<String>,
    no_worker: Option<bool>,
    lease_seconds: Option<u64>,
    worker_cores: Option<usize>,
    max_file_bytes: Option<u64>,
    max_commit_bytes: Option<u64>,
    max_json_bytes: Option<u64>,
}

/// The account of the hub's operator: the embedded worker runs under it, and its hosts are
/// trusted without replication.
pub const OPERATOR_USER: &str = "commons";

fn load_file_config(path: Option<&Path>) -> Result<FileConfig> {
    let (path, required) = match path {
        Some(p) => (p.to_path_buf(), true),
        None => (PathBuf::from("commons.toml"), false),
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => toml::from_str(&text).with_context(|| format!("invalid configuration in {}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => Ok(FileConfig::default()),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

pub fn default_data_dir() -> PathBuf {
    std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(".")).join(".commons")
}

pub fn serve(args: ServeArgs) -> Result<()> {
    let file = load_file_config(args.config.as_deref())?;
    let data_dir = args.data_dir.or(file.data_dir).unwrap_or_else(default_data_dir);
    let listen = args.listen.or(file.listen).unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8000)));
    let store_url = args.store_url.or(file.store_url);
    let public_url = args.public_url.or(file.public_url);
    let embedded_worker = !(args.no_worker || file.no_worker.unwrap_or(false));
    let mut compute = commons_compute::ComputeConfig { operator_user: Some(OPERATOR_USER.to_string()), ..Default::default() };
    if let Some(lease) = args.lease_seconds.or(file.lease_seconds) {
        if lease == 0 {
            bail!("--lease-seconds must be at least 1");
        }
        compute.lease_seconds = lease;
    }
    let worker_cores = args.worker_cores.or(file.worker_cores);
    let defaults = commons_hub::Limits::default();
    let limits = commons_hub::Limits {
        file_size: args.max_file_bytes.or(file.max_file_bytes).unwrap_or(defaults.file_size),
        commit_body: args.max_commit_bytes.or(file.max_commit_bytes).unwrap_or(defaults.commit_body),
        json_body: args.max_json_bytes.or(file.max_json_bytes).unwrap_or(defaults.json_body),
        ..defaults
    };
    if limits.json_body == 0 || limits.commit_body == 0 || limits.file_size == 0 {
        bail!("size limits must be at least 1 byte");
    }
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async move {
        let state = commons_hub::AppState::open(&data_dir, store_url.as_deref(), public_url)
            .await
            .with_context(|| format!("cannot open the hub in {}", data_dir.display()))?
            .with_limits(limits);
        let coordinator = commons_compute::Coordinator::start(state.db.clone(), state.repos.clone(), compute)
            .await
            .context("cannot start the compute coordinator")?;
        coordinator.spawn_housekeeping();
        state.spawn_housekeeping();
        let app = commons_hub::router_with_compute(state.clone(), coordinator);
        let listener = tokio::net::TcpListener::bind(listen).await.with_context(|| format!("cannot listen on {listen}"))?;
        let bound = listener.local_addr()?;
        tracing::info!(addr = %bound, data_dir = %data_dir.display(), "commons hub listening");
        eprintln!("Commons hub on http://{bound} (data in {})", data_dir.display());
        if embedded_worker {
            let token = operator_token(&state.db, &data_dir).await?;
            let host = if bound.ip().is_unspecified() { "127.0.0.1".to_string() } else { bound.ip().to_string() };
            let hub = format!("http://{}", SocketAddr::new(host.parse()?, bound.port()));
            let program = std::env::current_exe().context("cannot find the commons executable")?;
            let mut config = commons_worker::WorkerConfig::new(&hub, &token, program);
            config.name = "embedded".into();
            config.work_dir = data_dir.join("work");
            if let Some(cores) = worker_cores {
                config.cores = cores;
            }
            eprintln!("Embedded worker on {} cores (disable with --no-worker)", config.cores);
            // Its own thread and runtime: the worker's blocking moments never stall the API.
            std::thread::Builder::new().name("embedded-worker".into()).spawn(move || {
                let outcome =
                    tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(anyhow::Error::from).and_then(|rt| {
                        Ok(rt.block_on(commons_worker::run(config, std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false))))?)
                    });
                if let Err(e) = outcome {
                    tracing::error!(error = %e, "the embedded worker stopped");
                }
            })?;
        }
        commons_hub::serve(listener, app, shutdown_signal()).await?;
        tracing::info!("shut down cleanly");
        Ok(())
    })
}

/// The embedded worker's token: created once for the operator account and kept in the data
/// directory, readable by its owner only.
async fn operator_token(db: &Db, data_dir: &Path) -> Result<String> {
    let path = data_dir.join("operator.token");
    if let Ok(token) = std::fs::read_to_string(&path) {
        let token = token.trim().to_string();
        if db.authenticate(&token).await?.is_some() {
            return Ok(token);
        }
    }
    if db.user_by_name(OPERATOR_USER).await?.is_none() {
        db.create_user(OPERATOR_USER, "Commons hub operator").await?;
    }
    let token = db.create_token(OPERATOR_USER, "embedded-worker", Scope::Write).await?;
    let tmp = data_dir.join("operator.token.tmp");
    {
        use std::io::Write;
        #[cfg(unix)]
        use std::os::unix::fs::OpenOptionsExt;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        options.mode(0o600);
        let mut file = options.open(&tmp).with_context(|| format!("cannot write {}", tmp.display()))?;
        file.write_all(token.as_bytes())?;
        file.sync_all()?;
    }
    std::fs::rename(&tmp, &path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(token)
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutdown requested; finishing in-flight requests");
}

#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Create a user account.
    Create {
        name: String,
        #[arg(long)]
        fullname: Option<String>,
        #[arg(long, env = "COMMONS_DATA_DIR")]
        data_dir: Option<PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
pub enum TokenCommand {
    /// Create an access token for USER; prints the token as the last line of stdout.
    Create {
        user: String,
        /// `read`, `write`, or `worker` (runs `commons worker` for USER; cannot write
        /// repositories or spend credits: the token to put on a donated machine).
        #[arg(long, default_value = "write")]
        scope: String,
        /// A name to recognise the token by.
        #[arg(long, default_value = "cli")]
        name: String,
        #[arg(long, env = "COMMONS_DATA_DIR")]
        data_dir: Option<PathBuf>,
    },
}

#[derive(Args, Debug)]
pub struct GcArgs {
    /// The hub's data directory.
    #[arg(long, env = "COMMONS_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// The hub's object store URL, when not DATA_DIR/objects.
    #[arg(long, env = "COMMONS_STORE_URL")]
    pub store_url: Option<String>,
    /// Leave what is younger than this many hours (uploads may still be in flight).
    #[arg(long, default_value_t = 48.0)]
    pub grace_hours: f64,
}

/// Collects garbage beside a running hub or without one: only what no file references and what
/// is older than the grace period goes.
pub fn gc(args: GcArgs) -> Result<()> {
    if !args.grace_hours.is_finite() || args.grace_hours < 0.0 {
        bail!("--grace-hours must be a non-negative number of hours");
    }
    let data_dir = args.data_dir.unwrap_or_else(default_data_dir);
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let state = commons_hub::AppState::open(&data_dir, args.store_url.as_deref(), None)
            .await
            .with_context(|| format!("cannot open the hub in {}", data_dir.display()))?;
        let report = state
            .collect_garbage(std::time::Duration::from_secs_f64(args.grace_hours * 3600.0))
            .await
            .map_err(|e| anyhow::anyhow!(e.message))?;
        println!(
            "removed {} unfinished multipart uploads and {} unreferenced xorbs ({} bytes)",
            report.upload_folders, report.xorbs, report.xorb_bytes
        );
        Ok(())
    })
}

fn open_db(data_dir: Option<PathBuf>) -> Result<(tokio::runtime::Runtime, Db)> {
    let data_dir = data_dir.unwrap_or_else(default_data_dir);
    std::fs::create_dir_all(&data_dir).with_context(|| format!("cannot create {}", data_dir.display()))?;
    let rt = tokio::runtime::Runtime::new()?;
    let db = rt
        .block_on(Db::open(&data_dir.join("commons.db")))
        .with_context(|| format!("cannot open the database in {}", data_dir.display()))?;
    Ok((rt, db))
}

pub fn user(cmd: UserCommand) -> Result<()> {
    match cmd {
        UserCommand::Create { name, fullname, data_dir } => {
            commons_repo::names::validate_repo_name(&name, "user name")?;
            if matches!(name.as_str(), "api" | "datasets" | "algorithms" | "models" | "spaces" | "health" | OPERATOR_USER) {
                bail!("{name:?} is reserved");
            }
            let (rt, db) = open_db(data_dir)?;
            let user = rt.block_on(db.create_user(&name, fullname.as_deref().unwrap_or(&name)))?;
            println!("created user {}", user.name);
            Ok(())
        }
    }
}

pub fn token(cmd: TokenCommand) -> Result<()> {
    match cmd {
        TokenCommand::Create { user, scope, name, data_dir } => {
            let scope = Scope::parse(&scope)?;
            let (rt, db) = open_db(data_dir)?;
            let secret = rt.block_on(async {
                // The operator's account (which reads the whole ledger and runs the embedded
                // worker) is made on first need: its name is reserved for this.
                if user == OPERATOR_USER && db.user_by_name(OPERATOR_USER).await?.is_none() {
                    match db.create_user(OPERATOR_USER, "Commons hub operator").await {
                        Ok(_) | Err(commons_db::DbError::AlreadyExists(_)) => {}
                        Err(e) => return Err(e),
                    }
                }
                db.create_token(&user, &name, scope).await
            })?;
            eprintln!("token {name:?} ({}) for {user}; it is shown once:", scope.as_str());
            println!("{secret}");
            Ok(())
        }
    }
}
