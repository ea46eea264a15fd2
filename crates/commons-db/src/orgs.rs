//! Organizations: namespaces shared by their members, each member with a role. Who may do what
//! with a role is `commons_repo::access`; this module only stores them.

use crate::sql::{self, Row};

use crate::{Db, DbError, Result, User, now_unix};

/// A member's role in an organization, from least to most (the order is the Hub's: each role
/// may do what the ones before it may).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OrgRole {
    /// A member who sees no private repository of the organization.
    NoAccess,
    /// Reads the organization's private repositories.
    Read,
    /// Creates repositories in the organization and writes those it created.
    Contributor,
    /// Writes and administers every repository of the organization.
    Write,
    /// Also manages the organization: its members, their roles and its settings.
    Admin,
}

impl OrgRole {
    pub fn as_str(self) -> &'static str {
        match self {
            OrgRole::NoAccess => "no_access",
            OrgRole::Read => "read",
            OrgRole::Contributor => "contributor",
            OrgRole::Write => "write",
            OrgRole::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "no_access" => Ok(OrgRole::NoAccess),
            "read" => Ok(OrgRole::Read),
            "contributor" => Ok(OrgRole::Contributor),
            "write" => Ok(OrgRole::Write),
            "admin" => Ok(OrgRole::Admin),
            other => Err(DbError::Invalid(format!("unknown role {other:?}: expected no_access, read, contributor, write or admin"))),
        }
    }
}

/// The longest full name an organization may have, in characters.
pub const ORG_FULLNAME_MAX: usize = 100;

/// A user's membership of an organization, as their token carries it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Membership {
    pub org_id: i64,
    pub org: String,
    pub fullname: String,
    pub role: OrgRole,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct Organization {
    pub id: i64,
    pub name: String,
    pub fullname: String,
    /// Its repositories start private unless their creator says otherwise.
    pub default_private: bool,
    pub created_at: i64,
}

/// What an organization's overview counts: members and public repositories of each kind.
#[derive(Clone, Debug, Default)]
pub struct OrgCounts {
    pub members: i64,
    pub models: i64,
    pub datasets: i64,
    pub algorithms: i64,
}

/// The condition that the user named by placeholder `viewer` may see a private repository of
/// namespace `namespace` (an SQL expression): theirs, or an organization's where their role is
/// above `no_access`. Every query that hides private repositories uses it, so the rule lives in
/// one place (`commons_repo::access::may_read` states it for one repository).
pub(crate) fn readable_namespace(namespace: &str, viewer: &str) -> String {
    format!(
        "({namespace} = {viewer} OR {namespace} IN (SELECT o.name FROM org_members m \
           JOIN organizations o ON o.id = m.org_id JOIN users u ON u.id = m.user_id \
           WHERE u.name = {viewer} AND m.role <> 'no_access'))"
    )
}

/// [`readable_namespace`] for a repository row aliased `alias` (empty: the table's own columns):
/// public, or readable by `viewer`.
pub(crate) fn visible_repo(alias: &str, viewer: &str) -> String {
    let col = |c: &str| if alias.is_empty() { c.to_string() } else { format!("{alias}.{c}") };
    format!("({} = FALSE OR {})", col("private"), readable_namespace(&col("namespace"), viewer))
}

fn org_from_row(row: &Row) -> Result<Organization> {
    Ok(Organization {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        fullname: row.try_get("fullname")?,
        default_private: row.try_get("default_private")?,
        created_at: row.try_get("created_at")?,
    })
}

