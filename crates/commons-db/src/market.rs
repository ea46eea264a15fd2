//! The market's rows: cards as parsed (one per README blob, which never changes), likes, and
//! downloads by distinct client per repository per day. Counters on `repos` change in the same
//! transaction as the rows they count.

use crate::sql::{self, AssertSqlSafe};

use crate::repos::{REPO_COLUMNS, repo_from_row};
use crate::{Db, Repo, RepoKind, Result};

/// Days a download counts for.
pub const DOWNLOAD_DAYS: i64 = 30;

/// Days a like counts towards a repository's trending score.
pub const TRENDING_DAYS: i64 = 7;

/// One download to count: repository, day (unix days) and client.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Download {
    pub repo_id: i64,
    pub day: i64,
    pub client: String,
}

fn repo_columns_of(alias: &str) -> String {
    REPO_COLUMNS.split(", ").map(|c| format!("{alias}.{c}")).collect::<Vec<_>>().join(", ")
}

impl Db {
    /// Records the card of README blob `readme_sha256`: its front matter as JSON and the tags
    /// it gives, each with its facet. A blob's card never changes, so a second call changes
    /// nothing.
    pub async fn record_card(&self, readme_sha256: &str, metadata_json: &str, tags: &[(&str, String)]) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let new = sql::query("INSERT INTO cards (readme_sha256, metadata) VALUES ($1, $2) ON CONFLICT DO NOTHING")
            .bind(readme_sha256)
            .bind(metadata_json)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            == 1;
        if new {
            for (facet, tag) in tags {
                sql::query("INSERT INTO card_tags (readme_sha256, tag, facet) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
                    .bind(readme_sha256)
                    .bind(tag)
                    .bind(facet)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// The recorded front matter (JSON) of README blob `readme_sha256`.
    pub async fn card(&self, readme_sha256: &str) -> Result<Option<String>> {
        let row = sql::query("SELECT metadata FROM cards WHERE readme_sha256 = $1").bind(readme_sha256).fetch_optional(&self.pool).await?;
        Ok(match row {
            Some(row) => Some(row.try_get("metadata")?),
            None => None,
        })
    }

    /// Up to `limit` README blobs that some revision holds and that have no card yet: what a
    /// hub made before cards were recorded still has to parse.
    pub async fn readmes_without_card(&self, limit: i64) -> Result<Vec<String>> {
        let rows = sql::query(
            "SELECT DISTINCT te.sha256 FROM tree_entries te
              WHERE te.path = 'README.md' AND NOT EXISTS (SELECT 1 FROM cards c WHERE c.readme_sha256 = te.sha256)
              LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| Ok(r.try_get("sha256")?)).collect()
    }

    /// How many repositories of `kind` that `viewer` may see carry each tag on the head of
    /// `main`, with the tag's facet; most used first, at most `limit`.
    pub async fn tag_counts(&self, kind: RepoKind, viewer: Option<&str>, limit: i64) -> Result<Vec<(String, String, i64)>> {
        let rows = sql::query(AssertSqlSafe(format!(
            "SELECT t.facet, t.tag, COUNT(*) AS n FROM repos r
               JOIN refs f ON f.repo_id = r.id AND f.kind = 'branch' AND f.name = 'main'
               JOIN commits c ON c.repo_id = f.repo_id AND c.id = f.commit_id
               JOIN tree_entries te ON te.tree_id = c.tree_id AND te.path = 'README.md'
               JOIN card_tags t ON t.readme_sha256 = te.sha256
              WHERE r.kind = $1 AND {}
              GROUP BY t.facet, t.tag ORDER BY n DESC, t.tag LIMIT $3",
            crate::orgs::visible_repo("r", "$2")
        )))
        .bind(kind.as_str())
        .bind(viewer.unwrap_or(""))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| Ok((r.try_get("facet")?, r.try_get("tag")?, r.try_get("n")?))).collect()
    }

    /// Up to `limit` repositories of each kind that `viewer` may see whose card, at the head of
    /// `main`, carries `tag` (`base_model:ns/name` finds the models made from that one). It
    /// is the listing's tag filter, so it costs what a filtered listing costs.
    pub async fn repos_with_tag(&self, tag: &str, viewer: Option<&str>, limit: i64) -> Result<Vec<Repo>> {
        let mut found = Vec::new();
        for kind in [RepoKind::Model, RepoKind::Dataset, RepoKind::Algorithm] {
            let query = crate::RepoQuery {
                tags: vec![tag.to_string()],
                viewer: viewer.map(str::to_string),
                sort: crate::RepoSort::CreatedAt,
                ascending: true,
                limit,
                ..Default::default()
            };
            found.extend(self.list_repos(kind, &query).await?);
        }
        Ok(found)
    }

    /// Every repository, whatever its visibility: what the search index is checked against.
    pub async fn all_repos(&self) -> Result<Vec<Repo>> {
        let rows = sql::query(AssertSqlSafe(format!("SELECT {REPO_COLUMNS} FROM repos"))).fetch_all(&self.pool).await?;
        rows.iter().map(repo_from_row).collect()
    }

    /// The repository with id `id`, whatever its visibility (for Commons' own bookkeeping).
    pub async fn repo_by_id(&self, id: i64) -> Result<Option<Repo>> {
        let row = sql::query(AssertSqlSafe(format!("SELECT {REPO_COLUMNS} FROM repos WHERE id = $1")))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(repo_from_row).transpose()
    }

    /// Whether `user_id` likes `repo`.
    pub async fn likes_repo(&self, user_id: i64, repo: &Repo) -> Result<bool> {
        let row = sql::query("SELECT 1 FROM likes WHERE user_id = $1 AND repo_id = $2")
            .bind(user_id)
            .bind(repo.id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.is_some())
    }

    /// `user_id` likes `repo`. Returns whether that is new.
    pub async fn like(&self, user_id: i64, repo: &Repo) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let new = sql::query("INSERT INTO likes (user_id, repo_id, created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
            .bind(user_id)
            .bind(repo.id)
            .bind(crate::now_unix())
            .execute(&mut *tx)
            .await?
            .rows_affected()
            == 1;
        if new {
            sql::query("UPDATE repos SET likes = likes + 1, trending = trending + 1 WHERE id = $1").bind(repo.id).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(new)
    }

    /// `user_id` no longer likes `repo`. Returns whether they did.
    pub async fn unlike(&self, user_id: i64, repo: &Repo) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let liked_at: Option<i64> = sql::query("DELETE FROM likes WHERE user_id = $1 AND repo_id = $2 RETURNING created_at")
            .bind(user_id)
            .bind(repo.id)
            .fetch_optional(&mut *tx)
            .await?
            .map(|row| row.try_get("created_at"))
            .transpose()?;
        let gone = liked_at.is_some();
        if let Some(liked_at) = liked_at {
            // A like still counted as recent leaves the trending score with it.
            let recent = i64::from(liked_at >= crate::now_unix() - TRENDING_DAYS * 86_400);
            sql::query(
                "UPDATE repos SET likes = likes - 1, trending = CASE WHEN trending > $2 THEN trending - $2 ELSE 0 END WHERE id = $1",
            )
            .bind(repo.id)
            .bind(recent)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(gone)
    }

    /// The repositories user `name` likes that `viewer` may see, newest like first, with when.
    pub async fn likes_of(&self, name: &str, viewer: Option<&str>, limit: i64, offset: i64) -> Result<Vec<(Repo, i64)>> {
        let sql = format!(
            "SELECT {}, l.created_at AS liked_at FROM likes l
               JOIN users u ON u.id = l.user_id
               JOIN repos r ON r.id = l.repo_id
              WHERE u.name = $1 AND {}
              ORDER BY l.created_at DESC, r.id DESC LIMIT $3 OFFSET $4",
            repo_columns_of("r"),
            crate::orgs::visible_repo("r", "$2")
        );
        let rows =
            sql::query(AssertSqlSafe(sql)).bind(name).bind(viewer.unwrap_or("")).bind(limit).bind(offset).fetch_all(&self.pool).await?;
        rows.iter().map(|row| Ok((repo_from_row(row)?, row.try_get("liked_at")?))).collect()
    }

    /// Who likes `repo` (name and full name), newest like first.
    pub async fn likers(&self, repo: &Repo, limit: i64, offset: i64) -> Result<Vec<(String, String)>> {
        let rows = sql::query(
            "SELECT u.name, u.fullname FROM likes l JOIN users u ON u.id = l.user_id
              WHERE l.repo_id = $1 ORDER BY l.created_at DESC, u.id DESC LIMIT $2 OFFSET $3",
        )
        .bind(repo.id)
        .bind(limit)
        .bind(offset)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| Ok((r.try_get("name")?, r.try_get("fullname")?))).collect()
    }

    /// Counts downloads: a (repository, day, client) seen before counts nothing, a new one adds
    /// one to the repository's counter, in one transaction. Repositories deleted meanwhile are
    /// skipped. Returns the repositories whose counters changed.
    pub async fn record_downloads(&self, downloads: &[Download]) -> Result<Vec<i64>> {
        let mut counted = Vec::new();
        let mut tx = self.begin_write().await?;
        for d in downloads {
            let new = sql::query(
                "INSERT INTO repo_downloads (repo_id, day, client)
                 SELECT $1, $2, $3 WHERE EXISTS (SELECT 1 FROM repos WHERE id = $1) ON CONFLICT DO NOTHING",
            )
            .bind(d.repo_id)
            .bind(d.day)
            .bind(&d.client)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1;
            if new {
                sql::query("UPDATE repos SET downloads = downloads + 1 WHERE id = $1").bind(d.repo_id).execute(&mut *tx).await?;
                counted.push(d.repo_id);
            }
        }
        tx.commit().await?;
        counted.sort_unstable();
        counted.dedup();
        Ok(counted)
    }

    /// Drops downloads older than the 30 days ending `today` and recounts what they counted in.
    pub async fn forget_old_downloads(&self, today: i64) -> Result<()> {
        let mut tx = self.begin_write().await?;
        sql::query("DELETE FROM repo_downloads WHERE day <= $1").bind(today - DOWNLOAD_DAYS).execute(&mut *tx).await?;
        sql::query("UPDATE repos SET downloads = (SELECT COUNT(*) FROM repo_downloads d WHERE d.repo_id = repos.id) WHERE downloads > 0")
            .execute(&mut *tx)
            .await?;
        // Likes older than the window leave the trending score (only repositories that have one).
        sql::query("UPDATE repos SET trending = (SELECT COUNT(*) FROM likes l WHERE l.repo_id = repos.id AND l.created_at >= $1) WHERE trending > 0")
            .bind(crate::now_unix() - TRENDING_DAYS * 86_400)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }
}
