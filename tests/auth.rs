//! memcached's ASCII authentication (`-Y FILE`), in every pattern and
//! against memcached 1.6.18 with the same expected bytes: the `set`-shaped
//! handshake, wrong credentials, every other command refused before it
//! (storing and reading nothing), the state per connection, SIGHUP
//! reloads, the statistics, and pymemcache.
//!
//! memcached answers all the requests it finds in one read before
//! authenticating with a single reply: the last one (its reply object is
//! reused). The scenarios it shares send such requests one at a time and
//! wait for each reply; kvserve answers every request, which
//! `pipelined_before_authenticating` checks on kvserve alone.
//!
//! Each server reads its own file in a temporary directory; servers listen
//! on free ports of 127.0.0.1, every wait is bounded, and the only
//! processes signalled are the ones these tests started, by PID.

#[macro_use]
mod common;

use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::Duration;

use common::*;

/// The users of most scenarios.
const USERS: &str = "alice:secret\nbob:hunter2\n";
const UNAUTHENTICATED: &[u8] = b"CLIENT_ERROR unauthenticated\r\n";
const FAILURE: &[u8] = b"CLIENT_ERROR authentication failure\r\n";
const BAD_FORMAT: &[u8] = b"CLIENT_ERROR bad authentication token format\r\n";
/// How long a reload may take: memcached reloads on its next clock tick,
/// once a second.
const RELOAD_WAIT: Duration = Duration::from_secs(5);

/// An auth file in a directory of its own, removed with it.
struct Users {
    _dir: TempDir,
    path: PathBuf,
}

impl Users {
    fn new(text: &str) -> Users {
        let dir = TempDir::new("auth");
        let path = dir.path().join("users");
        let users = Users { _dir: dir, path };
        users.write(text);
        users
    }

    /// Replaces the file's text, as an administrator edits it before a
    /// SIGHUP.
    fn write(&self, text: &str) {
        std::fs::write(&self.path, text)
            .unwrap_or_else(|e| panic!("write {}: {e}", self.path.display()));
    }

    fn path(&self) -> &str {
        self.path.to_str().expect("a UTF-8 temporary path")
    }
}

/// kvserve in `pattern`, or memcached, reading `users` (`-Y`).
fn start(pattern: &str, users: &Users) -> KvServer {
    let args = ["-Y", users.path()];
    KvServer::start_suite(pattern, &args, &args)
}

/// The handshake: a `set` whose value is `<user> <password>`.
fn handshake(user: &str, password: &str) -> Vec<u8> {
    let credentials = format!("{user} {password}");
    format!("set auth 0 0 {}\r\n{credentials}\r\n", credentials.len()).into_bytes()
}

/// The reply to `user`'s handshake on a new connection, and the connection.
fn try_login(server: &KvServer, user: &str, password: &str) -> (Vec<u8>, TcpStream) {
    let mut client = server.connect();
    let reply = request(&mut client, &handshake(user, password));
    (reply, client)
}

/// A new connection authenticated as `user`.
fn login(server: &KvServer, user: &str, password: &str) -> TcpStream {
    let (reply, client) = try_login(server, user, password);
    assert_eq!(
        show(&reply),
        "STORED\\r\\n",
        "[{}] {user}'s handshake",
        server.name()
    );
    client
}

/// Sends `req` and checks the whole reply.
fn expect(client: &mut TcpStream, req: &[u8], reply: &[u8], what: &str) {
    assert_eq!(
        show(&request(client, req)),
        show(reply),
        "{what}: {}",
        show(req)
    );
}

fn sighup(server: &KvServer) {
    let pid = libc::pid_t::try_from(server.pid()).expect("pid fits pid_t");
    // SAFETY: plain kill(2) on the PID of a child this test started and
    // has not reaped.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGHUP) }, 0, "SIGHUP {pid}");
}

// ---------------------------------------------------------------------
// The handshake.

