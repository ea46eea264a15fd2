//! Fused recurrent layers: an LSTM or GRU over a whole sequence as one operation, forward and
//! backward, on the CPU (Flex) backend.
//!
//! Built from burn's tensor operations, a recurrent layer is a graph of ~15 nodes per time step:
//! every step slices the gate projection, and every slice's backward writes a full-size zero
//! buffer. Here the input projection of all steps stays one matrix product (burn's `linear`,
//! outside this operation); the operation itself takes that projection and the recurrent weights,
//! runs the time loop over plain slices (one `h W_hh` matrix product per step, the gates in one
//! pass), and keeps the gate activations for a backward pass written out by hand. The weight
//! gradient is one product over all steps at once, not one per step.
//!
//! Gate order and formulas are those of the stepwise layers in `model` (PyTorch's): LSTM
//! `i, f, g, o`; GRU `r, z, n` with `n = tanh(x_n + r * (h W_hn + b_hn))`. The stepwise path
//! stays for other backends (GPU) and as the reference the fused path is tested against.
//!
//! Layout: sequences are batch-major, `[batch, steps, width]`, as the layer's input and output are,
//! so nothing is transposed on the way in or out.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, DType, Dispatch, Flex, backend_extension};
use burn::tensor::Tensor;

use super::{Matrix, Real, contiguous, finish_op, matmul_into, tensor, values};

/// `[batch, steps, 4 * hidden]` gate pre-activations without the recurrent part (the input
/// projection plus biases) and `[hidden, 4 * hidden]` recurrent weights → `[batch, steps, hidden]`.
pub fn lstm(projected: Tensor<3>, weight_hh: Tensor<2>) -> Tensor<3> {
    Tensor::from_dispatch(<Dispatch as RecurrentBackend>::lstm_sequence(projected.into_dispatch(), weight_hh.into_dispatch()))
}

/// As [`lstm`] for a GRU: `[batch, steps, 3 * hidden]`, `[hidden, 3 * hidden]` and the hidden-side
/// bias `[3 * hidden]`.
pub fn gru(projected: Tensor<3>, weight_hh: Tensor<2>, bias_hh: Tensor<1>) -> Tensor<3> {
    Tensor::from_dispatch(<Dispatch as RecurrentBackend>::gru_sequence(
        projected.into_dispatch(),
        weight_hh.into_dispatch(),
        bias_hh.into_dispatch(),
    ))
}

/// The fused recurrent operations as a burn backend extension (the CPU backend, with and without
/// autodiff). Calling them on another backend panics; [`super::fused_on`] says when not to.
#[backend_extension(Flex, Autodiff)]
pub trait RecurrentBackend: Backend {
    fn lstm_sequence(projected: FloatTensor<Self>, weight_hh: FloatTensor<Self>) -> FloatTensor<Self>;
    fn gru_sequence(projected: FloatTensor<Self>, weight_hh: FloatTensor<Self>, bias_hh: FloatTensor<Self>) -> FloatTensor<Self>;
}

impl RecurrentBackend for Flex {
    fn lstm_sequence(projected: FlexTensor, weight_hh: FlexTensor) -> FlexTensor {
        lstm_forward(&projected, &weight_hh).output
    }

    fn gru_sequence(projected: FlexTensor, weight_hh: FlexTensor, bias_hh: FlexTensor) -> FlexTensor {
        gru_forward(&projected, &weight_hh, &bias_hh).output
    }
}

impl<C: CheckpointStrategy> RecurrentBackend for Autodiff<Flex, C> {
    fn lstm_sequence(projected: FloatTensor<Self>, weight_hh: FloatTensor<Self>) -> FloatTensor<Self> {
        let prep = LstmBackward.prepare::<C>([projected.node(), weight_hh.node()]).compute_bound().stateful();
        let forward = lstm_forward(projected.primitive(), weight_hh.primitive());
        let output = forward.output.clone();
        finish_op(prep, forward, output)
    }

    fn gru_sequence(projected: FloatTensor<Self>, weight_hh: FloatTensor<Self>, bias_hh: FloatTensor<Self>) -> FloatTensor<Self> {
        let prep = GruBackward.prepare::<C>([projected.node(), weight_hh.node(), bias_hh.node()]).compute_bound().stateful();
        let forward = gru_forward(projected.primitive(), weight_hh.primitive(), bias_hh.primitive());
        let output = forward.output.clone();
        finish_op(prep, forward, output)
    }
}

#[derive(Debug)]
struct LstmBackward;

