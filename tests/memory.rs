//! The memory limit as resident memory: what `stats` says about it, how
//! the limit answers bad values and changes at run time, and, on demand,
//! the figures of docs/memory.md.
//!
//! The figures (`--ignored`) run each load against every pattern and the
//! real memcached, each under `-m 64`, and print peak and settled RSS:
//!
//! ```sh
//! cargo test --release --test memory -- --ignored --nocapture --test-threads 1
//! KVSERVE_BIN=/path/to/other/kvserve cargo test --release --test memory -- --ignored --nocapture
//! ```
//!
//! Every loop is bounded in count and time, every socket is on 127.0.0.1,
//! and only the servers started here are signalled, by PID.

#[macro_use]
mod common;

use common::*;
use std::io::Write;
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// KiB in a MiB (RSS is read in KiB).
const MIB: u64 = 1024;

/// How long a load's end is left alone before its settled RSS is read.
const SETTLE: Duration = Duration::from_secs(5);

/// The server a figure is taken of: a kvserve pattern, or `memcached`.
fn start(name: &str, extra: &[&str]) -> KvServer {
    let mut args = vec!["-m", "64"];
    if name != "basic" {
        args.extend(["-t", "2"]);
    }
    args.extend_from_slice(extra);
    if name == MEMCACHED {
        KvServer::start_memcached(&args)
    } else {
        KvServer::start(name, &args)
    }
}

/// Peak RSS while `load` runs, and RSS after [`SETTLE`] with nothing to do.
fn peak_and_settled(server: &KvServer, load: impl FnOnce()) -> (u64, u64) {
    let pid = server.pid();
    let sampler = RssSampler::start(pid);
    load();
    let peak = max_rss(&sampler.finish()).max(rss_kib(pid).unwrap());
    thread::sleep(SETTLE);
    (peak, rss_kib(pid).unwrap())
}

fn print_figure(name: &str, load: &str, (peak, settled): (u64, u64), extra: &str) {
    eprintln!(
        "FIGURE {name:<13} {load:<12} peak {:>6.1} MiB ({:.2}x -m) settled {:>6.1} MiB {extra}",
        peak as f64 / 1024.0,
        peak as f64 / (64.0 * 1024.0),
        settled as f64 / 1024.0
    );
}

/// 600 MiB of 100 KiB values, from 4 connections at once.
fn large_values(name: &str) {
    let server = start(name, &[]);
    let figure = peak_and_settled(&server, || write_big_values(&server, 4, 1536));
    print_figure(name, "large-values", figure, "");
}

/// 12 rounds of 120 connections reset mid-request: half of a 512 KiB set,
/// 100 unread gets of a 100 KiB value, half a command line.
fn reset_storm(name: &str) {
    let server = start(name, &["-c", "2000"]);
    let mut admin = server.connect();
    let mid = vec![b'm'; 100 * 1024];
    assert_eq!(request(&mut admin, &set_req("mid", 0, &mid)), b"STORED\r\n");
    let figure = peak_and_settled(&server, || {
        for round in 0..12 {
            let mut sends = Vec::new();
            for i in 0..40 {
                let half_set = [
                    format!("set r{round}:{i} 0 0 524288\r\n").as_bytes(),
                    &vec![b'h'; 256 * 1024],
                ]
                .concat();
                let unread = b"get mid\r\n".repeat(100);
                let half_line = format!("set r{round}:{i} 0 0 100").into_bytes();
                sends.extend([half_set, unread, half_line]);
            }
            send_then_reset(&server, sends);
        }
    });
    print_figure(name, "reset-storm", figure, "");
}

/// Pipelined noreply sets of `value_len`-byte values under keys `k:N`,
/// `count` of them, from one connection.
fn fill_small(server: &KvServer, value_len: usize, count: usize) {
    let mut c = server.connect();
    c.set_write_timeout(Some(Duration::from_secs(30))).unwrap();
    // The last sets may still be queued in the server when `version` goes.
    c.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let value = vec![b'v'; value_len];
    let mut batch = Vec::with_capacity(1 << 17);
    for i in 0..count {
        batch.extend(format!("set k:{i} 0 0 {value_len} noreply\r\n").bytes());
        batch.extend_from_slice(&value);
        batch.extend_from_slice(b"\r\n");
        if batch.len() >= 1 << 16 {
            c.write_all(&batch).expect("write sets");
            batch.clear();
        }
    }
    c.write_all(&batch).expect("write sets");
    let v = request(&mut c, b"version\r\n");
    assert!(v.starts_with(b"VERSION "), "{}", show(&v));
}

