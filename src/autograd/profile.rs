//! Opt-in timing of the backward pass by op, for finding where a training step goes:
//! set `EDGEDISTILL_PROFILE_BACKWARD=1`, run backward, then `take()` the table (ed-bench
//! prints it). Off, it costs one cached flag read per node.
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

fn enabled() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("EDGEDISTILL_PROFILE_BACKWARD").is_some_and(|v| v != "0"))
}

type Table = HashMap<&'static str, (Duration, usize)>;

fn table() -> &'static Mutex<Table> {
    static T: OnceLock<Mutex<Table>> = OnceLock::new();
    T.get_or_init(|| Mutex::new(HashMap::new()))
}

/// Starts timing one step of the backward named `op` when profiling is on.
pub(crate) fn start() -> Option<Instant> {
    enabled().then(Instant::now)
}

/// Adds the time since `t0` to `op`'s row.
pub(crate) fn stop(op: &'static str, t0: Option<Instant>) {
    if let Some(t0) = t0 {
        let mut t = table().lock().unwrap_or_else(|e| e.into_inner());
        let row = t.entry(op).or_default();
        row.0 += t0.elapsed();
        row.1 += 1;
    }
}

/// The rows so far, (op, total time, calls), largest first; clears the table.
pub fn take() -> Vec<(&'static str, Duration, usize)> {
    let mut t = table().lock().unwrap_or_else(|e| e.into_inner());
    let mut rows: Vec<_> = t.drain().map(|(k, (d, n))| (k, d, n)).collect();
    rows.sort_by_key(|r| std::cmp::Reverse(r.1));
    rows
}
