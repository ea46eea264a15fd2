//! Users and access tokens. A token's secret is returned once at creation; only its sha256 is kept.

use crate::sql::{self, Row};
use rand::Rng;
use sha2::{Digest, Sha256};

use crate::{Db, DbError, Result, now_unix};

#[derive(Clone, Debug, serde::Serialize)]
pub struct User {
    pub id: i64,
    pub name: String,
    pub fullname: String,
    pub created_at: i64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    Read,
    Write,
    /// Runs compute workers for the account and reads what a read token reads; writes no
    /// repository and spends no credits (BOINC's "weak account key"): what a volunteer puts on
    /// a machine it does not fully trust.
    Worker,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Write => "write",
            Scope::Worker => "worker",
        }
    }
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "read" => Ok(Scope::Read),
            "write" => Ok(Scope::Write),
            "worker" => Ok(Scope::Worker),
            other => Err(DbError::Invalid(format!("unknown token scope {other:?}: expected read, write or worker"))),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Token {
    pub user: User,
    pub name: String,
    pub scope: Scope,
    /// When set, the token may write only to this repository (a worker publishing a job's output)
    /// and only to `branch`.
    pub repo_id: Option<i64>,
    pub branch: Option<String>,
    /// The organizations of `user` and their role in each, read with the token (a change of
    /// membership is a write, which turns the token cache over).
    pub orgs: Vec<crate::Membership>,
}

impl Token {
    /// A lease token: limited to one branch of one repository, minted for a compute assignment.
    /// It acts for no account beyond that branch: it reads what anonymous callers read.
    pub fn is_lease(&self) -> bool {
        self.repo_id.is_some()
    }
}

/// An access token as its owner sees it in their settings (never its secret).
#[derive(Clone, Debug, serde::Serialize)]
pub struct TokenInfo {
    pub id: i64,
    pub name: String,
    pub scope: Scope,
    pub created_at: i64,
}

fn new_secret() -> String {
    let mut bytes = [0u8; 24];
    rand::rng().fill(&mut bytes);
    format!("cm_{}", hex::encode(bytes))
}

fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

fn user_from_row(row: &Row) -> Result<User> {
    Ok(User {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        fullname: row.try_get("fullname")?,
        created_at: row.try_get("created_at")?,
    })
}

impl Db {
    pub async fn create_user(&self, name: &str, fullname: &str) -> Result<User> {
        self.create_user_with_password(name, fullname, None).await
    }

