//! Word embeddings for Commons, written by hand for speed: word2vec (skip-gram and CBOW with
//! negative sampling, Hogwild multi-threading as in word2vec.c) and GloVe (co-occurrence counts
//! and AdaGrad), the word2vec text/binary and GloVe text formats, and the standard evaluations
//! (Google analogies with 3CosAdd, WordSim353 Spearman correlation).
//!
//! Data flow: a token stream (commons-data corpus) → [`vocab::Vocab`] (streamed counting) →
//! corpus encoded as word ids in sentences of at most 1000 tokens → trainer → [`Embeddings`]
//! → formats / evaluation / model directory.

// The one crate with unsafe code: SIMD kernels over raw pointers and lock-free (Hogwild) updates
// of the shared matrices; `kernels.rs` and `word2vec.rs` state the safety arguments.
#![allow(unsafe_code)]

pub mod eval;
pub mod formats;
pub mod glove;
mod kernels;
pub mod model_dir;
pub mod vocab;
pub mod word2vec;

use std::collections::HashMap;
use std::path::PathBuf;

use commons_data::DataError;

#[derive(Debug, thiserror::Error)]
pub enum EmbeddingError {
    #[error(transparent)]
    Data(#[from] DataError),
    #[error("the corpus is empty: no tokens were read")]
    EmptyCorpus,
    #[error("min-count {min_count} leaves no words: the most frequent word occurs {max_count} times in {tokens} tokens")]
    EmptyVocabulary { min_count: u64, max_count: u64, tokens: u64 },
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    #[error("{path}: line {line}: {message}")]
    Malformed { path: PathBuf, line: usize, message: String },
    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Format(String),
}

impl EmbeddingError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        EmbeddingError::Io { path: path.into(), source }
    }
}

/// Something that yields word tokens in order, streaming (a corpus on disk).
pub trait TokenSource {
    fn for_each_token(&self, on_token: &mut dyn FnMut(&str)) -> Result<u64, DataError>;
}

impl TokenSource for commons_data::corpus::Corpus {
    fn for_each_token(&self, on_token: &mut dyn FnMut(&str)) -> Result<u64, DataError> {
        commons_data::corpus::Corpus::for_each_token(self, on_token)
    }
}

impl TokenSource for commons_data::corpus::PooledCorpus {
    fn for_each_token(&self, on_token: &mut dyn FnMut(&str)) -> Result<u64, DataError> {
        commons_data::corpus::PooledCorpus::for_each_token(self, on_token)
    }
}

/// Word vectors: row `i` of `vectors` (length `dim`) belongs to `words[i]`. Rows are ordered by
/// descending corpus frequency when the embeddings come from training (the analogy evaluation's
/// "top N words" relies on it).
#[derive(Debug, Clone, PartialEq)]
pub struct Embeddings {
    pub words: Vec<String>,
    pub dim: usize,
    pub vectors: Vec<f32>,
    index: HashMap<String, usize>,
}

impl Embeddings {
    pub fn new(words: Vec<String>, dim: usize, vectors: Vec<f32>) -> Result<Self, EmbeddingError> {
        if vectors.len() != words.len() * dim {
            return Err(EmbeddingError::Format(format!("{} values for {} words of dimension {dim}", vectors.len(), words.len())));
        }
        let mut index = HashMap::with_capacity(words.len());
        for (i, word) in words.iter().enumerate() {
            // The first occurrence wins, as in word2vec's and gensim's loaders.
            index.entry(word.clone()).or_insert(i);
        }
        Ok(Embeddings { words, dim, vectors, index })
    }

    pub fn len(&self) -> usize {
        self.words.len()
    }

    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    pub fn index_of(&self, word: &str) -> Option<usize> {
        self.index.get(word).copied()
    }

    pub fn vector(&self, index: usize) -> &[f32] {
        &self.vectors[index * self.dim..(index + 1) * self.dim]
    }

    pub fn get(&self, word: &str) -> Option<&[f32]> {
        self.index_of(word).map(|i| self.vector(i))
    }
}
