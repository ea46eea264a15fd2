//! Gated repositories: the metadata stays public, the files go only to the owner and to users
//! whose access request is accepted, through every route that serves bytes.

mod support;

use serde_json::{Value, json};
use support::{Answer, Hub, RawClient, call};

/// Alice's model `name` with a `weights.txt`, gated `mode`.
fn gated_model(hub: &Hub, name: &str, mode: &str) {
    let client = RawClient::new(hub);
    assert!(client.create_model(name).unwrap().status().is_success());
    let line = json!({"key": "file", "value": {"path": "weights.txt", "content": "c2VjcmV0IHdlaWdodHM=", "encoding": "base64"}});
    client.commit(&format!("alice/{name}"), &[json!({"key": "header", "value": {"summary": "weights"}}), line]).unwrap();
    let set = call(hub, "PUT", &format!("/api/models/alice/{name}/settings"), Some(&hub.token), Some(json!({"gated": mode})));
    assert_eq!(set.status, 200, "{}", set.body);
}

fn read_file(hub: &Hub, name: &str, token: Option<&str>) -> Answer {
    call(hub, "GET", &format!("/alice/{name}/resolve/main/weights.txt"), token, None)
}

fn requests(hub: &Hub, name: &str, status: &str) -> Vec<String> {
    let listed = call(hub, "GET", &format!("/api/models/alice/{name}/user-access-request/{status}"), Some(&hub.token), None);
    assert_eq!(listed.status, 200, "{}", listed.body);
    listed.body.as_array().unwrap().iter().map(|r| r["user"]["user"].as_str().unwrap().to_string()).collect()
}

fn handle(hub: &Hub, name: &str, token: &str, body: Value) -> Answer {
    call(hub, "POST", &format!("/api/models/alice/{name}/user-access-request/handle"), Some(token), Some(body))
}

#[test]
fn a_gated_file_is_refused_to_anonymous_callers_and_strangers_until_their_request_is_accepted() {
    let hub = Hub::start();
    let bob = hub.add_user("bob");
    gated_model(&hub, "w", "manual");

    let anonymous = read_file(&hub, "w", None);
    assert_eq!((anonymous.status, anonymous.code.as_str()), (401, "GatedRepo"));
    assert!(anonymous.body["error"].as_str().unwrap().contains("Please log in"), "{}", anonymous.body);
    let stranger = read_file(&hub, "w", Some(&bob));
    assert_eq!((stranger.status, stranger.code.as_str()), (403, "GatedRepo"));
    assert!(stranger.body["error"].as_str().unwrap().contains("is restricted and you are not in the authorized list"), "{}", stranger.body);

    // The metadata stays public, and says how the repository is gated.
    let info = call(&hub, "GET", "/api/models/alice/w", None, None);
    assert_eq!((info.status, &info.body["gated"]), (200, &json!("manual")));
    assert_eq!(call(&hub, "GET", "/api/models/alice/w/tree/main", Some(&bob), None).status, 200);

    // A manual gate leaves the request pending: still no bytes.
    let asked = call(&hub, "POST", "/api/models/alice/w/ask-access", Some(&bob), None);
    assert_eq!((asked.status, &asked.body["status"]), (200, &json!("pending")));
    let waiting = read_file(&hub, "w", Some(&bob));
    assert_eq!((waiting.status, waiting.code.as_str()), (403, "GatedRepo"));
    assert!(waiting.body["error"].as_str().unwrap().contains("awaiting a review"), "{}", waiting.body);
    assert_eq!(requests(&hub, "w", "pending"), ["bob"]);

    // Accepted: readable at once (no wait for a cache), and the HEAD a download starts with too.
    assert_eq!(handle(&hub, "w", &hub.token, json!({"user": "bob", "status": "accepted"})).status, 200);
    let read = read_file(&hub, "w", Some(&bob));
    assert_eq!(read.status, 200);
    assert_eq!(call(&hub, "HEAD", "/alice/w/resolve/main/weights.txt", Some(&bob), None).status, 200);
    assert_eq!(call(&hub, "GET", "/api/models/alice/w/auth-check", Some(&bob), None).status, 200);
    assert_eq!(requests(&hub, "w", "accepted"), ["bob"]);
    assert!(requests(&hub, "w", "pending").is_empty());
}

