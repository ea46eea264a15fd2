//! Our own training loop on burn's autodiff: seeded shuffles, dropout masks from our own RNG,
//! per-epoch metrics, a progress callback. Everything random comes from the recipe seed, so
//! the same recipe, data, seed and thread count give bit-identical weights on the same build.

use std::time::Instant;

use burn::grad_clipping::GradientClippingConfig;
use burn::module::Module;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{AdaGradConfig, AdamWConfig, GradientsParams, ModuleOptimizer, SgdConfig};
use burn::tensor::activation::log_softmax;
use burn::tensor::{Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::batch::{batch_input, batch_targets, default_device, scores_2d, targets_per_example, with_threads};
use crate::data::PreparedData;
use crate::error::EngineError;
use crate::eval;
use crate::kernels::adam::FusedAdam;
use crate::model::{self, DropoutSource, Params, Plan, SeededRng};
use commons_recipe::EvalReport;
use commons_recipe::recipe::{LoadedRecipe, OptimizerSpec};

/// What the progress callback sees after every optimizer step.
#[derive(Debug, Clone)]
pub struct Progress {
    pub epoch: usize,
    pub epochs: usize,
    /// Step within the epoch, from 1.
    pub step: usize,
    pub steps_per_epoch: usize,
    /// Mean training loss over the epoch so far.
    pub loss: f64,
    pub samples_per_second: f64,
    pub eta_seconds: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EpochMetrics {
    pub epoch: usize,
    pub train_loss: f64,
    pub train_accuracy: f64,
    pub validation_loss: Option<f64>,
    pub validation_accuracy: Option<f64>,
    pub learning_rate: f64,
    pub seconds: f64,
}

/// A finished run: the network, its weights (without autodiff), history and test metrics.
pub struct TrainedModel {
    pub plan: Plan,
    pub params: Params,
    pub history: Vec<EpochMetrics>,
    pub test: EvalReport,
    pub wall_seconds: f64,
    pub train_samples_per_second: f64,
}

pub(crate) fn build_optimizer(spec: &OptimizerSpec, clip: Option<f64>) -> ModuleOptimizer {
    let clipping = clip.map(|c| GradientClippingConfig::Norm(c as f32));
    match *spec {
        OptimizerSpec::Sgd { momentum, nesterov, weight_decay, .. } => SgdConfig::new()
            .with_momentum((momentum > 0.0).then_some(MomentumConfig { momentum, dampening: 0.0, nesterov }))
            .with_weight_decay((weight_decay > 0.0).then_some(WeightDecayConfig { penalty: weight_decay as f32 }))
            .with_gradient_clipping(clipping)
            .init(),
        // burn's Adam step by step, one pass over memory instead of about ten (the same bits but
        // for moments below the normal floats, set to zero; the same checkpoint state).
        OptimizerSpec::Adam { beta1, beta2, epsilon, .. } => {
            let optimizer = ModuleOptimizer::from(FusedAdam::new(beta1 as f32, beta2 as f32, epsilon as f32));
            match clipping {
                Some(clipping) => optimizer.with_grad_clipping(clipping.init()),
                None => optimizer,
            }
        }
        OptimizerSpec::Adagrad { epsilon, .. } => AdaGradConfig::new().with_epsilon(epsilon as f32).with_grad_clipping(clipping).init(),
        OptimizerSpec::Adamw { beta1, beta2, epsilon, weight_decay, .. } => AdamWConfig::new()
            .with_beta_1(beta1 as f32)
            .with_beta_2(beta2 as f32)
            .with_epsilon(epsilon as f32)
            .with_weight_decay(weight_decay as f32)
            .with_grad_clipping(clipping)
            .init(),
    }
}

/// Sparse categorical cross-entropy on pre-softmax scores, averaged over positions.
pub fn cross_entropy(scores: Tensor<2>, targets: &[u32]) -> Tensor<1> {
    let device = scores.device();
    let n = targets.len();
    let ids: Vec<i64> = targets.iter().map(|&t| t as i64).collect();
    let index: Tensor<2, Int> = Tensor::from_data(TensorData::new(ids, [n, 1]), &device);
    let picked = log_softmax(scores, 1).gather(1, index);
    picked.mean().neg()
}

/// Where training leaves checkpoints, and the checkpoint it continues from.
///
/// A checkpoint holds everything the rest of the run depends on: the weights, the optimizer
/// state (parameters carry stable ids, see [`Params::with_stable_ids`]), the positions of the
/// shuffling and dropout streams, the step counters and the history. A run resumed from the
/// checkpoint of epoch `e` is therefore bit-identical to the uninterrupted run (tested).
pub struct Checkpointing<'a> {
    /// Written after every epoch but the last, replacing the previous checkpoint.
    pub dir: std::path::PathBuf,
    /// A checkpoint directory to continue from.
    pub resume: Option<std::path::PathBuf>,
    /// Called with the number of epochs done once a checkpoint is on disk.
    pub on_saved: &'a mut (dyn FnMut(usize) + Send),
}

#[derive(Serialize, Deserialize)]
struct CheckpointState {
    epochs_done: usize,
    global_step: usize,
    samples_seen: usize,
    elapsed_seconds: f64,
    history: Vec<EpochMetrics>,
    /// ChaCha8 word positions, as decimal strings (u128 does not fit JSON numbers).
    shuffle_position: String,
    dropout_position: String,
}

const CHECKPOINT_STATE: &str = "state.json";
const CHECKPOINT_PARAMS: &str = "params.safetensors";
const CHECKPOINT_OPTIMIZER: &str = "optimizer.bpk";

fn checkpoint_error(what: &str, dir: &std::path::Path, e: impl std::fmt::Debug) -> EngineError {
    EngineError::Data(format!("checkpoint {}: {what}: {e:?}", dir.display()))
}

/// Train the recipe's network on `data`, calling `on_progress` after every step.
pub fn train(
    loaded: &LoadedRecipe,
    data: &PreparedData,
    on_progress: &mut (dyn FnMut(&Progress) + Send),
) -> Result<TrainedModel, EngineError> {
    train_checkpointed(loaded, data, on_progress, None)
}

/// [`train`], checkpointing after every epoch and resuming from a checkpoint when told to.
pub fn train_checkpointed(
    loaded: &LoadedRecipe,
    data: &PreparedData,
    on_progress: &mut (dyn FnMut(&Progress) + Send),
    checkpointing: Option<&mut Checkpointing<'_>>,
) -> Result<TrainedModel, EngineError> {
    let recipe = &loaded.recipe;
    if recipe.kind.is_embedding() {
        return Err(EngineError::Embeddings {
            kind: format!("{:?}", recipe.kind),
            reason: "word-embedding recipes are trained with `commons-embeddings`, not the network trainer".into(),
        });
    }
    let plan = Plan::resolve(loaded, data.input.clone(), data.dims)?;
    let training = &recipe.training;
    with_threads(training.threads, || train_on_pool(loaded, &plan, data, on_progress, checkpointing))?
}

fn train_on_pool(
    loaded: &LoadedRecipe,
    plan: &Plan,
    data: &PreparedData,
    on_progress: &mut (dyn FnMut(&Progress) + Send),
    mut checkpointing: Option<&mut Checkpointing<'_>>,
) -> Result<TrainedModel, EngineError> {
    let recipe = &loaded.recipe;
    let training = &recipe.training;
    let device = default_device().autodiff();
    let mut params = Params::init(plan, training.seed, &device).with_stable_ids();
    let mut optimizer = build_optimizer(&training.optimizer, training.grad_clip_norm);
    // Separate streams for shuffling and dropout, both derived from the one recipe seed.
    let mut shuffle_rng = SeededRng::new(training.seed ^ 0x5348_5546_464c_4531);
    let mut dropout_rng = SeededRng::new(training.seed ^ 0x4452_4f50_4f55_5431);
    let mut first_epoch = 1;
    let mut resumed_seconds = 0.0;
    let mut resumed: Option<(usize, usize, Vec<EpochMetrics>)> = None;
    if let Some(dir) = checkpointing.as_ref().and_then(|c| c.resume.clone()) {
        let text = std::fs::read_to_string(dir.join(CHECKPOINT_STATE)).map_err(|e| checkpoint_error("reading state", &dir, e))?;
        let state: CheckpointState = serde_json::from_str(&text).map_err(|e| checkpoint_error("parsing state", &dir, e))?;
        let tensors = crate::safetensors::read_safetensors(&dir.join(CHECKPOINT_PARAMS))?;
        params = Params::from_named(plan, &tensors, &device).map_err(|e| checkpoint_error("weights", &dir, e))?.with_stable_ids();
        optimizer = optimizer.load(dir.join(CHECKPOINT_OPTIMIZER)).map_err(|e| checkpoint_error("optimizer state", &dir, e))?;
        let position = |s: &str| s.parse::<u128>().map_err(|e| checkpoint_error("stream position", &dir, e));
        shuffle_rng.set_position(position(&state.shuffle_position)?);
        dropout_rng.set_position(position(&state.dropout_position)?);
        if state.epochs_done >= training.epochs {
            return Err(checkpoint_error("epochs", &dir, format!("{} epochs done, the recipe has {}", state.epochs_done, training.epochs)));
        }
        first_epoch = state.epochs_done + 1;
        resumed_seconds = state.elapsed_seconds;
        tracing::info!(epochs_done = state.epochs_done, "resuming from a checkpoint");
        resumed = Some((state.global_step, state.samples_seen, state.history));
    }
    let per_example = targets_per_example(plan, recipe.kind);
    let train = &data.train;
    let batch_size = training.batch_size;
    let steps_per_epoch = train.count.div_ceil(batch_size);
    let total_steps = steps_per_epoch * training.epochs;
    let base_lr = training.optimizer.lr();
    let started = Instant::now() - std::time::Duration::from_secs_f64(resumed_seconds);
    let (mut global_step, mut samples_seen, mut history) = resumed.unwrap_or_else(|| (0, 0, Vec::with_capacity(training.epochs)));
    for epoch in first_epoch..=training.epochs {
        let epoch_started = Instant::now();
        let mut order: Vec<usize> = (0..train.count).collect();
        for i in (1..order.len()).rev() {
            order.swap(i, shuffle_rng.below(i + 1));
        }
        let (mut loss_sum, mut correct, mut positions) = (0f64, 0usize, 0usize);
        let mut lr = base_lr;
        for (step, rows) in order.chunks(batch_size).enumerate() {
            lr = training.schedule.lr_at(base_lr, global_step, total_steps, steps_per_epoch);
            let input = batch_input(&plan.input, train, rows, &device);
            let targets = batch_targets(train, rows, per_example);
            let output = model::forward(plan, &params, input, Some(DropoutSource { rng: &mut dropout_rng }), true);
            let scores = scores_2d(output);
            let predictions = eval::argmax_rows(&scores.clone().detach());
            correct += predictions.iter().zip(&targets).filter(|(p, t)| **p == **t).count();
            let loss = cross_entropy(scores, &targets);
            let loss_value = loss.clone().into_scalar::<f32>() as f64;
            if !loss_value.is_finite() {
                return Err(EngineError::Diverged { epoch, step: step + 1, loss: loss_value });
            }
            loss_sum += loss_value * targets.len() as f64;
            positions += targets.len();
            let gradients = GradientsParams::from_grads(loss.backward(), &params);
            params = optimizer.step(lr, params, gradients);
            samples_seen += rows.len();
            global_step += 1;
            let elapsed = started.elapsed().as_secs_f64().max(1e-9);
            let rate = samples_seen as f64 / elapsed;
            let remaining = (total_steps - global_step) as f64 * batch_size as f64;
            on_progress(&Progress {
                epoch,
                epochs: training.epochs,
                step: step + 1,
                steps_per_epoch,
                loss: loss_sum / positions.max(1) as f64,
                samples_per_second: rate,
                eta_seconds: remaining / rate,
            });
        }
        let validation = match &data.validation {
            Some(examples) => Some(eval::evaluate(plan, &params.valid(), examples, recipe.kind)?),
            None => None,
        };
        history.push(EpochMetrics {
            epoch,
            train_loss: loss_sum / positions.max(1) as f64,
            train_accuracy: correct as f64 / positions.max(1) as f64,
            validation_loss: validation.as_ref().map(|v| v.loss),
            validation_accuracy: validation.as_ref().map(|v| v.accuracy),
            learning_rate: lr,
            seconds: epoch_started.elapsed().as_secs_f64(),
        });
        tracing::info!(epoch, train_loss = history[epoch - 1].train_loss, train_accuracy = history[epoch - 1].train_accuracy, "epoch done");
        if let Some(checkpoint) = checkpointing.as_mut().filter(|_| epoch < training.epochs) {
            let dir = &checkpoint.dir;
            let staging = dir.with_extension("partial");
            let _ = std::fs::remove_dir_all(&staging);
            std::fs::create_dir_all(&staging).map_err(|e| checkpoint_error("creating", &staging, e))?;
            let state = CheckpointState {
                epochs_done: epoch,
                global_step,
                samples_seen,
                elapsed_seconds: started.elapsed().as_secs_f64(),
                history: history.clone(),
                shuffle_position: shuffle_rng.position().to_string(),
                dropout_position: dropout_rng.position().to_string(),
            };
            let state = serde_json::to_vec_pretty(&state).map_err(|e| checkpoint_error("state", &staging, e))?;
            std::fs::write(staging.join(CHECKPOINT_STATE), state).map_err(|e| checkpoint_error("writing state", &staging, e))?;
            let weights = crate::safetensors::safetensors_bytes(&params.named_tensors(plan))?;
            std::fs::write(staging.join(CHECKPOINT_PARAMS), weights).map_err(|e| checkpoint_error("writing weights", &staging, e))?;
            optimizer.save(staging.join(CHECKPOINT_OPTIMIZER)).map_err(|e| checkpoint_error("writing optimizer state", &staging, e))?;
            // Swap the finished checkpoint into place: a reader never sees half of one.
            let _ = std::fs::remove_dir_all(dir);
            std::fs::rename(&staging, dir).map_err(|e| checkpoint_error("publishing", dir, e))?;
            (checkpoint.on_saved)(epoch);
        }
    }
    let wall_seconds = started.elapsed().as_secs_f64();
    let params = params.valid();
    let test = eval::evaluate_deterministic(plan, &params, &data.test, recipe.kind)?;
    Ok(TrainedModel {
        plan: plan.clone(),
        params,
        history,
        test,
        wall_seconds,
        train_samples_per_second: samples_seen as f64 / wall_seconds.max(1e-9),
    })
}
