//! A small progress line on stderr for long loops: count, rate and ETA, redrawn at most a
//! few times a second. Safe to share between threads (`inc` is one atomic add; one thread
//! at a time wins the right to print). On a terminal the line is redrawn in place; when
//! stderr is a file or pipe a full line is printed every few seconds instead, so logs stay
//! readable.
//!
//! ```
//! use edgedistill::data::progress::Progress;
//! let p = Progress::new("images", 3).hidden();
//! p.inc(3);
//! assert_eq!(p.count(), 3);
//! p.finish();
//! ```
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Progress of `total` steps (0 when the total is not known).
pub struct Progress {
    label: String,
    total: AtomicU64,
    count: AtomicU64,
    start: Instant,
    /// Nanoseconds since `start` of the last redraw.
    last: AtomicU64,
    interval: Duration,
    terminal: bool,
    enabled: bool,
    finished: AtomicBool,
}

impl Progress {
    /// A reporter for `total` steps of `label` (e.g. "images"); prints to stderr.
    pub fn new(label: &str, total: u64) -> Self {
        let terminal = std::io::stderr().is_terminal();
        Progress {
            label: label.into(),
            total: AtomicU64::new(total),
            count: AtomicU64::new(0),
            start: Instant::now(),
            last: AtomicU64::new(0),
            interval: Duration::from_millis(if terminal { 200 } else { 5000 }),
            terminal,
            enabled: true,
            finished: AtomicBool::new(false),
        }
    }

    /// Counts without printing anything (for `--quiet` and tests).
    pub fn hidden(mut self) -> Self {
        self.enabled = false;
        self
    }

    /// Adds `n` finished steps; redraws when the interval has passed.
    pub fn inc(&self, n: u64) {
        let count = self.count.fetch_add(n, Ordering::Relaxed) + n;
        if !self.enabled {
            return;
        }
        let now = self.start.elapsed().as_nanos() as u64;
        let last = self.last.load(Ordering::Relaxed);
        if now.saturating_sub(last) < self.interval.as_nanos() as u64 {
            return;
        }
        // Only the thread that moves `last` forward prints.
        if self
            .last
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
        {
            let line = self.line(count, Duration::from_nanos(now));
            let mut err = std::io::stderr().lock();
            let _ = if self.terminal {
                write!(err, "\r{line}\x1b[K")
            } else {
                writeln!(err, "{line}")
            };
        }
    }

    /// Sets the total once it is known (a walk over files finds it after starting).
    pub fn set_total(&self, total: u64) {
        self.total.store(total, Ordering::Relaxed);
    }

    /// Steps counted so far.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Time since the reporter was made.
    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    /// Prints the final line (count, total time, mean rate) once.
    pub fn finish(&self) {
        if !self.enabled || self.finished.swap(true, Ordering::Relaxed) {
            return;
        }
        let elapsed = self.start.elapsed();
        let count = self.count();
        let secs = elapsed.as_secs_f64();
        let rate = if secs > 0.0 { count as f64 / secs } else { 0.0 };
        let mut err = std::io::stderr().lock();
        let cr = if self.terminal { "\r" } else { "" };
        let clear = if self.terminal { "\x1b[K" } else { "" };
        let _ = writeln!(
            err,
            "{cr}{}: {count} in {} ({}/s){clear}",
            self.label,
            fmt_duration(secs),
            fmt_rate(rate)
        );
    }

    /// The progress text for `count` steps after `elapsed`:
    /// `images 2500/10000 (25%) 1.2k/s ETA 6s`.
    pub fn line(&self, count: u64, elapsed: Duration) -> String {
        let secs = elapsed.as_secs_f64();
        let rate = if secs > 0.0 { count as f64 / secs } else { 0.0 };
        let total = self.total.load(Ordering::Relaxed);
        if total == 0 {
            return format!("{} {count} {}/s", self.label, fmt_rate(rate));
        }
        let pct = 100.0 * count as f64 / total as f64;
        let eta = if rate > 0.0 {
            fmt_duration(total.saturating_sub(count) as f64 / rate)
        } else {
            "?".into()
        };
        format!(
            "{} {count}/{total} ({pct:.0}%) {}/s ETA {eta}",
            self.label,
            fmt_rate(rate)
        )
    }
}

/// `950`, `12.3k`, `4.1M`.
fn fmt_rate(r: f64) -> String {
    if r >= 1e6 {
        format!("{:.1}M", r / 1e6)
    } else if r >= 1e4 {
        format!("{:.0}k", r / 1e3)
    } else if r >= 1e3 {
        format!("{:.1}k", r / 1e3)
    } else if r >= 10.0 {
        format!("{r:.0}")
    } else {
        format!("{r:.2}")
    }
}

/// `0.42s`, `7s`, `3m05s`, `2h07m`.
pub fn fmt_duration(s: f64) -> String {
    if !s.is_finite() {
        return "?".into();
    }
    if s < 1.0 {
        format!("{s:.2}s")
    } else if s < 60.0 {
        format!("{s:.0}s")
    } else if s < 3600.0 {
        let m = (s / 60.0).floor();
        format!("{m:.0}m{:02.0}s", (s - 60.0 * m).floor())
    } else {
        let h = (s / 3600.0).floor();
        format!("{h:.0}h{:02.0}m", ((s - 3600.0 * h) / 60.0).floor())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_shows_count_rate_and_eta() {
        let p = Progress::new("images", 10_000).hidden();
        assert_eq!(
            p.line(2400, Duration::from_secs(2)),
            "images 2400/10000 (24%) 1.2k/s ETA 6s"
        );
        assert_eq!(
            p.line(0, Duration::ZERO),
            "images 0/10000 (0%) 0.00/s ETA ?"
        );
        let open = Progress::new("lines", 0).hidden();
        assert_eq!(open.line(50, Duration::from_secs(5)), "lines 50 10/s");
    }

    #[test]
    fn durations() {
        assert_eq!(fmt_duration(0.5), "0.50s");
        assert_eq!(fmt_duration(185.0), "3m05s");
        assert_eq!(fmt_duration(7620.0), "2h07m");
    }

    #[test]
    fn counts_across_threads() {
        let p = Progress::new("x", 4000).hidden();
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| (0..1000).for_each(|_| p.inc(1)));
            }
        });
        assert_eq!(p.count(), 4000);
    }
}
