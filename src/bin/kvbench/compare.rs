//! `kvbench compare`: starts kvserve once per pattern (and memcached as the
//! reference), runs the workloads against each in turn, reads `stats
//! threads` around each run, stops the servers it started, and reports.

use std::collections::VecDeque;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use serde::Serialize;

use crate::cli::{CompareArgs, WorkloadArgs};
use crate::cpus::Affinity;
use crate::report::{self, CompareRow};
use crate::run::{self, Options};
use crate::server_cpu::process_cpu_time;
use crate::workload::{self, WorkloadName};

const PATTERNS: [&str; 3] = ["basic", "multi-reader", "worker-pool"];
/// How long a server gets to come up, and to stop after SIGTERM.
const START_TIMEOUT: Duration = Duration::from_secs(10);
const STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// Connect, warmup and end-of-run grace timeout of each run.
const RUN_TIMEOUT: Duration = Duration::from_secs(5);
const STDERR_LINES: usize = 40;
/// Open-loop busy-poll ahead of each send (`kvbench run --spin-us`).
const SPIN_US: u64 = 75;

/// One thread's counters from `stats threads`: totals as the server
/// reports them, or (from [`thread_deltas`]) what the thread did during one
/// measured run.
#[derive(Serialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct ThreadStat {
    pub thread: usize,
    pub role: String,
    pub connections: u64,
    pub requests: u64,
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub busy_us: u64,
}

/// Parses `STAT <n>:<field> <value>` lines up to `END`.
pub fn parse_thread_stats(text: &str) -> Result<Vec<ThreadStat>> {
    let mut threads: Vec<ThreadStat> = Vec::new();
    for line in text.split("\r\n") {
        if line == "END" {
            return Ok(threads);
        }
        let mut words = line.splitn(3, ' ');
        let (Some("STAT"), Some(name), Some(value)) = (words.next(), words.next(), words.next())
        else {
            bail!("unexpected line in `stats threads`: {line:?}");
        };
        let Some((n, field)) = name.split_once(':') else {
            bail!("not a per-thread stat: {line:?}");
        };
        let n: usize = n
            .parse()
            .with_context(|| format!("thread number in {line:?}"))?;
        ensure!(n < 4096, "thread number too large: {line:?}");
        if threads.len() <= n {
            threads.resize(n + 1, ThreadStat::default());
        }
        let t = &mut threads[n];
        t.thread = n;
        let number = || -> Result<u64> {
            value
                .parse()
                .with_context(|| format!("not a number: {line:?}"))
        };
        match field {
            "role" => t.role = value.to_string(),
            "connections" => t.connections = number()?,
            "requests" => t.requests = number()?,
            "bytes_read" => t.bytes_read = number()?,
            "bytes_written" => t.bytes_written = number()?,
            "busy_us" => t.busy_us = number()?,
            _ => {}
        }
    }
    bail!("`stats threads` reply without END")
}

/// Per-thread differences `after - before`.
pub fn thread_deltas(before: &[ThreadStat], after: &[ThreadStat]) -> Vec<ThreadStat> {
    let zero = ThreadStat::default();
    after
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let b = before.get(i).unwrap_or(&zero);
            ThreadStat {
                thread: i,
                role: a.role.clone(),
                connections: a.connections.saturating_sub(b.connections),
                requests: a.requests.saturating_sub(b.requests),
                bytes_read: a.bytes_read.saturating_sub(b.bytes_read),
                bytes_written: a.bytes_written.saturating_sub(b.bytes_written),
                busy_us: a.busy_us.saturating_sub(b.busy_us),
            }
        })
        .collect()
}

/// The busiest executing thread's requests over the mean of the threads
/// that execute requests (roles loop, reader, worker). 1.0 is perfectly
/// even; `threads` is the worst. `None` when no such thread did anything.
pub fn imbalance(threads: &[ThreadStat]) -> Option<f64> {
    let executing: Vec<u64> = threads
        .iter()
        .filter(|t| matches!(t.role.as_str(), "loop" | "reader" | "worker"))
        .map(|t| t.requests)
        .collect();
    let total: u64 = executing.iter().sum();
    if total == 0 {
        return None;
    }
    let mean = total as f64 / executing.len() as f64;
    Some(*executing.iter().max()? as f64 / mean)
}

/// Sends `stats threads` and parses the reply (bounded by `timeout`).
pub fn stats_threads(addr: SocketAddr, timeout: Duration) -> Result<Vec<ThreadStat>> {
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    stream.write_all(b"stats threads\r\n")?;
    let deadline = Instant::now() + timeout;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 << 10];
    loop {
        if buf.ends_with(b"END\r\n") || buf.starts_with(b"ERROR") || buf.len() > 1 << 20 {
            break;
        }
        ensure!(Instant::now() < deadline, "`stats threads` timed out");
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    parse_thread_stats(&String::from_utf8_lossy(&buf))
}

