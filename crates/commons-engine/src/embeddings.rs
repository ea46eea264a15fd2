//! Word-embedding recipes (`word2vec-skipgram`, `word2vec-cbow`, `glove`) are trained by the
//! hand-written trainers of `commons-embeddings`; this module maps a recipe onto that crate's
//! configuration and writes its model directory.

use std::path::Path;

use commons_embeddings::model_dir::{self, EmbeddingAlgorithm, RunRecord};

use crate::error::EngineError;
use commons_recipe::recipe::{LoadedRecipe, RecipeKind};

fn embeddings_error(loaded: &LoadedRecipe, reason: String) -> EngineError {
    EngineError::Embeddings { kind: loaded.recipe.name.clone(), reason }
}

/// The algorithm and hyperparameters a recipe describes: the built-in defaults for its kind,
/// then the recipe's `[training]` seed/epochs/threads/learning rate, then every key of its
/// `[training.embedding]` table (with the trainer's own names, e.g. `window`, `negative`).
pub fn algorithm_for(loaded: &LoadedRecipe) -> Result<EmbeddingAlgorithm, EngineError> {
    let recipe = &loaded.recipe;
    let builtin_name = match recipe.kind {
        RecipeKind::Word2vecSkipgram => "word2vec-skipgram",
        RecipeKind::Word2vecCbow => "word2vec-cbow",
        RecipeKind::Glove => "glove",
        _ => return Err(embeddings_error(loaded, "not an embedding recipe".into())),
    };
    let base = EmbeddingAlgorithm::builtin(builtin_name)
        .ok_or_else(|| embeddings_error(loaded, format!("commons-embeddings has no `{builtin_name}`")))?;
    let mut table: toml::Table = toml::Table::try_from(&base).map_err(|e| embeddings_error(loaded, e.to_string()))?;
    let training = &recipe.training;
    table.insert("seed".into(), toml::Value::Integer(training.seed as i64));
    table.insert("epochs".into(), toml::Value::Integer(training.epochs as i64));
    table.insert("threads".into(), toml::Value::Integer(training.threads as i64));
    let lr_key = if recipe.kind == RecipeKind::Glove { "learning_rate" } else { "alpha" };
    let lr = training.optimizer.lr();
    table.insert(lr_key.into(), toml::Value::Float(lr));
    if let Some(extra) = &training.embedding {
        for (key, value) in extra {
            table.insert(key.clone(), value.clone());
        }
    }
    table.try_into().map_err(|e: toml::de::Error| embeddings_error(loaded, format!("[training.embedding]: {}", e.message())))
}

/// Train on the corpus at `corpus_dir` (a fetched corpus data set named by `data.dataset`),
/// evaluate on the gensim analogy/similarity sets, and write the model directory. Returns the
/// headline test metrics.
pub fn train_embeddings(
    loaded: &LoadedRecipe,
    corpus_dir: &Path,
    out_dir: &Path,
    on_fraction: &mut dyn FnMut(f64, Option<f64>),
) -> Result<serde_json::Value, EngineError> {
    let algorithm = algorithm_for(loaded)?;
    let dataset = &loaded.recipe.data.dataset;
    let corpus = commons_data::corpus::Corpus::for_dataset(dataset, corpus_dir)
        .map_err(|source| EngineError::DataSource { context: format!("reading corpus `{dataset}`"), source })?;
    let (embeddings, statistics) = model_dir::train(&algorithm, &corpus, &mut |p| on_fraction(p.fraction, p.words_per_sec))
        .map_err(|e| embeddings_error(loaded, e.to_string()))?;
    let eval_dir = commons_data::fetch("gensim-test-data")
        .map_err(|source| EngineError::DataSource { context: "fetching the analogy and similarity sets".into(), source })?;
    let metrics = model_dir::evaluate_standard(&embeddings, &eval_dir).map_err(|e| embeddings_error(loaded, e.to_string()))?;
    std::fs::create_dir_all(out_dir).map_err(|e| EngineError::io(format!("creating {}", out_dir.display()), e))?;
    let record = RunRecord { algorithm: &algorithm, dataset, training: &statistics, metrics: &metrics };
    model_dir::write_model_dir(out_dir, &embeddings, &record).map_err(|e| embeddings_error(loaded, e.to_string()))?;
    Ok(metrics.headline())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_embedding_recipes_map_onto_the_trainer_configs() {
        for name in ["word2vec-skipgram", "word2vec-cbow", "glove"] {
            let loaded = commons_recipe::recipe::load(name).expect("builtin");
            let algorithm = algorithm_for(&loaded).expect("maps");
            assert_eq!(algorithm.name(), name);
        }
        let cbow = commons_recipe::recipe::with_overrides(
            &commons_recipe::recipe::load("word2vec-cbow").expect("builtin"),
            &["training.embedding.window=3".into()],
        )
        .expect("override");
        let EmbeddingAlgorithm::Word2vec(config) = algorithm_for(&cbow).expect("maps") else { panic!("word2vec expected") };
        assert_eq!(config.window, 3);
        let typo = commons_recipe::recipe::with_overrides(
            &commons_recipe::recipe::load("glove").expect("builtin"),
            &["training.embedding.windw=3".into()],
        )
        .expect("syntax ok");
        let error = algorithm_for(&typo).expect_err("unknown key").to_string();
        assert!(error.contains("windw"), "{error}");
    }
}
