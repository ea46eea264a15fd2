//! The character language model learns real text: its test perplexity beats the unigram
//! character model by a wide margin, and sampling is seeded.

use std::collections::HashMap;

use commons_engine::{evaluate_model_dir, run_training};
use commons_recipe::recipe::load_with;

#[test]
fn char_rnn_beats_the_unigram_baseline_and_samples_text() {
    let dir = commons_data::fetch("gensim-test-data").expect("gensim test data must be fetchable (pip gensim==4.4.0)");
    let corpus = dir.join("lee_background.cor");
    let out = tempfile::tempdir().expect("tempdir");
    let overrides = ["training.epochs=2".to_string(), "layers.1.hidden=64".to_string(), "data.dataset=gensim-lee-background".to_string()];
    let summary =
        run_training(&load_with("char-rnn", &overrides).expect("recipe"), Some(&corpus), out.path(), &mut |_| {}).expect("training runs");
    let perplexity = summary.test.perplexity.expect("a language model reports perplexity");
    println!("char-rnn test: {:?}", summary.test);

    // Unigram baseline on the same contiguous splits: 85% train, last 10% test.
    let text = std::fs::read_to_string(&corpus).expect("corpus") + "\n";
    let chars: Vec<char> = text.chars().collect();
    let n = chars.len();
    let train_end = (0.85 * n as f64) as usize;
    let test_start = train_end + (0.05 * n as f64) as usize;
    let mut counts: HashMap<char, f64> = HashMap::new();
    for c in &chars[..train_end] {
        *counts.entry(*c).or_default() += 1.0;
    }
    let total = train_end as f64;
    let test = &chars[test_start..];
    let nll: f64 = test.iter().map(|c| -(counts.get(c).copied().unwrap_or(0.5) / total).ln()).sum::<f64>() / test.len() as f64;
    let unigram = nll.exp();
    assert!(perplexity < unigram * 0.6, "char-rnn perplexity {perplexity:.2} should be well below unigram {unigram:.2}");

    let again = evaluate_model_dir(out.path(), Some(&corpus), "test").expect("eval");
    assert_eq!(again, summary.test);

    let sample = commons_engine::sample::sample_text(out.path(), "the ", 40, 0.8, 3).expect("sampling");
    assert_eq!(sample.chars().count(), 44);
    assert!(sample.starts_with("the "));
    assert_eq!(sample, commons_engine::sample::sample_text(out.path(), "the ", 40, 0.8, 3).expect("sampling"));
}
