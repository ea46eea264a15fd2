//! The network a recipe describes, resolved before any data or tensor exists: layers in order
//! with every shape computed up front, errors naming the recipe line. The engine builds its
//! parameters from a plan; the coordinator prices a job by one.

use crate::error::RecipeError;
use crate::recipe::{ActivationKind, LayerSpec, LoadedRecipe, Pooling, SizeSpec};

/// What one example looks like when it enters the network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputKind {
    /// Float features of this shape (without the batch axis).
    Features(Vec<usize>),
    /// Token ids, `sequence_length` of them, below `vocab_size`.
    Tokens { sequence_length: usize, vocab_size: usize },
}

/// Sizes that recipes may leave as `"auto"`, known once the data is read.
#[derive(Debug, Clone, Copy)]
pub struct DataDims {
    pub num_classes: usize,
    pub vocab_size: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecurrentKind {
    Rnn,
    Lstm,
    Gru,
}

impl RecurrentKind {
    /// Gate blocks in the recurrent kernel (LSTM: input, forget, cell, output).
    pub fn gates(self) -> usize {
        match self {
            Self::Rnn => 1,
            Self::Lstm => 4,
            Self::Gru => 3,
        }
    }
}

/// One layer with every size resolved.
#[derive(Debug, Clone, PartialEq)]
pub enum PlannedLayer {
    Flatten,
    Dense { param: usize, inputs: usize, units: usize },
    Dropout { rate: f64 },
    Activation(ActivationKind),
    Conv2d { param: usize, in_channels: usize, filters: usize, kernel: usize, stride: usize, padding: usize },
    MaxPool2d { pool: usize, stride: usize },
    Embedding { param: usize, vocab: usize, dim: usize },
    Recurrent { param: usize, kind: RecurrentKind, inputs: usize, hidden: usize, pool: Pooling },
}

/// The resolved network: layers in order, with the shape after each.
#[derive(Debug, Clone)]
pub struct Plan {
    pub input: InputKind,
    pub layers: Vec<PlannedLayer>,
    /// Shape after each layer (without the batch axis).
    pub shapes: Vec<Vec<usize>>,
    /// Index of the recipe layer that is each plan layer's origin (a dense layer with an
    /// activation becomes two plan layers).
    pub recipe_index: Vec<usize>,
    /// The network ends in a softmax that the loss fuses into a log-softmax.
    pub ends_in_softmax: bool,
}

impl Plan {
    pub fn output_shape(&self) -> &[usize] {
        self.shapes.last().map(Vec::as_slice).unwrap_or(&[])
    }

