//! A repository's storage as its owner manages it: LFS files listed and deleted for good (the
//! history rewritten without them), and commits too large to hold in memory.

mod support;

use base64::Engine;
use serde_json::{Value, json};
use support::{Hub, RawClient};

fn http() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder().timeout(std::time::Duration::from_secs(120)).build().unwrap()
}

/// Commits NDJSON `lines` to `branch` of alice's model `repo`; the status and answer.
fn commit_to(hub: &Hub, repo: &str, branch: &str, lines: &[Value]) -> (u16, Value) {
    let body: String = lines.iter().map(|l| format!("{l}\n")).collect();
    let resp = http()
        .post(format!("{}/api/models/alice/{repo}/commit/{branch}", hub.url()))
        .bearer_auth(&hub.token)
        .header("content-type", "application/x-ndjson")
        .body(body)
        .send()
        .unwrap();
    (resp.status().as_u16(), resp.json().unwrap())
}

fn lfs_line(path: &str, oid: &str, size: usize) -> Value {
    json!({"key": "lfsFile", "value": {"path": path, "algo": "sha256", "oid": oid, "size": size}})
}

fn inline_line(path: &str, data: &[u8]) -> Value {
    json!({"key": "file", "value": {"path": path, "content": base64::engine::general_purpose::STANDARD.encode(data), "encoding": "base64"}})
}

fn header(summary: &str) -> Value {
    json!({"key": "header", "value": {"summary": summary}})
}

fn paths(client: &RawClient, repo: &str, rev: &str) -> Vec<String> {
    let tree: Value = client.get(&format!("/api/models/alice/{repo}/tree/{rev}?recursive=1")).json().unwrap();
    let mut out: Vec<String> =
        tree.as_array().unwrap().iter().filter(|e| e["type"] == "file").map(|e| e["path"].as_str().unwrap().to_string()).collect();
    out.sort();
    out
}

fn lfs_files(client: &RawClient, repo: &str) -> Vec<Value> {
    let resp = client.get(&format!("/api/models/alice/{repo}/lfs-files"));
    assert_eq!(resp.status(), 200);
    resp.json::<Value>().unwrap().as_array().unwrap().clone()
}

