//! The trainable parameters of a resolved plan ([`commons_recipe::plan`]) as a burn module,
//! and the forward pass.
//!
//! Parameters are initialised here from our own seeded ChaCha stream rather than burn's
//! process-global RNG, so initial weights depend on the recipe seed alone — not on what else
//! ran in the process — and match Keras' defaults (Glorot-uniform kernels, zero biases,
//! orthogonal recurrent kernels, forget-gate bias 1).

pub use crate::rng::SeededRng;
use burn::module::{Module, Param};
use burn::tensor::activation;
use burn::tensor::module::{conv2d, embedding, linear, max_pool2d};
use burn::tensor::ops::{ConvOptions, MaxPoolOptions};
use burn::tensor::{Device, Int, Tensor, TensorData};

pub use commons_recipe::plan::{DataDims, InputKind, Plan, PlannedLayer, RecurrentKind};
use commons_recipe::recipe::{ActivationKind, Pooling};

/// A dense (fully connected) layer: `y = x W + b`, `W` stored `[inputs, units]`.
#[derive(Module, Debug)]
pub struct DenseParams {
    pub weight: Param<Tensor<2>>,
    pub bias: Param<Tensor<1>>,
}

#[derive(Module, Debug)]
pub struct ConvParams {
    /// `[filters, in_channels, kernel, kernel]`.
    pub weight: Param<Tensor<4>>,
    pub bias: Param<Tensor<1>>,
}

#[derive(Module, Debug)]
pub struct EmbeddingParams {
    /// `[vocab, dim]`.
    pub weight: Param<Tensor<2>>,
}

/// Recurrent layer weights with all gates fused into one matrix each, so a time step is two
/// matrix products. Gate order: LSTM `i, f, g, o`; GRU `r, z, n`.
#[derive(Module, Debug)]
pub struct RecurrentParams {
    /// `[inputs, gates * hidden]`.
    pub weight_ih: Param<Tensor<2>>,
    /// `[hidden, gates * hidden]`.
    pub weight_hh: Param<Tensor<2>>,
    pub bias: Param<Tensor<1>>,
    /// GRU only: the hidden-side bias of the candidate gate sits inside the reset product.
    pub bias_hh: Option<Param<Tensor<1>>>,
}

#[derive(Module, Debug)]
pub enum LayerParams {
    Dense(DenseParams),
    Conv(ConvParams),
    Embedding(EmbeddingParams),
    Recurrent(RecurrentParams),
}

/// The trainable part of the network, one entry per parametrised layer in plan order.
#[derive(Module, Debug)]
pub struct Params {
    pub layers: Vec<LayerParams>,
}

/// A host-side copy of one parameter tensor, for saving and for tests. Values are f64 so a
/// model on an f64 device round-trips exactly; saved files hold f32.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedTensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub values: Vec<f64>,
}

/// A parameter leaf of any rank.
pub enum ParamTensor {
    Rank1(Tensor<1>),
    Rank2(Tensor<2>),
    Rank4(Tensor<4>),
}

impl ParamTensor {
    pub fn dims(&self) -> Vec<usize> {
        match self {
            Self::Rank1(t) => t.dims().to_vec(),
            Self::Rank2(t) => t.dims().to_vec(),
            Self::Rank4(t) => t.dims().to_vec(),
        }
    }
    fn data(&self) -> TensorData {
        match self {
            Self::Rank1(t) => t.to_data(),
            Self::Rank2(t) => t.to_data(),
            Self::Rank4(t) => t.to_data(),
        }
    }
    /// The values, row-major, as f64.
    pub fn host_values(&self) -> Vec<f64> {
        self.data().convert::<f64>().try_into_vec::<f64>().unwrap_or_default()
    }
    /// This leaf's gradient from a backward pass, row-major, as f64.
    pub fn gradient(&self, gradients: &burn::tensor::Gradients) -> Option<Vec<f64>> {
        let data = match self {
            Self::Rank1(t) => t.grad(gradients)?.into_data(),
            Self::Rank2(t) => t.grad(gradients)?.into_data(),
            Self::Rank4(t) => t.grad(gradients)?.into_data(),
        };
        data.convert::<f64>().try_into_vec::<f64>().ok()
    }
}

fn glorot_uniform(rng: &mut SeededRng, count: usize, fan_in: usize, fan_out: usize) -> Vec<f32> {
    let limit = (6.0 / (fan_in + fan_out) as f64).sqrt() as f32;
    (0..count).map(|_| (rng.uniform() * 2.0 - 1.0) * limit).collect()
}

