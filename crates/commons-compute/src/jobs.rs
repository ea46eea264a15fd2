//! Jobs: submission (inputs pinned, recipe checked, cost estimated and escrowed), what people
//! see of them, and cancellation.

use std::collections::HashMap;

use crate::writer::params;
use commons_db::sql;
use commons_db::{Repo, RepoKind, Token};
use commons_protocol::{
    AssignmentView, CreditsView, EpochPoint, JobRequest, JobSpec, JobState, JobView, LedgerDump, LogLine, PinnedRepo, Role, UnitState,
    UnitView, Work, credits_for,
};
use commons_recipe::cost;
use commons_recipe::recipe::{LoadedRecipe, RecipeKind};
use commons_repo::RepoError;

use crate::error::{ComputeError, Result};
use crate::ledger::{self, Memo, TransferKind};
use crate::units::{
    Needs, NeedsKind, NewUnit, NewUnitRef, Party, REJECTED_TRAINERS, RESULTS_IN_PLAY, StoredWork, VALIDATION_MAX_RESULTS, WorkerRow,
    insert_unit,
};
use crate::writer::{Conn, Sql, postgres_dialect, text_col};
use crate::{Coordinator, now, stored};

/// Vocabulary size assumed when pricing a text recipe that leaves it to the data.
const DEFAULT_VOCAB: usize = 20_000;
/// Most shards one evaluation may be split into.
const MAX_SHARDS: usize = 256;
/// Largest card, recipe or config the coordinator reads from a repository.
const SMALL_FILE_LIMIT: u64 = 4 * 1024 * 1024;

impl Coordinator {
    /// Submits a job for `owner`: pins every input to a commit, checks the recipe, escrows the
    /// estimated cost and queues the units. Nothing is written when any check fails.
    pub async fn submit(&self, owner: &Token, request: JobRequest) -> Result<JobView> {
        let (spec, units, escrow) = match request {
            JobRequest::Train { algorithm, dataset, overrides, output, sweep, gpu } => {
                let (mut spec, units, escrow) = self.plan_train(owner, &algorithm, &dataset, overrides, output, &sweep).await?;
                spec.ask_for_gpu(gpu);
                (spec, units, escrow)
            }
            JobRequest::Eval { model, dataset, split, shards, gpu } => {
                let (mut spec, units, escrow) = self.plan_eval(owner, &model, &dataset, split, shards.unwrap_or(1)).await?;
                spec.ask_for_gpu(gpu);
                (spec, units, escrow)
            }
            JobRequest::Predict { model, dataset, split, shards, output, gpu } => {
                let (mut spec, units, escrow) = self.plan_predict(owner, &model, &dataset, split, shards, output).await?;
                spec.ask_for_gpu(gpu);
                (spec, units, escrow)
            }
        };
        // Check affordability before creating the output repository, then again under the lock.
        let owner_id = owner.user.id;
        self.write(move |c, db| {
            let account = ledger::user_account(db, owner_id, c.config.starter_grant)?;
            let balance = ledger::balance(db, account)?;
            if balance < escrow {
                return Err(ComputeError::InsufficientCredits { needed: escrow, balance });
            }
            Ok(())
        })
        .await?;
        match &spec {
            JobSpec::Train { output, .. } => {
                self.repos.ensure(RepoKind::Model, &owner.user.name, output, &owner.user.name).await?;
            }
            // Created now, so a name that cannot be a repository fails the submission, not the
            // finished job.
            JobSpec::Predict { output, .. } => {
                self.repos.ensure(RepoKind::Dataset, &owner.user.name, output, &owner.user.name).await?;
            }
            JobSpec::Eval { .. } | JobSpec::Noop { .. } => {}
        }
        let id = self.create_job(owner.user.id, &spec, escrow, units).await?;
        tracing::info!(job = id, owner = %owner.user.name, escrow, "job submitted");
        self.job_view(id).await
    }

    /// Queues a job of `units` units that do nothing, owned by `owner_id`: the dispatch benchmark
    /// measures the coordinator with it.
    pub async fn submit_noop(&self, owner_id: i64, units: usize) -> Result<i64> {
        self.submit_noop_replicated(owner_id, units, 1, 0.0, 0).await
    }

    /// [`Self::submit_noop`] with units that each want `quorum` agreeing results, each worth
    /// `flops`, paid from an escrow of `escrow` credits for as long as it lasts: the tests of
    /// coordinators deciding and paying at once use it.
    pub async fn submit_noop_replicated(&self, owner_id: i64, units: usize, quorum: i64, flops: f64, escrow: i64) -> Result<i64> {
        let unit = || NewUnit {
            role: Role::Noop,
            stored: StoredWork { work: Work::Noop, validation_flops: None, claim: None },
            quorum,
            open_slots: quorum,
            max_results: quorum,
            flops,
        };
        self.create_job(owner_id, &JobSpec::Noop { units }, escrow, (0..units).map(|_| unit()).collect()).await
    }

