//! The index of the content-addressed store: which chunks exist and where, which xorbs hold
//! them, and how each file is reconstructed from runs of chunks.
//!
//! Rows are written only after the xorb objects they name are durably in the object store: a
//! xorb and its chunks as soon as the xorb is written (so an ingest holds no per-chunk state
//! for the xorbs it finished), a file and its reconstruction in one transaction at the end. A
//! crash in between leaves xorbs (indexed or not) that no file references, never rows pointing
//! at missing bytes; [`Db::forget_unreferenced_xorbs`] is how the garbage collector drops them.

use crate::sql::{self, AssertSqlSafe};

use crate::{Db, Result, now_unix};

/// Where a chunk lives: its xorb, position, and byte range of its serialized form in the xorb.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChunkLocation {
    pub xorb_hash: String,
    pub chunk_index: u32,
    pub byte_start: u64,
    pub byte_end: u64,
    pub raw_size: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct XorbRecord {
    pub xorb_hash: String,
    pub stored_size: u64,
    pub raw_size: u64,
    pub chunks: Vec<(String, ChunkLocation)>,
}

/// A run of consecutive chunks `[chunk_start, chunk_end)` of one xorb, at `file_offset` in the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileTerm {
    pub xorb_hash: String,
    pub chunk_start: u32,
    pub chunk_end: u32,
    pub byte_start: u64,
    pub byte_end: u64,
    pub file_offset: u64,
    pub raw_size: u64,
}

/// Everything one ingest adds to the index, committed atomically.
#[derive(Clone, Debug)]
pub struct IngestRecord {
    pub file_hash: String,
    pub size: u64,
    pub sha256: String,
    pub git_sha1: String,
    pub xorbs: Vec<XorbRecord>,
    pub terms: Vec<FileTerm>,
}

impl Db {
    /// Which of `hashes` some file's reconstruction uses.
    pub async fn referenced_xorbs(&self, hashes: &[String]) -> Result<std::collections::HashSet<String>> {
        let mut known = std::collections::HashSet::new();
        for batch in hashes.chunks(500) {
            let placeholders: Vec<String> = (1..=batch.len()).map(|i| format!("${i}")).collect();
            let sql = format!("SELECT DISTINCT xorb_hash FROM cas_file_terms WHERE xorb_hash IN ({})", placeholders.join(", "));
            let mut query = sql::query(sql::AssertSqlSafe(sql));
            for hash in batch {
                query = query.bind(hash);
            }
            for row in query.fetch_all(&self.pool).await? {
                known.insert(row.try_get("xorb_hash")?);
            }
        }
        Ok(known)
    }

    /// Where chunk `chunk_hash` is stored, for an upload about to reuse it. A chunk of a xorb
    /// no file uses any more (the collector's candidate, see `collect`) is pinned first: its
    /// grace starts over, so the xorb stays until the upload has recorded its file; one already
    /// collected is not found.
    pub async fn find_chunk(&self, chunk_hash: &str) -> Result<Option<ChunkLocation>> {
        let row = sql::query(
            "SELECT c.xorb_hash, c.chunk_index, c.byte_start, c.byte_end, c.raw_size, x.unused_since
             FROM cas_chunks c JOIN cas_xorbs x ON x.xorb_hash = c.xorb_hash WHERE c.chunk_hash = $1",
        )
        .bind(chunk_hash)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let unused_since: Option<i64> = row.try_get("unused_since")?;
        let now = now_unix();
        if unused_since.is_some_and(|t| t < now) {
            let xorb: String = row.try_get("xorb_hash")?;
            let mut tx = self.begin_write().await?;
            let pinned = sql::query(
                "UPDATE cas_xorbs SET unused_since = CASE WHEN unused_since IS NULL THEN NULL ELSE $1 END
                 WHERE xorb_hash = $2 RETURNING xorb_hash",
            )
            .bind(now)
            .bind(&xorb)
            .fetch_optional(&mut *tx)
            .await?;
            tx.commit().await?;
            if pinned.is_none() {
                return Ok(None);
            }
        }
        Ok(Some(ChunkLocation {
            xorb_hash: row.try_get("xorb_hash")?,
            chunk_index: row.try_get::<i64, _>("chunk_index")? as u32,
            byte_start: row.try_get::<i64, _>("byte_start")? as u64,
            byte_end: row.try_get::<i64, _>("byte_end")? as u64,
            raw_size: row.try_get::<i64, _>("raw_size")? as u64,
        }))
    }

