//! The compute CLI: `commons job ...`, `commons workers`, `commons credits`, `commons worker`,
//! and the hidden `commons exec-unit` a worker runs each unit in.

use crate::env::EnvVars;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use commons_client::Client;
use commons_protocol::{AssignmentState, JobRequest, JobState, JobView};
use indicatif::{ProgressBar, ProgressStyle};

use super::client::{HubArgs, connect, runtime};

#[derive(Subcommand, Debug)]
pub enum JobCommand {
    /// Submit a job; prints its id as the last line of stdout.
    #[command(subcommand)]
    Submit(SubmitCommand),
    /// A job's state, units, workers, and result.
    Status {
        id: i64,
        /// Print the job as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        hub: HubArgs,
    },
    /// A job's log lines (from its workers and the coordinator).
    Logs {
        id: i64,
        /// Keep printing new lines until the job ends.
        #[arg(long, short)]
        follow: bool,
        #[command(flatten)]
        hub: HubArgs,
    },
    /// Follow a job with a live progress bar until it ends; fails if the job does.
    Watch {
        id: i64,
        #[command(flatten)]
        hub: HubArgs,
    },
    /// Cancel a job of yours; running workers stop and the unused escrow returns.
    Cancel {
        id: i64,
        #[command(flatten)]
        hub: HubArgs,
    },
    /// The newest jobs.
    List {
        /// Only jobs of this user.
        #[arg(long)]
        owner: Option<String>,
        #[command(flatten)]
        hub: HubArgs,
    },
}

#[derive(Subcommand, Debug)]
pub enum SubmitCommand {
    /// Train an algorithm repo's recipe on a dataset repo; the model lands in a model repo of yours.
    Train {
        /// Algorithm repo, namespace/name[@revision].
        #[arg(long)]
        algorithm: String,
        /// Dataset repo, namespace/name[@revision].
        #[arg(long)]
        dataset: String,
        /// Override a recipe value, e.g. `--set training.epochs=2` (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        overrides: Vec<String>,
        /// Name of the output model repo (default: <algorithm>-<dataset>).
        #[arg(long)]
        output: Option<String>,
        /// Sweep a recipe value over a list, e.g. `--sweep training.optimizer.lr=0.001,0.01`
        /// (repeatable: every combination trains; the best test accuracy goes to main).
        #[arg(long, value_name = "KEY=V1,V2,...")]
        sweep: Vec<String>,
        /// Run only on workers that offer a GPU (`commons worker --gpu`).
        #[arg(long)]
        gpu: bool,
        /// Follow the job until it ends.
        #[arg(long)]
        watch: bool,
        #[command(flatten)]
        hub: HubArgs,
    },
    /// Evaluate a model repo on a split of a dataset repo.
    Eval {
        /// Model repo, namespace/name[@revision].
        #[arg(long)]
        model: String,
        #[arg(long)]
        dataset: String,
        #[arg(long, default_value = "test")]
        split: String,
        /// Split the evaluation into this many shards, each run and validated on its own.
        #[arg(long)]
        shards: Option<usize>,
        /// Run only on workers that offer a GPU (`commons worker --gpu`).
        #[arg(long)]
        gpu: bool,
        #[arg(long)]
        watch: bool,
        #[command(flatten)]
        hub: HubArgs,
    },
    /// Batch inference: a classifier's class and probability for every example of a split of a
    /// dataset repo, written as Parquet to a dataset repo of yours.
    Predict {
        /// Model repo, namespace/name[@revision].
        #[arg(long)]
        model: String,
        #[arg(long)]
        dataset: String,
        #[arg(long, default_value = "test")]
        split: String,
        /// Units to split the examples into (default: as few as hold 10,000 examples each).
        #[arg(long)]
        shards: Option<usize>,
        /// Name of the output dataset repo (default: <model>-<split>-predictions).
        #[arg(long)]
        output: Option<String>,
        /// Run only on workers that offer a GPU (`commons worker --gpu`).
        #[arg(long)]
        gpu: bool,
        #[arg(long)]
        watch: bool,
        #[command(flatten)]
        hub: HubArgs,
    },
}

