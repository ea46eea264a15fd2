//! What an operator reads: with `COMMONS_LOG_FORMAT=json` a server writes one JSON object per
//! line, and every answered request is a line naming its method, path, status, latency and the
//! request id the client was given in `X-Request-Id` (never its token, never its query).

mod support;

use std::time::{Duration, Instant};

use support::Hub;

#[test]
fn every_answered_request_is_a_json_log_line_with_the_request_id_the_client_saw() {
    let tmp = tempfile::tempdir().unwrap();
    let env = vec![("COMMONS_LOG_FORMAT".to_string(), "json".to_string()), ("RUST_LOG".to_string(), "info".to_string())];
    let mut hub = Hub::start_with_env(&tmp.path().join("data"), "alice", &["--no-worker"], env);
    let log = tmp.path().join("serve.log");
    hub.log = Some(log.clone());
    hub.restart_on_same_port();

    let http = reqwest::blocking::Client::new();
    let missing = http.get(format!("{}/api/models/alice/missing?secret=query", hub.url())).bearer_auth(&hub.token).send().unwrap();
    assert_eq!(missing.status().as_u16(), 404);
    let missing_id = missing.headers()["x-request-id"].to_str().unwrap().to_string();
    let whoami = http.get(format!("{}/api/whoami-v2", hub.url())).bearer_auth(&hub.token).send().unwrap();
    assert_eq!(whoami.status().as_u16(), 200);
    let whoami_id = whoami.headers()["x-request-id"].to_str().unwrap().to_string();
    assert_ne!(missing_id, whoami_id, "each request has its own id");

    let deadline = Instant::now() + Duration::from_secs(10);
    let lines = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains(&whoami_id) && text.contains(&missing_id) {
            break text;
        }
        assert!(Instant::now() < deadline, "the requests were not logged:\n{text}");
        std::thread::sleep(Duration::from_millis(100));
    };
    let entries: Vec<serde_json::Value> = lines
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
        .collect();
    let finished = |id: &str| {
        entries
            .iter()
            .find(|e| e["span"]["request_id"] == id && e["fields"]["status"].is_u64())
            .unwrap_or_else(|| panic!("no finished-request line for {id}:\n{lines}"))
            .clone()
    };
    let line = finished(&missing_id);
    assert_eq!(line["level"], "INFO");
    assert_eq!(line["span"]["method"], "GET");
    assert_eq!(line["span"]["path"], "/api/models/alice/missing");
    assert_eq!(line["fields"]["status"], 404);
    assert!(line["fields"]["latency"].is_string(), "{line}");
    assert!(line["timestamp"].is_string(), "{line}");
    assert_eq!(finished(&whoami_id)["fields"]["status"], 200);
    assert!(!lines.contains(&hub.token), "a token was logged");
    assert!(!lines.contains("secret=query"), "a query string was logged");
}