#[test]
fn an_lfs_file_deleted_for_good_leaves_every_branch_and_commit_but_not_other_repositories() {
    let hub = Hub::start();
    let client = RawClient::new(&hub);
    for name in ["weights", "copy"] {
        assert!(client.create_model(name).unwrap().status().is_success());
    }
    let secret = b"weights that must go".repeat(1000);
    let kept = b"an experiment's weights".repeat(1000);
    let secret_oid = client.upload_lfs("alice/weights", &secret).unwrap();
    let kept_oid = client.upload_lfs("alice/weights", &kept).unwrap();
    client.upload_lfs("alice/copy", &secret).unwrap();
    client.commit("alice/weights", &[header("weights"), lfs_line("model.bin", &secret_oid, secret.len())]).unwrap();
    let with_secret = client.commit("alice/weights", &[header("notes"), inline_line("notes.txt", b"trained on the commons")]).unwrap();
    client.commit("alice/copy", &[header("the same bytes"), lfs_line("model.bin", &secret_oid, secret.len())]).unwrap();
    let branch = http().post(format!("{}/api/models/alice/weights/branch/exp", hub.url())).bearer_auth(&hub.token).send().unwrap();
    assert!(branch.status().is_success());
    let (status, _) = commit_to(&hub, "weights", "exp", &[header("exp"), lfs_line("exp.bin", &kept_oid, kept.len())]);
    assert_eq!(status, 200);

    // Listed once each, with the path, branch and time of the commit that first named it.
    let listed = lfs_files(&client, "weights");
    let mut seen: Vec<(&str, &str, u64)> =
        listed.iter().map(|f| (f["filename"].as_str().unwrap(), f["ref"].as_str().unwrap(), f["size"].as_u64().unwrap())).collect();
    seen.sort();
    assert_eq!(seen, [("exp.bin", "exp", kept.len() as u64), ("model.bin", "main", secret.len() as u64)]);
    assert!(listed.iter().all(|f| f["fileOid"] == f["oid"] && f["pushedAt"].as_str().unwrap().ends_with('Z')), "{listed:?}");

    // Only the repository's administrators see or delete its files.
    let bob = RawClient::with_token(&hub, &hub.add_user("bob"));
    assert_eq!(bob.get("/api/models/alice/weights/lfs-files").status(), 403);
    let anonymous = http().get(format!("{}/api/models/alice/weights/lfs-files", hub.url())).send().unwrap();
    assert_eq!(anonymous.status(), 401);
    let deletion = json!({"deletions": {"sha": [secret_oid], "rewriteHistory": true}});
    let url = format!("{}/api/models/alice/weights/lfs-files/batch", hub.url());
    let refused = http().post(&url).bearer_auth(&bob.token).json(&deletion).send().unwrap();
    assert_eq!(refused.status(), 403);
    assert_eq!(lfs_files(&client, "weights").len(), 2, "a refused deletion changes nothing");

    let done = http().post(&url).bearer_auth(&hub.token).json(&deletion).send().unwrap();
    assert_eq!(done.status(), 200);
    let done: Value = done.json().unwrap();
    assert_eq!(done["deleted"], 1, "{done}");
    assert!(done["commitsRewritten"].as_u64().unwrap() >= 3, "{done}");

    let listed = lfs_files(&client, "weights");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["filename"], "exp.bin");
    assert_eq!(paths(&client, "weights", "main"), [".gitattributes", "notes.txt"]);
    assert_eq!(paths(&client, "weights", "exp"), [".gitattributes", "exp.bin", "notes.txt"]);
    let gone = http().get(format!("{}/alice/weights/resolve/main/model.bin", hub.url())).bearer_auth(&hub.token).send().unwrap();
    assert_eq!(gone.status(), 404);
    // The commits that held it are gone too: their ids no longer resolve.
    let old = client.get(&format!("/api/models/alice/weights/revision/{with_secret}"));
    assert_eq!(old.status(), 404);
    let log: Value = client.get("/api/models/alice/weights/commits/main").json().unwrap();
    let titles: Vec<&str> = log.as_array().unwrap().iter().map(|c| c["title"].as_str().unwrap()).collect();
    assert_eq!(titles, ["notes", "weights", "initial commit"], "the history keeps its commits, rewritten");
    // Another repository holding the same bytes keeps them.
    let copy = http().get(format!("{}/alice/copy/resolve/main/model.bin", hub.url())).bearer_auth(&hub.token).send().unwrap();
    assert_eq!(copy.status(), 200);
    assert_eq!(copy.bytes().unwrap().as_ref(), secret.as_slice());
}

#[test]
fn a_deletion_that_would_keep_the_history_or_names_no_object_is_refused_and_changes_nothing() {
    let hub = Hub::start();
    let client = RawClient::new(&hub);
    assert!(client.create_model("weights").unwrap().status().is_success());
    let data = b"bytes".repeat(100);
    let oid = client.upload_lfs("alice/weights", &data).unwrap();
    client.commit("alice/weights", &[header("weights"), lfs_line("model.bin", &oid, data.len())]).unwrap();
    let url = format!("{}/api/models/alice/weights/lfs-files/batch", hub.url());
    for (body, status) in [
        (json!({"deletions": {"sha": [oid], "rewriteHistory": false}}), 422),
        (json!({"deletions": {"sha": ["not-a-sha"]}}), 400),
        (json!({"deletions": {"sha": vec![oid.clone(); 1001]}}), 400),
        (json!({"sha": [oid]}), 400),
    ] {
        let resp = http().post(&url).bearer_auth(&hub.token).json(&body).send().unwrap();
        assert_eq!(resp.status().as_u16(), status, "{body}");
        let error: Value = resp.json().unwrap();
        assert!(error["error"].is_string() && error["message"].is_string(), "{error}");
    }
    // An object the repository never held is no error, and nothing happens.
    let resp = http().post(&url).bearer_auth(&hub.token).json(&json!({"deletions": {"sha": ["ab".repeat(32)]}})).send().unwrap();
    assert_eq!(resp.json::<Value>().unwrap()["deleted"], 0);
    assert_eq!(paths(&client, "weights", "main"), [".gitattributes", "model.bin"]);
    assert_eq!(lfs_files(&client, "weights").len(), 1);
}