    /// Drops the index rows of each xorb of `xorbs` (its hash, and its chunks as its footer lists
    /// them) unless a file uses it, all in one transaction. Returns, for each, whether no file
    /// uses it, i.e. whether its object may go: once this returns true no ingest can find its
    /// chunks any more, and one that found them earlier fails to record its file (the
    /// reconstruction's foreign key) rather than naming lost bytes. One transaction for many
    /// xorbs: the collector pays one commit (one fsync) per batch, not per xorb.
    ///
    /// An indexed xorb goes only once it has been unused since `cutoff` (Unix seconds) or
    /// before: the collector marks xorbs whose last file it forgot, and an upload reusing one of
    /// their chunks ([`Self::find_chunk`]) starts its grace over.
    pub async fn forget_unreferenced_xorbs(&self, xorbs: &[(String, Vec<String>)], cutoff: i64) -> Result<Vec<bool>> {
        // The write lock: no file can be recorded between the checks and the deletes.
        let mut tx = self.begin_write().await?;
        let mut forgotten = Vec::with_capacity(xorbs.len());
        for (hash, chunk_hashes) in xorbs {
            forgotten.push(forget_xorb(&mut tx, hash, chunk_hashes, cutoff).await?);
        }
        tx.commit().await?;
        Ok(forgotten)
    }

    /// Whether xorb `hash` is indexed (its chunks can be found).
    pub async fn xorb_indexed(&self, hash: &str) -> Result<bool> {
        Ok(sql::query("SELECT 1 FROM cas_xorbs WHERE xorb_hash = $1").bind(hash).fetch_optional(&self.pool).await?.is_some())
    }