/// Small items, several times the limit: items held per MiB of RSS.
fn small_items(name: &str) {
    for (value_len, count) in [(10, 4_000_000), (100, 2_000_000)] {
        let server = start(name, &[]);
        let figure = peak_and_settled(&server, || fill_small(&server, value_len, count));
        let items = stat_u64(&stats(&mut server.connect(), ""), "curr_items");
        let per_mib = items as f64 / (figure.1 as f64 / 1024.0);
        print_figure(
            name,
            &format!("small-{value_len}B"),
            figure,
            &format!("items {items} items/MiB-RSS {per_mib:.0}"),
        );
    }
}

/// Which servers the figures cover: `KVSERVE_FIGURES` (comma-separated
/// names), else every pattern and memcached.
fn figure_servers() -> Vec<String> {
    match std::env::var("KVSERVE_FIGURES") {
        Ok(list) => list.split(',').map(str::to_string).collect(),
        Err(_) => pattern_names()
            .into_iter()
            .chain([MEMCACHED])
            .map(str::to_string)
            .collect(),
    }
}

/// `set`s of 100 KiB values under `prefix:N`, `count` of them, each
/// answered before the next goes.
fn set_big_values(c: &mut TcpStream, prefix: &str, count: usize) {
    for i in 0..count {
        let key = format!("{prefix}:{i}");
        let r = request(c, &set_req(&key, 0, &big_value(&key, b'b')));
        assert_eq!(show(&r), "STORED\\r\\n", "{key}");
    }
}

/// `rss` is resident memory and grows with the items; the heap figures
/// add up: what the store holds is allocated, and what the allocator holds
/// beyond the store is no more than its resident bytes less the items.
fn stats_see_resident_memory(pattern: &str) {
    let server = start(pattern, &[]);
    let mut c = server.connect();
    let before = stats(&mut c, "");
    let rss_before = stat_u64(&before, "rss");
    assert!(rss_before > 0, "[{pattern}] rss {rss_before}");
    // The stat and the kernel's figure for the process agree (both move a
    // little between the two reads).
    let kernel = rss_kib(server.pid()).unwrap() * 1024;
    assert!(
        rss_before.abs_diff(kernel) < 4 << 20,
        "[{pattern}] rss {rss_before}, /proc says {kernel}"
    );
    set_big_values(&mut c, "fill", 320);
    let after = stats(&mut c, "");
    let (rss, bytes) = (stat_u64(&after, "rss"), stat_u64(&after, "bytes"));
    let (allocated, resident, not_store) = (
        stat_u64(&after, "heap_allocated"),
        stat_u64(&after, "heap_resident"),
        stat_u64(&after, "heap_not_store"),
    );
    eprintln!(
        "[{pattern}] rss {rss_before} -> {rss}; bytes {bytes}; heap allocated {allocated}, \
         resident {resident}, not store {not_store}"
    );
    assert!(
        bytes >= 320 * VALUE_100K as u64,
        "[{pattern}] bytes {bytes}"
    );
    assert!(
        rss >= rss_before + bytes * 3 / 4,
        "[{pattern}] rss {rss_before} -> {rss} after {bytes} bytes of items"
    );
    assert!(
        allocated >= bytes,
        "[{pattern}] the items' {bytes} bytes are more than the {allocated} allocated"
    );
    assert!(
        resident >= allocated,
        "[{pattern}] resident {resident} < allocated {allocated}"
    );
    assert!(
        not_store + bytes <= resident,
        "[{pattern}] heap_not_store {not_store} + bytes {bytes} > heap_resident {resident}"
    );
    // Connection buffers and freed pages, not another copy of the items.
    assert!(
        not_store < bytes / 2,
        "[{pattern}] heap_not_store {not_store} for {bytes} bytes of items"
    );
}

per_pattern!(stats_show_resident_memory, super::stats_see_resident_memory);

