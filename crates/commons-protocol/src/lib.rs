//! The compute protocol: the JSON bodies of `/api/jobs`, `/api/workers` and `/api/assignments`.
//!
//! Workers pull: they register, then long-poll for a lease, stream heartbeats (progress, logs,
//! per-epoch metrics) that keep the lease alive, and report once. Nothing here needs an inbound
//! connection to the worker, so workers behind NAT take part.
//!
//! Both sides of the wire use these types; the server is `commons-compute`, the worker
//! `commons-worker`, the people-facing side the `commons job` / `commons credits` commands.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Bumped when a message changes meaning; a worker of another version is refused at registration.
pub const PROTOCOL_VERSION: u32 = 1;

/// Floating-point operations worth one credit (1 GFLOP): work is priced by what it computes, so a
/// GPU and a CPU earn the same for the same unit.
pub const FLOPS_PER_CREDIT: f64 = 1e9;

/// Credits a unit of `flops` operations is worth.
pub fn credits_for(flops: f64) -> i64 {
    if flops.is_finite() && flops > 0.0 { (flops / FLOPS_PER_CREDIT).ceil() as i64 } else { 0 }
}

// ---------------------------------------------------------------------------------------------
// Repositories

/// The kind of a repository: the one definition every layer uses (database rows, API paths,
/// request bodies, cache folders, the command line).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RepoKind {
    Model,
    Dataset,
    Algorithm,
}

impl RepoKind {
    pub const ALL: [RepoKind; 3] = [RepoKind::Model, RepoKind::Dataset, RepoKind::Algorithm];

    /// The singular name: the `type` field of request bodies, the stored value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Model => "model",
            Self::Dataset => "dataset",
            Self::Algorithm => "algorithm",
        }
    }

    /// The API path segment (`/api/models/...`), also the cache folder prefix (`models--ns--name`).
    pub fn plural(self) -> &'static str {
        match self {
            Self::Model => "models",
            Self::Dataset => "datasets",
            Self::Algorithm => "algorithms",
        }
    }

    /// Prefix of the web and file routes (`/datasets/ns/name/resolve/...`).
    pub fn url_prefix(self) -> &'static str {
        match self {
            Self::Model => "",
            Self::Dataset => "datasets/",
            Self::Algorithm => "algorithms/",
        }
    }

    /// The kind of a singular name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The kind of an API path segment.
    pub fn from_plural(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.plural() == s)
    }
}

/// A name that is no repository kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownRepoKind(pub String);

impl std::fmt::Display for UnknownRepoKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "unknown repository type {:?}: use model, dataset or algorithm", self.0)
    }
}

impl std::error::Error for UnknownRepoKind {}

/// Singular or plural: `model`, `datasets`, ...
impl std::str::FromStr for RepoKind {
    type Err = UnknownRepoKind;

    fn from_str(s: &str) -> Result<Self, UnknownRepoKind> {
        Self::parse(s).or_else(|| Self::from_plural(s)).ok_or_else(|| UnknownRepoKind(s.to_string()))
    }
}

impl std::fmt::Display for RepoKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

// ---------------------------------------------------------------------------------------------
// Jobs

/// A stored or sent name that is none of a state enum's values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownValue {
    pub what: &'static str,
    pub value: String,
}

impl std::fmt::Display for UnknownValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?} is no {}", self.value, self.what)
    }
}

impl std::error::Error for UnknownValue {}

/// An enum stored as text: `as_str` writes it, `TryFrom<&str>` reads it back, serde and
/// `Display` use the same lowercase names.
macro_rules! text_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "lowercase")]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $name {
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text),+
                }
            }
        }

        impl TryFrom<&str> for $name {
            type Error = UnknownValue;

            fn try_from(s: &str) -> Result<Self, UnknownValue> {
                match s {
                    $($text => Ok(Self::$variant),)+
                    other => Err(UnknownValue { what: stringify!($name), value: other.to_string() }),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.pad(self.as_str())
            }
        }
    };
}

text_enum! {
    /// A job's life: `queued → running → validating → done | failed | cancelled`
    /// (`validating → running` when a training claim is rejected and the unit trains again).
    JobState {
        Queued => "queued",
        Running => "running",
        Validating => "validating",
        Done => "done",
        Failed => "failed",
        Cancelled => "cancelled",
    }
}

impl JobState {
    /// Done, failed or cancelled: nothing changes it any more.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Done | Self::Failed | Self::Cancelled)
    }
}

