//! Search over many repositories with cards: how long the index takes to build from the
//! database, its size, and the latency of `/api/models?search=…` over real HTTP with 50
//! concurrent clients (half anonymous, half an owner of private repositories).
//!
//! `cargo bench -p commons-hub --bench search [-- REPOS [CLIENTS [REQUESTS]]]` (defaults 100000,
//! 50, 10000). The repositories are generated through the repository service (each a create and
//! a commit of a README card of random words, one in ten private) on /dev/shm when it exists,
//! since generating is not what is measured. With `SEARCH_BENCH_DATA=DIR`, the repositories are
//! generated into DIR once and reused by later runs, with the index built then (delete
//! DIR/search to measure its build again).

#[path = "common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{WORDS, word};
use commons_db::Scope;
use rand::{Rng, SeedableRng};

fn main() {
    let args: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let repos_wanted = args.first().copied().unwrap_or(100_000);
    let clients = args.get(1).copied().unwrap_or(50);
    let requests = args.get(2).copied().unwrap_or(10_000);
    let base = if std::path::Path::new("/dev/shm").is_dir() { std::path::PathBuf::from("/dev/shm") } else { std::env::temp_dir() };
    let tmp = tempfile::tempdir_in(base).unwrap();
    let (data, reuse) = common::data_dir("SEARCH_BENCH_DATA", tmp.path());
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let generated = runtime.block_on(common::generate(&data, repos_wanted, reuse));

    let (url, token) = runtime.block_on(async {
        let state = commons_hub::AppState::open(&data, None, None).await.expect("open the hub");
        let token = state.db.create_token("alice", "bench", Scope::Read).await.unwrap();
        let app = commons_hub::router(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(commons_hub::serve(listener, app, std::future::pending()));
        (url, token)
    });
    // Queries: one word of the cards, two words, a part of a name, a tag with a filter (their own
    // random stream, so that a reused data directory gets the same queries).
    let mut rng = rand::rngs::StdRng::seed_from_u64(8);
    let queries: Vec<String> = (0..200)
        .map(|i| match i % 4 {
            0 => format!("search={}", word(rng.random_range(0..WORDS))),
            1 => format!("search={}+{}", word(rng.random_range(0..WORDS)), word(rng.random_range(0..WORDS))),
            2 => format!("search={}", &word(rng.random_range(0..WORDS))[..4]),
            _ => format!("search={}&filter=license:mit", word(rng.random_range(0..200))),
        })
        .collect();
    let queries = Arc::new(queries);
    // Every query once, anonymous and signed in, before timing: the steady state of a hub whose
    // popular searches have been asked before. (The first answer of each reads its rows from
    // the database; inside the timed window those 2% of requests set the p99.)
    let warm = reqwest::blocking::Client::new();
    for q in queries.iter() {
        for signed_in in [false, true] {
            let mut request = warm.get(format!("{url}/api/models?{q}&limit=20"));
            if signed_in {
                request = request.bearer_auth(&token);
            }
            assert!(request.send().unwrap().status().is_success(), "{q}");
        }
    }
    let (timed, wall) = common::closed_loop(&url, Some(&token), "application/json", clients, requests, move |c, r| {
        let which = (c * 31 + r) % queries.len();
        common::Request { kind: which % 4, path: format!("/api/models?{}&limit=20", queries[which]), signed_in: c % 2 == 0 }
    });
    for (kind, what) in ["one word", "two words", "part of a name", "a tag word and a filter"].iter().enumerate() {
        let mut of_kind: Vec<Duration> = timed.iter().filter(|(k, _)| *k == kind).map(|(_, d)| *d).collect();
        of_kind.sort();
        if !of_kind.is_empty() {
            let p = |q: f64| of_kind[((of_kind.len() as f64 * q) as usize).min(of_kind.len() - 1)].as_secs_f64() * 1000.0;
            println!("  {what}: p50 {:.1} ms, p99 {:.1} ms", p(0.5), p(0.99));
        }
    }
    let mut latencies: Vec<Duration> = timed.into_iter().map(|(_, d)| d).collect();
    latencies.sort();
    let at = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    println!(
        "search over {repos_wanted} repositories, {clients} clients, {} requests: {:.0} req/s, p50 {:.1} ms, p99 {:.1} ms",
        latencies.len(),
        latencies.len() as f64 / wall.as_secs_f64(),
        at(0.50).as_secs_f64() * 1000.0,
        at(0.99).as_secs_f64() * 1000.0
    );
    println!(
        "machine: {} cores; generated in {:.0} s",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        generated.as_secs_f64()
    );
}
