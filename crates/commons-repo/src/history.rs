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

/// Answers already found, by repository, head commit and path: a commit's history never
/// changes, so neither does the answer (`None`: not within the walk's bounds). The HF clients
/// ask paths-info with `expand` about the same files on every load; without this each request
/// read up to 500 commits of history.
pub(crate) struct LastCommits(quick_cache::sync::Cache<(i64, String, String), Option<Commit>>);

impl Default for LastCommits {
    fn default() -> Self {
        Self(quick_cache::sync::Cache::new(50_000))
    }
}

impl Repos {
    /// For each of `paths` (files or folders) at commit `head`, the newest commit in its history
    /// that changed it (for a folder, anything under it), within the walk's bounds.
    pub async fn last_commits(&self, repo: &Repo, head: &str, paths: &[String]) -> Result<HashMap<String, Commit>> {
        let mut found = HashMap::new();
        let mut missing = Vec::new();
        for path in paths {
            match self.last_commits.0.get(&(repo.id, head.to_string(), path.clone())) {
                Some(Some(commit)) => {
                    found.insert(path.clone(), commit);
                }
                Some(None) => {}
                None => missing.push(path.clone()),
            }
        }
        if !missing.is_empty() {
            let walked = self.walk_last_commits(repo, head, &missing).await?;
            for path in missing {
                let commit = walked.get(&path).cloned();
                self.last_commits.0.insert((repo.id, head.to_string(), path.clone()), commit.clone());
                if let Some(commit) = commit {
                    found.insert(path, commit);
                }
            }
        }
        Ok(found)
    }

    async fn walk_last_commits(&self, repo: &Repo, head: &str, paths: &[String]) -> Result<HashMap<String, Commit>> {
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
