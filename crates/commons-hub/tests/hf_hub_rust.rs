//! Acceptance: the Rust `hf-hub` 0.4 client (blocking ureq API and tokio API) downloads a 12 MB
//! file and an empty file from a Commons hub, verified by sha256.

mod support;

use rand::RngCore;
use support::{Hub, RawClient, sha256_hex};

fn publish(hub: &Hub) -> (Vec<u8>, String) {
    let client = RawClient::new(hub);
    assert!(client.create_model("rusty").unwrap().status().is_success());
    let mut big = vec![0u8; 12 * 1024 * 1024];
    rand::rng().fill_bytes(&mut big);
    let oid = client.upload_lfs("alice/rusty", &big).unwrap();
    client
        .commit(
            "alice/rusty",
            &[
                serde_json::json!({"key": "header", "value": {"summary": "weights and an empty file"}}),
                serde_json::json!({"key": "lfsFile", "value": {"path": "model.bin", "algo": "sha256", "oid": oid, "size": big.len()}}),
                serde_json::json!({"key": "file", "value": {"path": "empty.txt", "content": "", "encoding": "base64"}}),
            ],
        )
        .unwrap();
    (big, oid)
}

/// hf-hub 0.4 reads the token only from `$HF_HOME/token`.
fn hf_home_with_token(hub: &Hub) -> tempfile::TempDir {
    let home = tempfile::tempdir().unwrap();
    std::fs::write(home.path().join("token"), &hub.token).unwrap();
    home
}

#[test]
fn hf_hub_sync_api_downloads_big_and_empty_files() {
    let hub = Hub::start();
    let (big, oid) = publish(&hub);
    let home = hf_home_with_token(&hub);
    let api = hf_hub::api::sync::ApiBuilder::new()
        .with_endpoint(hub.url())
        .with_cache_dir(home.path().join("hub"))
        .with_token(Some(hub.token.clone()))
        .with_progress(false)
        .build()
        .unwrap();
    let repo = api.model("alice/rusty".to_string());
    let path = repo.get("model.bin").unwrap();
    let got = std::fs::read(&path).unwrap();
    assert_eq!(got.len(), big.len());
    assert_eq!(sha256_hex(&got), oid);
    let empty = repo.get("empty.txt").unwrap();
    assert_eq!(std::fs::metadata(&empty).unwrap().len(), 0);
    // Same cache layout as the Python client: blobs named by etag, snapshot symlinks.
    let blob = home.path().join("hub/models--alice--rusty/blobs").join(&oid);
    assert!(blob.exists(), "LFS blob cached under its sha256");
}

#[test]
fn hf_hub_tokio_api_downloads_big_and_empty_files() {
    let hub = Hub::start();
    let (_big, oid) = publish(&hub);
    let home = hf_home_with_token(&hub);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let api = hf_hub::api::tokio::ApiBuilder::new()
            .with_endpoint(hub.url())
            .with_cache_dir(home.path().join("hub"))
            .with_token(Some(hub.token.clone()))
            .with_progress(false)
            .build()
            .unwrap();
        let repo = api.model("alice/rusty".to_string());
        let path = repo.get("model.bin").await.unwrap();
        assert_eq!(sha256_hex(&std::fs::read(&path).unwrap()), oid);
        let empty = repo.get("empty.txt").await.unwrap();
        assert_eq!(std::fs::metadata(&empty).unwrap().len(), 0);
        let info = repo.info().await.unwrap();
        assert!(info.siblings.iter().any(|s| s.rfilename == "model.bin"));
    });
}