    /// Resolve a recipe's layer stack against the input, computing every shape up front.
    pub fn resolve(loaded: &LoadedRecipe, input: InputKind, dims: DataDims) -> Result<Plan, RecipeError> {
        let mut shape: Vec<usize> = match &input {
            InputKind::Features(shape) => shape.clone(),
            InputKind::Tokens { sequence_length, .. } => vec![*sequence_length],
        };
        let mut tokens = matches!(input, InputKind::Tokens { .. });
        let mut plan =
            Plan { input: input.clone(), layers: Vec::new(), shapes: Vec::new(), recipe_index: Vec::new(), ends_in_softmax: false };
        let mut counters = ParamCounter::default();
        for (index, spanned) in loaded.recipe.layers.iter().enumerate() {
            let spec = spanned.get_ref();
            let line = loaded.line_of(&spanned.span());
            let mismatch = |reason: String| RecipeError::ShapeMismatch {
                origin: loaded.origin.clone(),
                line,
                layer: spec.type_name().to_string(),
                reason,
            };
            if tokens && !matches!(spec, LayerSpec::Embedding { .. }) {
                return Err(mismatch(format!("the input is a sequence of token ids {shape:?}; the first layer must be an embedding")));
            }
            let push = |plan: &mut Plan, layer: PlannedLayer, out: Vec<usize>| {
                plan.layers.push(layer);
                plan.shapes.push(out);
                plan.recipe_index.push(index);
            };
            match spec {
                LayerSpec::Flatten => {
                    shape = vec![shape.iter().product()];
                    push(&mut plan, PlannedLayer::Flatten, shape.clone());
                }
                LayerSpec::Dense { units, activation } => {
                    let units = match units {
                        SizeSpec::Fixed(units) => *units,
                        SizeSpec::Auto(_) => dims.num_classes,
                    };
                    if shape.is_empty() || shape.len() > 2 {
                        return Err(mismatch(format!(
                            "dense expects a vector [features] or a sequence [steps, features], got {shape:?}; add a flatten layer before it"
                        )));
                    }
                    let inputs = shape[shape.len() - 1];
                    let param = counters.next();
                    let last = shape.len() - 1;
                    shape[last] = units;
                    push(&mut plan, PlannedLayer::Dense { param, inputs, units }, shape.clone());
                    if let Some(kind) = activation {
                        push(&mut plan, PlannedLayer::Activation(*kind), shape.clone());
                    }
                }
                LayerSpec::Dropout { rate } => push(&mut plan, PlannedLayer::Dropout { rate: *rate }, shape.clone()),
                LayerSpec::Relu => push(&mut plan, PlannedLayer::Activation(ActivationKind::Relu), shape.clone()),
                LayerSpec::Sigmoid => push(&mut plan, PlannedLayer::Activation(ActivationKind::Sigmoid), shape.clone()),
                LayerSpec::Tanh => push(&mut plan, PlannedLayer::Activation(ActivationKind::Tanh), shape.clone()),
                LayerSpec::Softmax => push(&mut plan, PlannedLayer::Activation(ActivationKind::Softmax), shape.clone()),
                LayerSpec::Conv2d { filters, kernel_size, stride, padding, activation } => {
                    let [channels, height, width] = shape[..] else {
                        return Err(mismatch(format!(
                            "conv2d expects [channels, height, width], got {shape:?} (for grey images write input_shape = [1, H, W])"
                        )));
                    };
                    let (padded_h, padded_w) = (height + 2 * padding, width + 2 * padding);
                    if padded_h < *kernel_size || padded_w < *kernel_size {
                        return Err(mismatch(format!("kernel {kernel_size} is larger than the padded input {padded_h}x{padded_w}")));
                    }
                    let out_h = (padded_h - kernel_size) / stride + 1;
                    let out_w = (padded_w - kernel_size) / stride + 1;
                    let param = counters.next();
                    shape = vec![*filters, out_h, out_w];
                    push(
                        &mut plan,
                        PlannedLayer::Conv2d {
                            param,
                            in_channels: channels,
                            filters: *filters,
                            kernel: *kernel_size,
                            stride: *stride,
                            padding: *padding,
                        },
                        shape.clone(),
                    );
                    if let Some(kind) = activation {
                        push(&mut plan, PlannedLayer::Activation(*kind), shape.clone());
                    }
                }
                LayerSpec::MaxPool2d { pool_size, stride } => {
                    let [channels, height, width] = shape[..] else {
                        return Err(mismatch(format!("max-pool2d expects [channels, height, width], got {shape:?}")));
                    };
                    let stride = stride.unwrap_or(*pool_size);
                    if height < *pool_size || width < *pool_size {
                        return Err(mismatch(format!("pool {pool_size} is larger than the input {height}x{width}")));
                    }
                    shape = vec![channels, (height - pool_size) / stride + 1, (width - pool_size) / stride + 1];
                    push(&mut plan, PlannedLayer::MaxPool2d { pool: *pool_size, stride }, shape.clone());
                }
                LayerSpec::Embedding { vocab_size, dim } => {
                    let InputKind::Tokens { vocab_size: data_vocab, .. } = input else {
                        return Err(mismatch(format!("embedding needs token ids as input, but the data gives float features {shape:?}")));
                    };
                    if !tokens {
                        return Err(mismatch("embedding must be the first layer, directly on the token ids".into()));
                    }
                    let vocab = match vocab_size {
                        SizeSpec::Fixed(vocab) => *vocab,
                        SizeSpec::Auto(_) => data_vocab,
                    };
                    if vocab < data_vocab {
                        return Err(mismatch(format!("vocab_size {vocab} is smaller than the data's vocabulary of {data_vocab} tokens")));
                    }
                    tokens = false;
                    let param = counters.next();
                    shape = vec![shape[0], *dim];
                    push(&mut plan, PlannedLayer::Embedding { param, vocab, dim: *dim }, shape.clone());
                }
                LayerSpec::Rnn { hidden, pool } | LayerSpec::Lstm { hidden, pool } | LayerSpec::Gru { hidden, pool } => {
                    let kind = match spec {
                        LayerSpec::Rnn { .. } => RecurrentKind::Rnn,
                        LayerSpec::Lstm { .. } => RecurrentKind::Lstm,
                        _ => RecurrentKind::Gru,
                    };
                    let [steps, inputs] = shape[..] else {
                        return Err(mismatch(format!("{} expects a sequence [steps, features], got {shape:?}", spec.type_name())));
                    };
                    let param = counters.next();
                    shape = if *pool == Pooling::None { vec![steps, *hidden] } else { vec![*hidden] };
                    push(&mut plan, PlannedLayer::Recurrent { param, kind, inputs, hidden: *hidden, pool: *pool }, shape.clone());
                }
            }
        }
        if tokens {
            return Err(RecipeError::BadValue {
                origin: loaded.origin.clone(),
                line: None,
                field: "layers".into(),
                reason: "token input needs an embedding layer".into(),
            });
        }
        plan.ends_in_softmax = matches!(plan.layers.last(), Some(PlannedLayer::Activation(ActivationKind::Softmax)));
        let expected_classes = dims.num_classes;
        let out = plan.output_shape().to_vec();
        let (line, layer) = loaded
            .recipe
            .layers
            .last()
            .map(|l| (loaded.line_of(&l.span()), l.get_ref().type_name().to_string()))
            .unwrap_or((1, String::new()));
        let wanted_rank = match loaded.recipe.kind {
            crate::recipe::RecipeKind::CharLanguageModel => 2,
            _ => 1,
        };
        if out.len() != wanted_rank || out[out.len() - 1] != expected_classes {
            let wanted = if wanted_rank == 1 { format!("[{expected_classes}]") } else { format!("[steps, {expected_classes}]") };
            return Err(RecipeError::ShapeMismatch {
                origin: loaded.origin.clone(),
                line,
                layer,
                reason: format!("the network's output is {out:?} but the task needs {wanted} (one score per class)"),
            });
        }
        Ok(plan)
    }
}

#[derive(Default)]
struct ParamCounter(usize);
impl ParamCounter {
    fn next(&mut self) -> usize {
        self.0 += 1;
        self.0 - 1
    }
}

impl PlannedLayer {
    pub fn param_index(&self) -> Option<usize> {
        match *self {
            Self::Dense { param, .. } | Self::Conv2d { param, .. } | Self::Embedding { param, .. } | Self::Recurrent { param, .. } => {
                Some(param)
            }
            _ => None,
        }
    }
}
