//! The hub CLI for people: `login`, `repo create`, `upload`, `download`, `ls`, `log`.
//! Everything that talks HTTP lives in `commons-client`; this module parses flags, draws
//! progress bars and prints results (data on stdout, commentary on stderr).

use crate::env::EnvVars;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use commons_client::download::DownloadOptions;
use commons_client::upload::UploadOptions;
use commons_client::{Client, Progress, RepoId, RepoKind, Transfer, config};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Which hub and which credentials: flag, then environment, then what `commons login` saved.
#[derive(Args, Debug, Clone)]
pub struct HubArgs {
    /// Hub URL (default: the one saved by `commons login`, else http://127.0.0.1:8000).
    #[arg(long, env = EnvVars::HF_ENDPOINT)]
    pub endpoint: Option<String>,
    /// Access token (default: the one saved by `commons login` in $HF_HOME/token).
    #[arg(long, env = EnvVars::HF_TOKEN, hide_env_values = true)]
    pub token: Option<String>,
}

/// A repository named on the command line.
#[derive(Args, Debug, Clone)]
pub struct RepoArg {
    /// Repository: namespace/name, or name for one of your own.
    pub repo: String,
    /// Repository type: model, dataset or algorithm.
    #[arg(long = "type", default_value = "model")]
    pub kind: RepoKind,
}

#[derive(Args, Debug)]
pub struct LoginArgs {
    #[command(flatten)]
    pub hub: HubArgs,
}

#[derive(Subcommand, Debug)]
pub enum RepoCommand {
    /// Create a repository; prints its URL.
    Create {
        #[command(flatten)]
        repo: RepoArg,
        /// Visible only to you.
        #[arg(long)]
        private: bool,
        /// An existing repository is not an error.
        #[arg(long)]
        exist_ok: bool,
        #[command(flatten)]
        hub: HubArgs,
    },
}

#[derive(Args, Debug)]
pub struct UploadArgs {
    #[command(flatten)]
    pub repo: RepoArg,
    /// Files and folders to upload (folders recursively, their relative paths kept).
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Branch to commit to (created from main if missing).
    #[arg(long, default_value = "main")]
    pub revision: String,
    /// Destination: the file's path for a single file, else the folder to upload into.
    #[arg(long)]
    pub path_in_repo: Option<String>,
    /// Commit title.
    #[arg(long, short)]
    pub message: Option<String>,
    #[command(flatten)]
    pub hub: HubArgs,
}

#[derive(Args, Debug)]
pub struct DownloadArgs {
    #[command(flatten)]
    pub repo: RepoArg,
    /// Branch, tag or commit.
    #[arg(long, default_value = "main")]
    pub revision: String,
    /// Only files matching this glob (repeatable; `*` also matches across folders).
    #[arg(long)]
    pub include: Vec<String>,
    /// Also copy the files into this folder (plain files) and print it instead of the snapshot.
    #[arg(long)]
    pub local_dir: Option<PathBuf>,
    /// Cache root (default: $HF_HUB_CACHE, else $HF_HOME/hub).
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,
    #[command(flatten)]
    pub hub: HubArgs,
}

#[derive(Args, Debug)]
pub struct ListArgs {
    #[command(flatten)]
    pub repo: RepoArg,
    #[arg(long, default_value = "main")]
    pub revision: String,
    #[command(flatten)]
    pub hub: HubArgs,
}

pub(crate) fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the async runtime")
}

pub(crate) fn connect(hub: &HubArgs) -> Result<Client> {
    let endpoint = config::resolve_endpoint(hub.endpoint.as_deref())?;
    let token = config::resolve_token(hub.token.as_deref())?;
    Ok(Client::new(&endpoint, token)?)
}

/// `ns/name` as given, or `name` under the token's user.
async fn repo_id(client: &Client, arg: &RepoArg) -> Result<RepoId> {
    let namespace = if arg.repo.contains('/') {
        None
    } else {
        let me = client
            .whoami()
            .await
            .with_context(|| format!("cannot look up your user name for {:?} (or write it as namespace/name)", arg.repo))?;
        Some(me.name)
    };
    Ok(RepoId::parse(arg.kind, &arg.repo, namespace.as_deref())?)
}

