//! Storage is given back: what no branch, tag, pull request or verified result reaches any more
//! (deleted repositories, squashed history) leaves the store when the collector runs, what is
//! still reachable stays byte for byte, and a collection running beside uploads loses none of
//! them.

mod support;

use std::time::{Duration, Instant};

use rand::RngCore;
use serde_json::{Value, json};
use support::{Hub, RawClient, files_under, sha256_hex};

const MIB: usize = 1 << 20;

fn random_bytes(len: usize) -> Vec<u8> {
    let mut data = vec![0u8; len];
    rand::rng().fill_bytes(&mut data);
    data
}

/// Bytes of xorbs in the hub's local object store.
fn store_bytes(hub: &Hub) -> u64 {
    files_under(&hub.store_dir.join("xorbs")).iter().map(|(_, size)| size).sum()
}

fn lfs_line(path: &str, oid: &str, size: usize) -> Value {
    json!({"key": "lfsFile", "value": {"path": path, "algo": "sha256", "oid": oid, "size": size}})
}

fn header(summary: &str) -> Value {
    json!({"key": "header", "value": {"summary": summary}})
}

/// Uploads `data` to alice's model `repo` as `path` through LFS and commits it to main.
fn put_file(client: &RawClient, repo: &str, path: &str, data: &[u8]) -> Result<String, String> {
    let oid = client.upload_lfs(&format!("alice/{repo}"), data)?;
    client.commit(&format!("alice/{repo}"), &[header(&format!("add {path}")), lfs_line(path, &oid, data.len())])
}

fn download_sha256(client: &RawClient, repo: &str, rev: &str, path: &str) -> Result<String, u16> {
    let resp = client.get(&format!("/alice/{repo}/resolve/{rev}/{path}"));
    let status = resp.status().as_u16();
    if status != 200 {
        return Err(status);
    }
    Ok(sha256_hex(&resp.bytes().unwrap()))
}

fn delete_repo(client: &RawClient, hub: &Hub, name: &str) {
    let resp = reqwest::blocking::Client::new()
        .delete(format!("{}/api/repos/delete", hub.url()))
        .bearer_auth(&hub.token)
        .json(&json!({"name": name, "type": "model"}))
        .send()
        .unwrap();
    assert!(resp.status().is_success(), "delete {name}: {}", resp.status());
    assert_eq!(client.get(&format!("/api/models/alice/{name}")).status(), 404);
}

#[test]
fn deleting_half_of_a_gibibyte_gives_its_bytes_back_and_keeps_every_reachable_byte() {
    let hub = Hub::start();
    let client = RawClient::new(&hub);
    // Four repositories, two revisions each of one 128 MiB file: 1 GiB of distinct bytes.
    let size = 128 * MIB;
    let mut sums: Vec<[(String, String); 2]> = Vec::new();
    for r in 0..4 {
        let name = format!("weights-{r}");
        assert!(client.create_model(&name).unwrap().status().is_success());
        let mut revs = Vec::new();
        for _ in 0..2 {
            let data = random_bytes(size);
            let commit = put_file(&client, &name, "model.safetensors", &data).expect("upload");
            revs.push((commit, sha256_hex(&data)));
        }
        sums.push([revs[0].clone(), revs[1].clone()]);
    }
    let before = store_bytes(&hub);
    assert!(before >= 1024 * MIB as u64, "the store holds the gibibyte: {before}");

    // Half goes: two repositories deleted, and the first revision of a third squashed away.
    delete_repo(&client, &hub, "weights-2");
    delete_repo(&client, &hub, "weights-3");
    let squash = reqwest::blocking::Client::new()
        .post(format!("{}/api/models/alice/weights-1/super-squash/main", hub.url()))
        .bearer_auth(&hub.token)
        .json(&json!({}))
        .send()
        .unwrap();
    assert!(squash.status().is_success(), "squash: {}", squash.status());
    // Within the grace period no bytes go; the history no ref reaches goes at once, as on the
    // Hub after a squash.
    let young = hub.block_on(hub.state.collect_garbage(Duration::from_secs(3600))).expect("collect");
    assert_eq!((young.forgotten.blobs, young.xorbs), (0, 0), "{young:?}");
    assert!(young.forgotten.commits >= 1, "the squashed history: {young:?}");
    assert_eq!(store_bytes(&hub), before);

    let report = hub.block_on(hub.state.collect_garbage(Duration::ZERO)).expect("collect");
    assert_eq!(report.forgotten.blobs, 5, "four files of deleted repositories and one squashed away: {report:?}");
    let reachable = 3 * size as u64;
    let after = store_bytes(&hub);
    let off = (after as f64 - reachable as f64).abs() / reachable as f64;
    assert!(off < 0.01, "the store holds {after} bytes for {reachable} reachable ({:.2}% off); report {report:?}", off * 100.0);
    assert_eq!(report.xorb_bytes, before - after, "the report counts what left the store");

    // What is reachable downloads byte for byte, at every revision that reaches it.
    assert_eq!(download_sha256(&client, "weights-0", &sums[0][0].0, "model.safetensors"), Ok(sums[0][0].1.clone()));
    assert_eq!(download_sha256(&client, "weights-0", "main", "model.safetensors"), Ok(sums[0][1].1.clone()));
    assert_eq!(download_sha256(&client, "weights-1", "main", "model.safetensors"), Ok(sums[1][1].1.clone()));
    // The squashed revision is gone, as on the Hub.
    assert_eq!(download_sha256(&client, "weights-1", &sums[1][0].0, "model.safetensors"), Err(404));

    // A second run finds nothing more.
    let again = hub.block_on(hub.state.collect_garbage(Duration::ZERO)).expect("collect");
    assert_eq!((again.forgotten.blobs, again.forgotten.files, again.xorbs), (0, 0, 0), "{again:?}");
}

