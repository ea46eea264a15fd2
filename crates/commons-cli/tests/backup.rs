//! An operator's backup of a hub on the embedded defaults: taken while the hub serves, it
//! restores into a new data directory whose hub serves the same repositories, tokens and bytes,
//! as of the moment the backup was taken.

mod support;

use std::process::Command;

use serde_json::json;
use support::{BIN, Hub, RawClient, commons, sha256_hex};

fn upload(client: &RawClient, path: &str, data: &[u8]) {
    let oid = client.upload_lfs("alice/kept", data).unwrap();
    client
        .commit(
            "alice/kept",
            &[
                json!({"key": "header", "value": {"summary": format!("add {path}")}}),
                json!({"key": "lfsFile", "value": {"path": path, "algo": "sha256", "oid": oid, "size": data.len()}}),
            ],
        )
        .unwrap();
}

fn refused(args: &[&str]) -> String {
    let out = Command::new(BIN).args(args).output().unwrap();
    assert!(!out.status.success(), "commons {args:?} should have been refused");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_backup_taken_while_the_hub_serves_restores_into_a_hub_serving_the_same_bytes_as_of_then() {
    let hub = Hub::start();
    let client = RawClient::new(&hub);
    assert!(client.create_model("kept").unwrap().status().is_success());
    let weights: Vec<u8> = (0..5u32 << 20).map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8).collect();
    upload(&client, "weights.bin", &weights);

    let tmp = tempfile::tempdir().unwrap();
    let backup = tmp.path().join("backup");
    let dd = hub.data_dir.to_str().unwrap();
    let out = commons(&["backup", backup.to_str().unwrap(), "--data-dir", dd]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("backed up"), "{}", String::from_utf8_lossy(&out.stdout));
    // After the backup: not in it.
    upload(&client, "later.bin", b"written after the backup");

    // Nothing is overwritten: not a backup, nor a hub.
    assert!(refused(&["backup", backup.to_str().unwrap(), "--data-dir", dd]).contains("not empty"));
    assert!(refused(&["restore", backup.to_str().unwrap(), "--data-dir", dd]).contains("already holds a hub"));
    assert_eq!(client.get("/alice/kept/resolve/main/later.bin").status(), 200, "the serving hub is untouched");

    let restored = tmp.path().join("restored");
    let out = commons(&["restore", backup.to_str().unwrap(), "--data-dir", restored.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("restored"), "{}", String::from_utf8_lossy(&out.stdout));

    let second = Hub::serve_existing(&restored, "alice", &hub.token);
    let client2 = RawClient::new(&second);
    let whoami: serde_json::Value = client2.get("/api/whoami-v2").json().unwrap();
    assert_eq!(whoami["name"], "alice", "the token works on the restored hub");
    let got = client2.get("/alice/kept/resolve/main/weights.bin").bytes().unwrap();
    assert_eq!(sha256_hex(&got), sha256_hex(&weights), "the bytes are the backup's");
    assert_eq!(client2.get("/alice/kept/resolve/main/later.bin").status(), 404, "what came after the backup is not in it");
    // The restored hub takes new work.
    upload(&client2, "after-restore.bin", b"a hub like any other");
    assert_eq!(client2.get("/alice/kept/resolve/main/after-restore.bin").status(), 200);
}
