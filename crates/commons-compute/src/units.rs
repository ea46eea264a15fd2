//! Units of work as the coordinator stores them, and what every stage asks of them: the stored
//! payload, inserting a unit, an assignment as the writer sees it, and which workers a unit
//! admits. Submission (`jobs`), dispatch and validation all build on this module; none of them
//! imports another.

use crate::writer::params;
use commons_protocol::{AssignmentState, JobState, Role, UnitState, Work};
use serde::{Deserialize, Serialize};

use crate::error::{ComputeError, Result};
use crate::now;
use crate::writer::{Conn, Sql};

/// Results a training validation may collect (each an independent evaluation of the model).
pub(crate) const VALIDATION_MAX_RESULTS: i64 = 3;
/// What a unit row stores: the work, plus what the coordinator needs later.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StoredWork {
    pub work: Work,
    /// For a train unit: estimated operations of evaluating its model on the test split,
    /// the price of each validation.
    #[serde(default)]
    pub validation_flops: Option<f64>,
    /// For a validation unit: the train assignment whose claimed test metrics it checks.
    #[serde(default)]
    pub claim: Option<i64>,
}

impl StoredWork {
    /// The payload of unit `unit_id`.
    pub(crate) fn parse(payload: &str, unit_id: i64) -> Result<Self> {
        serde_json::from_str(payload).map_err(|e| ComputeError::Corrupt(format!("unit {unit_id} payload: {e}")))
    }

    /// The output repository of a train unit.
    pub(crate) fn output_repo(&self, unit_id: i64) -> Result<&str> {
        match &self.work {
            Work::Train { output_repo, .. } => Ok(output_repo),
            _ => Err(ComputeError::Corrupt(format!("unit {unit_id} is not a train unit"))),
        }
    }
}

pub(crate) struct NewUnit {
    pub role: Role,
    pub stored: StoredWork,
    pub quorum: i64,
    pub open_slots: i64,
    pub max_results: i64,
    pub flops: f64,
}

pub(crate) fn insert_unit(db: &Conn, job_id: i64, unit: &NewUnitRef<'_>, validates: Option<i64>, max_errors: i64) -> Result<i64> {
    let payload = serde_json::to_string(unit.stored).map_err(|e| ComputeError::Corrupt(e.to_string()))?;
    db.one(
        "INSERT INTO units (job_id, role, payload, state, quorum, open_slots, max_results, max_errors, validates_unit, flops, created_at, updated_at)
         VALUES (?1, ?2, ?3, 'open', ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10) RETURNING id",
        params![job_id, unit.role.as_str(), payload, unit.quorum, unit.open_slots, unit.max_results, max_errors, validates, unit.flops, now()],
        |r| r.get(0),
    )
}

/// A unit to insert, borrowed.
pub(crate) struct NewUnitRef<'a> {
    pub role: Role,
    pub stored: &'a StoredWork,
    pub quorum: i64,
    pub open_slots: i64,
    pub max_results: i64,
    pub flops: f64,
}

impl<'a> From<&'a NewUnit> for NewUnitRef<'a> {
    fn from(u: &'a NewUnit) -> Self {
        Self { role: u.role, stored: &u.stored, quorum: u.quorum, open_slots: u.open_slots, max_results: u.max_results, flops: u.flops }
    }
}

pub(crate) struct AssignmentRow {
    pub owner_id: i64,
    /// The unit needs this one result and no other (quorum 1, never replicated).
    pub alone: bool,
    pub flops: f64,
    pub id: i64,
    pub unit_id: i64,
    pub worker_id: i64,
    pub state: AssignmentState,
    pub role: Role,
    pub unit_state: UnitState,
    pub job_id: i64,
    pub job_state: JobState,
}

/// The owner and machine class of a result that constrains who may take a unit.
#[derive(Debug, Clone)]
pub(crate) struct Party {
    pub owner_id: i64,
    pub owner: String,
    pub class: String,
}

