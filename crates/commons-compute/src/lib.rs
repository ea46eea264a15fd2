//! The compute coordinator: turns jobs into work units, leases them to volunteer workers over
//! HTTP long-poll, validates what comes back on BOINC's model, and keeps the credit ledger.
//!
//! Map:
//! - [`jobs`]: submission (inputs pinned, recipe checked, cost estimated and escrowed), views,
//!   cancellation.
//! - [`dispatch`]: worker registration, leases, heartbeats, reports, lease expiry.
//! - [`validate`]: quorum of agreeing results, adaptive replication, host trust, payments, and
//!   finishing jobs (a trained model is promoted to `main` once an independent evaluation agrees).
//! - [`predictions`]: a finished batch-inference job's predictions, written to its dataset
//!   repository as Parquet (called by [`validate`] when it finishes the job).
//! - [`ledger`]: double-entry credits.
//! - [`units`]: the stored shape of a unit, inserting one, and which workers it admits; the
//!   stages above build on it and do not import one another.
//!
//! Its HTTP API (`/api/jobs`, `/api/workers`, `/api/assignments`, `/api/credits`, `/api/ledger`)
//! is `commons-hub/src/routes/compute.rs`: this crate knows no HTTP, and reaches repositories
//! only through the repository service (`commons_repo::Repos`).
//!
//! - [`writer`]: the thread that runs every state change, committed in groups.
//!
//! Invariants: every state change is one database transaction, and credits move inside the
//! transaction of the state change that earns or spends them; a unit is decided once; an
//! assignment is paid at most once. All state lives in the database, so a coordinator restarted
//! mid-job carries on where it stopped, and any number of coordinators can share one database.

mod dispatch;
mod error;
mod jobs;
mod ledger;
mod predictions;
mod pricing;
mod units;
mod validate;
mod writer;

use std::sync::Arc;
use std::time::Duration;

use commons_db::{Db, sql};
use commons_repo::Repos;
use tokio::sync::Notify;

use crate::writer::Sql;

pub use dispatch::{ComputeStats, WhenFull};
pub use error::{ComputeError, Result};

pub(crate) use writer::Conn;

/// Tunables of the coordinator.
#[derive(Debug, Clone)]
pub struct ComputeConfig {
    /// A lease lapses this long after the worker's last heartbeat.
    pub lease_seconds: u64,
    /// Longest a pull waits for work before answering "nothing yet".
    pub long_poll_seconds: u64,
    /// Credits a new account starts with.
    pub starter_grant: i64,
    /// Valid results in a row after which a host is trusted (BOINC's adaptive replication).
    pub trust_threshold: i64,
    /// Probability that a trusted host's evaluation is still replicated (spot check).
    pub spot_check_rate: f64,
    /// Errors and lapsed leases a unit survives before its job fails.
    pub max_errors: i64,
    /// Results an evaluation unit may collect while looking for a quorum.
    pub max_results: i64,
    /// The hub operator's account: its workers (the one embedded in `commons serve`) are
    /// trusted without replication.
    pub operator_user: Option<String>,
}

impl Default for ComputeConfig {
    fn default() -> Self {
        Self {
            lease_seconds: 60,
            long_poll_seconds: 25,
            starter_grant: 1000,
            trust_threshold: 10,
            spot_check_rate: 0.1,
            max_errors: 3,
            max_results: 4,
            operator_user: None,
        }
    }
}

/// What a unit of work is, for the writer that runs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Writes {
    /// Any state change: run under the database's write lock.
    Any,
    /// Leases: they keep the rule of [`writer::Lock::Rows`] (they never wait for a lock).
    Leases,
    /// Reports: they run beside other coordinators' reports under row locks
    /// ([`writer::Lock::Shared`]).
    Reports,
}

/// The coordinator. Cheap to clone; all state is in the hub's database.
#[derive(Clone)]
pub struct Coordinator {
    /// The hub's database, for the coordinator's own tables (jobs, units, ledger) and the lease
    /// tokens it issues; repositories are read and written through `repos`.
    pub(crate) db: Db,
    pub(crate) repos: Repos,
    pub(crate) config: Arc<ComputeConfig>,
    /// Wakes long-polling pulls when units gain open slots on this server.
    pub(crate) wake: Arc<Notify>,
    /// Runs this server's write transactions, committed in groups.
    writer: Arc<writer::Writer>,
    /// Runs its leases and its reports: on PostgreSQL writers of their own, which do not take
    /// turns with the other coordinators' (see [`writer`]); on SQLite `writer` itself.
    leaser: Arc<writer::Writer>,
    reporter: Arc<writer::Writer>,
}

