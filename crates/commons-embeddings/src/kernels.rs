//! The numeric inner loops: dot products and `y += a·x` over rows of shared matrices, and the
//! sigmoid tables of word2vec.c.
//!
//! Kernels take raw pointers because Hogwild training (see `word2vec`) reads and writes rows
//! that other threads may touch at the same time; no `&mut` slice is ever formed over shared
//! rows. With `*_SHARED = true` every load and store of a row is a relaxed atomic operation on the
//! float's bits ([`load`], [`store`]): concurrent updates may overwrite each other (Hogwild's
//! trade-off) but there is no data race, so no undefined behaviour. On x86 a relaxed atomic load
//! or store is a plain move; what it costs is that LLVM does not merge eight of them into one
//! vector move (BENCHMARKS.md has the words/s before and after). `*_SHARED = false` is for
//! thread-owned buffers and read-only matrices (evaluation). Each kernel processes 8 lanes at a
//! time with 8 independent accumulators, a shape LLVM turns into SIMD arithmetic; `FMA = true`
//! fuses the multiply-add and is only used inside functions compiled with `target_feature(fma)`.
//!
//! The summation order is fixed (8 lane sums, then lanes 0..8 in order, then the tail), so a
//! portable (`FMA = false`) dot product gives the same bits on every machine.

use std::sync::atomic::{AtomicU32, Ordering};

/// One float of a shared row, loaded atomically (relaxed).
///
/// # Safety
/// `p` must be valid for reads of one `f32` and 4-byte aligned (as every `f32` is), and every
/// concurrent access to it must be atomic too.
#[inline(always)]
pub(crate) unsafe fn load(p: *const f32) -> f32 {
    // SAFETY: `AtomicU32` has the size and alignment of `f32`; the caller guarantees validity.
    f32::from_bits(unsafe { AtomicU32::from_ptr(p as *mut u32) }.load(Ordering::Relaxed))
}

/// One float of a shared row, stored atomically (relaxed).
///
/// # Safety
/// As [`load`], for writes.
#[inline(always)]
pub(crate) unsafe fn store(p: *mut f32, value: f32) {
    // SAFETY: as in `load`.
    unsafe { AtomicU32::from_ptr(p as *mut u32) }.store(value.to_bits(), Ordering::Relaxed)
}

/// Eight floats from `p`: atomically when `SHARED`.
#[inline(always)]
unsafe fn load8<const SHARED: bool>(p: *const f32) -> [f32; 8] {
    if SHARED {
        // SAFETY: the caller guarantees p..p+8 is valid.
        std::array::from_fn(|l| unsafe { load(p.add(l)) })
    } else {
        // SAFETY: as above; nothing else writes a thread-owned or read-only buffer.
        unsafe { std::ptr::read_unaligned(p as *const [f32; 8]) }
    }
}

/// Eight floats to `p`: atomically when `SHARED`.
#[inline(always)]
unsafe fn store8<const SHARED: bool>(p: *mut f32, values: [f32; 8]) {
    if SHARED {
        for (l, value) in values.into_iter().enumerate() {
            // SAFETY: the caller guarantees p..p+8 is valid.
            unsafe { store(p.add(l), value) };
        }
    } else {
        // SAFETY: as above.
        unsafe { std::ptr::write_unaligned(p as *mut [f32; 8], values) };
    }
}

/// One float from `p`: atomically when `SHARED`.
#[inline(always)]
unsafe fn load1<const SHARED: bool>(p: *const f32) -> f32 {
    // SAFETY: the caller guarantees p is valid.
    if SHARED { unsafe { load(p) } } else { unsafe { *p } }
}

/// # Safety
/// `a` and `b` must be valid for reads of `n` floats; with `SHARED = false`, nothing may write
/// them meanwhile.
#[inline(always)]
pub(crate) unsafe fn dot<const FMA: bool, const A_SHARED: bool, const B_SHARED: bool>(a: *const f32, b: *const f32, n: usize) -> f32 {
    let mut acc = [0f32; 8];
    let chunks = n / 8;
    for c in 0..chunks {
        // SAFETY: c*8+8 <= n, within both rows.
        let (x, y) = unsafe { (load8::<A_SHARED>(a.add(c * 8)), load8::<B_SHARED>(b.add(c * 8))) };
        for l in 0..8 {
            acc[l] = if FMA { x[l].mul_add(y[l], acc[l]) } else { acc[l] + x[l] * y[l] };
        }
    }
    let mut sum = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
    for i in chunks * 8..n {
        // SAFETY: i < n.
        sum += unsafe { load1::<A_SHARED>(a.add(i)) * load1::<B_SHARED>(b.add(i)) };
    }
    sum
}

/// `y[i] += alpha * x[i]` for `i < n`.
///
/// # Safety
/// `x` valid for reads and `y` for writes of `n` floats. `x` and `y` may be the same row. With
/// `SHARED = false`, no other thread may access them meanwhile.
#[inline(always)]
pub(crate) unsafe fn axpy<const FMA: bool, const X_SHARED: bool, const Y_SHARED: bool>(alpha: f32, x: *const f32, y: *mut f32, n: usize) {
    let chunks = n / 8;
    for c in 0..chunks {
        // SAFETY: c*8+8 <= n, within both rows.
        unsafe {
            let xv = load8::<X_SHARED>(x.add(c * 8));
            let mut yv = load8::<Y_SHARED>(y.add(c * 8));
            for l in 0..8 {
                yv[l] = if FMA { alpha.mul_add(xv[l], yv[l]) } else { yv[l] + alpha * xv[l] };
            }
            store8::<Y_SHARED>(y.add(c * 8), yv);
        }
    }
    for i in chunks * 8..n {
        // SAFETY: i < n.
        unsafe {
            let value = load1::<Y_SHARED>(y.add(i)) + alpha * load1::<X_SHARED>(x.add(i));
            if Y_SHARED { store(y.add(i), value) } else { *y.add(i) = value }
        }
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
    unsafe { dot::<false, false, false>(a.as_ptr(), b.as_ptr(), n) }
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