/// The owners and classes of the results a unit already has in play (running or reported), and
/// of the training claim it checks (`?2`, -1 for none). Read through the pool too, in
/// `writer::postgres_dialect`, which both engines read.
pub(crate) const RESULTS_IN_PLAY: &str =
    "SELECT a.owner_id, u.name, w.numeric_class FROM assignments a JOIN workers w ON w.id = a.worker_id JOIN users u ON u.id = a.owner_id
     WHERE (a.unit_id = ?1 AND a.state IN ('running', 'reported')) OR a.id = ?2";
/// The owners whose training of a unit was rejected.
pub(crate) const REJECTED_TRAINERS: &str = "SELECT DISTINCT a.owner_id, u.name, w.numeric_class FROM assignments a JOIN workers w ON w.id = a.worker_id JOIN users u ON u.id = a.owner_id
     WHERE a.unit_id = ?1 AND a.outcome = 'invalid'";

pub(crate) enum NeedsKind {
    Any,
    Untried,
    Agreeing,
}

/// What a unit asks of the worker that takes it. Results that must agree come from one class of
/// machines (homogeneous redundancy: bit-exact agreement is only promised within a class) and
/// from distinct owners (the operator's own hosts excepted); an owner whose training was
/// rejected does not train the unit again.
pub(crate) enum Needs {
    Any,
    Untried { rejected: Vec<Party> },
    Agreeing { others: Vec<Party> },
}

impl Needs {
    /// Which constraints apply to a unit of `role` and `quorum`, before loading them.
    pub(crate) fn kind(role: Role, quorum: i64) -> NeedsKind {
        match role {
            Role::Train => NeedsKind::Untried,
            Role::Eval | Role::Predict if quorum >= 2 => NeedsKind::Agreeing,
            _ => NeedsKind::Any,
        }
    }

    /// Whether a worker of `owner_id`, of `numeric_class`, may take the unit (the operator's own
    /// hosts are exempt from the distinct-owner rules).
    pub(crate) fn admits(&self, owner_id: i64, numeric_class: &str, operator_host: bool) -> bool {
        match self {
            Needs::Any => true,
            Needs::Untried { rejected } => operator_host || rejected.iter().all(|p| p.owner_id != owner_id),
            Needs::Agreeing { others } => others.iter().all(|p| p.class == numeric_class && (operator_host || p.owner_id != owner_id)),
        }
    }

    /// Why a unit waits when no online worker is admitted.
    pub(crate) fn explain(&self, online: usize) -> String {
        let names = |parties: &[Party]| {
            let mut names: Vec<&str> = parties.iter().map(|p| p.owner.as_str()).collect();
            names.sort_unstable();
            names.dedup();
            names.join(", ")
        };
        match self {
            _ if online == 0 => "waiting for a worker: none is online".into(),
            Needs::Agreeing { others } if !others.is_empty() => format!(
                "waiting for a worker of numeric class {} owned by someone other than {} (its result must be compared bit for bit with theirs); none of the {online} online workers is",
                others[0].class,
                names(others)
            ),
            Needs::Untried { rejected } if !rejected.is_empty() => {
                format!(
                    "waiting for a worker whose owner is not {} (their training of this unit was rejected); none of the {online} online workers is",
                    names(rejected)
                )
            }
            _ => format!("waiting for a worker that has not run this unit before; none of the {online} online workers qualifies"),
        }
    }
}

/// A worker as dispatch and job views see it.
#[derive(Clone)]
pub(crate) struct WorkerRow {
    pub id: i64,
    pub owner_id: i64,
    pub numeric_class: String,
    /// It offers a GPU: it may take the units of jobs that ask for one.
    pub gpu: bool,
    pub trusted: bool,
    pub operator_host: bool,
}

impl WorkerRow {
    /// Whether the units of a job may go to this worker: a job that asks for a GPU only to a
    /// worker that offers one. (`dispatch::lease` applies the same rule in its query,
    /// `j.needs_gpu = FALSE OR <the worker's gpu>`, to pick the jobs it looks into.)
    pub(crate) fn serves(&self, needs_gpu: bool) -> bool {
        !needs_gpu || self.gpu
    }
}
