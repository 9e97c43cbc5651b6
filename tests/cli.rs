//! kvserve's command line as a memcached user meets it: the flags memcached
//! refuses are refused with its words and exit status (compared with the
//! real memcached), as are auth files (`-Y`) that do not parse, `-l` takes
//! a host name, and `-v` / `-vv` log what memcached's do. Every process is bounded in time.

#[macro_use]
mod common;

use std::io::{Read, Write};
use std::process::{Command, Output, Stdio};
use std::thread;
use std::time::Duration;

use common::{exit_within, memcached_bin, request, wait_until, KvServer, TempDir};

/// How long a server that should refuse to start may take to exit.
const REFUSAL_LIMIT: Duration = Duration::from_secs(10);
/// How long log lines may take to reach stderr.
const LOG_WAIT: Duration = Duration::from_secs(5);

/// Runs `cmd` to its exit, killing it after [`REFUSAL_LIMIT`] (a server
/// that did not refuse, which the caller's assertions then report).
fn run_bounded(cmd: &mut Command) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    let mut pipes = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let reader = thread::spawn(move || {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let _ = pipes.0.read_to_end(&mut out);
        let _ = pipes.1.read_to_end(&mut err);
        (out, err)
    });
    // Killed: a status that is not the refusal's, for the caller to report.
    let status = exit_within(&mut child, REFUSAL_LIMIT).unwrap_or_else(|| child.wait().unwrap());
    let (stdout, stderr) = reader.join().unwrap();
    Output {
        status,
        stdout,
        stderr,
    }
}

/// kvserve with `args` must exit with `code` and print `message` as its
/// only stderr line, having bound nothing.
fn kvserve_refuses(args: &[&str], message: &str, code: i32) {
    let out = run_bounded(
        Command::new(env!("CARGO_BIN_EXE_kvserve"))
            .args(["-p", "0"])
            .args(args)
            .env_remove("RUST_LOG"),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "kvserve {args:?}: {stderr}");
    assert_eq!(stderr.trim_end(), message, "kvserve {args:?}");
    assert!(!stderr.contains("listening"), "kvserve {args:?}: {stderr}");
}

/// memcached with `args`, run to its exit (bounded).
fn run_memcached(args: &[&str]) -> Output {
    let mut cmd = Command::new(memcached_bin());
    cmd.args(["-p", "0", "-U", "0", "-l", "127.0.0.1"])
        .args(args);
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        cmd.args(["-u", "root"]);
    }
    run_bounded(&mut cmd)
}

/// [`kvserve_refuses`], and memcached must refuse the same flags with the
/// same line and exit status.
fn refused_like_memcached(args: &[&str], message: &str, code: i32) {
    kvserve_refuses(args, message, code);
    let out = run_memcached(args);
    let mc_stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(code),
        "memcached {args:?}: {mc_stderr}"
    );
    assert!(
        mc_stderr.lines().any(|l| l == message),
        "memcached {args:?} said {mc_stderr:?}, kvserve {message:?}"
    );
}

#[test]
fn zero_threads_refused_as_memcached_does() {
    let message = "Number of threads must be greater than 0";
    refused_like_memcached(&["-t", "0"], message, 1);
    // Before the memory check, as memcached; and whatever the pattern.
    refused_like_memcached(&["-t", "0", "-m", "0"], message, 1);
    kvserve_refuses(&["--pattern", "basic", "-t", "0"], message, 1);
}

#[test]
fn memory_below_twice_the_item_size_refused_as_memcached_does() {
    let message = "Cannot set item size limit higher than 1/2 of memory max.";
    refused_like_memcached(&["-m", "0"], message, 64);
    refused_like_memcached(&["-m", "1"], message, 64);
    refused_like_memcached(&["-m", "4", "-I", "4m"], message, 64);
}

#[test]
fn item_size_above_a_gigabyte_refused_as_memcached_does() {
    let message = "Cannot set item size limit higher than a gigabyte.";
    refused_like_memcached(&["-I", "1025m", "-m", "20000"], message, 64);
    // After the memory check, as memcached.
    let half = "Cannot set item size limit higher than 1/2 of memory max.";
    refused_like_memcached(&["-I", "1025m", "-m", "1"], half, 64);
}

/// A port in use is the user's to fix: the message and its cause on one
/// line, exit 1, and no stack trace though `RUST_BACKTRACE=1` is set.
#[test]
fn a_busy_port_is_one_line_without_a_stack_trace() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let out = run_bounded(
        Command::new(env!("CARGO_BIN_EXE_kvserve"))
            .args(["-p", &port, "-l", "127.0.0.1"])
            .env_remove("RUST_LOG")
            .env("RUST_BACKTRACE", "1"),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(
        stderr.trim_end(),
        format!("Error: cannot listen on 127.0.0.1:{port}: Address already in use (os error 98)")
    );
}