pub fn job(command: JobCommand) -> Result<()> {
    let rt = runtime()?;
    match command {
        JobCommand::Submit(submit) => {
            let (request, watch, hub) = match submit {
                SubmitCommand::Train { algorithm, dataset, overrides, output, sweep, gpu, watch, hub } => {
                    (JobRequest::Train { algorithm, dataset, overrides, output, sweep, gpu }, watch, hub)
                }
                SubmitCommand::Eval { model, dataset, split, shards, gpu, watch, hub } => {
                    (JobRequest::Eval { model, dataset, split, shards, gpu }, watch, hub)
                }
                SubmitCommand::Predict { model, dataset, split, shards, output, gpu, watch, hub } => {
                    (JobRequest::Predict { model, dataset, split, shards, output, gpu }, watch, hub)
                }
            };
            let client = connect(&hub)?;
            let job = rt.block_on(client.submit_job(&request)).context("submitting the job")?;
            eprintln!("job {} queued: {} credits held in escrow; follow it with `commons job watch {}`", job.id, job.escrow, job.id);
            if watch {
                rt.block_on(watch_job(&client, job.id))?;
            }
            println!("{}", job.id);
            Ok(())
        }
        JobCommand::Status { id, json, hub } => {
            let client = connect(&hub)?;
            let job = rt.block_on(client.job(id)).with_context(|| format!("reading job {id}"))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&job)?);
            } else {
                print_job(&job);
            }
            Ok(())
        }
        JobCommand::Logs { id, follow, hub } => {
            let client = connect(&hub)?;
            rt.block_on(async {
                let mut after = 0;
                loop {
                    for line in client.job_logs(id, after).await.with_context(|| format!("reading the logs of job {id}"))? {
                        after = line.id;
                        let who = line.assignment_id.map(|a| format!("a{a}")).unwrap_or_else(|| "hub".into());
                        println!("{} [{who}] {}", super::clock(line.created_at), line.line);
                    }
                    if !follow || client.job(id).await?.is_finished() {
                        return Ok::<_, anyhow::Error>(());
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            })
        }
        JobCommand::Watch { id, hub } => {
            let client = connect(&hub)?;
            rt.block_on(watch_job(&client, id))
        }
        JobCommand::Cancel { id, hub } => {
            let client = connect(&hub)?;
            let job = rt.block_on(client.cancel_job(id)).with_context(|| format!("cancelling job {id}"))?;
            eprintln!("job {id} cancelled; {} credits returned", job.refunded);
            Ok(())
        }
        JobCommand::List { owner, hub } => {
            let client = connect(&hub)?;
            let jobs = rt.block_on(client.jobs(owner.as_deref())).context("listing jobs")?;
            println!("{:>6}  {:<10}  {:<12}  {:<6}  WHAT", "ID", "STATE", "OWNER", "KIND");
            for job in jobs {
                println!("{:>6}  {:<10}  {:<12}  {:<6}  {}", job.id, job.state, job.owner, kind_of(&job), describe(&job));
            }
            Ok(())
        }
    }
}

fn kind_of(job: &JobView) -> &'static str {
    match job.spec {
        commons_protocol::JobSpec::Train { .. } => "train",
        commons_protocol::JobSpec::Eval { .. } => "eval",
        commons_protocol::JobSpec::Predict { .. } => "predict",
        commons_protocol::JobSpec::Noop { .. } => "noop",
    }
}