fn handshake_then_serve(pattern: &str) {
    let users = Users::new(USERS);
    let server = start(pattern, &users);
    let mut client = login(&server, "alice", "secret");
    let what = format!("[{pattern}] after authenticating");
    expect(&mut client, &set_req("k", 5, b"v"), b"STORED\r\n", &what);
    expect(&mut client, b"get k\r\n", &value_reply("k", 5, b"v"), &what);
    // The handshake's key was not stored: it was a handshake.
    expect(&mut client, b"get auth\r\n", b"END\r\n", &what);
    // A second handshake is a plain set now.
    expect(&mut client, &handshake("bob", "x"), b"STORED\r\n", &what);
    expect(
        &mut client,
        b"get auth\r\n",
        &value_reply("auth", 0, b"bob x"),
        &what,
    );
    // Key, flags, exptime and noreply are ignored; so is what follows the
    // password; a bare \n ends the line.
    for variant in [
        &b"set anything 7 100 12 noreply\r\nalice secret\r\n"[..],
        b"set k x y 12\r\nalice secret\r\n",
        b"set k 0 0 14\nbob hunter2 me\r\n",
        b"set k 0 0 14\r\n  bob  hunter2\r\n",
    ] {
        let mut client = server.connect();
        expect(&mut client, variant, b"STORED\r\n", &format!("[{pattern}]"));
        expect(&mut client, b"get k\r\n", &value_reply("k", 5, b"v"), &what);
    }
}

per_pattern!(
    handshake_then_set_and_get,
    super::handshake_then_serve,
    and memcached
);

fn wrong_credentials(pattern: &str) {
    let users = Users::new(USERS);
    let server = start(pattern, &users);
    let mut client = server.connect();
    let what = format!("[{pattern}]");
    // A wrong password and a wrong user get the same reply.
    for (user, password) in [
        ("alice", "wrong"),
        ("alice", "secre"),
        ("alice", "secrets"),
        ("alice", "hunter2"),
        ("carol", "secret"),
        ("secret", "alice"),
        ("ALICE", "secret"),
    ] {
        expect(&mut client, &handshake(user, password), FAILURE, &what);
        expect(&mut client, b"get k\r\n", UNAUTHENTICATED, &what);
    }
    // A value that is not two words, or a block not ended by \r\n.
    expect(&mut client, &set_req("k", 0, b"alice"), BAD_FORMAT, &what);
    expect(&mut client, &set_req("k", 0, b""), BAD_FORMAT, &what);
    expect(
        &mut client,
        b"set k 0 0 12\r\nalice secretXX",
        b"CLIENT_ERROR bad command line termination\r\n",
        &what,
    );
    // The connection stays open, and can still authenticate.
    expect(
        &mut client,
        &handshake("bob", "hunter2"),
        b"STORED\r\n",
        &what,
    );
    expect(&mut client, b"get k\r\n", b"END\r\n", &what);
}

per_pattern!(
    wrong_credentials_are_refused,
    super::wrong_credentials,
    and memcached
);

// ---------------------------------------------------------------------
// Everything else before authenticating.

/// Requests sent one at a time before authenticating, and their replies.
/// A `set` is the handshake whatever its key, so its value is read as
/// credentials; other commands' data blocks are lines of their own.
const BEFORE_AUTH: &[(&[u8], &[u8])] = &[
    (b"get seed\r\n", UNAUTHENTICATED),
    (b"gets seed\r\n", UNAUTHENTICATED),
    (b"gat 0 seed\r\n", UNAUTHENTICATED),
    (b"set seed 0 0 3\r\nbad\r\n", BAD_FORMAT),
    (b"set seed 0 0 7\r\nbad one\r\n", FAILURE),
    (b"SET seed 0 0 3\r\n", UNAUTHENTICATED),
    (b"bad\r\n", UNAUTHENTICATED),
    (b"add new 0 0 3\r\n", UNAUTHENTICATED),
    (b"bad\r\n", UNAUTHENTICATED),
    (b"append seed 0 0 3\r\n", UNAUTHENTICATED),
    (b"bad\r\n", UNAUTHENTICATED),
    (b"cas seed 0 0 3 1\r\n", UNAUTHENTICATED),
    (b"bad\r\n", UNAUTHENTICATED),
    (b"delete seed\r\n", UNAUTHENTICATED),
    (b"incr counter 1\r\n", UNAUTHENTICATED),
    (b"decr counter 1 noreply\r\n", UNAUTHENTICATED),
    (b"touch seed 100\r\n", UNAUTHENTICATED),
    (b"flush_all\r\n", UNAUTHENTICATED),
    (b"flush_all noreply\r\n", UNAUTHENTICATED),
    (b"stats\r\n", UNAUTHENTICATED),
    (b"stats settings\r\n", UNAUTHENTICATED),
    (b"version\r\n", UNAUTHENTICATED),
    (b"verbosity 1\r\n", UNAUTHENTICATED),
    (b"cache_memlimit 100\r\n", UNAUTHENTICATED),
    (b"mg seed v\r\n", UNAUTHENTICATED),
    (b"ms new 3\r\n", UNAUTHENTICATED),
    (b"bad\r\n", UNAUTHENTICATED),
    (b"md seed\r\n", UNAUTHENTICATED),
    (b"ma counter\r\n", UNAUTHENTICATED),
    (b"me seed\r\n", UNAUTHENTICATED),
    (b"mn\r\n", UNAUTHENTICATED),
    (b"quit\r\n", UNAUTHENTICATED),
    (b"nonsense\r\n", UNAUTHENTICATED),
    (b"\r\n", UNAUTHENTICATED),
];

