-- Collections, as on the Hub: a titled, ordered list of repositories and other collections,
-- owned by a user. `id` is the public 24-hex-digit id that ends the slug
-- (`{owner}/{title as a slug}-{id}`); the title part of a slug is not stored, so an old slug
-- keeps working after a rename. `position` orders an owner's collections (a sort key: gaps
-- are allowed; what clients see is the rank).
CREATE TABLE collections (
    id           TEXT PRIMARY KEY,
    owner        TEXT NOT NULL,
    title        TEXT NOT NULL,
    description  TEXT,
    private      BOOLEAN NOT NULL,
    theme        TEXT NOT NULL,
    position     BIGINT NOT NULL,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);
-- One title per owner, without regard to case: a second create of it is the first's 409.
CREATE UNIQUE INDEX collections_by_title ON collections (owner, lower(title));
CREATE INDEX collections_by_owner ON collections (owner, position, id);
CREATE INDEX collections_by_update ON collections (updated_at, id);

-- What a collection holds, in `position` order (a sort key, as above): a repository, or another
-- collection. A deleted repository or collection leaves every collection that held it.
CREATE TABLE collection_items (
    id              TEXT PRIMARY KEY,
    collection_id   TEXT NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
    position        BIGINT NOT NULL,
    repo_id         INTEGER REFERENCES repos(id) ON DELETE CASCADE,
    ref_collection  TEXT REFERENCES collections(id) ON DELETE CASCADE,
    note            TEXT,
    created_at      BIGINT NOT NULL,
    CHECK ((repo_id IS NULL AND ref_collection IS NOT NULL) OR (repo_id IS NOT NULL AND ref_collection IS NULL))
);
-- Each thing at most once per collection (NULLs are distinct, so each index binds one kind).
CREATE UNIQUE INDEX collection_items_by_repo ON collection_items (collection_id, repo_id);
CREATE UNIQUE INDEX collection_items_by_collection ON collection_items (collection_id, ref_collection);
CREATE INDEX collection_items_by_position ON collection_items (collection_id, position, id);
-- For the cascades, and for listings filtered by what a collection holds.
CREATE INDEX collection_items_of_repo ON collection_items (repo_id);
CREATE INDEX collection_items_of_collection ON collection_items (ref_collection);
