//! Turning a data directory into tensors-to-be: examples as flat host vectors, fixed seeded
//! splits, vocabularies built on the training split only. File reading and splitting are
//! `commons-data`'s; this module only decides what a recipe's data spec means.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use commons_recipe::model_dir::{DatasetInfo, PAD, UNK, Vocabulary};
use sha2::{Digest, Sha256};

use crate::error::EngineError;
use crate::model::{DataDims, InputKind};
use commons_recipe::recipe::{DataFormat, Recipe, RecipeKind};

/// Examples of one split, stored flat so a batch is a gather of contiguous rows.
#[derive(Debug, Clone, Default)]
pub struct Examples {
    pub count: usize,
    /// `count * features_per_example` floats, or empty for token inputs.
    pub features: Vec<f32>,
    /// `count * tokens_per_example` token ids, or empty for feature inputs.
    pub tokens: Vec<u32>,
    /// One label per example (classification) or one per token (language model).
    pub targets: Vec<u32>,
}

impl Examples {
    /// Position in these examples of the first example of shard `index` of `count`.
    pub fn shard_start(&self, index: usize, count: usize) -> usize {
        self.count * index / count.max(1)
    }

    /// Shard `index` of `count`: a contiguous run of examples, the shards together covering the
    /// split once in order (sizes differ by at most one).
    pub fn shard(&self, index: usize, count: usize) -> Result<Examples, EngineError> {
        if count == 0 || index >= count {
            return Err(EngineError::Data(format!("shard {index} of {count} does not exist")));
        }
        let start = self.shard_start(index, count);
        let end = self.shard_start(index + 1, count);
        let slice = |values: &[f32]| -> Vec<f32> {
            let width = values.len() / self.count.max(1);
            values[start * width..end * width].to_vec()
        };
        let tokens_per = self.tokens.len() / self.count.max(1);
        let targets_per = self.targets.len() / self.count.max(1);
        Ok(Examples {
            count: end - start,
            features: if self.features.is_empty() { Vec::new() } else { slice(&self.features) },
            tokens: self.tokens.get(start * tokens_per..end * tokens_per).map(<[u32]>::to_vec).unwrap_or_default(),
            targets: self.targets[start * targets_per..end * targets_per].to_vec(),
        })
    }
}

#[derive(Debug, Clone)]
pub struct PreparedData {
    pub train: Examples,
    pub validation: Option<Examples>,
    pub test: Examples,
    pub input: InputKind,
    pub dims: DataDims,
    pub vocabulary: Option<Vocabulary>,
    pub info: DatasetInfo,
}

impl PreparedData {
    pub fn split(&self, name: &str) -> Result<&Examples, EngineError> {
        match name {
            "train" => Ok(&self.train),
            "test" => Ok(&self.test),
            "validation" => self
                .validation
                .as_ref()
                .ok_or_else(|| EngineError::Data("the recipe holds out no validation split (validation_fraction = 0)".into())),
            other => Err(EngineError::Data(format!("unknown split `{other}`: expected train, validation or test"))),
        }
    }
}

fn data_error(context: impl Into<String>) -> impl FnOnce(commons_data::DataError) -> EngineError {
    let context = context.into();
    move |source| EngineError::DataSource { context, source }
}

fn sha256_file(path: &Path) -> Result<String, EngineError> {
    let bytes = std::fs::read(path).map_err(|e| EngineError::io(format!("reading {}", path.display()), e))?;
    Ok(hex::encode(Sha256::digest(&bytes)))
}

/// Read the data a recipe names from `path`. `vocabulary` is given when evaluating a trained
/// model, whose token ids must mean what they meant in training.
pub fn prepare(recipe: &Recipe, path: &Path, vocabulary: Option<Vocabulary>) -> Result<PreparedData, EngineError> {
    if !path.exists() {
        return Err(EngineError::Data(format!("{} does not exist", path.display())));
    }
    let prepared = match recipe.data.format {
        DataFormat::Idx => prepare_idx(recipe, path)?,
        DataFormat::Csv => prepare_csv(recipe, path)?,
        DataFormat::JsonText => prepare_json_text(recipe, path, vocabulary)?,
        DataFormat::Text => prepare_char_text(recipe, path, vocabulary)?,
    };
    if prepared.train.count == 0 {
        return Err(EngineError::Data(format!("{}: the training split is empty", path.display())));
    }
    if prepared.test.count == 0 {
        return Err(EngineError::Data(format!("{}: the test split is empty", path.display())));
    }
    Ok(prepared)
}

fn find_file(dir: &Path, stem: &str) -> Result<PathBuf, EngineError> {
    for candidate in [stem.to_string(), format!("{stem}.gz")] {
        let path = dir.join(&candidate);
        if path.is_file() {
            return Ok(path);
        }
    }
    Err(EngineError::Data(format!("{} has no `{stem}` (or `{stem}.gz`)", dir.display())))
}

