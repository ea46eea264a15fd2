//! Verified leaderboards, read side. The coordinator writes `board_entries` (in the transaction
//! that finishes a job, then [`Db::note_write`]); these queries read them with the visibility
//! rule of every listing: an entry whose model, dataset or algorithm the viewer may not read
//! does not exist for them. A board's page, its sibling boards and a model's results are
//! answered from the read cache until the next write.

use crate::sql::{self, Row};
use commons_protocol::Verification;

use crate::cache::{BoardAnswer, BoardQuestion};
use crate::{Db, DbError, Result};

/// A board as `GET /api/leaderboards` lists it.
#[derive(Clone, Debug, PartialEq)]
pub struct BoardSummary {
    /// `namespace/name` of the dataset.
    pub dataset: String,
    pub split: String,
    pub metric: String,
    pub higher_is_better: bool,
    pub entries: i64,
    /// The best value on the board.
    pub best: f64,
    pub updated_at: i64,
}

/// One verified result on one board.
#[derive(Clone, Debug, PartialEq)]
pub struct BoardEntry {
    pub job_id: i64,
    pub model: String,
    pub model_commit: String,
    pub dataset: String,
    pub dataset_commit: String,
    pub split: String,
    pub metric: String,
    pub value: f64,
    pub higher_is_better: bool,
    pub algorithm: Option<String>,
    pub algorithm_commit: Option<String>,
    /// JSON `{"path", "overrides"}`, as the coordinator stored it.
    pub recipe: Option<String>,
    /// JSON object of every scalar metric of the result.
    pub metrics: String,
    pub verification: Verification,
    /// JSON array of `commons_protocol::Agreed`.
    pub agreed: String,
    pub workers: i64,
    pub owners: i64,
    pub credits: i64,
    pub created_at: i64,
}

/// The visibility rule for repository alias `r` and viewer parameter `$1`.
fn visible(alias: &str) -> String {
    crate::orgs::visible_repo(alias, "$1")
}

/// Entries the viewer may see: model, dataset and algorithm (when there is one) readable.
fn visible_entries() -> String {
    format!(
        "board_entries b
           JOIN repos d ON d.id = b.dataset_repo_id
           JOIN repos m ON m.id = b.model_repo_id
           LEFT JOIN repos a ON a.id = b.algorithm_repo_id
          WHERE {} AND {} AND (a.id IS NULL OR {})",
        visible("d"),
        visible("m"),
        visible("a")
    )
}

