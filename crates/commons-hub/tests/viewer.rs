//! The dataset viewer API (issue 12, in part), with the Hugging Face viewer's paths and shapes,
//! over real data: the UCI sentiment sentences (IMDb reviews as a JSON array for `train`, Yelp
//! reviews turned into a CSV for `test`), a broken JSON Lines file as `validation`, and a
//! private dataset.

mod support;

use base64::Engine;
use serde_json::{Value, json};
use support::Hub;
use support::big_parquet::{BIG_ROWS, LABELS, big_text, publish_big_parquet, write_big_parquet};

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
    assert_eq!(valid, json!({"preview": true, "viewer": true, "search": true, "filter": true, "statistics": true}));
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

    // Search: every word, in any text cell, case aside; as many as a reader would count.
    let (_, found) = viewer(&hub, None, &format!("/search?{q}&config=default&split=train&query=Great%20MOVIE&length=3"));
    let expected: Vec<usize> = imdb_rows
        .iter()
        .enumerate()
        .filter(|(_, r)| {
            let text = r["text"].as_str().unwrap().to_lowercase();
            text.contains("great") && text.contains("movie")
        })
        .map(|(i, _)| i)
        .collect();
    assert!(expected.len() > 3, "the data has such reviews");
    assert_eq!(found["num_rows_total"], expected.len());
    let rows: Vec<u64> = found["rows"].as_array().unwrap().iter().map(|r| r["row_idx"].as_u64().unwrap()).collect();
    assert_eq!(rows, expected[..3].iter().map(|&i| i as u64).collect::<Vec<_>>());
    // Filter: the viewer's SQL subset, ordered.
    let (status, positive) =
        viewer(&hub, None, &format!("/filter?{q}&config=default&split=test&where=%22label%22%3D1&orderby=text%20DESC&length=100"));
    assert_eq!(status, 200, "{positive}");
    assert_eq!(positive["num_rows_total"], count(json!(1)));
    let texts: Vec<&str> = positive["rows"].as_array().unwrap().iter().map(|r| r["row"]["text"].as_str().unwrap()).collect();
    assert!(texts.windows(2).all(|w| w[0] >= w[1]), "in descending order of text");
    let (status, bad) = viewer(&hub, None, &format!("/filter?{q}&config=default&split=test&where=label%20%3D%3D%3D%201"));
    assert_eq!((status, bad["code"].as_str().unwrap()), (422, "InvalidParameter"), "{bad}");

    let (_, size) = viewer(&hub, None, &format!("/size?{q}"));
    assert_eq!(size["size"]["dataset"]["num_rows"], imdb_rows.len() + yelp.len());
    let (_, info) = viewer(&hub, None, &format!("/info?{q}"));
    assert_eq!(info["dataset_info"]["default"]["splits"]["train"]["num_examples"], imdb_rows.len());
    assert_eq!(info["dataset_info"]["default"]["features"]["class"]["dtype"], "int64");

    // A new commit is seen at once: a broken validation file is its split's clear error.
    commit(&hub, "alice/reviews", &[("data/validation.jsonl", b"{\"text\": \"fine\", \"label\": 1}\n{\"text\": oops}\n".to_vec())]);
    let (_, splits) = viewer(&hub, None, &format!("/splits?{q}"));
    assert_eq!(splits["splits"].as_array().unwrap().len(), 3);
    let (status, broken) = viewer(&hub, None, &format!("/first-rows?{q}&config=default&split=validation"));
    assert_eq!(status, 422);
    assert_eq!(broken["code"], "FileFormatError");
    assert!(broken["message"].as_str().unwrap().starts_with("data/validation.jsonl: line 2:"), "{broken}");
    let (status, _) = viewer(&hub, None, &format!("/first-rows?{q}&config=default&split=train"));
    assert_eq!(status, 200, "the other splits still answer");
    // The Parquet export has the splits that convert and names the one that does not.
    let (status, export) = viewer(&hub, None, &format!("/parquet?{q}"));
    assert_eq!(status, 200, "{export}");
    let files: Vec<(&str, &str)> = export["parquet_files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["split"].as_str().unwrap(), f["filename"].as_str().unwrap()))
        .collect();
    assert_eq!(files, [("test", "0000.parquet"), ("train", "0000.parquet")]);
    assert_eq!(export["failed"][0]["split"], "validation");
    assert!(export["failed"][0]["error"].as_str().unwrap().contains("line 2"), "{export}");

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
        assert_eq!((got, body["code"].as_str().unwrap()), (status, code), "{path}: {body}");
    }

    // A private dataset is the owner's alone.
    create(&hub, "secret", true);
    commit(&hub, "alice/secret", &[("train.json", imdb)]);
    let (status, body) = viewer(&hub, None, "/splits?dataset=alice/secret");
    assert_eq!((status, body["code"].as_str().unwrap()), (404, "ResponseNotFound"));
    let bob = hub.add_user("bob");
    assert_eq!(viewer(&hub, Some(&bob), "/first-rows?dataset=alice/secret&config=default&split=train").0, 404);
    let (status, rows) = viewer(&hub, Some(&hub.token), "/first-rows?dataset=alice/secret&config=default&split=train");
    assert_eq!(status, 200);
    assert_eq!(rows["rows"][0]["row"]["text"], imdb_rows[0]["text"]);
}