    /// Records a xorb just written to the object store, and where its chunks are, in one
    /// transaction: from then on other ingests dedup against it.
    pub async fn record_xorb(&self, xorb: &XorbRecord) -> Result<()> {
        let mut tx = self.begin_write().await?;
        insert_xorb(&mut tx, xorb).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records an ingested file, its new xorbs and chunks, and its blob, in one transaction.
    pub async fn record_ingest(&self, rec: &IngestRecord) -> Result<()> {
        let mut tx = self.begin_write().await?;
        insert_index(&mut tx, rec).await?;
        insert_blob(&mut tx, &rec.sha256, &rec.git_sha1, rec.size, &rec.file_hash).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records a file's reconstruction and its xorbs and chunks, without a blob: a file uploaded
    /// through Xet is readable by hash once this returns, and becomes a blob (something a commit
    /// can name) only once its sha256 is verified ([`Self::record_blob`]).
    pub async fn record_index(&self, rec: &IngestRecord) -> Result<()> {
        let mut tx = self.begin_write().await?;
        insert_index(&mut tx, rec).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records the blob of an indexed file.
    pub async fn record_blob(&self, sha256: &str, git_sha1: &str, size: u64, file_hash: &str) -> Result<()> {
        let mut tx = self.begin_write().await?;
        insert_blob(&mut tx, sha256, git_sha1, size, file_hash).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records that `user_id` uploaded xorb `xorb_hash` in full.
    pub async fn record_xorb_holder(&self, xorb_hash: &str, user_id: i64) -> Result<()> {
        let _turn = self.write_turn().await;
        sql::query("INSERT INTO xorb_holders (xorb_hash, user_id, created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
            .bind(xorb_hash)
            .bind(user_id)
            .bind(crate::now_unix())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Which of `hashes` `user_id` uploaded in full.
    pub async fn xorbs_held(&self, user_id: i64, hashes: &[String]) -> Result<std::collections::HashSet<String>> {
        let mut held = std::collections::HashSet::new();
        for batch in hashes.chunks(500) {
            let placeholders: Vec<String> = (2..=batch.len() + 1).map(|i| format!("${i}")).collect();
            let sql = format!("SELECT xorb_hash FROM xorb_holders WHERE user_id = $1 AND xorb_hash IN ({})", placeholders.join(", "));
            let mut query = sql::query(sql::AssertSqlSafe(sql)).bind(user_id);
            for hash in batch {
                query = query.bind(hash);
            }
            for row in query.fetch_all(&self.pool).await? {
                held.insert(row.try_get("xorb_hash")?);
            }
        }
        Ok(held)
    }

    /// The size of the file whose Xet hash is `file_hash`, if some revision of repository
    /// `repo_id` holds it: what a Xet read token of that repository may reconstruct.
    pub async fn repo_file_size(&self, repo_id: i64, file_hash: &str) -> Result<Option<u64>> {
        let row = sql::query(
            "SELECT b.size FROM blobs b JOIN tree_entries e ON e.sha256 = b.sha256 JOIN commits c ON c.tree_id = e.tree_id
             WHERE b.file_hash = $1 AND c.repo_id = $2 LIMIT 1",
        )
        .bind(file_hash)
        .bind(repo_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| r.try_get::<i64, _>("size")).transpose()?.map(|s| s as u64))
    }

    /// The Xet file hash of each of `sha256s` that is a stored blob.
    pub async fn file_hashes(&self, sha256s: &[String]) -> Result<std::collections::HashMap<String, String>> {
        let mut found = std::collections::HashMap::new();
        for batch in sha256s.chunks(500) {
            let placeholders: Vec<String> = (1..=batch.len()).map(|i| format!("${i}")).collect();
            let sql = format!("SELECT sha256, file_hash FROM blobs WHERE sha256 IN ({})", placeholders.join(", "));
            let mut query = sql::query(sql::AssertSqlSafe(sql));
            for sha in batch {
                query = query.bind(sha);
            }
            for row in query.fetch_all(&self.pool).await? {
                found.insert(row.try_get("sha256")?, row.try_get("file_hash")?);
            }
        }
        Ok(found)
    }

    /// Which of `hashes` hold bytes of a file in some revision of a repository `reader` may read
    /// (a public one, or one in namespace `reader`): xorbs whose chunks a caller may be told
    /// about (global dedup) and reuse in its own files.
    pub async fn xorbs_readable(&self, hashes: &[String], reader: &str) -> Result<std::collections::HashSet<String>> {
        let mut readable = std::collections::HashSet::new();
        for hash in hashes {
            let row = sql::query(sql::AssertSqlSafe(format!(
                "SELECT 1 FROM cas_file_terms t JOIN blobs b ON b.file_hash = t.file_hash
                 JOIN tree_entries e ON e.sha256 = b.sha256 JOIN commits c ON c.tree_id = e.tree_id JOIN repos r ON r.id = c.repo_id
                 WHERE t.xorb_hash = $1 AND {} LIMIT 1",
                crate::orgs::visible_repo("r", "$2")
            )))
            .bind(hash)
            .bind(reader)
            .fetch_optional(&self.pool)
            .await?;
            if row.is_some() {
                readable.insert(hash.clone());
            }
        }
        Ok(readable)
    }

    /// Up to `limit` other xorbs that files using xorb `hash` use too, nearest to it in those
    /// files first, with their chunk counts: what a client deduplicating against one chunk of a
    /// file will likely meet next. Only files of repositories `reader` may read are consulted
    /// (a few of them), so every xorb returned is one the reader could download anyway.
    pub async fn xorbs_near(&self, hash: &str, reader: &str, limit: u32) -> Result<Vec<(String, u32)>> {
        let rows = sql::query(sql::AssertSqlSafe(format!(
            "WITH files AS (
                 SELECT DISTINCT t.file_hash FROM cas_file_terms t JOIN blobs b ON b.file_hash = t.file_hash
                 JOIN tree_entries e ON e.sha256 = b.sha256 JOIN commits c ON c.tree_id = e.tree_id JOIN repos r ON r.id = c.repo_id
                 WHERE t.xorb_hash = $1 AND {} LIMIT 4)
             SELECT t.xorb_hash, MIN(ABS(t.seq - x.seq)) AS distance, MAX(xo.num_chunks) AS num_chunks
             FROM files f JOIN cas_file_terms x ON x.file_hash = f.file_hash AND x.xorb_hash = $1
             JOIN cas_file_terms t ON t.file_hash = f.file_hash JOIN cas_xorbs xo ON xo.xorb_hash = t.xorb_hash
             WHERE t.xorb_hash <> $1
             GROUP BY t.xorb_hash ORDER BY distance, t.xorb_hash LIMIT $3",
            crate::orgs::visible_repo("r", "$2")
        )))
        .bind(hash)
        .bind(reader)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| Ok((r.try_get("xorb_hash")?, r.try_get::<i64, _>("num_chunks")? as u32))).collect()
    }

    /// The reconstruction of a file, ordered by offset.
    pub async fn file_terms(&self, file_hash: &str) -> Result<Vec<FileTerm>> {
        // A file's terms are written once, with the file, and never change.
        if let Some(terms) = self.cache.terms(file_hash) {
            return Ok(terms);
        }
        let terms = self.file_terms_uncached(file_hash).await?;
        if !terms.is_empty() {
            self.cache.put_terms(file_hash, &terms);
        }
        Ok(terms)
    }

    async fn file_terms_uncached(&self, file_hash: &str) -> Result<Vec<FileTerm>> {
        let rows = sql::query(
            "SELECT xorb_hash, chunk_start, chunk_end, byte_start, byte_end, file_offset, raw_size
             FROM cas_file_terms WHERE file_hash = $1 ORDER BY seq",
        )
        .bind(file_hash)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(FileTerm {
                    xorb_hash: r.try_get("xorb_hash")?,
                    chunk_start: r.try_get::<i64, _>("chunk_start")? as u32,
                    chunk_end: r.try_get::<i64, _>("chunk_end")? as u32,
                    byte_start: r.try_get::<i64, _>("byte_start")? as u64,
                    byte_end: r.try_get::<i64, _>("byte_end")? as u64,
                    file_offset: r.try_get::<i64, _>("file_offset")? as u64,
                    raw_size: r.try_get::<i64, _>("raw_size")? as u64,
                })
            })
            .collect()
    }

    /// Total bytes of xorbs the index references (what the store holds, less orphans).
    pub async fn stored_bytes(&self) -> Result<u64> {
        let row = sql::query("SELECT CAST(COALESCE(SUM(stored_size), 0) AS BIGINT) AS total FROM cas_xorbs").fetch_one(&self.pool).await?;
        Ok(row.try_get::<i64, _>("total")? as u64)
    }

    /// Every indexed xorb with its size in the store, by hash.
    pub async fn xorb_sizes(&self) -> Result<Vec<(String, u64)>> {
        let rows = sql::query("SELECT xorb_hash, stored_size FROM cas_xorbs ORDER BY xorb_hash").fetch_all(&self.pool).await?;
        rows.iter().map(|r| Ok((r.try_get("xorb_hash")?, r.try_get::<i64, _>("stored_size")? as u64))).collect()
    }

    /// What the store holds and for how much: bytes of indexed xorbs, and the bytes of the
    /// distinct files they reconstruct (their ratio is what deduplication and compression save).
    pub async fn store_totals(&self) -> Result<StoreTotals> {
        let row = sql::query(
            "SELECT (SELECT CAST(COALESCE(SUM(stored_size), 0) AS BIGINT) FROM cas_xorbs) AS stored,
                    (SELECT COUNT(*) FROM cas_xorbs) AS xorbs,
                    (SELECT CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM cas_files) AS logical,
                    (SELECT COUNT(*) FROM cas_files) AS files",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(StoreTotals {
            stored_bytes: row.try_get::<i64, _>("stored")? as u64,
            xorbs: row.try_get::<i64, _>("xorbs")? as u64,
            file_bytes: row.try_get::<i64, _>("logical")? as u64,
            files: row.try_get::<i64, _>("files")? as u64,
        })
    }
}

