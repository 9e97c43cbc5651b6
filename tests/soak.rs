//! Soak: each threading pattern under every hardening scenario at once,
//! for `KVSERVE_SOAK_SECS` seconds (default 120) per pattern, printing
//! figures every 5 s. Ignored by plain `cargo test`; run on demand:
//!
//! ```sh
//! cargo test --release --test soak -- --ignored --nocapture
//! KVSERVE_SOAK_SECS=600 cargo test --release --test soak -- --ignored --nocapture worker_pool
//! ```
//!
//! At once, against one server with `-m 64 --idle-timeout 10`: 8 threads
//! writing and reading checksummed values of 1 B to 64 KiB, a bulk writer
//! pushing 100 KiB values through the memory limit, connection churn with
//! one close in three an RST mid-request, a garbage sender, 50 clients
//! dribbling a byte every 200 ms, a client that pipelines gets of a 512
//! KiB value and never reads (replaced every 5 s), silent connections the
//! idle timeout must close, and a probe measuring a normal client's
//! latency. The soak fails on any corrupted or foreign value, any
//! unexpected reply, a stuck connection, RSS over its bound or still
//! climbing at the end, leaked connections or descriptors, or an unclean
//! exit on SIGTERM.

#[macro_use]
mod common;

use common::*;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// One soak at a time: they measure latency and memory.
static SERIAL: Mutex<()> = Mutex::new(());

const MIB: u64 = 1024;
const REPORT_EVERY: Duration = Duration::from_secs(5);
const IDLE_TIMEOUT_SECS: u64 = 10;
const WORKERS: usize = 8;
const KEYS_PER_WORKER: usize = 512;
const MAX_VALUE: usize = 64 * 1024;
const DRIBBLERS: usize = 50;
const BULK_VALUE: usize = 100 * 1024;
/// Bulk writer pace: enough to cycle the 64 MiB store every few seconds.
const BULK_MIB_PER_SEC: usize = 20;
/// RSS bound: 1.15 x the limit + 8 MiB (the memory-limit bound of
/// tests/reliability.rs), plus 16 MiB for the extra clients' buffers (the
/// non-reading client above all). Measured: 75-77 MiB peak in release
/// builds (docs/memory.md).
const RSS_BOUND_KIB: u64 = 64 * MIB * 115 / 100 + 8 * MIB + 16 * MIB;

fn soak_secs() -> u64 {
    std::env::var("KVSERVE_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(120)
        .max(10)
}

/// What every actor shares: the deadline and the counters.
struct Soak {
    deadline: Instant,
    addr: SocketAddr,
    ops: AtomicU64,
    errors: AtomicU64,
    corrupt: AtomicU64,
    evicted_misses: AtomicU64,
    bulk_bytes: AtomicU64,
    churned: AtomicU64,
    resets: AtomicU64,
    garbage: AtomicU64,
    dribbled: AtomicU64,
    hogs: AtomicU64,
    idle_closed: AtomicU64,
    probes: Mutex<Vec<Duration>>,
    messages: Mutex<Vec<String>>,
}

impl Soak {
    fn running(&self) -> bool {
        Instant::now() < self.deadline
    }

    fn error(&self, what: String) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        let mut m = self.messages.lock().unwrap();
        if m.len() < 30 {
            m.push(what);
        }
    }

    fn corrupted(&self, what: String) {
        self.corrupt.fetch_add(1, Ordering::Relaxed);
        self.error(what);
    }

    fn connect(&self) -> io::Result<Conn> {
        let s = TcpStream::connect_timeout(&self.addr, IO_TIMEOUT)?;
        s.set_read_timeout(Some(IO_TIMEOUT))?;
        s.set_write_timeout(Some(IO_TIMEOUT))?;
        s.set_nodelay(true)?;
        Ok(Conn { s, buf: Vec::new() })
    }

    /// Sleeps `d`, or less if the soak ends first.
    fn pause(&self, d: Duration) {
        let left = self.deadline.saturating_duration_since(Instant::now());
        thread::sleep(d.min(left));
    }
}

/// A client that reports failures instead of panicking.
struct Conn {
    s: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    fn send(&mut self, req: &[u8]) -> Result<(), String> {
        self.s.write_all(req).map_err(|e| format!("write: {e}"))
    }

