-- The compute network: jobs, work units, their assignments to workers (BOINC's "results"),
-- workers, and the double-entry credit ledger. Portable SQL, as 0001.

-- A token may be limited to writing one branch of one repository until it expires: the
-- coordinator mints such a token for a worker so it can publish a job's output into the
-- submitter's repository, on the unit's own branch (never `main`, which moves on validation).
ALTER TABLE tokens ADD COLUMN repo_id INTEGER REFERENCES repos(id);
ALTER TABLE tokens ADD COLUMN branch TEXT;
ALTER TABLE tokens ADD COLUMN expires_at BIGINT;

CREATE TABLE workers (
    id               INTEGER PRIMARY KEY,
    owner_id         INTEGER NOT NULL REFERENCES users(id),
    name             TEXT NOT NULL,
    cores            INTEGER NOT NULL,
    memory_bytes     BIGINT NOT NULL,
    gpu              TEXT,
    engine_version   TEXT NOT NULL,
    platform         TEXT NOT NULL,
    -- machines of one class compute bit-identical results; replicas are compared within a class
    numeric_class    TEXT NOT NULL,
    -- measured GFLOP/s of the worker's matrix-multiply kernel
    speed_gflops     DOUBLE PRECISION NOT NULL,
    -- results of this host accepted in a row; reset by an invalid result (BOINC's trust)
    consecutive_valid INTEGER NOT NULL DEFAULT 0,
    valid_results    INTEGER NOT NULL DEFAULT 0,
    invalid_results  INTEGER NOT NULL DEFAULT 0,
    error_results    INTEGER NOT NULL DEFAULT 0,
    -- hosts of the hub's operator (the embedded worker) are trusted without replication
    operator_host    BOOLEAN NOT NULL DEFAULT FALSE,
    registered_at    BIGINT NOT NULL,
    last_seen        BIGINT NOT NULL,
    UNIQUE (owner_id, name)
);

CREATE TABLE jobs (
    id            INTEGER PRIMARY KEY,
    owner_id      INTEGER NOT NULL REFERENCES users(id),
    kind          TEXT NOT NULL CHECK (kind IN ('train', 'eval', 'noop')),
    -- pinned inputs and settings, as submitted (JSON)
    spec          TEXT NOT NULL,
    state         TEXT NOT NULL CHECK (state IN ('queued', 'running', 'validating', 'done', 'failed', 'cancelled')),
    -- credits escrowed at submission
    escrow        BIGINT NOT NULL,
    -- accepted result and its provenance (JSON), once done
    result        TEXT,
    error         TEXT,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);

CREATE TABLE units (
    id              INTEGER PRIMARY KEY,
    job_id          INTEGER NOT NULL REFERENCES jobs(id),
    -- train: run a recipe; eval: score a model; noop: dispatch benchmark
    role            TEXT NOT NULL CHECK (role IN ('train', 'eval', 'noop')),
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
-- Only units that want workers: a pull finds the oldest without scanning finished ones.
CREATE INDEX units_wanting_workers ON units (id) WHERE open_slots > 0 AND state = 'open';
CREATE INDEX units_by_job ON units (job_id, state);

CREATE TABLE assignments (
    id               INTEGER PRIMARY KEY,
    unit_id          INTEGER NOT NULL REFERENCES units(id),
    worker_id        INTEGER NOT NULL REFERENCES workers(id),
    owner_id         INTEGER NOT NULL REFERENCES users(id),
    state            TEXT NOT NULL CHECK (state IN ('running', 'reported', 'errored', 'expired', 'cancelled')),
    lease_expires_at BIGINT NOT NULL,
    -- latest progress the worker streamed (JSON)
    progress         TEXT,
    -- per-epoch metrics streamed so far (JSON array)
    epochs           TEXT,
    -- what the worker reported (JSON) and the hash results are compared by
    output           TEXT,
    output_hash      TEXT,
    outcome          TEXT NOT NULL CHECK (outcome IN ('pending', 'valid', 'invalid')) DEFAULT 'pending',
    error            TEXT,
    created_at       BIGINT NOT NULL,
    reported_at      BIGINT
);
CREATE INDEX assignments_by_unit ON assignments (unit_id);
CREATE INDEX assignments_by_worker ON assignments (worker_id, state);
CREATE INDEX assignments_leases ON assignments (state, lease_expires_at);

CREATE TABLE unit_logs (
    id            INTEGER PRIMARY KEY,
    job_id        INTEGER NOT NULL REFERENCES jobs(id),
    assignment_id INTEGER REFERENCES assignments(id),
    line          TEXT NOT NULL,
    created_at    BIGINT NOT NULL
);
CREATE INDEX unit_logs_by_job ON unit_logs (job_id, id);

-- Double-entry ledger. Every transfer moves `amount` credits between two accounts as two entries
-- that sum to zero. The `issuer` account mints starter grants, so its balance is minus the
-- credits in circulation; every other account stays at or above zero.
CREATE TABLE ledger_accounts (
    id        INTEGER PRIMARY KEY,
    kind      TEXT NOT NULL CHECK (kind IN ('issuer', 'user', 'escrow')),
    user_id   INTEGER REFERENCES users(id),
    job_id    INTEGER REFERENCES jobs(id)
);
CREATE UNIQUE INDEX ledger_one_issuer ON ledger_accounts (kind) WHERE kind = 'issuer';
CREATE UNIQUE INDEX ledger_one_account_per_user ON ledger_accounts (user_id) WHERE kind = 'user';
CREATE UNIQUE INDEX ledger_one_escrow_per_job ON ledger_accounts (job_id) WHERE kind = 'escrow';

CREATE TABLE ledger_transfers (
    id            INTEGER PRIMARY KEY,
    kind          TEXT NOT NULL CHECK (kind IN ('grant', 'escrow', 'payment', 'refund')),
    job_id        INTEGER REFERENCES jobs(id),
    unit_id       INTEGER REFERENCES units(id),
    assignment_id INTEGER REFERENCES assignments(id),
    -- one grant per user, one payment per assignment, one escrow and one refund per job
    dedup_key     TEXT NOT NULL UNIQUE,
    memo          TEXT NOT NULL,
    created_at    BIGINT NOT NULL
);

CREATE TABLE ledger_entries (
    id           INTEGER PRIMARY KEY,
    transfer_id  INTEGER NOT NULL REFERENCES ledger_transfers(id),
    account_id   INTEGER NOT NULL REFERENCES ledger_accounts(id),
    amount       BIGINT NOT NULL
);
CREATE INDEX ledger_entries_by_account ON ledger_entries (account_id);
