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
pub mod pool;
pub mod recurrent;

use burn::backend::DispatchDevice;
use burn::backend::flex::FlexTensor;
use burn::tensor::{Device, FloatDType, TensorData};

/// Whether `device` runs these kernels: the CPU backend, in f32 or f64. Other backends and dtypes
/// take the reference built from burn's operations.
pub fn fused_on(device: &Device) -> bool {
    let plain = device.clone().inner();
    matches!(plain.as_dispatch(), DispatchDevice::Flex(_)) && matches!(plain.settings().float_dtype, FloatDType::F32 | FloatDType::F64)
}

/// The float types the kernels run in.
pub(crate) trait Real: num_traits::Float + burn::tensor::Element + bytemuck::Pod + Send + Sync {
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

/// A matrix as a strided view into a slice: element `(i, j)` at `i * row_stride + j * col_stride`.
#[derive(Clone, Copy)]
pub(crate) struct Matrix<'a, T> {
    pub values: &'a [T],
    pub rows: usize,
    pub cols: usize,
    pub row_stride: usize,
    pub col_stride: usize,
}

impl<'a, T> Matrix<'a, T> {
    /// `rows × cols` stored row after row.
    pub fn row_major(values: &'a [T], rows: usize, cols: usize) -> Self {
        Matrix { values, rows, cols, row_stride: cols, col_stride: 1 }
    }

    /// The transpose, as a view of the same values.
    pub fn t(self) -> Self {
        Matrix { rows: self.cols, cols: self.rows, row_stride: self.col_stride, col_stride: self.row_stride, ..self }
    }

    fn fits(&self, len: usize) -> bool {
        self.rows == 0 || self.cols == 0 || (self.rows - 1) * self.row_stride + (self.cols - 1) * self.col_stride < len
    }
}

/// `dst ← lhs · rhs`, or `dst ← dst + lhs · rhs` with `accumulate`, where `dst` is the
/// `lhs.rows × rhs.cols` matrix with element `(i, j)` at `i * dst_row_stride + j` of `dst`.
/// On gemm (the kernel burn's CPU backend runs) without a tensor, an allocation or a copy:
/// the fused layers multiply slices of their own buffers in place. With `shared`, the product
/// is split over the current thread pool (worth it for a whole sequence's product, not for a
/// step's).
#[allow(unsafe_code)] // gemm takes raw pointers and strides; the bounds are checked first.
pub(crate) fn matmul_into<T: Real>(
    dst: &mut [T],
    dst_row_stride: usize,
    accumulate: bool,
    lhs: Matrix<'_, T>,
    rhs: Matrix<'_, T>,
    shared: bool,
) {
    assert_eq!(lhs.cols, rhs.rows, "inner dimensions of a product");
    let dst_view = Matrix { values: &[] as &[T], rows: lhs.rows, cols: rhs.cols, row_stride: dst_row_stride, col_stride: 1 };
    assert!(lhs.fits(lhs.values.len()) && rhs.fits(rhs.values.len()) && dst_view.fits(dst.len()), "a view within its slice");
    assert!(T::dtype() == burn::tensor::DType::F32 || T::dtype() == burn::tensor::DType::F64, "gemm in f32 or f64");
    let stride = |s: usize| isize::try_from(s).expect("a stride within isize");
    // SAFETY: every index the views reach lies inside its slice (checked above); `dst` is borrowed
    // mutably, so it overlaps neither operand; gemm reads and writes nothing else.
    unsafe {
        gemm::gemm(
            lhs.rows,
            rhs.cols,
            lhs.cols,
            dst.as_mut_ptr(),
            1,
            stride(dst_row_stride),
            accumulate,
            lhs.values.as_ptr(),
            stride(lhs.col_stride),
            stride(lhs.row_stride),
            rhs.values.as_ptr(),
            stride(rhs.col_stride),
            stride(rhs.row_stride),
            T::one(),
            T::one(),
            false,
            false,
            false,
            match rayon::current_num_threads() {
                threads if shared && threads > 1 => gemm::Parallelism::Rayon(threads),
                _ => gemm::Parallelism::None,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_product_of_strided_views_is_the_product_of_the_matrices_they_show() {
        // a: 3 × 4 in every other row of a 6 × 4 buffer; b: 4 × 2 as the transpose of 2 × 4.
        let a: Vec<f64> = (0..24).map(|v| v as f64 - 7.0).collect();
        let b: Vec<f64> = (0..8).map(|v| (v * v) as f64 - 5.0).collect();
        let lhs = Matrix { values: &a[..], rows: 3, cols: 4, row_stride: 8, col_stride: 1 };
        let rhs = Matrix::row_major(&b[..], 2, 4).t();
        let expected = |i: usize, j: usize| (0..4).map(|k| a[i * 8 + k] * b[j * 4 + k]).sum::<f64>();
        let mut dst = vec![1.0; 3 * 5];
        matmul_into(&mut dst, 5, false, lhs, rhs, false);
        matmul_into(&mut dst[2..], 5, true, lhs, rhs, true);
        for i in 0..3 {
            assert_eq!(dst[i * 5], expected(i, 0));
            assert_eq!(dst[i * 5 + 1], expected(i, 1));
            assert_eq!(dst[i * 5 + 2], 1.0 + expected(i, 0));
            assert_eq!(dst[i * 5 + 3], 1.0 + expected(i, 1));
            assert_eq!(dst[i * 5 + 4], 1.0, "outside the destination view");
        }
    }

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