/// Connections that stored and read back a 200 KiB value, then sit idle,
/// keep no buffer of that size: the allocated heap grows by the items
/// stored, not by 40 connections' read and reply buffers (which kept up to
/// 256 KiB each before).
fn idle_connections_pin_no_large_buffers(pattern: &str) {
    const CONNS: usize = 40;
    const VALUE: usize = 200 * 1024;
    let server = start(pattern, &[]);
    let mut admin = server.connect();
    let allocated = |c: &mut TcpStream| {
        let st = stats(c, "");
        (stat_u64(&st, "heap_allocated"), stat_u64(&st, "bytes"))
    };
    let mut conns: Vec<TcpStream> = (0..CONNS).map(|_| server.connect()).collect();
    let (heap_before, bytes_before) = allocated(&mut admin);
    for (i, c) in conns.iter_mut().enumerate() {
        let key = format!("pin:{i}");
        let value = vec![b'p'; VALUE];
        assert_eq!(request(c, &set_req(&key, 0, &value)), b"STORED\r\n");
        let r = request(c, format!("get {key}\r\n").as_bytes());
        assert_eq!(
            r.len(),
            value_reply(&key, 0, &value).len(),
            "[{pattern}] {key}"
        );
    }
    let (heap_after, bytes_after) = allocated(&mut admin);
    let grown = heap_after.saturating_sub(heap_before);
    let items = bytes_after - bytes_before;
    eprintln!("[{pattern}] {CONNS} idle connections after 200 KiB set+get: heap +{grown} B, items +{items} B");
    assert!(
        grown < items + (CONNS as u64) * 64 * 1024,
        "[{pattern}] the heap grew by {grown} B for {items} B of items: buffers kept by idle \
         connections"
    );
}

per_pattern!(
    idle_connections_keep_no_large_buffers,
    super::idle_connections_pin_no_large_buffers
);

/// What `cache_memlimit` answers, bad values included, as memcached does.
#[test]
fn cache_memlimit_answers_as_memcached() {
    let script: &[&[u8]] = &[
        b"cache_memlimit 0\r\n",
        b"cache_memlimit 7\r\n",
        b"cache_memlimit 8\r\n",
        b"cache_memlimit 1000000001\r\n",
        // strtoul's 64 bits kept to 32: 1215752191, and 2^32 + 8: 8.
        b"cache_memlimit 99999999999\r\n",
        b"cache_memlimit 4294967304\r\n",
        b"cache_memlimit +16\r\n",
        b"cache_memlimit -0\r\n",
        b"cache_memlimit -1\r\n",
        b"cache_memlimit\r\n",
        b"cache_memlimit 16 noreply\r\nmn\r\n",
        // A limit far above any machine's memory: taken as asked.
        b"cache_memlimit 1000000000\r\n",
        b"cache_memlimit 64\r\n",
    ];
    let answers = |server: &KvServer| -> Vec<String> {
        let mut c = server.connect();
        let mut out: Vec<String> = script.iter().map(|r| show(&request(&mut c, r))).collect();
        out.push(stat_u64(&stats(&mut c, ""), "limit_maxbytes").to_string());
        out
    };
    let kvserve = answers(&KvServer::start("basic", &["-m", "64"]));
    assert_eq!(
        kvserve[0],
        "MEMLIMIT_TOO_SMALL cannot set maxbytes to less than 8m\\r\\n"
    );
    assert_eq!(kvserve[2], "OK\\r\\n");
    assert_eq!(kvserve.last().unwrap(), &(64u64 << 20).to_string());
    let memcached = answers(&KvServer::start_memcached(&["-m", "64"]));
    assert_eq!(kvserve, memcached);
}

/// Physical memory in MiB, from /proc/meminfo.
fn physical_mib() -> u64 {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap();
    let line = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .unwrap();
    line.split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<u64>()
        .unwrap()
        / 1024
}

