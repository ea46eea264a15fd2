//! Streaming reads: a byte range of a file, rebuilt term by term from xorb ranges.
//!
//! A term is read from its xorb in ranged reads of at most `READ_WINDOW` bytes and decoded chunk
//! by chunk, so a reader holds about one window in memory whatever the term, file or range size.

use std::io::Cursor;

use bytes::{Bytes, BytesMut};
use futures::Stream;
use object_store::ObjectStoreExt;
use xet_core_structures::xorb_object::{XORB_CHUNK_HEADER_LENGTH, deserialize_chunk, parse_chunk_header};

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
                let path = Cas::xorb_path(&term.xorb_hash);
                let mut next_read = term.byte_start;
                let mut buf = BytesMut::new();
                let mut offset = term.file_offset;
                let mut remaining_chunks = term.chunk_end - term.chunk_start;
                while remaining_chunks > 0 && offset < end {
                    // Pull until one whole serialized chunk (header + payload) is buffered.
                    let needed = loop {
                        if buf.len() >= XORB_CHUNK_HEADER_LENGTH {
                            let header: [u8; XORB_CHUNK_HEADER_LENGTH] = buf[..XORB_CHUNK_HEADER_LENGTH].try_into().expect("length checked");
                            let need = XORB_CHUNK_HEADER_LENGTH + parse_chunk_header(header)?.get_compressed_length() as usize;
                            if buf.len() >= need {
                                break need;
                            }
                        }
                        if next_read >= term.byte_end {
                            Err(StorageError::Corrupt(format!("xorb {} ends inside a chunk", term.xorb_hash)))?;
                        }
                        let window = next_read..(next_read + READ_WINDOW).min(term.byte_end);
                        next_read = window.end;
                        let bytes = objects.get_range(&path, window).await.map_err(|e| match e {
                            object_store::Error::NotFound { .. } => StorageError::MissingObject(term.xorb_hash.clone()),
                            other => StorageError::ObjectStore(other),
                        })?;
                        buf.extend_from_slice(&bytes);
                    };
                    let serialized = buf.split_to(needed);
                    remaining_chunks -= 1;
                    let chunk_start = offset;
                    let header: [u8; XORB_CHUNK_HEADER_LENGTH] = serialized[..XORB_CHUNK_HEADER_LENGTH].try_into().expect("length checked");
                    let raw_len = parse_chunk_header(header)?.get_uncompressed_length() as u64;
                    offset += raw_len;
                    if offset <= start {
                        continue;
                    }
                    let (data, _, _) = deserialize_chunk(&mut Cursor::new(&serialized[..]))?;
                    let from = start.saturating_sub(chunk_start) as usize;
                    let to = (end.min(offset) - chunk_start) as usize;
                    yield Bytes::from(data).slice(from..to);
                }
                if remaining_chunks == 0 && offset != term_end {
                    Err(StorageError::Corrupt(format!("term of xorb {} decoded to the wrong length", term.xorb_hash)))?;
                }
            }
        })
    }
}
