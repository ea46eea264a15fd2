//! The engine's one source of randomness: seeded ChaCha8 streams, never burn's process-global
//! generator, so initial weights, shuffling and dropout depend on the recipe seed alone.

use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};

/// Seeded uniform/normal draws from a ChaCha8 stream (specified bit for bit, so the same
/// seed gives the same initial weights on every machine).
pub struct SeededRng(ChaCha8Rng);

impl SeededRng {
    pub fn new(seed: u64) -> Self {
        Self(ChaCha8Rng::seed_from_u64(seed))
    }
    /// Uniform in [0, 1) with 24 random bits (exact in f32).
    pub fn uniform(&mut self) -> f32 {
        Self::uniform_of(self.0.next_u32())
    }
    /// The uniform draw a word of the stream gives (see [`SeededRng::fill_words`]).
    pub fn uniform_of(word: u32) -> f32 {
        // 24 bits convert exactly through i32 (which vectorises; u32 → f32 does not), and
        // scaling by 2⁻²⁴ is exact: the same value as `(word >> 8) as f32 / 2²⁴`.
        ((word >> 8) as i32) as f32 * (1.0 / (1u32 << 24) as f32)
    }
    /// The next `words.len()` words of the stream, the same ones `words.len()` calls of
    /// [`SeededRng::uniform`] read, at block speed rather than a call each.
    pub fn fill_words(&mut self, words: &mut [u32]) {
        self.0.fill_bytes(bytemuck::cast_slice_mut(words));
        // The stream's words are little-endian bytes.
        for word in words.iter_mut() {
            *word = u32::from_le(*word);
        }
    }
    pub fn uniform_f64(&mut self) -> f64 {
        (self.0.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    pub fn normal(&mut self) -> f64 {
        // Box-Muller; 1 - u keeps the logarithm's argument in (0, 1].
        let u1 = 1.0 - self.uniform_f64();
        let u2 = self.uniform_f64();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }
    /// Where the stream stands, to continue it exactly after a checkpoint.
    pub fn position(&self) -> u128 {
        self.0.get_word_pos()
    }
    pub fn set_position(&mut self, position: u128) {
        self.0.set_word_pos(position);
    }
    /// Uniform integer in `0..bound` (Lemire's multiply-shift; bias below 2^-32 for our sizes).
    pub fn below(&mut self, bound: usize) -> usize {
        ((self.0.next_u64() as u128 * bound as u128) >> 64) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::SeededRng;

    #[test]
    fn words_filled_a_block_at_a_time_are_the_draws_one_call_at_a_time() {
        let (mut one, mut block) = (SeededRng::new(7), SeededRng::new(7));
        // An odd start and a length across several ChaCha blocks.
        let _ = (one.uniform(), block.uniform());
        let singly: Vec<f32> = (0..1000).map(|_| one.uniform()).collect();
        let mut words = vec![0u32; 1000];
        block.fill_words(&mut words);
        let filled: Vec<f32> = words.iter().map(|&w| SeededRng::uniform_of(w)).collect();
        assert_eq!(singly, filled);
        assert_eq!(one.position(), block.position());
        assert_eq!(one.uniform(), block.uniform());
        for word in [0, 255, 256, 0x8000_0000, u32::MAX, 0x1234_5678] {
            assert_eq!(SeededRng::uniform_of(word), (word >> 8) as f32 / 16_777_216.0);
        }
    }
}
