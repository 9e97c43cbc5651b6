//! Shared harness for kvserve's black-box integration tests.
//!
//! Starts the `kvserve` binary in any of its patterns, or the real
//! `memcached`, on a free port of 127.0.0.1, waits for it to be ready, and
//! offers small blocking-socket helpers. [`per_pattern!`] runs a scenario
//! once per pattern (and, for the scenarios memcached shares, once against
//! memcached). Every wait here is bounded in time; the only processes ever
//! signalled are the ones this harness spawned, by PID.

// Each integration-test crate compiles this module and uses only part of it.
#![allow(dead_code)]

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use kvserve::server::config::Pattern;
use kvserve::server::process::{raise_fd_limit, StderrTail};
use serde_json::Value;

/// The name a scenario of [`per_pattern!`] gets in its memcached test, in
/// place of a pattern's: [`KvServer::start_suite`] then starts memcached.
pub const MEMCACHED: &str = "memcached";

/// Every pattern's name, as `--pattern` spells it, from the library's list.
pub fn pattern_names() -> [&'static str; Pattern::ALL.len()] {
    Pattern::ALL.map(Pattern::name)
}

/// Read/write timeout of client sockets and bound of single replies.
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the server gets to print its listening line.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long `stop()` waits after SIGTERM before it sends SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// How many of the server's last stderr lines are kept for diagnostics.
const STDERR_TAIL_LINES: usize = 200;

/// The kvserve binary under test: `$KVSERVE_BIN` when set (to measure
/// another build with the same loads), else the one cargo built.
pub fn kvserve_bin() -> std::ffi::OsString {
    std::env::var_os("KVSERVE_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_kvserve").into())
}

