//! Server behaviour beyond single replies, for every threading pattern:
//! ordering of pipelined requests, atomic incr, many connections, a client
//! that never reads, the connection limit, shutdown on signals, `stats`
//! and `stats threads`.
//!
//! The scenarios whose behaviour memcached shares run against the real
//! memcached too (their `memcached` test), to check the expectations; the
//! kvserve-only ones (connection limit, signals, `stats threads`, the
//! output bound) run against kvserve's patterns only.

#[macro_use]
mod common;

use common::*;
use std::io::Write;
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// `--threads N` for patterns with a thread pool; basic has one loop.
fn thread_args(pattern: &str) -> Vec<&'static str> {
    if pattern == "basic" {
        vec!["-t", "1"]
    } else {
        vec!["-t", "3"]
    }
}

// ---------------------------------------------------------------------
// Ordering: pipelined `set k i` + `get k`, several connections at once.

fn ordering(pattern: &str) {
    let server = KvServer::start_suite(pattern, &["-t", "4"], &["-t", "4"]);
    const CONNS: usize = 6;
    const ROUNDS: usize = 400;
    let handles: Vec<_> = (0..CONNS)
        .map(|c| {
            let mut stream = server.connect();
            let pattern = pattern.to_string();
            thread::spawn(move || {
                let key = format!("order:{c}");
                let mut req = Vec::new();
                let mut expected = Vec::new();
                for i in 0..ROUNDS {
                    let value = format!("{c}-{i}");
                    req.extend(set_req(&key, i as u32, value.as_bytes()));
                    req.extend(format!("get {key}\r\n").bytes());
                    expected.extend(b"STORED\r\n");
                    expected.extend(value_reply(&key, i as u32, value.as_bytes()));
                }
                let writer = write_in_background(&stream, req, false);
                read_expected(
                    &mut stream,
                    &expected,
                    &format!("[{pattern}] connection {c}: pipelined set/get order"),
                );
                writer.join().unwrap().expect("write pipeline");
            })
        })
        .collect();
    for h in handles {
        h.join().expect("a connection saw a get out of order");
    }
}

per_pattern!(ordering_of_pipelined_requests, super::ordering, and memcached);

// ---------------------------------------------------------------------
// Requests that arrive in one read with a `quit` (or with input that
// closes the connection) after them are all answered before the close.

fn answers_everything_before_a_close(pattern: &str) {
    let server = KvServer::start(pattern, &thread_args(pattern));
    let mut before = set_req("close:k", 7, b"v");
    before.extend(b"get close:k\r\nget close:k\r\nget close:k\r\n");
    let mut expected = b"STORED\r\n".to_vec();
    for _ in 0..3 {
        expected.extend(value_reply("close:k", 7, b"v"));
    }
    // After `quit` nothing is executed; a binary-protocol packet closes.
    let binary_get = [0x80u8, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0];
    let endings: [(&str, &[u8]); 2] = [
        ("quit", b"quit\r\nget close:k\r\n"),
        ("binary packet", &binary_get),
    ];
    for (what, ending) in endings {
        for round in 0..20 {
            let mut stream = server.connect();
            let mut req = before.clone();
            req.extend_from_slice(ending);
            stream.write_all(&req).unwrap();
            let (got, end) = read_until_eof(&mut stream, Duration::from_secs(5), 1 << 16);
            assert_eq!(
                end,
                ReadEnd::Eof,
                "[{pattern}] {what}: the connection must close"
            );
            assert_eq!(
                String::from_utf8_lossy(&got),
                String::from_utf8_lossy(&expected),
                "[{pattern}] {what}, round {round}: every request before it is answered"
            );
        }
    }
}

per_pattern!(
    requests_before_a_close_are_answered,
    super::answers_everything_before_a_close
);

// ---------------------------------------------------------------------
// 8 clients x 500 incr on one key: 4000, each value returned once.