#[test]
fn an_auto_gate_accepts_a_request_when_it_is_made() {
    let hub = Hub::start();
    let bob = hub.add_user("bob");
    gated_model(&hub, "w", "auto");
    assert_eq!(read_file(&hub, "w", Some(&bob)).status, 403);
    let auth = call(&hub, "GET", "/api/models/alice/w/auth-check", Some(&bob), None);
    assert_eq!((auth.status, auth.code.as_str()), (403, "GatedRepo"));
    let asked = call(&hub, "POST", "/api/models/alice/w/ask-access", Some(&bob), None);
    assert_eq!((asked.status, &asked.body["status"]), (200, &json!("accepted")));
    assert_eq!(read_file(&hub, "w", Some(&bob)).status, 200);
}

#[test]
fn a_rejection_takes_access_away_and_a_rejected_user_cannot_ask_again() {
    let hub = Hub::start();
    let bob = hub.add_user("bob");
    gated_model(&hub, "w", "auto");
    let grant = |expected: u16| {
        let granted = call(&hub, "POST", "/api/models/alice/w/user-access-request/grant", Some(&hub.token), Some(json!({"user": "bob"})));
        assert_eq!(granted.status, expected, "{}", granted.body);
    };
    grant(200);
    grant(409);
    assert_eq!(read_file(&hub, "w", Some(&bob)).status, 200);

    let rejected = handle(&hub, "w", &hub.token, json!({"user": "bob", "status": "rejected", "rejectionReason": "not for now"}));
    assert_eq!(rejected.status, 200, "{}", rejected.body);
    let refused = read_file(&hub, "w", Some(&bob));
    assert_eq!((refused.status, refused.code.as_str()), (403, "GatedRepo"));
    assert!(refused.body["error"].as_str().unwrap().contains("rejected"), "{}", refused.body);
    // Rejecting twice is refused; asking again leaves the rejection, even with an auto gate.
    assert_eq!(handle(&hub, "w", &hub.token, json!({"user": "bob", "status": "rejected"})).status, 409);
    let asked = call(&hub, "POST", "/api/models/alice/w/ask-access", Some(&bob), None);
    assert_eq!(asked.body["status"], "rejected");
    assert_eq!(read_file(&hub, "w", Some(&bob)).status, 403);

    // By request id, as huggingface_hub 2.3+ sends it.
    let listed = call(&hub, "GET", "/api/models/alice/w/user-access-request/rejected", Some(&hub.token), None);
    let id = listed.body[0]["requestId"].as_str().unwrap().to_string();
    assert_eq!(handle(&hub, "w", &hub.token, json!({"requestId": id, "status": "accepted"})).status, 200);
    assert_eq!(read_file(&hub, "w", Some(&bob)).status, 200);
}

#[test]
fn the_owner_always_reads_its_gated_files_with_any_token_of_its_account() {
    let hub = Hub::start();
    gated_model(&hub, "w", "manual");
    let read_token = hub.add_token("alice", "read");
    assert_eq!(read_file(&hub, "w", Some(&hub.token)).status, 200);
    assert_eq!(read_file(&hub, "w", Some(&read_token)).status, 200);
    assert_eq!(call(&hub, "GET", "/api/models/alice/w/auth-check", Some(&read_token), None).status, 200);
    assert_eq!(call(&hub, "GET", "/api/models/alice/w/xet-read-token/main", Some(&hub.token), None).status, 200);
    // Opening the gate serves everyone again.
    let open = call(&hub, "PUT", "/api/models/alice/w/settings", Some(&hub.token), Some(json!({"gated": false})));
    assert_eq!((open.status, &open.body["gated"]), (200, &json!(false)));
    assert_eq!(read_file(&hub, "w", None).status, 200);
}

