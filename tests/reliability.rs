//! Hardening proofs, for every threading pattern: garbage input, slow
//! clients, `--idle-timeout`, connections reset mid-request, clients that
//! never read large replies, the memory limit, data integrity under
//! concurrency, and SIGTERM under load.
//!
//! Every loop here is bounded in count and time, every socket is on
//! 127.0.0.1, and the only processes signalled are the servers the harness
//! started (by PID). The scenarios that measure latency run alone (an
//! exclusive lock); the others may overlap with each other.

#[macro_use]
mod common;

use common::*;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::thread;
use std::time::{Duration, Instant};

/// Latency-measuring scenarios hold it exclusively, the others shared.
static GATE: RwLock<()> = RwLock::new(());

fn shared() -> RwLockReadGuard<'static, ()> {
    GATE.read().unwrap_or_else(|e| e.into_inner())
}

fn exclusive() -> RwLockWriteGuard<'static, ()> {
    GATE.write().unwrap_or_else(|e| e.into_inner())
}

/// Two readers or workers (this runs on small machines); basic has one loop.
fn server_args<'a>(pattern: &str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = if pattern == "basic" {
        vec![]
    } else {
        vec!["-t", "2"]
    };
    args.extend_from_slice(extra);
    args
}

const MIB: u64 = 1024;

/// The server still runs, logged no panic, and serves fresh clients (one
/// per reader at least, so a dead reader of multi-reader would show; and
/// 16, so that a dead one of reuseport's two loops, which the kernel
/// deals connections to at random, would show but for 1 time in 65,536).
fn assert_healthy(server: &mut KvServer, pattern: &str, after: &str) {
    assert_eq!(
        server.try_exit_status(),
        None,
        "[{pattern}] server exited after {after}; stderr:\n{}",
        server.stderr_text()
    );
    let log = server.stderr_text();
    assert!(
        !log.contains("panicked"),
        "[{pattern}] server panicked after {after}:\n{log}"
    );
    for i in 0..16u32 {
        let mut c = server.connect();
        let key = format!("fresh:{i}");
        let value = format!("fresh value {i}");
        assert_eq!(
            show(&request(&mut c, &set_req(&key, i, value.as_bytes()))),
            "STORED\\r\\n",
            "[{pattern}] fresh client {i} after {after}: set"
        );
        assert_eq!(
            show(&request(&mut c, format!("get {key}\r\n").as_bytes())),
            show(&value_reply(&key, i, value.as_bytes())),
            "[{pattern}] fresh client {i} after {after}: get"
        );
    }
}

