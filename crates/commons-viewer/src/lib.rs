//! The dataset viewer's core, without I/O or HTTP: which files of a dataset make which split
//! (as the Hugging Face Hub infers them from names), a data file parsed into rows with their
//! features (the `datasets` feature JSON), pages of rows, and column statistics, in the shapes
//! of Hugging Face's dataset viewer API. The hub reads the bytes and answers the routes.

use serde_json::{Map, Value, json};

mod convert;
mod parquet;
mod query;

pub use convert::{IdxParquet, convert_stream, image_folder_parquet, predictions_parquet, table_parquet};
pub use parquet::{ByteSource, ParquetFile, Row, STATISTICS_ROWS};
pub use query::{QUERY_CHARS, filter, search};

/// Most cells (rows × columns) one file may parse into: what bounds the memory of a parse,
/// whatever the shape of the file.
pub const MAX_CELLS: usize = 1 << 21;

/// Most configs a card may declare, and splits a config, and patterns a split.
pub const MAX_CONFIGS: usize = 64;

/// The one config of a dataset whose card declares none.
pub const DEFAULT_CONFIG: &str = "default";

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ViewerError {
    #[error("{file}: {message}")]
    Parse { file: String, message: String },
    #[error("{0}")]
    Unsupported(String),
    /// More than the viewer reads for one answer.
    #[error("{0}")]
    TooBig(String),
}

/// Formats the viewer reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Csv,
    Tsv,
    JsonLines,
    /// A JSON array of objects.
    Json,
    /// Read by row group and page, through ranged reads ([`ParquetFile`]), never parsed whole.
    Parquet,
    /// Plain text: a row per line, in one column `text`.
    Text,
    /// An image of an image folder (PNG, JPEG, GIF, BMP, WebP): a row each.
    Image,
}

impl Format {
    /// The format of a data file, by its extension.
    pub fn of(path: &str) -> Option<Format> {
        let lower = path.to_ascii_lowercase();
        let ext = lower.rsplit_once('.').map(|(_, e)| e)?;
        match ext {
            "csv" => Some(Format::Csv),
            "tsv" => Some(Format::Tsv),
            "jsonl" | "ndjson" => Some(Format::JsonLines),
            "json" => Some(Format::Json),
            "parquet" => Some(Format::Parquet),
            "txt" => Some(Format::Text),
            "png" | "jpg" | "jpeg" | "gif" | "bmp" | "webp" => Some(Format::Image),
            _ => None,
        }
    }
}

/// A split of a config and the data files (paths in the repository) it is made of.
#[derive(Clone, Debug, PartialEq)]
pub struct Split {
    pub config: String,
    pub split: String,
    pub files: Vec<String>,
    /// How its rows are read.
    pub reader: Reader,
}

/// How a split's rows are read.
#[derive(Clone, Debug, PartialEq)]
pub enum Reader {
    /// Its files parsed whole into a [`Table`] (CSV, TSV, JSON, JSON Lines, text).
    Parsed,
    /// Parquet files, by row group and page.
    Parquet,
    /// An MNIST-style pair of IDX files (images, labels): rows are read by range, never whole.
    Idx(IdxPair),
    /// A folder of images ([`ImageFolder`]): a row per image, labelled by its folder's name or
    /// described by a `metadata.csv`/`metadata.jsonl` beside it.
    Images,
}

/// The image and label files of an IDX split.
#[derive(Clone, Debug, PartialEq)]
pub struct IdxPair {
    pub images: String,
    pub labels: String,
}

/// The splits of a dataset from its file paths, as the Hub's default inference does: a file
/// or folder named for a split (`train`, `test`, `validation`; also `dev`, `valid`, `eval`,
/// `training`, `testing`) belongs to it; when no name says, every data file is `train`.
/// Only files the viewer reads count; `README.md` and dotfiles never do.
pub fn splits(paths: &[&str]) -> Vec<Split> {
    const NAMES: [(&str, &[&str]); 3] =
        [("train", &["train", "training"]), ("validation", &["validation", "valid", "val", "dev", "eval"]), ("test", &["test", "testing"])];
    let data: Vec<&str> = paths.iter().copied().filter(|p| Format::of(p).is_some() && !p.split('/').any(|c| c.starts_with('.'))).collect();
    let mut found: Vec<Split> = Vec::new();
    for (split, words) in NAMES {
        let files: Vec<String> = data.iter().filter(|p| named_for(p, words)).map(|p| p.to_string()).collect();
        if !files.is_empty() {
            found.push(Split::of_files(DEFAULT_CONFIG, split, files));
        }
    }
    if found.is_empty() && !data.is_empty() {
        let files = data.iter().map(|p| p.to_string()).collect();
        found.push(Split::of_files(DEFAULT_CONFIG, "train", files));
    }
    // MNIST's layout: `{prefix}-images-idx3-ubyte` with `{prefix}-labels-idx1-ubyte`, where the
    // prefix names the split (`t10k` is MNIST's test set).
    for images in paths.iter().filter(|p| p.ends_with("-images-idx3-ubyte")) {
        let prefix = &images[..images.len() - "-images-idx3-ubyte".len()];
        let labels = format!("{prefix}-labels-idx1-ubyte");
        if !paths.contains(&labels.as_str()) {
            continue;
        }
        let name = prefix.rsplit('/').next().unwrap_or(prefix);
        let split = match NAMES.iter().find(|(_, words)| named_for(name, words)) {
            Some((split, _)) => split.to_string(),
            None if name.eq_ignore_ascii_case("t10k") => "test".into(),
            None => name.to_string(),
        };
        if found.iter().any(|s| s.split == split) {
            continue;
        }
        let pair = IdxPair { images: images.to_string(), labels: labels.clone() };
        found.push(Split { config: DEFAULT_CONFIG.into(), split, files: vec![images.to_string(), labels], reader: Reader::Idx(pair) });
    }
    // train, validation, test, then any other, as the Hub lists them.
    found.sort_by_key(|s| NAMES.iter().position(|(name, _)| *name == s.split).unwrap_or(NAMES.len()));
    found
}

