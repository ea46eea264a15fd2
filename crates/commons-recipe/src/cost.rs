//! What a run costs, in floating-point operations counted from the resolved network: the
//! compute network prices work by it, so a GPU and a CPU earn the same for the same work.
//!
//! Counts follow the usual convention: a multiply-add is two operations, an element-wise op is
//! one, and a training step costs three forward passes (forward, and the two halves of the
//! backward pass: gradients of the activations and of the weights).

use crate::error::RecipeError;
use crate::plan::{DataDims, InputKind, Plan, PlannedLayer};
use crate::recipe::{DataFormat, LoadedRecipe};

/// Operations of one forward pass of one example.
pub fn forward_flops_per_example(plan: &Plan) -> f64 {
    let input_shape: Vec<usize> = match &plan.input {
        InputKind::Features(shape) => shape.clone(),
        InputKind::Tokens { sequence_length, .. } => vec![*sequence_length],
    };
    let mut total = 0f64;
    for (index, layer) in plan.layers.iter().enumerate() {
        let before = if index == 0 { &input_shape } else { &plan.shapes[index - 1] };
        let after = &plan.shapes[index];
        let elements = after.iter().product::<usize>() as f64;
        total += match layer {
            PlannedLayer::Flatten | PlannedLayer::Embedding { .. } => 0.0,
            PlannedLayer::Dense { inputs, .. } => 2.0 * *inputs as f64 * elements,
            PlannedLayer::Conv2d { in_channels, kernel, .. } => 2.0 * (kernel * kernel * in_channels) as f64 * elements,
            PlannedLayer::Recurrent { kind, inputs, hidden, .. } => {
                let steps = before.first().copied().unwrap_or(1) as f64;
                2.0 * kind.gates() as f64 * (*hidden * (inputs + hidden)) as f64 * steps
            }
            PlannedLayer::MaxPool2d { pool, .. } => (pool * pool) as f64 * elements,
            PlannedLayer::Dropout { .. } | PlannedLayer::Activation(_) => elements,
        };
    }
    total
}

/// Operations of training for `epochs` over `train_examples`, plus the final test evaluation.
pub fn training_flops(plan: &Plan, train_examples: u64, epochs: u64, test_examples: u64) -> f64 {
    let forward = forward_flops_per_example(plan);
    // In floating point: an integer product of counts could wrap.
    3.0 * forward * train_examples as f64 * epochs as f64 + forward * test_examples as f64
}

/// Operations of scoring `examples` examples.
pub fn evaluation_flops(plan: &Plan, examples: u64) -> f64 {
    forward_flops_per_example(plan) * examples as f64
}

/// The network a recipe describes, resolved from the recipe alone (before any data is read):
/// `input_shape` and `num_classes` from the recipe; token inputs assume `max_vocab` words (or
/// `default_vocab` when the recipe leaves it open). Used to price a job at submission.
pub fn plan_from_recipe(loaded: &LoadedRecipe, default_vocab: usize) -> Result<Plan, RecipeError> {
    let data = &loaded.recipe.data;
    let vocab_size = data.max_vocab.unwrap_or(default_vocab);
    let input = match data.format {
        DataFormat::Idx | DataFormat::Csv => InputKind::Features(data.input_shape.clone()),
        DataFormat::JsonText | DataFormat::Text => {
            InputKind::Tokens { sequence_length: data.input_shape.first().copied().unwrap_or(1), vocab_size }
        }
    };
    let num_classes = data.num_classes.unwrap_or(if data.format == DataFormat::Text { vocab_size } else { 2 });
    Plan::resolve(loaded, input, DataDims { num_classes, vocab_size })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_keras_mlp_costs_what_its_matrices_say() {
        let loaded = crate::recipe::load("keras-mnist-mlp").expect("built-in recipe");
        let plan = plan_from_recipe(&loaded, 0).expect("plan");
        // Dense 784x128, ReLU on 128, dropout on 128, dense 128x10, softmax on 10.
        let expected = 2.0 * 784.0 * 128.0 + 128.0 + 128.0 + 2.0 * 128.0 * 10.0 + 10.0;
        assert_eq!(forward_flops_per_example(&plan), expected);
        assert_eq!(training_flops(&plan, 60_000, 2, 10_000), expected * (3.0 * 120_000.0 + 10_000.0));
    }
}