#[test]
fn a_collection_beside_a_hundred_uploads_loses_none_of_them_even_those_reusing_collected_bytes() {
    let hub = Hub::start();
    let client = RawClient::new(&hub);
    let grace = Duration::from_secs(8);
    // Garbage: a repository of eight files, deleted.
    assert!(client.create_model("gone").unwrap().status().is_success());
    let gone: Vec<Vec<u8>> = (0..8).map(|_| random_bytes(2 * MIB)).collect();
    for (i, data) in gone.iter().enumerate() {
        put_file(&client, "gone", &format!("part-{i}.bin"), data).expect("upload");
    }
    delete_repo(&client, &hub, "gone");
    std::thread::sleep(grace + Duration::from_secs(1));
    // The first run forgets the files; their xorbs become candidates, unused from now on.
    let first = hub.block_on(hub.state.collect_garbage(grace)).expect("collect");
    assert_eq!(first.forgotten.blobs, 9, "eight files and the repository's .gitattributes: {first:?}");
    let marked = Instant::now();

    // A hundred uploads from four clients, one in ten the bytes of one of four of the collected
    // files, while the
    // collector runs again and again, its grace passing halfway through.
    assert!(client.create_model("kept").unwrap().status().is_success());
    let uploads: Vec<(String, Vec<u8>)> = (0..100)
        .map(|i| {
            let data = if i % 10 == 0 { gone[(i / 10) % 4].clone() } else { random_bytes(256 * 1024 + i * 997) };
            (format!("file-{i:03}.bin"), data)
        })
        .collect();
    let uploads = std::sync::Arc::new(uploads);
    std::thread::sleep(grace.saturating_sub(Duration::from_secs(3)).saturating_sub(marked.elapsed()));
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let workers: Vec<_> = (0..4)
        .map(|w| {
            let uploads = uploads.clone();
            let client = RawClient::new(&hub);
            std::thread::spawn(move || {
                let mut failures = Vec::new();
                for (path, data) in uploads.iter().skip(w).step_by(4) {
                    // 25 uploads a client, over about 6 s around the end of the grace period:
                    // reuses happen before and after it, beside runs that delete xorbs.
                    std::thread::sleep(Duration::from_millis(250));
                    if let Err(e) = put_file(&client, "kept", path, data) {
                        failures.push(format!("{path}: {e}"));
                    }
                }
                failures
            })
        })
        .collect();
    let collector = {
        let state = hub.state.clone();
        let done = done.clone();
        let handle = hub.block_on(async { tokio::runtime::Handle::current() });
        std::thread::spawn(move || {
            let mut runs = Vec::new();
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                runs.push(handle.block_on(state.collect_garbage(grace)).expect("collect"));
                std::thread::sleep(Duration::from_millis(50));
            }
            runs
        })
    };
    let failures: Vec<String> = workers.into_iter().flat_map(|w| w.join().unwrap()).collect();
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let runs = collector.join().unwrap();
    assert!(failures.is_empty(), "uploads failed beside the collector: {failures:?}");
    assert!(runs.len() >= 3, "the collector ran beside the uploads: {} runs", runs.len());
    assert!(runs.iter().any(|r| r.xorbs > 0), "xorbs of collected files went while uploads ran: {runs:?}");

    // Every upload is there, byte for byte.
    for (path, data) in uploads.iter() {
        assert_eq!(download_sha256(&client, "kept", "main", path), Ok(sha256_hex(data)), "{path}");
    }
    // Once the grace has passed, the collected files not uploaded again leave the store: the
    // store holds what "kept" reaches (±1%).
    let wait = (grace + Duration::from_secs(1)).saturating_sub(marked.elapsed());
    std::thread::sleep(wait);
    hub.block_on(hub.state.collect_garbage(grace)).expect("collect");
    let reachable: u64 = {
        let mut distinct: Vec<&Vec<u8>> = uploads.iter().map(|(_, d)| d).collect();
        distinct.sort();
        distinct.dedup();
        distinct.iter().map(|d| d.len() as u64).sum()
    };
    let stored = store_bytes(&hub);
    let off = (stored as f64 - reachable as f64).abs() / reachable as f64;
    assert!(off < 0.01, "the store holds {stored} bytes for {reachable} reachable ({:.2}% off)", off * 100.0);
    for (path, data) in uploads.iter() {
        assert_eq!(download_sha256(&client, "kept", "main", path), Ok(sha256_hex(data)), "{path} after the last run");
    }
}