    async fn create_job(&self, owner_id: i64, spec: &JobSpec, escrow: i64, units: Vec<NewUnit>) -> Result<i64> {
        let spec_json = serde_json::to_string(spec).map_err(|e| ComputeError::Corrupt(e.to_string()))?;
        let needs_gpu = spec.needs_gpu();
        let kind = match spec {
            JobSpec::Train { .. } => Role::Train.as_str(),
            JobSpec::Eval { .. } => Role::Eval.as_str(),
            JobSpec::Predict { .. } => Role::Predict.as_str(),
            JobSpec::Noop { .. } => Role::Noop.as_str(),
        };
        let job_id = self
            .write(move |c, db| {
                let account = ledger::user_account(db, owner_id, c.config.starter_grant)?;
                let t = now();
                let job_id: i64 = db.one(
                    "INSERT INTO jobs (owner_id, kind, spec, state, escrow, created_at, updated_at, needs_gpu)
                     VALUES (?1, ?2, ?3, 'queued', ?4, ?5, ?5, ?6) RETURNING id",
                    params![owner_id, kind, spec_json, escrow, t, needs_gpu],
                    |r| r.get(0),
                )?;
                // The submitter's fair-share row, which leases only update (they insert nothing:
                // two inserting the same key would wait for each other, see `writer::Lock::Rows`).
                db.exec("INSERT INTO compute_owners (owner_id, last_served) VALUES (?1, 0) ON CONFLICT (owner_id) DO NOTHING", [owner_id])?;
                let escrow_account = ledger::escrow_account(db, job_id)?;
                let memo = Memo {
                    kind: TransferKind::Escrow,
                    dedup_key: format!("escrow:{job_id}"),
                    job_id: Some(job_id),
                    unit_id: None,
                    assignment_id: None,
                    memo: "estimated cost held for the job",
                };
                ledger::transfer(db, account, escrow_account, escrow, memo)?;
                for unit in &units {
                    insert_unit(db, job_id, &NewUnitRef::from(unit), None, c.config.max_errors)?;
                }
                Ok(job_id)
            })
            .await?;
        self.wake.notify_waiters();
        Ok(job_id)
    }

    async fn plan_train(
        &self,
        owner: &Token,
        algorithm: &str,
        dataset: &str,
        overrides: Vec<String>,
        output: Option<String>,
        sweep: &[String],
    ) -> Result<(JobSpec, Vec<NewUnit>, i64)> {
        let (algorithm_repo, algorithm) = self.pin(owner, RepoKind::Algorithm, algorithm).await?;
        let (dataset_repo, dataset) = self.pin(owner, RepoKind::Dataset, dataset).await?;
        let recipe_path = self.find_recipe(&algorithm_repo, &algorithm.revision).await?;
        let text = self.read_text(&algorithm_repo, &algorithm.revision, &recipe_path).await?.unwrap_or_default();
        let origin = format!("{}/{recipe_path}", algorithm.display());
        let base = commons_recipe::recipe::parse(&text, &origin).map_err(|e| ComputeError::invalid_recipe(e.to_string()))?;
        let points = sweep_points(sweep)?;
        // Every point is checked and priced before anything is written.
        let mut priced = Vec::with_capacity(points.len());
        for point in &points {
            let settings: Vec<String> = overrides.iter().chain(point).cloned().collect();
            let loaded =
                commons_recipe::recipe::with_overrides(&base, &settings).map_err(|e| ComputeError::invalid_recipe(e.to_string()))?;
            check_runnable(&loaded)?;
            let plan = cost::plan_from_recipe(&loaded, DEFAULT_VOCAB).map_err(|e| ComputeError::invalid_recipe(e.to_string()))?;
            let sizes = self.split_sizes(&dataset_repo, &dataset.revision, &loaded).await?;
            let train_flops = cost::training_flops(&plan, sizes.train, loaded.recipe.training.epochs as u64, sizes.test);
            priced.push((settings, train_flops, cost::evaluation_flops(&plan, sizes.test)));
        }
        let output = output.unwrap_or_else(|| {
            let name = format!("{}-{}", algorithm_repo.name, dataset_repo.name);
            name.chars().take(96).collect()
        });
        commons_repo::names::validate_repo_name(&output, "output repository name")?;
        if self.repos.find_as_system(RepoKind::Model, &owner.user.name, &output).await?.is_some_and(|r| r.private) {
            return Err(ComputeError::bad_request(format!(
                "output repository {}/{output} is private: the workers that validate the model must be able to read it",
                owner.user.name
            )));
        }
        let mut escrow = 0i64;
        let mut units = Vec::with_capacity(priced.len());
        for (settings, train_flops, validation_flops) in priced {
            // Room for one retrained model and the validations that may take to agree.
            let point = credits_for(train_flops)
                .checked_mul(2)
                .and_then(|t| VALIDATION_MAX_RESULTS.checked_mul(credits_for(validation_flops))?.checked_add(t));
            escrow = point.and_then(|p| escrow.checked_add(p)).ok_or_else(too_expensive)?;
            let work = Work::Train {
                algorithm: algorithm.clone(),
                recipe_path: recipe_path.clone(),
                dataset: dataset.clone(),
                overrides: settings,
                output_repo: format!("{}/{output}", owner.user.name),
                // Filled in per assignment at lease time.
                output_branch: String::new(),
                resume: None,
            };
            units.push(NewUnit {
                role: Role::Train,
                stored: StoredWork { work, validation_flops: Some(validation_flops), claim: None },
                quorum: 1,
                open_slots: 1,
                max_results: 2,
                flops: train_flops,
            });
        }
        let points = if sweep.is_empty() { Vec::new() } else { points };
        let spec = JobSpec::Train { algorithm, recipe_path, dataset, overrides, output, points, gpu: false };
        Ok((spec, units, escrow))
    }

