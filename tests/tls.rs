//! TLS as memcached 1.6 has it (`-Z`, `-o ssl_*`, `notls:`, `refresh_certs`),
//! in every pattern and, where memcached behaves the same, against
//! memcached 1.6.18 `-Z` for the same replies. Certificates are made here,
//! at test time, in a directory of the test's own: no private key is
//! committed.

#[macro_use]
mod common;

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

/// A TLS client connection to a server under test.
type Tls = StreamOwned<ClientConnection, TcpStream>;

/// A CA, a server certificate it signed for 127.0.0.1 and localhost, and
/// a client certificate it signed; files in a directory of their own.
struct Pki {
    dir: PathBuf,
    ca: rcgen::Certificate,
    ca_key: KeyPair,
    client: (CertificateDer<'static>, Arc<KeyPair>),
}

impl Pki {
    fn new() -> Pki {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("kvserve-tls-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (ca, ca_key) = make_ca("kvserve test CA");
        let client_key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, "client");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let client = params.signed_by(&client_key, &ca, &ca_key).unwrap();
        let pki = Pki {
            dir,
            client: (client.der().clone(), Arc::new(client_key)),
            ca,
            ca_key,
        };
        std::fs::write(pki.path("ca.pem"), pki.ca.pem()).unwrap();
        pki.issue_server_cert();
        pki
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn path_str(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }

    /// Writes a new server certificate and key (a new key each time);
    /// returns the certificate.
    fn issue_server_cert(&self) -> CertificateDer<'static> {
        let key = KeyPair::generate().unwrap();
        let params = CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
        let cert = params.signed_by(&key, &self.ca, &self.ca_key).unwrap();
        std::fs::write(self.path("server.pem"), cert.pem()).unwrap();
        std::fs::write(self.path("server.key"), key.serialize_pem()).unwrap();
        cert.der().clone()
    }

    /// `-Z -o ssl_chain_cert=..,ssl_key=..[,MORE]`, for kvserve and memcached.
    fn server_args(&self, more: &str) -> Vec<String> {
        let mut options = format!(
            "ssl_chain_cert={},ssl_key={}",
            self.path_str("server.pem"),
            self.path_str("server.key")
        );
        if !more.is_empty() {
            options = format!("{options},{more}");
        }
        vec!["-Z".into(), "-o".into(), options]
    }

