//! Streaming reads: a byte range of a file, rebuilt term by term from xorb ranges.

use std::io::Cursor;

use bytes::Bytes;
use futures::Stream;
use object_store::ObjectStoreExt;
use xet_core_structures::xorb_object::deserialize_chunk;

use crate::{Cas, Result, StorageError};

impl Cas {
    /// Streams bytes `[start, end)` of the file whose Xet hash is `file_hash`.
    ///
    /// Only the terms overlapping the range are fetched, each as one ranged read of its xorb, so
    /// a small range of a large file costs a small read.
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
        let terms = self.db.file_terms(file_hash).await?;
        let covered: u64 = terms.iter().map(|t| t.raw_size).sum();
        if covered != size {
            return Err(StorageError::Corrupt(format!(
                "file {file_hash} reconstructs to {covered} bytes, expected {size}"
            )));
        }
        let objects = self.objects.clone();
        Ok(async_stream::try_stream! {
            for term in terms {
                let term_end = term.file_offset + term.raw_size;
                if term_end <= start || term.file_offset >= end {
                    continue;
                }
                let path = Cas::xorb_path(&term.xorb_hash);
                let packed = objects.get_range(&path, term.byte_start..term.byte_end).await.map_err(|e| match e {
                    object_store::Error::NotFound { .. } => StorageError::MissingObject(term.xorb_hash.clone()),
                    other => StorageError::ObjectStore(other),
                })?;
                let mut cursor = Cursor::new(packed.as_ref());
                let mut offset = term.file_offset;
                for _ in term.chunk_start..term.chunk_end {
                    let (data, _, _) = deserialize_chunk(&mut cursor)?;
                    let chunk_start = offset;
                    let chunk_end = offset + data.len() as u64;
                    offset = chunk_end;
                    if chunk_end <= start {
                        continue;
                    }
                    if chunk_start >= end {
                        break;
                    }
                    let from = start.saturating_sub(chunk_start) as usize;
                    let to = (end.min(chunk_end) - chunk_start) as usize;
                    yield Bytes::from(data).slice(from..to);
                }
                if offset != term_end && offset < end {
                    Err(StorageError::Corrupt(format!("term of xorb {} decoded to the wrong length", term.xorb_hash)))?;
                }
            }
        })
    }
}
