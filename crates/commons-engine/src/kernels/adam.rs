//! Adam's parameter update as one pass over the parameter, its gradient and both moments, in
//! place, on the CPU backend.
//!
//! burn-optim's Adam builds the update from whole-tensor operations: about ten passes over memory
//! and as many freshly allocated tensors per parameter and step, which cost a quarter of an epoch
//! of the seed MLP. [`FusedAdam`] computes the same update, operation for operation in the same
//! order (so the same bits, except that a moment below the normal floats is set to zero: see
//! `normal_or_zero`), in one loop that overwrites the parameter and the moments where they are not
//! shared. Its state is burn's own [`AdamState`], so checkpoints (`optimizer.bpk`) read and
//! write as before, and on other backends (GPU) it is burn's Adam.

use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, DType, Dispatch, Flex, backend_extension};
use burn::optim::{Adam, AdamConfig, AdamState, AdaptiveMomentumState, LearningRate, Optimizer};
use burn::tensor::{Device, Tensor};

use super::Real;

/// Adam without weight decay or AMSGrad (what the recipes' `adam` optimizer is).
#[derive(Clone)]
pub struct FusedAdam {
    beta_1: f32,
    beta_2: f32,
    epsilon: f32,
    /// The same optimizer built by burn: it runs where the fused pass does not.
    reference: Adam,
}

impl FusedAdam {
    pub fn new(beta_1: f32, beta_2: f32, epsilon: f32) -> FusedAdam {
        let reference = AdamConfig::new().with_beta_1(beta_1).with_beta_2(beta_2).with_epsilon(epsilon).build();
        FusedAdam { beta_1, beta_2, epsilon, reference }
    }
}

/// The scalars of one step, worked out once per parameter as burn's Adam works them out.
#[derive(Debug, Clone, Copy)]
pub struct AdamStep {
    pub beta_1: f32,
    pub beta_2: f32,
    /// `sqrt(1 - β₂ᵗ) / (1 - β₁ᵗ)`.
    pub factor: f32,
    /// `ε · sqrt(1 - β₂ᵗ)`.
    pub epsilon: f32,
    pub lr: f32,
}

impl Optimizer for FusedAdam {
    type State<const D: usize> = AdamState<D>;

    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<D>, Option<Self::State<D>>) {
        if !super::fused_on(&tensor.device()) {
            return self.reference.step(lr, tensor, grad, state);
        }
        // The first step starts from zero moments: `β·0 + (1-β)·g` is what burn's first step
        // computes as `(1-β)·g`, bit for bit.
        let (time, moment_1, moment_2) = match state {
            Some(AdamState { momentum: AdaptiveMomentumState { time, moment_1, moment_2, max_moment_2: None } }) => {
                (time + 1, moment_1, moment_2)
            }
            Some(state) => return self.reference.step(lr, tensor, grad, Some(state)),
            None => (1, tensor.zeros_like(), tensor.zeros_like()),
        };
        let bias_correction_2 = (1.0 - self.beta_2.powi(time as i32)).sqrt();
        let step = AdamStep {
            beta_1: self.beta_1,
            beta_2: self.beta_2,
            factor: bias_correction_2 / (1.0 - self.beta_1.powi(time as i32)),
            epsilon: self.epsilon * bias_correction_2,
            lr: lr as f32,
        };
        let (tensor, moment_1, moment_2) = <Dispatch as AdamBackend>::adam_step(
            tensor.into_dispatch(),
            grad.into_dispatch(),
            moment_1.into_dispatch(),
            moment_2.into_dispatch(),
            step,
        );
        let momentum = AdaptiveMomentumState::new(time, Tensor::from_dispatch(moment_1), Tensor::from_dispatch(moment_2));
        (Tensor::from_dispatch(tensor), Some(AdamState::new(momentum)))
    }

    fn to_device<const D: usize>(state: Self::State<D>, device: &Device) -> Self::State<D> {
        <Adam as Optimizer>::to_device(state, device)
    }
}

/// The fused update as a burn backend extension (the CPU backend; optimizer tensors carry no
/// autodiff graph).
#[backend_extension(Flex)]
pub trait AdamBackend: Backend {
    /// `(parameter, gradient, moment 1, moment 2)` → the updated `(parameter, moment 1, moment 2)`.
    fn adam_step(
        param: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        moment_1: FloatTensor<Self>,
        moment_2: FloatTensor<Self>,
        step: AdamStep,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);
}

