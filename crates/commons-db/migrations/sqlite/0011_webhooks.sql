-- Webhooks, as on the Hub: each belongs to one user, posts to `url` what happens to the
-- repositories it watches, in the domains it listens to. `secret` is sent back verbatim in
-- `X-Webhook-Secret` (so it is kept as given, not hashed). `id` is the public 24-hex id.
CREATE TABLE webhooks (
    id                 TEXT PRIMARY KEY,
    owner_id           INTEGER NOT NULL REFERENCES users(id),
    url                TEXT NOT NULL,
    secret             TEXT,
    -- The base URL the owner reached the hub by when they last saved it: the links of its
    -- payloads when the hub has no public URL (the owner's own Host header misleads only them).
    link_base          TEXT NOT NULL,
    watch_repo         BOOLEAN NOT NULL,
    watch_discussion   BOOLEAN NOT NULL,
    disabled           BOOLEAN NOT NULL DEFAULT FALSE,
    created_at         BIGINT NOT NULL,
    updated_at         BIGINT NOT NULL,
    -- The last delivery (all its attempts): when it ended, the target's HTTP status (NULL when
    -- none came back), what went wrong (NULL on success), the event's scope, the attempts made.
    last_at            BIGINT,
    last_status        INTEGER,
    last_error         TEXT,
    last_event         TEXT,
    last_attempts      INTEGER
);
CREATE INDEX webhooks_by_owner ON webhooks (owner_id, created_at);

-- What a webhook watches, in the order given: a user's or organization's repositories, or one
-- repository (`name` is then `namespace/name`).
CREATE TABLE webhook_watched (
    webhook_id   TEXT NOT NULL REFERENCES webhooks(id),
    position     INTEGER NOT NULL,
    kind         TEXT NOT NULL CHECK (kind IN ('user', 'org', 'model', 'dataset', 'space', 'algorithm')),
    name         TEXT NOT NULL,
    PRIMARY KEY (webhook_id, position)
);
-- An event finds the webhooks watching its repository or its namespace; names are matched
-- without regard to case, as repository ids are.
CREATE INDEX webhook_watched_by_name ON webhook_watched (kind, lower(name));
