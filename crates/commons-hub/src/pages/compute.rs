//! The compute network for people: an algorithm's "run on a dataset" form, jobs (progress,
//! units and their workers, the training curve as SVG, logs, the validated result), workers,
//! credits, and the verified leaderboards. Read through the coordinator and the database as the
//! compute and leaderboard APIs read them; a job's page updates itself while the job runs
//! (`live.js`), and reads whole without script.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use commons_compute::Coordinator;
use commons_db::RepoKind;
use commons_protocol::{AssignmentState, JobRequest, JobSpec, JobView, UnitState};
use minijinja::{Value, context};
use serde::Deserialize;

use super::session::Visitor;
use super::{PageError, PageForm, PageResult, day, page, page_number, repo_url};
use crate::AppState;

/// Log lines a job's page shows (the newest).
const LOG_LINES: i64 = 200;
/// Entries on a page of a leaderboard.
const BOARD_PAGE: usize = 50;
const BOARDS_PAGE: usize = 100;

fn coordinator(state: &AppState) -> Result<&Coordinator, PageError> {
    state.compute.as_ref().ok_or_else(|| super::not_found("This hub runs no compute."))
}

impl From<commons_compute::ComputeError> for PageError {
    fn from(e: commons_compute::ComputeError) -> Self {
        crate::error::ApiError::from(e).into()
    }
}

/// The fields of a recipe the run form offers, with the recipe's own values.
pub(crate) const RUN_FIELDS: [(&str, &str); 4] = [
    ("training.epochs", "Epochs"),
    ("training.batch_size", "Batch size"),
    ("training.optimizer.lr", "Learning rate"),
    ("training.seed", "Seed"),
];

/// What an algorithm's page shows of its recipe, and its run form's fields; `None` when the
/// repository has no readable recipe at `main`.
pub(crate) async fn recipe_of(state: &AppState, repo: &commons_db::Repo) -> Option<Value> {
    let head = state.repos.pin(repo, "main").await.ok()?;
    let tree = state.repos.tree(repo, &head).await.ok()?;
    let tomls: Vec<&str> = tree.iter().map(|f| f.path.as_str()).filter(|p| !p.contains('/') && p.ends_with(".toml")).collect();
    // The coordinator's rule: `recipe.toml`, else the only TOML at the root.
    let path = if tomls.contains(&"recipe.toml") {
        "recipe.toml"
    } else if tomls.len() == 1 {
        tomls[0]
    } else {
        return None;
    };
    let bytes = state.repos.read_file(repo, &head, path, 256 << 10).await.ok()??;
    let text = String::from_utf8(bytes).ok()?;
    let table: toml::Table = toml::from_str(&text).ok()?;
    let lookup = |key: &str| {
        let mut at = toml::Value::Table(table.clone());
        for part in key.split('.') {
            at = at.get(part)?.clone();
        }
        Some(at.to_string())
    };
    let fields: Vec<Value> = RUN_FIELDS
        .iter()
        .map(|(key, label)| context! { key, label, id => key.replace('.', "-"), value => lookup(key).unwrap_or_default() })
        .collect();
    Some(context! {
        path, text,
        name => table.get("name").and_then(|v| v.as_str()).map(str::to_string),
        description => table.get("description").and_then(|v| v.as_str()).map(str::to_string),
        fields,
    })
}

#[derive(Deserialize)]
pub(crate) struct AlgoPath {
    ns: String,
    name: String,
}

