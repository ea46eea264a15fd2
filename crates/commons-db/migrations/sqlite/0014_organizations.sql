-- Organizations, as on the Hub: a namespace of repositories shared by its members, each with a
-- role (`no_access`, `read`, `contributor`: writes only the repositories they created, `write`,
-- `admin`: also manages the organization). An organization's name is a namespace like a user's:
-- the two never share a name (checked by the writers of both tables). `default_private`: its
-- repositories start private unless their creator says otherwise (the Hub's Enterprise setting).
CREATE TABLE organizations (
    id               INTEGER PRIMARY KEY,
    name             TEXT NOT NULL UNIQUE,
    fullname         TEXT NOT NULL,
    default_private  BOOLEAN NOT NULL DEFAULT FALSE,
    created_at       BIGINT NOT NULL
);

CREATE TABLE org_members (
    org_id      INTEGER NOT NULL REFERENCES organizations(id),
    user_id     INTEGER NOT NULL REFERENCES users(id),
    role        TEXT NOT NULL CHECK (role IN ('no_access', 'read', 'contributor', 'write', 'admin')),
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (org_id, user_id)
);
CREATE INDEX org_members_by_user ON org_members (user_id);

-- Who created a repository (a user's name): an organization's contributors write only their own.
-- NULL for repositories made before this column, whose creator is their namespace's user.
ALTER TABLE repos ADD COLUMN created_by TEXT;
UPDATE repos SET created_by = namespace;
