//! Garbage collection at scale: its time and the memory it takes for a store of CHUNKS chunks.
//!
//! `cargo bench -p commons-hub --bench gc -- CHUNKS [FILE_MIB [small]]` (the store in a temporary
//! folder under `target/`, or under `COMMONS_BENCH_DIR`)
//!
//! With `small`, every chunk is of the chunker's smallest size (8 KiB, an eighth of the average):
//! each 8 KiB of random data ends with a 64-byte window that the chunker cuts after (found by
//! chunking random data once: the gear hash at a cut depends only on its last 64 bytes), so a
//! store of 10^6 chunks takes 8 GiB of disk instead of 64.
//!
//! Two repositories receive files of FILE_MIB (default 256) random MiB in turns, through the
//! repository service (chunked, hashed and packed into xorbs as any upload is), until the store
//! indexes about CHUNKS chunks (64 KiB on average); one repository is deleted, and the hub's
//! collector (`AppState::collect_garbage`, what `commons gc` and the background pass run) is
//! timed, with the process's peak resident memory during it (`VmHWM`, reset just before). The
//! store must then hold what the kept repository reaches, within 1%. Random data: no chunk is
//! shared, nothing compresses, so every chunk of the deleted repository is collected.

use std::time::{Duration, Instant};

use commons_db::{CommitInfo, RepoKind};
use commons_repo::Change;
use rand::{Rng, SeedableRng};

/// A field of /proc/self/status, in KiB.
fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field).and_then(|rest| rest.trim().trim_end_matches(" kB").trim().parse().ok()))
        .unwrap_or(0)
}

fn bytes_under(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| {
            let path = entry.path();
            if path.is_dir() { bytes_under(&path) } else { entry.metadata().map(|m| m.len()).unwrap_or(0) }
        })
        .sum()
}

/// The chunker's smallest chunk (xet: an eighth of the 64 KiB target).
const SMALL_CHUNK: usize = 8192;

