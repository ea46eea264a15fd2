//! Training recipes: the declarative TOML document that, together with a dataset revision,
//! fully determines a run. Parsing keeps toml's source spans so every validation error can
//! point at the recipe line that caused it.

use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::error::RecipeError;

/// The only recipe format this engine reads. Bump it when a field changes meaning.
pub const FORMAT_VERSION: u32 = 1;

/// A complete training recipe.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    pub format_version: u32,
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// What the recipe trains; selects the loss wiring and the metrics.
    pub kind: RecipeKind,
    #[serde(default = "default_license")]
    pub license: String,
    pub data: DataSpec,
    #[serde(default)]
    pub layers: Vec<Spanned<LayerSpec>>,
    pub training: TrainingSpec,
}

fn default_license() -> String {
    "Apache-2.0".to_string()
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum RecipeKind {
    /// One label per example (images, CSV rows, sentences).
    Classification,
    /// Next-token prediction over a character stream.
    CharLanguageModel,
    /// Word embeddings trained by the `commons-embeddings` crate.
    Word2vecSkipgram,
    Word2vecCbow,
    Glove,
}

impl RecipeKind {
    pub fn is_embedding(self) -> bool {
        matches!(self, Self::Word2vecSkipgram | Self::Word2vecCbow | Self::Glove)
    }
}

/// Where the examples come from and how they become tensors.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DataSpec {
    pub format: DataFormat,
    /// The data set's registry name (`mnist`, `uci-sentiment`, ...), recorded in the model card.
    pub dataset: String,
    /// Shape of one example without the batch axis; for token inputs `[sequence_length]`.
    #[serde(default)]
    pub input_shape: Vec<usize>,
    /// Raw feature values are divided by this (255 maps bytes onto [0, 1]).
    #[serde(default = "one")]
    pub scale: f32,
    /// Number of classes for classification; derived from the data when absent.
    #[serde(default)]
    pub num_classes: Option<usize>,
    /// Classification: the classes' names in class order, as predictions report them (the
    /// class numbers when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<Vec<String>>,
    /// Fraction of the training data held out for per-epoch validation (0 = none).
    #[serde(default)]
    pub validation_fraction: f64,
    /// Fraction held out for the final test when the data has no test split of its own.
    #[serde(default = "default_test_fraction")]
    pub test_fraction: f64,
    /// Seed of the fixed train/validation/test split (independent of the training seed so
    /// that the split stays put while training seeds vary).
    #[serde(default = "default_split_seed")]
    pub split_seed: u64,
    /// CSV only: name of the label column.
    #[serde(default)]
    pub label_column: Option<String>,
    /// Text only: tokens seen fewer times than this in the training split map to `<unk>`.
    #[serde(default = "one_usize")]
    pub min_count: usize,
    /// Text only: the vocabulary keeps at most this many words (most frequent first).
    #[serde(default)]
    pub max_vocab: Option<usize>,
}