/// `kvbench ARGS` with stdin closed and stdout and stderr piped, under
/// `RUST_BACKTRACE=1`, as many Rust developers have it set: its errors
/// must read clean even so.
pub fn kvbench_command(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kvbench"));
    cmd.args(args)
        .env("RUST_BACKTRACE", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// Longest any kvbench invocation of a test may take before it is killed.
pub const KVBENCH_LIMIT: Duration = Duration::from_secs(60);

/// Runs kvbench with `args`; kills it after [`KVBENCH_LIMIT`].
pub fn kvbench_output(args: &[&str]) -> Output {
    spawn_kvbench(args, true)
}

/// Runs kvbench with `args`, reading its stdout, or closing it at once
/// when `read_stdout` is false; kills it after [`KVBENCH_LIMIT`].
pub fn spawn_kvbench(args: &[&str], read_stdout: bool) -> Output {
    let mut child = kvbench_command(args).spawn().expect("spawn kvbench");
    let stdout = child.stdout.take().unwrap();
    let out = read_stdout.then(|| thread::spawn(move || read_all(stdout)));
    let stderr = child.stderr.take().unwrap();
    let err = thread::spawn(move || read_all(stderr));
    let status = exit_within(&mut child, KVBENCH_LIMIT)
        .unwrap_or_else(|| panic!("kvbench {args:?} still running after {KVBENCH_LIMIT:?}"));
    Output {
        status,
        stdout: out.map_or_else(Vec::new, |o| o.join().unwrap()),
        stderr: err.join().unwrap(),
    }
}

fn read_all(mut from: impl Read) -> Vec<u8> {
    let mut v = Vec::new();
    let _ = from.read_to_end(&mut v);
    v
}

/// Runs kvbench with `args` plus `--json --quiet`; its JSON report.
pub fn kvbench_json(args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["--json", "--quiet"]);
    let out = kvbench_output(&all);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "kvbench {all:?} failed: {}\n{stderr}",
        out.status
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "kvbench {all:?}: stdout is not JSON ({e}):\n{}\nstderr:\n{stderr}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// The memcached to compare with: `$KVSERVE_MEMCACHED_BIN`, else
/// `memcached` from PATH (`bash .ci/run` installs it).
pub fn memcached_bin() -> String {
    std::env::var("KVSERVE_MEMCACHED_BIN").unwrap_or_else(|_| "memcached".into())
}

/// The result of stopping a server.
#[derive(Debug, Clone, Copy)]
pub struct Stopped {
    pub status: ExitStatus,
    /// Time from the signal to the exit being observed.
    pub elapsed: Duration,
    /// True when the server ignored the signal and was SIGKILLed.
    pub killed: bool,
}

/// A running server process (kvserve, or the real memcached).
pub struct KvServer {
    child: Child,
    addr: SocketAddr,
    stderr: StderrTail,
    /// The pattern, or [`MEMCACHED`].
    name: String,
    label: String,
    exited: Option<ExitStatus>,
}

impl KvServer {
    /// Spawns `kvserve --pattern PATTERN --port 0 -l 127.0.0.1 EXTRA...`
    /// and waits (at most 10 s) for its `listening on ADDR` stderr line.
    pub fn start(pattern: &str, extra_args: &[&str]) -> KvServer {
        KvServer::start_on(pattern, "127.0.0.1", extra_args)
    }

    /// [`KvServer::start`] listening on `listen` (`-l`: an address or a
    /// host name).
    pub fn start_on(pattern: &str, listen: &str, extra_args: &[&str]) -> KvServer {
        raise_fd_limit().expect("raise the open-file limit");
        let mut cmd = Command::new(kvserve_bin());
        cmd.args(["--pattern", pattern, "--port", "0", "-l", listen])
            .args(extra_args)
            // The server's own default log filter must show the line.
            .env_remove("RUST_LOG")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let label = format!("kvserve --pattern {pattern} {}", extra_args.join(" "));
        let mut server = KvServer::spawn(cmd, pattern, label);
        match server.stderr.listening(STARTUP_TIMEOUT) {
            Some(addr) => server.addr = addr,
            None => {
                let status = server.kill_now();
                panic!(
                    "{}: no `listening on ADDR` line on stderr within {STARTUP_TIMEOUT:?}; \
                     exit status {status:?}; stderr:\n{}",
                    server.label,
                    server.stderr_text()
                );
            }
        }
        server
    }

    /// Spawns the real memcached ([`memcached_bin`]) on a free port of
    /// 127.0.0.1 and waits until it accepts connections.
    pub fn start_memcached(extra_args: &[&str]) -> KvServer {
        raise_fd_limit().expect("raise the open-file limit");
        let bin = memcached_bin();
        // The port is picked by binding port 0 and releasing it, so another
        // process could take it in between: retry a few times.
        for attempt in 1..=3 {
            let port = free_port();
            let port_arg = port.to_string();
            let mut cmd = Command::new(&bin);
            cmd.args(["-p", &port_arg, "-l", "127.0.0.1", "-U", "0"])
                .args(extra_args)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped());
            // SAFETY: geteuid has no preconditions.
            if unsafe { libc::geteuid() } == 0 {
                cmd.args(["-u", "root"]);
            }
            let label = format!("{bin} -p {port} {}", extra_args.join(" "));
            let mut server = KvServer::spawn(cmd, MEMCACHED, label);
            server.addr = SocketAddr::from(([127, 0, 0, 1], port));
            let deadline = Instant::now() + STARTUP_TIMEOUT;
            while Instant::now() < deadline && server.try_exit_status().is_none() {
                if TcpStream::connect_timeout(&server.addr, Duration::from_millis(200)).is_ok() {
                    return server;
                }
                thread::sleep(Duration::from_millis(20));
            }
            let status = server.kill_now();
            if attempt == 3 {
                panic!(
                    "{} did not accept connections (exit status {status:?}); stderr:\n{}",
                    server.label,
                    server.stderr_text()
                );
            }
        }
        unreachable!()
    }

    /// For scenarios that also run against memcached ([`per_pattern!`]'s
    /// `and memcached`): kvserve in `pattern` with `kv_args`, or, when
    /// `pattern` is [`MEMCACHED`], memcached with `mc_args`.
    pub fn start_suite(pattern: &str, kv_args: &[&str], mc_args: &[&str]) -> KvServer {
        if pattern == MEMCACHED {
            KvServer::start_memcached(mc_args)
        } else {
            KvServer::start(pattern, kv_args)
        }
    }

    /// Spawns `cmd` with its stderr read by a [`StderrTail`]; the address
    /// is filled in by the caller once the server is ready.
    fn spawn(mut cmd: Command, name: &str, label: String) -> KvServer {
        let mut child = cmd.spawn().unwrap_or_else(|e| {
            panic!("cannot spawn {label}: {e} (`bash .ci/run` installs what the tests need)")
        });
        let pipe = child.stderr.take().expect("stderr is piped");
        KvServer {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            stderr: StderrTail::spawn(pipe, STDERR_TAIL_LINES),
            name: name.to_string(),
            label,
            exited: None,
        }
    }

    /// The address it listens on (127.0.0.1).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its process ID, to read /proc and to signal it.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The pattern this kvserve runs, or [`MEMCACHED`].
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The command line, for failure messages.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// A connected client with ~5 s read/write timeouts and TCP_NODELAY.
    pub fn connect(&self) -> TcpStream {
        let stream = TcpStream::connect_timeout(&self.addr, IO_TIMEOUT)
            .unwrap_or_else(|e| panic!("connect to {} ({}): {e}", self.addr, self.label));
        stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
        stream.set_nodelay(true).unwrap();
        stream
    }

    /// The last lines the server wrote on stderr (for failure messages).
    pub fn stderr_text(&self) -> String {
        self.stderr.text()
    }

    /// `None` while the process runs, its exit status once it has exited.
    pub fn try_exit_status(&mut self) -> Option<ExitStatus> {
        if self.exited.is_none() {
            if let Ok(Some(status)) = self.child.try_wait() {
                self.exited = Some(status);
            }
        }
        self.exited
    }

    /// SIGTERM, then wait (at most 10 s, then SIGKILL); the exit status.
    pub fn stop(&mut self) -> ExitStatus {
        self.stop_with(libc::SIGTERM, STOP_TIMEOUT).status
    }

    /// Sends `signal`, waits up to `timeout` for the exit, SIGKILLs after.
    pub fn stop_with(&mut self, signal: libc::c_int, timeout: Duration) -> Stopped {
        let start = Instant::now();
        if let Some(status) = self.try_exit_status() {
            return Stopped {
                status,
                elapsed: Duration::ZERO,
                killed: false,
            };
        }
        let pid = libc::pid_t::try_from(self.child.id()).expect("pid fits pid_t");
        // SAFETY: plain kill(2) on the PID of our own, not yet reaped, child.
        let rc = unsafe { libc::kill(pid, signal) };
        assert_eq!(
            rc,
            0,
            "kill({pid}, {signal}) failed: {}",
            io::Error::last_os_error()
        );
        let deadline = start + timeout;
        while Instant::now() < deadline {
            if let Some(status) = self.try_exit_status() {
                return Stopped {
                    status,
                    elapsed: start.elapsed(),
                    killed: false,
                };
            }
            thread::sleep(Duration::from_millis(10));
        }
        let status = self.kill_now();
        Stopped {
            status,
            elapsed: start.elapsed(),
            killed: true,
        }
    }

    fn kill_now(&mut self) -> ExitStatus {
        if let Some(status) = self.try_exit_status() {
            return status;
        }
        let _ = self.child.kill();
        let status = self.child.wait().expect("wait for killed child");
        self.exited = Some(status);
        status
    }
}

impl Drop for KvServer {
    fn drop(&mut self) {
        if self.exited.is_none() {
            self.kill_now();
        }
    }
}

/// A fresh directory under the system's temporary directory, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let path = std::env::temp_dir().join(format!(
            "kvserve-{tag}-{}-{nanos}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir(&path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().unwrap().port()
}