/// See [`Db::store_totals`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreTotals {
    pub stored_bytes: u64,
    pub xorbs: u64,
    pub file_bytes: u64,
    pub files: u64,
}

/// A xorb and its chunks (rows already there are kept).
async fn insert_xorb(tx: &mut crate::WriteTx, x: &XorbRecord) -> Result<()> {
    sql::query(
        "INSERT INTO cas_xorbs (xorb_hash, stored_size, raw_size, num_chunks, unused_since) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT DO NOTHING",
    )
    .bind(&x.xorb_hash)
    .bind(x.stored_size as i64)
    .bind(x.raw_size as i64)
    .bind(x.chunks.len() as i64)
    // No file uses it until the upload that wrote it records its file: if that never happens,
    // the collector takes it after its grace.
    .bind(crate::now_unix())
    .execute(&mut *tx)
    .await?;
    // Many rows a statement: a xorb has up to 8,192 chunks, and one statement each made
    // indexing a 1 GiB upload's 16,000 chunks take most of a second.
    for batch in x.chunks.chunks(ROWS_PER_INSERT) {
        let mut insert = sql::query(AssertSqlSafe(format!(
            "INSERT INTO cas_chunks (chunk_hash, xorb_hash, chunk_index, byte_start, byte_end, raw_size) {} ON CONFLICT DO NOTHING",
            sql::values_placeholders(batch.len(), 6, 1)
        )));
        for (hash, loc) in batch {
            insert = insert
                .bind(hash)
                .bind(&loc.xorb_hash)
                .bind(loc.chunk_index as i64)
                .bind(loc.byte_start as i64)
                .bind(loc.byte_end as i64)
                .bind(loc.raw_size as i64);
        }
        insert.execute(&mut *tx).await?;
    }
    Ok(())
}