fn concurrent_incr(pattern: &str) {
    let server = KvServer::start_suite(pattern, &["-t", "4"], &["-t", "4"]);
    let mut c = server.connect();
    assert_eq!(
        request(&mut c, b"set counter 0 0 1\r\n0\r\n"),
        b"STORED\r\n"
    );
    const CLIENTS: usize = 8;
    const INCRS: usize = 500;
    let handles: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let mut s = server.connect();
            thread::spawn(move || {
                let mut seen = Vec::with_capacity(INCRS);
                for _ in 0..INCRS {
                    let reply = request(&mut s, b"incr counter 1\r\n");
                    let text = String::from_utf8_lossy(&reply);
                    let n: u64 = text
                        .strip_suffix("\r\n")
                        .and_then(|t| t.parse().ok())
                        .unwrap_or_else(|| panic!("incr reply {text:?} is not a number"));
                    seen.push(n);
                }
                seen
            })
        })
        .collect();
    let mut all: Vec<u64> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    all.sort_unstable();
    let want: Vec<u64> = (1..=(CLIENTS * INCRS) as u64).collect();
    assert!(
        all == want,
        "[{pattern}] the incr replies are not exactly 1..=4000 (lost or duplicated updates)"
    );
    assert_eq!(
        show(&request(&mut c, b"get counter\r\n")),
        show(&value_reply("counter", 0, b"4000")),
        "[{pattern}] final counter"
    );
}

per_pattern!(concurrent_incr_is_atomic, super::concurrent_incr, and memcached);

// ---------------------------------------------------------------------
// 1,000 concurrent connections, each with its own key.

fn thousand_connections(pattern: &str) {
    let server = KvServer::start_suite(pattern, &thread_args(pattern), &["-c", "4096"]);
    const CONNS: usize = 1000;
    const WORKERS: usize = 16;
    let addr = server.addr();
    let ready = Arc::new(AtomicUsize::new(0));
    let release = Arc::new(AtomicBool::new(false));
    let handles: Vec<_> = (0..WORKERS)
        .map(|w| {
            let ready = Arc::clone(&ready);
            let release = Arc::clone(&release);
            thread::spawn(move || {
                let ids: Vec<usize> = (w..CONNS).step_by(WORKERS).collect();
                let mut streams: Vec<(usize, TcpStream)> = Vec::new();
                for &i in &ids {
                    let s = TcpStream::connect_timeout(&addr, IO_TIMEOUT)
                        .unwrap_or_else(|e| panic!("connection {i}: connect: {e}"));
                    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
                    s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
                    s.set_nodelay(true).unwrap();
                    streams.push((i, s));
                }
                for (i, s) in &mut streams {
                    let key = format!("conn:{i}");
                    let value = format!("value of connection {i}");
                    let r = request(s, &set_req(&key, *i as u32, value.as_bytes()));
                    assert_eq!(show(&r), "STORED\\r\\n", "connection {i}: set");
                    let r = request(s, format!("get {key}\r\n").as_bytes());
                    assert_eq!(
                        show(&r),
                        show(&value_reply(&key, *i as u32, value.as_bytes())),
                        "connection {i}: get"
                    );
                }
                ready.fetch_add(1, Ordering::SeqCst);
                // All connections stay open until every worker got here.
                wait_until(Duration::from_secs(30), || release.load(Ordering::SeqCst));
                // Each still works, and sees another connection's key.
                for (i, s) in &mut streams {
                    let other = (*i + 1) % CONNS;
                    let r = request(s, format!("get conn:{other}\r\n").as_bytes());
                    let value = format!("value of connection {other}");
                    assert_eq!(
                        show(&r),
                        show(&value_reply(
                            &format!("conn:{other}"),
                            other as u32,
                            value.as_bytes()
                        )),
                        "connection {i}: get of connection {other}'s key"
                    );
                }
            })
        })
        .collect();
    let all_ready = wait_until(Duration::from_secs(30), || {
        ready.load(Ordering::SeqCst) == WORKERS || handles.iter().any(|h| h.is_finished())
    });
    let open_ok = all_ready && ready.load(Ordering::SeqCst) == WORKERS;
    let mut curr = None;
    if open_ok {
        let mut c = server.connect();
        curr = Some(stat_u64(&stats(&mut c, ""), "curr_connections"));
    }
    release.store(true, Ordering::SeqCst);
    for h in handles {
        h.join().expect("a connection failed (see its panic above)");
    }
    assert!(
        open_ok,
        "[{pattern}] the {CONNS} connections were not all served within 30 s"
    );
    let curr = curr.unwrap();
    assert!(
        curr > CONNS as u64,
        "[{pattern}] curr_connections = {curr} while {} connections were open",
        CONNS + 1
    );
}

