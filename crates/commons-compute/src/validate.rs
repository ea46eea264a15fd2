//! Validation on BOINC's model, payments, and finishing jobs.
//!
//! Results of a unit are grouped by the hash of their output. A group wins when its support
//! reaches the unit's quorum, where support counts distinct owners (one person cannot outvote
//! others by running many workers) plus each of the hub operator's own hosts. The winners are
//! valid and paid; the others are invalid, unpaid, and reset their host's trust. Without a
//! winner and with no result still running, the unit goes to one more worker, up to its cap.
//!
//! A training result is validated by an evaluation unit whose first vote is the trainer's
//! claimed test metrics: an independent worker re-evaluates the uploaded model, and the claim
//! stands only if an evaluation from another owner reproduces it bit for bit.

use commons_db::RefKind;
use commons_protocol::{JobState, Outcome, Output, PinnedRepo, Role, UnitState, Work, credits_for};
use commons_repo::Change;
use rusqlite::params;
use serde_json::{Value, json};
use sqlx::Row;

use crate::error::{ComputeError, Result};
use crate::ledger::{self, Memo, TransferKind};
use crate::units::{AssignmentRow, NewUnitRef, StoredWork, VALIDATION_MAX_RESULTS, insert_unit};
use crate::writer::{Conn, Sql, text_col};
use crate::{Coordinator, now, stored};

struct Vote {
    assignment_id: i64,
    owner_id: i64,
    worker_id: i64,
    operator: bool,
    hash: String,
}

fn votes(db: &Conn, condition: &str, id: i64) -> Result<Vec<Vote>> {
    let sql = format!(
        "SELECT a.id, a.owner_id, a.worker_id, w.operator_host, a.output_hash FROM assignments a JOIN workers w ON w.id = a.worker_id
         WHERE {condition} AND a.state = 'reported' AND a.output_hash IS NOT NULL ORDER BY a.id"
    );
    db.all(&sql, [id], |r| {
        Ok(Vote {
            assignment_id: r.get("id")?,
            owner_id: r.get("owner_id")?,
            worker_id: r.get("worker_id")?,
            operator: r.get("operator_host")?,
            hash: r.get("output_hash")?,
        })
    })
}

/// Distinct owners, plus each operator host on its own.
fn support(group: &[&Vote]) -> i64 {
    let mut owners: Vec<i64> = group.iter().filter(|v| !v.operator).map(|v| v.owner_id).collect();
    owners.sort_unstable();
    owners.dedup();
    owners.len() as i64 + group.iter().filter(|v| v.operator).count() as i64
}

impl Coordinator {
    /// A train unit reported a model: queue its validation, an evaluation whose first vote is
    /// the trainer's claim.
    pub(crate) fn open_validation(&self, db: &Conn, train_unit: i64, job_id: i64, output: &Output) -> Result<()> {
        let Output::Train { model_commit, .. } = output else { return Ok(()) };
        let payload: String = db.one("SELECT payload FROM units WHERE id = ?1", [train_unit], |r| r.get(0))?;
        let stored = StoredWork::parse(&payload, train_unit)?;
        let Work::Train { dataset, output_repo, .. } = stored.work else {
            return Err(ComputeError::Corrupt(format!("unit {train_unit} is not a train unit")));
        };
        let claim: i64 = db.one(
            "SELECT id FROM assignments WHERE unit_id = ?1 AND state = 'reported' AND outcome = 'pending' ORDER BY reported_at DESC, id DESC LIMIT 1",
            [train_unit],
            |r| r.get(0),
        )?;
        let work = Work::Eval {
            model: PinnedRepo { repo: output_repo, revision: model_commit.clone() },
            dataset,
            split: "test".into(),
            shard: None,
        };
        let validation = StoredWork { work, validation_flops: None, claim: Some(claim) };
        let unit = NewUnitRef {
            role: Role::Eval,
            stored: &validation,
            quorum: 2,
            open_slots: 1,
            max_results: VALIDATION_MAX_RESULTS,
            flops: stored.validation_flops.unwrap_or(0.0),
        };
        let id = insert_unit(db, job_id, &unit, Some(train_unit), self.config.max_errors)?;
        tracing::info!(job = job_id, unit = id, claim, "training reported; validation queued");
        Ok(())
    }

