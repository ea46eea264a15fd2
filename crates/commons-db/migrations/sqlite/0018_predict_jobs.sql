-- no-transaction
-- Batch inference (issue 16): jobs of kind 'predict', made of units of role 'predict'.
--
-- SQLite cannot change a CHECK constraint in place: `jobs` and `units` are rebuilt as its manual
-- describes (https://sqlite.org/lang_altertable.html#otheralter). That needs foreign keys off,
-- which cannot change inside a transaction, hence `no-transaction` and the explicit BEGIN/COMMIT
-- below: the rebuild is still atomic. Run twice (a crash between COMMIT and sqlx's bookkeeping),
-- it rebuilds the same tables again.
PRAGMA foreign_keys = OFF;
BEGIN;

CREATE TABLE jobs_rebuilt (
    id            INTEGER PRIMARY KEY,
    owner_id      INTEGER NOT NULL REFERENCES users(id),
    kind          TEXT NOT NULL CHECK (kind IN ('train', 'eval', 'predict', 'noop')),
    -- pinned inputs and settings, as submitted (JSON)
    spec          TEXT NOT NULL,
    state         TEXT NOT NULL CHECK (state IN ('queued', 'running', 'validating', 'done', 'failed', 'cancelled')),
    -- credits escrowed at submission
    escrow        BIGINT NOT NULL,
    -- accepted result and its provenance (JSON), once done
    result        TEXT,
    error         TEXT,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    last_served   BIGINT NOT NULL DEFAULT 0,
    needs_gpu     BOOLEAN NOT NULL DEFAULT FALSE
);
INSERT INTO jobs_rebuilt (id, owner_id, kind, spec, state, escrow, result, error, created_at, updated_at, last_served, needs_gpu)
    SELECT id, owner_id, kind, spec, state, escrow, result, error, created_at, updated_at, last_served, needs_gpu FROM jobs;
DROP TABLE jobs;
ALTER TABLE jobs_rebuilt RENAME TO jobs;
CREATE INDEX jobs_active ON jobs (state) WHERE state IN ('queued', 'running', 'validating');

CREATE TABLE units_rebuilt (
    id              INTEGER PRIMARY KEY,
    job_id          INTEGER NOT NULL REFERENCES jobs(id),
    -- train: run a recipe; eval: score a model; predict: batch inference; noop: dispatch benchmark
    role            TEXT NOT NULL CHECK (role IN ('train', 'eval', 'predict', 'noop')),
    -- what the worker runs (JSON)
    payload         TEXT NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('open', 'done', 'failed', 'cancelled')),
    -- agreeing results from distinct owners needed to accept
    quorum          INTEGER NOT NULL,
    -- assignments wanted now and not yet handed out
    open_slots      INTEGER NOT NULL,
    -- assignments ever created; capped by max_results
    results_made    INTEGER NOT NULL DEFAULT 0,
    max_results     INTEGER NOT NULL,
    errors          INTEGER NOT NULL DEFAULT 0,
    max_errors      INTEGER NOT NULL,
    -- an eval unit that validates a train unit's claimed test metrics
    validates_unit  INTEGER REFERENCES units(id),
    -- estimated floating-point operations of one run of this unit; prices its credit
    flops           DOUBLE PRECISION NOT NULL,
    canonical_hash  TEXT,
    last_error      TEXT,
    -- latest training checkpoint on the hub (JSON CheckpointRef): a re-leased unit resumes from it
    checkpoint      TEXT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
INSERT INTO units_rebuilt (id, job_id, role, payload, state, quorum, open_slots, results_made, max_results, errors, max_errors,
                           validates_unit, flops, canonical_hash, last_error, checkpoint, created_at, updated_at)
    SELECT id, job_id, role, payload, state, quorum, open_slots, results_made, max_results, errors, max_errors,
           validates_unit, flops, canonical_hash, last_error, checkpoint, created_at, updated_at FROM units;
DROP TABLE units;
ALTER TABLE units_rebuilt RENAME TO units;
-- Only units that want workers: a pull finds the oldest without scanning finished ones.
CREATE INDEX units_wanting_workers ON units (id) WHERE open_slots > 0 AND state = 'open';
CREATE INDEX units_by_job ON units (job_id, state);
CREATE INDEX units_wanting_workers_by_job ON units (job_id, id) WHERE open_slots > 0 AND state = 'open';

COMMIT;
PRAGMA foreign_keys = ON;
