//! Content that Xet clients (`hf_xet`) upload themselves: xorbs as the client serialized them,
//! then shards that describe files as runs of chunks of those xorbs. Nothing a client says is
//! taken on trust: a xorb's chunks are decompressed and rehashed to its hash, a file's chunk
//! hashes to its file hash, and its bytes to the sha256 the shard claims before a commit can
//! name it.

use std::collections::HashMap;
use std::io::Cursor;

use bytes::{Buf, Bytes, BytesMut};
use commons_db::cas::{ChunkLocation, FileTerm, IngestRecord, XorbRecord};
use futures::{Stream, StreamExt};
use object_store::{ObjectStoreExt, WriteMultipart};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use xet_core_structures::merklehash::{MerkleHash, file_hash};
use xet_core_structures::metadata_shard::MDBShardFileHeader;
use xet_core_structures::metadata_shard::file_structs::MDBFileInfo;
use xet_core_structures::metadata_shard::shard_in_memory::MDBInMemoryShard;
use xet_core_structures::metadata_shard::xorb_structs::{MDBXorbInfo, XorbChunkSequenceEntry, XorbChunkSequenceHeader};
use xet_core_structures::xorb_object::{XORB_CHUNK_HEADER_LENGTH, XorbObject, XorbObjectInfoV1, parse_chunk_header};

use crate::{Cas, Result, StorageError};

/// Largest serialized xorb a client may upload: the Xet format's 64 MiB of chunk data, which
/// incompressible data fills as is, plus an 8-byte header per chunk (at most 8192 of them),
/// with room to spare.
pub const MAX_XORB_BYTES: usize = 65 * 1024 * 1024;

/// One file of a shard: its Xet file hash, the sha256 its uploader claims, and its runs of
/// chunks `[start, end)` of xorbs with their unpacked sizes.
#[derive(Debug, Clone)]
pub struct ShardFile {
    pub file_hash: String,
    pub sha256: Option<String>,
    pub segments: Vec<ShardSegment>,
}

#[derive(Debug, Clone)]
pub struct ShardSegment {
    pub xorb_hash: String,
    pub chunk_start: u32,
    pub chunk_end: u32,
    pub unpacked_bytes: u64,
}

/// A file a shard registered: what a commit may now name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisteredFile {
    pub sha256: String,
    pub size: u64,
}

fn invalid(message: impl Into<String>) -> StorageError {
    StorageError::InvalidUpload(message.into())
}

/// Parses a shard as clients upload it (without its footer) into its files.
pub fn parse_shard(body: &[u8]) -> Result<Vec<ShardFile>> {
    let mut reader = Cursor::new(body);
    MDBShardFileHeader::deserialize(&mut reader).map_err(|e| invalid(format!("shard header: {e}")))?;
    let mut files = Vec::new();
    while let Some(info) = MDBFileInfo::deserialize(&mut reader).map_err(|e| invalid(format!("shard file section: {e}")))? {
        let segments = info
            .segments
            .iter()
            .map(|s| ShardSegment {
                xorb_hash: s.xorb_hash.hex(),
                chunk_start: s.chunk_index_start,
                chunk_end: s.chunk_index_end,
                unpacked_bytes: u64::from(s.unpacked_segment_bytes),
            })
            .collect();
        files.push(ShardFile { file_hash: info.metadata.file_hash.hex(), sha256: info.metadata_ext.map(|ext| ext.sha256.hex()), segments });
    }
    Ok(files)
}

impl Cas {
    /// The stored xorb that holds chunk `chunk_hash`, if any.
    pub async fn xorb_of_chunk(&self, chunk_hash: &str) -> Result<Option<String>> {
        Ok(self.db.find_chunk(chunk_hash).await?.map(|location| location.xorb_hash))
    }

    /// A shard describing each of `hashes` (their chunks, sizes and positions) and no file: the
    /// answer to a global dedup query, with which a client reuses the xorbs' chunks instead of
    /// uploading them.
    pub async fn dedup_shard_of(&self, hashes: &[String]) -> Result<Vec<u8>> {
        let mut shard = MDBInMemoryShard::default();
        for hash in hashes {
            let (footer, _) = self.xorb_footer(hash).await?;
            let info = &footer.info;
            let xorb_hash = MerkleHash::from_hex(hash).map_err(|_| StorageError::Corrupt(format!("{hash} is not a xorb hash")))?;
            let mut chunks = Vec::with_capacity(info.chunk_hashes.len());
            let mut unpacked_start = 0u32;
            for (i, chunk_hash) in info.chunk_hashes.iter().enumerate() {
                let end = info.unpacked_chunk_offsets[i];
                chunks.push(XorbChunkSequenceEntry::new(*chunk_hash, end - unpacked_start, unpacked_start));
                unpacked_start = end;
            }
            let block = MDBXorbInfo { metadata: XorbChunkSequenceHeader::new(xorb_hash, chunks.len(), unpacked_start), chunks };
            shard.add_xorb_block(block)?;
        }
        Ok(shard.to_bytes()?)
    }

