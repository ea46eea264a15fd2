//! `commons serve`, `commons user`, `commons token`: running a hub and administering it.
//!
//! `serve`'s settings are resolved in one step by `crate::settings`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};

use crate::env::EnvVars;
use crate::settings::ServeSettings;
use commons_db::{Db, Scope};

pub use crate::settings::{OPERATOR_USER, ServeLayer as ServeArgs, default_data_dir};

pub fn serve(args: ServeArgs) -> Result<()> {
    let settings = args.resolve()?;
    let ServeSettings {
        data_dir,
        listen,
        store_url,
        database_url,
        public_url,
        embedded_worker,
        worker_cores,
        limits,
        compute,
        signup,
        inference,
    } = settings;
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async move {
        let state = commons_hub::AppState::open_with_database(&data_dir, database_url.as_deref(), store_url.as_deref(), public_url)
            .await
            .with_context(|| format!("cannot open the hub in {}", data_dir.display()))?
            .with_limits(limits)
            .with_signup(signup)
            .with_inference(std::sync::Arc::new(crate::inference::CommonsEngine), inference);
        let coordinator = commons_compute::Coordinator::start(state.db.clone(), state.repos.clone(), compute)
            .await
            .context("cannot start the compute coordinator")?;
        coordinator.spawn_housekeeping();
        state.spawn_housekeeping();
        let app = commons_hub::router_with_compute(state.clone(), coordinator);
        let listener = tokio::net::TcpListener::bind(listen).await.with_context(|| format!("cannot listen on {listen}"))?;
        let bound = listener.local_addr()?;
        tracing::info!(addr = %bound, data_dir = %data_dir.display(), "commons hub listening");
        if super::human_logs() {
            eprintln!("Commons hub on http://{bound} (data in {})", data_dir.display());
        }
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
            if super::human_logs() {
                eprintln!("Embedded worker on {} cores (disable with --no-worker)", config.cores);
            }
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
        /// Read a password from standard input (its first line), so the account can also sign
        /// in from a browser. Without it the account signs in with tokens only.
        #[arg(long)]
        password_stdin: bool,
        #[arg(long, env = EnvVars::COMMONS_DATA_DIR)]
        data_dir: Option<PathBuf>,
        /// PostgreSQL database shared by several servers (`postgres://…`); default: the
        /// embedded SQLite database in DATA_DIR.
        #[arg(long, env = EnvVars::COMMONS_DATABASE_URL)]
        database_url: Option<String>,
    },
    /// Set or replace the password of an account, read from standard input (its first line);
    /// every browser session of the account ends.
    Password {
        name: String,
        #[arg(long, required = true)]
        password_stdin: bool,
        #[arg(long, env = EnvVars::COMMONS_DATA_DIR)]
        data_dir: Option<PathBuf>,
        /// PostgreSQL database shared by several servers (`postgres://…`); default: the
        /// embedded SQLite database in DATA_DIR.
        #[arg(long, env = EnvVars::COMMONS_DATABASE_URL)]
        database_url: Option<String>,
    },
}

/// The first line of standard input, hashed as an account password.
fn password_from_stdin() -> Result<String> {
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).context("cannot read the password from standard input")?;
    let password = line.strip_suffix('\n').unwrap_or(&line);
    let password = password.strip_suffix('\r').unwrap_or(password);
    Ok(commons_repo::accounts::hash_password(password)?)
}

#[derive(Subcommand, Debug)]
pub enum OrgCommand {
    /// Create an organization with ADMIN (a user) its first admin.
    Create {
        name: String,
        #[arg(long)]
        admin: String,
        #[arg(long)]
        fullname: Option<String>,
        /// Its repositories start private unless their creator says otherwise.
        #[arg(long)]
        private_by_default: bool,
        #[arg(long, env = EnvVars::COMMONS_DATA_DIR)]
        data_dir: Option<PathBuf>,
        /// PostgreSQL database shared by several servers (`postgres://…`); default: the
        /// embedded SQLite database in DATA_DIR.
        #[arg(long, env = EnvVars::COMMONS_DATABASE_URL)]
        database_url: Option<String>,
    },
    /// Add USER to ORG with ROLE, or change their role: `no_access`, `read`, `contributor`
    /// (writes only the repositories they create), `write` or `admin`.
    Member {
        org: String,
        user: String,
        #[arg(long, default_value = "write")]
        role: String,
        #[arg(long, env = EnvVars::COMMONS_DATA_DIR)]
        data_dir: Option<PathBuf>,
        /// PostgreSQL database shared by several servers (`postgres://…`); default: the
        /// embedded SQLite database in DATA_DIR.
        #[arg(long, env = EnvVars::COMMONS_DATABASE_URL)]
        database_url: Option<String>,
    },
    /// Remove USER from ORG (an organization keeps at least one admin).
    Remove {
        org: String,
        user: String,
        #[arg(long, env = EnvVars::COMMONS_DATA_DIR)]
        data_dir: Option<PathBuf>,
        /// PostgreSQL database shared by several servers (`postgres://…`); default: the
        /// embedded SQLite database in DATA_DIR.
        #[arg(long, env = EnvVars::COMMONS_DATABASE_URL)]
        database_url: Option<String>,
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
        #[arg(long, env = EnvVars::COMMONS_DATA_DIR)]
        data_dir: Option<PathBuf>,
        /// PostgreSQL database shared by several servers (`postgres://…`); default: the
        /// embedded SQLite database in DATA_DIR.
        #[arg(long, env = EnvVars::COMMONS_DATABASE_URL)]
        database_url: Option<String>,
    },
}