    async fn plan_eval(
        &self,
        owner: &Token,
        model: &str,
        dataset: &str,
        split: String,
        shards: usize,
    ) -> Result<(JobSpec, Vec<NewUnit>, i64)> {
        check_shards(shards)?;
        let scoring = self.plan_scoring(owner, model, dataset, &split).await?;
        let (units, escrow) = scoring.units(shards, self.config.max_results, Role::Eval, |shard| Work::Eval {
            model: scoring.model.clone(),
            dataset: scoring.dataset.clone(),
            split: split.clone(),
            shard,
        })?;
        let Scoring { model, dataset, .. } = scoring;
        Ok((JobSpec::Eval { model, dataset, split, shards, gpu: false }, units, escrow))
    }

    /// Batch inference: the examples of a split in units of at most
    /// [`PREDICTIONS_PER_UNIT`] (or `shards` of them), each predicted by two workers who must
    /// agree bit for bit; the predictions go to the dataset repository `output` of the owner.
    async fn plan_predict(
        &self,
        owner: &Token,
        model: &str,
        dataset: &str,
        split: String,
        shards: Option<usize>,
        output: Option<String>,
    ) -> Result<(JobSpec, Vec<NewUnit>, i64)> {
        if let Some(shards) = shards {
            check_shards(shards)?;
        }
        let scoring = self.plan_scoring(owner, model, dataset, &split).await?;
        if scoring.kind != RecipeKind::Classification {
            return Err(ComputeError::bad_request(format!(
                "{} is a {:?} model, not a classifier: batch inference predicts a class for each example",
                scoring.model.display(),
                scoring.kind
            )));
        }
        let needed = scoring.examples.div_ceil(PREDICTIONS_PER_UNIT as u64).max(1) as usize;
        let shards = match shards {
            Some(shards) if shards < needed => {
                return Err(ComputeError::bad_request(format!(
                    "{} examples in {shards} shards is more than {PREDICTIONS_PER_UNIT} a shard: use at least {needed}",
                    scoring.examples
                )));
            }
            Some(shards) => shards,
            None if needed > MAX_SHARDS => {
                return Err(ComputeError::bad_request(format!(
                    "{} examples need {needed} units of at most {PREDICTIONS_PER_UNIT}; a job holds at most {MAX_SHARDS}",
                    scoring.examples
                )));
            }
            None => needed,
        };
        let output = output.unwrap_or_else(|| {
            let short = scoring.model.repo.rsplit('/').next().unwrap_or_default();
            format!("{short}-{split}-predictions").chars().take(96).collect()
        });
        commons_repo::names::validate_repo_name(&output, "output repository name")?;
        let (units, escrow) = scoring.units(shards, self.config.max_results, Role::Predict, |shard| Work::Predict {
            model: scoring.model.clone(),
            dataset: scoring.dataset.clone(),
            split: split.clone(),
            shard,
        })?;
        let Scoring { model, dataset, .. } = scoring;
        Ok((JobSpec::Predict { model, dataset, split, shards, output, gpu: false }, units, escrow))
    }