per_pattern!(thousand_concurrent_connections, super::thousand_connections, and memcached);

// ---------------------------------------------------------------------
// A client that pipelines gets of a 100 KiB value and never reads.

fn non_reading_client(pattern: &str) {
    let mut server = KvServer::start_suite(pattern, &thread_args(pattern), &[]);
    let pid = server.pid();
    let mut good = server.connect();
    let big: Vec<u8> = (0..100 * 1024u32).map(|i| b'a' + (i % 26) as u8).collect();
    assert_eq!(request(&mut good, &set_req("big", 0, &big)), b"STORED\r\n");
    assert_eq!(
        request(&mut good, b"set small 0 0 2\r\nok\r\n"),
        b"STORED\r\n"
    );
    let rss_before = rss_kib(pid).expect("read VmRSS");

    // 20,000 gets = ~2 GB of replies, never read.
    let hog = server.connect();
    hog.set_write_timeout(Some(Duration::from_secs(3))).unwrap();
    let writer = write_in_background(&hog, b"get big\r\n".repeat(20_000), false);

    let start = Instant::now();
    let mut max_rss = rss_before;
    let mut worst = Duration::ZERO;
    let mut rounds = 0;
    while start.elapsed() < Duration::from_secs(3) {
        thread::sleep(Duration::from_millis(100));
        let t = Instant::now();
        let r = request(&mut good, b"get small\r\n");
        worst = worst.max(t.elapsed());
        assert_eq!(
            show(&r),
            show(&value_reply("small", 0, b"ok")),
            "[{pattern}] other client"
        );
        if let Some(rss) = rss_kib(pid) {
            max_rss = max_rss.max(rss);
        }
        rounds += 1;
    }
    eprintln!(
        "[{pattern}] non-reading client: RSS {rss_before} -> max {max_rss} KiB, \
         slowest other-client reply {worst:?}"
    );
    assert!(
        rounds >= 5,
        "[{pattern}] only {rounds} requests of the other client in 3 s"
    );
    assert!(
        worst < Duration::from_secs(2),
        "[{pattern}] the other client waited {worst:?} for a reply"
    );
    assert!(
        max_rss < 200 * 1024,
        "[{pattern}] server RSS reached {} MiB (was {} MiB): output to a non-reading client \
         must be bounded",
        max_rss / 1024,
        rss_before / 1024
    );
    // The writer may be blocked on the full socket: that is expected.
    let _ = hog.shutdown(Shutdown::Both);
    let _ = writer.join();
    drop(hog);
    assert_eq!(
        show(&request(&mut good, b"get small\r\n")),
        show(&value_reply("small", 0, b"ok"))
    );
    assert_eq!(server.try_exit_status(), None, "[{pattern}] server exited");
}

per_pattern!(non_reading_client_is_bounded, super::non_reading_client, and memcached);

// ---------------------------------------------------------------------
// --max-conns

