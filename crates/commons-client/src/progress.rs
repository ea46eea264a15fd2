//! Progress reporting, kept abstract so the library stays free of terminal concerns: the CLI
//! draws bars, tests and scripts pass [`NoProgress`].

use std::sync::Arc;

/// Starts one progress display per transfer.
pub trait Progress: Send + Sync {
    /// A transfer of `total` bytes called `label` begins; `done` bytes are already there (resume).
    fn begin(&self, label: &str, total: u64, done: u64) -> Arc<dyn Transfer>;
}

/// One running transfer.
pub trait Transfer: Send + Sync {
    fn advance(&self, bytes: u64);
    /// Back to `done` bytes (a restarted transfer).
    fn reset(&self, done: u64);
    fn finish(&self);
}

pub struct NoProgress;

struct Silent;

impl Transfer for Silent {
    fn advance(&self, _bytes: u64) {}
    fn reset(&self, _done: u64) {}
    fn finish(&self) {}
}

impl Progress for NoProgress {
    fn begin(&self, _label: &str, _total: u64, _done: u64) -> Arc<dyn Transfer> {
        Arc::new(Silent)
    }
}
