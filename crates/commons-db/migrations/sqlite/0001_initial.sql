-- Portable SQL: runs on SQLite (embedded default) and PostgreSQL. Times are unix seconds (BIGINT).

CREATE TABLE users (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    fullname    TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);

CREATE TABLE tokens (
    id          INTEGER PRIMARY KEY,
    user_id     INTEGER NOT NULL REFERENCES users(id),
    name        TEXT NOT NULL,
    -- sha256 of the secret; the secret itself is shown once and never stored.
    token_hash  TEXT NOT NULL UNIQUE,
    scope       TEXT NOT NULL CHECK (scope IN ('read', 'write')),
    created_at  BIGINT NOT NULL
);

CREATE TABLE repos (
    id          INTEGER PRIMARY KEY,
    kind        TEXT NOT NULL CHECK (kind IN ('model', 'dataset', 'algorithm')),
    namespace   TEXT NOT NULL,
    name        TEXT NOT NULL,
    private     BOOLEAN NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    UNIQUE (kind, namespace, name)
);

-- Blobs: file contents, addressed by sha256; the bytes live in the CAS (cas_files).
CREATE TABLE blobs (
    sha256      TEXT PRIMARY KEY,
    git_sha1    TEXT NOT NULL,
    size        BIGINT NOT NULL,
    file_hash   TEXT NOT NULL REFERENCES cas_files(file_hash)
);

-- A tree is the full listing of a revision; identical listings share one row set.
CREATE TABLE trees (
    id          TEXT PRIMARY KEY
);

CREATE TABLE tree_entries (
    tree_id     TEXT NOT NULL REFERENCES trees(id),
    path        TEXT NOT NULL,
    sha256      TEXT NOT NULL REFERENCES blobs(sha256),
    size        BIGINT NOT NULL,
    -- git blob sha1 of what git stores: the content for regular files, the pointer for LFS files
    git_oid     TEXT NOT NULL,
    lfs         BOOLEAN NOT NULL,
    PRIMARY KEY (tree_id, path)
);

CREATE TABLE commits (
    id          TEXT NOT NULL,
    repo_id     INTEGER NOT NULL REFERENCES repos(id),
    parent_id   TEXT,
    tree_id     TEXT NOT NULL REFERENCES trees(id),
    author      TEXT NOT NULL,
    title       TEXT NOT NULL,
    message     TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    -- position in the branch history it was made on; orders `log` without a recursive query
    seq         BIGINT NOT NULL,
    PRIMARY KEY (repo_id, id)
);

CREATE TABLE refs (
    repo_id     INTEGER NOT NULL REFERENCES repos(id),
    kind        TEXT NOT NULL CHECK (kind IN ('branch', 'tag')),
    name        TEXT NOT NULL,
    commit_id   TEXT NOT NULL,
    PRIMARY KEY (repo_id, kind, name)
);

-- Content-addressed store index (Xet format). Xorbs are objects in the object store.
CREATE TABLE cas_xorbs (
    xorb_hash   TEXT PRIMARY KEY,
    stored_size BIGINT NOT NULL,
    raw_size    BIGINT NOT NULL,
    num_chunks  INTEGER NOT NULL
);

-- Global dedup index: where a chunk was first stored.
CREATE TABLE cas_chunks (
    chunk_hash  TEXT PRIMARY KEY,
    xorb_hash   TEXT NOT NULL REFERENCES cas_xorbs(xorb_hash),
    chunk_index INTEGER NOT NULL,
    byte_start  BIGINT NOT NULL,
    byte_end    BIGINT NOT NULL,
    raw_size    BIGINT NOT NULL
);

CREATE TABLE cas_files (
    file_hash   TEXT PRIMARY KEY,
    size        BIGINT NOT NULL
);

-- A file reconstruction: ordered terms, each a run of consecutive chunks of one xorb.
CREATE TABLE cas_file_terms (
    file_hash   TEXT NOT NULL REFERENCES cas_files(file_hash),
    seq         INTEGER NOT NULL,
    xorb_hash   TEXT NOT NULL REFERENCES cas_xorbs(xorb_hash),
    chunk_start INTEGER NOT NULL,
    chunk_end   INTEGER NOT NULL,
    byte_start  BIGINT NOT NULL,
    byte_end    BIGINT NOT NULL,
    file_offset BIGINT NOT NULL,
    raw_size    BIGINT NOT NULL,
    PRIMARY KEY (file_hash, seq)
);

CREATE INDEX commits_by_repo_seq ON commits (repo_id, seq);