#[test]
fn a_500_mb_parquet_split_answers_rows_at_offset_a_million_reading_a_few_pages_of_it() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("train.parquet");
    write_big_parquet(&path);
    let hub = Hub::start();
    let size = publish_big_parquet(&hub, &path);
    assert!(size > 500_000_000, "{size} bytes");

    let q = "dataset=alice/big&config=default&split=train";
    let fetched = |hub: &Hub| hub.state.cas.bytes_fetched();
    let before = fetched(&hub);
    let (status, page) = viewer(&hub, None, &format!("/rows?{q}&offset=1000000&length=100"));
    assert_eq!(status, 200, "{page}");
    let read = fetched(&hub) - before;
    assert_eq!(page["num_rows_total"], BIG_ROWS);
    let rows = page["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 100);
    for (k, row) in rows.iter().enumerate() {
        let i = 1_000_000 + k as u64;
        assert_eq!(row["row_idx"], i);
        assert_eq!(row["row"], json!({"id": i, "text": big_text(i), "score": (i % 1000) as f64 / 10.0, "label": LABELS[(i % 5) as usize]}));
    }
    assert_eq!(
        page["features"],
        json!([
            {"feature_idx": 0, "name": "id", "type": {"dtype": "int64", "_type": "Value"}},
            {"feature_idx": 1, "name": "text", "type": {"dtype": "string", "_type": "Value"}},
            {"feature_idx": 2, "name": "score", "type": {"dtype": "float64", "_type": "Value"}},
            {"feature_idx": 3, "name": "label", "type": {"dtype": "string", "_type": "Value"}},
        ])
    );
    // The footer and the pages that hold the rows, not the file.
    eprintln!("rows at offset 10^6 of a {size}-byte file: {read} bytes read from the store");
    assert!(read < 16 << 20, "{read} of {size} bytes read for one page of rows");

    // A page across the last row group's end, the split's end, and past it.
    let (_, tail) = viewer(&hub, None, &format!("/rows?{q}&offset={}&length=100", BIG_ROWS - 3));
    let tail: Vec<u64> = tail["rows"].as_array().unwrap().iter().map(|r| r["row"]["id"].as_u64().unwrap()).collect();
    assert_eq!(tail, [BIG_ROWS - 3, BIG_ROWS - 2, BIG_ROWS - 1]);
    let (_, past) = viewer(&hub, None, &format!("/rows?{q}&offset={}&length=10", BIG_ROWS + 5));
    assert_eq!(past["rows"], json!([]));
    let (_, boundary) = viewer(&hub, None, &format!("/rows?{q}&offset={}&length=4", (1 << 20) - 2));
    let ids: Vec<u64> = boundary["rows"].as_array().unwrap().iter().map(|r| r["row"]["id"].as_u64().unwrap()).collect();
    assert_eq!(ids, [(1 << 20) - 2, (1 << 20) - 1, 1 << 20, (1 << 20) + 1], "rows from two row groups");

    // First rows, and statistics over a sample that says it is one.
    let (_, first) = viewer(&hub, None, &format!("/first-rows?{q}"));
    assert_eq!(first["rows"][0]["row"]["text"], big_text(0));
    assert_eq!(first["truncated"], true);
    let before = fetched(&hub);
    let (status, stats) = viewer(&hub, None, &format!("/statistics?{q}"));
    assert_eq!(status, 200, "{stats}");
    assert!(fetched(&hub) - before < 128 << 20, "statistics read a bounded sample");
    assert_eq!(stats["num_examples"], BIG_ROWS);
    assert_eq!(stats["partial"], true);
    let label = stats["statistics"].as_array().unwrap().iter().find(|s| s["column_name"] == "label").unwrap();
    assert_eq!(label["column_type"], "string_label");
    let n = commons_viewer::STATISTICS_ROWS as u64;
    let frequencies: Vec<u64> = LABELS.iter().map(|l| label["column_statistics"]["frequencies"][l].as_u64().unwrap()).collect();
    assert_eq!(
        frequencies,
        LABELS.iter().enumerate().map(|(k, _)| (0..n).filter(|i| i % 5 == k as u64).count() as u64).collect::<Vec<_>>()
    );
    let score = stats["statistics"].as_array().unwrap().iter().find(|s| s["column_name"] == "score").unwrap();
    assert_eq!((score["column_statistics"]["min"].as_f64(), score["column_statistics"]["max"].as_f64()), (Some(0.0), Some(99.9)));

    let (_, sizes) = viewer(&hub, None, "/size?dataset=alice/big");
    assert_eq!(sizes["size"]["dataset"]["num_rows"], BIG_ROWS);
    assert_eq!(sizes["size"]["dataset"]["num_bytes_original_files"], size);

    // Filtering looks through a sample of the split, and says so.
    let (status, cats) = viewer(&hub, None, &format!("/filter?{q}&where=label%3D%27cat%27&orderby=id%20DESC&length=1"));
    assert_eq!(status, 200, "{cats}");
    assert_eq!(cats["partial"], true);
    let sampled = cats["num_rows_total"].as_u64().unwrap();
    assert!(sampled > 0 && sampled < BIG_ROWS / 5, "{sampled} cats in the sample");
    assert_eq!(cats["rows"][0]["row"]["label"], "cat");
    // The export of a Parquet split is the file itself: nothing rewritten.
    let (_, export) = viewer(&hub, None, "/parquet?dataset=alice/big");
    assert_eq!(export["parquet_files"][0]["size"], size);
}

