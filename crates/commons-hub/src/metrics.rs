//! What an operator's Prometheus scrapes (`GET /metrics`, OpenMetrics text) and what a load
//! balancer asks (`GET /ready`): requests by route and status with their latency, bytes
//! uploaded and downloaded, the store's size and what deduplication saves, the compute queue,
//! workers online and the ledger.
//!
//! Counters live in this process (each server of several counts its own requests, as Prometheus
//! expects of a target); the store, queue, worker and ledger figures are read from the shared
//! database when scraped, so every server reports the same.

use std::sync::Mutex;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    /// The route's pattern (`/{ns}/{name}/resolve/{rev}/{*path}`), never the path itself: the
    /// number of series stays that of the routes.
    route: String,
    method: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
    method: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AccountLabel {
    account: String,
}

type LatencyFamily = Family<RouteLabels, Histogram, fn() -> Histogram>;

/// This process's metrics and the gauges refreshed at each scrape.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: LatencyFamily,
    upload_bytes: Counter,
    download_bytes: Counter,
    store_bytes: Gauge,
    store_xorbs: Gauge,
    file_bytes: Gauge,
    files: Gauge,
    dedup_ratio: Gauge<f64, AtomicU64>,
    units: Family<StateLabel, Gauge>,
    queued: Gauge,
    workers_online: Gauge,
    ledger: Family<AccountLabel, Gauge>,
    /// One scrape at a time reads the database; the others wait for its answer.
    scrape: tokio::sync::Mutex<()>,
    /// When `/ready` last checked the database and the store, and what it found.
    readiness: Mutex<Option<(Instant, Result<(), String>)>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

fn latency_histogram() -> Histogram {
    // 0.25 ms to about 8 s.
    Histogram::new(exponential_buckets(0.000_25, 2.0, 16))
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("commons");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register("http_requests", "HTTP requests answered, by route pattern, method and status", requests.clone());
        let latency = LatencyFamily::new_with_constructor(latency_histogram as fn() -> Histogram);
        registry.register("http_request_duration_seconds", "Time to the response's head, by route pattern and method", latency.clone());
        let upload_bytes = Counter::default();
        registry.register(
            "upload_bytes",
            "Bytes of files received by successful uploads (LFS objects and parts, Xet xorbs)",
            upload_bytes.clone(),
        );
        let download_bytes = Counter::default();
        registry.register(
            "download_bytes",
            "Bytes of files sent by successful downloads (/resolve, Xet xorb ranges)",
            download_bytes.clone(),
        );
        let store_bytes = Gauge::default();
        registry.register("store_bytes", "Bytes of xorbs the store index holds", store_bytes.clone());
        let store_xorbs = Gauge::default();
        registry.register("store_xorbs", "Xorbs the store index holds", store_xorbs.clone());
        let file_bytes = Gauge::default();
        registry.register("store_file_bytes", "Bytes of the distinct files the stored xorbs reconstruct", file_bytes.clone());
        let files = Gauge::default();
        registry.register("store_files", "Distinct files stored", files.clone());
        let dedup_ratio = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "store_dedup_ratio",
            "Bytes of distinct files per byte stored (deduplication and compression)",
            dedup_ratio.clone(),
        );
        let units = Family::<StateLabel, Gauge>::default();
        registry.register("compute_units", "Work units by state", units.clone());
        let queued = Gauge::default();
        registry.register("compute_queued_assignments", "Assignments wanted by open units and not yet handed out", queued.clone());
        let workers_online = Gauge::default();
        registry.register("compute_workers_online", "Workers seen within the online window", workers_online.clone());
        let ledger = Family::<AccountLabel, Gauge>::default();
        registry.register("ledger_balance", "Credits by kind of ledger account (issuer, user, escrow); they sum to zero", ledger.clone());
        Self {
            registry,
            requests,
            latency,
            upload_bytes,
            download_bytes,
            store_bytes,
            store_xorbs,
            file_bytes,
            files,
            dedup_ratio,
            units,
            queued,
            workers_online,
            ledger,
            scrape: tokio::sync::Mutex::new(()),
            readiness: Mutex::new(None),
        }
    }
}

/// Which way a route moves file bytes, for the upload and download counters.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Transfer {
    Upload,
    Download,
}