    /// Looks for a quorum among a unit's results and acts on it.
    pub(crate) fn decide(&self, db: &Conn, unit_id: i64) -> Result<()> {
        struct Unit {
            job_id: i64,
            state: UnitState,
            quorum: i64,
            open_slots: i64,
            results_made: i64,
            max_results: i64,
            validates: Option<i64>,
            flops: f64,
            payload: String,
        }
        let unit = db.one(
            "SELECT job_id, state, quorum, open_slots, results_made, max_results, validates_unit, flops, payload FROM units WHERE id = ?1",
            [unit_id],
            |r| {
                Ok(Unit {
                    job_id: r.get("job_id")?,
                    state: text_col(r, "state")?,
                    quorum: r.get("quorum")?,
                    open_slots: r.get("open_slots")?,
                    results_made: r.get("results_made")?,
                    max_results: r.get("max_results")?,
                    validates: r.get("validates_unit")?,
                    flops: r.get("flops")?,
                    payload: r.get("payload")?,
                })
            },
        )?;
        if unit.state != UnitState::Open {
            return Ok(());
        }
        let (job_id, quorum) = (unit.job_id, unit.quorum);
        let stored = StoredWork::parse(&unit.payload, unit_id)?;
        let mut ballot = votes(db, "a.unit_id = ?1", unit_id)?;
        let claim = match stored.claim {
            Some(claim) => votes(db, "a.id = ?1", claim)?.pop(),
            None => None,
        };
        if let Some(claim) = &claim {
            ballot.insert(
                0,
                Vote {
                    assignment_id: claim.assignment_id,
                    owner_id: claim.owner_id,
                    worker_id: claim.worker_id,
                    operator: claim.operator,
                    hash: claim.hash.clone(),
                },
            );
        }
        let mut hashes: Vec<&str> = ballot.iter().map(|v| v.hash.as_str()).collect();
        hashes.dedup();
        let winner =
            hashes.into_iter().find(|h| support(&ballot.iter().filter(|v| v.hash == *h).collect::<Vec<_>>()) >= quorum).map(str::to_string);
        let Some(winner) = winner else {
            let running: i64 =
                db.one("SELECT COUNT(*) FROM assignments WHERE unit_id = ?1 AND state = 'running'", [unit_id], |r| r.get(0))?;
            if running > 0 || unit.open_slots > 0 {
                return Ok(());
            }
            if unit.results_made < unit.max_results {
                db.exec("UPDATE units SET open_slots = 1, updated_at = ?1 WHERE id = ?2", [now(), unit_id])?;
                self.log(db, job_id, &format!("unit {unit_id}: {} results and no quorum yet; sending it to another worker", ballot.len()))?;
            } else {
                db.exec("UPDATE units SET state = 'failed', open_slots = 0, updated_at = ?1 WHERE id = ?2", [now(), unit_id])?;
                let message = format!("unit {unit_id}: {} results never reached a quorum of {quorum}", unit.results_made);
                self.end_job(db, job_id, JobState::Failed, Some(&message))?;
            }
            return Ok(());
        };
        let claim_id = claim.as_ref().map(|c| c.assignment_id);
        for vote in &ballot {
            let valid = vote.hash == winner;
            self.judge(db, vote, valid)?;
            if Some(vote.assignment_id) == claim_id {
                continue;
            }
            if valid {
                self.pay(db, job_id, unit_id, vote, unit.flops)?;
            }
        }
        db.exec(
            "UPDATE units SET state = 'done', canonical_hash = ?1, open_slots = 0, updated_at = ?2 WHERE id = ?3",
            params![winner, now(), unit_id],
        )?;
        // Replicas still running are no longer needed (only when there are any: this runs per report).
        let in_unit = ballot.len() - usize::from(claim_id.is_some());
        if (in_unit as i64) < unit.results_made {
            db.exec("UPDATE assignments SET state = 'cancelled' WHERE unit_id = ?1 AND state = 'running'", [unit_id])?;
        }
        if let (Some(train_unit), Some(claim)) = (unit.validates, claim) {
            self.settle_training(db, job_id, train_unit, &claim, claim.hash == winner)?;
        }
        Ok(())
    }

