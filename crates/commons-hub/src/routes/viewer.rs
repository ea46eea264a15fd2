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

use axum::Json;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use commons_db::{FileEntry, Repo, RepoKind};
use commons_viewer::{
    ByteSource, DEFAULT_CONFIG, Format, IDX_IMAGES_HEADER, IDX_LABELS_HEADER, IdxPair, IdxShape, ParquetFile, Reader, STATISTICS_ROWS,
    Split, Table, ViewerError,
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
        }
    }
}

pub fn routes() -> Router<AppState> {
    Router::new()
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
}

async fn dataset(state: &AppState, caller: &Caller, q: &HashMap<String, String>) -> ApiResult<Dataset> {
    let id = param(q, "dataset")?;
    let gone = || not_found(format!("The dataset {id} does not exist, or is not accessible with the current credentials"));
    let (ns, name) = id.split_once('/').ok_or_else(gone)?;
    let repo = state.repos.find(RepoKind::Dataset, ns, name, caller.reader()).await.map_err(|_| gone())?;
    let head = state.db.resolve_revision(&repo, "main").await.map_err(|_| gone())?;
    let files = state.db.tree_at(&repo, &head).await?;
    let paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
    let splits = commons_viewer::splits(&paths);
    Ok(Dataset { repo, head, files, splits })
}

impl Dataset {
    fn id(&self) -> String {
        self.repo.full_name()
    }

    /// The splits of `config` (every config when none is named); an unknown config is 404.
    fn of_config(&self, config: Option<&str>) -> ApiResult<Vec<&Split>> {
        match config {
            None => Ok(self.splits.iter().collect()),
            Some(c) if c == DEFAULT_CONFIG && !self.splits.is_empty() => Ok(self.splits.iter().collect()),
            Some(c) => Err(not_found(format!("Config {c:?} does not exist in {}", self.id()))),
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
    async fn page(&self, state: &AppState, split: &Split, offset: usize, length: usize) -> ApiResult<(Vec<Value>, Vec<Value>, usize)> {
        match &split.reader {
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

    /// A Parquet split's files, open (footers read once, then kept).
    async fn parquet(&self, state: &AppState, split: &Split) -> ApiResult<Vec<ParquetFile>> {
        let mut files = Vec::with_capacity(split.files.len());
        for path in &split.files {
            let entry = self.entry(path)?;
            let file = match state.viewer.parquet.get(&entry.sha256) {
                Some(file) => file,
                None => {
                    let source = Arc::new(StoredFile { cas: state.cas.clone(), sha256: entry.sha256.clone() });
                    let file = ParquetFile::open(path, source, entry.size.max(0) as u64).await.map_err(unreadable)?;
                    state.viewer.parquet.insert(entry.sha256.clone(), file.clone());
                    file
                }
            };
            files.push(file);
        }
        Ok(files)
    }

    /// The number of rows and the column statistics of a split, and whether they were computed
    /// over a part of it (the first [`STATISTICS_ROWS`] rows of a large Parquet split).
    async fn statistics(&self, state: &AppState, split: &Split) -> ApiResult<(usize, Vec<Value>, bool)> {
        match &split.reader {
            Reader::Idx(pair) => {
                let (shape, labels) = self.idx(state, pair).await?;
                Ok((shape.count as usize, shape.statistics(&labels), false))
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
    Ok(Json(json!({ "preview": viewable, "viewer": viewable, "search": false, "filter": false, "statistics": viewable })))
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

async fn first_rows(State(state): State<AppState>, caller: Caller, Query(q): Params) -> ApiResult<Json<Value>> {
    let d = dataset(&state, &caller, &q).await?;
    let split = d.split(&q)?;
    let (features, rows, total) = d.page(&state, split, 0, FIRST_ROWS).await?;
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

async fn rows(State(state): State<AppState>, caller: Caller, Query(q): Params) -> ApiResult<Json<Value>> {
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
    let (features, rows, total) = d.page(&state, split, offset, length).await?;
    Ok(Json(json!({ "features": features, "rows": rows, "num_rows_total": total, "num_rows_per_page": MAX_LENGTH, "partial": false })))
}

async fn statistics(State(state): State<AppState>, caller: Caller, Query(q): Params) -> ApiResult<Json<Value>> {
    let d = dataset(&state, &caller, &q).await?;
    let split = d.split(&q)?;
    let (num_examples, stats, partial) = d.statistics(&state, split).await?;
    Ok(Json(json!({ "num_examples": num_examples, "statistics": stats, "partial": partial })))
}

async fn size(State(state): State<AppState>, caller: Caller, Query(q): Params) -> ApiResult<Json<Value>> {
    let d = dataset(&state, &caller, &q).await?;
    let mut splits = Vec::new();
    let (mut bytes, mut rows) = (0i64, 0usize);
    for split in d.of_config(q.get("config").map(String::as_str))? {
        let (features, _, count) = d.page(&state, split, 0, 0).await?;
        let split_bytes = d.bytes_of(split);
        bytes += split_bytes;
        rows += count;
        splits.push(json!({ "dataset": d.id(), "config": split.config, "split": split.split, "num_bytes_original_files": split_bytes,
            "num_rows": count, "num_columns": features.len() }));
    }
    let config = json!({ "dataset": d.id(), "config": DEFAULT_CONFIG, "num_bytes_original_files": bytes, "num_rows": rows });
    Ok(Json(json!({
        "size": { "dataset": { "dataset": d.id(), "num_bytes_original_files": bytes, "num_rows": rows, "estimated_num_rows": null },
                  "configs": [config], "splits": splits },
        "pending": [], "failed": [], "partial": false,
    })))
}

async fn info(State(state): State<AppState>, caller: Caller, Query(q): Params) -> ApiResult<Json<Value>> {
    let d = dataset(&state, &caller, &q).await?;
    let mut features = serde_json::Map::new();
    let mut splits = serde_json::Map::new();
    for split in d.of_config(q.get("config").map(String::as_str))? {
        let (split_features, _, count) = d.page(&state, split, 0, 0).await?;
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
    Ok(Json(json!({
        "dataset_info": { "dataset_name": d.repo.name, "config_name": DEFAULT_CONFIG, "features": features, "splits": splits },
        "pending": [], "failed": [], "partial": false,
    })))
}
