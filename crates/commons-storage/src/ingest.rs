//! Streaming ingest: bytes in, chunks deduplicated, new chunks packed into xorbs.

use std::collections::HashMap;
use std::io::Cursor;

use commons_db::cas::{ChunkLocation, FileTerm, IngestRecord, XorbRecord};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use xet_core_structures::merklehash::{MerkleHash, file_hash};
use xet_core_structures::xorb_object::{CompressionScheme, RawXorbData, SerializedXorbObject, XorbObject};
use xet_data::deduplication::{Chunk, Chunker};

use crate::{Cas, Result, StorageError, StoredFile, XORB_TARGET_BYTES};

/// Which xorb a chunk of this file lives in: one already in the store, or one this ingest writes.
#[derive(Clone, Debug, PartialEq, Eq)]
enum XorbRef {
    Stored(String),
    Sealed(usize),
    Open(usize),
}

#[derive(Debug)]
struct PendingTerm {
    xorb: XorbRef,
    chunk_start: u32,
    chunk_end: u32,
    /// Byte range in the xorb; known up front only for chunks already stored.
    byte_start: u64,
    byte_end: u64,
    raw_size: u64,
}

/// Writes one file into the store. Feed it with [`write`](Self::write), then [`finish`](Self::finish).
pub struct IngestWriter {
    cas: Cas,
    declared_size: u64,
    expected_sha256: Option<String>,
    received: u64,
    chunker: Chunker,
    sha256: Sha256,
    git_sha1: Sha1,
    chunk_hashes: Vec<(MerkleHash, u64)>,
    terms: Vec<PendingTerm>,
    /// Chunks of the xorb being filled.
    open_chunks: Vec<Chunk>,
    open_bytes: usize,
    /// Xorbs this ingest wrote, in order; index = `XorbRef::Sealed` / `Open` number.
    sealed: Vec<XorbRecord>,
    /// Chunks this ingest already placed, for dedup inside the file.
    local_chunks: HashMap<MerkleHash, (usize, u32)>,
}

impl IngestWriter {
    pub(crate) fn new(cas: Cas, size: u64, expected_sha256: Option<String>) -> Self {
        let mut git_sha1 = Sha1::new();
        git_sha1.update(format!("blob {size}\0"));
        Self {
            cas,
            declared_size: size,
            expected_sha256: expected_sha256.map(|s| s.to_ascii_lowercase()),
            received: 0,
            chunker: Chunker::default(),
            sha256: Sha256::new(),
            git_sha1,
            chunk_hashes: Vec::new(),
            terms: Vec::new(),
            open_chunks: Vec::new(),
            open_bytes: 0,
            sealed: Vec::new(),
            local_chunks: HashMap::new(),
        }
    }

    pub fn received(&self) -> u64 {
        self.received
    }

    pub async fn write(&mut self, data: &[u8]) -> Result<()> {
        self.received += data.len() as u64;
        if self.received > self.declared_size {
            return Err(StorageError::SizeMismatch { expected: self.declared_size, actual: self.received });
        }
        self.sha256.update(data);
        self.git_sha1.update(data);
        let chunks = self.chunker.next_block(data, false);
        for chunk in chunks {
            self.add_chunk(chunk).await?;
        }
        Ok(())
    }

    pub async fn finish(mut self) -> Result<StoredFile> {
        if self.received != self.declared_size {
            return Err(StorageError::SizeMismatch { expected: self.declared_size, actual: self.received });
        }
        let sha256 = hex::encode(self.sha256.clone().finalize());
        if let Some(expected) = &self.expected_sha256
            && *expected != sha256
        {
            return Err(StorageError::Sha256Mismatch { expected: expected.clone(), actual: sha256 });
        }
        if let Some(last) = self.chunker.finish() {
            self.add_chunk(last).await?;
        }
        self.seal_open_xorb().await?;
        let git_sha1 = hex::encode(self.git_sha1.clone().finalize());
        let file_hash = file_hash(&self.chunk_hashes).hex();

        let mut terms = Vec::with_capacity(self.terms.len());
        let mut offset = 0u64;
        for t in &self.terms {
            let (xorb_hash, byte_start, byte_end) = match &t.xorb {
                XorbRef::Stored(h) => (h.clone(), t.byte_start, t.byte_end),
                XorbRef::Sealed(i) | XorbRef::Open(i) => {
                    let x = &self.sealed[*i];
                    let first = &x.chunks[t.chunk_start as usize].1;
                    let last = &x.chunks[t.chunk_end as usize - 1].1;
                    (x.xorb_hash.clone(), first.byte_start, last.byte_end)
                }
            };
            terms.push(FileTerm {
                xorb_hash,
                chunk_start: t.chunk_start,
                chunk_end: t.chunk_end,
                byte_start,
                byte_end,
                file_offset: offset,
                raw_size: t.raw_size,
            });
            offset += t.raw_size;
        }
        let record = IngestRecord {
            file_hash: file_hash.clone(),
            size: self.declared_size,
            sha256: sha256.clone(),
            git_sha1: git_sha1.clone(),
            xorbs: std::mem::take(&mut self.sealed),
            terms,
        };
        self.cas.db.record_ingest(&record).await?;
        Ok(StoredFile { sha256, git_sha1, file_hash, size: self.declared_size })
    }

