//! Matrix products on slices of the kernels' own buffers: `dst (+)= lhs · rhs` over strided
//! views, without a tensor, an allocation or a copy.
//!
//! Where the CPU has AVX-512 and the product is in f32 with rows of `rhs` and `dst` contiguous
//! (every product of the fused layers), a register-blocked kernel of
//! our own runs it: 6 rows × 64 columns of `dst` in 24 vector registers, one fused multiply-add
//! per register per inner step, straight from the operands without packing them. gemm 0.19 (the
//! kernel burn's CPU backend runs) has no AVX-512 kernels on stable Rust, and its AVX2 kernel
//! plus packing ran these small products at about half of what oneDNN reaches on the same CPU
//! (≈ 50 vs ≈ 100 GFLOP/s on one Zen 4 core). Everything else goes to gemm.
//!
//! Each element of `dst` is summed over the inner dimension in order, one fused multiply-add at
//! a time, whatever the threads: the same bits on every AVX-512 machine (the numeric class
//! `avx512` of `numeric_class`), as gemm's answers are within the other classes.

use super::Real;

/// A matrix as a strided view into a slice: element `(i, j)` at `i * row_stride + j * col_stride`.
#[derive(Clone, Copy)]
pub struct Matrix<'a, T> {
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

    /// The same view over `f32` values: for `T` known to be `f32`.
    #[cfg(target_arch = "x86_64")]
    fn cast<U: bytemuck::Pod>(self) -> Matrix<'a, U>
    where
        T: bytemuck::Pod,
    {
        Matrix {
            values: bytemuck::cast_slice(self.values),
            rows: self.rows,
            cols: self.cols,
            row_stride: self.row_stride,
            col_stride: self.col_stride,
        }
    }

    /// Rows `..top` and `top..` as two views.
    #[cfg(target_arch = "x86_64")]
    fn split_rows(self, top: usize) -> (Self, Self) {
        let lower = Matrix { values: &self.values[top * self.row_stride..], rows: self.rows - top, ..self };
        (Matrix { rows: top, ..self }, lower)
    }

    fn fits(&self, len: usize) -> bool {
        self.rows == 0 || self.cols == 0 || (self.rows - 1) * self.row_stride + (self.cols - 1) * self.col_stride < len
    }
}

/// `dst ← lhs · rhs`, or `dst ← dst + lhs · rhs` with `accumulate`, where `dst` is the
/// `lhs.rows × rhs.cols` matrix with element `(i, j)` at `i * dst_row_stride + j` of `dst`.
/// With `shared`, the product is split over the current thread pool (worth it for a whole
/// sequence's product, not for a step's).
pub fn matmul_into<T: Real>(dst: &mut [T], dst_row_stride: usize, accumulate: bool, lhs: Matrix<'_, T>, rhs: Matrix<'_, T>, shared: bool) {
    check_views(dst, dst_row_stride, lhs, rhs);
    let threads = if shared { rayon::current_num_threads() } else { 1 };
    #[cfg(target_arch = "x86_64")]
    if T::dtype() == burn::tensor::DType::F32 && rhs.col_stride == 1 && lhs.rows > 0 && std::arch::is_x86_feature_detected!("avx512f") {
        // T is f32 (checked above), so these casts reinterpret nothing.
        let (lhs, rhs) = (lhs.cast::<f32>(), rhs.cast::<f32>());
        let dst = bytemuck::cast_slice_mut::<T, f32>(dst);
        return avx512::split_rows(dst, dst_row_stride, accumulate, lhs, rhs, threads);
    }
    gemm_into(dst, dst_row_stride, accumulate, lhs, rhs, threads);
}

/// [`matmul_into`] on one thread of the gemm crate whatever the CPU: the `matmul` bench's
/// baseline.
pub fn matmul_into_on_gemm<T: Real>(dst: &mut [T], dst_row_stride: usize, accumulate: bool, lhs: Matrix<'_, T>, rhs: Matrix<'_, T>) {
    check_views(dst, dst_row_stride, lhs, rhs);
    gemm_into(dst, dst_row_stride, accumulate, lhs, rhs, 1);
}

/// Every index a product reaches lies inside its slice, and the destination's rows are apart:
/// what the kernels' unchecked reads and writes rely on.
fn check_views<T: Real>(dst: &[T], dst_row_stride: usize, lhs: Matrix<'_, T>, rhs: Matrix<'_, T>) {
    assert_eq!(lhs.cols, rhs.rows, "inner dimensions of a product");
    let dst_view = Matrix { values: &[] as &[T], rows: lhs.rows, cols: rhs.cols, row_stride: dst_row_stride, col_stride: 1 };
    assert!(lhs.fits(lhs.values.len()) && rhs.fits(rhs.values.len()) && dst_view.fits(dst.len()), "a view within its slice");
    assert!(lhs.rows <= 1 || dst_row_stride >= rhs.cols, "rows of the destination do not overlap");
}

