//! The compute HTTP API: the coordinator (`commons-compute`) on the wire. Bodies are the JSON
//! types of `commons-protocol`; errors are the hub's JSON errors, and this module is where each
//! `ComputeError` gets its status.

use std::time::Duration;

use super::{Path, Query};
use axum::extract::{FromRef, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use commons_compute::{ComputeError, Coordinator, WhenFull};
use commons_db::{Scope, Token};
use commons_protocol::{
    Heartbeat, JobRequest, Leases, MAX_LEASES_PER_REQUEST, RegisterWorker, Report, ReportBatch, ReportBatchAnswer, ReportOutcome,
};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::{ApiError, ApiResult, AppState, Caller, RawBody};

/// What the compute routes run on: the coordinator, and the hub for callers and body limits.
#[derive(Clone)]
struct ComputeState {
    hub: AppState,
    coordinator: Coordinator,
}

impl FromRef<ComputeState> for AppState {
    fn from_ref(s: &ComputeState) -> AppState {
        s.hub.clone()
    }
}

impl FromRef<ComputeState> for Coordinator {
    fn from_ref(s: &ComputeState) -> Coordinator {
        s.coordinator.clone()
    }
}

impl From<ComputeError> for ApiError {
    fn from(e: ComputeError) -> Self {
        match e {
            ComputeError::Db(db) => db.into(),
            ComputeError::Repo(repo) => repo.into(),
            ComputeError::BadRequest(message) => ApiError::bad_request(message),
            ComputeError::InvalidRecipe(message) => ApiError::new(StatusCode::BAD_REQUEST, "InvalidRecipe", message),
            ComputeError::NotFound { what, message } => ApiError::new(StatusCode::NOT_FOUND, what, message),
            ComputeError::Conflict(message) => ApiError::new(StatusCode::CONFLICT, "Conflict", message),
            ComputeError::Forbidden(message) => ApiError::forbidden(message),
            e @ ComputeError::InsufficientCredits { .. } => {
                ApiError::new(StatusCode::PAYMENT_REQUIRED, "InsufficientCredits", e.to_string())
            }
            ComputeError::Gone(message) => ApiError::new(StatusCode::GONE, "Gone", message),
            other @ (ComputeError::Sqlx(_) | ComputeError::Sqlite(_) | ComputeError::Corrupt(_)) => ApiError::internal(other),
        }
    }
}

pub(crate) fn router(hub: AppState, coordinator: Coordinator) -> Router {
    Router::new()
        .route("/api/jobs", post(submit).get(list))
        .route("/api/jobs/{id}", get(job))
        .route("/api/jobs/{id}/cancel", post(cancel))
        .route("/api/jobs/{id}/logs", get(logs))
        .route("/api/workers", get(workers))
        .route("/api/workers/register", post(register))
        .route("/api/workers/{id}/pull", post(pull))
        .route("/api/workers/{id}/leases", post(leases))
        .route("/api/workers/{id}/reports", post(reports))
        .route("/api/assignments/{id}/heartbeat", post(heartbeat))
        .route("/api/assignments/{id}/report", post(report))
        .route("/api/credits", get(credits))
        .route("/api/ledger", get(ledger))
        .with_state(ComputeState { hub, coordinator })
}

/// Reads a JSON body (at most the hub's JSON limit, 413 past it) once the caller's token has
/// been checked: nothing of a body is read before its caller is known to be allowed.
async fn read_body<T: DeserializeOwned>(hub: &AppState, body: RawBody) -> ApiResult<T> {
    body.json(hub.limits.json_body, "the request body").await
}

/// A write token of a whole account: what submitting and cancelling jobs need (they spend
/// credits and create repositories).
fn account_token(caller: &Caller) -> ApiResult<&Token> {
    let token = caller.require()?;
    if token.scope != Scope::Write || token.repo_id.is_some() {
        return Err(ApiError::forbidden(format!(
            "this needs a write token of the account, not a {} token{}",
            token.scope.as_str(),
            if token.repo_id.is_some() { " limited to one repository" } else { "" }
        )));
    }
    Ok(token)
}

/// A token that may run workers for its account: a worker token, or the account's write token.
fn worker_token(caller: &Caller) -> ApiResult<&Token> {
    let token = caller.require()?;
    if !matches!(token.scope, Scope::Write | Scope::Worker) || token.repo_id.is_some() {
        return Err(ApiError::forbidden(format!(
            "running a worker needs a worker token of the account (`commons token create USER --scope worker`), not a {} token{}",
            token.scope.as_str(),
            if token.repo_id.is_some() { " limited to one repository" } else { "" }
        )));
    }
    Ok(token)
}

async fn submit(State(hub): State<AppState>, State(c): State<Coordinator>, caller: Caller, body: RawBody) -> ApiResult<Response> {
    let owner = account_token(&caller)?;
    let request: JobRequest = read_body(&hub, body).await?;
    let job = c.submit(owner, request).await?;
    Ok((StatusCode::CREATED, Json(job)).into_response())
}

#[derive(Deserialize)]
struct ListQuery {
    owner: Option<String>,
    limit: Option<i64>,
}

async fn list(
    State(hub): State<AppState>,
    State(c): State<Coordinator>,
    caller: Caller,
    Query(q): Query<ListQuery>,
) -> ApiResult<Response> {
    let jobs = c.list_jobs(q.owner.as_deref(), q.limit.unwrap_or(50)).await?;
    let mut visible = Vec::with_capacity(jobs.len());
    for job in jobs {
        if may_see_job(&hub, caller.reader(), &job).await {
            visible.push(job);
        }
    }
    Ok(Json(visible).into_response())
}

/// Whether `reader` may see `job`: its owner always; anyone else when every repository it
/// names (the recipe and the data of a training, the model and the data of an evaluation, and
/// the output of a batch inference) is one they may read, so that a job never shows the name or
/// the results of a private repository to someone the repository is hidden from.
pub(crate) async fn may_see_job(hub: &AppState, reader: Option<&str>, job: &commons_protocol::JobView) -> bool {
    use commons_db::RepoKind;
    use commons_protocol::JobSpec;
    if reader == Some(job.owner.as_str()) {
        return true;
    }
    let named = match &job.spec {
        JobSpec::Train { algorithm, dataset, .. } => {
            vec![(RepoKind::Algorithm, algorithm.repo.clone()), (RepoKind::Dataset, dataset.repo.clone())]
        }
        JobSpec::Eval { model, dataset, .. } => vec![(RepoKind::Model, model.repo.clone()), (RepoKind::Dataset, dataset.repo.clone())],
        JobSpec::Predict { model, dataset, output, .. } => vec![
            (RepoKind::Model, model.repo.clone()),
            (RepoKind::Dataset, dataset.repo.clone()),
            (RepoKind::Dataset, format!("{}/{output}", job.owner)),
        ],
        JobSpec::Noop { .. } => Vec::new(),
    };
    for (kind, repo) in named {
        let Some((ns, name)) = repo.split_once('/') else { return false };
        if hub.repos.find(kind, ns, name, reader).await.is_err() {
            return false;
        }
    }
    true
}

/// Job `id` as `caller` may see it: one they may not see is as missing as one that never was.
pub(crate) async fn visible_job(hub: &AppState, c: &Coordinator, reader: Option<&str>, id: i64) -> ApiResult<commons_protocol::JobView> {
    let job = c.job_view(id).await?;
    if may_see_job(hub, reader, &job).await {
        Ok(job)
    } else {
        Err(ComputeError::not_found("JobNotFound", format!("job {id} not found")).into())
    }
}

async fn job(State(hub): State<AppState>, State(c): State<Coordinator>, caller: Caller, Path(id): Path<i64>) -> ApiResult<Response> {
    Ok(Json(visible_job(&hub, &c, caller.reader(), id).await?).into_response())
}

async fn cancel(State(c): State<Coordinator>, caller: Caller, Path(id): Path<i64>) -> ApiResult<Response> {
    let owner = account_token(&caller)?;
    Ok(Json(c.cancel(owner, id).await?).into_response())
}

#[derive(Deserialize)]
struct LogQuery {
    after: Option<i64>,
    limit: Option<i64>,
}

async fn logs(
    State(hub): State<AppState>,
    State(c): State<Coordinator>,
    caller: Caller,
    Path(id): Path<i64>,
    Query(q): Query<LogQuery>,
) -> ApiResult<Response> {
    visible_job(&hub, &c, caller.reader(), id).await?;
    let lines = c.logs(id, q.after.unwrap_or(0), q.limit.unwrap_or(1000)).await?;
    Ok(Json(json!({ "lines": lines })).into_response())
}

async fn workers(State(c): State<Coordinator>) -> ApiResult<Response> {
    Ok(Json(c.workers().await?).into_response())
}

async fn register(State(hub): State<AppState>, State(c): State<Coordinator>, caller: Caller, body: RawBody) -> ApiResult<Response> {
    let owner = worker_token(&caller)?;
    let request: RegisterWorker = read_body(&hub, body).await?;
    Ok(Json(c.register(owner, request).await?).into_response())
}

#[derive(Deserialize)]
struct PullQuery {
    /// Seconds to wait for work.
    wait: Option<u64>,
}

async fn pull(State(c): State<Coordinator>, caller: Caller, Path(id): Path<i64>, Query(q): Query<PullQuery>) -> ApiResult<Response> {
    let owner = worker_token(&caller)?;
    match c.pull(owner, id, Duration::from_secs(q.wait.unwrap_or(0))).await? {
        Some(lease) => Ok(Json(lease).into_response()),
        None => Ok(StatusCode::NO_CONTENT.into_response()),
    }
}

async fn heartbeat(
    State(hub): State<AppState>,
    State(c): State<Coordinator>,
    caller: Caller,
    Path(id): Path<i64>,
    body: RawBody,
) -> ApiResult<Response> {
    let owner = worker_token(&caller)?;
    let beat: Heartbeat = read_body(&hub, body).await?;
    Ok(Json(c.heartbeat(owner, id, beat).await?).into_response())
}

#[derive(Deserialize)]
struct ReportQuery {
    /// Also lease the next unit for this worker.
    next_for: Option<i64>,
    wait: Option<u64>,
}

async fn report(
    State(hub): State<AppState>,
    State(c): State<Coordinator>,
    caller: Caller,
    Path(id): Path<i64>,
    Query(q): Query<ReportQuery>,
    body: RawBody,
) -> ApiResult<Response> {
    let owner = worker_token(&caller)?;
    // Checked before the report is recorded: a recorded report must not be answered by an error.
    if let Some(worker) = q.next_for {
        c.check_worker(owner, worker).await?;
    }
    let report: Report = read_body(&hub, body).await?;
    let mut answer = c.report(owner, id, report).await?;
    if let Some(worker) = q.next_for {
        answer.next = c.leases(owner, worker, 1, Duration::from_secs(q.wait.unwrap_or(0)), WhenFull::Nothing).await?.pop();
    }
    Ok(Json(answer).into_response())
}

#[derive(Deserialize)]
struct LeasesQuery {
    /// Leases wanted, 1 to `MAX_LEASES_PER_REQUEST`.
    count: usize,
    /// Seconds to wait for work.
    wait: Option<u64>,
}

/// Several leases at once; an empty list when no unit appeared within the wait.
async fn leases(State(c): State<Coordinator>, caller: Caller, Path(id): Path<i64>, Query(q): Query<LeasesQuery>) -> ApiResult<Response> {
    let owner = worker_token(&caller)?;
    let leases = c.leases(owner, id, q.count, Duration::from_secs(q.wait.unwrap_or(0)), WhenFull::Refuse).await?;
    Ok(Json(Leases { leases }).into_response())
}

#[derive(Deserialize)]
struct ReportsQuery {
    /// Also lease up to this many units for the worker of the path.
    next: Option<usize>,
    wait: Option<u64>,
}

/// Several reports, each standing alone (see [`ReportOutcome`]), and the worker's next leases.
async fn reports(
    State(hub): State<AppState>,
    State(c): State<Coordinator>,
    caller: Caller,
    Path(id): Path<i64>,
    Query(q): Query<ReportsQuery>,
    body: RawBody,
) -> ApiResult<Response> {
    let owner = worker_token(&caller)?;
    let next = q.next.unwrap_or(0);
    // Checked before anything is recorded: the reports must not land under an error answer.
    if next > MAX_LEASES_PER_REQUEST {
        return Err(ApiError::bad_request(format!("ask for at most {MAX_LEASES_PER_REQUEST} next leases, not {next}")));
    }
    if next > 0 {
        c.check_worker(owner, id).await?;
    }
    let batch: ReportBatch = read_body(&hub, body).await?;
    let ids: Vec<i64> = batch.reports.iter().map(|r| r.assignment_id).collect();
    let answers = c.reports(owner, batch.reports.into_iter().map(|r| (r.assignment_id, r.report)).collect()).await?;
    let outcomes = ids
        .into_iter()
        .zip(answers)
        .map(|(assignment_id, answer)| match answer {
            Ok(answer) => ReportOutcome { assignment_id, accepted: answer.accepted, message: answer.message, error: None },
            Err(e) => {
                let e = ApiError::from(e);
                ReportOutcome { assignment_id, accepted: false, message: e.message, error: Some(e.code.to_string()) }
            }
        })
        .collect();
    let next = match next {
        0 => Vec::new(),
        count => c.leases(owner, id, count, Duration::from_secs(q.wait.unwrap_or(0)), WhenFull::Nothing).await?,
    };
    Ok(Json(ReportBatchAnswer { outcomes, next }).into_response())
}

async fn credits(State(c): State<Coordinator>, caller: Caller) -> ApiResult<Response> {
    let token = caller.require_account()?;
    Ok(Json(c.credits(&token.user).await?).into_response())
}

/// The whole ledger, every account and transfer: the operator's audit, not a public page (each
/// user sees their own account at `/api/credits`).
async fn ledger(State(c): State<Coordinator>, caller: Caller) -> ApiResult<Response> {
    let token = caller.require_account()?;
    if c.config().operator_user.as_deref() != Some(token.user.name.as_str()) {
        return Err(ApiError::forbidden("the whole ledger is for the hub's operator; your own account is at /api/credits"));
    }
    Ok(Json(c.ledger().await?).into_response())
}
