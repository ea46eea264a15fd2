//! Webhooks: each belongs to one user and names what it watches (users, organizations,
//! repositories), the domains it listens to (repository changes, discussions), where it posts
//! and the secret it sends back. The hub checks what callers send; this module keeps it, finds
//! the webhooks an event concerns and records how their last delivery went.
//!
//! Every change of a webhook is one transaction with its watched items: a refused change
//! leaves the webhook as it was.

use crate::sql::{self, Row};

use crate::repos::{REPO_COLUMNS, repo_from_row};
use crate::{Db, DbError, Repo, Result, now_unix};

/// One thing a webhook watches: `kind` is `user`, `org`, `model`, `dataset`, `space` or
/// `algorithm`; `name` a namespace, or `namespace/name` for a repository.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchedItem {
    pub kind: String,
    pub name: String,
}

/// The domains a webhook listens to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WebhookDomains {
    pub repo: bool,
    pub discussion: bool,
}

/// How the last delivery of a webhook went (all its attempts).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookDelivery {
    /// When the last attempt ended.
    pub at: i64,
    /// The target's HTTP status, when one came back.
    pub status: Option<i64>,
    /// What went wrong; `None` when the target took it (2xx).
    pub error: Option<String>,
    /// The event's scope (`repo.content`, `discussion.comment`, …).
    pub event: String,
    pub attempts: i64,
}

#[derive(Clone, Debug)]
pub struct Webhook {
    /// Public id: 24 hex digits.
    pub id: String,
    pub owner_id: i64,
    pub url: String,
    pub watched: Vec<WatchedItem>,
    pub domains: WebhookDomains,
    pub secret: Option<String>,
    /// The base URL its owner last saved it through (links in payloads when the hub has no
    /// public URL).
    pub link_base: String,
    pub disabled: bool,
    pub created_at: i64,
    pub updated_at: i64,
    pub last_delivery: Option<WebhookDelivery>,
}

/// A new webhook, checked by the caller.
#[derive(Clone, Debug)]
pub struct NewWebhook {
    pub url: String,
    pub watched: Vec<WatchedItem>,
    pub domains: WebhookDomains,
    pub secret: Option<String>,
    pub link_base: String,
}

/// What an update changes; `None` keeps what is there. `secret: Some(None)` removes it.
#[derive(Clone, Debug, Default)]
pub struct WebhookChange {
    pub url: Option<String>,
    pub watched: Option<Vec<WatchedItem>>,
    pub domains: Option<WebhookDomains>,
    pub secret: Option<Option<String>>,
    pub link_base: Option<String>,
}

/// An enabled webhook an event may go to, with its owner's name (whose reading rights decide
/// whether a private repository's events reach it).
#[derive(Clone, Debug)]
pub struct WebhookTarget {
    pub id: String,
    pub owner: String,
    pub url: String,
    pub secret: Option<String>,
    pub link_base: String,
    pub domains: WebhookDomains,
}

const WEBHOOK_COLUMNS: &str = "id, owner_id, url, secret, link_base, watch_repo, watch_discussion, disabled, created_at, updated_at, \
     last_at, last_status, last_error, last_event, last_attempts";

use crate::sql::Tx;

fn webhook_from_row(row: &Row, watched: Vec<WatchedItem>) -> Result<Webhook> {
    let last_at: Option<i64> = row.try_get("last_at")?;
    let last_delivery = match last_at {
        Some(at) => Some(WebhookDelivery {
            at,
            status: row.try_get("last_status")?,
            error: row.try_get("last_error")?,
            event: row.try_get::<Option<String>, _>("last_event")?.unwrap_or_default(),
            attempts: row.try_get::<Option<i64>, _>("last_attempts")?.unwrap_or(0),
        }),
        None => None,
    };
    Ok(Webhook {
        id: row.try_get("id")?,
        owner_id: row.try_get("owner_id")?,
        url: row.try_get("url")?,
        watched,
        domains: WebhookDomains { repo: row.try_get("watch_repo")?, discussion: row.try_get("watch_discussion")? },
        secret: row.try_get("secret")?,
        link_base: row.try_get("link_base")?,
        disabled: row.try_get("disabled")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        last_delivery,
    })
}

async fn insert_watched(tx: &mut Tx, id: &str, watched: &[WatchedItem]) -> Result<()> {
    sql::query("DELETE FROM webhook_watched WHERE webhook_id = $1").bind(id).execute(&mut *tx).await?;
    for (position, item) in watched.iter().enumerate() {
        sql::query("INSERT INTO webhook_watched (webhook_id, position, kind, name) VALUES ($1, $2, $3, $4)")
            .bind(id)
            .bind(position as i64)
            .bind(&item.kind)
            .bind(&item.name)
            .execute(&mut *tx)
            .await?;
    }
    Ok(())
}

