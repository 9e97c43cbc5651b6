//! What a reader's batches take to execute, as a running mean, and whether
//! work is worth moving to another reader for it.
//!
//! Moving a batch costs a wake-up (a few µs of syscalls on two threads),
//! more than a cheap batch takes where it is. So work moves only when what
//! is at stake passes [`STEAL_WORTH`]: with cheap requests nothing moves
//! and the pattern costs what multi-reader costs; with slow ones the first
//! batch that waits is worth it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The least work (queued batches times their mean cost, or one batch
/// about to run) worth moving to another reader. On 2 shared cores with
/// kvbench `uniform` (cheap single gets), stealing every waiting batch cost
/// 14% more CPU per request than multi-reader in one (noisy) run, with
/// about 1% of batches stolen.
pub const STEAL_WORTH: Duration = Duration::from_micros(50);

/// The most one batch counts in its reader's mean cost; see
/// [`Cost::add_sample`].
const COST_CAP: Duration = Duration::from_millis(1);

/// A reader's mean batch cost in nanoseconds, written by that reader after
/// every batch and read by thieves, alone in its cache line so that
/// readers' writes do not contend.
#[derive(Default)]
#[repr(align(128))]
pub struct Cost(AtomicU64);

impl Cost {
    /// The mean, in nanoseconds.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    /// Folds in one batch's time, counting at most [`COST_CAP`], with
    /// weight 1/64: slow to move, because what it must see is a mix. One
    /// slow request in ten (750 µs beside 25 µs ones) keeps the mean
    /// near 100 µs whatever the last few batches were (with weight 1/8 it
    /// fell under [`STEAL_WORTH`] after a run of short ones, half the
    /// time), and a cheap batch during which the reader was preempted for
    /// a few ms (clients share the cores) adds at most 16 µs.
    pub fn add_sample(&self, took: Duration) {
        let mean = self.get();
        let sample = took.min(COST_CAP).as_nanos() as u64;
        self.0
            .store(mean - mean / 64 + sample / 64, Ordering::Relaxed);
    }

    /// Whether `queued` batches of this reader are worth moving.
    pub fn worth_stealing(&self, queued: usize) -> bool {
        queued as u64 * self.get() >= STEAL_WORTH.as_nanos() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_queued_work_past_the_bar_is_worth_stealing() {
        let cost = Cost::default();
        assert!(!cost.worth_stealing(1000), "no batch timed yet");
        for _ in 0..500 {
            cost.add_sample(Duration::from_micros(5));
        }
        assert!(!cost.worth_stealing(1), "one cheap batch");
        assert!(cost.worth_stealing(11), "enough cheap ones");
        cost.add_sample(Duration::from_millis(4));
        assert!(!cost.worth_stealing(1), "one preempted cheap batch");
        for _ in 0..40 {
            cost.add_sample(Duration::from_millis(1));
        }
        assert!(cost.worth_stealing(1), "one slow batch");
    }

    #[test]
    fn one_batch_counts_at_most_the_cap() {
        let cost = Cost::default();
        cost.add_sample(Duration::from_secs(10));
        assert_eq!(cost.get(), COST_CAP.as_nanos() as u64 / 64);
    }

    #[test]
    fn one_slow_request_in_ten_keeps_every_batch_worth_moving() {
        let cost = Cost::default();
        let mix = |k: usize| Duration::from_micros(if k % 10 == 9 { 750 } else { 25 });
        for k in 0..500 {
            cost.add_sample(mix(k));
        }
        for k in 0..1000 {
            cost.add_sample(mix(k));
            assert!(
                cost.worth_stealing(1),
                "after batch {k}: mean {} ns",
                cost.get()
            );
        }
    }
}
