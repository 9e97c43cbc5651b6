//! The servers under test: starting kvserve once per pattern (and the real
//! memcached) on free loopback ports, and stopping what was started.

use std::collections::VecDeque;
use std::io::{self, BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};

use crate::measure::cpus::Affinity;

/// The kvserve patterns kvbench knows how to start.
pub const PATTERNS: [&str; 4] = ["basic", "multi-reader", "worker-pool", "work-stealing"];
/// How long a server gets to come up, and to stop after SIGTERM.
const START_TIMEOUT: Duration = Duration::from_secs(10);
pub const STOP_TIMEOUT: Duration = Duration::from_secs(5);
const STDERR_LINES: usize = 40;

/// A server process this run started (and so may signal).
pub struct ServerProc {
    child: Child,
    pub addr: SocketAddr,
    label: String,
    stderr: Arc<Mutex<VecDeque<String>>>,
    exited: Option<ExitStatus>,
}

impl ServerProc {
    /// `kvserve --pattern P --port 0 -l 127.0.0.1 --threads N EXTRA...`, then
    /// its `listening on ADDR` stderr line.
    pub fn start_kvserve(
        bin: &Path,
        pattern: &str,
        threads: usize,
        extra: &[String],
        cpus: Affinity,
    ) -> Result<Self> {
        let mut cmd = Command::new(bin);
        cmd.args(["--pattern", pattern, "--port", "0", "-l", "127.0.0.1"])
            .args(["--threads", &threads.to_string()])
            .args(extra)
            .env_remove("RUST_LOG")
            .env("NO_COLOR", "1");
        let (tx, rx) = mpsc::channel();
        let mut server = ServerProc::spawn(cmd, pattern.to_string(), Some(tx), cpus)?;
        match rx.recv_timeout(START_TIMEOUT) {
            Ok(addr) if addr.ip().is_loopback() => {
                server.addr = addr;
                Ok(server)
            }
            Ok(addr) => bail!("{} listens on {addr}, not on loopback", server.label),
            Err(_) => {
                let status = server.stop().0;
                bail!(
                    "{} printed no `listening on 127.0.0.1:PORT` within {START_TIMEOUT:?} \
                     (exit status {status}); its stderr:\n{}",
                    server.label,
                    server.stderr_tail()
                )
            }
        }
    }

    /// `memcached -p PORT -l 127.0.0.1 -U 0 -t N -c 4096 [-u root]`, on a
    /// port that was free a moment ago; waits until it accepts.
    pub fn start_memcached(threads: usize, cpus: Affinity) -> Result<Self> {
        let mut last_error = String::new();
        for _attempt in 0..3 {
            let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
            let mut cmd = Command::new("memcached");
            cmd.args(["-p", &port.to_string(), "-l", "127.0.0.1", "-U", "0"])
                .args(["-t", &threads.to_string(), "-c", "4096"]);
            // SAFETY: geteuid has no preconditions.
            if unsafe { libc::geteuid() } == 0 {
                cmd.args(["-u", "root"]);
            }
            let mut server = ServerProc::spawn(cmd, "memcached".into(), None, cpus)?;
            server.addr = SocketAddr::from(([127, 0, 0, 1], port));
            let deadline = Instant::now() + START_TIMEOUT;
            while Instant::now() < deadline && server.try_exit().is_none() {
                if TcpStream::connect_timeout(&server.addr, Duration::from_millis(200)).is_ok() {
                    return Ok(server);
                }
                thread::sleep(Duration::from_millis(20));
            }
            let status = server.stop().0;
            last_error = format!(
                "memcached on port {port} did not accept connections (exit status {status}); \
                 its stderr:\n{}",
                server.stderr_tail()
            );
        }
        bail!("{last_error}")
    }

