-- The market: what cards say, who likes what, who downloads what.

-- A README's front matter, parsed once per README blob (a blob never changes): `cardData` of
-- any revision whose README is this blob.
CREATE TABLE cards (
    readme_sha256 TEXT PRIMARY KEY,
    metadata      TEXT NOT NULL
);
-- The tags a card gives its repository (as the Hugging Face Hub derives them), for `filter=`.
CREATE TABLE card_tags (
    readme_sha256 TEXT NOT NULL REFERENCES cards(readme_sha256),
    tag           TEXT NOT NULL,
    -- The facet it is grouped under: library, pipeline_tag, license, dataset, language, …
    facet         TEXT NOT NULL,
    PRIMARY KEY (readme_sha256, tag)
);
CREATE INDEX card_tags_by_tag ON card_tags (tag, readme_sha256);

CREATE TABLE likes (
    user_id     INTEGER NOT NULL REFERENCES users(id),
    repo_id     INTEGER NOT NULL REFERENCES repos(id),
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (user_id, repo_id)
);
CREATE INDEX likes_by_repo ON likes (repo_id);

-- One row per repository, day and client that downloaded from it that day. `client` is a
-- user id or a keyed hash of the address with the day in the key: no address is stored, and
-- the same address is not linkable across days. Rows older than 30 days are deleted daily.
CREATE TABLE repo_downloads (
    repo_id     INTEGER NOT NULL REFERENCES repos(id),
    day         BIGINT NOT NULL,
    client      TEXT NOT NULL,
    PRIMARY KEY (repo_id, day, client)
);
CREATE INDEX repo_downloads_by_day ON repo_downloads (day);

-- Counters kept with the rows above in the same transactions, so listings sort on them.
ALTER TABLE repos ADD COLUMN likes BIGINT NOT NULL DEFAULT 0;
-- Distinct clients over the last 30 days.
ALTER TABLE repos ADD COLUMN downloads BIGINT NOT NULL DEFAULT 0;
CREATE INDEX repos_by_likes ON repos (kind, likes);
CREATE INDEX repos_by_downloads ON repos (kind, downloads);