    /// Accepts the one result a unit of quorum 1 waits for: [`Self::decide`] without the ballot.
    pub(crate) fn accept_alone(&self, db: &Conn, a: &AssignmentRow, hash: &str) -> Result<()> {
        let vote = Vote { assignment_id: a.id, owner_id: a.owner_id, worker_id: a.worker_id, operator: false, hash: hash.to_string() };
        self.judge(db, &vote, true)?;
        self.pay(db, a.job_id, a.unit_id, &vote, a.flops)?;
        db.exec(
            "UPDATE units SET state = 'done', canonical_hash = ?1, open_slots = 0, updated_at = ?2 WHERE id = ?3 AND state = 'open'",
            params![hash, now(), a.unit_id],
        )?;
        Ok(())
    }

    /// The validation of a training claim is decided: pay and close the train unit, or reject the
    /// claim and train again elsewhere.
    fn settle_training(&self, db: &Conn, job_id: i64, train_unit: i64, claim: &Vote, confirmed: bool) -> Result<()> {
        let (flops, results_made, max_results, state): (f64, i64, i64, UnitState) =
            db.one("SELECT flops, results_made, max_results, state FROM units WHERE id = ?1", [train_unit], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, text_col(r, "state")?))
            })?;
        if !confirmed {
            self.log(
                db,
                job_id,
                &format!("training result of assignment {} was not reproduced by independent evaluations; rejected", claim.assignment_id),
            )?;
        }
        if state != UnitState::Open {
            return Ok(());
        }
        if confirmed {
            self.pay(db, job_id, train_unit, claim, flops)?;
            db.exec(
                "UPDATE units SET state = 'done', canonical_hash = ?1, open_slots = 0, updated_at = ?2 WHERE id = ?3",
                params![claim.hash, now(), train_unit],
            )?;
            self.log(db, job_id, &format!("training result of assignment {} confirmed by an independent evaluation", claim.assignment_id))?;
            return Ok(());
        }
        if results_made < max_results {
            db.exec("UPDATE units SET open_slots = open_slots + 1, updated_at = ?1 WHERE id = ?2", [now(), train_unit])?;
        } else {
            db.exec("UPDATE units SET state = 'failed', open_slots = 0 WHERE id = ?1", [train_unit])?;
            self.end_job(db, job_id, JobState::Failed, Some("no training result survived validation"))?;
        }
        Ok(())
    }

    /// Records a result's outcome and moves its host's trust.
    fn judge(&self, db: &Conn, vote: &Vote, valid: bool) -> Result<()> {
        let changed = db.exec(
            "UPDATE assignments SET outcome = ?1 WHERE id = ?2 AND outcome = 'pending'",
            params![if valid { Outcome::Valid } else { Outcome::Invalid }.as_str(), vote.assignment_id],
        )?;
        if changed == 0 {
            return Ok(());
        }
        let sql = if valid {
            "UPDATE workers SET consecutive_valid = consecutive_valid + 1, valid_results = valid_results + 1 WHERE id = ?1"
        } else {
            "UPDATE workers SET consecutive_valid = 0, invalid_results = invalid_results + 1 WHERE id = ?1"
        };
        db.exec(sql, [vote.worker_id])?;
        if !valid {
            tracing::warn!(assignment = vote.assignment_id, worker = vote.worker_id, "result rejected: it disagrees with the quorum");
        }
        Ok(())
    }

    /// Pays a validated result from the job's escrow (at most what is left in it), once.
    fn pay(&self, db: &Conn, job_id: i64, unit_id: i64, vote: &Vote, flops: f64) -> Result<()> {
        if credits_for(flops) == 0 {
            return Ok(());
        }
        let escrow = ledger::escrow_account(db, job_id)?;
        let left = ledger::balance(db, escrow)?;
        let amount = credits_for(flops).min(left);
        let to = ledger::user_account(db, vote.owner_id, self.config.starter_grant)?;
        let memo = format!("validated result of unit {unit_id} ({:.3} GFLOP)", flops / 1e9);
        let memo = Memo {
            kind: TransferKind::Payment,
            dedup_key: format!("payment:{}", vote.assignment_id),
            job_id: Some(job_id),
            unit_id: Some(unit_id),
            assignment_id: Some(vote.assignment_id),
            memo: &memo,
        };
        ledger::transfer(db, escrow, to, amount, memo)?;
        Ok(())
    }

    pub(crate) fn log(&self, db: &Conn, job_id: i64, line: &str) -> Result<()> {
        db.exec(
            "INSERT INTO unit_logs (job_id, assignment_id, line, created_at) VALUES (?1, NULL, ?2, ?3)",
            params![job_id, format!("[coordinator] {line}"), now()],
        )?;
        Ok(())
    }

    /// Sets queued / running / validating from the units' progress (one statement: it runs
    /// after every report).
    pub(crate) fn refresh_job_state(&self, db: &Conn, job_id: i64) -> Result<()> {
        db.exec(
            "WITH next AS (SELECT CASE
                 WHEN NOT EXISTS (SELECT 1 FROM units u WHERE u.job_id = ?1 AND u.state = 'open' AND u.validates_unit IS NULL
                        AND NOT EXISTS (SELECT 1 FROM assignments a WHERE a.unit_id = u.id AND a.state = 'reported' AND a.outcome <> 'invalid'))
                   THEN 'validating'
                 WHEN EXISTS (SELECT 1 FROM units u JOIN assignments a ON a.unit_id = u.id WHERE u.job_id = ?1) THEN 'running'
                 ELSE 'queued' END AS state)
             UPDATE jobs SET state = (SELECT state FROM next), updated_at = ?2
             WHERE id = ?1 AND state IN ('queued', 'running', 'validating') AND state <> (SELECT state FROM next)",
            [job_id, now()],
        )?;
        Ok(())
    }

    /// Finishes every job whose units are all decided. Safe to run concurrently and repeatedly.
    pub(crate) async fn finish_ready_jobs(&self) -> Result<()> {
        self.finish_jobs_if_ready(None).await
    }

    /// Finishes job `only` (or every job) if all its units are decided.
    pub(crate) async fn finish_jobs_if_ready(&self, only: Option<i64>) -> Result<()> {
        // Two statements rather than `($1 IS NULL OR id = $1)`, which no index serves.
        let sql = match only {
            Some(_) => "SELECT id FROM jobs j WHERE j.id = $1 AND j.state IN ('queued', 'running', 'validating') AND EXISTS (SELECT 1 FROM units u WHERE u.job_id = j.id)
               AND NOT EXISTS (SELECT 1 FROM units u WHERE u.job_id = j.id AND u.state IN ('open', 'failed', 'cancelled'))",
            None => "SELECT id FROM jobs j WHERE j.state IN ('queued', 'running', 'validating') AND EXISTS (SELECT 1 FROM units u WHERE u.job_id = j.id)
               AND NOT EXISTS (SELECT 1 FROM units u WHERE u.job_id = j.id AND u.state IN ('open', 'failed', 'cancelled'))",
        };
        let ready = sqlx::query(sql).bind(only).fetch_all(self.pool()).await?;
        for row in ready {
            let id: i64 = row.try_get("id")?;
            match self.finish_job(id).await {
                Ok(()) => {}
                // What the job published is gone or unusable (its output repository deleted, a
                // commit missing): retrying cannot help. The job fails and its escrow returns.
                Err(
                    e @ (ComputeError::Corrupt(_)
                    | ComputeError::Gone(_)
                    | ComputeError::Db(commons_db::DbError::RevisionNotFound(_) | commons_db::DbError::NotFound(_))),
                ) => {
                    let message = format!("the job's results could not be published: {e}");
                    tracing::warn!(job = id, %message, "job failed");
                    self.write(move |c, db| c.fail_if_active(db, id, &message)).await?;
                }
                Err(e) => tracing::warn!(job = id, error = %e, "finishing the job failed; will retry"),
            }
        }
        Ok(())
    }

    async fn finish_job(&self, job_id: i64) -> Result<()> {
        let spec: String = sqlx::query("SELECT spec FROM jobs WHERE id = $1").bind(job_id).fetch_one(self.pool()).await?.try_get("spec")?;
        let spec: commons_protocol::JobSpec = serde_json::from_str(&spec).map_err(|e| ComputeError::Corrupt(e.to_string()))?;
        let result = match &spec {
            commons_protocol::JobSpec::Noop { units } => json!({ "units": units }),
            commons_protocol::JobSpec::Eval { model, dataset, split, shards } => {
                let (outputs, workers) = self.accepted_per_unit(job_id).await?;
                let mut reports = Vec::with_capacity(outputs.len());
                for output in outputs {
                    let Output::Eval { metrics, .. } = output else {
                        return Err(ComputeError::Corrupt(format!("job {job_id}: an accepted result is not an evaluation")));
                    };
                    reports.push(
                        serde_json::from_value::<commons_recipe::EvalReport>(metrics)
                            .map_err(|e| ComputeError::Corrupt(format!("job {job_id}: {e}")))?,
                    );
                }
                let merged = if reports.len() == 1 {
                    reports.remove(0)
                } else {
                    commons_recipe::report::merge_reports(&reports).map_err(|e| ComputeError::Corrupt(format!("job {job_id}: {e}")))?
                };
                json!({ "metrics": merged, "shards": shards, "provenance": { "model": model, "dataset": dataset, "split": split, "agreed": workers } })
            }
            commons_protocol::JobSpec::Train { algorithm, recipe_path, dataset, output, points, .. } => {
                let repo_name = format!("{}/{output}", spec_owner(self, job_id).await?);
                let repo = self.existing_output_repo(&repo_name).await?;
                let mut published = Vec::new();
                for point in self.accepted_training(job_id).await? {
                    let Output::Train { model_commit, test, flops, epochs, wall_seconds } = point.output else {
                        return Err(ComputeError::Corrupt(format!("job {job_id}: an accepted training result is not a training")));
                    };
                    let provenance = json!({
                        "algorithm": algorithm, "recipe": recipe_path, "dataset": dataset, "overrides": point.overrides,
                        "trained_by": [point.trainer], "confirmed_by": point.validators, "job": job_id,
                    });
                    let branch = crate::unit_branch(job_id, point.assignment);
                    let revision = self.promote(job_id, &repo, &branch, &model_commit, point.reported_at, &test, &provenance).await?;
                    published.push(json!({
                        "model": { "repo": repo_name, "revision": revision, "trained_commit": model_commit, "branch": branch },
                        "test": test, "epochs": epochs, "flops": flops, "wall_seconds": wall_seconds, "provenance": provenance,
                    }));
                }
                // The best point (by test accuracy; the first on a tie) becomes `main`.
                let accuracy = |p: &Value| p["test"]["accuracy"].as_f64().unwrap_or(f64::NEG_INFINITY);
                let best = (0..published.len()).fold(None::<usize>, |best, i| match best {
                    Some(b) if accuracy(&published[b]) >= accuracy(&published[i]) => Some(b),
                    _ => Some(i),
                });
                let Some(best) = best else { return Err(ComputeError::Corrupt(format!("job {job_id}: no accepted training"))) };
                let revision = published[best]["model"]["revision"].as_str().unwrap_or_default().to_string();
                self.publish_main(&repo, &revision).await?;
                let keep: Vec<String> = published.iter().filter_map(|p| p["model"]["branch"].as_str().map(str::to_string)).collect();
                self.prune_branches(job_id, &repo, &keep).await?;
                let mut result = published[best].clone();
                if !points.is_empty() {
                    result["points"] = Value::Array(published.iter().map(|p| json!({
                        "overrides": p["provenance"]["overrides"], "test": { "accuracy": p["test"]["accuracy"], "loss": p["test"]["loss"] },
                        "revision": p["model"]["revision"], "branch": p["model"]["branch"],
                    })).collect());
                    result["best"] = json!(best);
                }
                result
            }
        };
        self.write(move |c, db| {
            let updated = db.exec(
                "UPDATE jobs SET result = ?1 WHERE id = ?2 AND state IN ('queued', 'running', 'validating')",
                params![result.to_string(), job_id],
            )?;
            if updated == 1 {
                c.end_job(db, job_id, JobState::Done, None)?;
                tracing::info!(job = job_id, "job done");
            }
            Ok(())
        })
        .await
    }

    /// Each accepted training of a job, in unit (sweep point) order, with its trainer and the
    /// workers whose evaluations confirmed it.
    async fn accepted_training(&self, job_id: i64) -> Result<Vec<AcceptedTraining>> {
        let rows = sqlx::query(
            "SELECT a.id, a.unit_id, a.output, a.reported_at, u.role, u.validates_unit, u.payload, w.name AS worker, w.engine_version, u2.name AS owner
             FROM assignments a JOIN units u ON u.id = a.unit_id JOIN workers w ON w.id = a.worker_id JOIN users u2 ON u2.id = a.owner_id
             WHERE u.job_id = $1 AND a.outcome = 'valid' ORDER BY a.unit_id, a.id",
        )
        .bind(job_id)
        .fetch_all(self.pool())
        .await?;
        let mut points: Vec<AcceptedTraining> = Vec::new();
        let mut validators: Vec<(i64, Value)> = Vec::new();
        for row in rows {
            let who = json!({
                "assignment": row.try_get::<i64, _>("id")?,
                "worker": row.try_get::<String, _>("worker")?,
                "owner": row.try_get::<String, _>("owner")?,
                "engine_version": row.try_get::<String, _>("engine_version")?,
            });
            match row.try_get::<Option<i64>, _>("validates_unit")? {
                Some(train_unit) => validators.push((train_unit, who)),
                None if stored::<Role>(row.try_get("role")?)? == Role::Train => {
                    let unit_id: i64 = row.try_get("unit_id")?;
                    if points.iter().any(|p| p.unit_id == unit_id) {
                        continue;
                    }
                    let stored = StoredWork::parse(row.try_get("payload")?, unit_id)?;
                    let overrides = match stored.work {
                        Work::Train { overrides, .. } => overrides,
                        _ => Vec::new(),
                    };
                    points.push(AcceptedTraining {
                        unit_id,
                        assignment: row.try_get("id")?,
                        reported_at: row.try_get::<Option<i64>, _>("reported_at")?.unwrap_or(0),
                        output: serde_json::from_str(row.try_get("output")?).map_err(|e| ComputeError::Corrupt(e.to_string()))?,
                        overrides,
                        trainer: who,
                        validators: Vec::new(),
                    });
                }
                None => {}
            }
        }
        for (train_unit, who) in validators {
            if let Some(point) = points.iter_mut().find(|p| p.unit_id == train_unit) {
                point.validators.push(who);
            }
        }
        Ok(points)
    }

    /// The accepted output of each unit of an evaluation job, in unit (shard) order, and the
    /// workers whose results agreed.
    async fn accepted_per_unit(&self, job_id: i64) -> Result<(Vec<Output>, Vec<Value>)> {
        let rows = sqlx::query(
            "SELECT a.unit_id, a.id, a.output, w.name AS worker, w.engine_version, u2.name AS owner FROM assignments a
             JOIN units u ON u.id = a.unit_id JOIN workers w ON w.id = a.worker_id JOIN users u2 ON u2.id = a.owner_id
             WHERE u.job_id = $1 AND a.outcome = 'valid' ORDER BY a.unit_id, a.id",
        )
        .bind(job_id)
        .fetch_all(self.pool())
        .await?;
        let mut outputs = Vec::new();
        let mut workers = Vec::new();
        let mut last_unit = None;
        for row in rows {
            let unit: i64 = row.try_get("unit_id")?;
            if last_unit != Some(unit) {
                let text: String = row.try_get("output")?;
                outputs.push(serde_json::from_str(&text).map_err(|e| ComputeError::Corrupt(e.to_string()))?);
                last_unit = Some(unit);
            }
            workers.push(json!({
                "unit": unit,
                "assignment": row.try_get::<i64, _>("id")?,
                "worker": row.try_get::<String, _>("worker")?,
                "owner": row.try_get::<String, _>("owner")?,
                "engine_version": row.try_get::<String, _>("engine_version")?,
            }));
        }
        Ok((outputs, workers))
    }

    /// Records a validated model: the coordinator's own commit on top of `model_commit`, the very
    /// commit the validators evaluated (never whatever heads its branch now), adding the
    /// validation record to the card and dropping training checkpoints; the unit branch is set
    /// to it. The commit depends only on its inputs (dated `time`), so a rerun after a crash
    /// makes the same commit. [`Self::publish_main`] then moves `main`.
    #[allow(clippy::too_many_arguments)]
    async fn promote(
        &self,
        job_id: i64,
        repo: &commons_db::Repo,
        branch: &str,
        model_commit: &str,
        time: i64,
        test: &Value,
        provenance: &Value,
    ) -> Result<String> {
        let title = format!("Validated by job {job_id}");
        let card = match self.repos.read_file(repo, model_commit, "README.md", 4 << 20).await? {
            Some(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            None => String::new(),
        };
        let card = format!("{card}\n{}", validation_section(job_id, test, provenance));
        let record = serde_json::to_vec_pretty(&json!({ "job": job_id, "test": test, "provenance": provenance })).unwrap_or_default();
        let mut changes = Vec::new();
        // Training checkpoints served their purpose: the published model does not carry them.
        if self.repos.tree(repo, model_commit).await?.iter().any(|f| f.path.starts_with("checkpoint/")) {
            changes.push(Change::DeleteFolder("checkpoint".into()));
        }
        for (path, bytes) in [("README.md", card.into_bytes()), ("validation.json", record)] {
            changes.push(Change::Put { path: path.into(), bytes });
        }
        let message = format!("Test metrics confirmed by an independent evaluation.\n\n{provenance}");
        let info = commons_db::CommitInfo { author: "commons", title: &title, message: &message };
        let validated = self.repos.commit_onto(repo, branch, model_commit, changes, &info, time).await?;
        tracing::info!(job = job_id, repo = %repo.full_name(), revision = %validated, %branch, "validated model");
        Ok(validated)
    }

    /// Deletes the job's unit branches other than `keep`: those of rejected claims and of workers
    /// that went silent, which hold only checkpoints or an unvalidated model.
    async fn prune_branches(&self, job_id: i64, repo: &commons_db::Repo, keep: &[String]) -> Result<()> {
        let prefix = format!("job-{job_id}-a");
        for r in self.repos.refs(repo).await? {
            if r.kind == RefKind::Branch && r.name.starts_with(&prefix) && !keep.contains(&r.name) {
                self.repos.delete_branch(repo, &r.name).await?;
            }
        }
        Ok(())
    }

    /// Moves `main` of the output repository to a validated revision.
    async fn publish_main(&self, repo: &commons_db::Repo, revision: &str) -> Result<()> {
        self.repos.move_branch(repo, "main", revision).await?;
        tracing::info!(repo = %repo.full_name(), %revision, "validated model published on main");
        Ok(())
    }
}