    fn spawn(
        mut cmd: Command,
        label: String,
        listening: Option<mpsc::Sender<SocketAddr>>,
        cpus: Affinity,
    ) -> Result<Self> {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        // A server outlives a kvbench that is killed (SIGTERM or SIGKILL
        // reaches only kvbench, unlike Ctrl-C, which the whole process
        // group gets) unless the kernel stops it when its parent goes.
        // A kvbench that died before the prctl took effect sends nothing:
        // then the child's parent is no longer kvbench, and it stops.
        // It runs on `cpus`, never on the client's (inherited) CPUs.
        // SAFETY: prctl(2), getppid(2) and sched_setaffinity(2) are
        // async-signal-safe and touch only the child.
        let kvbench = std::process::id();
        unsafe {
            cmd.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                    return Err(io::Error::last_os_error());
                }
                if libc::getppid() as u32 != kvbench {
                    return Err(io::Error::other("kvbench exited"));
                }
                cpus.apply()
            });
        }
        let mut child = cmd
            .spawn()
            .with_context(|| format!("cannot start {:?}", cmd.get_program()))?;
        let stderr = Arc::new(Mutex::new(VecDeque::new()));
        let pipe = child.stderr.take().expect("stderr is piped");
        drain_stderr(pipe, Arc::clone(&stderr), listening);
        Ok(ServerProc {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            label,
            stderr,
            exited: None,
        })
    }

    /// The process ID, to read its CPU time from /proc.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The exit status, if it has exited.
    pub fn try_exit(&mut self) -> Option<ExitStatus> {
        if self.exited.is_none() {
            if let Ok(Some(status)) = self.child.try_wait() {
                self.exited = Some(status);
            }
        }
        self.exited
    }

    /// SIGTERM, then at most [`STOP_TIMEOUT`] of waiting, then SIGKILL.
    /// Returns the exit status and whether it had to be killed.
    pub fn stop(&mut self) -> (ExitStatus, bool) {
        if let Some(status) = self.try_exit() {
            return (status, false);
        }
        if let Ok(pid) = libc::pid_t::try_from(self.child.id()) {
            // SAFETY: kill(2) on the PID of our own child, not yet reaped.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if let Some(status) = self.try_exit() {
                return (status, false);
            }
            thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let status = self.child.wait().expect("wait for a killed child");
        self.exited = Some(status);
        (status, true)
    }

    pub fn stderr_tail(&self) -> String {
        let lines = self.stderr.lock().unwrap_or_else(|e| e.into_inner());
        lines.iter().cloned().collect::<Vec<_>>().join("\n")
    }
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        if self.try_exit().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Reads a child's stderr to EOF (so it never blocks on a full pipe),
/// keeping its last lines, and reports the first `listening on ADDR`.
fn drain_stderr(
    pipe: impl Read + Send + 'static,
    tail: Arc<Mutex<VecDeque<String>>>,
    mut listening: Option<mpsc::Sender<SocketAddr>>,
) {
    thread::spawn(move || {
        let mut reader = BufReader::new(pipe);
        let mut raw = Vec::new();
        loop {
            raw.clear();
            match reader.read_until(b'\n', &mut raw) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            let line = strip_ansi(&String::from_utf8_lossy(&raw));
            let line = line.trim_end().to_string();
            if let Some(addr) = parse_listening(&line) {
                if let Some(tx) = listening.take() {
                    let _ = tx.send(addr);
                }
            }
            let mut tail = tail.lock().unwrap_or_else(|e| e.into_inner());
            if tail.len() == STDERR_LINES {
                tail.pop_front();
            }
            tail.push_back(line);
        }
    });
}

/// `... listening on 127.0.0.1:PORT ...` → the address.
pub fn parse_listening(line: &str) -> Option<SocketAddr> {
    let at = line.find("listening on ")? + "listening on ".len();
    line[at..].split_whitespace().next()?.parse().ok()
}

/// Removes `ESC [ ... letter` sequences.
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.peek() == Some(&'[') {
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

/// True if an executable `name` is in a directory of `$PATH`.
fn on_path(name: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| {
            std::fs::metadata(dir.join(name))
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
    })
}

/// A server to measure: a kvserve pattern, or the real memcached.
pub enum Target {
    Kvserve(String),
    Memcached,
}

impl Target {
    /// The name tables and charts use: the pattern, or `memcached`.
    pub fn label(&self) -> &str {
        match self {
            Target::Kvserve(p) => p,
            Target::Memcached => "memcached",
        }
    }
}

/// Everything needed to start the servers of a comparison or a sweep alike.
pub struct Launcher {
    /// The kvserve binary.
    pub kvserve: PathBuf,
    /// kvserve's `--threads`, memcached's `-t`.
    pub threads: usize,
    /// Extra arguments for every kvserve (not memcached).
    pub server_args: Vec<String>,
    /// The CPUs every server runs on.
    pub cpus: Affinity,
}

impl Launcher {
    /// Starts `target` on a free loopback port.
    pub fn start(&self, target: &Target) -> Result<ServerProc> {
        match target {
            Target::Kvserve(pattern) => ServerProc::start_kvserve(
                &self.kvserve,
                pattern,
                self.threads,
                &self.server_args,
                self.cpus,
            ),
            Target::Memcached => ServerProc::start_memcached(self.threads, self.cpus),
        }
    }
}

/// The kvserve binary: `explicit`, or `kvserve` next to this executable;
/// an error that says how to build it when it is missing.
pub fn kvserve_binary(explicit: Option<&Path>) -> Result<PathBuf> {
    let path = match explicit {
        Some(path) => path.to_path_buf(),
        None => std::env::current_exe()?.with_file_name("kvserve"),
    };
    ensure!(
        path.exists(),
        "no kvserve binary at {} (build it with `cargo build --release --bins`, or pass --kvserve PATH)",
        path.display()
    );
    Ok(path)
}

/// The servers to measure: each pattern of `patterns` (checked), then
/// memcached if `memcached` says so, or by default when it is on PATH.
pub fn targets(patterns: &[String], memcached: Option<bool>) -> Result<Vec<Target>> {
    let mut targets = Vec::new();
    for p in patterns {
        ensure!(
            PATTERNS.contains(&p.as_str()),
            "unknown pattern {p:?}; patterns are {}",
            PATTERNS.join(", ")
        );
        targets.push(Target::Kvserve(p.clone()));
    }
    if memcached.unwrap_or_else(|| on_path("memcached")) {
        targets.push(Target::Memcached);
    }
    ensure!(!targets.is_empty(), "nothing to measure");
    Ok(targets)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listening_line() {
        let line = "2026-11-25T23:47:06.455570Z  INFO kvserve::server: kvserve listening on 127.0.0.1:38777 pattern=worker-pool threads=2";
        assert_eq!(
            parse_listening(line),
            Some(SocketAddr::from(([127, 0, 0, 1], 38777)))
        );
        let coloured = "\u{1b}[32m INFO\u{1b}[0m listening on 127.0.0.1:5 x";
        assert_eq!(
            parse_listening(&strip_ansi(coloured)),
            Some(SocketAddr::from(([127, 0, 0, 1], 5)))
        );
        assert_eq!(parse_listening("listening soon"), None);
    }
}