    /// Reads one complete reply.
    fn reply(&mut self) -> Result<Vec<u8>, String> {
        let deadline = Instant::now() + IO_TIMEOUT;
        let mut chunk = [0u8; 64 * 1024];
        loop {
            if let Some(n) = reply_len(&self.buf) {
                let rest = self.buf.split_off(n);
                return Ok(std::mem::replace(&mut self.buf, rest));
            }
            if Instant::now() > deadline {
                return Err(format!("no whole reply in 5 s: {}", show(&self.buf)));
            }
            match self.s.read(&mut chunk) {
                Ok(0) => return Err(format!("EOF mid-reply: {}", show(&self.buf))),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("read: {e} after {}", show(&self.buf))),
            }
        }
    }

    fn call(&mut self, req: &[u8]) -> Result<Vec<u8>, String> {
        self.send(req)?;
        self.reply()
    }
}

// ---------------------------------------------------------------------
// Actors. Each loops until the deadline and reports through `Soak`.

/// The latest acknowledged (version, length) of each of a worker's keys.
type KeyState = Vec<Option<(u64, usize)>>;

fn skey(w: usize, k: usize) -> String {
    format!("s{w}:{k}")
}

/// Checks a `get` reply for one of this worker's own keys: a miss
/// (evicted) or exactly its latest acknowledged value.
fn check_own(soak: &Soak, key: &str, state: Option<(u64, usize)>, item: Option<&Item>) {
    match (item, state) {
        (None, Some(_)) => {
            soak.evicted_misses.fetch_add(1, Ordering::Relaxed);
        }
        (None, None) => {}
        (Some(item), want) => {
            let expected = want.map(|(v, len)| checked_value(key, v, len));
            if expected.as_ref() != Some(&(item.flags, item.data.clone())) {
                soak.corrupted(format!(
                    "{key}: read {} bytes (flags {:#x}) where the latest acknowledged is {want:?}",
                    item.data.len(),
                    item.flags
                ));
            }
        }
    }
}

fn integrity_worker(soak: &Soak, w: usize) -> KeyState {
    let mut rng = Rng::new(7000 + w as u64);
    let mut state: KeyState = vec![None; KEYS_PER_WORKER];
    let mut version = 0u64;
    let mut conn = None;
    while soak.running() {
        let c = match conn.as_mut() {
            Some(c) => c,
            None => match soak.connect() {
                Ok(c) => conn.insert(c),
                Err(e) => {
                    soak.error(format!("worker {w}: connect: {e}"));
                    soak.pause(Duration::from_millis(100));
                    continue;
                }
            },
        };
        let k = rng.below(KEYS_PER_WORKER);
        let key = skey(w, k);
        let outcome: Result<(), String> = (|| {
            match rng.below(100) {
                0..=34 => {
                    version += 1;
                    let len = rng.log_size(MAX_VALUE);
                    let (flags, data) = checked_value(&key, version, len);
                    let r = c.call(&set_req(&key, flags, &data))?;
                    if r != b"STORED\r\n" {
                        return Err(format!("set {key}: {}", show(&r)));
                    }
                    state[k] = Some((version, len));
                }
                35..=44 => {
                    let n = 2 + rng.below(7);
                    let mut req = Vec::new();
                    let mut keys = Vec::new();
                    for _ in 0..n {
                        let k = rng.below(KEYS_PER_WORKER);
                        version += 1;
                        let len = rng.log_size(MAX_VALUE / 4);
                        let (flags, data) = checked_value(&skey(w, k), version, len);
                        req.extend(set_req(&skey(w, k), flags, &data));
                        keys.push((k, version, len));
                    }
                    c.send(&req)?;
                    for (k, v, len) in keys {
                        let r = c.reply()?;
                        if r != b"STORED\r\n" {
                            return Err(format!("pipelined set {}: {}", skey(w, k), show(&r)));
                        }
                        state[k] = Some((v, len));
                    }
                }
                45..=69 => {
                    let r = c.call(format!("get {key}\r\n").as_bytes())?;
                    let items = parse_get_reply(&r).map_err(|e| format!("get {key}: {e}"))?;
                    check_own(soak, &key, state[k], items.first());
                }
                70..=89 => {
                    let n = 1 + rng.below(6);
                    let names: Vec<String> = (0..n)
                        .map(|_| skey(rng.below(WORKERS), rng.below(KEYS_PER_WORKER)))
                        .collect();
                    let r = c.call(format!("get {}\r\n", names.join(" ")).as_bytes())?;
                    let items = parse_get_reply(&r).map_err(|e| format!("get {names:?}: {e}"))?;
                    for item in &items {
                        if !names.contains(&item.key) {
                            soak.corrupted(format!("get {names:?} returned {}", item.key));
                        } else if let Err(e) = verify_value(&item.key, item.flags, &item.data) {
                            soak.corrupted(e);
                        }
                    }
                }
                90..=94 => {
                    let r = c.call(format!("delete {key}\r\n").as_bytes())?;
                    // NOT_FOUND is fine when the key was evicted.
                    let ok = r == b"NOT_FOUND\r\n" || (r == b"DELETED\r\n" && state[k].is_some());
                    if !ok {
                        return Err(format!("delete {key} ({:?}): {}", state[k], show(&r)));
                    }
                    state[k] = None;
                }
                _ => {
                    let r = c.call(format!("gets {key}\r\n").as_bytes())?;
                    let items = parse_get_reply(&r).map_err(|e| format!("gets {key}: {e}"))?;
                    check_own(soak, &key, state[k], items.first());
                }
            }
            Ok(())
        })();
        soak.ops.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = outcome {
            soak.error(format!("worker {w}: {e}"));
            // Start over on a new connection: the old one is out of step.
            conn = None;
        }
    }
    state
}

