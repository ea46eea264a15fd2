//! Workers and leases: registration, long-poll pulls, heartbeats, reports, lapsed leases.
//!
//! A unit wants `open_slots` more assignments. A pull serves submitters in turn (the one served
//! longest ago first, then that submitter's job served longest ago) and takes the job's oldest
//! unit that wants an assignment and that this worker may run: never a unit it already had,
//! and, where results must agree across owners, never one whose other results come from its
//! owner. Heartbeats push the lease forward; a lease that lapses re-opens its slot for another
//! worker.

use std::time::{Duration, Instant};

use crate::writer::params;
use commons_db::Token;
use commons_db::sql;
use commons_protocol::{
    AssignmentState, CheckpointRef, Heartbeat, HeartbeatAnswer, JobState, Lease, Output, PROTOCOL_VERSION, RegisterWorker, Registered,
    Report, ReportAnswer, Role, UnitState, Work, WorkerView,
};
use commons_protocol::{HEARTBEAT_MAX_EPOCHS, HEARTBEAT_MAX_LOG_LINES, MAX_LEASES_PER_REQUEST, MAX_REPORTS_PER_REQUEST};
use rand::Rng;

use crate::error::{ComputeError, Result};
use crate::units::{AssignmentRow, Needs, NeedsKind, Party, REJECTED_TRAINERS, RESULTS_IN_PLAY, StoredWork, WorkerRow};
use crate::writer::{Conn, Sql, text_col};
use crate::{Coordinator, now};

/// Jobs, and units of each, considered per lease attempt; the rest wait for the next pull.
const JOBS_CONSIDERED: i64 = 32;
const UNITS_CONSIDERED: i64 = 16;
/// Characters kept per log line, and log lines and epoch points kept per assignment in all
/// (per heartbeat: `HEARTBEAT_MAX_*` of commons-protocol): merging a heartbeat runs on the
/// writer thread, so its cost must stay small whatever a worker sends.
const MAX_LOG_LINE: usize = 2000;
const MAX_LOG_LINES_PER_ASSIGNMENT: i64 = 10_000;
const MAX_EPOCHS_KEPT: usize = 10_000;
/// A lease token dies with its assignment (a trigger deletes it when the assignment stops
/// running); this expiry is only a backstop.
const UPLOAD_TOKEN_SECONDS: i64 = 24 * 3600;

/// A unit a worker might be leased.
struct Candidate {
    id: i64,
    job_id: i64,
    role: Role,
    payload: String,
    quorum: i64,
    results_made: i64,
    validates: Option<i64>,
    checkpoint: Option<String>,
}

/// A job in a lease request's fair-share queue.
struct JobTurn {
    job_id: i64,
    /// The job's owner: the submitter whose share a lease counts against.
    submitter: i64,
    needs_gpu: bool,
    /// The last assignment handed out for this submitter's jobs, and for this job (0: never).
    submitter_served: i64,
    job_served: i64,
    /// Units read for this request and not yet looked at, oldest last.
    candidates: Vec<Candidate>,
    fetched: bool,
    /// Whether this request leased one of the job's units.
    served: bool,
}

impl JobTurn {
    /// Who is served next: GPU jobs first (for a worker that has a GPU), then the submitter and
    /// the job served longest ago.
    fn order(&self) -> (bool, i64, i64, i64) {
        (!self.needs_gpu, self.submitter_served, self.job_served, self.job_id)
    }
}

/// What a lease request gets when its worker already runs all the units it may.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WhenFull {
    /// An error: the worker asked for work it cannot take.
    Refuse,
    /// No leases: the worker reported and asked for more in passing.
    Nothing,
}

/// Running leases a worker may hold per core it registered: enough to keep each core busy
/// while the next unit's lease and inputs arrive, and few enough that one hostile volunteer
/// cannot take a whole queue and let it lapse.
pub(crate) const IN_PROGRESS_PER_CORE: i64 = 2;

fn in_progress_limit(cores: i64) -> i64 {
    IN_PROGRESS_PER_CORE * cores.max(1)
}

/// What a lease needs to know after its transaction: the rest (the upload token) is written
/// outside the writer.
struct Leased {
    assignment_id: i64,
    unit_id: i64,
    job_id: i64,
    role: Role,
    work: Work,
    checkpoint: Option<String>,
}