fn describe(job: &JobView) -> String {
    match &job.spec {
        commons_protocol::JobSpec::Train { algorithm, dataset, overrides, output, points, gpu, .. } => {
            let mut sets = if overrides.is_empty() { String::new() } else { format!(" ({})", overrides.join(", ")) };
            if !points.is_empty() {
                sets += &format!(", sweep of {} points", points.len());
            }
            let on_gpu = if *gpu { ", on GPU workers" } else { "" };
            format!("{} on {} -> {}/{output}{sets}{on_gpu}", algorithm.display(), dataset.display(), job.owner)
        }
        commons_protocol::JobSpec::Eval { model, dataset, split, shards, gpu, .. } => {
            let sharded = if *shards > 1 { format!(" in {shards} shards") } else { String::new() };
            let on_gpu = if *gpu { ", on GPU workers" } else { "" };
            format!("{} on {} [{split}]{sharded}{on_gpu}", model.display(), dataset.display())
        }
        commons_protocol::JobSpec::Predict { model, dataset, split, shards, output, gpu } => {
            let on_gpu = if *gpu { ", on GPU workers" } else { "" };
            format!("{} on {} [{split}] in {shards} unit(s) -> datasets/{}/{output}{on_gpu}", model.display(), dataset.display(), job.owner)
        }
        commons_protocol::JobSpec::Noop { units } => format!("{units} no-op units"),
    }
}

fn print_job(job: &JobView) {
    println!("job {} ({}) by {}: {}", job.id, kind_of(job), job.owner, job.state);
    println!("  {}", describe(job));
    println!("  credits: {} escrowed, {} paid to workers, {} refunded", job.escrow, job.paid, job.refunded);
    for unit in &job.units {
        let role = if unit.validates_unit.is_some() {
            format!("validate unit {}", unit.validates_unit.unwrap_or_default())
        } else {
            unit.role.to_string()
        };
        println!("  unit {} {role}: {} (quorum {}, {} credits, {} errors)", unit.id, unit.state, unit.quorum, unit.credits, unit.errors);
        if let Some(error) = &unit.last_error {
            println!("    last error: {error}");
        }
        if let Some(waiting) = &unit.waiting {
            println!("    {waiting}");
        }
        for a in &unit.assignments {
            let progress =
                a.progress.as_ref().map(|p| format!(" {:.0}% epoch {}/{}", p.fraction * 100.0, p.epoch, p.epochs)).unwrap_or_default();
            println!("    assignment {} on {} ({}): {} / {}{progress}", a.id, a.worker, a.owner, a.state, a.outcome);
            for e in &a.epochs {
                println!("      epoch {}: train loss {:.4} ({:.1} s)", e.epoch, e.train_loss, e.seconds);
            }
        }
    }
    if let Some(error) = &job.error {
        println!("  error: {error}");
    }
    if let Some(result) = &job.result {
        println!("  result: {}", serde_json::to_string_pretty(result).unwrap_or_default().replace('\n', "\n  "));
    }
}