impl Backward<Flex, 2> for LstmBackward {
    type State = LstmForward;

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad_output = grads.consume::<Flex>(&ops.node);
        let (grad_projected, grad_weight) = lstm_backward(&ops.state, &grad_output);
        let [projected, weight] = ops.parents;
        if let Some(node) = projected {
            grads.register::<Flex>(node.id, grad_projected);
        }
        if let Some(node) = weight {
            grads.register::<Flex>(node.id, grad_weight);
        }
    }
}

#[derive(Debug)]
struct GruBackward;

impl Backward<Flex, 3> for GruBackward {
    type State = GruForward;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad_output = grads.consume::<Flex>(&ops.node);
        let (grad_projected, grad_weight, grad_bias) = gru_backward(&ops.state, &grad_output);
        let [projected, weight, bias] = ops.parents;
        for (node, grad) in [(projected, grad_projected), (weight, grad_weight), (bias, grad_bias)] {
            if let Some(node) = node {
                grads.register::<Flex>(node.id, grad);
            }
        }
    }
}

#[inline(always)]
pub(super) fn sigmoid<T: Real>(x: T) -> T {
    T::one() / (T::one() + T::exp_fast(-x))
}

/// `tanh x = 1 - 2 / (e^{2x} + 1)`: one `exp`, several times cheaper than libm's `tanh` (which
/// goes through `expm1` for accuracy near zero: there this form's error is absolute, ≈ one ulp
/// of 1, which the gradient checks in f64 and the f32 comparison with the stepwise graph allow).
/// It saturates to ±1 without NaN: `e^{2x}` overflows to infinity or underflows to zero.
#[inline(always)]
pub(super) fn tanh<T: Real>(x: T) -> T {
    let two = T::one() + T::one();
    T::one() - two / (T::exp_fast(two * x) + T::one())
}

#[inline(always)]
fn sigmoid_all<T: Real>(xs: &mut [T]) {
    for x in xs {
        *x = sigmoid(*x);
    }
}

#[inline(always)]
fn tanh_all<T: Real>(xs: &mut [T]) {
    for x in xs {
        *x = tanh(*x);
    }
}

fn dims3(t: &FlexTensor) -> [usize; 3] {
    let shape = t.layout().shape();
    assert_eq!(shape.num_dims(), 3, "a recurrent sequence is [batch, steps, width]");
    [shape[0], shape[1], shape[2]]
}

/// What an LSTM's forward pass keeps for its backward pass.
#[derive(Debug, Clone)]
struct LstmForward {
    /// `[batch, steps, hidden]`: the layer's output `h_t`.
    output: FlexTensor,
    /// `[batch, steps, 4 * hidden]`: the gate activations `i, f, g, o`.
    gates: FlexTensor,
    /// `[batch, steps, hidden]`: the cell state `c_t`.
    cell: FlexTensor,
    /// `[batch, steps, hidden]`: `tanh(c_t)`.
    cell_tanh: FlexTensor,
    /// `[hidden, 4 * hidden]`.
    weight: FlexTensor,
}

fn lstm_forward(projected: &FlexTensor, weight: &FlexTensor) -> LstmForward {
    let projected = contiguous(projected);
    let weight = contiguous(weight);
    match projected.dtype() {
        DType::F64 => lstm_forward_typed::<f64>(&projected, weight),
        DType::F32 => {
            let projected = &projected;
            wide!(lstm_forward_typed::<f32>, (projected: &FlexTensor, weight: FlexTensor) -> LstmForward)
        }
        other => panic!("the fused LSTM runs in f32 or f64, not {other:?}"),
    }
}

