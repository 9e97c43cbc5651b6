//! Scale-out: several kvserve instances, one per threading pattern, used the
//! way memcached users run several memcached instances:
//!
//! - behind twemproxy (Debian package `nutcracker`) with ketama consistent
//!   hashing: the proxy picks the instance of each key, splits multi-gets
//!   into one `get` per instance and pipelines every client's requests onto
//!   one connection per instance;
//! - with client-side consistent hashing: pymemcache's `HashClient`, and
//!   libmemcached's tools given several servers.
//!
//! Each test checks, through each instance's own `stats` and a direct
//! multi-get, that every instance holds a share and that every key is on
//! exactly one. `.ci/run` installs nutcracker, libmemcached-tools and
//! pymemcache. Each test runs once more against as many real memcached
//! instances, as a reference (its `_memcached_instances` twin).
//!
//! Everything listens on 127.0.0.1 on free ports; every wait is bounded; the
//! only processes signalled are the ones these tests spawned, by PID.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::{
    checked_value, parse_get_reply, pattern_names, read_expected, reply_len, request, show,
    stat_u64, stats, value_reply, verify_value, write_in_background, Item, KvServer, TempDir,
    IO_TIMEOUT, MEMCACHED,
};

/// Keys written through the proxy or the hashing client.
const KEYS: usize = 1000;
/// Client connections that write and read through the proxy at once.
const PROXY_CLIENTS: usize = 4;
/// How long the proxy gets to answer its first request.
const PROXY_READY_TIMEOUT: Duration = Duration::from_secs(10);

fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {program} ({e}); `bash .ci/run` installs it \
                 (nutcracker, libmemcached-tools, pymemcache)"
            )
        })
}

/// One kvserve instance per pattern.
fn kvserve_instances() -> Vec<KvServer> {
    start_instances(&pattern_names())
}

/// As many memcached instances as [`kvserve_instances`] starts.
fn memcached_instances() -> Vec<KvServer> {
    start_instances(&pattern_names().map(|_| MEMCACHED))
}

/// One instance per name: a pattern, or [`MEMCACHED`].
fn start_instances(names: &[&str]) -> Vec<KvServer> {
    names
        .iter()
        .map(|name| KvServer::start_suite(name, &["-t", "2"], &["-t", "2"]))
        .collect()
}

/// Stops the instances; kvserve must exit cleanly.
fn stop_instances(instances: Vec<KvServer>) {
    for mut instance in instances {
        let status = instance.stop();
        if instance.name() != MEMCACHED {
            assert!(
                status.success(),
                "{}: unclean exit {status:?}",
                instance.label()
            );
        }
    }
}

/// Key `i`, its flags and its value: 1 to 3,000 bytes, self-checking
/// (see `checked_value`), so a value read under the wrong key is caught.
fn item(i: usize) -> (String, u32, Vec<u8>) {
    let key = format!("scale:{i:04}");
    let (flags, data) = checked_value(&key, 1, 1 + i * 37 % 3000);
    (key, flags, data)
}

fn get_line(verb: &str, keys: &[String]) -> Vec<u8> {
    format!("{verb} {}\r\n", keys.join(" ")).into_bytes()
}

/// A connected client of `addr` with the harness's timeouts.
fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT)
        .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    stream.set_nodelay(true).unwrap();
    stream
}

/// `$KVSERVE_NUTCRACKER_BIN`, else `nutcracker` from PATH, else Debian's
/// /usr/sbin/nutcracker (not on every user's PATH).
fn nutcracker_bin() -> String {
    if let Ok(bin) = std::env::var("KVSERVE_NUTCRACKER_BIN") {
        return bin;
    }
    let on_path = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|d| d.join("nutcracker").is_file()));
    if !on_path && Path::new("/usr/sbin/nutcracker").is_file() {
        return "/usr/sbin/nutcracker".into();
    }
    "nutcracker".into()
}

/// The nutcracker pool configuration these tests run (and README shows).
/// Keys hash with md5, not fnv1a_64: nutcracker keeps 32 bits of the key
/// hash, and fnv1a_64's low 32 bits of `scale:0000`..`scale:0999` fall in 4
/// of 16 slices of the ring, so with some (random) ports an instance got
/// no key at all.
fn nutcracker_config(listen: SocketAddr, servers: &[SocketAddr]) -> String {
    let mut config = format!(
        "kvserve:\n  listen: {listen}\n  hash: md5\n  distribution: ketama\n  \
         redis: false\n  auto_eject_hosts: false\n  timeout: 2000\n  servers:\n"
    );
    for server in servers {
        config.push_str(&format!("   - {server}:1\n"));
    }
    config
}