#[test]
fn a_cards_configs_name_the_splits_of_text_and_csv_files() {
    let hub = Hub::start();
    create(&hub, "poems", false);
    let card = "---\nconfigs:\n- config_name: lines\n  data_files:\n  - split: train\n    path: \"poems/*.txt\"\n- config_name: scores\n  data_files: tables/*.csv\n  default: true\n---\n# Poems\n";
    commit(
        &hub,
        "alice/poems",
        &[
            ("README.md", card.as_bytes().to_vec()),
            ("poems/a.txt", b"Roses are red\nviolets are blue\nsugar is sweet\n".to_vec()),
            ("poems/b.txt", b"a rose is a rose\nis a rose\n".to_vec()),
            ("tables/scores.csv", b"poem,score\na,40\nb,75\n".to_vec()),
            // Named for a split, but no config takes it.
            ("test.csv", b"x\n1\n".to_vec()),
        ],
    );
    let q = "dataset=alice/poems";
    let (_, splits) = viewer(&hub, None, &format!("/splits?{q}"));
    assert_eq!(
        splits["splits"],
        json!([{"dataset": "alice/poems", "config": "scores", "split": "train"}, {"dataset": "alice/poems", "config": "lines", "split": "train"}])
    );
    let (_, lines) = viewer(&hub, None, &format!("/rows?{q}&config=lines&split=train"));
    assert_eq!(lines["num_rows_total"], 5);
    assert_eq!(lines["rows"][3]["row"], json!({"text": "a rose is a rose"}));
    let (_, found) = viewer(&hub, None, &format!("/search?{q}&config=lines&split=train&query=rose"));
    let rows: Vec<u64> = found["rows"].as_array().unwrap().iter().map(|r| r["row_idx"].as_u64().unwrap()).collect();
    assert_eq!(rows, [0, 3, 4]);
    let (_, sizes) = viewer(&hub, None, &format!("/size?{q}&config=lines"));
    assert_eq!(sizes["size"]["config"]["num_rows"], 5);
    let (_, info) = viewer(&hub, None, &format!("/info?{q}"));
    assert_eq!(info["dataset_info"]["scores"]["features"]["score"]["dtype"], "int64");
    assert_eq!(info["dataset_info"]["lines"]["splits"]["train"]["num_examples"], 5);
    let (status, _) = viewer(&hub, None, &format!("/rows?{q}&config=default&split=test"));
    assert_eq!(status, 404, "the card's configs are all there is");

    // The export follows the configs; the hub's routes list it by config and split. Making it
    // is the hub's doing, not the owner's: the dataset's lastModified stays.
    let modified = || -> Value {
        reqwest::blocking::get(format!("{}/api/datasets/alice/poems", hub.url())).unwrap().json::<Value>().unwrap()["lastModified"].clone()
    };
    let before = modified();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let (_, listing) = {
        let resp = reqwest::blocking::Client::new().get(format!("{}/api/datasets/alice/poems/parquet/lines", hub.url())).send().unwrap();
        (resp.status(), resp.json::<Value>().unwrap())
    };
    assert_eq!(listing, json!({"train": [format!("{}/api/datasets/alice/poems/parquet/lines/train/0.parquet", hub.url())]}));
    assert_eq!(modified(), before);

    // A card whose configs make no sense is the viewer's clear error.
    commit(&hub, "alice/poems", &[("README.md", b"---\nconfigs: 3\n---\n".to_vec())]);
    let (status, body) = viewer(&hub, None, &format!("/splits?{q}"));
    assert_eq!((status, body["code"].as_str().unwrap()), (422, "ConfigNamesError"), "{body}");
}

