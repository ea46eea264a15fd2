//! `commons serve`'s settings, resolved in one step: flags, then `COMMONS_*` variables (clap reads
//! both into one [`ServeLayer`]), then `commons.toml` (the same struct, from TOML), then
//! defaults. [`ServeLayer::resolve`] is the only place a setting gets its final value, and the
//! libraries take the resulting [`ServeSettings`] pieces (hub limits, compute config, worker
//! cores) as plain values.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;
use serde::Deserialize;

use crate::env::EnvVars;

/// One layer of settings: every field optional, so layers stack.
#[derive(Args, Deserialize, Default, Debug)]
#[serde(deny_unknown_fields)]
pub struct ServeLayer {
    /// Directory holding the database, the object store and keys (created if missing).
    #[arg(long, env = EnvVars::COMMONS_DATA_DIR)]
    pub data_dir: Option<PathBuf>,
    /// Address to listen on.
    #[arg(long, env = EnvVars::COMMONS_LISTEN)]
    pub listen: Option<SocketAddr>,
    /// PostgreSQL database (`postgres://user@host/db`, collation C) that several servers
    /// share; default: the embedded SQLite database DATA_DIR/commons.db.
    #[arg(long, env = EnvVars::COMMONS_DATABASE_URL)]
    pub database_url: Option<String>,
    /// Object store URL (`s3://bucket/prefix`, `file:///path`); default: DATA_DIR/objects.
    #[arg(long, env = EnvVars::COMMONS_STORE_URL)]
    pub store_url: Option<String>,
    /// Public base URL of this hub, for links handed to clients (default: from the Host header).
    #[arg(long, env = EnvVars::COMMONS_PUBLIC_URL)]
    pub public_url: Option<String>,
    /// Configuration file (default: ./commons.toml when it exists).
    #[arg(long, env = EnvVars::COMMONS_CONFIG)]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Do not run the embedded worker (by default this machine also works on jobs).
    #[arg(long, env = EnvVars::COMMONS_NO_WORKER, num_args = 0..=1, default_missing_value = "true",
          value_parser = clap::builder::BoolishValueParser::new())]
    pub no_worker: Option<bool>,
    /// Seconds without a heartbeat after which a worker's lease lapses and its unit moves on.
    #[arg(long, env = EnvVars::COMMONS_LEASE_SECONDS)]
    pub lease_seconds: Option<u64>,
    /// Cores of the embedded worker (default: all).
    #[arg(long, env = EnvVars::COMMONS_WORKER_CORES)]
    pub worker_cores: Option<usize>,
    /// Largest file (LFS object) a client may upload, in bytes (default: 50 GiB).
    #[arg(long, env = EnvVars::COMMONS_MAX_FILE_BYTES)]
    pub max_file_bytes: Option<u64>,
    /// Largest NDJSON commit body, inline files included, in bytes (default: 1 GiB).
    #[arg(long, env = EnvVars::COMMONS_MAX_COMMIT_BYTES)]
    pub max_commit_bytes: Option<u64>,
    /// Largest JSON request body, in bytes (default: 1 MiB).
    #[arg(long, env = EnvVars::COMMONS_MAX_JSON_BYTES)]
    pub max_json_bytes: Option<u64>,
    /// Whether people may make their own accounts on the sign-up page: `open` or `closed`
    /// (default: accounts are made by the operator with `commons user create`).
    #[arg(long, env = EnvVars::COMMONS_SIGNUP)]
    pub signup: Option<SignupSetting>,
    /// Models the inference route runs at once (default: the machine's cores); twice as many
    /// requests may hold their bodies in memory, the rest wait.
    #[arg(long, env = EnvVars::COMMONS_INFERENCE_CONCURRENCY)]
    pub inference_concurrency: Option<usize>,
    /// Seconds an inference request waits for its turn before it is answered 503 (default: 30).
    #[arg(long, env = EnvVars::COMMONS_INFERENCE_QUEUE_SECONDS)]
    pub inference_queue_seconds: Option<u64>,
}

/// `--signup`'s values.
#[derive(clap::ValueEnum, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SignupSetting {
    Open,
    Closed,
}

/// The settings `commons serve` runs with.
#[derive(Debug)]
pub struct ServeSettings {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    pub store_url: Option<String>,
    pub database_url: Option<String>,
    pub public_url: Option<String>,
    pub embedded_worker: bool,
    pub worker_cores: Option<usize>,
    pub limits: commons_hub::Limits,
    pub compute: commons_compute::ComputeConfig,
    pub signup: commons_hub::Signup,
    pub inference: commons_hub::inference::InferenceLimits,
}

