//! The numeric inner loops: dot products and `y += a·x` over rows of shared matrices, and the
//! sigmoid tables of word2vec.c.
//!
//! Kernels take raw pointers because Hogwild training (see `word2vec`) reads and writes rows
//! that other threads may touch at the same time; no `&mut` slice is ever formed over shared
//! rows, so the compiler is never told that a row is unaliased. Each kernel processes 8 lanes at
//! a time with 8 independent accumulators, a shape LLVM turns into SIMD code; `FMA = true` fuses
//! the multiply-add and is only used inside functions compiled with `target_feature(fma)`.
//!
//! The summation order is fixed (8 lane sums, then lanes 0..8 in order, then the tail), so a
//! portable (`FMA = false`) dot product gives the same bits on every machine.

/// # Safety
/// `a` and `b` must be valid for reads of `n` floats.
#[inline(always)]
pub(crate) unsafe fn dot<const FMA: bool>(a: *const f32, b: *const f32, n: usize) -> f32 {
    let mut acc = [0f32; 8];
    let chunks = n / 8;
    for c in 0..chunks {
        // SAFETY: c*8+8 <= n, within both rows.
        let (x, y) = unsafe {
            (std::ptr::read_unaligned(a.add(c * 8) as *const [f32; 8]), std::ptr::read_unaligned(b.add(c * 8) as *const [f32; 8]))
        };
        for l in 0..8 {
            acc[l] = if FMA { x[l].mul_add(y[l], acc[l]) } else { acc[l] + x[l] * y[l] };
        }
    }
    let mut sum = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
    for i in chunks * 8..n {
        // SAFETY: i < n.
        sum += unsafe { *a.add(i) * *b.add(i) };
    }
    sum
}

/// `y[i] += alpha * x[i]` for `i < n`.
///
/// # Safety
/// `x` valid for reads and `y` for writes of `n` floats. `x` and `y` may be the same row.
#[inline(always)]
pub(crate) unsafe fn axpy<const FMA: bool>(alpha: f32, x: *const f32, y: *mut f32, n: usize) {
    let chunks = n / 8;
    for c in 0..chunks {
        // SAFETY: c*8+8 <= n, within both rows.
        unsafe {
            let xv = std::ptr::read_unaligned(x.add(c * 8) as *const [f32; 8]);
            let mut yv = std::ptr::read_unaligned(y.add(c * 8) as *const [f32; 8]);
            for l in 0..8 {
                yv[l] = if FMA { alpha.mul_add(xv[l], yv[l]) } else { yv[l] + alpha * xv[l] };
            }
            std::ptr::write_unaligned(y.add(c * 8) as *mut [f32; 8], yv);
        }
    }
    for i in chunks * 8..n {
        // SAFETY: i < n.
        unsafe { *y.add(i) += alpha * *x.add(i) };
    }
}

/// Hint the CPU to start loading a row; a no-op off x86_64.
#[inline(always)]
pub(crate) fn prefetch_row(row: *const f32, dim: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        let bytes = dim * std::mem::size_of::<f32>();
        let mut offset = 0;
        while offset < bytes {
            // SAFETY: prefetching is a hint; it never faults, even for an invalid address.
            unsafe { _mm_prefetch::<_MM_HINT_T0>((row as *const i8).wrapping_add(offset)) };
            offset += 64;
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (row, dim);
}

/// Portable dot product of two slices (the deterministic evaluation path).
#[inline]
pub(crate) fn dot_portable(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    // SAFETY: both slices hold at least n floats.
    unsafe { dot::<false>(a.as_ptr(), b.as_ptr(), n) }
}

/// Whether the AVX2+FMA build of the training loops can run here.
pub(crate) fn has_avx2_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// word2vec.c's sigmoid table: `EXP_TABLE_SIZE` bins over `[-MAX_EXP, MAX_EXP]`.
pub(crate) const EXP_TABLE_SIZE: usize = 1000;
pub(crate) const MAX_EXP: f32 = 6.0;

pub(crate) struct SigmoidTable {
    sigmoid: Vec<f32>,
    log_sigmoid: Vec<f32>,
}

impl SigmoidTable {
    pub(crate) fn new() -> Self {
        let mut sigmoid = Vec::with_capacity(EXP_TABLE_SIZE + 1);
        let mut log_sigmoid = Vec::with_capacity(EXP_TABLE_SIZE + 1);
        for i in 0..=EXP_TABLE_SIZE {
            let x = (i as f64 / EXP_TABLE_SIZE as f64 * 2.0 - 1.0) * f64::from(MAX_EXP);
            let s = 1.0 / (1.0 + (-x).exp());
            sigmoid.push(s as f32);
            log_sigmoid.push(s.ln() as f32);
        }
        SigmoidTable { sigmoid, log_sigmoid }
    }

    #[inline(always)]
    fn bin(f: f32) -> usize {
        ((f + MAX_EXP) * (EXP_TABLE_SIZE as f32 / MAX_EXP / 2.0)) as usize
    }

    /// Gradient factor `(label - σ(f))` with word2vec.c's saturation outside ±MAX_EXP, and the
    /// pair's loss `-ln σ(±f)`.
    #[inline(always)]
    pub(crate) fn gradient_and_loss(&self, f: f32, label: f32) -> (f32, f32) {
        let signed = if label > 0.5 { f } else { -f };
        let loss = if signed >= MAX_EXP {
            0.0
        } else if signed <= -MAX_EXP {
            -signed
        } else {
            -self.log_sigmoid[Self::bin(signed)]
        };
        let g = if f > MAX_EXP {
            label - 1.0
        } else if f < -MAX_EXP {
            label
        } else {
            label - self.sigmoid[Self::bin(f)]
        };
        (g, loss)
    }
}
