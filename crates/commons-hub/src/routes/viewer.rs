//! The dataset viewer, with the paths, parameters and JSON shapes of Hugging Face's dataset
//! viewer API, under `{hub}/api/datasets-server` (so a tool that takes the viewer's base URL
//! works unchanged): `/is-valid`, `/splits`, `/first-rows`, `/rows`, `/size`, `/info`,
//! `/statistics`. Splits come from file and folder names of `main`'s head (`commons-viewer`);
//! CSV, TSV, JSON Lines and JSON arrays of objects are read, and MNIST-style IDX pairs, whose
//! rows are read by range (a page of 100 images reads 100 images, never the file). A split is parsed once per set of
//! blobs and kept in a bounded cache, so a new commit is seen at once and an unchanged split is
//! not read again. A private dataset is 404 for whoever may not read it, like a missing one; a
//! file that does not parse is a 422 naming the file and the place, never a 500.
//!
//! Not yet: Parquet and image folders, `/search`, `/filter`, `/parquet`, the card's
//! `configs:`, and splits larger than [`SPLIT_LIMIT`] (which want a Parquet conversion read by
//! row group).

use std::collections::HashMap;
use std::sync::Arc;

use super::{Path, Query};
use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::http::StatusCode;
use axum::routing::get;
use commons_db::{CommitInfo, CommitOp, FileEntry, NewFile, Repo, RepoKind};
use commons_viewer::{
    ByteSource, Format, IDX_IMAGES_HEADER, IDX_LABELS_HEADER, IdxPair, IdxShape, ImageFolder, ParquetFile, Reader, STATISTICS_ROWS, Split,
    Table, ViewerError,
};
use serde_json::{Value, json};

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};

/// Largest split (its files' bytes together) the viewer parses in memory.
pub const SPLIT_LIMIT: i64 = 8 << 20;
/// Rows of `/first-rows`, and the most `/rows` answers at once (the viewer's own limits).
const FIRST_ROWS: usize = 100;
const MAX_LENGTH: usize = 100;
/// Largest label file of an IDX split read whole (for its classes and statistics).
const IDX_LABELS_LIMIT: i64 = 2 << 20;
/// Parsed splits kept, weighed by the bytes of their files.
const CACHE_BYTES: u64 = 64 << 20;

/// Parsed splits by the sha256s of their files; at most two parse at once, so memory stays
/// bounded by two splits plus the cache.
pub struct ViewerCache {
    tables: quick_cache::sync::Cache<String, Arc<Table>, SplitWeight>,
    /// Open Parquet files (their metadata and page offsets) by sha256.
    parquet: quick_cache::sync::Cache<String, ParquetFile, MetadataWeight>,
    parsing: tokio::sync::Semaphore,
    /// One conversion at a time: each reads and writes whole splits.
    converting: tokio::sync::Mutex<()>,
    /// Statistics of splits by their files' sha256s: computing them reads a split or a sample.
    statistics: quick_cache::sync::Cache<String, Arc<(usize, Vec<Value>, bool)>>,
}

#[derive(Clone)]
struct MetadataWeight;

impl quick_cache::Weighter<String, ParquetFile> for MetadataWeight {
    fn weight(&self, _: &String, file: &ParquetFile) -> u64 {
        file.memory().max(1) as u64
    }
}

/// Memory for open Parquet files' metadata.
const METADATA_BYTES: u64 = 32 << 20;

/// A stored file read by range, as the Parquet reader asks.
struct StoredFile {
    cas: commons_storage::Cas,
    sha256: String,
}

impl ByteSource for StoredFile {
    fn read(&self, range: std::ops::Range<u64>) -> futures::future::BoxFuture<'static, Result<bytes::Bytes, String>> {
        let (cas, sha256) = (self.cas.clone(), self.sha256.clone());
        Box::pin(async move { cas.read_span(&sha256, range.start, range.end).await.map(bytes::Bytes::from).map_err(|e| e.to_string()) })
    }
}

/// A viewer error as the viewer's HTTP error: too big is `TooBigContentError`, anything else
/// about a file `FileFormatError`, both 422.
fn unreadable(e: ViewerError) -> ApiError {
    let code = if matches!(e, ViewerError::TooBig(_)) { "TooBigContentError" } else { "FileFormatError" };
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, e.to_string())
}

#[derive(Clone)]
struct SplitWeight;

impl quick_cache::Weighter<String, Arc<Table>> for SplitWeight {
    fn weight(&self, _: &String, table: &Arc<Table>) -> u64 {
        // Parsed cells take several times their text; rows × columns is what grows.
        (table.rows.len() as u64 * table.columns.len().max(1) as u64 * 64).max(1)
    }
}

impl Default for ViewerCache {
    fn default() -> Self {
        Self {
            tables: quick_cache::sync::Cache::with_weighter(1024, CACHE_BYTES, SplitWeight),
            parquet: quick_cache::sync::Cache::with_weighter(1024, METADATA_BYTES, MetadataWeight),
            parsing: tokio::sync::Semaphore::new(2),
            converting: tokio::sync::Mutex::new(()),
            statistics: quick_cache::sync::Cache::new(1024),
        }
    }
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/parquet", get(parquet_files))
        .route("/search", get(search))
        .route("/filter", get(filter))
        .route("/is-valid", get(is_valid))
        .route("/splits", get(splits))
        .route("/first-rows", get(first_rows))
        .route("/rows", get(rows))
        .route("/size", get(size))
        .route("/info", get(info))
        .route("/statistics", get(statistics))
}

type Params = Query<HashMap<String, String>>;

fn missing(name: &str) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "MissingRequiredParameter", format!("Parameter '{name}' is required"))
}

fn not_found(what: String) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "ResponseNotFound", what)
}

fn param<'a>(q: &'a HashMap<String, String>, name: &str) -> ApiResult<&'a str> {
    q.get(name).map(String::as_str).filter(|v| !v.is_empty()).ok_or_else(|| missing(name))
}

/// The dataset the caller may read, its head of `main`, its files and its splits.
struct Dataset {
    repo: Repo,
    head: String,
    files: Arc<[FileEntry]>,
    splits: Vec<Split>,
    /// Splits of files too large to parse whole (config, split): read from their Parquet
    /// export, so they are `Reader::Parquet` here.
    large: Vec<(String, String)>,
}

