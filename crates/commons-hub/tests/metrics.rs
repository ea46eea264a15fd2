//! What an operator's Prometheus sees: `/metrics` parses with the Prometheus project's own
//! parser (the `prometheus-client` Python package) and says what happened, request by request
//! and byte by byte; `/ready` says whether the database and the store answer.

mod support;

use std::collections::HashMap;
use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::{Value, json};
use support::{Hub, RawClient, files_under, python_venv};

/// A sample's name and its labels, sorted.
type SampleKey = (String, Vec<(String, String)>);

/// `(name, labels) → value` of every sample, as the OpenMetrics parser of `prometheus-client`
/// 0.21.1 reads `text` (it refuses what the format does not allow).
fn parse(text: &str) -> HashMap<SampleKey, f64> {
    let python = python_venv("prometheus-client", "0.21.1");
    let script = r#"
import json, sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
out = []
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        out.append([s.name, sorted(s.labels.items()), s.value])
print(json.dumps(out))
"#;
    let mut child =
        Command::new(python).args(["-c", script]).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "the OpenMetrics parser refused /metrics: {}\n{text}", String::from_utf8_lossy(&out.stderr));
    let samples: Vec<(SampleKey, f64)> = serde_json::from_slice::<Vec<(String, Vec<(String, String)>, f64)>>(&out.stdout)
        .unwrap()
        .into_iter()
        .map(|(name, labels, value)| ((name, labels), value))
        .collect();
    samples.into_iter().collect()
}

fn sample(samples: &HashMap<SampleKey, f64>, name: &str, labels: &[(&str, &str)]) -> f64 {
    let mut key: Vec<(String, String)> = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    key.sort();
    *samples.get(&(name.to_string(), key)).unwrap_or_else(|| panic!("no sample {name} {labels:?}"))
}

#[test]
fn metrics_count_what_happened_and_parse_as_openmetrics_and_only_the_operator_reads_them() {
    let compute = commons_compute::ComputeConfig { operator_user: Some("alice".into()), ..Default::default() };
    let hub = Hub::start_with_compute(|state| state, compute);
    let client = RawClient::new(&hub);
    let bob = hub.add_user("bob");
    let http = reqwest::blocking::Client::new();

    // What a user does: a repository, a 3 MiB file uploaded through LFS, two downloads, a HEAD
    // and a missing file.
    assert!(client.create_model("counted").unwrap().status().is_success());
    let data: Vec<u8> = (0..3 << 20).map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    let oid = client.upload_lfs("alice/counted", &data).unwrap();
    client
        .commit(
            "alice/counted",
            &[
                json!({"key": "header", "value": {"summary": "weights"}}),
                json!({"key": "lfsFile", "value": {"path": "w.bin", "algo": "sha256", "oid": oid, "size": data.len()}}),
            ],
        )
        .unwrap();
    for _ in 0..2 {
        assert_eq!(client.get("/alice/counted/resolve/main/w.bin").bytes().unwrap().len(), data.len());
    }
    let head = http.head(format!("{}/alice/counted/resolve/main/w.bin", hub.url())).bearer_auth(&hub.token).send().unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(client.get("/alice/counted/resolve/main/missing.bin").status(), 404);
    // Work queued: three units of a job that does nothing.
    let alice = hub.block_on(hub.state.db.user_by_name("alice")).unwrap().unwrap();
    hub.block_on(hub.coordinator.submit_noop(alice.id, 3)).unwrap();

    // Only the operator reads them.
    let metrics = format!("{}/metrics", hub.url());
    assert_eq!(http.get(&metrics).send().unwrap().status(), 401);
    let refused = http.get(&metrics).bearer_auth(&bob).send().unwrap();
    assert_eq!(refused.status(), 403);
    assert!(refused.json::<Value>().unwrap()["error"].as_str().unwrap().contains("operator"));

    let resp = http.get(&metrics).bearer_auth(&hub.token).send().unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("application/openmetrics-text"));
    let samples = parse(&resp.text().unwrap());

    let resolve = "/{ns}/{name}/resolve/{rev}/{*path}";
    let requests = "commons_http_requests_total";
    assert_eq!(sample(&samples, requests, &[("route", resolve), ("method", "GET"), ("status", "200")]), 2.0);
    assert_eq!(sample(&samples, requests, &[("route", resolve), ("method", "HEAD"), ("status", "200")]), 1.0);
    assert_eq!(sample(&samples, requests, &[("route", resolve), ("method", "GET"), ("status", "404")]), 1.0);
    assert_eq!(sample(&samples, requests, &[("route", "/api/lfs/objects/{oid}"), ("method", "PUT"), ("status", "200")]), 1.0);
    assert_eq!(sample(&samples, requests, &[("route", "/metrics"), ("method", "GET"), ("status", "401")]), 1.0);
    assert_eq!(sample(&samples, requests, &[("route", "/metrics"), ("method", "GET"), ("status", "403")]), 1.0);
    assert_eq!(sample(&samples, "commons_http_request_duration_seconds_count", &[("route", resolve), ("method", "GET")]), 3.0);
    assert_eq!(sample(&samples, "commons_upload_bytes_total", &[]), data.len() as f64, "the one LFS object");
    assert_eq!(sample(&samples, "commons_download_bytes_total", &[]), 2.0 * data.len() as f64, "two GETs; a HEAD sends no file");

    let on_disk: u64 = files_under(&hub.store_dir.join("xorbs")).iter().map(|(_, n)| n).sum();
    assert_eq!(sample(&samples, "commons_store_bytes", &[]), on_disk as f64);
    assert!(sample(&samples, "commons_store_file_bytes", &[]) >= data.len() as f64);
    assert!(sample(&samples, "commons_store_dedup_ratio", &[]) > 0.0);

    assert_eq!(sample(&samples, "commons_compute_units", &[("state", "open")]), 3.0);
    assert!(sample(&samples, "commons_compute_queued_assignments", &[]) >= 3.0);
    assert_eq!(sample(&samples, "commons_compute_workers_online", &[]), 0.0);
    let ledger: f64 = ["issuer", "user", "escrow"]
        .iter()
        .filter_map(|kind| samples.get(&("commons_ledger_balance".to_string(), vec![("account".to_string(), kind.to_string())])))
        .sum();
    assert_eq!(ledger, 0.0, "the ledger sums to zero");

    let ready = http.get(format!("{}/ready", hub.url())).send().unwrap();
    assert_eq!(ready.status(), 200);
    assert_eq!(ready.json::<Value>().unwrap()["status"], "ready");
}
