//! The compute API of a Commons hub: jobs, workers, assignments, credits
//! (see `commons-protocol` for the message types).

use std::time::Duration;

use commons_protocol::{
    AssignmentReport, CreditsView, Heartbeat, HeartbeatAnswer, JobRequest, JobView, Lease, Leases, LedgerDump, LogLine, RegisterWorker,
    Registered, Report, ReportAnswer, ReportBatch, ReportBatchAnswer, WorkerView,
};
use reqwest::StatusCode;

use crate::Client;
use crate::api::read_json;
use crate::error::Result;

#[derive(serde::Deserialize)]
struct Lines {
    lines: Vec<LogLine>,
}

impl Client {
    fn compute_url(&self, tail: &str) -> String {
        format!("{}/api/{tail}", self.endpoint())
    }

    async fn post_json<B: serde::Serialize, T: serde::de::DeserializeOwned>(&self, tail: &str, body: &B) -> Result<T> {
        let url = self.compute_url(tail);
        let resp = self.send(self.http().post(&url).json(body)).await?;
        read_json(resp, &url).await
    }

    async fn get_compute<T: serde::de::DeserializeOwned>(&self, tail: &str) -> Result<T> {
        let url = self.compute_url(tail);
        let resp = self.send(self.http().get(&url)).await?;
        read_json(resp, &url).await
    }

    pub async fn submit_job(&self, request: &JobRequest) -> Result<JobView> {
        self.post_json("jobs", request).await
    }

    pub async fn job(&self, id: i64) -> Result<JobView> {
        self.get_compute(&format!("jobs/{id}")).await
    }

    pub async fn jobs(&self, owner: Option<&str>) -> Result<Vec<JobView>> {
        match owner {
            Some(owner) => {
                self.get_compute(&format!(
                    "jobs?owner={}",
                    percent_encoding::utf8_percent_encode(owner, percent_encoding::NON_ALPHANUMERIC)
                ))
                .await
            }
            None => self.get_compute("jobs").await,
        }
    }

    pub async fn cancel_job(&self, id: i64) -> Result<JobView> {
        self.post_json(&format!("jobs/{id}/cancel"), &serde_json::json!({})).await
    }

    /// Log lines of a job after line id `after`.
    pub async fn job_logs(&self, id: i64, after: i64) -> Result<Vec<LogLine>> {
        Ok(self.get_compute::<Lines>(&format!("jobs/{id}/logs?after={after}")).await?.lines)
    }

    pub async fn workers(&self) -> Result<Vec<WorkerView>> {
        self.get_compute("workers").await
    }

    pub async fn credits(&self) -> Result<CreditsView> {
        self.get_compute("credits").await
    }

    pub async fn ledger(&self) -> Result<LedgerDump> {
        self.get_compute("ledger").await
    }

    pub async fn register_worker(&self, request: &RegisterWorker) -> Result<Registered> {
        self.post_json("workers/register", request).await
    }

    /// Long-polls for work: `None` when none came within `wait`.
    pub async fn pull(&self, worker_id: i64, wait: Duration) -> Result<Option<Lease>> {
        let url = self.compute_url(&format!("workers/{worker_id}/pull?wait={}", wait.as_secs()));
        let resp = self.send(self.http().post(&url).timeout(wait + Duration::from_secs(30))).await?;
        if resp.status() == StatusCode::NO_CONTENT {
            return Ok(None);
        }
        Ok(Some(read_json(resp, &url).await?))
    }

    pub async fn heartbeat(&self, assignment_id: i64, beat: &Heartbeat) -> Result<HeartbeatAnswer> {
        self.post_json(&format!("assignments/{assignment_id}/heartbeat"), beat).await
    }

    pub async fn report(&self, assignment_id: i64, report: &Report) -> Result<ReportAnswer> {
        self.post_json(&format!("assignments/{assignment_id}/report"), report).await
    }

    /// Reports and asks for worker `worker_id`'s next lease in the same request (waiting up to
    /// `wait` for one); the lease is in the answer's `next`.
    pub async fn report_and_pull(&self, assignment_id: i64, report: &Report, worker_id: i64, wait: Duration) -> Result<ReportAnswer> {
        let url = self.compute_url(&format!("assignments/{assignment_id}/report?next_for={worker_id}&wait={}", wait.as_secs()));
        let resp = self.send(self.http().post(&url).json(report).timeout(wait + Duration::from_secs(30))).await?;
        read_json(resp, &url).await
    }

    /// Up to `count` leases for worker `worker_id`, waiting up to `wait` for the first; empty
    /// when none came.
    pub async fn leases(&self, worker_id: i64, count: usize, wait: Duration) -> Result<Vec<Lease>> {
        let url = self.compute_url(&format!("workers/{worker_id}/leases?count={count}&wait={}", wait.as_secs()));
        let resp = self.send(self.http().post(&url).timeout(wait + Duration::from_secs(30))).await?;
        Ok(read_json::<Leases>(resp, &url).await?.leases)
    }

    /// Several reports in one request, and up to `next` new leases for worker `worker_id`
    /// (waiting up to `wait` for them). Each report's outcome is in the answer, in order.
    pub async fn report_batch(
        &self,
        worker_id: i64,
        reports: &[AssignmentReport],
        next: usize,
        wait: Duration,
    ) -> Result<ReportBatchAnswer> {
        let url = self.compute_url(&format!("workers/{worker_id}/reports?next={next}&wait={}", wait.as_secs()));
        let body = ReportBatch { reports: reports.to_vec() };
        let resp = self.send(self.http().post(&url).json(&body).timeout(wait + Duration::from_secs(30))).await?;
        read_json(resp, &url).await
    }
}