text_enum! {
    /// A unit's life: `open → done | failed | cancelled`; while open, `open_slots` says how many
    /// more assignments it wants.
    UnitState {
        Open => "open",
        Done => "done",
        Failed => "failed",
        Cancelled => "cancelled",
    }
}

text_enum! {
    /// What a unit does: train a recipe, evaluate a model (also: validate a training), predict
    /// a class for every example of a split (batch inference), or nothing (the dispatch
    /// benchmark).
    Role {
        Train => "train",
        Eval => "eval",
        Predict => "predict",
        Noop => "noop",
    }
}

text_enum! {
    /// An assignment (BOINC's "result"): `running → reported | errored | expired | cancelled`.
    AssignmentState {
        Running => "running",
        Reported => "reported",
        Errored => "errored",
        Expired => "expired",
        Cancelled => "cancelled",
    }
}

text_enum! {
    /// What validation made of a reported result.
    Outcome {
        Pending => "pending",
        Valid => "valid",
        Invalid => "invalid",
    }
}

text_enum! {
    /// How a validated result was established: reproduced bit for bit by workers of at least
    /// two distinct owners, or attested by the hosts of one owner alone (the hub operator's own
    /// trusted host, or a trusted volunteer's spot-checked host) without an independent copy.
    Verification {
        Reproduced => "reproduced",
        Attested => "attested",
    }
}

/// A worker whose result agreed with the accepted one.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Agreed {
    pub assignment: i64,
    pub worker: String,
    pub owner: String,
    pub engine_version: String,
    /// A host of the hub's operator (trusted without replication).
    #[serde(default)]
    pub operator: bool,
}

/// How a result agreed on by `agreed` was verified, with the number of distinct workers and
/// of distinct owners among them: reproduced when two or more owners agree, attested otherwise.
pub fn verification_of(agreed: &[Agreed]) -> (Verification, usize, usize) {
    let mut workers: Vec<&str> = agreed.iter().map(|a| a.worker.as_str()).collect();
    workers.sort_unstable();
    workers.dedup();
    let mut owners: Vec<&str> = agreed.iter().map(|a| a.owner.as_str()).collect();
    owners.sort_unstable();
    owners.dedup();
    let kind = if owners.len() >= 2 { Verification::Reproduced } else { Verification::Attested };
    (kind, workers.len(), owners.len())
}

/// What [`verification_of`] means, in words a card or a board shows.
pub fn verification_text(kind: Verification, workers: usize, owners: usize, agreed: &[Agreed]) -> String {
    let plural = |n: usize, one: &str, many: &str| if n == 1 { format!("{n} {one}") } else { format!("{n} {many}") };
    match kind {
        Verification::Reproduced => {
            format!(
                "reproduced bit for bit by {} of {}",
                plural(workers, "worker", "workers"),
                plural(owners, "distinct owner", "distinct owners")
            )
        }
        Verification::Attested if agreed.iter().all(|a| a.operator) => format!(
            "attested by the hub operator's own trusted host{} alone ({}): not reproduced independently",
            if workers == 1 { "" } else { "s" },
            names(agreed)
        ),
        Verification::Attested => format!("attested by the hosts of one owner alone ({}): not reproduced independently", names(agreed)),
    }
}

fn names(agreed: &[Agreed]) -> String {
    let mut names: Vec<String> = agreed.iter().map(|a| format!("{} of {}", a.worker, a.owner)).collect();
    names.sort_unstable();
    names.dedup();
    names.join(", ")
}

/// One class and a model's probability for it: an element of the Inference API's answer to a
/// classification (`[{"label", "score"}]`), as the hub's inference route and `commons predict
/// --json` print it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassScore {
    pub label: String,
    pub score: f32,
}

