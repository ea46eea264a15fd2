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

use crate::writer::params;
use commons_db::RefKind;
use commons_db::sql;
use commons_protocol::{Agreed, JobState, Outcome, Output, PinnedRepo, Role, UnitState, Verification, Work, credits_for, verification_of};
use commons_recipe::EvalReport;
use commons_repo::Change;
use serde_json::{Value, json};

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
            "SELECT job_id, state, quorum, open_slots, results_made, max_results, validates_unit, flops, payload FROM units WHERE id = ?1 /*pg: FOR UPDATE*/",
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
            db.one("SELECT flops, results_made, max_results, state FROM units WHERE id = ?1 /*pg: FOR UPDATE*/", [train_unit], |r| {
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
        let query = match only {
            Some(id) => sql::query(sql).bind(id),
            None => sql::query(sql),
        };
        let ready = query.fetch_all(self.pool()).await?;
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
        let spec: String = sql::query("SELECT spec FROM jobs WHERE id = $1").bind(job_id).fetch_one(self.pool()).await?.try_get("spec")?;
        let spec: commons_protocol::JobSpec = serde_json::from_str(&spec).map_err(|e| ComputeError::Corrupt(e.to_string()))?;
        // The validated results that go on the boards, in the transaction that finishes the job.
        let mut verified: Vec<Verified> = Vec::new();
        let result = match &spec {
            commons_protocol::JobSpec::Noop { units } => json!({ "units": units }),
            commons_protocol::JobSpec::Eval { model, dataset, split, shards, .. } => {
                let (outputs, agreed) = self.accepted_per_unit(job_id).await?;
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
                let workers: Vec<Value> = agreed
                    .iter()
                    .flat_map(|(unit, group)| group.iter().map(move |a| json!({ "unit": unit, "assignment": a.assignment, "worker": a.worker, "owner": a.owner, "engine_version": a.engine_version, "operator": a.operator })))
                    .collect();
                verified.push(Verified {
                    dataset: dataset.clone(),
                    split: split.clone(),
                    model: model.clone(),
                    algorithm: None,
                    recipe: None,
                    report: merged.clone(),
                    agreed: agreed.into_iter().map(|(_, group)| group).collect(),
                    paid_for: PaidFor::Job,
                });
                json!({ "metrics": merged, "shards": shards, "provenance": { "model": model, "dataset": dataset, "split": split, "agreed": workers } })
            }
            commons_protocol::JobSpec::Predict { model, dataset, split, output, .. } => {
                let owner = spec_owner(self, job_id).await?;
                let job = crate::predictions::PredictJob { model, dataset, split, output };
                self.publish_predictions(job_id, &owner, job).await?
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
                    match serde_json::from_value::<EvalReport>(test.clone()) {
                        Ok(report) => verified.push(Verified {
                            dataset: dataset.clone(),
                            split: "test".into(),
                            model: PinnedRepo { repo: repo_name.clone(), revision: revision.clone() },
                            algorithm: Some(algorithm.clone()),
                            recipe: Some(json!({ "path": recipe_path, "overrides": point.overrides })),
                            report,
                            agreed: vec![[vec![point.trainer.clone()], point.validators.clone()].concat()],
                            paid_for: PaidFor::TrainUnit(point.unit_id),
                        }),
                        Err(e) => tracing::warn!(job = job_id, error = %e, "a confirmed test report does not parse; it goes on no board"),
                    }
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
                for result in &verified {
                    record_board_entries(db, job_id, result)?;
                }
                c.end_job(db, job_id, JobState::Done, None)?;
                tracing::info!(job = job_id, "job done");
            }
            Ok(())
        })
        .await?;
        // The boards changed: pages of them read before the commit are stale.
        self.db.note_write();
        Ok(())
    }

    /// Each accepted training of a job, in unit (sweep point) order, with its trainer and the
    /// workers whose evaluations confirmed it.
    async fn accepted_training(&self, job_id: i64) -> Result<Vec<AcceptedTraining>> {
        let rows = sql::query(
            "SELECT a.id, a.unit_id, a.output, a.reported_at, u.role, u.validates_unit, u.payload, w.name AS worker, w.engine_version, w.operator_host, u2.name AS owner
             FROM assignments a JOIN units u ON u.id = a.unit_id JOIN workers w ON w.id = a.worker_id JOIN users u2 ON u2.id = a.owner_id
             WHERE u.job_id = $1 AND a.outcome = 'valid' ORDER BY a.unit_id, a.id",
        )
        .bind(job_id)
        .fetch_all(self.pool())
        .await?;
        let mut points: Vec<AcceptedTraining> = Vec::new();
        let mut validators: Vec<(i64, Agreed)> = Vec::new();
        for row in rows {
            let who = agreed_from_row(&row)?;
            match row.try_get::<Option<i64>, _>("validates_unit")? {
                Some(train_unit) => validators.push((train_unit, who)),
                None if stored::<Role>(row.try_get_str("role")?)? == Role::Train => {
                    let unit_id: i64 = row.try_get("unit_id")?;
                    if points.iter().any(|p| p.unit_id == unit_id) {
                        continue;
                    }
                    let stored = StoredWork::parse(row.try_get_str("payload")?, unit_id)?;
                    let overrides = match stored.work {
                        Work::Train { overrides, .. } => overrides,
                        _ => Vec::new(),
                    };
                    points.push(AcceptedTraining {
                        unit_id,
                        assignment: row.try_get("id")?,
                        reported_at: row.try_get::<Option<i64>, _>("reported_at")?.unwrap_or(0),
                        output: serde_json::from_str(row.try_get_str("output")?).map_err(|e| ComputeError::Corrupt(e.to_string()))?,
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
    /// workers whose results agreed, per unit.
    pub(crate) async fn accepted_per_unit(&self, job_id: i64) -> Result<(Vec<Output>, Vec<(i64, Vec<Agreed>)>)> {
        let rows = sql::query(
            "SELECT a.unit_id, a.id, a.output, w.name AS worker, w.engine_version, w.operator_host, u2.name AS owner FROM assignments a
             JOIN units u ON u.id = a.unit_id JOIN workers w ON w.id = a.worker_id JOIN users u2 ON u2.id = a.owner_id
             WHERE u.job_id = $1 AND a.outcome = 'valid' ORDER BY a.unit_id, a.id",
        )
        .bind(job_id)
        .fetch_all(self.pool())
        .await?;
        let mut outputs = Vec::new();
        let mut agreed: Vec<(i64, Vec<Agreed>)> = Vec::new();
        for row in rows {
            let unit: i64 = row.try_get("unit_id")?;
            if agreed.last().is_none_or(|(last, _)| *last != unit) {
                let text: String = row.try_get("output")?;
                outputs.push(serde_json::from_str(&text).map_err(|e| ComputeError::Corrupt(e.to_string()))?);
                agreed.push((unit, Vec::new()));
            }
            if let Some((_, group)) = agreed.last_mut() {
                group.push(agreed_from_row(&row)?);
            }
        }
        Ok((outputs, agreed))
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
        let text = match self.repos.read_file(repo, model_commit, "README.md", 4 << 20).await? {
            Some(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            None => String::new(),
        };
        // The task, from the recipe the validators ran (the model's own config.json).
        let task = match self.repos.read_file(repo, model_commit, "config.json", 4 << 20).await? {
            Some(bytes) => serde_json::from_slice::<commons_recipe::model_dir::ModelConfig>(&bytes)
                .ok()
                .and_then(|config| commons_recipe::recipe::parse(&config.recipe_toml, "config.json").ok())
                .map_or("other", |loaded| loaded.pipeline_tag()),
            None => "other",
        };
        let agreed: Vec<Agreed> = ["trained_by", "confirmed_by"]
            .iter()
            .flat_map(|key| serde_json::from_value::<Vec<Agreed>>(provenance[key].clone()).unwrap_or_default())
            .collect();
        let (kind, workers, owners) = verification_of(&agreed);
        let verification = commons_protocol::verification_text(kind, workers, owners, &agreed);
        // The trainer wrote the card: whatever `model-index` it claimed is replaced by the
        // validated one (a card that does not parse keeps its text as the body).
        let mut card = commons_card::Card::parse(&text).unwrap_or(commons_card::Card { metadata: Default::default(), body: text.clone() });
        if let Ok(report) = serde_json::from_value::<EvalReport>(test.clone()) {
            let dataset = provenance.get("dataset").and_then(|d| serde_json::from_value::<PinnedRepo>(d.clone()).ok());
            card.metadata.insert("model-index".into(), model_index(&repo.name, task, dataset.as_ref(), &report, kind));
        }
        card.body.push_str(&format!("\n{}", validation_section(job_id, test, provenance, &verification)));
        let card = card.render().map_err(|e| ComputeError::Corrupt(format!("model card of {}: {e}", repo.full_name())))?;
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
    trainer: Agreed,
    validators: Vec<Agreed>,
}

fn agreed_from_row(row: &sql::Row) -> Result<Agreed> {
    Ok(Agreed {
        assignment: row.try_get("id")?,
        worker: row.try_get("worker")?,
        owner: row.try_get("owner")?,
        engine_version: row.try_get("engine_version")?,
        operator: row.try_get("operator_host")?,
    })
}

/// A validated result to put on the boards: what was scored on what, by whom, paid how.
struct Verified {
    dataset: PinnedRepo,
    split: String,
    model: PinnedRepo,
    algorithm: Option<PinnedRepo>,
    recipe: Option<Value>,
    report: EvalReport,
    /// The workers that agreed, per unit that produced the result (one per shard of an
    /// evaluation; the claim and its evaluators for a training).
    agreed: Vec<Vec<Agreed>>,
    paid_for: PaidFor,
}

/// Which units' payments the result cost.
enum PaidFor {
    /// Every unit of the job (an evaluation).
    Job,
    /// A train unit and the evaluations that validated it (one point of a training job).
    TrainUnit(i64),
}

/// How a result agreed on unit by unit was verified: as its least verified unit (one shard
/// attested by one owner makes the whole attested), with the distinct workers of all units.
fn verified_by(groups: &[Vec<Agreed>]) -> (Verification, usize, usize) {
    let (_, workers, _) = verification_of(&groups.concat());
    match groups.iter().map(|g| verification_of(g)).min_by_key(|(_, _, owners)| *owners) {
        Some((kind, _, owners)) => (kind, workers, owners),
        None => (Verification::Attested, 0, 0),
    }
}

/// Writes one board entry per scalar metric of a validated result (inside the transaction that
/// finishes its job, so a board never shows a job that is not done). A result whose model,
/// dataset or algorithm repository is gone by now goes on no board.
fn record_board_entries(db: &Conn, job_id: i64, result: &Verified) -> Result<()> {
    let repo_id = |kind: &str, full_name: &str| -> Result<Option<i64>> {
        let Some((namespace, name)) = full_name.split_once('/') else { return Ok(None) };
        db.maybe("SELECT id FROM repos WHERE kind = ?1 AND namespace = ?2 AND name = ?3", params![kind, namespace, name], |r| r.get(0))
    };
    let (Some(dataset_id), Some(model_id)) = (repo_id("dataset", &result.dataset.repo)?, repo_id("model", &result.model.repo)?) else {
        return Ok(());
    };
    let algorithm_id = match &result.algorithm {
        Some(algorithm) => match repo_id("algorithm", &algorithm.repo)? {
            Some(id) => Some(id),
            None => return Ok(()),
        },
        None => None,
    };
    let credits: i64 = match result.paid_for {
        PaidFor::Job => db.one(
            "SELECT CAST(COALESCE(SUM(e.amount), 0) AS BIGINT) FROM ledger_transfers t JOIN ledger_entries e ON e.transfer_id = t.id
              WHERE t.job_id = ?1 AND t.kind = 'payment' AND e.amount > 0",
            [job_id],
            |r| r.get(0),
        )?,
        PaidFor::TrainUnit(unit) => db.one(
            "SELECT CAST(COALESCE(SUM(e.amount), 0) AS BIGINT) FROM ledger_transfers t JOIN ledger_entries e ON e.transfer_id = t.id
               JOIN units u ON u.id = t.unit_id
              WHERE t.job_id = ?1 AND t.kind = 'payment' AND e.amount > 0 AND (u.id = ?2 OR u.validates_unit = ?2)",
            [job_id, unit],
            |r| r.get(0),
        )?,
    };
    let (kind, workers, owners) = verified_by(&result.agreed);
    let scalars = result.report.scalars();
    let metrics: serde_json::Map<String, Value> = scalars.iter().map(|s| (s.name.to_string(), json!(s.value))).collect();
    let metrics = Value::Object(metrics).to_string();
    let agreed = serde_json::to_string(&result.agreed.concat()).map_err(|e| ComputeError::Corrupt(e.to_string()))?;
    let recipe = result.recipe.as_ref().map(Value::to_string);
    for scalar in &scalars {
        db.exec(
            "INSERT INTO board_entries (job_id, dataset_repo_id, dataset_commit, split, metric, value, higher_is_better, model_repo_id,
                model_commit, algorithm_repo_id, algorithm_commit, recipe, metrics, verification, agreed, workers, owners, credits, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19) ON CONFLICT DO NOTHING",
            params![
                job_id,
                dataset_id,
                result.dataset.revision,
                result.split,
                scalar.name,
                scalar.value,
                scalar.higher_is_better,
                model_id,
                result.model.revision,
                algorithm_id,
                result.algorithm.as_ref().map(|a| a.revision.as_str()),
                recipe,
                metrics,
                kind.as_str(),
                agreed,
                workers as i64,
                owners as i64,
                credits,
                now(),
            ],
        )?;
    }
    Ok(())
}

async fn spec_owner(c: &Coordinator, job_id: i64) -> Result<String> {
    Ok(sql::query("SELECT u.name FROM jobs j JOIN users u ON u.id = j.owner_id WHERE j.id = $1")
        .bind(job_id)
        .fetch_one(c.pool())
        .await?
        .try_get("name")?)
}

/// The card's `model-index` (the Hugging Face Hub's evaluation results, which
/// `huggingface_hub.ModelCard` reads as `EvalResult`s): the validated test metrics, marked
/// `verified` only when workers of two or more owners reproduced them.
fn model_index(name: &str, task: &str, dataset: Option<&PinnedRepo>, report: &EvalReport, kind: Verification) -> Value {
    let metrics: Vec<Value> = report
        .scalars()
        .iter()
        .map(|s| json!({ "type": s.name, "value": s.value, "name": format!("test {}", s.name.replace('_', " ")), "verified": kind == Verification::Reproduced }))
        .collect();
    let dataset = match dataset {
        Some(d) => json!({ "name": d.repo, "type": d.repo, "split": "test", "revision": d.revision }),
        None => json!({ "name": "unknown", "type": "unknown", "split": "test" }),
    };
    json!([{ "name": name, "results": [{ "task": { "type": task }, "dataset": dataset, "metrics": metrics }] }])
}

/// The card section that records how a model's metrics were confirmed.
fn validation_section(job_id: i64, test: &Value, provenance: &Value, verification: &str) -> String {
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
    s += &format!("- Trained by: {}\n- Evaluated on the test split by: {}\n", names("trained_by"), names("confirmed_by"));
    s += &format!("- Verification: {verification}\n");
    if let Some(accuracy) = test.get("accuracy").and_then(Value::as_f64) {
        s += &format!("- Confirmed test accuracy: {accuracy:.4}\n");
    }
    s
}