async fn dataset(state: &AppState, caller: &Caller, q: &HashMap<String, String>) -> ApiResult<Dataset> {
    let id = param(q, "dataset")?;
    let gone = || not_found(format!("The dataset {id} does not exist, or is not accessible with the current credentials"));
    let (ns, name) = id.split_once('/').ok_or_else(gone)?;
    dataset_named(state, caller, ns, name).await
}

/// Dataset `ns/name` as [`dataset`] finds it.
async fn dataset_named(state: &AppState, caller: &Caller, ns: &str, name: &str) -> ApiResult<Dataset> {
    let gone = || not_found(format!("The dataset {ns}/{name} does not exist, or is not accessible with the current credentials"));
    let repo = state.repos.find(RepoKind::Dataset, ns, name, caller.reader()).await.map_err(|_| gone())?;
    super::require_content(state, caller, &repo).await?;
    let head = state.db.resolve_revision(&repo, "main").await.map_err(|_| gone())?;
    let files = state.db.tree_at(&repo, &head).await?;
    let paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
    // The card's `configs:` when it has them, else the files' names.
    let card = state.repos.card_at(&repo, &head).await?;
    let splits = match card.metadata.get("configs") {
        Some(configs) => commons_viewer::splits_of_card(configs, &paths)
            .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "ConfigNamesError", e.to_string()))?,
        None => commons_viewer::splits(&paths),
    };
    let mut d = Dataset { repo, head, files, splits, large: Vec::new() };
    for i in 0..d.splits.len() {
        if d.splits[i].reader == Reader::Parsed && d.bytes_of(&d.splits[i]) > SPLIT_LIMIT {
            d.large.push((d.splits[i].config.clone(), d.splits[i].split.clone()));
            d.splits[i].reader = Reader::Parquet;
        }
    }
    Ok(d)
}

impl Dataset {
    fn id(&self) -> String {
        self.repo.full_name()
    }

    /// The splits of `config` (every config when none is named); an unknown config is 404.
    fn of_config(&self, config: Option<&str>) -> ApiResult<Vec<&Split>> {
        let splits: Vec<&Split> = self.splits.iter().filter(|s| config.is_none_or(|c| c == s.config)).collect();
        match config {
            Some(c) if splits.is_empty() => Err(not_found(format!("Config {c:?} does not exist in {}", self.id()))),
            _ => Ok(splits),
        }
    }

    fn split(&self, q: &HashMap<String, String>) -> ApiResult<&Split> {
        let config = param(q, "config")?;
        let split = param(q, "split")?;
        self.of_config(Some(config))?
            .into_iter()
            .find(|s| s.split == split)
            .ok_or_else(|| not_found(format!("Split {split:?} does not exist in config {config:?} of {}", self.id())))
    }

    fn entry(&self, path: &str) -> ApiResult<&FileEntry> {
        self.files.iter().find(|f| f.path == path).ok_or_else(|| not_found(format!("{path} is not in {}", self.id())))
    }

