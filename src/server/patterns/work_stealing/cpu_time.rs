//! The CPU time a thread has used, to tell batches that ran from batches
//! that mostly slept (a slow backend call): a reader yields its core
//! between the first kind only.

use std::time::Duration;

/// The CPU time the calling thread has used (one clock_gettime call).
pub fn thread_cpu() -> Duration {
    // SAFETY: clock_gettime only writes the struct passed.
    let ts = unsafe {
        let mut ts: libc::timespec = std::mem::zeroed();
        libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts);
        ts
    };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn spinning_counts_and_sleeping_does_not() {
        let before = thread_cpu();
        std::thread::sleep(Duration::from_millis(50));
        let slept = thread_cpu() - before;
        assert!(slept < Duration::from_millis(25), "asleep: {slept:?}");

        let before = thread_cpu();
        let started = Instant::now();
        while thread_cpu() - before < Duration::from_millis(20) {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "CPU time never advanced"
            );
        }
    }
}
