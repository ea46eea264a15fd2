//! Hand-written CPU kernels behind burn's tensor API, where burn's own operations cost too much:
//! each is a burn backend extension implemented for the CPU backend (Flex), with and without
//! autodiff, and with its backward pass written out. Every kernel has a reference built from burn's
//! operations that other backends (GPU) take and the tests compare it with.
//!
//! Only this module touches backend primitives (`FlexTensor`); the model code sees `Tensor`s.

/// `$kernel(args…)`, compiled a second time for AVX2 and run so where the CPU has it: the
/// elementwise loops then take 8 floats an instruction instead of x86-64's baseline SSE2's 4.
/// The kernel must be `#[inline(always)]` to be compiled into the AVX2 copy. The arithmetic is
/// the same operations in the same order (no fused multiply-adds), so the answers are the same
/// bits either way. Arguments are named with their types: `wide!(kernel, (a: &A, b: B) -> R)`.
macro_rules! wide {
    ($kernel:path, ($($arg:ident: $ty:ty),* $(,)?) -> $ret:ty) => {{
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2")]
        fn avx2($($arg: $ty),*) -> $ret {
            $kernel($($arg),*)
        }
        #[cfg(target_arch = "x86_64")]
        let answer = if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2, checked just before.
            #[allow(unsafe_code)]
            unsafe {
                avx2($($arg),*)
            }
        } else {
            $kernel($($arg),*)
        };
        #[cfg(not(target_arch = "x86_64"))]
        let answer = $kernel($($arg),*);
        answer
    }};
}

pub mod adam;
pub mod dense;
pub mod matmul;
pub mod pool;
pub mod recurrent;

pub use matmul::{Matrix, matmul_into};

use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::ops::{Backward, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, DispatchDevice, Flex};
use burn::tensor::{Device, FloatDType, TensorData};

/// Whether `device` runs these kernels: the CPU backend, in f32 or f64. Other backends and dtypes
/// take the reference built from burn's operations.
pub fn fused_on(device: &Device) -> bool {
    let plain = device.clone().inner();
    matches!(plain.as_dispatch(), DispatchDevice::Flex(_)) && matches!(plain.settings().float_dtype, FloatDType::F32 | FloatDType::F64)
}

/// The float types the kernels run in.
pub trait Real: num_traits::Float + burn::tensor::Element + bytemuck::Pod + Send + Sync {
    /// `e^x`, in a form the compiler can vectorise where the type allows.
    fn exp_fast(x: Self) -> Self;
}

impl Real for f32 {
    /// Cephes' `expf`: `e^x = 2^n e^r` with `n = round(x / ln 2)` and `|r| ≤ ln 2 / 2`, `e^r` by
    /// a degree-6 polynomial, `2^n` written into the exponent bits. No calls and no branches, so
    /// a loop of it becomes SIMD; within 2 ulp of libm's `expf` on the clamped range, which keeps
    /// `2^n` a normal float (below it the answer is ≈ 0, above it ≈ 1.7e38).
    #[inline(always)]
    fn exp_fast(x: f32) -> f32 {
        let x = x.clamp(-87.3, 88.3);
        // Round to nearest by adding 1.5 * 2^23: the sum's low mantissa bits are then `n`
        // itself (offset by the constant's bits), read back without a float-to-int conversion.
        const ROUND: f32 = 12_582_912.0;
        let shifted = x * std::f32::consts::LOG2_E + ROUND;
        let n = shifted - ROUND;
        // ln 2 in two parts, so `x - n ln 2` stays exact.
        let r = x - n * 0.693_359_4 + n * 2.121_944_4e-4;
        let mut p = 1.987_569_1e-4_f32;
        p = p * r + 1.398_199_9e-3;
        p = p * r + 8.333_452e-3;
        p = p * r + 4.166_579_6e-2;
        p = p * r + 0.166_666_65;
        p = p * r + 0.5;
        let e_r = p * r * r + r + 1.0;
        let two_n = (shifted.to_bits().wrapping_sub(ROUND.to_bits()).wrapping_add(127)) << 23;
        e_r * f32::from_bits(two_n)
    }
}

impl Real for f64 {
    /// f64 runs in the gradient checks, where accuracy matters more than speed.
    fn exp_fast(x: f64) -> f64 {
        x.exp()
    }
}

/// A contiguous view of `t` (copied only when it is not contiguous already).
pub(crate) fn contiguous(t: &FlexTensor) -> FlexTensor {
    if t.is_contiguous() && t.layout().start_offset() == 0 { t.clone() } else { t.to_contiguous() }
}

pub(crate) fn values<T: Real>(t: &FlexTensor) -> &[T] {
    t.as_slice::<T>().expect("a contiguous tensor of the kernel's dtype")
}

pub(crate) fn tensor<T: Real>(values: Vec<T>, shape: &[usize]) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape.to_vec()))
}

/// Ends a kernel's autodiff operation: where a gradient is wanted, the output is recorded with
/// the state its backward pass reads; where none is, the state is dropped here.
pub(crate) fn finish_op<BO, S, C, const N: usize>(
    prep: OpsKind<BO, Flex, S, C, N>,
    state: S,
    output: FlexTensor,
) -> FloatTensor<Autodiff<Flex, C>>
where
    BO: Backward<Flex, N, State = S>,
    S: Clone + Send + std::fmt::Debug + 'static,
    C: CheckpointStrategy,
{
    match prep {
        OpsKind::Tracked(prep) => prep.finish(state, output),
        OpsKind::UnTracked(prep) => prep.finish(output),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_vectorisable_exp_stays_within_two_ulp_of_libm() {
        let mut worst = 0f32;
        for k in -87_000..88_000 {
            let x = k as f32 / 1000.0 + 0.000_37;
            let (fast, exact) = (<f32 as Real>::exp_fast(x), x.exp());
            worst = worst.max((fast - exact).abs() / exact / f32::EPSILON);
        }
        assert!(worst <= 2.0, "worst relative error {worst} ulp");
        let floor = <f32 as Real>::exp_fast(-1e4);
        assert!(floor > 0.0 && floor < 1.3e-38 && floor == <f32 as Real>::exp_fast(-87.3), "clamped below: {floor}");
        assert!(<f32 as Real>::exp_fast(1e4).is_finite() && recurrent::sigmoid(1e4f32) == 1.0 && recurrent::sigmoid(-1e4f32) < 1e-37);
        assert!(recurrent::tanh(50f32) == 1.0 && recurrent::tanh(-50f32) == -1.0 && recurrent::tanh(0f32) == 0.0);
    }
}
