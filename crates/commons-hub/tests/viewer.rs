//! The dataset viewer API (issue 12, in part), with the Hugging Face viewer's paths and shapes,
//! over real data: the UCI sentiment sentences (IMDb reviews as a JSON array for `train`, Yelp
//! reviews turned into a CSV for `test`), a broken JSON Lines file as `validation`, and a
//! private dataset.

mod support;

use base64::Engine;
use serde_json::{Value, json};
use support::Hub;

fn commit(hub: &Hub, repo: &str, files: &[(&str, Vec<u8>)]) {
    let http = reqwest::blocking::Client::new();
    let mut body = format!("{}\n", json!({"key": "header", "value": {"summary": "data"}}));
    for (path, bytes) in files {
        let content = base64::engine::general_purpose::STANDARD.encode(bytes);
        body += &format!("{}\n", json!({"key": "file", "value": {"path": path, "content": content, "encoding": "base64"}}));
    }
    let resp = http
        .post(format!("{}/api/datasets/{repo}/commit/main", hub.url()))
        .bearer_auth(&hub.token)
        .header("content-type", "application/x-ndjson")
        .body(body)
        .send()
        .unwrap();
    assert!(resp.status().is_success(), "commit: {}", resp.text().unwrap());
}

fn create(hub: &Hub, name: &str, private: bool) {
    let resp = reqwest::blocking::Client::new()
        .post(format!("{}/api/repos/create", hub.url()))
        .bearer_auth(&hub.token)
        .json(&json!({"name": name, "type": "dataset", "private": private}))
        .send()
        .unwrap();
    assert!(resp.status().is_success());
}

/// GET `path` of the viewer as `token` (anonymous when `None`): status and JSON body.
fn viewer(hub: &Hub, token: Option<&str>, path: &str) -> (u16, Value) {
    let mut request = reqwest::blocking::Client::new().get(format!("{}/api/datasets-server{path}", hub.url()));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let resp = request.send().unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().unwrap())
}