/// `POST /api/jobs`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum JobRequest {
    /// Train an algorithm repo's recipe on a dataset repo; the model lands in `output`
    /// (a model repo of the submitter, created when missing).
    Train {
        /// `namespace/name` or `namespace/name@revision` of an algorithm repo.
        algorithm: String,
        /// `namespace/name[@revision]` of a dataset repo.
        dataset: String,
        /// Recipe overrides, `key=value` (as `commons train --set`).
        #[serde(default)]
        overrides: Vec<String>,
        /// Name of the output model repo; default `<algorithm>-<dataset>`.
        #[serde(default)]
        output: Option<String>,
        /// A hyper-parameter sweep: `key=v1,v2,...` per swept key; every combination of the
        /// values is trained as its own unit, and the best model by test accuracy goes to `main`.
        #[serde(default)]
        sweep: Vec<String>,
        /// Run only on workers that offer a GPU.
        #[serde(default)]
        gpu: bool,
    },
    /// Score a model repo on a split of a dataset repo.
    Eval {
        /// `namespace/name[@revision]` of a model repo.
        model: String,
        dataset: String,
        #[serde(default = "default_split")]
        split: String,
        /// Split the evaluation into this many shards, each its own validated unit.
        #[serde(default)]
        shards: Option<usize>,
        /// Run only on workers that offer a GPU.
        #[serde(default)]
        gpu: bool,
    },
    /// Batch inference: a classifier's most likely class and its probability for every example
    /// of a split, written as Parquet to a dataset repo of the submitter (`output`, created when
    /// missing).
    Predict {
        /// `namespace/name[@revision]` of a model repo.
        model: String,
        dataset: String,
        #[serde(default = "default_split")]
        split: String,
        /// Split the examples into this many units; by default as few as hold at most
        /// [`MAX_PREDICTIONS_PER_UNIT`] examples each.
        #[serde(default)]
        shards: Option<usize>,
        /// Name of the output dataset repo; default `<model>-<split>-predictions`.
        #[serde(default)]
        output: Option<String>,
        /// Run only on workers that offer a GPU.
        #[serde(default)]
        gpu: bool,
    },
}

/// Most examples one batch-inference unit predicts: its report stays far below the hub's JSON
/// body limit (a row is a class, a probability and a label: under 30 bytes of JSON).
pub const MAX_PREDICTIONS_PER_UNIT: usize = 20_000;

fn default_split() -> String {
    "test".into()
}

fn one() -> usize {
    1
}

/// A repository pinned to one commit.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PinnedRepo {
    /// `namespace/name`.
    pub repo: String,
    /// The commit id the reference resolved to at submission.
    pub revision: String,
}

impl PinnedRepo {
    pub fn display(&self) -> String {
        format!("{}@{}", self.repo, &self.revision[..self.revision.len().min(12)])
    }
}

/// What a job runs, with every input pinned at submission.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum JobSpec {
    Train {
        algorithm: PinnedRepo,
        /// Path of the recipe inside the algorithm repo.
        recipe_path: String,
        dataset: PinnedRepo,
        overrides: Vec<String>,
        /// The model repo the result is published to.
        output: String,
        /// The sweep's points (each a list of `key=value`), empty for a single run.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        points: Vec<Vec<String>>,
        /// Its units go only to workers that offer a GPU.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        gpu: bool,
    },
    Eval {
        model: PinnedRepo,
        dataset: PinnedRepo,
        split: String,
        #[serde(default = "one")]
        shards: usize,
        /// Its units go only to workers that offer a GPU.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        gpu: bool,
    },
    Predict {
        model: PinnedRepo,
        dataset: PinnedRepo,
        split: String,
        shards: usize,
        /// The dataset repo (of the submitter) the predictions are written to.
        output: String,
        /// Its units go only to workers that offer a GPU.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        gpu: bool,
    },
    /// Synthetic units that do nothing: used to measure dispatch.
    Noop { units: usize },
}

impl JobSpec {
    /// Whether only a worker that offers a GPU may take the job's units.
    pub fn needs_gpu(&self) -> bool {
        match self {
            JobSpec::Train { gpu, .. } | JobSpec::Eval { gpu, .. } | JobSpec::Predict { gpu, .. } => *gpu,
            JobSpec::Noop { .. } => false,
        }
    }

    /// Makes the job's units go only to workers that offer a GPU (when `gpu`); units that do
    /// nothing need none.
    pub fn ask_for_gpu(&mut self, gpu: bool) {
        if let JobSpec::Train { gpu: asked, .. } | JobSpec::Eval { gpu: asked, .. } | JobSpec::Predict { gpu: asked, .. } = self {
            *asked = gpu;
        }
    }
}

/// A job as `GET /api/jobs/{id}` shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobView {
    pub id: i64,
    pub owner: String,
    pub state: JobState,
    pub spec: JobSpec,
    /// Credits escrowed at submission.
    pub escrow: i64,
    /// Credits paid to workers so far.
    pub paid: i64,
    /// Credits returned to the submitter when the job ended.
    pub refunded: i64,
    pub result: Option<Value>,
    pub error: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub units: Vec<UnitView>,
}