    /// An IDX split's shape (from its headers, checked against the files' sizes) and all its
    /// labels; the images are read by range, page by page.
    async fn idx(&self, state: &AppState, pair: &IdxPair) -> ApiResult<(IdxShape, Vec<u8>)> {
        let (images, labels) = (self.entry(&pair.images)?, self.entry(&pair.labels)?);
        if labels.size > IDX_LABELS_LIMIT {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "TooBigContentError",
                format!("{} has more labels than the viewer reads", pair.labels),
            ));
        }
        let _permit = state.viewer.parsing.acquire().await.map_err(ApiError::internal)?;
        let header = state.cas.read_span(&images.sha256, 0, IDX_IMAGES_HEADER.min(images.size as u64)).await?;
        let all_labels = state.cas.read_span(&labels.sha256, 0, labels.size as u64).await?;
        let shape = IdxShape::read(&header, images.size as u64, &all_labels, labels.size as u64)
            .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "FileFormatError", format!("{}: {e}", pair.images)))?;
        Ok((shape, all_labels[IDX_LABELS_HEADER as usize..].to_vec()))
    }

    /// Features, the rows `offset..offset + length` and the number of rows of a split.
    async fn page(
        &self,
        state: &AppState,
        split: &Split,
        offset: usize,
        length: usize,
        base: &str,
    ) -> ApiResult<(Vec<Value>, Vec<Value>, usize)> {
        match &split.reader {
            Reader::Images => {
                let folder = self.image_folder(state, split).await?;
                let end = offset.saturating_add(length).min(folder.images.len());
                let mut images = Vec::new();
                for path in folder.images.get(offset..end).unwrap_or_default() {
                    let entry = self.entry(path)?;
                    // The width and height are in an image's first bytes (for all but JPEGs with
                    // a large EXIF block, which answer without them).
                    let head = state.cas.read_span(&entry.sha256, 0, (entry.size.max(0) as u64).min(IMAGE_HEAD)).await?;
                    let encoded: Vec<String> =
                        path.split('/').map(|c| percent_encoding::utf8_percent_encode(c, UNRESERVED).to_string()).collect();
                    let src = format!("{base}/datasets/{}/resolve/{}/{}", self.id(), self.head, encoded.join("/"));
                    images.push((src, commons_viewer::image_size(&head)));
                }
                Ok((folder.features(), folder.rows(offset, images), folder.images.len()))
            }
            Reader::Parquet => {
                let files = self.parquet(state, split).await?;
                let total: u64 = files.iter().map(ParquetFile::num_rows).sum();
                let features = files.first().map(ParquetFile::features).unwrap_or_default();
                let columns = files.first().map(ParquetFile::columns).unwrap_or_default();
                let (mut rows, mut first) = (Vec::new(), 0u64);
                let (mut at, end) = (offset as u64, (offset as u64).saturating_add(length as u64).min(total));
                for file in &files {
                    let last = first + file.num_rows();
                    if at < end && at < last {
                        let _permit = state.viewer.parsing.acquire().await.map_err(ApiError::internal)?;
                        let read = file.rows(at - first, (end.min(last) - at) as usize).await.map_err(unreadable)?;
                        for read in read {
                            let row: serde_json::Map<String, Value> = columns.iter().cloned().zip(read.cells).collect();
                            rows.push(json!({ "row_idx": at, "row": row, "truncated_cells": read.truncated }));
                            at += 1;
                        }
                    }
                    first = last;
                }
                Ok((features, rows, total as usize))
            }
            Reader::Idx(pair) => {
                let (shape, labels) = self.idx(state, pair).await?;
                let classes = labels.iter().max().map_or(0, |m| m.saturating_add(1));
                let start = (offset as u64).min(shape.count);
                let end = (start + length as u64).min(shape.count);
                let images = self.entry(&pair.images)?;
                let pixels = state
                    .cas
                    .read_span(&images.sha256, IDX_IMAGES_HEADER + start * shape.pixels(), IDX_IMAGES_HEADER + end * shape.pixels())
                    .await?;
                let rows = shape.rows(start, &pixels, &labels[start as usize..end as usize]);
                Ok((shape.features(classes), rows, shape.count as usize))
            }
            Reader::Parsed => {
                let table = self.table(state, split).await?;
                Ok((table.features(), table.rows(offset, length), table.rows.len()))
            }
        }
    }

    /// The first [`QUERY_ROWS`] rows of a Parquet split as a table (kept with the parsed
    /// splits), and whether that is only a part of it.
    async fn parquet_sample(&self, state: &AppState, split: &Split) -> ApiResult<(Arc<Table>, bool)> {
        let files = self.parquet(state, split).await?;
        let key = format!(
            "sample:{}",
            split.files.iter().filter_map(|p| self.entry(p).ok()).map(|e| e.sha256.as_str()).collect::<Vec<_>>().join(",")
        );
        let total: u64 = files.iter().map(ParquetFile::num_rows).sum();
        if let Some(table) = state.viewer.tables.get(&key) {
            let partial = (table.rows.len() as u64) < total;
            return Ok((table, partial));
        }
        let mut sample = Table::default();
        let columns = files.first().map_or(1, |f| f.columns().len().max(1));
        for file in &files {
            let wanted = QUERY_ROWS.min(QUERY_CELLS / columns).saturating_sub(sample.rows.len());
            if wanted == 0 {
                break;
            }
            let _permit = state.viewer.parsing.acquire().await.map_err(ApiError::internal)?;
            let (part, _) = file.sample(wanted).await.map_err(unreadable)?;
            append(&mut sample, part);
        }
        let partial = (sample.rows.len() as u64) < total;
        let sample = Arc::new(sample);
        state.viewer.tables.insert(key, sample.clone());
        Ok((sample, partial))
    }

    /// An image folder split: its images, and its metadata files parsed.
    async fn image_folder(&self, state: &AppState, split: &Split) -> ApiResult<ImageFolder> {
        let mut metadata = Vec::new();
        let mut bytes = 0i64;
        for path in split.files.iter().filter(|p| Format::of(p) != Some(Format::Image)) {
            let entry = self.entry(path)?;
            bytes += entry.size;
            if bytes > SPLIT_LIMIT {
                return Err(unreadable(ViewerError::TooBig(format!(
                    "split {} has more than the {SPLIT_LIMIT} bytes of metadata read",
                    split.split
                ))));
            }
            let format = Format::of(path).ok_or_else(|| ApiError::internal(format!("{path} has no viewer format")))?;
            let bytes = state.repos.read_file(&self.repo, &self.head, path, SPLIT_LIMIT as u64).await?.unwrap_or_default();
            let path = path.clone();
            let table = tokio::task::spawn_blocking(move || commons_viewer::parse(&path, format, &bytes).map(|t| (path, t)))
                .await
                .map_err(ApiError::internal)?
                .map_err(unreadable)?;
            metadata.push(table);
        }
        ImageFolder::new(&split.files, metadata).map_err(unreadable)
    }

    fn is_large(&self, split: &Split) -> bool {
        self.large.iter().any(|(c, s)| *c == split.config && *s == split.split)
    }

    /// A Parquet split's files, open (footers read once, then kept): its own, or for a split
    /// too large to parse whole, its export's (converted now if it has none yet).
    async fn parquet(&self, state: &AppState, split: &Split) -> ApiResult<Vec<ParquetFile>> {
        let sources: Vec<(String, String, i64)> = if self.is_large(split) {
            let export = self.export(state).await?;
            if let Some((_, _, why)) = export.failed.iter().find(|(c, s, _)| *c == split.config && *s == split.split) {
                return Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "TooBigContentError", why.clone()));
            }
            export
                .files
                .iter()
                .filter(|f| f.config == split.config && f.split == split.split)
                .map(|f| (f.path.clone(), f.sha256.clone(), f.size))
                .collect()
        } else {
            self.own_files(split)?
        };
        open_parquet(state, sources).await
    }

    /// A split's files as (path, sha256, size).
    fn own_files(&self, split: &Split) -> ApiResult<Vec<(String, String, i64)>> {
        split.files.iter().map(|p| self.entry(p).map(|e| (p.clone(), e.sha256.clone(), e.size))).collect()
    }
}

/// Parquet files (path, sha256, size) open: footers read once, then kept.
async fn open_parquet(state: &AppState, sources: Vec<(String, String, i64)>) -> ApiResult<Vec<ParquetFile>> {
    let mut files = Vec::with_capacity(sources.len());
    for (path, sha256, size) in sources {
        let file = match state.viewer.parquet.get(&sha256) {
            Some(file) => file,
            None => {
                let source = Arc::new(StoredFile { cas: state.cas.clone(), sha256: sha256.clone() });
                let file = ParquetFile::open(&path, source, size.max(0) as u64).await.map_err(unreadable)?;
                state.viewer.parquet.insert(sha256, file.clone());
                file
            }
        };
        files.push(file);
    }
    Ok(files)
}

