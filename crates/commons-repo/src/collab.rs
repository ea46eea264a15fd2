//! Discussions and pull requests: opening them, what a pull request changes, and merging it
//! (a fast-forward, or a tree-level three-way merge that refuses conflicting paths).
//!
//! Who may do what is [`crate::access`]'s; this module assumes the caller checked.

use std::collections::BTreeMap;

use commons_db::{CommitInfo, CommitOp, Discussion, DiscussionStatus, FileEntry, MergePlan, NewFile, NewPullRequest, Repo};

use crate::{RepoError, Repos, Result};

/// Longest discussion title, in characters (the Hub's).
pub const TITLE_MAX: usize = 200;
/// Shortest discussion title, in characters (the Hub's).
pub const TITLE_MIN: usize = 3;
/// Longest comment, in bytes.
pub const COMMENT_MAX: usize = 64 * 1024;

/// A title as stored: trimmed, 3 to 200 characters, one line.
pub fn clean_title(title: &str) -> Result<String> {
    let t = title.trim();
    let n = t.chars().count();
    if !(TITLE_MIN..=TITLE_MAX).contains(&n) {
        return Err(RepoError::Invalid(format!("a title has {TITLE_MIN} to {TITLE_MAX} characters; this one has {n}")));
    }
    if t.chars().any(char::is_control) {
        return Err(RepoError::Invalid("a title is one line of text".into()));
    }
    Ok(t.to_string())
}

/// A comment as stored: not empty, at most [`COMMENT_MAX`] bytes.
pub fn clean_comment(text: &str) -> Result<&str> {
    if text.trim().is_empty() {
        return Err(RepoError::Invalid("the comment is empty".into()));
    }
    if text.len() > COMMENT_MAX {
        return Err(RepoError::Invalid(format!("a comment has at most {COMMENT_MAX} bytes; this one has {}", text.len())));
    }
    Ok(text)
}

/// One path a change touches: its entry before and after (either may be absent).
#[derive(Clone, Debug)]
pub struct FileChange {
    pub path: String,
    pub old: Option<FileEntry>,
    pub new: Option<FileEntry>,
}

/// What changed from tree `before` to tree `after` (both sorted by path), in path order.
pub fn tree_changes(before: &[FileEntry], after: &[FileEntry]) -> Vec<FileChange> {
    let (mut out, mut i, mut j) = (Vec::new(), 0, 0);
    while i < before.len() || j < after.len() {
        let (old, new) = match (before.get(i), after.get(j)) {
            (Some(o), Some(n)) if o.path == n.path => {
                (i, j) = (i + 1, j + 1);
                if same(o, n) {
                    continue;
                }
                (Some(o), Some(n))
            }
            (Some(o), Some(n)) if o.path < n.path => {
                i += 1;
                (Some(o), None)
            }
            (Some(o), None) => {
                i += 1;
                (Some(o), None)
            }
            (_, Some(n)) => {
                j += 1;
                (None, Some(n))
            }
            (None, None) => break,
        };
        let path = new.or(old).map(|e| e.path.clone()).unwrap_or_default();
        out.push(FileChange { path, old: old.cloned(), new: new.cloned() });
    }
    out
}

fn same(a: &FileEntry, b: &FileEntry) -> bool {
    a.sha256 == b.sha256 && a.lfs == b.lfs
}

fn same_side(a: Option<&FileEntry>, b: Option<&FileEntry>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => same(a, b),
        (None, None) => true,
        _ => false,
    }
}