impl JobView {
    pub fn is_finished(&self) -> bool {
        self.state.is_final()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UnitView {
    pub id: i64,
    pub role: Role,
    pub state: UnitState,
    pub quorum: i64,
    /// The train unit this evaluation validates.
    pub validates_unit: Option<i64>,
    pub flops: f64,
    pub credits: i64,
    pub errors: i64,
    pub last_error: Option<String>,
    /// The latest checkpoint of a train unit.
    #[serde(default)]
    pub checkpoint: Option<CheckpointRef>,
    /// Why an open unit waits, when no online worker may take it (homogeneous redundancy and
    /// distinct owners can leave a unit without a taker on a small network).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting: Option<String>,
    pub assignments: Vec<AssignmentView>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AssignmentView {
    pub id: i64,
    pub worker_id: i64,
    pub worker: String,
    pub owner: String,
    pub state: AssignmentState,
    pub outcome: Outcome,
    pub progress: Option<Progress>,
    pub epochs: Vec<EpochPoint>,
    pub output: Option<Value>,
    pub error: Option<String>,
    pub created_at: i64,
    pub reported_at: Option<i64>,
}

/// `GET /api/jobs/{id}/logs?after=N`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LogLine {
    pub id: i64,
    pub assignment_id: Option<i64>,
    pub line: String,
    pub created_at: i64,
}

// ---------------------------------------------------------------------------------------------
// Workers

/// `POST /api/workers/register`: who the worker is and what it can do.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RegisterWorker {
    pub protocol_version: u32,
    /// Unique among the owner's workers; re-registering with the same name resumes that worker.
    pub name: String,
    pub cores: u32,
    pub memory_bytes: u64,
    pub gpu: Option<String>,
    pub engine_version: String,
    pub platform: String,
    /// Machines of one class compute bit-identical results (engine backend, architecture, SIMD
    /// level); results that must agree are only compared within a class.
    pub numeric_class: String,
    /// Measured GFLOP/s of the dense kernel.
    pub speed_gflops: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Registered {
    pub worker_id: i64,
    /// A lease lapses this long after the last heartbeat.
    pub lease_seconds: u64,
    /// Heartbeat at least this often.
    pub heartbeat_seconds: u64,
}

/// `GET /api/workers`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkerView {
    pub id: i64,
    pub name: String,
    pub owner: String,
    pub cores: i64,
    pub memory_bytes: i64,
    pub gpu: Option<String>,
    pub engine_version: String,
    pub platform: String,
    pub numeric_class: String,
    pub speed_gflops: f64,
    pub online: bool,
    pub last_seen: i64,
    pub consecutive_valid: i64,
    pub valid_results: i64,
    pub invalid_results: i64,
    pub error_results: i64,
    /// Trusted hosts are spot-checked instead of always replicated.
    pub trusted: bool,
    /// Units it runs now: `job/unit`.
    pub running: Vec<String>,
}

/// What a lease hands the worker.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Lease {
    pub assignment_id: i64,
    pub unit_id: i64,
    pub job_id: i64,
    pub work: Work,
    pub lease_seconds: u64,
    /// A token that may write only the job's output repository (train units).
    pub upload_token: Option<String>,
}

/// The work of one unit.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "role", rename_all = "lowercase")]
pub enum Work {
    Train {
        algorithm: PinnedRepo,
        recipe_path: String,
        dataset: PinnedRepo,
        overrides: Vec<String>,
        /// Model repo and branch the trained model is committed to.
        output_repo: String,
        output_branch: String,
        /// A checkpoint an earlier worker left: continue from it instead of from scratch.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        resume: Option<CheckpointRef>,
    },
    Eval {
        model: PinnedRepo,
        dataset: PinnedRepo,
        split: String,
        /// `(index, count)`: score only this shard of the split.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        shard: Option<(usize, usize)>,
    },
    /// Predict a class for every example of a shard of a split.
    Predict {
        model: PinnedRepo,
        dataset: PinnedRepo,
        split: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        shard: Option<(usize, usize)>,
    },
    Noop,
}

/// Progress of a running unit.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Progress {
    pub epoch: usize,
    pub epochs: usize,
    pub step: usize,
    pub steps_per_epoch: usize,
    /// Mean training loss of the epoch so far (absent when the work has none).
    pub loss: Option<f64>,
    pub samples_per_second: f64,
    pub eta_seconds: f64,
    /// 0..=1 over the whole unit.
    pub fraction: f64,
}