fn bulk_value(n: u64) -> Vec<u8> {
    let mut v = vec![b'a' + (n % 26) as u8; BULK_VALUE];
    let tag = format!("bulk:{n}#");
    v[..tag.len()].copy_from_slice(tag.as_bytes());
    v
}

/// Pushes 100 KiB values (noreply, pipelined) through the memory limit at
/// a steady pace; reads back a recent one now and then.
fn bulk_writer(soak: &Soak) {
    let mut n = 0u64;
    let start = Instant::now();
    let per_sec = (BULK_MIB_PER_SEC << 20) / BULK_VALUE;
    while soak.running() {
        let mut c = match soak.connect() {
            Ok(c) => c,
            Err(e) => {
                soak.error(format!("bulk: connect: {e}"));
                soak.pause(Duration::from_millis(100));
                continue;
            }
        };
        while soak.running() {
            let mut req = Vec::new();
            for _ in 0..8 {
                req.extend(format!("set bulk:{n} 0 0 {BULK_VALUE} noreply\r\n").bytes());
                req.extend(bulk_value(n));
                req.extend_from_slice(b"\r\n");
                n += 1;
            }
            let check = n - 1;
            req.extend(format!("get bulk:{check}\r\n").bytes());
            let r = match c.call(&req) {
                Ok(r) => r,
                Err(e) => {
                    soak.error(format!("bulk: {e}"));
                    break;
                }
            };
            // Just written: present and intact.
            if r != value_reply(&format!("bulk:{check}"), 0, &bulk_value(check)) {
                soak.corrupted(format!("bulk:{check} read back {}", show_max(&r, 80)));
            }
            soak.bulk_bytes
                .fetch_add(8 * BULK_VALUE as u64, Ordering::Relaxed);
            soak.ops.fetch_add(9, Ordering::Relaxed);
            let due = start + Duration::from_secs_f64(n as f64 / per_sec as f64);
            soak.pause(due.saturating_duration_since(Instant::now()));
        }
    }
}

/// Short connections: a few requests, then a close, one in three an RST
/// in the middle of a set.
fn churn(soak: &Soak) {
    let mut rng = Rng::new(99);
    let mut i = 0u64;
    while soak.running() {
        i += 1;
        let mut c = match soak.connect() {
            Ok(c) => c,
            Err(e) => {
                soak.error(format!("churn: connect: {e}"));
                soak.pause(Duration::from_millis(100));
                continue;
            }
        };
        let key = format!("churn:{}", i % 1000);
        let len = rng.log_size(4096);
        let value = rng.bytes(len);
        let result = c
            .call(&set_req(&key, 1, &value))
            .and_then(|r| {
                if r == b"STORED\r\n" {
                    c.call(format!("get {key}\r\n").as_bytes())
                } else {
                    Err(format!("set {key}: {}", show(&r)))
                }
            })
            .and_then(|r| match parse_get_reply(&r) {
                // Evicted already is possible under the bulk writer.
                Ok(items) if items.is_empty() || items[0].data == value => Ok(()),
                Ok(_) => {
                    soak.corrupted(format!("churn {key}: wrong value"));
                    Ok(())
                }
                Err(e) => Err(e),
            });
        if let Err(e) = result {
            soak.error(format!("churn: {e}"));
        }
        if rng.below(3) == 0 {
            let _ = c.send(format!("set {key} 0 0 5000\r\n{}", "h".repeat(2000)).as_bytes());
            thread::sleep(Duration::from_millis(2));
            reset_close(c.s);
            soak.resets.fetch_add(1, Ordering::Relaxed);
        }
        soak.churned.fetch_add(1, Ordering::Relaxed);
        soak.ops.fetch_add(2, Ordering::Relaxed);
        soak.pause(Duration::from_millis(5));
    }
}

