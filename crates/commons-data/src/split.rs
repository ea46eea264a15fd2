//! Fixed, seeded splits that come out identical on every machine.
//!
//! Algorithm (a contract: changing it changes every published split):
//! 1. `ChaCha8Rng::seed_from_u64(seed)` (rand_chacha; the stream is specified bit for bit).
//! 2. Fisher–Yates from the back: for `i` in `(1..n).rev()`, draw `j` uniform in `0..=i` and swap.
//!    `j` comes from `next_u64` with Lemire's multiply-and-reject method implemented here (not
//!    `rand`'s `gen_range`, whose algorithm may change between versions).
//! 3. Part `k` gets `floor(n * fractions[k])` indices in shuffled order; the last part takes the
//!    remainder so every index lands in exactly one part. Indices inside a part are sorted so that
//!    a part reads its data in file order.

use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

use crate::DataError;

/// Split `0..n` into parts of the given fractions.
///
/// Fractions are taken relative to their sum (`[4.0, 1.0]` is the same as `[0.8, 0.2]`);
/// negative or non-finite ones count as 0, and with no positive fraction everything lands in the
/// last part. Use [`try_split_indices`] to reject such input instead.
pub fn split_indices(n: usize, fractions: &[f64], seed: u64) -> Vec<Vec<usize>> {
    let cleaned: Vec<f64> = fractions.iter().map(|f| if f.is_finite() && *f > 0.0 { *f } else { 0.0 }).collect();
    let sum: f64 = cleaned.iter().sum();
    if cleaned.is_empty() {
        return vec![(0..n).collect()];
    }
    if sum <= 0.0 {
        let mut parts = vec![Vec::new(); cleaned.len()];
        if let Some(last) = parts.last_mut() {
            *last = (0..n).collect();
        }
        return parts;
    }
    let normalised: Vec<f64> = cleaned.iter().map(|f| f / sum).collect();
    partition(n, &normalised, seed)
}

/// Like [`split_indices`], rejecting fractions that are empty, negative, or don't sum to 1.
pub fn try_split_indices(n: usize, fractions: &[f64], seed: u64) -> Result<Vec<Vec<usize>>, DataError> {
    if fractions.is_empty() {
        return Err(DataError::InvalidSplit("no fractions given".into()));
    }
    if let Some(bad) = fractions.iter().find(|f| !f.is_finite() || **f < 0.0) {
        return Err(DataError::InvalidSplit(format!("fraction {bad} is not a non-negative number")));
    }
    let sum: f64 = fractions.iter().sum();
    if (sum - 1.0).abs() > 1e-6 {
        return Err(DataError::InvalidSplit(format!("fractions {fractions:?} sum to {sum}, expected 1")));
    }
    Ok(partition(n, fractions, seed))
}

fn partition(n: usize, fractions: &[f64], seed: u64) -> Vec<Vec<usize>> {
    let order = shuffled(n, seed);
    let mut parts = Vec::with_capacity(fractions.len());
    let mut start = 0;
    for (k, fraction) in fractions.iter().enumerate() {
        let end = if k + 1 == fractions.len() { n } else { (start + (n as f64 * fraction).floor() as usize).min(n) };
        let mut part = order[start..end].to_vec();
        part.sort_unstable();
        parts.push(part);
        start = end;
    }
    parts
}

/// The permutation of `0..n` for `seed` (step 2 of the module docs).
pub fn shuffled(n: usize, seed: u64) -> Vec<usize> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = uniform_below(&mut rng, i as u64 + 1) as usize;
        order.swap(i, j);
    }
    order
}

/// Uniform integer in `0..bound` (bound > 0), Lemire's nearly-divisionless method.
fn uniform_below(rng: &mut ChaCha8Rng, bound: u64) -> u64 {
    let threshold = bound.wrapping_neg() % bound;
    loop {
        let product = u128::from(rng.next_u64()) * u128::from(bound);
        if (product as u64) >= threshold {
            return (product >> 64) as u64;
        }
    }
}