    /// The footer of stored xorb `hash` (its chunk hashes and offsets) and the xorb's stored
    /// size, read by range from its end: a 64 MiB xorb costs a few hundred KiB here.
    pub(crate) async fn xorb_footer(&self, hash: &str) -> Result<(XorbObject, u64)> {
        let path = Self::xorb_path(hash);
        let size = match self.objects.head(&path).await {
            Ok(meta) => meta.size,
            Err(object_store::Error::NotFound { .. }) => return Err(StorageError::MissingObject(hash.to_string())),
            Err(e) => return Err(e.into()),
        };
        let corrupt = || StorageError::Corrupt(format!("xorb {hash} has no footer"));
        if size < 4 {
            return Err(corrupt());
        }
        let tail = self.objects.get_range(&path, size - 4..size).await?;
        let info_length = u64::from(u32::from_le_bytes(tail[..4].try_into().map_err(|_| corrupt())?));
        if info_length + 4 > size {
            return Err(corrupt());
        }
        let footer = self.objects.get_range(&path, size - 4 - info_length..size).await?;
        self.reads.fetched.fetch_add(4 + footer.len() as u64, std::sync::atomic::Ordering::Relaxed);
        Ok((XorbObject::deserialize(&mut Cursor::new(&footer))?, size))
    }

    /// Bytes `[start, end)` of stored xorb `hash` (chunk headers and compressed data, as Xet
    /// clients fetch them) as a stream of reads of at most 2 MiB, and the xorb's whole size: a
    /// client fetching whole 64 MiB xorbs with many connections costs the server a window each.
    pub async fn stream_xorb_range(
        &self,
        hash: &str,
        start: u64,
        end: u64,
    ) -> Result<(impl futures::Stream<Item = Result<bytes::Bytes>> + Send + 'static, u64)> {
        let path = Self::xorb_path(hash);
        let size = match self.objects.head(&path).await {
            Ok(meta) => meta.size,
            Err(object_store::Error::NotFound { .. }) => return Err(StorageError::MissingObject(hash.to_string())),
            Err(e) => return Err(e.into()),
        };
        if start >= end || end > size {
            return Err(StorageError::InvalidRange { start, end, size });
        }
        let objects = self.objects.clone();
        let stream = async_stream::try_stream! {
            let mut at = start;
            while at < end {
                let window = at..(at + crate::read::READ_WINDOW).min(end);
                at = window.end;
                yield objects.get_range(&path, window).await?;
            }
        };
        Ok((stream, size))
    }

