//! GloVe (Pennington et al., 2014) as in the reference glove.c: a co-occurrence matrix counted
//! with 1/d weighting over a symmetric window, then weighted least squares on
//! `w_i·w̃_j + b_i + b̃_j − ln X_ij` with `f(x) = min(1, (x/x_max)^α)`, trained by AdaGrad over
//! the shuffled non-zero entries; the output vectors are `w + w̃` (glove.c's `-model 2`).
//!
//! Threads split the shuffled entries and update without locks, with the same safety argument
//! as [`crate::word2vec`]: rows are addressed only through in-bounds raw pointers into buffers that
//! outlive the scoped threads. With `threads = 1` a run is bit-identical for the same build.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::kernels::{self, load, store};
use crate::vocab::{EncodedCorpus, FxHashMap, Vocab};
use crate::{EmbeddingError, Embeddings, TokenSource};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GloveConfig {
    pub dim: usize,
    pub window: usize,
    pub min_count: u64,
    pub x_max: f32,
    pub alpha: f32,
    pub learning_rate: f32,
    pub epochs: usize,
    pub threads: usize,
    pub seed: u64,
    pub max_vocab: Option<usize>,
}

impl Default for GloveConfig {
    fn default() -> Self {
        GloveConfig {
            dim: 100,
            window: 10,
            min_count: 5,
            x_max: 100.0,
            alpha: 0.75,
            learning_rate: 0.05,
            epochs: 25,
            threads: 2,
            seed: 1,
            max_vocab: None,
        }
    }
}

