//! The service-time model, `--work KIND:DIST`, seen from outside: a
//! malformed value or one combined with `--work-us` is a usage error before
//! anything is bound, and in every pattern the `stats` work counters count
//! exactly the requests executed, the time they asked for, and at least
//! that much time spent.
//!
//! No assertion here depends on timing beyond "a sleep or spin takes at
//! least what it asked for": the machine running the tests is shared.
//! kvserve-only: memcached has no service-time model.

#[macro_use]
mod common;

use common::*;
use std::io::Read;
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

/// How long a refused command line may take to exit.
const EXIT_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs `kvserve ARGS` (on a free port of 127.0.0.1) to its exit, at most
/// [`EXIT_TIMEOUT`]; returns its exit code and stderr. A server that is
/// still running then is killed, and the test fails.
fn run_to_exit(args: &[&str]) -> (Option<i32>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kvserve"))
        .args(["-p", "0", "-l", "127.0.0.1"])
        .args(args)
        .env_remove("RUST_LOG")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn kvserve");
    let status = exit_within(&mut child, EXIT_TIMEOUT);
    // The process is gone, so its stderr pipe is closed: this read ends.
    let mut stderr = String::new();
    let _ = child.stderr.take().unwrap().read_to_string(&mut stderr);
    let status = status.unwrap_or_else(|| {
        panic!("kvserve {args:?} still running after {EXIT_TIMEOUT:?}: {stderr}")
    });
    (status.code(), stderr)
}

#[test]
fn malformed_work_is_refused_before_listening() {
    for value in ["walk:fixed:5us", "block:exp", "spin:fixed:5"] {
        let (code, stderr) = run_to_exit(&["--work", value]);
        assert_eq!(code, Some(2), "--work {value}: stderr {stderr}");
        assert!(stderr.contains("--work"), "--work {value}: {stderr}");
        assert!(
            stderr.contains("spin or block"),
            "--work {value}: the accepted forms are not named: {stderr}"
        );
        assert!(
            !stderr.contains("listening on"),
            "--work {value} started the server: {stderr}"
        );
    }
}

#[test]
fn work_conflicts_with_work_us() {
    let (code, stderr) = run_to_exit(&["--work-us", "5", "--work", "spin:fixed:5us"]);
    assert_eq!(code, Some(2), "stderr {stderr}");
    assert!(
        stderr.contains("--work-us") && stderr.contains("--work <"),
        "{stderr}"
    );
    assert!(!stderr.contains("listening on"), "{stderr}");
}

/// `--threads N` for patterns with a thread pool; basic has one loop.
fn thread_args(pattern: &str) -> [&'static str; 2] {
    if pattern == "basic" {
        ["-t", "1"]
    } else {
        ["-t", "2"]
    }
}

/// The work figures of one `stats` reply.
#[derive(Debug)]
struct Work {
    model: String,
    requests: u64,
    asked_us: u64,
    spent_us: u64,
}

/// Sends `stats` (itself one request) and reads its work figures.
fn work_stats(c: &mut TcpStream) -> Work {
    let st = stats(c, "");
    let model = st
        .iter()
        .find(|(k, _)| k == "work_model")
        .unwrap_or_else(|| panic!("no STAT work_model: {st:?}"))
        .1
        .clone();
    Work {
        model,
        requests: stat_u64(&st, "work_requests"),
        asked_us: stat_u64(&st, "work_asked_us"),
        spent_us: stat_u64(&st, "work_spent_us"),
    }
}

/// `stats settings`' `work` line.
fn work_setting(c: &mut TcpStream) -> String {
    let st = stats(c, "settings");
    st.into_iter()
        .find(|(k, _)| k == "work")
        .unwrap_or_else(|| panic!("no STAT work in stats settings"))
        .1
}

/// 15 sets and 15 gets, one at a time: 30 requests.
fn thirty_requests(c: &mut TcpStream, label: &str) -> u64 {
    for i in 0..15 {
        let value = format!("value{i}");
        let reply = request(c, &set_req(&format!("k{i}"), 0, value.as_bytes()));
        assert_eq!(show(&reply), show(b"STORED\r\n"), "{label}: set k{i}");
        let reply = request(c, format!("get k{i}\r\n").as_bytes());
        assert_eq!(
            show(&reply),
            show(&value_reply(&format!("k{i}"), 0, value.as_bytes())),
            "{label}: get k{i}"
        );
    }
    30
}