fn connection_limit(pattern: &str) {
    let server = KvServer::start(pattern, &["-c", "10"]);
    let mut conns: Vec<TcpStream> = (0..10).map(|_| server.connect()).collect();
    for (i, c) in conns.iter_mut().enumerate() {
        let r = request(c, b"version\r\n");
        assert!(
            r.starts_with(b"VERSION "),
            "[{pattern}] connection {i}: {}",
            show(&r)
        );
    }
    let mut extra = server.connect();
    let (bytes, end) = read_until_eof(&mut extra, IO_TIMEOUT, 4096);
    assert_eq!(
        (show(&bytes).as_str(), end),
        ("ERROR Too many open connections\\r\\n", ReadEnd::Eof),
        "[{pattern}] the 11th connection"
    );
    let r = request(&mut conns[3], b"set still 0 0 3\r\nyes\r\n");
    assert_eq!(
        show(&r),
        "STORED\\r\\n",
        "[{pattern}] an existing connection after the refusal"
    );

    // Closing one frees a slot (the server may notice a moment later).
    drop(conns.pop());
    let served = wait_until(Duration::from_secs(3), || {
        let mut c = server.connect();
        c.write_all(b"get still\r\n").unwrap();
        let (bytes, _) = read_until_eof(&mut c, Duration::from_millis(300), 4096);
        if bytes == value_reply("still", 0, b"yes") {
            return true;
        }
        assert!(
            bytes.is_empty() || bytes.starts_with(b"ERROR Too many open connections"),
            "[{pattern}] unexpected reply {}",
            show(&bytes)
        );
        false
    });
    assert!(
        served,
        "[{pattern}] no slot freed within 3 s after closing a connection"
    );
}

per_pattern!(connection_limit, super::connection_limit);

// ---------------------------------------------------------------------
// Output bound: requests left buffered when the bound stops parsing are
// still served once the output drains, with no further client event.

fn buffered_requests_after_output_bound(pattern: &str) {
    let server = KvServer::start(pattern, &["--max-pending-output", "1k"]);
    let mut c = server.connect();
    let value = vec![b'v'; 10_000];
    assert_eq!(request(&mut c, &set_req("big", 0, &value)), b"STORED\r\n");
    // Each reply alone passes the 1 KiB bound; all five arrive in one write.
    c.write_all(&b"get big\r\n".repeat(5)).unwrap();
    let expected = value_reply("big", 0, &value).repeat(5);
    let got = read_exactly(&mut c, expected.len());
    assert!(
        got == expected,
        "[{pattern}] replies to pipelined large gets"
    );
}

per_pattern!(
    output_bound_resumes_buffered_requests,
    super::buffered_requests_after_output_bound
);

// ---------------------------------------------------------------------
// Shutdown on SIGTERM / SIGINT.

fn sigterm_mid_pipeline(pattern: &str) {
    let mut server = KvServer::start(pattern, &thread_args(pattern));
    let mut c = server.connect();
    let value = b"v".repeat(100);
    assert_eq!(request(&mut c, &set_req("k", 5, &value)), b"STORED\r\n");
    let _idle = server.connect();
    // 200 complete gets, then half a command.
    let mut req = b"get k\r\n".repeat(200);
    req.extend(b"get k");
    c.write_all(&req).unwrap();
    thread::sleep(Duration::from_millis(300));
    let mut reader = c.try_clone().unwrap();
    let collect =
        thread::spawn(move || read_until_eof(&mut reader, Duration::from_secs(8), 1 << 20));

    let stopped = server.stop_with(libc::SIGTERM, Duration::from_secs(10));
    assert!(
        !stopped.killed,
        "[{pattern}] still running 10 s after SIGTERM"
    );
    assert!(
        stopped.status.success(),
        "[{pattern}] exit status after SIGTERM: {:?}; stderr:\n{}",
        stopped.status,
        server.stderr_text()
    );
    assert!(
        stopped.elapsed < Duration::from_secs(5),
        "[{pattern}] took {:?} to exit after SIGTERM",
        stopped.elapsed
    );
    let (bytes, end) = collect.join().unwrap();
    let expected = value_reply("k", 5, &value).repeat(200);
    assert!(
        bytes == expected,
        "[{pattern}] the 200 requests in flight were not all answered before exit: got {} of {} \
         bytes: {}",
        bytes.len(),
        expected.len(),
        show(&bytes[bytes.len().saturating_sub(100)..])
    );
    assert_ne!(
        end,
        ReadEnd::Timeout,
        "[{pattern}] connection still open after exit"
    );
}