/// Splits as a card's `configs:` declares them, as the Hub reads it: each config's
/// `data_files` a pattern or a list of them (the `train` split), a list of `{split, path}`
/// (path a pattern or a list), or a map of split to pattern(s). Patterns are globs: `*` within
/// a folder, `**` across folders. The config marked `default: true` comes first.
pub fn splits_of_card(configs: &Value, paths: &[&str]) -> Result<Vec<Split>, ViewerError> {
    let bad = |why: String| ViewerError::Unsupported(format!("the card's configs: {why}"));
    let list = configs.as_array().ok_or_else(|| bad("expected a list of configs".into()))?;
    // Every view of the dataset matches each pattern against every file: both are bounded.
    if list.len() > MAX_CONFIGS {
        return Err(bad(format!("at most {MAX_CONFIGS} configs are read")));
    }
    let mut ordered: Vec<&Value> = list.iter().filter(|c| c["default"] == json!(true)).collect();
    ordered.extend(list.iter().filter(|c| c["default"] != json!(true)));
    let mut found = Vec::new();
    for config in ordered {
        let name = config["config_name"].as_str().ok_or_else(|| bad("every config needs a config_name".into()))?;
        let data_files = &config["data_files"];
        let by_split: Vec<(String, Vec<String>)> = match data_files {
            Value::String(p) => vec![("train".into(), vec![p.clone()])],
            Value::Array(items) if items.iter().all(Value::is_string) => {
                vec![("train".into(), items.iter().filter_map(|p| p.as_str().map(str::to_string)).collect())]
            }
            Value::Array(items) => items
                .iter()
                .map(|item| {
                    let split = item["split"].as_str().unwrap_or("train").to_string();
                    Ok((
                        split,
                        patterns(&item["path"]).ok_or_else(|| bad(format!("config {name:?}: a path is a pattern or a list of them")))?,
                    ))
                })
                .collect::<Result<_, ViewerError>>()?,
            Value::Object(map) => map
                .iter()
                .map(|(split, p)| {
                    Ok((split.clone(), patterns(p).ok_or_else(|| bad(format!("config {name:?}: split {split:?} needs a path")))?))
                })
                .collect::<Result<_, ViewerError>>()?,
            _ => return Err(bad(format!("config {name:?} needs data_files"))),
        };
        if by_split.len() > MAX_CONFIGS || by_split.iter().any(|(_, globs)| globs.len() > MAX_CONFIGS) {
            return Err(bad(format!("config {name:?}: at most {MAX_CONFIGS} splits and patterns a split are read")));
        }
        for (split, globs) in by_split {
            let mut set = globset::GlobSetBuilder::new();
            for glob in &globs {
                let glob =
                    globset::GlobBuilder::new(glob).literal_separator(true).build().map_err(|e| bad(format!("config {name:?}: {e}")))?;
                set.add(glob);
            }
            let set = set.build().map_err(|e| bad(e.to_string()))?;
            let files: Vec<String> = paths.iter().filter(|p| Format::of(p).is_some() && set.is_match(p)).map(|p| p.to_string()).collect();
            if !files.is_empty() {
                found.push(Split::of_files(name, &split, files));
            }
        }
    }
    Ok(found)
}

/// A `path` of a card's `data_files`: one pattern or a list of them.
fn patterns(path: &Value) -> Option<Vec<String>> {
    match path {
        Value::String(p) => Some(vec![p.clone()]),
        Value::Array(items) => items.iter().map(|p| p.as_str().map(str::to_string)).collect(),
        _ => None,
    }
}

impl Split {
    /// A split of data files: of its Parquet files when it has any (a config's files share a
    /// format; Parquet is what a conversion adds), else parsed.
    pub fn of_files(config: &str, split: &str, files: Vec<String>) -> Split {
        let of = |format: Format| -> Vec<String> { files.iter().filter(|f| Format::of(f) == Some(format)).cloned().collect() };
        let (parquet, images) = (of(Format::Parquet), of(Format::Image));
        let (files, reader) = if !parquet.is_empty() {
            (parquet, Reader::Parquet)
        } else if !images.is_empty() {
            // The images, and the metadata files that describe them.
            let metadata = files.iter().filter(|f| is_metadata(f)).cloned();
            (images.into_iter().chain(metadata).collect(), Reader::Images)
        } else {
            (files, Reader::Parsed)
        };
        Split { config: config.into(), split: split.into(), files, reader }
    }
}

