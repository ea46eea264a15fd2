//! ONNX: a Commons MLP written as ONNX (`commons export-onnx`) is a valid model by the `onnx`
//! package's checker and gives the class the native model gives on every MNIST test image; an
//! ONNX model built elsewhere (here with the `onnx` package, weights the test computed) is
//! scored by `commons eval` exactly as the test scores those weights itself; an ONNX model
//! published on a hub answers the inference route.

mod support;

use std::path::Path;
use std::process::Command;

use support::{BIN, Hub, centroid_onnx_model, commons, mnist_png, python_onnx, train_mnist_mlp};

fn eval_json(model_dir: &Path, data: &Path) -> serde_json::Value {
    let out = commons(&["eval", model_dir.to_str().unwrap(), "--data", data.to_str().unwrap(), "--split", "test"]);
    serde_json::from_slice(&out.stdout).expect("eval prints JSON")
}

#[test]
fn an_exported_mlp_passes_the_onnx_checker_and_classifies_every_test_image_as_the_native_model_does() {
    let data = commons_data::fetch("mnist").expect("MNIST must be fetchable");
    let out = tempfile::tempdir().expect("tempdir");
    let native = out.path().join("mlp");
    train_mnist_mlp(&data, &native);
    let exported = out.path().join("mlp-onnx");
    commons(&["export-onnx", native.to_str().unwrap(), "--out", exported.to_str().unwrap()]);
    let onnx_file = exported.join("model.onnx");
    assert!(onnx_file.is_file() && exported.join("config.json").is_file());
    assert!(!exported.join("model.safetensors").exists(), "the ONNX directory holds the graph, not our weights");

    let ops = python_onnx(&["check", onnx_file.to_str().unwrap()]);
    assert_eq!(
        ops.split_whitespace().collect::<Vec<_>>(),
        ["Flatten", "MatMul", "Add", "Relu", "Identity", "MatMul", "Add", "Identity", "Identity"],
        "{ops}"
    );

    let native_classes = commons_engine::onnx::predicted_classes(&native, Some(&data), "test").expect("native predictions");
    let onnx_classes = commons_engine::onnx::predicted_classes(&exported, Some(&data), "test").expect("ONNX predictions");
    assert_eq!(native_classes.len(), 10_000);
    let differing: Vec<usize> = (0..10_000).filter(|&i| native_classes[i] != onnx_classes[i]).collect();
    assert!(differing.is_empty(), "images classified differently: {differing:?}");

    let native_report = eval_json(&native, &data);
    let onnx_report = eval_json(&exported, &data);
    assert_eq!(onnx_report["accuracy"], native_report["accuracy"]);
    assert_eq!(onnx_report["confusion_matrix"], native_report["confusion_matrix"]);
    let (a, b) = (onnx_report["loss"].as_f64().unwrap(), native_report["loss"].as_f64().unwrap());
    assert!((a - b).abs() < 1e-4, "the same loss to float rounding: {a} vs {b}");
    assert!(native_report["accuracy"].as_f64().unwrap() > 0.9, "{native_report}");

    // The exported model answers `commons predict` as the native one does: a digit as a PNG a
    // person saved, every class with its probability; text is refused with the reason.
    let images = commons_data::idx::read_images(&data.join("t10k-images-idx3-ubyte")).expect("MNIST test images");
    let png = out.path().join("digit.png");
    mnist_png(&images, 0, 2, &png);
    let predict =
        |dir: &Path, input: &str| Command::new(BIN).arg("predict").arg(dir).args(["--input", input, "--json"]).output().expect("run");
    let (from_native, from_onnx) = (predict(&native, png.to_str().unwrap()), predict(&exported, png.to_str().unwrap()));
    assert!(from_onnx.status.success(), "{}", String::from_utf8_lossy(&from_onnx.stderr));
    let classes = |out: &std::process::Output| -> Vec<(String, f64)> {
        let answer: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).expect("predict --json prints JSON");
        answer.iter().map(|c| (c["label"].as_str().unwrap().to_string(), c["score"].as_f64().unwrap())).collect()
    };
    let (native_answer, onnx_answer) = (classes(&from_native), classes(&from_onnx));
    assert_eq!(onnx_answer.len(), 10);
    assert_eq!(onnx_answer[0].0, native_answer[0].0, "the same class first: {onnx_answer:?} vs {native_answer:?}");
    assert!((onnx_answer[0].1 - native_answer[0].1).abs() < 1e-4 && (onnx_answer.iter().map(|c| c.1).sum::<f64>() - 1.0).abs() < 1e-4);
    let text = predict(&exported, "a sentence");
    assert!(!text.status.success() && String::from_utf8_lossy(&text.stderr).contains("image"), "{}", String::from_utf8_lossy(&text.stderr));

    // Published on a hub, the ONNX directory answers the inference route as the HF Inference API
    // does (the PNG's bytes as the body, what `InferenceClient.image_classification` sends): the
    // same classes and probabilities as `commons predict`.
    let hub = Hub::start();
    let hf_home = tempfile::tempdir().unwrap();
    let cli = |args: &[&str]| {
        let out = hub.cli(hf_home.path(), args);
        assert!(out.status.success(), "commons {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    cli(&["repo", "create", "alice/mnist-onnx"]);
    cli(&["upload", "alice/mnist-onnx", exported.to_str().unwrap()]);
    let http = reqwest::blocking::Client::new();
    let route = format!("{}/hf-inference/models/alice/mnist-onnx", hub.url());
    let answer = http.post(&route).bearer_auth(&hub.token).body(std::fs::read(&png).unwrap()).send().unwrap();
    assert_eq!(answer.status().as_u16(), 200);
    let served: Vec<serde_json::Value> = answer.json().unwrap();
    assert_eq!(served.len(), 10);
    assert_eq!(served[0]["label"], onnx_answer[0].0.as_str(), "{served:?}");
    assert!((served[0]["score"].as_f64().unwrap() - onnx_answer[0].1).abs() < 1e-4, "{served:?} vs {onnx_answer:?}");
    // Text to an image model is refused with the reason, as a JSON error.
    let refused = http.post(&route).bearer_auth(&hub.token).json(&serde_json::json!({"inputs": "a sentence"})).send().unwrap();
    assert_eq!(refused.status().as_u16(), 400);
    let refused: serde_json::Value = refused.json().unwrap();
    assert!(refused["error"].is_string() && refused["message"].is_string(), "{refused}");
    // A hostile graph beside the same config: a few hundred bytes whose Expand would make 3 TB
    // from one image. Refused from its shapes before anything runs, and the hub goes on serving.
    let hostile = out.path().join("hostile-onnx");
    std::fs::create_dir_all(&hostile).unwrap();
    std::fs::copy(exported.join("config.json"), hostile.join("config.json")).unwrap();
    python_onnx(&["expand", hostile.join("model.onnx").to_str().unwrap()]);
    cli(&["repo", "create", "alice/hostile-onnx"]);
    cli(&["upload", "alice/hostile-onnx", hostile.to_str().unwrap()]);
    let refused = http
        .post(format!("{}/hf-inference/models/alice/hostile-onnx", hub.url()))
        .bearer_auth(&hub.token)
        .body(std::fs::read(&png).unwrap())
        .send()
        .unwrap();
    assert_eq!(refused.status().as_u16(), 400);
    let refused: serde_json::Value = refused.json().unwrap();
    assert_eq!(refused["code"], "ModelNotRunnable", "{refused}");
    assert!(refused["message"].as_str().unwrap_or_default().contains("computes tensors of"), "{refused}");
    let again = http.post(&route).bearer_auth(&hub.token).body(std::fs::read(&png).unwrap()).send().unwrap();
    assert_eq!(again.status().as_u16(), 200, "the hub still serves the good model");

    // What cannot be exported says so.
    let missing = Command::new(BIN).args(["export-onnx", native.join("nope").to_str().unwrap(), "--out", "x"]).output().expect("run");
    assert!(
        !missing.status.success() && String::from_utf8_lossy(&missing.stderr).contains("config.json"),
        "{}",
        String::from_utf8_lossy(&missing.stderr)
    );
}

#[test]
fn an_onnx_model_built_elsewhere_is_scored_as_its_weights_score() {
    let data = commons_data::fetch("mnist").expect("MNIST must be fetchable");
    let dir = tempfile::tempdir().expect("tempdir");
    let (model_dir, expected) = centroid_onnx_model(dir.path(), &data);

    let report = eval_json(&model_dir, &data);
    let accuracy = report["accuracy"].as_f64().unwrap();
    assert!((accuracy - expected).abs() <= 2e-4, "ONNX through tract {accuracy} vs worked out {expected}");
    let loss = report["loss"].as_f64().unwrap();
    assert!(loss.is_finite() && loss > 0.0, "the loss of probabilities read back as logs: {report}");
    let matrix = report["confusion_matrix"].as_array().expect("confusion matrix");
    let total: u64 = matrix.iter().flat_map(|r| r.as_array().unwrap()).map(|v| v.as_u64().unwrap()).sum();
    assert_eq!(total, 10_000);

    // Not an ONNX file: a clear error, not a crash.
    std::fs::write(model_dir.join("model.onnx"), b"not a model").unwrap();
    let bad = Command::new(BIN).args(["eval", model_dir.to_str().unwrap(), "--data", data.to_str().unwrap()]).output().expect("run");
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("ONNX"), "{}", String::from_utf8_lossy(&bad.stderr));
}

