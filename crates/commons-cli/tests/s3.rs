//! A hub whose store is an S3 bucket on a real S3-compatible server (`s3s-fs`): the official
//! client uploads and downloads through Xet and through LFS, the bytes land in the bucket and
//! nowhere on the hub's disk, `/ready` follows the bucket's reachability, and `commons gc` frees
//! a deleted repository's objects from the bucket while what remains reachable still downloads.

mod support;

use std::time::Duration;

use support::{Hub, S3Server, assert_python_passed, python_script, python_venv};

const STORE_URL: &str = "s3://commons/hub";

fn xorb_bytes(s3: &S3Server) -> u64 {
    s3.objects("hub/xorbs/default").iter().map(|(_, size)| size).sum()
}

#[test]
fn a_hub_on_an_s3_bucket_keeps_uploads_there_and_gc_frees_a_deleted_repository() {
    let mut s3 = S3Server::start();
    let tmp = tempfile::tempdir().unwrap();
    let data_dir = tmp.path().join("data");
    let hub = Hub::start_with_env(&data_dir, "alice", &["--no-worker", "--store-url", STORE_URL], s3.env());
    let python = python_venv("huggingface_hub", "2.4.0");
    let hf_home = tempfile::tempdir().unwrap();

    // A repository that stays: one file through LFS (`upload`), read back later (`download`).
    let keep = |mode: &str| {
        let out = python_script(&python, "hf_s3_keep.py", &hub.url(), hf_home.path())
            .env("HF_TOKEN", &hub.token)
            .arg(mode)
            .output()
            .expect("run python");
        assert_python_passed(&out, &format!("{mode} of the repository that stays"));
    };
    keep("upload");
    let kept_bytes = xorb_bytes(&s3);
    assert!(kept_bytes >= 3_000_000, "the kept file's 3 MB are in the bucket: {kept_bytes} bytes");

    // Xet and LFS uploads and downloads, each crossing to the other, byte for byte.
    let out = python_script(&python, "hf_xet_upload.py", &hub.url(), hf_home.path())
        .env_remove("HF_HUB_DISABLE_XET")
        .env("HF_TOKEN", &hub.token)
        .output()
        .expect("run python");
    assert_python_passed(&out, "Xet and LFS through a hub on S3");
    let all_bytes = xorb_bytes(&s3);
    assert!(all_bytes >= kept_bytes + 112_000_000, "the 12 MB and 100 MB files are in the bucket: {all_bytes} bytes");
    let local = support::files_under(&data_dir.join("objects"));
    assert!(local.is_empty(), "nothing is stored on the hub's disk: {local:?}");

    // The hub is ready only while its bucket answers.
    let http = reqwest::blocking::Client::new();
    let ready = |expected: u16| {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let status = http.get(format!("{}/ready", hub.url())).send().unwrap().status().as_u16();
            if status == expected {
                return;
            }
            assert!(std::time::Instant::now() < deadline, "/ready answered {status}, expected {expected}");
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    ready(200);
    s3.stop();
    ready(503);
    s3.restart();
    ready(200);

    // Deleting the repository and collecting (no grace: nothing is in flight) leaves only the
    // repository that stays, within 1%.
    let deleted = http
        .delete(format!("{}/api/repos/delete", hub.url()))
        .bearer_auth(&hub.token)
        .json(&serde_json::json!({"type": "model", "name": "xet-upload"}))
        .send()
        .unwrap();
    assert_eq!(deleted.status().as_u16(), 200, "{}", deleted.text().unwrap_or_default());
    // Objects younger than the cutoff are kept: let the last ones age past it.
    std::thread::sleep(Duration::from_millis(1100));
    let gc = hub.admin_command(&["gc", "--grace-hours", "0", "--store-url", STORE_URL]).envs(s3.env()).output().unwrap();
    let report = String::from_utf8_lossy(&gc.stdout);
    assert!(gc.status.success(), "commons gc failed: {}", String::from_utf8_lossy(&gc.stderr));
    let remaining = xorb_bytes(&s3);
    let slack = kept_bytes / 100;
    assert!(
        remaining.abs_diff(kept_bytes) <= slack,
        "after gc the bucket holds {remaining} bytes, the kept repository {kept_bytes}: {report}"
    );
    assert!(report.contains("unreferenced xorbs"), "{report}");

    keep("download");
}