    /// What running a model over a split costs, for evaluation and batch inference: the model
    /// and dataset pinned, the recipe its `config.json` names checked, the split's examples
    /// counted and each priced.
    async fn plan_scoring(&self, owner: &Token, model: &str, dataset: &str, split: &str) -> Result<Scoring> {
        if !matches!(split, "train" | "validation" | "test") {
            return Err(ComputeError::bad_request(format!("unknown split {split:?}: use train, validation or test")));
        }
        let (model_repo, model) = self.pin(owner, RepoKind::Model, model).await?;
        let (dataset_repo, dataset) = self.pin(owner, RepoKind::Dataset, dataset).await?;
        let config = self.read_text(&model_repo, &model.revision, "config.json").await?.ok_or_else(|| {
            ComputeError::bad_request(format!(
                "model {} has no config.json: a model is run with the recipe its config.json names (commons-engine models, and ONNX models beside one)",
                model.display()
            ))
        })?;
        let config: commons_recipe::model_dir::ModelConfig = serde_json::from_str(&config).map_err(|e| {
            ComputeError::bad_request(format!("config.json of {} is not a commons-engine model config: {e}", model.display()))
        })?;
        let loaded = commons_recipe::recipe::parse(&config.recipe_toml, &format!("{}/config.json", model.display()))
            .map_err(|e| ComputeError::invalid_recipe(e.to_string()))?;
        check_runnable(&loaded)?;
        let plan = cost::plan_from_recipe(&loaded, config.vocabulary.as_ref().map(|v| v.len()).unwrap_or(DEFAULT_VOCAB))
            .map_err(|e| ComputeError::invalid_recipe(e.to_string()))?;
        // An ONNX model's network is its graph (`model.onnx`, no `model.safetensors`), not its
        // recipe's layers, and the coordinator does not compile graphs: each example is priced
        // at no less than two operations per float the file holds (exact for dense layers; a
        // convolution's reuse of its weights costs more than this floor says).
        let onnx_floor = match self.repos.file(&model_repo, &model.revision, "model.safetensors").await? {
            Some(_) => 0.0,
            None => self.repos.file(&model_repo, &model.revision, "model.onnx").await?.map_or(0.0, |f| 2.0 * (f.size.max(0) as f64 / 4.0)),
        };
        let sizes = self.split_sizes(&dataset_repo, &dataset.revision, &loaded).await?;
        let examples = match split {
            "train" => sizes.train,
            "validation" => (sizes.train as f64 * loaded.recipe.data.validation_fraction) as u64,
            _ => sizes.test,
        };
        Ok(Scoring { model, dataset, kind: loaded.recipe.kind, plan, onnx_floor, examples })
    }

    /// Resolves `namespace/name[@revision]` to a commit the caller may read. Private and gated
    /// repositories are refused: volunteer workers fetch inputs without the submitter's
    /// credentials.
    async fn pin(&self, caller: &Token, kind: RepoKind, reference: &str) -> Result<(Repo, PinnedRepo)> {
        let (name, revision) = reference.split_once('@').unwrap_or((reference, "main"));
        let Some((namespace, short)) = name.split_once('/') else {
            return Err(ComputeError::bad_request(format!(
                "{reference:?} is not a {} reference: write namespace/name[@revision]",
                kind.as_str()
            )));
        };
        let repo = match self.repos.find(kind, namespace, short, commons_repo::access::reader(Some(caller))).await {
            Ok(repo) => repo,
            Err(RepoError::RepoNotFound(_)) => {
                return Err(ComputeError::not_found("RepoNotFound", format!("{} repository {name} not found", kind.as_str())));
            }
            Err(e) => return Err(e.into()),
        };
        if repo.private {
            return Err(ComputeError::bad_request(format!(
                "{name} is private: jobs run on volunteers' machines, which read their inputs as anonymous clients; make it public first"
            )));
        }
        // A gated repository's files go only to those granted access, which volunteers are not.
        if repo.gated.is_some() {
            return Err(ComputeError::bad_request(format!(
                "{name} is gated: jobs run on volunteers' machines, which read their inputs as anonymous clients; remove the gate first"
            )));
        }
        let commit = self.repos.pin(&repo, revision).await.map_err(|e| match e {
            RepoError::RevisionNotFound(_) => ComputeError::not_found(
                "RevisionNotFound",
                format!("revision {revision:?} not found in {} repository {name}", kind.as_str()),
            ),
            other => other.into(),
        })?;
        Ok((repo, PinnedRepo { repo: name.to_string(), revision: commit }))
    }

    async fn read_text(&self, repo: &Repo, commit: &str, path: &str) -> Result<Option<String>> {
        let Some(bytes) = self.repos.read_file(repo, commit, path, SMALL_FILE_LIMIT).await? else { return Ok(None) };
        String::from_utf8(bytes)
            .map(Some)
            .map_err(|_| ComputeError::bad_request(format!("{path} in {} is not UTF-8 text", repo.full_name())))
    }

    /// `recipe.toml` at the root of an algorithm repo, or its only `.toml` file.
    async fn find_recipe(&self, repo: &Repo, commit: &str) -> Result<String> {
        let tree = self.repos.tree(repo, commit).await?;
        if tree.iter().any(|f| f.path == "recipe.toml") {
            return Ok("recipe.toml".into());
        }
        let tomls: Vec<&str> = tree.iter().map(|f| f.path.as_str()).filter(|p| p.ends_with(".toml") && !p.contains('/')).collect();
        match tomls.as_slice() {
            [one] => Ok(one.to_string()),
            [] => Err(ComputeError::bad_request(format!("algorithm {} has no recipe.toml", repo.full_name()))),
            many => Err(ComputeError::bad_request(format!(
                "algorithm {} has several recipes ({}); name one recipe.toml",
                repo.full_name(),
                many.join(", ")
            ))),
        }
    }

