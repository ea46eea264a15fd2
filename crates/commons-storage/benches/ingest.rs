//! Chunk + hash + pack throughput of the content store, single-threaded, on random data (no
//! dedup, no compression gains: the worst case) and on a second revision with 1% changed.
//!
//! `cargo bench -p commons-storage --bench ingest [-- SIZE_MIB]`

use std::time::Instant;

use commons_db::Db;
use commons_storage::Cas;
use rand::{Rng, SeedableRng};

/// Stores `data` in 1 MiB writes, as an upload arrives; returns the seconds taken.
async fn timed_ingest(cas: &Cas, data: &[u8]) -> f64 {
    let t = Instant::now();
    let mut w = cas.writer(data.len() as u64, None);
    for part in data.chunks(1 << 20) {
        w.write(part).await.unwrap();
    }
    w.finish().await.unwrap();
    t.elapsed().as_secs_f64()
}

fn main() {
    let mib: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(256);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("meta.db")).await.unwrap();
        let cas = Cas::local(db, &dir.path().join("objects")).unwrap();
        let mut data = vec![0u8; mib << 20];
        rand::rngs::StdRng::seed_from_u64(1).fill(&mut data[..]);

        let secs = timed_ingest(&cas, &data).await;
        let stored1 = cas.stored_bytes().await.unwrap();
        println!(
            "ingest new data:      {mib} MiB in {secs:.2} s = {:.0} MB/s (1 core); stored {:.1} MiB",
            (mib << 20) as f64 / secs / 1e6,
            stored1 as f64 / 1048576.0
        );

        let n = data.len() / 100;
        let mid = data.len() / 2;
        rand::rngs::StdRng::seed_from_u64(2).fill(&mut data[mid..mid + n]);
        let secs = timed_ingest(&cas, &data).await;
        let added = cas.stored_bytes().await.unwrap() - stored1;
        println!(
            "ingest 1% changed:    {mib} MiB in {secs:.2} s = {:.0} MB/s (1 core); added {:.2} MiB for {:.2} MiB changed",
            (mib << 20) as f64 / secs / 1e6,
            added as f64 / 1048576.0,
            n as f64 / 1048576.0
        );
    });
}
