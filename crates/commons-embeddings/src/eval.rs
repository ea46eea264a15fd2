//! Queries and evaluations on embeddings: nearest neighbours and analogies by cosine, the Google
//! analogy set (3CosAdd) and word-pair similarity (WordSim353, Spearman).
//!
//! Deterministic: every score is a portable dot product with a fixed summation order (no FMA),
//! questions are independent of each other (threads only split the question list), and ties go
//! to the lower (more frequent) row. The same vectors give bit-identical reports on any machine.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::kernels::dot_portable;
use crate::{EmbeddingError, Embeddings};

/// word2vec's compute-accuracy considers only the 30,000 most frequent words.
pub const DEFAULT_RESTRICT_VOCAB: usize = 30_000;

/// Unit-length copies of the vectors (zero vectors stay zero).
pub struct UnitVectors<'a> {
    pub embeddings: &'a Embeddings,
    rows: Vec<f32>,
}

impl<'a> UnitVectors<'a> {
    pub fn new(embeddings: &'a Embeddings) -> Self {
        let dim = embeddings.dim;
        let mut rows = embeddings.vectors.clone();
        for row in rows.chunks_exact_mut(dim.max(1)) {
            let norm = dot_portable(row, row).sqrt();
            if norm > 0.0 {
                row.iter_mut().for_each(|v| *v /= norm);
            }
        }
        UnitVectors { embeddings, rows }
    }

    pub fn row(&self, index: usize) -> &[f32] {
        let dim = self.embeddings.dim;
        &self.rows[index * dim..(index + 1) * dim]
    }

    fn lookup(&self, word: &str) -> Result<usize, EmbeddingError> {
        self.embeddings.index_of(word).ok_or_else(|| EmbeddingError::Format(format!("word {word:?} is not in the vocabulary")))
    }

    pub fn cosine(&self, a: &str, b: &str) -> Result<f32, EmbeddingError> {
        Ok(dot_portable(self.row(self.lookup(a)?), self.row(self.lookup(b)?)))
    }

    /// The `k` rows most similar to `query` (unit or not) among the first `limit` rows, skipping
    /// `exclude`; best first, ties to the lower row.
    pub fn top_k(&self, query: &[f32], k: usize, limit: usize, exclude: &[usize]) -> Vec<(usize, f32)> {
        let mut best: Vec<(usize, f32)> = Vec::with_capacity(k + 1);
        for r in 0..limit.min(self.embeddings.len()) {
            if exclude.contains(&r) {
                continue;
            }
            let score = dot_portable(query, self.row(r));
            if best.len() < k || score > best[best.len() - 1].1 {
                let at = best.partition_point(|(_, s)| *s >= score);
                best.insert(at, (r, score));
                best.truncate(k);
            }
        }
        best
    }

    /// Nearest neighbours of a word by cosine.
    pub fn nearest(&self, word: &str, k: usize) -> Result<Vec<(String, f32)>, EmbeddingError> {
        let index = self.lookup(word)?;
        let hits = self.top_k(self.row(index), k, usize::MAX, &[index]);
        Ok(hits.into_iter().map(|(r, s)| (self.embeddings.words[r].clone(), s)).collect())
    }

    /// `a : b :: c : ?` by 3CosAdd (maximise cos(x, b − a + c) over unit vectors).
    pub fn analogy(&self, a: &str, b: &str, c: &str, k: usize) -> Result<Vec<(String, f32)>, EmbeddingError> {
        let ids = [self.lookup(a)?, self.lookup(b)?, self.lookup(c)?];
        let query = self.analogy_query(ids);
        let hits = self.top_k(&query, k, usize::MAX, &ids);
        Ok(hits.into_iter().map(|(r, s)| (self.embeddings.words[r].clone(), s)).collect())
    }

    fn analogy_query(&self, [a, b, c]: [usize; 3]) -> Vec<f32> {
        let (ra, rb, rc) = (self.row(a), self.row(b), self.row(c));
        let mut query: Vec<f32> = (0..self.embeddings.dim).map(|i| rb[i] - ra[i] + rc[i]).collect();
        let norm = dot_portable(&query, &query).sqrt();
        if norm > 0.0 {
            query.iter_mut().for_each(|v| *v /= norm);
        }
        query
    }
}

/// One section (`: capital-common-countries` …) of an analogy file.
#[derive(Debug, Clone)]
pub struct AnalogySection {
    pub name: String,
    pub questions: Vec<[String; 4]>,
}