/// The three-way merge of trees at path level: `theirs` (the pull request) applied to `ours`
/// (the target now), both grown from `base`. `Err` lists the paths both sides changed
/// differently, and paths that would be a file on one side and a folder on the other.
pub fn merge_trees(base: &[FileEntry], ours: &[FileEntry], theirs: &[FileEntry]) -> std::result::Result<Vec<CommitOp>, Vec<String>> {
    let index = |t: &[FileEntry]| t.iter().map(|e| (e.path.clone(), e.clone())).collect::<BTreeMap<_, _>>();
    let theirs_changes = tree_changes(base, theirs);
    let ours_changes: BTreeMap<String, FileChange> = tree_changes(base, ours).into_iter().map(|c| (c.path.clone(), c)).collect();
    let mut merged = index(ours);
    let mut conflicts = Vec::new();
    for change in theirs_changes {
        if let Some(mine) = ours_changes.get(&change.path) {
            // Both sides changed this path: fine only if to the same thing.
            if !same_side(mine.new.as_ref(), change.new.as_ref()) {
                conflicts.push(change.path.clone());
            }
            continue;
        }
        match change.new {
            Some(entry) => merged.insert(change.path.clone(), entry),
            None => merged.remove(&change.path),
        };
    }
    // A path that is a file on one side and a folder's prefix on the other.
    let paths: Vec<&String> = merged.keys().collect();
    for pair in paths.windows(2) {
        if pair[1].starts_with(pair[0].as_str()) && pair[1].as_bytes().get(pair[0].len()) == Some(&b'/') {
            conflicts.push(pair[0].clone());
        }
    }
    if !conflicts.is_empty() {
        conflicts.sort();
        conflicts.dedup();
        return Err(conflicts);
    }
    let target: Vec<FileEntry> = merged.into_values().collect();
    let mut ops = Vec::new();
    for c in tree_changes(ours, &target) {
        ops.push(match c.new {
            Some(e) => CommitOp::Put(NewFile { path: e.path, sha256: e.sha256, lfs: e.lfs }),
            None => CommitOp::Delete(c.path),
        });
    }
    Ok(ops)
}

/// Why a pull request cannot be merged as it is.
#[derive(Debug)]
pub enum MergeRefusal {
    /// These paths changed on both sides.
    Conflicts(Vec<String>),
}

impl Repos {
    /// Opens a discussion, or a pull request against `target` (a branch, `main` when `None`),
    /// starting at the branch's head. `draft` pull requests wait for their author to open them.
    pub async fn open_discussion(
        &self,
        repo: &Repo,
        author: &str,
        title: &str,
        description: &str,
        pull_request: Option<(&str, bool)>,
    ) -> Result<Discussion> {
        let title = clean_title(title)?;
        if !description.is_empty() {
            clean_comment(description)?;
        }
        let pr = match pull_request {
            Some((target, draft)) => Some(self.new_pull_request(repo, target, draft).await?),
            None => None,
        };
        Ok(self.db.open_discussion(repo, author, &title, description, pr.as_ref()).await?)
    }

    /// A pull request against branch `target`, from its head. Only a branch can be a target
    /// (not a tag or a commit id, nor another pull request).
    pub async fn new_pull_request(&self, repo: &Repo, target: &str, draft: bool) -> Result<NewPullRequest> {
        let target = target.strip_prefix("refs/heads/").unwrap_or(target);
        let is_branch = self.db.refs(repo).await?.iter().any(|r| r.kind == commons_db::RefKind::Branch && r.name == target);
        if !is_branch || target.starts_with("refs/") {
            return Err(RepoError::RevisionNotFound(format!("{target} (a pull request targets a branch)")));
        }
        let base_commit = self.pin(repo, target).await?;
        let status = if draft { DiscussionStatus::Draft } else { DiscussionStatus::Open };
        Ok(NewPullRequest { target_branch: target.to_string(), base_commit, status })
    }

