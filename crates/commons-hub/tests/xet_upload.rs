//! Acceptance: `huggingface_hub` as installed by default (with `hf_xet`, Xet not disabled)
//! uploads and downloads large files through the Xet protocol: 2.4.0 unconditionally, 1.0.0
//! after the LFS batch negotiates the `xet` transfer, 0.36.2 after reading `xetEnabled`; and the
//! oldest `hf_xet` these clients accept, 1.2.0, which speaks the unversioned CAS routes.

mod support;

use support::{Hub, python_script, python_venv, python_venv_with};

#[test]
fn huggingface_hub_2_4_0_uploads_and_downloads_through_xet() {
    xet_round_trip("2.4.0", None);
}

#[test]
fn huggingface_hub_1_0_0_negotiates_xet_and_uploads_through_it() {
    xet_round_trip("1.0.0", None);
}

#[test]
fn huggingface_hub_0_36_2_reads_xet_enabled_and_uploads_through_xet() {
    xet_round_trip("0.36.2", None);
}

#[test]
fn hf_xet_1_2_0_speaks_the_unversioned_cas_routes() {
    xet_round_trip("1.0.0", Some("1.2.0"));
}

fn xet_round_trip(version: &str, hf_xet: Option<&str>) {
    let python = match hf_xet {
        Some(xet) => python_venv_with(&[("huggingface_hub", version), ("hf_xet", xet)]),
        None => python_venv("huggingface_hub", version),
    };
    let hub = Hub::start();
    let hf_home = tempfile::tempdir().unwrap();
    let out = python_script(&python, "hf_xet_upload.py", &hub.url(), hf_home.path())
        .env_remove("HF_HUB_DISABLE_XET")
        .env("HF_TOKEN", &hub.token)
        .output()
        .expect("run python");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && stdout.contains("ALL CHECKS PASSED"), "{version}\n--- stdout\n{stdout}\n--- stderr\n{stderr}");

    // The bytes came through Xet: the account holds the xorbs it uploaded, and each large file
    // is a blob it may commit.
    let alice = hub.block_on(hub.state.db.user_by_name("alice")).unwrap().unwrap();
    let xorbs: i64 = hub
        .block_on(async {
            sqlx::query_scalar("SELECT COUNT(*) FROM xorb_holders WHERE user_id = $1").bind(alice.id).fetch_one(hub.state.db.pool()).await
        })
        .unwrap();
    assert!(xorbs >= 1, "no xorb was uploaded through Xet:\n{stdout}");
    for line in stdout.lines().filter_map(|l| l.strip_prefix("XET_FILE ")) {
        let (path, sha256) = line.split_once(' ').unwrap();
        let blob = hub.block_on(hub.state.db.blob(sha256)).unwrap();
        assert!(blob.is_some(), "{path}: no blob {sha256}");
        assert!(hub.block_on(hub.state.db.may_reference_blob(sha256, alice.id, None)).unwrap(), "{path}: alice holds it");
    }
}