/// The same product on gemm.
#[allow(unsafe_code)] // gemm takes raw pointers and strides; its callers checked the bounds (`check_views`).
fn gemm_into<T: Real>(dst: &mut [T], dst_row_stride: usize, accumulate: bool, lhs: Matrix<'_, T>, rhs: Matrix<'_, T>, threads: usize) {
    assert!(T::dtype() == burn::tensor::DType::F32 || T::dtype() == burn::tensor::DType::F64, "gemm in f32 or f64");
    let stride = |s: usize| isize::try_from(s).expect("a stride within isize");
    // SAFETY: every index the views reach lies inside its slice (`check_views`);
    // `dst` is borrowed mutably, so it overlaps neither operand; gemm reads and writes nothing
    // else.
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
            if threads > 1 { gemm::Parallelism::Rayon(threads) } else { gemm::Parallelism::None },
        );
    }
}

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)] // AVX-512 intrinsics on raw pointers; `matmul_into` checked every bound.
mod avx512 {
    use std::arch::x86_64::*;

    use super::Matrix;

    /// Rows of `dst` per block: 6 × 4 accumulators, 4 rows of `rhs` and a broadcast fill 29
    /// of the 32 vector registers.
    const ROWS: usize = 6;

    /// Splits the rows of `dst` between `threads` (each row is computed the same way, so the
    /// split changes no bit), then runs the kernel on each part.
    pub(super) fn split_rows(dst: &mut [f32], dst_rs: usize, accumulate: bool, lhs: Matrix<'_, f32>, rhs: Matrix<'_, f32>, threads: usize) {
        let rows = lhs.rows;
        if threads > 1 && rows >= 2 * ROWS * 4 {
            let top = (rows / 2).next_multiple_of(ROWS);
            let (upper, lower) = dst.split_at_mut(top * dst_rs);
            let (lhs_upper, lhs_lower) = lhs.split_rows(top);
            rayon::join(
                || split_rows(upper, dst_rs, accumulate, lhs_upper, rhs, threads / 2),
                || split_rows(lower, dst_rs, accumulate, lhs_lower, rhs, threads - threads / 2),
            );
            return;
        }
        // SAFETY: the CPU has AVX-512F (checked by the caller); the views lie within their
        // slices and `dst` holds `rows` rows of `rhs.cols` at `dst_rs` (checked by `matmul_into`
        // and kept by `split_rows`).
        unsafe { product(dst, dst_rs, accumulate, lhs, rhs) }
    }

    #[target_feature(enable = "avx512f")]
    unsafe fn product(dst: &mut [f32], dst_rs: usize, accumulate: bool, lhs: Matrix<'_, f32>, rhs: Matrix<'_, f32>) {
        // SAFETY: as the function's own contract says.
        unsafe {
            let (m, n) = (lhs.rows, rhs.cols);
            let mut j = 0;
            while j < n {
                let width = (n - j).min(64);
                // The block's last vector holds the columns left over: masked loads and stores
                // touch only those (masked-off lanes are neither read nor written).
                let lanes = width - 16 * ((width - 1) / 16);
                let block = Block {
                    dst: dst.as_mut_ptr().add(j),
                    dst_rs,
                    accumulate,
                    lhs,
                    rhs: rhs.values.as_ptr().add(j),
                    rhs_rs: rhs.row_stride,
                    last: if lanes == 16 { 0xffff } else { (1u16 << lanes) - 1 },
                };
                match width.div_ceil(16) {
                    4 => block.columns::<4>(m),
                    3 => block.columns::<3>(m),
                    2 => block.columns::<2>(m),
                    _ => block.columns::<1>(m),
                }
                j += 64;
            }
        }
    }