/// Resident set size of a process in KiB, from /proc/PID/status.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Printable rendering of protocol bytes, cut after `max` bytes.
pub fn show_max(bytes: &[u8], max: usize) -> String {
    let mut s = String::new();
    for &b in bytes.iter().take(max) {
        match b {
            b'\r' => s.push_str("\\r"),
            b'\n' => s.push_str("\\n"),
            b'\\' => s.push_str("\\\\"),
            0x20..=0x7e => s.push(b as char),
            _ => s.push_str(&format!("\\x{b:02x}")),
        }
    }
    if bytes.len() > max {
        s.push_str(&format!("... ({} bytes in all)", bytes.len()));
    }
    s
}

/// Printable rendering of protocol bytes (first 600 bytes).
pub fn show(bytes: &[u8]) -> String {
    show_max(bytes, 600)
}

fn find_crlf(buf: &[u8]) -> Option<usize> {
    buf.windows(2).position(|w| w == b"\r\n")
}

/// Length of the first complete memcached reply at the start of `buf`, or
/// `None` if more bytes are needed. A reply is any number of `VALUE` items
/// (with their data blocks) and `STAT` lines, up to and including the
/// first other line (`END`, `STORED`, a number, an error, ...).
pub fn reply_len(buf: &[u8]) -> Option<usize> {
    let mut pos = 0;
    loop {
        let eol = pos + find_crlf(&buf[pos..])?;
        let line = &buf[pos..eol];
        let next = eol + 2;
        if line.starts_with(b"VALUE ") {
            let len = std::str::from_utf8(line)
                .ok()
                .and_then(|l| l.split(' ').nth(3))
                .and_then(|n| n.parse::<usize>().ok());
            match len {
                Some(n) => {
                    let end = next + n + 2;
                    if buf.len() < end {
                        return None;
                    }
                    pos = end;
                }
                // Malformed VALUE line: let the caller see it.
                None => return Some(next),
            }
        } else if line.starts_with(b"STAT ") {
            pos = next;
        } else {
            return Some(next);
        }
    }
}