#[test]
fn the_viewer_answers_splits_rows_statistics_and_sizes_of_real_csv_and_json_data_in_the_hubs_shapes() {
    let data = commons_data::fetch("uci-sentiment").expect("the UCI sentiment data");
    let imdb = std::fs::read(data.join("imdb.json")).unwrap();
    let yelp: Vec<Value> = serde_json::from_slice(&std::fs::read(data.join("yelp.json")).unwrap()).unwrap();
    let mut csv = csv::Writer::from_writer(Vec::new());
    csv.write_record(["text", "label"]).unwrap();
    for review in &yelp {
        // One review has no class (null): an empty cell.
        let class = if review["class"].is_null() { String::new() } else { review["class"].to_string() };
        csv.write_record([review["text"].as_str().unwrap(), &class]).unwrap();
    }
    let csv = csv.into_inner().unwrap();
    let imdb_rows: Vec<Value> = serde_json::from_slice(&imdb).unwrap();

    let hub = Hub::start();
    create(&hub, "reviews", false);
    commit(
        &hub,
        "alice/reviews",
        &[("README.md", b"---\nlicense: cc-by-4.0\n---\n# Reviews\n".to_vec()), ("data/train.json", imdb.clone()), ("data/test.csv", csv)],
    );
    let q = "dataset=alice/reviews";
    let (status, valid) = viewer(&hub, None, &format!("/is-valid?{q}"));
    assert_eq!(status, 200);
    assert_eq!(valid, json!({"preview": true, "viewer": true, "search": false, "filter": false, "statistics": true}));
    let (_, splits) = viewer(&hub, None, &format!("/splits?{q}"));
    assert_eq!(
        splits["splits"],
        json!([{"dataset": "alice/reviews", "config": "default", "split": "train"}, {"dataset": "alice/reviews", "config": "default", "split": "test"}])
    );

    // First rows: the reviews as they are in the file, with their features.
    let (_, first) = viewer(&hub, None, &format!("/first-rows?{q}&config=default&split=train"));
    assert_eq!(
        first["features"],
        json!([
            {"feature_idx": 0, "name": "text", "type": {"dtype": "string", "_type": "Value"}},
            {"feature_idx": 1, "name": "class", "type": {"dtype": "int64", "_type": "Value"}},
        ])
    );
    assert_eq!(first["rows"].as_array().unwrap().len(), 100);
    assert_eq!(first["truncated"], true);
    assert_eq!(first["rows"][0]["row"]["text"], imdb_rows[0]["text"]);
    // A page deep in the split, and its total.
    let (_, page) = viewer(&hub, None, &format!("/rows?{q}&config=default&split=train&offset=700&length=5"));
    assert_eq!(page["num_rows_total"], imdb_rows.len());
    let rows = page["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 5);
    assert_eq!(rows[0]["row_idx"], 700);
    assert_eq!(rows[4]["row"]["text"], imdb_rows[704]["text"]);
    assert_eq!(rows[4]["row"]["class"], imdb_rows[704]["class"]);
    // The CSV split: numbers are numbers again.
    let (_, test) = viewer(&hub, None, &format!("/rows?{q}&config=default&split=test&offset=0&length=2"));
    assert_eq!(test["rows"][1]["row"], json!({"text": yelp[1]["text"], "label": yelp[1]["class"]}));

    // Statistics: the label's frequencies add up to the split; the text's lengths are summed up.
    let (_, stats) = viewer(&hub, None, &format!("/statistics?{q}&config=default&split=test"));
    assert_eq!(stats["num_examples"], yelp.len());
    let label = stats["statistics"].as_array().unwrap().iter().find(|s| s["column_name"] == "label").unwrap();
    assert_eq!(label["column_type"], "int");
    let count = |class: Value| yelp.iter().filter(|r| r["class"] == class).count() as u64;
    let hist: Vec<u64> = label["column_statistics"]["histogram"]["hist"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
    assert_eq!(hist, [count(json!(0)), count(json!(1))]);
    assert_eq!(label["column_statistics"]["nan_count"], count(Value::Null), "the review without a class");
    let text = stats["statistics"].as_array().unwrap().iter().find(|s| s["column_name"] == "text").unwrap();
    assert_eq!(text["column_type"], "string_text");
    let longest = yelp.iter().map(|r| r["text"].as_str().unwrap().chars().count()).max().unwrap();
    assert_eq!(text["column_statistics"]["max"], longest);

    let (_, size) = viewer(&hub, None, &format!("/size?{q}"));
    assert_eq!(size["size"]["dataset"]["num_rows"], imdb_rows.len() + yelp.len());
    let (_, info) = viewer(&hub, None, &format!("/info?{q}"));
    assert_eq!(info["dataset_info"]["splits"]["train"]["num_examples"], imdb_rows.len());
    assert_eq!(info["dataset_info"]["features"]["class"]["dtype"], "int64");

    // A new commit is seen at once: a broken validation file is its split's clear error.
    commit(&hub, "alice/reviews", &[("data/validation.jsonl", b"{\"text\": \"fine\", \"label\": 1}\n{\"text\": oops}\n".to_vec())]);
    let (_, splits) = viewer(&hub, None, &format!("/splits?{q}"));
    assert_eq!(splits["splits"].as_array().unwrap().len(), 3);
    let (status, broken) = viewer(&hub, None, &format!("/first-rows?{q}&config=default&split=validation"));
    assert_eq!(status, 422);
    assert_eq!(broken["error"], "FileFormatError");
    assert!(broken["message"].as_str().unwrap().starts_with("data/validation.jsonl: line 2:"), "{broken}");
    let (status, _) = viewer(&hub, None, &format!("/first-rows?{q}&config=default&split=train"));
    assert_eq!(status, 200, "the other splits still answer");

    // Bad questions get the viewer's error codes.
    for (path, status, code) in [
        ("/splits", 422, "MissingRequiredParameter"),
        (&format!("/rows?{q}&config=default") as &str, 422, "MissingRequiredParameter"),
        (&format!("/rows?{q}&config=default&split=train&length=101"), 422, "InvalidParameter"),
        (&format!("/rows?{q}&config=default&split=train&offset=-1"), 422, "InvalidParameter"),
        (&format!("/rows?{q}&config=other&split=train"), 404, "ResponseNotFound"),
        (&format!("/rows?{q}&config=default&split=dev"), 404, "ResponseNotFound"),
        ("/splits?dataset=alice/nothing", 404, "ResponseNotFound"),
    ] {
        let (got, body) = viewer(&hub, None, path);
        assert_eq!((got, body["error"].as_str().unwrap()), (status, code), "{path}: {body}");
    }

    // A private dataset is the owner's alone.
    create(&hub, "secret", true);
    commit(&hub, "alice/secret", &[("train.json", imdb)]);
    let (status, body) = viewer(&hub, None, "/splits?dataset=alice/secret");
    assert_eq!((status, body["error"].as_str().unwrap()), (404, "ResponseNotFound"));
    let bob = hub.add_user("bob");
    assert_eq!(viewer(&hub, Some(&bob), "/first-rows?dataset=alice/secret&config=default&split=train").0, 404);
    let (status, rows) = viewer(&hub, Some(&hub.token), "/first-rows?dataset=alice/secret&config=default&split=train");
    assert_eq!(status, 200);
    assert_eq!(rows["rows"][0]["row"]["text"], imdb_rows[0]["text"]);
}
