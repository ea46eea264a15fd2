//! Evaluation: accuracy, macro-F1, loss, confusion matrix and perplexity, computed in f64 on
//! the host in a fixed order. The forward pass runs on a one-thread pool with a fixed batch
//! size, so the same model and data give bit-identical metrics run after run.

use burn::tensor::Tensor;
use burn::tensor::activation::log_softmax;

use crate::data::Examples;
use commons_recipe::EvalReport;
use commons_recipe::report::macro_f1;

use crate::batch::{batch_input, batch_targets, default_device, scores_2d, targets_per_example, with_threads};
use crate::error::EngineError;
use crate::model::{self, Params, Plan};
use commons_recipe::recipe::RecipeKind;

/// Examples per forward pass in evaluation; part of the determinism contract.
pub const EVAL_BATCH: usize = 256;

/// Index of the largest value in each row; the first one wins ties.
pub fn argmax_rows(scores: &Tensor<2>) -> Vec<u32> {
    let [rows, cols] = scores.dims();
    let values = scores.to_data().convert::<f32>().try_into_vec::<f32>().unwrap_or_default();
    (0..rows).map(|r| argmax(&values[r * cols..(r + 1) * cols]) as u32).collect()
}

/// Evaluate on the calling thread pool (used for per-epoch validation).
pub fn evaluate(plan: &Plan, params: &Params, examples: &Examples, kind: RecipeKind) -> Result<EvalReport, EngineError> {
    let device = default_device();
    let classes = *plan.output_shape().last().unwrap_or(&0);
    let per_example = targets_per_example(plan, kind);
    let mut tally = Tally::new(classes);
    let rows: Vec<usize> = (0..examples.count).collect();
    for chunk in rows.chunks(EVAL_BATCH) {
        let input = batch_input(&plan.input, examples, chunk, &device);
        let targets = batch_targets(examples, chunk, per_example);
        let scores = scores_2d(model::forward(plan, params, input, None, true));
        let log_probs = log_softmax(scores, 1);
        let values = log_probs
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .map_err(|e| EngineError::Data(format!("reading scores: {e:?}")))?;
        tally.add(&values, &targets)?;
    }
    Ok(tally.report(examples.count, kind))
}

/// Loss, hits and the confusion matrix, summed batch after batch in a fixed order (whatever
/// computed the log-probabilities: our network or an ONNX graph).
pub(crate) struct Tally {
    classes: usize,
    loss_sum: f64,
    confusion: Vec<Vec<u64>>,
    correct: usize,
    positions: usize,
}

impl Tally {
    pub(crate) fn new(classes: usize) -> Self {
        Self { classes, loss_sum: 0.0, confusion: vec![vec![0u64; classes]; classes], correct: 0, positions: 0 }
    }

    /// `log_probs`: `[targets.len(), classes]`, one row per target.
    pub(crate) fn add(&mut self, log_probs: &[f32], targets: &[u32]) -> Result<(), EngineError> {
        let classes = self.classes;
        for (position, &target) in targets.iter().enumerate() {
            let row = &log_probs[position * classes..(position + 1) * classes];
            let target = target as usize;
            if target >= classes {
                return Err(EngineError::LabelOutOfRange { index: self.positions + position, label: target, num_classes: classes });
            }
            self.loss_sum -= row[target] as f64;
            let best = argmax(row);
            if best == target {
                self.correct += 1;
            }
            self.confusion[target][best] += 1;
        }
        self.positions += targets.len();
        Ok(())
    }

    pub(crate) fn report(self, examples: usize, kind: RecipeKind) -> EvalReport {
        let loss = self.loss_sum / self.positions.max(1) as f64;
        let language_model = kind == RecipeKind::CharLanguageModel;
        EvalReport {
            examples,
            positions: self.positions,
            accuracy: self.correct as f64 / self.positions.max(1) as f64,
            loss,
            macro_f1: macro_f1(&self.confusion),
            perplexity: language_model.then(|| loss.exp()),
            confusion_matrix: (!language_model).then_some(self.confusion),
        }
    }
}

/// Index of the largest value; the first one wins ties.
pub fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (c, v) in row.iter().enumerate() {
        if *v > row[best] {
            best = c;
        }
    }
    best
}

/// Evaluate on a one-thread pool: the result does not depend on the machine's core count.
pub fn evaluate_deterministic(plan: &Plan, params: &Params, examples: &Examples, kind: RecipeKind) -> Result<EvalReport, EngineError> {
    with_threads(1, || evaluate(plan, params, examples, kind))?
}