/// Reads until `buf` holds one complete reply (see [`reply_len`]); returns
/// everything read. Panics on EOF, error or after ~5 s.
pub fn read_reply(stream: &mut impl Read) -> Vec<u8> {
    let deadline = Instant::now() + IO_TIMEOUT;
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        if reply_len(&buf).is_some() {
            return buf;
        }
        assert!(
            Instant::now() < deadline,
            "incomplete reply after {IO_TIMEOUT:?}: {}",
            show(&buf)
        );
        match stream.read(&mut chunk) {
            Ok(0) => panic!("EOF while reading a reply; got so far: {}", show(&buf)),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => panic!(
                "read error {e} while reading a reply; got so far: {}",
                show(&buf)
            ),
        }
    }
}

/// Writes `req` and reads one complete reply.
pub fn request(stream: &mut (impl Read + Write), req: &[u8]) -> Vec<u8> {
    stream.write_all(req).expect("write request");
    read_reply(stream)
}

/// Reads exactly `n` bytes (or panics after ~5 s with what arrived).
pub fn read_exactly(stream: &mut TcpStream, n: usize) -> Vec<u8> {
    let deadline = Instant::now() + IO_TIMEOUT;
    let mut buf = vec![0u8; n];
    let mut got = 0;
    while got < n {
        assert!(
            Instant::now() < deadline,
            "only {got} of {n} bytes after {IO_TIMEOUT:?}: {}",
            show(&buf[..got])
        );
        match stream.read(&mut buf[got..]) {
            Ok(0) => panic!("EOF after {got} of {n} bytes: {}", show(&buf[..got])),
            Ok(k) => got += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => panic!(
                "read error {e} after {got} of {n} bytes: {}",
                show(&buf[..got])
            ),
        }
    }
    buf
}

/// How a [`read_until_eof`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadEnd {
    Eof,
    Error(io::ErrorKind),
    Timeout,
}

/// Reads until EOF, an error, or `timeout` (at most `limit` bytes kept).
pub fn read_until_eof(
    stream: &mut TcpStream,
    timeout: Duration,
    limit: usize,
) -> (Vec<u8>, ReadEnd) {
    let deadline = Instant::now() + timeout;
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let now = Instant::now();
        if now >= deadline {
            return (buf, ReadEnd::Timeout);
        }
        stream
            .set_read_timeout(Some((deadline - now).max(Duration::from_millis(1))))
            .unwrap();
        match stream.read(&mut chunk) {
            Ok(0) => return (buf, ReadEnd::Eof),
            Ok(n) => {
                let room = limit.saturating_sub(buf.len());
                buf.extend_from_slice(&chunk[..n.min(room)]);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return (buf, ReadEnd::Timeout)
            }
            Err(e) => return (buf, ReadEnd::Error(e.kind())),
        }
    }
}

/// Parses a `STAT name value` ... `END` reply into (name, value) pairs.
pub fn parse_stats(reply: &[u8]) -> Vec<(String, String)> {
    let text = String::from_utf8_lossy(reply);
    assert!(
        text.ends_with("END\r\n"),
        "stats reply does not end with END: {}",
        show(reply)
    );
    let mut out = Vec::new();
    for line in text.split("\r\n") {
        if line == "END" {
            break;
        }
        let mut parts = line.splitn(3, ' ');
        assert_eq!(parts.next(), Some("STAT"), "bad stats line {line:?}");
        let name = parts
            .next()
            .unwrap_or_else(|| panic!("bad stats line {line:?}"));
        let value = parts.next().unwrap_or("");
        out.push((name.to_string(), value.to_string()));
    }
    out
}