fn transfer_of(route: &str, method: &Method) -> Option<Transfer> {
    if method == Method::GET && (route.contains("/resolve/") || route.starts_with("/xet/v1/xorb-data/")) {
        return Some(Transfer::Download);
    }
    let upload = route.starts_with("/api/lfs/objects/{oid}") && !route.ends_with("/complete") && !route.ends_with("/verify")
        || route.contains("/xorbs/");
    ((method == Method::PUT || method == Method::POST) && upload).then_some(Transfer::Upload)
}

fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

fn content_length(headers: &HeaderMap) -> u64 {
    headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// The middleware: counts each request under its route's pattern, with its status and the time
/// to its response's head.
pub(crate) async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().map_or("unmatched", |p| p.as_str()).to_string();
    let method = request.method().clone();
    let sent = content_length(request.headers());
    let start = Instant::now();
    let response = next.run(request).await;
    let metrics = &state.metrics;
    let labels = RouteLabels { route, method: method_label(&method) };
    metrics.latency.get_or_create(&labels).observe(start.elapsed().as_secs_f64());
    let status = response.status();
    if status.is_success() {
        match transfer_of(&labels.route, &method) {
            Some(Transfer::Upload) => {
                metrics.upload_bytes.inc_by(sent);
            }
            Some(Transfer::Download) => {
                metrics.download_bytes.inc_by(content_length(response.headers()));
            }
            None => {}
        }
    }
    metrics.requests.get_or_create(&RequestLabels { route: labels.route, method: labels.method, status: status.as_u16() }).inc();
    response
}

/// `GET /metrics`: for the hub's operator (a token of the account the compute coordinator
/// names as operator; Prometheus sends it as `authorization: credentials`). It reads the whole
/// store index and ledger, which no anonymous caller may make the hub do.
pub(crate) async fn scrape(State(state): State<AppState>, caller: Caller) -> ApiResult<Response> {
    let token = caller.require_account()?;
    let operator = state.compute.as_ref().and_then(|c| c.config().operator_user.as_deref());
    if operator != Some(token.user.name.as_str()) {
        return Err(ApiError::forbidden("metrics are for the hub's operator"));
    }
    let metrics = &state.metrics;
    let _one_at_a_time = metrics.scrape.lock().await;
    let store = state.db.store_totals().await?;
    metrics.store_bytes.set(gauge(store.stored_bytes));
    metrics.store_xorbs.set(gauge(store.xorbs));
    metrics.file_bytes.set(gauge(store.file_bytes));
    metrics.files.set(gauge(store.files));
    metrics.dedup_ratio.set(if store.stored_bytes == 0 { 1.0 } else { store.file_bytes as f64 / store.stored_bytes as f64 });
    if let Some(compute) = &state.compute {
        let stats = compute.stats().await.map_err(ApiError::internal)?;
        metrics.units.clear();
        for (unit_state, n) in &stats.units_by_state {
            metrics.units.get_or_create(&StateLabel { state: unit_state.clone() }).set(*n);
        }
        metrics.queued.set(stats.queued_assignments);
        metrics.workers_online.set(stats.workers_online);
        metrics.ledger.clear();
        for (account, total) in &stats.ledger_by_account_kind {
            metrics.ledger.get_or_create(&AccountLabel { account: account.clone() }).set(*total);
        }
    }
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &metrics.registry).map_err(ApiError::internal)?;
    let content_type = HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8");
    Ok(([(header::CONTENT_TYPE, content_type)], text).into_response())
}

fn gauge(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// How long `/ready` reuses its last check: a flood of probes costs one database query and
/// one store listing a second.
const READY_FOR: Duration = Duration::from_secs(1);

/// `GET /ready`: 200 when the database answers and the store lists, else 503 naming which does
/// not (`/health` says only that the process serves).
pub(crate) async fn ready(State(state): State<AppState>) -> Response {
    let cached = state.metrics.readiness.lock().ok().and_then(|r| r.clone()).filter(|(at, _)| at.elapsed() < READY_FOR);
    let outcome = match cached {
        Some((_, outcome)) => outcome,
        None => {
            let outcome = match state.db.ping().await {
                Err(e) => Err(format!("the database does not answer: {e}")),
                Ok(()) => state.cas.ping().await.map_err(|e| format!("the object store does not answer: {e}")),
            };
            if let Ok(mut slot) = state.metrics.readiness.lock() {
                *slot = Some((Instant::now(), outcome.clone()));
            }
            outcome
        }
    };
    match outcome {
        Ok(()) => axum::Json(serde_json::json!({"status": "ready"})).into_response(),
        Err(message) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "NotReady", message).into_response(),
    }
}