impl Dataset {
    /// Streams the files of a split too large to parse whole into one Parquet file (each read
    /// twice from the store, a block of rows at a time in memory), stored; its sha256.
    async fn convert_large(&self, state: &AppState, split: &Split) -> ApiResult<String> {
        let total = self.bytes_of(split);
        if total > CONVERT_LIMIT {
            return Err(unreadable(ViewerError::TooBig(format!(
                "split {} has {total} bytes of data; splits of at most {CONVERT_LIMIT} bytes are converted",
                split.split
            ))));
        }
        let entries: Vec<FileEntry> = split.files.iter().map(|p| self.entry(p).cloned()).collect::<ApiResult<_>>()?;
        let files: Vec<(String, Format)> = entries.iter().filter_map(|e| Format::of(&e.path).map(|f| (e.path.clone(), f))).collect();
        let out = tempfile::tempfile_in(&state.upload_dir).map_err(ApiError::internal)?;
        let (repos, handle) = (state.repos.clone(), tokio::runtime::Handle::current());
        let converted = tokio::task::spawn_blocking(move || {
            let mut out = out;
            let open = |path: &str| {
                use futures::TryStreamExt;
                let entry = entries.iter().find(|e| e.path == path).ok_or_else(|| ViewerError::Unsupported(format!("{path} is gone")))?;
                let stream = handle.block_on(repos.stream_file(entry)).map_err(|e| ViewerError::Unsupported(e.to_string()))?;
                let reader = tokio_util::io::StreamReader::new(stream.map_err(std::io::Error::other));
                Ok(tokio_util::io::SyncIoBridge::new_with_handle(reader, handle.clone()))
            };
            commons_viewer::convert_stream(&files, open, &mut out).map(|_| out)
        })
        .await
        .map_err(ApiError::internal)?
        .map_err(unreadable)?;
        let size = converted.metadata().map_err(ApiError::internal)?.len();
        let mut file = tokio::fs::File::from_std(converted);
        tokio::io::AsyncSeekExt::seek(&mut file, std::io::SeekFrom::Start(0)).await.map_err(ApiError::internal)?;
        let mut writer = state.cas.writer(size, None);
        let mut buffer = vec![0u8; 1 << 20];
        loop {
            let n = tokio::io::AsyncReadExt::read(&mut file, &mut buffer).await.map_err(ApiError::internal)?;
            if n == 0 {
                break;
            }
            writer.write(&buffer[..n]).await?;
        }
        Ok(writer.finish().await?.sha256)
    }

    /// The number of rows and the column statistics of a split, and whether they were computed
    /// over a part of it (the first [`STATISTICS_ROWS`] rows of a large Parquet split).
    async fn statistics(&self, state: &AppState, split: &Split) -> ApiResult<(usize, Vec<Value>, bool)> {
        match &split.reader {
            Reader::Idx(pair) => {
                let (shape, labels) = self.idx(state, pair).await?;
                Ok((shape.count as usize, shape.statistics(&labels), false))
            }
            Reader::Images => {
                let folder = self.image_folder(state, split).await?;
                Ok((folder.images.len(), folder.statistics(), false))
            }
            Reader::Parsed => {
                let table = self.table(state, split).await?;
                let rows = table.rows.len();
                Ok((rows, tokio::task::spawn_blocking(move || table.statistics()).await.map_err(ApiError::internal)?, false))
            }
            Reader::Parquet => {
                let files = self.parquet(state, split).await?;
                let total: u64 = files.iter().map(ParquetFile::num_rows).sum();
                let (mut sample, mut whole) = (Table::default(), true);
                for file in &files {
                    let wanted = STATISTICS_ROWS.saturating_sub(sample.rows.len());
                    if wanted == 0 {
                        whole = false;
                        break;
                    }
                    let _permit = state.viewer.parsing.acquire().await.map_err(ApiError::internal)?;
                    let (part, all) = file.sample(wanted).await.map_err(unreadable)?;
                    whole &= all;
                    append(&mut sample, part);
                }
                let stats = tokio::task::spawn_blocking(move || sample.statistics()).await.map_err(ApiError::internal)?;
                Ok((total as usize, stats, !whole))
            }
        }
    }

    fn bytes_of(&self, split: &Split) -> i64 {
        self.files.iter().filter(|f| split.files.contains(&f.path)).map(|f| f.size).sum()
    }

    /// The split parsed: from the cache when its files have not changed, else read and parsed
    /// (files in order; columns joined by name).
    async fn table(&self, state: &AppState, split: &Split) -> ApiResult<Arc<Table>> {
        let entries: Vec<&FileEntry> = split.files.iter().filter_map(|p| self.files.iter().find(|f| &f.path == p)).collect();
        let key = entries.iter().map(|e| e.sha256.as_str()).collect::<Vec<_>>().join(",");
        if let Some(table) = state.viewer.tables.get(&key) {
            return Ok(table);
        }
        let total = self.bytes_of(split);
        if total > SPLIT_LIMIT {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "TooBigContentError",
                format!(
                    "split {} of {} has {total} bytes of data; the viewer reads splits of at most {SPLIT_LIMIT} bytes until it converts them to Parquet",
                    split.split,
                    self.id()
                ),
            ));
        }
        let _permit = state.viewer.parsing.acquire().await.map_err(ApiError::internal)?;
        let mut table = Table::default();
        for entry in entries {
            let format = Format::of(&entry.path).ok_or_else(|| ApiError::internal(format!("{} has no viewer format", entry.path)))?;
            let bytes = state.repos.read_file(&self.repo, &self.head, &entry.path, SPLIT_LIMIT as u64).await?;
            let bytes = bytes.unwrap_or_default();
            let parsed = tokio::task::spawn_blocking({
                let path = entry.path.clone();
                move || commons_viewer::parse(&path, format, &bytes)
            })
            .await
            .map_err(ApiError::internal)?
            .map_err(unreadable)?;
            append(&mut table, parsed);
        }
        let table = Arc::new(table);
        state.viewer.tables.insert(key, table.clone());
        Ok(table)
    }
}

/// Appends `more`'s rows to `table`, matching columns by name (new columns are null before).
fn append(table: &mut Table, more: Table) {
    let mut map = Vec::with_capacity(more.columns.len());
    for column in &more.columns {
        let index = match table.columns.iter().position(|c| c == column) {
            Some(i) => i,
            None => {
                table.columns.push(column.clone());
                for row in &mut table.rows {
                    row.push(Value::Null);
                }
                table.columns.len() - 1
            }
        };
        map.push(index);
    }
    let width = table.columns.len();
    for row in more.rows {
        let mut full = vec![Value::Null; width];
        for (cell, &i) in row.into_iter().zip(&map) {
            full[i] = cell;
        }
        table.rows.push(full);
    }
}

async fn is_valid(State(state): State<AppState>, caller: Caller, Query(q): Params) -> ApiResult<Json<Value>> {
    let d = dataset(&state, &caller, &q).await?;
    let viewable = !d.splits.is_empty();
    let queryable = d.splits.iter().any(|s| matches!(s.reader, Reader::Parsed | Reader::Parquet));
    Ok(Json(json!({ "preview": viewable, "viewer": viewable, "search": queryable, "filter": queryable, "statistics": viewable })))
}