/// The command counters of `stats`, which refused requests must not move.
const COUNTERS: [&str; 19] = [
    "cmd_get",
    "cmd_set",
    "cmd_flush",
    "cmd_touch",
    "cmd_meta",
    "get_hits",
    "get_misses",
    "delete_misses",
    "delete_hits",
    "incr_misses",
    "incr_hits",
    "decr_misses",
    "decr_hits",
    "cas_misses",
    "cas_hits",
    "cas_badval",
    "touch_hits",
    "touch_misses",
    "curr_items",
];

fn counters(client: &mut TcpStream) -> Vec<u64> {
    let stats = stats(client, "");
    COUNTERS.iter().map(|name| stat_u64(&stats, name)).collect()
}

fn refused_before_auth(pattern: &str) {
    let users = Users::new(USERS);
    let server = start(pattern, &users);
    let mut admin = login(&server, "alice", "secret");
    let what = format!("[{pattern}] authenticated");
    expect(
        &mut admin,
        &set_req("seed", 3, b"old"),
        b"STORED\r\n",
        &what,
    );
    expect(
        &mut admin,
        &set_req("counter", 0, b"10"),
        b"STORED\r\n",
        &what,
    );
    let before = counters(&mut admin);
    let mut client = server.connect();
    for &(req, reply) in BEFORE_AUTH {
        expect(&mut client, req, reply, &format!("[{pattern}] before auth"));
    }
    // Nothing was stored, deleted, flushed or counted.
    expect(
        &mut admin,
        b"get seed new counter\r\n",
        b"VALUE seed 3 3\r\nold\r\nVALUE counter 0 2\r\n10\r\nEND\r\n",
        &what,
    );
    let after = counters(&mut admin);
    let get = COUNTERS.iter().position(|&c| c == "cmd_get").unwrap();
    let hits = COUNTERS.iter().position(|&c| c == "get_hits").unwrap();
    let misses = COUNTERS.iter().position(|&c| c == "get_misses").unwrap();
    let mut expected = before.clone();
    // The one get above: three keys, two found.
    expected[get] += 3;
    expected[hits] += 2;
    expected[misses] += 1;
    assert_eq!(
        after, expected,
        "[{pattern}] counters {COUNTERS:?} moved before authentication"
    );
    // The refused connection is still open, and can authenticate.
    expect(
        &mut client,
        &handshake("bob", "hunter2"),
        b"STORED\r\n",
        &format!("[{pattern}]"),
    );
    expect(
        &mut client,
        b"get seed\r\n",
        &value_reply("seed", 3, b"old"),
        &format!("[{pattern}]"),
    );
}

per_pattern!(
    every_command_before_authenticating_is_refused,
    super::refused_before_auth,
    and memcached
);

/// kvserve answers every request before authenticating, however they
/// arrive; memcached answers a read's worth with one reply (see the top).
fn pipelined_before_authenticating(pattern: &str) {
    let users = Users::new(USERS);
    let server = KvServer::start(pattern, &["-Y", users.path()]);
    let mut pipeline = b"get k\r\nms k 3\r\nbad\r\n".to_vec();
    pipeline.extend(handshake("alice", "wrong"));
    pipeline.extend(b"quit\r\n");
    pipeline.extend(handshake("alice", "secret"));
    pipeline.extend(set_req("k", 1, b"v"));
    pipeline.extend(b"get k\r\n");
    let mut expected = [UNAUTHENTICATED; 3].concat();
    expected.extend(FAILURE);
    expected.extend(UNAUTHENTICATED);
    expected.extend(b"STORED\r\nSTORED\r\n");
    expected.extend(value_reply("k", 1, b"v"));
    for byte_by_byte in [false, true] {
        let mut client = server.connect();
        let writer = write_in_background(&client, pipeline.clone(), byte_by_byte);
        read_expected(
            &mut client,
            &expected,
            &format!("[{pattern}] pipelined, one byte per write: {byte_by_byte}"),
        );
        writer.join().unwrap().expect("write the pipeline");
    }
}

per_pattern!(
    pipelined_before_authenticating,
    super::pipelined_before_authenticating
);

