//! Acceptance: the LSTM sentiment classifier reaches >= 75% test accuracy on the fixed 80/20
//! split of the pooled UCI sentiment sentences; training is bit-for-bit reproducible.

use commons_engine::{evaluate_model_dir, run_training};
use commons_recipe::recipe::load_with;

#[test]
fn lstm_sentiment_reaches_75_percent_on_the_fixed_split() {
    let data = commons_data::fetch("uci-sentiment").expect("UCI sentiment must be fetchable (npm sentiment@5.0.2)");
    let out = tempfile::tempdir().expect("tempdir");
    let summary =
        run_training(&load_with("lstm-sentiment", &[]).expect("recipe"), Some(&data), out.path(), &mut |_| {}).expect("training runs");
    println!("lstm-sentiment test metrics: {:?} in {:.1}s", summary.test, summary.wall_seconds);
    assert_eq!(summary.test.examples, 600, "20% of 3,000 sentences");
    assert!(summary.test.accuracy >= 0.75, "test accuracy {} below 75%", summary.test.accuracy);
    assert!(summary.test.macro_f1 >= 0.74, "macro F1 {}", summary.test.macro_f1);
    let evaluated = evaluate_model_dir(out.path(), Some(&data), "test").expect("eval");
    assert_eq!(evaluated, summary.test, "the saved model and vocabulary reproduce the test metrics");

    // Batch inference over the same split: a class per sentence, right exactly as often as the
    // evaluation says; a shard is the same rows of the whole, bit for bit.
    let (whole, flops) = commons_engine::predict::predict_split(out.path(), Some(&data), "test", None).expect("predict");
    assert_eq!((whole.first_row, whole.len(), whole.labels.len()), (0, 600, 2));
    assert_eq!(whole.problem(), None);
    assert!(flops > 0.0);
    let hits = whole.classes.iter().zip(&whole.targets).filter(|(p, t)| p == t).count();
    assert_eq!(hits as f64 / 600.0, summary.test.accuracy);
    let (shard, _) = commons_engine::predict::predict_split(out.path(), Some(&data), "test", Some((1, 3))).expect("predict a shard");
    assert_eq!(shard.first_row, 200);
    assert_eq!(shard.classes, whole.classes[200..400]);
    assert_eq!(shard.targets, whole.targets[200..400]);
    let bits = |scores: &[f32]| scores.iter().map(|s| s.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&shard.scores), bits(&whole.scores[200..400]));
}

#[test]
fn same_seed_gives_identical_weights_and_metrics() {
    let data = commons_data::fetch("uci-sentiment").expect("UCI sentiment must be fetchable");
    let quick = ["training.epochs=1".to_string(), "layers.2.hidden=16".to_string()];
    let run = |overrides: &[String]| {
        let out = tempfile::tempdir().expect("tempdir");
        run_training(&load_with("lstm-sentiment", overrides).expect("recipe"), Some(&data), out.path(), &mut |_| {})
            .expect("training runs");
        let weights = std::fs::read(out.path().join("model.safetensors")).expect("weights");
        (out, weights)
    };
    let (first_dir, first) = run(&quick);
    let (_second_dir, second) = run(&quick);
    assert!(first == second, "same recipe, data, seed and threads must give bit-identical weights");
    let mut other_seed = quick.to_vec();
    other_seed.push("training.seed=8".into());
    let (_third_dir, third) = run(&other_seed);
    assert!(first != third, "a different seed must give different weights");

    let a = evaluate_model_dir(first_dir.path(), Some(&data), "test").expect("eval");
    let b = evaluate_model_dir(first_dir.path(), Some(&data), "test").expect("eval");
    assert_eq!(a.loss.to_bits(), b.loss.to_bits());
    assert_eq!(a, b);
}
