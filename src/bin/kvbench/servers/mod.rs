//! The servers under test: starting kvserve once per pattern (and the real
//! memcached) on free loopback ports, over TLS and with authentication
//! when asked ([`secrets`]), and stopping what was started.

pub mod secrets;

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use kvserve::server::config::Pattern;
use kvserve::server::process::StderrTail;

use crate::load::workload::Security;
use crate::measure::cpus::Affinity;
use crate::net::auth::Credentials;
use crate::net::tls::{TlsClient, Trust};
use crate::net::Endpoint;
use secrets::Secrets;

/// How long a server gets to come up, and to stop after SIGTERM.
const START_TIMEOUT: Duration = Duration::from_secs(10);
pub const STOP_TIMEOUT: Duration = Duration::from_secs(5);
const STDERR_LINES: usize = 40;

/// A server process this run started (and so may signal).
pub struct ServerProc {
    child: Child,
    pub addr: SocketAddr,
    label: String,
    stderr: StderrTail,
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
        let mut server = ServerProc::spawn(cmd, pattern.to_string(), cpus)?;
        match server.stderr.listening(START_TIMEOUT) {
            Some(addr) if addr.ip().is_loopback() => {
                server.addr = addr;
                Ok(server)
            }
            Some(addr) => bail!("{} listens on {addr}, not on loopback", server.label),
            None => {
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

    /// `memcached -p PORT -l 127.0.0.1 -U 0 -t N -c 4096 [-u root] EXTRA...`,
    /// on a port that was free a moment ago; waits until it accepts.
    pub fn start_memcached(threads: usize, extra: &[String], cpus: Affinity) -> Result<Self> {
        let mut last_error = String::new();
        for _attempt in 0..3 {
            let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
            let mut cmd = Command::new("memcached");
            cmd.args(["-p", &port.to_string(), "-l", "127.0.0.1", "-U", "0"])
                .args(["-t", &threads.to_string(), "-c", "4096"])
                .args(extra);
            // SAFETY: geteuid has no preconditions.
            if unsafe { libc::geteuid() } == 0 {
                cmd.args(["-u", "root"]);
            }
            let mut server = ServerProc::spawn(cmd, "memcached".into(), cpus)?;
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

    fn spawn(mut cmd: Command, label: String, cpus: Affinity) -> Result<Self> {
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
        let pipe = child.stderr.take().expect("stderr is piped");
        Ok(ServerProc {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            label,
            stderr: StderrTail::spawn(pipe, STDERR_LINES),
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

    /// The server's last stderr lines, for an error message.
    pub fn stderr_tail(&self) -> String {
        self.stderr.text()
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
    /// The certificate and auth file, when a server is to speak TLS or
    /// to authenticate.
    pub secrets: Option<Secrets>,
    /// The credentials every connection authenticates with.
    pub auth: Option<Credentials>,
}

impl Launcher {
    /// Starts `target` on a free loopback port, with TLS when `tls` (the
    /// launcher must have made a certificate), with its auth file when
    /// there are credentials.
    pub fn start(&self, target: &Target, tls: bool) -> Result<ServerProc> {
        let secure = self
            .secrets
            .as_ref()
            .map_or_else(Vec::new, |s| s.server_args(tls));
        match target {
            Target::Kvserve(pattern) => {
                let extra = [self.server_args.clone(), secure].concat();
                ServerProc::start_kvserve(&self.kvserve, pattern, self.threads, &extra, self.cpus)
            }
            Target::Memcached => ServerProc::start_memcached(self.threads, &secure, self.cpus),
        }
    }

    /// How clients reach `server`, started with TLS if `security` says so:
    /// trusting the certificate made for it, authenticating when there are
    /// credentials; with [`Security::TlsResume`], resuming sessions.
    pub fn endpoint(&self, server: &ServerProc, security: Security) -> Result<Endpoint> {
        let tls = match (
            security,
            self.secrets.as_ref().and_then(Secrets::certificate),
        ) {
            (Security::Plain, _) => None,
            (_, None) => bail!("no certificate was made for TLS"),
            (_, Some(cert)) => Some(Arc::new(TlsClient::new(
                &Trust::Certificate(cert.clone()),
                &server.addr.ip().to_string(),
                security == Security::TlsResume,
            )?)),
        };
        Ok(Endpoint::plain(server.addr)
            .with_tls(tls)
            .with_auth(self.auth.clone()))
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

/// The servers to measure: each pattern of `patterns`, then memcached if
/// `memcached` says so, or by default when it is on PATH.
pub fn targets(patterns: &[Pattern], memcached: Option<bool>) -> Result<Vec<Target>> {
    let mut targets: Vec<Target> = patterns
        .iter()
        .map(|p| Target::Kvserve(p.name().to_string()))
        .collect();
    if memcached.unwrap_or_else(|| on_path("memcached")) {
        targets.push(Target::Memcached);
    }
    ensure!(!targets.is_empty(), "nothing to measure");
    Ok(targets)
}
