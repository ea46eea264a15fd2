//! What the hub's benchmarks share: many generated repositories with README cards, made through
//! the repository service into a data directory that later runs may reuse.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use commons_db::{CommitInfo, Db, RepoKind};
use commons_repo::{Change, Repos};
use commons_search::SearchIndex;
use commons_storage::Cas;
use rand::{Rng, SeedableRng};

/// The `commons` binary's allocator (crates/commons-cli/src/main.rs), so that what is measured
/// is what a hub runs on.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub const WORDS: usize = 2000;

pub fn word(i: usize) -> String {
    // Pronounceable, distinct words: w0 … w1999 spelled with syllables.
    const SYLLABLES: [&str; 16] = ["ka", "lo", "mi", "ne", "ru", "sa", "to", "vi", "ze", "po", "da", "fe", "gu", "hi", "jo", "be"];
    let mut n = i + WORDS;
    let mut out = String::new();
    while n > 0 {
        out.push_str(SYLLABLES[n % 16]);
        n /= 16;
    }
    out
}

/// The data directory: `var` (kept for later runs) when set, else a fresh one under `tmp`;
/// and whether it already holds the repositories.
pub fn data_dir(var: &str, tmp: &std::path::Path) -> (std::path::PathBuf, bool) {
    let kept = std::env::var_os(var).map(std::path::PathBuf::from);
    let reuse = kept.as_ref().is_some_and(|dir| dir.join("commons.db").exists());
    (kept.unwrap_or_else(|| tmp.join("data")), reuse)
}

/// `wanted` models of `alice` and `bob` (one in ten private), each a create and a commit of a
/// README card of random words, unless `reuse`; then the search index is built the way a hub
/// catches up at start, from the database, and its build time and size printed. Returns how
/// long generating took.
pub async fn generate(data: &std::path::Path, wanted: usize, reuse: bool) -> Duration {
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let generated = Instant::now();
    std::fs::create_dir_all(data).unwrap();
    let db = Db::open(&data.join("commons.db")).await.unwrap();
    if !reuse {
        for user in ["alice", "bob"] {
            db.create_user(user, user).await.unwrap();
        }
    }
    let cas = Cas::local(db.clone(), &data.join("objects")).unwrap();
    let repos = Repos::new(db.clone(), cas);
    let info = CommitInfo { author: "alice", title: "card", message: "" };
    for i in (0..wanted).filter(|_| !reuse) {
        let owner = if i % 2 == 0 { "alice" } else { "bob" };
        let name = format!("{}-{}-{i}", word(rng.random_range(0..WORDS)), word(rng.random_range(0..WORDS)));
        let repo = repos.create(RepoKind::Model, owner, &name, i % 10 == 0, owner).await.unwrap();
        let text: Vec<String> = (0..40).map(|_| word(rng.random_range(0..WORDS))).collect();
        let card = format!(
            "---\nlicense: mit\ntags: [{}, {}]\nlibrary_name: commons\n---\n# {name}\n\n{}\n",
            word(rng.random_range(0..200)),
            word(rng.random_range(0..200)),
            text.join(" ")
        );
        let head = repos.pin(&repo, "main").await.unwrap();
        repos
            .commit_onto(&repo, "main", &head, vec![Change::Put { path: "README.md".into(), bytes: card.into_bytes() }], &info, 1)
            .await
            .unwrap();
        if (i + 1) % 10_000 == 0 {
            eprintln!("generated {} repositories in {:.0} s", i + 1, generated.elapsed().as_secs_f64());
        }
    }
    let elapsed = generated.elapsed();
    let index = Arc::new(SearchIndex::open(&data.join("search")).unwrap());
    let repos = repos.with_search(index);
    let built = Instant::now();
    let documents = repos.sync_search().await.unwrap();
    let size: u64 = std::fs::read_dir(data.join("search")).unwrap().flatten().filter_map(|e| e.metadata().ok()).map(|m| m.len()).sum();
    println!(
        "index: {documents} repositories in {:.1} s, {:.1} MiB on disk",
        built.elapsed().as_secs_f64(),
        size as f64 / (1 << 20) as f64
    );
    elapsed
}

/// Percentile `q` of sorted `latencies`, in milliseconds.
pub fn percentile(latencies: &[Duration], q: f64) -> f64 {
    latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)].as_secs_f64() * 1000.0
}

/// One request of a load: the tally it counts in, its path and query, and whether it is sent
/// with the bearer token.
pub struct Request {
    pub kind: usize,
    pub path: String,
    pub signed_in: bool,
}

/// `clients` closed-loop clients (each sends its next request when the last is answered, over
/// its own kept-alive connection), `requests / clients` each, what `plan(client, n)` says.
/// Returns each answer's tally kind and latency, and the wall time.
///
/// The clients are tasks on one thread, as `wrk` and `oha` run theirs: a load generator of a
/// hundred threads (two per blocking client, before 2026-12-05) takes the server's cores in
/// the scheduler's slices and measures its own waits as the server's.
pub fn closed_loop(
    url: &str,
    token: Option<&str>,
    accept: &str,
    clients: usize,
    requests: usize,
    plan: impl Fn(usize, usize) -> Request + Send + Sync + 'static,
) -> (Vec<(usize, Duration)>, Duration) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let http = reqwest::Client::builder().pool_max_idle_per_host(clients).build().unwrap();
    let plan = Arc::new(plan);
    let started = Instant::now();
    let timed = runtime.block_on(async {
        let tasks: Vec<_> = (0..clients)
            .map(|c| {
                let (http, plan, url, token, accept) =
                    (http.clone(), plan.clone(), url.to_string(), token.map(str::to_string), accept.to_string());
                tokio::spawn(async move {
                    let mut out = Vec::with_capacity(requests / clients);
                    for n in 0..requests / clients {
                        let Request { kind, path, signed_in } = plan(c, n);
                        let mut request = http.get(format!("{url}{path}")).header("accept", &accept);
                        if let (true, Some(token)) = (signed_in, &token) {
                            request = request.bearer_auth(token);
                        }
                        let t = Instant::now();
                        let resp = request.send().await.unwrap();
                        assert!(resp.status().is_success(), "{path}: {}", resp.status());
                        resp.bytes().await.unwrap();
                        out.push((kind, t.elapsed()));
                    }
                    out
                })
            })
            .collect();
        let mut all = Vec::with_capacity(requests);
        for task in tasks {
            all.extend(task.await.unwrap());
        }
        all
    });
    (timed, started.elapsed())
}