/// Whether `path` is an image folder's metadata file.
fn is_metadata(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    name == "metadata.csv" || name == "metadata.jsonl"
}

/// The rows of an image folder split: its images in path order, and their labels or metadata.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageFolder {
    pub images: Vec<String>,
    /// Columns besides `image`: `label` (the folder names as a `ClassLabel`), or the metadata's.
    pub table: Table,
    /// The class names when the rows are labelled by folder.
    pub classes: Option<Vec<String>>,
}

impl ImageFolder {
    /// An image folder from its split's files and its metadata files' contents (path, parsed):
    /// rows described by metadata when there is some (joined on `file_name`, relative to the
    /// metadata file's folder), else labelled by their folders when there are two or more.
    pub fn new(files: &[String], metadata: Vec<(String, Table)>) -> Result<ImageFolder, ViewerError> {
        let mut images: Vec<String> = files.iter().filter(|f| Format::of(f) == Some(Format::Image)).cloned().collect();
        images.sort();
        let parent = |p: &str| p.rsplit_once('/').map(|(dir, _)| dir.rsplit('/').next().unwrap_or(dir).to_string()).unwrap_or_default();
        if metadata.is_empty() {
            let mut classes: Vec<String> = images.iter().map(|p| parent(p)).collect();
            classes.sort();
            classes.dedup();
            if classes.len() < 2 {
                return Ok(ImageFolder { table: Table { columns: vec![], rows: vec![vec![]; images.len()] }, images, classes: None });
            }
            let rows = images.iter().map(|p| vec![json!(classes.iter().position(|c| *c == parent(p)).unwrap_or(0))]).collect();
            return Ok(ImageFolder { images, table: Table { columns: vec!["label".into()], rows }, classes: Some(classes) });
        }
        // Columns of every metadata file but `file_name`, by name.
        let mut columns: Vec<String> = Vec::new();
        for (_, table) in &metadata {
            for c in &table.columns {
                if c != "file_name" && !columns.contains(c) {
                    columns.push(c.clone());
                }
            }
        }
        let mut described: std::collections::HashMap<String, Vec<Value>> = Default::default();
        for (path, table) in &metadata {
            let dir = path.rsplit_once('/').map(|(d, _)| format!("{d}/")).unwrap_or_default();
            let key = table.columns.iter().position(|c| c == "file_name").ok_or_else(|| ViewerError::Parse {
                file: path.clone(),
                message: "an image folder's metadata needs a file_name column".into(),
            })?;
            for row in &table.rows {
                let Some(name) = row[key].as_str() else { continue };
                let cells =
                    columns.iter().map(|c| table.columns.iter().position(|x| x == c).map_or(Value::Null, |i| row[i].clone())).collect();
                described.insert(format!("{dir}{name}"), cells);
            }
        }
        // Images the metadata does not describe are not rows, as in `datasets`.
        images.retain(|p| described.contains_key(p));
        let rows = images.iter().map(|p| described.remove(p).unwrap_or_default()).collect();
        Ok(ImageFolder { images, table: Table { columns, rows }, classes: None })
    }

    /// `FeatureItem`s: the image, then the label or the metadata's columns.
    pub fn features(&self) -> Vec<Value> {
        let mut features = vec![json!({ "feature_idx": 0, "name": "image", "type": { "_type": "Image" } })];
        for (i, mut feature) in self.table.features().into_iter().enumerate() {
            feature["feature_idx"] = json!(i + 1);
            if let Some(names) = &self.classes {
                feature["type"] = json!({ "_type": "ClassLabel", "names": names });
            }
            features.push(feature);
        }
        features
    }

    /// `RowItem`s of rows `offset..`, one per `(src, size)` given (the images' URLs and, when
    /// read, their width and height).
    pub fn rows(&self, offset: usize, images: Vec<(String, Option<(usize, usize)>)>) -> Vec<Value> {
        images
            .into_iter()
            .enumerate()
            .filter_map(|(k, (src, size))| {
                let i = offset + k;
                let mut row = Map::new();
                row.insert("image".into(), json!({ "src": src, "width": size.map(|s| s.0), "height": size.map(|s| s.1) }));
                for (c, cell) in self.table.columns.iter().zip(self.table.rows.get(i)?) {
                    row.insert(c.clone(), cell.clone());
                }
                Some(json!({ "row_idx": i, "row": row, "truncated_cells": [] }))
            })
            .collect()
    }

