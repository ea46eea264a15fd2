//! Evaluation: accuracy, macro-F1, loss, confusion matrix and perplexity, computed in f64 on
//! the host in a fixed order. The forward pass runs on a one-thread pool with a fixed batch
//! size, so the same model and data give bit-identical metrics run after run.

use burn::tensor::Tensor;
use burn::tensor::activation::log_softmax;
use serde::{Deserialize, Serialize};

use crate::data::Examples;
use crate::error::EngineError;
use crate::model::{self, Params, Plan};
use crate::recipe::RecipeKind;
use crate::train::{batch_input, batch_targets, default_device, scores_2d, targets_per_example, with_threads};

/// Examples per forward pass in evaluation; part of the determinism contract.
pub const EVAL_BATCH: usize = 256;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EvalReport {
    /// Examples evaluated.
    pub examples: usize,
    /// Positions scored (examples, or characters for a language model).
    pub positions: usize,
    pub accuracy: f64,
    pub loss: f64,
    pub macro_f1: f64,
    /// Character-level perplexity, `exp(loss)`, for language models.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub perplexity: Option<f64>,
    /// `confusion[true][predicted]`; omitted for language models (vocabulary-sized).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub confusion_matrix: Option<Vec<Vec<u64>>>,
}

/// Index of the largest value in each row; the first one wins ties.
pub fn argmax_rows(scores: &Tensor<2>) -> Vec<u32> {
    let [rows, cols] = scores.dims();
    let values = scores.to_data().convert::<f32>().try_into_vec::<f32>().unwrap_or_default();
    (0..rows)
        .map(|r| {
            let row = &values[r * cols..(r + 1) * cols];
            let mut best = 0;
            for (c, v) in row.iter().enumerate() {
                if *v > row[best] {
                    best = c;
                }
            }
            best as u32
        })
        .collect()
}

/// Evaluate on the calling thread pool (used for per-epoch validation).
pub fn evaluate(plan: &Plan, params: &Params, examples: &Examples, kind: RecipeKind) -> Result<EvalReport, EngineError> {
    let device = default_device();
    let classes = *plan.output_shape().last().unwrap_or(&0);
    let per_example = targets_per_example(plan, kind);
    let mut loss_sum = 0f64;
    let mut confusion = vec![vec![0u64; classes]; classes];
    let mut correct = 0usize;
    let mut positions = 0usize;
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
        for (position, &target) in targets.iter().enumerate() {
            let row = &values[position * classes..(position + 1) * classes];
            let target = target as usize;
            if target >= classes {
                return Err(EngineError::LabelOutOfRange { index: position, label: target, num_classes: classes });
            }
            loss_sum -= row[target] as f64;
            let mut best = 0;
            for (c, v) in row.iter().enumerate() {
                if *v > row[best] {
                    best = c;
                }
            }
            if best == target {
                correct += 1;
            }
            confusion[target][best] += 1;
        }
        positions += targets.len();
    }
    let loss = loss_sum / positions.max(1) as f64;
    let language_model = kind == RecipeKind::CharLanguageModel;
    Ok(EvalReport {
        examples: examples.count,
        positions,
        accuracy: correct as f64 / positions.max(1) as f64,
        loss,
        macro_f1: macro_f1(&confusion),
        perplexity: language_model.then(|| loss.exp()),
        confusion_matrix: (!language_model).then_some(confusion),
    })
}

/// Evaluate on a one-thread pool: the result does not depend on the machine's core count.
pub fn evaluate_deterministic(plan: &Plan, params: &Params, examples: &Examples, kind: RecipeKind) -> Result<EvalReport, EngineError> {
    with_threads(1, || evaluate(plan, params, examples, kind))?
}

/// The report of a whole split from the reports of its shards, in shard order: counts and the
/// confusion matrix add up, loss is the example-weighted mean, F1 is recomputed.
pub fn merge_reports(shards: &[EvalReport]) -> Result<EvalReport, EngineError> {
    let first = shards.first().ok_or_else(|| EngineError::Data("no shard reports to merge".into()))?;
    let positions: usize = shards.iter().map(|r| r.positions).sum();
    let correct: f64 = shards.iter().map(|r| (r.accuracy * r.positions as f64).round()).sum();
    let loss_sum: f64 = shards.iter().map(|r| r.loss * r.positions as f64).sum();
    let confusion = match &first.confusion_matrix {
        Some(m) => {
            let mut total = vec![vec![0u64; m.len()]; m.len()];
            for report in shards {
                let part = report
                    .confusion_matrix
                    .as_ref()
                    .ok_or_else(|| EngineError::Data("a shard report lacks its confusion matrix".into()))?;
                if part.len() != total.len() {
                    return Err(EngineError::Data("shard reports disagree on the number of classes".into()));
                }
                for (row, part_row) in total.iter_mut().zip(part) {
                    for (cell, value) in row.iter_mut().zip(part_row) {
                        *cell += value;
                    }
                }
            }
            Some(total)
        }
        None => None,
    };
    let loss = loss_sum / positions.max(1) as f64;
    Ok(EvalReport {
        examples: shards.iter().map(|r| r.examples).sum(),
        positions,
        accuracy: correct / positions.max(1) as f64,
        loss,
        macro_f1: confusion.as_deref().map(macro_f1).unwrap_or(first.macro_f1),
        perplexity: first.perplexity.map(|_| loss.exp()),
        confusion_matrix: confusion,
    })
}

/// Unweighted mean of per-class F1 over the classes that occur in the targets or predictions.
pub fn macro_f1(confusion: &[Vec<u64>]) -> f64 {
    let classes = confusion.len();
    let mut sum = 0f64;
    let mut counted = 0usize;
    for class in 0..classes {
        let true_positive = confusion[class][class] as f64;
        let actual: u64 = confusion[class].iter().sum();
        let predicted: u64 = confusion.iter().map(|row| row[class]).sum();
        if actual == 0 && predicted == 0 {
            continue;
        }
        counted += 1;
        let denominator = (actual + predicted) as f64;
        sum += if denominator > 0.0 { 2.0 * true_positive / denominator } else { 0.0 };
    }
    if counted == 0 { 0.0 } else { sum / counted as f64 }
}

#[cfg(test)]
mod tests {
    use super::macro_f1;

    #[test]
    fn macro_f1_matches_a_hand_computed_case() {
        // Class 0: tp 3, fn 1, fp 2 -> F1 = 6/9; class 1: tp 5, fn 2, fp 1 -> F1 = 10/13.
        let confusion = vec![vec![3, 1], vec![2, 5]];
        let expected = (6.0 / 9.0 + 10.0 / 13.0) / 2.0;
        assert!((macro_f1(&confusion) - expected).abs() < 1e-12);
    }
}