    /// Registers a file of a shard: checks its runs against the stored xorbs and its chunk
    /// hashes against its file hash, indexes it, then reads it back whole to check the sha256
    /// the shard claims (the one a commit will name) before recording it as a blob. The caller
    /// has checked that the uploader holds every xorb the file uses.
    pub async fn register_shard_file(&self, file: &ShardFile) -> Result<RegisteredFile> {
        let claimed = file.sha256.clone().ok_or_else(|| invalid("a shard file needs its sha256 (metadata extension)"))?;
        let mut footers: HashMap<String, XorbObject> = HashMap::new();
        let mut stored_sizes: HashMap<String, u64> = HashMap::new();
        for segment in &file.segments {
            if footers.contains_key(&segment.xorb_hash) {
                continue;
            }
            let (footer, size) = match self.xorb_footer(&segment.xorb_hash).await {
                Err(StorageError::MissingObject(_)) => return Err(invalid(format!("xorb {} was never uploaded", segment.xorb_hash))),
                other => other?,
            };
            stored_sizes.insert(segment.xorb_hash.clone(), size);
            footers.insert(segment.xorb_hash.clone(), footer);
        }

        let mut terms = Vec::with_capacity(file.segments.len());
        let mut chunks: Vec<(MerkleHash, u64)> = Vec::new();
        let mut offset = 0u64;
        for segment in &file.segments {
            let info = &footers[&segment.xorb_hash].info;
            let (start, end) = (segment.chunk_start as usize, segment.chunk_end as usize);
            if start >= end || end > info.chunk_hashes.len() {
                return Err(invalid(format!("chunks {start}..{end} of xorb {} (it has {})", segment.xorb_hash, info.chunk_hashes.len())));
            }
            let at = |offsets: &[u32], i: usize| if i == 0 { 0 } else { u64::from(offsets[i - 1]) };
            let raw_size = at(&info.unpacked_chunk_offsets, end) - at(&info.unpacked_chunk_offsets, start);
            if raw_size != segment.unpacked_bytes {
                return Err(invalid(format!(
                    "a run of xorb {} unpacks to {raw_size} bytes, not {}",
                    segment.xorb_hash, segment.unpacked_bytes
                )));
            }
            for i in start..end {
                chunks.push((info.chunk_hashes[i], at(&info.unpacked_chunk_offsets, i + 1) - at(&info.unpacked_chunk_offsets, i)));
            }
            terms.push(FileTerm {
                xorb_hash: segment.xorb_hash.clone(),
                chunk_start: segment.chunk_start,
                chunk_end: segment.chunk_end,
                byte_start: at(&info.chunk_boundary_offsets, start),
                byte_end: at(&info.chunk_boundary_offsets, end),
                file_offset: offset,
                raw_size,
            });
            offset += raw_size;
        }
        let computed = if chunks.is_empty() { MerkleHash::default() } else { file_hash(&chunks) };
        if computed.hex() != file.file_hash {
            return Err(invalid(format!("the file's chunks hash to {}, not {}", computed.hex(), file.file_hash)));
        }

        let xorbs = footers
            .iter()
            .map(|(hash, footer)| {
                let info = &footer.info;
                let at = |offsets: &[u32], i: usize| if i == 0 { 0 } else { u64::from(offsets[i - 1]) };
                let chunks = (0..info.chunk_hashes.len())
                    .map(|i| {
                        (
                            info.chunk_hashes[i].hex(),
                            ChunkLocation {
                                xorb_hash: hash.clone(),
                                chunk_index: i as u32,
                                byte_start: at(&info.chunk_boundary_offsets, i),
                                byte_end: at(&info.chunk_boundary_offsets, i + 1),
                                raw_size: at(&info.unpacked_chunk_offsets, i + 1) - at(&info.unpacked_chunk_offsets, i),
                            },
                        )
                    })
                    .collect();
                XorbRecord {
                    xorb_hash: hash.clone(),
                    stored_size: stored_sizes[hash],
                    raw_size: at(&info.unpacked_chunk_offsets, info.chunk_hashes.len()),
                    chunks,
                }
            })
            .collect();
        let size = offset;
        let mut record =
            IngestRecord { file_hash: file.file_hash.clone(), size, sha256: claimed.clone(), git_sha1: String::new(), xorbs, terms };
        self.db.record_index(&record).await?;

        // The sha256 is the client's word until the bytes say so.
        let (actual, git_sha1) = content_digests(self.read_range(&file.file_hash, size, 0, size).await?, size).await?;
        if actual != claimed {
            return Err(StorageError::Sha256Mismatch { expected: claimed, actual });
        }
        record.git_sha1 = git_sha1;
        self.db.record_blob(&record.sha256, &record.git_sha1, size, &record.file_hash).await?;
        Ok(RegisteredFile { sha256: record.sha256, size })
    }
}

