-- Gated repositories, as on the Hub: a repository's metadata stays public, its files are served
-- only to its writers and to users whose access request is accepted. `gated` is NULL (not
-- gated), 'auto' (requests are accepted when made) or 'manual' (an admin decides).
ALTER TABLE repos ADD COLUMN gated TEXT CHECK (gated IN ('auto', 'manual'));

-- One request per user and repository; its status moves as the admins decide. `granted` marks
-- an access an admin gave without a request. Times are unix seconds.
CREATE TABLE access_requests (
    id                INTEGER PRIMARY KEY,
    repo_id           INTEGER NOT NULL REFERENCES repos(id),
    user_id           INTEGER NOT NULL REFERENCES users(id),
    status            TEXT NOT NULL CHECK (status IN ('pending', 'accepted', 'rejected')),
    granted           BOOLEAN NOT NULL DEFAULT FALSE,
    rejection_reason  TEXT,
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL,
    UNIQUE (repo_id, user_id)
);
CREATE INDEX access_requests_by_status ON access_requests (repo_id, status, id);