/// A live bar over the running unit's progress until the job ends.
async fn watch_job(client: &Client, id: i64) -> Result<()> {
    let bar = ProgressBar::new(1000);
    bar.set_style(
        ProgressStyle::with_template("{prefix} [{bar:30}] {percent:>3}% {msg}").context("progress bar template")?.progress_chars("=> "),
    );
    // Without a terminal the bar is hidden: log lines and state changes go to stderr as text.
    let plain = !std::io::IsTerminal::is_terminal(&std::io::stderr());
    let mut after = 0;
    let mut last_state = None;
    loop {
        let job = client.job(id).await.with_context(|| format!("reading job {id}"))?;
        for line in client.job_logs(id, after).await? {
            after = line.id;
            if plain {
                eprintln!("  {}", line.line);
            } else {
                bar.println(format!("  {}", line.line));
            }
        }
        if plain && Some(job.state) != last_state {
            eprintln!("job {id}: {}", job.state);
            last_state = Some(job.state);
        }
        let running =
            job.units.iter().flat_map(|u| u.assignments.iter().map(move |a| (u, a))).rfind(|(_, a)| a.state == AssignmentState::Running);
        bar.set_prefix(format!("job {id} {}", job.state));
        match running {
            Some((unit, a)) => {
                let p = a.progress.clone();
                bar.set_position(p.as_ref().map(|p| (p.fraction * 1000.0) as u64).unwrap_or(0));
                let detail = p
                    .map(|p| {
                        let loss = p.loss.map(|l| format!(" loss {l:.4}")).unwrap_or_default();
                        format!(" epoch {}/{}{loss}, {:.0} samples/s, eta {:.0}s", p.epoch, p.epochs, p.samples_per_second, p.eta_seconds)
                    })
                    .unwrap_or_default();
                bar.set_message(format!("{} on {}{detail}", unit.role, a.worker));
            }
            None => bar.set_message(String::new()),
        }
        if job.is_finished() {
            bar.finish_and_clear();
            print_job(&job);
            if job.state != JobState::Done {
                bail!("job {id} {}: {}", job.state, job.error.unwrap_or_default());
            }
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[derive(Args, Debug)]
pub struct ListArgs {
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub hub: HubArgs,
}

pub fn workers(args: ListArgs) -> Result<()> {
    let client = connect(&args.hub)?;
    let workers = runtime()?.block_on(client.workers()).context("listing workers")?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&workers)?);
        return Ok(());
    }
    println!(
        "{:<24} {:<12} {:<7} {:>5} {:>8} {:>6} {:>7} {:<8} RUNNING",
        "WORKER", "OWNER", "STATUS", "CORES", "GFLOP/s", "VALID", "INVALID", "TRUST"
    );
    for w in workers {
        println!(
            "{:<24} {:<12} {:<7} {:>5} {:>8.1} {:>6} {:>7} {:<8} {}",
            w.name,
            w.owner,
            if w.online { "online" } else { "offline" },
            w.cores,
            w.speed_gflops,
            w.valid_results,
            w.invalid_results,
            if w.trusted { "trusted".to_string() } else { format!("{} in a row", w.consecutive_valid) },
            if w.running.is_empty() {
                "-".to_string()
            } else {
                w.running.iter().map(|r| format!("job/unit {r}")).collect::<Vec<_>>().join(", ")
            },
        );
    }
    Ok(())
}

#[derive(Args, Debug)]
pub struct CreditsArgs {
    #[command(subcommand)]
    pub action: Option<CreditsAction>,
    #[command(flatten)]
    pub list: ListArgs,
}

#[derive(Subcommand, Debug)]
pub enum CreditsAction {
    /// Grant credits to USER (hub administrators: runs on the server's data directory, beside a
    /// running server or not). Every grant is a ledger transfer from the issuer, with its memo.
    Grant {
        user: String,
        amount: i64,
        /// Why: shown in the user's history.
        #[arg(long)]
        memo: String,
        /// Makes a retried grant happen once: a second grant with the same key moves nothing.
        #[arg(long)]
        key: Option<String>,
        #[arg(long, env = EnvVars::COMMONS_DATA_DIR)]
        data_dir: Option<PathBuf>,
        /// PostgreSQL database shared by several servers (`postgres://…`); default: the
        /// embedded SQLite database in DATA_DIR.
        #[arg(long, env = EnvVars::COMMONS_DATABASE_URL)]
        database_url: Option<String>,
    },
}

pub fn credits(args: CreditsArgs) -> Result<()> {
    match args.action {
        Some(CreditsAction::Grant { user, amount, memo, key, data_dir, database_url }) => {
            grant(&user, amount, &memo, key, data_dir, database_url.as_deref())
        }
        None => show_credits(args.list),
    }
}

