-- Xorbs a user uploaded through the Xet protocol, in full: a shard may describe files with the
-- xorbs its uploader holds and no others (knowing a xorb's hash is not holding its bytes).
CREATE TABLE xorb_holders (
    xorb_hash   TEXT NOT NULL,
    user_id     INTEGER NOT NULL REFERENCES users(id),
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (xorb_hash, user_id)
);
-- Which blob a Xet file hash is: reconstructions are asked for by file hash.
CREATE INDEX blobs_by_file_hash ON blobs (file_hash);
-- Which files use a xorb: whether a caller may read a xorb (global dedup) is a question about them.
CREATE INDEX cas_file_terms_by_xorb ON cas_file_terms (xorb_hash);
