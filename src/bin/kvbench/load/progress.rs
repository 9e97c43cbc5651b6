//! A run's progress bar, shared by the driver and churn.

use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use indicatif::ProgressBar;

/// Shows the run's progress on `bar` (position: elapsed milliseconds)
/// from `done` and `failed`, the counts of replies and errors, until
/// `finished` says the client threads are.
pub fn follow(
    bar: &ProgressBar,
    duration: Duration,
    done: &AtomicU64,
    failed: &AtomicU64,
    finished: impl Fn() -> bool,
) {
    let start = Instant::now();
    let total_ms = duration.as_millis() as u64;
    bar.set_length(total_ms.max(1));
    bar.set_position(0);
    while !finished() {
        thread::sleep(Duration::from_millis(100));
        let elapsed = start.elapsed();
        bar.set_position((elapsed.as_millis() as u64).min(total_ms));
        let done = done.load(Ordering::Relaxed);
        let failed = failed.load(Ordering::Relaxed);
        let rate = done as f64 / elapsed.as_secs_f64().max(1e-3);
        bar.set_message(if elapsed > duration {
            format!("{done} replies, {failed} errors; draining")
        } else {
            format!("{rate:.0} ops/s, {failed} errors")
        });
    }
}