/// The sha256 and git blob sha1 of a file's `size` bytes, each hashed on a blocking thread of
/// its own as the bytes are read back: the check takes the time of the slower hash, not of both
/// in turn (it is what a Xet upload's client waits for between its shard and its commit), and
/// none of it runs on the runtime's threads, which go on serving other requests.
async fn content_digests(bytes: impl Stream<Item = Result<Bytes>>, size: u64) -> Result<(String, String)> {
    // The reader yields a chunk at a time; the threads get them in batches of a few MiB, so a
    // thread wakes a few hundred times for a GiB, and a few batches in flight bound the memory.
    type Batch = std::sync::Arc<Vec<Bytes>>;
    const BATCH_BYTES: usize = 4 << 20;
    let (to_sha256, mut sha256_input) = tokio::sync::mpsc::channel::<Batch>(2);
    let (to_sha1, mut sha1_input) = tokio::sync::mpsc::channel::<Batch>(2);
    let sha256 = tokio::task::spawn_blocking(move || {
        let mut hasher = Sha256::new();
        while let Some(batch) = sha256_input.blocking_recv() {
            batch.iter().for_each(|bytes| hasher.update(bytes));
        }
        hex::encode(hasher.finalize())
    });
    let git_sha1 = tokio::task::spawn_blocking(move || {
        let mut hasher = Sha1::new();
        hasher.update(format!("blob {size}\0"));
        while let Some(batch) = sha1_input.blocking_recv() {
            batch.iter().for_each(|bytes| hasher.update(bytes));
        }
        hex::encode(hasher.finalize())
    });
    let send = |batch: Vec<Bytes>| {
        let (to_sha256, to_sha1) = (to_sha256.clone(), to_sha1.clone());
        async move {
            let batch = std::sync::Arc::new(batch);
            let gone = |_| StorageError::Corrupt("a hashing thread stopped early".into());
            to_sha256.send(batch.clone()).await.map_err(gone)?;
            to_sha1.send(batch).await.map_err(gone)
        }
    };
    let mut bytes = std::pin::pin!(bytes);
    let (mut batch, mut batched) = (Vec::new(), 0);
    while let Some(chunk) = bytes.next().await {
        let chunk = chunk?;
        batched += chunk.len();
        batch.push(chunk);
        if batched >= BATCH_BYTES {
            send(std::mem::take(&mut batch)).await?;
            batched = 0;
        }
    }
    send(batch).await?;
    // Closing the channels is what ends both threads.
    drop((to_sha256, to_sha1));
    let failed = |e: tokio::task::JoinError| StorageError::Corrupt(format!("a hashing thread failed: {e}"));
    Ok((sha256.await.map_err(failed)?, git_sha1.await.map_err(failed)?))
}

/// A xorb a client is uploading, serialized without its footer, checked and stored as it
/// arrives: each chunk is decompressed and rehashed when its last byte comes, and written on
/// only then, so an upload holds one chunk and one store part in memory, not the xorb. The
/// object appears under its hash only when [`finish`](Self::finish) has checked the whole xorb
/// hashes to it (a multipart upload completed, or a local file renamed into place); a refused
/// or abandoned upload leaves nothing under that name.
pub struct XorbUpload {
    cas: Cas,
    hash: String,
    expected: MerkleHash,
    /// `None` when the store already holds this xorb: the body is still checked, not written.
    writer: Option<WriteMultipart>,
    /// Bytes of a chunk not yet whole.
    partial: BytesMut,
    received: usize,
    /// Set once the footer an older client appends begins: the rest is read and dropped.
    in_footer: bool,
    info: XorbObjectInfoV1,
    sizes: Vec<(MerkleHash, u64)>,
}

/// Store parts of a streamed xorb: S3's smallest part is 5 MiB.
const XORB_PART_BYTES: usize = 8 * 1024 * 1024;

/// A `Write` that refuses to grow past `limit`: a chunk cannot decompress past what its header
/// claims (a small LZ4 payload can claim to unpack to very much more).
struct Bounded {
    out: Vec<u8>,
    limit: usize,
}

