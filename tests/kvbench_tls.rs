//! kvbench over TLS and with memcached's ASCII authentication, against the
//! real memcached 1.6.18 (`-Z -o ssl_chain_cert=..,ssl_key=..`, `-Y FILE`)
//! and kvserve: what kvbench reports must match what
//! the server counted (read over TLS by a rustls client of this file's
//! own), a certificate signed by another CA and wrong credentials must
//! fail at once with an error that says so, churn's connections must be
//! the server's `total_connections`, and the flags' misuse must be a usage
//! error. The certificates are made here with rcgen, in a temporary
//! directory. Every run is short and bounded; no timing assertions.

#[macro_use]
mod common;

use std::fs;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{kvbench_json, kvbench_output, parse_stats, stat_u64, KvServer, IO_TIMEOUT};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use serde_json::Value;

/// The credentials of every auth file here (a password with a colon).
const AUTH: &str = "kvbench:s3cret:pw";

/// A CA, a server certificate it signed (127.0.0.1 and localhost), the
/// server's key, another CA that signed nothing, and an auth file, in a
/// directory removed on drop.
struct Pki {
    dir: PathBuf,
}

impl Pki {
    fn new() -> Pki {
        let dir = std::env::temp_dir().join(format!(
            "kvbench-tls-test-{}-{}",
            std::process::id(),
            common::free_port()
        ));
        fs::create_dir_all(&dir).unwrap();
        let ca = |name: &str| {
            let key = KeyPair::generate().unwrap();
            let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.distinguished_name.push(DnType::CommonName, name);
            (params.self_signed(&key).unwrap(), key)
        };
        let (ca_cert, ca_key) = ca("kvbench test CA");
        let (other, _) = ca("another CA");
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
            .unwrap()
            .signed_by(&key, &ca_cert, &ca_key)
            .unwrap();
        let pki = Pki { dir };
        fs::write(pki.path("ca.pem"), ca_cert.pem()).unwrap();
        fs::write(pki.path("other-ca.pem"), other.pem()).unwrap();
        fs::write(pki.path("cert.pem"), cert.pem()).unwrap();
        fs::write(pki.path("key.pem"), key.serialize_pem()).unwrap();
        fs::write(pki.path("auth"), format!("{AUTH}\n")).unwrap();
        pki
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn arg(&self, name: &str) -> String {
        self.path(name).to_string_lossy().into_owned()
    }

    /// The server flags of TLS, the same for memcached and kvserve.
    fn tls_args(&self) -> Vec<String> {
        vec![
            "-Z".into(),
            "-o".into(),
            format!(
                "ssl_chain_cert={},ssl_key={},ssl_session_cache",
                self.arg("cert.pem"),
                self.arg("key.pem")
            ),
        ]
    }

    fn auth_args(&self) -> Vec<String> {
        vec!["-Y".into(), self.arg("auth")]
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// The server a scenario runs against.
#[derive(Clone, Copy, Debug)]
enum Subject {
    Memcached,
    Kvserve(&'static str),
}

/// How a scenario's server is started and reached.
#[derive(Clone, Copy)]
struct Setup {
    tls: bool,
    auth: bool,
}

impl Subject {
    fn start(self, pki: &Pki, setup: Setup) -> KvServer {
        let mut args = Vec::new();
        if setup.tls {
            args.extend(pki.tls_args());
        }
        if setup.auth {
            args.extend(pki.auth_args());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        match self {
            Subject::Memcached => KvServer::start_memcached(&args),
            Subject::Kvserve(pattern) => {
                let mut all = vec!["--threads", "2"];
                all.extend(args);
                KvServer::start(pattern, &all)
            }
        }
    }
}

/// `stats`, and `stats threads` when `threads`, on a new connection, over
/// TLS trusting the test CA and authenticated when `setup` says so: this
/// file's own client, so that what the server counted is read without
/// kvbench's code. `stats threads`' names (`N:field`) are apart from
/// `stats`'.
fn server_stats(
    server: &KvServer,
    pki: &Pki,
    setup: Setup,
    threads: bool,
) -> Vec<(String, String)> {
    let tcp = server.connect();
    let mut stream: Box<dyn ReadWrite> = if setup.tls {
        let mut roots = RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_file(pki.path("ca.pem")).unwrap())
            .unwrap();
        let config = ClientConfig::builder_with_provider(Arc::new(provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let name = ServerName::try_from("127.0.0.1").unwrap();
        let conn = ClientConnection::new(Arc::new(config), name).unwrap();
        Box::new(StreamOwned::new(conn, tcp))
    } else {
        Box::new(tcp)
    };
    let mut request = Vec::new();
    if setup.auth {
        let data = AUTH.replacen(':', " ", 1);
        request.extend(format!("set auth 0 0 {}\r\n{data}\r\n", data.len()).bytes());
    }
    request.extend(b"stats\r\n");
    if threads {
        request.extend(b"stats threads\r\n");
    }
    stream.write_all(&request).unwrap();
    stream.flush().unwrap();
    let ends = 1 + usize::from(threads);
    let mut reply = Vec::new();
    let mut chunk = [0u8; 16 << 10];
    let deadline = Instant::now() + IO_TIMEOUT;
    let ended = |reply: &[u8]| {
        reply.ends_with(b"END\r\n")
            && String::from_utf8_lossy(reply).matches("END\r\n").count() == ends
    };
    while !ended(&reply) && Instant::now() < deadline {
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => reply.extend_from_slice(&chunk[..n]),
            Err(e) => panic!("stats from {}: {e}", server.label()),
        }
    }
    let reply = if setup.auth {
        reply
            .strip_prefix(b"STORED\r\n".as_slice())
            .unwrap_or_else(|| panic!("not authenticated: {}", String::from_utf8_lossy(&reply)))
            .to_vec()
    } else {
        reply
    };
    String::from_utf8_lossy(&reply)
        .split_inclusive("END\r\n")
        .flat_map(|part| parse_stats(part.as_bytes()))
        .collect()
}

/// `stats` once the connections before it are counted: memcached counts
/// a connection on the worker thread it is handed to, so the startup's
/// readiness probe can be counted after a first reading. Two readings
/// (each on a connection of its own) a moment apart that differ by one
/// connection, theirs, say nothing else was counted in between.
fn settled_stats(
    server: &KvServer,
    pki: &Pki,
    setup: Setup,
    threads: bool,
) -> Vec<(String, String)> {
    let mut last = server_stats(server, pki, setup, false);
    for _ in 0..20 {
        std::thread::sleep(Duration::from_millis(20));
        let now = server_stats(server, pki, setup, threads);
        if stat_u64(&now, "total_connections") == stat_u64(&last, "total_connections") + 1 {
            return now;
        }
        last = now;
    }
    panic!("{}: connections kept being counted", server.label());
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

#[allow(deprecated)]
fn provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// kvbench's flags for `setup`: TLS verified with the test CA, or not
/// verified at all (`--tls-insecure`) unless `verify`.
fn client_flags(pki: &Pki, setup: Setup, verify: bool) -> Vec<String> {
    let mut flags = Vec::new();
    if setup.tls && verify {
        flags.extend(["--tls".to_string(), "--tls-ca".into(), pki.arg("ca.pem")]);
    } else if setup.tls {
        flags.extend(["--tls".to_string(), "--tls-insecure".into()]);
    }
    if setup.auth {
        flags.extend(["--auth".to_string(), AUTH.into()]);
    }
    flags
}

fn run_json(server: &KvServer, flags: &[String], extra: &[&str]) -> Value {
    let addr = server.addr().to_string();
    let mut args = vec!["run", "--server", &addr];
    args.extend(flags.iter().map(String::as_str));
    args.extend_from_slice(extra);
    kvbench_json(&args)
}

fn u(v: &Value, field: &str) -> u64 {
    v[field]
        .as_u64()
        .unwrap_or_else(|| panic!("{field} is not a count in {v}"))
}

/// The sum of `N:field` over the threads of `stats threads`.
fn threads_sum(stats: &[(String, String)], field: &str) -> u64 {
    stats
        .iter()
        .filter(|(name, _)| name.split_once(':').is_some_and(|(_, f)| f == field))
        .map(|(_, v)| v.parse::<u64>().unwrap())
        .sum()
}

/// kvbench's counts over TLS (and with credentials) match the server's:
/// every get and set, every connection, and on kvserve every handshake.
fn counts_match(subject: Subject, setup: Setup) {
    let pki = Pki::new();
    let mut server = subject.start(&pki, setup);
    let kvserve = matches!(subject, Subject::Kvserve(_));
    let before = settled_stats(&server, &pki, setup, kvserve);
    // Without credentials, as a quick look at a server would: --tls-insecure.
    let flags = client_flags(&pki, setup, setup.auth);
    let r = run_json(
        &server,
        &flags,
        &[
            "--duration",
            "1",
            "--connections",
            "8",
            "--client-threads",
            "2",
            "--keys",
            "200",
            "--get-ratio",
            "3:1",
        ],
    );
    let after = server_stats(&server, &pki, setup, kvserve);
    let d = |name| stat_u64(&after, name) - stat_u64(&before, name);
    let t = &r["total"];
    let label = format!("{subject:?} tls={} auth={}", setup.tls, setup.auth);
    assert!(u(t, "requests") > 0, "{label}: {r}");
    assert_eq!(u(t, "errors"), 0, "{label}: {r}");
    assert_eq!(r["tls"], Value::Bool(setup.tls), "{label}");
    let warm = u(&r["warmup"], "sets");
    assert_eq!(warm, 200, "{label}: {r}");
    assert_eq!(d("cmd_get"), u(t, "get_keys"), "{label}: {r}");
    assert_eq!(d("cmd_set"), u(t, "sets") + warm, "{label}: {r}");
    assert_eq!(d("get_hits"), u(t, "hits"), "{label}: {r}");
    assert_eq!(d("get_misses"), u(t, "misses"), "{label}: {r}");
    // Every connection kvbench opened, and the one `after` came over.
    let opened = u(&r, "tcp_connections");
    assert_eq!(d("total_connections"), opened + 1, "{label}: {r}");
    // The check's, the warmup's four and the load's eight.
    assert_eq!(opened, 1 + 4 + 8, "{label}: {r}");
    let handshakes = if setup.tls { 8 } else { 0 };
    assert_eq!(u(t, "tls_handshakes"), handshakes, "{label}: {r}");
    if setup.auth && matches!(subject, Subject::Memcached) {
        assert_eq!(d("auth_cmds"), opened + 1, "{label}: {r}");
        assert_eq!(d("auth_errors"), 0, "{label}: {r}");
    }
    if kvserve && setup.tls {
        // Every handshake since `before`'s, counted as the connections
        // are: kvbench's and `after`'s.
        let made = threads_sum(&after, "tls_handshakes") - threads_sum(&before, "tls_handshakes");
        assert_eq!(made, opened + 1, "{label}: {after:?}");
        assert!(
            threads_sum(&after, "tls_us") > threads_sum(&before, "tls_us"),
            "{label}"
        );
    }
    assert!(server.stop().success(), "{label}: {}", server.stderr_text());
}

const TLS: Setup = Setup {
    tls: true,
    auth: false,
};
const TLS_AUTH: Setup = Setup {
    tls: true,
    auth: true,
};
const AUTH_ONLY: Setup = Setup {
    tls: false,
    auth: true,
};

#[test]
fn memcached_tls_counts_match_server_stats() {
    counts_match(Subject::Memcached, TLS);
}

#[test]
fn memcached_tls_and_auth_counts_match_server_stats() {
    counts_match(Subject::Memcached, TLS_AUTH);
}

#[test]
fn memcached_auth_counts_match_server_stats() {
    counts_match(Subject::Memcached, AUTH_ONLY);
}

/// Values larger than rustls's 64 KiB buffer, pipelined: sets whose
/// requests the socket takes in parts, then gets whose replies span many
/// records and reads. Not both in one run: memcached 1.6.18 over TLS then
/// stops answering a connection now and then, with every request byte
/// acknowledged by its kernel and nothing left in kvbench's queues (the
/// timeout error says so: `socket: 0 bytes unread, 0 sent and not
/// acknowledged; no TLS record waiting`).
#[test]
fn memcached_tls_large_values_pipelined() {
    let pki = Pki::new();
    let mut server = Subject::Memcached.start(&pki, TLS);
    for ratio in ["0:1", "1:0"] {
        let before = settled_stats(&server, &pki, TLS, false);
        let r = run_json(
            &server,
            &client_flags(&pki, TLS, true),
            &[
                "--duration",
                "0.5",
                "--connections",
                "4",
                "--value-size",
                "100k-200k",
                "--get-ratio",
                ratio,
                "--pipeline",
                "4",
                "--keys",
                "40",
            ],
        );
        let after = server_stats(&server, &pki, TLS, false);
        let t = &r["total"];
        assert!(u(t, "requests") > 0, "{ratio}: {r}");
        assert_eq!(u(t, "errors"), 0, "{ratio}: {r}");
        assert_eq!(u(t, "misses"), 0, "{ratio}: {r}");
        let d = |name| stat_u64(&after, name) - stat_u64(&before, name);
        assert_eq!(d("cmd_set"), u(t, "sets") + 40, "{ratio}: {r}");
        assert_eq!(d("get_hits"), u(t, "hits"), "{ratio}: {r}");
        assert!(d("bytes_written") >= 100_000 * u(t, "hits"), "{ratio}: {r}");
    }
    assert!(server.stop().success(), "{}", server.stderr_text());
}

fn kvserve_counts_match(pattern: &'static str) {
    for setup in [TLS, AUTH_ONLY, TLS_AUTH] {
        counts_match(Subject::Kvserve(pattern), setup);
    }
}

per_pattern!(kvserve_counts_match, super::kvserve_counts_match);

/// Runs kvbench with `args`; its exit code, its stderr, and how long it took.
fn fails(args: &[&str]) -> (Option<i32>, String, Duration) {
    let start = Instant::now();
    let out = kvbench_output(args);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        start.elapsed(),
    )
}

/// The right CA verifies the server's certificate, by address or by name;
/// another CA's fails at once, and says what to do.
fn ca_right_and_wrong(subject: Subject) {
    let pki = Pki::new();
    let mut server = subject.start(&pki, TLS);
    let by_name = format!("localhost:{}", server.addr().port());
    let ca = pki.arg("ca.pem");
    let r = kvbench_json(&[
        "run",
        "--server",
        &by_name,
        "--tls",
        "--tls-ca",
        &ca,
        "--duration",
        "0.3",
        "--connections",
        "2",
        "--keys",
        "20",
    ]);
    assert!(u(&r["total"], "requests") > 0, "{r}");
    let addr = server.addr().to_string();
    let other = pki.arg("other-ca.pem");
    let (code, stderr, took) = fails(&[
        "run",
        "--server",
        &addr,
        "--tls",
        "--tls-ca",
        &other,
        "--duration",
        "0.3",
    ]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("TLS handshake")
            && stderr.contains("certificate")
            && stderr.contains("--tls-ca"),
        "{stderr}"
    );
    assert!(!stderr.contains("stack backtrace"), "{stderr}");
    assert!(took < Duration::from_secs(10), "{took:?}");
    // A plaintext client of a TLS server is told to speak TLS.
    let (code, stderr, _) = fails(&["run", "--server", &addr, "--duration", "0.3"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("--tls"), "{stderr}");
    assert!(server.stop().success(), "{}", server.stderr_text());
}

#[test]
fn memcached_tls_ca_right_and_wrong() {
    ca_right_and_wrong(Subject::Memcached);
}

#[test]
fn kvserve_tls_ca_right_and_wrong() {
    ca_right_and_wrong(Subject::Kvserve("multi-reader"));
}

/// Wrong credentials, and none, fail at once and say so.
fn auth_wrong_or_missing(subject: Subject) {
    let pki = Pki::new();
    let mut server = subject.start(&pki, AUTH_ONLY);
    let addr = server.addr().to_string();
    let (code, stderr, took) = fails(&[
        "run",
        "--server",
        &addr,
        "--auth",
        "kvbench:wrong",
        "--duration",
        "0.3",
    ]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("authentication as \"kvbench\" refused"),
        "{stderr}"
    );
    assert!(took < Duration::from_secs(10), "{took:?}");
    let (code, stderr, _) = fails(&["run", "--server", &addr, "--duration", "0.3"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("requires authentication: give --auth"),
        "{stderr}"
    );
    assert!(server.stop().success(), "{}", server.stderr_text());
}

#[test]
fn memcached_auth_wrong_or_missing() {
    auth_wrong_or_missing(Subject::Memcached);
}

#[test]
fn kvserve_auth_wrong_or_missing() {
    auth_wrong_or_missing(Subject::Kvserve("multi-reader"));
}

/// Churn: every connection kvbench reports is one the server counted,
/// and over TLS with resumption, the handshakes resume.
fn churn_connections_are_the_servers(subject: Subject, setup: Setup) {
    let pki = Pki::new();
    let mut server = subject.start(&pki, setup);
    let mut flags = client_flags(&pki, setup, true);
    for resume in [false, true] {
        if resume && !setup.tls {
            continue;
        }
        if resume {
            flags.push("--tls-resume".into());
        }
        let before = settled_stats(&server, &pki, setup, false);
        let r = run_json(
            &server,
            &flags,
            &[
                "--workload",
                "churn",
                "--duration",
                "0.5",
                "--connections",
                "4",
                "--keys",
                "100",
            ],
        );
        let after = server_stats(&server, &pki, setup, false);
        let t = &r["total"];
        let label = format!("{subject:?} tls={} resume={resume}", setup.tls);
        let requests = u(t, "requests");
        assert!(requests > 0, "{label}: {r}");
        assert_eq!(u(t, "errors"), 0, "{label}: {r}");
        let opened = u(&r, "tcp_connections");
        // The check's, the warmup's four, and one per request.
        assert_eq!(opened, 1 + 4 + requests, "{label}: {r}");
        assert_eq!(
            stat_u64(&after, "total_connections") - stat_u64(&before, "total_connections"),
            opened + 1,
            "{label}: the server counted every connection and `after`'s: {r}"
        );
        assert_eq!(
            stat_u64(&after, "cmd_get") + stat_u64(&after, "cmd_set")
                - stat_u64(&before, "cmd_get")
                - stat_u64(&before, "cmd_set"),
            requests + 100,
            "{label}: one request per connection, and the warmup's sets: {r}"
        );
        let (handshakes, resumed) = (u(t, "tls_handshakes"), u(t, "tls_resumed"));
        if setup.tls {
            assert_eq!(handshakes, requests, "{label}: {r}");
            if resume {
                // The check's full handshake left sessions to resume.
                assert!(resumed * 10 >= handshakes * 9, "{label}: {r}");
            } else {
                assert_eq!(resumed, 0, "{label}: {r}");
            }
        } else {
            assert_eq!(handshakes, 0, "{label}: {r}");
        }
    }
    assert!(server.stop().success(), "{}", server.stderr_text());
}

#[test]
fn memcached_churn_connections_are_the_servers() {
    churn_connections_are_the_servers(
        Subject::Memcached,
        Setup {
            tls: false,
            auth: false,
        },
    );
    churn_connections_are_the_servers(Subject::Memcached, TLS);
}

fn kvserve_churn_connections_are_the_servers(pattern: &'static str) {
    let plain = Setup {
        tls: false,
        auth: false,
    };
    churn_connections_are_the_servers(Subject::Kvserve(pattern), plain);
    churn_connections_are_the_servers(Subject::Kvserve(pattern), TLS);
}

per_pattern!(
    kvserve_churn_connections_are_the_servers,
    super::kvserve_churn_connections_are_the_servers
);

#[test]
fn misused_flags_are_usage_errors_naming_the_flag() {
    for (args, flag) in [
        (&["run", "--tls-ca", "ca.pem"][..], "--tls"),
        (&["run", "--tls"][..], "--tls-ca"),
        (&["run", "--tls"][..], "--tls-insecure"),
        (&["run", "--auth", "nopassword"][..], "--auth"),
        (&["run", "--auth", "us er:pw"][..], "--auth"),
        (&["run", "--auth", "user:p w"][..], "--auth"),
        (&["top", "--tls-insecure"][..], "--tls"),
        (&["compare", "--auth", ":pw"][..], "--auth"),
        (
            &["sweep", "--server", "127.0.0.1:1", "--tls"][..],
            "--tls-insecure",
        ),
    ] {
        let (code, stderr, _) = fails(args);
        assert_eq!(code, Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(flag), "{args:?}: {stderr}");
    }
}

/// compare starts memcached (and kvserve) over TLS and with an auth file
/// by itself, on a certificate it made, and reports churn and tls.
#[test]
fn compare_starts_servers_over_tls_with_auth_and_reports_churn_and_tls() {
    let svg = std::env::temp_dir().join(format!("kvbench-tls-{}.svg", std::process::id()));
    let svg_arg = svg.to_string_lossy().into_owned();
    let r = kvbench_json(&[
        "compare",
        "--patterns",
        "basic",
        "--memcached",
        "-w",
        "churn,tls",
        "--auth",
        AUTH,
        "--threads",
        "2",
        "--duration",
        "0.3",
        "--rounds",
        "1",
        "--retries",
        "0",
        "--svg",
        &svg_arg,
    ]);
    let svg_text = fs::read_to_string(&svg).unwrap_or_default();
    let _ = fs::remove_file(&svg);
    let rows = r["rows"].as_array().unwrap();
    let row = |server: &str, workload: &str| {
        rows.iter()
            .find(|x| x["server"] == server && x["workload"] == workload)
    };
    let all = [
        "churn",
        "uniform",
        "pipelined",
        "churn+tls",
        "churn+tls+resume",
        "uniform+tls",
        "pipelined+tls",
    ];
    for w in all {
        let x = row("memcached", w).unwrap_or_else(|| panic!("no memcached {w}: {r}"));
        assert!(u(x, "requests") > 0, "{w}: {x}");
        assert_eq!(u(x, "errors"), 0, "{w}: {x}");
        assert!(
            svg_text.contains(&format!("{w}: ")),
            "no {w} panel in the chart"
        );
    }
    let resume = row("memcached", "churn+tls+resume").unwrap();
    assert!(
        u(resume, "tls_resumed") * 10 >= u(resume, "tls_handshakes") * 9,
        "{resume}"
    );
    let costs = r["tls_costs"].as_array().unwrap();
    let cost = |server: &str, workload: &str, security: &str| {
        costs.iter().find(|c| {
            c["server"] == server && c["workload"] == workload && c["security"] == security
        })
    };
    for (w, s) in [
        ("churn", "tls"),
        ("churn", "tls-resume"),
        ("uniform", "tls"),
        ("pipelined", "tls"),
    ] {
        let c = cost("memcached", w, s).unwrap_or_else(|| panic!("no cost of {w} {s}: {r}"));
        // The ratios stand on undisturbed rounds, which a busy machine may
        // not give: the figures they are made of are always there.
        assert!(c["tls_ops_per_sec"].as_f64().unwrap() > 0.0, "{c}");
        assert!(c["plain_ops_per_sec"].as_f64().unwrap() > 0.0, "{c}");
    }
    let notes = r["notes"].to_string();
    for w in all {
        let x = row("basic", w).unwrap_or_else(|| panic!("no basic {w}: {r}"));
        assert_eq!(u(x, "errors"), 0, "{w}: {x}");
    }
    let roles = &row("basic", "churn+tls").unwrap()["roles"];
    assert!(roles[0]["tls_handshakes"].as_u64().unwrap() > 0, "{roles}");
    assert!(cost("basic", "churn", "tls").is_some(), "{r}");
    assert!(!notes.contains("not started"), "{notes}");
}

/// sweep starts kvserve over TLS with its own certificate, and every
/// point's stage times and work are read over TLS.
#[test]
fn kvserve_sweep_starts_servers_over_tls() {
    let r = kvbench_json(&[
        "sweep",
        "--work",
        "spin:fixed:20us",
        "--threads",
        "2",
        "--loads",
        "10",
        "--duration",
        "0.3",
        "--connections",
        "4",
        "--patterns",
        "basic",
        "--rounds",
        "1",
        "--kvserve",
        env!("CARGO_BIN_EXE_kvserve"),
        "--no-svg",
        "--tls",
    ]);
    let point = &r["points"][0];
    assert!(u(point, "requests") > 0, "{r}");
    assert!(
        point["anatomy"].is_object(),
        "stage times read over TLS: {r}"
    );
}

/// sweep and top read the server's `stats` over TLS too.
#[test]
fn sweep_and_top_speak_tls_to_a_server_they_did_not_start() {
    let pki = Pki::new();
    let mut server = Subject::Memcached.start(&pki, TLS_AUTH);
    let addr = server.addr().to_string();
    let ca = pki.arg("ca.pem");
    let secure = ["--tls", "--tls-ca", &ca, "--auth", AUTH];
    let mut sweep = vec![
        "sweep",
        "--server",
        &addr,
        "--rates",
        "500",
        "--slo-us",
        "20000",
        "--duration",
        "0.3",
        "--rounds",
        "1",
        "--connections",
        "4",
        "--no-svg",
    ];
    sweep.extend(secure);
    let r = kvbench_json(&sweep);
    let points = r["points"].as_array().unwrap();
    assert!(!points.is_empty(), "{r}");
    assert!(points[0]["requests"].as_u64().unwrap() > 0, "{r}");
    let mut top = vec![
        "top",
        "--server",
        &addr,
        "--plain",
        "--count",
        "1",
        "--interval",
        "0.2",
    ];
    top.extend(secure);
    let out = kvbench_output(&top);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(&addr), "{stdout}");
    assert!(server.stop().success(), "{}", server.stderr_text());
}