per_pattern!(sigterm_mid_pipeline, super::sigterm_mid_pipeline);

fn sigint_exits(pattern: &str) {
    let mut server = KvServer::start(pattern, &thread_args(pattern));
    let mut c = server.connect();
    assert!(request(&mut c, b"version\r\n").starts_with(b"VERSION "));
    let stopped = server.stop_with(libc::SIGINT, Duration::from_secs(10));
    assert!(
        !stopped.killed && stopped.status.success() && stopped.elapsed < Duration::from_secs(5),
        "[{pattern}] after SIGINT: {stopped:?}; stderr:\n{}",
        server.stderr_text()
    );
    // The listener is closed too.
    assert!(
        TcpStream::connect_timeout(&server.addr(), Duration::from_secs(1)).is_err(),
        "[{pattern}] still accepting after exit"
    );
}

per_pattern!(sigint_exits_cleanly, super::sigint_exits);

/// A server whose stderr pipe has been closed (the process that started it
/// is gone) still stops on SIGTERM, and cleanly: a log line that cannot be
/// written must not take down the thread that logs it.
fn sigterm_with_stderr_closed(pattern: &str) {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_kvserve"))
        .args(["--pattern", pattern, "--port", "0", "-l", "127.0.0.1"])
        .args(thread_args(pattern))
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn kvserve");
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    stderr
        .read_line(&mut line)
        .expect("read the listening line");
    assert!(line.contains("listening on"), "[{pattern}] {line}");
    drop(stderr);
    let pid = libc::pid_t::try_from(child.id()).unwrap();
    // SAFETY: kill(2) on our own child, not yet reaped.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let status = exit_within(&mut child, Duration::from_secs(5));
    assert!(
        status.is_some_and(|s| s.success()),
        "[{pattern}] SIGTERM with stderr closed: {status:?} (None: still running after 5 s)"
    );
}

per_pattern!(
    sigterm_with_stderr_closed,
    super::sigterm_with_stderr_closed
);

// ---------------------------------------------------------------------
// stats

const GENERAL_STATS: &[&str] = &[
    "pid",
    "uptime",
    "time",
    "version",
    "curr_connections",
    "total_connections",
    "cmd_get",
    "cmd_set",
    "cmd_flush",
    "cmd_touch",
    "cmd_meta",
    "get_hits",
    "get_misses",
    "get_expired",
    "delete_hits",
    "delete_misses",
    "incr_hits",
    "incr_misses",
    "decr_hits",
    "decr_misses",
    "cas_hits",
    "cas_misses",
    "cas_badval",
    "touch_hits",
    "touch_misses",
    "curr_items",
    "total_items",
    "bytes",
    "evictions",
    "limit_maxbytes",
    "threads",
    "bytes_read",
    "bytes_written",
];

/// Bytes a client sent and received.
#[derive(Default)]
struct Traffic {
    sent: u64,
    received: u64,
}

impl Traffic {
    fn send(&mut self, c: &mut TcpStream, req: &[u8]) -> Vec<u8> {
        let reply = request(c, req);
        self.sent += req.len() as u64;
        self.received += reply.len() as u64;
        reply
    }

    fn exchange(&mut self, c: &mut TcpStream, req: &[u8], want: &[u8], pattern: &str) {
        let reply = self.send(c, req);
        assert_eq!(show(&reply), show(want), "[{pattern}] {}", show(req));
    }
}