/// Rows a Parquet split's `/search` and `/filter` look through (`partial` beyond them).
const QUERY_ROWS: usize = 200_000;
/// Cells of that sample at most, so that it stays in the cache (see `SplitWeight`) rather than
/// being read again by every query.
const QUERY_CELLS: usize = 1 << 19;

/// `/search` and `/filter`: the rows of a split that a query finds, paged.
async fn query_rows(
    state: &AppState,
    caller: &Caller,
    q: &HashMap<String, String>,
    find: impl FnOnce(&Table) -> Result<Vec<usize>, ViewerError> + Send + 'static,
) -> ApiResult<Json<Value>> {
    let offset = number(q, "offset", 0)?;
    let length = number(q, "length", MAX_LENGTH)?.min(MAX_LENGTH);
    let d = dataset(state, caller, q).await?;
    let split = d.split(q)?;
    let (table, partial) = match &split.reader {
        Reader::Parsed => (d.table(state, split).await?, false),
        Reader::Parquet => d.parquet_sample(state, split).await?,
        Reader::Idx(_) | Reader::Images => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "FeaturesError",
                format!("split {} of {} holds images and labels: it is paged, not searched", split.split, d.id()),
            ));
        }
    };
    // Queries look through up to a sample's cells: as many at once as parses.
    let _permit = state.viewer.parsing.acquire().await.map_err(ApiError::internal)?;
    let found = tokio::task::spawn_blocking(move || find(&table).map(|found| (table, found)))
        .await
        .map_err(ApiError::internal)?
        .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "InvalidParameter", e.to_string()))?;
    let (table, found) = found;
    let page: Vec<usize> = found.iter().copied().skip(offset).take(length).collect();
    Ok(Json(json!({
        "features": table.features(), "rows": table.rows_at(&page), "num_rows_total": found.len(), "num_rows_per_page": MAX_LENGTH,
        "partial": partial,
    })))
}

async fn search(State(state): State<AppState>, caller: Caller, Query(q): Params) -> ApiResult<Json<Value>> {
    let query = param(&q, "query")?.to_string();
    if query.len() > commons_viewer::QUERY_CHARS {
        return Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "InvalidParameter", "Parameter 'query' is too long"));
    }
    query_rows(&state, &caller, &q, move |table| Ok(commons_viewer::search(table, &query))).await
}

async fn filter(State(state): State<AppState>, caller: Caller, Query(q): Params) -> ApiResult<Json<Value>> {
    let condition = q.get("where").cloned().unwrap_or_default();
    let orderby = q.get("orderby").cloned().unwrap_or_default();
    if condition.is_empty() && orderby.is_empty() {
        return Err(missing("where"));
    }
    query_rows(&state, &caller, &q, move |table| commons_viewer::filter(table, &condition, &orderby)).await
}

async fn splits(State(state): State<AppState>, caller: Caller, Query(q): Params) -> ApiResult<Json<Value>> {
    let d = dataset(&state, &caller, &q).await?;
    let list: Vec<Value> = d
        .of_config(q.get("config").map(String::as_str))?
        .iter()
        .map(|s| json!({ "dataset": d.id(), "config": s.config, "split": s.split }))
        .collect();
    Ok(Json(json!({ "splits": list, "pending": [], "failed": [] })))
}

async fn first_rows(State(state): State<AppState>, caller: Caller, headers: HeaderMap, Query(q): Params) -> ApiResult<Json<Value>> {
    let d = dataset(&state, &caller, &q).await?;
    let split = d.split(&q)?;
    let (features, rows, total) = d.page(&state, split, 0, FIRST_ROWS, &super::base_url(&state, &headers)).await?;
    Ok(Json(json!({
        "dataset": d.id(), "config": split.config, "split": split.split, "features": features, "rows": rows, "truncated": total > FIRST_ROWS,
    })))
}

fn number(q: &HashMap<String, String>, name: &str, default: usize) -> ApiResult<usize> {
    match q.get(name) {
        None => Ok(default),
        Some(v) => v.parse::<usize>().map_err(|_| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "InvalidParameter",
                format!("Parameter '{name}' must be a non-negative integer"),
            )
        }),
    }
}

async fn rows(State(state): State<AppState>, caller: Caller, headers: HeaderMap, Query(q): Params) -> ApiResult<Json<Value>> {
    let offset = number(&q, "offset", 0)?;
    let length = number(&q, "length", MAX_LENGTH)?;
    if length > MAX_LENGTH {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "InvalidParameter",
            format!("Parameter 'length' must be at most {MAX_LENGTH}"),
        ));
    }
    let d = dataset(&state, &caller, &q).await?;
    let split = d.split(&q)?;
    let (features, rows, total) = d.page(&state, split, offset, length, &super::base_url(&state, &headers)).await?;
    Ok(Json(json!({ "features": features, "rows": rows, "num_rows_total": total, "num_rows_per_page": MAX_LENGTH, "partial": false })))
}

async fn statistics(State(state): State<AppState>, caller: Caller, Query(q): Params) -> ApiResult<Json<Value>> {
    let d = dataset(&state, &caller, &q).await?;
    let split = d.split(&q)?;
    let computed = d.cached_statistics(&state, split).await?;
    let (num_examples, stats, partial) = computed.as_ref();
    Ok(Json(json!({ "num_examples": num_examples, "statistics": stats, "partial": partial })))
}

impl Dataset {
    /// A split's statistics, computed once per set of blobs.
    async fn cached_statistics(&self, state: &AppState, split: &Split) -> ApiResult<Arc<(usize, Vec<Value>, bool)>> {
        let key = split.files.iter().filter_map(|p| self.entry(p).ok()).map(|e| e.sha256.as_str()).collect::<Vec<_>>().join(",");
        if let Some(computed) = state.viewer.statistics.get(&key) {
            return Ok(computed);
        }
        let computed = Arc::new(self.statistics(state, split).await?);
        state.viewer.statistics.insert(key, computed.clone());
        Ok(computed)
    }
}

