//! The web pages under load: p50/p99 of a repository's page, a search page and a leaderboard
//! page over real HTTP with 100 concurrent clients (browsers asking for HTML) on 100,000
//! generated repositories with cards, and a leaderboard of 1,000 verified entries.
//!
//! `cargo bench -p commons-hub --bench pages [-- REPOS [CLIENTS [REQUESTS]]]` (defaults 100000,
//! 100, 9000). With `PAGES_BENCH_DATA=DIR` the repositories are generated into DIR once and
//! reused (the search benchmark's directory serves as well).

#[path = "common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{WORDS, word};
use commons_db::{Db, RepoKind};
use rand::{Rng, SeedableRng};

const BOARD_ENTRIES: i64 = 1000;

/// A dataset with a board of `BOARD_ENTRIES` verified accuracies of generated models, written as
/// the coordinator writes them (one job, one entry per model), unless it is there already.
async fn ensure_board(data: &std::path::Path) {
    let db = Db::open(&data.join("commons.db")).await.unwrap();
    let cas = commons_storage::Cas::local(db.clone(), &data.join("objects")).unwrap();
    let repos = commons_repo::Repos::new(db.clone(), cas);
    let dataset = repos.ensure(RepoKind::Dataset, "alice", "bench-digits", "alice").await.unwrap();
    let pool = db.pool();
    let have: i64 = commons_db::sql::query("SELECT count(*) FROM board_entries WHERE dataset_repo_id = $1")
        .bind(dataset.id)
        .fetch_one(pool)
        .await
        .unwrap()
        .try_get(0usize)
        .unwrap();
    if have >= BOARD_ENTRIES {
        return;
    }
    let alice: i64 =
        commons_db::sql::query("SELECT id FROM users WHERE name = 'alice'").fetch_one(pool).await.unwrap().try_get(0usize).unwrap();
    let job: i64 = commons_db::sql::query(
        "INSERT INTO jobs (owner_id, kind, spec, state, escrow, created_at, updated_at) VALUES ($1, 'eval', '{}', 'done', 0, 1, 1) RETURNING id",
    )
    .bind(alice)
    .fetch_one(pool)
    .await
    .unwrap()
    .try_get(0usize).unwrap();
    let models = commons_db::sql::query("SELECT id FROM repos WHERE kind = 'model' AND private = FALSE ORDER BY id LIMIT $1")
        .bind(BOARD_ENTRIES)
        .fetch_all(pool)
        .await
        .unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(9);
    for row in models {
        let model: i64 = row.try_get(0usize).unwrap();
        commons_db::sql::query(
            "INSERT INTO board_entries (job_id, dataset_repo_id, dataset_commit, split, metric, value, higher_is_better, model_repo_id,
               model_commit, metrics, verification, agreed, workers, owners, credits, created_at)
             VALUES ($1, $2, 'c0ffee', 'test', 'accuracy', $3, TRUE, $4, $5, '{}', 'attested', '[]', 2, 2, 10, 1)",
        )
        .bind(job)
        .bind(dataset.id)
        .bind(rng.random_range(0.8..0.99))
        .bind(model)
        .bind(format!("{model:040x}"))
        .execute(pool)
        .await
        .unwrap();
    }
}

fn main() {
    let args: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let repos_wanted = args.first().copied().unwrap_or(100_000);
    let clients = args.get(1).copied().unwrap_or(100);
    let requests = args.get(2).copied().unwrap_or(9000);
    let base = if std::path::Path::new("/dev/shm").is_dir() { std::path::PathBuf::from("/dev/shm") } else { std::env::temp_dir() };
    let tmp = tempfile::tempdir_in(base).unwrap();
    let (data, reuse) = common::data_dir("PAGES_BENCH_DATA", tmp.path());
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(common::generate(&data, repos_wanted, reuse));
    runtime.block_on(ensure_board(&data));

    let (url, names) = runtime.block_on(async {
        let state = commons_hub::AppState::open(&data, None, None).await.expect("open the hub");
        let names: Vec<String> = commons_db::sql::query(
            "SELECT namespace || '/' || name FROM repos WHERE kind = 'model' AND private = FALSE ORDER BY random() LIMIT 1000",
        )
        .fetch_all(state.db.pool())
        .await
        .unwrap()
        .iter()
        .map(|r| r.try_get(0usize).unwrap())
        .collect();
        let app = commons_hub::router(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(commons_hub::serve(listener, app, std::future::pending()));
        (url, names)
    });
    let mut rng = rand::rngs::StdRng::seed_from_u64(10);
    let searches: Vec<String> = (0..200).map(|_| format!("/models?search={}", word(rng.random_range(0..WORDS)))).collect();
    let pages: Arc<[Vec<String>; 3]> = Arc::new([
        names.iter().map(|n| format!("/{n}")).collect(),
        searches,
        vec!["/leaderboards/alice/bench-digits?split=test&metric=accuracy".to_string()],
    ]);
    // Every page once, so the first requests do not measure cold caches of the process.
    let warm = reqwest::blocking::Client::new();
    for list in pages.iter() {
        for path in list.iter() {
            assert!(warm.get(format!("{url}{path}")).send().unwrap().status().is_success(), "{path}");
        }
    }
    let (timed, wall) = common::closed_loop(&url, None, "text/html", clients, requests, move |c, r| {
        let kind = (c + r) % 3;
        let list = &pages[kind];
        common::Request { kind, path: list[(c * 31 + r * 7) % list.len()].clone(), signed_in: false }
    });
    for (kind, what) in ["repository page", "search page", "leaderboard page"].iter().enumerate() {
        let mut of_kind: Vec<Duration> = timed.iter().filter(|(k, _)| *k == kind).map(|(_, d)| *d).collect();
        of_kind.sort();
        println!("  {what}: p50 {:.1} ms, p99 {:.1} ms", common::percentile(&of_kind, 0.5), common::percentile(&of_kind, 0.99));
    }
    let mut all: Vec<Duration> = timed.into_iter().map(|(_, d)| d).collect();
    all.sort();
    println!(
        "pages over {repos_wanted} repositories, {clients} clients, {} requests: {:.0} req/s, p50 {:.1} ms, p99 {:.1} ms; machine: {} cores",
        all.len(),
        all.len() as f64 / wall.as_secs_f64(),
        common::percentile(&all, 0.5),
        common::percentile(&all, 0.99),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
    );
}