struct AcceptedTraining {
    unit_id: i64,
    assignment: i64,
    /// When the trainer reported: the date of the validation commit, so that commit is the same
    /// on every try.
    reported_at: i64,
    output: Output,
    overrides: Vec<String>,
    trainer: Value,
    validators: Vec<Value>,
}

async fn spec_owner(c: &Coordinator, job_id: i64) -> Result<String> {
    Ok(sqlx::query("SELECT u.name FROM jobs j JOIN users u ON u.id = j.owner_id WHERE j.id = $1")
        .bind(job_id)
        .fetch_one(c.pool())
        .await?
        .try_get("name")?)
}

/// The card section that records how a model's metrics were confirmed.
fn validation_section(job_id: i64, test: &Value, provenance: &Value) -> String {
    let pinned = |key: &str| provenance.get(key).and_then(|p| serde_json::from_value::<PinnedRepo>(p.clone()).ok());
    let mut s = format!("## Validation\n\nTrained and validated by Commons job {job_id}.\n\n");
    if let Some(a) = pinned("algorithm") {
        s += &format!("- Algorithm: `{}` at revision `{}`\n", a.repo, a.revision);
    }
    if let Some(d) = pinned("dataset") {
        s += &format!("- Dataset: `{}` at revision `{}`\n", d.repo, d.revision);
    }
    let names = |key: &str| {
        provenance
            .get(key)
            .and_then(Value::as_array)
            .map(|list| {
                list.iter()
                    .map(|w| {
                        format!(
                            "{} (owner {}, engine {})",
                            w["worker"].as_str().unwrap_or("?"),
                            w["owner"].as_str().unwrap_or("?"),
                            w["engine_version"].as_str().unwrap_or("?")
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default()
    };
    s += &format!("- Trained by: {}\n- Test metrics reproduced bit for bit by: {}\n", names("trained_by"), names("confirmed_by"));
    if let Some(accuracy) = test.get("accuracy").and_then(Value::as_f64) {
        s += &format!("- Confirmed test accuracy: {accuracy:.4}\n");
    }
    s
}