fn check_labels(labels: &[u32], num_classes: usize) -> Result<(), EngineError> {
    if let Some((index, &label)) = labels.iter().enumerate().find(|(_, l)| **l as usize >= num_classes) {
        return Err(EngineError::LabelOutOfRange { index, label: label as usize, num_classes });
    }
    Ok(())
}

fn take_rows(values: &[f32], width: usize, rows: &[usize]) -> Vec<f32> {
    let mut out = Vec::with_capacity(rows.len() * width);
    for &row in rows {
        out.extend_from_slice(&values[row * width..(row + 1) * width]);
    }
    out
}

fn feature_examples(values: &[f32], width: usize, labels: &[u32], rows: &[usize]) -> Examples {
    Examples {
        count: rows.len(),
        features: take_rows(values, width, rows),
        tokens: Vec::new(),
        targets: rows.iter().map(|&r| labels[r]).collect(),
    }
}

fn num_classes_of(recipe: &Recipe, labels: &[u32]) -> usize {
    recipe.data.num_classes.unwrap_or_else(|| labels.iter().copied().max().map_or(0, |m| m as usize + 1))
}

/// Scaled pixels, labels, and the image size (rows, columns) of an IDX image/label pair.
type IdxPair = (Vec<f32>, Vec<u32>, [usize; 2]);

fn read_idx_pair(images: &Path, labels: &Path, scale: f32) -> Result<IdxPair, EngineError> {
    let images_data = commons_data::idx::read_images(images).map_err(data_error("reading IDX images"))?;
    let label_data = commons_data::idx::read_labels(labels).map_err(data_error("reading IDX labels"))?;
    if images_data.count != label_data.len() {
        return Err(EngineError::Data(format!(
            "{} holds {} images but {} holds {} labels",
            images.display(),
            images_data.count,
            labels.display(),
            label_data.len()
        )));
    }
    let features = images_data.pixels.iter().map(|&p| p as f32 / scale).collect();
    Ok((features, label_data.into_iter().map(u32::from).collect(), [images_data.rows, images_data.cols]))
}

fn prepare_idx(recipe: &Recipe, dir: &Path) -> Result<PreparedData, EngineError> {
    let spec = &recipe.data;
    let files = [
        find_file(dir, "train-images-idx3-ubyte")?,
        find_file(dir, "train-labels-idx1-ubyte")?,
        find_file(dir, "t10k-images-idx3-ubyte")?,
        find_file(dir, "t10k-labels-idx1-ubyte")?,
    ];
    let mut info = DatasetInfo { name: spec.dataset.clone(), files: BTreeMap::new() };
    for file in &files {
        info.files.insert(file_name(file), sha256_file(file)?);
    }
    let (train_x, train_y, [rows, cols]) = read_idx_pair(&files[0], &files[1], spec.scale)?;
    let (test_x, test_y, test_dims) = read_idx_pair(&files[2], &files[3], spec.scale)?;
    if test_dims != [rows, cols] {
        return Err(EngineError::Data(format!("train images are {rows}x{cols} but test images are {}x{}", test_dims[0], test_dims[1])));
    }
    let width = rows * cols;
    let input_shape = if spec.input_shape.is_empty() { vec![rows, cols] } else { spec.input_shape.clone() };
    if input_shape.iter().product::<usize>() != width {
        return Err(EngineError::Data(format!("the recipe's input_shape {input_shape:?} does not hold the data's {rows}x{cols} images")));
    }
    let num_classes = num_classes_of(recipe, &train_y);
    check_labels(&train_y, num_classes)?;
    check_labels(&test_y, num_classes)?;
    let (train, validation) = hold_out_validation(&train_x, width, &train_y, spec.validation_fraction, spec.split_seed);
    let test = feature_examples(&test_x, width, &test_y, &(0..test_y.len()).collect::<Vec<_>>());
    Ok(PreparedData {
        train,
        validation,
        test,
        input: InputKind::Features(input_shape),
        dims: DataDims { num_classes, vocab_size: 0 },
        vocabulary: None,
        info,
    })
}

fn hold_out_validation(values: &[f32], width: usize, labels: &[u32], fraction: f64, seed: u64) -> (Examples, Option<Examples>) {
    if fraction <= 0.0 {
        let all: Vec<usize> = (0..labels.len()).collect();
        return (feature_examples(values, width, labels, &all), None);
    }
    let parts = commons_data::split::split_indices(labels.len(), &[1.0 - fraction, fraction], seed);
    (feature_examples(values, width, labels, &parts[0]), Some(feature_examples(values, width, labels, &parts[1])))
}

fn file_name(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| path.display().to_string())
}