/// `POST /algorithms/{ns}/{name}/run`: a training job of this recipe on a dataset, with the
/// form's values as overrides, submitted as the signed-in account (who pays its credits).
pub(crate) async fn run(
    State(state): State<AppState>,
    visitor: Visitor,
    Path(p): Path<AlgoPath>,
    form: PageForm<HashMap<String, String>>,
) -> PageResult {
    let form = form.0;
    visitor.check_csrf(form.get("csrf").map_or("", String::as_str))?;
    let coordinator = coordinator(&state)?;
    let token = visitor.require()?;
    // A job spends the account's credits: a browser session or a write token of the account,
    // as the API asks (a read token cannot spend).
    visitor.caller.require_write(&token.user.name)?;
    let repo = state.repos.find(RepoKind::Algorithm, &p.ns, &p.name, visitor.reader()).await?;
    let dataset = form.get("dataset").map(|d| d.trim().trim_start_matches("datasets/").to_string()).unwrap_or_default();
    if dataset.is_empty() || dataset.len() > 200 {
        return Err(PageError::bad_request("Name the dataset to train on, as namespace/name."));
    }
    let mut overrides = Vec::new();
    for (key, _) in RUN_FIELDS {
        if let Some(value) = form.get(key).map(|v| v.trim()).filter(|v| !v.is_empty()) {
            if value.len() > 64 {
                return Err(PageError::bad_request(format!("The value of {key} is too long.")));
            }
            overrides.push(format!("{key}={value}"));
        }
    }
    let request = JobRequest::Train {
        algorithm: format!("{}/{}", repo.namespace, repo.name),
        dataset,
        overrides,
        output: None,
        sweep: Vec::new(),
        gpu: false,
    };
    let job = coordinator.submit(token, request).await?;
    tracing::info!(job = job.id, owner = %token.user.name, "job submitted from the browser");
    Ok(Redirect::to(&format!("/jobs/{}", job.id)).into_response())
}

fn spec_text(spec: &JobSpec) -> (String, Vec<Value>) {
    let link = |kind: RepoKind, pinned: &commons_protocol::PinnedRepo| {
        let (ns, name) = pinned.repo.split_once('/').unwrap_or(("", &pinned.repo));
        context! { text => pinned.display(), url => repo_url(kind, ns, name) }
    };
    let on_gpu = if spec.needs_gpu() { " on GPU workers" } else { "" };
    match spec {
        JobSpec::Train { algorithm, dataset, overrides, .. } => (
            if overrides.is_empty() { format!("Train{on_gpu}") } else { format!("Train{on_gpu} with {}", overrides.join(", ")) },
            vec![link(RepoKind::Algorithm, algorithm), link(RepoKind::Dataset, dataset)],
        ),
        JobSpec::Eval { model, dataset, split, .. } => {
            (format!("Evaluate on {split}{on_gpu}"), vec![link(RepoKind::Model, model), link(RepoKind::Dataset, dataset)])
        }
        JobSpec::Predict { model, dataset, split, .. } => {
            (format!("Predict every example of {split}{on_gpu}"), vec![link(RepoKind::Model, model), link(RepoKind::Dataset, dataset)])
        }
        JobSpec::Noop { units } => (format!("{units} test units"), Vec::new()),
    }
}

/// A job as the list and its page show it.
fn job_summary(job: &JobView) -> Value {
    let done = job.units.iter().filter(|u| u.state == UnitState::Done).count();
    let (what, inputs) = spec_text(&job.spec);
    context! {
        id => job.id, owner => &job.owner, state => job.state.as_str(), what, inputs,
        done, units => job.units.len(), created => day(job.created_at), finished => job.is_finished(),
    }
}

pub(crate) async fn jobs(State(state): State<AppState>, visitor: Visitor) -> PageResult {
    let coordinator = coordinator(&state)?;
    let mut jobs = Vec::new();
    for job in coordinator.list_jobs(None, 50).await? {
        if crate::routes::may_see_job(&state, visitor.reader(), &job).await {
            jobs.push(job_summary(&job));
        }
    }
    Ok(page(&visitor, "jobs.html", context! { jobs }))
}

