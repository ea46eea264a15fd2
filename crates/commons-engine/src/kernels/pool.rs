//! Max-pooling over non-overlapping `k × k` windows (stride = window, no padding, floor mode:
//! PyTorch's and Keras' `MaxPool2d(k)`), forward and backward, on the CPU backend.
//!
//! burn's CPU max-pool runs every 2-D pool through a general 3-D kernel with indices, which took a
//! fifth of `mnist-cnn`'s training epoch. Here a window is `k` reads of `k` neighbours; the
//! forward pass remembers where each maximum was (the first one of a tie, as burn and PyTorch do),
//! and the backward pass writes each output gradient there. The windows do not overlap, so each
//! input position gets at most one gradient.

use std::sync::Arc;

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, DType, Dispatch, Flex, backend_extension};
use burn::tensor::Tensor;

use super::{Real, contiguous, tensor, values};

/// `[n, c, h, w]` → `[n, c, h / size, w / size]`, the maximum of each `size × size` window.
pub fn max_pool2d(x: Tensor<4>, size: usize) -> Tensor<4> {
    Tensor::from_dispatch(<Dispatch as PoolBackend>::max_pool2d_windows(x.into_dispatch(), size))
}

/// Non-overlapping max-pooling as a burn backend extension (the CPU backend, with and without
/// autodiff); [`super::fused_on`] says where it runs.
#[backend_extension(Flex, Autodiff)]
pub trait PoolBackend: Backend {
    fn max_pool2d_windows(x: FloatTensor<Self>, size: usize) -> FloatTensor<Self>;
}

impl PoolBackend for Flex {
    fn max_pool2d_windows(x: FlexTensor, size: usize) -> FlexTensor {
        pool_forward(&x, size).output
    }
}

impl<C: CheckpointStrategy> PoolBackend for Autodiff<Flex, C> {
    fn max_pool2d_windows(x: FloatTensor<Self>, size: usize) -> FloatTensor<Self> {
        let prep = MaxPoolBackward.prepare::<C>([x.node()]).compute_bound().stateful();
        let forward = pool_forward(x.primitive(), size);
        match prep {
            OpsKind::Tracked(prep) => {
                let output = forward.output.clone();
                prep.finish(forward.into_state(), output)
            }
            OpsKind::UnTracked(prep) => prep.finish(forward.output),
        }
    }
}

/// Where each output's maximum came from, as offsets into the input.
#[derive(Debug, Clone)]
struct PoolState {
    input_shape: [usize; 4],
    dtype: DType,
    argmax: Arc<[u32]>,
}

struct PoolForward {
    output: FlexTensor,
    state: PoolState,
}

impl PoolForward {
    fn into_state(self) -> PoolState {
        self.state
    }
}

#[derive(Debug)]
struct MaxPoolBackward;

impl Backward<Flex, 1> for MaxPoolBackward {
    type State = PoolState;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad_output = contiguous(&grads.consume::<Flex>(&ops.node));
        let [input] = ops.parents;
        if let Some(node) = input {
            let grad_input = match ops.state.dtype {
                DType::F64 => pool_backward::<f64>(&ops.state, &grad_output),
                _ => pool_backward::<f32>(&ops.state, &grad_output),
            };
            grads.register::<Flex>(node.id, grad_input);
        }
    }
}

fn pool_forward(x: &FlexTensor, size: usize) -> PoolForward {
    let x = contiguous(x);
    match x.dtype() {
        DType::F64 => pool_forward_typed::<f64>(&x, size),
        DType::F32 => pool_forward_typed::<f32>(&x, size),
        other => panic!("the CPU max-pool runs in f32 or f64, not {other:?}"),
    }
}

fn pool_forward_typed<T: Real>(x: &FlexTensor, size: usize) -> PoolForward {
    let shape = x.layout().shape();
    assert_eq!(shape.num_dims(), 4, "max-pooling takes [n, c, h, w]");
    let [n, c, h, w] = [shape[0], shape[1], shape[2], shape[3]];
    assert!(size >= 1 && size <= h && size <= w, "a {size}×{size} window does not fit a {h}×{w} image");
    assert!(n * c * h * w <= u32::MAX as usize, "the input's offsets fit 32 bits");
    let (oh, ow) = (h / size, w / size);
    let input = values::<T>(x);
    let mut output = Vec::with_capacity(n * c * oh * ow);
    let mut argmax = Vec::with_capacity(n * c * oh * ow);
    for plane in 0..n * c {
        let base = plane * h * w;
        for out_y in 0..oh {
            for out_x in 0..ow {
                let first = base + out_y * size * w + out_x * size;
                let (mut best, mut at) = (input[first], first);
                for dy in 0..size {
                    let row = first + dy * w;
                    for (dx, v) in input[row..row + size].iter().enumerate() {
                        // Strictly greater: the first maximum of a tie wins.
                        if *v > best {
                            best = *v;
                            at = row + dx;
                        }
                    }
                }
                output.push(best);
                argmax.push(at as u32);
            }
        }
    }
    PoolForward {
        output: tensor(output, &[n, c, oh, ow]),
        state: PoolState { input_shape: [n, c, h, w], dtype: x.dtype(), argmax: argmax.into() },
    }
}

fn pool_backward<T: Real>(state: &PoolState, grad_output: &FlexTensor) -> FlexTensor {
    let grads = values::<T>(grad_output);
    let mut grad_input = vec![T::zero(); state.input_shape.iter().product()];
    for (g, at) in grads.iter().zip(state.argmax.iter()) {
        grad_input[*at as usize] = *g;
    }
    tensor(grad_input, &state.input_shape)
}

#[cfg(test)]
mod tests {
    use burn::tensor::module::max_pool2d as burn_max_pool2d;
    use burn::tensor::ops::MaxPoolOptions;
    use burn::tensor::{Device, TensorData};

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
