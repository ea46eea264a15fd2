//! Streaming reads: a byte range of a file, rebuilt term by term from xorb ranges.
//!
//! A term is read from its xorb in ranged reads of at most `READ_WINDOW` bytes and decoded chunk
//! by chunk, so a reader holds about one window in memory whatever the term, file or range size.
//! Uncompressed chunks (what incompressible data, most weights, is stored as) go out as slices
//! of the window they were read in.

use std::borrow::Cow;

use bytes::{Bytes, BytesMut};
use futures::Stream;
use object_store::ObjectStoreExt;
use xet_core_structures::xorb_object::{XORB_CHUNK_HEADER_LENGTH, parse_chunk_header};

use crate::{Cas, Result, StorageError};

/// Large enough for efficient reads from disk or S3, small enough that many concurrent downloads
/// stay cheap.
pub(crate) const READ_WINDOW: u64 = 2 * 1024 * 1024;

/// Files up to this size are kept whole in memory once read (see [`crate::SmallFiles`]).
pub(crate) const SMALL_FILE_BYTES: u64 = 256 * 1024;

impl Cas {
    /// Streams bytes `[start, end)` of the file whose Xet hash is `file_hash`.
    ///
    /// Only the terms overlapping the range are fetched, so a small range of a large file costs
    /// a small read.
    pub async fn read_range(
        &self,
        file_hash: &str,
        size: u64,
        start: u64,
        end: u64,
    ) -> Result<impl Stream<Item = Result<Bytes>> + Send + 'static> {
        if start > end || end > size {
            return Err(StorageError::InvalidRange { start, end, size });
        }
        if size <= SMALL_FILE_BYTES {
            // Small files (configs, tokenizers, cards) are what every client load asks for: they
            // are answered from memory once read.
            let whole = match self.small_files.get(file_hash) {
                Some(bytes) => bytes,
                None => {
                    let mut whole = BytesMut::with_capacity(size as usize);
                    let mut stream = std::pin::pin!(self.stream_terms(file_hash, size, 0, size).await?);
                    while let Some(piece) = futures::StreamExt::next(&mut stream).await {
                        whole.extend_from_slice(&piece?);
                    }
                    let whole = whole.freeze();
                    self.small_files.insert(file_hash.to_string(), whole.clone());
                    whole
                }
            };
            let range = whole.slice(start as usize..end as usize);
            return Ok(futures::future::Either::Left(futures::stream::once(async move { Ok(range) })));
        }
        Ok(futures::future::Either::Right(self.stream_terms(file_hash, size, start, end).await?))
    }

    /// Bytes `[start, end)` of a file, term by term from the store.
    async fn stream_terms(
        &self,
        file_hash: &str,
        size: u64,
        start: u64,
        end: u64,
    ) -> Result<impl Stream<Item = Result<Bytes>> + Send + 'static> {
        let terms = self.db.file_terms(file_hash).await?;
        let covered: u64 = terms.iter().map(|t| t.raw_size).sum();
        if covered != size {
            return Err(StorageError::Corrupt(format!("file {file_hash} reconstructs to {covered} bytes, expected {size}")));
        }
        let objects = self.objects.clone();
        Ok(async_stream::try_stream! {
            for term in terms {
                let term_end = term.file_offset + term.raw_size;
                if term_end <= start || term.file_offset >= end {
                    continue;
                }
                let mut xorb = Windows { objects: objects.clone(), path: Cas::xorb_path(&term.xorb_hash), next_read: term.byte_start, end: term.byte_end, pending: Bytes::new() };
                let mut offset = term.file_offset;
                let mut remaining_chunks = term.chunk_end - term.chunk_start;
                while remaining_chunks > 0 && offset < end {
                    let header = xorb.take(XORB_CHUNK_HEADER_LENGTH).await.map_err(|e| e.naming(&term.xorb_hash))?;
                    let header: [u8; XORB_CHUNK_HEADER_LENGTH] = header[..].try_into().expect("took a header's length");
                    let header = parse_chunk_header(header)?;
                    let payload = xorb.take(header.get_compressed_length() as usize).await.map_err(|e| e.naming(&term.xorb_hash))?;
                    remaining_chunks -= 1;
                    let chunk_start = offset;
                    let raw_len = u64::from(header.get_uncompressed_length());
                    offset += raw_len;
                    if offset <= start {
                        continue;
                    }
                    // An uncompressed chunk is sent as a slice of the read window, not copied.
                    let data = match header.get_compression_scheme()?.decompress_from_slice(&payload)? {
                        Cow::Borrowed(_) => payload.clone(),
                        Cow::Owned(data) => Bytes::from(data),
                    };
                    if data.len() as u64 != raw_len {
                        Err(StorageError::Corrupt(format!("a chunk of xorb {} unpacks to the wrong length", term.xorb_hash)))?;
                    }
                    let from = start.saturating_sub(chunk_start) as usize;
                    let to = (end.min(offset) - chunk_start) as usize;
                    yield data.slice(from..to);
                }
                if remaining_chunks == 0 && offset != term_end {
                    Err(StorageError::Corrupt(format!("term of xorb {} decoded to the wrong length", term.xorb_hash)))?;
                }
            }
        })
    }
}

/// A byte range of one xorb, read in windows of at most [`READ_WINDOW`] bytes and handed out in
/// pieces: a piece inside one window is a slice of it (no copy); only a piece that straddles two
/// windows is copied.
struct Windows {
    objects: std::sync::Arc<dyn object_store::ObjectStore>,
    path: object_store::path::Path,
    next_read: u64,
    end: u64,
    /// What is left of the last window read.
    pending: Bytes,
}

/// A read of a xorb that failed, before the xorb's name is known to the message.
enum WindowError {
    Short,
    Store(object_store::Error),
}

impl WindowError {
    fn naming(self, xorb: &str) -> StorageError {
        match self {
            WindowError::Short => StorageError::Corrupt(format!("xorb {xorb} ends inside a chunk")),
            WindowError::Store(object_store::Error::NotFound { .. }) => StorageError::MissingObject(xorb.to_string()),
            WindowError::Store(other) => StorageError::ObjectStore(other),
        }
    }
}

impl Windows {
    async fn window(&mut self) -> Result<Bytes, WindowError> {
        if self.next_read >= self.end {
            return Err(WindowError::Short);
        }
        let range = self.next_read..(self.next_read + READ_WINDOW).min(self.end);
        self.next_read = range.end;
        self.objects.get_range(&self.path, range).await.map_err(WindowError::Store)
    }

    /// The next `n` bytes.
    async fn take(&mut self, n: usize) -> Result<Bytes, WindowError> {
        if self.pending.len() >= n {
            return Ok(self.pending.split_to(n));
        }
        let mut joined = BytesMut::with_capacity(n);
        joined.extend_from_slice(&std::mem::take(&mut self.pending));
        while joined.len() < n {
            let mut window = self.window().await?;
            let k = (n - joined.len()).min(window.len());
            joined.extend_from_slice(&window.split_to(k));
            self.pending = window;
        }
        Ok(joined.freeze())
    }
}