/// One finished epoch, streamed as soon as it ends.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EpochPoint {
    pub epoch: usize,
    pub train_loss: f64,
    pub seconds: f64,
}

/// A training checkpoint on the hub: the `checkpoint/` folder of `commit` in the unit's output
/// repository, after `epochs_done` epochs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CheckpointRef {
    pub commit: String,
    pub epochs_done: usize,
}

/// Most log lines and epoch points one heartbeat carries: a worker sends the rest in the next
/// one; the hub keeps no more log lines and refuses a beat with more epoch points (merging them
/// runs on its writer).
pub const HEARTBEAT_MAX_LOG_LINES: usize = 200;
pub const HEARTBEAT_MAX_EPOCHS: usize = 1000;

/// `POST /api/assignments/{id}/heartbeat`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Heartbeat {
    pub progress: Option<Progress>,
    #[serde(default)]
    pub log: Vec<String>,
    #[serde(default)]
    pub epochs: Vec<EpochPoint>,
    /// A checkpoint just uploaded: if this worker goes silent, the next one resumes from it.
    #[serde(default)]
    pub checkpoint: Option<CheckpointRef>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HeartbeatAnswer {
    /// Stop: the job was cancelled, the unit decided without this result, or the lease lapsed.
    pub stop: bool,
    pub reason: Option<String>,
    pub lease_expires_at: i64,
}

/// `POST /api/assignments/{id}/report`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum Report {
    Success { output: Output },
    Error { error: String },
}

/// What a unit produced.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "role", rename_all = "lowercase")]
pub enum Output {
    Train {
        /// The commit holding the model, on the unit's output branch.
        model_commit: String,
        /// Test metrics of the trained model (the engine's deterministic evaluation).
        test: Value,
        flops: f64,
        epochs: usize,
        wall_seconds: f64,
    },
    Eval {
        metrics: Value,
        flops: f64,
    },
    Predict {
        predictions: Predictions,
        flops: f64,
    },
    Noop,
}

/// What a batch-inference unit computed: for each example of its shard, in order, the model's
/// most likely class (the first on a tie) with its probability, beside the example's own label.
/// Replicas agree only when every value is the same bit for bit.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Predictions {
    /// Position of the shard's first example in the split.
    pub first_row: usize,
    /// The model's class names, in class order.
    pub labels: Vec<String>,
    /// Predicted class of each example (an index into `labels`).
    pub classes: Vec<u32>,
    /// Probability the model gives its predicted class.
    pub scores: Vec<f32>,
    /// The example's own label in the dataset (an index into `labels`).
    pub targets: Vec<u32>,
}

impl Predictions {
    /// Examples predicted.
    pub fn len(&self) -> usize {
        self.classes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.classes.is_empty()
    }

    /// Why these predictions cannot be what a unit computed, if they cannot: columns of unequal
    /// length, more than [`MAX_PREDICTIONS_PER_UNIT`] rows or 65,536 classes, a class or label
    /// outside `labels`, a probability outside (0, 1].
    pub fn problem(&self) -> Option<String> {
        let rows = self.classes.len();
        if self.scores.len() != rows || self.targets.len() != rows {
            return Some(format!(
                "{rows} classes, {} scores and {} targets: one of each per example",
                self.scores.len(),
                self.targets.len()
            ));
        }
        if rows > MAX_PREDICTIONS_PER_UNIT {
            return Some(format!("{rows} predictions; a unit makes at most {MAX_PREDICTIONS_PER_UNIT}"));
        }
        if self.labels.is_empty() || self.labels.len() > 65_536 || self.labels.iter().any(|l| l.len() > 256) {
            return Some("between 1 and 65,536 class names of at most 256 bytes each".into());
        }
        let classes = self.labels.len() as u32;
        if let Some(bad) = self.classes.iter().chain(&self.targets).find(|c| **c >= classes) {
            return Some(format!("class {bad} of {classes}"));
        }
        if let Some(bad) = self.scores.iter().find(|p| !(**p > 0.0 && **p <= 1.0)) {
            return Some(format!("probability {bad}"));
        }
        None
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReportAnswer {
    /// Whether this report was taken into account (a report for a decided unit, or a second
    /// report of the same assignment, is answered but changes nothing).
    pub accepted: bool,
    pub message: String,
    /// The worker's next lease, when the report asked for one (`?next_for=WORKER&wait=S`): one
    /// round trip reports a result and fetches more work, as in BOINC's scheduler RPC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<Lease>,
}

/// Most leases one request may ask for, and most reports one request may carry: a worker that
/// runs many short units takes and returns them in batches (BOINC's scheduler likewise hands
/// out several jobs per RPC), and the cost of a request stays bounded.
pub const MAX_LEASES_PER_REQUEST: usize = 64;
pub const MAX_REPORTS_PER_REQUEST: usize = 64;

/// `POST /api/workers/{id}/leases?count=N&wait=S`: up to `count` leases, each durable before
/// the answer is sent; empty when no unit this worker may run appeared within `wait` seconds.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Leases {
    pub leases: Vec<Lease>,
}

/// One report of a [`ReportBatch`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AssignmentReport {
    pub assignment_id: i64,
    pub report: Report,
}