    /// Up to 64 columns of the product, starting at `dst` and `rhs`.
    struct Block<'a> {
        dst: *mut f32,
        dst_rs: usize,
        accumulate: bool,
        lhs: Matrix<'a, f32>,
        rhs: *const f32,
        rhs_rs: usize,
        /// The columns of the last vector that are in the product.
        last: __mmask16,
    }

    impl Block<'_> {
        #[inline(always)]
        unsafe fn columns<const V: usize>(&self, m: usize) {
            // SAFETY: as the function's own contract says.
            unsafe {
                let mut i = 0;
                while i + ROWS <= m {
                    self.rows::<ROWS, V>(i);
                    i += ROWS;
                }
                match m - i {
                    5 => self.rows::<5, V>(i),
                    4 => self.rows::<4, V>(i),
                    3 => self.rows::<3, V>(i),
                    2 => self.rows::<2, V>(i),
                    1 => self.rows::<1, V>(i),
                    _ => {}
                }
            }
        }

        /// The lanes of vector `v` of `V` that are in the product.
        #[inline(always)]
        fn mask<const V: usize>(&self, v: usize) -> __mmask16 {
            if v + 1 == V { self.last } else { 0xffff }
        }

        /// Rows `i..i + R` by up to `16 V` columns, the sums in registers.
        #[inline(always)]
        unsafe fn rows<const R: usize, const V: usize>(&self, i: usize) {
            // SAFETY: as the function's own contract says.
            unsafe {
                let Matrix { values, cols: k, row_stride: a_rs, col_stride: a_cs, .. } = self.lhs;
                let a = values.as_ptr().add(i * a_rs);
                let mut sums = [[_mm512_setzero_ps(); V]; R];
                for p in 0..k {
                    let b = self.rhs.add(p * self.rhs_rs);
                    let mut row = [_mm512_setzero_ps(); V];
                    for (v, lane) in row.iter_mut().enumerate() {
                        *lane = _mm512_maskz_loadu_ps(self.mask::<V>(v), b.add(16 * v));
                    }
                    for (r, sum) in sums.iter_mut().enumerate() {
                        let a = _mm512_set1_ps(*a.add(r * a_rs + p * a_cs));
                        for (s, lane) in sum.iter_mut().zip(&row) {
                            *s = _mm512_fmadd_ps(a, *lane, *s);
                        }
                    }
                }
                for (r, sum) in sums.iter().enumerate() {
                    let d = self.dst.add((i + r) * self.dst_rs);
                    for (v, s) in sum.iter().enumerate() {
                        let mask = self.mask::<V>(v);
                        let out = if self.accumulate { _mm512_add_ps(_mm512_maskz_loadu_ps(mask, d.add(16 * v)), *s) } else { *s };
                        _mm512_mask_storeu_ps(d.add(16 * v), mask, out);
                    }
                }
            }
        }
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

    /// The AVX-512 kernel (where this CPU has it) and gemm give the same products as sums in
    /// f64, on every shape the blocks take: rows left over after blocks of 6, 1 to 64 columns
    /// left over after blocks of 64 (in masked lanes), either layout of `lhs`, accumulating or
    /// not, split over threads or not; nothing outside the destination view changes.
    #[test]
    fn the_f32_products_match_sums_in_f64_on_every_block_shape() {
        let mut rng = crate::model::SeededRng::new(3);
        for (m, k, n) in [
            (1, 1, 16),
            (5, 3, 32),
            (6, 7, 48),
            (13, 64, 64),
            (32, 64, 256),
            (49, 33, 80),
            (100, 9, 112),
            (7, 5, 10),
            (32, 128, 10),
            (3, 4, 1),
            (9, 17, 75),
        ] {
            for lhs_transposed in [false, true] {
                for (accumulate, shared) in [(false, false), (true, true)] {
                    let a: Vec<f32> = (0..m * k).map(|_| rng.normal() as f32).collect();
                    let b: Vec<f32> = (0..k * (n + 3)).map(|_| rng.normal() as f32).collect();
                    let lhs = if lhs_transposed { Matrix::row_major(&a[..], k, m).t() } else { Matrix::row_major(&a[..], m, k) };
                    // `rhs` in every third column block of a wider buffer: its rows are strided.
                    let rhs = Matrix { values: &b[..], rows: k, cols: n, row_stride: n + 3, col_stride: 1 };
                    let start: Vec<f32> = (0..m * (n + 5)).map(|_| rng.normal() as f32).collect();
                    let mut dst = start.clone();
                    matmul_into(&mut dst, n + 5, accumulate, lhs, rhs, shared);
                    for i in 0..m {
                        for j in 0..n + 5 {
                            let got = dst[i * (n + 5) + j];
                            if j >= n {
                                assert_eq!(got, start[i * (n + 5) + j], "outside the product");
                                continue;
                            }
                            let a_at = |p: usize| if lhs_transposed { a[p * m + i] } else { a[i * k + p] } as f64;
                            let exact = (0..k).map(|p| a_at(p) * b[p * (n + 3) + j] as f64).sum::<f64>()
                                + if accumulate { start[i * (n + 5) + j] as f64 } else { 0.0 };
                            let scale = (0..k).map(|p| (a_at(p) * b[p * (n + 3) + j] as f64).abs()).sum::<f64>() + 1.0;
                            assert!((got as f64 - exact).abs() <= 1e-5 * scale, "{m}×{k}×{n} at ({i}, {j}): {got} vs {exact}");
                        }
                    }
                }
            }
        }
    }
}