#[inline(always)] // into `wide`'s AVX2 copy
fn lstm_forward_typed<T: Real>(projected: &FlexTensor, weight: FlexTensor) -> LstmForward {
    let [batch, steps, width] = dims3(projected);
    let hidden = width / 4;
    let w = Matrix::row_major(values::<T>(&weight), hidden, width);
    let mut output = vec![T::zero(); batch * steps * hidden];
    let mut cell = vec![T::zero(); batch * steps * hidden];
    let mut cell_tanh = vec![T::zero(); batch * steps * hidden];
    // The pre-activations start as the input side; each step adds its recurrent product in place.
    let mut gates = values::<T>(projected).to_vec();
    let mut c = vec![T::zero(); batch * hidden];
    for t in 0..steps {
        // `h_{t-1} W_hh` of every sequence onto step t's rows (h_{-1} = 0: none at the first).
        if t > 0 {
            let h_prev =
                Matrix { values: &output[(t - 1) * hidden..], rows: batch, cols: hidden, row_stride: steps * hidden, col_stride: 1 };
            matmul_into(&mut gates[t * width..], steps * width, true, h_prev, w, false);
        }
        for b in 0..batch {
            let at = b * steps + t;
            // Each gate's activation over its contiguous run (loops without calls, which the
            // compiler vectorises).
            let g_row = &mut gates[at * width..(at + 1) * width];
            let (ifg, o) = g_row.split_at_mut(3 * hidden);
            let (i_f, g) = ifg.split_at_mut(2 * hidden);
            sigmoid_all(i_f);
            tanh_all(g);
            sigmoid_all(o);
            let (i, f) = i_f.split_at(hidden);
            let state = at * hidden..(at + 1) * hidden;
            let c_row = &mut c[b * hidden..(b + 1) * hidden];
            for j in 0..hidden {
                c_row[j] = f[j] * c_row[j] + i[j] * g[j];
            }
            cell[state.clone()].copy_from_slice(c_row);
            let tc_row = &mut cell_tanh[state.clone()];
            tc_row.copy_from_slice(c_row);
            tanh_all(tc_row);
            let h_row = &mut output[state];
            for j in 0..hidden {
                h_row[j] = o[j] * tc_row[j];
            }
        }
    }
    let seq = [batch, steps, hidden];
    LstmForward {
        output: tensor(output, &seq),
        gates: tensor(gates, &[batch, steps, width]),
        cell: tensor(cell, &seq),
        cell_tanh: tensor(cell_tanh, &seq),
        weight,
    }
}

fn lstm_backward(forward: &LstmForward, grad_output: &FlexTensor) -> (FlexTensor, FlexTensor) {
    let grad_output = contiguous(grad_output);
    match grad_output.dtype() {
        DType::F64 => lstm_backward_typed::<f64>(forward, &grad_output),
        DType::F32 => {
            let grad_output = &grad_output;
            wide!(lstm_backward_typed::<f32>, (forward: &LstmForward, grad_output: &FlexTensor) -> (FlexTensor, FlexTensor))
        }
        other => panic!("the fused LSTM runs in f32 or f64, not {other:?}"),
    }
}

#[inline(always)] // into `wide`'s AVX2 copy
fn lstm_backward_typed<T: Real>(forward: &LstmForward, grad_output: &FlexTensor) -> (FlexTensor, FlexTensor) {
    let [batch, steps, hidden] = dims3(&forward.output);
    let width = 4 * hidden;
    let (gates, cell, cell_tanh, dy) =
        (values::<T>(&forward.gates), values::<T>(&forward.cell), values::<T>(&forward.cell_tanh), values::<T>(grad_output));
    let weight_t = transposed(values::<T>(&forward.weight), hidden, width);
    let w_t = Matrix::row_major(&weight_t[..], width, hidden);
    let one = T::one();
    // Gradient with respect to the gate pre-activations: also the gradient of the projection.
    let mut d_gates = vec![T::zero(); batch * steps * width];
    let mut dh_next = vec![T::zero(); batch * hidden];
    let mut dc_next = vec![T::zero(); batch * hidden];
    let zeros = vec![T::zero(); hidden];
    for t in (0..steps).rev() {
        for b in 0..batch {
            let at = b * steps + t;
            // Every operand as a slice of exactly `hidden`, so the loop has no bounds checks and
            // vectorises.
            let gate = |k: usize| &gates[at * width + k * hidden..at * width + (k + 1) * hidden];
            let (i, f, g, o) = (gate(0), gate(1), gate(2), gate(3));
            let state = at * hidden..(at + 1) * hidden;
            let (tc, dy_row) = (&cell_tanh[state.clone()], &dy[state]);
            let c_prev = if t > 0 { &cell[(at - 1) * hidden..at * hidden] } else { &zeros[..] };
            let dh_row = &dh_next[b * hidden..(b + 1) * hidden];
            let dc_row = &mut dc_next[b * hidden..(b + 1) * hidden];
            let d = &mut d_gates[at * width..(at + 1) * width];
            let (di, rest) = d.split_at_mut(hidden);
            let (df, rest) = rest.split_at_mut(hidden);
            let (dg, d_o) = rest.split_at_mut(hidden);
            for j in 0..hidden {
                let dh = dy_row[j] + dh_row[j];
                let dc = dc_row[j] + dh * o[j] * (one - tc[j] * tc[j]);
                di[j] = dc * g[j] * i[j] * (one - i[j]);
                df[j] = dc * c_prev[j] * f[j] * (one - f[j]);
                dg[j] = dc * i[j] * (one - g[j] * g[j]);
                d_o[j] = dh * tc[j] * o[j] * (one - o[j]);
                dc_row[j] = dc * f[j];
            }
        }
        // `dh_{t-1} = dG_t W_hhᵀ`, for the step before.
        if t > 0 {
            let d_step = Matrix { values: &d_gates[t * width..], rows: batch, cols: width, row_stride: steps * width, col_stride: 1 };
            matmul_into(&mut dh_next, hidden, false, d_step, w_t, false);
        }
    }
    let grad_weight = weight_gradient::<T>(values::<T>(&forward.output), &d_gates, [batch, steps, hidden]);
    (tensor(d_gates, &[batch, steps, width]), grad_weight)
}