fn not_found(id: &str) -> DbError {
    DbError::NotFound(format!("webhook {id}"))
}

impl Db {
    /// Creates a webhook of user `owner_id`, unless they already have `max_per_owner`.
    pub async fn create_webhook(&self, owner_id: i64, new: &NewWebhook, max_per_owner: usize) -> Result<Webhook> {
        let mut tx = self.begin_write().await?;
        let count: i64 =
            sql::query("SELECT COUNT(*) AS n FROM webhooks WHERE owner_id = $1").bind(owner_id).fetch_one(&mut *tx).await?.try_get("n")?;
        if count as usize >= max_per_owner {
            return Err(DbError::Invalid(format!(
                "an account may have {max_per_owner} webhooks at most; delete one before creating another"
            )));
        }
        let id = hex::encode(rand::random::<[u8; 12]>());
        let time = now_unix();
        sql::query(
            "INSERT INTO webhooks (id, owner_id, url, secret, link_base, watch_repo, watch_discussion, disabled, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $8, $5, $6, FALSE, $7, $7)",
        )
        .bind(&id)
        .bind(owner_id)
        .bind(&new.url)
        .bind(&new.secret)
        .bind(new.domains.repo)
        .bind(new.domains.discussion)
        .bind(time)
        .bind(&new.link_base)
        .execute(&mut *tx)
        .await?;
        insert_watched(&mut tx, &id, &new.watched).await?;
        let hook = webhook_in(&mut tx, owner_id, &id).await?.ok_or_else(|| not_found(&id))?;
        tx.commit().await?;
        Ok(hook)
    }

    /// The webhooks of user `owner_id`, oldest first.
    pub async fn webhooks_of(&self, owner_id: i64) -> Result<Vec<Webhook>> {
        let rows =
            sql::query(sql::AssertSqlSafe(format!("SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE owner_id = $1 ORDER BY created_at, id")))
                .bind(owner_id)
                .fetch_all(&self.pool)
                .await?;
        let items = sql::query(
            "SELECT x.webhook_id, x.kind, x.name FROM webhook_watched x JOIN webhooks w ON w.id = x.webhook_id
             WHERE w.owner_id = $1 ORDER BY x.webhook_id, x.position",
        )
        .bind(owner_id)
        .fetch_all(&self.pool)
        .await?;
        let mut watched: std::collections::HashMap<String, Vec<WatchedItem>> = std::collections::HashMap::new();
        for row in &items {
            watched
                .entry(row.try_get("webhook_id")?)
                .or_default()
                .push(WatchedItem { kind: row.try_get("kind")?, name: row.try_get("name")? });
        }
        rows.iter()
            .map(|row| {
                let id: String = row.try_get("id")?;
                webhook_from_row(row, watched.remove(&id).unwrap_or_default())
            })
            .collect()
    }

    /// Webhook `id` if user `owner_id` owns it: another user's looks missing.
    pub async fn webhook(&self, owner_id: i64, id: &str) -> Result<Option<Webhook>> {
        let row = sql::query(sql::AssertSqlSafe(format!("SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE id = $1 AND owner_id = $2")))
            .bind(id)
            .bind(owner_id)
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let watched = watched_of(&self.pool, id).await?;
        Ok(Some(webhook_from_row(&row, watched)?))
    }

    /// Changes webhook `id` of user `owner_id` as `change` says.
    pub async fn update_webhook(&self, owner_id: i64, id: &str, change: &WebhookChange) -> Result<Webhook> {
        let mut tx = self.begin_write().await?;
        let hook = webhook_in(&mut tx, owner_id, id).await?.ok_or_else(|| not_found(id))?;
        let domains = change.domains.unwrap_or(hook.domains);
        let secret = change.secret.clone().unwrap_or(hook.secret);
        sql::query(
            "UPDATE webhooks SET url = $1, secret = $2, watch_repo = $3, watch_discussion = $4, updated_at = $5, link_base = $8
             WHERE id = $6 AND owner_id = $7",
        )
        .bind(change.url.as_deref().unwrap_or(&hook.url))
        .bind(secret)
        .bind(domains.repo)
        .bind(domains.discussion)
        .bind(now_unix())
        .bind(id)
        .bind(owner_id)
        .bind(change.link_base.as_deref().unwrap_or(&hook.link_base))
        .execute(&mut *tx)
        .await?;
        if let Some(watched) = &change.watched {
            insert_watched(&mut tx, id, watched).await?;
        }
        let hook = webhook_in(&mut tx, owner_id, id).await?.ok_or_else(|| not_found(id))?;
        tx.commit().await?;
        Ok(hook)
    }