/// What the dataset viewer's page shows: the dataset's splits, and a page of one split's rows
/// (the `/rows` answer's `features` and `rows`) with its statistics when asked for.
pub(crate) struct ViewerPage {
    pub repo: Repo,
    /// Every (config, split) of the dataset.
    pub splits: Vec<(String, String)>,
    pub config: String,
    pub split: String,
    pub features: Vec<Value>,
    pub rows: Vec<Value>,
    pub total: usize,
    pub statistics: Option<Vec<Value>>,
}

/// The viewer's page of `ns/name` as `caller` may read it: `length` rows of `config`/`split`
/// (the first split when none is named) from `offset`, through the same readers as `/rows`.
#[allow(clippy::too_many_arguments)] // the page's own parameters, each from its URL
pub(crate) async fn viewer_page(
    state: &AppState,
    caller: &Caller,
    ns: &str,
    name: &str,
    config: Option<&str>,
    split: Option<&str>,
    offset: usize,
    length: usize,
    with_statistics: bool,
) -> ApiResult<ViewerPage> {
    let d = dataset_named(state, caller, ns, name).await?;
    let chosen = match (config, split) {
        (Some(c), Some(s)) => d
            .splits
            .iter()
            .find(|x| x.config == c && x.split == s)
            .ok_or_else(|| not_found(format!("Split {s:?} does not exist in config {c:?} of {}", d.id())))?,
        _ => d.splits.first().ok_or_else(|| not_found(format!("{} has no file the viewer reads", d.id())))?,
    };
    let (features, rows, total) = d.page(state, chosen, offset, length.min(MAX_LENGTH), "").await?;
    let statistics = if with_statistics { Some(d.cached_statistics(state, chosen).await?.1.clone()) } else { None };
    Ok(ViewerPage {
        splits: d.splits.iter().map(|x| (x.config.clone(), x.split.clone())).collect(),
        config: chosen.config.clone(),
        split: chosen.split.clone(),
        features,
        rows,
        total,
        statistics,
        repo: d.repo,
    })
}

async fn size(State(state): State<AppState>, caller: Caller, Query(q): Params) -> ApiResult<Json<Value>> {
    let d = dataset(&state, &caller, &q).await?;
    let asked = q.get("config").map(String::as_str);
    let mut splits = Vec::new();
    let mut configs: Vec<(String, i64, usize, usize)> = Vec::new();
    for split in d.of_config(asked)? {
        let (features, _, count) = d.page(&state, split, 0, 0, "").await?;
        let split_bytes = d.bytes_of(split);
        match configs.iter_mut().find(|c| c.0 == split.config) {
            Some(c) => (c.1, c.2, c.3) = (c.1 + split_bytes, c.2 + count, c.3.max(features.len())),
            None => configs.push((split.config.clone(), split_bytes, count, features.len())),
        }
        splits.push(json!({ "dataset": d.id(), "config": split.config, "split": split.split, "num_bytes_original_files": split_bytes,
            "num_rows": count, "num_columns": features.len() }));
    }
    let configs: Vec<Value> = configs
        .iter()
        .map(|(c, bytes, rows, columns)| {
            json!({ "dataset": d.id(), "config": c, "num_bytes_original_files": bytes, "num_rows": rows, "num_columns": columns })
        })
        .collect();
    // A config's size, or the dataset's with its configs, as the viewer answers each.
    let size = match asked {
        Some(_) => json!({ "config": configs.first(), "splits": splits }),
        None => {
            let bytes: i64 = configs.iter().filter_map(|c| c["num_bytes_original_files"].as_i64()).sum();
            let rows: u64 = configs.iter().filter_map(|c| c["num_rows"].as_u64()).sum();
            json!({ "dataset": { "dataset": d.id(), "num_bytes_original_files": bytes, "num_rows": rows, "estimated_num_rows": null },
                    "configs": configs, "splits": splits })
        }
    };
    Ok(Json(json!({ "size": size, "pending": [], "failed": [], "partial": false })))
}

async fn info(State(state): State<AppState>, caller: Caller, Query(q): Params) -> ApiResult<Json<Value>> {
    let d = dataset(&state, &caller, &q).await?;
    let asked = q.get("config").map(String::as_str);
    type Fields = serde_json::Map<String, Value>;
    // Per config: its features and its splits.
    let mut infos: Vec<(String, Fields, Fields)> = Vec::new();
    for split in d.of_config(asked)? {
        let (split_features, _, count) = d.page(&state, split, 0, 0, "").await?;
        if !infos.iter().any(|i| i.0 == split.config) {
            infos.push((split.config.clone(), Default::default(), Default::default()));
        }
        let Some((_, features, splits)) = infos.iter_mut().find(|i| i.0 == split.config) else { continue };
        for feature in split_features {
            if let Some(name) = feature["name"].as_str() {
                features.entry(name.to_string()).or_insert_with(|| feature["type"].clone());
            }
        }
        splits.insert(
            split.split.clone(),
            json!({ "name": split.split, "num_bytes": d.bytes_of(split), "num_examples": count, "dataset_name": d.repo.name }),
        );
    }
    let mut infos: serde_json::Map<String, Value> = infos
        .into_iter()
        .map(|(config, features, splits)| {
            let info = json!({ "dataset_name": d.repo.name, "config_name": config, "features": features, "splits": splits });
            (config, info)
        })
        .collect();
    // One config's `DatasetInfo`, or the dataset's by config, as the viewer answers each.
    let dataset_info = match asked {
        Some(c) => infos.remove(c).unwrap_or_default(),
        None => Value::Object(infos),
    };
    Ok(Json(json!({ "dataset_info": dataset_info, "pending": [], "failed": [], "partial": false })))
}

/// The branch that holds Parquet exports of `main`'s splits, as on the Hub.
pub const PARQUET_BRANCH: &str = "refs/convert/parquet";
/// Who commits the exports.
const CONVERTER: &str = "parquet-converter";
/// First line of an export's commit message; the source commit follows it.
const EXPORT_OF: &str = "Parquet export of ";
/// What an export's message says of a split it could not convert.
const NOT_CONVERTED: &str = " not converted: ";
/// What a path segment of a URL keeps as it is (RFC 3986's unreserved characters).
const UNRESERVED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');
/// Bytes of an image read for its width and height.
const IMAGE_HEAD: u64 = 4096;
/// Largest split of CSV, TSV, JSON Lines or text converted to Parquet.
const CONVERT_LIMIT: i64 = 8 << 30;
/// Most bytes of images an image folder's export holds (they are read into memory).
const CONVERT_IMAGES_LIMIT: i64 = 128 << 20;
/// Largest IDX image file converted.
const CONVERT_IDX_LIMIT: i64 = 256 << 20;
/// Images read, encoded and written at a time while converting an IDX split.
const IDX_BLOCK: u64 = 10_000;