    /// Statistics of the label or metadata columns (a label's as class frequencies).
    pub fn statistics(&self) -> Vec<Value> {
        let Some(names) = &self.classes else { return self.table.statistics() };
        let mut counts = vec![0u64; names.len()];
        for row in &self.table.rows {
            if let Some(c) = row.first().and_then(Value::as_u64) {
                counts[c as usize] += 1;
            }
        }
        let frequencies: Map<String, Value> = names.iter().zip(&counts).map(|(n, c)| (n.clone(), json!(c))).collect();
        vec![json!({ "column_name": "label", "column_type": "class_label", "column_statistics": {
            "nan_count": 0, "nan_proportion": 0.0, "no_label_count": 0, "no_label_proportion": 0.0,
            "n_unique": names.len(), "frequencies": frequencies } })]
    }
}

/// The width and height of an image from its first bytes, when they say.
pub fn image_size(head: &[u8]) -> Option<(usize, usize)> {
    imagesize::blob_size(head).ok().map(|s| (s.width, s.height))
}

/// Bytes of an IDX image file's header, and of a label file's.
pub const IDX_IMAGES_HEADER: u64 = 16;
pub const IDX_LABELS_HEADER: u64 = 8;

/// The shape of an IDX split, from its two headers: examples, and rows × columns of an image.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct IdxShape {
    pub count: u64,
    pub rows: u32,
    pub cols: u32,
}

impl IdxShape {
    /// Checks both headers (magic numbers, equal counts, the files' sizes) and reads the shape.
    pub fn read(images: &[u8], images_size: u64, labels: &[u8], labels_size: u64) -> Result<IdxShape, ViewerError> {
        let word = |b: &[u8], i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let fail = |message: String| ViewerError::Parse { file: "IDX pair".into(), message };
        if images.len() < 16 || word(images, 0) != 0x0803 {
            return Err(fail("the image file does not start with the IDX magic 0x00000803 (unsigned bytes, 3 dimensions)".into()));
        }
        if labels.len() < 8 || word(labels, 0) != 0x0801 {
            return Err(fail("the label file does not start with the IDX magic 0x00000801 (unsigned bytes, 1 dimension)".into()));
        }
        let shape = IdxShape { count: u64::from(word(images, 4)), rows: word(images, 8), cols: word(images, 12) };
        if u64::from(word(labels, 4)) != shape.count {
            return Err(fail(format!("{} images but {} labels", shape.count, word(labels, 4))));
        }
        // A hostile header may claim any dimensions: the arithmetic is checked.
        let expected = shape.count.checked_mul(shape.pixels()).and_then(|n| n.checked_add(IDX_IMAGES_HEADER));
        let Some(expected) = expected else { return Err(fail("the image header's dimensions overflow".into())) };
        if images_size != expected || labels_size != IDX_LABELS_HEADER + shape.count {
            return Err(fail(format!("the files' sizes do not match their headers ({images_size} bytes of images, {expected} expected)")));
        }
        Ok(shape)
    }

    pub fn pixels(&self) -> u64 {
        u64::from(self.rows) * u64::from(self.cols)
    }

    /// The features of an IDX split: an image and a class label (named by its digit).
    pub fn features(&self, classes: u8) -> Vec<Value> {
        let names: Vec<String> = (0..classes).map(|c| c.to_string()).collect();
        vec![
            json!({ "feature_idx": 0, "name": "image", "type": { "_type": "Image" } }),
            json!({ "feature_idx": 1, "name": "label", "type": { "_type": "ClassLabel", "names": names } }),
        ]
    }

    /// `RowItem`s of the rows starting at `offset`, from their pixels and labels: each image a
    /// PNG inlined as a `data:` URI.
    pub fn rows(&self, offset: u64, pixels: &[u8], labels: &[u8]) -> Vec<Value> {
        let size = self.pixels() as usize;
        labels
            .iter()
            .enumerate()
            .filter_map(|(i, &label)| {
                let image = pixels.get(i * size..(i + 1) * size)?;
                let src = format!("data:image/png;base64,{}", base64_encode(&png_gray(self.cols, self.rows, image)));
                Some(json!({
                    "row_idx": offset + i as u64,
                    "row": { "image": { "src": src, "height": self.rows, "width": self.cols }, "label": label },
                    "truncated_cells": [],
                }))
            })
            .collect()
    }

    /// Statistics of an IDX split from all its labels: the class frequencies, and the images'
    /// (fixed) width.
    pub fn statistics(&self, labels: &[u8]) -> Vec<Value> {
        let mut counts = [0u64; 256];
        for &l in labels {
            counts[l as usize] += 1;
        }
        let frequencies: Map<String, Value> =
            counts.iter().enumerate().filter(|(_, n)| **n > 0).map(|(c, n)| (c.to_string(), json!(n))).collect();
        let mut width = numeric(&[f64::from(self.cols)], true);
        width["nan_count"] = json!(0);
        width["nan_proportion"] = json!(0.0);
        vec![
            json!({ "column_name": "image", "column_type": "image", "column_statistics": width }),
            json!({ "column_name": "label", "column_type": "class_label", "column_statistics": {
                "nan_count": 0, "nan_proportion": 0.0, "no_label_count": 0, "no_label_proportion": 0.0,
                "n_unique": frequencies.len(), "frequencies": frequencies } }),
        ]
    }
}

