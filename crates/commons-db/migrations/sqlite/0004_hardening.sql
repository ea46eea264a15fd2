-- Hardening (issue 9): lease tokens that die with their assignment, proof of possession for
-- content addressed by hash, and the indexes that keep listings and access checks O(output).

-- A lease token (minted for one training assignment) names its assignment. It lives exactly as
-- long as the assignment runs: the moment the assignment is reported, errs, lapses or is
-- cancelled, the trigger deletes the token in the same transaction, so a volunteer loses write
-- access to its unit branch before anyone can act on its result.
ALTER TABLE tokens ADD COLUMN assignment_id INTEGER REFERENCES assignments(id);
CREATE INDEX tokens_by_assignment ON tokens (assignment_id) WHERE assignment_id IS NOT NULL;
CREATE INDEX tokens_by_repo ON tokens (repo_id) WHERE repo_id IS NOT NULL;
CREATE TRIGGER lease_tokens_die_with_their_assignment AFTER UPDATE OF state ON assignments
    WHEN NEW.state <> 'running'
BEGIN
    DELETE FROM tokens WHERE assignment_id = NEW.id;
END;
-- Tokens minted before this migration belong to no assignment; they lapse at their expiry.

-- Who proved they hold an object's bytes (by uploading them, even when the store already had
-- them). Naming an object in a commit requires this, or that the object is already readable by
-- the caller in some repository: cross-repository dedup must never grant access to bytes.
CREATE TABLE blob_holders (
    sha256      TEXT NOT NULL REFERENCES blobs(sha256),
    user_id     INTEGER NOT NULL REFERENCES users(id),
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (sha256, user_id)
);
-- Which repositories reference an object: through the trees that hold it and the commits that
-- point at those trees.
CREATE INDEX tree_entries_by_sha256 ON tree_entries (sha256);
CREATE INDEX commits_by_tree ON commits (tree_id);

-- Log lines kept per assignment, counted so the cap is checked without counting rows.
ALTER TABLE assignments ADD COLUMN log_lines INTEGER NOT NULL DEFAULT 0;