fn curr_connections(c: &mut TcpStream) -> u64 {
    stat_u64(&stats(c, ""), "curr_connections")
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

// =====================================================================
// Garbage: each input gets error replies or a closed connection, never a
// panic or a stuck thread; fresh clients are served; memory stays bounded.

/// What the server must do with one garbage input.
#[derive(Clone)]
enum Expect {
    /// After the input the client half-closes: every reply line is an
    /// error, and the server closes (it must not hang on to the socket).
    ErrorsThenClose,
    /// Same, but the client keeps its side open: the server itself must
    /// close the connection within the timeout (a line over the limit, a
    /// binary packet).
    ServerCloses,
    /// Exactly one error line per input line, then a close once the client
    /// half-closes.
    ErrorPerLine(usize),
    /// This exact reply, after which the connection still serves `version`.
    Exactly(&'static [u8]),
}

#[derive(Clone)]
struct Garbage {
    name: String,
    bytes: Vec<u8>,
    expect: Expect,
    /// Replies to the valid requests before the garbage.
    valid_replies: &'static [u8],
}

const BAD_FORMAT: &[u8] = b"CLIENT_ERROR bad command line format\r\n";

/// A word of random letters, never a number and never `noreply`.
fn letters(rng: &mut Rng, min: usize, max: usize) -> String {
    const ABC: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let n = min + rng.below(max - min + 1);
    (0..n).map(|_| ABC[rng.below(ABC.len())] as char).collect()
}

/// Lines of random tokens, each of which memcached answers with exactly one
/// error: unknown commands, and real commands with wrong arities or
/// non-numeric numbers, over-long keys, too many tokens.
fn random_token_lines(rng: &mut Rng, lines: usize) -> Vec<u8> {
    const COMMANDS: &[&str] = &[
        "set",
        "add",
        "replace",
        "append",
        "prepend",
        "cas",
        "incr",
        "decr",
        "touch",
        "delete",
        "get",
        "gets",
        "gat",
        "gats",
        "verbosity",
        "flush_all",
        "cache_memlimit",
    ];
    let mut out = Vec::new();
    for _ in 0..lines {
        let args = 1 + rng.below(30);
        let mut words: Vec<String> = (0..args).map(|_| letters(rng, 2, 12)).collect();
        let command = if rng.chance(30) {
            // Never a command: commands are lower case.
            letters(rng, 1, 10).to_uppercase()
        } else {
            COMMANDS[rng.below(COMMANDS.len())].to_string()
        };
        match command.as_str() {
            // Valid keys would be a hit or a miss, not an error: one is too long.
            "get" | "gets" => words.insert(rng.below(words.len() + 1), "k".repeat(251)),
            // At least a key and a bad second word.
            "delete" | "flush_all" if words.len() < 2 => words.push(letters(rng, 2, 5)),
            _ => {}
        }
        out.extend_from_slice(command.as_bytes());
        for w in &words {
            out.push(b' ');
            out.extend_from_slice(w.as_bytes());
        }
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// A binary-protocol request header (magic 0x80) with its body.
fn binary_packet(opcode: u8, key: &[u8], extras: &[u8], value: &[u8], body_len: u32) -> Vec<u8> {
    let mut p = vec![0x80, opcode];
    p.extend_from_slice(&(key.len() as u16).to_be_bytes());
    p.push(extras.len() as u8);
    p.extend_from_slice(&[0, 0, 0]);
    p.extend_from_slice(&body_len.to_be_bytes());
    p.extend_from_slice(&[0; 12]); // opaque, cas
    p.extend_from_slice(extras);
    p.extend_from_slice(key);
    p.extend_from_slice(value);
    p
}

fn garbage_cases(seed: u64) -> Vec<Garbage> {
    let mut rng = Rng::new(seed);
    let mut cases = Vec::new();
    let case = |name: &str, bytes: Vec<u8>, expect: Expect| Garbage {
        name: name.to_string(),
        bytes,
        expect,
        valid_replies: b"",
    };
    for i in 0..3 {
        let bytes = rng.bytes(64 * 1024);
        cases.push(case(
            &format!("64 KiB of random bytes #{i}"),
            bytes,
            Expect::ErrorsThenClose,
        ));
    }
    // Random bytes that do not start like a binary packet, with short lines.
    let mut lines = rng.bytes(64 * 1024);
    lines[0] = b'x';
    for b in lines.iter_mut().step_by(97) {
        *b = b'\n';
    }
    cases.push(case(
        "random bytes in short lines",
        lines,
        Expect::ErrorsThenClose,
    ));
    let n = 2000;
    cases.push(case(
        "2000 lines of random tokens",
        random_token_lines(&mut rng, n),
        Expect::ErrorPerLine(n),
    ));
    cases.push(case(
        "1 MiB line without newline",
        vec![b'x'; 1 << 20],
        Expect::ServerCloses,
    ));
    let mut get_line = b"get ".to_vec();
    get_line.resize(4 + (1 << 20), b'k');
    cases.push(case(
        "`get ` and 1 MiB of key without newline",
        get_line,
        Expect::ServerCloses,
    ));
    let mut random_line: Vec<u8> = rng
        .bytes(1 << 20)
        .into_iter()
        .map(|b| if b == b'\n' { b'n' } else { b })
        .collect();
    random_line[0] = b'y';
    cases.push(case(
        "1 MiB of random bytes without newline",
        random_line,
        Expect::ServerCloses,
    ));
    for len in [
        "4294967295",
        "-1",
        "abc",
        "4294967296",
        "2147483648",
        "-2147483648",
        "18446744073709551615",
        "99999999999999999999999999",
        "0x10",
        "",
    ] {
        let line = if len.is_empty() {
            "set k 0 0\r\n".to_string()
        } else {
            format!("set k 0 0 {len}\r\n")
        };
        let expect: &'static [u8] = if len.is_empty() {
            b"ERROR\r\n"
        } else {
            BAD_FORMAT
        };
        cases.push(case(
            &format!("{:?}", line.trim_end()),
            line.into_bytes(),
            Expect::Exactly(expect),
        ));
    }
    let mut then_data = b"set k 0 0 -1\r\n".to_vec();
    then_data.extend(vec![b'v'; 1 << 20]);
    then_data.extend_from_slice(b"\r\n");
    cases.push(case(
        "`set k 0 0 -1` then 1 MiB of data",
        then_data,
        Expect::ServerCloses,
    ));
    let mut huge = b"set k 0 0 2147483647\r\n".to_vec();
    huge.extend(vec![b'v'; 256 * 1024]);
    cases.push(case(
        "`set k 0 0 2147483647` then 256 KiB of data",
        huge,
        Expect::ErrorsThenClose,
    ));
    cases.push(case(
        "binary get",
        binary_packet(0x00, b"foo", &[], &[], 3),
        Expect::ServerCloses,
    ));
    cases.push(case(
        "binary set declaring a 4 GiB body",
        binary_packet(0x01, b"foo", &[0; 8], b"bar", u32::MAX),
        Expect::ServerCloses,
    ));
    let mut packets = Vec::new();
    for op in 0..32u8 {
        packets.extend(binary_packet(op, b"key", &[], &rng.bytes(500), 503));
    }
    cases.push(case("32 binary packets", packets, Expect::ServerCloses));
    let mut after_text = b"get nothing\r\n".to_vec();
    after_text.extend(binary_packet(0x0a, b"", &[], &[], 0)); // noop
    cases.push(Garbage {
        valid_replies: b"END\r\n",
        ..case(
            "binary noop after a text get",
            after_text,
            Expect::ServerCloses,
        )
    });
    cases
}

/// Sends one garbage input on a fresh connection and checks the outcome.
fn send_garbage(server: &KvServer, pattern: &str, g: &Garbage) {
    let what = format!("[{pattern}] {}", g.name);
    let mut c = server.connect();
    if let Expect::Exactly(want) = g.expect {
        let reply = request(&mut c, &g.bytes);
        assert_eq!(show(&reply), show(want), "{what}");
        let v = request(&mut c, b"version\r\n");
        assert!(
            v.starts_with(b"VERSION "),
            "{what}: then version: {}",
            show(&v)
        );
        return;
    }
    let half_close = !matches!(g.expect, Expect::ServerCloses);
    let bytes = g.bytes.clone();
    let mut w = c.try_clone().unwrap();
    // The server may close while this is still writing: errors are fine.
    let writer = thread::spawn(move || {
        let sent = w.write_all(&bytes).is_ok();
        if sent && half_close {
            let _ = w.shutdown(Shutdown::Write);
        }
    });
    let (all, end) = read_until_eof(&mut c, Duration::from_secs(5), 4 << 20);
    writer.join().unwrap();
    assert!(
        all.starts_with(g.valid_replies),
        "{what}: the valid requests before the garbage got {}",
        show(&all)
    );
    let reply = &all[g.valid_replies.len()..];
    assert_ne!(
        end,
        ReadEnd::Timeout,
        "{what}: connection neither closed nor finished within 5 s; got {}",
        show(&all)
    );
    // Complete lines only: a reset may cut the last one.
    let complete = reply
        .windows(2)
        .rposition(|w| w == b"\r\n")
        .map_or(0, |p| p + 2);
    let lines: Vec<&[u8]> = reply[..complete]
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .collect();
    for line in &lines {
        assert!(
            is_error_line(line),
            "{what}: reply line {} is not an error (all: {})",
            show(line),
            show(reply)
        );
    }
    if end == ReadEnd::Eof {
        assert_eq!(
            complete,
            reply.len(),
            "{what}: a cut reply before a clean close"
        );
    }
    if let Expect::ErrorPerLine(n) = g.expect {
        assert_eq!(
            (lines.len(), end),
            (n, ReadEnd::Eof),
            "{what}: error lines and end (first replies: {})",
            show(reply)
        );
    }
}

fn garbage(pattern: &str) {
    let _gate = shared();
    let mut server = KvServer::start(pattern, &server_args(pattern, &[]));
    let pid = server.pid();
    let mut admin = server.connect();
    let base_conns = curr_connections(&mut admin);
    assert_healthy(&mut server, pattern, "start");
    let rss_start = rss_kib(pid).unwrap();
    let mut after_round = Vec::new();
    let mut peak = rss_start;
    // Even rounds one connection after another, odd rounds all at once.
    for round in 0..6u64 {
        let cases = garbage_cases(round + 1);
        if round % 2 == 0 {
            for g in &cases {
                send_garbage(&server, pattern, g);
                peak = peak.max(rss_kib(pid).unwrap());
                assert_eq!(
                    server.try_exit_status(),
                    None,
                    "[{pattern}] server exited after {}; stderr:\n{}",
                    g.name,
                    server.stderr_text()
                );
            }
        } else {
            // All at once, on parallel connections.
            let server_ref = &server;
            thread::scope(|s| {
                for g in &cases {
                    s.spawn(move || send_garbage(server_ref, pattern, g));
                }
                // Sample while they run.
                for _ in 0..50 {
                    peak = peak.max(rss_kib(pid).unwrap_or(0));
                    thread::sleep(Duration::from_millis(10));
                }
            });
        }
        assert_healthy(&mut server, pattern, &format!("garbage round {round}"));
        let back = wait_until(Duration::from_secs(5), || {
            curr_connections(&mut admin) == base_conns
        });
        assert!(
            back,
            "[{pattern}] curr_connections {} after garbage round {round}, baseline {base_conns}",
            curr_connections(&mut admin)
        );
        let rss = rss_kib(pid).unwrap();
        peak = peak.max(rss);
        after_round.push(rss);
    }
    eprintln!(
        "[{pattern}] garbage: RSS start {rss_start} KiB, after rounds {after_round:?} KiB, \
         peak {peak} KiB"
    );
    assert!(
        peak <= rss_start + 32 * MIB,
        "[{pattern}] RSS peaked at {peak} KiB during garbage input, from {rss_start} KiB"
    );
    // The allocator settles after the first concurrent round (steps of 2
    // MiB seen after it); buffers leaked with each garbage connection (16
    // KiB to 2 MiB each, some 3 MiB a round) would keep RSS climbing.
    assert!(
        after_round[5] <= after_round[1] + 6 * MIB,
        "[{pattern}] RSS keeps growing with each round of garbage: {after_round:?} KiB"
    );
    assert!(server.stop().success(), "[{pattern}] unclean exit");
}

per_pattern!(garbage_gets_errors_or_close, super::garbage);

// =====================================================================
// Slow clients: 500 connections dribbling a byte every 200 ms do not
// raise a normal client's p99.

const DRIBBLERS: usize = 500;
const DRIBBLE_TICK: Duration = Duration::from_millis(200);

/// Round-trip times of `get probe` on `c`, one every `gap`, until `n`
/// samples or `until` returns true (at most 20 s).
fn probe_latencies(
    c: &mut TcpStream,
    n: usize,
    gap: Duration,
    until: impl Fn() -> bool,
    pattern: &str,
) -> Vec<Duration> {
    let want = value_reply("probe", 7, b"probe value");
    let start = Instant::now();
    let mut samples = Vec::with_capacity(n);
    while samples.len() < n && !until() && start.elapsed() < Duration::from_secs(20) {
        let t = Instant::now();
        let reply = request(c, b"get probe\r\n");
        samples.push(t.elapsed());
        assert_eq!(show(&reply), show(&want), "[{pattern}] probe");
        thread::sleep(gap);
    }
    samples
}

fn slow_clients(pattern: &str) {
    let _gate = exclusive();
    let server = KvServer::start(pattern, &server_args(pattern, &["-c", "2000"]));
    let mut probe = server.connect();
    assert_eq!(
        request(&mut probe, &set_req("probe", 7, b"probe value")),
        b"STORED\r\n"
    );
    let gap = Duration::from_millis(5);
    let baseline = probe_latencies(&mut probe, 300, gap, || false, pattern);

    let dribbling = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicBool::new(false));
    let addr = server.addr();
    let dribbler = {
        let (dribbling, done) = (Arc::clone(&dribbling), Arc::clone(&done));
        thread::spawn(move || {
            let mut conns: Vec<TcpStream> = (0..DRIBBLERS)
                .map(|i| {
                    let s = TcpStream::connect_timeout(&addr, IO_TIMEOUT)
                        .unwrap_or_else(|e| panic!("dribbler {i}: {e}"));
                    s.set_nodelay(true).unwrap();
                    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
                    s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
                    s
                })
                .collect();
            let messages: Vec<Vec<u8>> = (0..DRIBBLERS)
                .map(|i| format!("set d{i:03} 0 0 1\r\nx\r\n").into_bytes())
                .collect();
            let ticks = messages[0].len();
            dribbling.store(true, Ordering::SeqCst);
            let start = Instant::now();
            for t in 0..ticks {
                for (c, m) in conns.iter_mut().zip(&messages) {
                    c.write_all(&m[t..t + 1]).expect("dribble a byte");
                }
                let next = start + DRIBBLE_TICK * (t as u32 + 1);
                thread::sleep(next.saturating_duration_since(Instant::now()));
            }
            done.store(true, Ordering::SeqCst);
            let mut stored = 0;
            for c in &mut conns {
                if read_reply(c) == b"STORED\r\n" {
                    stored += 1;
                }
            }
            (stored, start.elapsed())
        })
    };
    assert!(
        wait_until(Duration::from_secs(30), || dribbling.load(Ordering::SeqCst)),
        "[{pattern}] the dribblers did not connect"
    );
    let during = probe_latencies(
        &mut probe,
        2000,
        gap,
        || done.load(Ordering::SeqCst),
        pattern,
    );
    let (stored, dribble_time) = dribbler.join().expect("a dribbler failed");
    let (b50, b99, bmax) = (
        percentile(&baseline, 0.5),
        percentile(&baseline, 0.99),
        percentile(&baseline, 1.0),
    );
    let (d50, d99, dmax) = (
        percentile(&during, 0.5),
        percentile(&during, 0.99),
        percentile(&during, 1.0),
    );
    eprintln!(
        "[{pattern}] slow clients: {DRIBBLERS} dribblers for {dribble_time:?}; probe without: \
         n={} p50 {} p99 {} max {}; with: n={} p50 {} p99 {} max {}",
        baseline.len(),
        ms(b50),
        ms(b99),
        ms(bmax),
        during.len(),
        ms(d50),
        ms(d99),
        ms(dmax)
    );
    assert_eq!(
        stored, DRIBBLERS,
        "[{pattern}] dribbled sets answered STORED"
    );
    assert_eq!(
        request(&mut probe, b"get d000 d499\r\n"),
        b"VALUE d000 0 1\r\nx\r\nVALUE d499 0 1\r\nx\r\nEND\r\n",
        "[{pattern}] dribbled values"
    );
    assert!(
        during.len() >= 100,
        "[{pattern}] only {} probes while the dribblers ran",
        during.len()
    );
    assert!(
        d99 < Duration::from_millis(50),
        "[{pattern}] p99 of a normal client with {DRIBBLERS} dribblers is {} (without: {})",
        ms(d99),
        ms(b99)
    );
}

per_pattern!(slow_clients_do_not_slow_others, super::slow_clients);

// =====================================================================
// --idle-timeout

/// Waits (at most `limit`) for the server to close `c`; the time from
/// `since`, or `None` if it stayed open.
fn closed_after(mut c: TcpStream, since: Instant, limit: Duration) -> Option<Duration> {
    let (bytes, end) = read_until_eof(&mut c, limit, 4096);
    assert!(
        bytes.is_empty(),
        "unexpected bytes on an idle connection: {}",
        show(&bytes)
    );
    (end != ReadEnd::Timeout).then(|| since.elapsed())
}

fn idle_timeout(pattern: &str) {
    let _gate = shared();
    let server = KvServer::start(pattern, &server_args(pattern, &["--idle-timeout", "1"]));
    let control = KvServer::start(pattern, &server_args(pattern, &[]));
    let watch = |c: TcpStream, since: Instant| {
        thread::spawn(move || closed_after(c, since, Duration::from_millis(4500)))
    };

    let t = Instant::now();
    let silent = watch(server.connect(), t);
    let mut half = server.connect();
    // Each clock starts before the server can have seen the bytes.
    let sent_at = Instant::now();
    half.write_all(b"get hal").unwrap();
    let half = watch(half, sent_at);
    let mut served = server.connect();
    let sent_at = Instant::now();
    assert!(request(&mut served, b"version\r\n").starts_with(b"VERSION "));
    let served = watch(served, sent_at);
    let control_silent = watch(control.connect(), Instant::now());

    // Keeps sending: a request every 300 ms, or one byte every 250 ms.
    let mut chatty = server.connect();
    let mut dribbler = server.connect();
    let message = b"get dribble\r\n";
    let mut sent = 0;
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(3500) {
        let r = request(&mut chatty, b"version\r\n");
        assert!(
            r.starts_with(b"VERSION "),
            "[{pattern}] chatty connection at {:?}: {}",
            start.elapsed(),
            show(&r)
        );
        if sent < message.len() {
            dribbler.write_all(&message[sent..sent + 1]).unwrap();
            sent += 1;
        }
        thread::sleep(Duration::from_millis(250));
    }
    dribbler.write_all(&message[sent..]).unwrap();
    assert_eq!(
        show(&read_reply(&mut dribbler)),
        "END\\r\\n",
        "[{pattern}] a connection that kept dribbling for 3.5 s"
    );
    // Only the two busy connections remain (the silent ones went by 2.5 s).
    assert_eq!(
        curr_connections(&mut chatty),
        2,
        "[{pattern}] curr_connections after 3.5 s"
    );

    let timings = [
        ("silent since connect", silent.join().unwrap()),
        ("silent with half a request", half.join().unwrap()),
        ("silent after one request", served.join().unwrap()),
    ];
    let control_closed = control_silent.join().unwrap();
    eprintln!(
        "[{pattern}] idle timeout 1 s: closed after {:?}; without the flag: {control_closed:?}",
        timings.iter().map(|(_, t)| *t).collect::<Vec<_>>()
    );
    for (what, closed) in timings {
        let closed =
            closed.unwrap_or_else(|| panic!("[{pattern}] {what}: not closed within 4.5 s"));
        assert!(
            closed >= Duration::from_secs(1) && closed <= Duration::from_millis(3500),
            "[{pattern}] {what}: closed after {closed:?}, expected 1-3.5 s"
        );
    }
    assert_eq!(
        control_closed, None,
        "[{pattern}] closed without --idle-timeout"
    );
}

per_pattern!(
    idle_timeout_closes_only_idle_connections,
    super::idle_timeout
);

// =====================================================================
// Connections reset mid-request leak nothing.

fn reset_mid_request(pattern: &str) {
    let _gate = shared();
    let server = KvServer::start(pattern, &server_args(pattern, &["-c", "2000"]));
    let pid = server.pid();
    let mut admin = server.connect();
    let mid = vec![b'm'; 100 * 1024];
    assert_eq!(request(&mut admin, &set_req("mid", 0, &mid)), b"STORED\r\n");
    let base_conns = curr_connections(&mut admin);
    let base_fds = fd_count(pid);
    let rss_start = rss_kib(pid).unwrap();
    const EACH: usize = 40;
    let mut rss_after = Vec::new();
    for round in 0..2 {
        let mut sends = Vec::new();
        for i in 0..EACH {
            let key = format!("r{round}:{i}");
            let variants: [Vec<u8>; 6] = [
                // Half a command line.
                format!("set {key} 0 0 100").into_bytes(),
                // A command line and half its data.
                [format!("set {key} 0 0 1000\r\n").as_bytes(), &[b'h'; 500]].concat(),
                // Half of a 512 KiB value.
                [
                    format!("set {key} 0 0 524288\r\n").as_bytes(),
                    &vec![b'h'; 256 * 1024],
                ]
                .concat(),
                // Replies pending, never read.
                b"get mid\r\n".repeat(100),
                // A complete request, then half a set.
                [
                    b"get mid\r\n".as_slice(),
                    format!("set {key} 0 0 9\r\n12").as_bytes(),
                ]
                .concat(),
                // Nothing at all.
                Vec::new(),
            ];
            sends.extend(variants);
        }
        send_then_reset(&server, sends);
        let back = wait_until(Duration::from_secs(10), || {
            curr_connections(&mut admin) == base_conns && fd_count(pid) <= base_fds
        });
        assert!(
            back,
            "[{pattern}] round {round}: after {} resets curr_connections {} (baseline \
             {base_conns}), open fds {} (baseline {base_fds})",
            EACH * 6,
            curr_connections(&mut admin),
            fd_count(pid)
        );
        // None of the half-sent sets was stored.
        let keys: Vec<String> = (0..EACH).map(|i| format!("r{round}:{i}")).collect();
        let r = request(&mut admin, format!("get {}\r\n", keys.join(" ")).as_bytes());
        assert_eq!(
            show(&r),
            "END\\r\\n",
            "[{pattern}] a half-sent set was stored"
        );
        rss_after.push(rss_kib(pid).unwrap());
    }
    eprintln!(
        "[{pattern}] resets: {} connections reset mid-request; fds {base_fds} -> {}; \
         RSS {rss_start} KiB, after each round {rss_after:?} KiB",
        EACH * 6 * rss_after.len(),
        fd_count(pid)
    );
    // RSS is reported, not asserted: what the allocator keeps after these
    // rounds swings by tens of MiB from round to round (worker-pool: 20 to
    // 100 MiB over 12 rounds, up and down), which would hide a leak and
    // make a bound flaky. Leaks show in the connection and descriptor
    // counts above.
    let mut server = server;
    assert_healthy(&mut server, pattern, "resets");
}

per_pattern!(reset_mid_request_leaks_nothing, super::reset_mid_request);

// =====================================================================
// Clients that pipeline gets of a 512 KiB value and never read.

fn non_reading_big_values(pattern: &str) {
    let _gate = exclusive();
    let mut server = KvServer::start(pattern, &server_args(pattern, &[]));
    let pid = server.pid();
    let mut probe = server.connect();
    let big: Vec<u8> = (0..512 * 1024u32).map(|i| b'a' + (i % 23) as u8).collect();
    assert_eq!(request(&mut probe, &set_req("big", 0, &big)), b"STORED\r\n");
    assert_eq!(
        request(&mut probe, &set_req("probe", 7, b"probe value")),
        b"STORED\r\n"
    );
    // Warm up the reply path once.
    assert_eq!(
        request(&mut probe, b"get big\r\n").len(),
        value_reply("big", 0, &big).len()
    );
    let gap = Duration::from_millis(10);
    let baseline = probe_latencies(&mut probe, 100, gap, || false, pattern);
    let rss_before = rss_kib(pid).unwrap();

    const HOGS: usize = 2;
    const GETS: usize = 5000;
    let hogs: Vec<(TcpStream, _)> = (0..HOGS)
        .map(|_| {
            let c = server.connect();
            let w = write_in_background(&c, b"get big\r\n".repeat(GETS), false);
            (c, w)
        })
        .collect();
    let sampler = RssSampler::start(pid);
    let start = Instant::now();
    let during = probe_latencies(
        &mut probe,
        1000,
        gap,
        || start.elapsed() > Duration::from_secs(3),
        pattern,
    );
    let samples = sampler.finish();
    let peak = max_rss(&samples).max(rss_kib(pid).unwrap());
    for (c, w) in hogs {
        // Their 45 KB of requests were taken in long ago.
        let _ = w.join();
        reset_close(c);
    }
    let (b99, d50, d99, dmax) = (
        percentile(&baseline, 0.99),
        percentile(&during, 0.5),
        percentile(&during, 0.99),
        percentile(&during, 1.0),
    );
    eprintln!(
        "[{pattern}] {HOGS} non-reading clients x {GETS} gets of 512 KiB: RSS {rss_before} -> \
         peak {peak} KiB (+{} KiB); probe p99 without {}, with: p50 {} p99 {} max {} (n={})",
        peak.saturating_sub(rss_before),
        ms(b99),
        ms(d50),
        ms(d99),
        ms(dmax),
        during.len()
    );
    assert!(
        during.len() >= 50,
        "[{pattern}] only {} probes in 3 s",
        during.len()
    );
    assert!(
        peak <= rss_before + 16 * MIB,
        "[{pattern}] RSS grew by {} KiB (from {rss_before} to {peak} KiB) for {HOGS} clients \
         that never read 512 KiB replies; allowed 16 MiB",
        peak - rss_before
    );
    assert!(
        d99 < Duration::from_millis(50),
        "[{pattern}] p99 of a normal client next to non-reading ones: {} (without: {})",
        ms(d99),
        ms(b99)
    );
    assert_healthy(&mut server, pattern, "non-reading clients");
}

per_pattern!(
    non_reading_clients_of_big_values_are_bounded,
    super::non_reading_big_values
);

// =====================================================================
// Memory limit: 600 MiB of 100 KiB values into -m 64.

/// The fixed part of the RSS bound: the binary, thread stacks, buffers.
const RSS_BASE_KIB: u64 = 8 * MIB;
/// Peak RSS allowed under `-m 64`: 1.15x the limit plus [`RSS_BASE_KIB`].
const PEAK_BOUND_KIB: u64 = 64 * MIB * 115 / 100 + RSS_BASE_KIB;

fn memory_limit(pattern: &str) {
    let _gate = shared();
    let mut server = KvServer::start(pattern, &server_args(pattern, &["-m", "64"]));
    let pid = server.pid();
    let rss_start = rss_kib(pid).unwrap();
    let sampler = RssSampler::start(pid);
    const WRITERS: usize = 4;
    const PER_WRITER: usize = 1536; // 4 x 1536 x 100 KiB = 600 MiB
    let start = Instant::now();
    write_big_values(&server, WRITERS, PER_WRITER);
    let write_time = start.elapsed();
    // The newest keys, written last, all stay readable.
    let mut c = server.connect();
    const NEWEST: usize = 32;
    for j in 0..NEWEST {
        let key = format!("newest:{j}");
        assert_eq!(
            request(&mut c, &set_req(&key, 1, &big_value(&key, b'N'))),
            b"STORED\r\n"
        );
    }
    for j in 0..NEWEST {
        let key = format!("newest:{j}");
        let r = request(&mut c, format!("get {key}\r\n").as_bytes());
        assert!(
            r == value_reply(&key, 1, &big_value(&key, b'N')),
            "[{pattern}] newest key {key} not readable: {}",
            show_max(&r, 100)
        );
    }
    // Older keys: evicted, or intact.
    let mut present = 0;
    for w in 0..WRITERS {
        for j in (0..PER_WRITER).step_by(7) {
            let key = format!("mem:{w}:{j}");
            let r = request(&mut c, format!("get {key}\r\n").as_bytes());
            if r != b"END\r\n" {
                let want = value_reply(&key, j as u32, &big_value(&key, b'a' + (j % 26) as u8));
                assert!(
                    r == want,
                    "[{pattern}] {key} read back wrong: {}",
                    show_max(&r, 100)
                );
                present += 1;
            }
        }
    }
    let samples = sampler.finish();
    let peak = max_rss(&samples);
    let st = stats(&mut c, "");
    let (evictions, items, total, bytes, limit) = (
        stat_u64(&st, "evictions"),
        stat_u64(&st, "curr_items"),
        stat_u64(&st, "total_items"),
        stat_u64(&st, "bytes"),
        stat_u64(&st, "limit_maxbytes"),
    );
    let series: Vec<String> = samples
        .iter()
        .step_by((samples.len() / 8).max(1))
        .map(|(t, r)| format!("{:.1}s:{}", t.as_secs_f64(), r / 1024))
        .collect();
    eprintln!(
        "[{pattern}] memory limit -m 64: wrote {} MiB in {write_time:?}; RSS start {rss_start} \
         KiB, peak {peak} KiB ({} MiB), end {} KiB; evictions {evictions}, curr_items {items}, \
         total_items {total}, bytes {bytes}; older keys sampled present {present}; RSS MiB \
         over time: {}",
        (WRITERS * PER_WRITER * VALUE_100K) >> 20,
        peak / 1024,
        rss_kib(pid).unwrap(),
        series.join(" ")
    );
    assert!(evictions > 0, "[{pattern}] no evictions counted");
    assert_eq!(
        evictions + items,
        total,
        "[{pattern}] every item stored is either present or evicted"
    );
    // The documented bound: the limit plus one item per shard (at most 64),
    // an item costing its allocator size class (112 KiB for 100 KiB).
    assert!(
        bytes <= limit + 64 * (VALUE_100K as u64 * 5 / 4),
        "[{pattern}] stats bytes {bytes} over the limit {limit}"
    );
    // Issue 15's target: -m bounds resident memory, within 1.15x plus a
    // fixed base (measured in release builds: 64-65 MiB peak in every
    // pattern, docs/memory.md).
    assert!(
        peak <= PEAK_BOUND_KIB,
        "[{pattern}] RSS peaked at {peak} KiB ({} MiB) with -m 64; allowed 1.15 x 64 + {} = {} \
         MiB",
        peak / 1024,
        RSS_BASE_KIB / 1024,
        PEAK_BOUND_KIB / 1024
    );
    assert_healthy(&mut server, pattern, "filling memory");
}

per_pattern!(memory_limit_bounds_rss_and_evicts, super::memory_limit);

// =====================================================================
// Integrity: 16 threads, checksummed values of 1 B to 64 KiB.

const INTEGRITY_THREADS: usize = 16;
const KEYS_PER_THREAD: usize = 32;
const MAX_VALUE: usize = 64 * 1024;

fn ikey(thread: usize, k: usize) -> String {
    format!("i{thread}:{k}")
}

/// The latest acknowledged (version, length) of each of a thread's keys.
type KeyState = Vec<Option<(u64, usize)>>;

fn expected_get(key: &str, state: Option<(u64, usize)>) -> Vec<u8> {
    match state {
        Some((version, len)) => {
            let (flags, data) = checked_value(key, version, len);
            value_reply(key, flags, &data)
        }
        None => b"END\r\n".to_vec(),
    }
}

/// One thread's work; returns its keys' final state and its op count.
fn integrity_worker(
    mut c: TcpStream,
    t: usize,
    deadline: Instant,
    max_ops: usize,
    pattern: &str,
) -> (KeyState, usize) {
    let mut rng = Rng::new(1000 + t as u64);
    let mut state: KeyState = vec![None; KEYS_PER_THREAD];
    let mut version = 0u64;
    let mut ops = 0;
    while ops < max_ops && Instant::now() < deadline {
        let k = rng.below(KEYS_PER_THREAD);
        let key = ikey(t, k);
        match rng.below(100) {
            0..=34 => {
                version += 1;
                let len = rng.log_size(MAX_VALUE);
                let (flags, data) = checked_value(&key, version, len);
                let r = request(&mut c, &set_req(&key, flags, &data));
                assert_eq!(show(&r), "STORED\\r\\n", "[{pattern}] set {key}");
                state[k] = Some((version, len));
                ops += 1;
            }
            35..=44 => {
                // A pipelined batch of sets.
                let mut req = Vec::new();
                let n = 2 + rng.below(7);
                for _ in 0..n {
                    let k = rng.below(KEYS_PER_THREAD);
                    let key = ikey(t, k);
                    version += 1;
                    let len = rng.log_size(MAX_VALUE / 4);
                    let (flags, data) = checked_value(&key, version, len);
                    req.extend(set_req(&key, flags, &data));
                    state[k] = Some((version, len));
                }
                let writer = write_in_background(&c, req, false);
                read_expected(
                    &mut c,
                    &b"STORED\r\n".repeat(n),
                    &format!("[{pattern}] thread {t}: pipelined sets"),
                );
                writer.join().unwrap().expect("write pipelined sets");
                ops += n;
            }
            45..=69 => {
                let r = request(&mut c, format!("get {key}\r\n").as_bytes());
                assert!(
                    r == expected_get(&key, state[k]),
                    "[{pattern}] thread {t}: get {key} (latest acknowledged {:?}) returned {}",
                    state[k],
                    show_max(&r, 120)
                );
                ops += 1;
            }
            70..=89 => {
                // Any threads' keys: whatever comes back is intact and its own.
                let n = 1 + rng.below(6);
                let keys: Vec<(usize, usize)> = (0..n)
                    .map(|_| (rng.below(INTEGRITY_THREADS), rng.below(KEYS_PER_THREAD)))
                    .collect();
                let names: Vec<String> = keys.iter().map(|&(o, k)| ikey(o, k)).collect();
                let r = request(&mut c, format!("get {}\r\n", names.join(" ")).as_bytes());
                let items = parse_get_reply(&r)
                    .unwrap_or_else(|e| panic!("[{pattern}] thread {t}: get {names:?}: {e}"));
                let mut at = 0;
                for item in items {
                    let pos = names[at..]
                        .iter()
                        .position(|n| *n == item.key)
                        .unwrap_or_else(|| {
                            panic!(
                                "[{pattern}] thread {t}: get {names:?} returned {} out of order \
                                 or unasked",
                                item.key
                            )
                        });
                    at += pos + 1;
                    if let Err(e) = verify_value(&item.key, item.flags, &item.data) {
                        panic!("[{pattern}] thread {t}: corrupted read: {e}");
                    }
                    let (owner, k) = keys[at - 1];
                    if owner == t {
                        let want = state[k].map(|(v, len)| checked_value(&item.key, v, len));
                        assert!(
                            want.as_ref() == Some(&(item.flags, item.data.clone())),
                            "[{pattern}] thread {t}: own key {} is not its latest acknowledged \
                             value {:?}",
                            item.key,
                            state[k]
                        );
                    }
                }
                // Own keys that should have been there.
                for (i, &(owner, k)) in keys.iter().enumerate() {
                    if owner == t && state[k].is_some() {
                        assert!(
                            parse_get_reply(&r)
                                .unwrap()
                                .iter()
                                .any(|it| it.key == names[i]),
                            "[{pattern}] thread {t}: own key {} missing from a multi-get",
                            names[i]
                        );
                    }
                }
                ops += 1;
            }
            90..=94 => {
                let r = request(&mut c, format!("delete {key}\r\n").as_bytes());
                let want: &[u8] = if state[k].is_some() {
                    b"DELETED\r\n"
                } else {
                    b"NOT_FOUND\r\n"
                };
                assert_eq!(show(&r), show(want), "[{pattern}] delete {key}");
                state[k] = None;
                ops += 1;
            }
            _ => {
                let r = request(&mut c, format!("gets {key}\r\n").as_bytes());
                let items =
                    parse_get_reply(&r).unwrap_or_else(|e| panic!("[{pattern}] gets {key}: {e}"));
                let got = items.first().map(|i| (i.flags, i.data.clone()));
                let want = state[k].map(|(v, len)| checked_value(&key, v, len));
                assert!(
                    got == want,
                    "[{pattern}] thread {t}: gets {key} (latest acknowledged {:?}) returned {}",
                    state[k],
                    show_max(&r, 120)
                );
                ops += 1;
            }
        }
    }
    (state, ops)
}

/// The value scheme itself catches foreign, stale-looking and altered values.
fn check_the_checker() {
    for len in [1, 2, 5, 9, 40, 5000] {
        let (flags, data) = checked_value("i3:7", 12, len);
        assert_eq!(
            verify_value("i3:7", flags, &data),
            Ok((len >= 10).then_some(12))
        );
        assert!(
            verify_value("i3:8", flags, &data).is_err(),
            "foreign, {len} bytes"
        );
        let mut altered = data.clone();
        altered[len / 2] ^= 0x20;
        assert!(
            verify_value("i3:7", flags, &altered).is_err(),
            "altered, {len} bytes"
        );
        assert!(
            verify_value("i3:7", flags ^ 1 << 16, &data).is_err(),
            "other version"
        );
        let (other_flags, other) = checked_value("i4:7", 12, len);
        assert!(
            verify_value("i3:7", other_flags, &other).is_err(),
            "swapped, {len} bytes"
        );
    }
}

fn integrity(pattern: &str) {
    let _gate = shared();
    check_the_checker();
    let mut server = KvServer::start(pattern, &server_args(pattern, &["-m", "1024"]));
    let deadline = Instant::now() + Duration::from_secs(3);
    let start = Instant::now();
    let workers: Vec<_> = (0..INTEGRITY_THREADS)
        .map(|t| {
            let c = server.connect();
            let pattern = pattern.to_string();
            thread::spawn(move || integrity_worker(c, t, deadline, 2000, &pattern))
        })
        .collect();
    let results: Vec<(KeyState, usize)> = workers
        .into_iter()
        .map(|w| {
            w.join()
                .expect("an integrity worker failed (see its panic)")
        })
        .collect();
    let elapsed = start.elapsed();
    let ops: usize = results.iter().map(|(_, n)| n).sum();
    // Nothing acknowledged is lost.
    let mut c = server.connect();
    let mut checked = 0;
    for (t, (state, _)) in results.iter().enumerate() {
        for (k, s) in state.iter().enumerate() {
            let key = ikey(t, k);
            let r = request(&mut c, format!("get {key}\r\n").as_bytes());
            assert!(
                r == expected_get(&key, *s),
                "[{pattern}] at the end, {key} (latest acknowledged {s:?}) reads {}",
                show_max(&r, 120)
            );
            checked += usize::from(s.is_some());
        }
    }
    let st = stats(&mut c, "");
    eprintln!(
        "[{pattern}] integrity: {INTEGRITY_THREADS} threads, {ops} operations in {elapsed:?}; \
         {checked} live keys read back intact; evictions {}",
        stat_u64(&st, "evictions")
    );
    assert_eq!(
        stat_u64(&st, "evictions"),
        0,
        "[{pattern}] evictions without memory pressure"
    );
    assert!(
        ops >= INTEGRITY_THREADS * 50,
        "[{pattern}] only {ops} operations"
    );
    assert!(checked > 0, "[{pattern}] no live keys at the end");
    assert_healthy(&mut server, pattern, "integrity run");
}

per_pattern!(integrity_under_concurrency, super::integrity);

// =====================================================================
// SIGTERM under load: in-flight requests are answered, exit 0 within 5 s.

const SIGTERM_CLIENTS: usize = 6;
/// Requests per pipelined batch: more than one worker-pool batch (-R 20).
const PIPELINE: usize = 48;

/// One batch a load client wrote.
struct Sent {
    expected: Vec<u8>,
    written_at: Instant,
    /// When its last reply byte arrived, if it did.
    answered_at: Option<Instant>,
}

/// What a load client saw.
struct LoadResult {
    batches: Vec<Sent>,
    received: Vec<u8>,
    end: ReadEnd,
}

/// A load client: writes a batch of sets and gets, reads its replies,
/// repeats until `stop`; then reads until the server closes.
fn load_client(mut c: TcpStream, id: usize, stop: &AtomicBool, answered: &AtomicU64) -> LoadResult {
    let mut rng = Rng::new(500 + id as u64);
    let mut batches: Vec<Sent> = Vec::new();
    let mut received = Vec::new();
    let mut expected_total = 0;
    let mut chunk = vec![0u8; 64 * 1024];
    let started = Instant::now();
    // Bounded: the test stops it after about a second.
    while !stop.load(Ordering::SeqCst) && started.elapsed() < Duration::from_secs(20) {
        let mut req = Vec::new();
        let mut expected = Vec::new();
        for j in 0..PIPELINE / 2 {
            let key = format!("term:{id}:{}", j % 8);
            let value = vec![b'a' + rng.below(26) as u8; 10 + rng.below(2000)];
            req.extend(set_req(&key, j as u32, &value));
            req.extend(format!("get {key}\r\n").bytes());
            expected.extend_from_slice(b"STORED\r\n");
            expected.extend(value_reply(&key, j as u32, &value));
        }
        if c.write_all(&req).is_err() {
            break;
        }
        expected_total += expected.len();
        batches.push(Sent {
            expected,
            written_at: Instant::now(),
            answered_at: None,
        });
        // Read this batch's replies (or until the server closes).
        while received.len() < expected_total {
            let end = match c.read(&mut chunk) {
                Ok(0) => ReadEnd::Eof,
                Ok(n) => {
                    received.extend_from_slice(&chunk[..n]);
                    continue;
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    ReadEnd::Timeout
                }
                Err(e) => ReadEnd::Error(e.kind()),
            };
            return LoadResult {
                batches,
                received,
                end,
            };
        }
        batches.last_mut().unwrap().answered_at = Some(Instant::now());
        answered.fetch_add(PIPELINE as u64, Ordering::Relaxed);
    }
    let (rest, end) = read_until_eof(&mut c, Duration::from_secs(8), 16 << 20);
    received.extend(rest);
    LoadResult {
        batches,
        received,
        end,
    }
}

fn sigterm_under_load(pattern: &str) {
    let _gate = shared();
    let mut server = KvServer::start(pattern, &server_args(pattern, &["--work-us", "200"]));
    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicU64::new(0));
    let clients: Vec<_> = (0..SIGTERM_CLIENTS)
        .map(|id| {
            let c = server.connect();
            c.set_read_timeout(Some(Duration::from_secs(8))).unwrap();
            let (stop, answered) = (Arc::clone(&stop), Arc::clone(&answered));
            thread::spawn(move || load_client(c, id, &stop, &answered))
        })
        .collect();
    let loaded = wait_until(Duration::from_secs(10), || {
        answered.load(Ordering::Relaxed) >= (SIGTERM_CLIENTS * PIPELINE * 3) as u64
    });
    assert!(loaded, "[{pattern}] the load did not get going");
    thread::sleep(Duration::from_millis(300));
    // No new batches from here: what is in flight now must be answered.
    stop.store(true, Ordering::SeqCst);
    let signalled = Instant::now();
    let stopped = server.stop_with(libc::SIGTERM, Duration::from_secs(10));
    let results: Vec<_> = clients
        .into_iter()
        .map(|h| h.join().expect("load client"))
        .collect();

    let margin = Duration::from_millis(2);
    let mut in_flight = 0;
    let mut failures = Vec::new();
    for (id, r) in results.iter().enumerate() {
        let LoadResult {
            batches,
            received,
            end,
        } = r;
        let expected: Vec<u8> = batches.iter().flat_map(|b| b.expected.clone()).collect();
        let common = received
            .iter()
            .zip(&expected)
            .take_while(|(a, b)| a == b)
            .count();
        if common < received.len() {
            failures.push(format!(
                "client {id}: wrong reply at byte {common}: {}",
                show_max(&received[common..], 100)
            ));
            continue;
        }
        // Every batch written before the signal is answered in full.
        let mut offset = 0;
        for (n, b) in batches.iter().enumerate() {
            offset += b.expected.len();
            let must = b.written_at + margin <= signalled;
            if must && b.answered_at.is_none_or(|t| t > signalled) {
                in_flight += 1;
            }
            if must && received.len() < offset {
                failures.push(format!(
                    "client {id}: batch {n} of {PIPELINE} requests, written {:?} before \
                     SIGTERM, answered only up to byte {} of {offset} ({} of its {} bytes)",
                    signalled - b.written_at,
                    received.len(),
                    received.len() - (offset - b.expected.len()).min(received.len()),
                    b.expected.len()
                ));
                break;
            }
        }
        if *end == ReadEnd::Timeout {
            failures.push(format!("client {id}: connection not closed after exit"));
        }
    }
    eprintln!(
        "[{pattern}] SIGTERM under load: {} requests answered before; {in_flight} batches of \
         {PIPELINE} in flight at the signal; exit {:?} after {:?} (killed: {})",
        answered.load(Ordering::Relaxed),
        stopped.status,
        stopped.elapsed,
        stopped.killed
    );
    assert!(
        !stopped.killed && stopped.status.success(),
        "[{pattern}] after SIGTERM under load: {stopped:?}; stderr:\n{}",
        server.stderr_text()
    );
    assert!(
        stopped.elapsed < Duration::from_secs(5),
        "[{pattern}] took {:?} to exit after SIGTERM",
        stopped.elapsed
    );
    assert!(
        failures.is_empty(),
        "[{pattern}] in-flight requests not answered at SIGTERM:\n{}",
        failures.join("\n")
    );
    assert!(
        in_flight >= 1,
        "[{pattern}] no batch was in flight at the signal: the test proved nothing"
    );
    assert!(
        !server.stderr_text().contains("panicked"),
        "[{pattern}] panic: {}",
        server.stderr_text()
    );
}

per_pattern!(
    sigterm_under_load_answers_in_flight,
    super::sigterm_under_load
);
