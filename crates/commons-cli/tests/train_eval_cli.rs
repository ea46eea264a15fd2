//! `commons train` writes a model directory whose metrics.json holds the test metrics,
//! `commons eval` on that directory prints the same metrics, and `commons predict` classifies a
//! sentence with it (images: `inference.rs`).

use std::process::Command;

#[test]
fn train_then_eval_through_the_cli() {
    let data = commons_data::fetch("uci-sentiment").expect("UCI sentiment must be fetchable");
    let out = tempfile::tempdir().expect("tempdir");
    let model_dir = out.path().join("sentiment-model");
    let train = Command::new(env!("CARGO_BIN_EXE_commons"))
        .args(["train", "lstm-sentiment", "--data"])
        .arg(&data)
        .arg("--out")
        .arg(&model_dir)
        .args(["--set", "training.epochs=1", "--set", "layers.2.hidden=16"])
        .output()
        .expect("run commons train");
    assert!(train.status.success(), "commons train failed: {}", String::from_utf8_lossy(&train.stderr));
    let stdout = String::from_utf8_lossy(&train.stdout);
    assert_eq!(stdout.lines().last(), Some(model_dir.to_string_lossy().as_ref()), "the model directory is the last line");

    let metrics: serde_json::Value =
        serde_json::from_slice(&std::fs::read(model_dir.join("metrics.json")).expect("metrics.json")).expect("JSON");
    let accuracy = metrics["test"]["accuracy"].as_f64().expect("test.accuracy");
    assert!(metrics["test"]["loss"].as_f64().is_some_and(f64::is_finite));
    assert!((0.5..=1.0).contains(&accuracy), "one epoch should beat chance: {accuracy}");
    for file in ["model.safetensors", "config.json", "README.md", "training_curves.svg"] {
        assert!(model_dir.join(file).is_file(), "{file} missing");
    }

    let eval = Command::new(env!("CARGO_BIN_EXE_commons"))
        .arg("eval")
        .arg(&model_dir)
        .arg("--data")
        .arg(&data)
        .args(["--split", "test"])
        .output()
        .expect("run commons eval");
    assert!(eval.status.success(), "commons eval failed: {}", String::from_utf8_lossy(&eval.stderr));
    let report: serde_json::Value = serde_json::from_slice(&eval.stdout).expect("eval prints JSON");
    assert_eq!(report["accuracy"].as_f64(), Some(accuracy));
    assert_eq!(report["loss"], metrics["test"]["loss"]);
    assert_eq!(report["confusion_matrix"], metrics["test"]["confusion_matrix"]);

    // The trained model classifies a sentence a person types, with the recipe's class names.
    let predict = |input: &str| {
        Command::new(env!("CARGO_BIN_EXE_commons"))
            .arg("predict")
            .arg(&model_dir)
            .args(["--input", input, "--json"])
            .output()
            .expect("run commons predict")
    };
    let answer = predict("The battery life is great and the screen is wonderful.");
    assert!(answer.status.success(), "commons predict failed: {}", String::from_utf8_lossy(&answer.stderr));
    let classes: Vec<serde_json::Value> = serde_json::from_slice(&answer.stdout).expect("predict --json prints JSON");
    let labels: Vec<&str> = classes.iter().map(|c| c["label"].as_str().unwrap()).collect();
    assert!(labels == ["positive", "negative"] || labels == ["negative", "positive"], "{labels:?}");
    let scores: Vec<f64> = classes.iter().map(|c| c["score"].as_f64().unwrap()).collect();
    assert!(scores[0] >= scores[1] && (scores.iter().sum::<f64>() - 1.0).abs() < 1e-4, "probabilities, most likely first: {scores:?}");
    let empty = predict("  ... ");
    assert!(!empty.status.success());
    assert!(String::from_utf8_lossy(&empty.stderr).contains("the text is empty"), "{}", String::from_utf8_lossy(&empty.stderr));

    let bad = Command::new(env!("CARGO_BIN_EXE_commons")).args(["train", "no-such-recipe"]).output().expect("run");
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown recipe `no-such-recipe`"));
}
