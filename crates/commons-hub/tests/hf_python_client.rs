//! Acceptance: the official Python client, pinned versions, against a fresh hub.

mod support;

use support::{Hub, assert_python_passed, python_script, python_venv};

fn run_python_client(version: &str) {
    let python = python_venv("huggingface_hub", version);
    let hub = Hub::start();
    let hf_home = tempfile::tempdir().unwrap();
    let out = python_script(&python, "hf_client_check.py", &hub.url(), hf_home.path())
        .arg(version.replace('.', "-"))
        .env("HF_TOKEN", &hub.token)
        .output()
        .expect("run python");
    assert_python_passed(&out, &format!("huggingface_hub {version}"));
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