    /// Disables (or enables again) webhook `id` of user `owner_id`.
    pub async fn set_webhook_disabled(&self, owner_id: i64, id: &str, disabled: bool) -> Result<Webhook> {
        let mut tx = self.begin_write().await?;
        let changed = sql::query("UPDATE webhooks SET disabled = $1, updated_at = $2 WHERE id = $3 AND owner_id = $4")
            .bind(disabled)
            .bind(now_unix())
            .bind(id)
            .bind(owner_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if changed != 1 {
            return Err(not_found(id));
        }
        let hook = webhook_in(&mut tx, owner_id, id).await?.ok_or_else(|| not_found(id))?;
        tx.commit().await?;
        Ok(hook)
    }

    /// Deletes webhook `id` of user `owner_id`; `false` if they have none by that id.
    pub async fn delete_webhook(&self, owner_id: i64, id: &str) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let owned = sql::query("SELECT id FROM webhooks WHERE id = $1 AND owner_id = $2")
            .bind(id)
            .bind(owner_id)
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
        if !owned {
            return Ok(false);
        }
        sql::query("DELETE FROM webhook_watched WHERE webhook_id = $1").bind(id).execute(&mut *tx).await?;
        sql::query("DELETE FROM webhooks WHERE id = $1").bind(id).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// The enabled webhooks that watch a repository of `kind` named one of `names`
    /// (`namespace/name`), or one of `namespaces` as a user or organization. Names are matched
    /// without regard to case. The caller checks domains and reading rights.
    pub async fn webhooks_watching(&self, kind: &str, names: &[String], namespaces: &[String]) -> Result<Vec<WebhookTarget>> {
        let mut targets = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let repo_kinds: &[&str] = &[kind];
        let owner_kinds: &[&str] = &["user", "org"];
        for (kinds, values) in [(repo_kinds, names), (owner_kinds, namespaces)] {
            for kind in kinds {
                for value in values {
                    let rows = sql::query(
                        "SELECT w.id, w.url, w.secret, w.link_base, w.watch_repo, w.watch_discussion, u.name AS owner
                         FROM webhook_watched x JOIN webhooks w ON w.id = x.webhook_id JOIN users u ON u.id = w.owner_id
                         WHERE x.kind = $1 AND lower(x.name) = lower($2) AND w.disabled = FALSE",
                    )
                    .bind(kind)
                    .bind(value)
                    .fetch_all(&self.pool)
                    .await?;
                    for row in &rows {
                        let id: String = row.try_get("id")?;
                        if seen.insert(id.clone()) {
                            targets.push(WebhookTarget {
                                id,
                                owner: row.try_get("owner")?,
                                url: row.try_get("url")?,
                                secret: row.try_get("secret")?,
                                link_base: row.try_get("link_base")?,
                                domains: WebhookDomains { repo: row.try_get("watch_repo")?, discussion: row.try_get("watch_discussion")? },
                            });
                        }
                    }
                }
            }
        }
        Ok(targets)
    }

    /// Records how the last delivery of webhook `id` went (nothing if it was deleted since).
    pub async fn record_webhook_delivery(&self, id: &str, delivery: &WebhookDelivery) -> Result<()> {
        let _turn = self.write_turn().await;
        sql::query(
            "UPDATE webhooks SET last_at = $1, last_status = $2, last_error = $3, last_event = $4, last_attempts = $5 WHERE id = $6",
        )
        .bind(delivery.at)
        .bind(delivery.status)
        .bind(&delivery.error)
        .bind(&delivery.event)
        .bind(delivery.attempts)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Repository `id` as it is now, whoever may read it (`None` once deleted): the webhooks'
    /// deliveries check reading rights against this, not against the repository as it was
    /// when the event happened.
    pub async fn repo_now(&self, id: i64) -> Result<Option<Repo>> {
        let row = sql::query(sql::AssertSqlSafe(format!("SELECT {REPO_COLUMNS} FROM repos WHERE id = $1")))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(repo_from_row).transpose()
    }
}

async fn watched_of<'e>(executor: impl Into<sql::Exec<'e>>, id: &str) -> Result<Vec<WatchedItem>> {
    let rows =
        sql::query("SELECT kind, name FROM webhook_watched WHERE webhook_id = $1 ORDER BY position").bind(id).fetch_all(executor).await?;
    rows.iter().map(|row| Ok(WatchedItem { kind: row.try_get("kind")?, name: row.try_get("name")? })).collect()
}

async fn webhook_in(tx: &mut Tx, owner_id: i64, id: &str) -> Result<Option<Webhook>> {
    let row = sql::query(sql::AssertSqlSafe(format!("SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE id = $1 AND owner_id = $2")))
        .bind(id)
        .bind(owner_id)
        .fetch_optional(&mut *tx)
        .await?;
    let Some(row) = row else { return Ok(None) };
    let watched = watched_of(&mut *tx, id).await?;
    Ok(Some(webhook_from_row(&row, watched)?))
}