/// Sends `stats` (or `stats SUB`) and parses the reply.
pub fn stats(stream: &mut (impl Read + Write), sub: &str) -> Vec<(String, String)> {
    let req = if sub.is_empty() {
        "stats\r\n".to_string()
    } else {
        format!("stats {sub}\r\n")
    };
    parse_stats(&request(stream, req.as_bytes()))
}

/// The value of stat `name`, parsed as u64 (panics if absent or not a number).
pub fn stat_u64(stats: &[(String, String)], name: &str) -> u64 {
    let (_, v) = stats
        .iter()
        .find(|(k, _)| k == name)
        .unwrap_or_else(|| panic!("stat {name} missing; got {stats:?}"));
    v.parse()
        .unwrap_or_else(|_| panic!("stat {name} = {v:?} is not an unsigned integer"))
}

/// Writes `data` on a clone of `stream` from a helper thread, either in one
/// `write_all` or one `write` per byte; the caller reads meanwhile, so
/// neither side can block the other on full socket buffers.
pub fn write_in_background(
    stream: &TcpStream,
    data: Vec<u8>,
    byte_by_byte: bool,
) -> thread::JoinHandle<io::Result<()>> {
    let mut w = stream.try_clone().expect("clone stream");
    thread::spawn(move || {
        if byte_by_byte {
            for b in data.chunks(1) {
                w.write_all(b)?;
            }
            Ok(())
        } else {
            w.write_all(&data)
        }
    })
}

/// Waits up to `limit` for `child` to exit; kills it (by its handle) if
/// it is still running then. The exit status, or `None` if it was killed.
pub fn exit_within(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// Polls `cond` every 10 ms until it holds (true) or `timeout` passes
/// (false).
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// A `set KEY FLAGS 0 LEN [noreply]` request with its data block.
pub fn set_req(key: &str, flags: u32, value: &[u8]) -> Vec<u8> {
    let mut r = format!("set {key} {flags} 0 {}\r\n", value.len()).into_bytes();
    r.extend_from_slice(value);
    r.extend_from_slice(b"\r\n");
    r
}

/// The reply to `get KEY` when KEY holds `value` with `flags`.
pub fn value_reply(key: &str, flags: u32, value: &[u8]) -> Vec<u8> {
    let mut r = format!("VALUE {key} {flags} {}\r\n", value.len()).into_bytes();
    r.extend_from_slice(value);
    r.extend_from_slice(b"\r\nEND\r\n");
    r
}

/// Reads until `expected.len()` bytes arrived or they stop matching;
/// panics with the first difference.
pub fn read_expected(stream: &mut TcpStream, expected: &[u8], what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut got = Vec::with_capacity(expected.len());
    let mut chunk = vec![0u8; 64 * 1024];
    while got.len() < expected.len() && expected.starts_with(&got) && Instant::now() < deadline {
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    if got != expected {
        let at = got
            .iter()
            .zip(expected)
            .position(|(a, b)| a != b)
            .unwrap_or(got.len().min(expected.len()));
        let from = at.saturating_sub(60);
        panic!(
            "{what}: got {} bytes, expected {}; first difference at byte {at}\n  \
             expected: {}\n  got:      {}",
            got.len(),
            expected.len(),
            show_max(&expected[from..], 160),
            show_max(&got[from.min(got.len())..], 160)
        );
    }
}

// ---------------------------------------------------------------------
// Helpers of the reliability suite and the soak (tests/reliability.rs,
// tests/soak.rs).

/// Open file descriptors of a process, from /proc/PID/fd. Panics when
/// that cannot be read: a count of 0 would pass every `<= baseline` check.
pub fn fd_count(pid: u32) -> usize {
    let dir = format!("/proc/{pid}/fd");
    std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot count open descriptors in {dir}: {e}"))
        .count()
}

/// Opens a connection per request in `sends`, writes each in the
/// background, lets the server take in what it can (300 ms), then resets
/// them all: clients that vanish mid-request.
pub fn send_then_reset(server: &KvServer, sends: Vec<Vec<u8>>) {
    let mut conns = Vec::new();
    for v in sends {
        let c = server.connect();
        let writer = write_in_background(&c, v, false);
        conns.push((c, writer));
    }
    thread::sleep(Duration::from_millis(300));
    for (c, writer) in conns {
        // The writer holds a clone of the socket: let it finish first.
        let _ = writer.join();
        reset_close(c);
    }
}

/// Closes `stream` with an RST instead of a FIN (SO_LINGER 0), as a client
/// that crashes or times out mid-request does.
pub fn reset_close(stream: TcpStream) {
    let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
    drop(stream);
}

/// A small deterministic generator (xorshift64*): failures reproduce from
/// their seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(n + 8);
        while out.len() < n {
            out.extend_from_slice(&self.next_u64().to_le_bytes());
        }
        out.truncate(n);
        out
    }

    /// A size from 1 to `max`, uniform in its logarithm: mostly small
    /// values, some large ones.
    pub fn log_size(&mut self, max: usize) -> usize {
        let bits = usize::BITS - max.leading_zeros();
        let top = 1usize << self.below(bits as usize);
        (top + self.below(top)).clamp(1, max)
    }
}

