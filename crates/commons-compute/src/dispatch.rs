//! Workers and leases: registration, long-poll pulls, heartbeats, reports, lapsed leases.
//!
//! A unit wants `open_slots` more assignments. A pull takes the oldest unit that wants one and
//! that this worker may run: never a unit it already had, and, where results must agree across
//! owners, never one whose other results come from its owner. Heartbeats push the lease forward;
//! a lease that lapses re-opens its slot for another worker.

use std::time::{Duration, Instant};

use commons_db::Token;
use commons_protocol::{Heartbeat, HeartbeatAnswer, Lease, PROTOCOL_VERSION, RegisterWorker, Registered, Report, ReportAnswer, WorkerView, Work};
use rand::Rng;
use sqlx::Row;

use crate::error::{ComputeError, Result};
use crate::jobs::StoredWork;
use crate::{Coordinator, Tx, now};

/// Units considered per lease attempt; the rest wait for the next pull.
const CANDIDATES: i64 = 64;
/// Log lines kept per heartbeat, and characters per line.
const MAX_LOG_LINES: usize = 200;
const MAX_LOG_LINE: usize = 2000;
/// Upload tokens outlive any reasonable unit; they are useless once the unit is decided.
const UPLOAD_TOKEN_SECONDS: i64 = 24 * 3600;

pub(crate) struct WorkerRow {
    pub id: i64,
    pub owner_id: i64,
    pub numeric_class: String,
    pub last_seen: i64,
    pub trusted: bool,
    pub operator_host: bool,
}

impl Coordinator {
    /// Registers (or re-registers, by name) a worker of `owner`.
    pub async fn register(&self, owner: &Token, request: RegisterWorker) -> Result<Registered> {
        if request.protocol_version != PROTOCOL_VERSION {
            return Err(ComputeError::bad_request(format!(
                "worker speaks protocol {}, this hub speaks {PROTOCOL_VERSION}: update the worker",
                request.protocol_version
            )));
        }
        let name_ok = !request.name.is_empty()
            && request.name.len() <= 64
            && request.name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !name_ok {
            return Err(ComputeError::bad_request("worker name must be 1-64 characters of letters, digits, '-', '_' and '.'"));
        }
        if request.cores == 0 || request.cores > 4096 {
            return Err(ComputeError::bad_request(format!("cores must be between 1 and 4096, got {}", request.cores)));
        }
        if request.numeric_class.is_empty() || request.numeric_class.len() > 64 {
            return Err(ComputeError::bad_request("numeric_class must name the worker's class of machines (1-64 characters)"));
        }
        if !request.speed_gflops.is_finite() || request.speed_gflops < 0.0 {
            return Err(ComputeError::bad_request("speed_gflops must be a finite, non-negative number"));
        }
        let operator_host = self.config.operator_user.as_deref() == Some(owner.user.name.as_str());
        let t = now();
        let row = sqlx::query(
            "INSERT INTO workers (owner_id, name, cores, memory_bytes, gpu, engine_version, platform, speed_gflops, operator_host, registered_at, last_seen, numeric_class)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10, $11)
             ON CONFLICT (owner_id, name) DO UPDATE SET cores = excluded.cores, memory_bytes = excluded.memory_bytes, gpu = excluded.gpu,
                engine_version = excluded.engine_version, platform = excluded.platform, speed_gflops = excluded.speed_gflops,
                numeric_class = excluded.numeric_class,
                operator_host = excluded.operator_host, last_seen = excluded.last_seen
             RETURNING id",
        )
        .bind(owner.user.id)
        .bind(&request.name)
        .bind(request.cores as i64)
        .bind(request.memory_bytes.min(i64::MAX as u64) as i64)
        .bind(&request.gpu)
        .bind(&request.engine_version)
        .bind(&request.platform)
        .bind(request.speed_gflops)
        .bind(operator_host)
        .bind(t)
        .bind(&request.numeric_class)
        .fetch_one(self.pool())
        .await?;
        let worker_id: i64 = row.try_get("id")?;
        tracing::info!(worker = worker_id, name = %request.name, owner = %owner.user.name, cores = request.cores, gflops = request.speed_gflops, "worker registered");
        Ok(Registered { worker_id, lease_seconds: self.config.lease_seconds, heartbeat_seconds: (self.config.lease_seconds / 3).max(1) })
    }