/// `gates` orthogonal `[hidden, hidden]` blocks side by side, as Keras' `recurrent_initializer`.
fn orthogonal_blocks(rng: &mut SeededRng, hidden: usize, gates: usize) -> Vec<f32> {
    let mut out = vec![0f32; hidden * gates * hidden];
    for gate in 0..gates {
        // Modified Gram-Schmidt on the columns of a Gaussian matrix.
        let mut columns: Vec<Vec<f64>> = (0..hidden).map(|_| (0..hidden).map(|_| rng.normal()).collect()).collect();
        for j in 0..hidden {
            for k in 0..j {
                let dot: f64 = (0..hidden).map(|r| columns[j][r] * columns[k][r]).sum();
                let (done, rest) = columns.split_at_mut(j);
                for (value, basis) in rest[0].iter_mut().zip(&done[k]) {
                    *value -= dot * basis;
                }
            }
            let norm = columns[j].iter().map(|v| v * v).sum::<f64>().sqrt().max(1e-12);
            for value in &mut columns[j] {
                *value /= norm;
            }
        }
        for (col, column) in columns.iter().enumerate() {
            for (row, value) in column.iter().enumerate() {
                out[row * gates * hidden + gate * hidden + col] = *value as f32;
            }
        }
    }
    out
}

fn param<const D: usize, E: burn::tensor::Element>(values: Vec<E>, shape: [usize; D], device: &Device) -> Param<Tensor<D>> {
    Param::from_tensor(Tensor::from_data(TensorData::new(values, shape), device))
}

impl Params {
    /// Fresh parameters for `plan`, drawn from `seed`.
    pub fn init(plan: &Plan, seed: u64, device: &Device) -> Params {
        let mut rng = SeededRng::new(seed);
        let mut layers = Vec::new();
        for layer in &plan.layers {
            match *layer {
                PlannedLayer::Dense { inputs, units, .. } => layers.push(LayerParams::Dense(DenseParams {
                    weight: param(glorot_uniform(&mut rng, inputs * units, inputs, units), [inputs, units], device),
                    bias: param(vec![0.0; units], [units], device),
                })),
                PlannedLayer::Conv2d { in_channels, filters, kernel, .. } => {
                    let receptive = kernel * kernel;
                    let count = filters * in_channels * receptive;
                    layers.push(LayerParams::Conv(ConvParams {
                        weight: param(
                            glorot_uniform(&mut rng, count, in_channels * receptive, filters * receptive),
                            [filters, in_channels, kernel, kernel],
                            device,
                        ),
                        bias: param(vec![0.0; filters], [filters], device),
                    }))
                }
                PlannedLayer::Embedding { vocab, dim, .. } => {
                    // Keras' Embedding default: uniform in [-0.05, 0.05].
                    let values = (0..vocab * dim).map(|_| (rng.uniform() * 2.0 - 1.0) * 0.05).collect();
                    layers.push(LayerParams::Embedding(EmbeddingParams { weight: param(values, [vocab, dim], device) }))
                }
                PlannedLayer::Recurrent { kind, inputs, hidden, .. } => {
                    let gates = kind.gates();
                    let width = gates * hidden;
                    let weight_ih = glorot_uniform(&mut rng, inputs * width, inputs, width);
                    let weight_hh = orthogonal_blocks(&mut rng, hidden, gates);
                    let mut bias = vec![0.0; width];
                    if kind == RecurrentKind::Lstm {
                        // Forget-gate bias 1 (Jozefowicz et al. 2015; Keras' unit_forget_bias).
                        bias[hidden..2 * hidden].fill(1.0);
                    }
                    layers.push(LayerParams::Recurrent(RecurrentParams {
                        weight_ih: param(weight_ih, [inputs, width], device),
                        weight_hh: param(weight_hh, [hidden, width], device),
                        bias: param(bias, [width], device),
                        bias_hh: (kind == RecurrentKind::Gru).then(|| param(vec![0.0; width], [width], device)),
                    }))
                }
                _ => {}
            }
        }
        Params { layers }
    }