/// 64 bytes after which the chunker cuts, wherever the chunk is past its smallest size: the last
/// 64 bytes of a chunk of random data that the hash ended (not the largest size).
fn cutting_window() -> Vec<u8> {
    let mut data = vec![0u8; 1 << 20];
    rand::rngs::StdRng::seed_from_u64(u64::MAX).fill(&mut data[..]);
    let mut chunker = xet_data::deduplication::Chunker::default();
    let mut start = 0;
    for chunk in chunker.next_block(&data, false) {
        let len = chunk.data.len();
        if len < 128 * 1024 {
            let window = data[start + len - 64..start + len].to_vec();
            // It must cut the chunks made with it: check on two.
            let mut test = vec![0u8; 2 * SMALL_CHUNK + 100];
            rand::rngs::StdRng::seed_from_u64(1).fill(&mut test[..]);
            for c in test[..2 * SMALL_CHUNK].chunks_exact_mut(SMALL_CHUNK) {
                c[SMALL_CHUNK - 64..].copy_from_slice(&window);
            }
            let sizes: Vec<usize> =
                xet_data::deduplication::Chunker::default().next_block(&test, true).iter().map(|c| c.data.len()).collect();
            assert_eq!(&sizes[..2], [SMALL_CHUNK, SMALL_CHUNK], "the window cuts chunks at the smallest size");
            return window;
        }
        start += len;
    }
    panic!("no chunk of a MiB of random data was cut by the hash")
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let wanted: u64 = args.first().and_then(|s| s.parse().ok()).unwrap_or(100_000);
    let file_mib: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(256);
    let small = args.get(2).is_some_and(|a| a == "small");
    let chunk_bytes: u64 = if small { SMALL_CHUNK as u64 } else { 65_536 };
    let files = ((wanted * chunk_bytes).div_ceil((file_mib as u64) << 20)).max(2);
    let cut = small.then(cutting_window);
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        let tmp = tempfile::tempdir_in(std::env::var_os("COMMONS_BENCH_DIR").unwrap_or_else(|| concat!(env!("CARGO_MANIFEST_DIR"), "/../../target").into())).unwrap();
        let state = commons_hub::AppState::open(tmp.path(), None, None).await.unwrap();
        state.db.create_user("alice", "Alice").await.unwrap();
        let keep = state.repos.create(RepoKind::Model, "alice", "keep", false, "alice").await.unwrap();
        let deleted = state.repos.create(RepoKind::Model, "alice", "deleted", false, "alice").await.unwrap();
        let info = CommitInfo { author: "alice", title: "weights", message: "" };

        let started = Instant::now();
        let mut data = vec![0u8; file_mib << 20];
        for i in 0..files {
            rand::rngs::StdRng::seed_from_u64(i).fill(&mut data[..]);
            if let Some(cut) = &cut {
                for chunk in data.chunks_exact_mut(SMALL_CHUNK) {
                    chunk[SMALL_CHUNK - cut.len()..].copy_from_slice(cut);
                }
            }
            let repo = if i % 2 == 0 { &keep } else { &deleted };
            let head = state.repos.pin(repo, "main").await.unwrap();
            let change = Change::Put { path: format!("weights-{i}.bin"), bytes: data.clone() };
            state.repos.commit_onto(repo, "main", &head, vec![change], &info, 1).await.unwrap();
        }
        // Freed before the collector runs, so the peak it reports is its own.
        drop(data);
        let chunks: i64 = commons_db::sql::query_scalar("SELECT COUNT(*) FROM cas_chunks").fetch_one(state.db.pool()).await.unwrap();
        let xorbs: i64 = commons_db::sql::query_scalar("SELECT COUNT(*) FROM cas_xorbs").fetch_one(state.db.pool()).await.unwrap();
        let objects = tmp.path().join("objects").join("xorbs");
        let before = bytes_under(&objects);
        println!(
            "machine: {} cores, {} (UTC); {files} files of {file_mib} MiB in two repositories: {chunks} chunks in {xorbs} xorbs, {:.2} GiB stored, made in {:.0} s",
            std::thread::available_parallelism().map_or(0, |n| n.get()),
            time::OffsetDateTime::now_utc().date(),
            before as f64 / f64::from(1 << 30),
            started.elapsed().as_secs_f64()
        );

        state.db.delete_repo(&deleted).await.unwrap();
        // The collector's cutoff is in whole seconds: let the last objects age past it.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let rss_before = status_kib("VmRSS:");
        // Resets VmHWM to the current RSS: the peak read after is the collector's.
        std::fs::write("/proc/self/clear_refs", "5").expect("reset the peak resident memory");
        let t = Instant::now();
        let report = state.collect_garbage(Duration::ZERO).await.unwrap();
        let secs = t.elapsed().as_secs_f64();
        let peak = status_kib("VmHWM:");
        let after = bytes_under(&objects);
        let kept_files = files.div_ceil(2);
        let expected = kept_files as f64 * f64::from(file_mib as u32) * 1_048_576.0;
        println!(
            "gc: {secs:.2} s = {:.0} chunks/s; removed {} xorbs, {:.2} GiB ({} commits, {} files forgotten); peak RSS {} MiB (from {} MiB before: +{} MiB)",
            chunks as f64 / secs,
            report.xorbs,
            report.xorb_bytes as f64 / f64::from(1 << 30),
            report.forgotten.commits,
            report.forgotten.files,
            peak / 1024,
            rss_before / 1024,
            peak.saturating_sub(rss_before) / 1024
        );
        let off = (after as f64 - expected) / expected * 100.0;
        println!("store after: {:.3} GiB for {kept_files} kept files of {:.3} GiB ({off:+.2}%)", after as f64 / f64::from(1 << 30), expected / f64::from(1 << 30));
        assert!(off.abs() <= 1.0, "the store holds what the kept repository reaches, within 1%");
    });
}
