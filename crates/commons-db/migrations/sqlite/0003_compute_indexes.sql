-- Indexes for the compute coordinator's per-report queries, so that their cost does not grow
-- with the history of the hub: one unit's assignments in a given state (its ballot, its running
-- replicas) are found through the unit, not by walking every assignment in that state.
DROP INDEX assignments_by_unit;
CREATE INDEX assignments_by_unit ON assignments (unit_id, state);
CREATE INDEX jobs_active ON jobs (state) WHERE state IN ('queued', 'running', 'validating');
CREATE INDEX ledger_transfers_by_job ON ledger_transfers (job_id, kind);
CREATE INDEX ledger_entries_by_transfer ON ledger_entries (transfer_id);

-- An account's balance, kept in the transaction of each transfer, so a debit is checked without
-- summing the account's history. The entries stay the record: the sum of an account's entries
-- equals its balance (the ledger audit checks this).
ALTER TABLE ledger_accounts ADD COLUMN balance BIGINT NOT NULL DEFAULT 0;
UPDATE ledger_accounts SET balance = COALESCE((SELECT SUM(amount) FROM ledger_entries e WHERE e.account_id = ledger_accounts.id), 0);

-- Fair share: a lease goes to the submitter served longest ago among those with work waiting,
-- then to that submitter's job served longest ago, so one large job does not hold everyone
-- else's behind it. `last_served` is the id of the latest assignment leased (ids only grow).
ALTER TABLE jobs ADD COLUMN last_served BIGINT NOT NULL DEFAULT 0;
CREATE TABLE compute_owners (
    owner_id    INTEGER PRIMARY KEY REFERENCES users(id),
    last_served BIGINT NOT NULL
);
CREATE INDEX units_wanting_workers_by_job ON units (job_id, id) WHERE open_slots > 0 AND state = 'open';

-- Worker tokens: a scope that runs compute workers for the account and reads, but writes no
-- repository and spends no credits (BOINC's "weak account key"). SQLite cannot alter a CHECK
-- constraint, so the table is rebuilt; nothing references it.
CREATE TABLE tokens_with_worker_scope (
    id          INTEGER PRIMARY KEY,
    user_id     INTEGER NOT NULL REFERENCES users(id),
    name        TEXT NOT NULL,
    -- sha256 of the secret; the secret itself is shown once and never stored.
    token_hash  TEXT NOT NULL UNIQUE,
    scope       TEXT NOT NULL CHECK (scope IN ('read', 'write', 'worker')),
    created_at  BIGINT NOT NULL,
    repo_id     INTEGER REFERENCES repos(id),
    branch      TEXT,
    expires_at  BIGINT
);
INSERT INTO tokens_with_worker_scope (id, user_id, name, token_hash, scope, created_at, repo_id, branch, expires_at)
    SELECT id, user_id, name, token_hash, scope, created_at, repo_id, branch, expires_at FROM tokens;
DROP TABLE tokens;
ALTER TABLE tokens_with_worker_scope RENAME TO tokens;
-- Housekeeping purges expired tokens every few seconds (the coordinator mints one per training
-- lease): find them without reading every token.
CREATE INDEX tokens_expiring ON tokens (expires_at) WHERE expires_at IS NOT NULL;
