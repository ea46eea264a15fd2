//! A dense layer `x W + b` as one operation, forward and backward, on the CPU backend: the three
//! products of a training step (`x W`, `dy Wᵀ`, `xᵀ dy`) on [`super::matmul_into`], which runs
//! them on the AVX-512 kernel where the CPU has it, and the bias folded into the forward product
//! (the rows start as the bias, the product is added onto them).
//!
//! burn's `linear` is a matrix product, a broadcast add and, backward, a transpose, two products
//! and a sum, each its own tensor; on the seed MLP and the recurrent layers' input projections
//! those products ran at gemm's ≈ 50 GFLOP/s.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, DType, Dispatch, Flex, backend_extension};
use burn::tensor::Tensor;

use super::{Matrix, Real, contiguous, finish_op, matmul_into, tensor, values};

/// `[rows, inputs] · [inputs, outputs] + [outputs]` → `[rows, outputs]`.
pub fn linear(x: Tensor<2>, weight: Tensor<2>, bias: Tensor<1>) -> Tensor<2> {
    Tensor::from_dispatch(<Dispatch as DenseBackend>::dense(x.into_dispatch(), weight.into_dispatch(), bias.into_dispatch()))
}

/// The dense layer as a burn backend extension (the CPU backend, with and without autodiff);
/// [`super::fused_on`] says where it runs.
#[backend_extension(Flex, Autodiff)]
pub trait DenseBackend: Backend {
    fn dense(x: FloatTensor<Self>, weight: FloatTensor<Self>, bias: FloatTensor<Self>) -> FloatTensor<Self>;
}

impl DenseBackend for Flex {
    fn dense(x: FlexTensor, weight: FlexTensor, bias: FlexTensor) -> FlexTensor {
        dense_forward(&contiguous(&x), &contiguous(&weight), &contiguous(&bias))
    }
}

impl<C: CheckpointStrategy> DenseBackend for Autodiff<Flex, C> {
    fn dense(x: FloatTensor<Self>, weight: FloatTensor<Self>, bias: FloatTensor<Self>) -> FloatTensor<Self> {
        let prep = DenseBackward.prepare::<C>([x.node(), weight.node(), bias.node()]).compute_bound().stateful();
        let (input, weight_values) = (contiguous(x.primitive()), contiguous(weight.primitive()));
        let output = dense_forward(&input, &weight_values, &contiguous(bias.primitive()));
        finish_op(prep, DenseState { input, weight: weight_values }, output)
    }
}

/// What the backward pass needs: the input and the weights (shared with the graph, not copied).
#[derive(Debug, Clone)]
struct DenseState {
    input: FlexTensor,
    weight: FlexTensor,
}

#[derive(Debug)]
struct DenseBackward;

impl Backward<Flex, 3> for DenseBackward {
    type State = DenseState;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad_output = contiguous(&grads.consume::<Flex>(&ops.node));
        let [x, weight, bias] = ops.parents;
        let wanted = [x.is_some(), weight.is_some(), bias.is_some()];
        let [grad_x, grad_weight, grad_bias] = match grad_output.dtype() {
            DType::F64 => dense_backward::<f64>(&ops.state, &grad_output, wanted),
            // The forward pass took f32 or f64 only.
            _ => {
                let (state, grad_output) = (&ops.state, &grad_output);
                wide!(dense_backward_f32, (state: &DenseState, grad_output: &FlexTensor, wanted: [bool; 3]) -> [Option<FlexTensor>; 3])
            }
        };
        for (node, grad) in [(x, grad_x), (weight, grad_weight), (bias, grad_bias)] {
            if let (Some(node), Some(grad)) = (node, grad) {
                grads.register::<Flex>(node.id, grad);
            }
        }
    }
}

/// Whether a product of these sizes is split between the pool's threads: from about 8 million
/// multiply-adds (≈ 0.1 ms on one core), where the work outweighs handing it over and waiting
/// for the other thread. Below it a split only adds a rendezvous per product, which on a small
/// machine's shared cores made the seed MLP's epochs swing by 2× (its products are 3 million).
fn shared(rows: usize, inputs: usize, outputs: usize) -> bool {
    rows * inputs * outputs >= 1 << 23
}

fn dims2(t: &FlexTensor) -> [usize; 2] {
    let shape = t.layout().shape();
    assert_eq!(shape.num_dims(), 2, "a dense layer's operands are matrices");
    [shape[0], shape[1]]
}

fn dense_forward(x: &FlexTensor, weight: &FlexTensor, bias: &FlexTensor) -> FlexTensor {
    match x.dtype() {
        DType::F64 => dense_forward_typed::<f64>(x, weight, bias),
        DType::F32 => dense_forward_typed::<f32>(x, weight, bias),
        other => panic!("the CPU dense layer runs in f32 or f64, not {other:?}"),
    }
}

fn dense_forward_typed<T: Real>(x: &FlexTensor, weight: &FlexTensor, bias: &FlexTensor) -> FlexTensor {
    let ([rows, inputs], [weight_rows, outputs]) = (dims2(x), dims2(weight));
    assert_eq!(inputs, weight_rows, "a dense layer's input width is its weight's rows");
    let bias = values::<T>(bias);
    assert_eq!(bias.len(), outputs, "one bias per output");
    // Every row starts as the bias; the product is added onto it.
    let mut out = bias.repeat(rows);
    let shared = shared(rows, inputs, outputs);
    matmul_into(
        &mut out,
        outputs,
        true,
        Matrix::row_major(values::<T>(x), rows, inputs),
        Matrix::row_major(values::<T>(weight), inputs, outputs),
        shared,
    );
    tensor(out, &[rows, outputs])
}