pub(crate) async fn job(State(state): State<AppState>, visitor: Visitor, Path(id): Path<i64>) -> PageResult {
    let coordinator = coordinator(&state)?;
    let job = crate::routes::visible_job(&state, coordinator, visitor.reader(), id).await?;
    let logs = coordinator.logs(id, 0, 10_000).await?;
    let logs: Vec<String> = logs.iter().rev().take(LOG_LINES as usize).rev().map(|l| l.line.clone()).collect();
    let mut units = Vec::new();
    let mut curve: Vec<(usize, f64)> = Vec::new();
    let mut progress: Option<f64> = None;
    for unit in &job.units {
        let running = unit.assignments.iter().find(|a| a.state == AssignmentState::Running);
        if let Some(p) = running.and_then(|a| a.progress.as_ref()) {
            progress = Some(progress.map_or(p.fraction, |f: f64| f.min(p.fraction)));
        }
        // The curve of the first training unit that has one: each epoch's training loss.
        if curve.is_empty()
            && unit.role == commons_protocol::Role::Train
            && let Some(a) = unit.assignments.iter().filter(|a| !a.epochs.is_empty()).max_by_key(|a| a.epochs.len())
        {
            curve = a.epochs.iter().map(|e| (e.epoch, e.train_loss)).collect();
        }
        units.push(context! {
            id => unit.id, role => unit.role.as_str(), state => unit.state.as_str(),
            validates => unit.validates_unit, waiting => &unit.waiting, error => &unit.last_error,
            assignments => unit.assignments.iter().map(|a| context! {
                worker => &a.worker, owner => &a.owner, state => a.state.as_str(), outcome => a.outcome.as_str(),
                percent => a.progress.as_ref().map(|p| (p.fraction * 100.0).round() as u32),
                loss => a.progress.as_ref().and_then(|p| p.loss).map(|l| format!("{l:.4}")),
            }).collect::<Vec<_>>(),
        });
    }
    let result = job.result.as_ref().map(|r| {
        let model = r["model"]["repo"].as_str().map(|m| {
            let (ns, name) = m.split_once('/').unwrap_or(("", m));
            context! { id => m, url => repo_url(RepoKind::Model, ns, name) }
        });
        // A batch inference's output: the dataset its predictions went to.
        let predictions = r["predictions"]["repo"].as_str().map(|d| {
            let (ns, name) = d.split_once('/').unwrap_or(("", d));
            context! { id => d, url => repo_url(RepoKind::Dataset, ns, name), rows => r["predictions"]["rows"].as_u64() }
        });
        let metrics: Vec<Value> = r["test"]
            .as_object()
            .or_else(|| r["metrics"].as_object())
            // The scalar metrics; tables (a confusion matrix) are in the job's JSON.
            .map(|m| m.iter().filter_map(|(k, v)| v.as_f64().map(|f| context! { name => k, value => metric_text(f) })).collect())
            .unwrap_or_default();
        let metrics = match r["label_agreement"].as_f64() {
            Some(share) => vec![context! { name => "prediction equals label", value => metric_text(share) }],
            None => metrics,
        };
        context! { model, predictions, metrics }
    });
    let summary = job_summary(&job);
    let done = job.units.iter().filter(|u| u.state == UnitState::Done).count();
    let overall = if job.units.is_empty() { 0.0 } else { (done as f64 + progress.unwrap_or(0.0)) / job.units.len() as f64 };
    let mut response = page(
        &visitor,
        "job.html",
        context! {
            job => summary, units, logs, result, error => &job.error,
            percent => (overall * 100.0).round() as u32,
            curve => loss_curve(&curve),
            live => !job.is_finished(),
            can_cancel => !job.is_finished() && visitor.name() == Some(job.owner.as_str()),
        },
    );
    if !job.is_finished() {
        response.headers_mut().insert(axum::http::header::CACHE_CONTROL, axum::http::HeaderValue::from_static("no-store"));
    }
    Ok(response)
}

/// A metric as people read it: counts whole, rates to four places.
fn metric_text(f: f64) -> String {
    if f.fract() == 0.0 && f.abs() < 1e15 { format!("{}", f as i64) } else { format!("{f:.4}") }
}