/// A line with no newline over 2048 bytes closes the connection, a long
/// multi-get too; so does a handshake whose value is over 16 KiB, the
/// most memcached's read buffer holds, answered when it is just under.
fn oversized_input(pattern: &str) {
    let users = Users::new(USERS);
    let server = start(pattern, &users);
    let closes = |input: Vec<u8>, what: &str| {
        let mut client = server.connect();
        let writer = write_in_background(&client, input, false);
        let (reply, end) = read_until_eof(&mut client, IO_TIMEOUT, 1 << 16);
        // The client may still be writing when the server closes.
        let _ = writer.join();
        assert!(
            matches!(end, ReadEnd::Eof | ReadEnd::Error(_)),
            "[{pattern}] {what}: the connection stayed open ({end:?})"
        );
        assert_eq!(show(&reply), "", "[{pattern}] {what}: no reply");
    };
    closes(vec![b'x'; 2049], "2049 bytes without a newline");
    closes([&b"get "[..], &[b'k'; 3000]].concat(), "a long multi-get");
    let credentials = |len: usize| {
        let mut value = b"alice secret".to_vec();
        value.resize(len, b' ');
        set_req("k", 0, &value)
    };
    closes(credentials(16383), "a 16383-byte value");
    closes(credentials(100_000), "a 100000-byte value");
    let mut client = server.connect();
    let writer = write_in_background(&client, credentials(16382), false);
    expect(
        &mut client,
        b"",
        b"STORED\r\n",
        &format!("[{pattern}] 16382 bytes"),
    );
    writer.join().unwrap().expect("write the handshake");
    let mut client = server.connect();
    client.write_all(&[b'x'; 2048]).unwrap();
    expect(
        &mut client,
        b"\r\n",
        UNAUTHENTICATED,
        &format!("[{pattern}] a 2048-byte line"),
    );
}

per_pattern!(oversized_input_closes, super::oversized_input, and memcached);

// ---------------------------------------------------------------------
// Per connection, reloads, statistics.

fn per_connection(pattern: &str) {
    let users = Users::new(USERS);
    let server = start(pattern, &users);
    let mut alice = login(&server, "alice", "secret");
    let mut stranger = server.connect();
    let what = format!("[{pattern}]");
    expect(&mut stranger, b"get k\r\n", UNAUTHENTICATED, &what);
    expect(&mut alice, &set_req("k", 0, b"a"), b"STORED\r\n", &what);
    expect(&mut stranger, b"get k\r\n", UNAUTHENTICATED, &what);
    let mut bob = login(&server, "bob", "hunter2");
    expect(&mut bob, b"get k\r\n", &value_reply("k", 0, b"a"), &what);
    expect(&mut stranger, &handshake("bob", "nope"), FAILURE, &what);
    // A failed handshake elsewhere does not undo another's.
    expect(&mut alice, b"get k\r\n", &value_reply("k", 0, b"a"), &what);
    // Authenticated connections carry their state across threads and
    // batches: many requests from both, interleaved.
    for i in 0..200 {
        let value = format!("{i}");
        let (writer, reader) = if i % 2 == 0 {
            (&mut alice, &mut bob)
        } else {
            (&mut bob, &mut alice)
        };
        expect(
            writer,
            &set_req("k", 0, value.as_bytes()),
            b"STORED\r\n",
            &what,
        );
        expect(
            reader,
            b"get k\r\n",
            &value_reply("k", 0, value.as_bytes()),
            &what,
        );
    }
    expect(&mut stranger, b"get k\r\n", UNAUTHENTICATED, &what);
}

per_pattern!(
    authentication_is_per_connection,
    super::per_connection,
    and memcached
);

fn reload(pattern: &str) {
    let users = Users::new("alice:secret\n");
    let server = start(pattern, &users);
    let mut alice = login(&server, "alice", "secret");
    let what = format!("[{pattern}]");
    // Add bob, remove alice.
    users.write("bob:hunter2\n");
    sighup(&server);
    assert!(
        wait_until(RELOAD_WAIT, || try_login(&server, "bob", "hunter2").0
            == b"STORED\r\n"),
        "{what} bob cannot log in after the reload"
    );
    assert_eq!(
        show(&try_login(&server, "alice", "secret").0),
        show(FAILURE),
        "{what} alice logs in after her removal"
    );
    // Her connection stays authenticated.
    expect(&mut alice, &set_req("k", 0, b"a"), b"STORED\r\n", &what);
    // A file that does not parse keeps the users read before.
    users.write("bob:hunter2\ncarol\n");
    sighup(&server);
    if pattern == MEMCACHED {
        // It says nothing: give its clock two ticks to try.
        thread::sleep(Duration::from_millis(2500));
    } else {
        let logged = "line 2 has no ':'; the users read before stay";
        assert!(
            wait_until(RELOAD_WAIT, || server.stderr_text().contains(logged)),
            "{what} no {logged:?} in:\n{}",
            server.stderr_text()
        );
    }
    login(&server, "bob", "hunter2");
    // So does a file that is gone.
    std::fs::remove_file(&users.path).unwrap();
    sighup(&server);
    if pattern == MEMCACHED {
        thread::sleep(Duration::from_millis(2500));
    } else {
        assert!(
            wait_until(RELOAD_WAIT, || server
                .stderr_text()
                .contains("Could not open authfile")),
            "{what} no error in:\n{}",
            server.stderr_text()
        );
    }
    login(&server, "bob", "hunter2");
}