#[inline(always)] // into `wide`'s AVX2 copy
fn dense_backward_f32(state: &DenseState, grad_output: &FlexTensor, wanted: [bool; 3]) -> [Option<FlexTensor>; 3] {
    dense_backward::<f32>(state, grad_output, wanted)
}

/// `dx = dy Wᵀ`, `dW = xᵀ dy`, `db = Σ_rows dy`, each only where a parent wants it.
#[inline(always)]
fn dense_backward<T: Real>(
    state: &DenseState,
    grad_output: &FlexTensor,
    [want_x, want_weight, want_bias]: [bool; 3],
) -> [Option<FlexTensor>; 3] {
    let ([rows, inputs], [_, outputs]) = (dims2(&state.input), dims2(&state.weight));
    let dy = values::<T>(grad_output);
    let shared = shared(rows, inputs, outputs);
    let grad_x = want_x.then(|| {
        // Wᵀ copied once, so the product reads its rows contiguously.
        let weight = values::<T>(&state.weight);
        let mut weight_t = vec![T::zero(); inputs * outputs];
        for (i, row) in weight.chunks_exact(outputs).enumerate() {
            for (o, w) in row.iter().enumerate() {
                weight_t[o * inputs + i] = *w;
            }
        }
        let mut dx = vec![T::zero(); rows * inputs];
        matmul_into(
            &mut dx,
            inputs,
            false,
            Matrix::row_major(dy, rows, outputs),
            Matrix::row_major(&weight_t[..], outputs, inputs),
            shared,
        );
        tensor(dx, &[rows, inputs])
    });
    let grad_weight = want_weight.then(|| {
        let mut dw = vec![T::zero(); inputs * outputs];
        let x_t = Matrix::row_major(values::<T>(&state.input), rows, inputs).t();
        matmul_into(&mut dw, outputs, false, x_t, Matrix::row_major(dy, rows, outputs), shared);
        tensor(dw, &[inputs, outputs])
    });
    let grad_bias = want_bias.then(|| {
        let mut db = vec![T::zero(); outputs];
        for row in dy.chunks_exact(outputs) {
            for (sum, v) in db.iter_mut().zip(row) {
                *sum = *sum + *v;
            }
        }
        tensor(db, &[outputs])
    });
    [grad_x, grad_weight, grad_bias]
}

#[cfg(test)]
mod tests {
    use burn::tensor::module::linear as burn_linear;
    use burn::tensor::{Device, Tensor, TensorData};

    /// Forward and every gradient equal burn's `linear` (f32, within rounding: the sums run in
    /// another order), with widths on and off the AVX-512 kernel's multiples of 16, and an input
    /// that takes no gradient.
    #[test]
    fn the_cpu_dense_layer_computes_what_burns_linear_computes() {
        let device = Device::flex().autodiff();
        for (rows, inputs, outputs, input_grad) in [(32, 784, 128, false), (7, 64, 256, true), (5, 13, 10, true), (40, 128, 10, true)] {
            let mut rng = crate::model::SeededRng::new(rows as u64);
            let mut random = |count: usize| -> Vec<f32> { (0..count).map(|_| rng.normal() as f32).collect() };
            let (xs, ws, bs, up) = (random(rows * inputs), random(inputs * outputs), random(outputs), random(rows * outputs));
            let run = |ours: bool| {
                let x = Tensor::<2>::from_data(TensorData::new(xs.clone(), [rows, inputs]), &device);
                let x = if input_grad { x.require_grad() } else { x };
                let w = Tensor::<2>::from_data(TensorData::new(ws.clone(), [inputs, outputs]), &device).require_grad();
                let b = Tensor::<1>::from_data(TensorData::new(bs.clone(), [outputs]), &device).require_grad();
                let out =
                    if ours { super::linear(x.clone(), w.clone(), b.clone()) } else { burn_linear(x.clone(), w.clone(), Some(b.clone())) };
                let upstream = Tensor::<2>::from_data(TensorData::new(up.clone(), [rows, outputs]), &device);
                let grads = (out.clone() * upstream).sum().backward();
                let values = |t: Tensor<2>| t.into_data().try_to_vec::<f32>().expect("f32");
                let mut all = vec![values(out.inner()), values(w.grad(&grads).expect("a weight gradient"))];
                all.push(b.grad(&grads).expect("a bias gradient").into_data().try_to_vec::<f32>().expect("f32"));
                all.push(x.grad(&grads).map(values).unwrap_or_default());
                all
            };
            let (ours, burns) = (run(true), run(false));
            assert_eq!(ours[3].is_empty(), !input_grad, "an input gradient exactly when the input wants one");
            for (which, (a, b)) in ours.iter().zip(&burns).enumerate() {
                assert_eq!(a.len(), b.len(), "tensor {which}");
                for (x, y) in a.iter().zip(b) {
                    assert!((x - y).abs() <= 1e-4 * (1.0 + y.abs()), "{rows}×{inputs}×{outputs}, tensor {which}: {x} vs {y}");
                }
            }
        }
    }
}