    /// A job with its units and their assignments.
    pub async fn job_view(&self, id: i64) -> Result<JobView> {
        let row = sql::query(
            "SELECT j.id, u.name AS owner, j.state, j.spec, j.escrow, j.result, j.error, j.created_at, j.updated_at
             FROM jobs j JOIN users u ON u.id = j.owner_id WHERE j.id = $1",
        )
        .bind(id)
        .fetch_optional(self.pool())
        .await?
        .ok_or_else(|| ComputeError::not_found("JobNotFound", format!("job {id} not found")))?;
        let spec: JobSpec =
            serde_json::from_str(row.try_get_str("spec")?).map_err(|e| ComputeError::Corrupt(format!("job {id} spec: {e}")))?;
        let result: Option<String> = row.try_get("result")?;
        let paid = ledger::job_total(self.pool(), id, TransferKind::Payment).await?;
        let refunded = ledger::job_total(self.pool(), id, TransferKind::Refund).await?;
        Ok(JobView {
            id,
            owner: row.try_get("owner")?,
            state: stored(row.try_get_str("state")?)?,
            spec,
            escrow: row.try_get("escrow")?,
            paid,
            refunded,
            result: result.and_then(|r| serde_json::from_str(&r).ok()),
            error: row.try_get("error")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
            units: self.unit_views(id).await?,
        })
    }

    async fn unit_views(&self, job_id: i64) -> Result<Vec<UnitView>> {
        let assignments = sql::query(
            // A batch inference's outputs are its predictions (up to `MAX_PREDICTIONS_PER_UNIT`
            // rows each): the view shows their hash, so it costs what the job's shape does, not
            // what its data does. The predictions themselves are in the output repository.
            "SELECT a.id, a.unit_id, a.worker_id, w.name AS worker, u.name AS owner, a.state, a.outcome, a.progress, a.epochs,
                    CASE WHEN un.role = 'predict' THEN NULL ELSE a.output END AS output, un.role, a.output_hash, a.error,
                    a.created_at, a.reported_at
             FROM assignments a JOIN workers w ON w.id = a.worker_id JOIN users u ON u.id = a.owner_id JOIN units un ON un.id = a.unit_id
             WHERE un.job_id = $1 ORDER BY a.id",
        )
        .bind(job_id)
        .fetch_all(self.pool())
        .await?;
        let mut by_unit: HashMap<i64, Vec<AssignmentView>> = HashMap::new();
        for row in &assignments {
            let json = |column: &str| -> Result<Option<serde_json::Value>> {
                let text: Option<String> = row.try_get(column)?;
                Ok(text.and_then(|t| serde_json::from_str(&t).ok()))
            };
            let epochs: Vec<EpochPoint> = json("epochs")?.and_then(|v| serde_json::from_value(v).ok()).unwrap_or_default();
            by_unit.entry(row.try_get("unit_id")?).or_default().push(AssignmentView {
                id: row.try_get("id")?,
                worker_id: row.try_get("worker_id")?,
                worker: row.try_get("worker")?,
                owner: row.try_get("owner")?,
                state: stored(row.try_get_str("state")?)?,
                outcome: stored(row.try_get_str("outcome")?)?,
                progress: json("progress")?.and_then(|v| serde_json::from_value(v).ok()),
                epochs,
                output: match stored::<Role>(row.try_get_str("role")?)? {
                    Role::Predict => {
                        let hash: Option<String> = row.try_get("output_hash")?;
                        hash.map(|hash| serde_json::json!({ "role": "predict", "output_hash": hash }))
                    }
                    _ => json("output")?,
                },
                error: row.try_get("error")?,
                created_at: row.try_get("created_at")?,
                reported_at: row.try_get("reported_at")?,
            });
        }
        let units = sql::query(
            "SELECT id, role, state, quorum, open_slots, payload, validates_unit, flops, errors, last_error, checkpoint FROM units WHERE job_id = $1 ORDER BY id",
        )
        .bind(job_id)
        .fetch_all(self.pool())
        .await?;
        let needs_gpu: bool =
            sql::query("SELECT needs_gpu FROM jobs WHERE id = $1").bind(job_id).fetch_one(self.pool()).await?.try_get(0)?;
        // The online workers, and those of them this job's units may go to: read once, when
        // the first unit waiting for a worker is met.
        let mut workers: Option<(Vec<WorkerRow>, Vec<WorkerRow>)> = None;
        let mut views = Vec::with_capacity(units.len());
        for row in &units {
            let id: i64 = row.try_get("id")?;
            let flops: f64 = row.try_get("flops")?;
            let mut waiting = None;
            let role: Role = stored(row.try_get_str("role")?)?;
            let state: UnitState = stored(row.try_get_str("state")?)?;
            if state == UnitState::Open && row.try_get::<i64, _>("open_slots")? > 0 {
                if workers.is_none() {
                    let online = self.online_workers().await?;
                    let takers = online.iter().filter(|w| w.serves(needs_gpu)).cloned().collect();
                    workers = Some((online, takers));
                }
                let (online, takers) = workers.as_ref().map(|(o, t)| (&o[..], &t[..])).unwrap_or_default();
                waiting = if needs_gpu && takers.is_empty() && !online.is_empty() {
                    Some(format!(
                        "waiting for a worker with a GPU (the job asks for one); none of the {} online workers offers one",
                        online.len()
                    ))
                } else {
                    let had: Vec<i64> = by_unit.get(&id).map(|a| a.iter().map(|a| a.worker_id).collect()).unwrap_or_default();
                    let claim = StoredWork::parse(row.try_get_str("payload")?, id)?.claim;
                    self.why_waiting(id, role, row.try_get("quorum")?, claim, &had, takers).await?
                };
            }
            views.push(UnitView {
                id,
                role,
                state,
                quorum: row.try_get("quorum")?,
                validates_unit: row.try_get("validates_unit")?,
                flops,
                credits: credits_for(flops),
                errors: row.try_get("errors")?,
                last_error: row.try_get("last_error")?,
                checkpoint: row.try_get::<Option<String>, _>("checkpoint")?.and_then(|c| serde_json::from_str(&c).ok()),
                waiting,
                assignments: by_unit.remove(&id).unwrap_or_default(),
            });
        }
        Ok(views)
    }