impl std::io::Write for Bounded {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.out.len() + buf.len() > self.limit {
            return Err(std::io::Error::other("the chunk unpacks to more than its header says"));
        }
        self.out.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Cas {
    /// Starts receiving client xorb `hash`. The xorb is not indexed until a shard registers a
    /// file that uses it, so one no file ever uses is garbage once the GC grace period passes.
    pub async fn begin_client_xorb(&self, hash: &str) -> Result<XorbUpload> {
        let expected = MerkleHash::from_hex(hash).map_err(|_| invalid(format!("{hash:?} is not a xorb hash")))?;
        let path = Self::xorb_path(hash);
        let writer = match self.objects.head(&path).await {
            Ok(_) => None,
            Err(object_store::Error::NotFound { .. }) => {
                Some(WriteMultipart::new_with_chunk_size(self.objects.put_multipart(&path).await?, XORB_PART_BYTES))
            }
            Err(e) => return Err(e.into()),
        };
        Ok(XorbUpload {
            cas: self.clone(),
            hash: hash.to_string(),
            expected,
            writer,
            partial: BytesMut::new(),
            received: 0,
            in_footer: false,
            info: XorbObjectInfoV1::default(),
            sizes: Vec::new(),
        })
    }
}

impl XorbUpload {
    /// The next bytes of the body.
    pub async fn write(&mut self, data: &[u8]) -> Result<()> {
        self.received += data.len();
        if self.received > MAX_XORB_BYTES {
            return Err(invalid(format!("a xorb holds at most {MAX_XORB_BYTES} bytes")));
        }
        if self.in_footer {
            return Ok(());
        }
        self.partial.extend_from_slice(data);
        while self.partial.len() >= XORB_CHUNK_HEADER_LENGTH {
            let header_bytes: [u8; XORB_CHUNK_HEADER_LENGTH] = self.partial[..XORB_CHUNK_HEADER_LENGTH].try_into().expect("length checked");
            let header = match parse_chunk_header(header_bytes) {
                Ok(header) => header,
                // The footer's identifier where a chunk header would be: older clients send it,
                // it is dropped and rebuilt.
                Err(xet_core_structures::CoreError::ChunkHeaderParse) => {
                    self.in_footer = true;
                    self.partial = BytesMut::new();
                    return Ok(());
                }
                Err(e) => return Err(invalid(format!("xorb chunk {}: {e}", self.sizes.len()))),
            };
            let whole = XORB_CHUNK_HEADER_LENGTH + header.get_compressed_length() as usize;
            if self.partial.len() < whole {
                break;
            }
            let serialized = self.partial.split_to(whole);
            let raw_len = header.get_uncompressed_length() as usize;
            let scheme = header.get_compression_scheme().map_err(|e| invalid(format!("xorb chunk {}: {e}", self.sizes.len())))?;
            let mut unpacked = Bounded { out: Vec::with_capacity(raw_len), limit: raw_len };
            scheme
                .decompress_from_reader(&mut (&serialized[XORB_CHUNK_HEADER_LENGTH..]).reader(), &mut unpacked)
                .map_err(|e| invalid(format!("xorb chunk {}: {e}", self.sizes.len())))?;
            if unpacked.out.len() != raw_len {
                return Err(invalid(format!("xorb chunk {} unpacks to {} bytes, not {raw_len}", self.sizes.len(), unpacked.out.len())));
            }
            let chunk_hash = xet_core_structures::merklehash::compute_data_hash(&unpacked.out);
            let (stored_end, raw_end) = (
                self.info.chunk_boundary_offsets.last().copied().unwrap_or(0) + whole as u32,
                self.info.unpacked_chunk_offsets.last().copied().unwrap_or(0) + raw_len as u32,
            );
            self.info.chunk_hashes.push(chunk_hash);
            self.info.chunk_boundary_offsets.push(stored_end);
            self.info.unpacked_chunk_offsets.push(raw_end);
            self.sizes.push((chunk_hash, raw_len as u64));
            if let Some(writer) = &mut self.writer {
                writer.wait_for_capacity(1).await?;
                writer.put(serialized.freeze());
            }
        }
        Ok(())
    }

    /// Checks the whole xorb against its hash and, when it is new, stores it with its rebuilt
    /// footer. Returns whether it was new.
    pub async fn finish(mut self) -> Result<bool> {
        if !self.partial.is_empty() {
            return self.refuse(invalid("the xorb ends inside a chunk")).await;
        }
        let computed = xet_core_structures::merklehash::xorb_hash(&self.sizes);
        if computed != self.expected {
            let hash = self.hash.clone();
            return self.refuse(invalid(format!("the xorb's chunks hash to {}, not {hash}", computed.hex()))).await;
        }
        let Some(mut writer) = self.writer.take() else { return Ok(false) };
        let mut info = std::mem::take(&mut self.info);
        info.xorb_hash = computed;
        info.num_chunks = self.sizes.len() as u32;
        info.fill_in_boundary_offsets();
        let mut footer = Vec::new();
        XorbObject::serialize_given_info(&mut footer, info).map_err(|e| invalid(format!("xorb footer: {e}")))?;
        writer.put(bytes::Bytes::from(footer));
        writer.finish().await?;
        self.cas.sync_xorb(&self.hash).await?;
        Ok(true)
    }

    /// Drops what was written of an upload that will not finish.
    pub async fn abort(mut self) {
        if let Some(writer) = self.writer.take()
            && let Err(e) = writer.abort().await
        {
            tracing::warn!(xorb = %self.hash, error = %e, "could not drop a refused xorb upload");
        }
    }

    async fn refuse(self, error: StorageError) -> Result<bool> {
        self.abort().await;
        Err(error)
    }
}