/// `-m` four times the machine's memory: memcached starts and takes it as
/// its limit (it allocates as items come), and so does kvserve, which does
/// not reserve it either.
#[test]
fn a_limit_above_physical_memory_is_taken_as_memcached_takes_it() {
    let mib = (physical_mib() * 4).to_string();
    let limit = |server: &KvServer| {
        let mut c = server.connect();
        assert_eq!(request(&mut c, b"set k 0 0 1\r\nv\r\n"), b"STORED\r\n");
        stat_u64(&stats(&mut c, ""), "limit_maxbytes")
    };
    let kvserve = KvServer::start("multi-reader", &["-m", &mib, "-t", "2"]);
    let want = (physical_mib() * 4) << 20;
    assert_eq!(limit(&kvserve), want);
    let rss = rss_kib(kvserve.pid()).unwrap();
    assert!(rss < 64 * MIB, "[{mib} MiB limit] RSS {rss} KiB at start");
    assert_eq!(limit(&KvServer::start_memcached(&["-m", &mib])), want);
}

/// `cache_memlimit` lowered from 64 to 16 MiB while writers fill the
/// store: `OK` at once, then `bytes` and RSS come down to the new limit.
/// (memcached 1.6.18 answers the same `OK` but keeps its 64 MiB of items
/// and pages: it frees nothing until items are replaced.)
fn lowered_limit_shrinks_memory(pattern: &str) {
    let server = start(pattern, &[]);
    let pid = server.pid();
    let mut admin = server.connect();
    set_big_values(&mut admin, "before", 700);
    let rss_full = rss_kib(pid).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..2)
        .map(|w| {
            let mut c = server.connect();
            let stop = Arc::clone(&stop);
            thread::spawn(move || {
                let mut n = 0;
                // Bounded: at most 2,000 sets.
                while !stop.load(Ordering::Relaxed) && n < 2000 {
                    set_big_values(&mut c, &format!("during{w}:{n}"), 1);
                    n += 1;
                }
                n
            })
        })
        .collect();
    thread::sleep(Duration::from_millis(200));
    let asked = Instant::now();
    assert_eq!(request(&mut admin, b"cache_memlimit 16\r\n"), b"OK\r\n");
    let answered = asked.elapsed();
    thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    let sets: usize = writers.into_iter().map(|w| w.join().unwrap()).sum();
    let st = stats(&mut admin, "");
    let (bytes, limit) = (stat_u64(&st, "bytes"), stat_u64(&st, "limit_maxbytes"));
    assert_eq!(limit, 16 << 20, "[{pattern}]");
    let shards = stat_u64(&stats(&mut admin, "settings"), "store_shards");
    assert!(
        bytes <= limit + shards * (VALUE_100K as u64 + 4096),
        "[{pattern}] bytes {bytes} over the lowered limit {limit}"
    );
    // Resident memory follows within the allocator's decay time.
    let bound = 16 * MIB * 115 / 100 + 16 * MIB;
    let shrunk = wait_until(Duration::from_secs(5), || rss_kib(pid).unwrap() <= bound);
    let rss = rss_kib(pid).unwrap();
    eprintln!(
        "[{pattern}] cache_memlimit 64 -> 16 under load ({sets} sets during): answered in \
         {answered:?}; RSS {rss_full} KiB -> {rss} KiB; bytes {bytes}"
    );
    assert!(
        shrunk,
        "[{pattern}] RSS {rss} KiB after lowering the limit to 16 MiB (from {rss_full} KiB); \
         allowed {bound} KiB"
    );
    assert!(sets > 0, "[{pattern}] the writers did not write");
}

per_pattern!(
    lowering_cache_memlimit_shrinks_memory,
    super::lowered_limit_shrinks_memory
);

#[test]
#[ignore = "measurement: minutes; run with --ignored --nocapture"]
fn figures() {
    let started = Instant::now();
    // `KVSERVE_FIGURE_LOADS`: some of large-values,reset-storm,small-items.
    let loads = std::env::var("KVSERVE_FIGURE_LOADS")
        .unwrap_or_else(|_| "large-values,reset-storm,small-items".into());
    for name in figure_servers() {
        for load in loads.split(',') {
            match load {
                "large-values" => large_values(&name),
                "reset-storm" => reset_storm(&name),
                "small-items" => small_items(&name),
                other => panic!("no load {other}"),
            }
        }
    }
    eprintln!("figures took {:?}", started.elapsed());
    assert!(started.elapsed() < Duration::from_secs(3600));
}