#[derive(Args, Debug)]
pub struct GcArgs {
    /// The hub's data directory.
    #[arg(long, env = EnvVars::COMMONS_DATA_DIR)]
    pub data_dir: Option<PathBuf>,
    /// The hub's object store URL, when not DATA_DIR/objects.
    #[arg(long, env = EnvVars::COMMONS_STORE_URL)]
    pub store_url: Option<String>,
    /// The hub's PostgreSQL database, when it does not use the embedded SQLite database.
    #[arg(long, env = EnvVars::COMMONS_DATABASE_URL)]
    pub database_url: Option<String>,
    /// Leave what is younger than this many hours (uploads may still be in flight).
    #[arg(long, default_value_t = 48.0)]
    pub grace_hours: f64,
}

/// Collects garbage beside a running hub or without one: only what no ref reaches and what is
/// older than the grace period goes.
pub fn gc(args: GcArgs) -> Result<()> {
    if !args.grace_hours.is_finite() || args.grace_hours < 0.0 {
        bail!("--grace-hours must be a non-negative number of hours");
    }
    let data_dir = args.data_dir.unwrap_or_else(default_data_dir);
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let state = commons_hub::AppState::open_with_database(&data_dir, args.database_url.as_deref(), args.store_url.as_deref(), None)
            .await
            .with_context(|| format!("cannot open the hub in {}", data_dir.display()))?;
        let report = state
            .collect_garbage(std::time::Duration::from_secs_f64(args.grace_hours * 3600.0))
            .await
            .map_err(|e| anyhow::anyhow!(e.message))?;
        let f = report.forgotten;
        println!(
            "forgot {} unreachable commits, {} trees, {} files ({} reconstructions); removed {} unfinished multipart uploads and {} unreferenced xorbs ({} bytes)",
            f.commits, f.trees, f.blobs, f.files, report.upload_folders, report.xorbs, report.xorb_bytes
        );
        Ok(())
    })
}

#[derive(Args, Debug)]
pub struct BackupArgs {
    /// A new (or empty) directory to write the backup into.
    pub out: PathBuf,
    /// The hub's data directory.
    #[arg(long, env = EnvVars::COMMONS_DATA_DIR)]
    pub data_dir: Option<PathBuf>,
    /// The hub's object store URL, when not DATA_DIR/objects (a local directory).
    #[arg(long, env = EnvVars::COMMONS_STORE_URL)]
    pub store_url: Option<String>,
}

/// Backs up a hub on the embedded defaults, beside it running or not.
pub fn backup(args: BackupArgs) -> Result<()> {
    let data_dir = args.data_dir.unwrap_or_else(default_data_dir);
    let rt = tokio::runtime::Runtime::new()?;
    let report = rt
        .block_on(commons_hub::backup::backup(&data_dir, args.store_url.as_deref(), &args.out))
        .with_context(|| format!("cannot back up the hub in {}", data_dir.display()))?;
    println!(
        "backed up {} into {}: the database and {} xorbs ({} bytes)",
        data_dir.display(),
        args.out.display(),
        report.xorbs,
        report.bytes
    );
    Ok(())
}

#[derive(Args, Debug)]
pub struct RestoreArgs {
    /// A directory `commons backup` wrote.
    pub backup: PathBuf,
    /// The new hub's data directory (it must hold no hub yet).
    #[arg(long, env = EnvVars::COMMONS_DATA_DIR)]
    pub data_dir: Option<PathBuf>,
    /// The new hub's object store URL, when not DATA_DIR/objects (a local directory).
    #[arg(long, env = EnvVars::COMMONS_STORE_URL)]
    pub store_url: Option<String>,
}

