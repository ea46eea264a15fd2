//! Bad input gets a clear JSON error with the right status, and changes nothing.

mod support;

use serde_json::{Value, json};
use support::{Hub, RawClient, sha256_hex};

fn error_of(resp: reqwest::blocking::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let body: Value = resp.json().expect("errors are JSON");
    assert!(body["error"].is_string() && body["message"].is_string(), "error shape: {body}");
    (status, body)
}

fn head_of(client: &RawClient) -> String {
    let refs: Value = client.get("/api/models/alice/strict/refs").json().unwrap();
    refs["branches"][0]["targetCommit"].as_str().unwrap().to_string()
}

#[test]
fn invalid_names_paths_parents_and_bodies_are_rejected_without_changes() {
    let hub = Hub::start();
    let client = RawClient::new(&hub);
    let http = reqwest::blocking::Client::new();
    let post = |path: &str, body: Value| http.post(format!("{}{path}", hub.url())).bearer_auth(&hub.token).json(&body).send().unwrap();

    // Repository names.
    for bad in ["../x", "a--b", "x.git", "-lead", &"n".repeat(97), "sp ace", "ctl\u{7}"] {
        let (status, body) = error_of(post("/api/repos/create", json!({"name": bad, "type": "model"})));
        assert_eq!(status, 400, "{bad:?}: {body}");
        assert!(body["message"].as_str().unwrap().contains("invalid"), "{body}");
    }
    let (status, _) = error_of(post("/api/repos/create", json!({"name": "x", "type": "spaceship"})));
    assert_eq!(status, 400);
    assert!(client.create_model("strict").unwrap().status().is_success());
    let head = head_of(&client);

    // File paths in a commit: nothing lands when any line is bad.
    let ok_line = json!({"key": "file", "value": {"path": "fine.txt", "content": "aGk=", "encoding": "base64"}});
    let long = "d/".repeat(600) + "f";
    for bad in ["../escape", "/abs", "a/../b", "ctl\u{1}x", "..\\y", "C:\\y", ".git/config", long.as_str(), ""] {
        let lines = [
            json!({"key": "header", "value": {"summary": "bad path"}}),
            ok_line.clone(),
            json!({"key": "file", "value": {"path": bad, "content": "aGk=", "encoding": "base64"}}),
        ];
        let err = client.commit("alice/strict", &lines).unwrap_err();
        // A path a Windows client would read as escaping is the Hub's 422; other bad paths 400.
        assert!((err.contains("400") || err.contains("422")) && err.contains("invalid path"), "{bad:?}: {err}");
    }
    assert_eq!(head_of(&client), head, "no commit landed");

    // Stale parentCommit → 412; the branch does not move.
    let stale = "0".repeat(40);
    let err = client
        .commit("alice/strict", &[json!({"key": "header", "value": {"summary": "x", "parentCommit": stale}}), ok_line.clone()])
        .unwrap_err();
    assert!(err.contains("412"), "{err}");
    assert_eq!(head_of(&client), head);
    // The right parent works.
    let new = client
        .commit("alice/strict", &[json!({"key": "header", "value": {"summary": "x", "parentCommit": head}}), ok_line.clone()])
        .unwrap();
    assert_eq!(head_of(&client), new);

    // A commit naming an LFS object that was never uploaded.
    let missing = sha256_hex(b"never uploaded");
    let err = client
        .commit(
            "alice/strict",
            &[
                json!({"key": "header", "value": {"summary": "x"}}),
                json!({"key": "lfsFile", "value": {"path": "w.bin", "algo": "sha256", "oid": missing, "size": 14}}),
            ],
        )
        .unwrap_err();
    assert!(err.contains("400") && err.contains("never uploaded"), "{err}");
    assert_eq!(head_of(&client), new);

    // Bad base64 and unknown operations.
    let err = client
        .commit(
            "alice/strict",
            &[
                json!({"key": "header", "value": {}}),
                json!({"key": "file", "value": {"path": "b.txt", "content": "!!!", "encoding": "base64"}}),
            ],
        )
        .unwrap_err();
    assert!(err.contains("base64"), "{err}");
    let err = client.commit("alice/strict", &[json!({"key": "header", "value": {}}), json!({"key": "rmrf", "value": {}})]).unwrap_err();
    assert!(err.contains("unknown operation"), "{err}");

    // LFS bodies that do not match their declared size or sha256 are refused and not stored.
    let data = b"twelve bytes".to_vec();
    let oid = sha256_hex(&data);
    let batch: Value = http
        .post(format!("{}/alice/strict.git/info/lfs/objects/batch", hub.url()))
        .bearer_auth(&hub.token)
        .json(&json!({"operation": "upload", "transfers": ["basic"], "objects": [{"oid": oid, "size": data.len()}]}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let href = batch["objects"][0]["actions"]["upload"]["href"].as_str().unwrap().to_string();
    let (status, body) = error_of(http.put(&href).body(b"wrong twelve".to_vec()).send().unwrap());
    assert_eq!(status, 400);
    assert!(body["message"].as_str().unwrap().contains("sha256 mismatch"), "{body}");
    let (status, body) = error_of(http.put(&href).body(b"short".to_vec()).send().unwrap());
    assert_eq!(status, 400);
    assert!(body["message"].as_str().unwrap().contains("size mismatch"), "{body}");
    let err = client
        .commit(
            "alice/strict",
            &[json!({"key": "header", "value": {}}), json!({"key": "lfsFile", "value": {"path": "w.bin", "oid": oid, "size": 12}})],
        )
        .unwrap_err();
    assert!(err.contains("never uploaded"), "a rejected body is not stored: {err}");
    // A tampered signature is refused.
    let tampered = href.replace("size=12", "size=13");
    let (status, _) = error_of(http.put(&tampered).body(data.clone()).send().unwrap());
    assert_eq!(status, 403);
    // The right body is accepted.
    assert!(http.put(&href).body(data.clone()).send().unwrap().status().is_success());

    // Auth: a bad token is 401 with the message the clients look for; read tokens cannot write.
    let resp = http.get(format!("{}/api/whoami-v2", hub.url())).bearer_auth("cm_nope").send().unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    assert_eq!(resp.headers()["x-error-message"], "Invalid credentials in Authorization header");
    let read_token = hub.add_token("alice", "read");
    let resp = http
        .post(format!("{}/api/models/alice/strict/commit/main", hub.url()))
        .bearer_auth(read_token)
        .body(format!("{}\n", json!({"key": "header", "value": {}})))
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 403);
    assert_eq!(head_of(&client), new, "nothing changed");
}

#[test]
fn a_malformed_body_to_any_route_gets_the_json_error() {
    let hub = Hub::start();
    let client = RawClient::new(&hub);
    assert!(client.create_model("shapes").unwrap().status().is_success());
    let http = reqwest::blocking::Client::new();
    // A signed completion and verify URL, to send them malformed bodies too.
    let big = 11 << 20;
    let batch: Value = http
        .post(format!("{}/alice/shapes.git/info/lfs/objects/batch", hub.url()))
        .bearer_auth(&hub.token)
        .json(&json!({"operation": "upload", "transfers": ["multipart"], "objects": [{"oid": "cd".repeat(32), "size": big}]}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let actions = &batch["objects"][0]["actions"];
    let signed = |href: &Value| href.as_str().unwrap().trim_start_matches(&hub.url()).to_string();
    let routes: Vec<(&str, String)> = vec![
        ("POST", "/api/repos/create".into()),
        ("DELETE", "/api/repos/delete".into()),
        ("POST", "/api/repos/move".into()),
        ("PUT", "/api/models/alice/shapes/settings".into()),
        ("POST", "/api/models/alice/shapes/branch/side".into()),
        ("POST", "/api/models/alice/shapes/tag/main".into()),
        ("POST", "/api/models/alice/shapes/preupload/main".into()),
        ("POST", "/api/models/alice/shapes/commit/main".into()),
        ("POST", "/api/models/alice/shapes/paths-info/main".into()),
        ("POST", "/alice/shapes.git/info/lfs/objects/batch".into()),
        ("POST", "/api/validate-yaml".into()),
        ("POST", signed(&actions["upload"]["href"])),
        ("POST", signed(&actions["verify"]["href"])),
        ("POST", "/api/jobs".into()),
        ("POST", "/api/workers/register".into()),
        ("POST", "/api/assignments/1/heartbeat".into()),
        ("POST", "/api/assignments/1/report".into()),
    ];
    for (method, path) in routes {
        let resp = http
            .request(method.parse().unwrap(), format!("{}{path}", hub.url()))
            .bearer_auth(&hub.token)
            .header("content-type", "application/json")
            .body("{\"name\": ")
            .send()
            .unwrap();
        assert!(resp.headers().contains_key("x-error-code"), "{method} {path}: X-Error-Code");
        let (status, body) = error_of(resp);
        assert_eq!(status, 400, "{method} {path}: {body}");
    }
    let repos: Value = client.get("/api/models?author=alice").json().unwrap();
    assert_eq!(repos.as_array().unwrap().len(), 1, "nothing was created: {repos}");
}

fn head_of_repo(client: &RawClient, name: &str) -> String {
    let refs: Value = client.get(&format!("/api/models/alice/{name}/refs")).json().unwrap();
    refs["branches"][0]["targetCommit"].as_str().unwrap().to_string()
}

#[test]
fn a_commit_whose_last_line_names_a_missing_object_stores_nothing() {
    let hub = Hub::start();
    let client = RawClient::new(&hub);
    assert!(client.create_model("atomic").unwrap().status().is_success());
    let head = head_of_repo(&client, "atomic");
    let store = hub.store_dir.clone();
    let before = support::files_under(&store);
    use base64::Engine;
    let fresh: Vec<u8> = (0..200_000u32).flat_map(|i| i.to_le_bytes()).collect();
    let err = client
        .commit(
            "alice/atomic",
            &[
                json!({"key": "header", "value": {"summary": "half a commit"}}),
                json!({"key": "file", "value": {"path": "fresh.bin", "content": base64::engine::general_purpose::STANDARD.encode(&fresh), "encoding": "base64"}}),
                json!({"key": "lfsFile", "value": {"path": "missing.bin", "algo": "sha256", "oid": "ef".repeat(32), "size": 10}}),
            ],
        )
        .unwrap_err();
    assert!(err.contains("400") && err.contains("never uploaded"), "{err}");
    assert_eq!(support::files_under(&store), before, "the store's bytes are unchanged");
    assert_eq!(head_of_repo(&client, "atomic"), head);
}

#[test]
fn bad_listing_parameters_and_likes_get_clear_errors_and_count_nothing() {
    let hub = Hub::start();
    let client = RawClient::new(&hub);
    assert!(client.create_model("liked").unwrap().status().is_success());
    let http = reqwest::blocking::Client::new();
    let get = |path: &str| http.get(format!("{}{path}", hub.url())).send().unwrap();

    let (status, body) = error_of(get("/api/models?sort=popularity"));
    assert_eq!(status, 400, "{body}");
    assert!(body["message"].as_str().unwrap().contains("popularity"), "{body}");
    assert_eq!(error_of(get("/api/models?sort=likes&direction=2")).0, 400);
    assert_eq!(error_of(get(&format!("/api/models?search={}", "a".repeat(257)))).0, 400, "a search past 256 bytes");
    let many: String = (0..17).map(|i| format!("&filter=t{i}")).collect();
    let (status, body) = error_of(get(&format!("/api/models?{many}")));
    assert_eq!(status, 400, "{body}");

    let like = |token: Option<&str>, repo: &str| {
        let request = http.post(format!("{}/api/models/{repo}/like", hub.url()));
        match token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
        .send()
        .unwrap()
    };
    assert_eq!(error_of(like(None, "alice/liked")).0, 401, "anonymous");
    assert_eq!(error_of(like(Some(&hub.token), "alice/missing")).0, 404, "a missing repository");
    assert_eq!(error_of(like(Some("hf_not_a_token"), "alice/liked")).0, 401, "an unknown token");
    let info: Value = get("/api/models/alice/liked").json().unwrap();
    assert_eq!(info["likes"], 0, "nothing was counted");
}
