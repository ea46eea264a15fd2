//! The engine behind the hub's inference route: `commons-engine`'s predictor behind
//! `commons_hub::inference`'s capability traits, so the hub itself links no tensor library.

use std::path::Path;
use std::sync::Arc;

use commons_engine::error::EngineError;
use commons_engine::predict::{InputModality, PredictInput, Predictor};
use commons_hub::inference::{ClassScore, Classifier, Engine, InferenceError, Modality, ModelInput};

/// Loads models trained by Commons (`config.json` + `model.safetensors`).
pub struct CommonsEngine;

impl Engine for CommonsEngine {
    fn load(&self, config: &[u8], weights: &[u8]) -> Result<Arc<dyn Classifier>, InferenceError> {
        let model = commons_engine::output::model_from_bytes(config, weights, Path::new("model")).map_err(model_error)?;
        Ok(Arc::new(Loaded(Predictor::from_model(model).map_err(model_error)?)))
    }
}

fn model_error(e: EngineError) -> InferenceError {
    match e {
        EngineError::ModelDir { reason, .. } => InferenceError::Model(reason),
        other => InferenceError::Model(other.to_string()),
    }
}

struct Loaded(Predictor);

impl Classifier for Loaded {
    fn modality(&self) -> Modality {
        match self.0.modality() {
            InputModality::Image => Modality::Image,
            InputModality::Text => Modality::Text,
        }
    }

    fn flops_per_input(&self) -> f64 {
        self.0.flops_per_input()
    }

    fn classify(&self, input: ModelInput<'_>) -> Result<Vec<ClassScore>, InferenceError> {
        let input = match input {
            ModelInput::Image(bytes) => PredictInput::Image(bytes),
            ModelInput::Text(text) => PredictInput::Text(text),
        };
        // One core per request: the hub bounds how many run at once.
        commons_engine::batch::with_threads(1, || self.0.predict(input)).and_then(|r| r).map_err(|e| match e {
            EngineError::Input(message) => InferenceError::Input(message),
            other => model_error(other),
        })
    }
}