/// An auth file (`-Y`) that does not load stops the start before
/// anything listens, exit 1, in memcached's words (kvserve's errors start
/// with `Error: `), which kvserve follows with the line at fault.
#[test]
fn an_auth_file_that_does_not_parse_is_refused_naming_the_line() {
    let dir = TempDir::new("cli-auth");
    let path = dir.path().join("users");
    let file = path.to_str().expect("a UTF-8 temporary path");
    let malformed = format!("Authfile [{file}] has a malformed entry. Should be 'user:password'");
    for (text, line) in [
        ("alice:secret\nbob\n", "line 2 has no ':'"),
        ("alice:secret\n\nbob:x\n", "line 2 has no ':'"),
        ("\n", "line 1 has no ':'"),
    ] {
        std::fs::write(&path, text).unwrap();
        let message = format!("Error: {malformed}: {line}");
        kvserve_refuses(&["-Y", file], &message, 1);
        let out = run_memcached(&["-Y", file]);
        let mc_stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(1),
            "memcached {text:?}: {mc_stderr}"
        );
        assert_eq!(mc_stderr, malformed, "memcached {text:?}");
    }
    // Files memcached reads otherwise than they say, without a word:
    // kvserve refuses them.
    let nine: String = (1..=9).map(|i| format!("u{i}:p{i}\n")).collect();
    let long = format!("alice:{}\nbob:x\n", "x".repeat(249));
    for (text, line) in [
        (
            nine.as_str(),
            "line 9 is one user too many: memcached reads 8",
        ),
        (long.as_str(), "line 1 is over 254 bytes, memcached's limit"),
        ("alice:x\nbob:y\0z\ncarol:w\n", "line 2 holds a NUL byte"),
    ] {
        std::fs::write(&path, text).unwrap();
        kvserve_refuses(&["-Y", file], &format!("Error: {malformed}: {line}"), 1);
    }
    let missing = format!("{file}.missing");
    let opening =
        format!("Could not open authfile [{missing}] for reading, error No such file or directory");
    kvserve_refuses(
        &["-Y", &missing],
        &format!("Error: {opening} (os error 2)"),
        1,
    );
    let out = run_memcached(&["-Y", &missing]);
    let mc_stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "memcached: {mc_stderr}");
    assert!(mc_stderr.starts_with(&opening), "memcached: {mc_stderr}");
}

/// How `kvserve --pattern PATTERN -t 2 -p PORT` ends: exit status and stderr.
fn start_on_port(pattern: &str, port: u16) -> (Option<i32>, String) {
    let out = run_bounded(
        Command::new(env!("CARGO_BIN_EXE_kvserve"))
            .args(["--pattern", pattern, "-t", "2", "-l", "127.0.0.1"])
            .args(["-p", &port.to_string()])
            .env_remove("RUST_LOG"),
    );
    let stderr = String::from_utf8_lossy(&out.stderr).trim_end().to_string();
    (out.status.code(), stderr)
}

/// reuseport binds its listeners with `SO_REUSEPORT`, which a socket
/// listening without it keeps out: the same refusal as the other patterns'.
/// One listening with it (another kvserve reuseport) would let it in, to
/// take a share of the connections into a cache of its own: refused too.
#[test]
fn reuseport_refuses_a_busy_port_as_the_other_patterns_do() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let busy = (
        Some(1),
        format!("Error: cannot listen on 127.0.0.1:{port}: Address already in use (os error 98)"),
    );
    assert_eq!(start_on_port("multi-reader", port), busy);
    assert_eq!(start_on_port("reuseport", port), busy);
    drop(taken);

    let mut first = KvServer::start("reuseport", &["-t", "2"]);
    let port = first.addr().port();
    let busy = (
        Some(1),
        format!("Error: cannot listen on 127.0.0.1:{port}: Address already in use (os error 98)"),
    );
    assert_eq!(start_on_port("reuseport", port), busy);
    assert_eq!(start_on_port("multi-reader", port), busy);
    // The first still serves, on each of its loops.
    let mut c = first.connect();
    assert_eq!(request(&mut c, b"set k 0 0 1\r\nv\r\n"), b"STORED\r\n");
    for _ in 0..8 {
        let mut c = first.connect();
        assert_eq!(
            request(&mut c, b"get k\r\n"),
            b"VALUE k 0 1\r\nv\r\nEND\r\n"
        );
    }
    assert!(first.stop().success());
}

#[test]
fn smallest_memory_memcached_accepts_serves() {
    let server = KvServer::start("basic", &["-m", "2"]);
    let mut client = server.connect();
    assert_eq!(request(&mut client, b"set k 0 0 1\r\nv\r\n"), b"STORED\r\n");
}

#[test]
fn listen_on_localhost() {
    let server = KvServer::start_on("multi-reader", "localhost", &[]);
    assert!(server.addr().ip().is_loopback(), "{}", server.addr());
    let mut client = server.connect();
    let reply = request(&mut client, b"version\r\n");
    assert!(
        reply.starts_with(b"VERSION 1.6.18"),
        "{}",
        String::from_utf8_lossy(&reply)
    );
}