/// Rows of a multi-row INSERT: well under SQLite's 32,766 bound parameters at nine columns.
const ROWS_PER_INSERT: usize = 1000;

/// The xorbs, chunks and file reconstruction of `rec` (rows already there are kept).
async fn insert_index(tx: &mut crate::WriteTx, rec: &IngestRecord) -> Result<()> {
    for x in &rec.xorbs {
        insert_xorb(tx, x).await?;
    }
    let now = crate::now_unix();
    let new_file = sql::query("INSERT INTO cas_files (file_hash, size, touched_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
        .bind(&rec.file_hash)
        .bind(rec.size as i64)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected()
        == 1;
    if !new_file {
        // Uploaded again: the collector's grace starts over (see `collect`).
        sql::query("UPDATE cas_files SET touched_at = $1 WHERE file_hash = $2").bind(now).bind(&rec.file_hash).execute(&mut *tx).await?;
    }
    if new_file {
        let terms: Vec<(usize, &FileTerm)> = rec.terms.iter().enumerate().collect();
        for batch in terms.chunks(ROWS_PER_INSERT) {
            let mut insert = sql::query(AssertSqlSafe(format!(
                "INSERT INTO cas_file_terms (file_hash, seq, xorb_hash, chunk_start, chunk_end, byte_start, byte_end, file_offset, raw_size) {}",
                sql::values_placeholders(batch.len(), 9, 1)
            )));
            for (seq, t) in batch {
                insert = insert
                    .bind(&rec.file_hash)
                    .bind(*seq as i64)
                    .bind(&t.xorb_hash)
                    .bind(t.chunk_start as i64)
                    .bind(t.chunk_end as i64)
                    .bind(t.byte_start as i64)
                    .bind(t.byte_end as i64)
                    .bind(t.file_offset as i64)
                    .bind(t.raw_size as i64);
            }
            insert.execute(&mut *tx).await?;
        }
        // Its xorbs are in use: the collector leaves them (see `collect`).
        let mut xorbs: Vec<&str> = rec.terms.iter().map(|t| t.xorb_hash.as_str()).collect();
        xorbs.sort_unstable();
        xorbs.dedup();
        for xorb in xorbs {
            sql::query("UPDATE cas_xorbs SET unused_since = NULL WHERE xorb_hash = $1 AND unused_since IS NOT NULL")
                .bind(xorb)
                .execute(&mut *tx)
                .await?;
        }
    }
    Ok(())
}

async fn insert_blob(tx: &mut crate::WriteTx, sha256: &str, git_sha1: &str, size: u64, file_hash: &str) -> Result<()> {
    // Stored again: the collector's grace starts over (see `collect`).
    sql::query(
        "INSERT INTO blobs (sha256, git_sha1, size, file_hash, touched_at) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (sha256) DO UPDATE SET touched_at = excluded.touched_at",
    )
    .bind(sha256)
    .bind(git_sha1)
    .bind(size as i64)
    .bind(file_hash)
    .bind(crate::now_unix())
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// One xorb of [`Db::forget_unreferenced_xorbs`], inside its transaction.
async fn forget_xorb(tx: &mut crate::WriteTx, hash: &str, chunk_hashes: &[String], cutoff: i64) -> Result<bool> {
    let used = sql::query("SELECT 1 FROM cas_file_terms WHERE xorb_hash = $1 LIMIT 1").bind(hash).fetch_optional(&mut *tx).await?;
    if used.is_some() {
        return Ok(false);
    }
    let indexed = sql::query("SELECT unused_since FROM cas_xorbs WHERE xorb_hash = $1").bind(hash).fetch_optional(&mut *tx).await?;
    if let Some(row) = indexed {
        let unused_since: Option<i64> = row.try_get("unused_since")?;
        if unused_since.is_none_or(|t| t > cutoff) {
            return Ok(false);
        }
    }
    // By chunk hash (the primary key), so that no index on the chunks' xorb is needed.
    for batch in chunk_hashes.chunks(500) {
        let placeholders: Vec<String> = (2..=batch.len() + 1).map(|i| format!("${i}")).collect();
        let sql = format!("DELETE FROM cas_chunks WHERE xorb_hash = $1 AND chunk_hash IN ({})", placeholders.join(", "));
        let mut query = sql::query(sql::AssertSqlSafe(sql)).bind(hash);
        for chunk in batch {
            query = query.bind(chunk);
        }
        query.execute(&mut *tx).await?;
    }
    sql::query("DELETE FROM cas_xorbs WHERE xorb_hash = $1").bind(hash).execute(&mut *tx).await?;
    Ok(true)
}
