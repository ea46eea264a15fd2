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

#[test]
fn discussion_writes_are_limited_per_account_and_refusals_change_nothing() {
    let hub = Hub::start_with(|state| state.with_limits(commons_hub::Limits { discussion_writes: 20, ..Default::default() }));
    let bob = hub.add_user("bob");
    let http = reqwest::blocking::Client::new();
    support::RawClient::new(&hub).create_model("m").unwrap();
    let post = |path: &str, token: &str, body: serde_json::Value| {
        http.post(format!("{}/api/models/alice/m/{path}", hub.url())).bearer_auth(token).json(&body).send().unwrap()
    };
    // Bad input first: nothing is opened by it.
    assert_eq!(post("discussions", &bob, serde_json::json!({"title": "no"})).status(), 400, "a title has 3 characters at least");
    let long = "x".repeat(64 * 1024 + 1);
    let opened = post("discussions", &bob, serde_json::json!({"title": "A question", "description": long}));
    assert_eq!(opened.status(), 400, "an over-long description is refused");
    let opened = post("discussions", &bob, serde_json::json!({"title": "A question"}));
    assert_eq!(opened.status(), 200);
    assert_eq!(opened.json::<serde_json::Value>().unwrap()["num"], 1, "the refused ones took no number");
    assert_eq!(post("discussions/1/status", &bob, serde_json::json!({"status": "merged"})).status(), 400);
    assert_eq!(post("discussions/1/merge", &hub.token, serde_json::json!({})).status(), 400, "a discussion is not merged");

    // One account's writes are limited: the 21st attempt in ten minutes (the three discussions
    // above count, refused or not: the count is taken before the body is read) waits, and says
    // how long.
    for i in 0..17 {
        let status = post("discussions/1/comment", &bob, serde_json::json!({"comment": format!("comment {i}")})).status();
        assert_eq!(status, 200, "comment {i}");
    }
    let refused = post("discussions/1/comment", &bob, serde_json::json!({"comment": "one too many"}));
    assert_eq!(refused.status(), 429);
    let wait: u64 = refused.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=600).contains(&wait), "{wait}");
    // Another account is not held back by bob's writes.
    assert_eq!(post("discussions/1/comment", &hub.token, serde_json::json!({"comment": "alice answers"})).status(), 200);
    let details: serde_json::Value = http.get(format!("{}/api/models/alice/m/discussions/1", hub.url())).send().unwrap().json().unwrap();
    assert_eq!(details["events"].as_array().unwrap().len(), 18, "17 of bob's comments and alice's");
}