#[test]
fn a_stranger_gets_no_gated_bytes_through_lfs_batch_xet_tokens_or_the_viewer() {
    let hub = Hub::start();
    let bob = hub.add_user("bob");
    let client = RawClient::new(&hub);
    assert!(client.create_model("big").unwrap().status().is_success());
    let data = b"gated weights ".repeat(1000);
    let oid = client.upload_lfs("alice/big", &data).unwrap();
    client
        .commit(
            "alice/big",
            &[
                json!({"key": "header", "value": {"summary": "weights"}}),
                json!({"key": "lfsFile", "value": {"path": "model.bin", "algo": "sha256", "oid": oid, "size": data.len()}}),
            ],
        )
        .unwrap();
    let set = call(&hub, "PUT", "/api/models/alice/big/settings", Some(&hub.token), Some(json!({"gated": "manual"})));
    assert_eq!(set.status, 200);

    let resolve = call(&hub, "GET", "/alice/big/resolve/main/model.bin", Some(&bob), None);
    assert_eq!((resolve.status, resolve.code.as_str()), (403, "GatedRepo"));
    let batch = json!({"operation": "download", "transfers": ["basic"], "objects": [{"oid": oid, "size": data.len()}]});
    let lfs = call(&hub, "POST", "/alice/big.git/info/lfs/objects/batch", Some(&bob), Some(batch));
    assert!(lfs.status >= 400, "{} {}", lfs.status, lfs.body);
    assert!(!lfs.body.to_string().contains("href"), "{}", lfs.body);
    let xet = call(&hub, "GET", "/api/models/alice/big/xet-read-token/main", Some(&bob), None);
    assert_eq!((xet.status, xet.code.as_str()), (403, "GatedRepo"));
    let xet = call(&hub, "GET", "/api/models/alice/big/xet-read-token/main", None, None);
    assert_eq!((xet.status, xet.code.as_str()), (401, "GatedRepo"));
    let xet_write = call(&hub, "GET", "/api/models/alice/big/xet-write-token/main?create_pr=1", Some(&bob), None);
    assert!(xet_write.status >= 400, "{}", xet_write.body);
    let page = call(&hub, "GET", "/alice/big/blob/main/model.bin", Some(&bob), None);
    assert_eq!(page.status, 403);

    // A gated dataset's rows are refused as its files are.
    let created = call(&hub, "POST", "/api/repos/create", Some(&hub.token), Some(json!({"name": "rows", "type": "dataset"})));
    assert_eq!(created.status, 200, "{}", created.body);
    let csv = json!({"key": "file", "value": {"path": "data.csv", "content": "YSxiCjEsMgo=", "encoding": "base64"}});
    let body = format!("{}\n{}\n", json!({"key": "header", "value": {"summary": "rows"}}), csv);
    let http = reqwest::blocking::Client::new();
    let sent = http
        .post(format!("{}/api/datasets/alice/rows/commit/main", hub.url()))
        .bearer_auth(&hub.token)
        .header("content-type", "application/x-ndjson")
        .body(body)
        .send()
        .unwrap();
    assert!(sent.status().is_success());
    let set = call(&hub, "PUT", "/api/datasets/alice/rows/settings", Some(&hub.token), Some(json!({"gated": "auto"})));
    assert_eq!(set.status, 200);
    let rows = "/api/datasets-server/first-rows?dataset=alice/rows&config=default&split=train";
    let refused = call(&hub, "GET", rows, Some(&bob), None);
    assert_eq!((refused.status, refused.code.as_str()), (403, "GatedRepo"));
    assert_eq!(call(&hub, "GET", rows, Some(&hub.token), None).status, 200);
}

#[test]
fn a_stranger_cannot_list_or_handle_requests_and_a_worker_token_cannot_ask() {
    let hub = Hub::start();
    let bob = hub.add_user("bob");
    let bob_worker = hub.add_token("bob", "worker");
    let bob_read = hub.add_token("bob", "read");
    let alice_read = hub.add_token("alice", "read");
    gated_model(&hub, "w", "manual");
    assert_eq!(call(&hub, "POST", "/api/models/alice/w/ask-access", Some(&bob_worker), None).status, 403);
    assert_eq!(call(&hub, "POST", "/api/models/alice/w/ask-access", None, None).status, 401);
    assert_eq!(call(&hub, "POST", "/api/models/alice/w/ask-access", Some(&bob_read), None).status, 200);
    for token in [&bob, &alice_read] {
        assert_eq!(call(&hub, "GET", "/api/models/alice/w/user-access-request/pending", Some(token), None).status, 403);
        assert_eq!(handle(&hub, "w", token, json!({"user": "bob", "status": "accepted"})).status, 403);
        let grant = call(&hub, "POST", "/api/models/alice/w/user-access-request/grant", Some(token), Some(json!({"user": "bob"})));
        assert_eq!(grant.status, 403);
    }
    assert_eq!(read_file(&hub, "w", Some(&bob)).status, 403);
    assert_eq!(requests(&hub, "w", "pending"), ["bob"]);
}

