//! Max-pooling over non-overlapping `k × k` windows (stride = window, no padding, floor mode:
//! PyTorch's and Keras' `MaxPool2d(k)`), forward and backward, on the CPU backend.
//!
//! burn's CPU max-pool runs every 2-D pool through a general 3-D kernel with indices, which took a
//! fifth of `mnist-cnn`'s training epoch. Here the forward pass is a branch-free `max` over each
//! window (unrolled for the usual sizes) and keeps no indices: the backward pass finds each window's maximum
//! again (the first position holding the output's value, which is the first maximum of a tie, as
//! burn and PyTorch choose) and writes the output's gradient there. The windows do not overlap, so
//! each input position gets at most one gradient.
//!
//! The same for a recurrent layer's max-pooling over time ([`max_over_steps`]).

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, DType, Dispatch, Flex, backend_extension};
use burn::tensor::Tensor;

use super::{Real, contiguous, finish_op, tensor, values};

/// `[n, c, h, w]` → `[n, c, h / size, w / size]`, the maximum of each `size × size` window.
pub fn max_pool2d(x: Tensor<4>, size: usize) -> Tensor<4> {
    Tensor::from_dispatch(<Dispatch as PoolBackend>::max_pool2d_windows(x.into_dispatch(), size))
}

/// `[batch, steps, width]` → `[batch, width]`, the maximum over the steps (a recurrent layer's
/// max-pooling over time). burn's `max_dim` builds an index tensor and scatters through it; this
/// keeps the step of each maximum as it finds it, in the same vectorised pass.
pub fn max_over_steps(x: Tensor<3>) -> Tensor<2> {
    Tensor::from_dispatch(<Dispatch as PoolBackend>::max_over_steps(x.into_dispatch()))
}

/// Non-overlapping max-pooling as a burn backend extension (the CPU backend, with and without
/// autodiff); [`super::fused_on`] says where it runs.
#[backend_extension(Flex, Autodiff)]
pub trait PoolBackend: Backend {
    fn max_pool2d_windows(x: FloatTensor<Self>, size: usize) -> FloatTensor<Self>;
    fn max_over_steps(x: FloatTensor<Self>) -> FloatTensor<Self>;
}

impl PoolBackend for Flex {
    fn max_pool2d_windows(x: FlexTensor, size: usize) -> FlexTensor {
        pool_forward(&x, size).output
    }

    fn max_over_steps(x: FlexTensor) -> FlexTensor {
        steps_forward(&x).output
    }
}

impl<C: CheckpointStrategy> PoolBackend for Autodiff<Flex, C> {
    fn max_pool2d_windows(x: FloatTensor<Self>, size: usize) -> FloatTensor<Self> {
        let prep = MaxPoolBackward.prepare::<C>([x.node()]).compute_bound().stateful();
        let forward = pool_forward(x.primitive(), size);
        let output = forward.output.clone();
        finish_op(prep, forward, output)
    }

    fn max_over_steps(x: FloatTensor<Self>) -> FloatTensor<Self> {
        let prep = MaxOverStepsBackward.prepare::<C>([x.node()]).compute_bound().stateful();
        let forward = steps_forward(x.primitive());
        let output = forward.output.clone();
        finish_op(prep, forward, output)
    }
}

#[derive(Debug)]
struct MaxOverStepsBackward;

impl Backward<Flex, 1> for MaxOverStepsBackward {
    type State = StepsState;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad_output = contiguous(&grads.consume::<Flex>(&ops.node));
        let [input] = ops.parents;
        if let Some(node) = input {
            let grad_input = match grad_output.dtype() {
                DType::F64 => steps_backward::<f64>(&ops.state, &grad_output),
                // The forward pass took f32 or f64 only.
                _ => steps_backward::<f32>(&ops.state, &grad_output),
            };
            grads.register::<Flex>(node.id, grad_input);
        }
    }
}

/// What the backward pass of the maximum over steps needs: the step of each maximum.
#[derive(Debug, Clone)]
struct StepsState {
    /// `[batch, width]`: the first step holding each maximum.
    argmax: Vec<u32>,
    dims: [usize; 3],
    output: FlexTensor,
}

/// `[batch, steps, width]` of a sequence, checked.
fn steps_dims(x: &FlexTensor) -> [usize; 3] {
    let shape = x.layout().shape();
    assert!(shape.num_dims() == 3 && shape[1] >= 1, "max over steps takes [batch, steps ≥ 1, width]");
    [shape[0], shape[1], shape[2]]
}

fn steps_forward(x: &FlexTensor) -> StepsState {
    let input = contiguous(x);
    let dims = steps_dims(&input);
    let (output, argmax) = match input.dtype() {
        DType::F64 => steps_forward_typed::<f64>(&input, dims),
        DType::F32 => steps_forward_typed::<f32>(&input, dims),
        other => panic!("the CPU max over steps runs in f32 or f64, not {other:?}"),
    };
    StepsState { argmax, dims, output }
}