/// The `p` quantile (0..=1) of some durations. Panics on none: a zero
/// would pass every latency bound without a single measurement.
pub fn percentile(samples: &[Duration], p: f64) -> Duration {
    assert!(
        !samples.is_empty(),
        "no latency samples to take a quantile of"
    );
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// One item of a `get`/`gets` reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub key: String,
    pub flags: u32,
    pub data: Vec<u8>,
}

/// Parses a whole `get`/`gets` reply (`VALUE` items, then `END`).
pub fn parse_get_reply(reply: &[u8]) -> Result<Vec<Item>, String> {
    let mut items = Vec::new();
    let mut pos = 0;
    loop {
        let rest = &reply[pos..];
        let eol = find_crlf(rest).ok_or_else(|| format!("no line end: {}", show(rest)))?;
        let line = String::from_utf8_lossy(&rest[..eol]).to_string();
        if line == "END" {
            if eol + 2 != rest.len() {
                return Err(format!("bytes after END: {}", show(&rest[eol + 2..])));
            }
            return Ok(items);
        }
        let words: Vec<&str> = line.split(' ').collect();
        let (key, flags, len) = match words[..] {
            ["VALUE", key, flags, len] | ["VALUE", key, flags, len, _] => (key, flags, len),
            _ => return Err(format!("not a VALUE line: {line:?}")),
        };
        let flags: u32 = flags.parse().map_err(|_| format!("bad flags: {line:?}"))?;
        let len: usize = len.parse().map_err(|_| format!("bad length: {line:?}"))?;
        let data_start = eol + 2;
        if rest.len() < data_start + len + 2
            || &rest[data_start + len..data_start + len + 2] != b"\r\n"
        {
            return Err(format!("bad data block after {line:?}"));
        }
        items.push(Item {
            key: key.to_string(),
            flags,
            data: rest[data_start..data_start + len].to_vec(),
        });
        pos += data_start + len + 2;
    }
}

/// Whether `line` (without its `\r\n`) is one of memcached's error replies.
pub fn is_error_line(line: &[u8]) -> bool {
    line == b"ERROR" || line.starts_with(b"CLIENT_ERROR ") || line.starts_with(b"SERVER_ERROR ")
}

/// The value of version `version` of `key`, `len` bytes long, and the flags
/// it is stored with. The data is `KEY#VERSION#LEN#` repeated (cut at
/// `len`); the flags carry the low 16 bits of the version and a 16-bit
/// checksum of key, version and data, so that even a 1-byte value read
/// back under the wrong key, or altered, is detected.
pub fn checked_value(key: &str, version: u64, len: usize) -> (u32, Vec<u8>) {
    let header = format!("{key}#{version}#{len}#");
    let mut data = Vec::with_capacity(len + header.len());
    data.extend_from_slice(header.as_bytes());
    while data.len() < len {
        let n = data.len().min(len - data.len());
        data.extend_from_within(..n);
    }
    data.truncate(len);
    let v16 = (version & 0xffff) as u32;
    (v16 << 16 | checksum16(key.as_bytes(), v16, &data), data)
}

