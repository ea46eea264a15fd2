//! Collections: a user's titled, ordered lists of repositories and other collections, as the
//! Hub keeps them.
//!
//! Order is kept as a sort key (`position`) that may have gaps (a deleted repository leaves its
//! collections by a cascade); what callers see and ask for is a rank among the entries the
//! viewer may see, so a hidden entry shows no gap. Each change is one transaction: a refused
//! change (a bound, a duplicate) leaves everything as it was. Who may change a collection is the
//! caller's check (`commons_repo::access`); who may *see* a collection or an item is applied in
//! every query here, as for repository listings.

use std::collections::HashMap;

use crate::sql::{self, AssertSqlSafe, Row};

use crate::repos::repo_from_row;
use crate::{Db, DbError, Repo, Result, WriteTx, now_unix};

/// Most items one collection holds (the Hub's bound).
pub const COLLECTION_ITEMS_MAX: i64 = 1000;
/// Most collections one owner has: reordering them rewrites them all.
pub const COLLECTIONS_PER_OWNER_MAX: i64 = 1000;

#[derive(Clone, Debug)]
pub struct Collection {
    /// Public id: 24 hex digits, the end of the slug.
    pub id: String,
    pub owner: String,
    pub title: String,
    pub description: Option<String>,
    pub private: bool,
    pub theme: String,
    /// Sort key among the owner's collections (not a rank: see [`Db::collection_rank`]).
    pub position: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

/// What an item of a collection is.
#[derive(Clone, Debug)]
pub enum ItemTarget {
    Repo(Repo),
    Collection(Collection),
}

#[derive(Clone, Debug)]
pub struct CollectionItem {
    /// Public id: 24 hex digits.
    pub id: String,
    /// Rank among the items the viewer may see, from 0.
    pub rank: i64,
    pub note: Option<String>,
    pub target: ItemTarget,
}

/// What [`Db::add_collection_item`] adds.
#[derive(Clone, Copy, Debug)]
pub enum NewItem<'a> {
    Repo(&'a Repo),
    Collection(&'a Collection),
}

/// What [`Db::create_collection`] did.
#[derive(Clone, Debug)]
pub enum CreatedCollection {
    New(Collection),
    /// The owner already has a collection of this title (without regard to case).
    Exists(Collection),
}

/// A change of a collection's metadata: each `Some` is set.
#[derive(Clone, Debug, Default)]
pub struct CollectionChanges {
    pub title: Option<String>,
    /// `Some(None)` clears it.
    pub description: Option<Option<String>>,
    pub private: Option<bool>,
    pub theme: Option<String>,
    /// New rank among the owner's collections.
    pub rank: Option<i64>,
}

/// Which collections a listing shows: all conditions hold; within one, any value does.
#[derive(Clone, Debug, Default)]
pub struct CollectionQuery {
    pub owners: Vec<String>,
    /// Collections holding any of these repositories or collections (both empty: no filter).
    pub holding_repos: Vec<i64>,
    pub holding_collections: Vec<String>,
    /// Words of the title or description (a substring, without regard to ASCII case).
    pub search: Option<String>,
    /// Whose private collections are shown too.
    pub viewer: Option<String>,
    pub limit: i64,
    pub offset: i64,
}

/// A new public id: 24 hex digits (the Hub's ids have that form).
pub fn new_collection_id() -> String {
    hex::encode(rand::random::<[u8; 12]>())
}

/// Whether `s` has the form of a public id of a collection or an item.
pub fn is_collection_id(s: &str) -> bool {
    s.len() == 24 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

const COLLECTION_COLUMNS: &str = "id, owner, title, description, private, theme, position, created_at, updated_at";

fn collection_from_row(row: &Row, prefix: &str) -> Result<Collection> {
    let col = |name: &str| format!("{prefix}{name}");
    Ok(Collection {
        id: row.try_get(col("id").as_str())?,
        owner: row.try_get(col("owner").as_str())?,
        title: row.try_get(col("title").as_str())?,
        description: row.try_get(col("description").as_str())?,
        private: row.try_get(col("private").as_str())?,
        theme: row.try_get(col("theme").as_str())?,
        position: row.try_get(col("position").as_str())?,
        created_at: row.try_get(col("created_at").as_str())?,
        updated_at: row.try_get(col("updated_at").as_str())?,
    })
}

/// The condition that viewer `$n` may see item `i` (joined with its repository `r` or its
/// collection `c`): a private repository or collection only the readers of its namespace (its
/// user, its organization's members).
fn item_visible(viewer: &str) -> String {
    format!(
        "((r.id IS NOT NULL AND {}) OR (c.id IS NOT NULL AND (c.private = FALSE OR {})))",
        crate::orgs::visible_repo("r", viewer),
        crate::orgs::readable_namespace("c.owner", viewer)
    )
}

/// `$first, $first+1, …` for `n` values.
fn placeholders(first: usize, n: usize) -> String {
    (first..first + n).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
}

/// The order of `order` (every entry, in order, with whether the viewer sees it) once `target`
/// is moved to rank `rank` among the entries the viewer sees (and `target`): the others keep
/// their order, hidden ones included. `Err` is the number of ranks there are.
fn moved(order: &[(String, bool)], target: &str, rank: usize) -> std::result::Result<Vec<String>, usize> {
    let seen: Vec<&str> = order.iter().filter(|(id, v)| *v || id == target).map(|(id, _)| id.as_str()).collect();
    if rank >= seen.len() || !seen.contains(&target) {
        return Err(seen.len());
    }
    let mut ranked: Vec<&str> = seen.into_iter().filter(|id| *id != target).collect();
    ranked.insert(rank, target);
    let mut rest: Vec<&str> = order.iter().map(|(id, _)| id.as_str()).filter(|id| *id != target).collect();
    // Just before the entry that follows it now, or just after the one before it.
    let at = match (ranked.get(rank + 1), rank.checked_sub(1).map(|r| ranked[r])) {
        (Some(next), _) => rest.iter().position(|id| id == next),
        (None, Some(before)) => rest.iter().position(|id| *id == before).map(|i| i + 1),
        (None, None) => Some(rest.len()),
    }
    .unwrap_or(rest.len());
    rest.insert(at, target);
    Ok(rest.into_iter().map(str::to_string).collect())
}

/// Rewrites the sort keys of `table`'s rows `order` to 0, 1, …, where they differ from `old`.
async fn write_order(tx: &mut WriteTx, table: &str, order: &[String], old: &HashMap<String, i64>) -> Result<()> {
    for (i, id) in order.iter().enumerate() {
        if old.get(id) != Some(&(i as i64)) {
            sql::query(AssertSqlSafe(format!("UPDATE {table} SET position = $1 WHERE id = $2")))
                .bind(i as i64)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
    }
    Ok(())
}

async fn collection_in(tx: &mut WriteTx, id: &str) -> Result<Collection> {
    let row = sql::query(AssertSqlSafe(format!("SELECT {COLLECTION_COLUMNS} FROM collections WHERE id = $1")))
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| DbError::NotFound(format!("collection {id}")))?;
    collection_from_row(&row, "")
}

async fn touch(tx: &mut WriteTx, id: &str, time: i64) -> Result<()> {
    sql::query("UPDATE collections SET updated_at = $1 WHERE id = $2").bind(time).bind(id).execute(&mut *tx).await?;
    Ok(())
}

impl Db {
    /// Creates collection `id` of `owner` at the end of the owner's collections, unless the
    /// owner already has one of this title (then that one is returned, unchanged).
    pub async fn create_collection(
        &self,
        id: &str,
        owner: &str,
        title: &str,
        description: Option<&str>,
        private: bool,
        theme: &str,
    ) -> Result<CreatedCollection> {
        let mut tx = self.begin_write().await?;
        let same_title = sql::query(AssertSqlSafe(format!(
            "SELECT {COLLECTION_COLUMNS} FROM collections WHERE owner = $1 AND lower(title) = lower($2)"
        )))
        .bind(owner)
        .bind(title)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(row) = same_title {
            return Ok(CreatedCollection::Exists(collection_from_row(&row, "")?));
        }
        let row = sql::query("SELECT COUNT(*) AS n, COALESCE(MAX(position) + 1, 0) AS next FROM collections WHERE owner = $1")
            .bind(owner)
            .fetch_one(&mut *tx)
            .await?;
        let (count, position): (i64, i64) = (row.try_get("n")?, row.try_get("next")?);
        if count >= COLLECTIONS_PER_OWNER_MAX {
            return Err(DbError::Invalid(format!("an account has at most {COLLECTIONS_PER_OWNER_MAX} collections")));
        }
        let time = now_unix();
        sql::query(
            "INSERT INTO collections (id, owner, title, description, private, theme, position, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
        )
        .bind(id)
        .bind(owner)
        .bind(title)
        .bind(description)
        .bind(private)
        .bind(theme)
        .bind(position)
        .bind(time)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(CreatedCollection::New(Collection {
            id: id.into(),
            owner: owner.into(),
            title: title.into(),
            description: description.map(str::to_string),
            private,
            theme: theme.into(),
            position,
            created_at: time,
            updated_at: time,
        }))
    }

    /// Collection `id`, whoever may see it (the caller checks).
    pub async fn collection(&self, id: &str) -> Result<Option<Collection>> {
        let row = sql::query(AssertSqlSafe(format!("SELECT {COLLECTION_COLUMNS} FROM collections WHERE id = $1")))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(|r| collection_from_row(r, "")).transpose()
    }

    /// The rank of `c` among its owner's collections that `viewer` may see, from 0.
    pub async fn collection_rank(&self, c: &Collection, viewer: Option<&str>) -> Result<i64> {
        Ok(sql::query(AssertSqlSafe(format!(
            "SELECT COUNT(*) AS n FROM collections WHERE owner = $1 AND (position < $2 OR (position = $2 AND id < $3))
             AND (private = FALSE OR {})",
            crate::orgs::readable_namespace("owner", "$4")
        )))
        .bind(&c.owner)
        .bind(c.position)
        .bind(&c.id)
        .bind(viewer)
        .fetch_one(&self.pool)
        .await?
        .try_get("n")?)
    }

    /// Changes collection `id` as `changes` says, all or nothing; the collection as it is then.
    /// A rank is among the collections of the owner that `viewer` may see.
    pub async fn update_collection(&self, id: &str, changes: &CollectionChanges, viewer: Option<&str>) -> Result<Collection> {
        let mut tx = self.begin_write().await?;
        let c = collection_in(&mut tx, id).await?;
        if let Some(title) = &changes.title {
            let taken = sql::query("SELECT id FROM collections WHERE owner = $1 AND lower(title) = lower($2) AND id <> $3")
                .bind(&c.owner)
                .bind(title)
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
            if taken.is_some() {
                return Err(DbError::AlreadyExists(format!("a collection of {} titled {title:?}", c.owner)));
            }
        }
        sql::query(
            "UPDATE collections SET title = COALESCE($1, title), description = CASE WHEN $2 THEN $3 ELSE description END,
             private = COALESCE($4, private), theme = COALESCE($5, theme), updated_at = $6 WHERE id = $7",
        )
        .bind(changes.title.as_deref())
        .bind(changes.description.is_some())
        .bind(changes.description.clone().flatten())
        .bind(changes.private)
        .bind(changes.theme.as_deref())
        .bind(now_unix())
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if let Some(rank) = changes.rank {
            let rows = sql::query(AssertSqlSafe(format!(
                "SELECT id, position, COALESCE(private = FALSE OR {}, FALSE) AS seen FROM collections WHERE owner = $1 ORDER BY position, id",
                crate::orgs::readable_namespace("owner", "$2")
            )))
            .bind(&c.owner)
            .bind(viewer)
            .fetch_all(&mut *tx)
            .await?;
            let (order, old) = orders(&rows)?;
            let new = moved(&order, id, usize::try_from(rank).unwrap_or(usize::MAX))
                .map_err(|n| DbError::Invalid(format!("position is from 0 to {}; {rank} is not", n.saturating_sub(1))))?;
            write_order(&mut tx, "collections", &new, &old).await?;
        }
        let c = collection_in(&mut tx, id).await?;
        tx.commit().await?;
        Ok(c)
    }

    /// Deletes collection `id` with its items; it leaves every collection that held it.
    pub async fn delete_collection(&self, id: &str) -> Result<()> {
        let mut tx = self.begin_write().await?;
        // The cascades of the schema would do this too; said here, it does not depend on them.
        sql::query("DELETE FROM collection_items WHERE collection_id = $1 OR ref_collection = $1").bind(id).execute(&mut *tx).await?;
        let gone = sql::query("DELETE FROM collections WHERE id = $1").bind(id).execute(&mut *tx).await?.rows_affected();
        if gone != 1 {
            return Err(DbError::NotFound(format!("collection {id}")));
        }
        tx.commit().await?;
        Ok(())
    }

    /// The first `per` items (in order) of each of `ids` that `viewer` may see, by collection id.
    pub async fn collection_items(&self, ids: &[String], viewer: Option<&str>, per: i64) -> Result<HashMap<String, Vec<CollectionItem>>> {
        let mut out: HashMap<String, Vec<CollectionItem>> = HashMap::new();
        if ids.is_empty() {
            return Ok(out);
        }
        let sql = format!(
            "SELECT * FROM (
               SELECT i.collection_id AS i_collection, i.id AS i_id, i.note AS i_note, i.repo_id AS i_repo,
                 r.id, r.kind, r.namespace, r.name, r.private, r.created_at, r.updated_at, r.likes, r.downloads, r.trending, r.gated, r.created_by,
                 c.id AS c_id, c.owner AS c_owner, c.title AS c_title, c.description AS c_description, c.private AS c_private,
                 c.theme AS c_theme, c.position AS c_position, c.created_at AS c_created_at, c.updated_at AS c_updated_at,
                 ROW_NUMBER() OVER (PARTITION BY i.collection_id ORDER BY i.position, i.id) AS rn
               FROM collection_items i
               LEFT JOIN repos r ON r.id = i.repo_id
               LEFT JOIN collections c ON c.id = i.ref_collection
               WHERE i.collection_id IN ({}) AND {}
             ) AS visible WHERE rn <= $2 ORDER BY i_collection, rn",
            placeholders(3, ids.len()),
            item_visible("$1"),
        );
        let mut query = sql::query(AssertSqlSafe(sql)).bind(viewer).bind(per);
        for id in ids {
            query = query.bind(id);
        }
        for row in query.fetch_all(&self.pool).await? {
            let repo: Option<i64> = row.try_get("i_repo")?;
            let target = match repo {
                Some(_) => ItemTarget::Repo(repo_from_row(&row)?),
                None => ItemTarget::Collection(collection_from_row(&row, "c_")?),
            };
            let rank: i64 = row.try_get("rn")?;
            out.entry(row.try_get("i_collection")?).or_default().push(CollectionItem {
                id: row.try_get("i_id")?,
                rank: rank - 1,
                note: row.try_get("i_note")?,
                target,
            });
        }
        Ok(out)
    }

    /// Adds `item` at the end of collection `id`, with `note`; the new item's id. Refused when
    /// the collection holds it already ([`DbError::AlreadyExists`]) or is full.
    pub async fn add_collection_item(&self, id: &str, item: NewItem<'_>, note: Option<&str>) -> Result<String> {
        let mut tx = self.begin_write().await?;
        collection_in(&mut tx, id).await?;
        let (repo_id, ref_collection, what) = match item {
            NewItem::Repo(r) => (Some(r.id), None, format!("{} {}", r.kind.as_str(), r.full_name())),
            NewItem::Collection(c) => (None, Some(c.id.as_str()), format!("collection {}", c.id)),
        };
        // What it names may have gone since the caller found it.
        let exists = match item {
            NewItem::Repo(r) => sql::query("SELECT 1 FROM repos WHERE id = $1").bind(r.id).fetch_optional(&mut *tx).await?,
            NewItem::Collection(c) => sql::query("SELECT 1 FROM collections WHERE id = $1").bind(&c.id).fetch_optional(&mut *tx).await?,
        };
        if exists.is_none() {
            return Err(DbError::NotFound(what));
        }
        let row = sql::query(
            "SELECT COUNT(*) AS n, COALESCE(MAX(position) + 1, 0) AS next,
               CAST(COALESCE(SUM(CASE WHEN repo_id = $2 OR ref_collection = $3 THEN 1 ELSE 0 END), 0) AS BIGINT) AS same
             FROM collection_items WHERE collection_id = $1",
        )
        .bind(id)
        .bind(repo_id)
        .bind(ref_collection)
        .fetch_one(&mut *tx)
        .await?;
        let (count, position, same): (i64, i64, i64) = (row.try_get("n")?, row.try_get("next")?, row.try_get("same")?);
        if same > 0 {
            return Err(DbError::AlreadyExists(format!("{what} in this collection")));
        }
        if count >= COLLECTION_ITEMS_MAX {
            return Err(DbError::Invalid(format!("a collection holds at most {COLLECTION_ITEMS_MAX} items")));
        }
        let item_id = new_collection_id();
        let time = now_unix();
        sql::query(
            "INSERT INTO collection_items (id, collection_id, position, repo_id, ref_collection, note, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&item_id)
        .bind(id)
        .bind(position)
        .bind(repo_id)
        .bind(ref_collection)
        .bind(note)
        .bind(time)
        .execute(&mut *tx)
        .await?;
        touch(&mut tx, id, time).await?;
        tx.commit().await?;
        Ok(item_id)
    }

    /// Changes item `item` of collection `id`: its note (`Some(None)` clears it) and its rank
    /// among the items `viewer` may see; all or nothing.
    pub async fn update_collection_item(
        &self,
        id: &str,
        item: &str,
        note: Option<Option<&str>>,
        rank: Option<i64>,
        viewer: Option<&str>,
    ) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let found = sql::query("SELECT 1 FROM collection_items WHERE id = $1 AND collection_id = $2")
            .bind(item)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
        if found.is_none() {
            return Err(DbError::NotFound(format!("item {item} of this collection")));
        }
        if let Some(note) = note {
            sql::query("UPDATE collection_items SET note = $1 WHERE id = $2").bind(note).bind(item).execute(&mut *tx).await?;
        }
        if let Some(rank) = rank {
            let sql = format!(
                "SELECT i.id, i.position, COALESCE({}, FALSE) AS seen FROM collection_items i
                 LEFT JOIN repos r ON r.id = i.repo_id LEFT JOIN collections c ON c.id = i.ref_collection
                 WHERE i.collection_id = $1 ORDER BY i.position, i.id",
                item_visible("$2")
            );
            let rows = sql::query(AssertSqlSafe(sql)).bind(id).bind(viewer).fetch_all(&mut *tx).await?;
            let (order, old) = orders(&rows)?;
            let new = moved(&order, item, usize::try_from(rank).unwrap_or(usize::MAX))
                .map_err(|n| DbError::Invalid(format!("position is from 0 to {}; {rank} is not", n.saturating_sub(1))))?;
            write_order(&mut tx, "collection_items", &new, &old).await?;
        }
        touch(&mut tx, id, now_unix()).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Removes item `item` from collection `id`.
    pub async fn delete_collection_item(&self, id: &str, item: &str) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let gone = sql::query("DELETE FROM collection_items WHERE id = $1 AND collection_id = $2")
            .bind(item)
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if gone != 1 {
            return Err(DbError::NotFound(format!("item {item} of this collection")));
        }
        touch(&mut tx, id, now_unix()).await?;
        tx.commit().await?;
        Ok(())
    }

    /// One page of the collections `q` asks for that its viewer may see, most recently updated
    /// first.
    pub async fn list_collections(&self, q: &CollectionQuery) -> Result<Vec<Collection>> {
        // $1 viewer, $2 limit, $3 offset, then the filters' values in this order.
        let mut clause = format!("(private = FALSE OR {})", crate::orgs::readable_namespace("owner", "$1"));
        let mut next = 4;
        if !q.owners.is_empty() {
            clause.push_str(&format!(" AND owner IN ({})", placeholders(next, q.owners.len())));
            next += q.owners.len();
        }
        if !q.holding_repos.is_empty() || !q.holding_collections.is_empty() {
            // Repository ids are numbers: written into the query itself.
            let repos = q.holding_repos.iter().map(i64::to_string).collect::<Vec<_>>().join(", ");
            let mut any = Vec::new();
            if !repos.is_empty() {
                any.push(format!("i.repo_id IN ({repos})"));
            }
            if !q.holding_collections.is_empty() {
                any.push(format!("i.ref_collection IN ({})", placeholders(next, q.holding_collections.len())));
                next += q.holding_collections.len();
            }
            clause.push_str(&format!(
                " AND EXISTS (SELECT 1 FROM collection_items i WHERE i.collection_id = collections.id AND ({}))",
                any.join(" OR ")
            ));
        }
        let pattern = q.search.as_deref().map(|s| {
            let escaped = s.to_lowercase().replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
            format!("%{escaped}%")
        });
        if pattern.is_some() {
            clause.push_str(&format!(
                " AND (lower(title) LIKE ${next} ESCAPE '\\' OR lower(COALESCE(description, '')) LIKE ${next} ESCAPE '\\')"
            ));
        }
        let sql =
            format!("SELECT {COLLECTION_COLUMNS} FROM collections WHERE {clause} ORDER BY updated_at DESC, id DESC LIMIT $2 OFFSET $3");
        let mut query = sql::query(AssertSqlSafe(sql)).bind(q.viewer.as_deref()).bind(q.limit).bind(q.offset);
        for owner in &q.owners {
            query = query.bind(owner);
        }
        for c in &q.holding_collections {
            query = query.bind(c);
        }
        if let Some(p) = pattern {
            query = query.bind(p);
        }
        query.fetch_all(&self.pool).await?.iter().map(|r| collection_from_row(r, "")).collect()
    }
}

/// The entries of an ordering query (`id`, `position`, `seen`): in order with whether the
/// viewer sees each, and each one's sort key.
#[allow(clippy::type_complexity)]
fn orders(rows: &[Row]) -> Result<(Vec<(String, bool)>, HashMap<String, i64>)> {
    let mut order = Vec::with_capacity(rows.len());
    let mut old = HashMap::with_capacity(rows.len());
    for row in rows {
        let id: String = row.try_get("id")?;
        old.insert(id.clone(), row.try_get::<i64, _>("position")?);
        order.push((id, row.try_get::<bool, _>("seen")?));
    }
    Ok((order, old))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(entries: &[(&str, bool)]) -> Vec<(String, bool)> {
        entries.iter().map(|(id, v)| (id.to_string(), *v)).collect()
    }

    #[test]
    fn moving_an_entry_keeps_the_others_in_order() {
        let all = order(&[("a", true), ("b", true), ("c", true)]);
        assert_eq!(moved(&all, "a", 1).unwrap(), ["b", "a", "c"]);
        assert_eq!(moved(&all, "a", 2).unwrap(), ["b", "c", "a"]);
        assert_eq!(moved(&all, "c", 0).unwrap(), ["c", "a", "b"]);
        assert_eq!(moved(&all, "b", 1).unwrap(), ["a", "b", "c"]);
        assert_eq!(moved(&all, "a", 3).unwrap_err(), 3, "ranks are 0 to 2");
    }

    #[test]
    fn ranks_count_only_what_the_viewer_sees_and_hidden_entries_keep_their_place() {
        let all = order(&[("a", true), ("hidden", false), ("b", true), ("c", true)]);
        // Rank 1 among a, b, c: before b, which the hidden entry precedes.
        assert_eq!(moved(&all, "c", 1).unwrap(), ["a", "hidden", "c", "b"]);
        assert_eq!(moved(&all, "a", 2).unwrap(), ["hidden", "b", "c", "a"]);
        assert_eq!(moved(&all, "a", 3).unwrap_err(), 3);
        assert_eq!(moved(&order(&[("x", true)]), "x", 0).unwrap(), ["x"]);
    }
}
