//! A volunteer worker: registers with a hub, long-polls for work units, fetches their inputs
//! through the hub into the local Hugging Face cache (shared with the `commons` CLI), runs the
//! engine in a child process (`commons exec-unit`), streams progress, logs and per-epoch metrics
//! as heartbeats, publishes a trained model to the job's output repository, and reports.
//!
//! The worker only ever connects out, so it works behind NAT. Every call to the hub is retried
//! with backoff while the hub is unreachable, and reports are idempotent on the hub's side, so
//! a hub restart mid-unit costs nothing but the wait.

mod exec;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use commons_client::download::{DownloadOptions, download};
use commons_client::upload::{UploadOptions, collect, upload};
use commons_client::{Client, ClientError, NoProgress, RepoId, RepoKind};
use commons_protocol::{Heartbeat, Lease, Output, PROTOCOL_VERSION, RegisterWorker, Registered, Report, Work};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};

pub use exec::{ChildMessage, ExecResult, ExecSpec, exec_unit};

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error(transparent)]
    Engine(#[from] commons_engine::EngineError),
    #[error(transparent)]
    Recipe(#[from] commons_recipe::RecipeError),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Protocol(String),
    #[error("{0}")]
    Invalid(String),
}

impl WorkerError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io { context: context.into(), source }
    }
}

/// How a worker runs.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Base URL of the hub.
    pub hub: String,
    /// A write token of the account that owns this worker and earns its credits.
    pub token: String,
    /// Unique among the owner's workers.
    pub name: String,
    /// Cores the engine may use; also advertised to the hub.
    pub cores: usize,
    /// GPU this worker offers (a build with a GPU backend only).
    pub gpu: Option<String>,
    /// The `commons` executable that runs units (`commons exec-unit SPEC`).
    pub program: PathBuf,
    /// Scratch space for units in flight.
    pub work_dir: PathBuf,
    /// The Hugging Face cache the inputs are fetched into.
    pub cache_dir: PathBuf,
    /// Stop after this many units (for scripted runs); `None` runs until stopped.
    pub max_units: Option<usize>,
}

impl WorkerConfig {
    /// Defaults for this machine: all cores, the shared cache, `$COMMONS_CACHE/work`.
    pub fn new(hub: &str, token: &str, program: PathBuf) -> Self {
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        let host = std::fs::read_to_string("/etc/hostname")
            .ok()
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "host".into());
        let name: String =
            format!("{host}-{}", std::process::id()).chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '-' }).collect();
        let cache = commons_data::cache_home().unwrap_or_else(|_| PathBuf::from(".cache").join("commons"));
        Self {
            hub: hub.trim_end_matches('/').to_string(),
            token: token.to_string(),
            name,
            cores,
            gpu: None,
            program,
            work_dir: cache.join("work"),
            cache_dir: commons_client::config::hub_cache_dir(),
            max_units: None,
        }
    }
}

/// Backoff between attempts to reach an unreachable hub.
const RETRY_MIN: Duration = Duration::from_millis(250);
const RETRY_MAX: Duration = Duration::from_secs(5);
/// How long one pull waits on the hub for work.
const PULL_WAIT: Duration = Duration::from_secs(20);

/// Whether an error means "the hub could not be reached or is restarting" (worth retrying).
fn transient(e: &ClientError) -> bool {
    match e {
        ClientError::Http { .. } => true,
        ClientError::Api { status, .. } => *status >= 500,
        _ => false,
    }
}

/// Calls `attempt` until it succeeds or fails for a reason other than the hub being unreachable.
async fn retrying<T, F, Fut>(what: &str, mut attempt: F) -> Result<T, ClientError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, ClientError>>,
{
    let mut delay = RETRY_MIN;
    loop {
        match attempt().await {
            Err(e) if transient(&e) => {
                tracing::warn!(error = %e, "{what}: hub unreachable; retrying in {delay:?}");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(RETRY_MAX);
            }
            other => return other,
        }
    }
}

