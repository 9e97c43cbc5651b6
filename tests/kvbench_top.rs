//! `kvbench top` against real servers: the full-screen view under tmux
//! (a row per thread with nonzero requests/s, a redraw on resize, q, Esc
//! and Ctrl-C giving the terminal back), the plain text against memcached
//! and when stdout is a pipe, and a server lost mid-run. Every wait is
//! bounded; every process started here is stopped by its PID (the tmux
//! server by its private socket).

mod common;

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use common::{exit_within, free_port, kvbench_command, wait_until, KvServer};

const KVBENCH: &str = env!("CARGO_BIN_EXE_kvbench");
/// Longest a plain `kvbench top` here may run before it is killed.
const TOP_LIMIT: Duration = Duration::from_secs(60);

/// Runs `kvbench top ARGS` with stdout and stderr piped (so not a
/// terminal); kills it after [`TOP_LIMIT`].
fn top_output(args: &[&str]) -> Output {
    let mut child = kvbench_command(&["top"])
        .args(args)
        .spawn()
        .expect("spawn kvbench top");
    let out = drain(child.stdout.take().unwrap());
    let err = drain(child.stderr.take().unwrap());
    let status = exit_within(&mut child, TOP_LIMIT)
        .unwrap_or_else(|| panic!("kvbench top {args:?} still running after {TOP_LIMIT:?}"));
    Output {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

fn drain(mut from: impl Read + Send + 'static) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut v = Vec::new();
        let _ = from.read_to_end(&mut v);
        v
    })
}

/// The thread rows of a plain block or a screen: (thread, role, req/s).
fn thread_rows(text: &str) -> Vec<(usize, String, String)> {
    const ROLES: [&str; 5] = ["loop", "acceptor", "reader", "dispatch", "worker"];
    text.lines()
        .filter_map(|line| {
            let words: Vec<&str> = line.trim_matches('│').split_whitespace().collect();
            let n = words.first()?.parse().ok()?;
            let (role, rate) = (*words.get(1)?, *words.get(3)?);
            ROLES
                .contains(&role)
                .then(|| (n, role.to_string(), rate.to_string()))
        })
        .collect()
}