/// Read a questions-words.txt file; words are lowercased (our corpora are).
pub fn read_analogies(path: &Path) -> Result<Vec<AnalogySection>, EmbeddingError> {
    let text = std::fs::read_to_string(path).map_err(|e| EmbeddingError::io(path, e))?;
    let mut sections: Vec<AnalogySection> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if let Some(name) = line.strip_prefix(':') {
            sections.push(AnalogySection { name: name.trim().to_string(), questions: Vec::new() });
            continue;
        }
        let words: Vec<String> = line.split_whitespace().map(str::to_lowercase).collect();
        let Ok(question) = <[String; 4]>::try_from(words) else {
            return Err(EmbeddingError::Malformed {
                path: path.to_path_buf(),
                line: i + 1,
                message: format!("expected 4 words: {line:?}"),
            });
        };
        match sections.last_mut() {
            Some(section) => section.questions.push(question),
            None => {
                return Err(EmbeddingError::Malformed {
                    path: path.to_path_buf(),
                    line: i + 1,
                    message: "question before the first ': section' line".into(),
                });
            }
        }
    }
    Ok(sections)
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct AnalogyScore {
    pub section: String,
    pub correct: usize,
    /// Questions whose four words are all within the restricted vocabulary.
    pub attempted: usize,
    /// Questions skipped for out-of-vocabulary words (as gensim and compute-accuracy do).
    pub skipped: usize,
    /// `correct / attempted` (0 when nothing was attempted).
    pub accuracy: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AnalogyReport {
    pub restrict_vocab: usize,
    pub sections: Vec<AnalogyScore>,
    pub semantic: AnalogyScore,
    pub syntactic: AnalogyScore,
    pub total: AnalogyScore,
}

fn finish(mut score: AnalogyScore) -> AnalogyScore {
    score.accuracy = if score.attempted == 0 { 0.0 } else { score.correct as f64 / score.attempted as f64 };
    score
}

fn add(into: &mut AnalogyScore, s: &AnalogyScore) {
    into.correct += s.correct;
    into.attempted += s.attempted;
    into.skipped += s.skipped;
}

/// Answer every question among the `restrict_vocab` most frequent rows; sections whose name
/// starts with `gram` count as syntactic, the others as semantic (Mikolov et al.'s split).
pub fn evaluate_analogies(embeddings: &Embeddings, sections: &[AnalogySection], restrict_vocab: usize) -> AnalogyReport {
    let unit = UnitVectors::new(embeddings);
    let limit = restrict_vocab.min(embeddings.len());
    let in_range = |w: &str| embeddings.index_of(w).filter(|&i| i < limit);
    let mut jobs: Vec<([usize; 3], usize)> = Vec::new();
    let mut section_of_job = Vec::new();
    let mut scores: Vec<AnalogyScore> = Vec::with_capacity(sections.len());
    for (s, section) in sections.iter().enumerate() {
        let mut score = AnalogyScore { section: section.name.clone(), ..AnalogyScore::default() };
        for q in &section.questions {
            match (in_range(&q[0]), in_range(&q[1]), in_range(&q[2]), in_range(&q[3])) {
                (Some(a), Some(b), Some(c), Some(expected)) => {
                    jobs.push(([a, b, c], expected));
                    section_of_job.push(s);
                    score.attempted += 1;
                }
                _ => score.skipped += 1,
            }
        }
        scores.push(score);
    }
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(jobs.len().max(1));
    let chunk = jobs.len().div_ceil(threads).max(1);
    let answers: Vec<bool> = std::thread::scope(|scope| {
        let handles: Vec<_> = jobs
            .chunks(chunk)
            .map(|part| {
                let unit = &unit;
                scope.spawn(move || answer_all_dispatch(unit, part, limit))
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap_or_default()).collect()
    });
    for (job, correct) in answers.iter().enumerate() {
        if *correct {
            scores[section_of_job[job]].correct += 1;
        }
    }
    let mut semantic = AnalogyScore { section: "semantic".into(), ..AnalogyScore::default() };
    let mut syntactic = AnalogyScore { section: "syntactic".into(), ..AnalogyScore::default() };
    let mut total = AnalogyScore { section: "total".into(), ..AnalogyScore::default() };
    for score in &scores {
        add(if score.section.starts_with("gram") { &mut syntactic } else { &mut semantic }, score);
        add(&mut total, score);
    }
    AnalogyReport {
        restrict_vocab: limit,
        sections: scores.into_iter().map(finish).collect(),
        semantic: finish(semantic),
        syntactic: finish(syntactic),
        total: finish(total),
    }
}

/// Answer questions in blocks: one pass over the vocabulary rows serves a block of queries, so
/// each row is read from memory once per block instead of once per question. Per question the
/// result is exactly `top_k(query, 1, limit, exclude)` (strictly greater wins: ties keep the
/// lower row).
///
/// The AVX2 build runs the same per-lane additions and multiplications (no FMA) in the same
/// order as the portable one, so both give identical bits.
fn answer_all_dispatch(unit: &UnitVectors<'_>, jobs: &[([usize; 3], usize)], limit: usize) -> Vec<bool> {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2.
        return unsafe { answer_all_avx2(unit, jobs, limit) };
    }
    answer_all(unit, jobs, limit)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn answer_all_avx2(unit: &UnitVectors<'_>, jobs: &[([usize; 3], usize)], limit: usize) -> Vec<bool> {
    answer_all(unit, jobs, limit)
}

#[inline(always)]
fn answer_all(unit: &UnitVectors<'_>, jobs: &[([usize; 3], usize)], limit: usize) -> Vec<bool> {
    const BLOCK: usize = 16;
    let mut out = Vec::with_capacity(jobs.len());
    for block in jobs.chunks(BLOCK) {
        let queries: Vec<Vec<f32>> = block.iter().map(|(ids, _)| unit.analogy_query(*ids)).collect();
        let mut best: Vec<(Option<usize>, f32)> = vec![(None, f32::NEG_INFINITY); block.len()];
        for r in 0..limit {
            let row = unit.row(r);
            for (q, (ids, _)) in block.iter().enumerate() {
                // SAFETY: query and row both hold `dim` floats.
                let score = unsafe { crate::kernels::dot::<false, false, false>(queries[q].as_ptr(), row.as_ptr(), row.len()) };
                if score > best[q].1 && !ids.contains(&r) {
                    best[q] = (Some(r), score);
                }
            }
        }
        out.extend(block.iter().zip(&best).map(|((_, expected), (answer, _))| *answer == Some(*expected)));
    }
    out
}

/// Word pairs with a human similarity score (WordSim353's `word1<TAB>word2<TAB>score`, SimLex).
pub fn read_word_pairs(path: &Path) -> Result<Vec<(String, String, f64)>, EmbeddingError> {
    let text = std::fs::read_to_string(path).map_err(|e| EmbeddingError::io(path, e))?;
    let mut pairs = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split(['\t', ' ']).filter(|f| !f.is_empty()).collect();
        let score = fields.get(2).and_then(|s| s.parse::<f64>().ok());
        match (fields.first(), fields.get(1), score) {
            (Some(a), Some(b), Some(score)) => pairs.push((a.to_lowercase(), b.to_lowercase(), score)),
            // SimLex-style header rows have a non-numeric third field.
            _ if i == 0 => {}
            _ => {
                return Err(EmbeddingError::Malformed {
                    path: path.to_path_buf(),
                    line: i + 1,
                    message: format!("expected 'word word score': {line:?}"),
                });
            }
        }
    }
    Ok(pairs)
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SimilarityReport {
    pub pairs: usize,
    /// Pairs with a word missing from the vocabulary: left out of the correlation.
    pub oov_pairs: usize,
    pub oov_ratio: f64,
    pub spearman: f64,
    pub pearson: f64,
}

pub fn evaluate_similarity(embeddings: &Embeddings, pairs: &[(String, String, f64)]) -> SimilarityReport {
    let unit = UnitVectors::new(embeddings);
    let mut human = Vec::new();
    let mut model = Vec::new();
    for (a, b, score) in pairs {
        if let (Some(i), Some(j)) = (embeddings.index_of(a), embeddings.index_of(b)) {
            human.push(*score);
            model.push(f64::from(dot_portable(unit.row(i), unit.row(j))));
        }
    }
    let oov_pairs = pairs.len() - human.len();
    SimilarityReport {
        pairs: pairs.len(),
        oov_pairs,
        oov_ratio: if pairs.is_empty() { 0.0 } else { oov_pairs as f64 / pairs.len() as f64 },
        spearman: pearson(&ranks(&human), &ranks(&model)),
        pearson: pearson(&human, &model),
    }
}

/// Ranks from 1, ties sharing their average rank (as scipy's spearmanr).
pub fn ranks(values: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]).then(a.cmp(&b)));
    let mut out = vec![0.0; values.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && values[order[j + 1]] == values[order[i]] {
            j += 1;
        }
        let average = (i + j) as f64 / 2.0 + 1.0;
        for &k in &order[i..=j] {
            out[k] = average;
        }
        i = j + 1;
    }
    out
}

/// Pearson correlation; 0 when either side has no variance or fewer than two points.
pub fn pearson(x: &[f64], y: &[f64]) -> f64 {
    let n = x.len().min(y.len());
    if n < 2 {
        return 0.0;
    }
    let mx = x[..n].iter().sum::<f64>() / n as f64;
    let my = y[..n].iter().sum::<f64>() / n as f64;
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for i in 0..n {
        let (dx, dy) = (x[i] - mx, y[i] - my);
        sxy += dx * dy;
        sxx += dx * dx;
        syy += dy * dy;
    }
    if sxx == 0.0 || syy == 0.0 { 0.0 } else { sxy / (sxx * syy).sqrt() }
}