/// Runs the worker until `stop` is set (checked between units) or `max_units` are done.
pub async fn run(config: WorkerConfig, stop: Arc<AtomicBool>) -> Result<(), WorkerError> {
    if config.cores == 0 {
        return Err(WorkerError::Invalid("--cores must be at least 1".into()));
    }
    let client = Client::new(&config.hub, Some(config.token.clone()))?;
    let speed = {
        let cores = config.cores;
        tokio::task::spawn_blocking(move || commons_engine::measure_gflops(cores))
            .await
            .map_err(|e| WorkerError::Protocol(format!("speed measurement: {e}")))??
    };
    let request = RegisterWorker {
        protocol_version: PROTOCOL_VERSION,
        name: config.name.clone(),
        cores: config.cores as u32,
        memory_bytes: total_memory(),
        gpu: config.gpu.clone(),
        engine_version: commons_engine::output::ENGINE_VERSION.to_string(),
        platform: format!("{}-{}", std::env::consts::OS, std::env::consts::ARCH),
        numeric_class: commons_engine::numeric_class(),
        speed_gflops: speed,
    };
    let mut registered: Registered = retrying("register", || client.register_worker(&request)).await?;
    tracing::info!(worker = registered.worker_id, name = %config.name, gflops = format!("{speed:.1}"), "registered with {}", config.hub);
    let mut done = 0usize;
    let mut next: Option<Lease> = None;
    while !stop.load(Ordering::Relaxed) && config.max_units.is_none_or(|max| done < max) {
        let pulled = match next.take() {
            Some(lease) => Ok(Some(lease)),
            None => retrying("pull", || client.pull(registered.worker_id, PULL_WAIT)).await,
        };
        let lease = match pulled {
            Ok(Some(lease)) => lease,
            Ok(None) => continue,
            Err(e) if e.code() == Some("WorkerNotFound") => {
                registered = retrying("register", || client.register_worker(&request)).await?;
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        tracing::info!(job = lease.job_id, unit = lease.unit_id, assignment = lease.assignment_id, "unit leased");
        let report = match run_unit(&config, &client, &registered, &lease).await {
            Ok(Some(output)) => Report::Success { output },
            Ok(None) => {
                tracing::info!(assignment = lease.assignment_id, "unit stopped by the hub");
                done += 1;
                continue;
            }
            Err(e) => {
                tracing::warn!(assignment = lease.assignment_id, error = %e, "unit failed");
                Report::Error { error: format!("{e}") }
            }
        };
        done += 1;
        let more = !stop.load(Ordering::Relaxed) && config.max_units.is_none_or(|max| done < max);
        let answer = if more {
            // Report and ask for the next unit in one round trip.
            retrying("report", || client.report_and_pull(lease.assignment_id, &report, registered.worker_id, Duration::ZERO)).await?
        } else {
            retrying("report", || client.report(lease.assignment_id, &report)).await?
        };
        tracing::info!(assignment = lease.assignment_id, accepted = answer.accepted, message = %answer.message, "reported");
        next = answer.next;
    }
    Ok(())
}

/// Runs one unit; `Ok(None)` when the hub told the worker to stop.
async fn run_unit(config: &WorkerConfig, client: &Client, registered: &Registered, lease: &Lease) -> Result<Option<Output>, WorkerError> {
    let scratch = config.work_dir.join(format!("assignment-{}", lease.assignment_id));
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch).map_err(|e| WorkerError::io(format!("creating {}", scratch.display()), e))?;
    let result_path = scratch.join("result.json");
    let (spec, output_dir) = match &lease.work {
        Work::Noop => return Ok(Some(Output::Noop)),
        Work::Train { algorithm, recipe_path, dataset, overrides, output_repo, resume, .. } => {
            let algorithm_dir = fetch(config, client, RepoKind::Algorithm, &algorithm.repo, &algorithm.revision).await?;
            let data = fetch(config, client, RepoKind::Dataset, &dataset.repo, &dataset.revision).await?;
            let mut overrides = overrides.clone();
            overrides.push(format!("training.threads={}", config.cores));
            let out = scratch.join("model");
            let resume = match resume {
                Some(checkpoint) => {
                    let id = RepoId::parse(RepoKind::Model, output_repo, None)?;
                    let options = DownloadOptions {
                        revision: Some(checkpoint.commit.clone()),
                        include: vec!["checkpoint/*".into()],
                        cache_dir: config.cache_dir.clone(),
                        local_dir: None,
                        concurrency: 4,
                    };
                    let report = retrying("download checkpoint", || download(client, &id, &options, &NoProgress)).await?;
                    Some(report.snapshot_dir.join("checkpoint"))
                }
                None => None,
            };
            let spec = ExecSpec::Train {
                recipe: algorithm_dir.join(recipe_path),
                overrides,
                data,
                out: out.clone(),
                checkpoint: scratch.join("checkpoint"),
                resume,
                result: result_path.clone(),
            };
            (spec, Some(out))
        }
        Work::Eval { model, dataset, split, shard } => {
            let model = fetch(config, client, RepoKind::Model, &model.repo, &model.revision).await?;
            let data = fetch(config, client, RepoKind::Dataset, &dataset.repo, &dataset.revision).await?;
            (ExecSpec::Eval { model, data, split: split.clone(), shard: *shard, result: result_path.clone() }, None)
        }
        Work::Predict { model, dataset, split, shard } => {
            let model = fetch(config, client, RepoKind::Model, &model.repo, &model.revision).await?;
            let data = fetch(config, client, RepoKind::Dataset, &dataset.repo, &dataset.revision).await?;
            (ExecSpec::Predict { model, data, split: split.clone(), shard: *shard, result: result_path.clone() }, None)
        }
    };
    let spec_path = scratch.join("spec.json");
    std::fs::write(&spec_path, serde_json::to_vec(&spec).map_err(|e| WorkerError::Protocol(e.to_string()))?)
        .map_err(|e| WorkerError::io(format!("writing {}", spec_path.display()), e))?;
    let checkpoints = match (&lease.work, &lease.upload_token) {
        (Work::Train { output_repo, output_branch, .. }, Some(token)) => Some(CheckpointUpload {
            client: Client::new(&config.hub, Some(token.clone()))?,
            repo: RepoId::parse(RepoKind::Model, output_repo, None)?,
            branch: output_branch.clone(),
            staging: scratch.join("checkpoint-upload"),
        }),
        _ => None,
    };
    if !supervise(config, client, registered, lease, &spec_path, checkpoints.as_ref()).await? {
        let _ = std::fs::remove_dir_all(&scratch);
        return Ok(None);
    }
    let text = std::fs::read_to_string(&result_path).map_err(|e| WorkerError::io(format!("reading {}", result_path.display()), e))?;
    let result: ExecResult = serde_json::from_str(&text).map_err(|e| WorkerError::Protocol(format!("unit result: {e}")))?;
    let output = match (&lease.work, output_dir) {
        (Work::Train { algorithm, dataset, output_repo, output_branch, .. }, Some(model_dir)) => {
            add_provenance(&model_dir.join("README.md"), algorithm, dataset, lease.job_id)?;
            let token = lease
                .upload_token
                .clone()
                .ok_or_else(|| WorkerError::Protocol("the lease of a train unit carries no upload token".into()))?;
            let uploader = Client::new(&config.hub, Some(token))?;
            let repo = RepoId::parse(RepoKind::Model, output_repo, None)?;
            let sources = collect(&[model_dir], None)?;
            let options = UploadOptions {
                revision: Some(output_branch.clone()),
                message: Some(format!("Train {} on {} (job {})", algorithm.display(), dataset.display(), lease.job_id)),
                description: Some(format!("Trained by worker {} for job {}, unit {}.", config.name, lease.job_id, lease.unit_id)),
            };
            let report = retrying("upload", || upload(&uploader, &repo, sources.clone(), &options, &NoProgress)).await?;
            let model_commit = match report.commit {
                Some(commit) => commit.commit_oid,
                None => uploader
                    .repo_info(&repo, output_branch)
                    .await?
                    .sha
                    .ok_or_else(|| WorkerError::Protocol(format!("{output_repo}@{output_branch} has no commit id")))?,
            };
            Output::Train {
                model_commit,
                test: result.metrics,
                flops: result.flops,
                epochs: result.epochs,
                wall_seconds: result.wall_seconds,
            }
        }
        (Work::Predict { .. }, _) => Output::Predict {
            predictions: result
                .predictions
                .ok_or_else(|| WorkerError::Protocol("a prediction unit's result holds no predictions".into()))?,
            flops: result.flops,
        },
        _ => Output::Eval { metrics: result.metrics, flops: result.flops },
    };
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(Some(output))
}

/// A revision of a repository, fetched into the shared cache; returns its snapshot folder.
async fn fetch(config: &WorkerConfig, client: &Client, kind: RepoKind, repo: &str, revision: &str) -> Result<PathBuf, WorkerError> {
    let id = RepoId::parse(kind, repo, None)?;
    let options = DownloadOptions {
        revision: Some(revision.to_string()),
        include: Vec::new(),
        cache_dir: config.cache_dir.clone(),
        local_dir: None,
        concurrency: 4,
    };
    let report = retrying("download", || download(client, &id, &options, &NoProgress)).await?;
    Ok(report.snapshot_dir)
}

/// Where a training unit's checkpoints go: the `checkpoint/` folder of the unit's branch.
struct CheckpointUpload {
    client: Client,
    repo: RepoId,
    branch: String,
    /// A copy of the checkpoint is uploaded, so the child can write the next one meanwhile.
    staging: PathBuf,
}

impl CheckpointUpload {
    async fn upload(&self, dir: &Path, epochs_done: usize) -> Result<commons_protocol::CheckpointRef, WorkerError> {
        let _ = std::fs::remove_dir_all(&self.staging);
        std::fs::create_dir_all(&self.staging).map_err(|e| WorkerError::io(format!("creating {}", self.staging.display()), e))?;
        for entry in std::fs::read_dir(dir).map_err(|e| WorkerError::io(format!("reading {}", dir.display()), e))? {
            let entry = entry.map_err(|e| WorkerError::io(format!("reading {}", dir.display()), e))?;
            std::fs::copy(entry.path(), self.staging.join(entry.file_name())).map_err(|e| WorkerError::io("copying the checkpoint", e))?;
        }
        let sources = collect(std::slice::from_ref(&self.staging), Some("checkpoint"))?;
        let options = UploadOptions {
            revision: Some(self.branch.clone()),
            message: Some(format!("Checkpoint after epoch {epochs_done}")),
            description: None,
        };
        let report = retrying("upload checkpoint", || upload(&self.client, &self.repo, sources.clone(), &options, &NoProgress)).await?;
        let commit = match report.commit {
            Some(commit) => commit.commit_oid,
            None => self
                .client
                .repo_info(&self.repo, &self.branch)
                .await?
                .sha
                .ok_or_else(|| WorkerError::Protocol("the checkpoint branch has no commit".into()))?,
        };
        Ok(commons_protocol::CheckpointRef { commit, epochs_done })
    }
}

/// Runs the child and relays what it prints as heartbeats; checkpoints it announces are uploaded
/// and reported at once. Returns `false` when the hub said to stop (the child is killed), `true`
/// when the child finished; an error when it failed.
async fn supervise(
    config: &WorkerConfig,
    client: &Client,
    registered: &Registered,
    lease: &Lease,
    spec_path: &Path,
    checkpoints: Option<&CheckpointUpload>,
) -> Result<bool, WorkerError> {
    let mut child = tokio::process::Command::new(&config.program)
        .arg("exec-unit")
        .arg(spec_path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| WorkerError::io(format!("starting {}", config.program.display()), e))?;
    let stdout = child.stdout.take().ok_or_else(|| WorkerError::Protocol("child has no stdout".into()))?;
    let mut stderr = child.stderr.take().ok_or_else(|| WorkerError::Protocol("child has no stderr".into()))?;
    let stderr_task = tokio::spawn(async move {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text).await;
        text
    });
    let mut lines = BufReader::new(stdout).lines();
    let mut pending = Heartbeat::default();
    let mut beat = tokio::time::interval(Duration::from_secs(registered.heartbeat_seconds.max(1)).min(Duration::from_secs(5)));
    beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut stdout_open = true;
    loop {
        tokio::select! {
            line = lines.next_line(), if stdout_open => match line {
                Ok(Some(line)) => match serde_json::from_str::<ChildMessage>(&line) {
                    Ok(ChildMessage::Progress(p)) => pending.progress = Some(p),
                    Ok(ChildMessage::Epoch(e)) => pending.epochs.push(e),
                    Ok(ChildMessage::Log(l)) => pending.log.push(l),
                    Ok(ChildMessage::Checkpoint { epochs_done, dir }) => {
                        if let Some(target) = checkpoints {
                            match target.upload(&dir, epochs_done).await {
                                Ok(checkpoint) => {
                                    pending.checkpoint = Some(checkpoint);
                                    if let Some(reason) = send_heartbeat(client, lease, &mut pending).await {
                                        tracing::info!(assignment = lease.assignment_id, %reason, "stopping the unit");
                                        let _ = child.kill().await;
                                        return Ok(false);
                                    }
                                }
                                // A checkpoint is an insurance, not the work: training goes on.
                                Err(e) => tracing::warn!(error = %e, "uploading a checkpoint failed"),
                            }
                        }
                    }
                    Err(_) => pending.log.push(line),
                },
                _ => stdout_open = false,
            },
            status = child.wait(), if !stdout_open => {
                let status = status.map_err(|e| WorkerError::io("waiting for the unit", e))?;
                let stderr = stderr_task.await.unwrap_or_default();
                send_heartbeat(client, lease, &mut pending).await;
                if status.success() {
                    return Ok(true);
                }
                let tail: Vec<&str> = stderr.lines().rev().take(15).collect::<Vec<_>>().into_iter().rev().collect();
                return Err(WorkerError::Protocol(format!("the unit exited with {status}: {}", tail.join("\n"))));
            }
            _ = beat.tick() => {
                if let Some(reason) = send_heartbeat(client, lease, &mut pending).await {
                    tracing::info!(assignment = lease.assignment_id, %reason, "stopping the unit");
                    let _ = child.kill().await;
                    return Ok(false);
                }
            }
        }
    }
}