#[test]
fn plain_count_3_against_memcached_prints_totals_and_the_note() {
    let server = KvServer::start_memcached(&["-t", "2"]);
    let addr = server.addr().to_string();
    let out = top_output(&[
        "--server",
        &addr,
        "--plain",
        "--count",
        "3",
        "--interval",
        "0.2",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}: {text}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let count = |start: &str| text.lines().filter(|l| l.starts_with(start)).count();
    assert_eq!(count(&format!("{addr}  memcached 1.6")), 3, "{text}");
    assert_eq!(count("ops/s "), 3, "{text}");
    assert_eq!(
        count("per-thread stats are not available: the server does not answer `stats threads`"),
        3,
        "{text}"
    );
    assert!(text.contains("threads 2"), "{text}");
    assert!(text.contains("memory 0 B / 64.0 MiB"), "{text}");
    assert!(thread_rows(&text).is_empty(), "{text}");
}

#[test]
fn plain_by_itself_into_a_pipe_with_a_row_per_thread() {
    let mut server = KvServer::start("multi-reader", &["--threads", "2"]);
    let addr = server.addr().to_string();
    // No --plain: stdout is a pipe.
    let out = top_output(&["--server", &addr, "--count", "2", "--interval", "0.2"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}: {text}", out.status);
    assert!(
        !text.contains('\u{1b}'),
        "escape sequences in plain text: {text:?}"
    );
    let rows = thread_rows(&text);
    let roles: Vec<(usize, &str)> = rows.iter().map(|(n, r, _)| (*n, r.as_str())).collect();
    assert_eq!(
        roles,
        [
            (0, "acceptor"),
            (1, "reader"),
            (2, "reader"),
            (0, "acceptor"),
            (1, "reader"),
            (2, "reader")
        ],
        "{text}"
    );
    assert_eq!(text.matches(&format!("{addr}  multi-reader")).count(), 2);
    assert!(server.stop().success());
}

#[test]
fn a_server_never_reached_is_said_and_fails_after_count() {
    // Nothing listens on a port that was free a moment ago.
    let addr = format!("127.0.0.1:{}", free_port());
    let out = top_output(&[
        "--server",
        &addr,
        "--plain",
        "--count",
        "2",
        "--interval",
        "0.2",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{text}\n{stderr}");
    let said: Vec<&str> = text.lines().filter(|l| !l.is_empty()).collect();
    assert_eq!(said.len(), 2, "{text}");
    for (n, line) in said.iter().enumerate() {
        assert!(
            line.starts_with(&format!("{addr}: cannot connect (Connection refused"))
                && line.ends_with(&format!("retrying every 0.2 s (try {})", n + 1)),
            "{text}"
        );
    }
    // One line, though RUST_BACKTRACE=1: no stack trace.
    assert_eq!(
        stderr.trim_end(),
        format!("Error: cannot connect to {addr}: Connection refused (os error 111)")
    );
}

#[test]
fn a_lost_server_is_said_and_retried_without_a_panic() {
    let mut server = KvServer::start("worker-pool", &["--threads", "2"]);
    let addr = server.addr().to_string();
    let mut child = kvbench_command(&["top", "--server", &addr, "--plain", "--interval", "0.2"])
        .args(["--count", "15"])
        .spawn()
        .expect("spawn kvbench top");
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    let lines = thread::spawn(move || {
        let mut all = Vec::new();
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line.clone());
            all.push(line);
        }
        all
    });
    let err = drain(child.stderr.take().unwrap());
    // Once a block with rates is out, the server goes away.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut rates_seen = false;
    while !rates_seen && Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(100)) {
            rates_seen = line.starts_with("ops/s ");
        }
    }
    assert!(rates_seen, "no block with rates within 20 s");
    assert!(server.stop().success());
    let status = exit_within(&mut child, TOP_LIMIT).expect("kvbench top ends after --count");
    let text = lines.join().unwrap().join("\n");
    let stderr = String::from_utf8_lossy(&err.join().unwrap()).into_owned();
    assert!(status.success(), "{status}: {text}\n{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let lost: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with(&format!("{addr}: server lost (")))
        .collect();
    assert!(lost.len() >= 2, "not said, or not retried: {text}");
    assert!(lost.iter().all(|l| l.contains("retrying every 0.2 s")));
    assert!(lost
        .last()
        .unwrap()
        .contains(&format!("(try {})", lost.len())));
}

/// A tmux server of its own (`tmux -L NAME`, no configuration file),
/// killed when dropped.
struct Tmux {
    socket: String,
}

impl Tmux {
    /// Starts a detached `width` x `height` session running an
    /// interactive `sh` whose prompt is `top-test$ `.
    fn start(width: u16, height: u16) -> Tmux {
        let version = Command::new("tmux").arg("-V").output();
        assert!(
            version.as_ref().is_ok_and(|o| o.status.success()),
            "this test needs tmux, which is not installed ({version:?}): \
             apt-get install tmux (.ci/run installs it)"
        );
        let tmux = Tmux {
            socket: format!("kvbench-top-test-{}", std::process::id()),
        };
        tmux.run(&[
            "new-session",
            "-d",
            "-x",
            &width.to_string(),
            "-y",
            &height.to_string(),
            "env PS1='top-test$ ' sh -i",
        ]);
        tmux
    }

    /// Runs one tmux command on this server; its stdout.
    fn run(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .args(["-L", &self.socket, "-f", "/dev/null"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run tmux");
        assert!(
            out.status.success(),
            "tmux {args:?}: {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn screen(&self) -> String {
        self.run(&["capture-pane", "-p"])
    }

    /// A format variable of the pane, e.g. `alternate_on`.
    fn pane(&self, variable: &str) -> String {
        self.run(&["display-message", "-p", &format!("#{{{variable}}}")])
            .trim()
            .to_string()
    }

    /// Waits up to `limit` for `cond` on the screen; the last screen.
    fn wait_for(&self, limit: Duration, cond: impl Fn(&str) -> bool) -> (bool, String) {
        let mut screen = String::new();
        let met = wait_until(limit, || {
            screen = self.screen();
            cond(&screen)
        });
        (met, screen)
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// `kvbench run` against `addr` for at most 60 s, killed when dropped.
struct Load(Child);

impl Load {
    fn start(addr: &str) -> Load {
        let child = Command::new(KVBENCH)
            .args(["run", "--server", addr, "--duration", "60", "--quiet"])
            .args(["--connections", "8", "--client-threads", "1"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn kvbench run");
        Load(child)
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Where the shell in tmux writes top's exit status.
fn exit_file(key: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "kvbench-top-test-{}-{key}.exit",
        std::process::id()
    ))
}

#[test]
fn full_screen_under_tmux_a_row_per_thread_and_the_terminal_given_back() {
    let mut server = KvServer::start("worker-pool", &["--threads", "2"]);
    let addr = server.addr().to_string();
    let load = Load::start(&addr);
    let tmux = Tmux::start(120, 30);
    let limit = Duration::from_secs(20);
    let prompt_last = |s: &str| {
        s.lines()
            .rfind(|l| !l.trim().is_empty())
            .is_some_and(|l| l.trim_end() == "top-test$")
    };
    for (i, key) in ["q", "Escape", "C-c"].into_iter().enumerate() {
        let (ready, screen) = tmux.wait_for(limit, prompt_last);
        assert!(ready, "no shell prompt:\n{screen}");
        let exit = exit_file(key);
        let _ = std::fs::remove_file(&exit);
        tmux.run(&[
            "send-keys",
            &format!(
                "{KVBENCH} top --server {addr} --interval 0.3; echo top-exit=$? > {}",
                exit.display()
            ),
            "Enter",
        ]);
        let (up, screen) = tmux.wait_for(limit, |s| s.contains("q quits"));
        assert!(up, "no view within {limit:?}:\n{screen}");
        assert_eq!(
            tmux.pane("alternate_on"),
            "1",
            "not on the alternate screen"
        );
        if i == 0 {
            // One row per thread (dispatch and two workers), every worker
            // serving: nonzero requests/s.
            let (served, screen) = tmux.wait_for(limit, |s| {
                let rows = thread_rows(s);
                rows.len() == 3
                    && rows
                        .iter()
                        .all(|(_, role, rate)| role != "worker" || rate != "0")
            });
            assert!(served, "no row per thread with requests:\n{screen}");
            let rows = thread_rows(&screen);
            let roles: Vec<&str> = rows.iter().map(|(_, r, _)| r.as_str()).collect();
            assert_eq!(roles, ["dispatch", "worker", "worker"], "{screen}");
            assert!(screen.contains("worker-pool"), "{screen}");
            // A resize redraws at the new width.
            tmux.run(&["resize-window", "-x", "90", "-y", "24"]);
            let (redrawn, screen) = tmux.wait_for(limit, |s| {
                s.lines()
                    .next()
                    .is_some_and(|l| l.starts_with('┌') && l.trim_end().chars().count() == 90)
            });
            assert!(redrawn, "not redrawn at 90 columns:\n{screen}");
        }
        tmux.run(&["send-keys", key]);
        // The shell creates the file before echo writes into it.
        let exited = wait_until(limit, || {
            std::fs::read_to_string(&exit).is_ok_and(|s| s.ends_with('\n'))
        });
        let screen = tmux.screen();
        assert!(exited, "top did not quit on {key}:\n{screen}");
        let status = std::fs::read_to_string(&exit).unwrap_or_default();
        let _ = std::fs::remove_file(&exit);
        assert_eq!(status.trim(), "top-exit=0", "on {key}:\n{screen}");
        // The terminal is back: main screen, cursor shown, the prompt.
        assert_eq!(tmux.pane("alternate_on"), "0", "on {key}:\n{screen}");
        assert_eq!(tmux.pane("cursor_flag"), "1", "on {key}:\n{screen}");
        let (prompt, screen) = tmux.wait_for(limit, prompt_last);
        assert!(prompt, "no prompt after {key}:\n{screen}");
        assert!(!screen.contains("q quits"), "view left behind:\n{screen}");
    }
    drop(load);
    assert!(server.stop().success());
}
