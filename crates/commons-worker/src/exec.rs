//! The child side of a unit: `commons exec-unit SPEC` runs the engine on local inputs and speaks
//! to its parent worker through JSON lines on stdout. Running units in a child process lets the
//! worker stop one at once (cancellation, a lapsed lease) and survive an engine crash.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use commons_protocol::{EpochPoint, Progress};
use serde::{Deserialize, Serialize};

use crate::WorkerError;

/// What the child runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "task", rename_all = "lowercase")]
pub enum ExecSpec {
    Train {
        recipe: PathBuf,
        overrides: Vec<String>,
        data: PathBuf,
        out: PathBuf,
        /// Where epoch checkpoints are written (announced with [`ChildMessage::Checkpoint`]).
        checkpoint: PathBuf,
        /// A checkpoint to continue from.
        resume: Option<PathBuf>,
        result: PathBuf,
    },
    Eval {
        model: PathBuf,
        data: PathBuf,
        split: String,
        shard: Option<(usize, usize)>,
        result: PathBuf,
    },
    Predict {
        model: PathBuf,
        data: PathBuf,
        split: String,
        shard: Option<(usize, usize)>,
        result: PathBuf,
    },
}

/// One line the child prints.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChildMessage {
    Progress(Progress),
    Epoch(EpochPoint),
    Log(String),
    /// A checkpoint after `epochs_done` epochs is complete in `dir`.
    Checkpoint {
        epochs_done: usize,
        dir: PathBuf,
    },
}

/// What the child leaves in its result file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExecResult {
    /// Test metrics of a trained model, or the metrics of an evaluation.
    pub metrics: serde_json::Value,
    pub flops: f64,
    pub epochs: usize,
    pub wall_seconds: f64,
    /// What a batch-inference unit predicted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predictions: Option<commons_protocol::Predictions>,
}

fn emit(message: &ChildMessage) {
    let mut out = std::io::stdout().lock();
    let _ = serde_json::to_writer(&mut out, message);
    let _ = out.write_all(b"\n");
    let _ = out.flush();
}