impl Db {
    /// Creates organization `name` with `admin` (a user's name) its first administrator, in one
    /// transaction. A name a user or another organization has (in any case) is taken.
    pub async fn create_org(&self, name: &str, fullname: &str, admin: &str) -> Result<Organization> {
        let mut tx = self.begin_write().await?;
        let taken = sql::query(
            "SELECT 1 FROM users WHERE lower(name) = lower($1) UNION ALL SELECT 1 FROM organizations WHERE lower(name) = lower($1)",
        )
        .bind(name)
        .fetch_optional(&mut *tx)
        .await?;
        if taken.is_some() {
            return Err(DbError::AlreadyExists(format!("the name {name}")));
        }
        let admin_id: i64 = sql::query("SELECT id FROM users WHERE name = $1")
            .bind(admin)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| DbError::NotFound(format!("user {admin}")))?
            .try_get("id")?;
        let now = now_unix();
        let id: i64 = sql::query("INSERT INTO organizations (name, fullname, created_at) VALUES ($1, $2, $3) RETURNING id")
            .bind(name)
            .bind(fullname)
            .bind(now)
            .fetch_one(&mut *tx)
            .await?
            .try_get("id")?;
        sql::query("INSERT INTO org_members (org_id, user_id, role, created_at) VALUES ($1, $2, 'admin', $3)")
            .bind(id)
            .bind(admin_id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Organization { id, name: name.into(), fullname: fullname.into(), default_private: false, created_at: now })
    }

    /// Organization `name`, if there is one.
    pub async fn org(&self, name: &str) -> Result<Option<Organization>> {
        let row = sql::query("SELECT id, name, fullname, default_private, created_at FROM organizations WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(org_from_row).transpose()
    }

    /// Changes an organization's settings; `None` leaves one as it is.
    pub async fn set_org_settings(&self, org_id: i64, fullname: Option<&str>, default_private: Option<bool>) -> Result<()> {
        let _turn = self.write_turn().await;
        sql::query(
            "UPDATE organizations SET fullname = COALESCE($1, fullname), default_private = COALESCE($2, default_private) WHERE id = $3",
        )
        .bind(fullname)
        .bind(default_private)
        .bind(org_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The organizations user `user_id` belongs to, by name.
    pub async fn memberships_of(&self, user_id: i64) -> Result<Vec<Membership>> {
        let rows = sql::query(
            "SELECT o.id, o.name, o.fullname, m.role FROM org_members m JOIN organizations o ON o.id = m.org_id
             WHERE m.user_id = $1 ORDER BY o.name",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Membership {
                    org_id: r.try_get("id")?,
                    org: r.try_get("name")?,
                    fullname: r.try_get("fullname")?,
                    role: OrgRole::parse(&r.try_get::<String, _>("role")?)?,
                })
            })
            .collect()
    }

    /// The namespaces whose private repositories user `user` reads: their own, and their
    /// organizations' where their role is above `no_access`.
    pub async fn readable_namespaces(&self, user: &str) -> Result<Vec<String>> {
        if let Some(names) = self.cache.readable(user) {
            return Ok(names.to_vec());
        }
        let generation = self.cache.generation();
        let rows = sql::query(
            "SELECT o.name FROM org_members m JOIN organizations o ON o.id = m.org_id JOIN users u ON u.id = m.user_id
             WHERE u.name = $1 AND m.role <> 'no_access' ORDER BY o.name",
        )
        .bind(user)
        .fetch_all(&self.pool)
        .await?;
        let mut names = vec![user.to_string()];
        for row in rows {
            names.push(row.try_get("name")?);
        }
        self.cache.put_readable(user, names.clone().into(), generation);
        Ok(names)
    }

    /// The role of user `user` in organization `org`, when they are a member.
    pub async fn org_role(&self, org: &str, user: &str) -> Result<Option<OrgRole>> {
        let row = sql::query(
            "SELECT m.role FROM org_members m JOIN organizations o ON o.id = m.org_id JOIN users u ON u.id = m.user_id
             WHERE o.name = $1 AND u.name = $2",
        )
        .bind(org)
        .bind(user)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| OrgRole::parse(&r.try_get::<String, _>("role")?)).transpose()
    }

    /// One page of an organization's members by name, after `after` (a name), with their roles.
    pub async fn org_members(&self, org_id: i64, after: Option<&str>, limit: i64) -> Result<Vec<(User, OrgRole)>> {
        let rows = sql::query(
            "SELECT u.id, u.name, u.fullname, u.created_at, m.role FROM org_members m JOIN users u ON u.id = m.user_id
             WHERE m.org_id = $1 AND ($2 IS NULL OR u.name > $2) ORDER BY u.name LIMIT $3",
        )
        .bind(org_id)
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let user = User {
                    id: r.try_get("id")?,
                    name: r.try_get("name")?,
                    fullname: r.try_get("fullname")?,
                    created_at: r.try_get("created_at")?,
                };
                Ok((user, OrgRole::parse(&r.try_get::<String, _>("role")?)?))
            })
            .collect()
    }

    /// Makes user `user` a member of `org_id` with `role` (adding them, or changing their role).
    /// The last administrator keeps the role: an organization nobody can manage is refused.
    pub async fn set_member_role(&self, org_id: i64, user: &str, role: OrgRole) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let user_id: i64 = sql::query("SELECT id FROM users WHERE name = $1")
            .bind(user)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| DbError::NotFound(format!("user {user}")))?
            .try_get("id")?;
        sql::query(
            "INSERT INTO org_members (org_id, user_id, role, created_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (org_id, user_id) DO UPDATE SET role = excluded.role",
        )
        .bind(org_id)
        .bind(user_id)
        .bind(role.as_str())
        .bind(now_unix())
        .execute(&mut *tx)
        .await?;
        ensure_an_admin(&mut tx, org_id).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Removes user `user` from `org_id`; false when they were not a member. The last
    /// administrator stays.
    pub async fn remove_member(&self, org_id: i64, user: &str) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let done = sql::query("DELETE FROM org_members WHERE org_id = $1 AND user_id = (SELECT id FROM users WHERE name = $2)")
            .bind(org_id)
            .bind(user)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        ensure_an_admin(&mut tx, org_id).await?;
        tx.commit().await?;
        Ok(done == 1)
    }

    /// What an organization's overview counts; repositories only the public ones.
    pub async fn org_counts(&self, org: &Organization) -> Result<OrgCounts> {
        let row = sql::query(
            "SELECT (SELECT COUNT(*) FROM org_members WHERE org_id = $1) AS members,
                    (SELECT COUNT(*) FROM repos WHERE namespace = $2 AND private = FALSE AND kind = 'model') AS models,
                    (SELECT COUNT(*) FROM repos WHERE namespace = $2 AND private = FALSE AND kind = 'dataset') AS datasets,
                    (SELECT COUNT(*) FROM repos WHERE namespace = $2 AND private = FALSE AND kind = 'algorithm') AS algorithms",
        )
        .bind(org.id)
        .bind(&org.name)
        .fetch_one(&self.pool)
        .await?;
        Ok(OrgCounts {
            members: row.try_get("members")?,
            models: row.try_get("models")?,
            datasets: row.try_get("datasets")?,
            algorithms: row.try_get("algorithms")?,
        })
    }
}

/// Refuses (rolling back the caller's transaction) a change that leaves `org_id` without an
/// administrator.
async fn ensure_an_admin(tx: &mut crate::WriteTx, org_id: i64) -> Result<()> {
    let admins: i64 = sql::query("SELECT COUNT(*) AS n FROM org_members WHERE org_id = $1 AND role = 'admin'")
        .bind(org_id)
        .fetch_one(&mut *tx)
        .await?
        .try_get("n")?;
    if admins == 0 {
        return Err(DbError::Invalid("an organization keeps at least one admin: make another member admin first".into()));
    }
    Ok(())
}