/// A 28×28 grayscale PNG.
fn png_of(pixels: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, 28, 28);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.write_header().unwrap().write_image_data(pixels).unwrap();
    out
}

#[test]
fn folders_of_mnist_pngs_are_splits_labelled_by_folder_or_described_by_metadata() {
    let mnist = commons_data::fetch("mnist").expect("the MNIST data");
    let images = std::fs::read(mnist.join("train-images-idx3-ubyte")).unwrap();
    let labels = std::fs::read(mnist.join("train-labels-idx1-ubyte")).unwrap();
    let image = |i: usize| png_of(&images[16 + i * 784..16 + (i + 1) * 784]);
    // 40 digits: the first 30 for train, the next 10 for test, each in a folder named for it.
    let mut files: Vec<(String, Vec<u8>)> =
        (0..40).map(|i| (format!("{}/{}/{i:03}.png", if i < 30 { "train" } else { "test" }, labels[8 + i]), image(i))).collect();
    let hub = Hub::start();
    create(&hub, "digits", false);
    let borrowed: Vec<(&str, Vec<u8>)> = files.iter().map(|(p, b)| (p.as_str(), b.clone())).collect();
    commit(&hub, "alice/digits", &borrowed);
    let q = "dataset=alice/digits";
    let (_, splits) = viewer(&hub, None, &format!("/splits?{q}"));
    let names: Vec<&str> = splits["splits"].as_array().unwrap().iter().map(|s| s["split"].as_str().unwrap()).collect();
    assert_eq!(names, ["train", "test"]);
    let (status, page) = viewer(&hub, None, &format!("/rows?{q}&config=default&split=train&offset=0&length=30"));
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["num_rows_total"], 30);
    let mut classes: Vec<String> = (0..30).map(|i| labels[8 + i].to_string()).collect();
    classes.sort();
    classes.dedup();
    assert_eq!(page["features"][1]["type"], json!({"_type": "ClassLabel", "names": classes}));
    // Rows come in path order: folder, then file.
    files.truncate(30);
    files.sort();
    for (row, (path, png)) in page["rows"].as_array().unwrap().iter().zip(&files) {
        let folder = path.split('/').nth(1).unwrap();
        assert_eq!(row["row"]["label"], classes.iter().position(|c| c == folder).unwrap());
        assert_eq!((row["row"]["image"]["width"].as_u64(), row["row"]["image"]["height"].as_u64()), (Some(28), Some(28)));
        let src = row["row"]["image"]["src"].as_str().unwrap();
        assert!(src.ends_with(path.as_str()), "{src}");
        assert_eq!(&reqwest::blocking::get(src).unwrap().bytes().unwrap()[..], &png[..], "{src} is the image");
    }
    let (_, stats) = viewer(&hub, None, &format!("/statistics?{q}&config=default&split=train"));
    let total: u64 =
        stats["statistics"][0]["column_statistics"]["frequencies"].as_object().unwrap().values().map(|v| v.as_u64().unwrap()).sum();
    assert_eq!(total, 30);

    // The export: each image's bytes and name in the `datasets` Image struct, and its label.
    let url = format!("{}/api/datasets/alice/digits/parquet/default/train/0.parquet", hub.url());
    let bytes = reqwest::blocking::get(url).unwrap().bytes().unwrap();
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes).unwrap();
    let features: Value = serde_json::from_str(&reader.schema().metadata()["huggingface"]).unwrap();
    assert_eq!(features["info"]["features"]["label"], json!({"names": classes, "_type": "ClassLabel"}));
    let batch = reader.build().unwrap().next().unwrap().unwrap();
    assert_eq!(batch.num_rows(), 30);
    let exported = batch.column_by_name("image").unwrap().as_any().downcast_ref::<arrow_array::StructArray>().unwrap();
    let pngs = exported.column_by_name("bytes").unwrap().as_any().downcast_ref::<arrow_array::BinaryArray>().unwrap();
    let exported_labels = batch.column_by_name("label").unwrap().as_any().downcast_ref::<arrow_array::Int64Array>().unwrap();
    for (i, (path, png)) in files.iter().enumerate() {
        assert_eq!(pngs.value(i), &png[..], "{path}'s bytes");
        let folder = path.split('/').nth(1).unwrap();
        assert_eq!(exported_labels.value(i) as usize, classes.iter().position(|c| c == folder).unwrap());
    }

    // Described by a metadata file instead: its columns, joined on file_name.
    create(&hub, "captioned", false);
    let metadata = b"{\"file_name\": \"a.png\", \"caption\": \"a five\"}\n{\"file_name\": \"b.png\", \"caption\": \"a zero\"}\n";
    commit(
        &hub,
        "alice/captioned",
        &[("pics/a.png", image(0)), ("pics/b.png", image(1)), ("pics/c.png", image(2)), ("pics/metadata.jsonl", metadata.to_vec())],
    );
    let (_, page) = viewer(&hub, None, "/first-rows?dataset=alice/captioned&config=default&split=train");
    let captions: Vec<&str> = page["rows"].as_array().unwrap().iter().map(|r| r["row"]["caption"].as_str().unwrap()).collect();
    assert_eq!(captions, ["a five", "a zero"], "c.png has no description, so no row");
    assert_eq!(page["features"][1]["name"], "caption");
}

