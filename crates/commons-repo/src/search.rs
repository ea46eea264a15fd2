//! The search index kept in step with repositories: a repository's document is rewritten when
//! it is created, committed to on `main`, renamed or made private or public, and dropped when
//! it is deleted, and when its likes or downloads change; at start, and after the counters of
//! old downloads and likes are recounted, what the database and the index disagree on is
//! rewritten.

use commons_db::{Repo, RepoKind, RepoQuery, RepoSort};
use commons_search::{RepoDoc, SearchQuery, Sort};
use serde_json::Value;

use crate::{RepoError, Repos, Result};

/// Turns for searches of the index: one per core.
static SEARCH_TURNS: std::sync::LazyLock<tokio::sync::Semaphore> =
    std::sync::LazyLock::new(|| tokio::sync::Semaphore::new(std::thread::available_parallelism().map_or(2, |n| n.get())));

/// Repositories rewritten per index commit while catching up.
const SYNC_BATCH: usize = 500;

impl Repos {
    /// Rewrites the document of `repo` as the database has it now. Does nothing without an index.
    pub async fn reindex(&self, repo: &Repo) -> Result<()> {
        let Some(index) = self.search.clone() else { return Ok(()) };
        let id = repo.id;
        let Some(repo) = self.db.repo_by_id(id).await? else {
            return blocking(move || index.remove(id)).await;
        };
        let doc = self.document(&repo).await?;
        blocking(move || index.upsert(&[doc])).await
    }

    /// As [`Self::reindex`], for callers whose own work is already done and must not fail on
    /// the index: a failure is logged, and the next start catches up.
    pub async fn reindex_or_log(&self, repo: &Repo) {
        if let Err(e) = self.reindex(repo).await {
            tracing::warn!(repo = %repo.full_name(), error = %e, "could not update the search index; it catches up at the next start");
        }
    }

    /// As [`Self::reindex_or_log`], for repositories known by id (those whose download counters
    /// a batch changed), in one index commit.
    pub async fn reindex_ids_or_log(&self, ids: &[i64]) {
        if let Err(e) = self.reindex_ids(ids).await {
            tracing::warn!(repos = ids.len(), error = %e, "could not update the search index; it catches up at the next start");
        }
    }

    async fn reindex_ids(&self, ids: &[i64]) -> Result<()> {
        let Some(index) = self.search.clone() else { return Ok(()) };
        let (mut docs, mut gone) = (Vec::with_capacity(ids.len()), Vec::new());
        for &id in ids {
            match self.db.repo_by_id(id).await? {
                Some(repo) => docs.push(self.document(&repo).await?),
                None => gone.push(id),
            }
        }
        blocking(move || {
            gone.into_iter().try_for_each(|id| index.remove(id))?;
            index.upsert(&docs)
        })
        .await
    }

    /// Drops the document of a deleted repository.
    pub async fn unindex(&self, repo_id: i64) {
        let Some(index) = self.search.clone() else { return };
        if let Err(e) = blocking(move || index.remove(repo_id)).await {
            tracing::warn!(repo_id, error = %e, "could not update the search index; it catches up at the next start");
        }
    }

    /// The page `q` asks for of the repositories of `kind` matching `text` (ids, in order),
    /// filtered, sorted and cut in the index; `None` when this process keeps no index (the
    /// caller then matches ids by substring in the database).
    pub async fn search(&self, kind: RepoKind, text: &str, q: &RepoQuery) -> Result<Option<Vec<i64>>> {
        let readable = self.readable_by(q).await?;
        self.search_in(kind, text, q, &readable).await
    }

    /// The namespaces whose private repositories `q`'s viewer reads: theirs, their
    /// organizations'.
    async fn readable_by(&self, q: &RepoQuery) -> Result<Vec<String>> {
        Ok(match q.viewer.as_deref() {
            Some(viewer) => self.db.readable_namespaces(viewer).await?,
            None => Vec::new(),
        })
    }