/// Sends what accumulated; returns the reason when the hub says to stop. An unreachable hub is
/// not a reason to stop: the lease survives a restart of the hub.
async fn send_heartbeat(client: &Client, lease: &Lease, pending: &mut Heartbeat) -> Option<String> {
    let mut beat = std::mem::take(pending);
    // What is over a beat's caps (a chatty unit, a backlog from an outage) waits for the next.
    if beat.log.len() > commons_protocol::HEARTBEAT_MAX_LOG_LINES {
        pending.log = beat.log.split_off(commons_protocol::HEARTBEAT_MAX_LOG_LINES);
    }
    if beat.epochs.len() > commons_protocol::HEARTBEAT_MAX_EPOCHS {
        pending.epochs = beat.epochs.split_off(commons_protocol::HEARTBEAT_MAX_EPOCHS);
    }
    match client.heartbeat(lease.assignment_id, &beat).await {
        Ok(answer) if answer.stop => Some(answer.reason.unwrap_or_else(|| "stopped by the hub".into())),
        Ok(_) => None,
        Err(e) if transient(&e) => {
            tracing::warn!(error = %e, "heartbeat: hub unreachable; keeping the progress for the next one");
            pending.log.splice(0..0, beat.log);
            pending.epochs.splice(0..0, beat.epochs);
            if pending.progress.is_none() {
                pending.progress = beat.progress;
            }
            if pending.checkpoint.is_none() {
                pending.checkpoint = beat.checkpoint;
            }
            None
        }
        Err(e) => Some(format!("heartbeat refused: {e}")),
    }
}