    /// A client that trusts this CA, presenting `cert` if given.
    fn client(&self, cert: Option<(CertificateDer<'static>, &KeyPair)>) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca.der().clone()).unwrap();
        let builder = ClientConfig::builder_with_provider(kvserve::tls::provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
        let config = match cert {
            None => builder.with_no_client_auth(),
            Some((cert, key)) => {
                let key = PrivateKeyDer::try_from(key.serialize_der()).unwrap();
                builder.with_client_auth_cert(vec![cert], key).unwrap()
            }
        };
        Arc::new(config)
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn make_ca(name: &str) -> (rcgen::Certificate, KeyPair) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    (params.self_signed(&key).unwrap(), key)
}

fn start(pattern: &str, pki: &Pki, more: &str, extra: &[&str]) -> KvServer {
    let mut args = pki.server_args(more);
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    KvServer::start_suite(pattern, &args, &args)
}

/// Connects and completes the handshake (a blocking stream with timeouts).
fn try_connect(addr: SocketAddr, config: Arc<ClientConfig>) -> io::Result<Tls> {
    let sock = TcpStream::connect_timeout(&addr, IO_TIMEOUT)?;
    sock.set_read_timeout(Some(Duration::from_secs(3)))?;
    sock.set_write_timeout(Some(IO_TIMEOUT))?;
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let conn = ClientConnection::new(config, name).map_err(io::Error::other)?;
    let mut tls = StreamOwned::new(conn, sock);
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock)?;
    }
    Ok(tls)
}

fn connect(addr: SocketAddr, config: Arc<ClientConfig>) -> Tls {
    try_connect(addr, config).expect("TLS handshake")
}

/// Whether a request on `tls` is answered; with TLS 1.3 a refused client
/// certificate shows only here, as the server's alert.
fn answered(tls: &mut Tls) -> bool {
    if tls.write_all(b"version\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 64];
    matches!(tls.read(&mut buf), Ok(n) if n > 0 && buf.starts_with(b"VERSION"))
}

/// A plaintext client to a `notls:` listener or the same server's stats.
fn plain(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, IO_TIMEOUT).unwrap();
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    s
}

/// Requests over TLS get the bytes they get in plaintext: single,
/// pipelined in one write, and a value larger than the session's buffer.
fn requests_over_tls(pattern: &str) {
    let pki = Pki::new();
    let mut server = start(pattern, &pki, "", &[]);
    let mut tls = connect(server.addr(), pki.client(None));
    assert_eq!(request(&mut tls, &set_req("k", 7, b"hello")), b"STORED\r\n");
    assert_eq!(
        request(&mut tls, b"get k\r\n"),
        value_reply("k", 7, b"hello")
    );
    let mut pipeline = Vec::new();
    for i in 0..200 {
        pipeline.extend(set_req(&format!("p{i}"), 0, format!("v{i}").as_bytes()));
    }
    tls.write_all(&pipeline).unwrap();
    for _ in 0..200 {
        assert_eq!(read_exactly_from(&mut tls, 8), b"STORED\r\n");
    }
    let big = Rng::new(7).bytes(300 * 1024);
    assert_eq!(request(&mut tls, &set_req("big", 0, &big)), b"STORED\r\n");
    assert_eq!(
        request(&mut tls, b"get big\r\n"),
        value_reply("big", 0, &big)
    );
    let general = stats(&mut tls, "");
    for name in ["ssl_handshake_errors", "time_since_server_cert_refresh"] {
        assert!(general.iter().any(|(n, _)| n == name), "{name} missing");
    }
    let settings = stats(&mut tls, "settings");
    let ssl: Vec<&str> = settings
        .iter()
        .filter(|(n, _)| n.starts_with("ssl_"))
        .map(|(n, _)| n.as_str())
        .collect();
    assert_eq!(
        ssl,
        [
            "ssl_enabled",
            "ssl_chain_cert",
            "ssl_key",
            "ssl_verify_mode",
            "ssl_keyformat",
            "ssl_ciphers",
            "ssl_ca_cert",
            "ssl_wbuf_size",
            "ssl_session_cache",
            "ssl_kernel_tls",
            "ssl_min_version",
        ]
    );
    let value = |name: &str| settings.iter().find(|(n, _)| n == name).unwrap().1.clone();
    assert_eq!(value("ssl_enabled"), "yes");
    assert_eq!(value("ssl_chain_cert"), pki.path_str("server.pem"));
    assert_eq!(value("ssl_min_version"), "tlsv1.2");
    server.stop();
}
per_pattern!(requests_over_tls, requests_over_tls, and memcached);

fn read_exactly_from(stream: &mut impl Read, n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    stream.read_exact(&mut buf).expect("read");
    buf
}

/// `notls:` makes a plaintext listener beside the TLS one; each refuses
/// the other's protocol and goes on serving.
fn notls_listener_beside_tls(pattern: &str) {
    let pki = Pki::new();
    let port = free_port();
    let notls = format!("notls:127.0.0.1:{port}");
    let mut server = start(pattern, &pki, "", &["-l", &notls]);
    let plain_addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut tls = connect(server.addr(), pki.client(None));
    assert_eq!(request(&mut tls, &set_req("k", 0, b"v")), b"STORED\r\n");
    let mut clear = plain(plain_addr);
    assert_eq!(request(&mut clear, b"get k\r\n"), value_reply("k", 0, b"v"));

    // Plaintext to the TLS listener: closed, no reply in plaintext.
    let mut wrong = plain(server.addr());
    wrong.write_all(b"get k\r\n").unwrap();
    let got = read_until_closed(&mut wrong);
    assert!(!got.windows(5).any(|w| w == b"VALUE"), "{}", show(&got));
    // TLS to the plaintext listener: no handshake.
    let mut config = (*pki.client(None)).clone();
    config.enable_sni = false;
    assert!(try_connect(plain_addr, Arc::new(config)).is_err());
    // Everyone else is still served.
    assert_eq!(request(&mut tls, b"get k\r\n"), value_reply("k", 0, b"v"));
    assert_eq!(request(&mut clear, b"get k\r\n"), value_reply("k", 0, b"v"));
    if pattern != MEMCACHED {
        let errors = stat_u64(&stats(&mut clear, ""), "ssl_handshake_errors");
        assert!(errors >= 1, "the plaintext client is a handshake error");
    }
    server.stop();
}
per_pattern!(notls_listener_beside_tls, notls_listener_beside_tls, and memcached);

/// Reads until the peer closes (or resets), at most a few seconds.
fn read_until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let deadline = Instant::now() + IO_TIMEOUT;
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while Instant::now() < deadline {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    panic!("not closed within {IO_TIMEOUT:?}: {}", show(&got));
}

/// pymemcache's `tls_context` and `openssl s_client`: real clients.
fn real_tls_clients(pattern: &str) {
    let pki = Pki::new();
    let mut server = start(pattern, &pki, "", &[]);
    let script = format!(
        "import ssl\nfrom pymemcache.client.base import Client\n\
         ctx = ssl.create_default_context(cafile={ca:?})\n\
         c = Client(('127.0.0.1', {port}), tls_context=ctx, timeout=5)\n\
         c.set('py', b'from python')\nprint(c.get('py').decode())\n",
        ca = pki.path_str("ca.pem"),
        port = server.addr().port()
    );
    let out = Command::new("python3")
        .args(["-c", &script])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout.trim(),
        "from python",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let mut openssl = Command::new("openssl")
        .args(["s_client", "-quiet", "-verify_return_error", "-CAfile"])
        .arg(pki.path("ca.pem"))
        .args(["-connect", &server.addr().to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = openssl.stdin.take().unwrap();
    stdin.write_all(b"get py\r\nquit\r\n").unwrap();
    let out = wait_output(openssl, stdin);
    assert!(
        out.starts_with("VALUE py 0 11\r\nfrom python\r\nEND\r\n"),
        "{out:?}"
    );
    server.stop();
}
per_pattern!(real_tls_clients, real_tls_clients, and memcached);

/// The output of a child given `stdin` (closed after a moment, so that a
/// client quits after its requests were answered), at most a few seconds.
fn wait_output(child: std::process::Child, stdin: std::process::ChildStdin) -> String {
    wait_outputs(child, stdin).0
}

/// [`wait_output`]'s stdout and stderr.
fn wait_outputs(
    mut child: std::process::Child,
    stdin: std::process::ChildStdin,
) -> (String, String) {
    thread::sleep(Duration::from_millis(500));
    drop(stdin);
    if exit_within(&mut child, IO_TIMEOUT).is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    let (mut out, mut err) = (String::new(), String::new());
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    (out, err)
}

/// `ssl_verify_mode=2` with `ssl_ca_cert`: a client certificate from the
/// CA is served; none, or one from another CA, is refused.
fn client_certificates_required(pattern: &str) {
    let pki = Pki::new();
    let more = format!("ssl_verify_mode=2,ssl_ca_cert={}", pki.path_str("ca.pem"));
    let mut server = start(pattern, &pki, &more, &[]);
    let (cert, key) = (pki.client.0.clone(), Arc::clone(&pki.client.1));
    let mut good = connect(server.addr(), pki.client(Some((cert, &key))));
    assert!(answered(&mut good));
    let refused = |tls: io::Result<Tls>| match tls {
        Err(_) => true,
        Ok(mut tls) => !answered(&mut tls),
    };
    assert!(refused(try_connect(server.addr(), pki.client(None))));
    let (other_ca, other_key) = make_ca("another CA");
    let stranger_key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let stranger = params
        .signed_by(&stranger_key, &other_ca, &other_key)
        .unwrap();
    let config = pki.client(Some((stranger.der().clone(), &stranger_key)));
    assert!(refused(try_connect(server.addr(), config)));
    assert!(answered(&mut good), "the good client is still served");
    if pattern != MEMCACHED {
        let errors = stat_u64(&stats(&mut good, ""), "ssl_handshake_errors");
        assert_eq!(errors, 2);
    }
    server.stop();
}
per_pattern!(client_certificates_required, client_certificates_required, and memcached);

/// `refresh_certs`: new connections get the new certificate, open ones go
/// on; a file that does not load leaves the old one, and says why.
/// (memcached 1.6.18 answers `OK` but, in this test, goes on presenting
/// the first certificate to new connections: kvserve only.)
fn refresh_certs(pattern: &str) {
    let pki = Pki::new();
    let mut server = start(pattern, &pki, "", &[]);
    let config = pki.client(None);
    let mut old = connect(server.addr(), Arc::clone(&config));
    let first = peer_cert(&old);
    let second = pki.issue_server_cert();
    assert_ne!(first, second);
    assert_eq!(request(&mut old, b"refresh_certs\r\n"), b"OK\r\n");
    let fresh = connect(server.addr(), Arc::clone(&config));
    assert_eq!(peer_cert(&fresh), second);
    assert_eq!(request(&mut old, &set_req("k", 0, b"v")), b"STORED\r\n");

    std::fs::remove_file(pki.path("server.key")).unwrap();
    let reply = request(&mut old, b"refresh_certs\r\n");
    let expected = format!("Error loading the key: {} : ", pki.path_str("server.key"));
    assert!(reply.starts_with(expected.as_bytes()), "{}", show(&reply));
    let after = connect(server.addr(), config);
    assert_eq!(peer_cert(&after), second, "the last good certificate stays");
    server.stop();
}
per_pattern!(refresh_certs, refresh_certs);

fn peer_cert(tls: &Tls) -> CertificateDer<'static> {
    tls.conn.peer_certificates().unwrap()[0]
        .clone()
        .into_owned()
}

/// With `ssl_session_cache` a client resumes its session: no public-key
/// work the second time. Without it, every handshake is full.
fn sessions_resume_with_the_cache(pattern: &str) {
    let pki = Pki::new();
    for (cache, more) in [(true, "ssl_session_cache"), (false, "")] {
        let mut server = start(pattern, &pki, more, &[]);
        let config = pki.client(None);
        for _ in 0..3 {
            let mut tls = connect(server.addr(), Arc::clone(&config));
            assert!(answered(&mut tls));
        }
        let mut tls = connect(server.addr(), config);
        let threads = stats(&mut tls, "threads");
        let sum = |suffix: &str| -> u64 {
            let of = threads.iter().filter(|(n, _)| n.ends_with(suffix));
            of.map(|(_, v)| v.parse::<u64>().unwrap()).sum()
        };
        assert_eq!(sum(":tls_handshakes"), 4, "{threads:?}");
        let sessions = stat_u64(&stats(&mut tls, ""), "ssl_new_sessions");
        if cache {
            assert_eq!(sum(":tls_resumed"), 3, "{threads:?}");
            assert!(sessions >= 3, "{sessions}");
        } else {
            assert_eq!((sum(":tls_resumed"), sessions), (0, 0));
        }
        server.stop();
    }
}
per_pattern!(
    sessions_resume_with_the_cache,
    sessions_resume_with_the_cache
);

/// Where the crypto runs: the handshake on the thread that owns the
/// connection (never an acceptor); worker-pool's dispatch thread decrypts
/// and its workers encrypt the replies they write.
fn tls_time_is_counted_where_it_is_spent(pattern: &str) {
    let pki = Pki::new();
    let mut server = start(pattern, &pki, "", &["-t", "2"]);
    let mut tls = connect(server.addr(), pki.client(None));
    for i in 0..50 {
        let key = format!("k{i}");
        assert_eq!(request(&mut tls, &set_req(&key, 0, b"v")), b"STORED\r\n");
    }
    let threads = stats(&mut tls, "threads");
    let by_role = |role: &str, stat: &str| -> u64 {
        let ids: Vec<String> = threads
            .iter()
            .filter(|(n, v)| n.ends_with(":role") && v == role)
            .map(|(n, _)| n.trim_end_matches(":role").to_string())
            .collect();
        threads
            .iter()
            .filter(|(n, _)| ids.iter().any(|id| *n == format!("{id}:{stat}")))
            .map(|(_, v)| v.parse::<u64>().unwrap())
            .sum()
    };
    let (owner, executor) = match pattern {
        "basic" | "reuseport" => ("loop", "loop"),
        "worker-pool" => ("dispatch", "worker"),
        _ => ("reader", "reader"),
    };
    assert_eq!(by_role(owner, "tls_handshakes"), 1, "{threads:?}");
    assert_eq!(by_role("acceptor", "tls_handshakes"), 0);
    assert_eq!(by_role("acceptor", "tls_us"), 0);
    assert!(by_role(owner, "tls_us") > 0);
    assert!(by_role(executor, "tls_us") > 0, "replies are encrypted");
    server.stop();
}
per_pattern!(
    tls_time_is_counted_where_it_is_spent,
    tls_time_is_counted_where_it_is_spent
);

/// Hostile input: hundreds of ClientHellos dribbled a byte a second,
/// corrupt and truncated records. The server closes what it must, keeps
/// serving everyone else, and its memory stays bounded.
fn hostile_tls_input(pattern: &str) {
    let pki = Pki::new();
    let mut server = start(pattern, &pki, "", &[]);
    let config = pki.client(None);
    let mut good = connect(server.addr(), Arc::clone(&config));
    assert!(answered(&mut good));
    let rss_before = rss_kib(server.pid()).unwrap();

    let hello = client_hello(&config);
    let mut dribblers: Vec<TcpStream> = (0..300)
        .map(|_| TcpStream::connect(server.addr()).unwrap())
        .collect();
    for second in 0..3 {
        for d in &mut dribblers {
            let _ = d.write_all(&hello[second..second + 1]);
        }
        assert!(answered(&mut good), "served while 300 hellos dribble");
        thread::sleep(Duration::from_millis(1000));
    }
    // A corrupt record after a good handshake; a truncated one.
    let mut corrupt = connect(server.addr(), Arc::clone(&config));
    corrupt
        .sock
        .write_all(&[0x17, 0x03, 0x03, 0x00, 0x20])
        .unwrap();
    corrupt.sock.write_all(&[0xAB; 32]).unwrap();
    // Closed (after the session tickets and an alert, in memcached's case).
    read_until_closed(&mut corrupt.sock);
    let mut truncated = connect(server.addr(), Arc::clone(&config));
    truncated
        .sock
        .write_all(&[0x17, 0x03, 0x03, 0x01, 0x00, 1, 2, 3])
        .unwrap();
    truncated.sock.shutdown(std::net::Shutdown::Write).unwrap();
    assert!(answered(&mut good), "served after the bad records");
    if pattern != MEMCACHED {
        let general = stats(&mut good, "");
        assert!(stat_u64(&general, "ssl_proto_errors") >= 1, "{general:?}");
        let rss_after = rss_kib(server.pid()).unwrap();
        assert!(
            rss_after < rss_before + 32 * 1024,
            "300 half-open handshakes took {} KiB",
            rss_after - rss_before
        );
    }
    drop(dribblers);
    server.stop();
}
per_pattern!(hostile_tls_input, hostile_tls_input, and memcached);

/// The bytes of the ClientHello a client with `config` sends first.
fn client_hello(config: &Arc<ClientConfig>) -> Vec<u8> {
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let mut conn = ClientConnection::new(Arc::clone(config), name).unwrap();
    let mut hello = Vec::new();
    conn.write_tls(&mut hello).unwrap();
    hello
}

/// A TLS 1.2 client asking to renegotiate (`openssl s_client`'s `R`):
/// rustls never renegotiates; the server goes on serving everyone.
fn renegotiation_is_refused(pattern: &str) {
    let pki = Pki::new();
    let mut server = start(pattern, &pki, "", &[]);
    let mut openssl = Command::new("openssl")
        .args(["s_client", "-tls1_2", "-CAfile"])
        .arg(pki.path("ca.pem"))
        .args(["-connect", &server.addr().to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = openssl.stdin.take().unwrap();
    thread::sleep(Duration::from_millis(300));
    stdin.write_all(b"R\n").unwrap();
    thread::sleep(Duration::from_millis(300));
    let _ = stdin.write_all(b"version\r\n");
    let (out, err) = wait_outputs(openssl, stdin);
    assert!(err.contains("RENEGOTIATING"), "{err}");
    assert!(err.contains("no renegotiation"), "{err}");
    assert!(!out.contains("VERSION"), "{out}");
    let mut good = connect(server.addr(), pki.client(None));
    assert!(answered(&mut good), "served after the renegotiation");
    assert_eq!(stat_u64(&stats(&mut good, ""), "ssl_proto_errors"), 1);
    server.stop();
}
per_pattern!(renegotiation_is_refused, renegotiation_is_refused);

/// A password over TLS (`-Z` with `-Y`): the handshake is encrypted, and
/// nothing is served before it.
fn password_over_tls(pattern: &str) {
    let pki = Pki::new();
    let users = TempDir::new("tls-auth");
    let file = users.path().join("users");
    std::fs::write(&file, "alice:s3cret\n").unwrap();
    let file = file.display().to_string();
    let mut server = start(pattern, &pki, "", &["-Y", &file]);
    let mut tls = connect(server.addr(), pki.client(None));
    assert_eq!(
        request(&mut tls, b"get k\r\n"),
        b"CLIENT_ERROR unauthenticated\r\n"
    );
    let wrong = set_req("auth", 0, b"alice wrong");
    assert_eq!(
        request(&mut tls, &wrong),
        b"CLIENT_ERROR authentication failure\r\n"
    );
    assert_eq!(
        request(&mut tls, &set_req("auth", 0, b"alice s3cret")),
        b"STORED\r\n"
    );
    assert_eq!(request(&mut tls, &set_req("k", 0, b"v")), b"STORED\r\n");
    assert_eq!(request(&mut tls, b"get k\r\n"), value_reply("k", 0, b"v"));
    server.stop();
}
per_pattern!(password_over_tls, password_over_tls, and memcached);

/// Starting with TLS settings that cannot work is refused with the reason.
#[test]
fn tls_refusals_at_start() {
    let pki = Pki::new();
    let cert = pki.path_str("server.pem");
    let refusal = |args: &[&str]| {
        let out = Command::new(kvserve_bin())
            .args(["--port", "0"])
            .args(args)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?} started");
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    assert!(refusal(&["-Z"]).contains("ssl_chain_cert"));
    assert!(refusal(&["-o", "ssl_chain_cert=x,foo=1"]).contains("Illegal suboption \"foo=1\""));
    let missing = refusal(&["-Z", "-o", "ssl_chain_cert=/nonexistent.pem"]);
    assert!(
        missing.contains("Error loading the certificate chain: /nonexistent.pem"),
        "{missing}"
    );
    let options = format!("ssl_chain_cert={cert},ssl_key={cert}");
    assert!(refusal(&["-Z", "-o", &options]).contains("Error loading the key"));
    let options = format!("ssl_chain_cert={cert},ssl_verify_mode=2");
    assert!(refusal(&["-Z", "-o", &options]).contains("ssl_ca_cert"));
    assert!(refusal(&["-l", "notls:[::1"]).contains("-l notls:[::1"));
}