    /// Visit every parameter leaf with its stable name (`layers.<plan index>.<field>`), in
    /// plan order. The tensors are the leaves themselves, so `grad` works on them.
    pub fn visit(&self, plan: &Plan, visitor: &mut dyn FnMut(String, ParamTensor)) {
        for (plan_index, layer) in plan.layers.iter().enumerate() {
            let Some(param_index) = layer.param_index() else { continue };
            let prefix = format!("layers.{plan_index}");
            match &self.layers[param_index] {
                LayerParams::Dense(p) => {
                    visitor(format!("{prefix}.weight"), ParamTensor::Rank2(p.weight.val()));
                    visitor(format!("{prefix}.bias"), ParamTensor::Rank1(p.bias.val()));
                }
                LayerParams::Conv(p) => {
                    visitor(format!("{prefix}.weight"), ParamTensor::Rank4(p.weight.val()));
                    visitor(format!("{prefix}.bias"), ParamTensor::Rank1(p.bias.val()));
                }
                LayerParams::Embedding(p) => visitor(format!("{prefix}.weight"), ParamTensor::Rank2(p.weight.val())),
                LayerParams::Recurrent(p) => {
                    visitor(format!("{prefix}.weight_ih"), ParamTensor::Rank2(p.weight_ih.val()));
                    visitor(format!("{prefix}.weight_hh"), ParamTensor::Rank2(p.weight_hh.val()));
                    visitor(format!("{prefix}.bias"), ParamTensor::Rank1(p.bias.val()));
                    if let Some(b) = &p.bias_hh {
                        visitor(format!("{prefix}.bias_hh"), ParamTensor::Rank1(b.val()));
                    }
                }
            }
        }
    }

    /// Numbers the parameters 1, 2, ... in plan order. Optimizer state is keyed by parameter id,
    /// so stable ids let a checkpoint's optimizer state find its parameters again.
    pub fn with_stable_ids(mut self) -> Params {
        let mut next = 0u64;
        let mut id = || {
            next += 1;
            burn::module::ParamId::from(next)
        };
        for layer in &mut self.layers {
            match layer {
                LayerParams::Dense(p) => {
                    p.weight.id = id();
                    p.bias.id = id();
                }
                LayerParams::Conv(p) => {
                    p.weight.id = id();
                    p.bias.id = id();
                }
                LayerParams::Embedding(p) => p.weight.id = id(),
                LayerParams::Recurrent(p) => {
                    p.weight_ih.id = id();
                    p.weight_hh.id = id();
                    p.bias.id = id();
                    if let Some(b) = &mut p.bias_hh {
                        b.id = id();
                    }
                }
            }
        }
        self
    }

    /// Every parameter with its stable name, copied to the host, in plan order.
    pub fn named_tensors(&self, plan: &Plan) -> Vec<NamedTensor> {
        let mut out = Vec::new();
        self.visit(plan, &mut |name, tensor| {
            let shape = tensor.dims();
            out.push(NamedTensor { name, shape, values: tensor.host_values() });
        });
        out
    }

    /// Rebuild parameters for `plan` from named tensors (the inverse of [`named_tensors`]).
    pub fn from_named(plan: &Plan, tensors: &[NamedTensor], device: &Device) -> Result<Params, String> {
        let find = |name: String, shape: &[usize]| -> Result<Vec<f64>, String> {
            let tensor = tensors.iter().find(|t| t.name == name).ok_or_else(|| format!("tensor `{name}` is missing"))?;
            if tensor.shape != shape {
                return Err(format!("tensor `{name}` has shape {:?}, the recipe needs {shape:?}", tensor.shape));
            }
            Ok(tensor.values.clone())
        };
        let mut layers = Vec::new();
        for (plan_index, layer) in plan.layers.iter().enumerate() {
            let prefix = format!("layers.{plan_index}");
            match *layer {
                PlannedLayer::Dense { inputs, units, .. } => layers.push(LayerParams::Dense(DenseParams {
                    weight: param(find(format!("{prefix}.weight"), &[inputs, units])?, [inputs, units], device),
                    bias: param(find(format!("{prefix}.bias"), &[units])?, [units], device),
                })),
                PlannedLayer::Conv2d { in_channels, filters, kernel, .. } => {
                    let shape = [filters, in_channels, kernel, kernel];
                    layers.push(LayerParams::Conv(ConvParams {
                        weight: param(find(format!("{prefix}.weight"), &shape)?, shape, device),
                        bias: param(find(format!("{prefix}.bias"), &[filters])?, [filters], device),
                    }))
                }
                PlannedLayer::Embedding { vocab, dim, .. } => layers.push(LayerParams::Embedding(EmbeddingParams {
                    weight: param(find(format!("{prefix}.weight"), &[vocab, dim])?, [vocab, dim], device),
                })),
                PlannedLayer::Recurrent { kind, inputs, hidden, .. } => {
                    let width = kind.gates() * hidden;
                    layers.push(LayerParams::Recurrent(RecurrentParams {
                        weight_ih: param(find(format!("{prefix}.weight_ih"), &[inputs, width])?, [inputs, width], device),
                        weight_hh: param(find(format!("{prefix}.weight_hh"), &[hidden, width])?, [hidden, width], device),
                        bias: param(find(format!("{prefix}.bias"), &[width])?, [width], device),
                        bias_hh: match kind {
                            RecurrentKind::Gru => Some(param(find(format!("{prefix}.bias_hh"), &[width])?, [width], device)),
                            _ => None,
                        },
                    }))
                }
                _ => {}
            }
        }
        Ok(Params { layers })
    }
}