/// An 8-bit grayscale PNG.
fn png_gray(width: u32, height: u32, pixels: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, width, height);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::Eight);
    // Writing into memory with the right number of pixels cannot fail.
    if let Ok(mut writer) = encoder.write_header() {
        let _ = writer.write_image_data(pixels);
    }
    out
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Whether a word of `words` is a whole word of a folder or file name of `path` (split on
/// `-`, `_`, `.`, ` ` and digits, as the Hub's patterns `{split}[-._ 0-9]` do).
fn named_for(path: &str, words: &[&str]) -> bool {
    let lower = path.to_ascii_lowercase();
    lower.split('/').any(|component| {
        let stem = component.rsplit_once('.').map_or(component, |(s, _)| s);
        stem.split(|c: char| matches!(c, '-' | '_' | '.' | ' ') || c.is_ascii_digit()).any(|w| words.contains(&w))
    })
}

/// A parsed data file: its columns in order and its rows, each cell a JSON value.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Table {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Value>>,
}

/// Parses `bytes` of `file` in `format`. CSV/TSV cells that are all integers, all numbers or
/// all booleans in a column become such values; empty cells are null.
pub fn parse(file: &str, format: Format, bytes: &[u8]) -> Result<Table, ViewerError> {
    let fail = |message: String| ViewerError::Parse { file: file.to_string(), message };
    match format {
        Format::Csv | Format::Tsv => {
            let mut reader =
                csv::ReaderBuilder::new().delimiter(if format == Format::Tsv { b'\t' } else { b',' }).flexible(false).from_reader(bytes);
            let columns: Vec<String> = reader.headers().map_err(|e| fail(e.to_string()))?.iter().map(str::to_string).collect();
            let mut text: Vec<Vec<String>> = Vec::new();
            for record in reader.records() {
                let record = record.map_err(|e| fail(e.to_string()))?;
                if (text.len() + 1) * columns.len().max(1) > MAX_CELLS {
                    return Err(too_many(file));
                }
                text.push(record.iter().map(str::to_string).collect());
            }
            let kinds: Vec<CellKind> = (0..columns.len()).map(|c| CellKind::of_column(text.iter().map(|r| r[c].as_str()))).collect();
            let rows = text.into_iter().map(|r| r.into_iter().zip(&kinds).map(|(cell, kind)| kind.value(cell)).collect()).collect();
            Ok(Table { columns, rows })
        }
        Format::JsonLines => {
            let text = std::str::from_utf8(bytes).map_err(|e| fail(format!("not UTF-8: {e}")))?;
            let mut objects = Vec::new();
            for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
                let item: Item = serde_json::from_str(line).map_err(|e| fail(format!("line {}: {e}", i + 1)))?;
                objects.push(item.object().map_err(|found| fail(format!("line {}: expected a JSON object, found {found}", i + 1)))?);
            }
            table_of_objects(file, objects)
        }
        Format::Text => {
            let text = std::str::from_utf8(bytes).map_err(|e| fail(format!("not UTF-8: {e}")))?;
            let mut rows = Vec::new();
            for line in text.lines() {
                if rows.len() >= MAX_CELLS {
                    return Err(too_many(file));
                }
                rows.push(vec![Value::String(line.to_string())]);
            }
            Ok(Table { columns: vec!["text".into()], rows })
        }
        Format::Parquet => Err(ViewerError::Unsupported(format!("{file}: Parquet is read by row group, not parsed whole"))),
        Format::Image => Err(ViewerError::Unsupported(format!("{file}: an image is a row of its folder, not a table"))),
        Format::Json => {
            let items: Vec<Item> = match serde_json::from_slice(bytes) {
                Ok(items) => items,
                Err(e) if e.classify() == serde_json::error::Category::Data => {
                    return Err(fail(format!("expected a JSON array of objects: {e}")));
                }
                Err(e) => return Err(fail(e.to_string())),
            };
            let objects = items
                .into_iter()
                .enumerate()
                .map(|(i, item)| item.object().map_err(|found| fail(format!("item {i}: expected a JSON object, found {found}"))))
                .collect::<Result<Vec<_>, _>>()?;
            table_of_objects(file, objects)
        }
    }
}

/// A JSON value whose top-level object keeps its keys in file order (serde_json's `Map`
/// sorts them), so columns come in the order the data gives them.
pub(crate) enum Item {
    Object(Vec<(String, Value)>),
    Other(Value),
}