/// The files a trained model is read from (`config.json`, `model.safetensors`) of model
/// repository `repo` at `revision`, downloaded into the Hugging Face cache (or found there);
/// returns the snapshot folder.
pub(crate) fn fetch_model(hub: &HubArgs, repo: &str, revision: &str) -> Result<PathBuf> {
    let client = connect(hub)?;
    runtime()?.block_on(async {
        let id = repo_id(&client, &RepoArg { repo: repo.to_string(), kind: RepoKind::Model }).await?;
        let options = DownloadOptions {
            revision: Some(revision.to_string()),
            include: vec!["config.json".into(), "model.safetensors".into()],
            cache_dir: config::hub_cache_dir(),
            local_dir: None,
            concurrency: 2,
        };
        let bars = Bars::new();
        let report = commons_client::download::download(&client, &id, &options, &bars).await?;
        bars.end();
        Ok(report.snapshot_dir)
    })
}

/// indicatif bars on stderr (hidden when stderr is not a terminal).
struct Bars {
    multi: MultiProgress,
    style: ProgressStyle,
    /// Whether a bar stays on screen once finished.
    kept_any: std::sync::atomic::AtomicBool,
}

impl Bars {
    fn new() -> Self {
        let style = ProgressStyle::with_template(
            "{msg:32!} [{bar:30.cyan/blue}] {bytes:>10}/{total_bytes:<10} {binary_bytes_per_sec:>12} ETA {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        Self { multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()), style, kept_any: Default::default() }
    }

    /// indicatif leaves the cursor at the end of the last finished bar: move below it, so the
    /// summary that follows starts on its own line.
    fn end(&self) {
        use std::io::IsTerminal;
        if self.kept_any.load(std::sync::atomic::Ordering::Relaxed) && std::io::stderr().is_terminal() && !self.multi.is_hidden() {
            eprintln!();
        }
    }
}

struct Bar {
    bar: ProgressBar,
    keep: bool,
}

impl Transfer for Bar {
    fn advance(&self, bytes: u64) {
        self.bar.inc(bytes);
    }
    fn reset(&self, done: u64) {
        self.bar.set_position(done);
    }
    fn finish(&self) {
        if self.keep { self.bar.finish() } else { self.bar.finish_and_clear() }
    }
}

impl Progress for Bars {
    fn begin(&self, label: &str, total: u64, done: u64) -> Arc<dyn Transfer> {
        let bar = self.multi.add(ProgressBar::new(total).with_style(self.style.clone()).with_message(label.to_string()));
        bar.set_position(done);
        // Small files and the hashing pass would only clutter the terminal once done.
        let keep = total >= 1 << 20 && label != "hashing";
        if keep {
            self.kept_any.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        Arc::new(Bar { bar, keep })
    }
}

pub fn login(args: LoginArgs) -> Result<()> {
    let token = match args.hub.token.clone().filter(|t| !t.trim().is_empty()) {
        Some(t) => t,
        None => {
            eprint!("Access token: ");
            let mut line = String::new();
            std::io::stdin().read_line(&mut line).context("cannot read the token from stdin")?;
            line.trim().to_string()
        }
    };
    anyhow::ensure!(!token.is_empty(), "no token given: pass --token or type it when asked");
    let endpoint = config::resolve_endpoint(args.hub.endpoint.as_deref())?;
    let client = Client::new(&endpoint, Some(token.clone()))?;
    let me = runtime()?.block_on(client.whoami()).with_context(|| format!("the token was not accepted by {endpoint}"))?;
    let token_file = config::save_token(&token)?;
    config::save_endpoint(&endpoint)?;
    let role = me.token_role().map(|r| format!(" ({r} token)")).unwrap_or_default();
    eprintln!("token saved to {}", token_file.display());
    println!("Logged in to {endpoint} as {}{role}", me.name);
    Ok(())
}

pub fn repo(cmd: RepoCommand) -> Result<()> {
    match cmd {
        RepoCommand::Create { repo, private, exist_ok, hub } => {
            let client = connect(&hub)?;
            runtime()?.block_on(async {
                let id = repo_id(&client, &repo).await?;
                let created = client.create_repo(&id, private, exist_ok).await?;
                if created.existed {
                    eprintln!("{} {id} already exists", id.kind);
                } else {
                    eprintln!("created {}{} {id}", if private { "private " } else { "" }, id.kind);
                }
                println!("{}", created.url);
                Ok(())
            })
        }
    }
}

pub fn upload(args: UploadArgs) -> Result<()> {
    let client = connect(&args.hub)?;
    let sources = commons_client::upload::collect(&args.paths, args.path_in_repo.as_deref())?;
    runtime()?.block_on(async {
        let id = repo_id(&client, &args.repo).await?;
        let options = UploadOptions { revision: Some(args.revision.clone()), message: args.message.clone(), description: None };
        let bars = Bars::new();
        let report = commons_client::upload::upload(&client, &id, sources, &options, &bars).await?;
        bars.end();
        match report.commit {
            None => {
                eprintln!("no changes: {} file(s) are already identical on {}", report.unchanged.len(), args.revision);
                println!("{}", client.web_url(&id));
            }
            Some(commit) => {
                eprintln!(
                    "committed {} regular and {} LFS file(s) ({} already on the hub, {} unchanged), {} sent",
                    report.regular_files,
                    report.lfs_files,
                    report.lfs_deduplicated,
                    report.unchanged.len(),
                    indicatif::HumanBytes(report.bytes_sent)
                );
                println!("{}", commit.commit_url);
            }
        }
        Ok(())
    })
}

pub fn download(args: DownloadArgs) -> Result<()> {
    let client = connect(&args.hub)?;
    runtime()?.block_on(async {
        let id = repo_id(&client, &args.repo).await?;
        let options = DownloadOptions {
            revision: Some(args.revision.clone()),
            include: args.include.clone(),
            cache_dir: args.cache_dir.clone().unwrap_or_else(config::hub_cache_dir),
            local_dir: args.local_dir.clone(),
            concurrency: 4,
        };
        let bars = Bars::new();
        let report = commons_client::download::download(&client, &id, &options, &bars).await?;
        bars.end();
        eprintln!(
            "{} file(s) at {}: {} fetched ({} resumed, {}), {} from the cache",
            report.files.len(),
            report.commit,
            report.fetched,
            report.resumed,
            indicatif::HumanBytes(report.bytes_fetched),
            report.files.len() - report.fetched
        );
        let shown = args.local_dir.clone().unwrap_or(report.snapshot_dir);
        println!("{}", shown.display());
        Ok(())
    })
}

pub fn ls(args: ListArgs) -> Result<()> {
    let client = connect(&args.hub)?;
    runtime()?.block_on(async {
        let id = repo_id(&client, &args.repo).await?;
        let files: Vec<_> = client.list_tree(&id, &args.revision).await?.into_iter().filter(|e| e.is_file()).collect();
        let width = files.iter().map(|f| f.path.len()).max().unwrap_or(4).max(4);
        println!("{:<width$}  {:>12}  LFS", "PATH", "SIZE");
        for f in &files {
            println!("{:<width$}  {:>12}  {}", f.path, f.size, if f.lfs.is_some() { "yes" } else { "no" });
        }
        Ok(())
    })
}

pub fn log(args: ListArgs) -> Result<()> {
    let client = connect(&args.hub)?;
    runtime()?.block_on(async {
        let id = repo_id(&client, &args.repo).await?;
        for c in client.list_commits(&id, &args.revision).await? {
            let authors: Vec<&str> = c.authors.iter().map(|a| a.user.as_str()).collect();
            println!("{}  {}  {}  {}", c.id, c.date, authors.join(","), c.title);
        }
        Ok(())
    })
}