    /// Creates an account that may also sign in with a password (`password_hash`: a PHC string,
    /// hashed by the caller), in one statement: there is no moment where it exists without one.
    pub async fn create_user_with_password(&self, name: &str, fullname: &str, password_hash: Option<&str>) -> Result<User> {
        let now = now_unix();
        let _turn = self.write_turn().await;
        // An organization's name is a namespace too: a user cannot take it (nor differ from it
        // in case only), in the same statement that inserts.
        let res = sql::query(
            "INSERT INTO users (name, fullname, created_at, password_hash)
             SELECT $1, $2, $3, $4 WHERE NOT EXISTS (SELECT 1 FROM organizations WHERE lower(name) = lower($1)) RETURNING id",
        )
        .bind(name)
        .bind(fullname)
        .bind(now)
        .bind(password_hash)
        .fetch_optional(&self.pool)
        .await;
        match res {
            Ok(Some(row)) => Ok(User { id: row.try_get("id")?, name: name.into(), fullname: fullname.into(), created_at: now }),
            Ok(None) => Err(DbError::AlreadyExists(format!("the name {name} (an organization's)"))),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Err(DbError::AlreadyExists(format!("user {name}"))),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn user_by_name(&self, name: &str) -> Result<Option<User>> {
        let row =
            sql::query("SELECT id, name, fullname, created_at FROM users WHERE name = $1").bind(name).fetch_optional(&self.pool).await?;
        row.as_ref().map(user_from_row).transpose()
    }

    /// Sets (or replaces) the password of `name`; every session of the account ends with it.
    pub async fn set_password(&self, name: &str, password_hash: &str) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let row = sql::query("UPDATE users SET password_hash = $1 WHERE name = $2 RETURNING id")
            .bind(password_hash)
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| DbError::NotFound(format!("user {name}")))?;
        let id: i64 = row.try_get("id")?;
        sql::query("DELETE FROM sessions WHERE user_id = $1").bind(id).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Changes the full name shown for account `user_id`.
    pub async fn set_fullname(&self, user_id: i64, fullname: &str) -> Result<()> {
        let _turn = self.write_turn().await;
        sql::query("UPDATE users SET fullname = $1 WHERE id = $2").bind(fullname).bind(user_id).execute(&self.pool).await?;
        Ok(())
    }

    /// The account `name` and its password hash (`None` when it signs in with tokens only).
    pub async fn user_with_password(&self, name: &str) -> Result<Option<(User, Option<String>)>> {
        let row = sql::query("SELECT id, name, fullname, created_at, password_hash FROM users WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| Ok((user_from_row(&row)?, row.try_get("password_hash")?))).transpose()
    }

    /// Starts a browser session of `user_id` lasting `seconds`; returns its secret (the cookie).
    pub async fn create_session(&self, user_id: i64, seconds: i64) -> Result<String> {
        let secret = new_secret();
        let now = now_unix();
        let _turn = self.write_turn().await;
        sql::query("INSERT INTO sessions (secret_hash, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)")
            .bind(hash_secret(&secret))
            .bind(user_id)
            .bind(now)
            .bind(now + seconds)
            .execute(&self.pool)
            .await?;
        Ok(secret)
    }

    /// The account of the session with secret `secret`, while it lasts.
    pub async fn session_user(&self, secret: &str) -> Result<Option<User>> {
        let row = sql::query(
            "SELECT u.id, u.name, u.fullname, u.created_at FROM sessions s JOIN users u ON u.id = s.user_id
             WHERE s.secret_hash = $1 AND s.expires_at >= $2",
        )
        .bind(hash_secret(secret))
        .bind(now_unix())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    /// Ends the session with secret `secret` (signing out); one already gone is fine.
    pub async fn end_session(&self, secret: &str) -> Result<()> {
        let _turn = self.write_turn().await;
        sql::query("DELETE FROM sessions WHERE secret_hash = $1").bind(hash_secret(secret)).execute(&self.pool).await?;
        Ok(())
    }

    /// The account's own access tokens (not lease tokens), newest first.
    pub async fn tokens_of(&self, user_id: i64) -> Result<Vec<TokenInfo>> {
        let rows = sql::query(
            "SELECT id, name, scope, created_at FROM tokens WHERE user_id = $1 AND repo_id IS NULL ORDER BY created_at DESC, id DESC",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(TokenInfo {
                    id: r.try_get("id")?,
                    name: r.try_get("name")?,
                    scope: Scope::parse(&r.try_get::<String, _>("scope")?)?,
                    created_at: r.try_get("created_at")?,
                })
            })
            .collect()
    }

    /// Revokes token `id` of `user_id` (not a lease token); false when it is not theirs or gone.
    /// The token stops working at once: the write turns the token cache over.
    pub async fn revoke_token(&self, user_id: i64, id: i64) -> Result<bool> {
        let _turn = self.write_turn().await;
        let done = sql::query("DELETE FROM tokens WHERE id = $1 AND user_id = $2 AND repo_id IS NULL")
            .bind(id)
            .bind(user_id)
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(done == 1)
    }

    /// The name of user `id`.
    pub async fn user_name(&self, id: i64) -> Result<Option<String>> {
        let row = sql::query("SELECT name FROM users WHERE id = $1").bind(id).fetch_optional(&self.pool).await?;
        Ok(row.map(|r| r.try_get("name")).transpose()?)
    }

    /// Creates an access token for `user_name` and returns its secret (shown once).
    pub async fn create_token(&self, user_name: &str, token_name: &str, scope: Scope) -> Result<String> {
        let user = self.user_by_name(user_name).await?.ok_or_else(|| DbError::NotFound(format!("user {user_name}")))?;
        let secret = new_secret();
        let _turn = self.write_turn().await;
        sql::query("INSERT INTO tokens (user_id, name, token_hash, scope, created_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(user.id)
            .bind(token_name)
            .bind(hash_secret(&secret))
            .bind(scope.as_str())
            .bind(now_unix())
            .execute(&self.pool)
            .await?;
        Ok(secret)
    }

    /// Creates a lease token: a write token of `user_id` limited to `branch` of one repository,
    /// for compute assignment `assignment_id`, until `expires_at` (unix seconds) or until the
    /// assignment stops running, whichever comes first (a trigger deletes it then). Returns its
    /// secret, or `None` when the assignment is no longer running (nothing is created).
    pub async fn create_lease_token(
        &self,
        user_id: i64,
        token_name: &str,
        repo_id: i64,
        branch: &str,
        assignment_id: i64,
        expires_at: i64,
    ) -> Result<Option<String>> {
        let secret = new_secret();
        let _turn = self.write_turn().await;
        // Created only while the assignment runs, in one statement: a lease that ended between
        // the lease and this insert gets no token the trigger could no longer delete.
        let inserted = sql::query(
            "INSERT INTO tokens (user_id, name, token_hash, scope, created_at, repo_id, branch, expires_at, assignment_id)
             SELECT $1, $2, $3, 'write', $4, $5, $6, $7, $8 WHERE EXISTS (SELECT 1 FROM assignments WHERE id = $8 AND state = 'running')",
        )
        .bind(user_id)
        .bind(token_name)
        .bind(hash_secret(&secret))
        .bind(now_unix())
        .bind(repo_id)
        .bind(branch)
        .bind(expires_at)
        .bind(assignment_id)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok((inserted == 1).then_some(secret))
    }

    /// Drops tokens and browser sessions past their expiry.
    pub async fn purge_expired_tokens(&self) -> Result<u64> {
        let now = now_unix();
        // Housekeeping calls this every few seconds: look before taking the write lock.
        let any = sql::query(
            "SELECT 1 WHERE EXISTS (SELECT 1 FROM tokens WHERE expires_at IS NOT NULL AND expires_at < $1)
                OR EXISTS (SELECT 1 FROM sessions WHERE expires_at < $1)",
        )
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        if any.is_none() {
            return Ok(0);
        }
        let _turn = self.write_turn().await;
        let tokens = sql::query("DELETE FROM tokens WHERE expires_at IS NOT NULL AND expires_at < $1")
            .bind(now)
            .execute(&self.pool)
            .await?
            .rows_affected();
        let sessions = sql::query("DELETE FROM sessions WHERE expires_at < $1").bind(now).execute(&self.pool).await?.rows_affected();
        Ok(tokens + sessions)
    }

    /// Looks a bearer secret up; `None` when no such token exists or it has expired.
    pub async fn authenticate(&self, secret: &str) -> Result<Option<Token>> {
        let hash = hash_secret(secret);
        if let Some(token) = self.cache.token(&hash) {
            return Ok(Some(token));
        }
        let generation = self.cache.generation();
        let Some((token, expires)) = self.authenticate_uncached(&hash).await? else { return Ok(None) };
        // A token that expires (a lease token, deleted when its lease ends by a writer that
        // does not touch this cache) is looked up every time: it must stop working the moment
        // its lease does.
        if !expires {
            self.cache.put_token(hash, token.clone(), generation);
        }
        Ok(Some(token))
    }

    /// The token with secret hash `hash`, and whether it expires.
    async fn authenticate_uncached(&self, hash: &str) -> Result<Option<(Token, bool)>> {
        let row = sql::query(
            "SELECT u.id, u.name, u.fullname, u.created_at, t.name AS token_name, t.scope, t.repo_id, t.branch, t.expires_at
             FROM tokens t JOIN users u ON u.id = t.user_id
             WHERE t.token_hash = $1 AND (t.expires_at IS NULL OR t.expires_at >= $2)",
        )
        .bind(hash)
        .bind(now_unix())
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let user = user_from_row(&row)?;
        let repo_id: Option<i64> = row.try_get("repo_id")?;
        // A lease token acts for no account beyond its branch: it carries no memberships.
        let orgs = if repo_id.is_some() { Vec::new() } else { self.memberships_of(user.id).await? };
        let token = Token {
            user,
            name: row.try_get("token_name")?,
            scope: Scope::parse(&row.try_get::<String, _>("scope")?)?,
            repo_id,
            branch: row.try_get("branch")?,
            orgs,
        };
        Ok(Some((token, row.try_get::<Option<i64>, _>("expires_at")?.is_some())))
    }
}
