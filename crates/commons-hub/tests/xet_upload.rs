//! Acceptance: `huggingface_hub` with `hf_xet` (Xet not disabled) uploads and downloads a 12 MB
//! and a 100 MB file through the Xet protocol, and a file through the `hf` CLI; a file uploaded
//! with Xet disabled downloads through Xet and one uploaded through Xet downloads without it.
//! The matrix spans the clients' own floors: each huggingface_hub with the oldest `hf_xet` it
//! accepts and with the newest (1.8.0), which between them speak every CAS route generation —
//! unversioned (1.2.0), `v1` with the `/shards` alias and `v2` reconstructions (1.5.1), `v1`
//! shards (1.5.2) and `v2` NDJSON shards (1.6+). 2.4.0 takes Xet unconditionally, 1.x after the
//! LFS batch negotiates the `xet` transfer, 0.36.2 after reading `xetEnabled`.

mod support;

use std::sync::atomic::Ordering;

use support::{Hub, python_script, python_venv, python_venv_with};

#[test]
fn huggingface_hub_2_4_0_uploads_and_downloads_through_xet() {
    xet_round_trip("2.4.0", None, Shards::V2);
}

#[test]
fn huggingface_hub_1_29_0_with_hf_xet_1_8_0_uses_v2_shards() {
    xet_round_trip("1.29.0", Some("1.8.0"), Shards::V2);
}

#[test]
fn huggingface_hub_1_29_0_with_hf_xet_1_5_2_uses_v1_shards() {
    xet_round_trip("1.29.0", Some("1.5.2"), Shards::V1);
}

#[test]
fn huggingface_hub_1_19_0_with_hf_xet_1_5_1_uses_the_shards_alias() {
    xet_round_trip("1.19.0", Some("1.5.1"), Shards::V1);
}

#[test]
fn huggingface_hub_1_0_0_negotiates_xet_and_uploads_through_it() {
    xet_round_trip("1.0.0", None, Shards::V2);
}

#[test]
fn hf_xet_1_2_0_speaks_the_unversioned_cas_routes() {
    xet_round_trip("1.0.0", Some("1.2.0"), Shards::V1);
}

#[test]
fn huggingface_hub_0_36_2_reads_xet_enabled_and_uploads_through_xet() {
    xet_round_trip("0.36.2", None, Shards::V2);
}

/// Which shard route a client generation registers its files through.
#[derive(Debug, PartialEq)]
enum Shards {
    /// `v1/shards` or its unversioned alias: a JSON answer.
    V1,
    /// `v2/shards`: NDJSON progress events (hf_xet 1.6 and later).
    V2,
}

/// The defaults (`hf_xet: None`) install the newest hf_xet the client allows.
fn xet_round_trip(version: &str, hf_xet: Option<&str>, shards: Shards) {
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
            commons_db::sql::query_scalar("SELECT COUNT(*) FROM xorb_holders WHERE user_id = $1")
                .bind(alice.id)
                .fetch_one(hub.state.db.pool())
                .await
        })
        .unwrap();
    assert!(xorbs >= 1, "no xorb was uploaded through Xet:\n{stdout}");
    // The `hf` CLI is part of every install but 1.0.0's (there it needs the `cli` extra).
    assert!(version == "1.0.0" || !stdout.contains("CLI_SKIPPED"), "{version}: the hf CLI was not run\n{stdout}");
    let traffic = &hub.state.xet_traffic;
    let (v1, v2) = (traffic.shards_v1.load(Ordering::Relaxed), traffic.shards_v2.load(Ordering::Relaxed));
    match shards {
        Shards::V1 => assert!(v1 > 0 && v2 == 0, "{version}: {v1} v1 and {v2} v2 shards"),
        Shards::V2 => assert!(v2 > 0 && v1 == 0, "{version}: {v1} v1 and {v2} v2 shards"),
    }
    let received = traffic.xorb_bytes_received.load(Ordering::Relaxed);
    assert!(received >= 112_000_000, "the 12 MB and 100 MB files came as xorbs: {received} bytes");
    for line in stdout.lines().filter_map(|l| l.strip_prefix("XET_FILE ")) {
        let (path, sha256) = line.split_once(' ').unwrap();
        let blob = hub.block_on(hub.state.db.blob(sha256)).unwrap();
        assert!(blob.is_some(), "{path}: no blob {sha256}");
        assert!(hub.block_on(hub.state.db.may_reference_blob(sha256, alice.id, None)).unwrap(), "{path}: alice holds it");
    }
}
