//! Streaming ingest: bytes in, chunks deduplicated, new chunks packed into xorbs.

use std::collections::HashMap;
use std::io::Cursor;

use commons_db::cas::{ChunkLocation, FileTerm, IngestRecord, XorbRecord};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use xet_core_structures::merklehash::{MerkleHash, MerkleHashSubtree, file_hash};
use xet_core_structures::xorb_object::{CompressionScheme, RawXorbData, SerializedXorbObject, XorbObject};
use xet_data::deduplication::{Chunk, Chunker};

use crate::{Cas, Result, StorageError, StoredFile, XORB_TARGET_BYTES};

/// Which xorb a run of chunks of this file lives in: one in the store (byte range known), or the
/// one this ingest is filling (byte range known once it is sealed).
#[derive(Clone, Debug, PartialEq, Eq)]
enum XorbRef {
    Stored(String),
    Open,
}

#[derive(Debug)]
struct PendingTerm {
    xorb: XorbRef,
    chunk_start: u32,
    chunk_end: u32,
    /// Byte range in the xorb; set for `Open` runs when the xorb is sealed.
    byte_start: u64,
    byte_end: u64,
    raw_size: u64,
}

/// Chunk hashes are folded into the file hash this many at a time.
const HASH_BATCH: usize = 4096;

/// The Xet file hash, computed as chunks arrive: batches of chunk hashes are folded into a
/// `MerkleHashSubtree`, which holds O(log n) nodes, not one per chunk.
struct FileHasher {
    folded: Option<MerkleHashSubtree>,
    batch: Vec<(MerkleHash, u64)>,
}

impl FileHasher {
    fn new() -> Self {
        Self { folded: None, batch: Vec::new() }
    }

    fn push(&mut self, hash: MerkleHash, size: u64) -> Result<()> {
        self.batch.push((hash, size));
        // A full batch is folded only once another is pending, so the last one is never empty.
        if self.batch.len() == 2 * HASH_BATCH {
            let rest = self.batch.split_off(HASH_BATCH);
            let first = std::mem::replace(&mut self.batch, rest);
            self.fold(&first, false)?;
        }
        Ok(())
    }

    fn fold(&mut self, chunks: &[(MerkleHash, u64)], at_end: bool) -> Result<()> {
        let part = MerkleHashSubtree::from_chunks(self.folded.is_none(), chunks, at_end);
        match &mut self.folded {
            None => self.folded = Some(part),
            Some(folded) => folded.merge_into(&part)?,
        }
        Ok(())
    }

    fn finish(mut self) -> Result<MerkleHash> {
        if self.folded.is_none() && self.batch.is_empty() {
            // What `file_hash` answers for no chunks: the empty file.
            return Ok(file_hash(&[]));
        }
        let last = std::mem::take(&mut self.batch);
        self.fold(&last, true)?;
        let root = self.folded.as_ref().and_then(MerkleHashSubtree::final_hash);
        let root = root.ok_or_else(|| StorageError::Corrupt("the file hash did not close".into()))?;
        // `file_hash` is the aggregated hash keyed with the all-zero salt.
        Ok(root.hmac([0u8; 32].into()))
    }
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
    file_hash: FileHasher,
    /// The file's reconstruction: what is recorded at the end (one run per xorb stretch, not
    /// one per chunk).
    terms: Vec<PendingTerm>,
    /// Chunks of the xorb being filled.
    open_chunks: Vec<Chunk>,
    open_bytes: usize,
    /// The open xorb's chunks, for dedup inside it; chunks of sealed xorbs are found in the index.
    open_index: HashMap<MerkleHash, u32>,
    /// The first run that may name the open xorb (runs before it were placed when it was sealed).
    unsealed_from: usize,
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
            file_hash: FileHasher::new(),
            terms: Vec::new(),
            open_chunks: Vec::new(),
            open_bytes: 0,
            open_index: HashMap::new(),
            unsealed_from: 0,
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
        let file_hash = self.file_hash.finish()?.hex();

