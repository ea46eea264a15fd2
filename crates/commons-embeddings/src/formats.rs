//! Vector file formats: word2vec text (`V D` header, then `word v1 … vD` lines), word2vec binary
//! (same header, then `word ` + D little-endian f32 + `\n`), GloVe text (word2vec text without
//! the header), and safetensors (`embeddings` [V, D] F32) with a `vocab.txt` beside it.
//!
//! Text output uses Rust's shortest round-trip float formatting, so write → read gives the same
//! bits; binary is bit-exact by construction.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::Path;

use crate::{EmbeddingError, Embeddings};

pub const SAFETENSORS_FILE: &str = "model.safetensors";
pub const VOCAB_FILE: &str = "vocab.txt";
pub const TENSOR_NAME: &str = "embeddings";

fn create(path: &Path) -> Result<BufWriter<File>, EmbeddingError> {
    Ok(BufWriter::with_capacity(1 << 20, File::create(path).map_err(|e| EmbeddingError::io(path, e))?))
}

fn check_word(path: &Path, word: &str) -> Result<(), EmbeddingError> {
    if word.is_empty() || word.chars().any(char::is_whitespace) {
        return Err(EmbeddingError::Format(format!(
            "{}: word {word:?} is empty or contains whitespace, which these formats cannot hold",
            path.display()
        )));
    }
    Ok(())
}

fn write_rows(out: &mut impl Write, path: &Path, embeddings: &Embeddings) -> Result<(), EmbeddingError> {
    let io = |e| EmbeddingError::io(path, e);
    for (i, word) in embeddings.words.iter().enumerate() {
        check_word(path, word)?;
        out.write_all(word.as_bytes()).map_err(io)?;
        for value in embeddings.vector(i) {
            write!(out, " {value}").map_err(io)?;
        }
        out.write_all(b"\n").map_err(io)?;
    }
    Ok(())
}

pub fn write_word2vec_text(path: &Path, embeddings: &Embeddings) -> Result<(), EmbeddingError> {
    let mut out = create(path)?;
    writeln!(out, "{} {}", embeddings.len(), embeddings.dim).map_err(|e| EmbeddingError::io(path, e))?;
    write_rows(&mut out, path, embeddings)?;
    out.flush().map_err(|e| EmbeddingError::io(path, e))
}

pub fn write_glove_text(path: &Path, embeddings: &Embeddings) -> Result<(), EmbeddingError> {
    let mut out = create(path)?;
    write_rows(&mut out, path, embeddings)?;
    out.flush().map_err(|e| EmbeddingError::io(path, e))
}

pub fn write_word2vec_binary(path: &Path, embeddings: &Embeddings) -> Result<(), EmbeddingError> {
    let mut out = create(path)?;
    let io = |e| EmbeddingError::io(path, e);
    writeln!(out, "{} {}", embeddings.len(), embeddings.dim).map_err(io)?;
    for (i, word) in embeddings.words.iter().enumerate() {
        check_word(path, word)?;
        out.write_all(word.as_bytes()).map_err(io)?;
        out.write_all(b" ").map_err(io)?;
        for value in embeddings.vector(i) {
            out.write_all(&value.to_le_bytes()).map_err(io)?;
        }
        out.write_all(b"\n").map_err(io)?;
    }
    out.flush().map_err(io)
}

fn malformed(path: &Path, line: usize, message: impl Into<String>) -> EmbeddingError {
    EmbeddingError::Malformed { path: path.to_path_buf(), line, message: message.into() }
}

fn parse_header(path: &Path, line: &str) -> Result<(usize, usize), EmbeddingError> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    match fields.as_slice() {
        [count, dim] => match (count.parse::<usize>(), dim.parse::<usize>()) {
            (Ok(count), Ok(dim)) if dim > 0 => Ok((count, dim)),
            _ => Err(malformed(path, 1, format!("header {line:?} is not '<word count> <dimension>'"))),
        },
        _ => Err(malformed(path, 1, format!("header {line:?} is not '<word count> <dimension>'"))),
    }
}

/// Read text vectors; `with_header` distinguishes word2vec text from GloVe text.
fn read_text(path: &Path, with_header: bool) -> Result<Embeddings, EmbeddingError> {
    let file = File::open(path).map_err(|e| EmbeddingError::io(path, e))?;
    let reader = BufReader::with_capacity(1 << 20, file);
    let mut declared: Option<(usize, usize)> = None;
    let mut dim: Option<usize> = None;
    let mut words = Vec::new();
    let mut vectors = Vec::new();
    for (i, line) in reader.lines().enumerate() {
        let number = i + 1;
        let line = line.map_err(|e| malformed(path, number, format!("unreadable: {e}")))?;
        if with_header && number == 1 {
            let header = parse_header(path, &line)?;
            declared = Some(header);
            dim = Some(header.1);
            continue;
        }
        if line.trim().is_empty() {
            continue;
        }
        let mut fields = line.split(' ').filter(|f| !f.is_empty());
        let Some(word) = fields.next() else { continue };
        let start = vectors.len();
        for field in fields {
            let value: f32 =
                field.trim().parse().map_err(|_| malformed(path, number, format!("value {field:?} for word {word:?} is not a number")))?;
            vectors.push(value);
        }
        let found = vectors.len() - start;
        let expected = *dim.get_or_insert(found);
        if found != expected || found == 0 {
            return Err(malformed(path, number, format!("word {word:?} has {found} values, expected {expected}")));
        }
        words.push(word.to_string());
    }
    if let Some((count, _)) = declared
        && count != words.len()
    {
        return Err(malformed(path, 1, format!("header declares {count} words, file has {}", words.len())));
    }
    let dim = dim.ok_or_else(|| malformed(path, 1, "no vectors in file"))?;
    Embeddings::new(words, dim, vectors)
}

