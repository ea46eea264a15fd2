//! Vocabulary: counted in one streaming pass, then the corpus is encoded as word ids.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use crate::{EmbeddingError, TokenSource};

/// word2vec.c's MAX_SENTENCE_LENGTH: the token stream is cut into sentences of this many raw
/// tokens (before dropping rare words), so context windows never span a cut.
pub const MAX_SENTENCE_TOKENS: usize = 1000;

/// FxHash (rustc's hasher): a multiply-rotate hash, several times faster than SipHash for the
/// short keys counted here. Not DoS-resistant, which doesn't matter for local corpora.
#[derive(Default, Clone, Copy)]
pub(crate) struct FxHasher {
    hash: u64,
}

const FX_SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FxHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(FX_SEED);
    }
}

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        for &b in chunks.remainder() {
            self.add(u64::from(b));
        }
    }
    #[inline]
    fn write_u64(&mut self, value: u64) {
        self.add(value);
    }
    /// The multiply leaves the product's low bits depending only on the key's low bits, and
    /// hash tables index buckets by the low bits: without this rotation, pair keys
    /// `(row << 32) | col` with the same `col` all collide (rustc-hash 2 rotates the same way).
    #[inline]
    fn finish(&self) -> u64 {
        self.hash.rotate_left(26)
    }
}

pub(crate) type FxBuild = BuildHasherDefault<FxHasher>;
pub(crate) type FxHashMap<K, V> = HashMap<K, V, FxBuild>;

/// Words kept for training, most frequent first (ties broken by the word's bytes, so the order
/// is the same on every run).
#[derive(Debug, Clone)]
pub struct Vocab {
    pub words: Vec<String>,
    pub counts: Vec<u64>,
    /// Tokens read, including the ones min-count dropped.
    pub corpus_tokens: u64,
    index: FxHashMap<String, u32>,
}

/// The corpus as word ids: sentence `k` is `ids[sentence_ends[k-1]..sentence_ends[k]]`.
/// Four bytes per kept token: a 6M-word corpus takes 24 MB, far less than its text.
#[derive(Debug, Clone, Default)]
pub struct EncodedCorpus {
    pub ids: Vec<u32>,
    pub sentence_ends: Vec<usize>,
}

impl EncodedCorpus {
    pub fn sentences(&self) -> impl Iterator<Item = &[u32]> {
        let mut start = 0;
        self.sentence_ends.iter().map(move |&end| {
            let sentence = &self.ids[start..end];
            start = end;
            sentence
        })
    }

    pub fn sentence(&self, k: usize) -> &[u32] {
        let start = if k == 0 { 0 } else { self.sentence_ends[k - 1] };
        &self.ids[start..self.sentence_ends[k]]
    }
}

impl Vocab {
    /// Count every token, keep those occurring at least `min_count` times, and if `max_size` is
    /// set only the most frequent `max_size` of them.
    pub fn build(source: &dyn TokenSource, min_count: u64, max_size: Option<usize>) -> Result<Vocab, EmbeddingError> {
        let mut counts: FxHashMap<String, u64> = FxHashMap::default();
        let tokens = source.for_each_token(&mut |token| {
            if let Some(count) = counts.get_mut(token) {
                *count += 1;
            } else {
                counts.insert(token.to_string(), 1);
            }
        })?;
        if tokens == 0 {
            return Err(EmbeddingError::EmptyCorpus);
        }
        let max_count = counts.values().copied().max().unwrap_or(0);
        let mut kept: Vec<(String, u64)> = counts.into_iter().filter(|(_, c)| *c >= min_count.max(1)).collect();
        if kept.is_empty() {
            return Err(EmbeddingError::EmptyVocabulary { min_count, max_count, tokens });
        }
        kept.sort_unstable_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        if let Some(max) = max_size {
            kept.truncate(max.max(1));
        }
        tracing::info!(tokens, vocab = kept.len(), min_count, "vocabulary built");
        Ok(Vocab::from_counts(kept, tokens))
    }

    /// A vocabulary from `(word, count)` pairs already in the desired order.
    pub fn from_counts(kept: Vec<(String, u64)>, corpus_tokens: u64) -> Vocab {
        let mut index = FxHashMap::default();
        index.reserve(kept.len());
        let mut words = Vec::with_capacity(kept.len());
        let mut counts = Vec::with_capacity(kept.len());
        for (i, (word, count)) in kept.into_iter().enumerate() {
            index.insert(word.clone(), i as u32);
            words.push(word);
            counts.push(count);
        }
        Vocab { words, counts, corpus_tokens, index }
    }

    pub fn len(&self) -> usize {
        self.words.len()
    }

    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    pub fn id(&self, word: &str) -> Option<u32> {
        self.index.get(word).copied()
    }

    /// Sum of the kept words' counts: the words one epoch trains on before subsampling.
    pub fn train_words(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Second streaming pass: the corpus as ids, cut every [`MAX_SENTENCE_TOKENS`] raw tokens;
    /// words outside the vocabulary are dropped (they don't count toward context distance, as in
    /// word2vec.c and gensim).
    pub fn encode(&self, source: &dyn TokenSource) -> Result<EncodedCorpus, EmbeddingError> {
        let mut encoded = EncodedCorpus::default();
        let mut raw_in_sentence = 0usize;
        source.for_each_token(&mut |token| {
            if let Some(id) = self.id(token) {
                encoded.ids.push(id);
            }
            raw_in_sentence += 1;
            if raw_in_sentence == MAX_SENTENCE_TOKENS {
                raw_in_sentence = 0;
                if encoded.sentence_ends.last().copied().unwrap_or(0) < encoded.ids.len() {
                    encoded.sentence_ends.push(encoded.ids.len());
                }
            }
        })?;
        if encoded.sentence_ends.last().copied().unwrap_or(0) < encoded.ids.len() {
            encoded.sentence_ends.push(encoded.ids.len());
        }
        Ok(encoded)
    }
}