impl<'de> serde::Deserialize<'de> for Item {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Item;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Item, A::Error> {
                let mut pairs = Vec::new();
                while let Some(pair) = map.next_entry::<String, Value>()? {
                    pairs.push(pair);
                }
                Ok(Item::Object(pairs))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Item, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element::<Value>()? {
                    items.push(item);
                }
                Ok(Item::Other(Value::Array(items)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Item, E> {
                Ok(Item::Other(Value::String(v.into())))
            }
            fn visit_string<E>(self, v: String) -> Result<Item, E> {
                Ok(Item::Other(Value::String(v)))
            }
            fn visit_bool<E>(self, v: bool) -> Result<Item, E> {
                Ok(Item::Other(Value::Bool(v)))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Item, E> {
                Ok(Item::Other(Value::from(v)))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Item, E> {
                Ok(Item::Other(Value::from(v)))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Item, E> {
                Ok(Item::Other(Value::from(v)))
            }
            fn visit_unit<E>(self) -> Result<Item, E> {
                Ok(Item::Other(Value::Null))
            }
        }
        deserializer.deserialize_any(Visit)
    }
}

impl Item {
    pub(crate) fn object(self) -> Result<Vec<(String, Value)>, &'static str> {
        match self {
            Item::Object(pairs) => Ok(pairs),
            Item::Other(value) => Err(kind_of(&value)),
        }
    }
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Object(_) => "an object",
        Value::Array(_) => "an array",
        Value::String(_) => "a string",
        Value::Number(_) => "a number",
        Value::Bool(_) => "a boolean",
        Value::Null => "null",
    }
}

/// Columns in order of first appearance; a key a row lacks is null there.
fn too_many(file: &str) -> ViewerError {
    ViewerError::Parse { file: file.to_string(), message: format!("more than {MAX_CELLS} cells; the viewer reads smaller files") }
}

fn table_of_objects(file: &str, objects: Vec<Vec<(String, Value)>>) -> Result<Table, ViewerError> {
    let mut columns: Vec<String> = Vec::new();
    let mut index: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    let mut rows = Vec::with_capacity(objects.len());
    for object in objects {
        let mut row = vec![Value::Null; columns.len()];
        for (key, value) in object {
            let i = *index.entry(key.clone()).or_insert_with(|| {
                columns.push(key);
                columns.len() - 1
            });
            if i >= row.len() {
                row.resize(i + 1, Value::Null);
            }
            row[i] = value;
        }
        rows.push(row);
    }
    if rows.len() * columns.len().max(1) > MAX_CELLS {
        return Err(too_many(file));
    }
    for row in &mut rows {
        row.resize(columns.len(), Value::Null);
    }
    Ok(Table { columns, rows })
}

#[derive(Clone, Copy, PartialEq)]
enum CellKind {
    Int,
    Float,
    Bool,
    Text,
}

impl CellKind {
    fn of_column<'a>(cells: impl Iterator<Item = &'a str> + Clone) -> CellKind {
        let filled = cells.filter(|c| !c.is_empty());
        if filled.clone().all(|c| c.parse::<i64>().is_ok()) {
            CellKind::Int
        } else if filled.clone().all(|c| c.parse::<f64>().is_ok()) {
            CellKind::Float
        } else if filled.clone().all(|c| matches!(c.to_ascii_lowercase().as_str(), "true" | "false")) {
            CellKind::Bool
        } else {
            CellKind::Text
        }
    }

