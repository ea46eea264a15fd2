//! The last commit that changed a path: what `expand=true` on tree listings and paths-info
//! answers as `lastCommit`, and what the pages show beside a file.

use std::collections::HashMap;

use commons_db::{Commit, Repo};

use crate::collab::tree_changes;
use crate::{Repos, Result};

/// Commits walked back from the head at most, and tree entries compared at most, to find last
/// commits: a path older than that gets none (as if its history were not known), so one request
/// costs a bounded amount however long the history.
const WALK_COMMITS: usize = 500;
const WALK_ENTRIES: usize = 2_000_000;

impl Repos {
    /// For each of `paths` (files or folders) at commit `head`, the newest commit in its history
    /// that changed it (for a folder, anything under it), within the walk's bounds.
    pub async fn last_commits(&self, repo: &Repo, head: &str, paths: &[String]) -> Result<HashMap<String, Commit>> {
        let mut found = HashMap::new();
        if paths.is_empty() {
            return Ok(found);
        }
        let history = self.db.commit_history(repo, head, 0, WALK_COMMITS).await?;
        let mut budget = WALK_ENTRIES;
        for commit in history {
            let after = self.db.tree_at(repo, &commit.id).await?;
            let before = match &commit.parent_id {
                Some(parent) => self.db.tree_at(repo, parent).await?,
                None => Vec::new().into(),
            };
            budget = budget.saturating_sub(after.len() + before.len());
            let changes = tree_changes(&before, &after);
            for path in paths {
                if found.contains_key(path) {
                    continue;
                }
                let under =
                    |p: &str| p == path || (p.len() > path.len() && p.starts_with(path.as_str()) && p.as_bytes()[path.len()] == b'/');
                if changes.iter().any(|c| under(&c.path)) {
                    found.insert(path.clone(), commit.clone());
                }
            }
            if found.len() == paths.len() || budget == 0 {
                break;
            }
        }
        Ok(found)
    }
}