per_pattern!(sighup_reloads_the_users, super::reload, and memcached);

fn stats_count_handshakes(pattern: &str) {
    let users = Users::new(USERS);
    let server = start(pattern, &users);
    let mut client = server.connect();
    let what = format!("[{pattern}]");
    expect(&mut client, &handshake("alice", "x"), FAILURE, &what);
    expect(&mut client, &handshake("eve", "secret"), FAILURE, &what);
    // Not counted: no credentials were checked.
    expect(&mut client, &set_req("k", 0, b"alice"), BAD_FORMAT, &what);
    expect(&mut client, b"stats\r\n", UNAUTHENTICATED, &what);
    expect(
        &mut client,
        &handshake("alice", "secret"),
        b"STORED\r\n",
        &what,
    );
    let general = stats(&mut client, "");
    assert_eq!(stat_u64(&general, "auth_cmds"), 3, "{what}");
    assert_eq!(stat_u64(&general, "auth_errors"), 2, "{what}");
    // Where memcached prints them: after the storage counters, before
    // bytes_read.
    let names: Vec<&str> = general.iter().map(|(n, _)| n.as_str()).collect();
    let at = names.iter().position(|&n| n == "auth_cmds").unwrap();
    assert!(names[at - 1].starts_with("store_"), "{what} {names:?}");
    assert_eq!(
        names[at + 1..at + 3],
        ["auth_errors", "bytes_read"],
        "{what}"
    );
    let settings = stats(&mut client, "settings");
    let names: Vec<&str> = settings.iter().map(|(n, _)| n.as_str()).collect();
    let at = names
        .iter()
        .position(|&n| n == "auth_enabled_ascii")
        .unwrap();
    assert_eq!(
        settings[at - 1..at + 2],
        [
            ("auth_enabled_sasl".to_string(), "no".to_string()),
            ("auth_enabled_ascii".to_string(), users.path().to_string()),
            ("item_size_max".to_string(), "1048576".to_string()),
        ],
        "{what}"
    );
    assert_eq!(
        show(&request(&mut client, b"stats reset\r\n")),
        "RESET\\r\\n"
    );
    assert_eq!(stat_u64(&stats(&mut client, ""), "auth_cmds"), 0, "{what}");
}

per_pattern!(stats_count_handshakes, super::stats_count_handshakes, and memcached);

fn stats_without_auth(pattern: &str) {
    let server = KvServer::start_suite(pattern, &[], &[]);
    let mut client = server.connect();
    let general = stats(&mut client, "");
    assert_eq!(stat_u64(&general, "auth_cmds"), 0, "[{pattern}]");
    let settings = stats(&mut client, "settings");
    let ascii = settings.iter().find(|(n, _)| n == "auth_enabled_ascii");
    assert_eq!(ascii.map(|(_, v)| v.as_str()), Some("no"), "[{pattern}]");
}

per_pattern!(
    stats_settings_without_auth,
    super::stats_without_auth,
    and memcached
);

// ---------------------------------------------------------------------
// A real client.

/// pymemcache has no authentication of its own, but its `set` is the
/// handshake (`tests/clients/pymemcache_auth_check.py`).
fn pymemcache(pattern: &str) {
    let users = Users::new(USERS);
    let server = start(pattern, &users);
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/pymemcache_auth_check.py");
    let out = Command::new("python3")
        .arg(&script)
        .arg(server.addr().port().to_string())
        .output()
        .unwrap_or_else(|e| panic!("cannot run python3 ({e}); `bash .ci/run` installs pymemcache"));
    assert!(
        out.status.success(),
        "[{pattern}] {} failed\n{}{}",
        script.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

per_pattern!(pymemcache_authenticates, super::pymemcache, and memcached);