/// A nutcracker process spawned by a test; SIGKILLed by PID and its
/// directory (config, log) removed on drop, also when the test fails.
struct Nutcracker {
    child: Child,
    addr: SocketAddr,
    stats_addr: SocketAddr,
    config: String,
    log: PathBuf,
    // Dropped after `drop` has killed the process.
    _dir: TempDir,
}

impl Nutcracker {
    /// Writes the config for `servers`, checks it with `nutcracker -t`,
    /// starts the proxy and its stats port on free ports of 127.0.0.1 and
    /// waits (bounded) until a `version` goes through it to an instance.
    fn start(servers: &[SocketAddr]) -> Nutcracker {
        // Ports are picked by binding port 0 and releasing it, so another
        // process could take one in between: retry a few times.
        for attempt in 1..=3 {
            let dir = TempDir::new("nutcracker");
            let addr = SocketAddr::from(([127, 0, 0, 1], common::free_port()));
            let stats_addr = SocketAddr::from(([127, 0, 0, 1], common::free_port()));
            let config = nutcracker_config(addr, servers);
            let conf_path = dir.path().join("nutcracker.yml");
            fs::write(&conf_path, &config).expect("write nutcracker.yml");
            let conf = conf_path.to_str().unwrap();
            let log = dir.path().join("nutcracker.log");

            let bin = nutcracker_bin();
            let check = run(&bin, &["-t", "-c", conf]);
            assert!(
                check.status.success(),
                "nutcracker -t rejects the config:\n{config}\n{}",
                String::from_utf8_lossy(&check.stderr)
            );

            let stats_port = stats_addr.port().to_string();
            let child = Command::new(&bin)
                .args(["-c", conf, "-s", &stats_port, "-a", "127.0.0.1"])
                // Aggregate the stats every 100 ms instead of every 30 s.
                .args(["-i", "100", "-o", log.to_str().unwrap()])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| {
                    panic!("cannot spawn nutcracker ({e}); `bash .ci/run` installs it")
                });
            let mut proxy = Nutcracker {
                child,
                addr,
                stats_addr,
                config,
                log,
                _dir: dir,
            };
            let mut exited = None;
            let ready = common::wait_until(PROXY_READY_TIMEOUT, || {
                if let Ok(Some(status)) = proxy.child.try_wait() {
                    exited = Some(status);
                    return true;
                }
                proxy.answers_version()
            });
            match (ready, exited) {
                (true, None) => return proxy,
                (_, Some(status)) if attempt < 3 => {
                    eprintln!(
                        "nutcracker exited ({status}), retrying: {}",
                        proxy.log_text()
                    );
                }
                _ => panic!(
                    "nutcracker on {} not ready within {PROXY_READY_TIMEOUT:?} \
                     (exit {exited:?}); config:\n{}\nlog:\n{}",
                    proxy.addr,
                    proxy.config,
                    proxy.log_text()
                ),
            }
        }
        unreachable!()
    }

    /// True when `version` sent to the proxy comes back as `VERSION ...`.
    fn answers_version(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200))
        else {
            return false;
        };
        stream
            .set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        if stream.write_all(b"version\r\n").is_err() {
            return false;
        }
        let mut got = Vec::new();
        let mut buf = [0u8; 256];
        while !got.ends_with(b"\r\n") {
            match stream.read(&mut buf) {
                Ok(0) | Err(_) => return false,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
        got.starts_with(b"VERSION ")
    }

    fn connect(&self) -> TcpStream {
        connect(self.addr)
    }

    fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The JSON document of the stats port (one per connection).
    fn stats(&self) -> serde_json::Value {
        let mut stream = connect(self.stats_addr);
        let mut text = Vec::new();
        stream
            .read_to_end(&mut text)
            .expect("read nutcracker stats");
        serde_json::from_slice(&text)
            .unwrap_or_else(|e| panic!("nutcracker stats are not JSON ({e}): {}", show(&text)))
    }
}

