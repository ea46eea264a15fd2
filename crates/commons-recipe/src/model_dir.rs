//! A trained model directory's `config.json`: everything needed to rebuild the network and
//! re-read the data, and what the coordinator reads to learn a model's recipe.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `config.json`: everything needed to rebuild the network and re-read the data.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelConfig {
    pub engine: String,
    pub engine_version: String,
    pub recipe_name: String,
    /// The recipe exactly as trained (overrides applied), in TOML.
    pub recipe_toml: String,
    /// The resolved recipe as JSON, for readers without a TOML parser.
    pub recipe: serde_json::Value,
    pub seed: u64,
    pub threads: usize,
    pub hyperparameters: serde_json::Value,
    pub dataset: DatasetInfo,
    /// Output shape of every layer, `layers.<i>` in the safetensors names.
    pub layer_shapes: Vec<Vec<usize>>,
    pub input: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub vocabulary: Option<Vocabulary>,
}

/// A token vocabulary: index 0 is padding, 1 the unknown token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Vocabulary {
    /// `word` for word-level models, one character for character-level ones.
    pub tokens: Vec<String>,
}

pub const PAD: u32 = 0;
pub const UNK: u32 = 1;

impl Vocabulary {
    /// Token → id.
    pub fn index(&self) -> BTreeMap<&str, u32> {
        self.tokens.iter().enumerate().map(|(i, t)| (t.as_str(), i as u32)).collect()
    }
    pub fn len(&self) -> usize {
        self.tokens.len()
    }
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }
}

/// Provenance of the data a run used, for config.json and the model card.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DatasetInfo {
    pub name: String,
    /// File name → sha256 of the bytes read.
    pub files: BTreeMap<String, String>,
}