/// The command log lines of one client (memcached's `<FD ...`, `>FD
/// ...`), FD replaced by `FD`, the [`EXPECTED_LOG`]`.len()` lines from
/// its `set foo`; `None` until that client's command ending with `last`
/// and that many lines are there.
fn exchange(stderr: &str, last: &str) -> Option<Vec<String>> {
    // kvserve's lines carry a timestamp, level and target before it.
    let texts: Vec<&str> = stderr
        .lines()
        .map(|l| l.rsplit_once("command_log: ").map_or(l, |(_, text)| text))
        .collect();
    let fd = texts
        .iter()
        .find(|t| t.starts_with('<') && t.ends_with(last))?
        .split(' ')
        .next()?[1..]
        .to_string();
    let (from, to) = (format!("<{fd} "), format!(">{fd} "));
    let lines: Vec<String> = texts
        .iter()
        .filter_map(|t| {
            let rest = t.strip_prefix(&from).map(|r| format!("<FD {r}"));
            rest.or_else(|| t.strip_prefix(&to).map(|r| format!(">FD {r}")))
        })
        .collect();
    let start = lines.iter().position(|l| l.starts_with("<FD set foo"))?;
    lines
        .get(start..start + EXPECTED_LOG.len())
        .map(<[String]>::to_vec)
}

/// What memcached 1.6.18 `-vv` logs for the session in [`set_and_get`].
const EXPECTED_LOG: [&str; 7] = [
    "<FD set foo 0 0 3",
    ">FD STORED",
    "<FD get foo nope",
    ">FD sending key foo",
    ">FD END",
    "<FD delete nope",
    ">FD NOT_FOUND",
];

/// A session whose `-vv` log is [`EXPECTED_LOG`].
fn set_and_get(server: &KvServer) {
    let mut client = server.connect();
    assert_eq!(
        request(&mut client, b"set foo 0 0 3\r\nbar\r\n"),
        b"STORED\r\n"
    );
    assert_eq!(
        request(&mut client, b"get foo nope\r\n"),
        b"VALUE foo 0 3\r\nbar\r\nEND\r\n"
    );
    assert_eq!(request(&mut client, b"delete nope\r\n"), b"NOT_FOUND\r\n");
}

fn vv_log(pattern: &str) {
    let server = KvServer::start_suite(pattern, &["-vv"], &["-vv"]);
    set_and_get(&server);
    let mut log = None;
    wait_until(LOG_WAIT, || {
        log = exchange(&server.stderr_text(), "delete nope");
        log.is_some()
    });
    let stderr = server.stderr_text();
    let log = log.unwrap_or_else(|| panic!("[{pattern}] no command log in:\n{stderr}"));
    assert_eq!(log, EXPECTED_LOG, "[{pattern}] stderr:\n{stderr}");
    // The poller's own trace is filtered out.
    assert!(!stderr.contains("mio"), "[{pattern}] {stderr}");
}

per_pattern!(
    vv_logs_commands_and_replies_as_memcached_does,
    super::vv_log,
    and memcached
);

#[test]
fn vv_logs_connections_opening_and_closing() {
    let server = KvServer::start("multi-reader", &["-vv"]);
    let mut client = server.connect();
    assert_eq!(request(&mut client, b"version\r\n")[..8], *b"VERSION ");
    let opened = |text: &str| {
        text.lines()
            .find_map(|l| l.strip_suffix(" new client connection")?.rsplit_once('<'))
            .map(|(_, fd)| fd.to_string())
    };
    let mut fd = None;
    wait_until(LOG_WAIT, || {
        fd = opened(&server.stderr_text());
        fd.is_some()
    });
    let fd = fd.unwrap_or_else(|| panic!("no opening line: {}", server.stderr_text()));
    drop(client);
    let closed = format!("<{fd} connection closed.");
    assert!(
        wait_until(LOG_WAIT, || server.stderr_text().contains(&closed)),
        "no {closed:?} in:\n{}",
        server.stderr_text()
    );
}

#[test]
fn v_logs_refused_connections_but_not_commands() {
    let server = KvServer::start("basic", &["-v", "-c", "1"]);
    let mut first = server.connect();
    assert_eq!(request(&mut first, b"version\r\n")[..8], *b"VERSION ");
    let mut second = server.connect();
    let mut reply = Vec::new();
    let _ = second.read_to_end(&mut reply);
    assert_eq!(reply, b"ERROR Too many open connections\r\n");
    assert!(
        wait_until(LOG_WAIT, || server
            .stderr_text()
            .contains("Too many open connections")),
        "{}",
        server.stderr_text()
    );
    assert!(!server.stderr_text().contains("version"));
}

#[test]
fn default_logs_no_commands() {
    let mut server = KvServer::start("worker-pool", &[]);
    set_and_get(&server);
    // Malformed input closes the connection: a -v detail, not shown here.
    let mut client = server.connect();
    client.write_all(&[0x80; 64]).unwrap();
    let mut rest = Vec::new();
    let _ = client.read_to_end(&mut rest);
    assert!(server.stop().success());
    assert!(
        wait_until(LOG_WAIT, || server
            .stderr_text()
            .contains("kvserve stopped")),
        "{}",
        server.stderr_text()
    );
    let stderr = server.stderr_text();
    assert!(!stderr.contains("foo"), "{stderr}");
    assert!(!stderr.contains("DEBUG"), "{stderr}");
    assert!(!stderr.contains("TRACE"), "{stderr}");
}
