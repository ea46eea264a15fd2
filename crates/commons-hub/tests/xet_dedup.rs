//! Global dedup through Xet: bytes already in a repository the uploader may read are not sent
//! again; bytes only in someone else's private repository are not revealed, so they are.

mod support;

use rand::RngCore;
use serde_json::json;
use support::{Hub, RawClient, files_under, python_script, python_venv};

/// Publishes `data` as `w.bin` in a new repository `alice/{name}` through LFS.
fn publish(hub: &Hub, name: &str, private: bool, data: &[u8]) {
    let alice = RawClient::new(hub);
    let resp = reqwest::blocking::Client::new()
        .post(format!("{}/api/repos/create", hub.url()))
        .bearer_auth(&hub.token)
        .json(&json!({"name": name, "type": "model", "private": private}))
        .send()
        .unwrap();
    assert!(resp.status().is_success());
    let oid = alice.upload_lfs(&format!("alice/{name}"), data).unwrap();
    alice
        .commit(
            &format!("alice/{name}"),
            &[
                json!({"key": "header", "value": {"summary": "weights"}}),
                json!({"key": "lfsFile", "value": {"path": "w.bin", "algo": "sha256", "oid": oid, "size": data.len()}}),
            ],
        )
        .unwrap();
}

/// Bob uploads `data` to `bob/{repo}` with the default Python install; returns how many xorbs
/// he holds.
fn bob_uploads(hub: &Hub, bob_token: &str, repo: &str, data: &[u8]) -> i64 {
    xet_upload(hub, bob_token, &format!("bob/{repo}"), data);
    let bob = hub.block_on(hub.state.db.user_by_name("bob")).unwrap().unwrap();
    hub.block_on(async {
        commons_db::sql::query_scalar("SELECT COUNT(*) FROM xorb_holders WHERE user_id = $1")
            .bind(bob.id)
            .fetch_one(hub.state.db.pool())
            .await
    })
    .unwrap()
}

/// Uploads `data` as `weights.bin` of `repo` through Xet with the default Python install and a
/// cache of its own (nothing known from an earlier upload on this machine), and checks it
/// downloads back.
fn xet_upload(hub: &Hub, token: &str, repo: &str, data: &[u8]) {
    let python = python_venv("huggingface_hub", "2.4.0");
    let hf_home = tempfile::tempdir().unwrap();
    let file = hf_home.path().join("upload.bin");
    std::fs::write(&file, data).unwrap();
    let out = python_script(&python, "hf_xet_dedup.py", &hub.url(), hf_home.path())
        .env_remove("HF_HUB_DISABLE_XET")
        .env("HF_TOKEN", token)
        .env("HF_REPO", repo)
        .env("UPLOAD_FILE", &file)
        .output()
        .expect("run python");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && stdout.contains("ALL CHECKS PASSED"), "--- stdout\n{stdout}\n--- stderr\n{stderr}");
}

#[test]
fn bytes_already_public_are_not_uploaded_again_and_private_ones_are_not_revealed() {
    let hub = Hub::start();
    let bob = hub.add_user("bob");
    let mut public = vec![0u8; 2 * 1024 * 1024];
    rand::rng().fill_bytes(&mut public);
    publish(&hub, "public", false, &public);
    assert_eq!(bob_uploads(&hub, &bob, "copy", &public), 0, "every chunk was found on the hub: no xorb sent");

    let mut secret = vec![0u8; 2 * 1024 * 1024];
    rand::rng().fill_bytes(&mut secret);
    publish(&hub, "secret", true, &secret);
    assert!(bob_uploads(&hub, &bob, "guess", &secret) >= 1, "a private repository's chunks are not offered: Bob sends his own");
}

#[test]
fn a_100_mb_file_uploaded_again_with_1_mb_changed_sends_and_stores_little_more_than_the_change() {
    let hub = Hub::start();
    assert!(RawClient::new(&hub).create_model("big").unwrap().status().is_success());
    let mut data = vec![0u8; 100_000_000];
    rand::rng().fill_bytes(&mut data);
    xet_upload(&hub, &hub.token, "alice/big", &data);
    let sent = || hub.state.xet_traffic.xorb_bytes_received.load(std::sync::atomic::Ordering::Relaxed);
    let stored = || files_under(&hub.store_dir).iter().map(|(_, size)| size).sum::<u64>();
    let (sent_before, stored_before) = (sent(), stored());
    assert!(sent_before >= 100_000_000, "the first upload sent the file: {sent_before} bytes");

    // 1 MB in the middle changes; a fresh client cache, so only the hub's dedup answers help.
    rand::rng().fill_bytes(&mut data[50_000_000..51_000_000]);
    xet_upload(&hub, &hub.token, "alice/big", &data);
    let sent_again = sent() - sent_before;
    let stored_again = stored() - stored_before;
    assert!(sent_again < 5_000_000, "{sent_again} bytes of xorbs sent for a 1 MB change");
    assert!(stored_again < 3_000_000, "{stored_again} more bytes stored for a 1 MB change");
}