/// Runs the unit described in `spec_path` (the `exec-unit` subcommand).
pub fn exec_unit(spec_path: &Path) -> Result<(), WorkerError> {
    let text = std::fs::read_to_string(spec_path).map_err(|e| WorkerError::io(format!("reading {}", spec_path.display()), e))?;
    let spec: ExecSpec =
        serde_json::from_str(&text).map_err(|e| WorkerError::Protocol(format!("unit spec {}: {e}", spec_path.display())))?;
    let started = Instant::now();
    let (result, path) = match spec {
        ExecSpec::Train { recipe, overrides, data, out, checkpoint, resume, result } => {
            let recipe = recipe.to_str().ok_or_else(|| WorkerError::Protocol("recipe path is not UTF-8".into()))?.to_string();
            // Logs are public: name no local paths of the volunteer's machine.
            let recipe_file = Path::new(&recipe).file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
            emit(&ChildMessage::Log(format!("training {recipe_file} ({} overrides)", overrides.len())));
            let mut epoch_seen = 0usize;
            let mut last_loss = f64::NAN;
            let mut epoch_started = Instant::now();
            let mut last_emit = Instant::now() - std::time::Duration::from_secs(1);
            let mut on_progress = |p: &commons_engine::Progress| {
                if p.epoch != epoch_seen {
                    if epoch_seen > 0 {
                        emit(&ChildMessage::Epoch(EpochPoint {
                            epoch: epoch_seen,
                            train_loss: last_loss,
                            seconds: epoch_started.elapsed().as_secs_f64(),
                        }));
                        emit(&ChildMessage::Log(format!("epoch {epoch_seen}/{} done, train loss {last_loss:.4}", p.epochs)));
                    }
                    epoch_seen = p.epoch;
                    epoch_started = Instant::now();
                }
                last_loss = p.loss;
                let last_step = p.step == p.steps_per_epoch;
                if last_emit.elapsed().as_millis() >= 500 || last_step {
                    last_emit = Instant::now();
                    let done = (p.epoch.saturating_sub(1) * p.steps_per_epoch + p.step) as f64;
                    let total = (p.epochs * p.steps_per_epoch).max(1) as f64;
                    emit(&ChildMessage::Progress(Progress {
                        epoch: p.epoch,
                        epochs: p.epochs,
                        step: p.step,
                        steps_per_epoch: p.steps_per_epoch,
                        loss: p.loss.is_finite().then_some(p.loss),
                        samples_per_second: p.samples_per_second,
                        eta_seconds: p.eta_seconds,
                        fraction: done / total,
                    }));
                }
            };
            if resume.is_some() {
                emit(&ChildMessage::Log("resuming from the checkpoint an earlier worker left on the hub".into()));
            }
            let announce_dir = checkpoint.clone();
            let mut on_saved = |epochs_done: usize| emit(&ChildMessage::Checkpoint { epochs_done, dir: announce_dir.clone() });
            let mut checkpointing = commons_engine::Checkpointing { dir: checkpoint, resume, on_saved: &mut on_saved };
            let loaded = commons_recipe::recipe::load_with(&recipe, &overrides)?;
            let summary =
                commons_engine::run_training_checkpointed(&loaded, Some(&data), &out, &mut on_progress, Some(&mut checkpointing))?;
            if epoch_seen > 0 {
                emit(&ChildMessage::Epoch(EpochPoint {
                    epoch: epoch_seen,
                    train_loss: last_loss,
                    seconds: epoch_started.elapsed().as_secs_f64(),
                }));
            }
            emit(&ChildMessage::Log(format!("trained: test accuracy {:.4}, loss {:.4}", summary.test.accuracy, summary.test.loss)));
            let metrics = serde_json::to_value(&summary.test).map_err(|e| WorkerError::Protocol(e.to_string()))?;
            (
                ExecResult { metrics, flops: summary.flops, epochs: summary.epochs, wall_seconds: summary.wall_seconds, predictions: None },
                result,
            )
        }
        ExecSpec::Eval { model, data, split, shard, result } => {
            let part = shard.map(|(i, n)| format!(", shard {} of {n}", i + 1)).unwrap_or_default();
            emit(&ChildMessage::Log(format!("evaluating the model on the {split} split{part}")));
            let (report, flops) = commons_engine::evaluate_model_dir_with_cost(&model, Some(&data), &split, shard)?;
            emit(&ChildMessage::Log(format!("evaluated {} examples: accuracy {:.4}", report.examples, report.accuracy)));
            let metrics = serde_json::to_value(&report).map_err(|e| WorkerError::Protocol(e.to_string()))?;
            (ExecResult { metrics, flops, epochs: 0, wall_seconds: started.elapsed().as_secs_f64(), predictions: None }, result)
        }
        ExecSpec::Predict { model, data, split, shard, result } => {
            let part = shard.map(|(i, n)| format!(", shard {} of {n}", i + 1)).unwrap_or_default();
            emit(&ChildMessage::Log(format!("predicting a class for every example of the {split} split{part}")));
            let (predictions, flops) = commons_engine::predict::predict_split(&model, Some(&data), &split, shard)?;
            emit(&ChildMessage::Log(format!("predicted {} examples", predictions.len())));
            let wall_seconds = started.elapsed().as_secs_f64();
            (ExecResult { metrics: serde_json::Value::Null, flops, epochs: 0, wall_seconds, predictions: Some(predictions) }, result)
        }
    };
    let bytes = serde_json::to_vec(&result).map_err(|e| WorkerError::Protocol(e.to_string()))?;
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).map_err(|e| WorkerError::io(format!("writing {}", tmp.display()), e))?;
    std::fs::rename(&tmp, &path).map_err(|e| WorkerError::io(format!("writing {}", path.display()), e))?;
    Ok(())
}
