//! word2vec trained on a real corpus (the Brown corpus, ~1M words) must beat random vectors by a
//! wide margin on WordSim353, the Google analogies and plain nearest-neighbour checks.

use commons_data::corpus::Corpus;
use commons_embeddings::eval::{self, UnitVectors};
use commons_embeddings::word2vec::{self, Word2VecConfig};
use commons_embeddings::{Embeddings, vocab::Vocab};

fn random_like(trained: &Embeddings, seed: u64) -> Embeddings {
    let mut state = seed;
    let vectors = (0..trained.vectors.len())
        .map(|_| {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((state >> 40) as f32 / (1u64 << 24) as f32) - 0.5
        })
        .collect();
    Embeddings::new(trained.words.clone(), trained.dim, vectors).unwrap()
}

fn train_brown(config: &Word2VecConfig) -> (Embeddings, word2vec::TrainStats) {
    let dir = commons_data::fetch("brown").expect("fetch brown");
    let corpus = Corpus::for_dataset("brown", &dir).unwrap();
    let mut reports = 0;
    let result = word2vec::train(&corpus, config, &mut |_| reports += 1).expect("train");
    assert!(reports > 0, "progress callback never called");
    result
}

/// For WordSim353 pairs humans rate as closely related (≥ 7 of 10): the mean fraction of the
/// 5,000 most frequent words that is closer to the first word than its partner is. Random
/// vectors give about 0.5; useful embeddings put the partner among the nearest few percent.
/// (Rare words are left out as candidates: after a few epochs on a small corpus they sit in one
/// barely-trained cluster that says nothing about the frequent ones.)
fn related_pair_rank(embeddings: &Embeddings, pairs: &[(String, String, f64)]) -> f64 {
    let unit = UnitVectors::new(embeddings);
    let related: Vec<(usize, usize)> = pairs
        .iter()
        .filter(|(_, _, s)| *s >= 7.0)
        .filter_map(|(a, b, _)| Some((embeddings.index_of(a)?, embeddings.index_of(b)?)))
        .collect();
    assert!(related.len() >= 60, "{} related pairs in vocabulary", related.len());
    let dot = |x: usize, y: usize| unit.row(x).iter().zip(unit.row(y)).map(|(p, q)| p * q).sum::<f32>();
    let total: f64 = related
        .iter()
        .map(|&(a, b)| {
            let target = dot(a, b);
            let candidates = embeddings.len().min(5000);
            let closer = (0..candidates).filter(|&w| w != a && w != b && dot(a, w) > target).count();
            closer as f64 / candidates as f64
        })
        .sum();
    total / related.len() as f64
}