#[test]
fn a_commit_larger_than_memory_should_hold_is_taken_in_order_and_one_oversized_line_is_refused() {
    let hub = Hub::start();
    let client = RawClient::new(&hub);
    assert!(client.create_model("texts").unwrap().status().is_success());
    client.commit("alice/texts", &[header("old"), inline_line("dir/old.txt", b"old")]).unwrap();
    // Twelve files of 9 MiB inline (144 MB of base64), after a deletion of their folder:
    // operations apply in the order sent.
    let mut lines = vec![header("many"), json!({"key": "deletedFolder", "value": {"path": "dir/"}})];
    for i in 0..12u8 {
        let mut data = vec![b'a' + i; 9 << 20];
        data[0] = b'#';
        lines.push(inline_line(&format!("dir/file-{i:02}.txt"), &data));
    }
    let (status, answer) = commit_to(&hub, "texts", "main", &lines);
    assert_eq!(status, 200, "{answer}");
    drop(lines);
    let listed = paths(&client, "texts", "main");
    assert_eq!(listed.len(), 13, "{listed:?}");
    assert!(!listed.contains(&"dir/old.txt".to_string()));
    let third = http().get(format!("{}/alice/texts/resolve/main/dir/file-02.txt", hub.url())).bearer_auth(&hub.token).send().unwrap();
    let third = third.bytes().unwrap();
    assert_eq!((third.len(), third[0], third[1]), (9 << 20, b'#', b'c'));

    // One line over 64 MiB is refused as too large, and nothing is committed.
    let head: Value = client.get("/api/models/alice/texts/refs").json().unwrap();
    let huge = inline_line("huge.txt", &vec![b'x'; 49 << 20]);
    let (status, error) = commit_to(&hub, "texts", "main", &[header("too much"), huge]);
    assert_eq!(status, 413, "{error}");
    assert_eq!(error["code"], "PayloadTooLarge");
    assert!(error["message"].as_str().unwrap().contains("one line of the commit"), "{error}");
    let after: Value = client.get("/api/models/alice/texts/refs").json().unwrap();
    assert_eq!(head, after);
}

/// On PostgreSQL (this suite's second pass), a database that drops every connection of the hub
/// (a restart, a failover; here `pg_terminate_backend`) costs no write: the hub's pool and the
/// compute coordinator's writer connect again. On SQLite there is no connection to cut, and the
/// test says so.
#[test]
fn a_hub_whose_postgresql_connections_are_cut_connects_again_and_writes_on() {
    let hub = Hub::start();
    if hub.state.db.engine() != commons_db::sql::Engine::Postgres {
        eprintln!("on SQLite there is no database connection to cut: this test runs in the PostgreSQL pass");
        return;
    }
    let alice = hub.block_on(hub.state.db.user_by_name("alice")).unwrap().expect("alice");
    let client = RawClient::new(&hub);
    let before = hub.block_on(hub.coordinator.submit_noop(alice.id, 2)).expect("a job before the cut");
    assert!(client.create_model("before").unwrap().status().is_success());

    let cut: i64 = hub
        .block_on(
            commons_db::sql::query_scalar::<i64>(
                "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()",
            )
            .fetch_one(hub.state.db.pool()),
        )
        .unwrap();
    assert!(cut >= 1, "the compute writer's connection, at least, was cut");

    let after = hub.block_on(hub.coordinator.submit_noop(alice.id, 2)).expect("a job after the cut: the writer connected again");
    assert!(after > before);
    let created = client.create_model("after").unwrap();
    assert!(created.status().is_success(), "a repository after the cut: {}", created.status());
    let job = hub.block_on(hub.coordinator.job_view(after)).unwrap();
    assert_eq!(job.units.len(), 2, "the job written after the cut is whole: {job:?}");
}