    /// Workers seen recently enough to count as online.
    async fn online_workers(&self) -> Result<Vec<WorkerRow>> {
        let rows = sql::query(
            "SELECT id, owner_id, numeric_class, gpu IS NOT NULL AS has_gpu, operator_host, consecutive_valid FROM workers WHERE last_seen >= $1",
        )
            .bind(self.online_after())
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|r| {
                let operator_host: bool = r.try_get("operator_host")?;
                Ok(WorkerRow {
                    id: r.try_get("id")?,
                    owner_id: r.try_get("owner_id")?,
                    numeric_class: r.try_get("numeric_class")?,
                    gpu: r.try_get("has_gpu")?,
                    trusted: self.trusted(operator_host, r.try_get("consecutive_valid")?),
                    operator_host,
                })
            })
            .collect()
    }

    /// Why an open unit has no taker, if no online worker may take it.
    async fn why_waiting(
        &self,
        unit_id: i64,
        role: Role,
        quorum: i64,
        claim: Option<i64>,
        had: &[i64],
        online: &[WorkerRow],
    ) -> Result<Option<String>> {
        let parties = |rows: Vec<sql::Row>| -> Result<Vec<Party>> {
            rows.iter().map(|r| Ok(Party { owner_id: r.try_get(0)?, owner: r.try_get(1)?, class: r.try_get(2)? })).collect()
        };
        let needs = match Needs::kind(role, quorum) {
            NeedsKind::Any => Needs::Any,
            NeedsKind::Untried => Needs::Untried {
                rejected: parties(
                    sql::query(sql::AssertSqlSafe(postgres_dialect(REJECTED_TRAINERS))).bind(unit_id).fetch_all(self.pool()).await?,
                )?,
            },
            NeedsKind::Agreeing => Needs::Agreeing {
                others: parties(
                    sql::query(sql::AssertSqlSafe(postgres_dialect(RESULTS_IN_PLAY)))
                        .bind(unit_id)
                        .bind(claim.unwrap_or(-1))
                        .fetch_all(self.pool())
                        .await?,
                )?,
            },
        };
        let takers = online.iter().filter(|w| !had.contains(&w.id) && needs.admits(w.owner_id, &w.numeric_class, w.operator_host)).count();
        Ok((takers == 0).then(|| needs.explain(online.len())))
    }

    /// The newest jobs, optionally of one owner.
    pub async fn list_jobs(&self, owner: Option<&str>, limit: i64) -> Result<Vec<JobView>> {
        let ids = sql::query(
            "SELECT j.id FROM jobs j JOIN users u ON u.id = j.owner_id WHERE ($1 IS NULL OR u.name = $1) AND j.kind <> 'noop' ORDER BY j.id DESC LIMIT $2",
        )
        .bind(owner)
        .bind(limit.clamp(1, 100))
        .fetch_all(self.pool())
        .await?;
        let mut jobs = Vec::with_capacity(ids.len());
        for row in ids {
            jobs.push(self.job_view(row.try_get("id")?).await?);
        }
        Ok(jobs)
    }

    /// Cancels a job of `caller`: open units close, running workers are told to stop at their
    /// next heartbeat, and the unused escrow returns.
    pub async fn cancel(&self, caller: &Token, id: i64) -> Result<JobView> {
        let caller_id = caller.user.id;
        self.write(move |c, db| {
            let (owner_id, state): (i64, JobState) = db
                .maybe("SELECT owner_id, state FROM jobs WHERE id = ?1", [id], |r| Ok((r.get(0)?, text_col(r, "state")?)))?
                .ok_or_else(|| ComputeError::not_found("JobNotFound", format!("job {id} not found")))?;
            if owner_id != caller_id {
                return Err(ComputeError::forbidden(format!("job {id} belongs to another user")));
            }
            if state.is_final() {
                return Err(ComputeError::conflict(format!("job {id} is already {state}")));
            }
            c.end_job(db, id, JobState::Cancelled, Some("cancelled by its owner"))
        })
        .await?;
        tracing::info!(job = id, "job cancelled");
        self.job_view(id).await
    }

    /// Moves a job to a final state: closes its units, stops running assignments, refunds.
    pub(crate) fn end_job(&self, db: &Conn, job_id: i64, state: JobState, error: Option<&str>) -> Result<()> {
        let t = now();
        db.exec(
            "UPDATE jobs SET state = ?1, error = COALESCE(?2, error), updated_at = ?3 WHERE id = ?4",
            params![state.as_str(), error, t, job_id],
        )?;
        let unit_state = if state == JobState::Done { UnitState::Done } else { UnitState::Cancelled };
        db.exec(
            "UPDATE units SET state = ?1, open_slots = 0, updated_at = ?2 WHERE job_id = ?3 AND state = 'open'",
            params![unit_state.as_str(), t, job_id],
        )?;
        db.exec(
            "UPDATE assignments SET state = 'cancelled' WHERE state = 'running' AND unit_id IN (SELECT id FROM units WHERE job_id = ?1)",
            [job_id],
        )?;
        let owner_id: i64 = db.one("SELECT owner_id FROM jobs WHERE id = ?1", [job_id], |r| r.get(0))?;
        ledger::refund(db, job_id, owner_id, self.config.starter_grant)?;
        Ok(())
    }

    /// Fails a job that is still queued, running or validating (a finished one stays as it is):
    /// whatever happens to its inputs or outputs, every job reaches a final state.
    pub(crate) fn fail_if_active(&self, db: &Conn, job_id: i64, message: &str) -> Result<()> {
        let active: bool = db.one("SELECT state IN ('queued', 'running', 'validating') FROM jobs WHERE id = ?1", [job_id], |r| r.get(0))?;
        if active {
            self.end_job(db, job_id, JobState::Failed, Some(message))?;
        }
        Ok(())
    }

    /// Log lines of a job after line id `after`.
    pub async fn logs(&self, job_id: i64, after: i64, limit: i64) -> Result<Vec<LogLine>> {
        let rows =
            sql::query("SELECT id, assignment_id, line, created_at FROM unit_logs WHERE job_id = $1 AND id > $2 ORDER BY id LIMIT $3")
                .bind(job_id)
                .bind(after)
                .bind(limit.clamp(1, 2000))
                .fetch_all(self.pool())
                .await?;
        rows.iter()
            .map(|row| {
                Ok(LogLine {
                    id: row.try_get("id")?,
                    assignment_id: row.try_get("assignment_id")?,
                    line: row.try_get("line")?,
                    created_at: row.try_get("created_at")?,
                })
            })
            .collect()
    }

    /// A user's balance and history (opening the account, with its grant, on first look).
    pub async fn credits(&self, user: &commons_db::User) -> Result<CreditsView> {
        let user_id = user.id;
        let (balance, history) = self.write(move |c, db| ledger::history(db, user_id, c.config.starter_grant)).await?;
        Ok(CreditsView { user: user.name.clone(), balance, history })
    }

    /// Grants `amount` credits to `user` (an administrator's act: the CLI offers it on the
    /// server's data directory, not over HTTP). A grant with the same `key` happens once; the
    /// answer is the user's new balance and history.
    pub async fn grant(&self, user: &commons_db::User, amount: i64, memo: &str, key: &str) -> Result<CreditsView> {
        if memo.trim().is_empty() {
            return Err(ComputeError::bad_request("a grant needs a memo saying why"));
        }
        let (user_id, memo, dedup) = (user.id, memo.to_string(), key.to_string());
        let granted = self.write(move |c, db| ledger::grant(db, user_id, amount, &memo, &dedup, c.config.starter_grant)).await?;
        if !granted {
            tracing::info!(user = %user.name, key, "grant already made; nothing moved");
        }
        self.credits(user).await
    }

    pub async fn ledger(&self) -> Result<LedgerDump> {
        ledger::dump(self.pool()).await
    }
}

