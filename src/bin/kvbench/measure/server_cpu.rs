//! The CPU time a server process has used, for `kvbench compare`'s server CPU
//! per request: the cost of a pattern that throughput alone hides when the
//! load generator, not the server, is the limit.
//!
//! Read from Linux's `/proc/<pid>/task/<tid>/schedstat`, whose first field is
//! the thread's time on a CPU in nanoseconds (finer than the clock ticks of
//! `/proc/<pid>/stat`).

use std::fs;
use std::io;
use std::time::Duration;

/// The CPU time used so far by every live thread of process `pid`.
///
/// A thread that ends between two readings takes its time with it, which
/// for the servers measured here (fixed thread sets) does not happen.
pub fn process_cpu_time(pid: u32) -> io::Result<Duration> {
    let mut total = 0u64;
    for task in fs::read_dir(format!("/proc/{pid}/task"))? {
        let path = task?.path().join("schedstat");
        // A thread can end between listing and reading.
        let Ok(text) = fs::read_to_string(path) else {
            continue;
        };
        total += parse_run_time_ns(&text).ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidData, format!("schedstat {text:?}"))
        })?;
    }
    Ok(Duration::from_nanos(total))
}

/// The first field of a schedstat line: nanoseconds spent on a CPU.
fn parse_run_time_ns(schedstat: &str) -> Option<u64> {
    schedstat.split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_run_time_field() {
        assert_eq!(
            parse_run_time_ns("187546645 27022802 690\n"),
            Some(187_546_645)
        );
        assert_eq!(parse_run_time_ns(""), None);
        assert_eq!(parse_run_time_ns("x 1 2"), None);
    }

    #[test]
    fn a_busy_process_time_grows() {
        // A shell counting in a loop (other threads of this test process
        // come and go, taking their time with them, so it cannot be used).
        let mut child = std::process::Command::new("sh")
            .args(["-c", "i=0; while [ $i -lt 100000000 ]; do i=$((i+1)); done"])
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let mut used = Duration::ZERO;
        // Bounded in wall time: a busy machine only makes this slower.
        while used < Duration::from_millis(20) && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
            used = process_cpu_time(child.id()).unwrap();
        }
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(used >= Duration::from_millis(20), "only {used:?} in 10 s");
    }
}