/// `[rows, cols]` → its transpose `[cols, rows]`, stored row after row: the backward pass's
/// `W_hhᵀ`, copied once rather than gathered by gemm at every step.
fn transposed<T: Real>(values: &[T], rows: usize, cols: usize) -> Vec<T> {
    let mut out = vec![T::zero(); rows * cols];
    for (i, row) in values.chunks_exact(cols).enumerate() {
        for (j, v) in row.iter().enumerate() {
            out[j * rows + i] = *v;
        }
    }
    out
}

/// `Σ_t h_{t-1}ᵀ · dG_t` as one product: `[hidden, batch·steps] · [batch·steps, width]`, with
/// `h_{-1} = 0`.
fn weight_gradient<T: Real>(h: &[T], d_pre: &[T], [batch, steps, hidden]: [usize; 3]) -> FlexTensor {
    let mut h_prev = vec![T::zero(); batch * steps * hidden];
    for b in 0..batch {
        for t in 1..steps {
            let at = b * steps + t;
            h_prev[at * hidden..(at + 1) * hidden].copy_from_slice(&h[(at - 1) * hidden..at * hidden]);
        }
    }
    let width = d_pre.len() / (batch * steps);
    let mut grad = vec![T::zero(); hidden * width];
    let (h_prev, d_pre) = (Matrix::row_major(&h_prev[..], batch * steps, hidden), Matrix::row_major(d_pre, batch * steps, width));
    matmul_into(&mut grad, width, false, h_prev.t(), d_pre, true);
    tensor(grad, &[hidden, width])
}

/// What a GRU's forward pass keeps for its backward pass.
#[derive(Debug, Clone)]
struct GruForward {
    /// `[batch, steps, hidden]`: the layer's output `h_t`.
    output: FlexTensor,
    /// `[batch, steps, 3 * hidden]`: the gate activations `r, z, n`.
    gates: FlexTensor,
    /// `[batch, steps, hidden]`: the candidate's hidden-side term `h_{t-1} W_hn + b_hn`.
    hidden_n: FlexTensor,
    /// `[hidden, 3 * hidden]`.
    weight: FlexTensor,
}

fn gru_forward(projected: &FlexTensor, weight: &FlexTensor, bias: &FlexTensor) -> GruForward {
    let projected = contiguous(projected);
    let weight = contiguous(weight);
    let bias = contiguous(bias);
    match projected.dtype() {
        DType::F64 => gru_forward_typed::<f64>(&projected, weight, &bias),
        DType::F32 => {
            let (projected, bias) = (&projected, &bias);
            wide!(gru_forward_typed::<f32>, (projected: &FlexTensor, weight: FlexTensor, bias: &FlexTensor) -> GruForward)
        }
        other => panic!("the fused GRU runs in f32 or f64, not {other:?}"),
    }
}

