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