    async fn worker(&self, owner: &Token, worker_id: i64) -> Result<WorkerRow> {
        let row = sqlx::query("SELECT id, owner_id, numeric_class, consecutive_valid, operator_host, last_seen FROM workers WHERE id = $1 AND owner_id = $2")
            .bind(worker_id)
            .bind(owner.user.id)
            .fetch_optional(self.pool())
            .await?
            .ok_or_else(|| ComputeError::not_found("WorkerNotFound", format!("worker {worker_id} is not registered to {}", owner.user.name)))?;
        let operator_host: bool = row.try_get("operator_host")?;
        Ok(WorkerRow {
            id: row.try_get("id")?,
            owner_id: row.try_get("owner_id")?,
            numeric_class: row.try_get("numeric_class")?,
            last_seen: row.try_get("last_seen")?,
            trusted: operator_host || row.try_get::<i64, _>("consecutive_valid")? >= self.config.trust_threshold,
            operator_host,
        })
    }

    /// Waits up to `wait` for a unit this worker may run and leases it.
    pub async fn pull(&self, owner: &Token, worker_id: i64, wait: Duration) -> Result<Option<Lease>> {
        self.pull_inner(owner, worker_id, wait, false).await
    }

    /// [`Self::pull`] right after a report: work is likely, so skip the cheap look before the lock.
    pub async fn pull_after_report(&self, owner: &Token, worker_id: i64, wait: Duration) -> Result<Option<Lease>> {
        self.pull_inner(owner, worker_id, wait, true).await
    }

