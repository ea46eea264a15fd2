//! Acceptance: the official Python client, pinned versions, against a fresh `commons serve`.

mod support;

use std::process::Command;

use support::{Hub, python_venv, workspace_root};

fn run_python_client(version: &str) {
    let python = python_venv("huggingface_hub", version);
    let hub = Hub::start();
    let hf_home = tempfile::tempdir().unwrap();
    let script = workspace_root().join("crates/commons-cli/tests/py/hf_client_check.py");
    let out = Command::new(python)
        .arg(script)
        .arg(version.replace('.', "-"))
        .env("HF_ENDPOINT", hub.url())
        .env("HF_TOKEN", &hub.token)
        .env("HF_HOME", hf_home.path())
        .env("HF_HUB_DISABLE_TELEMETRY", "1")
        .env("HF_HUB_DISABLE_XET", "1")
        .env("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        .output()
        .expect("run python");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("ALL CHECKS PASSED"),
        "huggingface_hub {version} failed\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
}

#[test]
fn huggingface_hub_0_36_2() {
    run_python_client("0.36.2");
}

#[test]
fn huggingface_hub_1_0_0() {
    run_python_client("1.0.0");
}

#[test]
fn huggingface_hub_2_4_0() {
    run_python_client("2.4.0");
}
