-- Verified leaderboards. A board is a dataset × split × metric; its entries are written only by
-- the coordinator, in the transaction that finishes the job whose validated result they record
-- (an evaluation job's merged report, or each confirmed test report of a training job). Nothing
-- a worker or an owner claims enters here unvalidated.
CREATE TABLE board_entries (
    id                 INTEGER PRIMARY KEY,
    job_id             INTEGER NOT NULL REFERENCES jobs(id),
    dataset_repo_id    INTEGER NOT NULL REFERENCES repos(id),
    dataset_commit     TEXT NOT NULL,
    split              TEXT NOT NULL,
    metric             TEXT NOT NULL,
    value              DOUBLE PRECISION NOT NULL,
    higher_is_better   BOOLEAN NOT NULL,
    model_repo_id      INTEGER NOT NULL REFERENCES repos(id),
    model_commit       TEXT NOT NULL,
    -- The recipe that trained the model, when a job of this hub trained it.
    algorithm_repo_id  INTEGER REFERENCES repos(id),
    algorithm_commit   TEXT,
    -- JSON {"path", "overrides"}: the recipe values of this point.
    recipe             TEXT,
    -- JSON: every scalar metric of the result, so an entry shows its neighbours.
    metrics            TEXT NOT NULL,
    verification       TEXT NOT NULL CHECK (verification IN ('reproduced', 'attested')),
    -- JSON [Agreed]: the workers whose results agreed (trainer and evaluators).
    agreed             TEXT NOT NULL,
    workers            INTEGER NOT NULL,
    owners             INTEGER NOT NULL,
    -- Credits paid for the units that produced this result.
    credits            BIGINT NOT NULL,
    created_at         BIGINT NOT NULL,
    UNIQUE (job_id, model_commit, split, metric)
);
CREATE INDEX board_entries_by_board ON board_entries (dataset_repo_id, split, metric, value);
CREATE INDEX board_entries_by_model ON board_entries (model_repo_id);
CREATE INDEX board_entries_by_algorithm ON board_entries (algorithm_repo_id);

-- Trending: likes given over the last TRENDING_DAYS days. A like adds to it at once, an unlike
-- of a recent like takes it back, and the daily pass recomputes it, which lets old likes age out.
ALTER TABLE repos ADD COLUMN trending BIGINT NOT NULL DEFAULT 0;
CREATE INDEX repos_by_trending ON repos (kind, trending);
CREATE INDEX likes_by_repo_and_time ON likes (repo_id, created_at);