/// Restores a backup into a new data directory; `commons serve` then serves it.
pub fn restore(args: RestoreArgs) -> Result<()> {
    let data_dir = args.data_dir.unwrap_or_else(default_data_dir);
    let rt = tokio::runtime::Runtime::new()?;
    let report = rt
        .block_on(commons_hub::backup::restore(&args.backup, &data_dir, args.store_url.as_deref()))
        .with_context(|| format!("cannot restore {} into {}", args.backup.display(), data_dir.display()))?;
    println!(
        "restored {} into {}: the database and {} xorbs ({} bytes)",
        args.backup.display(),
        data_dir.display(),
        report.xorbs,
        report.bytes
    );
    Ok(())
}

/// The hub's database: the one at `database_url`, else the embedded one in the data directory.
fn open_db(data_dir: Option<PathBuf>, database_url: Option<String>) -> Result<(tokio::runtime::Runtime, Db)> {
    let rt = tokio::runtime::Runtime::new()?;
    if let Some(url) = database_url {
        let db = rt.block_on(Db::connect(&url)).context("cannot open the database of --database-url")?;
        return Ok((rt, db));
    }
    let data_dir = data_dir.unwrap_or_else(default_data_dir);
    std::fs::create_dir_all(&data_dir).with_context(|| format!("cannot create {}", data_dir.display()))?;
    let db = rt
        .block_on(Db::open(&data_dir.join("commons.db")))
        .with_context(|| format!("cannot open the database in {}", data_dir.display()))?;
    Ok((rt, db))
}

pub fn user(cmd: UserCommand) -> Result<()> {
    match cmd {
        UserCommand::Create { name, fullname, password_stdin, data_dir, database_url } => {
            commons_repo::names::validate_user_name(&name)?;
            let password = if password_stdin { Some(password_from_stdin()?) } else { None };
            let (rt, db) = open_db(data_dir, database_url)?;
            let user = rt.block_on(db.create_user_with_password(&name, fullname.as_deref().unwrap_or(&name), password.as_deref()))?;
            println!("created user {}", user.name);
            Ok(())
        }
        UserCommand::Password { name, password_stdin: _, data_dir, database_url } => {
            let password = password_from_stdin()?;
            let (rt, db) = open_db(data_dir, database_url)?;
            rt.block_on(db.set_password(&name, &password))?;
            println!("set the password of {name}");
            Ok(())
        }
    }
}

pub fn org(cmd: OrgCommand) -> Result<()> {
    let found = |db: &Db, rt: &tokio::runtime::Runtime, org: &str| -> Result<commons_db::Organization> {
        rt.block_on(db.org(org))?.with_context(|| format!("no organization named {org}"))
    };
    match cmd {
        OrgCommand::Create { name, admin, fullname, private_by_default, data_dir, database_url } => {
            commons_repo::names::validate_org_name(&name)?;
            let (rt, db) = open_db(data_dir, database_url)?;
            let org = rt.block_on(db.create_org(&name, fullname.as_deref().unwrap_or(&name), &admin))?;
            if private_by_default {
                rt.block_on(db.set_org_settings(org.id, None, Some(true)))?;
            }
            println!("created organization {} with admin {admin}", org.name);
        }
        OrgCommand::Member { org, user, role, data_dir, database_url } => {
            let role = commons_db::OrgRole::parse(&role)?;
            let (rt, db) = open_db(data_dir, database_url)?;
            let org = found(&db, &rt, &org)?;
            rt.block_on(db.set_member_role(org.id, &user, role))?;
            println!("{user} is {} of {}", role.as_str(), org.name);
        }
        OrgCommand::Remove { org, user, data_dir, database_url } => {
            let (rt, db) = open_db(data_dir, database_url)?;
            let org = found(&db, &rt, &org)?;
            if !rt.block_on(db.remove_member(org.id, &user))? {
                bail!("{user} is not a member of {}", org.name);
            }
            println!("removed {user} from {}", org.name);
        }
    }
    Ok(())
}

pub fn token(cmd: TokenCommand) -> Result<()> {
    match cmd {
        TokenCommand::Create { user, scope, name, data_dir, database_url } => {
            let scope = Scope::parse(&scope)?;
            let (rt, db) = open_db(data_dir, database_url)?;
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
