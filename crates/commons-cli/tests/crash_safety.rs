//! Acceptance: SIGKILL the server during a stream of uploads and commits, restart it, and find
//! every acknowledged commit intact byte-for-byte and no partial commit visible.

mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use rand::{Rng, RngCore, SeedableRng};
use support::{Hub, RawClient, sha256_hex};

/// What the client believes is in the repo after each acknowledged commit.
type Acked = Vec<(String, BTreeMap<String, Vec<u8>>)>;

fn writer_loop(client: RawClient, seed: u64, acked: Arc<Mutex<Acked>>, mut files: BTreeMap<String, Vec<u8>>) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    for i in 0.. {
        let mut lines = vec![serde_json::json!({"key": "header", "value": {"summary": format!("commit {i}")}})];
        let mut next = files.clone();
        // A small inline file, an LFS object, and sometimes a deletion, in each commit.
        let mut small = vec![0u8; rng.random_range(0..4096)];
        rng.fill_bytes(&mut small);
        let small_path = format!("small/{}.txt", i % 7);
        lines.push(serde_json::json!({"key": "file", "value": {"path": small_path, "content": base64::engine::general_purpose::STANDARD.encode(&small), "encoding": "base64"}}));
        next.insert(small_path, small);
        let mut big = vec![0u8; rng.random_range(256 * 1024..3 * 1024 * 1024)];
        rng.fill_bytes(&mut big);
        let big_path = format!("weights/{}.bin", i % 5);
        let oid = match client.upload_lfs("alice/crashy", &big) {
            Ok(oid) => oid,
            Err(_) => return, // server gone
        };
        lines.push(serde_json::json!({"key": "lfsFile", "value": {"path": big_path, "algo": "sha256", "oid": oid, "size": big.len()}}));
        next.insert(big_path, big);
        if i % 4 == 3
            && let Some(victim) = next.keys().find(|k| k.starts_with("small/")).cloned()
        {
            lines.push(serde_json::json!({"key": "deletedFile", "value": {"path": victim}}));
            next.remove(&victim);
        }
        match client.commit("alice/crashy", &lines) {
            Ok(id) => {
                acked.lock().unwrap().push((id, next.clone()));
                files = next;
            }
            Err(_) => return,
        }
    }
}

fn verify_commit(client: &RawClient, commit: &str, expected: &BTreeMap<String, Vec<u8>>) {
    let tree: serde_json::Value = client.get(&format!("/api/models/alice/crashy/tree/{commit}?recursive=true")).json().unwrap();
    let listed: Vec<String> = tree
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "file" && e["path"] != ".gitattributes")
        .map(|e| e["path"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(listed, expected.keys().cloned().collect::<Vec<_>>(), "tree of acknowledged commit {commit}");
    for (path, data) in expected {
        let resp = client.get(&format!("/alice/crashy/resolve/{commit}/{path}"));
        assert!(resp.status().is_success(), "{path} at {commit}: {}", resp.status());
        let body = resp.bytes().unwrap();
        assert_eq!(sha256_hex(&body), sha256_hex(data), "{path} at {commit} is byte-exact");
    }
}

#[test]
fn sigkill_during_uploads_and_commits_loses_no_acknowledged_commit() {
    let mut hub = Hub::start();
    assert!(RawClient::new(&hub).create_model("crashy").unwrap().status().is_success());
    let acked: Arc<Mutex<Acked>> = Arc::new(Mutex::new(Vec::new()));
    let mut files = BTreeMap::new();
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    for round in 0..3u64 {
        let client = RawClient::new(&hub);
        let acked2 = acked.clone();
        let start_files = files.clone();
        let writer = std::thread::spawn(move || writer_loop(client, round, acked2, start_files));
        std::thread::sleep(Duration::from_millis(rng.random_range(1500..3500)));
        hub.kill();
        writer.join().unwrap();
        hub.restart();

        let client = RawClient::new(&hub);
        let acked_now = acked.lock().unwrap().clone();
        assert!(!acked_now.is_empty(), "round {round}: some commits were acknowledged before the kill");
        // The branch head is the last acknowledged commit, or one more whose reply was lost.
        let history: serde_json::Value = client.get("/api/models/alice/crashy/commits/main").json().unwrap();
        let ids: Vec<&str> = history.as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap()).collect();
        for (id, _) in &acked_now {
            assert!(ids.contains(&id.as_str()), "acknowledged commit {id} is in the history after restart");
        }
        let last = &acked_now.last().unwrap().0;
        let head_pos = ids.iter().position(|i| i == last).unwrap();
        assert!(head_pos <= 1, "at most one unacknowledged commit landed after the last acknowledged one");
        for (id, expected) in &acked_now {
            verify_commit(&client, id, expected);
        }
        // Every file of every visible commit, acknowledged or not, is complete.
        for c in &ids[..head_pos] {
            let tree: serde_json::Value = client.get(&format!("/api/models/alice/crashy/tree/{c}?recursive=true")).json().unwrap();
            for e in tree.as_array().unwrap().iter().filter(|e| e["type"] == "file") {
                let body = client.get(&format!("/alice/crashy/resolve/{c}/{}", e["path"].as_str().unwrap())).bytes().unwrap();
                assert_eq!(body.len() as u64, e["size"].as_u64().unwrap(), "unacknowledged commit {c} is complete");
                if let Some(sha) = e["lfs"]["oid"].as_str() {
                    assert_eq!(sha256_hex(&body), sha);
                }
            }
        }
        files = acked_now.last().unwrap().1.clone();
        if head_pos == 1 {
            // Continue from what the server has: re-read the lost commit's files.
            files = BTreeMap::new();
            let tree: serde_json::Value = client.get(&format!("/api/models/alice/crashy/tree/{}?recursive=true", ids[0])).json().unwrap();
            for e in tree.as_array().unwrap().iter().filter(|e| e["type"] == "file" && e["path"] != ".gitattributes") {
                let p = e["path"].as_str().unwrap().to_string();
                let body = client.get(&format!("/alice/crashy/resolve/{}/{p}", ids[0])).bytes().unwrap();
                files.insert(p, body.to_vec());
            }
            acked.lock().unwrap().push((ids[0].to_string(), files.clone()));
        }
    }
}
