//! Verified leaderboards: every result validated by the compute network, ranked per dataset ×
//! split × metric. Entries are written only by the coordinator when a job finishes (nothing
//! self-reported); these routes read them, and show only entries whose model, dataset and
//! algorithm the caller may read.
//! - `GET /api/leaderboards[?dataset=ns/name]`: the boards, paged with `Link`;
//! - `GET /api/leaderboards/{ns}/{name}?split=&metric=[&format=csv]`: one board's entries, best
//!   first, paged with `Link` (the CSV export is the same page of the same entries);
//! - `GET /api/models/{ns}/{name}/leaderboards`: a model's verified results.

use std::collections::HashMap;

use super::{Path, Query};
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use commons_db::{BoardEntry, BoardSummary, RepoKind};
use commons_protocol::Agreed;
use serde::Deserialize;
use serde_json::{Value, json};

use super::repos::{page_params, page_response, query_string_with, set_next_page};
use super::{base_url, iso_time, kind_from_plural, readable_repo};
use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};

/// Longest split or metric name a board is asked by.
const NAME_LIMIT: usize = 100;
/// Most verified results a model's listing shows.
const MODEL_RESULTS: i64 = 1000;

/// A `namespace/name` parameter, split.
fn repo_id(value: &str) -> ApiResult<(&str, &str)> {
    value
        .split_once('/')
        .filter(|(ns, name)| !ns.is_empty() && !name.is_empty() && !name.contains('/'))
        .ok_or_else(|| ApiError::bad_request(format!("invalid dataset {value:?}: expected namespace/name")))
}

pub async fn boards(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    let (cursor, limit) = page_params(&q, 1000)?;
    let dataset = match q.get("dataset") {
        Some(id) => {
            let (ns, name) = repo_id(id)?;
            Some(readable_repo(&state, &caller, RepoKind::Dataset, ns, name).await?.id)
        }
        None => None,
    };
    let mut boards = state.db.boards(caller.reader(), dataset, (limit + 1) as i64, cursor as i64).await?;
    let more = boards.len() > limit;
    boards.truncate(limit);
    let base = base_url(&state, &headers);
    let items: Vec<Value> = boards.iter().map(|b| board_json(&base, b)).collect();
    Ok(page_response(items, more, || format!("{base}/api/leaderboards?{}", query_string_with(&q, cursor + limit))))
}

fn board_json(base: &str, b: &BoardSummary) -> Value {
    let mut url = format!("{base}/api/leaderboards/{}?split=", b.dataset);
    url.extend(percent_encoded(&b.split));
    url.push_str("&metric=");
    url.extend(percent_encoded(&b.metric));
    json!({
        "dataset": b.dataset, "split": b.split, "metric": b.metric, "higherIsBetter": b.higher_is_better,
        "entries": b.entries, "best": b.best, "lastModified": iso_time(b.updated_at), "url": url,
    })
}

fn percent_encoded(s: &str) -> impl Iterator<Item = &str> {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC)
}

#[derive(Deserialize)]
pub struct BoardPath {
    ns: String,
    name: String,
}

pub async fn board(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(p): Path<BoardPath>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    let dataset = readable_repo(&state, &caller, RepoKind::Dataset, &p.ns, &p.name).await?;
    let split = q.get("split").map_or("test", String::as_str);
    let metric = q.get("metric").map_or("accuracy", String::as_str);
    for (what, value) in [("split", split), ("metric", metric)] {
        if value.is_empty() || value.len() > NAME_LIMIT {
            return Err(ApiError::bad_request(format!("{what} must be 1 to {NAME_LIMIT} bytes")));
        }
    }
    let csv = match q.get("format").map(String::as_str) {
        None | Some("json") => false,
        Some("csv") => true,
        Some(other) => return Err(ApiError::bad_request(format!("unknown format {other:?}: json or csv"))),
    };
    let (cursor, limit) = page_params(&q, 1000)?;
    let entries = state.db.board(caller.reader(), dataset.id, split, metric, (limit + 1) as i64, cursor as i64).await?;
    let Some(mut entries) = entries else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "BoardNotFound",
            format!(
                "no verified {metric} on the {split} split of {} (see /api/leaderboards?dataset={})",
                dataset.full_name(),
                dataset.full_name()
            ),
        ));
    };
    let more = entries.len() > limit;
    entries.truncate(limit);
    let base = base_url(&state, &headers);
    let next = || format!("{base}/api/leaderboards/{}/{}?{}", p.ns, p.name, query_string_with(&q, cursor + limit));
    let ranked: Vec<(usize, &BoardEntry)> = entries.iter().enumerate().map(|(i, e)| (cursor + i + 1, e)).collect();
    if csv {
        let mut resp = csv_response(&ranked)?;
        if more {
            set_next_page(&mut resp, &next());
        }
        return Ok(resp);
    }
    let higher_is_better = entries.first().is_none_or(|e| e.higher_is_better);
    let items: Vec<Value> = ranked.iter().map(|(rank, e)| entry_json(&base, *rank, e)).collect();
    let mut resp = Json(json!({
        "dataset": dataset.full_name(), "split": split, "metric": metric, "higherIsBetter": higher_is_better, "entries": items,
    }))
    .into_response();
    if more {
        set_next_page(&mut resp, &next());
    }
    Ok(resp)
}