fn general_stats(pattern: &str) {
    let threads: u64 = if pattern == "basic" { 1 } else { 3 };
    let t = threads.to_string();
    let server = KvServer::start_suite(pattern, &["-t", &t, "-m", "32"], &["-t", &t, "-m", "32"]);
    let mut c = server.connect();
    let _second = server.connect();
    let mut io = Traffic::default();
    let cmds: &[(&[u8], &[u8])] = &[
        (b"set a 0 0 1\r\n1\r\n", b"STORED\r\n"),
        (b"set b 0 0 1\r\n2\r\n", b"STORED\r\n"),
        (b"set c 0 0 1\r\n3\r\n", b"STORED\r\n"),
        (b"add a 0 0 1\r\n3\r\n", b"NOT_STORED\r\n"),
        (b"replace zz 0 0 1\r\n3\r\n", b"NOT_STORED\r\n"),
        (b"append a 0 0 1\r\n0\r\n", b"STORED\r\n"),
        (
            b"get a b zz\r\n",
            b"VALUE a 0 2\r\n10\r\nVALUE b 0 1\r\n2\r\nEND\r\n",
        ),
        (b"get zz\r\n", b"END\r\n"),
        (b"delete b\r\n", b"DELETED\r\n"),
        (b"delete b\r\n", b"NOT_FOUND\r\n"),
        (b"incr a 1\r\n", b"11\r\n"),
        (b"incr zz 1\r\n", b"NOT_FOUND\r\n"),
        (b"decr a 1\r\n", b"10\r\n"),
        (b"decr zz 1\r\n", b"NOT_FOUND\r\n"),
        (b"decr a 1\r\n", b"9\r\n"),
        (b"cas zz 0 0 1 1\r\nx\r\n", b"NOT_FOUND\r\n"),
        (b"cas a 0 0 1 999999999999\r\nx\r\n", b"EXISTS\r\n"),
    ];
    for (req, want) in cmds {
        io.exchange(&mut c, req, want, pattern);
    }
    let gets = io.send(&mut c, b"gets c\r\n");
    let text = String::from_utf8_lossy(&gets).to_string();
    let cas = text
        .strip_prefix("VALUE c 0 1 ")
        .and_then(|r| r.strip_suffix("\r\n3\r\nEND\r\n"))
        .unwrap_or_else(|| panic!("[{pattern}] gets reply {text:?}"));
    let cas_req = format!("cas c 0 0 1 {cas}\r\n4\r\n");
    io.exchange(&mut c, cas_req.as_bytes(), b"STORED\r\n", pattern);
    io.exchange(&mut c, b"touch a 0\r\n", b"TOUCHED\r\n", pattern);
    io.exchange(&mut c, b"touch zz 0\r\n", b"NOT_FOUND\r\n", pattern);
    let (sent, received) = (io.sent, io.received);

    let before = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let st = stats(&mut c, "");
    for name in GENERAL_STATS {
        assert!(
            st.iter().any(|(k, _)| k == name),
            "[{pattern}] stats lacks {name}: {st:?}"
        );
    }
    let get = |name: &str| stat_u64(&st, name);
    let checks: &[(&str, u64)] = &[
        ("cmd_get", 5),
        ("get_hits", 3),
        ("get_misses", 2),
        // set x3, add, replace, append, cas x3.
        ("cmd_set", 9),
        ("cmd_flush", 0),
        ("cmd_touch", 2),
        ("delete_hits", 1),
        ("delete_misses", 1),
        ("incr_hits", 1),
        ("incr_misses", 1),
        ("decr_hits", 2),
        ("decr_misses", 1),
        ("cas_hits", 1),
        ("cas_misses", 1),
        ("cas_badval", 1),
        ("touch_hits", 1),
        ("touch_misses", 1),
        ("curr_items", 2),
        ("evictions", 0),
        ("limit_maxbytes", 32 * 1024 * 1024),
        ("threads", threads),
        ("pid", u64::from(server.pid())),
    ];
    for &(name, want) in checks {
        assert_eq!(get(name), want, "[{pattern}] STAT {name}");
    }
    assert!(
        get("total_items") >= 3,
        "[{pattern}] total_items {}",
        get("total_items")
    );
    assert!(get("bytes") > 0, "[{pattern}] bytes");
    assert!(get("curr_connections") >= 2, "[{pattern}] curr_connections");
    assert!(
        get("total_connections") >= 2,
        "[{pattern}] total_connections"
    );
    assert!(
        get("bytes_read") >= sent,
        "[{pattern}] bytes_read {} < {sent}",
        get("bytes_read")
    );
    assert!(
        get("bytes_written") >= received,
        "[{pattern}] bytes_written {} < {received}",
        get("bytes_written")
    );
    assert!(get("uptime") < 120, "[{pattern}] uptime {}", get("uptime"));
    let time = get("time");
    assert!(
        time.abs_diff(before) <= 10,
        "[{pattern}] time {time}, now {before}"
    );
    let version = &st.iter().find(|(k, _)| k == "version").unwrap().1;
    assert!(!version.is_empty(), "[{pattern}] empty version");
    if pattern != MEMCACHED {
        let p = &st
            .iter()
            .find(|(k, _)| k == "pattern")
            .expect("STAT pattern")
            .1;
        assert_eq!(p, pattern, "[{pattern}] STAT pattern");
    }

    // stats itself is no get; flush_all is counted.
    assert_eq!(request(&mut c, b"flush_all\r\n"), b"OK\r\n");
    let st2 = stats(&mut c, "");
    assert_eq!(
        stat_u64(&st2, "cmd_flush"),
        1,
        "[{pattern}] cmd_flush after flush_all"
    );
    assert_eq!(
        stat_u64(&st2, "cmd_get"),
        5,
        "[{pattern}] cmd_get after stats"
    );
    assert!(
        stat_u64(&st2, "bytes_read") > get("bytes_read"),
        "[{pattern}] bytes_read grows"
    );
}

