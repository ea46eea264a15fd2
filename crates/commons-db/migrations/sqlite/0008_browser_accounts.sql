-- Accounts for browsers: a password (an argon2 PHC string; NULL for accounts that sign in with
-- tokens only) and sign-in sessions. A session's secret lives only in the browser's HttpOnly
-- cookie; like a token's, only its sha256 is kept here.
ALTER TABLE users ADD COLUMN password_hash TEXT;

CREATE TABLE sessions (
    id           INTEGER PRIMARY KEY,
    secret_hash  TEXT NOT NULL UNIQUE,
    user_id      INTEGER NOT NULL REFERENCES users(id),
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL
);
CREATE INDEX sessions_by_expiry ON sessions (expires_at);
CREATE INDEX sessions_by_user ON sessions (user_id);