#[test]
fn a_csv_split_too_large_to_parse_whole_is_read_from_its_streamed_parquet_export() {
    let mnist = commons_data::fetch("mnist").expect("the MNIST data");
    let images = std::fs::read(mnist.join("train-images-idx3-ubyte")).unwrap();
    let labels = std::fs::read(mnist.join("train-labels-idx1-ubyte")).unwrap();
    const ROWS: usize = 6000;
    let mut csv = csv::Writer::from_writer(Vec::new());
    csv.write_record(["index", "label", "mean", "pixels"]).unwrap();
    let mean = |i: usize| images[16 + i * 784..16 + (i + 1) * 784].iter().map(|&p| f64::from(p)).sum::<f64>() / 784.0;
    let hex = |i: usize| images[16 + i * 784..16 + (i + 1) * 784].iter().map(|p| format!("{p:02x}")).collect::<String>();
    for i in 0..ROWS {
        csv.write_record([i.to_string(), labels[8 + i].to_string(), format!("{}", mean(i)), hex(i)]).unwrap();
    }
    let csv = csv.into_inner().unwrap();
    assert!(csv.len() > 8 << 20, "{} bytes: more than the viewer parses whole", csv.len());

    let hub = Hub::start();
    create(&hub, "pixels", false);
    commit(&hub, "alice/pixels", &[("train.csv", csv)]);
    let q = "dataset=alice/pixels&config=default&split=train";
    let (status, page) = viewer(&hub, None, &format!("/rows?{q}&offset=5000&length=3"));
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["num_rows_total"], ROWS);
    for (k, row) in page["rows"].as_array().unwrap().iter().enumerate() {
        let i = 5000 + k;
        assert_eq!(row["row_idx"], i);
        assert_eq!(row["row"], json!({"index": i, "label": labels[8 + i], "mean": mean(i), "pixels": hex(i)}));
    }
    let types: Vec<&str> = page["features"].as_array().unwrap().iter().map(|f| f["type"]["dtype"].as_str().unwrap()).collect();
    assert_eq!(types, ["int64", "int64", "float64", "string"]);
    let (_, stats) = viewer(&hub, None, &format!("/statistics?{q}"));
    assert_eq!(stats["partial"], false);
    let label = stats["statistics"].as_array().unwrap().iter().find(|s| s["column_name"] == "label").unwrap();
    let hist: u64 = label["column_statistics"]["histogram"]["hist"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).sum();
    assert_eq!(hist, ROWS as u64);
    let (_, export) = viewer(&hub, None, "/parquet?dataset=alice/pixels");
    assert_eq!(export["parquet_files"][0]["split"], "train");
    assert_eq!(export["failed"], json!([]));
}