/// Most points one sweep may train.
const MAX_SWEEP_POINTS: usize = 64;

/// Every combination of the swept values, as override lists: `["a=1,2", "b=x,y"]` gives
/// `[a=1 b=x], [a=1 b=y], [a=2 b=x], [a=2 b=y]`. No sweep is one point with no overrides.
fn sweep_points(sweep: &[String]) -> Result<Vec<Vec<String>>> {
    let mut points: Vec<Vec<String>> = vec![Vec::new()];
    for axis in sweep {
        let (key, values) = axis
            .split_once('=')
            .filter(|(k, v)| !k.trim().is_empty() && !v.trim().is_empty())
            .ok_or_else(|| ComputeError::bad_request(format!("sweep {axis:?} is not of the form key=value1,value2,...")))?;
        let values: Vec<&str> = values.split(',').map(str::trim).collect();
        if values.iter().any(|v| v.is_empty()) {
            return Err(ComputeError::bad_request(format!("sweep {axis:?} has an empty value")));
        }
        points = points
            .into_iter()
            .flat_map(|point| values.iter().map(move |v| point.iter().cloned().chain([format!("{}={v}", key.trim())]).collect()))
            .collect();
        if points.len() > MAX_SWEEP_POINTS {
            return Err(ComputeError::bad_request(format!("the sweep has over {MAX_SWEEP_POINTS} points; split it into several jobs")));
        }
    }
    Ok(points)
}