#[inline(always)] // into `wide`'s AVX2 copy
fn gru_forward_typed<T: Real>(projected: &FlexTensor, weight: FlexTensor, bias: &FlexTensor) -> GruForward {
    let [batch, steps, width] = dims3(projected);
    let hidden = width / 3;
    let proj = values::<T>(projected);
    let bias = values::<T>(bias);
    let mut output = vec![T::zero(); batch * steps * hidden];
    let mut hidden_n = vec![T::zero(); batch * steps * hidden];
    let mut gates = vec![T::zero(); batch * steps * width];
    let w = Matrix::row_major(values::<T>(&weight), hidden, width);
    let mut h = vec![T::zero(); batch * hidden];
    // The hidden side `h_{t-1} W_hh + b_hh` of every sequence (h_{-1} = 0: the bias alone).
    let mut hidden_side = bias.repeat(batch);
    for t in 0..steps {
        if t > 0 {
            for row in hidden_side.chunks_exact_mut(width) {
                row.copy_from_slice(bias);
            }
            matmul_into(&mut hidden_side, width, true, Matrix::row_major(&h[..], batch, hidden), w, false);
        }
        for b in 0..batch {
            let at = b * steps + t;
            // The gates over contiguous runs.
            let hp = &hidden_side[b * width..(b + 1) * width];
            let p = &proj[at * width..(at + 1) * width];
            let g_row = &mut gates[at * width..(at + 1) * width];
            let (rz, n) = g_row.split_at_mut(2 * hidden);
            for ((g, p), hp) in rz.iter_mut().zip(&p[..2 * hidden]).zip(&hp[..2 * hidden]) {
                *g = *p + *hp;
            }
            sigmoid_all(rz);
            let (r, z) = rz.split_at(hidden);
            let (p_n, hp_n) = (&p[2 * hidden..], &hp[2 * hidden..]);
            for j in 0..hidden {
                n[j] = p_n[j] + r[j] * hp_n[j];
            }
            tanh_all(n);
            let state = at * hidden..(at + 1) * hidden;
            hidden_n[state.clone()].copy_from_slice(hp_n);
            let h_row = &mut h[b * hidden..(b + 1) * hidden];
            for j in 0..hidden {
                h_row[j] = (T::one() - z[j]) * n[j] + z[j] * h_row[j];
            }
            output[state].copy_from_slice(h_row);
        }
    }
    let seq = [batch, steps, hidden];
    GruForward { output: tensor(output, &seq), gates: tensor(gates, &[batch, steps, width]), hidden_n: tensor(hidden_n, &seq), weight }
}

fn gru_backward(forward: &GruForward, grad_output: &FlexTensor) -> (FlexTensor, FlexTensor, FlexTensor) {
    let grad_output = contiguous(grad_output);
    match grad_output.dtype() {
        DType::F64 => gru_backward_typed::<f64>(forward, &grad_output),
        DType::F32 => {
            let grad_output = &grad_output;
            wide!(gru_backward_typed::<f32>, (forward: &GruForward, grad_output: &FlexTensor) -> (FlexTensor, FlexTensor, FlexTensor))
        }
        other => panic!("the fused GRU runs in f32 or f64, not {other:?}"),
    }
}