impl Coordinator {
    /// A coordinator on `hub`. Leases still running from before a restart get a fresh lease
    /// period: the downtime was the server's, not the workers'.
    pub async fn start(db: Db, repos: Repos, config: ComputeConfig) -> Result<Self> {
        let coordinator = Self::attach(db, repos, config)?;
        let fresh = now() + coordinator.config.lease_seconds as i64;
        let extended = coordinator
            .write(move |_, db| {
                db.exec("UPDATE assignments SET lease_expires_at = ?1 WHERE state = 'running' AND lease_expires_at < ?1", [fresh])
            })
            .await?;
        if extended > 0 {
            tracing::info!(extended, "extended the leases of units that ran while the coordinator was down");
        }
        Ok(coordinator)
    }

    /// A coordinator on `hub` for one-off administration (a credit grant), beside a running
    /// server or without one: it changes nothing by starting.
    pub fn attach(db: Db, repos: Repos, config: ComputeConfig) -> Result<Self> {
        let writer = Arc::new(writer::Writer::start(&db, writer::Lock::Global)?);
        let (leaser, reporter) = match db.engine() {
            sql::Engine::Sqlite => (writer.clone(), writer.clone()),
            sql::Engine::Postgres => {
                (Arc::new(writer::Writer::start(&db, writer::Lock::Rows)?), Arc::new(writer::Writer::start(&db, writer::Lock::Shared)?))
            }
        };
        Ok(Self { db, repos, config: Arc::new(config), wake: Arc::new(Notify::new()), writer, leaser, reporter })
    }

    pub fn config(&self) -> &ComputeConfig {
        &self.config
    }

    pub(crate) fn pool(&self) -> &sql::Pool {
        self.db.pool()
    }

    /// Runs `work` as one transaction on the writer thread; returns once it is durable.
    pub(crate) async fn write<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Coordinator, &Conn) -> Result<T> + Send + 'static,
    {
        self.write_as(Writes::Any, work).await
    }

    /// [`Self::write`] on the writer for `writes`.
    pub(crate) async fn write_as<T, F>(&self, writes: Writes, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Coordinator, &Conn) -> Result<T> + Send + 'static,
    {
        let writer = match writes {
            Writes::Any => &self.writer,
            Writes::Leases => &self.leaser,
            Writes::Reports => &self.reporter,
        };
        let coordinator = self.clone();
        writer.run(move |db| work(&coordinator, db)).await
    }

    /// Runs lease expiry and job completion every few seconds until the process ends.
    pub fn spawn_housekeeping(&self) -> tokio::task::JoinHandle<()> {
        let coordinator = self.clone();
        let period = Duration::from_millis((coordinator.config.lease_seconds * 1000 / 4).clamp(250, 5000));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Err(e) = coordinator.housekeeping().await {
                    tracing::warn!(error = %e, "compute housekeeping failed; retrying");
                }
            }
        })
    }

    /// One round of housekeeping: lapse silent leases, finish jobs whose units are all decided.
    pub async fn housekeeping(&self) -> Result<()> {
        self.expire_leases().await?;
        self.finish_ready_jobs().await?;
        Ok(())
    }
}

/// The branch of a job's output repository that assignment `assignment_id` writes to (its
/// upload token can write nothing else).
pub(crate) fn unit_branch(job_id: i64, assignment_id: i64) -> String {
    format!("job-{job_id}-a{assignment_id}")
}

impl Coordinator {
    /// A job's output model repository, `namespace/name`; `None` when it no longer exists.
    pub(crate) async fn output_repo(&self, full_name: &str) -> Result<Option<commons_db::Repo>> {
        let Some((namespace, name)) = full_name.split_once('/') else { return Ok(None) };
        Ok(self.repos.find_as_system(commons_db::RepoKind::Model, namespace, name).await?)
    }

    /// [`Self::output_repo`], when its absence means the stored state is broken.
    pub(crate) async fn existing_output_repo(&self, full_name: &str) -> Result<commons_db::Repo> {
        self.output_repo(full_name).await?.ok_or_else(|| ComputeError::Gone(format!("the output repository {full_name} was deleted")))
    }
}

/// A state enum read back from its text column through the read pool: a value no variant knows
/// means the stored state is broken.
pub(crate) fn stored<T>(text: &str) -> Result<T>
where
    T: for<'a> TryFrom<&'a str, Error = commons_protocol::UnknownValue>,
{
    T::try_from(text).map_err(|e| ComputeError::Corrupt(e.to_string()))
}

/// Current time in unix seconds.
pub(crate) fn now() -> i64 {
    commons_db::now_unix()
}

/// sha256 of the canonical JSON of `value` (object keys sorted): what results are compared by.
pub(crate) fn result_hash(value: &serde_json::Value) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(value.to_string().as_bytes()))
}