per_pattern!(stats_general_fields, super::general_stats, and memcached);

// conn_yields: a connection whose pipeline outlasts -R makes way for the
// others (event loops; worker-pool and work-stealing batch at most -R
// requests instead), and `stats reset` starts the count again.
fn conn_yields(pattern: &str) {
    let server = KvServer::start_suite(pattern, &["-t", "2", "-R", "5"], &["-t", "2", "-R", "5"]);
    let mut c = server.connect();
    let mut req = Vec::new();
    let mut expected = Vec::new();
    for _ in 0..50 {
        req.extend_from_slice(b"get nothing\r\n");
        expected.extend_from_slice(b"END\r\n");
    }
    c.write_all(&req).unwrap();
    read_expected(&mut c, &expected, &format!("[{pattern}] 50 pipelined gets"));
    let yields = stat_u64(&stats(&mut c, ""), "conn_yields");
    if pattern == "worker-pool" || pattern == "work-stealing" {
        assert_eq!(yields, 0, "[{pattern}] batches, not yields");
    } else {
        assert!(
            yields >= 1,
            "[{pattern}] 50 requests at -R 5: conn_yields {yields}"
        );
    }
    assert_eq!(request(&mut c, b"stats reset\r\n"), b"RESET\r\n");
    assert_eq!(
        stat_u64(&stats(&mut c, ""), "conn_yields"),
        0,
        "[{pattern}] after reset"
    );
}

per_pattern!(conn_yields_counted_and_reset, super::conn_yields, and memcached);