/// The Parquet export of a dataset's `main`: files by split, and the splits that failed.
struct Export {
    files: Vec<ExportFile>,
    failed: Vec<(String, String, String)>,
}

struct ExportFile {
    config: String,
    split: String,
    sha256: String,
    path: String,
    size: i64,
}

impl Dataset {
    /// The Parquet export of `main`'s head: the one on [`PARQUET_BRANCH`] when it was made from
    /// this head, else made now (once: concurrent callers wait for the first) and committed there.
    async fn export(&self, state: &AppState) -> ApiResult<Export> {
        if let Some(export) = self.current_export(state).await? {
            return Ok(export);
        }
        let _one = state.viewer.converting.lock().await;
        if let Some(export) = self.current_export(state).await? {
            return Ok(export);
        }
        self.convert(state).await?;
        self.current_export(state).await?.ok_or_else(|| ApiError::internal("the export just committed is not on its branch"))
    }

    /// The export on [`PARQUET_BRANCH`] if it was made from `main`'s head.
    async fn current_export(&self, state: &AppState) -> ApiResult<Option<Export>> {
        let Ok(commit) = state.db.resolve_revision(&self.repo, PARQUET_BRANCH).await else { return Ok(None) };
        let Some(info) = state.db.get_commit(&self.repo, &commit).await? else { return Ok(None) };
        let mut lines = info.message.lines();
        if lines.next().and_then(|l| l.strip_prefix(EXPORT_OF)) != Some(self.head.as_str()) {
            return Ok(None);
        }
        let failed = lines
            .filter_map(|l| l.strip_prefix("- "))
            .filter_map(|l| l.split_once(NOT_CONVERTED))
            .filter_map(|(at, why)| at.split_once('/').map(|(c, s)| (c.to_string(), s.to_string(), why.to_string())))
            .collect();
        let files = state
            .db
            .tree_at(&self.repo, &commit)
            .await?
            .iter()
            .filter(|f| f.path.ends_with(".parquet"))
            .filter_map(|f| {
                let mut parts = f.path.splitn(3, '/');
                let (config, split) = (parts.next()?, parts.next()?);
                parts.next()?;
                Some(ExportFile {
                    config: config.into(),
                    split: split.into(),
                    sha256: f.sha256.clone(),
                    path: f.path.clone(),
                    size: f.size,
                })
            })
            .collect();
        Ok(Some(Export { files, failed }))
    }

    /// Converts every split and commits the files to [`PARQUET_BRANCH`], replacing what was
    /// there: Parquet splits by reference to their own blobs (the store keeps one copy), parsed
    /// splits and IDX pairs written anew. A split that cannot be converted is named, with why,
    /// in the commit message.
    async fn convert(&self, state: &AppState) -> ApiResult<()> {
        let mut puts = Vec::new();
        let mut failed = Vec::new();
        for split in &self.splits {
            let dir = format!("{}/{}", split.config, split.split);
            match self.convert_split(state, split).await {
                Ok(files) => {
                    for (i, sha256) in files.into_iter().enumerate() {
                        puts.push(CommitOp::Put(NewFile { path: format!("{dir}/{i:04}.parquet"), sha256, lfs: true }));
                    }
                }
                // What the data is wrong or too big for stays recorded; a failing store is
                // answered as such and nothing is committed.
                Err(e) if e.status.is_client_error() => failed.push(format!("- {dir}{NOT_CONVERTED}{}", e.message.replace('\n', " "))),
                Err(e) => return Err(e),
            }
        }
        let parent = match state.db.resolve_revision(&self.repo, PARQUET_BRANCH).await {
            Ok(commit) => commit,
            Err(_) => self.head.clone(),
        };
        // The branch holds the exports alone: whatever the parent had goes, but its attributes.
        let mut ops: Vec<CommitOp> = state
            .db
            .tree_at(&self.repo, &parent)
            .await?
            .iter()
            .filter(|f| f.path != ".gitattributes")
            .map(|f| CommitOp::Delete(f.path.clone()))
            .collect();
        ops.extend(puts);
        let message = std::iter::once(format!("{EXPORT_OF}{}", self.head)).chain(failed).collect::<Vec<_>>().join("\n");
        let info = CommitInfo { author: CONVERTER, title: "Update parquet files", message: &message };
        state.db.commit_onto(&self.repo, PARQUET_BRANCH, &parent, &ops, &info, commons_db::now_unix()).await?;
        Ok(())
    }