/// Starts kvserve with `args` in `pattern`; checks that, with a fixed
/// model of `per_request_us`, the counters are exact: every executed
/// request performs work, `stats` included (its work is done before its
/// reply is written, so it counts itself), and `stats reset` zeroes them
/// (the next `stats` then counts only itself).
fn counts_fixed_work(pattern: &str, args: &[&str], canonical: &str, per_request_us: u64) {
    let mut all = thread_args(pattern).to_vec();
    all.extend_from_slice(args);
    let server = KvServer::start(pattern, &all);
    let label = format!("[{pattern} {}]", args.join(" "));
    let mut c = server.connect();

    let start = work_stats(&mut c);
    assert_eq!(start.model, canonical, "{label} work_model");
    assert_eq!(start.requests, 1, "{label} a fresh server: only this stats");
    assert_eq!(start.asked_us, per_request_us, "{label} {start:?}");

    let sent = thirty_requests(&mut c, &label);
    // The stats before, the 30, and this stats.
    let n = 1 + sent + 1;
    let w = work_stats(&mut c);
    assert_eq!(w.model, canonical, "{label}");
    assert_eq!(w.requests, n, "{label} work_requests: {w:?}");
    assert_eq!(
        w.asked_us,
        n * per_request_us,
        "{label} work_asked_us: {w:?}"
    );
    assert!(
        w.spent_us >= w.asked_us,
        "{label} spent less than asked: {w:?}"
    );

    assert_eq!(work_setting(&mut c), canonical, "{label} stats settings");

    assert_eq!(request(&mut c, b"stats reset\r\n"), b"RESET\r\n", "{label}");
    let w = work_stats(&mut c);
    assert_eq!(w.requests, 1, "{label} after reset, only this stats: {w:?}");
    assert_eq!(w.asked_us, per_request_us, "{label} after reset: {w:?}");
    assert!(w.spent_us >= w.asked_us, "{label} after reset: {w:?}");
    assert_eq!(w.model, canonical, "{label} after reset");
}

per_pattern!(block_fixed_work_is_counted_exactly, |p| {
    counts_fixed_work(
        p,
        &["--work", "block:fixed:1ms"],
        "block:fixed:1000us",
        1000,
    )
});
per_pattern!(spin_fixed_work_is_counted_exactly, |p| {
    counts_fixed_work(p, &["--work", "spin:fixed:200us"], "spin:fixed:200us", 200)
});
per_pattern!(work_us_is_spin_fixed, |p| {
    counts_fixed_work(p, &["--work-us", "5"], "spin:fixed:5us", 5)
});

/// Without `--work`, no request performs any: `none` and zeros throughout.
fn no_work(pattern: &str) {
    let server = KvServer::start(pattern, &thread_args(pattern));
    let mut c = server.connect();
    thirty_requests(&mut c, pattern);
    let w = work_stats(&mut c);
    assert_eq!(w.model, "none", "[{pattern}]");
    assert_eq!(
        (w.requests, w.asked_us, w.spent_us),
        (0, 0, 0),
        "[{pattern}] {w:?}"
    );
    assert_eq!(work_setting(&mut c), "none", "[{pattern}]");
}

per_pattern!(no_work_counts_nothing, super::no_work);

/// A drawn model: the count stays exact and every draw is at least
/// waited out; what was drawn is not predictable, only positive.
fn drawn(pattern: &str) {
    let mut args = thread_args(pattern).to_vec();
    args.extend_from_slice(&["--work", "block:bimodal:20us:0.5ms:0.5"]);
    let server = KvServer::start(pattern, &args);
    let mut c = server.connect();
    let n = thirty_requests(&mut c, pattern) + 1;
    let w = work_stats(&mut c);
    assert_eq!(w.model, "block:bimodal:20us:500us:0.5", "[{pattern}]");
    assert_eq!(w.requests, n, "[{pattern}] {w:?}");
    // Each draw is 20 or 500 µs.
    assert!(
        (n * 20..=n * 500).contains(&w.asked_us),
        "[{pattern}] {w:?}"
    );
    assert!(w.spent_us >= w.asked_us, "[{pattern}] {w:?}");
}

per_pattern!(drawn_work_is_counted, super::drawn);