/// The account of the hub's operator: the embedded worker runs under it, and its hosts are
/// trusted without replication.
pub const OPERATOR_USER: &str = "commons";

/// `~/.commons`.
pub fn default_data_dir() -> PathBuf {
    crate::env::var(EnvVars::HOME).map(PathBuf::from).unwrap_or_else(|| PathBuf::from(".")).join(".commons")
}

impl ServeLayer {
    /// This layer over `lower`: a value set here wins.
    fn over(self, lower: ServeLayer) -> ServeLayer {
        ServeLayer {
            data_dir: self.data_dir.or(lower.data_dir),
            listen: self.listen.or(lower.listen),
            store_url: self.store_url.or(lower.store_url),
            database_url: self.database_url.or(lower.database_url),
            public_url: self.public_url.or(lower.public_url),
            config: self.config.or(lower.config),
            no_worker: self.no_worker.or(lower.no_worker),
            lease_seconds: self.lease_seconds.or(lower.lease_seconds),
            worker_cores: self.worker_cores.or(lower.worker_cores),
            max_file_bytes: self.max_file_bytes.or(lower.max_file_bytes),
            max_commit_bytes: self.max_commit_bytes.or(lower.max_commit_bytes),
            max_json_bytes: self.max_json_bytes.or(lower.max_json_bytes),
            signup: self.signup.or(lower.signup),
            inference_concurrency: self.inference_concurrency.or(lower.inference_concurrency),
            inference_queue_seconds: self.inference_queue_seconds.or(lower.inference_queue_seconds),
        }
    }

    /// The final settings: this layer (flags and variables) over the configuration file, over
    /// the defaults; values checked here, once.
    pub fn resolve(self) -> Result<ServeSettings> {
        let file = read_file_layer(self.config.as_deref())?;
        let layer = self.over(file);
        let defaults = commons_hub::Limits::default();
        let limits = commons_hub::Limits {
            file_size: layer.max_file_bytes.unwrap_or(defaults.file_size),
            commit_body: layer.max_commit_bytes.unwrap_or(defaults.commit_body),
            json_body: layer.max_json_bytes.unwrap_or(defaults.json_body),
            ..defaults
        };
        if limits.json_body == 0 || limits.commit_body == 0 || limits.file_size == 0 {
            bail!("size limits must be at least 1 byte");
        }
        let mut compute = commons_compute::ComputeConfig { operator_user: Some(OPERATOR_USER.to_string()), ..Default::default() };
        if let Some(lease) = layer.lease_seconds {
            if lease == 0 {
                bail!("--lease-seconds must be at least 1");
            }
            compute.lease_seconds = lease;
        }
        if layer.worker_cores == Some(0) {
            bail!("--worker-cores must be at least 1");
        }
        let mut inference = commons_hub::inference::InferenceLimits::default();
        if let Some(concurrency) = layer.inference_concurrency {
            if concurrency == 0 {
                bail!("--inference-concurrency must be at least 1");
            }
            inference.concurrency = concurrency;
            inference.requests_in_memory = 2 * concurrency;
        }
        if let Some(seconds) = layer.inference_queue_seconds {
            inference.queue_wait = std::time::Duration::from_secs(seconds);
        }
        Ok(ServeSettings {
            data_dir: layer.data_dir.unwrap_or_else(default_data_dir),
            listen: layer.listen.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8000))),
            store_url: layer.store_url,
            database_url: layer.database_url,
            public_url: layer.public_url,
            embedded_worker: !layer.no_worker.unwrap_or(false),
            worker_cores: layer.worker_cores,
            limits,
            compute,
            signup: match layer.signup {
                Some(SignupSetting::Open) => commons_hub::Signup::Open,
                Some(SignupSetting::Closed) | None => commons_hub::Signup::Closed,
            },
            inference,
        })
    }
}

/// `commons.toml`: the file named by `--config` (which must exist), else `./commons.toml` when
/// there is one.
fn read_file_layer(path: Option<&Path>) -> Result<ServeLayer> {
    let (path, required) = match path {
        Some(p) => (p.to_path_buf(), true),
        None => (PathBuf::from("commons.toml"), false),
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => toml::from_str(&text).with_context(|| format!("invalid configuration in {}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => Ok(ServeLayer::default()),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}