#[test]
fn bad_access_request_input_is_a_400_and_changes_nothing() {
    let hub = Hub::start();
    hub.add_user("bob");
    gated_model(&hub, "w", "manual");
    let ask = call(&hub, "POST", "/api/models/alice/w/user-access-request/grant", Some(&hub.token), Some(json!({"user": "bob"})));
    assert_eq!(ask.status, 200);
    for body in [
        json!({"user": "bob", "status": "maybe"}),
        json!({"user": "bob", "status": "rejected", "rejectionReason": "x".repeat(201)}),
        json!({"user": "bob", "status": "pending", "rejectionReason": "why"}),
        json!({"user": "bob", "requestId": "000000000000000000000001", "status": "rejected"}),
        json!({"status": "rejected"}),
        json!({"user": 7, "status": "rejected"}),
    ] {
        let answer = handle(&hub, "w", &hub.token, body.clone());
        assert_eq!(answer.status, 400, "{body}: {}", answer.body);
    }
    for route in ["handle", "grant"] {
        let resp = reqwest::blocking::Client::new()
            .post(format!("{}/api/models/alice/w/user-access-request/{route}", hub.url()))
            .bearer_auth(&hub.token)
            .header("content-type", "application/json")
            .body("{\"user\": ")
            .send()
            .unwrap();
        assert_eq!(resp.status(), 400, "{route}");
        assert!(resp.headers().contains_key("x-error-code"), "{route}");
    }
    assert_eq!(handle(&hub, "w", &hub.token, json!({"user": "nobody", "status": "rejected"})).status, 404);
    let unknown = call(&hub, "POST", "/api/models/alice/w/user-access-request/grant", Some(&hub.token), Some(json!({"user": "nobody"})));
    assert_eq!(unknown.status, 404);
    assert_eq!(call(&hub, "GET", "/api/models/alice/w/user-access-request/maybe", Some(&hub.token), None).status, 404);
    assert_eq!(requests(&hub, "w", "accepted"), ["bob"]);

    // A bad gate changes no setting, not even the good one beside it.
    let bad = call(&hub, "PUT", "/api/models/alice/w/settings", Some(&hub.token), Some(json!({"gated": "yes", "private": true})));
    assert_eq!(bad.status, 400);
    let bad = call(&hub, "PUT", "/api/models/alice/w/settings", Some(&hub.token), Some(json!({"gated": true})));
    assert_eq!(bad.status, 400);
    let info = call(&hub, "GET", "/api/models/alice/w", None, None);
    assert_eq!((&info.body["gated"], &info.body["private"]), (&json!("manual"), &json!(false)));

    // Requests of a repository that is not gated are a 400.
    let client = RawClient::new(&hub);
    assert!(client.create_model("open").unwrap().status().is_success());
    assert_eq!(call(&hub, "GET", "/api/models/alice/open/user-access-request/pending", Some(&hub.token), None).status, 400);
}

#[test]
fn a_job_cannot_take_a_gated_repository_as_input_since_volunteers_read_as_anyone() {
    let hub = Hub::start();
    gated_model(&hub, "judged", "auto");
    let job =
        call(&hub, "POST", "/api/jobs", Some(&hub.token), Some(json!({"kind": "eval", "model": "alice/judged", "dataset": "alice/any"})));
    assert_eq!(job.status, 400, "{}", job.body);
    assert!(job.body["message"].as_str().unwrap().contains("is gated"), "{}", job.body);
}