/// Train/validation/test parts of `n` items for the recipe's fractions.
fn three_way_split(recipe: &Recipe, n: usize) -> [Vec<usize>; 3] {
    let spec = &recipe.data;
    let train_fraction = 1.0 - spec.validation_fraction - spec.test_fraction;
    let mut parts = commons_data::split::split_indices(n, &[train_fraction, spec.validation_fraction, spec.test_fraction], spec.split_seed);
    let test = parts.pop().unwrap_or_default();
    let validation = parts.pop().unwrap_or_default();
    let train = parts.pop().unwrap_or_default();
    [train, validation, test]
}

fn prepare_csv(recipe: &Recipe, path: &Path) -> Result<PreparedData, EngineError> {
    let spec = &recipe.data;
    let label_column = spec.label_column.as_deref().ok_or_else(|| EngineError::Data("format = \"csv\" needs data.label_column".into()))?;
    let table = commons_data::csv_table::read_csv(path, label_column, spec.num_classes).map_err(data_error("reading CSV"))?;
    let labels: Vec<u32> = table.labels.iter().map(|&l| l as u32).collect();
    let width = table.feature_names.len();
    let features: Vec<f32> = table.features.iter().map(|v| v / spec.scale).collect();
    let num_classes = num_classes_of(recipe, &labels);
    check_labels(&labels, num_classes)?;
    let [train, validation, test] = three_way_split(recipe, labels.len());
    let mut info = DatasetInfo { name: spec.dataset.clone(), files: BTreeMap::new() };
    info.files.insert(file_name(path), sha256_file(path)?);
    Ok(PreparedData {
        train: feature_examples(&features, width, &labels, &train),
        validation: (!validation.is_empty()).then(|| feature_examples(&features, width, &labels, &validation)),
        test: feature_examples(&features, width, &labels, &test),
        input: InputKind::Features(vec![width]),
        dims: DataDims { num_classes, vocab_size: 0 },
        vocabulary: None,
        info,
    })
}

/// Data files of a directory (or the file itself), sorted by name so pooling order is fixed.
fn data_files(path: &Path, accept: &dyn Fn(&str) -> bool) -> Result<Vec<PathBuf>, EngineError> {
    if path.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files = Vec::new();
    let entries = std::fs::read_dir(path).map_err(|e| EngineError::io(format!("listing {}", path.display()), e))?;
    for entry in entries {
        let entry = entry.map_err(|e| EngineError::io(format!("listing {}", path.display()), e))?;
        let entry_path = entry.path();
        if entry_path.is_file() && accept(&file_name(&entry_path)) {
            files.push(entry_path);
        }
    }
    files.sort();
    Ok(files)
}

fn prepare_json_text(recipe: &Recipe, path: &Path, vocabulary: Option<Vocabulary>) -> Result<PreparedData, EngineError> {
    let spec = &recipe.data;
    let files = data_files(path, &|name| name.ends_with(".json") || name.ends_with(".jsonl"))?;
    if files.is_empty() {
        return Err(EngineError::Data(format!("{} holds no .json or .jsonl files", path.display())));
    }
    let mut info = DatasetInfo { name: spec.dataset.clone(), files: BTreeMap::new() };
    let mut records = Vec::new();
    for file in &files {
        info.files.insert(file_name(file), sha256_file(file)?);
        let mut read = if file_name(file).ends_with(".jsonl") {
            commons_data::labeled_text::read_jsonl(file, "text", "label")
        } else {
            commons_data::labeled_text::read_json_array(file, "text", "class")
        }
        .map_err(data_error("reading labelled text"))?;
        records.append(&mut read);
    }
    if records.is_empty() {
        return Err(EngineError::Data(format!("{}: no labelled sentences", path.display())));
    }
    let labels: Vec<u32> = records.iter().map(|r| r.label as u32).collect();
    let num_classes = num_classes_of(recipe, &labels);
    check_labels(&labels, num_classes)?;
    let sequence_length = *spec
        .input_shape
        .first()
        .ok_or_else(|| EngineError::Data("format = \"json-text\" needs data.input_shape = [sequence_length]".into()))?;
    let tokenized: Vec<Vec<String>> = records.iter().map(|r| commons_data::corpus::tokenize(&r.text)).collect();
    let [train, validation, test] = three_way_split(recipe, records.len());
    let vocabulary = match vocabulary {
        Some(vocabulary) => vocabulary,
        None => {
            let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
            for &row in &train {
                for token in &tokenized[row] {
                    *counts.entry(token.as_str()).or_default() += 1;
                }
            }
            build_vocabulary(counts, spec.min_count, spec.max_vocab)
        }
    };
    let index = vocabulary.index();
    let encode = |rows: &[usize]| -> Examples {
        let mut tokens = Vec::with_capacity(rows.len() * sequence_length);
        for &row in rows {
            let ids: Vec<u32> =
                tokenized[row].iter().take(sequence_length).map(|t| index.get(t.as_str()).copied().unwrap_or(UNK)).collect();
            // Pad in front so the last steps an RNN sees are the sentence's own words.
            tokens.extend(std::iter::repeat_n(PAD, sequence_length - ids.len()));
            tokens.extend(ids);
        }
        Examples { count: rows.len(), features: Vec::new(), tokens, targets: rows.iter().map(|&r| labels[r]).collect() }
    };
    Ok(PreparedData {
        train: encode(&train),
        validation: (!validation.is_empty()).then(|| encode(&validation)),
        test: encode(&test),
        input: InputKind::Tokens { sequence_length, vocab_size: vocabulary.len() },
        dims: DataDims { num_classes, vocab_size: vocabulary.len() },
        vocabulary: Some(vocabulary),
        info,
    })
}