/// Training loss by epoch as an SVG polyline in a 300 × 120 box (the page draws its axes).
fn loss_curve(points: &[(usize, f64)]) -> Option<Value> {
    let finite: Vec<(usize, f64)> = points.iter().copied().filter(|(_, l)| l.is_finite()).collect();
    if finite.is_empty() {
        return None;
    }
    let (lo, hi) = finite.iter().fold((f64::MAX, f64::MIN), |(lo, hi), (_, l)| (lo.min(*l), hi.max(*l)));
    let last = finite.iter().map(|p| p.0).max().unwrap_or(1).max(1);
    let first = finite.iter().map(|p| p.0).min().unwrap_or(0);
    let span = (last - first).max(1) as f64;
    let range = if hi > lo { hi - lo } else { 1.0 };
    // One epoch, or a flat loss, is drawn across the middle.
    let y = |l: f64| if hi > lo { 110.0 - 100.0 * (l - lo) / range } else { 60.0 };
    let x = |e: usize| if last > first { 10.0 + 280.0 * (e - first) as f64 / span } else { 150.0 };
    let xy: Vec<(f64, f64)> = finite.iter().map(|(e, l)| (x(*e), y(*l))).collect();
    let polyline = xy.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect::<Vec<_>>().join(" ");
    Some(context! {
        polyline,
        dots => xy.iter().zip(&finite).map(|((x, y), (e, l))| context! { x => format!("{x:.1}"), y => format!("{y:.1}"), label => format!("epoch {e}: loss {l:.4}") }).collect::<Vec<_>>(),
        high => format!("{hi:.4}"), low => format!("{lo:.4}"), first, last,
        summary => format!("Training loss from {:.4} at epoch {} to {:.4} at epoch {}", finite[0].1, finite[0].0, finite[finite.len() - 1].1, finite[finite.len() - 1].0),
    })
}

pub(crate) async fn cancel(
    State(state): State<AppState>,
    visitor: Visitor,
    Path(id): Path<i64>,
    form: PageForm<super::session::CsrfForm>,
) -> PageResult {
    visitor.check_csrf(&form.0.csrf)?;
    let coordinator = coordinator(&state)?;
    let token = visitor.require()?;
    visitor.caller.require_write(&token.user.name)?;
    coordinator.cancel(token, id).await?;
    Ok(Redirect::to(&format!("/jobs/{id}")).into_response())
}

pub(crate) async fn workers(State(state): State<AppState>, visitor: Visitor) -> PageResult {
    let coordinator = coordinator(&state)?;
    let workers: Vec<Value> = coordinator
        .workers()
        .await?
        .iter()
        .map(|w| {
            context! {
                name => &w.name, owner => &w.owner, cores => w.cores, gpu => &w.gpu, online => w.online,
                speed => format!("{:.1}", w.speed_gflops), trusted => w.trusted, valid => w.valid_results,
                invalid => w.invalid_results, errors => w.error_results, running => w.running.join(", "),
                seen => day(w.last_seen), platform => &w.platform,
            }
        })
        .collect();
    Ok(page(&visitor, "workers.html", context! { workers }))
}

pub(crate) async fn credits(State(state): State<AppState>, visitor: Visitor) -> PageResult {
    if visitor.name().is_none() {
        return Ok(Redirect::to("/login?next=%2Fcredits").into_response());
    }
    let coordinator = coordinator(&state)?;
    let token = visitor.caller.require_account()?;
    let view = coordinator.credits(&token.user).await?;
    let history: Vec<Value> = view
        .history
        .iter()
        .take(200)
        .map(|e| {
            context! {
                kind => &e.kind, amount => e.amount, memo => &e.memo, job => e.job_id, when => day(e.created_at),
            }
        })
        .collect();
    Ok(page(&visitor, "credits.html", context! { balance => view.balance, history }))
}

pub(crate) async fn boards(State(state): State<AppState>, visitor: Visitor, Query(q): Query<HashMap<String, String>>) -> PageResult {
    let page_no = page_number(&q, 1000)?;
    let mut boards = state.db.boards(visitor.reader(), None, (BOARDS_PAGE + 1) as i64, (page_no * BOARDS_PAGE) as i64).await?;
    let more = boards.len() > BOARDS_PAGE;
    boards.truncate(BOARDS_PAGE);
    let boards: Vec<Value> = boards
        .iter()
        .map(|b| {
            let query = serde_urlencoded::to_string([("split", &b.split), ("metric", &b.metric)]).unwrap_or_default();
            context! {
                dataset => &b.dataset, split => &b.split, metric => &b.metric, entries => b.entries,
                best => metric_text(b.best), updated => day(b.updated_at),
                url => format!("/leaderboards/{}?{query}", b.dataset),
            }
        })
        .collect();
    Ok(page(
        &visitor,
        "boards.html",
        context! {
            boards,
            previous => (page_no > 0).then(|| format!("/leaderboards?p={}", page_no - 1)),
            next => more.then(|| format!("/leaderboards?p={}", page_no + 1)),
        },
    ))
}