/// Names the algorithm and dataset revisions in a model card: in its YAML front matter
/// (`datasets`, `algorithm`, `algorithm_revision`, `dataset_revision`) and in a Provenance section.
fn add_provenance(
    card_path: &Path,
    algorithm: &commons_protocol::PinnedRepo,
    dataset: &commons_protocol::PinnedRepo,
    job_id: i64,
) -> Result<(), WorkerError> {
    let text = std::fs::read_to_string(card_path).unwrap_or_default();
    let mut card = commons_card::Card::parse(&text).map_err(|e| WorkerError::Protocol(format!("model card: {e}")))?;
    let meta = &mut card.metadata;
    meta.insert("datasets".into(), serde_json::json!([dataset.repo]));
    meta.insert("dataset_revision".into(), dataset.revision.clone().into());
    meta.insert("algorithm".into(), algorithm.repo.clone().into());
    meta.insert("algorithm_revision".into(), algorithm.revision.clone().into());
    meta.insert("commons_job".into(), job_id.into());
    let section = format!(
        "\n## Provenance\n\n- Algorithm: [`{a}`](/algorithms/{a}) at revision `{ar}`\n- Dataset: [`{d}`](/datasets/{d}) at revision `{dr}`\n- Commons job {job_id}\n",
        a = algorithm.repo,
        ar = algorithm.revision,
        d = dataset.repo,
        dr = dataset.revision
    );
    card.body.push_str(&section);
    let text = card.render().map_err(|e| WorkerError::Protocol(format!("model card: {e}")))?;
    std::fs::write(card_path, text).map_err(|e| WorkerError::io(format!("writing {}", card_path.display()), e))
}

/// Physical memory in bytes (Linux `/proc/meminfo`; 0 where unknown).
fn total_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines().find(|l| l.starts_with("MemTotal:")).and_then(|l| l.split_whitespace().nth(1)).and_then(|kb| kb.parse::<u64>().ok())
        })
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}