    fn value(self, cell: String) -> Value {
        if cell.is_empty() && self != CellKind::Text {
            return Value::Null;
        }
        match self {
            CellKind::Int => cell.parse::<i64>().map_or(Value::Null, Value::from),
            CellKind::Float => cell.parse::<f64>().ok().and_then(serde_json::Number::from_f64).map_or(Value::Null, Value::Number),
            CellKind::Bool => Value::Bool(cell.eq_ignore_ascii_case("true")),
            CellKind::Text => Value::String(cell),
        }
    }
}

/// The `datasets` dtype of a column: the narrowest that holds every non-null value.
fn dtype(values: &[&Value]) -> Value {
    let present: Vec<&&Value> = values.iter().filter(|v| !v.is_null()).collect();
    let simple = |t: &str| json!({ "dtype": t, "_type": "Value" });
    if present.is_empty() {
        simple("null")
    } else if present.iter().all(|v| v.is_boolean()) {
        simple("bool")
    } else if present.iter().all(|v| v.is_i64() || v.is_u64()) {
        simple("int64")
    } else if present.iter().all(|v| v.is_number()) {
        simple("float64")
    } else if present.iter().all(|v| v.is_string()) {
        simple("string")
    } else if present.iter().all(|v| v.is_array()) {
        json!({ "_type": "List", "feature": dtype(&present.iter().filter_map(|v| v.as_array()).flatten().collect::<Vec<_>>()) })
    } else {
        json!({ "_type": "Json" })
    }
}

impl Table {
    /// `FeatureItem`s: `{feature_idx, name, type}`.
    pub fn features(&self) -> Vec<Value> {
        self.columns
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let column: Vec<&Value> = self.rows.iter().map(|r| &r[i]).collect();
                json!({ "feature_idx": i, "name": name, "type": dtype(&column) })
            })
            .collect()
    }

    /// `RowItem`s of the rows at `indexes` (as `/search` and `/filter` found them).
    pub fn rows_at(&self, indexes: &[usize]) -> Vec<Value> {
        indexes
            .iter()
            .filter_map(|&i| {
                let row: Map<String, Value> = self.columns.iter().cloned().zip(self.rows.get(i)?.iter().cloned()).collect();
                Some(json!({ "row_idx": i, "row": row, "truncated_cells": [] }))
            })
            .collect()
    }

    /// `RowItem`s of rows `offset..offset + length`: `{row_idx, row, truncated_cells}`.
    pub fn rows(&self, offset: usize, length: usize) -> Vec<Value> {
        self.rows
            .iter()
            .enumerate()
            .skip(offset)
            .take(length)
            .map(|(i, row)| {
                let row: Map<String, Value> = self.columns.iter().cloned().zip(row.iter().cloned()).collect();
                json!({ "row_idx": i, "row": row, "truncated_cells": [] })
            })
            .collect()
    }

    /// Column statistics in the viewer's shapes: numbers (`int`, `float`: min, max, mean,
    /// median, std, a 10-bin histogram), booleans, labels (`string_label`: up to 40 distinct
    /// strings, with their frequencies) and text (`string_text`: statistics of the lengths).
    pub fn statistics(&self) -> Vec<Value> {
        let n = self.rows.len();
        self.columns
            .iter()
            .enumerate()
            .filter_map(|(i, name)| {
                let column: Vec<&Value> = self.rows.iter().map(|r| &r[i]).collect();
                let nulls = column.iter().filter(|v| v.is_null()).count();
                let proportion = if n == 0 { 0.0 } else { nulls as f64 / n as f64 };
                let present: Vec<&Value> = column.into_iter().filter(|v| !v.is_null()).collect();
                let (column_type, stats) = if !present.is_empty() && present.iter().all(|v| v.is_number()) {
                    let ints = present.iter().all(|v| v.is_i64() || v.is_u64());
                    let values: Vec<f64> = present.iter().filter_map(|v| v.as_f64()).collect();
                    (if ints { "int" } else { "float" }, numeric(&values, ints))
                } else if !present.is_empty() && present.iter().all(|v| v.is_boolean()) {
                    let trues = present.iter().filter(|v| v.as_bool() == Some(true)).count();
                    ("bool", json!({ "frequencies": { "True": trues, "False": present.len() - trues } }))
                } else if !present.is_empty() && present.iter().all(|v| v.is_string()) {
                    let mut counts: std::collections::BTreeMap<&str, u64> = Default::default();
                    for v in &present {
                        *counts.entry(v.as_str().unwrap_or_default()).or_default() += 1;
                    }
                    if counts.len() <= 40 {
                        ("string_label", json!({ "n_unique": counts.len(), "frequencies": counts }))
                    } else {
                        let lengths: Vec<f64> = present.iter().map(|v| v.as_str().unwrap_or_default().chars().count() as f64).collect();
                        ("string_text", numeric(&lengths, true))
                    }
                } else {
                    return None;
                };
                let mut stats = stats;
                stats["nan_count"] = json!(nulls);
                stats["nan_proportion"] = json!(proportion);
                Some(json!({ "column_name": name, "column_type": column_type, "column_statistics": stats }))
            })
            .collect()
    }
}

