//! Sampling text from a trained character language model.

use std::path::Path;

use burn::tensor::activation::softmax;
use burn::tensor::{Tensor, TensorData};

use crate::batch::default_device;
use crate::error::EngineError;
use crate::model::{self, Activations, InputKind, Plan, SeededRng};
use crate::output;
use commons_recipe::model_dir::{UNK, Vocabulary};
use commons_recipe::recipe::RecipeKind;

/// Continue `prompt` by `length` characters, drawing each from the model's distribution
/// sharpened by `temperature`, with a seeded RNG (same seed, same text).
pub fn sample_text(model_dir: &Path, prompt: &str, length: usize, temperature: f64, seed: u64) -> Result<String, EngineError> {
    let model = output::read_model_dir(model_dir)?;
    if model.recipe.recipe.kind != RecipeKind::CharLanguageModel {
        return Err(EngineError::ModelDir { dir: model_dir.to_path_buf(), reason: "sampling needs a char-language-model".into() });
    }
    let vocabulary: Vocabulary = model
        .config
        .vocabulary
        .clone()
        .ok_or_else(|| EngineError::ModelDir { dir: model_dir.to_path_buf(), reason: "config.json has no vocabulary".into() })?;
    let sequence_length = model.recipe.recipe.training.sequence_length.unwrap_or(1);
    let dims = model::DataDims { num_classes: vocabulary.len(), vocab_size: vocabulary.len() };
    let device = default_device();
    let index: std::collections::BTreeMap<&str, u32> = vocabulary.tokens.iter().enumerate().map(|(i, t)| (t.as_str(), i as u32)).collect();
    let mut ids: Vec<u32> = prompt.chars().map(|c| index.get(c.to_string().as_str()).copied().unwrap_or(UNK)).collect();
    if ids.is_empty() {
        ids.push(index.get("\n").copied().unwrap_or(UNK));
    }
    let mut rng = SeededRng::new(seed);
    let mut out = String::from(prompt);
    for _ in 0..length {
        // The network reads a window of at most `sequence_length` characters.
        let window: Vec<i64> = ids[ids.len().saturating_sub(sequence_length)..].iter().map(|&i| i as i64).collect();
        let steps = window.len();
        let plan = Plan::resolve(&model.recipe, InputKind::Tokens { sequence_length: steps, vocab_size: vocabulary.len() }, dims)?;
        let params = output::params_from_model(&model, &plan, &device)?;
        let input = Activations::Tokens(Tensor::from_data(TensorData::new(window, [1, steps]), &device));
        let Activations::Rank3(scores) = model::forward(&plan, &params, input, None, true) else {
            return Err(EngineError::ModelDir { dir: model_dir.to_path_buf(), reason: "the network does not emit per-step scores".into() });
        };
        let last: Tensor<2> = scores.narrow(1, steps - 1, 1).reshape([1, vocabulary.len()]);
        let probs =
            softmax(last.div_scalar(temperature.max(1e-3)), 1).into_data().convert::<f32>().try_into_vec::<f32>().unwrap_or_default();
        let draw = rng.uniform_f64();
        let mut cumulative = 0f64;
        let mut chosen = probs.len().saturating_sub(1);
        for (i, p) in probs.iter().enumerate() {
            cumulative += *p as f64;
            if draw < cumulative {
                chosen = i;
                break;
            }
        }
        ids.push(chosen as u32);
        out.push_str(vocabulary.tokens.get(chosen).map(String::as_str).unwrap_or("?"));
    }
    Ok(out)
}