#[derive(Deserialize)]
pub(crate) struct BoardPath {
    ns: String,
    name: String,
}

pub(crate) async fn board(
    State(state): State<AppState>,
    visitor: Visitor,
    Path(p): Path<BoardPath>,
    Query(q): Query<HashMap<String, String>>,
) -> PageResult {
    let dataset = state.repos.find(RepoKind::Dataset, &p.ns, &p.name, visitor.reader()).await?;
    let split = q.get("split").map_or("test", String::as_str);
    let metric = q.get("metric").map_or("accuracy", String::as_str);
    if [split, metric].iter().any(|v| v.is_empty() || v.len() > 64) {
        return Err(PageError::bad_request("A split and a metric have 1 to 64 characters."));
    }
    let page_no = page_number(&q, 1000)?;
    let offset = page_no * BOARD_PAGE;
    let others = state.db.board_names(visitor.reader(), dataset.id, 100).await?;
    let entries = state.db.board(visitor.reader(), dataset.id, split, metric, (BOARD_PAGE + 1) as i64, offset as i64).await?;
    let Some(mut entries) = entries else {
        return Err(PageError {
            status: StatusCode::NOT_FOUND,
            message: format!("No verified {metric} on the {split} split of {} yet.", dataset.full_name()),
        });
    };
    let more = entries.len() > BOARD_PAGE;
    entries.truncate(BOARD_PAGE);
    let query = |p: usize| serde_urlencoded::to_string([("split", split), ("metric", metric), ("p", &p.to_string())]).unwrap_or_default();
    let here = format!("/leaderboards/{}/{}", dataset.namespace, dataset.name);
    let rows: Vec<Value> = entries
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let agreed: Vec<commons_protocol::Agreed> = serde_json::from_str(&e.agreed).unwrap_or_default();
            let (mns, mname) = e.model.split_once('/').unwrap_or(("", &e.model));
            context! {
                rank => offset + i + 1, model => &e.model, model_url => repo_url(RepoKind::Model, mns, mname),
                revision => e.model_commit.get(..12).unwrap_or(&e.model_commit),
                value => metric_text(e.value),
                algorithm => e.algorithm.as_ref().map(|a| {
                    let (ans, aname) = a.split_once('/').unwrap_or(("", a));
                    context! { id => a, url => repo_url(RepoKind::Algorithm, ans, aname) }
                }),
                verification => commons_protocol::verification_text(e.verification, e.workers as usize, e.owners as usize, &agreed),
                job => e.job_id, when => day(e.created_at),
            }
        })
        .collect();
    let higher = entries.first().is_none_or(|e| e.higher_is_better);
    Ok(page(
        &visitor,
        "board.html",
        context! {
            dataset => dataset.full_name(), dataset_url => repo_url(RepoKind::Dataset, &dataset.namespace, &dataset.name),
            split, metric, higher, rows,
            others => others.iter().filter(|(s, m)| s != split || m != metric).map(|(s, m)| context! {
                name => format!("{s} · {m}"),
                url => format!("{here}?{}", serde_urlencoded::to_string([("split", s), ("metric", m)]).unwrap_or_default()),
            }).collect::<Vec<_>>(),
            csv => format!("/api/leaderboards/{}/{}?{}&format=csv&limit=1000",
                dataset.namespace, dataset.name, serde_urlencoded::to_string([("split", split), ("metric", metric)]).unwrap_or_default()),
            previous => (page_no > 0).then(|| format!("{here}?{}", query(page_no - 1))),
            next => more.then(|| format!("{here}?{}", query(page_no + 1))),
        },
    ))
}