impl Drop for Nutcracker {
    fn drop(&mut self) {
        // kill(2) with SIGKILL on our own child's PID, then reap it.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes keys `range` through `proxy` as one pipeline: plain sets, and a
/// `noreply` set for every fourth key (never the last, so that the last
/// reply means the proxy has forwarded the whole pipeline).
fn write_through(proxy: SocketAddr, range: std::ops::Range<usize>) {
    let mut stream = connect(proxy);
    let mut req = Vec::new();
    let mut expected = Vec::new();
    for i in range.clone() {
        let (key, flags, data) = item(i);
        if i % 4 == 3 && i + 1 != range.end {
            req.extend_from_slice(
                format!("set {key} {flags} 0 {} noreply\r\n", data.len()).as_bytes(),
            );
            req.extend_from_slice(&data);
            req.extend_from_slice(b"\r\n");
        } else {
            req.extend_from_slice(&common::set_req(&key, flags, &data));
            expected.extend_from_slice(b"STORED\r\n");
        }
    }
    let writer = write_in_background(&stream, req, false);
    read_expected(&mut stream, &expected, &format!("sets {range:?} via proxy"));
    writer.join().unwrap().expect("write sets");
}

/// Reads `n` complete replies (see `reply_len`) from `stream`, bounded.
fn read_replies(stream: &mut TcpStream, n: usize, what: &str) -> Vec<Vec<u8>> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    let mut replies = Vec::with_capacity(n);
    while replies.len() < n {
        if let Some(len) = reply_len(&buf) {
            replies.push(buf.drain(..len).collect());
            continue;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: {} of {n} replies, then: {}",
            replies.len(),
            show(&buf)
        );
        match stream.read(&mut chunk) {
            Ok(0) => panic!("{what}: EOF after {} of {n} replies", replies.len()),
            Ok(k) => buf.extend_from_slice(&chunk[..k]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => panic!("{what}: {e} after {} of {n} replies", replies.len()),
        }
    }
    assert!(buf.is_empty(), "{what}: extra bytes {}", show(&buf));
    replies
}

/// The items of a `get` reply, sorted by key then value.
fn sorted_items(reply: &[u8], what: &str) -> Vec<Item> {
    let mut items =
        parse_get_reply(reply).unwrap_or_else(|e| panic!("{what}: {e}: {}", show(reply)));
    items.sort_by(|a, b| (&a.key, &a.data, a.flags).cmp(&(&b.key, &b.data, b.flags)));
    items
}

/// Sends `req` (from a helper thread) and checks one reply per entry of
/// `want`. Replies to `get` are compared as sets of items: nutcracker
/// joins the instances' answers to a split multi-get positionally, so
/// when a key misses, the values after it can come out in another order
/// than asked (with memcached behind it too); clients match values
/// by key. Every other reply must match byte for byte.
fn exchange(stream: &mut TcpStream, req: Vec<u8>, want: &[Vec<u8>], what: &str) {
    let writer = write_in_background(stream, req, false);
    let got = read_replies(stream, want.len(), what);
    writer.join().unwrap().expect("write requests");
    for (n, (got, want)) in got.iter().zip(want).enumerate() {
        if want.starts_with(b"VALUE ") || want == b"END\r\n" {
            assert!(
                sorted_items(got, what) == sorted_items(want, what),
                "{what}: reply {n} has other items\n  want: {}\n  got:  {}",
                show(want),
                show(got)
            );
        } else {
            assert!(
                got == want,
                "{what}: reply {n}\n  want: {}\n  got:  {}",
                show(want),
                show(got)
            );
        }
    }
}

/// The reply to a `get` of `ids` (keys written by `write_through`, in
/// order; other keys miss).
fn get_reply(ids: &[usize]) -> Vec<u8> {
    let mut reply = Vec::new();
    for &i in ids {
        let (key, flags, data) = item(i);
        let one = value_reply(&key, flags, &data);
        reply.extend_from_slice(&one[..one.len() - b"END\r\n".len()]);
    }
    reply.extend_from_slice(b"END\r\n");
    reply
}

/// Reads keys `range` back through `proxy`: one pipelined `get` per key,
/// then pipelined multi-gets of 20 keys and a missing one, which the proxy
/// splits into one `get` per instance and joins again.
fn read_through(proxy: SocketAddr, range: std::ops::Range<usize>) {
    let mut stream = connect(proxy);
    let mut req = Vec::new();
    let mut want = Vec::new();
    for i in range.clone() {
        req.extend_from_slice(format!("get {}\r\n", item(i).0).as_bytes());
        want.push(get_reply(&[i]));
    }
    exchange(
        &mut stream,
        req,
        &want,
        &format!("gets {range:?} via proxy"),
    );

    let mut req = Vec::new();
    let mut want = Vec::new();
    let ids: Vec<usize> = range.collect();
    for chunk in ids.chunks(20) {
        let mut keys: Vec<String> = chunk.iter().map(|&i| item(i).0).collect();
        keys.insert(keys.len() / 2, format!("missing:{}", chunk[0]));
        req.extend_from_slice(&get_line("get", &keys));
        want.push(get_reply(chunk));
    }
    exchange(&mut stream, req, &want, "multi-gets of 20 via proxy");
}

/// Checks through each instance's own `stats` and a direct multi-get of
/// all `keys` that every instance holds a share, that every key is on
/// exactly one instance with the value `check` accepts, and that
/// `curr_items` agrees. Returns the keys per instance.
fn check_shares(
    instances: &[KvServer],
    keys: &[String],
    check: impl Fn(&Item) -> Result<(), String>,
) -> Vec<BTreeSet<String>> {
    let mut seen = BTreeMap::new();
    let mut shares = Vec::new();
    for (n, instance) in instances.iter().enumerate() {
        let mut stream = instance.connect();
        let stats = stats(&mut stream, "");
        let curr_items = stat_u64(&stats, "curr_items");
        if instance.name() != MEMCACHED {
            let pattern = stats.iter().find(|(k, _)| k == "pattern").map(|(_, v)| v);
            assert_eq!(
                pattern.map(String::as_str),
                Some(instance.name()),
                "stat pattern"
            );
        }
        let reply = request(&mut stream, &get_line("get", keys));
        let items = parse_get_reply(&reply)
            .unwrap_or_else(|e| panic!("{}: direct multi-get: {e}", instance.label()));
        let mut share = BTreeSet::new();
        for item in &items {
            check(item).unwrap_or_else(|e| panic!("{}: {e}", instance.label()));
            if let Some(other) = seen.insert(item.key.clone(), n) {
                panic!("{} is on instance {other} and on instance {n}", item.key);
            }
            share.insert(item.key.clone());
        }
        assert!(
            !share.is_empty(),
            "{} holds none of the {} keys",
            instance.label(),
            keys.len()
        );
        assert_eq!(
            curr_items,
            share.len() as u64,
            "{}: curr_items disagrees with the keys it returns",
            instance.label()
        );
        shares.push(share);
    }
    let missing: Vec<&String> = keys.iter().filter(|k| !seen.contains_key(*k)).collect();
    assert!(
        missing.is_empty(),
        "{} keys are on no instance: {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
    let sizes: Vec<usize> = shares.iter().map(BTreeSet::len).collect();
    assert_eq!(sizes.iter().sum::<usize>(), keys.len(), "shares {sizes:?}");
    eprintln!("keys per instance: {sizes:?}");
    shares
}

/// `check_shares`'s check for keys written by `write_through`.
fn written_value(item: &Item) -> Result<(), String> {
    verify_value(&item.key, item.flags, &item.data).map(|_| ())
}

/// `check_shares`'s check for keys written by hashclient_check.py
/// (`hash:NNNN`, flags 0, the key and `=` repeated, cut).
fn hashclient_value(item: &Item) -> Result<(), String> {
    let i: usize = item
        .key
        .strip_prefix("hash:")
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| format!("unexpected key {}", item.key))?;
    let mut want = format!("{}=", item.key).repeat(1 + i * 37 % 300);
    want.truncate(1 + i * 37 % 3000);
    if item.flags == 0 && item.data == want.as_bytes() {
        Ok(())
    } else {
        Err(format!(
            "{}: flags {}, value {}",
            item.key,
            item.flags,
            show(&item.data)
        ))
    }
}

/// Sums a per-server counter of nutcracker's stats over the pool's servers.
fn server_counter(pool: &serde_json::Map<String, serde_json::Value>, name: &str) -> u64 {
    pool.values()
        .filter_map(|v| v.as_object())
        .filter_map(|server| server.get(name).and_then(|v| v.as_u64()))
        .sum()
}

#[test]
fn nutcracker_spreads_keys_over_instances_of_every_pattern() {
    nutcracker_spreads_keys(kvserve_instances());
}

#[test]
fn nutcracker_spreads_keys_over_memcached_instances() {
    nutcracker_spreads_keys(memcached_instances());
}

fn nutcracker_spreads_keys(instances: Vec<KvServer>) {
    let servers: Vec<SocketAddr> = instances.iter().map(KvServer::addr).collect();
    let proxy = Nutcracker::start(&servers);
    let addr = proxy.addr;

    // 1,000 keys through the proxy from several client connections at
    // once, which the proxy pipelines onto one connection per instance.
    let per_client = KEYS / PROXY_CLIENTS;
    let ranges: Vec<_> = (0..PROXY_CLIENTS)
        .map(|c| {
            c * per_client..if c + 1 == PROXY_CLIENTS {
                KEYS
            } else {
                (c + 1) * per_client
            }
        })
        .collect();
    let writers: Vec<_> = ranges
        .iter()
        .cloned()
        .map(|r| thread::spawn(move || write_through(addr, r)))
        .collect();
    for w in writers {
        w.join().expect("a writer through the proxy failed");
    }
    let readers: Vec<_> = ranges
        .iter()
        .cloned()
        .map(|r| thread::spawn(move || read_through(addr, r)))
        .collect();
    for r in readers {
        r.join().expect("a reader through the proxy failed");
    }

    // One multi-get of every key, with a repeated key and misses in
    // between.
    let mut stream = proxy.connect();
    let mut keys: Vec<String> = (0..KEYS).map(|i| item(i).0).collect();
    let mut line_keys = keys.clone();
    line_keys.insert(500, "missing:a".into());
    line_keys.insert(10, item(999).0);
    line_keys.push(item(0).0);
    let mut ids: Vec<usize> = (0..KEYS).collect();
    ids.extend([999, 0]);
    exchange(
        &mut stream,
        get_line("get", &line_keys),
        &[get_reply(&ids)],
        "multi-get of every key via proxy",
    );

    // Every instance holds a share, and every key is on exactly one.
    let shares = check_shares(&instances, &keys, written_value);

    // `gets` through the proxy: the CAS unique of the instance holding
    // the key works for `cas` through the proxy.
    let (key, flags, data) = item(7);
    let reply = request(&mut stream, format!("gets {key}\r\n").as_bytes());
    let text = String::from_utf8_lossy(&reply);
    let header = text.lines().next().unwrap_or_default();
    let words: Vec<&str> = header.split(' ').collect();
    let (flags_text, len_text) = (flags.to_string(), data.len().to_string());
    assert_eq!(
        words[..4.min(words.len())],
        [
            "VALUE",
            key.as_str(),
            flags_text.as_str(),
            len_text.as_str()
        ],
        "gets via proxy: {}",
        show(&reply)
    );
    let cas: u64 = words
        .get(4)
        .and_then(|w| w.parse().ok())
        .unwrap_or_else(|| panic!("gets via proxy has no CAS unique: {}", show(&reply)));
    let cas_req = |unique: u64| {
        let mut r = format!("cas {key} {flags} 0 {} {unique}\r\n", data.len()).into_bytes();
        r.extend_from_slice(&data);
        r.extend_from_slice(b"\r\n");
        r
    };
    assert_eq!(request(&mut stream, &cas_req(cas)), b"STORED\r\n");
    assert_eq!(request(&mut stream, &cas_req(cas)), b"EXISTS\r\n");

    // `version` through the proxy is the answer of one instance.
    let direct_version = request(&mut instances[0].connect(), b"version\r\n");
    assert!(
        direct_version.starts_with(b"VERSION 1.6."),
        "version: {}",
        show(&direct_version)
    );
    assert_eq!(request(&mut stream, b"version\r\n"), direct_version);

    // One pipeline mixing every command the proxy forwards, with and
    // without `noreply`, over keys of all instances: the proxy must give
    // back every reply, in order.
    let first_of = |n: usize| shares[n].iter().next().unwrap().clone();
    let (k0, k1, k2) = (first_of(0), first_of(1), first_of(2));
    let id = |key: &str| -> usize { key["scale:".len()..].parse().unwrap() };
    let mut req = Vec::new();
    let mut want: Vec<Vec<u8>> = Vec::new();
    let mut add = |request: &[u8], replies: &[&[u8]]| {
        req.extend_from_slice(request);
        want.extend(replies.iter().map(|r| r.to_vec()));
    };
    // A multi-get over keys of three of the instances.
    let three = get_reply(&[id(&k2), id(&k0), id(&k1)]);
    add(
        &get_line("get", &[k2.clone(), k0.clone(), k1.clone()]),
        &[&three],
    );
    // delete (replied and noreply), then a get that sees both deletions.
    add(
        format!("delete {k0}\r\ndelete {k0}\r\n").as_bytes(),
        &[b"DELETED\r\n", b"NOT_FOUND\r\n"],
    );
    add(format!("delete {k1} noreply\r\n").as_bytes(), &[]);
    add(format!("get {k0} {k1}\r\n").as_bytes(), &[b"END\r\n"]);
    // incr/decr (one noreply) on a key set with noreply, then a get.
    add(b"incr counter:a 1\r\n", &[b"NOT_FOUND\r\n"]);
    add(b"set counter:a 0 0 2 noreply\r\n10\r\n", &[]);
    add(
        b"incr counter:a 5\r\ndecr counter:a 3\r\n",
        &[b"15\r\n", b"12\r\n"],
    );
    add(
        b"incr counter:a 30 noreply\r\nget counter:a\r\n",
        &[b"VALUE counter:a 0 2\r\n42\r\nEND\r\n"],
    );
    add(
        format!("incr {k2} 1\r\n").as_bytes(),
        &[b"CLIENT_ERROR cannot increment or decrement non-numeric value\r\n"],
    );
    // add, append, prepend, replace, touch.
    add(
        format!("add {k2} 0 0 1\r\nx\r\n").as_bytes(),
        &[b"NOT_STORED\r\n"],
    );
    add(
        b"add word:a 3 0 2\r\nbc\r\nappend word:a 0 0 1\r\nd\r\n\
          prepend word:a 0 0 1\r\na\r\nreplace word:b 0 0 1\r\nx\r\n",
        &[
            b"STORED\r\n",
            b"STORED\r\n",
            b"STORED\r\n",
            b"NOT_STORED\r\n",
        ],
    );
    add(
        b"touch word:a 100\r\ntouch word:b 100\r\n",
        &[b"TOUCHED\r\n", b"NOT_FOUND\r\n"],
    );
    add(
        b"get word:a word:b\r\n",
        &[b"VALUE word:a 3 4\r\nabcd\r\nEND\r\n"],
    );
    add(b"version\r\n", &[&direct_version]);
    exchange(&mut stream, req, &want, "mixed pipeline via proxy");

    // The instances agree: k0 and k1 are gone, two keys were added.
    keys.retain(|k| *k != k0 && *k != k1);
    let total: u64 = instances
        .iter()
        .map(|i| stat_u64(&stats(&mut i.connect(), ""), "curr_items"))
        .sum();
    assert_eq!(
        total,
        keys.len() as u64 + 2,
        "curr_items after the pipeline"
    );

    // The proxy saw no error, timeout or closed connection from any
    // instance (its stats are aggregated every 100 ms: wait until they
    // have caught up with the requests sent).
    let mut last = serde_json::Value::Null;
    let caught_up = common::wait_until(Duration::from_secs(5), || {
        last = proxy.stats();
        let pool = last["kvserve"].as_object().cloned().unwrap_or_default();
        server_counter(&pool, "requests") >= KEYS as u64 * 2
    });
    assert!(caught_up, "nutcracker stats did not catch up: {last}");
    let pool = last["kvserve"].as_object().unwrap();
    for name in ["server_err", "server_eof", "server_timedout"] {
        assert_eq!(server_counter(pool, name), 0, "{name} in {last}");
    }
    for name in ["server_ejects", "forward_error"] {
        assert_eq!(pool[name].as_u64(), Some(0), "{name} in {last}");
    }
    for server in &servers {
        let requests = pool[&server.to_string()]["requests"].as_u64();
        assert!(
            requests.is_some_and(|r| r > 0),
            "no requests to {server}: {last}"
        );
    }

    drop(stream);
    drop(proxy);
    stop_instances(instances);
}

#[test]
fn pymemcache_hashclient_spreads_keys_over_instances_of_every_pattern() {
    hashclient_spreads_keys(kvserve_instances());
}

#[test]
fn pymemcache_hashclient_spreads_keys_over_memcached_instances() {
    hashclient_spreads_keys(memcached_instances());
}

fn hashclient_spreads_keys(instances: Vec<KvServer>) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/hashclient_check.py");
    let ports: Vec<String> = instances
        .iter()
        .map(|i| i.addr().port().to_string())
        .collect();
    let mut args = vec![script.to_str().unwrap()];
    args.extend(ports.iter().map(String::as_str));
    let started = Instant::now();
    let out = run("python3", &args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "HashClient check failed after {:?}\n{}\n{}",
        started.elapsed(),
        show(stdout.as_bytes()),
        String::from_utf8_lossy(&out.stderr)
    );
    let placed: serde_json::Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("bad JSON from the script ({e}): {}", show(&out.stdout)));
    let placed = placed["keys"].as_object().expect("keys object");
    let mut all_keys: Vec<String> = placed
        .values()
        .flat_map(|v| v.as_array().expect("key list").iter())
        .map(|k| k.as_str().expect("key").to_string())
        .collect();
    all_keys.sort();
    assert_eq!(all_keys.len(), KEYS, "keys the client placed");