    /// [`Self::search`] for a viewer who reads the private repositories of `readable`.
    async fn search_in(&self, kind: RepoKind, text: &str, q: &RepoQuery, readable: &[String]) -> Result<Option<Vec<i64>>> {
        let Some(index) = self.search.clone() else { return Ok(None) };
        let (text, q, readable) = (text.to_string(), q.clone(), readable.to_vec());
        // Searches take turns, as many at once as there are cores, in the order they came:
        // fifty searches on fifty blocking threads would share the cores in slices and each
        // finish late, where in turn each finishes in its own time.
        let _turn = SEARCH_TURNS.acquire().await.map_err(|e| RepoError::Invalid(format!("search turns closed: {e}")))?;
        let ids = blocking(move || {
            let sort = match q.sort {
                RepoSort::LastModified => Sort::LastModified,
                RepoSort::CreatedAt => Sort::CreatedAt,
                RepoSort::Name => Sort::Name,
                RepoSort::Likes => Sort::Likes,
                RepoSort::Downloads => Sort::Downloads,
                RepoSort::Trending => Sort::Trending,
            };
            index.search(&SearchQuery {
                kind: kind.as_str(),
                text: &text,
                readable: &readable,
                author: q.author.as_deref(),
                tags: &q.tags,
                sort,
                // Names are listed A to Z unless asked otherwise, as the database lists them.
                ascending: q.ascending || matches!(q.sort, RepoSort::Name),
                offset: usize::try_from(q.offset).unwrap_or(0),
                limit: usize::try_from(q.limit).unwrap_or(0),
            })
        })
        .await?;
        Ok(Some(ids))
    }

    /// A page of the repositories of `kind` that `q` asks for: matched, sorted and paged in the
    /// index when `q.search` has text and this process keeps an index (the database then reads
    /// only the page's rows), by the database otherwise.
    pub async fn list(&self, kind: RepoKind, q: &RepoQuery) -> Result<Vec<Repo>> {
        if let Some(text) = q.search.as_deref().filter(|text| !text.trim().is_empty())
            && self.search.is_some()
        {
            let readable = self.readable_by(q).await?;
            if let Some(ids) = self.search_in(kind, text, q, &readable).await? {
                return Ok(self.db.repos_by_ids(kind, &ids, &readable).await?);
            }
        }
        Ok(self.db.list_repos(kind, q).await?)
    }

    /// Rewrites every document the database and the index disagree on, and drops documents of
    /// repositories that are gone. Returns how many documents changed.
    pub async fn sync_search(&self) -> Result<usize> {
        let Some(index) = self.search.clone() else { return Ok(0) };
        let stamps: Vec<_> = self.db.all_repos().await?.iter().map(|repo| (repo.id, bare_document(repo).stamp())).collect();
        let checker = index.clone();
        let (stale, gone) = blocking(move || checker.stale(&stamps)).await?;
        let changed = stale.len() + gone.len();
        for id in gone {
            let index = index.clone();
            blocking(move || index.remove(id)).await?;
        }
        for batch in stale.chunks(SYNC_BATCH) {
            let mut docs = Vec::with_capacity(batch.len());
            for &id in batch {
                if let Some(repo) = self.db.repo_by_id(id).await? {
                    docs.push(self.document(&repo).await?);
                }
            }
            let index = index.clone();
            blocking(move || index.upsert(&docs)).await?;
        }
        Ok(changed)
    }

    /// What the index knows of `repo`: its id, visibility, and the card at the head of `main`
    /// (Markdown, the strings of its front matter, its tags).
    async fn document(&self, repo: &Repo) -> Result<RepoDoc> {
        let (mut card_text, mut tags) = (String::new(), Vec::new());
        if let Ok(head) = self.pin(repo, "main").await
            && let Some(readme) = self.db.file_at(repo, &head, "README.md").await?
            && readme.size as u64 <= crate::CARD_LIMIT
        {
            let text = self.cas.read_to_vec(&readme.sha256, crate::CARD_LIMIT).await?;
            if let Ok(card) = commons_card::Card::parse(&String::from_utf8_lossy(&text)) {
                tags = commons_card::hub_tags(&card.metadata);
                let mut strings = Vec::new();
                for value in card.metadata.values() {
                    collect_strings(value, &mut strings);
                }
                card_text = format!("{} {}", strings.join(" "), card.body);
            }
        }
        Ok(RepoDoc { card_text, tags, ..bare_document(repo) })
    }
}

/// The document of `repo` but for its card.
fn bare_document(repo: &Repo) -> RepoDoc {
    RepoDoc {
        repo_id: repo.id,
        kind: repo.kind.as_str().to_string(),
        namespace: repo.namespace.clone(),
        name: repo.name.clone(),
        private: repo.private,
        created_at: repo.created_at,
        updated_at: repo.updated_at,
        likes: repo.likes,
        downloads: repo.downloads,
        trending: repo.trending,
        card_text: String::new(),
        tags: Vec::new(),
    }
}

fn collect_strings(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) => out.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|v| collect_strings(v, out)),
        Value::Object(map) => map.values().for_each(|v| collect_strings(v, out)),
        _ => {}
    }
}

/// Runs index work (file I/O and fsync) off the async runtime's threads.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> commons_search::Result<T> + Send + 'static) -> Result<T> {
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => Ok(result?),
        Err(e) => Err(RepoError::Invalid(format!("search index task failed: {e}"))),
    }
}