#[test]
fn a_json_lines_split_answers_its_first_rows_and_statistics() {
    let data = commons_data::fetch("uci-sentiment").expect("the UCI sentiment data");
    let amazon: Vec<Value> = serde_json::from_slice(&std::fs::read(data.join("amazon.json")).unwrap()).unwrap();
    let lines: String = amazon.iter().map(|r| format!("{r}\n")).collect();
    let hub = Hub::start();
    create(&hub, "amazon", false);
    commit(&hub, "alice/amazon", &[("train.jsonl", lines.into_bytes())]);
    let q = "dataset=alice/amazon&config=default&split=train";
    let (status, first) = viewer(&hub, None, &format!("/first-rows?{q}"));
    assert_eq!(status, 200, "{first}");
    let names: Vec<&str> = first["features"].as_array().unwrap().iter().map(|f| f["name"].as_str().unwrap()).collect();
    let keys: Vec<&str> = amazon[0].as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(names.len(), keys.len());
    for (k, row) in first["rows"].as_array().unwrap().iter().enumerate() {
        assert_eq!(row["row"]["text"], amazon[k]["text"]);
        assert_eq!(row["row"]["class"], amazon[k]["class"]);
    }
    let (_, stats) = viewer(&hub, None, &format!("/statistics?{q}"));
    assert_eq!(stats["num_examples"], amazon.len());
    let class = stats["statistics"].as_array().unwrap().iter().find(|s| s["column_name"] == "class").unwrap();
    let hist: Vec<u64> = class["column_statistics"]["histogram"]["hist"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
    let count = |c: i64| amazon.iter().filter(|r| r["class"] == c).count() as u64;
    assert_eq!(hist, [count(0), count(1)]);
}
