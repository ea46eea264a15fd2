//! Counting actions in fixed windows, by key: sign-in attempts (per address, per account) and
//! discussion writes (per account). Kept in this process's memory; a key held past its window
//! starts over.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Keys held before expired windows are swept (a flood of keys cannot grow the map).
const MAX_KEYS: usize = 100_000;

/// Actions counted by key in windows of one length.
pub struct RateWindows {
    windows: Mutex<HashMap<String, (Instant, u32)>>,
    window: Duration,
}

impl RateWindows {
    pub fn new(window: Duration) -> Self {
        Self { windows: Mutex::default(), window }
    }

    /// Counts one action under `key`; the seconds to wait when it is over `limit`.
    pub fn take(&self, key: String, limit: u32) -> Result<(), u64> {
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if windows.len() >= MAX_KEYS {
            windows.retain(|_, (start, _)| now.duration_since(*start) < self.window);
            if windows.len() >= MAX_KEYS {
                return Err(self.window.as_secs());
            }
        }
        let entry = windows.entry(key).or_insert((now, 0));
        if now.duration_since(entry.0) >= self.window {
            *entry = (now, 0);
        }
        if entry.1 >= limit {
            return Err(self.window.saturating_sub(now.duration_since(entry.0)).as_secs().max(1));
        }
        entry.1 += 1;
        Ok(())
    }
}