    /// The sha256s of a split's Parquet files, stored.
    async fn convert_split(&self, state: &AppState, split: &Split) -> ApiResult<Vec<String>> {
        match &split.reader {
            Reader::Parquet if self.is_large(split) => Ok(vec![self.convert_large(state, split).await?]),
            Reader::Parquet => {
                // Checked as readable, so the export links files that open.
                open_parquet(state, self.own_files(split)?).await?;
                split.files.iter().map(|p| self.entry(p).map(|e| e.sha256.clone())).collect()
            }
            Reader::Parsed => {
                let table = self.table(state, split).await?;
                let bytes = tokio::task::spawn_blocking(move || commons_viewer::table_parquet(&table))
                    .await
                    .map_err(ApiError::internal)?
                    .map_err(unreadable)?;
                Ok(vec![state.cas.put_bytes(&bytes).await?.sha256])
            }
            Reader::Images => {
                let folder = self.image_folder(state, split).await?;
                let mut images = Vec::with_capacity(folder.images.len());
                let mut total = 0i64;
                for path in &folder.images {
                    let entry = self.entry(path)?;
                    total += entry.size;
                    if total > CONVERT_IMAGES_LIMIT {
                        return Err(unreadable(ViewerError::TooBig(format!(
                            "the images of split {} are more than the {CONVERT_IMAGES_LIMIT} bytes converted",
                            split.split
                        ))));
                    }
                    images.push(state.cas.read_span(&entry.sha256, 0, entry.size.max(0) as u64).await?);
                }
                let bytes = tokio::task::spawn_blocking(move || commons_viewer::image_folder_parquet(&folder, images))
                    .await
                    .map_err(ApiError::internal)?
                    .map_err(unreadable)?;
                Ok(vec![state.cas.put_bytes(&bytes).await?.sha256])
            }
            Reader::Idx(pair) => {
                let images = self.entry(&pair.images)?;
                if images.size > CONVERT_IDX_LIMIT {
                    return Err(unreadable(ViewerError::TooBig(format!(
                        "{} is larger than the {CONVERT_IDX_LIMIT} bytes converted",
                        pair.images
                    ))));
                }
                let (shape, labels) = self.idx(state, pair).await?;
                let classes = labels.iter().max().map_or(0, |m| m.saturating_add(1));
                let mut writer = commons_viewer::IdxParquet::new(shape, classes).map_err(unreadable)?;
                let mut at = 0u64;
                while at < shape.count {
                    let end = (at + IDX_BLOCK).min(shape.count);
                    let pixels = state
                        .cas
                        .read_span(&images.sha256, IDX_IMAGES_HEADER + at * shape.pixels(), IDX_IMAGES_HEADER + end * shape.pixels())
                        .await?;
                    let block = labels[at as usize..end as usize].to_vec();
                    // PNG encoding is CPU work: off the async threads.
                    writer = tokio::task::spawn_blocking(move || writer.push(&pixels, &block).map(|()| writer))
                        .await
                        .map_err(ApiError::internal)?
                        .map_err(unreadable)?;
                    at = end;
                }
                let bytes = tokio::task::spawn_blocking(move || writer.finish()).await.map_err(ApiError::internal)?.map_err(unreadable)?;
                Ok(vec![state.cas.put_bytes(&bytes).await?.sha256])
            }
        }
    }
}

/// `{hub}/datasets/{id}/resolve/refs%2Fconvert%2Fparquet/{path}`: where an export file downloads.
fn export_url(base: &str, id: &str, path: &str) -> String {
    let rev = percent_encoding::utf8_percent_encode(PARQUET_BRANCH, percent_encoding::NON_ALPHANUMERIC);
    format!("{base}/datasets/{id}/resolve/{rev}/{path}")
}

/// The viewer's `/parquet`: the export's files of a dataset (or of one config).
async fn parquet_files(State(state): State<AppState>, caller: Caller, headers: HeaderMap, Query(q): Params) -> ApiResult<Json<Value>> {
    let d = dataset(&state, &caller, &q).await?;
    let config = q.get("config").map(String::as_str);
    d.of_config(config)?;
    let export = d.export(&state).await?;
    let base = super::base_url(&state, &headers);
    let files: Vec<Value> = export
        .files
        .iter()
        .filter(|f| config.is_none_or(|c| c == f.config))
        .map(|f| {
            let filename = f.path.rsplit('/').next().unwrap_or(&f.path);
            json!({ "dataset": d.id(), "config": f.config, "split": f.split, "url": export_url(&base, &d.id(), &f.path),
                    "filename": filename, "size": f.size })
        })
        .collect();
    let failed: Vec<Value> = export
        .failed
        .iter()
        .filter(|(c, _, _)| config.is_none_or(|want| want == c))
        .map(|(c, s, why)| json!({ "dataset": d.id(), "config": c, "split": s, "error": why }))
        .collect();
    Ok(Json(json!({ "parquet_files": files, "pending": [], "failed": failed, "partial": false })))
}

/// The hub's `/api/datasets/{id}/parquet[/{config}[/{split}[/{n}.parquet]]]`: the export's
/// files as `{config: {split: [url]}}`, `{split: [url]}` or `[url]`, each URL this route's own
/// `{n}.parquet`, which redirects to the file on [`PARQUET_BRANCH`].
pub(super) async fn hub_parquet(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(p): Path<HashMap<String, String>>,
) -> ApiResult<axum::response::Response> {
    use axum::response::IntoResponse;
    let field = |k: &str| p.get(k).map(String::as_str).unwrap_or_default();
    if field("kind") != "datasets" {
        return Err(ApiError::new(StatusCode::NOT_FOUND, "NotFound", "Parquet exports are made of datasets"));
    }
    let d = dataset_named(&state, &caller, field("ns"), field("name")).await?;
    let export = d.export(&state).await?;
    let base = super::base_url(&state, &headers);
    let api = format!("{base}/api/datasets/{}/parquet", d.id());
    let (config, split) = (p.get("config"), p.get("split"));
    if let Some(config) = config
        && !export.files.iter().any(|f| &f.config == config)
    {
        return Err(not_found(format!("Config {config:?} has no Parquet export in {}", d.id())));
    }
    if let (Some(config), Some(split)) = (config, split)
        && !export.files.iter().any(|f| &f.config == config && &f.split == split)
    {
        return Err(not_found(format!("Split {split:?} of config {config:?} has no Parquet export in {}", d.id())));
    }
    let of = |c: &str, s: &str| -> Vec<&ExportFile> { export.files.iter().filter(|f| f.config == c && f.split == s).collect() };
    let urls = |c: &str, s: &str| -> Vec<String> { (0..of(c, s).len()).map(|i| format!("{api}/{c}/{s}/{i}.parquet")).collect() };
    if let Some(file) = p.get("file") {
        let (config, split) = (field("config"), field("split"));
        let n: usize = file
            .strip_suffix(".parquet")
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| not_found(format!("{file} is not an export file: they are named 0.parquet, 1.parquet, …")))?;
        let target = of(config, split)
            .get(n)
            .map(|f| export_url(&base, &d.id(), &f.path))
            .ok_or_else(|| not_found(format!("{config}/{split} has no file {n}")))?;
        return Ok(axum::response::Redirect::to(&target).into_response());
    }
    let mut configs: std::collections::BTreeMap<&str, serde_json::Map<String, Value>> = Default::default();
    for f in &export.files {
        configs.entry(&f.config).or_default().entry(f.split.clone()).or_insert_with(|| json!(urls(&f.config, &f.split)));
    }
    let body = match (config, split) {
        (Some(c), Some(s)) => json!(urls(c, s)),
        (Some(c), None) => Value::Object(configs.remove(c.as_str()).unwrap_or_default()),
        _ => json!(configs),
    };
    Ok(Json(body).into_response())
}