/// A batch flowing through the network; the rank changes from layer to layer.
#[derive(Debug, Clone)]
pub enum Activations {
    Tokens(Tensor<2, Int>),
    Rank2(Tensor<2>),
    Rank3(Tensor<3>),
    Rank4(Tensor<4>),
}

/// Where dropout masks come from; `None` in evaluation.
pub struct DropoutSource<'a> {
    pub rng: &'a mut SeededRng,
}

fn dropout_mask(dims: &[usize], rate: f64, rng: &mut SeededRng, device: &Device) -> TensorData {
    let keep_scale = (1.0 / (1.0 - rate)) as f32;
    let threshold = rate as f32;
    let count: usize = dims.iter().product();
    // The draws of `count` calls of `rng.uniform()`, taken a block at a time.
    let mut words = vec![0u32; count];
    rng.fill_words(&mut words);
    // `uniform < threshold` as integers: a draw is `m · 2⁻²⁴` for the word's top 24 bits `m`,
    // and `m < threshold · 2²⁴` exactly when `m < ⌈threshold · 2²⁴⌉` (scaling by 2²⁴ is exact).
    // A select of two constants over integers, which vectorises.
    let cutoff = (threshold * 16_777_216.0).ceil() as i32;
    let mut values = vec![0f32; count];
    for (value, &word) in values.iter_mut().zip(&words) {
        *value = if ((word >> 8) as i32) < cutoff { 0.0 } else { keep_scale };
    }
    let _ = device;
    TensorData::new(values, dims.to_vec())
}

fn activate<const D: usize>(kind: ActivationKind, x: Tensor<D>) -> Tensor<D> {
    match kind {
        ActivationKind::Relu => activation::relu(x),
        ActivationKind::Sigmoid => activation::sigmoid(x),
        ActivationKind::Tanh => activation::tanh(x),
        ActivationKind::Softmax => activation::softmax(x, D - 1),
    }
}

