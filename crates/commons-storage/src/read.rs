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

use commons_db::cas::FileTerm;

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
            let whole = match self.reads.small_files.get(file_hash) {
                Some(bytes) => bytes,
                None => {
                    let mut whole = BytesMut::with_capacity(size as usize);
                    let mut stream = std::pin::pin!(self.stream_terms(file_hash, size, 0, size).await?);
                    while let Some(piece) = futures::StreamExt::next(&mut stream).await {
                        whole.extend_from_slice(&piece?);
                    }
                    let whole = whole.freeze();
                    self.reads.small_files.insert(file_hash.to_string(), whole.clone());
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
        let this = self.clone();
        Ok(async_stream::try_stream! {
            for term in terms {
                let term_end = term.file_offset + term.raw_size;
                if term_end <= start || term.file_offset >= end {
                    continue;
                }
                let (stored, mut offset, first_chunk) = this.seek(&term, start, end).await?;
                let mut xorb = Windows { objects: this.objects.clone(), reads: this.reads.clone(), path: Cas::xorb_path(&term.xorb_hash), next_read: stored.start, end: stored.end, pending: Bytes::new() };
                let mut remaining_chunks = term.chunk_end - first_chunk;
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

impl Cas {
    /// Where to read `term` for file bytes `[start, end)`: the stored bytes of its xorb, the
    /// file offset and chunk the read starts at. A range far into a term (up to a whole 64 MiB
    /// xorb) starts at the chunk holding `start` and stops after the chunk holding `end`, found
    /// in the xorb's footer, rather than decoding every chunk before it and reading a window
    /// past it; a range near the term's start just reads from there.
    async fn seek(&self, term: &FileTerm, start: u64, end: u64) -> Result<(std::ops::Range<u64>, u64, u32)> {
        let whole = (term.byte_start..term.byte_end, term.file_offset, term.chunk_start);
        if start < term.file_offset + SEEK_AFTER {
            return Ok(whole);
        }
        let offsets = match self.reads.chunk_offsets.get(&term.xorb_hash) {
            Some(offsets) => offsets,
            None => {
                let (footer, _) = self.xorb_footer(&term.xorb_hash).await?;
                let offsets = std::sync::Arc::new(crate::ChunkOffsets {
                    stored: footer.info.chunk_boundary_offsets,
                    unpacked: footer.info.unpacked_chunk_offsets,
                });
                self.reads.chunk_offsets.insert(term.xorb_hash.clone(), offsets.clone());
                offsets
            }
        };
        // Offsets list where each chunk ends; chunk i starts where chunk i - 1 ends.
        let begin = |list: &[u32], i: u32| if i == 0 { Some(0) } else { list.get(i as usize - 1).map(|&o| u64::from(o)) };
        let corrupt = || StorageError::Corrupt(format!("xorb {} has fewer chunks than its terms use", term.xorb_hash));
        let base = begin(&offsets.unpacked, term.chunk_start).ok_or_else(corrupt)?;
        // File offset where chunk i of the xorb starts.
        let file_at = |i: u32| begin(&offsets.unpacked, i).map(|u| term.file_offset + (u - base)).ok_or_else(corrupt);
        let mut first = term.chunk_start;
        while first + 1 < term.chunk_end && file_at(first + 1)? <= start {
            first += 1;
        }
        let mut last = first + 1;
        while last < term.chunk_end && file_at(last)? < end {
            last += 1;
        }
        // Stored offsets are the xorb's own, as a term's `byte_start` is.
        let stored = begin(&offsets.stored, first).ok_or_else(corrupt)?..begin(&offsets.stored, last).ok_or_else(corrupt)?;
        Ok((stored, file_at(first)?, first))
    }
}

/// How far into a term a read must start before it seeks to the chunk rather than decoding from
/// the term's first chunk (reading the xorb's footer costs about this much).
const SEEK_AFTER: u64 = 2 * READ_WINDOW;

/// A byte range of one xorb, read in windows of at most [`READ_WINDOW`] bytes and handed out in
/// pieces: a piece inside one window is a slice of it (no copy); only a piece that straddles two
/// windows is copied.
struct Windows {
    objects: std::sync::Arc<dyn object_store::ObjectStore>,
    reads: std::sync::Arc<crate::Reads>,
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
        let window = self.objects.get_range(&self.path, range).await.map_err(WindowError::Store)?;
        self.reads.fetched.fetch_add(window.len() as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(window)
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
