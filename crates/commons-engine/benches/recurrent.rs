//! Recurrent training steps per second on the shapes of the `lstm-sentiment` recipe: batch 32,
//! 32 tokens, embedding 64 of a 4,493-word vocabulary, one LSTM or GRU layer of 64 max-pooled
//! over time, dropout 0.3, dense 2; Adam 3e-3 with gradient clipping at 5. Token ids are seeded
//! random (the arithmetic does not depend on them). `benches/recurrent_vs_pytorch.sh` runs it
//! beside `benches/recurrent_bench.py`, the same network on PyTorch's `nn.LSTM` / `nn.GRU`.
//!
//! `cargo bench --profile dev -p commons-engine --bench recurrent -- lstm|gru THREADS STEPS`
//! prints one JSON line: `{"framework", "kind", "threads", "steps", "seconds", "steps_per_second"}`.

use std::collections::BTreeMap;

use commons_engine::data::{Examples, PreparedData};
use commons_engine::model::{DataDims, InputKind, SeededRng};
use commons_recipe::model_dir::DatasetInfo;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const BATCH: usize = 32;
const TOKENS: usize = 32;
const VOCAB: usize = 4_493;

fn recipe(kind: &str, threads: usize) -> String {
    format!(
        r#"
format_version = 1
name = "recurrent-bench"
kind = "classification"
[data]
format = "json-text"
dataset = "synthetic"
input_shape = [{TOKENS}]
num_classes = 2
[[layers]]
type = "embedding"
vocab_size = {VOCAB}
dim = 64
[[layers]]
type = "dropout"
rate = 0.3
[[layers]]
type = "{kind}"
hidden = 64
pool = "max"
[[layers]]
type = "dropout"
rate = 0.3
[[layers]]
type = "dense"
units = 2
activation = "softmax"
[training]
loss = "sparse-categorical-crossentropy"
batch_size = {BATCH}
epochs = 1
seed = 7
grad_clip_norm = 5.0
threads = {threads}
[training.optimizer]
kind = "adam"
lr = 0.003
"#
    )
}

fn examples(count: usize, rng: &mut SeededRng) -> Examples {
    Examples {
        count,
        features: Vec::new(),
        tokens: (0..count * TOKENS).map(|_| 2 + rng.below(VOCAB - 2) as u32).collect(),
        targets: (0..count).map(|_| rng.below(2) as u32).collect(),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let [kind, threads, steps] = args.as_slice() else {
        eprintln!("usage: recurrent lstm|gru THREADS STEPS");
        std::process::exit(2);
    };
    let threads: usize = threads.parse().expect("THREADS is a number");
    let steps: usize = steps.parse().expect("STEPS is a number");
    let loaded = commons_recipe::recipe::parse(&recipe(kind, threads), "recurrent-bench.toml").expect("the bench recipe");
    let mut rng = SeededRng::new(11);
    let data = PreparedData {
        train: examples(steps * BATCH, &mut rng),
        validation: None,
        test: examples(BATCH, &mut rng),
        input: InputKind::Tokens { sequence_length: TOKENS, vocab_size: VOCAB },
        dims: DataDims { num_classes: 2, vocab_size: VOCAB },
        vocabulary: None,
        info: DatasetInfo { name: "synthetic".into(), files: BTreeMap::new() },
    };
    let trained = commons_engine::train::train(&loaded, &data, &mut |_| {}).expect("training");
    let seconds = trained.history[0].seconds;
    println!(
        "{}",
        serde_json::json!({
            "framework": "commons",
            "kind": kind,
            "threads": threads,
            "steps": steps,
            "seconds": seconds,
            "steps_per_second": steps as f64 / seconds,
        })
    );
}
