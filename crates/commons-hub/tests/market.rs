//! Acceptance (issue 12, in part): cards, tag filters, downloads and likes through the official
//! Python client, each pinned version against a fresh hub.

mod support;

use support::{Hub, assert_python_passed, python_script, python_venv};

fn market_through(version: &str) {
    let python = python_venv("huggingface_hub", version);
    let hub = Hub::start();
    let bob = hub.add_user("bob");
    let hf_home = tempfile::tempdir().unwrap();
    let out = python_script(&python, "hf_market.py", &hub.url(), hf_home.path())
        .env("HF_TOKEN", &hub.token)
        .env("BOB_TOKEN", &bob)
        .output()
        .expect("run python");
    assert_python_passed(&out, &format!("huggingface_hub {version}"));
}

#[test]
fn cards_filters_downloads_and_likes_work_through_huggingface_hub_0_36_2() {
    market_through("0.36.2");
}

#[test]
fn cards_filters_downloads_and_likes_work_through_huggingface_hub_1_0_0() {
    market_through("1.0.0");
}

#[test]
fn cards_filters_downloads_and_likes_work_through_huggingface_hub_2_4_0() {
    market_through("2.4.0");
}