/// A garbage input; the server answers it with errors, then closes.
fn garbage_payload(rng: &mut Rng) -> Vec<u8> {
    match rng.below(6) {
        0 => rng.bytes(4096),
        1 => {
            let mut lines = Vec::new();
            for _ in 0..50 {
                let words = 1 + rng.below(10);
                lines.extend(b"NOPE");
                for _ in 0..words {
                    lines.push(b' ');
                    lines.extend(rng.bytes(8).iter().map(|b| b'a' + b % 26));
                }
                lines.extend_from_slice(b"\r\n");
            }
            lines
        }
        2 => vec![b'x'; if rng.below(10) == 0 { 1 << 20 } else { 4096 }],
        3 => {
            let lens = ["4294967295", "-1", "abc", "99999999999999999999"];
            format!("set k 0 0 {}\r\n", lens[rng.below(lens.len())]).into_bytes()
        }
        4 => {
            let mut p = vec![0x80, rng.below(0x20) as u8, 0, 3, 0, 0, 0, 0, 0, 0, 0, 3];
            p.extend_from_slice(&[0; 12]);
            p.extend_from_slice(b"foo");
            p
        }
        _ => [b"set k 0 0 2147483647\r\n".as_slice(), &rng.bytes(10_000)].concat(),
    }
}

fn garbage(soak: &Soak) {
    let mut rng = Rng::new(4242);
    while soak.running() {
        let payload = garbage_payload(&mut rng);
        let mut c = match soak.connect() {
            Ok(c) => c,
            Err(e) => {
                soak.error(format!("garbage: connect: {e}"));
                soak.pause(Duration::from_millis(100));
                continue;
            }
        };
        let mut w = c.s.try_clone().expect("clone");
        let writer = thread::spawn(move || {
            if w.write_all(&payload).is_ok() {
                let _ = w.shutdown(Shutdown::Write);
            }
        });
        let (reply, end) = read_until_eof(&mut c.s, Duration::from_secs(5), 1 << 20);
        let _ = writer.join();
        if end == ReadEnd::Timeout {
            soak.error(format!(
                "garbage: connection not closed within 5 s: {}",
                show(&reply)
            ));
        }
        let complete = reply
            .windows(2)
            .rposition(|w| w == b"\r\n")
            .map_or(0, |p| p + 2);
        for line in reply[..complete].split(|&b| b == b'\n') {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if !line.is_empty() && !is_error_line(line) {
                soak.error(format!("garbage: non-error reply {}", show(line)));
            }
        }
        soak.garbage.fetch_add(1, Ordering::Relaxed);
        soak.pause(Duration::from_millis(200));
    }
}

