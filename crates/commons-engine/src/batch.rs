//! What training, evaluation and sampling share to run a network: the device, a thread pool of
//! a fixed size, batches of examples as tensors, and scores in one shape. `train` and `eval`
//! both build on this module and not on each other's internals.

use burn::tensor::{Device, Tensor, TensorData};
use commons_recipe::recipe::RecipeKind;

use crate::data::Examples;
use crate::error::EngineError;
use crate::model::{Activations, InputKind, Plan};

/// The device training runs on: a GPU backend when the crate is built with one, else the
/// Flex CPU backend.
pub fn default_device() -> Device {
    #[cfg(feature = "cuda")]
    {
        return Device::cuda(0);
    }
    #[cfg(all(feature = "wgpu", not(feature = "cuda")))]
    {
        return Device::wgpu(Default::default());
    }
    #[allow(unreachable_code)]
    Device::flex()
}

/// Run `work` on a rayon pool of exactly `threads` threads: the kernels' work split (and so
/// the floating-point reduction order) depends on the pool size, not on the machine's cores.
pub fn with_threads<T: Send>(threads: usize, work: impl FnOnce() -> T + Send) -> Result<T, EngineError> {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().map_err(|e| EngineError::ThreadPool(e.to_string()))?;
    Ok(pool.install(work))
}

/// The inputs of `rows` of `examples` as a batch tensor.
pub(crate) fn batch_input(input: &InputKind, examples: &Examples, rows: &[usize], device: &Device) -> Activations {
    match input {
        InputKind::Features(shape) => {
            let width: usize = shape.iter().product();
            let mut values = Vec::with_capacity(rows.len() * width);
            for &row in rows {
                values.extend_from_slice(&examples.features[row * width..(row + 1) * width]);
            }
            let mut dims = vec![rows.len()];
            dims.extend_from_slice(shape);
            let data = TensorData::new(values, dims);
            match shape.len() {
                1 => Activations::Rank2(Tensor::from_data(data, device)),
                2 => Activations::Rank3(Tensor::from_data(data, device)),
                _ => Activations::Rank4(Tensor::from_data(data, device)),
            }
        }
        InputKind::Tokens { sequence_length, .. } => {
            let mut ids = Vec::with_capacity(rows.len() * sequence_length);
            for &row in rows {
                ids.extend(examples.tokens[row * sequence_length..(row + 1) * sequence_length].iter().map(|&t| t as i64));
            }
            Activations::Tokens(Tensor::from_data(TensorData::new(ids, [rows.len(), *sequence_length]), device))
        }
    }
}

/// Targets of `rows`: one per example, or one per position for a language model.
pub(crate) fn batch_targets(examples: &Examples, rows: &[usize], per_example: usize) -> Vec<u32> {
    let mut out = Vec::with_capacity(rows.len() * per_example);
    for &row in rows {
        out.extend_from_slice(&examples.targets[row * per_example..(row + 1) * per_example]);
    }
    out
}

/// Network output as `[positions, classes]` scores.
pub(crate) fn scores_2d(output: Activations) -> Tensor<2> {
    match output {
        Activations::Rank2(t) => t,
        Activations::Rank3(t) => t.flatten(0, 1),
        Activations::Rank4(t) => t.flatten(1, 3),
        Activations::Tokens(t) => t.float(),
    }
}

/// Targets per example: one, or one per position for a language model.
pub(crate) fn targets_per_example(plan: &Plan, kind: RecipeKind) -> usize {
    match (kind, &plan.input) {
        (RecipeKind::CharLanguageModel, InputKind::Tokens { sequence_length, .. }) => *sequence_length,
        _ => 1,
    }
}