impl GloveConfig {
    pub fn validate(&self) -> Result<(), EmbeddingError> {
        let bad = |m: &str| Err(EmbeddingError::InvalidConfig(m.to_string()));
        if self.dim == 0 || self.window == 0 || self.epochs == 0 || self.threads == 0 {
            return bad("dim, window, epochs and threads must all be at least 1");
        }
        let positive = |x: f32| x > 0.0 && x.is_finite();
        if !(positive(self.x_max) && positive(self.alpha) && positive(self.learning_rate)) {
            return bad("x_max, alpha and learning_rate must be positive");
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy)]
pub struct GloveProgress {
    pub epoch: usize,
    pub epochs: usize,
    pub loss: f64,
    pub elapsed: Duration,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GloveStats {
    pub corpus_tokens: u64,
    pub vocab_size: usize,
    pub nonzero_entries: usize,
    pub prepare_seconds: f64,
    pub cooccurrence_seconds: f64,
    pub train_seconds: f64,
    /// Mean of `½ f(X)(w·w̃ + b + b̃ − ln X)²` over the entries, per epoch.
    pub loss_per_epoch: Vec<f64>,
    pub threads: usize,
}

/// A non-zero co-occurrence with its precomputed weight and log count.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cooccurrence {
    pub row: u32,
    pub col: u32,
    pub count: f32,
}

/// Count co-occurrences within `window` words on either side, each weighted 1/distance; windows
/// stop at sentence cuts. Sorted by (row, col).
pub fn cooccurrences(corpus: &EncodedCorpus, window: usize) -> Vec<Cooccurrence> {
    let mut counts: FxHashMap<u64, f32> = FxHashMap::default();
    for sentence in corpus.sentences() {
        for (p, &centre) in sentence.iter().enumerate() {
            for d in 1..=window.min(p) {
                let other = sentence[p - d];
                let weight = 1.0 / d as f32;
                *counts.entry((u64::from(centre) << 32) | u64::from(other)).or_insert(0.0) += weight;
                *counts.entry((u64::from(other) << 32) | u64::from(centre)).or_insert(0.0) += weight;
            }
        }
    }
    let mut entries: Vec<Cooccurrence> =
        counts.into_iter().map(|(key, count)| Cooccurrence { row: (key >> 32) as u32, col: key as u32, count }).collect();
    entries.sort_unstable_by_key(|e| (e.row, e.col));
    entries
}

pub fn train(
    source: &dyn TokenSource,
    config: &GloveConfig,
    progress: &mut dyn FnMut(&GloveProgress),
) -> Result<(Embeddings, GloveStats), EmbeddingError> {
    config.validate()?;
    let started = Instant::now();
    let vocab = Vocab::build(source, config.min_count, config.max_vocab)?;
    let corpus = vocab.encode(source)?;
    let prepare_seconds = started.elapsed().as_secs_f64();
    let (embeddings, mut stats) = train_encoded(&vocab, &corpus, config, progress)?;
    stats.prepare_seconds = prepare_seconds;
    Ok((embeddings, stats))
}

#[derive(Clone, Copy)]
struct Entry {
    row: u32,
    col: u32,
    log_count: f32,
    weight: f32,
}

#[derive(Clone, Copy)]
struct Shared(*mut f32);
// SAFETY: see the module docs (Hogwild over buffers that outlive the scoped threads).
unsafe impl Send for Shared {}
unsafe impl Sync for Shared {}

pub fn train_encoded(
    vocab: &Vocab,
    corpus: &EncodedCorpus,
    config: &GloveConfig,
    progress: &mut dyn FnMut(&GloveProgress),
) -> Result<(Embeddings, GloveStats), EmbeddingError> {
    config.validate()?;
    let started = Instant::now();
    let counted = cooccurrences(corpus, config.window);
    if counted.is_empty() {
        return Err(EmbeddingError::EmptyCorpus);
    }
    let mut entries: Vec<Entry> = counted
        .iter()
        .map(|c| Entry {
            row: c.row,
            col: c.col,
            log_count: c.count.ln(),
            weight: if c.count < config.x_max { (c.count / config.x_max).powf(config.alpha) } else { 1.0 },
        })
        .collect();
    drop(counted);
    // glove.c trains on a shuffled file; a seeded Fisher–Yates keeps runs reproducible.
    let mut state = config.seed ^ 0x2545_F491_4F6C_DD1D;
    for i in (1..entries.len()).rev() {
        state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        let j = ((state >> 32) * (i as u64 + 1)) >> 32;
        entries.swap(i, j as usize);
    }
    let cooccurrence_seconds = started.elapsed().as_secs_f64();

    let vocab_size = vocab.len();
    let dim = config.dim;
    let stride = dim + 1;
    let mut rng = config.seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut weights: Vec<f32> = (0..2 * vocab_size * stride)
        .map(|_| {
            rng = rng.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            (((rng >> 40) as f32 / (1u64 << 24) as f32) - 0.5) / dim as f32
        })
        .collect();
    let mut gradsq = vec![1.0f32; 2 * vocab_size * stride];
    let threads = config.threads.min(entries.len()).max(1);
    let chunk = entries.len().div_ceil(threads);
    let use_avx2 = kernels::has_avx2_fma();
    let shared_weights = Shared(weights.as_mut_ptr());
    let shared_gradsq = Shared(gradsq.as_mut_ptr());
    let train_started = Instant::now();
    let mut loss_per_epoch = Vec::with_capacity(config.epochs);
    tracing::info!(vocab = vocab_size, entries = entries.len(), threads, "training GloVe");
    for epoch in 0..config.epochs {
        let total: Option<f64> = std::thread::scope(|scope| {
            let handles: Vec<_> = entries
                .chunks(chunk)
                .map(|part| {
                    let job =
                        Job { entries: part, weights: shared_weights, gradsq: shared_gradsq, dim, vocab_size, eta: config.learning_rate };
                    scope.spawn(move || run_job(&job, use_avx2))
                })
                .collect();
            handles.into_iter().map(|h| h.join().ok()).sum::<Option<f64>>()
        });
        let total = total.ok_or_else(|| EmbeddingError::Format("a GloVe training thread panicked".into()))?;
        let loss = total / entries.len() as f64;
        loss_per_epoch.push(loss);
        progress(&GloveProgress { epoch: epoch + 1, epochs: config.epochs, loss, elapsed: train_started.elapsed() });
        tracing::debug!(epoch = epoch + 1, loss, "GloVe epoch");
    }
    let train_seconds = train_started.elapsed().as_secs_f64();
    let mut vectors = vec![0f32; vocab_size * dim];
    for w in 0..vocab_size {
        let main = &weights[w * stride..w * stride + dim];
        let context = &weights[(w + vocab_size) * stride..(w + vocab_size) * stride + dim];
        for k in 0..dim {
            vectors[w * dim + k] = main[k] + context[k];
        }
    }
    let stats = GloveStats {
        corpus_tokens: vocab.corpus_tokens,
        vocab_size,
        nonzero_entries: entries.len(),
        prepare_seconds: 0.0,
        cooccurrence_seconds,
        train_seconds,
        loss_per_epoch,
        threads,
    };
    Ok((Embeddings::new(vocab.words.clone(), dim, vectors)?, stats))
}

struct Job<'a> {
    entries: &'a [Entry],
    weights: Shared,
    gradsq: Shared,
    dim: usize,
    vocab_size: usize,
    eta: f32,
}