/// 50 connections sending a set one byte every 200 ms, over and over.
fn dribblers(soak: &Soak) {
    let mut conns: Vec<Conn> = Vec::new();
    for _ in 0..DRIBBLERS {
        match soak.connect() {
            Ok(c) => conns.push(c),
            Err(e) => soak.error(format!("dribbler: connect: {e}")),
        }
    }
    let messages: Vec<Vec<u8>> = (0..conns.len())
        .map(|i| format!("set dr{i:02} 0 0 1\r\nx\r\n").into_bytes())
        .collect();
    let mut at = 0;
    while soak.running() && !conns.is_empty() {
        let tick = Instant::now();
        for (c, m) in conns.iter_mut().zip(&messages) {
            if let Err(e) = c.send(&m[at..at + 1]) {
                soak.error(format!("dribbler: {e}"));
            }
        }
        at += 1;
        if at == messages[0].len() {
            at = 0;
            for c in &mut conns {
                match c.reply() {
                    Ok(r) if r == b"STORED\r\n" => {
                        soak.dribbled.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(r) => soak.error(format!("dribbler: {}", show(&r))),
                    Err(e) => soak.error(format!("dribbler: {e}")),
                }
            }
        }
        soak.pause(Duration::from_millis(200).saturating_sub(tick.elapsed()));
    }
}

/// A client pipelining gets of a 512 KiB value and never reading, replaced
/// (with an RST) every 5 s.
fn hog(soak: &Soak) {
    while soak.running() {
        let c = match soak.connect() {
            Ok(c) => c,
            Err(e) => {
                soak.error(format!("hog: connect: {e}"));
                soak.pause(Duration::from_millis(100));
                continue;
            }
        };
        let writer = write_in_background(&c.s, b"get hogbig\r\n".repeat(2000), false);
        soak.pause(Duration::from_secs(5));
        let _ = writer.join();
        reset_close(c.s);
        soak.hogs.fetch_add(1, Ordering::Relaxed);
    }
}

/// Silent connections: the idle timeout must close each within a few
/// seconds of it.
fn sleeper(soak: &Soak) {
    let limit = Duration::from_secs(IDLE_TIMEOUT_SECS + 4);
    while soak.deadline.saturating_duration_since(Instant::now()) > limit {
        // Before connecting: the server's idle clock starts at its accept.
        let t = Instant::now();
        let mut c = match soak.connect() {
            Ok(c) => c,
            Err(e) => {
                soak.error(format!("sleeper: connect: {e}"));
                soak.pause(Duration::from_millis(100));
                continue;
            }
        };
        let (bytes, end) = read_until_eof(&mut c.s, limit, 4096);
        let after = t.elapsed();
        if end == ReadEnd::Timeout || after < Duration::from_secs(IDLE_TIMEOUT_SECS) {
            soak.error(format!(
                "sleeper: idle connection ended {end:?} after {after:?} ({})",
                show(&bytes)
            ));
        } else {
            soak.idle_closed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// A normal client: one `get` every 10 ms, timed.
fn probe(soak: &Soak) {
    let want = value_reply("probe", 3, b"probe value");
    let mut conn = None;
    while soak.running() {
        let c = match conn.as_mut() {
            Some(c) => c,
            None => match soak.connect() {
                Ok(c) => conn.insert(c),
                Err(e) => {
                    soak.error(format!("probe: connect: {e}"));
                    soak.pause(Duration::from_millis(100));
                    continue;
                }
            },
        };
        let t = Instant::now();
        match c.call(b"get probe\r\n") {
            Ok(r) if r == want => soak.probes.lock().unwrap().push(t.elapsed()),
            Ok(r) => soak.corrupted(format!("probe: {}", show(&r))),
            Err(e) => {
                soak.error(format!("probe: {e}"));
                conn = None;
            }
        }
        soak.pause(Duration::from_millis(10));
    }
}

// ---------------------------------------------------------------------

fn soak(pattern: &str) {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let secs = soak_secs();
    let idle = IDLE_TIMEOUT_SECS.to_string();
    let threads: &[&str] = if pattern == "basic" {
        &[]
    } else {
        &["-t", "2"]
    };
    let mut args = vec!["-m", "64", "-c", "4096", "--idle-timeout", &idle];
    args.extend_from_slice(threads);
    let mut server = KvServer::start(pattern, &args);
    let pid = server.pid();
    let mut monitor = server.connect();
    let big: Vec<u8> = (0..512 * 1024u32).map(|i| b'A' + (i % 26) as u8).collect();
    assert_eq!(
        request(&mut monitor, &set_req("hogbig", 0, &big)),
        b"STORED\r\n"
    );
    assert_eq!(
        request(&mut monitor, &set_req("probe", 3, b"probe value")),
        b"STORED\r\n"
    );
    let base_fds = fd_count(pid);
    let rss_start = rss_kib(pid).unwrap();
    eprintln!(
        "[{pattern}] soak for {secs} s: {}; RSS {rss_start} KiB, {base_fds} fds",
        server.label()
    );
    let soak = Arc::new(Soak {
        deadline: Instant::now() + Duration::from_secs(secs),
        addr: server.addr(),
        ops: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        corrupt: AtomicU64::new(0),
        evicted_misses: AtomicU64::new(0),
        bulk_bytes: AtomicU64::new(0),
        churned: AtomicU64::new(0),
        resets: AtomicU64::new(0),
        garbage: AtomicU64::new(0),
        dribbled: AtomicU64::new(0),
        hogs: AtomicU64::new(0),
        idle_closed: AtomicU64::new(0),
        probes: Mutex::new(Vec::new()),
        messages: Mutex::new(Vec::new()),
    });
    let start = Instant::now();
    let workers: Vec<_> = (0..WORKERS)
        .map(|w| {
            let soak = Arc::clone(&soak);
            thread::spawn(move || integrity_worker(&soak, w))
        })
        .collect();
    let actors: Vec<_> = [bulk_writer, churn, garbage, dribblers, hog, sleeper, probe]
        .into_iter()
        .map(|f| {
            let soak = Arc::clone(&soak);
            thread::spawn(move || f(&soak))
        })
        .collect();

    // Report every 5 s until the deadline.
    let mut rss_series: Vec<(Duration, u64)> = Vec::new();
    let mut all_probes: Vec<Duration> = Vec::new();
    let mut peak = rss_start;
    let mut last_ops = 0;
    let mut next = start + REPORT_EVERY;
    while soak.running() {
        // Sample RSS often; report at each interval.
        while Instant::now() < next.min(soak.deadline) {
            if let Some(rss) = rss_kib(pid) {
                peak = peak.max(rss);
                rss_series.push((start.elapsed(), rss));
            }
            thread::sleep(Duration::from_millis(50));
        }
        next += REPORT_EVERY;
        let window: Vec<Duration> = std::mem::take(&mut *soak.probes.lock().unwrap());
        let st = stats(&mut monitor, "");
        let ops = soak.ops.load(Ordering::Relaxed);
        eprintln!(
            "[{pattern}] {:>4.0}s ops {:>8} ({:>6.0}/s) err {} corrupt {} | RSS {:>6} KiB peak {:>6} \
             | fds {:>3} conns {:>3} items {:>5} evictions {:>7} | probe p50 {:.2} p99 {:.2} max \
             {:.2} ms",
            start.elapsed().as_secs_f64(),
            ops,
            (ops - last_ops) as f64 / REPORT_EVERY.as_secs_f64(),
            soak.errors.load(Ordering::Relaxed),
            soak.corrupt.load(Ordering::Relaxed),
            rss_kib(pid).unwrap_or(0),
            peak,
            fd_count(pid),
            stat_u64(&st, "curr_connections"),
            stat_u64(&st, "curr_items"),
            stat_u64(&st, "evictions"),
            percentile(&window, 0.5).as_secs_f64() * 1e3,
            percentile(&window, 0.99).as_secs_f64() * 1e3,
            percentile(&window, 1.0).as_secs_f64() * 1e3,
        );
        last_ops = ops;
        all_probes.extend(window);
    }
    let states: Vec<KeyState> = workers
        .into_iter()
        .map(|h| h.join().expect("worker thread"))
        .collect();
    for a in actors {
        a.join().expect("actor thread");
    }
    all_probes.extend(std::mem::take(&mut *soak.probes.lock().unwrap()));
    let elapsed = start.elapsed();

    // Every worker's keys: evicted, or their latest acknowledged value.
    let mut c = server.connect();
    let mut intact = 0;
    for (w, state) in states.iter().enumerate() {
        for (k, s) in state.iter().enumerate() {
            let key = skey(w, k);
            let r = request(&mut c, format!("get {key}\r\n").as_bytes());
            match parse_get_reply(&r) {
                Ok(items) => {
                    intact += usize::from(!items.is_empty());
                    check_own(&soak, &key, *s, items.first());
                }
                Err(e) => soak.error(format!("final get {key}: {e}")),
            }
        }
    }
    drop(c);
    let back = wait_until(Duration::from_secs(10), || {
        stat_u64(&stats(&mut monitor, ""), "curr_connections") == 1 && fd_count(pid) <= base_fds
    });
    let st = stats(&mut monitor, "");
    let stopped = server.stop_with(libc::SIGTERM, Duration::from_secs(10));

    // Figures.
    let n = rss_series.len();
    let max_in = |from: usize, to: usize| max_rss(&rss_series[from..to]);
    let (second_quarter, last_quarter) = (max_in(n / 4, n / 2), max_in(n * 3 / 4, n));
    let every: Vec<String> = rss_series
        .iter()
        .step_by((n / 12).max(1))
        .map(|(t, r)| format!("{:.0}s:{}", t.as_secs_f64(), r / 1024))
        .collect();
    let ops = soak.ops.load(Ordering::Relaxed);
    let errors = soak.errors.load(Ordering::Relaxed);
    let corrupt = soak.corrupt.load(Ordering::Relaxed);
    let evictions = stat_u64(&st, "evictions");
    let p99 = percentile(&all_probes, 0.99);
    eprintln!(
        "[{pattern}] soak done in {elapsed:.1?}: {ops} ops ({:.0}/s), {errors} errors, {corrupt} \
         corrupt; bulk {} MiB; churned {} connections ({} reset mid-request); {} garbage \
         connections; {} dribbled sets; {} non-reading clients; {} idle connections closed; \
         {} own-key misses after eviction; evictions {evictions}, total_connections {}; {intact} \
         worker keys intact at the end\n[{pattern}] RSS KiB: start {rss_start}, peak {peak}, \
         max 2nd quarter {second_quarter}, max last quarter {last_quarter}; MiB over time: {}\n\
         [{pattern}] probe ({} samples): p50 {:.2} ms p99 {:.2} ms p99.9 {:.2} ms max {:.2} ms; \
         back to baseline (1 connection, {base_fds} fds): {back}; SIGTERM: {stopped:?}",
        ops as f64 / elapsed.as_secs_f64(),
        soak.bulk_bytes.load(Ordering::Relaxed) >> 20,
        soak.churned.load(Ordering::Relaxed),
        soak.resets.load(Ordering::Relaxed),
        soak.garbage.load(Ordering::Relaxed),
        soak.dribbled.load(Ordering::Relaxed),
        soak.hogs.load(Ordering::Relaxed),
        soak.idle_closed.load(Ordering::Relaxed),
        soak.evicted_misses.load(Ordering::Relaxed),
        stat_u64(&st, "total_connections"),
        every.join(" "),
        all_probes.len(),
        percentile(&all_probes, 0.5).as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3,
        percentile(&all_probes, 0.999).as_secs_f64() * 1e3,
        percentile(&all_probes, 1.0).as_secs_f64() * 1e3,
    );
    let messages = soak.messages.lock().unwrap().join("\n");
    assert_eq!(
        (errors, corrupt),
        (0, 0),
        "[{pattern}] errors during the soak (first ones):\n{messages}"
    );
    assert!(
        !server.stderr_text().contains("panicked"),
        "[{pattern}] server panicked:\n{}",
        server.stderr_text()
    );
    assert!(
        back,
        "[{pattern}] connections or descriptors leaked: curr_connections {} (want 1), fds {} \
         (baseline {base_fds})",
        stat_u64(&st, "curr_connections"),
        fd_count(pid)
    );
    assert!(
        evictions > 0,
        "[{pattern}] no evictions: no memory pressure"
    );
    assert!(
        soak.idle_closed.load(Ordering::Relaxed) > 0 && soak.dribbled.load(Ordering::Relaxed) > 0,
        "[{pattern}] the sleeper or dribbler actors did nothing"
    );
    assert!(
        peak <= RSS_BOUND_KIB,
        "[{pattern}] RSS peaked at {peak} KiB, over {RSS_BOUND_KIB} KiB"
    );
    assert!(
        last_quarter <= second_quarter + 16 * MIB,
        "[{pattern}] RSS still climbing: max {second_quarter} KiB in the 2nd quarter, \
         {last_quarter} KiB in the last"
    );
    assert!(
        p99 < Duration::from_millis(100),
        "[{pattern}] probe p99 {p99:?} over the soak"
    );
    assert!(
        !stopped.killed && stopped.status.success() && stopped.elapsed < Duration::from_secs(5),
        "[{pattern}] SIGTERM at the end: {stopped:?}; stderr:\n{}",
        server.stderr_text()
    );
}

per_pattern!(
    #[ignore = "long: run with --ignored (KVSERVE_SOAK_SECS, default 120 s per pattern)"]
    soak,
    super::soak
);