/// `GET /api/models/{ns}/{name}/leaderboards`: the verified results of a model the caller may
/// read, newest first (each names its board).
pub async fn of_model(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path((kind, ns, name)): Path<(String, String, String)>,
) -> ApiResult<Json<Value>> {
    if kind_from_plural(&kind)? != RepoKind::Model {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            "only models have verified results; a dataset's boards are at /api/leaderboards?dataset=",
        ));
    }
    let model = readable_repo(&state, &caller, RepoKind::Model, &ns, &name).await?;
    let entries = state.db.board_entries_of_model(caller.reader(), model.id, MODEL_RESULTS).await?;
    let base = base_url(&state, &headers);
    Ok(Json(Value::Array(entries.iter().map(|e| entry_json(&base, 0, e)).collect())))
}

fn parsed(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or(Value::Null)
}

fn entry_json(base: &str, rank: usize, e: &BoardEntry) -> Value {
    let agreed: Vec<Agreed> = serde_json::from_str(&e.agreed).unwrap_or_default();
    let text = commons_protocol::verification_text(e.verification, e.workers as usize, e.owners as usize, &agreed);
    let mut entry = json!({
        "model": { "id": e.model, "revision": e.model_commit },
        "value": e.value,
        "metric": e.metric,
        "metrics": parsed(&e.metrics),
        "dataset": { "id": e.dataset, "revision": e.dataset_commit },
        "split": e.split,
        "algorithm": e.algorithm.as_ref().map(|a| json!({ "id": a, "revision": e.algorithm_commit })),
        "recipe": e.recipe.as_deref().map_or(Value::Null, parsed),
        "verification": { "kind": e.verification, "workers": e.workers, "owners": e.owners, "text": text },
        "agreed": agreed,
        "job": { "id": e.job_id, "url": format!("{base}/api/jobs/{}", e.job_id) },
        "credits": e.credits,
        "createdAt": iso_time(e.created_at),
    });
    if rank > 0 {
        entry["rank"] = json!(rank);
    }
    entry
}

/// The same entries as CSV, one row each, in rank order.
fn csv_response(entries: &[(usize, &BoardEntry)]) -> ApiResult<Response> {
    let mut out = csv::Writer::from_writer(Vec::new());
    let header = [
        "rank",
        "model",
        "model_revision",
        "value",
        "verification",
        "workers",
        "owners",
        "dataset",
        "dataset_revision",
        "split",
        "metric",
        "algorithm",
        "algorithm_revision",
        "overrides",
        "job",
        "credits",
        "created_at",
    ];
    out.write_record(header).map_err(ApiError::internal)?;
    for (rank, e) in entries {
        let overrides = e
            .recipe
            .as_deref()
            .map(parsed)
            .and_then(|r| r.get("overrides").and_then(Value::as_array).cloned())
            .map(|o| o.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(" "))
            .unwrap_or_default();
        out.write_record([
            rank.to_string(),
            e.model.clone(),
            e.model_commit.clone(),
            e.value.to_string(),
            e.verification.to_string(),
            e.workers.to_string(),
            e.owners.to_string(),
            e.dataset.clone(),
            e.dataset_commit.clone(),
            e.split.clone(),
            e.metric.clone(),
            e.algorithm.clone().unwrap_or_default(),
            e.algorithm_commit.clone().unwrap_or_default(),
            overrides,
            e.job_id.to_string(),
            e.credits.to_string(),
            iso_time(e.created_at),
        ])
        .map_err(ApiError::internal)?;
    }
    let body = out.into_inner().map_err(ApiError::internal)?;
    Ok(([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], body).into_response())
}