/// Run the network. With `skip_final_softmax` the output is the pre-softmax scores, which the
/// cross-entropy loss turns into log-probabilities in one numerically stable step.
pub fn forward(
    plan: &Plan,
    params: &Params,
    input: Activations,
    mut dropout: Option<DropoutSource<'_>>,
    skip_final_softmax: bool,
) -> Activations {
    let mut x = input;
    let last = plan.layers.len().saturating_sub(1);
    for (index, layer) in plan.layers.iter().enumerate() {
        x = match (layer, x) {
            (PlannedLayer::Flatten, Activations::Rank3(t)) => Activations::Rank2(t.flatten(1, 2)),
            (PlannedLayer::Flatten, Activations::Rank4(t)) => Activations::Rank2(t.flatten(1, 3)),
            (PlannedLayer::Flatten, other) => other,
            (PlannedLayer::Dense { param, .. }, x) => {
                let LayerParams::Dense(p) = &params.layers[*param] else { unreachable!("plan and params are built together") };
                match x {
                    Activations::Rank2(t) => Activations::Rank2(dense(t, p.weight.val(), p.bias.val())),
                    Activations::Rank3(t) => Activations::Rank3(linear_sequence(t, p.weight.val(), p.bias.val())),
                    other => other,
                }
            }
            (PlannedLayer::Dropout { rate }, x) => match dropout.as_mut() {
                Some(source) if *rate > 0.0 => apply_dropout(x, *rate, source.rng),
                _ => x,
            },
            (PlannedLayer::Activation(ActivationKind::Softmax), x) if index == last && skip_final_softmax => x,
            (PlannedLayer::Activation(kind), x) => match x {
                Activations::Rank2(t) => Activations::Rank2(activate(*kind, t)),
                Activations::Rank3(t) => Activations::Rank3(activate(*kind, t)),
                Activations::Rank4(t) => Activations::Rank4(activate(*kind, t)),
                other => other,
            },
            (PlannedLayer::Conv2d { param, stride, padding, .. }, Activations::Rank4(t)) => {
                let LayerParams::Conv(p) = &params.layers[*param] else { unreachable!("plan and params are built together") };
                let options = ConvOptions::new([*stride, *stride], [*padding, *padding], [1, 1], 1);
                Activations::Rank4(conv2d(t, p.weight.val(), Some(p.bias.val()), options))
            }
            (PlannedLayer::MaxPool2d { pool, stride }, Activations::Rank4(t)) => {
                // Non-overlapping windows (the recipes' pools) on the CPU take the kernel of
                // `kernels::pool`; burn's general pool would cost a fifth of a CNN's epoch.
                let [_, _, h, w] = t.dims();
                if pool == stride && *pool <= h.min(w) && crate::kernels::fused_on(&t.device()) {
                    Activations::Rank4(crate::kernels::pool::max_pool2d(t, *pool))
                } else {
                    Activations::Rank4(max_pool2d(t, MaxPoolOptions::new([*pool, *pool]).with_stride([*stride, *stride])))
                }
            }
            (PlannedLayer::Embedding { param, .. }, Activations::Tokens(ids)) => {
                let LayerParams::Embedding(p) = &params.layers[*param] else { unreachable!("plan and params are built together") };
                Activations::Rank3(embedding(p.weight.val(), ids))
            }
            (PlannedLayer::Recurrent { param, kind, hidden, pool, .. }, Activations::Rank3(t)) => {
                let LayerParams::Recurrent(p) = &params.layers[*param] else { unreachable!("plan and params are built together") };
                recurrent(p, *kind, *hidden, *pool, t)
            }
            (_, other) => other,
        };
    }
    x
}

fn apply_dropout(x: Activations, rate: f64, rng: &mut SeededRng) -> Activations {
    macro_rules! masked {
        ($variant:ident, $t:expr) => {{
            let t = $t;
            let device = t.device();
            let mask = Tensor::from_data(dropout_mask(&t.dims(), rate, rng, &device), &device);
            Activations::$variant(t * mask)
        }};
    }
    match x {
        Activations::Rank2(t) => masked!(Rank2, t),
        Activations::Rank3(t) => masked!(Rank3, t),
        Activations::Rank4(t) => masked!(Rank4, t),
        other => other,
    }
}

/// A dense layer applied at every step of `[batch, steps, inputs]` sequences, as one
/// `[batch·steps, inputs]` product: on a rank-3 input burn runs one product per sequence, and its
/// backward writes a weight gradient per sequence before summing them.
fn linear_sequence(x: Tensor<3>, weight: Tensor<2>, bias: Tensor<1>) -> Tensor<3> {
    let [batch, steps, inputs] = x.dims();
    let outputs = weight.dims()[1];
    dense(x.reshape([batch * steps, inputs]), weight, bias).reshape([batch, steps, outputs])
}

/// `x W + b`: one operation on the CPU backend (`kernels::dense`), burn's `linear` elsewhere.
fn dense(x: Tensor<2>, weight: Tensor<2>, bias: Tensor<1>) -> Tensor<2> {
    if crate::kernels::fused_on(&x.device()) { crate::kernels::dense::linear(x, weight, bias) } else { linear(x, weight, Some(bias)) }
}

/// One recurrent layer over a `[batch, steps, inputs]` sequence. The input projection of all
/// steps is one matrix product; the time loop is the fused operation of [`crate::kernels::recurrent`] on
/// the CPU backend, a graph of per-step tensor operations elsewhere.
fn recurrent(p: &RecurrentParams, kind: RecurrentKind, hidden: usize, pool: Pooling, x: Tensor<3>) -> Activations {
    let [batch, steps, _] = x.dims();
    let projected = linear_sequence(x, p.weight_ih.val(), p.bias.val());
    let weight_hh = p.weight_hh.val();
    let bias_hh = p.bias_hh.as_ref().map(|b| b.val());
    let fused = kind != RecurrentKind::Rnn && crate::kernels::fused_on(&projected.device());
    let sequence = match (kind, bias_hh) {
        (RecurrentKind::Lstm, _) if fused => crate::kernels::recurrent::lstm(projected, weight_hh),
        (RecurrentKind::Gru, Some(bias_hh)) if fused => crate::kernels::recurrent::gru(projected, weight_hh, bias_hh),
        (kind, bias_hh) => recurrent_sequence_stepwise(kind, projected, weight_hh, bias_hh),
    };
    match pool {
        Pooling::None => Activations::Rank3(sequence),
        Pooling::Last => Activations::Rank2(sequence.narrow(1, steps - 1, 1).reshape([batch, hidden])),
        Pooling::Mean => Activations::Rank2(sequence.mean_dim(1).reshape([batch, hidden])),
        Pooling::Max if crate::kernels::fused_on(&sequence.device()) => Activations::Rank2(crate::kernels::pool::max_over_steps(sequence)),
        Pooling::Max => Activations::Rank2(sequence.max_dim(1).reshape([batch, hidden])),
    }
}