fn grant(user: &str, amount: i64, memo: &str, key: Option<String>, data_dir: Option<PathBuf>, database_url: Option<&str>) -> Result<()> {
    let data_dir = data_dir.unwrap_or_else(super::hub::default_data_dir);
    if database_url.is_none() && !data_dir.join("commons.db").exists() {
        bail!("no hub in {}: pass --data-dir (or COMMONS_DATA_DIR) of the server", data_dir.display());
    }
    let key = key.unwrap_or_else(|| {
        format!("{user}-{}", std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0))
    });
    runtime()?.block_on(async {
        let hub = commons_hub::AppState::open_with_database(&data_dir, database_url, None, None)
            .await
            .with_context(|| format!("cannot open the hub in {}", data_dir.display()))?;
        let account = hub.db.user_by_name(user).await?.with_context(|| format!("no user {user:?} on this hub"))?;
        let config = commons_compute::ComputeConfig { operator_user: Some(super::hub::OPERATOR_USER.to_string()), ..Default::default() };
        let coordinator = commons_compute::Coordinator::attach(hub.db.clone(), hub.repos.clone(), config)?;
        let credits = coordinator.grant(&account, amount, memo, &key).await.map_err(|e| anyhow::anyhow!(e.to_string()))?;
        println!("{}: {} credits", credits.user, credits.balance);
        Ok(())
    })
}

fn show_credits(args: ListArgs) -> Result<()> {
    let client = connect(&args.hub)?;
    let credits = runtime()?.block_on(client.credits()).context("reading your credits")?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&credits)?);
        return Ok(());
    }
    println!("{}: {} credits (1 credit = 1 GFLOP of validated work)", credits.user, credits.balance);
    for e in credits.history {
        let unit = e.unit_id.map(|u| format!(" unit {u}")).unwrap_or_default();
        let job = e.job_id.map(|j| format!(" job {j}")).unwrap_or_default();
        println!("  {} {:>+8} {:<8}{job}{unit}  {}", super::clock(e.created_at), e.amount, e.kind, e.memo);
    }
    Ok(())
}

#[derive(Args, Debug)]
pub struct WorkerArgs {
    /// The hub to work for.
    #[arg(long, env = EnvVars::HF_ENDPOINT)]
    pub hub: Option<String>,
    /// A worker token (`commons token create USER --scope worker`) or write token of the
    /// account that earns this worker's credits.
    #[arg(long, env = EnvVars::HF_TOKEN, hide_env_values = true)]
    pub token: Option<String>,
    /// Cores to use (default: all).
    #[arg(long)]
    pub cores: Option<usize>,
    /// Offer this machine's GPU (needs a build with the `cuda` or `wgpu` feature).
    #[arg(long)]
    pub gpu: bool,
    /// Name of this worker among yours (default: host name and process id).
    #[arg(long)]
    pub name: Option<String>,
    /// Stop after this many units.
    #[arg(long)]
    pub max_units: Option<usize>,
}

pub fn worker(args: WorkerArgs) -> Result<()> {
    let hub = commons_client::config::resolve_endpoint(args.hub.as_deref())?;
    let token = commons_client::config::resolve_token(args.token.as_deref())?
        .context("a worker needs a token: pass --token, set HF_TOKEN or run `commons login`")?;
    let program = std::env::current_exe().context("cannot find the commons executable")?;
    let mut config = commons_worker::WorkerConfig::new(&hub, &token, program);
    if let Some(cores) = args.cores {
        config.cores = cores;
    }
    if let Some(name) = args.name {
        config.name = name;
    }
    config.max_units = args.max_units;
    if args.gpu {
        config.gpu = Some(gpu_backend()?.to_string());
    }
    eprintln!("worker {} for {hub} with {} cores; Ctrl-C to stop", config.name, config.cores);
    runtime()?.block_on(commons_worker::run(config, Arc::new(AtomicBool::new(false))))?;
    Ok(())
}

fn gpu_backend() -> Result<&'static str> {
    if cfg!(feature = "cuda") {
        Ok("cuda")
    } else if cfg!(feature = "wgpu") {
        Ok("wgpu")
    } else {
        bail!("this build of commons has no GPU backend; rebuild with `--features cuda` (or `wgpu`) to offer a GPU")
    }
}

#[derive(Args, Debug)]
pub struct ExecArgs {
    /// The unit spec written by the worker.
    pub spec: PathBuf,
}

pub fn exec_unit(args: ExecArgs) -> Result<()> {
    commons_worker::exec_unit(&args.spec)?;
    Ok(())
}