impl Db {
    /// The boards with at least one entry `viewer` may see (of one dataset when `dataset_repo_id`
    /// is given), ordered by dataset, split and metric; `limit` from `offset`.
    pub async fn boards(&self, viewer: Option<&str>, dataset_repo_id: Option<i64>, limit: i64, offset: i64) -> Result<Vec<BoardSummary>> {
        let only = if dataset_repo_id.is_some() { " AND b.dataset_repo_id = $4" } else { "" };
        let sql = format!(
            "SELECT d.namespace || '/' || d.name AS dataset, b.split, b.metric, b.higher_is_better, COUNT(*) AS n,
                    MAX(b.value) AS hi, MIN(b.value) AS lo, MAX(b.created_at) AS updated
               FROM {}{only}
              GROUP BY b.dataset_repo_id, d.namespace, d.name, b.split, b.metric, b.higher_is_better
              ORDER BY d.namespace, d.name, b.split, b.metric LIMIT $2 OFFSET $3",
            visible_entries()
        );
        let mut query = sql::query(sql::AssertSqlSafe(sql)).bind(viewer.unwrap_or("")).bind(limit).bind(offset);
        if let Some(id) = dataset_repo_id {
            query = query.bind(id);
        }
        let rows = query.fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| {
                let higher_is_better: bool = r.try_get("higher_is_better")?;
                Ok(BoardSummary {
                    dataset: r.try_get("dataset")?,
                    split: r.try_get("split")?,
                    metric: r.try_get("metric")?,
                    higher_is_better,
                    entries: r.try_get("n")?,
                    best: if higher_is_better { r.try_get("hi")? } else { r.try_get("lo")? },
                    updated_at: r.try_get("updated")?,
                })
            })
            .collect()
    }

    /// The splits and metrics of the boards of dataset `dataset_repo_id` with at least one
    /// entry `viewer` may see, by split and metric: what a board's page links to. Cheaper than
    /// [`Self::boards`] (which counts and ranges every entry): the pairs come from the board
    /// index, and each is checked by its first visible entry.
    pub async fn board_names(&self, viewer: Option<&str>, dataset_repo_id: i64, limit: i64) -> Result<Vec<(String, String)>> {
        let question = BoardQuestion::Names { dataset: dataset_repo_id, limit };
        let kept = |answer: &BoardAnswer| if let BoardAnswer::Names(names) = answer { Some(names.clone()) } else { None };
        self.through_cache(viewer, question, kept, BoardAnswer::Names, self.board_names_uncached(viewer, dataset_repo_id, limit)).await
    }

    /// The answer to `question` for `viewer` from the read cache, or `read` from the database
    /// and kept (stamped before the read, as every mutable answer is).
    async fn through_cache<T: Clone>(
        &self,
        viewer: Option<&str>,
        question: BoardQuestion,
        kept: impl Fn(&BoardAnswer) -> Option<T>,
        keep: impl Fn(T) -> BoardAnswer,
        read: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        if let Some(answer) = self.cache.board(viewer.unwrap_or(""), &question).and_then(|answer| kept(&answer)) {
            return Ok(answer);
        }
        let generation = self.cache.generation();
        let answer = read.await?;
        self.cache.put_board(viewer.unwrap_or(""), question, keep(answer.clone()), generation);
        Ok(answer)
    }

    async fn board_names_uncached(&self, viewer: Option<&str>, dataset_repo_id: i64, limit: i64) -> Result<Vec<(String, String)>> {
        let sql = format!(
            "SELECT x.split, x.metric FROM (SELECT DISTINCT split, metric FROM board_entries WHERE dataset_repo_id = $2) x
              WHERE EXISTS (SELECT 1 FROM {} AND b.dataset_repo_id = $2 AND b.split = x.split AND b.metric = x.metric)
              ORDER BY x.split, x.metric LIMIT $3",
            visible_entries()
        );
        let rows =
            sql::query(sql::AssertSqlSafe(sql)).bind(viewer.unwrap_or("")).bind(dataset_repo_id).bind(limit).fetch_all(&self.pool).await?;
        rows.iter().map(|r| Ok((r.try_get("split")?, r.try_get("metric")?))).collect()
    }

    /// The entries `viewer` may see on the board of dataset `dataset_repo_id`, `split` and
    /// `metric`, best first (earlier first on a tie), `limit` from `offset`; `None` when the
    /// viewer sees no entry there at all. Read in the order of the board's index.
    pub async fn board(
        &self,
        viewer: Option<&str>,
        dataset_repo_id: i64,
        split: &str,
        metric: &str,
        limit: i64,
        offset: i64,
    ) -> Result<Option<Vec<BoardEntry>>> {
        let question =
            BoardQuestion::Page { dataset: dataset_repo_id, split: split.to_string(), metric: metric.to_string(), limit, offset };
        let kept = |answer: &BoardAnswer| if let BoardAnswer::Page(page) = answer { Some(page.clone()) } else { None };
        let read = self.board_uncached(viewer, dataset_repo_id, split, metric, limit, offset);
        self.through_cache(viewer, question, kept, BoardAnswer::Page, read).await
    }

    async fn board_uncached(
        &self,
        viewer: Option<&str>,
        dataset_repo_id: i64,
        split: &str,
        metric: &str,
        limit: i64,
        offset: i64,
    ) -> Result<Option<Vec<BoardEntry>>> {
        let on_board = "b.dataset_repo_id = $2 AND b.split = $3 AND b.metric = $4";
        // The direction is the metric's; any visible entry says it.
        let direction =
            sql::query(sql::AssertSqlSafe(format!("SELECT b.higher_is_better FROM {} AND {on_board} LIMIT 1", visible_entries())))
                .bind(viewer.unwrap_or(""))
                .bind(dataset_repo_id)
                .bind(split)
                .bind(metric)
                .fetch_optional(&self.pool)
                .await?;
        let Some(direction) = direction else { return Ok(None) };
        let higher_is_better: bool = direction.try_get("higher_is_better")?;
        let order = if higher_is_better { "DESC" } else { "ASC" };
        let sql = format!(
            "SELECT b.*, d.namespace || '/' || d.name AS dataset, m.namespace || '/' || m.name AS model,
                    CASE WHEN a.id IS NULL THEN NULL ELSE a.namespace || '/' || a.name END AS algorithm
               FROM {} AND {on_board}
              ORDER BY b.value {order}, b.created_at, b.id LIMIT $5 OFFSET $6",
            visible_entries()
        );
        let rows = sql::query(sql::AssertSqlSafe(sql))
            .bind(viewer.unwrap_or(""))
            .bind(dataset_repo_id)
            .bind(split)
            .bind(metric)
            .bind(limit)
            .bind(offset)
            .fetch_all(&self.pool)
            .await?;
        Ok(Some(rows.iter().map(entry_from_row).collect::<Result<_>>()?))
    }

    /// The entries `viewer` may see whose model is `model_repo_id` (a model's verified results),
    /// newest first, at most `limit`.
    pub async fn board_entries_of_model(&self, viewer: Option<&str>, model_repo_id: i64, limit: i64) -> Result<Vec<BoardEntry>> {
        let question = BoardQuestion::OfModel { model: model_repo_id, limit };
        let kept = |answer: &BoardAnswer| if let BoardAnswer::Entries(entries) = answer { Some(entries.clone()) } else { None };
        let read = self.board_entries_of_model_uncached(viewer, model_repo_id, limit);
        self.through_cache(viewer, question, kept, BoardAnswer::Entries, read).await
    }

    async fn board_entries_of_model_uncached(&self, viewer: Option<&str>, model_repo_id: i64, limit: i64) -> Result<Vec<BoardEntry>> {
        let sql = format!(
            "SELECT b.*, d.namespace || '/' || d.name AS dataset, m.namespace || '/' || m.name AS model,
                    CASE WHEN a.id IS NULL THEN NULL ELSE a.namespace || '/' || a.name END AS algorithm
               FROM {} AND b.model_repo_id = $2
              ORDER BY b.created_at DESC, b.id LIMIT $3",
            visible_entries()
        );
        let rows =
            sql::query(sql::AssertSqlSafe(sql)).bind(viewer.unwrap_or("")).bind(model_repo_id).bind(limit).fetch_all(&self.pool).await?;
        rows.iter().map(entry_from_row).collect()
    }
}

fn entry_from_row(r: &Row) -> Result<BoardEntry> {
    let verification: String = r.try_get("verification")?;
    Ok(BoardEntry {
        job_id: r.try_get("job_id")?,
        model: r.try_get("model")?,
        model_commit: r.try_get("model_commit")?,
        dataset: r.try_get("dataset")?,
        dataset_commit: r.try_get("dataset_commit")?,
        split: r.try_get("split")?,
        metric: r.try_get("metric")?,
        value: r.try_get("value")?,
        higher_is_better: r.try_get("higher_is_better")?,
        algorithm: r.try_get("algorithm")?,
        algorithm_commit: r.try_get("algorithm_commit")?,
        recipe: r.try_get("recipe")?,
        metrics: r.try_get("metrics")?,
        verification: Verification::try_from(verification.as_str()).map_err(|e| DbError::Corrupt(e.to_string()))?,
        agreed: r.try_get("agreed")?,
        workers: r.try_get("workers")?,
        owners: r.try_get("owners")?,
        credits: r.try_get("credits")?,
        created_at: r.try_get("created_at")?,
    })
}
