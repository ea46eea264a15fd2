//! The dataset viewer on a 520 MB Parquet file: `/rows` of 100 rows at random deep offsets over
//! real HTTP, its latency and the bytes it reads from the store, side by side with pyarrow
//! reading the same rows from the same file on local disk (`ParquetFile.read_row_group` and a
//! slice: pyarrow reads a row group's whole column chunks).
//!
//! `cargo bench --profile dev -p commons-hub --bench viewer [-- REQUESTS]` (default 50). The
//! reference runs with the `datasets` virtual environment the tests build (`target/py`).

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::Instant;

use rand::{Rng, SeedableRng};
use support::Hub;
use support::big_parquet::{BIG_ROWS, publish_big_parquet, write_big_parquet};

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn main() {
    let requests: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(50);
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("train.parquet");
    write_big_parquet(&path);
    let hub = Hub::start();
    let size = publish_big_parquet(&hub, &path);
    let http = reqwest::blocking::Client::new();

    let mut rng = rand::rngs::StdRng::seed_from_u64(12);
    let offsets: Vec<u64> = std::iter::once(1_000_000).chain((1..requests).map(|_| rng.random_range(0..BIG_ROWS - 100))).collect();
    let (mut times, mut bytes) = (Vec::new(), Vec::new());
    for &offset in &offsets {
        let before = hub.state.cas.bytes_fetched();
        let started = Instant::now();
        let url = format!("{}/api/datasets-server/rows?dataset=alice/big&config=default&split=train&offset={offset}&length=100", hub.url());
        let page: serde_json::Value = http.get(url).send().unwrap().json().unwrap();
        times.push(started.elapsed().as_secs_f64() * 1000.0);
        bytes.push((hub.state.cas.bytes_fetched() - before) as f64);
        assert_eq!(page["rows"][0]["row"]["id"], offset);
    }
    let (cold_ms, cold_bytes) = (times[0], bytes[0]);
    let mut warm: Vec<f64> = times[1..].to_vec();
    warm.sort_by(f64::total_cmp);
    let mean_bytes = bytes[1..].iter().sum::<f64>() / (bytes.len() - 1).max(1) as f64;
    println!("file: {size} bytes, {BIG_ROWS} rows; {requests} requests of 100 rows");
    println!(
        "commons /rows: first (footer + pages) {cold_ms:.1} ms, {:.1} MiB read; then p50 {:.1} ms, p99 {:.1} ms, {:.1} MiB read per request",
        cold_bytes / 1048576.0,
        percentile(&warm, 0.5),
        percentile(&warm, 0.99),
        mean_bytes / 1048576.0
    );

    let python = support::workspace_root().join("target/py/datasets-5.2.0/bin/python");
    if !python.exists() {
        println!("pyarrow reference skipped: {} is missing (run the tests once)", python.display());
        return;
    }
    let script = r#"
import sys, time
import pyarrow.parquet as pq
path, offsets = sys.argv[1], [int(o) for o in sys.argv[2:]]
times, sizes = [], []
started = time.perf_counter()
pf = pq.ParquetFile(path)
opened = time.perf_counter() - started
starts, at = [], 0
for g in range(pf.num_row_groups):
    starts.append(at)
    at += pf.metadata.row_group(g).num_rows
for offset in offsets:
    started = time.perf_counter()
    g = max(i for i, s in enumerate(starts) if s <= offset)
    rows = pf.read_row_group(g).slice(offset - starts[g], 100).to_pylist()
    assert rows[0]["id"] == offset
    times.append((time.perf_counter() - started) * 1000)
    rg = pf.metadata.row_group(g)
    sizes.append(sum(rg.column(c).total_compressed_size for c in range(rg.num_columns)))
warm = sorted(times[1:])
pick = lambda p: warm[round((len(warm) - 1) * p)]
print(f"pyarrow local: open {opened * 1000:.1f} ms, first {times[0]:.1f} ms; then p50 {pick(0.5):.1f} ms, p99 {pick(0.99):.1f} ms, {sum(sizes) / len(sizes) / 1048576:.1f} MiB read per request")
"#;
    let out = std::process::Command::new(python)
        .arg("-c")
        .arg(script)
        .arg(&path)
        .args(offsets.iter().map(u64::to_string))
        .output()
        .expect("run python");
    print!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
}