        let mut terms = Vec::with_capacity(self.terms.len());
        let mut offset = 0u64;
        for t in std::mem::take(&mut self.terms) {
            let XorbRef::Stored(xorb_hash) = t.xorb else {
                return Err(StorageError::Corrupt("a run of the file is in no sealed xorb".into()));
            };
            terms.push(FileTerm {
                xorb_hash,
                chunk_start: t.chunk_start,
                chunk_end: t.chunk_end,
                byte_start: t.byte_start,
                byte_end: t.byte_end,
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
            xorbs: Vec::new(),
            terms,
        };
        self.cas.db.record_ingest(&record).await?;
        Ok(StoredFile { sha256, git_sha1, file_hash, size: self.declared_size })
    }

    async fn add_chunk(&mut self, chunk: Chunk) -> Result<()> {
        let raw = chunk.data.len() as u64;
        self.file_hash.push(chunk.hash, raw)?;
        if let Some(&index) = self.open_index.get(&chunk.hash) {
            self.push_term(XorbRef::Open, index, 0, 0, raw);
            return Ok(());
        }
        if let Some(loc) = self.cas.db.find_chunk(&chunk.hash.hex()).await? {
            let ChunkLocation { xorb_hash, chunk_index, byte_start, byte_end, raw_size } = loc;
            self.push_term(XorbRef::Stored(xorb_hash), chunk_index, byte_start, byte_end, raw_size);
            return Ok(());
        }
        let index = self.open_chunks.len() as u32;
        self.open_index.insert(chunk.hash, index);
        self.open_bytes += chunk.data.len();
        self.open_chunks.push(chunk);
        self.push_term(XorbRef::Open, index, 0, 0, raw);
        if self.open_bytes >= XORB_TARGET_BYTES || self.open_chunks.len() >= *xet_core_structures::xorb_object::constants::MAX_XORB_CHUNKS {
            self.seal_open_xorb().await?;
        }
        Ok(())
    }

    fn push_term(&mut self, xorb: XorbRef, index: u32, byte_start: u64, byte_end: u64, raw: u64) {
        if let Some(last) = self.terms.last_mut() {
            let same_xorb = last.xorb == xorb;
            let contiguous = last.chunk_end == index && (xorb == XorbRef::Open || last.byte_end == byte_start);
            if same_xorb && contiguous {
                last.chunk_end += 1;
                last.byte_end = byte_end;
                last.raw_size += raw;
                return;
            }
        }
        self.terms.push(PendingTerm { xorb, chunk_start: index, chunk_end: index + 1, byte_start, byte_end, raw_size: raw });
    }

    /// Serializes the open xorb, writes it to the object store, indexes it, and points the runs
    /// that used it at it.
    async fn seal_open_xorb(&mut self) -> Result<()> {
        if self.open_chunks.is_empty() {
            return Ok(());
        }
        let chunks = std::mem::take(&mut self.open_chunks);
        self.open_bytes = 0;
        self.open_index.clear();
        let (record, data) = tokio::task::spawn_blocking(move || serialize_xorb(&chunks))
            .await
            .map_err(|e| StorageError::Corrupt(format!("xorb serialization task failed: {e}")))??;
        self.cas.put_xorb(&record.xorb_hash, data).await?;
        self.cas.db.record_xorb(&record).await?;
        tracing::debug!(xorb = %record.xorb_hash, chunks = record.chunks.len(), bytes = record.stored_size, "sealed xorb");
        // Only runs since the previous seal can name the open xorb.
        let unsealed_from = self.unsealed_from;
        self.unsealed_from = self.terms.len();
        for t in self.terms[unsealed_from..].iter_mut().filter(|t| t.xorb == XorbRef::Open) {
            let first = &record.chunks[t.chunk_start as usize].1;
            let last = &record.chunks[t.chunk_end as usize - 1].1;
            t.byte_start = first.byte_start;
            t.byte_end = last.byte_end;
            t.xorb = XorbRef::Stored(record.xorb_hash.clone());
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

#[cfg(test)]
mod tests {
    use super::*;
    use xet_core_structures::merklehash::compute_data_hash;

    /// Chunk hashes whose low bits vary, so the tree's cut points fall everywhere.
    fn chunks(n: usize) -> Vec<(MerkleHash, u64)> {
        (0..n).map(|i| (compute_data_hash(&(i as u64).to_le_bytes()), 1000 + (i as u64 % 7) * 4096)).collect()
    }

    #[test]
    fn the_streamed_file_hash_equals_xet_cores_hash_of_the_whole_list() {
        // Around every batch boundary, and files of one, two and many batches.
        let sizes = [0, 1, 2, 3, 9, 10, HASH_BATCH - 1, HASH_BATCH, HASH_BATCH + 1, 2 * HASH_BATCH - 1, 2 * HASH_BATCH, 2 * HASH_BATCH + 1];
        for n in sizes.into_iter().chain([3 * HASH_BATCH + 17, 7 * HASH_BATCH + 5]) {
            let all = chunks(n);
            let mut hasher = FileHasher::new();
            for &(hash, size) in &all {
                hasher.push(hash, size).unwrap();
            }
            assert_eq!(hasher.finish().unwrap(), file_hash(&all), "{n} chunks");
        }
    }
}