#[test]
fn skip_gram_on_brown_beats_random_vectors() {
    let config = Word2VecConfig { epochs: 5, ..Word2VecConfig::skip_gram() };
    let (trained, stats) = train_brown(&config);
    eprintln!("stats: {stats:?}");
    assert!(stats.vocab_size > 10_000, "{stats:?}");
    assert!(stats.loss_per_epoch[4] < stats.loss_per_epoch[0] - 0.05, "loss should fall: {:?}", stats.loss_per_epoch);

    let eval_dir = commons_data::fetch("gensim-test-data").expect("fetch gensim test data");
    let pairs = eval::read_word_pairs(&eval_dir.join("wordsim353.tsv")).unwrap();
    let random = random_like(&trained, 7);
    let sim_trained = eval::evaluate_similarity(&trained, &pairs);
    let sim_random = eval::evaluate_similarity(&random, &pairs);
    let rank_trained = related_pair_rank(&trained, &pairs);
    let rank_random = related_pair_rank(&random, &pairs);
    eprintln!("wordsim trained {sim_trained:?}\nwordsim random {sim_random:?}\nrelated rank {rank_trained} vs {rank_random}");
    assert_eq!(sim_trained.pairs, 353);
    assert!(sim_trained.pairs - sim_trained.oov_pairs >= 250, "{sim_trained:?}");
    assert!(sim_trained.spearman > 0.18 && sim_trained.spearman > sim_random.spearman.abs() + 0.12, "{sim_trained:?} {sim_random:?}");
    assert!(rank_trained < 0.3 && rank_random > 0.4, "{rank_trained} {rank_random}");

    let sections = eval::read_analogies(&eval_dir.join("questions-words.txt")).unwrap();
    let analogy_trained = eval::evaluate_analogies(&trained, &sections, eval::DEFAULT_RESTRICT_VOCAB);
    let analogy_random = eval::evaluate_analogies(&random, &sections, eval::DEFAULT_RESTRICT_VOCAB);
    eprintln!("analogies trained {:?}\nanalogies random {:?}", analogy_trained.total, analogy_random.total);
    assert!(analogy_trained.total.attempted > 5000, "{:?}", analogy_trained.total);
    assert!(analogy_trained.total.correct >= 100, "{:?}", analogy_trained.total);
    assert!(analogy_random.total.correct <= 5, "{:?}", analogy_random.total);

    let unit = UnitVectors::new(&trained);
    let neighbours = unit.nearest("monday", 10).unwrap();
    eprintln!("monday: {neighbours:?}");
    let days = ["sunday", "saturday", "tuesday", "wednesday", "thursday", "friday"];
    assert!(neighbours.iter().filter(|(w, _)| days.contains(&w.as_str())).count() >= 3, "{neighbours:?}");
}

#[test]
fn cbow_on_brown_beats_random_vectors() {
    let config = Word2VecConfig { epochs: 8, ..Word2VecConfig::cbow() };
    let (trained, stats) = train_brown(&config);
    eprintln!("stats: {stats:?}");
    let eval_dir = commons_data::fetch("gensim-test-data").expect("fetch gensim test data");
    let pairs = eval::read_word_pairs(&eval_dir.join("wordsim353.tsv")).unwrap();
    let rank_trained = related_pair_rank(&trained, &pairs);
    let rank_random = related_pair_rank(&random_like(&trained, 9), &pairs);
    let sim = eval::evaluate_similarity(&trained, &pairs);
    eprintln!("cbow related rank {rank_trained} vs random {rank_random}; wordsim {sim:?}");
    assert!(rank_trained < 0.3 && rank_random > 0.4, "{rank_trained} {rank_random}");
    assert!(sim.spearman > 0.15, "{sim:?}");
    let unit = UnitVectors::new(&trained);
    let neighbours = unit.nearest("monday", 10).unwrap();
    eprintln!("cbow monday: {neighbours:?}");
    let days = ["sunday", "saturday", "tuesday", "wednesday", "thursday", "friday"];
    assert!(neighbours.iter().filter(|(w, _)| days.contains(&w.as_str())).count() >= 3, "{neighbours:?}");
}

#[test]
fn single_thread_training_is_reproducible() {
    let dir = commons_data::fetch("gensim-test-data").expect("fetch gensim test data");
    let corpus = Corpus::for_dataset("gensim-test-data", &dir).unwrap();
    let config = Word2VecConfig { threads: 1, epochs: 2, dim: 32, seed: 11, ..Word2VecConfig::skip_gram() };
    let vocab = Vocab::build(&corpus, config.min_count, None).unwrap();
    let encoded = vocab.encode(&corpus).unwrap();
    let (a, _) = word2vec::train_encoded(&vocab, &encoded, &config, &mut |_| {}).unwrap();
    let (b, _) = word2vec::train_encoded(&vocab, &encoded, &config, &mut |_| {}).unwrap();
    assert_eq!(a.vectors, b.vectors, "same seed, one thread: identical weights");
    let other = Word2VecConfig { seed: 12, ..config };
    let (c, _) = word2vec::train_encoded(&vocab, &encoded, &other, &mut |_| {}).unwrap();
    assert_ne!(a.vectors, c.vectors);
}
