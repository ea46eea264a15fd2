//! Errors of the engine. Every variant names the problem and, where it comes from a recipe,
//! the recipe and the line.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("{0}")]
    Recipe(#[from] commons_recipe::RecipeError),

    #[error("data: {0}")]
    Data(String),

    #[error("data: {context}: {source}")]
    DataSource {
        context: String,
        #[source]
        source: commons_data::DataError,
    },

    #[error("label {label} of example {index} is out of range: the recipe has {num_classes} classes")]
    LabelOutOfRange { index: usize, label: usize, num_classes: usize },

    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },

    #[error("model directory {dir}: {reason}")]
    ModelDir { dir: PathBuf, reason: String },

    #[error("recipe kind `{kind}` is trained by the embeddings engine: {reason}")]
    Embeddings { kind: String, reason: String },

    #[error("training diverged at epoch {epoch}, step {step}: loss is {loss}")]
    Diverged { epoch: usize, step: usize, loss: f64 },

    /// An input given to a trained model that it cannot read (not an image, empty text, ...).
    #[error("{0}")]
    Input(String),

    #[error("thread pool: {0}")]
    ThreadPool(String),

    /// An ONNX model that cannot be read, compiled or run, or a network that cannot be written
    /// as one.
    #[error("ONNX: {0}")]
    Onnx(String),
}

impl EngineError {
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io { context: context.into(), source }
    }
}