fn thread_stats(pattern: &str) {
    let server = KvServer::start(pattern, &thread_args(pattern));
    let mut conns: Vec<TcpStream> = (0..3).map(|_| server.connect()).collect();
    let mut sent_reqs = 0u64;
    let mut sent_bytes = 0u64;
    for (i, c) in conns.iter_mut().enumerate() {
        for j in 0..10 {
            let req = set_req(&format!("t{i}:{j}"), 0, b"value");
            assert_eq!(request(c, &req), b"STORED\r\n");
            sent_bytes += req.len() as u64;
            let req = format!("get t{i}:{j}\r\n");
            assert_eq!(
                request(c, req.as_bytes()),
                value_reply(&format!("t{i}:{j}"), 0, b"value")
            );
            sent_bytes += req.len() as u64;
            sent_reqs += 2;
        }
    }
    let st = stats(&mut conns[0], "threads");
    // Group `N:field value` by N, keeping the order of appearance.
    let mut threads: Vec<(String, Vec<(String, String)>)> = Vec::new();
    for (k, v) in &st {
        let (id, field) = k
            .split_once(':')
            .unwrap_or_else(|| panic!("[{pattern}] stats threads line without N: {k} {v}"));
        match threads.last_mut() {
            Some((last, fields)) if last == id => fields.push((field.to_string(), v.clone())),
            _ => {
                assert!(
                    !threads.iter().any(|(t, _)| t == id),
                    "[{pattern}] thread {id} appears twice, not grouped"
                );
                threads.push((id.to_string(), vec![(field.to_string(), v.clone())]));
            }
        }
    }
    let want_fields = [
        "role",
        "connections",
        "requests",
        "bytes_read",
        "bytes_written",
        "busy_us",
    ];
    let mut roles = Vec::new();
    let mut requests = 0u64;
    let mut bytes_read = 0u64;
    let mut connections = 0u64;
    // Only work-stealing's readers add what they stole and lost.
    let stealing_fields: Vec<&str> = want_fields
        .iter()
        .copied()
        .chain(["stolen", "lost"])
        .collect();
    for (id, fields) in &threads {
        let names: Vec<&str> = fields.iter().map(|(f, _)| f.as_str()).collect();
        let want: &[&str] = if pattern == "work-stealing" && fields[0].1 == "reader" {
            &stealing_fields
        } else {
            &want_fields
        };
        assert_eq!(names, want, "[{pattern}] fields of thread {id}");
        roles.push(fields[0].1.clone());
        for (f, v) in &fields[1..] {
            let n: u64 = v
                .parse()
                .unwrap_or_else(|_| panic!("[{pattern}] {id}:{f} = {v:?} is not a number"));
            match f.as_str() {
                "requests" => requests += n,
                "bytes_read" => bytes_read += n,
                "connections" => connections += n,
                _ => {}
            }
        }
    }
    let count = |r: &str| roles.iter().filter(|x| *x == r).count();
    let (want_roles, total): (&[(&str, usize)], usize) = match pattern {
        "basic" => (&[("loop", 1)], 1),
        "multi-reader" => (&[("acceptor", 1), ("reader", 3)], 4),
        "worker-pool" => (&[("dispatch", 1), ("worker", 3)], 4),
        "work-stealing" => (&[("acceptor", 1), ("reader", 3)], 4),
        "reuseport" => (&[("loop", 3)], 3),
        _ => unreachable!(),
    };
    for &(role, n) in want_roles {
        assert_eq!(
            count(role),
            n,
            "[{pattern}] threads with role {role}: {roles:?}"
        );
    }
    assert_eq!(roles.len(), total, "[{pattern}] thread entries: {roles:?}");
    assert!(
        requests >= sent_reqs,
        "[{pattern}] requests summed over threads {requests} < {sent_reqs} sent"
    );
    assert!(
        bytes_read >= sent_bytes,
        "[{pattern}] bytes_read summed over threads {bytes_read} < {sent_bytes} sent"
    );
    assert!(
        connections >= 3,
        "[{pattern}] connections summed over threads: {connections}"
    );
}

per_pattern!(stats_threads_shape, super::thread_stats);
