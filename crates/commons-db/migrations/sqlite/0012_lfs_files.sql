-- The LFS objects a repository's commits have named: what `list_lfs_files` lists (each with the
-- path, branch and time it was first committed under) and `permanently_delete_lfs_files`
-- removes from the repository's history. One row per repository and object, written in the
-- commit's own transaction, so listing costs what it lists.
CREATE TABLE repo_lfs_files (
    repo_id     INTEGER NOT NULL REFERENCES repos(id),
    sha256      TEXT NOT NULL REFERENCES blobs(sha256),
    filename    TEXT NOT NULL,
    -- The branch of the first commit naming the object; unknown (NULL) for commits made before
    -- this table existed.
    ref_name    TEXT,
    pushed_at   BIGINT NOT NULL,
    PRIMARY KEY (repo_id, sha256)
);

INSERT INTO repo_lfs_files (repo_id, sha256, filename, ref_name, pushed_at)
SELECT c.repo_id, e.sha256, MIN(e.path), NULL, MIN(c.created_at)
FROM commits c JOIN tree_entries e ON e.tree_id = c.tree_id
WHERE e.lfs
GROUP BY c.repo_id, e.sha256;