fn run_job(job: &Job<'_>, use_avx2: bool) -> f64 {
    #[cfg(target_arch = "x86_64")]
    if use_avx2 {
        // SAFETY: AVX2 and FMA are present (checked by `has_avx2_fma`).
        return unsafe { run_job_avx2(job) };
    }
    let _ = use_avx2;
    run_job_generic::<false>(job)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn run_job_avx2(job: &Job<'_>) -> f64 {
    run_job_generic::<true>(job)
}

/// glove.c's per-entry AdaGrad step; returns the summed loss.
#[inline(always)]
fn run_job_generic<const FMA: bool>(job: &Job<'_>) -> f64 {
    let dim = job.dim;
    let stride = dim + 1;
    let mut update_main = vec![0f32; dim];
    let mut update_context = vec![0f32; dim];
    let mut cost = 0f64;
    // Entries are shuffled, so their rows are scattered over tables far larger than the caches:
    // start loading the rows of the entry after next while this one is computed.
    const LOOKAHEAD: usize = 2;
    for (i, entry) in job.entries.iter().enumerate() {
        if let Some(ahead) = job.entries.get(i + LOOKAHEAD) {
            let a = ahead.row as usize * stride;
            let b = (ahead.col as usize + job.vocab_size) * stride;
            for offset in [a, b] {
                kernels::prefetch_row(job.weights.0.wrapping_add(offset), stride);
                kernels::prefetch_row(job.gradsq.0.wrapping_add(offset), stride);
            }
        }
        let l1 = entry.row as usize * stride;
        let l2 = (entry.col as usize + job.vocab_size) * stride;
        // SAFETY: rows < 2·vocab_size, each of `stride` floats, inside both buffers; the local
        // update buffers are thread-owned.
        unsafe {
            let w1 = job.weights.0.add(l1);
            let w2 = job.weights.0.add(l2);
            let g1 = job.gradsq.0.add(l1);
            let g2 = job.gradsq.0.add(l2);
            let diff = kernels::dot::<FMA, true, true>(w1, w2, dim) + load(w1.add(dim)) + load(w2.add(dim)) - entry.log_count;
            let fdiff = entry.weight * diff;
            if !diff.is_finite() || !fdiff.is_finite() {
                continue;
            }
            cost += f64::from(0.5 * fdiff * diff);
            let fdiff = fdiff * job.eta;
            for b in 0..dim {
                let temp1 = fdiff * load(w2.add(b));
                let temp2 = fdiff * load(w1.add(b));
                let (old1, old2) = (load(g1.add(b)), load(g2.add(b)));
                update_main[b] = temp1 / old1.sqrt();
                update_context[b] = temp2 / old2.sqrt();
                store(g1.add(b), old1 + temp1 * temp1);
                store(g2.add(b), old2 + temp2 * temp2);
            }
            if update_main.iter().chain(&update_context).all(|u| u.is_finite()) {
                kernels::axpy::<FMA, false, true>(-1.0, update_main.as_ptr(), w1, dim);
                kernels::axpy::<FMA, false, true>(-1.0, update_context.as_ptr(), w2, dim);
            }
            store(w1.add(dim), load(w1.add(dim)) - fdiff / load(g1.add(dim)).sqrt());
            store(w2.add(dim), load(w2.add(dim)) - fdiff / load(g2.add(dim)).sqrt());
            let squared = fdiff * fdiff;
            store(g1.add(dim), load(g1.add(dim)) + squared);
            store(g2.add(dim), load(g2.add(dim)) + squared);
        }
    }
    cost
}