fn one() -> f32 {
    1.0
}
fn one_usize() -> usize {
    1
}
fn default_test_fraction() -> f64 {
    0.2
}
fn default_split_seed() -> u64 {
    20_240_601
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum DataFormat {
    /// IDX image/label pairs (MNIST, Fashion-MNIST), raw or gzip.
    Idx,
    /// CSV rows of numeric features with one label column.
    Csv,
    /// JSON array or JSONL of `{text, label}` records, tokenised into words.
    JsonText,
    /// Plain-text corpus, read as a stream of characters.
    Text,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum ActivationKind {
    Relu,
    Sigmoid,
    Tanh,
    Softmax,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Pooling {
    /// Keep the whole sequence: `[T, hidden]`.
    #[default]
    None,
    /// The final hidden state: `[hidden]`.
    Last,
    /// Mean over time steps: `[hidden]`.
    Mean,
    /// Element-wise maximum over time steps: `[hidden]`.
    Max,
}

/// A size fixed in the recipe, or `"auto"`: taken from the data (vocabulary size for an
/// embedding, number of classes or vocabulary size for a dense output layer).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum SizeSpec {
    Fixed(usize),
    Auto(AutoMarker),
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum AutoMarker {
    Auto,
}

/// One entry of the layer stack. `type` selects the variant.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub enum LayerSpec {
    Flatten,
    Dense {
        units: SizeSpec,
        #[serde(default)]
        activation: Option<ActivationKind>,
    },
    Dropout {
        rate: f64,
    },
    Relu,
    Sigmoid,
    Tanh,
    Softmax,
    Conv2d {
        filters: usize,
        kernel_size: usize,
        #[serde(default = "one_usize")]
        stride: usize,
        /// Zero padding on every side.
        #[serde(default)]
        padding: usize,
        #[serde(default)]
        activation: Option<ActivationKind>,
    },
    MaxPool2d {
        pool_size: usize,
        #[serde(default)]
        stride: Option<usize>,
    },
    Embedding {
        vocab_size: SizeSpec,
        dim: usize,
    },
    Rnn {
        hidden: usize,
        #[serde(default)]
        pool: Pooling,
    },
    Lstm {
        hidden: usize,
        #[serde(default)]
        pool: Pooling,
    },
    Gru {
        hidden: usize,
        #[serde(default)]
        pool: Pooling,
    },
}

impl LayerSpec {
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Flatten => "flatten",
            Self::Dense { .. } => "dense",
            Self::Dropout { .. } => "dropout",
            Self::Relu => "relu",
            Self::Sigmoid => "sigmoid",
            Self::Tanh => "tanh",
            Self::Softmax => "softmax",
            Self::Conv2d { .. } => "conv2d",
            Self::MaxPool2d { .. } => "max-pool2d",
            Self::Embedding { .. } => "embedding",
            Self::Rnn { .. } => "rnn",
            Self::Lstm { .. } => "lstm",
            Self::Gru { .. } => "gru",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TrainingSpec {
    pub loss: LossKind,
    pub optimizer: OptimizerSpec,
    #[serde(default)]
    pub schedule: ScheduleSpec,
    pub batch_size: usize,
    pub epochs: usize,
    pub seed: u64,
    /// CPU threads for the tensor kernels; weights are bit-identical only for equal counts.
    #[serde(default = "default_threads")]
    pub threads: usize,
    /// Clip the global gradient norm to this value.
    #[serde(default)]
    pub grad_clip_norm: Option<f64>,
    #[serde(default = "default_metrics")]
    pub metrics: Vec<MetricKind>,
    /// Char LM only: characters per training window.
    #[serde(default)]
    pub sequence_length: Option<usize>,
    /// Embedding recipes only: options passed through to `commons-embeddings`.
    #[serde(default)]
    pub embedding: Option<toml::Table>,
}

fn default_threads() -> usize {
    2
}

fn default_metrics() -> Vec<MetricKind> {
    vec![MetricKind::Accuracy, MetricKind::MacroF1]
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum LossKind {
    /// Integer labels against the model's class scores (softmax applied inside the loss).
    SparseCategoricalCrossentropy,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum MetricKind {
    Accuracy,
    MacroF1,
    Perplexity,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum OptimizerSpec {
    Sgd {
        lr: f64,
        #[serde(default)]
        momentum: f64,
        #[serde(default)]
        nesterov: bool,
        #[serde(default)]
        weight_decay: f64,
    },
    Adam {
        lr: f64,
        #[serde(default = "beta1")]
        beta1: f64,
        #[serde(default = "beta2")]
        beta2: f64,
        /// Keras' default; burn's own default is 1e-5.
        #[serde(default = "adam_epsilon")]
        epsilon: f64,
    },
    Adagrad {
        lr: f64,
        #[serde(default = "adagrad_epsilon")]
        epsilon: f64,
    },
    Adamw {
        lr: f64,
        #[serde(default = "beta1")]
        beta1: f64,
        #[serde(default = "beta2")]
        beta2: f64,
        #[serde(default = "adam_epsilon")]
        epsilon: f64,
        #[serde(default = "adamw_decay")]
        weight_decay: f64,
    },
}

fn beta1() -> f64 {
    0.9
}
fn beta2() -> f64 {
    0.999
}
fn adam_epsilon() -> f64 {
    1e-7
}
fn adagrad_epsilon() -> f64 {
    1e-8
}
fn adamw_decay() -> f64 {
    0.01
}

impl OptimizerSpec {
    pub fn lr(&self) -> f64 {
        match self {
            Self::Sgd { lr, .. } | Self::Adam { lr, .. } | Self::Adagrad { lr, .. } | Self::Adamw { lr, .. } => *lr,
        }
    }
}

/// Learning-rate schedule, evaluated per optimizer step.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum ScheduleSpec {
    #[default]
    Constant,
    /// Multiply by `gamma` every `every_epochs` epochs.
    Step { every_epochs: usize, gamma: f64 },
    /// Cosine from the base rate to `min_lr` over the whole run.
    Cosine {
        #[serde(default)]
        min_lr: f64,
    },
    /// Linear from the base rate to `final_lr` over the whole run.
    Linear { final_lr: f64 },
}

impl ScheduleSpec {
    /// Learning rate at `step` of `total_steps` (steps counted from 0).
    pub fn lr_at(&self, base: f64, step: usize, total_steps: usize, steps_per_epoch: usize) -> f64 {
        let progress = if total_steps <= 1 { 0.0 } else { step as f64 / (total_steps - 1) as f64 };
        match *self {
            Self::Constant => base,
            Self::Step { every_epochs, gamma } => {
                let epoch = step / steps_per_epoch.max(1);
                base * gamma.powi((epoch / every_epochs.max(1)) as i32)
            }
            Self::Cosine { min_lr } => min_lr + 0.5 * (base - min_lr) * (1.0 + (std::f64::consts::PI * progress).cos()),
            Self::Linear { final_lr } => base + (final_lr - base) * progress,
        }
    }
}

/// Built-in recipes, embedded in the binary.
pub const BUILTIN: &[(&str, &str)] = &[
    ("keras-mnist-mlp", include_str!("../recipes/keras-mnist-mlp.toml")),
    ("mnist-cnn", include_str!("../recipes/mnist-cnn.toml")),
    ("fashion-mnist-cnn", include_str!("../recipes/fashion-mnist-cnn.toml")),
    ("lstm-sentiment", include_str!("../recipes/lstm-sentiment.toml")),
    ("char-rnn", include_str!("../recipes/char-rnn.toml")),
    ("word2vec-skipgram", include_str!("../recipes/word2vec-skipgram.toml")),
    ("word2vec-cbow", include_str!("../recipes/word2vec-cbow.toml")),
    ("glove", include_str!("../recipes/glove.toml")),
];

/// A recipe together with the source text it was parsed from (for line numbers).
#[derive(Debug, Clone)]
pub struct LoadedRecipe {
    pub recipe: Recipe,
    pub source: String,
    /// Where it came from: `builtin:NAME` or a file path.
    pub origin: String,
}

impl LoadedRecipe {
    /// The Hugging Face task (`pipeline_tag`) of what this recipe trains.
    pub fn pipeline_tag(&self) -> &'static str {
        match self.recipe.kind {
            RecipeKind::CharLanguageModel => "text-generation",
            RecipeKind::Classification => match self.recipe.data.format {
                DataFormat::Idx => "image-classification",
                DataFormat::JsonText => "text-classification",
                _ => "tabular-classification",
            },
            _ => "word-embeddings",
        }
    }

    /// 1-based line of a byte offset in the recipe source.
    pub fn line_of(&self, span: &std::ops::Range<usize>) -> usize {
        line_of(&self.source, span.start)
    }
}

pub(crate) fn line_of(source: &str, offset: usize) -> usize {
    source[..offset.min(source.len())].bytes().filter(|&b| b == b'\n').count() + 1
}

/// Names of the built-in recipes.
pub fn builtin_names() -> Vec<&'static str> {
    BUILTIN.iter().map(|(name, _)| *name).collect()
}

/// Resolve `name_or_path`: a built-in recipe name, or a path to a `.toml` file.
pub fn load(name_or_path: &str) -> Result<LoadedRecipe, RecipeError> {
    if let Some((_, text)) = BUILTIN.iter().find(|(name, _)| *name == name_or_path) {
        return parse(text, &format!("builtin:{name_or_path}"));
    }
    let path = std::path::Path::new(name_or_path);
    if !path.exists() {
        return Err(RecipeError::UnknownRecipe { name: name_or_path.to_string(), builtins: builtin_names().join(", ") });
    }
    let text = std::fs::read_to_string(path).map_err(|source| RecipeError::Read { path: path.display().to_string(), source })?;
    parse(&text, &path.display().to_string())
}

/// [`load`] with `key=value` overrides applied ([`with_overrides`]): what a run trains.
pub fn load_with(name_or_path: &str, overrides: &[String]) -> Result<LoadedRecipe, RecipeError> {
    with_overrides(&load(name_or_path)?, overrides)
}

/// Parse and check a recipe's own values (layer shapes are checked by [`crate::plan::Plan::resolve`]).
pub fn parse(text: &str, origin: &str) -> Result<LoadedRecipe, RecipeError> {
    let recipe: Recipe = toml::from_str(text).map_err(|error| {
        let line = error.span().map(|span| line_of(text, span.start));
        RecipeError::RecipeSyntax { origin: origin.to_string(), line, message: error.message().to_string() }
    })?;
    let loaded = LoadedRecipe { recipe, source: text.to_string(), origin: origin.to_string() };
    check_values(&loaded)?;
    Ok(loaded)
}

/// Apply `key=value` overrides (dotted keys into the TOML document) and re-parse, so that
/// overridden values go through exactly the same validation as written ones.
pub fn with_overrides(loaded: &LoadedRecipe, overrides: &[String]) -> Result<LoadedRecipe, RecipeError> {
    if overrides.is_empty() {
        return Ok(loaded.clone());
    }
    let mut document: toml::Table = toml::from_str(&loaded.source).map_err(|error| RecipeError::RecipeSyntax {
        origin: loaded.origin.clone(),
        line: error.span().map(|span| line_of(&loaded.source, span.start)),
        message: error.message().to_string(),
    })?;
    for assignment in overrides {
        let (key, raw_value) = assignment
            .split_once('=')
            .ok_or_else(|| RecipeError::BadOverride { assignment: assignment.clone(), reason: "expected key=value".into() })?;
        let value: toml::Value = match toml::from_str::<toml::Table>(&format!("v = {raw_value}")) {
            Ok(mut table) => table.remove("v").unwrap_or(toml::Value::String(raw_value.to_string())),
            // Bare words (`--set training.optimizer.kind=sgd`) are strings.
            Err(_) => toml::Value::String(raw_value.trim().to_string()),
        };
        let parts: Vec<&str> = key.trim().split('.').collect();
        set_path(&mut document, &parts, value).map_err(|reason| RecipeError::BadOverride { assignment: assignment.clone(), reason })?;
    }
    let text = toml::to_string(&document)
        .map_err(|error| RecipeError::BadOverride { assignment: overrides.join(" "), reason: error.to_string() })?;
    parse(&text, &format!("{} (with --set {})", loaded.origin, overrides.join(", ")))
}

/// Set `path` (table keys, or indices into arrays such as `layers.2.hidden`) to `value`.
fn set_path(document: &mut toml::Table, path: &[&str], value: toml::Value) -> Result<(), String> {
    let (last, parents) = path.split_last().ok_or("empty key")?;
    let mut current: &mut toml::Value =
        document.entry(parents.first().copied().unwrap_or(last).to_string()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
    if parents.is_empty() {
        *current = value;
        return Ok(());
    }
    for part in &parents[1..] {
        current = step_into(current, part)?;
    }
    match current {
        toml::Value::Table(table) => {
            table.insert(last.to_string(), value);
            Ok(())
        }
        toml::Value::Array(items) => {
            let slot = last.parse::<usize>().ok().and_then(|i| items.get_mut(i)).ok_or_else(|| format!("no element `{last}`"))?;
            *slot = value;
            Ok(())
        }
        _ => Err(format!("`{}` is not a table or array", parents.join("."))),
    }
}

fn step_into<'a>(value: &'a mut toml::Value, part: &str) -> Result<&'a mut toml::Value, String> {
    match value {
        toml::Value::Table(table) => Ok(table.entry(part.to_string()).or_insert_with(|| toml::Value::Table(toml::Table::new()))),
        toml::Value::Array(items) => {
            let len = items.len();
            part.parse::<usize>().ok().and_then(|i| items.get_mut(i)).ok_or_else(|| format!("`{part}` is not an index below {len}"))
        }
        _ => Err(format!("`{part}`: the value above it is not a table or array")),
    }
}

fn check_values(loaded: &LoadedRecipe) -> Result<(), RecipeError> {
    let recipe = &loaded.recipe;
    let bad = |field: &str, reason: String| RecipeError::BadValue {
        origin: loaded.origin.clone(),
        line: find_key_line(&loaded.source, field),
        field: field.to_string(),
        reason,
    };
    if recipe.format_version != FORMAT_VERSION {
        return Err(bad(
            "format_version",
            format!("this engine reads format_version {FORMAT_VERSION}, the recipe says {}", recipe.format_version),
        ));
    }
    let training = &recipe.training;
    if training.batch_size == 0 {
        return Err(bad("batch_size", "must be at least 1".into()));
    }
    if training.epochs == 0 {
        return Err(bad("epochs", "must be at least 1".into()));
    }
    if training.threads == 0 {
        return Err(bad("threads", "must be at least 1".into()));
    }
    let lr = training.optimizer.lr();
    if !(lr.is_finite() && lr > 0.0) {
        return Err(bad("lr", format!("learning rate must be a positive number, got {lr}")));
    }
    if let OptimizerSpec::Sgd { momentum, .. } = training.optimizer
        && !(0.0..1.0).contains(&momentum)
    {
        return Err(bad("momentum", format!("must be in [0, 1), got {momentum}")));
    }
    let data = &recipe.data;
    for (field, value) in [("validation_fraction", data.validation_fraction), ("test_fraction", data.test_fraction)] {
        if !(0.0..1.0).contains(&value) {
            return Err(bad(field, format!("must be in [0, 1), got {value}")));
        }
    }
    if data.validation_fraction + data.test_fraction >= 1.0 {
        return Err(bad("validation_fraction", "validation and test fractions leave no training data".into()));
    }
    if !(data.scale.is_finite() && data.scale != 0.0) {
        return Err(bad("scale", format!("must be a finite non-zero number, got {}", data.scale)));
    }
    for layer in &recipe.layers {
        let line = loaded.line_of(&layer.span());
        let layer_bad = |reason: String| RecipeError::BadLayer {
            origin: loaded.origin.clone(),
            line,
            layer: layer.get_ref().type_name().to_string(),
            reason,
        };
        match *layer.get_ref() {
            LayerSpec::Dropout { rate } if !(0.0..1.0).contains(&rate) => {
                return Err(layer_bad(format!("rate must be in [0, 1), got {rate}")));
            }
            LayerSpec::Dense { units: SizeSpec::Fixed(0), .. }
            | LayerSpec::Embedding { vocab_size: SizeSpec::Fixed(0), .. }
            | LayerSpec::Conv2d { filters: 0, .. }
            | LayerSpec::Embedding { dim: 0, .. }
            | LayerSpec::Rnn { hidden: 0, .. }
            | LayerSpec::Lstm { hidden: 0, .. }
            | LayerSpec::Gru { hidden: 0, .. } => return Err(layer_bad("size must be at least 1".into())),
            LayerSpec::Conv2d { kernel_size: 0, .. } | LayerSpec::Conv2d { stride: 0, .. } => {
                return Err(layer_bad("kernel_size and stride must be at least 1".into()));
            }
            LayerSpec::MaxPool2d { pool_size: 0, .. } | LayerSpec::MaxPool2d { stride: Some(0), .. } => {
                return Err(layer_bad("pool_size and stride must be at least 1".into()));
            }
            _ => {}
        }
    }
    if !recipe.kind.is_embedding() && recipe.layers.is_empty() {
        return Err(bad("layers", "a network recipe needs at least one [[layers]] entry".into()));
    }
    if recipe.kind == RecipeKind::CharLanguageModel && training.sequence_length.unwrap_or(0) == 0 {
        return Err(bad("sequence_length", "a char-language-model recipe needs sequence_length >= 1".into()));
    }
    Ok(())
}

/// Best-effort line of `key = ...` in the source, for errors about plain values.
fn find_key_line(source: &str, key: &str) -> Option<usize> {
    source
        .lines()
        .position(|line| {
            let trimmed = line.trim_start();
            trimmed.starts_with(key) && trimmed[key.len()..].trim_start().starts_with('=')
        })
        .map(|index| index + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_recipe_parses() {
        for (name, _) in BUILTIN {
            let loaded = load(name).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(loaded.recipe.name, *name);
        }
    }

    #[test]
    fn schedules_reach_their_end_points() {
        let cosine = ScheduleSpec::Cosine { min_lr: 0.0 };
        assert_eq!(cosine.lr_at(1.0, 0, 11, 1), 1.0);
        assert!(cosine.lr_at(1.0, 10, 11, 1).abs() < 1e-12);
        let linear = ScheduleSpec::Linear { final_lr: 0.5 };
        assert!((linear.lr_at(1.0, 5, 11, 1) - 0.75).abs() < 1e-12);
        let step = ScheduleSpec::Step { every_epochs: 2, gamma: 0.1 };
        assert!((step.lr_at(1.0, 4 * 10, 100, 10) - 0.01).abs() < 1e-12);
    }
}
