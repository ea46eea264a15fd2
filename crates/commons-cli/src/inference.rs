//! The engine behind the hub's inference route: `commons-engine`'s predictor behind
//! `commons_hub::inference`'s capability traits, so the hub itself links no tensor library.

use std::path::Path;
use std::sync::Arc;

use commons_engine::error::EngineError;
use commons_engine::predict::{InputModality, PredictInput, Predictor};
use commons_engine::sample::{Generator, Sampling};
use commons_hub::inference::{
    ClassScore, Classifier, Engine, InferenceError, LoadedModel, Modality, ModelInput, TextGenerator, WeightsFile,
};
use commons_recipe::recipe::RecipeKind;

/// Loads models trained by Commons (`config.json` + `model.safetensors`): classifiers, and
/// character language models; and ONNX image classifiers (`config.json` + `model.onnx`).
pub struct CommonsEngine;

impl Engine for CommonsEngine {
    fn load(&self, config: &[u8], kind: WeightsFile, weights: &[u8]) -> Result<LoadedModel, InferenceError> {
        let dir = Path::new("model");
        if kind == WeightsFile::Onnx {
            let model = commons_engine::output::model_config_from_bytes(config, dir).map_err(model_error)?;
            return Ok(LoadedModel::Classifier(Arc::new(Loaded(Predictor::from_onnx_bytes(model, weights).map_err(model_error)?))));
        }
        let model = commons_engine::output::model_from_bytes(config, weights, dir).map_err(model_error)?;
        if model.recipe.recipe.kind == RecipeKind::CharLanguageModel {
            return Ok(LoadedModel::Generator(Arc::new(Writer(Generator::from_model(model).map_err(model_error)?))));
        }
        Ok(LoadedModel::Classifier(Arc::new(Loaded(Predictor::from_model(model).map_err(model_error)?))))
    }
}

struct Writer(Generator);

impl TextGenerator for Writer {
    fn flops_per_character(&self) -> f64 {
        self.0.flops_per_character()
    }

    fn generate(&self, prompt: &str, length: usize, temperature: f64, seed: u64) -> Result<String, InferenceError> {
        let sampling = Sampling { length, temperature, seed };
        // One core per request, as for classifiers.
        let text = commons_engine::batch::with_threads(1, || self.0.generate(prompt, sampling, &mut |_| {})).and_then(|r| r).map_err(
            |e| match e {
                EngineError::Input(message) => InferenceError::Input(message),
                other => model_error(other),
            },
        )?;
        Ok(text.strip_prefix(prompt).unwrap_or(&text).to_string())
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
