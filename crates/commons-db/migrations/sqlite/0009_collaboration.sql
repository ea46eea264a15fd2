-- Discussions and pull requests, numbered per repository as on the Hub. A pull request is a
-- discussion with a branch `refs/pr/{num}` in `refs`, forked from `base_commit` of
-- `target_branch`; merging moves the target branch and records `merge_commit`.
CREATE TABLE discussions (
    repo_id        INTEGER NOT NULL REFERENCES repos(id),
    num            BIGINT NOT NULL,
    author         TEXT NOT NULL,
    title          TEXT NOT NULL,
    is_pr          BOOLEAN NOT NULL,
    status         TEXT NOT NULL CHECK (status IN ('draft', 'open', 'closed', 'merged')),
    target_branch  TEXT,
    base_commit    TEXT,
    merge_commit   TEXT,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL,
    PRIMARY KEY (repo_id, num)
);
CREATE INDEX discussions_by_author ON discussions (repo_id, author);

-- What happened in a discussion, in order: comments (with their latest text), status changes,
-- commits pushed to a pull request, title changes. `id` is the event's public hex id.
CREATE TABLE discussion_events (
    seq            INTEGER PRIMARY KEY,
    id             TEXT NOT NULL UNIQUE,
    repo_id        INTEGER NOT NULL,
    num            BIGINT NOT NULL,
    kind           TEXT NOT NULL CHECK (kind IN ('comment', 'status-change', 'commit', 'title-change')),
    author         TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    -- comment: its latest text; status-change: the new status; commit: the commit id;
    -- title-change: the new title.
    body           TEXT NOT NULL,
    -- title-change: the old title; commit: its summary line.
    detail         TEXT NOT NULL DEFAULT '',
    hidden         BOOLEAN NOT NULL DEFAULT FALSE,
    hidden_by      TEXT,
    FOREIGN KEY (repo_id, num) REFERENCES discussions(repo_id, num)
);
CREATE INDEX discussion_events_by_discussion ON discussion_events (repo_id, num, seq);

-- Every text a comment has had, oldest first (the first is what was posted).
CREATE TABLE discussion_comment_edits (
    event_id       TEXT NOT NULL REFERENCES discussion_events(id),
    repo_id        INTEGER NOT NULL,
    revision       BIGINT NOT NULL,
    author         TEXT NOT NULL,
    body           TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    PRIMARY KEY (event_id, revision)
);
CREATE INDEX discussion_comment_edits_by_repo ON discussion_comment_edits (repo_id);

-- Repository ids are matched without regard to case, as on the Hub: one lookup by the folded
-- names, and no two repositories whose ids differ only in case.
CREATE UNIQUE INDEX repos_by_folded_name ON repos (kind, lower(namespace), lower(name));

-- The names a repository had before it moved: its old URLs keep working, as on the Hub, until
-- a repository takes the name again.
CREATE TABLE repo_redirects (
    kind        TEXT NOT NULL,
    namespace   TEXT NOT NULL,
    name        TEXT NOT NULL,
    repo_id     INTEGER NOT NULL REFERENCES repos(id),
    PRIMARY KEY (kind, namespace, name)
);
CREATE INDEX repo_redirects_by_repo ON repo_redirects (repo_id);