pub fn read_word2vec_text(path: &Path) -> Result<Embeddings, EmbeddingError> {
    read_text(path, true)
}

pub fn read_glove_text(path: &Path) -> Result<Embeddings, EmbeddingError> {
    read_text(path, false)
}

pub fn read_word2vec_binary(path: &Path) -> Result<Embeddings, EmbeddingError> {
    let file = File::open(path).map_err(|e| EmbeddingError::io(path, e))?;
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut header = String::new();
    reader.read_line(&mut header).map_err(|e| EmbeddingError::io(path, e))?;
    let (count, dim) = parse_header(path, header.trim_end())?;
    // A corrupt header must not make us allocate more than the file could hold.
    let file_len = reader.get_ref().metadata().map_err(|e| EmbeddingError::io(path, e))?.len();
    let needed = (count as u64).saturating_mul(dim as u64).saturating_mul(4);
    if needed > file_len {
        return Err(malformed(
            path,
            1,
            format!("header declares {count} vectors of {dim} floats ({needed} bytes), file has {file_len} bytes"),
        ));
    }
    let mut words = Vec::with_capacity(count);
    let mut vectors = vec![0f32; count * dim];
    let mut bytes = vec![0u8; dim * 4];
    let mut word = Vec::new();
    for i in 0..count {
        word.clear();
        reader.read_until(b' ', &mut word).map_err(|e| EmbeddingError::io(path, e))?;
        if word.last() != Some(&b' ') {
            return Err(malformed(path, i + 2, format!("file ends after {i} of {count} words")));
        }
        word.pop();
        let text = String::from_utf8_lossy(&word);
        let text = text.trim_start_matches('\n');
        if text.is_empty() {
            return Err(malformed(path, i + 2, format!("word {} is empty", i + 1)));
        }
        reader
            .read_exact(&mut bytes)
            .map_err(|_| malformed(path, i + 2, format!("vector of word {text:?} truncated ({dim} floats expected)")))?;
        for (slot, chunk) in vectors[i * dim..(i + 1) * dim].iter_mut().zip(bytes.chunks_exact(4)) {
            *slot = f32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        }
        words.push(text.to_string());
    }
    Embeddings::new(words, dim, vectors)
}

/// Write `model.safetensors` (tensor `embeddings`, [vocab, dim], F32) and `vocab.txt` into `dir`.
pub fn write_safetensors(dir: &Path, embeddings: &Embeddings) -> Result<(), EmbeddingError> {
    std::fs::create_dir_all(dir).map_err(|e| EmbeddingError::io(dir, e))?;
    let bytes: Vec<u8> = embeddings.vectors.iter().flat_map(|v| v.to_le_bytes()).collect();
    let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![embeddings.len(), embeddings.dim], &bytes)
        .map_err(|e| EmbeddingError::Format(format!("safetensors: {e}")))?;
    let path = dir.join(SAFETENSORS_FILE);
    safetensors::serialize_to_file([(TENSOR_NAME, view)], None, &path)
        .map_err(|e| EmbeddingError::Format(format!("{}: {e}", path.display())))?;
    let vocab_path = dir.join(VOCAB_FILE);
    let mut out = create(&vocab_path)?;
    for word in &embeddings.words {
        check_word(&vocab_path, word)?;
        writeln!(out, "{word}").map_err(|e| EmbeddingError::io(&vocab_path, e))?;
    }
    out.flush().map_err(|e| EmbeddingError::io(&vocab_path, e))
}

pub fn read_safetensors(dir: &Path) -> Result<Embeddings, EmbeddingError> {
    let path = dir.join(SAFETENSORS_FILE);
    let bytes = std::fs::read(&path).map_err(|e| EmbeddingError::io(&path, e))?;
    let tensors = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| EmbeddingError::Format(format!("{}: {e}", path.display())))?;
    let tensor =
        tensors.tensor(TENSOR_NAME).map_err(|e| EmbeddingError::Format(format!("{}: tensor '{TENSOR_NAME}': {e}", path.display())))?;
    let shape = tensor.shape();
    if tensor.dtype() != safetensors::Dtype::F32 || shape.len() != 2 {
        return Err(EmbeddingError::Format(format!(
            "{}: '{TENSOR_NAME}' is {:?} {shape:?}, expected F32 [vocab, dim]",
            path.display(),
            tensor.dtype()
        )));
    }
    let vectors: Vec<f32> = tensor.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    let vocab_path = dir.join(VOCAB_FILE);
    let text = std::fs::read_to_string(&vocab_path).map_err(|e| EmbeddingError::io(&vocab_path, e))?;
    let words: Vec<String> = text.lines().map(str::to_string).collect();
    if words.len() != shape[0] {
        return Err(malformed(&vocab_path, words.len(), format!("{} words for {} vectors", words.len(), shape[0])));
    }
    Embeddings::new(words, shape[1], vectors)
}
