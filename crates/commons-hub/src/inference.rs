//! Running published models for the inference route (`routes/inference.rs`): the capability the
//! hub asks of an engine ([`Engine`]), provided by the binary over `commons-engine` so that this
//! crate links no tensor library; loaded models kept by commit (a commit's files never change);
//! and what bounds the work a caller can cause: models run at most `concurrency` at a time, each
//! input within a floating-point budget, weights within a size.

use std::sync::Arc;
use std::time::Duration;

/// What a model reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Modality {
    Image,
    Text,
}

/// One input, as the caller sent it.
#[derive(Debug, Clone, Copy)]
pub enum ModelInput<'a> {
    /// An encoded image file.
    Image(&'a [u8]),
    Text(&'a str),
}

pub use commons_protocol::ClassScore;

#[derive(Debug, thiserror::Error)]
pub enum InferenceError {
    /// The caller's input is not something this model reads.
    #[error("{0}")]
    Input(String),
    /// The repository's files are not a model the engine runs.
    #[error("{0}")]
    Model(String),
}

/// A model loaded and ready; shared by the requests that use it.
pub trait Classifier: Send + Sync {
    fn modality(&self) -> Modality;
    /// Floating-point operations one input costs.
    fn flops_per_input(&self) -> f64;
    /// Every class with its probability, most likely first.
    fn classify(&self, input: ModelInput<'_>) -> Result<Vec<ClassScore>, InferenceError>;
}

/// A character language model loaded and ready.
pub trait TextGenerator: Send + Sync {
    /// Floating-point operations one generated character costs (a forward pass over the
    /// model's window).
    fn flops_per_character(&self) -> f64;
    /// `prompt` continued by `length` characters drawn at `temperature` (above 0) with `seed`
    /// (same seed, same text); the continuation only.
    fn generate(&self, prompt: &str, length: usize, temperature: f64, seed: u64) -> Result<String, InferenceError>;
}

/// A loaded model, by what it does: what a request may ask of it follows.
#[derive(Clone)]
pub enum LoadedModel {
    Classifier(Arc<dyn Classifier>),
    Generator(Arc<dyn TextGenerator>),
}

/// A model repository's network, by the file that holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightsFile {
    /// `model.safetensors`, as `commons train` writes it: the network is the config's recipe.
    Safetensors,
    /// `model.onnx`: the network is the graph (trained elsewhere, or exported by `commons
    /// export-onnx`); the config's recipe says how inputs are read.
    Onnx,
}

impl WeightsFile {
    /// Every kind, in the order the route looks for them in a repository.
    pub const ALL: [WeightsFile; 2] = [WeightsFile::Safetensors, WeightsFile::Onnx];

    /// The file's name in a repository.
    pub fn name(self) -> &'static str {
        match self {
            WeightsFile::Safetensors => "model.safetensors",
            WeightsFile::Onnx => "model.onnx",
        }
    }
}

/// Turns a model repository's files into a [`LoadedModel`].
pub trait Engine: Send + Sync {
    /// `config` is the repository's `config.json`, `weights` the bytes of its `kind` file.
    fn load(&self, config: &[u8], kind: WeightsFile, weights: &[u8]) -> Result<LoadedModel, InferenceError>;
}

/// The operator's bounds on inference.
#[derive(Debug, Clone)]
pub struct InferenceLimits {
    /// Models running at once (loading included); more requests wait their turn.
    pub concurrency: usize,
    /// Requests whose bodies may be in memory at once (read, waiting or running); a body is
    /// read only after its request holds one of these, so many callers sending large bodies
    /// at once cost at most this many bodies of memory.
    pub requests_in_memory: usize,
    /// How long a request waits for its turn before it is answered 503.
    pub queue_wait: Duration,
    /// Floating-point operations one request may cost (inputs × the model's cost per input).
    pub max_flops: f64,
    /// The largest weights file (`model.safetensors` or `model.onnx`) loaded.
    pub max_weights: u64,
    /// Models kept loaded.
    pub models_kept: usize,
}

impl Default for InferenceLimits {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        Self {
            concurrency: cores,
            requests_in_memory: 2 * cores,
            queue_wait: Duration::from_secs(30),
            // About a second of one core: an MNIST MLP input is ~0.2 MFLOP, the sentiment LSTM's ~1 MFLOP.
            max_flops: 5e9,
            // The engine's models (an MNIST MLP ~0.4 MiB, the sentiment LSTM ~3 MiB) with room to
            // spare; kept models and loads in progress together stay within about a GiB.
            max_weights: 128 << 20,
            models_kept: 4,
        }
    }
}

/// An engine with its bounds and its loaded models.
pub struct Inference {
    pub(crate) engine: Arc<dyn Engine>,
    pub(crate) limits: InferenceLimits,
    /// By repository id and commit.
    pub(crate) loaded: quick_cache::sync::Cache<(i64, String), LoadedModel>,
    pub(crate) turns: tokio::sync::Semaphore,
    /// Slots for request bodies in memory ([`InferenceLimits::requests_in_memory`]).
    pub(crate) bodies: tokio::sync::Semaphore,
}

impl Inference {
    pub fn new(engine: Arc<dyn Engine>, limits: InferenceLimits) -> Self {
        let loaded = quick_cache::sync::Cache::new(limits.models_kept.max(1));
        let turns = tokio::sync::Semaphore::new(limits.concurrency.max(1));
        let bodies = tokio::sync::Semaphore::new(limits.requests_in_memory.max(1));
        Self { engine, limits, loaded, turns, bodies }
    }
}