/// Checks a value read back under `key` against [`checked_value`]'s
/// scheme; `Ok(Some(version))` when the value is long enough to name its
/// version, `Ok(None)` for a short (but consistent) one.
pub fn verify_value(key: &str, flags: u32, data: &[u8]) -> Result<Option<u64>, String> {
    let v16 = flags >> 16;
    if flags & 0xffff != checksum16(key.as_bytes(), v16, data) {
        return Err(format!(
            "checksum mismatch for {key}: flags {flags:#x}, {} bytes: {}",
            data.len(),
            show_max(data, 80)
        ));
    }
    let prefix = format!("{key}#");
    if data.len() <= prefix.len() {
        return if prefix.as_bytes().starts_with(data) {
            Ok(None)
        } else {
            Err(format!("{key}: short value {} is not its own", show(data)))
        };
    }
    if !data.starts_with(prefix.as_bytes()) {
        return Err(format!("{key}: foreign value {}", show_max(data, 80)));
    }
    // `KEY#VERSION#LEN#...`: when the header is whole, regenerate and compare.
    let text = &data[prefix.len()..];
    let fields: Vec<&[u8]> = text.splitn(3, |&b| b == b'#').collect();
    let number = |b: &[u8]| std::str::from_utf8(b).ok()?.parse::<u64>().ok();
    if let [version, len, _] = fields[..] {
        let (Some(version), Some(len)) = (number(version), number(len)) else {
            return Err(format!("{key}: garbled header {}", show_max(data, 80)));
        };
        let (want_flags, want) = checked_value(key, version, len as usize);
        if want_flags != flags || want != data {
            return Err(format!(
                "{key}: version {version} of {len} bytes is corrupted (got {} bytes: {})",
                data.len(),
                show_max(data, 80)
            ));
        }
        return Ok(Some(version));
    }
    if !text.iter().all(|&b| b.is_ascii_digit() || b == b'#') {
        return Err(format!("{key}: garbled short value {}", show(data)));
    }
    Ok(None)
}

/// A 16-bit checksum of key, version and data (64-bit multiply-xor over
/// 8-byte words, fast enough in debug builds).
fn checksum16(key: &[u8], v16: u32, data: &[u8]) -> u32 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ u64::from(v16);
    let mut mix = |w: u64| {
        h = (h ^ w).wrapping_mul(0x0000_0100_0000_01b3).rotate_left(29);
    };
    for part in [key, &[0xff], data] {
        let mut words = part.chunks_exact(8);
        for w in &mut words {
            mix(u64::from_le_bytes(w.try_into().unwrap()));
        }
        for &b in words.remainder() {
            mix(u64::from(b) | 0x100);
        }
    }
    mix(data.len() as u64);
    ((h >> 48) ^ (h >> 16)) as u32 & 0xffff
}

/// Samples a process's RSS every 10 ms from a thread until stopped.
pub struct RssSampler {
    stop: Arc<AtomicBool>,
    handle: Option<thread::JoinHandle<Vec<(Duration, u64)>>>,
}

impl RssSampler {
    pub fn start(pid: u32) -> RssSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let handle = thread::spawn(move || {
            let start = Instant::now();
            let mut samples = Vec::new();
            // Bounded: at most 10 minutes of samples.
            while !flag.load(Ordering::Relaxed) && start.elapsed() < Duration::from_secs(600) {
                if let Some(rss) = rss_kib(pid) {
                    samples.push((start.elapsed(), rss));
                }
                thread::sleep(Duration::from_millis(10));
            }
            samples
        });
        RssSampler {
            stop,
            handle: Some(handle),
        }
    }

    /// The samples (time since start, KiB).
    pub fn finish(mut self) -> Vec<(Duration, u64)> {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.take().unwrap().join().unwrap()
    }
}

/// The largest RSS sampled, in KiB. Panics on no sample: a zero would
/// pass every memory bound without a single measurement.
pub fn max_rss(samples: &[(Duration, u64)]) -> u64 {
    samples
        .iter()
        .map(|&(_, r)| r)
        .max()
        .expect("no RSS sample was read")
}

/// The large-value load's value size: 100 KiB.
pub const VALUE_100K: usize = 100 * 1024;