    // Each instance holds exactly the keys the client says it put there.
    let shares = check_shares(&instances, &all_keys, hashclient_value);
    for (instance, share) in instances.iter().zip(&shares) {
        let want: BTreeSet<String> = placed
            .get(&instance.addr().to_string())
            .and_then(|v| v.as_array())
            .map(|keys| keys.iter().map(|k| k.as_str().unwrap().to_string()))
            .into_iter()
            .flatten()
            .collect();
        assert!(
            *share == want,
            "{}: holds {} keys, the client placed {} there",
            instance.label(),
            share.len(),
            want.len()
        );
    }
    stop_instances(instances);
}

#[test]
fn libmemcached_tools_spread_keys_over_instances_of_every_pattern() {
    libmemcached_tools_spread_keys(kvserve_instances());
}

#[test]
fn libmemcached_tools_spread_keys_over_memcached_instances() {
    libmemcached_tools_spread_keys(memcached_instances());
}

fn libmemcached_tools_spread_keys(instances: Vec<KvServer>) {
    const FILES: usize = 60;
    let servers = instances
        .iter()
        .map(|i| i.addr().to_string())
        .collect::<Vec<_>>()
        .join(",");

    // memstat asks every instance for its version.
    // (It prints them on stderr.)
    let out = run("memcstat", &["--servers", &servers, "--server-version"]);
    let stdout = String::from_utf8_lossy(&out.stdout) + String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "memstat: {stdout}");
    for instance in &instances {
        let want = format!("{} 1.6.", instance.addr());
        assert!(
            stdout.lines().any(|l| l.starts_with(&want)),
            "memstat --server-version lacks {want:?}: {stdout}"
        );
    }

    // memcp stores files under their names, each on the server its
    // hashing picks; memcat reads them all back.
    let dir = TempDir::new("memcp");
    let mut names = Vec::new();
    let mut expected = String::new();
    for n in 0..FILES {
        let name = format!("file{n:02}");
        let content = format!("content of {name}\n").repeat(1 + n % 5);
        fs::write(dir.path().join(&name), &content).unwrap();
        expected.push_str(&content);
        expected.push('\n');
        names.push(name);
    }
    let paths: Vec<String> = names
        .iter()
        .map(|n| dir.path().join(n).to_str().unwrap().to_string())
        .collect();
    let mut args = vec!["--servers", &servers];
    args.extend(paths.iter().map(String::as_str));
    let out = run("memccp", &args);
    assert!(
        out.status.success(),
        "memcp: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let mut args = vec!["--servers", &servers];
    args.extend(names.iter().map(String::as_str));
    let out = run("memccat", &args);
    assert!(out.status.success(), "memcat failed");
    assert_eq!(String::from_utf8_lossy(&out.stdout), expected, "memcat");

    let mut total = 0;
    for instance in &instances {
        let items = stat_u64(&stats(&mut instance.connect(), ""), "curr_items");
        assert!(items > 0, "{} holds none of the files", instance.label());
        total += items;
    }
    assert_eq!(total, FILES as u64, "files over all instances");
    stop_instances(instances);
}
