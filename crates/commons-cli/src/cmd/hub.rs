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
}

#[derive(Deserialize, Default, Debug)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    data_dir: Option<PathBuf>,
    listen: Option<SocketAddr>,
    store_url: Option<String>,
    public_url: Option<String>,
}

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
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async move {
        let state = commons_hub::AppState::open(&data_dir, store_url.as_deref(), public_url)
            .await
            .with_context(|| format!("cannot open the hub in {}", data_dir.display()))?;
        let listener = tokio::net::TcpListener::bind(listen).await.with_context(|| format!("cannot listen on {listen}"))?;
        let bound = listener.local_addr()?;
        tracing::info!(addr = %bound, data_dir = %data_dir.display(), "commons hub listening");
        eprintln!("Commons hub on http://{bound} (data in {})", data_dir.display());
        commons_hub::serve(listener, state, shutdown_signal()).await?;
        tracing::info!("shut down cleanly");
        Ok(())
    })
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
        #[arg(long, default_value = "write")]
        scope: String,
        /// A name to recognise the token by.
        #[arg(long, default_value = "cli")]
        name: String,
        #[arg(long, env = "COMMONS_DATA_DIR")]
        data_dir: Option<PathBuf>,
    },
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
            commons_hub::names::validate_repo_name(&name, "user name").map_err(|e| anyhow::anyhow!(e.message))?;
            if matches!(name.as_str(), "api" | "datasets" | "algorithms" | "models" | "spaces" | "health") {
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
            let secret = rt.block_on(db.create_token(&user, &name, scope))?;
            eprintln!("token {name:?} ({}) for {user}; it is shown once:", scope.as_str());
            println!("{secret}");
            Ok(())
        }
    }
}