/// A job whose price does not fit the ledger's integers.
fn too_expensive() -> ComputeError {
    ComputeError::bad_request("this job would cost more credits than the ledger can count; train on less data or for fewer epochs")
}

/// Jobs run what the coordinator can validate: networks whose evaluation is deterministic.
fn check_runnable(loaded: &LoadedRecipe) -> Result<()> {
    if matches!(loaded.recipe.kind, RecipeKind::Word2vecSkipgram | RecipeKind::Word2vecCbow | RecipeKind::Glove) {
        return Err(ComputeError::invalid_recipe(format!(
            "recipe {} trains word embeddings, which have no deterministic test evaluation to validate them by; run it with `commons train`",
            loaded.recipe.name
        )));
    }
    Ok(())
}

/// Most examples the planner puts in one batch-inference unit: half the most a unit may report
/// ([`commons_protocol::MAX_PREDICTIONS_PER_UNIT`]), since the split sizes it plans with are
/// counted from files and may be a little off for the held-out splits.
const PREDICTIONS_PER_UNIT: usize = commons_protocol::MAX_PREDICTIONS_PER_UNIT / 2;

fn check_shards(shards: usize) -> Result<()> {
    if !(1..=MAX_SHARDS).contains(&shards) {
        return Err(ComputeError::bad_request(format!("shards must be between 1 and {MAX_SHARDS}, got {shards}")));
    }
    Ok(())
}

/// A model to run over a split (see [`Coordinator::plan_scoring`]).
struct Scoring {
    model: PinnedRepo,
    dataset: PinnedRepo,
    kind: RecipeKind,
    plan: commons_recipe::plan::Plan,
    /// Least operations an example costs (ONNX models; 0 for native ones).
    onnx_floor: f64,
    examples: u64,
}

impl Scoring {
    /// One unit per shard, each wanting two agreeing results and priced by its examples; and the
    /// escrow that pays every result they may take.
    fn units(
        &self,
        shards: usize,
        max_results: i64,
        role: Role,
        work: impl Fn(Option<(usize, usize)>) -> Work,
    ) -> Result<(Vec<NewUnit>, i64)> {
        let examples = self.examples;
        if shards as u64 > examples.max(1) {
            return Err(ComputeError::bad_request(format!("{shards} shards for {examples} examples: use at most one shard per example")));
        }
        let max_results = max_results.max(2);
        let mut units = Vec::with_capacity(shards);
        let mut escrow = 0i64;
        for index in 0..shards as u64 {
            // (index ≤ 256 and examples < 2^63: no product here can wrap.)
            let shard_examples =
                (examples as u128 * (index as u128 + 1) / shards as u128 - examples as u128 * index as u128 / shards as u128) as u64;
            let flops = cost::evaluation_flops(&self.plan, shard_examples).max(self.onnx_floor * shard_examples as f64);
            escrow = max_results.checked_mul(credits_for(flops)).and_then(|c| escrow.checked_add(c)).ok_or_else(too_expensive)?;
            let shard = (shards > 1).then_some((index as usize, shards));
            units.push(NewUnit {
                role,
                stored: StoredWork { work: work(shard), validation_flops: None, claim: None },
                quorum: 2,
                open_slots: 2,
                max_results,
                flops,
            });
        }
        Ok((units, escrow))
    }
}

#[cfg(test)]
mod tests {
    use super::sweep_points;

    #[test]
    fn a_sweep_trains_every_combination() {
        let points = sweep_points(&["training.epochs=1,2".into(), "training.optimizer.lr=0.01, 0.1".into()]).expect("points");
        assert_eq!(points.len(), 4);
        assert_eq!(points[1], ["training.epochs=1", "training.optimizer.lr=0.1"]);
        assert_eq!(sweep_points(&[]).expect("no sweep"), vec![Vec::<String>::new()]);
        assert!(sweep_points(&["lr".into()]).is_err());
        assert!(sweep_points(&["a=1,,2".into()]).is_err());
    }
}