/// A 100 KiB value that names its key and is otherwise `fill`.
pub fn big_value(key: &str, fill: u8) -> Vec<u8> {
    let mut v = vec![fill; VALUE_100K];
    v[..key.len()].copy_from_slice(key.as_bytes());
    v[key.len()] = b'#';
    v
}

/// The large-value write load: `writers` connections at once, each
/// pipelining `per_writer` noreply sets of [`big_value`] (key `mem:W:J`,
/// flags J, fill `a + J % 26`) in batches of 1.6 MiB, then waiting for the
/// reply to a `version` sent after them.
pub fn write_big_values(server: &KvServer, writers: usize, per_writer: usize) {
    const BATCH: usize = 16;
    let handles: Vec<_> = (0..writers)
        .map(|w| {
            let mut c = server.connect();
            thread::spawn(move || {
                c.set_write_timeout(Some(Duration::from_secs(30))).unwrap();
                let mut batch = Vec::with_capacity(BATCH * (VALUE_100K + 64));
                for j in 0..per_writer {
                    let key = format!("mem:{w}:{j}");
                    batch.extend(format!("set {key} {j} 0 {VALUE_100K} noreply\r\n").bytes());
                    batch.extend(big_value(&key, b'a' + (j % 26) as u8));
                    batch.extend_from_slice(b"\r\n");
                    if batch.len() >= BATCH * VALUE_100K {
                        c.write_all(&batch).expect("write sets");
                        batch.clear();
                    }
                }
                c.write_all(&batch).expect("write sets");
                // The reply to this comes after every set before it.
                let v = request(&mut c, b"version\r\n");
                assert!(v.starts_with(b"VERSION "), "writer {w}: {}", show(&v));
            })
        })
        .collect();
    for h in handles {
        h.join().expect("a writer failed");
    }
}

/// One `#[test]` per pattern, in a module named after the scenario, each
/// calling `$f` (a function or closure, seen from inside the module, which
/// imports everything of its parent) with its pattern's name:
/// `per_pattern!(ordering, ordering)` makes `ordering::basic`,
/// `ordering::multi_reader`, `ordering::worker_pool`,
/// `ordering::work_stealing` and `ordering::reuseport`, so that a failure
/// names its pattern.
/// Attributes written first (`#[ignore = "..."]`) go on each test.
///
/// With `and memcached`, one more test, `ordering::memcached`, calls `$f`
/// with [`MEMCACHED`]: the scenario run against the real memcached, the
/// check that what it expects of kvserve is what memcached does. Such a
/// scenario starts its server with [`KvServer::start_suite`].
#[allow(unused_macros)]
macro_rules! per_pattern {
    (@test [$($attr:tt)*] $test:ident, $f:expr, $name:expr) => {
        #[test]
        $($attr)*
        fn $test() {
            ($f)($name);
        }
    };
    (@module [$($attr:tt)*] $module:ident, $f:expr, $($memcached:ident)?) => {
        mod $module {
            #[allow(unused_imports)]
            use super::*;
            use ::kvserve::server::config::Pattern;

            // A pattern added to the library fails to compile here, until it
            // has its test below.
            const _: () = match Pattern::Basic {
                Pattern::Basic
                | Pattern::MultiReader
                | Pattern::WorkerPool
                | Pattern::WorkStealing
                | Pattern::Reuseport => (),
            };
            per_pattern!(@test [$($attr)*] basic, $f, Pattern::Basic.name());
            per_pattern!(@test [$($attr)*] multi_reader, $f, Pattern::MultiReader.name());
            per_pattern!(@test [$($attr)*] worker_pool, $f, Pattern::WorkerPool.name());
            per_pattern!(@test [$($attr)*] work_stealing, $f, Pattern::WorkStealing.name());
            per_pattern!(@test [$($attr)*] reuseport, $f, Pattern::Reuseport.name());
            $(per_pattern!(@test [] $memcached, $f, crate::common::MEMCACHED);)?
        }
    };
    ($module:ident, $f:expr, and memcached) => {
        per_pattern!(@module [] $module, $f, memcached);
    };
    ($(#[$attr:meta])* $module:ident, $f:expr) => {
        per_pattern!(@module [$(#[$attr])*] $module, $f,);
    };
}