/// See [`Coordinator::stats`].
#[derive(Clone, Debug, Default)]
pub struct ComputeStats {
    /// (`open` / `done` / `failed` / `cancelled`, count).
    pub units_by_state: Vec<(String, i64)>,
    pub queued_assignments: i64,
    pub workers_online: i64,
    /// (`issuer` / `user` / `escrow`, sum of entries): the three sum to zero.
    pub ledger_by_account_kind: Vec<(String, i64)>,
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
        let owner_id = owner.user.id;
        let registered = request.clone();
        let worker_id: i64 = self
            .write(move |_, db| {
                db.one(
                    "INSERT INTO workers (owner_id, name, cores, memory_bytes, gpu, engine_version, platform, speed_gflops, operator_host, registered_at, last_seen, numeric_class)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10, ?11)
                     ON CONFLICT (owner_id, name) DO UPDATE SET cores = excluded.cores, memory_bytes = excluded.memory_bytes, gpu = excluded.gpu,
                        engine_version = excluded.engine_version, platform = excluded.platform, speed_gflops = excluded.speed_gflops,
                        numeric_class = excluded.numeric_class,
                        operator_host = excluded.operator_host, last_seen = excluded.last_seen
                     RETURNING id",
                    params![
                        owner_id,
                        registered.name,
                        registered.cores as i64,
                        registered.memory_bytes.min(i64::MAX as u64) as i64,
                        registered.gpu,
                        registered.engine_version,
                        registered.platform,
                        registered.speed_gflops,
                        operator_host,
                        now(),
                        registered.numeric_class
                    ],
                    |r| r.get(0),
                )
            })
            .await?;
        tracing::info!(worker = worker_id, name = %request.name, owner = %owner.user.name, cores = request.cores, gflops = request.speed_gflops, "worker registered");
        Ok(Registered { worker_id, lease_seconds: self.config.lease_seconds, heartbeat_seconds: (self.config.lease_seconds / 3).max(1) })
    }

    /// Worker `worker_id` of `owner` and the leases it may still take, noting that it was seen
    /// now (to the few seconds that tell online from offline, not every poll).
    fn worker(&self, db: &Conn, owner: &Owner, worker_id: i64) -> Result<(WorkerRow, usize)> {
        let (row, last_seen, consecutive_valid, cores): (WorkerRow, i64, i64, i64) = db
            .maybe(
                "SELECT id, owner_id, numeric_class, gpu IS NOT NULL AS has_gpu, consecutive_valid, operator_host, last_seen, cores FROM workers
                 WHERE id = ?1 AND owner_id = ?2",
                [worker_id, owner.id],
                |r| {
                    let operator_host: bool = r.get("operator_host")?;
                    let row = WorkerRow {
                        id: r.get("id")?,
                        owner_id: r.get("owner_id")?,
                        numeric_class: r.get("numeric_class")?,
                        gpu: r.get("has_gpu")?,
                        trusted: false,
                        operator_host,
                    };
                    Ok((row, r.get("last_seen")?, r.get("consecutive_valid")?, r.get("cores")?))
                },
            )?
            .ok_or_else(|| ComputeError::not_found("WorkerNotFound", format!("worker {worker_id} is not registered to {}", owner.name)))?;
        let t = now();
        if last_seen < t - 5 {
            // Passed over while a report's transaction holds the row (it counts the host's
            // results): a lease waits for no lock (`writer::Lock::Rows`), and the next poll
            // notes the sighting.
            db.exec(
                "UPDATE workers SET last_seen = ?1 WHERE id = (SELECT id FROM workers WHERE id = ?2 /*pg: FOR NO KEY UPDATE SKIP LOCKED*/)",
                [t, row.id],
            )?;
        }
        let running: i64 = db.one("SELECT COUNT(*) FROM assignments WHERE worker_id = ?1 AND state = 'running'", [row.id], |r| r.get(0))?;
        let room = (in_progress_limit(cores) - running).max(0) as usize;
        Ok((WorkerRow { trusted: self.trusted(row.operator_host, consecutive_valid), ..row }, room))
    }

    /// BOINC's adaptive replication: a host is trusted after `trust_threshold` valid results in
    /// a row; the operator's own hosts always are.
    pub(crate) fn trusted(&self, operator_host: bool, consecutive_valid: i64) -> bool {
        operator_host || consecutive_valid >= self.config.trust_threshold
    }

    /// Workers seen since this time (unix seconds) count as online: a long poll and a lease.
    pub(crate) fn online_after(&self) -> i64 {
        now() - (self.config.long_poll_seconds as i64 + self.config.lease_seconds as i64)
    }

    /// Refuses a worker that is not `owner`'s, as a lease request would: for a request that
    /// records something first and leases after, so that it fails before recording anything.
    pub async fn check_worker(&self, owner: &Token, worker_id: i64) -> Result<()> {
        let found = sql::query("SELECT 1 FROM workers WHERE id = $1 AND owner_id = $2")
            .bind(worker_id)
            .bind(owner.user.id)
            .fetch_optional(self.pool())
            .await?;
        match found {
            Some(_) => Ok(()),
            None => Err(ComputeError::not_found("WorkerNotFound", format!("worker {worker_id} is not registered to {}", owner.user.name))),
        }
    }

    /// Waits up to `wait` for a unit this worker may run and leases it.
    pub async fn pull(&self, owner: &Token, worker_id: i64, wait: Duration) -> Result<Option<Lease>> {
        Ok(self.leases(owner, worker_id, 1, wait, WhenFull::Refuse).await?.pop())
    }

    /// Waits up to `wait` for units this worker may run and leases up to `count` of them, in
    /// one transaction: every lease in the answer is durable. A worker holds at most
    /// [`in_progress_limit`] running leases; one that holds as many already is refused
    /// (`WhenFull::Refuse`) or answered with none (`WhenFull::Nothing`, when it is reporting
    /// at the same time and only asks for more in passing).
    pub async fn leases(&self, owner: &Token, worker_id: i64, count: usize, wait: Duration, when_full: WhenFull) -> Result<Vec<Lease>> {
        if count == 0 || count > MAX_LEASES_PER_REQUEST {
            return Err(ComputeError::bad_request(format!("ask for 1 to {MAX_LEASES_PER_REQUEST} leases at a time, not {count}")));
        }
        let owner = Owner::of(owner);
        let deadline = Instant::now() + wait.min(Duration::from_secs(self.config.long_poll_seconds));
        // The first attempt goes to the writer at once: it checks the worker and marks it seen.
        let mut first = true;
        loop {
            // Register interest before looking, so a unit queued in between still wakes us.
            let woken = self.wake.notified();
            // Later attempts read first, so idle polls do not queue at the writer.
            let any = first
                || sql::query("SELECT id FROM units WHERE open_slots > 0 AND state = 'open' LIMIT 1")
                    .fetch_optional(self.pool())
                    .await?
                    .is_some();
            if any {
                let leases = self.try_lease(&owner, worker_id, count, when_full).await?;
                if !leases.is_empty() {
                    return Ok(leases);
                }
            }
            first = false;
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(Vec::new());
            }
            // Other coordinators sharing the database cannot wake us: look again every second.
            let _ = tokio::time::timeout(left.min(Duration::from_secs(1)), woken).await;
        }
    }

    async fn try_lease(&self, owner: &Owner, worker_id: i64, count: usize, when_full: WhenFull) -> Result<Vec<Lease>> {
        let owner_for_writer = owner.clone();
        let leased = self.write_as(crate::Writes::Leases, move |c, db| c.lease(db, &owner_for_writer, worker_id, count, when_full)).await?;
        let mut leases = Vec::with_capacity(leased.len());
        for Leased { assignment_id, unit_id, job_id, role, mut work, checkpoint } in leased {
            let mut upload_token = None;
            if let Work::Train { output_repo, output_branch, resume, .. } = &mut work {
                *output_branch = crate::unit_branch(job_id, assignment_id);
                *resume = checkpoint.and_then(|c| serde_json::from_str(&c).ok());
                match self.upload_token(job_id, output_repo, output_branch, assignment_id).await? {
                    Some(token) => upload_token = Some(token),
                    // The assignment ended before its token existed (the job was cancelled or failed).
                    None => continue,
                }
            }
            tracing::info!(
                job = job_id,
                unit = unit_id,
                assignment = assignment_id,
                worker = worker_id,
                role = role.as_str(),
                "unit leased"
            );
            leases.push(Lease { assignment_id, unit_id, job_id, work, lease_seconds: self.config.lease_seconds, upload_token });
        }
        Ok(leases)
    }

    /// Leases up to `count` units `worker_id` may run, in fair-share order: submitters in the
    /// order they were last served, then their jobs likewise, each lease moving its job and
    /// submitter to the back, exactly as that many single leases one after another would.
    fn lease(&self, db: &Conn, owner: &Owner, worker_id: i64, count: usize, when_full: WhenFull) -> Result<Vec<Leased>> {
        // On PostgreSQL leases of several servers run at once: a worker asking two of them at
        // the same time is served by one, so that both cannot count the same room. The other
        // answers "nothing yet" and the worker's long poll looks again (a lock in the two-key
        // space, apart from the one-key write lock; ids past 2^31 share a key, which only makes
        // two workers take turns).
        if db.engine() == sql::Engine::Postgres
            && !db.one("SELECT pg_try_advisory_xact_lock(2, CAST(?1 % 2147483647 AS INTEGER))", [worker_id], |r| r.get::<_, bool>(0))?
        {
            return Ok(Vec::new());
        }
        let (worker, room) = self.worker(db, owner, worker_id)?;
        if room == 0 {
            return match when_full {
                WhenFull::Nothing => Ok(Vec::new()),
                WhenFull::Refuse => Err(ComputeError::conflict(format!(
                    "worker {worker_id} already runs as many units as its cores allow ({IN_PROGRESS_PER_CORE} per core): report one first"
                ))),
            };
        }
        let want = count.min(room);
        // A job that asks for a GPU only for a worker that offers one (`WorkerRow::serves`, here
        // in SQL), and such a worker serves those jobs first (its GPU is what no other worker can
        // give them), as BOINC sends coprocessor work to the hosts that have the coprocessor.
        // (`INDEXED BY`: without statistics SQLite would walk all of a job's open units, most of
        // them possibly leased already, instead of only those wanting a worker.)
        let mut turns = db.all(
            "SELECT j.id, j.owner_id, j.needs_gpu, COALESCE(o.last_served, 0) AS owner_served, j.last_served FROM jobs j LEFT JOIN compute_owners o ON o.owner_id = j.owner_id
             WHERE j.state IN ('queued', 'running', 'validating') AND (j.needs_gpu = FALSE OR ?2)
               AND EXISTS (SELECT 1 FROM units u INDEXED BY units_wanting_workers_by_job WHERE u.job_id = j.id AND u.open_slots > 0 AND u.state = 'open')
             ORDER BY j.needs_gpu DESC, COALESCE(o.last_served, 0), j.last_served, j.id LIMIT ?1",
            params![JOBS_CONSIDERED, worker.gpu],
            |r| {
                Ok(JobTurn {
                    job_id: r.get("id")?,
                    submitter: r.get("owner_id")?,
                    needs_gpu: r.get("needs_gpu")?,
                    submitter_served: r.get("owner_served")?,
                    job_served: r.get("last_served")?,
                    candidates: Vec::new(),
                    fetched: false,
                    served: false,
                })
            },
        )?;
        let mut leased: Vec<Leased> = Vec::with_capacity(want);
        let mut served: Vec<JobTurn> = Vec::new();
        while leased.len() < want {
            let Some(next) = turns.iter().enumerate().min_by_key(|(_, t)| t.order()).map(|(i, _)| i) else { break };
            let turn = &mut turns[next];
            match self.lease_in_job(db, &worker, turn, want - leased.len())? {
                Some(lease) => {
                    // Served now: this job and every job of its submitter go behind the others.
                    let (submitter, id) = (turn.submitter, lease.assignment_id);
                    turn.job_served = id;
                    for other in turns.iter_mut().filter(|t| t.submitter == submitter) {
                        other.submitter_served = id;
                    }
                    leased.push(lease);
                }
                None => {
                    let done = turns.swap_remove(next);
                    if done.served {
                        served.push(done);
                    }
                }
            }
        }
        served.extend(turns.into_iter().filter(|t| t.served));
        let t = now();
        // Fair-share bookkeeping, passed over for a job or submitter whose row another
        // transaction holds (a lease waits for no lock): that one is being served or changed
        // right now, and a report moves a started job on to running as well. The values only
        // grow, whichever server writes last. (Every submitter's row exists from its first job.)
        for job in &served {
            db.exec(
                "UPDATE jobs SET state = CASE WHEN state = 'queued' THEN 'running' ELSE state END,
                   last_served = CASE WHEN last_served < ?1 THEN ?1 ELSE last_served END, updated_at = ?2
                 WHERE id = (SELECT id FROM jobs WHERE id = ?3 AND state IN ('queued', 'running', 'validating') /*pg: FOR NO KEY UPDATE SKIP LOCKED*/)",
                [job.job_served, t, job.job_id],
            )?;
            db.exec(
                "UPDATE compute_owners SET last_served = CASE WHEN last_served < ?1 THEN ?1 ELSE last_served END
                 WHERE owner_id = (SELECT owner_id FROM compute_owners WHERE owner_id = ?2 /*pg: FOR NO KEY UPDATE SKIP LOCKED*/)",
                [job.submitter_served, job.submitter],
            )?;
        }
        Ok(leased)
    }

    /// Leases the oldest unit of `turn`'s job that `worker` may run, if any; `wanted` is how
    /// many more leases the request still wants (candidates are read that many at a time).
    fn lease_in_job(&self, db: &Conn, worker: &WorkerRow, turn: &mut JobTurn, wanted: usize) -> Result<Option<Leased>> {
        if !turn.fetched {
            // Once per job and request, so a job whose units this worker may not run costs a
            // bounded read; the units the request may still want come on top of that allowance.
            let mut candidates = self.candidates(db, worker, turn.job_id, UNITS_CONSIDERED + wanted as i64)?;
            // Taken from the back: oldest last.
            candidates.reverse();
            turn.candidates = candidates;
            turn.fetched = true;
        }
        while let Some(mut unit) = turn.candidates.pop() {
            // The unit, locked and read again: a slot may have gone since the candidates were read
            // (to an earlier lease of this batch, or on another server), and who may run it is
            // decided on what is current. One another transaction holds is passed over.
            let current = db.maybe(
                "SELECT quorum, results_made, checkpoint FROM units WHERE id = ?1 AND open_slots > 0 AND state = 'open' /*pg: FOR UPDATE SKIP LOCKED*/",
                [unit.id],
                |r| Ok((r.get("quorum")?, r.get("results_made")?, r.get("checkpoint")?)),
            )?;
            let Some((quorum, results_made, checkpoint)) = current else { continue };
            (unit.quorum, unit.results_made, unit.checkpoint) = (quorum, results_made, checkpoint);
            let stored = StoredWork::parse(&unit.payload, unit.id)?;
            if !self.may_run(db, worker, unit.id, unit.role, unit.quorum, stored.claim)? {
                continue;
            }
            // Adaptive replication: the first copy of an evaluation (or of a batch of predictions)
            // going to a trusted host is accepted alone, except for a random spot check.
            let replicate = !matches!(unit.role, Role::Eval | Role::Predict)
                || unit.validates.is_some()
                || unit.results_made > 0
                || unit.quorum < 2
                || !worker.trusted
                || { !worker.operator_host && rand::rng().random::<f64>() < self.config.spot_check_rate };
            let t = now();
            if replicate {
                db.exec(
                    "UPDATE units SET open_slots = open_slots - 1, results_made = results_made + 1, updated_at = ?1 WHERE id = ?2",
                    [t, unit.id],
                )?;
            } else {
                db.exec(
                    "UPDATE units SET open_slots = 0, quorum = 1, results_made = results_made + 1, updated_at = ?1 WHERE id = ?2",
                    [t, unit.id],
                )?;
                tracing::debug!(unit = unit.id, worker = worker.id, "trusted host: accepted without replication");
            }
            let expires = t + self.config.lease_seconds as i64;
            let assignment_id: i64 = db.one(
                "INSERT INTO assignments (unit_id, worker_id, owner_id, state, lease_expires_at, created_at) VALUES (?1, ?2, ?3, 'running', ?4, ?5) RETURNING id",
                [unit.id, worker.id, worker.owner_id, expires, t],
                |r| r.get(0),
            )?;
            turn.served = true;
            return Ok(Some(Leased {
                assignment_id,
                unit_id: unit.id,
                job_id: unit.job_id,
                role: unit.role,
                work: stored.work,
                checkpoint: unit.checkpoint,
            }));
        }
        Ok(None)
    }

    /// Up to `limit` of `job_id`'s units that want a worker and that `worker` never had, oldest first.
    fn candidates(&self, db: &Conn, worker: &WorkerRow, job_id: i64, limit: i64) -> Result<Vec<Candidate>> {
        // `+a.worker_id` keeps SQLite on the unit's index: a worker's own assignments are its
        // whole history, a unit's are a handful.
        db.all(
            "SELECT u.id, u.job_id, u.role, u.payload, u.quorum, u.results_made, u.validates_unit, u.checkpoint
             FROM units u INDEXED BY units_wanting_workers_by_job
             WHERE u.job_id = ?2 AND u.open_slots > 0 AND u.state = 'open'
               AND NOT EXISTS (SELECT 1 FROM assignments a WHERE a.unit_id = u.id AND +a.worker_id = ?1)
             ORDER BY u.id LIMIT ?3",
            [worker.id, job_id, limit],
            |r| {
                Ok(Candidate {
                    id: r.get("id")?,
                    job_id: r.get("job_id")?,
                    role: text_col(r, "role")?,
                    payload: r.get("payload")?,
                    quorum: r.get("quorum")?,
                    results_made: r.get("results_made")?,
                    validates: r.get("validates_unit")?,
                    checkpoint: r.get("checkpoint")?,
                })
            },
        )
    }

    /// Whether `worker` may take the unit (see [`Needs`]).
    fn may_run(&self, db: &Conn, worker: &WorkerRow, unit_id: i64, role: Role, quorum: i64, claim: Option<i64>) -> Result<bool> {
        let needs = match Needs::kind(role, quorum) {
            NeedsKind::Any => Needs::Any,
            NeedsKind::Untried => Needs::Untried {
                rejected: db
                    .all(REJECTED_TRAINERS, [unit_id], |r| Ok(Party { owner_id: r.get(0)?, owner: r.get(1)?, class: r.get(2)? }))?,
            },
            NeedsKind::Agreeing => Needs::Agreeing {
                others: db.all(RESULTS_IN_PLAY, [unit_id, claim.unwrap_or(-1)], |r| {
                    Ok(Party { owner_id: r.get(0)?, owner: r.get(1)?, class: r.get(2)? })
                })?,
            },
        };
        Ok(needs.admits(worker.owner_id, &worker.numeric_class, worker.operator_host))
    }

    /// A lease token for the worker that trains a unit: it writes only the unit's branch of the
    /// job's output repository, reads only what anonymous callers read, and dies the moment the
    /// assignment stops running. `None` when the assignment is over already; a job whose output
    /// repository was deleted fails (nothing could be published).
    async fn upload_token(&self, job_id: i64, output_repo: &str, branch: &str, assignment_id: i64) -> Result<Option<String>> {
        let Some(repo) = self.output_repo(output_repo).await? else {
            let message = format!("the output repository {output_repo} was deleted");
            tracing::warn!(job = job_id, %message, "job failed");
            self.write(move |c, db| c.fail_if_active(db, job_id, &message)).await?;
            return Ok(None);
        };
        let owner_id: i64 =
            sql::query("SELECT owner_id FROM jobs WHERE id = $1").bind(job_id).fetch_one(self.pool()).await?.try_get("owner_id")?;
        let name = format!("job-{job_id}-assignment-{assignment_id}");
        Ok(self.db.create_lease_token(owner_id, &name, repo.id, branch, assignment_id, now() + UPLOAD_TOKEN_SECONDS).await?)
    }

    /// Loads an assignment of `owner`'s worker, with its unit and job state.
    fn owned_assignment(&self, db: &Conn, owner: &Owner, assignment_id: i64) -> Result<AssignmentRow> {
        db.maybe(
            "SELECT a.id, a.unit_id, a.worker_id, a.owner_id, a.state, u.role, u.state AS unit_state, u.job_id, j.state AS job_state,
                    u.quorum, u.results_made, u.validates_unit, u.flops
             FROM assignments a JOIN units u ON u.id = a.unit_id JOIN jobs j ON j.id = u.job_id
             WHERE a.id = ?1 AND a.owner_id = ?2 /*pg: FOR UPDATE OF a, u*/",
            [assignment_id, owner.id],
            |r| {
                Ok(AssignmentRow {
                    id: r.get("id")?,
                    unit_id: r.get("unit_id")?,
                    worker_id: r.get("worker_id")?,
                    state: text_col(r, "state")?,
                    role: text_col(r, "role")?,
                    unit_state: text_col(r, "unit_state")?,
                    job_id: r.get("job_id")?,
                    job_state: text_col(r, "job_state")?,
                    owner_id: r.get("owner_id")?,
                    alone: r.get::<_, i64>("quorum")? == 1
                        && r.get::<_, i64>("results_made")? == 1
                        && r.get::<_, Option<i64>>("validates_unit")?.is_none(),
                    flops: r.get("flops")?,
                })
            },
        )?
        .ok_or_else(|| ComputeError::not_found("AssignmentNotFound", format!("assignment {assignment_id} is not one of {}'s", owner.name)))
    }

    /// The output repository and unit branch of a train assignment of `owner`, read outside the
    /// writer so the hub can be asked about them first. `None` when it is no such assignment.
    async fn train_target(&self, owner: &Owner, assignment_id: i64) -> Result<Option<(String, i64)>> {
        let row = sql::query("SELECT u.payload, u.id AS unit_id, u.job_id FROM assignments a JOIN units u ON u.id = a.unit_id WHERE a.id = $1 AND a.owner_id = $2 AND u.role = 'train'")
            .bind(assignment_id)
            .bind(owner.id)
            .fetch_optional(self.pool())
            .await?;
        let Some(row) = row else { return Ok(None) };
        let unit_id: i64 = row.try_get("unit_id")?;
        let stored = StoredWork::parse(row.try_get_str("payload")?, unit_id)?;
        Ok(Some((stored.output_repo(unit_id)?.to_string(), row.try_get("job_id")?)))
    }

    /// Records progress, logs and finished epochs, and extends the lease.
    pub async fn heartbeat(&self, owner: &Token, assignment_id: i64, beat: Heartbeat) -> Result<HeartbeatAnswer> {
        if beat.epochs.len() > HEARTBEAT_MAX_EPOCHS {
            return Err(ComputeError::bad_request(format!(
                "a heartbeat carries at most {HEARTBEAT_MAX_EPOCHS} epoch points; send the rest in the next one"
            )));
        }
        let owner = Owner::of(owner);
        // A checkpoint counts only once it is on the hub, at the head of this assignment's own
        // branch: asked of the hub before the write.
        let checkpoint = match beat.checkpoint.clone() {
            Some(checkpoint) => Some(self.verified_checkpoint(&owner, assignment_id, checkpoint).await?),
            None => None,
        };
        self.write(move |c, db| c.record_heartbeat(db, &owner, assignment_id, beat, checkpoint)).await
    }

    fn record_heartbeat(
        &self,
        db: &Conn,
        owner: &Owner,
        assignment_id: i64,
        beat: Heartbeat,
        checkpoint: Option<CheckpointRef>,
    ) -> Result<HeartbeatAnswer> {
        let a = self.owned_assignment(db, owner, assignment_id)?;
        let t = now();
        db.exec("UPDATE workers SET last_seen = ?1 WHERE id = ?2", [t, a.worker_id])?;
        if a.state != AssignmentState::Running {
            let reason = match a.state {
                AssignmentState::Expired => "the lease lapsed and the unit went to another worker",
                AssignmentState::Cancelled if a.job_state == JobState::Cancelled => "the job was cancelled",
                AssignmentState::Cancelled => "the unit was decided without this result",
                _ => "this assignment has already been reported",
            };
            return Ok(HeartbeatAnswer { stop: true, reason: Some(reason.into()), lease_expires_at: 0 });
        }
        let expires = t + self.config.lease_seconds as i64;
        let progress = beat.progress.as_ref().map(|p| serde_json::to_string(p).unwrap_or_default());
        db.exec(
            "UPDATE assignments SET lease_expires_at = ?1, progress = COALESCE(?2, progress) WHERE id = ?3",
            params![expires, progress, a.id],
        )?;
        if !beat.epochs.is_empty() {
            let current: Option<String> = db.one("SELECT epochs FROM assignments WHERE id = ?1", [a.id], |r| r.get(0))?;
            let mut epochs: Vec<commons_protocol::EpochPoint> = current.and_then(|c| serde_json::from_str(&c).ok()).unwrap_or_default();
            // Linear in what is kept plus what arrived; both are capped.
            let mut seen: std::collections::HashSet<usize> = epochs.iter().map(|e| e.epoch).collect();
            for point in beat.epochs {
                if epochs.len() >= MAX_EPOCHS_KEPT {
                    break;
                }
                if seen.insert(point.epoch) {
                    epochs.push(point);
                }
            }
            db.exec("UPDATE assignments SET epochs = ?1 WHERE id = ?2", params![serde_json::to_string(&epochs).unwrap_or_default(), a.id])?;
        }
        if let Some(checkpoint) = &checkpoint {
            self.record_checkpoint(db, &a, checkpoint)?;
        }
        if !beat.log.is_empty() {
            let kept: i64 = db.one("SELECT log_lines FROM assignments WHERE id = ?1", [a.id], |r| r.get(0))?;
            let room = (MAX_LOG_LINES_PER_ASSIGNMENT - kept).max(0) as usize;
            // Lines past the per-beat cap are dropped, as an honest worker never sends them.
            let offered = beat.log.len().min(HEARTBEAT_MAX_LOG_LINES);
            let lines: Vec<String> = beat.log.iter().take(offered.min(room)).map(|l| l.chars().take(MAX_LOG_LINE).collect()).collect();
            for line in &lines {
                db.exec(
                    "INSERT INTO unit_logs (job_id, assignment_id, line, created_at) VALUES (?1, ?2, ?3, ?4)",
                    params![a.job_id, a.id, line, t],
                )?;
            }
            // The assignment's log is full: one note says so, once.
            let truncated = lines.len() < offered && kept <= MAX_LOG_LINES_PER_ASSIGNMENT;
            if truncated {
                let note = format!("[coordinator] assignment {}: log truncated at {MAX_LOG_LINES_PER_ASSIGNMENT} lines", a.id);
                db.exec(
                    "INSERT INTO unit_logs (job_id, assignment_id, line, created_at) VALUES (?1, ?2, ?3, ?4)",
                    params![a.job_id, a.id, note, t],
                )?;
            }
            // One past the cap once truncated, so the note is written once.
            let added = lines.len() as i64 + i64::from(truncated);
            db.exec(
                "UPDATE assignments SET log_lines = CASE WHEN log_lines + ?1 < ?2 THEN log_lines + ?1 ELSE ?2 END WHERE id = ?3",
                params![added, MAX_LOG_LINES_PER_ASSIGNMENT + 1, a.id],
            )?;
        }
        Ok(HeartbeatAnswer { stop: false, reason: None, lease_expires_at: expires })
    }

    /// The commit at the head of assignment `assignment_id`'s branch of `output_repo`, if both exist.
    async fn own_branch_head(&self, job_id: i64, assignment_id: i64, output_repo: &str) -> Result<Option<String>> {
        let Some(repo) = self.output_repo(output_repo).await? else { return Ok(None) };
        match self.repos.pin(&repo, &crate::unit_branch(job_id, assignment_id)).await {
            Ok(head) => Ok(Some(head)),
            Err(commons_repo::RepoError::RevisionNotFound(_)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Checks with the hub that `checkpoint` is the head of the assignment's own branch and holds
    /// a checkpoint.
    async fn verified_checkpoint(&self, owner: &Owner, assignment_id: i64, checkpoint: CheckpointRef) -> Result<CheckpointRef> {
        let Some((output_repo, job_id)) = self.train_target(owner, assignment_id).await? else {
            return Err(ComputeError::bad_request("only training units checkpoint"));
        };
        let own = self.own_branch_head(job_id, assignment_id, &output_repo).await?.as_deref() == Some(checkpoint.commit.as_str());
        let on_hub = match self.output_repo(&output_repo).await? {
            Some(repo) if own => self.repos.file(&repo, &checkpoint.commit, "checkpoint/state.json").await?.is_some(),
            _ => false,
        };
        if !on_hub {
            return Err(ComputeError::bad_request(format!(
                "checkpoint commit {} is not the head of this assignment's branch of {output_repo} with a checkpoint/state.json",
                checkpoint.commit
            )));
        }
        Ok(checkpoint)
    }

    /// Keeps a train unit's newest checkpoint (already verified on the hub).
    fn record_checkpoint(&self, db: &Conn, a: &AssignmentRow, checkpoint: &CheckpointRef) -> Result<()> {
        let known: Option<String> = db.one("SELECT checkpoint FROM units WHERE id = ?1", [a.unit_id], |r| r.get(0))?;
        let newer = match known.and_then(|c| serde_json::from_str::<CheckpointRef>(&c).ok()) {
            Some(known) => checkpoint.epochs_done > known.epochs_done,
            None => true,
        };
        if newer {
            let text = serde_json::to_string(checkpoint).map_err(|e| ComputeError::Corrupt(e.to_string()))?;
            db.exec("UPDATE units SET checkpoint = ?1 WHERE id = ?2", params![text, a.unit_id])?;
            self.log(db, a.job_id, &format!("unit {}: checkpoint after epoch {} is on the hub", a.unit_id, checkpoint.epochs_done))?;
        }
        Ok(())
    }

    /// Takes a worker's report. Reporting twice, or after the unit was decided, is answered
    /// without changing anything; a report arriving after its lease lapsed still counts while
    /// the unit is undecided.
    pub async fn report(&self, owner: &Token, assignment_id: i64, report: Report) -> Result<ReportAnswer> {
        let mut answers = self.reports(owner, vec![(assignment_id, report)]).await?;
        answers.pop().unwrap_or_else(|| Err(ComputeError::Corrupt("a report went unanswered".into())))
    }

    /// Takes several reports in one transaction, each in a savepoint of its own: a refused one
    /// (not the caller's, the wrong output) changes nothing and leaves the others recorded.
    /// Answers in the order given. The outer error is the transaction's: nothing was recorded.
    pub async fn reports(&self, owner: &Token, reports: Vec<(i64, Report)>) -> Result<Vec<Result<ReportAnswer>>> {
        if reports.len() > MAX_REPORTS_PER_REQUEST {
            return Err(ComputeError::bad_request(format!(
                "send at most {MAX_REPORTS_PER_REQUEST} reports at a time, not {}",
                reports.len()
            )));
        }
        let owner = Owner::of(owner);
        // A claimed model must be the head of this assignment's own branch, which only this
        // lease's upload token can write: a worker cannot claim a model someone else trained.
        let mut checked = Vec::with_capacity(reports.len());
        for (assignment_id, report) in reports {
            let claim = match &report {
                Report::Success { output: Output::Train { model_commit, .. } } => {
                    self.check_model_claim(&owner, assignment_id, model_commit).await
                }
                _ => Ok(()),
            };
            checked.push((assignment_id, claim.map(|()| report)));
        }
        let (answers, ready) = self.record_reports_until_done(owner, checked).await?;
        self.wake.notify_waiters();
        for job_id in ready {
            self.finish_jobs_if_ready(Some(job_id)).await?;
        }
        Ok(answers)
    }

    /// Records reports, doing again those that met a lock held by another server's report
    /// ([`ComputeError::is_lock_conflict`]; each was undone alone) until none is left: a few
    /// rounds at most under contention.
    async fn record_reports_until_done(
        &self,
        owner: Owner,
        reports: Vec<(i64, Result<Report>)>,
    ) -> Result<(Vec<Result<ReportAnswer>>, Vec<i64>)> {
        const ROUNDS: u32 = 20;
        let mut answers: Vec<Option<Result<ReportAnswer>>> = (0..reports.len()).map(|_| None).collect();
        let mut pending: Vec<(usize, i64, Report)> = Vec::with_capacity(reports.len());
        for (slot, (assignment_id, report)) in reports.into_iter().enumerate() {
            match report {
                Ok(report) => pending.push((slot, assignment_id, report)),
                Err(refused) => answers[slot] = Some(Err(refused)),
            }
        }
        let mut ready: Vec<i64> = Vec::new();
        let mut round = 0;
        while !pending.is_empty() {
            round += 1;
            let batch: Vec<(i64, Result<Report>)> = pending.iter().map(|(_, id, report)| (*id, Ok(report.clone()))).collect();
            let owner = owner.clone();
            let (got, jobs) = match self.write_as(crate::Writes::Reports, move |c, db| c.record_reports(db, &owner, batch)).await {
                Err(e) if e.is_lock_conflict() && round < ROUNDS => {
                    tokio::time::sleep(Duration::from_millis(u64::from(round))).await;
                    continue;
                }
                recorded => recorded?,
            };
            for job in jobs {
                if !ready.contains(&job) {
                    ready.push(job);
                }
            }
            let mut again = Vec::new();
            for ((slot, assignment_id, report), answer) in pending.into_iter().zip(got) {
                match answer {
                    Err(e) if e.is_lock_conflict() && round < ROUNDS => again.push((slot, assignment_id, report)),
                    answer => answers[slot] = Some(answer),
                }
            }
            if !again.is_empty() {
                tracing::debug!(reports = again.len(), round, "reports met rows another server's reports held; recording them again");
                tokio::time::sleep(Duration::from_millis(u64::from(round))).await;
            }
            pending = again;
        }
        let answers =
            answers.into_iter().map(|a| a.unwrap_or_else(|| Err(ComputeError::Corrupt("a report went unanswered".into())))).collect();
        Ok((answers, ready))
    }

    /// Refuses a claimed model that is not the head of the assignment's own branch.
    async fn check_model_claim(&self, owner: &Owner, assignment_id: i64, model_commit: &str) -> Result<()> {
        if let Some((output_repo, job_id)) = self.train_target(owner, assignment_id).await?
            && self.own_branch_head(job_id, assignment_id, &output_repo).await?.as_deref() != Some(model_commit)
        {
            return Err(ComputeError::bad_request(format!(
                "model commit {model_commit} is not the head of branch {} of {output_repo}: upload the model there before reporting",
                crate::unit_branch(job_id, assignment_id)
            )));
        }
        Ok(())
    }

    /// The reports' transaction; also says which of their jobs have no open unit left.
    fn record_reports(
        &self,
        db: &Conn,
        owner: &Owner,
        reports: Vec<(i64, Result<Report>)>,
    ) -> Result<(Vec<Result<ReportAnswer>>, Vec<i64>)> {
        let mut answers = Vec::with_capacity(reports.len());
        let mut jobs: Vec<i64> = Vec::new();
        for (assignment_id, report) in reports {
            let answer = report.and_then(|report| {
                db.exec("SAVEPOINT report", ())?;
                match self.record_report(db, owner, assignment_id, report) {
                    Ok(answer) => {
                        db.exec("RELEASE report", ())?;
                        Ok(answer)
                    }
                    Err(e) => {
                        db.exec("ROLLBACK TO report", ())?;
                        db.exec("RELEASE report", ())?;
                        Err(e)
                    }
                }
            });
            answers.push(answer.map(|(answer, job_id)| {
                if !jobs.contains(&job_id) {
                    jobs.push(job_id);
                }
                answer
            }));
        }
        // Once per job, not per report: a batch of a job's units moves its state once.
        let mut ready = Vec::new();
        for job_id in jobs {
            self.refresh_job_state(db, job_id)?;
            let open: bool = db.one("SELECT EXISTS (SELECT 1 FROM units WHERE job_id = ?1 AND state = 'open')", [job_id], |r| r.get(0))?;
            if !open {
                ready.push(job_id);
            }
        }
        Ok((answers, ready))
    }

    /// Records one report (inside its savepoint); returns the answer and the report's job.
    fn record_report(&self, db: &Conn, owner: &Owner, assignment_id: i64, report: Report) -> Result<(ReportAnswer, i64)> {
        let a = self.owned_assignment(db, owner, assignment_id)?;
        let refuse = |message: &str| Ok((ReportAnswer { accepted: false, message: message.into(), next: None }, a.job_id));
        match a.state {
            AssignmentState::Reported | AssignmentState::Errored => {
                return refuse("this assignment was already reported; the first report stands");
            }
            AssignmentState::Cancelled => return refuse("the job was cancelled or the unit decided; nothing recorded"),
            AssignmentState::Expired if a.unit_state != UnitState::Open => {
                return refuse("the lease lapsed and the unit was decided without this result");
            }
            _ => {}
        }
        if a.unit_state != UnitState::Open {
            return refuse("the unit was already decided");
        }
        let t = now();
        let answer = match report {
            Report::Error { error } => {
                let error: String = error.chars().take(4000).collect();
                db.exec("UPDATE assignments SET state = 'errored', error = ?1, reported_at = ?2 WHERE id = ?3", params![error, t, a.id])?;
                db.exec("UPDATE workers SET error_results = error_results + 1 WHERE id = ?1", [a.worker_id])?;
                // A lapsed lease already counted its error and re-opened its slot.
                if a.state == AssignmentState::Running {
                    self.unit_error(db, a.unit_id, a.job_id, &format!("worker {}: {error}", a.worker_id))?;
                }
                ReportAnswer { accepted: true, message: "error recorded".into(), next: None }
            }
            Report::Success { output } => {
                let hash = output_hash(a.role, &output)?;
                let text = serde_json::to_string(&output).map_err(|e| ComputeError::Corrupt(e.to_string()))?;
                db.exec(
                    "UPDATE assignments SET state = 'reported', output = ?1, output_hash = ?2, reported_at = ?3 WHERE id = ?4",
                    params![text, hash, t, a.id],
                )?;
                if a.role == Role::Train {
                    self.open_validation(db, a.unit_id, a.job_id, &output)?;
                } else if a.alone && a.state == AssignmentState::Running {
                    // The only result a quorum of one needs (a trusted host, a no-op): decided now.
                    self.accept_alone(db, &a, &hash)?;
                } else {
                    self.decide(db, a.unit_id)?;
                }
                ReportAnswer { accepted: true, message: "result recorded".into(), next: None }
            }
        };
        Ok((answer, a.job_id))
    }

    /// Counts an error against a unit: retry elsewhere, or fail the job once errors run out.
    pub(crate) fn unit_error(&self, db: &Conn, unit_id: i64, job_id: i64, error: &str) -> Result<()> {
        let (errors, max_errors, state): (i64, i64, UnitState) = db.one(
            "UPDATE units SET errors = errors + 1, last_error = ?1, updated_at = ?2 WHERE id = ?3 RETURNING errors, max_errors, state",
            params![error, now(), unit_id],
            |r| Ok((r.get(0)?, r.get(1)?, text_col(r, "state")?)),
        )?;
        if state != UnitState::Open {
            return Ok(());
        }
        if errors >= max_errors {
            db.exec("UPDATE units SET state = 'failed', open_slots = 0 WHERE id = ?1", [unit_id])?;
            let message = format!("unit {unit_id} failed {errors} times; last error: {error}");
            tracing::warn!(job = job_id, unit = unit_id, %message, "job failed");
            self.end_job(db, job_id, JobState::Failed, Some(&message))?;
        } else {
            db.exec("UPDATE units SET open_slots = open_slots + 1 WHERE id = ?1", [unit_id])?;
        }
        Ok(())
    }

    /// Lapses leases not renewed in time and hands their units to other workers.
    pub(crate) async fn expire_leases(&self) -> Result<()> {
        let t = now();
        let any = sql::query("SELECT 1 FROM assignments WHERE state = 'running' AND lease_expires_at < $1 LIMIT 1")
            .bind(t)
            .fetch_optional(self.pool())
            .await?;
        if any.is_none() {
            return Ok(());
        }
        self.write(move |c, db| {
            let lapsed = db.all(
                "SELECT a.id, a.unit_id, a.worker_id, u.job_id FROM assignments a JOIN units u ON u.id = a.unit_id WHERE a.state = 'running' AND a.lease_expires_at < ?1",
                [t],
                |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?, r.get::<_, i64>(3)?)),
            )?;
            for (id, unit_id, worker_id, job_id) in lapsed {
                db.exec("UPDATE assignments SET state = 'expired' WHERE id = ?1", [id])?;
                tracing::warn!(assignment = id, unit = unit_id, worker = worker_id, "lease lapsed; re-queueing the unit");
                db.exec("UPDATE workers SET error_results = error_results + 1 WHERE id = ?1", [worker_id])?;
                c.unit_error(db, unit_id, job_id, &format!("worker {worker_id} went silent: its lease lapsed"))?;
                c.refresh_job_state(db, job_id)?;
            }
            Ok(())
        })
        .await?;
        self.wake.notify_waiters();
        Ok(())
    }

    /// The coordinator's counts for `/metrics`: units by state, assignments wanted and not
    /// handed out (the queue), workers online, and the ledger's balance by kind of account.
    pub async fn stats(&self) -> Result<ComputeStats> {
        let units = sql::query("SELECT state, COUNT(*) AS n FROM units GROUP BY state").fetch_all(self.pool()).await?;
        let queue = sql::query("SELECT CAST(COALESCE(SUM(open_slots), 0) AS BIGINT) AS n FROM units WHERE state = 'open'")
            .fetch_one(self.pool())
            .await?;
        let online =
            sql::query("SELECT COUNT(*) AS n FROM workers WHERE last_seen >= $1").bind(self.online_after()).fetch_one(self.pool()).await?;
        let ledger = sql::query(
            "SELECT a.kind, CAST(COALESCE(SUM(e.amount), 0) AS BIGINT) AS total FROM ledger_entries e JOIN ledger_accounts a ON a.id = e.account_id
             GROUP BY a.kind",
        )
        .fetch_all(self.pool())
        .await?;
        Ok(ComputeStats {
            units_by_state: units.iter().map(|r| Ok((r.try_get("state")?, r.try_get("n")?))).collect::<Result<_>>()?,
            queued_assignments: queue.try_get("n")?,
            workers_online: online.try_get("n")?,
            ledger_by_account_kind: ledger.iter().map(|r| Ok((r.try_get("kind")?, r.try_get("total")?))).collect::<Result<_>>()?,
        })
    }

    /// Who is online and what they run.
    pub async fn workers(&self) -> Result<Vec<WorkerView>> {
        let online_after = self.online_after();
        let rows = sql::query(
            "SELECT w.*, u.name AS owner FROM workers w JOIN users u ON u.id = w.owner_id ORDER BY w.last_seen DESC, w.id LIMIT 1000",
        )
        .fetch_all(self.pool())
        .await?;
        let running = sql::query(
            "SELECT a.worker_id, u.job_id, u.id AS unit_id FROM assignments a JOIN units u ON u.id = a.unit_id WHERE a.state = 'running'",
        )
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
                trusted: self.trusted(operator_host, consecutive_valid),
                running: units,
            });
        }
        Ok(views)
    }
}

/// Who a request acts for, as the writer needs it (owned: units of work outlive the request).
#[derive(Clone)]
pub(crate) struct Owner {
    pub id: i64,
    pub name: String,
}

impl Owner {
    fn of(token: &Token) -> Self {
        Self { id: token.user.id, name: token.user.name.clone() }
    }
}

/// Checks an output against its unit's role and returns the hash results are compared by.
fn output_hash(role: Role, output: &Output) -> Result<String> {
    match (role, output) {
        (Role::Noop, Output::Noop) => Ok("noop".into()),
        (Role::Eval, Output::Eval { metrics, .. }) => Ok(crate::result_hash(metrics)),
        (Role::Predict, Output::Predict { predictions, .. }) => {
            if let Some(problem) = predictions.problem() {
                return Err(ComputeError::bad_request(format!("these predictions cannot be a unit's: {problem}")));
            }
            let value = serde_json::to_value(predictions).map_err(|e| ComputeError::Corrupt(e.to_string()))?;
            Ok(crate::result_hash(&value))
        }
        (Role::Train, Output::Train { test, .. }) => Ok(crate::result_hash(test)),
        (role, _) => Err(ComputeError::bad_request(format!("this is a {role} unit; the report carries another kind of output"))),
    }
}