    /// The pull request `num`'s branch head, its target's head, and what merging would do now.
    pub async fn merge_plan(&self, repo: &Repo, pr: &Discussion) -> Result<(String, std::result::Result<MergePlan, MergeRefusal>)> {
        let (Some(target), Some(base), Some(branch)) = (&pr.target_branch, &pr.base_commit, pr.git_ref()) else {
            return Err(RepoError::Invalid(format!("#{} is not a pull request", pr.num)));
        };
        let target_head = self.pin(repo, target).await?;
        let pr_head = self.pin(repo, &branch).await?;
        if target_head == *base {
            return Ok((target_head, Ok(MergePlan::FastForward { pr_head })));
        }
        let (base_tree, ours, theirs) =
            (self.db.tree_at(repo, base).await?, self.db.tree_at(repo, &target_head).await?, self.db.tree_at(repo, &pr_head).await?);
        let plan = merge_trees(&base_tree, &ours, &theirs).map(|ops| MergePlan::Commit { ops }).map_err(MergeRefusal::Conflicts);
        Ok((target_head, plan))
    }

    /// Merges open pull request `pr` into its target; the merged commit id, or the paths that
    /// conflict. The target's card and search entry follow when it is `main`.
    pub async fn merge(
        &self,
        repo: &Repo,
        pr: &Discussion,
        author: &str,
        comment: Option<&str>,
    ) -> Result<std::result::Result<String, MergeRefusal>> {
        let (target_head, plan) = self.merge_plan(repo, pr).await?;
        let plan = match plan {
            Ok(plan) => plan,
            Err(refusal) => return Ok(Err(refusal)),
        };
        let title = format!("Merge pull request #{}: {}", pr.num, pr.title);
        let info = CommitInfo { author, title: &title, message: "" };
        let merged = self.db.merge_pull_request(repo, pr.num, &target_head, &plan, &info, comment).await?;
        if pr.target_branch.as_deref() == Some("main") {
            self.reindex_or_log(repo).await;
        }
        Ok(Ok(merged))
    }

    /// The changes pull request `pr` brings: from where it started to its branch's head.
    pub async fn pull_request_changes(&self, repo: &Repo, pr: &Discussion) -> Result<Vec<FileChange>> {
        let (Some(base), Some(branch)) = (&pr.base_commit, pr.git_ref()) else { return Ok(Vec::new()) };
        let head = self.pin(repo, &branch).await?;
        Ok(tree_changes(&self.db.tree_at(repo, base).await?, &self.db.tree_at(repo, &head).await?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(path: &str, content: &str) -> FileEntry {
        FileEntry { path: path.into(), sha256: content.into(), size: 1, git_oid: String::new(), lfs: false }
    }

    fn paths(ops: &[CommitOp]) -> Vec<String> {
        ops.iter()
            .map(|op| match op {
                CommitOp::Put(f) => format!("put {} {}", f.path, f.sha256),
                CommitOp::Delete(p) => format!("delete {p}"),
                CommitOp::DeleteFolder(p) => format!("delete folder {p}"),
            })
            .collect()
    }

    #[test]
    fn a_merge_takes_each_sides_changes_to_different_paths() {
        let base = [e("a", "1"), e("b", "1"), e("c", "1")];
        let ours = [e("a", "2"), e("b", "1"), e("c", "1")];
        let theirs = [e("a", "1"), e("b", "1"), e("d", "1")];
        let ops = merge_trees(&base, &ours, &theirs).unwrap();
        assert_eq!(paths(&ops), ["delete c", "put d 1"]);
    }

    #[test]
    fn a_merge_refuses_paths_both_sides_changed_differently_and_names_them() {
        let base = [e("a", "1"), e("b", "1")];
        let ours = [e("a", "2"), e("b", "3")];
        let theirs = [e("a", "2"), e("c/x", "1")];
        // `a` changed the same way on both sides; `b` was changed here and deleted there.
        assert_eq!(merge_trees(&base, &ours, &theirs).unwrap_err(), ["b"]);
    }

    #[test]
    fn a_merge_refuses_a_file_that_the_other_side_made_a_folder() {
        let base = [e("a", "1")];
        let ours = [e("a", "1"), e("x", "1")];
        let theirs = [e("a", "1"), e("x/y", "1")];
        assert_eq!(merge_trees(&base, &ours, &theirs).unwrap_err(), ["x"]);
    }
}