#[inline(always)] // into `wide`'s AVX2 copy
fn gru_backward_typed<T: Real>(forward: &GruForward, grad_output: &FlexTensor) -> (FlexTensor, FlexTensor, FlexTensor) {
    let [batch, steps, hidden] = dims3(&forward.output);
    let width = 3 * hidden;
    let (gates, hidden_n, out, dy) =
        (values::<T>(&forward.gates), values::<T>(&forward.hidden_n), values::<T>(&forward.output), values::<T>(grad_output));
    let weight_t = transposed(values::<T>(&forward.weight), hidden, width);
    let w_t = Matrix::row_major(&weight_t[..], width, hidden);
    let one = T::one();
    // Gradients of the input-side pre-activations (the projection) and of the hidden-side
    // product `h W_hh + b_hh`; they differ in the candidate gate, where the reset gate scales
    // the hidden side.
    let mut d_projected = vec![T::zero(); batch * steps * width];
    let mut d_hidden_side = vec![T::zero(); batch * steps * width];
    let mut dh_next = vec![T::zero(); batch * hidden];
    let zeros = vec![T::zero(); hidden];
    for t in (0..steps).rev() {
        for b in 0..batch {
            let at = b * steps + t;
            let gate = |k: usize| &gates[at * width + k * hidden..at * width + (k + 1) * hidden];
            let (r, z, n) = (gate(0), gate(1), gate(2));
            let state = at * hidden..(at + 1) * hidden;
            let (hn, dy_row) = (&hidden_n[state.clone()], &dy[state]);
            let h_prev = if t > 0 { &out[(at - 1) * hidden..at * hidden] } else { &zeros[..] };
            let dh_row = &mut dh_next[b * hidden..(b + 1) * hidden];
            let dp = &mut d_projected[at * width..(at + 1) * width];
            let (dp_r, rest) = dp.split_at_mut(hidden);
            let (dp_z, dp_n) = rest.split_at_mut(hidden);
            let dhs = &mut d_hidden_side[at * width..(at + 1) * width];
            let (dhs_r, rest) = dhs.split_at_mut(hidden);
            let (dhs_z, dhs_n) = rest.split_at_mut(hidden);
            for j in 0..hidden {
                let dh = dy_row[j] + dh_row[j];
                let dn = dh * (one - z[j]) * (one - n[j] * n[j]);
                let dr = dn * hn[j] * r[j] * (one - r[j]);
                let dz = dh * (h_prev[j] - n[j]) * z[j] * (one - z[j]);
                dp_r[j] = dr;
                dp_z[j] = dz;
                dp_n[j] = dn;
                dhs_r[j] = dr;
                dhs_z[j] = dz;
                dhs_n[j] = dn * r[j];
                // The direct path h_t = … + z h_{t-1}; the product's path is added below.
                dh_row[j] = dh * z[j];
            }
        }
        // … and the path through the product: `dh_{t-1} += dS_t W_hhᵀ`.
        if t > 0 {
            let d_step = Matrix { values: &d_hidden_side[t * width..], rows: batch, cols: width, row_stride: steps * width, col_stride: 1 };
            matmul_into(&mut dh_next, hidden, true, d_step, w_t, false);
        }
    }
    let mut grad_bias = vec![T::zero(); width];
    for row in d_hidden_side.chunks_exact(width) {
        for (sum, v) in grad_bias.iter_mut().zip(row) {
            *sum = *sum + *v;
        }
    }
    let grad_weight = weight_gradient::<T>(out, &d_hidden_side, [batch, steps, hidden]);
    (tensor(d_projected, &[batch, steps, width]), grad_weight, tensor(grad_bias, &[width]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{RecurrentKind, recurrent_sequence_stepwise};
    use burn::tensor::{Device, TensorData};

    fn random(shape: &[usize], seed: u64) -> TensorData {
        let mut rng = crate::model::SeededRng::new(seed);
        let count = shape.iter().product();
        let values: Vec<f32> = (0..count).map(|_| rng.normal() as f32 * 0.8).collect();
        TensorData::new(values, shape.to_vec())
    }

    /// The fused layers compute what the stepwise graph computes, forward and backward (f32).
    fn fused_matches_stepwise(kind: RecurrentKind) {
        let device = Device::flex().autodiff();
        let (batch, steps, hidden) = (5, 7, 6);
        let width = kind.gates() * hidden;
        let leaf = |shape: &[usize], seed: u64| Tensor::<3>::from_data(random(shape, seed), &device).require_grad();
        let projected = leaf(&[batch, steps, width], 1);
        let weight = Tensor::<2>::from_data(random(&[hidden, width], 2), &device).require_grad();
        let bias = Tensor::<1>::from_data(random(&[width], 3), &device).require_grad();
        let upstream = Tensor::<3>::from_data(random(&[batch, steps, hidden], 4), &device);

        let run = |fused: bool| {
            let (p, w, b) = (projected.clone(), weight.clone(), bias.clone());
            let out = if fused {
                match kind {
                    RecurrentKind::Lstm => lstm(p, w),
                    _ => gru(p, w, b),
                }
            } else {
                recurrent_sequence_stepwise(kind, p, w, (kind == RecurrentKind::Gru).then_some(b))
            };
            let loss = (out.clone() * upstream.clone()).sum();
            let grads = loss.backward();
            let mut all = vec![out.inner().into_data().try_to_vec::<f32>().expect("f32 values")];
            all.push(projected.grad(&grads).expect("a projection gradient").into_data().try_to_vec::<f32>().expect("f32 values"));
            all.push(weight.grad(&grads).expect("a gradient").into_data().try_to_vec::<f32>().expect("f32 values"));
            if kind == RecurrentKind::Gru {
                all.push(bias.grad(&grads).expect("a gradient").into_data().try_to_vec::<f32>().expect("f32 values"));
            }
            all
        };
        let (fused, stepwise) = (run(true), run(false));
        assert_eq!(fused.len(), stepwise.len());
        for (which, (a, b)) in fused.iter().zip(&stepwise).enumerate() {
            assert_eq!(a.len(), b.len());
            for (x, y) in a.iter().zip(b) {
                assert!((x - y).abs() <= 1e-5 + 1e-4 * y.abs(), "{kind:?} tensor {which}: fused {x} vs stepwise {y}");
            }
        }
    }

    #[test]
    fn the_fused_lstm_computes_what_the_stepwise_graph_computes() {
        fused_matches_stepwise(RecurrentKind::Lstm);
    }

    #[test]
    fn the_fused_gru_computes_what_the_stepwise_graph_computes() {
        fused_matches_stepwise(RecurrentKind::Gru);
    }
}