/// Most frequent first, ties broken alphabetically, so the vocabulary is a pure function of
/// the training split.
fn build_vocabulary(counts: BTreeMap<&str, usize>, min_count: usize, max_vocab: Option<usize>) -> Vocabulary {
    let mut words: Vec<(&str, usize)> = counts.into_iter().filter(|(_, c)| *c >= min_count.max(1)).collect();
    words.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    if let Some(max) = max_vocab {
        words.truncate(max.saturating_sub(2));
    }
    let mut tokens = vec!["<pad>".to_string(), "<unk>".to_string()];
    tokens.extend(words.into_iter().map(|(w, _)| w.to_string()));
    Vocabulary { tokens }
}

fn prepare_char_text(recipe: &Recipe, path: &Path, vocabulary: Option<Vocabulary>) -> Result<PreparedData, EngineError> {
    let spec = &recipe.data;
    if recipe.kind != RecipeKind::CharLanguageModel {
        return Err(EngineError::Data(format!(
            "format = \"text\" is read as a character stream for kind = \"char-language-model\", not for `{:?}`",
            recipe.kind
        )));
    }
    let sequence_length = recipe.training.sequence_length.unwrap_or(0);
    let files = data_files(path, &|name| name.ends_with(".txt") || name.ends_with(".cor"))?;
    let mut info = DatasetInfo { name: spec.dataset.clone(), files: BTreeMap::new() };
    let mut text = String::new();
    for file in &files {
        let bytes = std::fs::read(file).map_err(|e| EngineError::io(format!("reading {}", file.display()), e))?;
        info.files.insert(file_name(file), hex::encode(Sha256::digest(&bytes)));
        text.push_str(&String::from_utf8_lossy(&bytes));
        text.push('\n');
    }
    let chars: Vec<char> = text.chars().collect();
    if chars.iter().all(|c| c.is_whitespace()) {
        return Err(EngineError::Data(format!("{}: the corpus is empty (no text in {} files)", path.display(), files.len())));
    }
    // A language model's splits are contiguous stretches, so no test window overlaps training text.
    let n = chars.len();
    let train_end = ((1.0 - spec.validation_fraction - spec.test_fraction) * n as f64) as usize;
    let validation_end = train_end + (spec.validation_fraction * n as f64) as usize;
    let vocabulary = match vocabulary {
        Some(v) => v,
        None => {
            let mut counts: BTreeMap<String, usize> = BTreeMap::new();
            for c in &chars[..train_end] {
                *counts.entry(c.to_string()).or_default() += 1;
            }
            build_vocabulary(counts.iter().map(|(k, v)| (k.as_str(), *v)).collect(), spec.min_count, spec.max_vocab)
        }
    };
    let index = vocabulary.index();
    let ids: Vec<u32> = chars.iter().map(|c| index.get(c.to_string().as_str()).copied().unwrap_or(UNK)).collect();
    let windows = |range: std::ops::Range<usize>| -> Examples {
        let stretch = &ids[range];
        let count = stretch.len().saturating_sub(1) / sequence_length;
        let mut tokens = Vec::with_capacity(count * sequence_length);
        let mut targets = Vec::with_capacity(count * sequence_length);
        for w in 0..count {
            let start = w * sequence_length;
            tokens.extend_from_slice(&stretch[start..start + sequence_length]);
            targets.extend_from_slice(&stretch[start + 1..start + sequence_length + 1]);
        }
        Examples { count, features: Vec::new(), tokens, targets }
    };
    let validation = windows(train_end..validation_end);
    Ok(PreparedData {
        train: windows(0..train_end),
        validation: (validation.count > 0).then_some(validation),
        test: windows(validation_end..n),
        input: InputKind::Tokens { sequence_length, vocab_size: vocabulary.len() },
        dims: DataDims { num_classes: vocabulary.len(), vocab_size: vocabulary.len() },
        vocabulary: Some(vocabulary),
        info,
    })
}