    async fn add_chunk(&mut self, chunk: Chunk) -> Result<()> {
        let raw = chunk.data.len() as u64;
        self.chunk_hashes.push((chunk.hash, raw));
        if let Some(&(xorb, index)) = self.local_chunks.get(&chunk.hash) {
            let xorb = if xorb == self.sealed.len() { XorbRef::Open(xorb) } else { XorbRef::Sealed(xorb) };
            self.push_term(xorb, index, 0, 0, raw);
            return Ok(());
        }
        if let Some(loc) = self.cas.db.find_chunk(&chunk.hash.hex()).await? {
            let ChunkLocation { xorb_hash, chunk_index, byte_start, byte_end, raw_size } = loc;
            self.push_term(XorbRef::Stored(xorb_hash), chunk_index, byte_start, byte_end, raw_size);
            return Ok(());
        }
        let xorb = self.sealed.len();
        let index = self.open_chunks.len() as u32;
        self.local_chunks.insert(chunk.hash, (xorb, index));
        self.open_bytes += chunk.data.len();
        self.open_chunks.push(chunk);
        self.push_term(XorbRef::Open(xorb), index, 0, 0, raw);
        if self.open_bytes >= XORB_TARGET_BYTES || self.open_chunks.len() >= *xet_core_structures::xorb_object::constants::MAX_XORB_CHUNKS {
            self.seal_open_xorb().await?;
        }
        Ok(())
    }

    fn push_term(&mut self, xorb: XorbRef, index: u32, byte_start: u64, byte_end: u64, raw: u64) {
        if let Some(last) = self.terms.last_mut() {
            let same_xorb = last.xorb == xorb;
            let contiguous = last.chunk_end == index && (!matches!(xorb, XorbRef::Stored(_)) || last.byte_end == byte_start);
            if same_xorb && contiguous {
                last.chunk_end += 1;
                last.byte_end = byte_end;
                last.raw_size += raw;
                return;
            }
        }
        self.terms.push(PendingTerm { xorb, chunk_start: index, chunk_end: index + 1, byte_start, byte_end, raw_size: raw });
    }

    /// Serializes the open xorb, writes it to the object store, and records where its chunks are.
    async fn seal_open_xorb(&mut self) -> Result<()> {
        if self.open_chunks.is_empty() {
            return Ok(());
        }
        let chunks = std::mem::take(&mut self.open_chunks);
        self.open_bytes = 0;
        let xorb_number = self.sealed.len();
        let (record, data) = tokio::task::spawn_blocking(move || serialize_xorb(&chunks))
            .await
            .map_err(|e| StorageError::Corrupt(format!("xorb serialization task failed: {e}")))??;
        self.cas.put_xorb(&record.xorb_hash, data).await?;
        tracing::debug!(xorb = %record.xorb_hash, chunks = record.chunks.len(), bytes = record.stored_size, "sealed xorb");
        self.sealed.push(record);
        for t in &mut self.terms {
            if t.xorb == XorbRef::Open(xorb_number) {
                t.xorb = XorbRef::Sealed(xorb_number);
            }
        }
        Ok(())
    }
}

fn serialize_xorb(chunks: &[Chunk]) -> Result<(XorbRecord, Vec<u8>)> {
    let raw = RawXorbData::from_chunks(chunks, vec![0]);
    let raw_size = raw.num_bytes() as u64;
    let serialized = SerializedXorbObject::from_xorb_with_compression(raw, CompressionScheme::Auto, true, 0)?;
    let xorb_hash = serialized.hash.hex();
    let footer = XorbObject::deserialize(&mut Cursor::new(&serialized.serialized_data))?;
    let ends = &footer.info.chunk_boundary_offsets;
    if ends.len() != chunks.len() {
        return Err(StorageError::Corrupt(format!("xorb footer lists {} chunks, expected {}", ends.len(), chunks.len())));
    }
    let mut start = 0u64;
    let mut located = Vec::with_capacity(chunks.len());
    for (i, (chunk, &end)) in chunks.iter().zip(ends).enumerate() {
        located.push((
            chunk.hash.hex(),
            ChunkLocation {
                xorb_hash: xorb_hash.clone(),
                chunk_index: i as u32,
                byte_start: start,
                byte_end: end as u64,
                raw_size: chunk.data.len() as u64,
            },
        ));
        start = end as u64;
    }
    let record = XorbRecord { xorb_hash, stored_size: serialized.serialized_data.len() as u64, raw_size, chunks: located };
    Ok((record, serialized.serialized_data))
}
