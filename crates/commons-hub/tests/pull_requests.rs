//! Acceptance: pull requests and discussions through the official Python client — a stranger
//! proposes, the owner reviews and merges, conflicts are refused with their paths, and only
//! the owner moves `main`.

mod support;

use support::{Hub, assert_python_passed, python_script, python_venv};

#[test]
fn a_strangers_pull_request_is_reviewed_and_merged_and_a_conflicting_one_is_refused() {
    let python = python_venv("huggingface_hub", "2.4.0");
    let hub = Hub::start();
    let bob = hub.add_user("bob");
    let carol = hub.add_user("carol");
    let read_only = hub.add_token("carol", "read");
    let hf_home = tempfile::tempdir().unwrap();
    let out = python_script(&python, "hf_pull_requests.py", &hub.url(), hf_home.path())
        .env("OWNER_TOKEN", &hub.token)
        .env("STRANGER_TOKEN", &bob)
        .env("THIRD_TOKEN", &carol)
        .env("READ_TOKEN", &read_only)
        .output()
        .expect("run python");
    assert_python_passed(&out, "pull requests through huggingface_hub 2.4.0");
}
