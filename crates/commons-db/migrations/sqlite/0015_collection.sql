-- When a blob or a file reconstruction was last stored, uploaded again, or promised to a client
-- as already stored (an LFS batch answering "nothing to send"). The collector keeps what was
-- touched within its grace period whether or not a commit names it yet: an upload's bytes are
-- stored before the commit that names them, and that commit must still find them.
ALTER TABLE blobs ADD COLUMN touched_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE cas_files ADD COLUMN touched_at BIGINT NOT NULL DEFAULT 0;

-- Rows from before this migration: the last time someone uploaded them, where known.
UPDATE blobs SET touched_at = COALESCE((SELECT MAX(h.created_at) FROM blob_holders h WHERE h.sha256 = blobs.sha256), 0);
UPDATE cas_files SET touched_at = COALESCE((SELECT MAX(b.touched_at) FROM blobs b WHERE b.file_hash = cas_files.file_hash), 0);

-- The collector asks which blobs a file hash has and which files use a xorb (indexed already:
-- blobs_by_file_hash, cas_file_terms_by_xorb) and which old blobs no tree names:
CREATE INDEX blobs_by_touched ON blobs (touched_at);
CREATE INDEX cas_files_by_touched ON cas_files (touched_at);

-- Since when no file uses a xorb (NULL: some file does). Set when a xorb is written (until its
-- upload records the file) and when the collector forgets the last file using it; cleared when
-- a file using it is recorded; started over when an upload reuses one of its chunks. The
-- storage layer deletes a xorb only once this is older than its grace period.
ALTER TABLE cas_xorbs ADD COLUMN unused_since BIGINT;
UPDATE cas_xorbs SET unused_since = 0
WHERE NOT EXISTS (SELECT 1 FROM cas_file_terms t WHERE t.xorb_hash = cas_xorbs.xorb_hash);