/// `POST /api/workers/{id}/reports?next=N&wait=S`: several reports, and up to `next` new leases
/// for worker `id`, in one round trip.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReportBatch {
    pub reports: Vec<AssignmentReport>,
}

/// What became of one report of a batch. Each report stands alone: one that is refused (not
/// the caller's assignment, the wrong kind of output) changes nothing and does not undo the
/// others.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReportOutcome {
    pub assignment_id: i64,
    pub accepted: bool,
    pub message: String,
    /// The error's code when the report was refused as an error (`AssignmentNotFound`,
    /// `BadRequest`, ...), as the single-report route would have answered it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The answer to a [`ReportBatch`]: one outcome per report, in the order sent, and the new leases.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ReportBatchAnswer {
    pub outcomes: Vec<ReportOutcome>,
    pub next: Vec<Lease>,
}

// ---------------------------------------------------------------------------------------------
// Credits

/// `GET /api/credits`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreditsView {
    pub user: String,
    pub balance: i64,
    pub history: Vec<CreditEntry>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreditEntry {
    pub transfer_id: i64,
    pub kind: String,
    pub amount: i64,
    pub job_id: Option<i64>,
    pub unit_id: Option<i64>,
    pub assignment_id: Option<i64>,
    pub memo: String,
    pub created_at: i64,
}

/// `GET /api/ledger`: the whole ledger, public so anyone can audit it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LedgerDump {
    pub accounts: Vec<LedgerAccount>,
    pub transfers: Vec<LedgerTransfer>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LedgerAccount {
    pub id: i64,
    /// `issuer`, `user` or `escrow`.
    pub kind: String,
    pub user: Option<String>,
    pub job_id: Option<i64>,
    pub balance: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LedgerTransfer {
    pub id: i64,
    pub kind: String,
    pub job_id: Option<i64>,
    pub unit_id: Option<i64>,
    pub assignment_id: Option<i64>,
    pub memo: String,
    /// `(account id, amount)` pairs; they sum to zero.
    pub entries: Vec<(i64, i64)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn predictions() -> Predictions {
        Predictions {
            first_row: 10,
            labels: vec!["cat".into(), "dog".into()],
            classes: vec![0, 1, 1],
            scores: vec![0.5, 0.75, 1.0],
            targets: vec![1, 1, 0],
        }
    }

    #[test]
    fn predictions_a_unit_could_not_have_made_are_named_for_what_is_wrong() {
        assert_eq!(predictions().problem(), None);
        type Spoil = fn(&mut Predictions);
        let cases: [(Spoil, &str); 7] = [
            (|p| p.scores.pop().map(drop).unwrap_or_default(), "one of each per example"),
            (|p| p.targets.push(0), "one of each per example"),
            (|p| p.classes[1] = 2, "class 2 of 2"),
            (|p| p.targets[0] = 7, "class 7 of 2"),
            (|p| p.scores[0] = 0.0, "probability 0"),
            (|p| p.scores[2] = f32::NAN, "probability NaN"),
            (|p| p.labels.clear(), "between 1 and 65,536 class names"),
        ];
        for (spoil, expected) in cases {
            let mut p = predictions();
            spoil(&mut p);
            let problem = p.problem().unwrap_or_default();
            assert!(problem.contains(expected), "{problem:?} should say {expected:?}");
        }
        let many = MAX_PREDICTIONS_PER_UNIT + 1;
        let huge =
            Predictions { first_row: 0, labels: vec!["a".into()], classes: vec![0; many], scores: vec![1.0; many], targets: vec![0; many] };
        assert!(huge.problem().unwrap_or_default().contains("at most 20000"));
    }
}