fn steps_forward_typed<T: Real>(x: &FlexTensor, [batch, steps, width]: [usize; 3]) -> (FlexTensor, Vec<u32>) {
    let input = values::<T>(x);
    let mut output = vec![T::zero(); batch * width];
    let mut argmax = vec![0u32; batch * width];
    let per_sequence = input.chunks_exact(steps * width).zip(output.chunks_exact_mut(width).zip(argmax.chunks_exact_mut(width)));
    for (sequence, (best, at)) in per_sequence {
        best.copy_from_slice(&sequence[..width]);
        // Step after step over whole rows: compare-and-selects the compiler vectorises. Only a
        // strictly greater value moves the maximum, so a tie keeps its first step (as burn's
        // `max_dim` does).
        for (t, row) in sequence.chunks_exact(width).enumerate().skip(1) {
            for ((b, a), x) in best.iter_mut().zip(at.iter_mut()).zip(row) {
                let greater = *x > *b;
                *b = if greater { *x } else { *b };
                *a = if greater { t as u32 } else { *a };
            }
        }
    }
    (tensor(output, &[batch, width]), argmax)
}

/// The gradient of each maximum goes to its step; every other step gets zero.
fn steps_backward<T: Real>(state: &StepsState, grad_output: &FlexTensor) -> FlexTensor {
    let [batch, steps, width] = state.dims;
    let grads = values::<T>(grad_output);
    let mut grad_input = vec![T::zero(); batch * steps * width];
    for (b, (at, grad)) in state.argmax.chunks_exact(width).zip(grads.chunks_exact(width)).enumerate() {
        for (j, (t, g)) in at.iter().zip(grad).enumerate() {
            grad_input[(b * steps + *t as usize) * width + j] = *g;
        }
    }
    tensor(grad_input, &[batch, steps, width])
}

/// What the backward pass needs: the input and the output (both shared, not copied).
#[derive(Debug, Clone)]
struct PoolState {
    input: FlexTensor,
    output: FlexTensor,
    size: usize,
}

#[derive(Debug)]
struct MaxPoolBackward;

impl Backward<Flex, 1> for MaxPoolBackward {
    type State = PoolState;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad_output = contiguous(&grads.consume::<Flex>(&ops.node));
        let [input] = ops.parents;
        if let Some(node) = input {
            let grad_input = match ops.state.input.dtype() {
                DType::F64 => pool_backward::<f64>(&ops.state, &grad_output),
                // The forward pass took f32 or f64 only.
                _ => pool_backward::<f32>(&ops.state, &grad_output),
            };
            grads.register::<Flex>(node.id, grad_input);
        }
    }
}

/// `[n, c, h, w]` of a pooling input, checked.
fn pool_dims(x: &FlexTensor, size: usize) -> [usize; 4] {
    let shape = x.layout().shape();
    assert_eq!(shape.num_dims(), 4, "max-pooling takes [n, c, h, w]");
    let [n, c, h, w] = [shape[0], shape[1], shape[2], shape[3]];
    assert!(size >= 1 && size <= h && size <= w, "a {size}×{size} window does not fit a {h}×{w} image");
    [n, c, h, w]
}

fn pool_forward(x: &FlexTensor, size: usize) -> PoolState {
    let input = contiguous(x);
    let output = match input.dtype() {
        DType::F64 => pool_forward_typed::<f64>(&input, size),
        DType::F32 => pool_forward_typed::<f32>(&input, size),
        other => panic!("the CPU max-pool runs in f32 or f64, not {other:?}"),
    };
    PoolState { input, output, size }
}

fn pool_forward_typed<T: Real>(x: &FlexTensor, size: usize) -> FlexTensor {
    let [n, c, h, w] = pool_dims(x, size);
    let (oh, ow) = (h / size, w / size);
    let input = values::<T>(x);
    let mut output = vec![T::zero(); n * c * oh * ow];
    // The recipes' windows are 2 × 2 (or 3 × 3): with the size a constant after inlining, the
    // window loops unroll.
    match size {
        2 => forward_planes(input, &mut output, [h, w], 2),
        3 => forward_planes(input, &mut output, [h, w], 3),
        size => forward_planes(input, &mut output, [h, w], size),
    }
    tensor(output, &[n, c, oh, ow])
}

#[inline(always)]
fn forward_planes<T: Real>(input: &[T], output: &mut [T], [h, w]: [usize; 2], size: usize) {
    let (oh, ow) = (h / size, w / size);
    for (in_plane, out_plane) in input.chunks_exact(h * w).zip(output.chunks_exact_mut(oh * ow)) {
        for (out_y, out_row) in out_plane.chunks_exact_mut(ow).enumerate() {
            let rows = &in_plane[out_y * size * w..(out_y * size + size - 1) * w + ow * size];
            for (out_x, v) in out_row.iter_mut().enumerate() {
                let mut best = rows[out_x * size];
                for dy in 0..size {
                    for x in &rows[dy * w + out_x * size..dy * w + out_x * size + size] {
                        best = best.max(*x);
                    }
                }
                *v = best;
            }
        }
    }
}