/// A text classifier built with the `onnx` package: naive Bayes over the words of the UCI
/// sentiment sentences as a graph (`Gather` of each token id's row of log-likelihoods, their mean,
/// plus the log-priors), beside the `config.json` of a Commons text model whose vocabulary
/// gives the ids. `commons eval` scores it as the test scores those weights itself, and
/// `commons predict` answers a sentence with both classes.
#[test]
fn an_onnx_text_classifier_built_elsewhere_reads_the_vocabulary_of_its_config() {
    let data = commons_data::fetch("uci-sentiment").expect("UCI sentiment must be fetchable");
    let dir = tempfile::tempdir().expect("tempdir");
    // The vocabulary and the reading of the data: a quick Commons model's config.json.
    let native = dir.path().join("native");
    commons(&[
        "train",
        "lstm-sentiment",
        "--data",
        data.to_str().unwrap(),
        "--out",
        native.to_str().unwrap(),
        "--set",
        "training.epochs=1",
        "--set",
        "layers.2.hidden=8",
        "--set",
        "training.threads=1",
    ]);
    let config_text = std::fs::read_to_string(native.join("config.json")).unwrap();
    let config: commons_recipe::model_dir::ModelConfig = serde_json::from_str(&config_text).unwrap();
    let recipe = commons_recipe::recipe::parse(&config.recipe_toml, "config.json").unwrap();
    let vocabulary = config.vocabulary.clone().expect("a text model's vocabulary");
    let prepared = commons_engine::data::prepare(&recipe.recipe, &data, Some(vocabulary.clone())).expect("the sentences");
    let (train, test) = (prepared.split("train").unwrap(), prepared.split("test").unwrap());
    let length = recipe.recipe.data.input_shape[0];
    let (words, classes) = (vocabulary.len(), 2);

    // Naive Bayes with add-one smoothing; padding (id 0) weighs nothing.
    let mut counts = vec![[1f64; 2]; words];
    let mut docs = [0f64; 2];
    for (i, &label) in train.targets.iter().enumerate() {
        docs[label as usize] += 1.0;
        for &t in train.tokens[i * length..(i + 1) * length].iter().filter(|&&t| t != 0) {
            counts[t as usize][label as usize] += 1.0;
        }
    }
    let totals = [0, 1].map(|c| counts.iter().map(|row| row[c]).sum::<f64>());
    let mut table = vec![0f32; words * classes];
    for (t, row) in counts.iter().enumerate().skip(1) {
        for c in 0..classes {
            table[t * classes + c] = (row[c] / totals[c]).ln() as f32;
        }
    }
    // The graph takes the mean over all `length` positions: the priors are divided alike.
    let bias: Vec<f32> = (0..classes).map(|c| ((docs[c] / train.count as f64).ln() / length as f64) as f32).collect();
    let score = |tokens: &[u32], c: usize| -> f64 {
        tokens.iter().map(|&t| table[t as usize * classes + c] as f64).sum::<f64>() / length as f64 + bias[c] as f64
    };
    let correct = (0..test.count)
        .filter(|&i| {
            let tokens = &test.tokens[i * length..(i + 1) * length];
            usize::from(score(tokens, 1) > score(tokens, 0)) == test.targets[i] as usize
        })
        .count();
    let expected = correct as f64 / test.count as f64;
    assert!(expected > 0.7, "naive Bayes on these sentences is about 80%: {expected}");

    let model_dir = dir.path().join("bag");
    std::fs::create_dir_all(&model_dir).unwrap();
    let bytes = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    std::fs::write(dir.path().join("table.f32"), bytes(&table)).unwrap();
    std::fs::write(dir.path().join("bias.f32"), bytes(&bias)).unwrap();
    let (rows, cols, seq) = (words.to_string(), classes.to_string(), length.to_string());
    let graph = model_dir.join("model.onnx");
    let table_path = dir.path().join("table.f32");
    let bias_path = dir.path().join("bias.f32");
    python_onnx(&["bag", table_path.to_str().unwrap(), &rows, &cols, bias_path.to_str().unwrap(), &seq, graph.to_str().unwrap()]);
    std::fs::write(model_dir.join("config.json"), &config_text).unwrap();

    let report = eval_json(&model_dir, &data);
    assert_eq!(report["examples"], test.count);
    let accuracy = report["accuracy"].as_f64().unwrap();
    assert!((accuracy - expected).abs() <= 2.0 / test.count as f64, "ONNX through tract {accuracy} vs worked out {expected}");

    let answer =
        Command::new(BIN).arg("predict").arg(&model_dir).args(["--input", "a wonderful film, I loved it", "--json"]).output().unwrap();
    assert!(answer.status.success(), "{}", String::from_utf8_lossy(&answer.stderr));
    let ranked: serde_json::Value = serde_json::from_slice(&answer.stdout).unwrap();
    let ranked = ranked.as_array().unwrap();
    assert_eq!(ranked.len(), 2, "{ranked:?}");
    let total: f64 = ranked.iter().map(|c| c["score"].as_f64().unwrap()).sum();
    assert!((total - 1.0).abs() < 1e-5, "{ranked:?}");
    assert!(ranked[0]["score"].as_f64() >= ranked[1]["score"].as_f64());

    // Published on a hub, it answers the inference route as `InferenceClient.text_classification`
    // asks (`{"inputs": "..."}`): the same classes and probabilities.
    let hub = Hub::start();
    let hf_home = tempfile::tempdir().unwrap();
    for args in [&["repo", "create", "alice/bag-of-words"][..], &["upload", "alice/bag-of-words", model_dir.to_str().unwrap()]] {
        let out = hub.cli(hf_home.path(), args);
        assert!(out.status.success(), "commons {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    let http = reqwest::blocking::Client::new();
    let route = format!("{}/hf-inference/models/alice/bag-of-words", hub.url());
    let answer =
        http.post(&route).bearer_auth(&hub.token).json(&serde_json::json!({"inputs": "a wonderful film, I loved it"})).send().unwrap();
    assert_eq!(answer.status().as_u16(), 200);
    // One list of classes per input, as the Hub's text classification answers.
    let served: Vec<Vec<serde_json::Value>> = answer.json().unwrap();
    assert_eq!((served.len(), served[0].len()), (1, 2), "{served:?}");
    for (served, asked) in served[0].iter().zip(ranked) {
        assert_eq!(served["label"], asked["label"], "{served:?} vs {ranked:?}");
        assert!((served["score"].as_f64().unwrap() - asked["score"].as_f64().unwrap()).abs() < 1e-5, "{served:?} vs {ranked:?}");
    }
    let png = http.post(&route).bearer_auth(&hub.token).body(vec![0x89, b'P', b'N', b'G']).send().unwrap();
    assert_eq!(png.status().as_u16(), 400, "an image to a text model is refused");

    // Without its vocabulary the ids mean nothing: refused, not guessed.
    let mut bare = config.clone();
    bare.vocabulary = None;
    std::fs::write(model_dir.join("config.json"), serde_json::to_vec(&bare).unwrap()).unwrap();
    let refused = Command::new(BIN).args(["eval", model_dir.to_str().unwrap(), "--data", data.to_str().unwrap()]).output().unwrap();
    assert!(
        !refused.status.success() && String::from_utf8_lossy(&refused.stderr).contains("vocabulary"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
}
