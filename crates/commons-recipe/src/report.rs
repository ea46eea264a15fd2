//! The evaluation report: what an evaluation of a model on a split says, in the form workers
//! send, validators compare and model cards show; and how the reports of a split's shards merge.

use serde::{Deserialize, Serialize};

use crate::error::RecipeError;

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

/// A metric a leaderboard ranks by: its name, its value, and whether higher is better.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scalar {
    pub name: &'static str,
    pub value: f64,
    pub higher_is_better: bool,
}

impl EvalReport {
    /// The report's scalar metrics, as boards and cards name them.
    pub fn scalars(&self) -> Vec<Scalar> {
        let mut scalars = vec![
            Scalar { name: "accuracy", value: self.accuracy, higher_is_better: true },
            Scalar { name: "loss", value: self.loss, higher_is_better: false },
            Scalar { name: "macro_f1", value: self.macro_f1, higher_is_better: true },
        ];
        if let Some(perplexity) = self.perplexity {
            scalars.push(Scalar { name: "perplexity", value: perplexity, higher_is_better: false });
        }
        scalars.retain(|s| s.value.is_finite());
        scalars
    }
}

/// The report of a whole split from the reports of its shards, in shard order: counts and the
/// confusion matrix add up, loss is the example-weighted mean, F1 is recomputed.
pub fn merge_reports(shards: &[EvalReport]) -> Result<EvalReport, RecipeError> {
    let first = shards.first().ok_or_else(|| RecipeError::Reports("no shard reports to merge".into()))?;
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
                    .ok_or_else(|| RecipeError::Reports("a shard report lacks its confusion matrix".into()))?;
                if part.len() != total.len() {
                    return Err(RecipeError::Reports("shard reports disagree on the number of classes".into()));
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
