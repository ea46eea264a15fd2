//! Vector formats round-trip exactly; bad input gets clear errors, never a panic.

use std::path::Path;

use commons_data::corpus::{Corpus, CorpusFormat};
use commons_embeddings::word2vec::{self, Word2VecConfig};
use commons_embeddings::{EmbeddingError, Embeddings, formats, glove, model_dir};

/// Vectors with awkward values: tiny, huge, negative zero, many digits.
fn awkward_vectors() -> Embeddings {
    let words: Vec<String> = ["the", "naïve", "don't", "x"].iter().map(|s| s.to_string()).collect();
    let mut vectors = Vec::new();
    let mut state = 12345u64;
    for _ in 0..words.len() * 7 {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        vectors.push(f32::from_bits(((state >> 33) as u32 & 0x3fff_ffff) | ((state as u32 & 1) << 31)));
    }
    vectors[0] = 1e-38;
    vectors[1] = -0.0;
    vectors[2] = 3.4e38;
    vectors[3] = 0.1;
    Embeddings::new(words, 7, vectors).unwrap()
}

fn assert_same_bits(a: &Embeddings, b: &Embeddings) {
    assert_eq!(a.words, b.words);
    assert_eq!(a.dim, b.dim);
    let bits = |e: &Embeddings| e.vectors.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(a), bits(b));
}

#[test]
fn every_format_round_trips_bit_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let original = awkward_vectors();
    let text = dir.path().join("vectors.txt");
    formats::write_word2vec_text(&text, &original).unwrap();
    assert_same_bits(&original, &formats::read_word2vec_text(&text).unwrap());
    let binary = dir.path().join("vectors.bin");
    formats::write_word2vec_binary(&binary, &original).unwrap();
    assert_same_bits(&original, &formats::read_word2vec_binary(&binary).unwrap());
    let glove_path = dir.path().join("glove.txt");
    formats::write_glove_text(&glove_path, &original).unwrap();
    assert_same_bits(&original, &formats::read_glove_text(&glove_path).unwrap());
    formats::write_safetensors(dir.path(), &original).unwrap();
    assert_same_bits(&original, &formats::read_safetensors(dir.path()).unwrap());
    // The text header is the word2vec one: "<count> <dim>".
    let first = std::fs::read_to_string(&text).unwrap().lines().next().unwrap().to_string();
    assert_eq!(first, "4 7");
}

#[test]
fn trained_vectors_round_trip_through_a_model_directory() {
    let dir = tempfile::tempdir().unwrap();
    let corpus_path = dir.path().join("corpus.txt");
    let sentence = "the cat sat on the mat and the dog sat on the log while the bird sang ";
    std::fs::write(&corpus_path, sentence.repeat(200)).unwrap();
    let corpus = Corpus::new(vec![corpus_path], CorpusFormat::Plain);
    let algorithm =
        model_dir::EmbeddingAlgorithm::Word2vec(Word2VecConfig { dim: 16, epochs: 1, threads: 1, ..Word2VecConfig::skip_gram() });
    let (trained, training) = model_dir::train(&algorithm, &corpus, &mut |_| {}).unwrap();
    let metrics = model_dir::EmbeddingMetrics::default();
    let out = dir.path().join("model");
    let run = model_dir::RunRecord { algorithm: &algorithm, dataset: "test-sentences", training: &training, metrics: &metrics };
    model_dir::write_model_dir(&out, &trained, &run).unwrap();
    assert_same_bits(&trained, &model_dir::read_model_dir(&out).unwrap());
    assert_same_bits(&trained, &formats::read_word2vec_binary(&out.join("vectors.bin")).unwrap());
    let config: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["recipe"], "word2vec-skipgram");
    assert_eq!(config["hyperparameters"]["dim"], 16);
    let metrics_json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("metrics.json")).unwrap()).unwrap();
    assert!(metrics_json["training"]["words_per_sec"].as_f64().unwrap() > 0.0);
    assert!(std::fs::read_to_string(out.join("README.md")).unwrap().starts_with("---\nlicense: apache-2.0"));
}

fn corpus_of(dir: &Path, text: &str) -> Corpus {
    let path = dir.join("corpus.txt");
    std::fs::write(&path, text).unwrap();
    Corpus::new(vec![path], CorpusFormat::Plain)
}

#[test]
fn empty_corpus_and_min_count_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let empty = corpus_of(dir.path(), "  \n 123 -- !!\n");
    let err = word2vec::train(&empty, &Word2VecConfig::default(), &mut |_| {}).unwrap_err();
    assert!(matches!(err, EmbeddingError::EmptyCorpus), "{err}");
    assert!(err.to_string().contains("corpus is empty"));
    let err = glove::train(&empty, &glove::GloveConfig::default(), &mut |_| {}).unwrap_err();
    assert!(matches!(err, EmbeddingError::EmptyCorpus), "{err}");

    let sparse = corpus_of(dir.path(), "every word here occurs once only");
    let err = word2vec::train(&sparse, &Word2VecConfig { min_count: 2, ..Word2VecConfig::default() }, &mut |_| {}).unwrap_err();
    let message = err.to_string();
    assert!(message.contains("min-count 2 leaves no words") && message.contains("occurs 1 times in 6 tokens"), "{message}");

    let err = word2vec::train(&sparse, &Word2VecConfig { window: 0, ..Word2VecConfig::default() }, &mut |_| {}).unwrap_err();
    assert!(err.to_string().contains("window must be at least 1"), "{err}");
}

#[test]
fn malformed_vector_files_name_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.txt");
    std::fs::write(&path, "3 2\nking 0.1 0.2\nqueen 0.3 zero\nman 0.5 0.6\n").unwrap();
    let message = formats::read_word2vec_text(&path).unwrap_err().to_string();
    assert!(message.contains("line 3") && message.contains("\"zero\""), "{message}");

    std::fs::write(&path, "3 2\nking 0.1 0.2\nqueen 0.3\n").unwrap();
    let message = formats::read_word2vec_text(&path).unwrap_err().to_string();
    assert!(message.contains("line 3") && message.contains("1 values, expected 2"), "{message}");

    std::fs::write(&path, "3 2\nking 0.1 0.2\n").unwrap();
    let message = formats::read_word2vec_text(&path).unwrap_err().to_string();
    assert!(message.contains("declares 3 words, file has 1"), "{message}");

    std::fs::write(&path, "three two\n").unwrap();
    let message = formats::read_word2vec_text(&path).unwrap_err().to_string();
    assert!(message.contains("header"), "{message}");

    let binary = dir.path().join("bad.bin");
    let mut bytes = b"2 4\nking ".to_vec();
    bytes.extend_from_slice(&[0u8; 16]);
    bytes.extend_from_slice(b"\nqueen ");
    bytes.extend_from_slice(&[0u8; 6]);
    std::fs::write(&binary, bytes).unwrap();
    let message = formats::read_word2vec_binary(&binary).unwrap_err().to_string();
    assert!(message.contains("\"queen\" truncated"), "{message}");

    std::fs::write(&binary, b"4000000000 300\nking ").unwrap();
    let message = formats::read_word2vec_binary(&binary).unwrap_err().to_string();
    assert!(message.contains("header declares 4000000000 vectors"), "{message}");
}