fn pool_backward<T: Real>(state: &PoolState, grad_output: &FlexTensor) -> FlexTensor {
    let [n, c, h, w] = pool_dims(&state.input, state.size);
    let (input, output, grads) = (values::<T>(&state.input), values::<T>(&state.output), values::<T>(grad_output));
    let mut grad_input = vec![T::zero(); n * c * h * w];
    let planes = (input, output, grads);
    match state.size {
        2 => backward_planes(planes, &mut grad_input, [h, w], 2),
        3 => backward_planes(planes, &mut grad_input, [h, w], 3),
        size => backward_planes(planes, &mut grad_input, [h, w], size),
    }
    tensor(grad_input, &[n, c, h, w])
}

#[inline(always)]
fn backward_planes<T: Real>((input, output, grads): (&[T], &[T], &[T]), grad_input: &mut [T], [h, w]: [usize; 2], size: usize) {
    let (oh, ow) = (h / size, w / size);
    let outputs = output.chunks_exact(oh * ow).zip(grads.chunks_exact(oh * ow));
    for ((in_plane, grad_plane), (out_plane, out_grads)) in input.chunks_exact(h * w).zip(grad_input.chunks_exact_mut(h * w)).zip(outputs) {
        for out_y in 0..oh {
            for out_x in 0..ow {
                let (best, grad) = (out_plane[out_y * ow + out_x], out_grads[out_y * ow + out_x]);
                // The first position of the window, in row order, that holds the maximum.
                'window: for dy in 0..size {
                    let row = (out_y * size + dy) * w + out_x * size;
                    for dx in 0..size {
                        if in_plane[row + dx] == best {
                            grad_plane[row + dx] = grad;
                            break 'window;
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::module::max_pool2d as burn_max_pool2d;
    use burn::tensor::ops::MaxPoolOptions;
    use burn::tensor::{Device, TensorData};

    /// Forward and backward equal burn's `max_dim` over the steps, ties included.
    #[test]
    fn the_cpu_max_over_steps_computes_what_burns_max_dim_computes() {
        let device = Device::flex().autodiff();
        let (batch, steps, width) = (3, 9, 11);
        let mut rng = crate::model::SeededRng::new(8);
        let values: Vec<f32> = (0..batch * steps * width).map(|_| (rng.normal() * 1.5).round() as f32).collect();
        let upstream: Vec<f32> = (0..batch * width).map(|_| rng.normal() as f32).collect();
        let run = |ours: bool| {
            let x = super::Tensor::<3>::from_data(TensorData::new(values.clone(), [batch, steps, width]), &device).require_grad();
            let out = if ours { super::max_over_steps(x.clone()) } else { x.clone().max_dim(1).reshape([batch, width]) };
            let up = super::Tensor::<2>::from_data(TensorData::new(upstream.clone(), [batch, width]), &device);
            let grads = (out.clone() * up).sum().backward();
            let grad = x.grad(&grads).expect("a gradient").into_data().try_to_vec::<f32>().expect("f32");
            (out.inner().into_data().try_to_vec::<f32>().expect("f32"), grad)
        };
        let (ours, burns) = (run(true), run(false));
        assert_eq!(ours, burns);
        let ties = (0..batch * width).filter(|&i| {
            let (b, j) = (i / width, i % width);
            (0..steps).filter(|&t| values[(b * steps + t) * width + j] == ours.0[i]).count() > 1
        });
        assert!(ties.count() > 5, "the input holds ties");
    }

    /// Forward and backward equal burn's own max-pool, on odd sizes too (the last row and column
    /// of a 7 × 9 image fall outside every 2 × 2 window) and on ties.
    #[test]
    fn the_cpu_max_pool_computes_what_burns_max_pool_computes() {
        let device = Device::flex().autodiff();
        for (size, [n, c, h, w]) in [(2, [3, 4, 8, 8]), (2, [2, 3, 7, 9]), (3, [1, 2, 9, 7])] {
            let mut rng = crate::model::SeededRng::new(5);
            // Rounded to a coarse grid so windows hold ties.
            let values: Vec<f32> = (0..n * c * h * w).map(|_| (rng.normal() * 2.0).round() as f32).collect();
            let upstream: Vec<f32> = (0..n * c * (h / size) * (w / size)).map(|_| rng.normal() as f32).collect();
            let run = |ours: bool| {
                let x = super::Tensor::<4>::from_data(TensorData::new(values.clone(), [n, c, h, w]), &device).require_grad();
                let out = if ours {
                    super::max_pool2d(x.clone(), size)
                } else {
                    burn_max_pool2d(x.clone(), MaxPoolOptions::new([size, size]).with_stride([size, size]))
                };
                let up = super::Tensor::<4>::from_data(TensorData::new(upstream.clone(), out.dims()), &device);
                let grads = (out.clone() * up).sum().backward();
                let grad = x.grad(&grads).expect("a gradient").into_data().try_to_vec::<f32>().expect("f32");
                (out.dims(), out.inner().into_data().try_to_vec::<f32>().expect("f32"), grad)
            };
            assert_eq!(run(true), run(false), "size {size}, input {:?}", [n, c, h, w]);
        }
    }
}