impl AdamBackend for Flex {
    fn adam_step(
        param: FlexTensor,
        grad: FlexTensor,
        moment_1: FlexTensor,
        moment_2: FlexTensor,
        step: AdamStep,
    ) -> (FlexTensor, FlexTensor, FlexTensor) {
        let (mut param, grad, mut moment_1, mut moment_2) = (owned(param), super::contiguous(&grad), owned(moment_1), owned(moment_2));
        match param.dtype() {
            DType::F32 => update::<f32>(
                &mut param,
                &grad,
                &mut moment_1,
                &mut moment_2,
                |p, g, m, v| wide!(update_f32, (p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], step: AdamStep) -> ()),
            ),
            DType::F64 => {
                update::<f64>(&mut param, &grad, &mut moment_1, &mut moment_2, |p, g, m, v| update_chunk(p, g, m, v, step, f64::from))
            }
            other => panic!("the fused Adam runs in f32 or f64, not {other:?}"),
        }
        (param, moment_1, moment_2)
    }
}

/// `t` as a tensor whose storage is exactly its elements in order (copied only when it is not).
fn owned(t: FlexTensor) -> FlexTensor {
    let whole =
        t.is_contiguous() && t.layout().start_offset() == 0 && t.bytes().len() == t.layout().shape().num_elements() * t.dtype().size();
    if whole { t } else { t.to_contiguous() }
}

#[inline(always)] // into `wide`'s AVX2 copy
fn update_f32(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], step: AdamStep) {
    update_chunk(p, g, m, v, step, |x| x)
}

/// Elements per task when the update is shared between threads: large parameters only (an
/// embedding of thousands of words), where a task's work outweighs handing it over; the seed
/// MLP's first layer (100,480) stays on one thread.
const CHUNK: usize = 1 << 17;

/// The update over every element, in chunks on the current thread pool for large parameters
/// (each element is updated alone, so the split changes no bit).
fn update<T: Real>(
    param: &mut FlexTensor,
    grad: &FlexTensor,
    moment_1: &mut FlexTensor,
    moment_2: &mut FlexTensor,
    chunk: impl Fn(&mut [T], &[T], &mut [T], &mut [T]) + Sync,
) {
    use rayon::prelude::*;
    let g = super::values::<T>(grad);
    // Copy-on-write: a tensor still shared elsewhere is copied once here, not per operation.
    let (p, m, v) = (param.storage_mut::<T>(), moment_1.storage_mut::<T>(), moment_2.storage_mut::<T>());
    assert!(p.len() == g.len() && m.len() == g.len() && v.len() == g.len(), "a parameter, its gradient and its moments have one shape");
    if p.len() >= 2 * CHUNK && rayon::current_num_threads() > 1 {
        let parts = p.par_chunks_mut(CHUNK).zip(g.par_chunks(CHUNK)).zip(m.par_chunks_mut(CHUNK)).zip(v.par_chunks_mut(CHUNK));
        parts.for_each(|(((p, g), m), v)| chunk(p, g, m, v));
    } else {
        chunk(p, g, m, v);
    }
}

