-- Secrets every server of a hub shares, stored by the first server that needs one: the
-- URL-signing key, so a URL or upload token one server signed is valid on every other. On
-- SQLite they are files in the data directory (a backup copies them), so this table is
-- PostgreSQL's alone.
CREATE TABLE hub_keys (
    name  TEXT PRIMARY KEY,
    key   BYTEA NOT NULL
);
