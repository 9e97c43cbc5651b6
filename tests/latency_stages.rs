//! `stats latency`, where each request's time goes inside the server, seen
//! from outside on a server whose execution time is known (`--work
//! block:fixed:2ms`, `--stamp-arrivals`): every request is counted once
//! per stage, its execution takes at least the injected time, the stages
//! add up to the server's own latency, and `stats reset` starts them
//! again.
//!
//! The only timing assumed is that a 2 ms sleep takes at least 2 ms; the
//! stages' sum is compared with the whole, both measured by the server
//! from the same timestamps.
//! kvserve-only: memcached has no stage times.

#[macro_use]
mod common;

use common::*;
use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

/// Requests sent one at a time, then this many more in one write.
const SEQUENTIAL: u64 = 40;
const PIPELINED: u64 = 5;
const INJECTED_US: f64 = 2000.0;
const PAUSE: Duration = Duration::from_millis(2);

/// `stats latency` as `(role:stage:quantity, value)`.
fn latency(stream: &mut TcpStream) -> Vec<(String, f64)> {
    stats(stream, "latency")
        .into_iter()
        .map(|(name, value)| {
            let value = value.parse().unwrap_or_else(|_| panic!("{name} {value}"));
            (name, value)
        })
        .collect()
}

/// The value of `stage:quantity` whatever role does the stage.
fn get(stats: &[(String, f64)], stage: &str, quantity: &str) -> f64 {
    let suffix = format!(":{stage}:{quantity}");
    let found: Vec<_> = stats.iter().filter(|(n, _)| n.ends_with(&suffix)).collect();
    assert_eq!(found.len(), 1, "{suffix} in {stats:?}");
    found[0].1
}

fn stages_add_up_and_reset(pattern: &str) {
    let args = [
        "--threads",
        "2",
        "--work",
        "block:fixed:2ms",
        "--stamp-arrivals",
        "--stage-sample",
        "1",
    ];
    let mut server = KvServer::start(pattern, &args);
    let mut c = server.connect();
    for i in 0..SEQUENTIAL {
        let reply = request(&mut c, format!("get k{i}\r\n").as_bytes());
        assert_eq!(reply, b"END\r\n");
        // Time for the reader to go back to sleep in its poll.
        std::thread::sleep(PAUSE);
    }
    let pipelined: Vec<u8> = (0..PIPELINED).flat_map(|_| b"get p\r\n".to_vec()).collect();
    c.write_all(&pipelined).unwrap();
    let replies = read_exactly(&mut c, 5 * PIPELINED as usize);
    assert_eq!(replies, b"END\r\n".repeat(PIPELINED as usize));

    let s = latency(&mut c);
    let requests = SEQUENTIAL + PIPELINED;
    for stage in ["parse", "handoff", "execute", "write", "server"] {
        assert_eq!(
            get(&s, stage, "count"),
            requests as f64,
            "{pattern}: {stage}"
        );
    }
    // This `stats latency` spent its service time before it was answered.
    assert_eq!(get(&s, "service", "count"), (requests + 1) as f64);
    // The kernel turns arrival stamps on for the whole system a moment
    // after the first socket asks: the first requests may come unstamped.
    let socket = get(&s, "socket", "count");
    assert!(
        (requests - 3) as f64 <= socket && socket <= requests as f64,
        "{pattern}: socket count {socket}"
    );

    // Requests that came while their reader slept (most of the sequential
    // ones) counted its wake-up, a part of their wait in the socket.
    let wakeup = get(&s, "wakeup", "count");
    assert!(wakeup >= 1.0, "{pattern}: no wake-ups");
    let total = |stage| get(&s, stage, "count") * get(&s, stage, "mean");
    assert!(total("wakeup") <= total("socket") + 0.01 * socket);

    let execute = get(&s, "execute", "p50");
    assert!(
        execute >= INJECTED_US,
        "{pattern}: execute p50 {execute} µs"
    );
    assert!(get(&s, "service", "p1") >= INJECTED_US * 15.0 / 16.0);

    let parts: f64 = ["parse", "handoff", "execute", "write"]
        .iter()
        .map(|stage| get(&s, stage, "p50"))
        .sum();
    let whole = get(&s, "server", "p50");
    assert!(
        (parts - whole).abs() <= 0.1 * whole,
        "{pattern}: stages' p50s add to {parts} µs, the server's p50 is {whole} µs: {s:?}"
    );
    // Means add up exactly (the same timestamps), to the printed precision.
    let means: f64 = ["parse", "handoff", "execute", "write"]
        .iter()
        .map(|stage| get(&s, stage, "mean"))
        .sum();
    assert!((means - get(&s, "server", "mean")).abs() < 0.01);

    assert_eq!(request(&mut c, b"stats reset\r\n"), b"RESET\r\n");
    let after = latency(&mut c);
    // Only the reset itself, finished after the counts restarted, and the
    // service time of the request asking.
    assert_eq!(get(&after, "server", "count"), 1.0, "{pattern}: {after:?}");
    assert_eq!(get(&after, "service", "count"), 1.0);
    server.stop();
}
per_pattern!(stages_add_up, stages_add_up_and_reset);

fn roles_name_who_does_each_stage(pattern: &str) {
    let mut server = KvServer::start(pattern, &["--threads", "2", "--stage-sample", "1"]);
    let mut c = server.connect();
    assert_eq!(request(&mut c, b"get a\r\n"), b"END\r\n");
    let s = latency(&mut c);
    let role = |stage: &str| {
        let name = &s
            .iter()
            .find(|(n, _)| n.ends_with(&format!(":{stage}:count")))
            .unwrap()
            .0;
        name.split(':').next().unwrap().to_string()
    };
    let (reads, executes) = match pattern {
        "basic" | "reuseport" => ("loop", "loop"),
        "worker-pool" => ("dispatch", "worker"),
        _ => ("reader", "reader"),
    };
    assert_eq!(role("parse"), reads, "{pattern}");
    assert_eq!(role("socket"), reads, "{pattern}");
    assert_eq!(role("wakeup"), reads, "{pattern}");
    assert_eq!(role("handoff"), executes, "{pattern}");
    assert_eq!(role("write"), executes, "{pattern}");
    assert_eq!(role("server"), "all");
    // Without --stamp-arrivals the kernel is not asked when bytes arrived.
    let count = |stage: &str| get(&s, stage, "count");
    assert_eq!((count("socket"), count("wakeup")), (0.0, 0.0));
    assert_eq!(count("server"), 1.0);
    server.stop();
}
per_pattern!(roles, roles_name_who_does_each_stage);