#[inline(always)]
fn update_chunk<T: Real>(p: &mut [T], g: &[T], m: &mut [T], v: &mut [T], step: AdamStep, of: impl Fn(f32) -> T) {
    let (beta_1, beta_2, factor, epsilon, lr) = (of(step.beta_1), of(step.beta_2), of(step.factor), of(step.epsilon), of(step.lr));
    let (keep_1, keep_2) = (T::one() - beta_1, T::one() - beta_2);
    // burn's order of operations, so the same bits: m·β₁ + g·(1-β₁), v·β₂ + g²·(1-β₂),
    // (m·factor) / (√v + ε'), p − update·lr.
    for (((p, g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
        *m = normal_or_zero(*m * beta_1 + *g * keep_1);
        *v = normal_or_zero(*v * beta_2 + *g * *g * keep_2);
        *p = *p - (*m * factor) / (v.sqrt() + epsilon) * lr;
    }
}

/// A moment below the smallest normal float, as zero. A weight whose gradient is always 0 (a
/// pixel black in every MNIST image) has its first moment shrink by β₁ a step into the subnormal
/// range and stay there (β₁ × the smallest subnormal rounds back to it), and every operation on
/// a subnormal takes a microcode assist on Intel cores: with them, Adam was 45% of the seed MLP's
/// epoch on a Xeon and its epochs 1.6× slower after the first. Where burn's Adam would keep a
/// subnormal moment, the update it makes is below 10⁻³⁰·lr; the same bits everywhere else. (As
/// TensorFlow's flush-to-zero, but in the arithmetic, not in the CPU's state: the same on every
/// CPU.)
#[inline(always)]
fn normal_or_zero<T: Real>(x: T) -> T {
    if x.abs() < T::min_positive_value() { T::zero() } else { x }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::module::{Module, Param};
    use burn::optim::{GradientsParams, ModuleOptimizer};
    use burn::tensor::TensorData;

    #[derive(Module, Debug)]
    struct Pair {
        weight: Param<Tensor<2>>,
        bias: Param<Tensor<1>>,
    }

    /// Enough inputs that the weight's update is shared between threads (2 chunks or more).
    const INPUTS: usize = 40_000;

    fn pair(device: &Device) -> Pair {
        let weight: Vec<f32> = (0..INPUTS * 7).map(|i| ((i * 37 % 19) as f32 - 9.0) / 11.0).collect();
        let bias: Vec<f32> = (0..7).map(|i| i as f32 / 13.0 - 0.2).collect();
        Pair {
            weight: Param::from_tensor(Tensor::from_data(TensorData::new(weight, [INPUTS, 7]), device)),
            bias: Param::from_tensor(Tensor::from_data(TensorData::new(bias, [7]), device)),
        }
    }

    fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.into_data().try_to_vec::<f32>().expect("f32 values")
    }

    fn train(mut optimizer: ModuleOptimizer, mut model: Pair, steps: usize) -> (Pair, ModuleOptimizer) {
        let device = model.weight.val().device();
        let input: Vec<f32> = (0..5 * INPUTS).map(|i| ((i * 13 % 23) as f32 - 11.0) / 7.0).collect();
        let input = Tensor::<2>::from_data(TensorData::new(input, [5, INPUTS]), &device);
        for _ in 0..steps {
            let out = input.clone().matmul(model.weight.val()) + model.bias.val().unsqueeze::<2>();
            let loss = (out.clone() * out).sum();
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optimizer.step(3e-3, model, grads);
        }
        (model, optimizer)
    }

    #[test]
    fn the_fused_adam_updates_bit_for_bit_as_burns_adam_and_keeps_its_checkpoint_format() {
        let device = Device::flex().autodiff();
        let fused = || ModuleOptimizer::from(FusedAdam::new(0.9, 0.999, 1e-7));
        let burns = || AdamConfig::new().with_beta_1(0.9).with_beta_2(0.999).with_epsilon(1e-7).init();
        let start = pair(&device);
        let (trained, fused_after) = train(fused(), start.clone(), 25);
        let (reference, burns_after) = train(burns(), start.clone(), 25);
        let weight = values(trained.weight.val());
        assert_eq!(weight, values(reference.weight.val()));
        assert_eq!(values(trained.bias.val()), values(reference.bias.val()));
        let moved = weight.iter().zip(values(start.weight.val())).filter(|(a, b)| *a != b).count();
        assert!(moved > INPUTS * 6, "the weights moved: {moved} of {}", INPUTS * 7);

        // Each reads the other's saved state (the same parameters, so the same ids) and goes on
        // as the other would; a fresh optimizer would not.
        let (fused_bytes, burns_bytes) =
            (fused_after.into_bytes().expect("fused state saved"), burns_after.into_bytes().expect("state saved"));
        let resumed_fused = fused().from_bytes(burns_bytes).expect("burn's Adam state read by the fused Adam");
        let resumed_burns = burns().from_bytes(fused_bytes).expect("the fused Adam's state read by burn's");
        let (a, _) = train(resumed_fused, trained.clone(), 3);
        let (b, _) = train(resumed_burns, trained.clone(), 3);
        let (fresh, _) = train(fused(), trained, 3);
        assert_eq!(values(a.weight.val()), values(b.weight.val()));
        assert_ne!(values(a.weight.val()), values(fresh.weight.val()));
    }

    #[test]
    fn a_moment_that_would_fall_below_the_normal_floats_becomes_zero_and_a_normal_one_is_kept() {
        let step = AdamStep { beta_1: 0.9, beta_2: 0.999, factor: 1.0, epsilon: 1e-7, lr: 1e-3 };
        let tiny = f32::MIN_POSITIVE;
        // Zero gradients: the first moment shrinks by β₁, the second by β₂.
        let (mut p, g) = (vec![0.5_f32; 3], vec![0.0_f32; 3]);
        let mut m = vec![tiny * 1.05, tiny * 2.0, f32::from_bits(1)];
        let mut v = vec![1e-6_f32, tiny, 1e-6];
        update_f32(&mut p, &g, &mut m, &mut v, step);
        assert_eq!(m, vec![0.0, tiny * 2.0 * 0.9, 0.0], "β₁·m below the normal floats is zero, above them kept");
        assert_eq!(v, vec![1e-6 * 0.999, 0.0, 1e-6 * 0.999]);
        assert_eq!(p[0], 0.5, "a zero moment moves nothing");
        assert!(m.iter().chain(&v).all(|x| *x == 0.0 || x.is_normal()), "no subnormal is kept: {m:?} {v:?}");
    }
}