/// A server process this run started (and so may signal).
struct ServerProc {
    child: Child,
    addr: SocketAddr,
    label: String,
    stderr: Arc<Mutex<VecDeque<String>>>,
    exited: Option<ExitStatus>,
}

impl ServerProc {
    /// `kvserve --pattern P --port 0 -l 127.0.0.1 --threads N EXTRA...`, then
    /// its `listening on ADDR` stderr line.
    fn start_kvserve(
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
    fn start_memcached(threads: usize, cpus: Affinity) -> Result<Self> {
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
        // It runs on `cpus`, never on the client's (inherited) CPUs.
        // SAFETY: prctl(2) and sched_setaffinity(2) are async-signal-safe
        // and touch only the child.
        unsafe {
            cmd.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                    return Err(io::Error::last_os_error());
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

    fn try_exit(&mut self) -> Option<ExitStatus> {
        if self.exited.is_none() {
            if let Ok(Some(status)) = self.child.try_wait() {
                self.exited = Some(status);
            }
        }
        self.exited
    }

    /// SIGTERM, then at most [`STOP_TIMEOUT`] of waiting, then SIGKILL.
    /// Returns the exit status and whether it had to be killed.
    fn stop(&mut self) -> (ExitStatus, bool) {
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

    fn stderr_tail(&self) -> String {
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

/// The servers of a comparison, in order.
enum Target {
    Kvserve(String),
    Memcached,
}

impl Target {
    fn label(&self) -> &str {
        match self {
            Target::Kvserve(p) => p,
            Target::Memcached => "memcached",
        }
    }
}

/// Everything `kvbench compare --json` prints.
#[derive(Serialize)]
struct CompareReport<'a> {
    threads: usize,
    duration_s: f64,
    server_args: &'a [String],
    rounds: usize,
    /// The server `vs_baseline` divides by.
    baseline: &'a str,
    /// `--client-cpus` and `--server-cpus`, when given.
    client_cpus: Option<String>,
    server_cpus: Option<String>,
    /// One row per workload and server (over several rounds: medians).
    rows: &'a [CompareRow],
    /// With several rounds, every measured run.
    #[serde(skip_serializing_if = "Option::is_none")]
    runs: Option<&'a [CompareRow]>,
    notes: &'a [String],
}

pub fn compare(args: &CompareArgs) -> Result<()> {
    let threads = args.threads.unwrap_or_else(num_cpus::get).max(1);
    let workloads = if args.workloads.is_empty() {
        WorkloadName::ALL.to_vec()
    } else {
        args.workloads.clone()
    };
    let mut targets = Vec::new();
    for p in &args.patterns {
        ensure!(
            PATTERNS.contains(&p.as_str()),
            "unknown pattern {p:?}; patterns are {}",
            PATTERNS.join(", ")
        );
        targets.push(Target::Kvserve(p.clone()));
    }
    let kvserve: PathBuf = match &args.kvserve {
        Some(path) => path.clone(),
        None => std::env::current_exe()?.with_file_name("kvserve"),
    };
    if !args.patterns.is_empty() && !kvserve.exists() {
        bail!(
            "no kvserve binary at {} (build it with `cargo build --release --bins`, or pass --kvserve PATH)",
            kvserve.display()
        );
    }
    if args.memcached || (!args.no_memcached && on_path("memcached")) {
        targets.push(Target::Memcached);
    }
    ensure!(!targets.is_empty(), "nothing to compare");
    let labels: Vec<&str> = targets.iter().map(Target::label).collect();
    let baseline = match &args.baseline {
        Some(b) => {
            ensure!(
                labels.contains(&b.as_str()),
                "--baseline {b:?} is not compared; servers are {}",
                labels.join(", ")
            );
            b.clone()
        }
        None if labels.contains(&"multi-reader") => "multi-reader".to_string(),
        None => labels[0].to_string(),
    };
    // Servers get --server-cpus, or every CPU kvbench itself may use, so
    // that they never inherit --client-cpus.
    let server_cpus = match &args.server_cpus {
        Some(list) => Affinity::of(list),
        None => Affinity::current().context("reading kvbench's CPU affinity")?,
    };
    if let Some(list) = &args.client_cpus {
        Affinity::of(list)
            .apply()
            .with_context(|| format!("--client-cpus {list}"))?;
    }
    let duration = Duration::from_secs_f64(args.duration);
    let rounds = args.rounds as usize;
    let mut runs: Vec<CompareRow> = Vec::new();
    let mut notes: Vec<String> = Vec::new();
    // Round by round, every server in turn: drift hits them all alike.
    for (round, target) in (1..=rounds).flat_map(|n| targets.iter().map(move |t| (n, t))) {
        let label = target.label().to_string();
        let of_rounds = if rounds > 1 {
            format!(" (round {round}/{rounds})")
        } else {
            String::new()
        };
        // Who a note is about: the server, and the round if there are several.
        let who = format!("{label}{of_rounds}");
        let started = match target {
            Target::Kvserve(p) => {
                ServerProc::start_kvserve(&kvserve, p, threads, &args.server_args, server_cpus)
            }
            Target::Memcached => ServerProc::start_memcached(threads, server_cpus),
        };
        let mut server = match started {
            Ok(s) => s,
            Err(e) => {
                let note = format!("{who}: not started: {e:#}");
                eprintln!("kvbench: {note}");
                notes.push(note);
                continue;
            }
        };
        let is_kvserve = matches!(target, Target::Kvserve(_));
        for &w in &workloads {
            let plan = workload::plan(&WorkloadArgs {
                workload: w,
                ..WorkloadArgs::default()
            })?;
            let opts = Options {
                server: server.addr,
                duration,
                client_threads: plan.client_threads(args.client_threads),
                timeout: RUN_TIMEOUT,
                spin: Duration::from_micros(SPIN_US),
            };
            let bar = crate::progress_bar(args.quiet, &format!("{label} {}{of_rounds}", w.name()));
            let warm = run::warmup(&plan, &opts, &bar);
            let before = is_kvserve
                .then(|| stats_threads(server.addr, RUN_TIMEOUT))
                .transpose();
            let cpu_before = process_cpu_time(server.child.id());
            let result = run::measure(&plan, &opts, &bar)?;
            let cpu_after = process_cpu_time(server.child.id());
            let after = is_kvserve
                .then(|| stats_threads(server.addr, RUN_TIMEOUT))
                .transpose();
            bar.finish_and_clear();
            let deltas = match (before, after) {
                (Ok(Some(b)), Ok(Some(a))) => Some(thread_deltas(&b, &a)),
                (Err(e), _) | (_, Err(e)) => {
                    notes.push(format!("{who} / {}: stats threads: {e:#}", w.name()));
                    None
                }
                _ => None,
            };
            let imbalance = deltas.as_deref().and_then(imbalance);
            let report = report::run_report(&plan, &opts, &warm, &result);
            let requests: u64 = report.groups.iter().map(|g| g.requests).sum();
            let cpu_us_per_request = match (cpu_before, cpu_after) {
                (Ok(b), Ok(a)) if requests > 0 => {
                    Some(a.saturating_sub(b).as_secs_f64() * 1e6 / requests as f64)
                }
                _ => None,
            };
            if warm.errors > 0 {
                notes.push(format!(
                    "{who} / {}: warmup: {} errors; first: {}",
                    w.name(),
                    warm.errors,
                    warm.first_error.as_deref().unwrap_or("?")
                ));
            }
            for g in &report.groups {
                if g.unsent > 0 {
                    notes.push(format!(
                        "{who} / {}/{}: {} requests due but never sent (pipeline full or connection lost)",
                        w.name(),
                        g.name,
                        g.unsent
                    ));
                }
                runs.push(CompareRow {
                    server: label.clone(),
                    workload: if report.groups.len() > 1 {
                        format!("{}/{}", w.name(), g.name)
                    } else {
                        w.name().to_string()
                    },
                    ops_per_sec: g.ops_per_sec,
                    p50_us: g.latency_us.p50,
                    p99_us: g.latency_us.p99,
                    p999_us: g.latency_us.p999,
                    requests: g.requests,
                    misses: g.misses,
                    errors: g.errors,
                    first_error: g.first_error.clone(),
                    imbalance,
                    threads: deltas.clone(),
                    cpu_us_per_request,
                    rounds: 1,
                    ops_min: g.ops_per_sec,
                    ops_max: g.ops_per_sec,
                    round: Some(round),
                    vs_baseline: None,
                });
            }
            if let Some(status) = server.try_exit() {
                notes.push(format!(
                    "{who}: exited during {} with {status}; its stderr:\n{}",
                    w.name(),
                    server.stderr_tail()
                ));
                break;
            }
        }
        let (status, killed) = server.stop();
        if killed {
            notes.push(format!(
                "{who}: still running {STOP_TIMEOUT:?} after SIGTERM; killed"
            ));
        } else if !status.success() {
            notes.push(format!("{who}: exited with {status} after SIGTERM"));
        }
    }
    ensure!(
        !runs.is_empty(),
        "no server could be measured:\n{}",
        notes.join("\n")
    );
    report::compare_with_baseline(&mut runs, &baseline);
    let rows = report::summarize(&runs);
    let mut extra = if args.server_args.is_empty() {
        String::new()
    } else {
        format!(" {}", args.server_args.join(" "))
    };
    if let Some(list) = &args.client_cpus {
        extra += &format!(" --client-cpus {list}");
    }
    if let Some(list) = &args.server_cpus {
        extra += &format!(" --server-cpus {list}");
    }
    let mut per_run = format!("{:.1} s per run", args.duration);
    if rounds > 1 {
        per_run += &format!(", {rounds} rounds (medians)");
    }
    extra += ", ";
    extra += &per_run;
    if args.json {
        let out = CompareReport {
            threads,
            duration_s: args.duration,
            server_args: &args.server_args,
            rounds,
            baseline: &baseline,
            client_cpus: args.client_cpus.as_ref().map(ToString::to_string),
            server_cpus: args.server_cpus.as_ref().map(ToString::to_string),
            rows: &rows,
            runs: (rounds > 1).then_some(runs.as_slice()),
            notes: &notes,
        };
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!(
            "kvbench compare: --threads {threads}{extra}; vs {baseline} = ops/s / {baseline}'s in the same round; imbalance = busiest executing thread's requests / mean; cpu µs/req = server CPU time / requests (all of the run's groups)"
        );
        println!();
        print!("{}", report::render_compare(&rows, &baseline));
        for n in &notes {
            println!("note: {n}");
        }
    }
    if !args.no_svg && !rows.is_empty() {
        let title = format!("kvbench compare: --threads {threads}{extra}");
        crate::chart::write_svg(&args.svg, &title, &rows)
            .with_context(|| format!("writing {}", args.svg.display()))?;
        eprintln!("kvbench: chart written to {}", args.svg.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delta(role: &str, requests: u64) -> ThreadStat {
        ThreadStat {
            role: role.into(),
            requests,
            ..ThreadStat::default()
        }
    }

    #[test]
    fn imbalance_counts_executing_threads_only() {
        // worker-pool: the dispatch thread executes nothing.
        let t = [
            delta("dispatch", 0),
            delta("worker", 300),
            delta("worker", 100),
        ];
        assert_eq!(imbalance(&t), Some(1.5));
        // multi-reader: acceptor left out; even readers.
        let t = [
            delta("acceptor", 5),
            delta("reader", 50),
            delta("reader", 50),
        ];
        assert_eq!(imbalance(&t), Some(1.0));
        // basic: one loop.
        assert_eq!(imbalance(&[delta("loop", 7)]), Some(1.0));
        // All on one of four readers: the worst case, 4.
        let t = [
            delta("reader", 0),
            delta("reader", 400),
            delta("reader", 0),
            delta("reader", 0),
        ];
        assert_eq!(imbalance(&t), Some(4.0));
        assert_eq!(imbalance(&[delta("worker", 0), delta("worker", 0)]), None);
        assert_eq!(imbalance(&[delta("acceptor", 9)]), None);
        assert_eq!(imbalance(&[]), None);
    }

    #[test]
    fn thread_stats_parse_and_delta() {
        let before = "STAT 0:role dispatch\r\nSTAT 0:connections 1\r\nSTAT 0:requests 0\r\n\
            STAT 0:bytes_read 47\r\nSTAT 0:bytes_written 0\r\nSTAT 0:busy_us 127\r\n\
            STAT 1:role worker\r\nSTAT 1:requests 3\r\nSTAT 1:future_field x\r\nEND\r\n";
        let after = "STAT 0:role dispatch\r\nSTAT 0:connections 3\r\nSTAT 0:requests 0\r\n\
            STAT 0:bytes_read 100\r\nSTAT 0:busy_us 200\r\n\
            STAT 1:role worker\r\nSTAT 1:requests 10\r\n\
            STAT 2:role worker\r\nSTAT 2:requests 4\r\nEND\r\n";
        let b = parse_thread_stats(before).unwrap();
        assert_eq!(b.len(), 2);
        assert_eq!(b[0].role, "dispatch");
        assert_eq!((b[0].thread, b[1].thread), (0, 1));
        assert_eq!((b[0].bytes_read, b[0].busy_us), (47, 127));
        let a = parse_thread_stats(after).unwrap();
        let d = thread_deltas(&b, &a);
        assert_eq!(d.len(), 3);
        assert_eq!(
            (d[0].connections, d[0].bytes_read, d[0].busy_us),
            (2, 53, 73)
        );
        assert_eq!((d[1].requests, d[2].requests), (7, 4));
        assert_eq!(imbalance(&d), Some(7.0 / 5.5));
        assert!(parse_thread_stats("STAT 0:role loop\r\n").is_err());
        assert!(parse_thread_stats("ERROR\r\n").is_err());
        assert!(parse_thread_stats("STAT 0:requests many\r\nEND\r\n").is_err());
    }

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