fn numeric(values: &[f64], ints: bool) -> Value {
    if values.is_empty() {
        return json!({ "min": null, "max": null, "mean": null, "median": null, "std": null, "histogram": null });
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let (min, max) = (sorted[0], sorted[sorted.len() - 1]);
    let mean = values.iter().sum::<f64>() / values.len() as f64;
    let median =
        if sorted.len() % 2 == 1 { sorted[sorted.len() / 2] } else { (sorted[sorted.len() / 2 - 1] + sorted[sorted.len() / 2]) / 2.0 };
    // Sample standard deviation, as the viewer (pandas) reports it.
    let std =
        if values.len() > 1 { (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (values.len() - 1) as f64).sqrt() } else { 0.0 };
    let bins = if ints { ((max - min) as usize + 1).clamp(1, 10) } else { 10 };
    let width = (max - min) / bins as f64;
    let mut hist = vec![0u64; bins];
    for v in values {
        let bin = if width > 0.0 { (((v - min) / width) as usize).min(bins - 1) } else { 0 };
        hist[bin] += 1;
    }
    let edges: Vec<Value> = (0..=bins)
        .map(|i| if i == bins { max } else { min + width * i as f64 })
        .map(|e| if ints { json!(e.round() as i64) } else { json!(e) })
        .collect();
    let num = |v: f64| if ints && v.fract() == 0.0 { json!(v as i64) } else { json!(v) };
    json!({ "min": num(min), "max": num(max), "mean": mean, "median": median, "std": std, "histogram": { "hist": hist, "bin_edges": edges } })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_come_from_file_and_folder_names_or_default_to_train() {
        let found = splits(&["README.md", "data/train-00000.csv", "data/test.csv", "valid.jsonl", ".hidden/train.csv", "notes.md"]);
        let names: Vec<(&str, Vec<&str>)> =
            found.iter().map(|s| (s.split.as_str(), s.files.iter().map(String::as_str).collect())).collect();
        assert_eq!(names, [("train", vec!["data/train-00000.csv"]), ("validation", vec!["valid.jsonl"]), ("test", vec!["data/test.csv"])]);
        let found = splits(&["iris.csv", "README.md"]);
        assert_eq!(
            found,
            [Split { config: "default".into(), split: "train".into(), files: vec!["iris.csv".into()], reader: Reader::Parsed }]
        );
        assert!(splits(&["README.md", "model.bin"]).is_empty());
        // `contest.csv` is not a test split: a split is a whole word.
        assert_eq!(splits(&["contest.csv"])[0].split, "train");
        // MNIST's own file names.
        let mnist = splits(&["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]);
        let names: Vec<&str> = mnist.iter().map(|s| s.split.as_str()).collect();
        assert_eq!(names, ["train", "test"]);
        assert_eq!(
            mnist[1].reader,
            Reader::Idx(IdxPair { images: "t10k-images-idx3-ubyte".into(), labels: "t10k-labels-idx1-ubyte".into() })
        );
    }

    #[test]
    fn a_cards_configs_name_the_splits_and_their_files() {
        let paths = ["README.md", "data/a/train-0.csv", "data/a/train-1.csv", "data/a/test.csv", "extra/x.parquet", "deep/1/2/t.jsonl"];
        let configs = json!([
            {"config_name": "first", "data_files": [{"split": "train", "path": "data/a/train-*.csv"}, {"split": "holdout", "path": ["data/a/test.csv"]}]},
            {"config_name": "pq", "data_files": "extra/*.parquet", "default": true},
            {"config_name": "deep", "data_files": {"validation": "deep/**/*.jsonl"}},
            {"config_name": "shallow", "data_files": "deep/*.jsonl"},
        ]);
        let found = splits_of_card(&configs, &paths).unwrap();
        let names: Vec<(&str, &str, usize, bool)> =
            found.iter().map(|s| (s.config.as_str(), s.split.as_str(), s.files.len(), s.reader == Reader::Parquet)).collect();
        assert_eq!(
            names,
            [("pq", "train", 1, true), ("first", "train", 2, false), ("first", "holdout", 1, false), ("deep", "validation", 1, false)]
        );
        assert!(splits_of_card(&json!({"config_name": "x"}), &paths).unwrap_err().to_string().contains("list of configs"));
        assert!(splits_of_card(&json!([{"data_files": "x"}]), &paths).is_err());
        let many: Vec<Value> = (0..=MAX_CONFIGS).map(|i| json!({"config_name": format!("c{i}"), "data_files": "*.csv"})).collect();
        assert!(splits_of_card(&Value::Array(many), &paths).unwrap_err().to_string().contains("at most"));
    }

    #[test]
    fn csv_columns_get_the_narrowest_type_and_statistics() {
        let table = parse("t.csv", Format::Csv, b"x,y,label,ok\n1,0.5,cat,true\n2,,dog,false\n3,1.5,cat,\n").unwrap();
        let types: Vec<Value> = table.features().iter().map(|f| f["type"]["dtype"].clone()).collect();
        assert_eq!(types, [json!("int64"), json!("float64"), json!("string"), json!("bool")]);
        assert_eq!(
            table.rows(1, 1)[0],
            json!({"row_idx": 1, "row": {"x": 2, "y": null, "label": "dog", "ok": false}, "truncated_cells": []})
        );
        let stats = table.statistics();
        assert_eq!(stats[0]["column_type"], "int");
        assert_eq!(stats[0]["column_statistics"]["mean"], 2.0);
        assert_eq!(stats[0]["column_statistics"]["histogram"]["hist"], json!([1, 1, 1]));
        assert_eq!(stats[1]["column_statistics"]["nan_count"], 1);
        assert_eq!(stats[2]["column_type"], "string_label");
        assert_eq!(stats[2]["column_statistics"]["frequencies"], json!({"cat": 2, "dog": 1}));
    }

    #[test]
    fn broken_files_name_the_place() {
        let err = parse("d.jsonl", Format::JsonLines, b"{\"a\": 1}\n[1]\n").unwrap_err();
        assert_eq!(err.to_string(), "d.jsonl: line 2: expected a JSON object, found an array");
        let err = parse("d.csv", Format::Csv, b"a,b\n1,2,3\n").unwrap_err();
        assert!(err.to_string().starts_with("d.csv: "), "{err}");
        // However a file is shaped, its cells are bounded.
        let wide = format!("{}\n{}\n", "c,".repeat(MAX_CELLS / 2) + "c", "1,".repeat(MAX_CELLS / 2) + "1").repeat(2);
        let err = parse("wide.csv", Format::Csv, wide.as_bytes()).unwrap_err();
        assert!(err.to_string().contains("cells"), "{err}");
        // An IDX header whose dimensions overflow is an error, not a panic.
        let mut images = vec![0, 0, 8, 3];
        for n in [u32::MAX, u32::MAX, u32::MAX] {
            images.extend(n.to_be_bytes());
        }
        let mut labels = vec![0, 0, 8, 1];
        labels.extend(u32::MAX.to_be_bytes());
        let err = IdxShape::read(&images, 16, &labels, 8).unwrap_err();
        assert!(err.to_string().contains("overflow"), "{err}");
    }
}
