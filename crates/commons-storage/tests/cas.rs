//! The store driven as the hub drives it: ingest, read back, dedup, range reads, bad input.

use commons_db::Db;
use commons_storage::{Cas, StorageError};
use futures::TryStreamExt;
use rand::{Rng, SeedableRng};
use sha2::{Digest, Sha256};

async fn open() -> (tempfile::TempDir, Cas) {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(&dir.path().join("meta.db")).await.unwrap();
    let cas = Cas::local(db, &dir.path().join("objects")).unwrap();
    (dir, cas)
}

fn random_bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut v = vec![0u8; n];
    rng.fill(&mut v[..]);
    v
}

async fn ingest_in_pieces(cas: &Cas, data: &[u8], piece: usize) -> commons_storage::StoredFile {
    let mut w = cas.writer(data.len() as u64, Some(hex::encode(Sha256::digest(data))));
    for part in data.chunks(piece) {
        w.write(part).await.unwrap();
    }
    w.finish().await.unwrap()
}

async fn read_all(cas: &Cas, f: &commons_storage::StoredFile, start: u64, end: u64) -> Vec<u8> {
    let stream = cas.read_range(&f.file_hash, f.size, start, end).await.unwrap();
    let parts: Vec<bytes::Bytes> = stream.try_collect().await.unwrap();
    parts.concat()
}

fn dir_bytes(path: &std::path::Path) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir(path).unwrap() {
        let entry = entry.unwrap();
        let meta = entry.metadata().unwrap();
        total += if meta.is_dir() { dir_bytes(&entry.path()) } else { meta.len() };
    }
    total
}

#[tokio::test]
async fn round_trip_identities_and_ranges() {
    let (_dir, cas) = open().await;
    let data = random_bytes(3 * 1024 * 1024 + 17, 1);
    let f = ingest_in_pieces(&cas, &data, 100_003).await;
    assert_eq!(f.size, data.len() as u64);
    assert_eq!(f.sha256, hex::encode(Sha256::digest(&data)));
    assert_eq!(f.git_sha1, commons_db::git_blob_sha1(&data));
    assert_eq!(read_all(&cas, &f, 0, f.size).await, data);
    for (s, e) in [(0u64, 1u64), (65_535, 200_000), (1_000_000, 1_000_001), (f.size - 10, f.size), (5, 5)] {
        assert_eq!(read_all(&cas, &f, s, e).await, &data[s as usize..e as usize], "range {s}-{e}");
    }
    assert!(matches!(cas.read_range(&f.file_hash, f.size, 10, f.size + 1).await, Err(StorageError::InvalidRange { .. })));

    let empty = cas.put_bytes(b"").await.unwrap();
    assert_eq!(empty.git_sha1, "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391");
    assert!(read_all(&cas, &empty, 0, 0).await.is_empty());
}

#[tokio::test]
async fn second_revision_with_one_mib_changed_adds_little() {
    let (dir, cas) = open().await;
    let objects = dir.path().join("objects");
    let mut data = random_bytes(64 * 1024 * 1024, 2);
    let first = ingest_in_pieces(&cas, &data, 1 << 20).await;
    let after_first = dir_bytes(&objects);
    assert!(after_first >= 64 * 1024 * 1024, "random data does not compress: {after_first}");

    let middle = data.len() / 2;
    data[middle..middle + (1 << 20)].copy_from_slice(&random_bytes(1 << 20, 3));
    let second = ingest_in_pieces(&cas, &data, 1 << 20).await;
    let added = dir_bytes(&objects) - after_first;
    assert!(added < 3 * 1024 * 1024, "second revision added {added} bytes");
    assert_ne!(first.file_hash, second.file_hash);
    assert_eq!(read_all(&cas, &second, 0, second.size).await, data);

    // The same bytes again, under any name, add nothing.
    let before = dir_bytes(&objects);
    let again = ingest_in_pieces(&cas, &data, 777_777).await;
    assert_eq!(again, second);
    assert_eq!(dir_bytes(&objects), before);
}

#[tokio::test]
async fn declared_size_and_hash_are_enforced() {
    let (_dir, cas) = open().await;
    let mut w = cas.writer(10, None);
    w.write(b"0123456789").await.unwrap();
    assert!(matches!(w.write(b"x").await, Err(StorageError::SizeMismatch { expected: 10, actual: 11 })));

    let mut w = cas.writer(10, None);
    w.write(b"01234").await.unwrap();
    assert!(matches!(w.finish().await, Err(StorageError::SizeMismatch { expected: 10, actual: 5 })));

    let mut w = cas.writer(3, Some("00".repeat(32)));
    w.write(b"abc").await.unwrap();
    let err = w.finish().await.unwrap_err();
    assert!(matches!(err, StorageError::Sha256Mismatch { .. }), "{err}");
    assert!(cas.db().blob(&hex::encode(Sha256::digest(b"abc"))).await.unwrap().is_none());
}

#[tokio::test]
async fn an_ingest_indexes_each_xorb_it_seals_and_an_abandoned_one_is_collected() {
    let (dir, cas) = open().await;
    // 40 MiB of new bytes: two xorbs are sealed before the writer is done.
    let data = random_bytes(40 << 20, 7);
    let mut w = cas.writer(data.len() as u64, None);
    for part in data.chunks(1 << 20) {
        w.write(part).await.unwrap();
    }
    let indexed = cas.stored_bytes().await.unwrap();
    assert!(indexed >= 2 * commons_storage::XORB_TARGET_BYTES as u64, "sealed xorbs are indexed as they are written: {indexed}");
    // Another file with the same first 12 MiB (in the first xorb) dedups against them before the first one finishes.
    let half = ingest_in_pieces(&cas, &data[..12 << 20], 1 << 20).await;
    assert!(cas.stored_bytes().await.unwrap() < indexed + (5 << 20), "the second file reused the first one's xorbs");
    // The first upload is abandoned; what only it used is collected, what the second uses stays.
    drop(w);
    let (removed, _) = cas.sweep_orphan_xorbs(std::time::Duration::ZERO).await.unwrap();
    assert!(removed >= 1, "the abandoned upload's own xorbs went");
    assert_eq!(read_all(&cas, &half, 0, half.size).await, &data[..12 << 20]);
    assert!(cas.stored_bytes().await.unwrap() <= dir_bytes(&dir.path().join("objects")), "no index row names a removed xorb");
    // Its chunks can no longer be found: storing the rest again writes it again, and reads back.
    let whole = ingest_in_pieces(&cas, &data, 1 << 20).await;
    assert_eq!(read_all(&cas, &whole, 0, whole.size).await, data);
}