    async fn pull_inner(&self, owner: &Token, worker_id: i64, wait: Duration, eager: bool) -> Result<Option<Lease>> {
        let worker = self.worker(owner, worker_id).await?;
        let deadline = Instant::now() + wait.min(Duration::from_secs(self.config.long_poll_seconds));
        // Seen-times are kept to the few seconds that tell online from offline, not every poll.
        if worker.last_seen < now() - 5 {
            sqlx::query("UPDATE workers SET last_seen = $1 WHERE id = $2").bind(now()).bind(worker.id).execute(self.pool()).await?;
        }
        let mut eager = eager;
        loop {
            // Register interest before looking, so a unit queued in between still wakes us.
            let woken = self.wake.notified();
            if let Some(lease) = self.try_lease(&worker, std::mem::take(&mut eager)).await? {
                return Ok(Some(lease));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            // Other coordinators sharing the database cannot wake us: look again every second.
            let _ = tokio::time::timeout(left.min(Duration::from_secs(1)), woken).await;
        }
    }

    async fn try_lease(&self, worker: &WorkerRow, eager: bool) -> Result<Option<Lease>> {
        // A read first, so idle polls do not queue for the write lock.
        if !eager {
            let any = sqlx::query("SELECT id FROM units WHERE open_slots > 0 AND state = 'open' LIMIT 1").fetch_optional(self.pool()).await?;
            if any.is_none() {
                return Ok(None);
            }
        }
        let mut tx = self.begin().await?;
        let candidates = sqlx::query(
            "SELECT u.id, u.job_id, u.role, u.payload, u.quorum, u.results_made, u.validates_unit, u.checkpoint, j.state AS job_state
             FROM units u JOIN jobs j ON j.id = u.job_id
             WHERE u.open_slots > 0 AND u.state = 'open'
               AND NOT EXISTS (SELECT 1 FROM assignments a WHERE a.unit_id = u.id AND a.worker_id = $1)
             ORDER BY u.id LIMIT $2",
        )
        .bind(worker.id)
        .bind(CANDIDATES)
        .fetch_all(&mut **tx)
        .await?;
        for row in candidates {
            let unit_id: i64 = row.try_get("id")?;
            let role: String = row.try_get("role")?;
            let quorum: i64 = row.try_get("quorum")?;
            let validates: Option<i64> = row.try_get("validates_unit")?;
            let stored = StoredWork::parse(row.try_get("payload")?, unit_id)?;
            if !self.may_run(&mut tx, worker, unit_id, &role, quorum, stored.claim).await? {
                continue;
            }
            let job_id: i64 = row.try_get("job_id")?;
            let results_made: i64 = row.try_get("results_made")?;
            // Adaptive replication: the first copy of an evaluation going to a trusted host is
            // accepted alone, except for a random spot check.
            let replicate = role != "eval" || validates.is_some() || results_made > 0 || quorum < 2 || !worker.trusted || {
                !worker.operator_host && rand::rng().random::<f64>() < self.config.spot_check_rate
            };
            if replicate {
                sqlx::query("UPDATE units SET open_slots = open_slots - 1, results_made = results_made + 1, updated_at = $1 WHERE id = $2")
                    .bind(now())
                    .bind(unit_id)
                    .execute(&mut **tx)
                    .await?;
            } else {
                sqlx::query("UPDATE units SET open_slots = 0, quorum = 1, results_made = results_made + 1, updated_at = $1 WHERE id = $2")
                    .bind(now())
                    .bind(unit_id)
                    .execute(&mut **tx)
                    .await?;
                tracing::debug!(unit = unit_id, worker = worker.id, "trusted host: accepted without replication");
            }
            let expires = now() + self.config.lease_seconds as i64;
            let assignment_id: i64 = sqlx::query(
                "INSERT INTO assignments (unit_id, worker_id, owner_id, state, lease_expires_at, created_at) VALUES ($1, $2, $3, 'running', $4, $5) RETURNING id",
            )
            .bind(unit_id)
            .bind(worker.id)
            .bind(worker.owner_id)
            .bind(expires)
            .bind(now())
            .fetch_one(&mut **tx)
            .await?
            .try_get("id")?;
            if row.try_get::<String, _>("job_state")? == "queued" {
                sqlx::query("UPDATE jobs SET state = 'running', updated_at = $1 WHERE id = $2 AND state = 'queued'")
                    .bind(now())
                    .bind(job_id)
                    .execute(&mut **tx)
                    .await?;
            }
            tx.commit().await?;
            let mut work = stored.work;
            let mut upload_token = None;
            if let Work::Train { output_repo, output_branch, resume, .. } = &mut work {
                *output_branch = crate::unit_branch(job_id, assignment_id);
                *resume = row.try_get::<Option<String>, _>("checkpoint")?.and_then(|c| serde_json::from_str(&c).ok());
                upload_token = Some(self.upload_token(job_id, output_repo, output_branch, assignment_id).await?);
            }
            tracing::info!(job = job_id, unit = unit_id, assignment = assignment_id, worker = worker.id, role, "unit leased");
            return Ok(Some(Lease { assignment_id, unit_id, job_id, work, lease_seconds: self.config.lease_seconds, upload_token }));
        }
        Ok(None)
    }

    /// Whether `worker` may take `unit`. Results that must agree come from one class of machines
    /// (homogeneous redundancy: bit-exact agreement is only promised within a class) and from
    /// distinct owners (the operator's own hosts excepted); an owner whose training was rejected
    /// does not retrain.
    async fn may_run(&self, tx: &mut Tx, worker: &WorkerRow, unit_id: i64, role: &str, quorum: i64, claim: Option<i64>) -> Result<bool> {
        if role == "train" {
            let rejected = sqlx::query("SELECT 1 FROM assignments WHERE unit_id = $1 AND owner_id = $2 AND outcome = 'invalid' LIMIT 1")
                .bind(unit_id)
                .bind(worker.owner_id)
                .fetch_optional(&mut ***tx)
                .await?;
            return Ok(worker.operator_host || rejected.is_none());
        }
        if role != "eval" || quorum < 2 {
            return Ok(true);
        }
        // Results already in play: this unit's, and the training claim it checks.
        let others = sqlx::query(
            "SELECT a.owner_id, w.numeric_class FROM assignments a JOIN workers w ON w.id = a.worker_id
             WHERE (a.unit_id = $1 AND a.state IN ('running', 'reported')) OR a.id = $2",
        )
        .bind(unit_id)
        .bind(claim.unwrap_or(-1))
        .fetch_all(&mut ***tx)
        .await?;
        for other in others {
            if other.try_get::<String, _>("numeric_class")? != worker.numeric_class {
                return Ok(false);
            }
            if !worker.operator_host && other.try_get::<i64, _>("owner_id")? == worker.owner_id {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// A token that may write only the unit's branch of the job's output repository, for the
    /// worker that trains it.
    async fn upload_token(&self, job_id: i64, output_repo: &str, branch: &str, assignment_id: i64) -> Result<String> {
        let repo = self.existing_output_repo(output_repo).await?;
        let owner_id: i64 = sqlx::query("SELECT owner_id FROM jobs WHERE id = $1").bind(job_id).fetch_one(self.pool()).await?.try_get("owner_id")?;
        Ok(self
            .hub
            .db
            .create_branch_token(owner_id, &format!("job-{job_id}-assignment-{assignment_id}"), repo.id, branch, now() + UPLOAD_TOKEN_SECONDS)
            .await?)
    }

    /// Loads an assignment of `owner`'s worker, with its unit and job state.
    async fn owned_assignment(&self, tx: &mut Tx, owner: &Token, assignment_id: i64) -> Result<AssignmentRow> {
        let row = sqlx::query(
            "SELECT a.id, a.unit_id, a.worker_id, a.owner_id, a.state, u.role, u.state AS unit_state, u.job_id, j.state AS job_state,
                    u.quorum, u.results_made, u.validates_unit, u.flops
             FROM assignments a JOIN units u ON u.id = a.unit_id JOIN jobs j ON j.id = u.job_id
             WHERE a.id = $1 AND a.owner_id = $2",
        )
        .bind(assignment_id)
        .bind(owner.user.id)
        .fetch_optional(&mut ***tx)
        .await?
        .ok_or_else(|| ComputeError::not_found("AssignmentNotFound", format!("assignment {assignment_id} is not one of {}'s", owner.user.name)))?;
        Ok(AssignmentRow {
            id: row.try_get("id")?,
            unit_id: row.try_get("unit_id")?,
            worker_id: row.try_get("worker_id")?,
            state: row.try_get("state")?,
            role: row.try_get("role")?,
            unit_state: row.try_get("unit_state")?,
            job_id: row.try_get("job_id")?,
            job_state: row.try_get("job_state")?,
            owner_id: row.try_get("owner_id")?,
            alone: row.try_get::<i64, _>("quorum")? == 1
                && row.try_get::<i64, _>("results_made")? == 1
                && row.try_get::<Option<i64>, _>("validates_unit")?.is_none(),
            flops: row.try_get("flops")?,
        })
    }

    /// Records progress, logs and finished epochs, and extends the lease.
    pub async fn heartbeat(&self, owner: &Token, assignment_id: i64, beat: Heartbeat) -> Result<HeartbeatAnswer> {
        let mut tx = self.begin().await?;
        let a = self.owned_assignment(&mut tx, owner, assignment_id).await?;
        let t = now();
        sqlx::query("UPDATE workers SET last_seen = $1 WHERE id = $2").bind(t).bind(a.worker_id).execute(&mut **tx).await?;
        if a.state != "running" {
            let reason = match a.state.as_str() {
                "expired" => "the lease lapsed and the unit went to another worker",
                "cancelled" if a.job_state == "cancelled" => "the job was cancelled",
                "cancelled" => "the unit was decided without this result",
                _ => "this assignment has already been reported",
            };
            tx.commit().await?;
            return Ok(HeartbeatAnswer { stop: true, reason: Some(reason.into()), lease_expires_at: 0 });
        }
        let expires = t + self.config.lease_seconds as i64;
        let progress = beat.progress.as_ref().map(|p| serde_json::to_string(p).unwrap_or_default());
        sqlx::query("UPDATE assignments SET lease_expires_at = $1, progress = COALESCE($2, progress) WHERE id = $3")
            .bind(expires)
            .bind(progress)
            .bind(a.id)
            .execute(&mut **tx)
            .await?;
        if !beat.epochs.is_empty() {
            let current: Option<String> = sqlx::query("SELECT epochs FROM assignments WHERE id = $1").bind(a.id).fetch_one(&mut **tx).await?.try_get("epochs")?;
            let mut epochs: Vec<commons_protocol::EpochPoint> = current.and_then(|c| serde_json::from_str(&c).ok()).unwrap_or_default();
            for point in beat.epochs {
                if !epochs.iter().any(|e| e.epoch == point.epoch) {
                    epochs.push(point);
                }
            }
            sqlx::query("UPDATE assignments SET epochs = $1 WHERE id = $2")
                .bind(serde_json::to_string(&epochs).unwrap_or_default())
                .bind(a.id)
                .execute(&mut **tx)
                .await?;
        }
        if let Some(checkpoint) = &beat.checkpoint {
            self.record_checkpoint(&mut tx, &a, checkpoint).await?;
        }
        for line in beat.log.iter().take(MAX_LOG_LINES) {
            let line: String = line.chars().take(MAX_LOG_LINE).collect();
            sqlx::query("INSERT INTO unit_logs (job_id, assignment_id, line, created_at) VALUES ($1, $2, $3, $4)")
                .bind(a.job_id)
                .bind(a.id)
                .bind(line)
                .bind(t)
                .execute(&mut **tx)
                .await?;
        }
        tx.commit().await?;
        Ok(HeartbeatAnswer { stop: false, reason: None, lease_expires_at: expires })
    }

    /// The commit at the head of assignment `a`'s branch of `output_repo`, if both exist.
    async fn own_branch_head(&self, a: &AssignmentRow, output_repo: &str) -> Result<Option<String>> {
        let Some(repo) = self.output_repo(output_repo).await? else { return Ok(None) };
        match self.hub.db.resolve_revision(&repo, &crate::unit_branch(a.job_id, a.id)).await {
            Ok(head) => Ok(Some(head)),
            Err(commons_db::DbError::RevisionNotFound(_)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Keeps a train unit's newest checkpoint, once it is known to be on the hub.
    async fn record_checkpoint(&self, tx: &mut Tx, a: &AssignmentRow, checkpoint: &commons_protocol::CheckpointRef) -> Result<()> {
        if a.role != "train" {
            return Err(ComputeError::bad_request("only training units checkpoint"));
        }
        let row = sqlx::query("SELECT payload, checkpoint FROM units WHERE id = $1").bind(a.unit_id).fetch_one(&mut ***tx).await?;
        let stored = StoredWork::parse(row.try_get("payload")?, a.unit_id)?;
        let output_repo = stored.output_repo(a.unit_id)?;
        // Only a checkpoint at the head of this assignment's own branch is taken.
        let own = self.own_branch_head(a, output_repo).await?.as_deref() == Some(checkpoint.commit.as_str());
        let on_hub = match self.output_repo(output_repo).await? {
            Some(repo) if own => self.hub.db.file_at(&repo, &checkpoint.commit, "checkpoint/state.json").await?.is_some(),
            _ => false,
        };
        if !on_hub {
            return Err(ComputeError::bad_request(format!(
                "checkpoint commit {} is not the head of this assignment's branch of {output_repo} with a checkpoint/state.json",
                checkpoint.commit
            )));
        }
        let newer = match row.try_get::<Option<String>, _>("checkpoint")?.and_then(|c| serde_json::from_str::<commons_protocol::CheckpointRef>(&c).ok()) {
            Some(known) => checkpoint.epochs_done > known.epochs_done,
            None => true,
        };
        if newer {
            sqlx::query("UPDATE units SET checkpoint = $1 WHERE id = $2")
                .bind(serde_json::to_string(checkpoint).map_err(|e| ComputeError::Corrupt(e.to_string()))?)
                .bind(a.unit_id)
                .execute(&mut ***tx)
                .await?;
            self.log(tx, a.job_id, &format!("unit {}: checkpoint after epoch {} is on the hub", a.unit_id, checkpoint.epochs_done)).await?;
        }
        Ok(())
    }

    /// Takes a worker's report. Reporting twice, or after the unit was decided, is answered
    /// without changing anything; a report arriving after its lease lapsed still counts while
    /// the unit is undecided.
    pub async fn report(&self, owner: &Token, assignment_id: i64, report: Report) -> Result<ReportAnswer> {
        let mut tx = self.begin().await?;
        let a = self.owned_assignment(&mut tx, owner, assignment_id).await?;
        let refuse = |message: &str| Ok(ReportAnswer { accepted: false, message: message.into(), next: None });
        match a.state.as_str() {
            "reported" | "errored" => return refuse("this assignment was already reported; the first report stands"),
            "cancelled" => return refuse("the job was cancelled or the unit decided; nothing recorded"),
            "expired" if a.unit_state != "open" => return refuse("the lease lapsed and the unit was decided without this result"),
            _ => {}
        }
        if a.unit_state != "open" {
            return refuse("the unit was already decided");
        }
        let t = now();
        let answer = match report {
            Report::Error { error } => {
                let error: String = error.chars().take(4000).collect();
                sqlx::query("UPDATE assignments SET state = 'errored', error = $1, reported_at = $2 WHERE id = $3")
                    .bind(&error)
                    .bind(t)
                    .bind(a.id)
                    .execute(&mut **tx)
                    .await?;
                sqlx::query("UPDATE workers SET error_results = error_results + 1 WHERE id = $1").bind(a.worker_id).execute(&mut **tx).await?;
                // A lapsed lease already counted its error and re-opened its slot.
                if a.state == "running" {
                    self.unit_error(&mut tx, a.unit_id, a.job_id, &format!("worker {}: {error}", a.worker_id)).await?;
                }
                ReportAnswer { accepted: true, message: "error recorded".into(), next: None }
            }
            Report::Success { output } => {
                let hash = self.check_output(&a, &output).await?;
                sqlx::query("UPDATE assignments SET state = 'reported', output = $1, output_hash = $2, reported_at = $3 WHERE id = $4")
                    .bind(serde_json::to_string(&output).map_err(|e| ComputeError::Corrupt(e.to_string()))?)
                    .bind(&hash)
                    .bind(t)
                    .bind(a.id)
                    .execute(&mut **tx)
                    .await?;
                if a.role == "train" {
                    self.open_validation(&mut tx, a.unit_id, a.job_id, &output).await?;
                } else if a.alone && a.state == "running" {
                    // The only result a quorum of one needs (a trusted host, a no-op): decided now.
                    self.accept_alone(&mut tx, &a, &hash).await?;
                } else {
                    self.decide(&mut tx, a.unit_id).await?;
                }
                ReportAnswer { accepted: true, message: "result recorded".into(), next: None }
            }
        };
        self.refresh_job_state(&mut tx, a.job_id).await?;
        tx.commit().await?;
        self.wake.notify_waiters();
        self.finish_jobs_if_ready(Some(a.job_id)).await?;
        Ok(answer)
    }

    /// Checks an output against its unit and returns the hash results are compared by.
    async fn check_output(&self, a: &AssignmentRow, output: &commons_protocol::Output) -> Result<String> {
        use commons_protocol::Output;
        match (a.role.as_str(), output) {
            ("noop", Output::Noop) => Ok("noop".into()),
            ("eval", Output::Eval { metrics, .. }) => Ok(crate::result_hash(metrics)),
            ("train", Output::Train { model_commit, test, .. }) => {
                // The claimed model must exist where the worker was told to put it.
                let payload: String = sqlx::query("SELECT payload FROM units WHERE id = $1").bind(a.unit_id).fetch_one(self.pool()).await?.try_get("payload")?;
                let stored = StoredWork::parse(&payload, a.unit_id)?;
                let output_repo = stored.output_repo(a.unit_id)?;
                // It must be the head of this assignment's own branch, which only this lease's
                // upload token can write: a worker cannot claim a model someone else trained.
                if self.own_branch_head(a, output_repo).await?.as_deref() != Some(model_commit.as_str()) {
                    return Err(ComputeError::bad_request(format!(
                        "model commit {model_commit} is not the head of branch {} of {output_repo}: upload the model there before reporting",
                        crate::unit_branch(a.job_id, a.id)
                    )));
                }
                Ok(crate::result_hash(test))
            }
            (role, _) => Err(ComputeError::bad_request(format!("this is a {role} unit; the report carries another kind of output"))),
        }
    }

    /// Counts an error against a unit: retry elsewhere, or fail the job once errors run out.
    pub(crate) async fn unit_error(&self, tx: &mut Tx, unit_id: i64, job_id: i64, error: &str) -> Result<()> {
        let row = sqlx::query("UPDATE units SET errors = errors + 1, last_error = $1, updated_at = $2 WHERE id = $3 RETURNING errors, max_errors, state")
            .bind(error)
            .bind(now())
            .bind(unit_id)
            .fetch_one(&mut ***tx)
            .await?;
        let (errors, max_errors, state): (i64, i64, String) = (row.try_get("errors")?, row.try_get("max_errors")?, row.try_get("state")?);
        if state != "open" {
            return Ok(());
        }
        if errors >= max_errors {
            sqlx::query("UPDATE units SET state = 'failed', open_slots = 0 WHERE id = $1").bind(unit_id).execute(&mut ***tx).await?;
            let message = format!("unit {unit_id} failed {errors} times; last error: {error}");
            tracing::warn!(job = job_id, unit = unit_id, %message, "job failed");
            self.end_job(tx, job_id, "failed", Some(&message)).await?;
        } else {
            sqlx::query("UPDATE units SET open_slots = open_slots + 1 WHERE id = $1").bind(unit_id).execute(&mut ***tx).await?;
        }
        Ok(())
    }

    /// Lapses leases not renewed in time and hands their units to other workers.
    pub(crate) async fn expire_leases(&self) -> Result<()> {
        let t = now();
        let lapsed = sqlx::query("SELECT a.id, a.unit_id, a.worker_id, u.job_id FROM assignments a JOIN units u ON u.id = a.unit_id WHERE a.state = 'running' AND a.lease_expires_at < $1")
            .bind(t)
            .fetch_all(self.pool())
            .await?;
        if lapsed.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin().await?;
        for row in lapsed {
            let (id, unit_id, worker_id, job_id): (i64, i64, i64, i64) = (row.try_get("id")?, row.try_get("unit_id")?, row.try_get("worker_id")?, row.try_get("job_id")?);
            let changed = sqlx::query("UPDATE assignments SET state = 'expired' WHERE id = $1 AND state = 'running' AND lease_expires_at < $2")
                .bind(id)
                .bind(t)
                .execute(&mut **tx)
                .await?
                .rows_affected();
            if changed == 0 {
                continue;
            }
            tracing::warn!(assignment = id, unit = unit_id, worker = worker_id, "lease lapsed; re-queueing the unit");
            sqlx::query("UPDATE workers SET error_results = error_results + 1 WHERE id = $1").bind(worker_id).execute(&mut **tx).await?;
            self.unit_error(&mut tx, unit_id, job_id, &format!("worker {worker_id} went silent: its lease lapsed")).await?;
            self.refresh_job_state(&mut tx, job_id).await?;
        }
        tx.commit().await?;
        self.wake.notify_waiters();
        Ok(())
    }

    /// Who is online and what they run.
    pub async fn workers(&self) -> Result<Vec<WorkerView>> {
        let online_after = now() - (self.config.long_poll_seconds as i64 + self.config.lease_seconds as i64);
        let rows = sqlx::query(
            "SELECT w.*, u.name AS owner FROM workers w JOIN users u ON u.id = w.owner_id ORDER BY w.last_seen DESC, w.id LIMIT 1000",
        )
        .fetch_all(self.pool())
        .await?;
        let running = sqlx::query("SELECT a.worker_id, u.job_id, u.id AS unit_id FROM assignments a JOIN units u ON u.id = a.unit_id WHERE a.state = 'running'")
            .fetch_all(self.pool())
            .await?;
        let mut views = Vec::with_capacity(rows.len());
        for row in rows {
            let id: i64 = row.try_get("id")?;
            let operator_host: bool = row.try_get("operator_host")?;
            let consecutive_valid: i64 = row.try_get("consecutive_valid")?;
            let last_seen: i64 = row.try_get("last_seen")?;
            let mut units = Vec::new();
            for r in &running {
                if r.try_get::<i64, _>("worker_id")? == id {
                    units.push(format!("{}/{}", r.try_get::<i64, _>("job_id")?, r.try_get::<i64, _>("unit_id")?));
                }
            }
            views.push(WorkerView {
                id,
                name: row.try_get("name")?,
                owner: row.try_get("owner")?,
                cores: row.try_get("cores")?,
                memory_bytes: row.try_get("memory_bytes")?,
                gpu: row.try_get("gpu")?,
                engine_version: row.try_get("engine_version")?,
                platform: row.try_get("platform")?,
                numeric_class: row.try_get("numeric_class")?,
                speed_gflops: row.try_get("speed_gflops")?,
                online: last_seen >= online_after,
                last_seen,
                consecutive_valid,
                valid_results: row.try_get("valid_results")?,
                invalid_results: row.try_get("invalid_results")?,
                error_results: row.try_get("error_results")?,
                trusted: operator_host || consecutive_valid >= self.config.trust_threshold,
                running: units,
            });
        }
        Ok(views)
    }
}

pub(crate) struct AssignmentRow {
    pub owner_id: i64,
    /// The unit needs this one result and no other (quorum 1, never replicated).
    pub alone: bool,
    pub flops: f64,
    pub id: i64,
    pub unit_id: i64,
    pub worker_id: i64,
    pub state: String,
    pub role: String,
    pub unit_state: String,
    pub job_id: i64,
    pub job_state: String,
}