/// The time loop of a recurrent layer as burn tensor operations, step by step: `projected` is
/// `[batch, steps, gates * hidden]` (the input side with its bias), the answer `[batch, steps,
/// hidden]`. Backends without the fused operation take this path, and the fused one is tested
/// against it.
pub(crate) fn recurrent_sequence_stepwise(
    kind: RecurrentKind,
    projected: Tensor<3>,
    weight_hh: Tensor<2>,
    bias_hh: Option<Tensor<1>>,
) -> Tensor<3> {
    let [batch, steps, width] = projected.dims();
    let hidden = width / kind.gates();
    let device = projected.device();
    // Time-major so each step's slice is contiguous.
    let projected = projected.swap_dims(0, 1);
    let bias_hh = bias_hh.map(|b| b.reshape([1, width]));
    let mut h: Tensor<2> = Tensor::zeros([batch, hidden], &device);
    let mut c: Tensor<2> = Tensor::zeros([batch, hidden], &device);
    let mut outputs = Vec::with_capacity(steps);
    for step_input in projected.chunk(steps, 0) {
        let step_input: Tensor<2> = step_input.reshape([batch, width]);
        match kind {
            RecurrentKind::Rnn => {
                h = activation::tanh(step_input + h.matmul(weight_hh.clone()));
            }
            RecurrentKind::Lstm => {
                let gates = step_input + h.matmul(weight_hh.clone());
                let mut parts = gates.chunk(4, 1).into_iter();
                let (Some(i), Some(f), Some(g), Some(o)) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
                    unreachable!("four gates were allocated")
                };
                c = activation::sigmoid(f) * c + activation::sigmoid(i) * activation::tanh(g);
                h = activation::sigmoid(o) * activation::tanh(c.clone());
            }
            RecurrentKind::Gru => {
                // PyTorch/Keras (reset_after) GRU: n = tanh(x_n + r * (h W_hn + b_hn)).
                let mut recurrent_part = h.clone().matmul(weight_hh.clone());
                if let Some(b) = &bias_hh {
                    recurrent_part = recurrent_part + b.clone();
                }
                let mut x_parts = step_input.chunk(3, 1).into_iter();
                let mut h_parts = recurrent_part.chunk(3, 1).into_iter();
                let (Some(xr), Some(xz), Some(xn)) = (x_parts.next(), x_parts.next(), x_parts.next()) else {
                    unreachable!("three gates were allocated")
                };
                let (Some(hr), Some(hz), Some(hn)) = (h_parts.next(), h_parts.next(), h_parts.next()) else {
                    unreachable!("three gates were allocated")
                };
                let r = activation::sigmoid(xr + hr);
                let z = activation::sigmoid(xz + hz);
                let n = activation::tanh(xn + r * hn);
                h = (z.ones_like() - z.clone()) * n + z * h;
            }
        }
        outputs.push(h.clone());
    }
    Tensor::stack(outputs, 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dropout_mask_drops_exactly_the_draws_below_the_rate() {
        for rate in [0.1, 0.2, 0.3, 0.5, 0.25, 0.999] {
            let (mut masks, mut draws) = (SeededRng::new(11), SeededRng::new(11));
            let mask = dropout_mask(&[7, 300], rate, &mut masks, &Device::flex()).try_to_vec::<f32>().expect("f32 values");
            let keep = (1.0 / (1.0 - rate)) as f32;
            let expected: Vec<f32> = (0..2100).map(|_| if draws.uniform() < rate as f32 { 0.0 } else { keep }).collect();
            assert_eq!(mask, expected, "rate {rate}");
            let dropped = mask.iter().filter(|v| **v == 0.0).count() as f64 / 2100.0;
            assert!((dropped - rate).abs() < 0.05, "rate {rate}: dropped {dropped}");
        }
    }
}
