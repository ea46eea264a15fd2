//! Sampling text from a trained character language model.

use std::path::Path;

use burn::tensor::activation::softmax;
use burn::tensor::{Tensor, TensorData};

use crate::batch::default_device;
use crate::error::EngineError;
use crate::model::{self, Activations, InputKind, Plan, SeededRng};
use crate::output;
use commons_recipe::model_dir::{PAD, UNK, Vocabulary};
use commons_recipe::recipe::RecipeKind;

/// A trained character language model, loaded once and sampled many times.
pub struct Generator {
    model: output::LoadedModel,
    vocabulary: Vocabulary,
    index: std::collections::BTreeMap<String, u32>,
    sequence_length: usize,
    params: model::Params,
    device: burn::tensor::Device,
    /// Floating-point operations of one step (a forward pass over a full window).
    flops_per_character: f64,
}

/// How a continuation is drawn.
#[derive(Debug, Clone, Copy)]
pub struct Sampling {
    /// Characters to add after the prompt.
    pub length: usize,
    /// Below 1 sharpens the distribution toward the likeliest characters, above 1 flattens it.
    pub temperature: f64,
    /// Same seed, same text.
    pub seed: u64,
}

/// The longest continuation one call draws (a step costs a forward pass over the window).
pub const MAX_LENGTH: usize = 100_000;

impl Generator {
    /// The model in directory `dir` (as `commons train` writes it).
    pub fn load(dir: &Path) -> Result<Generator, EngineError> {
        Self::from_model(output::read_model_dir(dir)?)
    }

    pub fn from_model(model: output::LoadedModel) -> Result<Generator, EngineError> {
        let recipe = &model.recipe.recipe;
        if recipe.kind != RecipeKind::CharLanguageModel {
            return Err(EngineError::ModelDir {
                dir: model.dir.clone(),
                reason: format!(
                    "`{}` is a {:?} model, not a character language model: there is no text to generate with it",
                    recipe.name, recipe.kind
                ),
            });
        }
        let vocabulary: Vocabulary = model
            .config
            .vocabulary
            .clone()
            .ok_or_else(|| EngineError::ModelDir { dir: model.dir.clone(), reason: "config.json has no vocabulary".into() })?;
        let sequence_length = recipe.training.sequence_length.unwrap_or(1).max(1);
        let device = default_device();
        // The parameters' shapes do not depend on the window's length: resolve them once.
        let plan = Self::plan(&model, &vocabulary, sequence_length)?;
        let params = output::params_from_model(&model, &plan, &device)?;
        let index = vocabulary.tokens.iter().enumerate().map(|(i, t)| (t.clone(), i as u32)).collect();
        let flops_per_character = commons_recipe::cost::evaluation_flops(&plan, 1);
        Ok(Generator { model, vocabulary, index, sequence_length, params, device, flops_per_character })
    }

    /// What one generated character costs at most: a forward pass over a full window.
    pub fn flops_per_character(&self) -> f64 {
        self.flops_per_character
    }

    fn plan(model: &output::LoadedModel, vocabulary: &Vocabulary, steps: usize) -> Result<Plan, EngineError> {
        let dims = model::DataDims { num_classes: vocabulary.len(), vocab_size: vocabulary.len() };
        Ok(Plan::resolve(&model.recipe, InputKind::Tokens { sequence_length: steps, vocab_size: vocabulary.len() }, dims)?)
    }

    /// Continues `prompt` by `sampling.length` characters, each drawn from the model's
    /// distribution sharpened by the temperature, handing each to `emit` as it comes; returns
    /// the prompt and its continuation. Characters the model never saw read as unknown.
    pub fn generate(&self, prompt: &str, sampling: Sampling, emit: &mut dyn FnMut(&str)) -> Result<String, EngineError> {
        if sampling.length > MAX_LENGTH {
            return Err(EngineError::Input(format!("{} characters asked; at most {MAX_LENGTH} at a time", sampling.length)));
        }
        if !(sampling.temperature > 0.0 && sampling.temperature.is_finite()) {
            return Err(EngineError::Input(format!("temperature {} must be above 0", sampling.temperature)));
        }
        let mut ids: Vec<u32> = prompt.chars().map(|c| self.index.get(c.to_string().as_str()).copied().unwrap_or(UNK)).collect();
        if ids.is_empty() {
            ids.push(self.index.get("\n").copied().unwrap_or(UNK));
        }
        let mut rng = SeededRng::new(sampling.seed);
        let mut out = String::from(prompt);
        let mut plans: std::collections::HashMap<usize, Plan> = std::collections::HashMap::new();
        let classes = self.vocabulary.len();
        for _ in 0..sampling.length {
            // The network reads a window of at most `sequence_length` characters.
            let window: Vec<i64> = ids[ids.len().saturating_sub(self.sequence_length)..].iter().map(|&i| i as i64).collect();
            let steps = window.len();
            let plan = match plans.entry(steps) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(e) => e.insert(Self::plan(&self.model, &self.vocabulary, steps)?),
            };
            let input = Activations::Tokens(Tensor::from_data(TensorData::new(window, [1, steps]), &self.device));
            let Activations::Rank3(scores) = model::forward(plan, &self.params, input, None, true) else {
                return Err(EngineError::ModelDir {
                    dir: self.model.dir.clone(),
                    reason: "the network does not emit per-step scores".into(),
                });
            };
            let last: Tensor<2> = scores.narrow(1, steps - 1, 1).reshape([1, classes]);
            let mut probs =
                softmax(last.div_scalar(sampling.temperature), 1).into_data().convert::<f32>().try_into_vec::<f32>().unwrap_or_default();
            // Padding and "unknown" are not characters to write.
            for special in [PAD, UNK] {
                if let Some(p) = probs.get_mut(special as usize) {
                    *p = 0.0;
                }
            }
            let total: f64 = probs.iter().map(|&p| p as f64).sum();
            let draw = rng.uniform_f64() * total;
            let mut cumulative = 0f64;
            let mut chosen = probs.iter().rposition(|&p| p > 0.0).unwrap_or(0);
            for (i, p) in probs.iter().enumerate() {
                cumulative += *p as f64;
                if *p > 0.0 && draw < cumulative {
                    chosen = i;
                    break;
                }
            }
            ids.push(chosen as u32);
            let text = self.vocabulary.tokens.get(chosen).map(String::as_str).unwrap_or("");
            emit(text);
            out.push_str(text);
        }
        Ok(out)
    }
}

/// Continue `prompt` by `length` characters, drawing each from the model's distribution
/// sharpened by `temperature`, with a seeded RNG (same seed, same text).
pub fn sample_text(model_dir: &Path, prompt: &str, length: usize, temperature: f64, seed: u64) -> Result<String, EngineError> {
    Generator::load(model_dir)?.generate(prompt, Sampling { length, temperature, seed }, &mut |_| {})
}
