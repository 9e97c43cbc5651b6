//! work-stealing seen from outside: with a slow (blocking) service time
//! and all the load on one reader's connections, the idle reader steals
//! batches, `stats threads` counts them on both sides, and every client
//! still gets every reply, in order: while its batch is stolen, when it
//! disconnects mid-batch, and when the server shuts down with batches
//! queued.
//!
//! Assertions are on counts and bytes, never on timings: the machine
//! running the tests is shared. kvserve-only: memcached does not steal.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use common::*;

/// Requests pipelined on each busy connection.
const PIPELINE: usize = 10;

/// A work-stealing server with two readers where every request sleeps 5
/// ms, and four connections: the acceptor deals them round-robin, so 0
/// and 2 are reader 0's, 1 and 3 reader 1's. Keys `k0`.. are set.
fn two_readers() -> (KvServer, Vec<TcpStream>) {
    let server = KvServer::start("work-stealing", &["-t", "2", "--work", "block:fixed:5ms"]);
    let mut conns: Vec<TcpStream> = (0..4).map(|_| server.connect()).collect();
    // One request each, in order, so each is dealt before the next opens.
    for c in &mut conns {
        assert_eq!(request(c, b"version\r\n")[..8], *b"VERSION ");
    }
    for k in 0..PIPELINE {
        let req = set_req(&format!("k{k}"), 0, format!("v{k}").as_bytes());
        assert_eq!(request(&mut conns[1], &req), b"STORED\r\n");
    }
    (server, conns)
}

/// `get k0` .. `get k9` in one write, and the replies they must get.
fn pipeline() -> (Vec<u8>, Vec<u8>) {
    let (mut req, mut replies) = (Vec::new(), Vec::new());
    for k in 0..PIPELINE {
        req.extend_from_slice(format!("get k{k}\r\n").as_bytes());
        replies.extend(value_reply(&format!("k{k}"), 0, format!("v{k}").as_bytes()));
    }
    (req, replies)
}

/// `(stolen, lost)` of each reader, in `stats threads` order.
fn steals(conn: &mut TcpStream) -> Vec<(u64, u64)> {
    let st = stats(conn, "threads");
    let field = |n: usize, f: &str| st.iter().find(|(k, _)| *k == format!("{n}:{f}"));
    (0..)
        .map_while(|n| field(n, "role").map(|(_, role)| (n, role.clone())))
        .filter(|(_, role)| role == "reader")
        .map(|(n, _)| {
            let count = |f| field(n, f).map_or(0, |(_, v)| v.parse().unwrap());
            (count("stolen"), count("lost"))
        })
        .collect()
}

#[test]
fn an_idle_reader_steals_from_a_busy_one_and_replies_keep_their_order() {
    let (mut server, mut conns) = two_readers();
    let (req, replies) = pipeline();
    conns[0].write_all(&req).unwrap();
    conns[2].write_all(&req).unwrap();
    read_expected(&mut conns[0], &replies, "connection 0");
    read_expected(&mut conns[2], &replies, "connection 2");
    // A thief writes the replies before it sends the connection home,
    // where the owner counts it lost: wait for the owner to catch up.
    // (Reader 0 may steal too: the stats requests on reader 1's connection
    // take 5 ms each.)
    let mut last = Vec::new();
    let counted = wait_until(Duration::from_secs(5), || {
        last = steals(&mut conns[1]);
        last.len() == 2 && last[1].0 > 0 && last[0].1 > 0
    });
    assert!(
        counted,
        "(stolen, lost) per reader: {last:?}; want reader 1 stolen > 0, reader 0 lost > 0"
    );
    // Both connections still serve, in order.
    for c in [0, 2] {
        assert_eq!(
            request(&mut conns[c], b"get k3\r\n"),
            value_reply("k3", 0, b"v3")
        );
    }
    assert!(server.stop().success());
}

/// Nothing is queued to steal while reader 0 sleeps in a 150 ms request:
/// a request that arrives meanwhile on its other connection is read and
/// served by reader 1, which watches reader 0's epoll while it is stuck.
/// (Had it arrived before reader 0 started, reader 1 would have stolen it
/// from the queue: counted the same way. Only a request left unread until
/// reader 0 is free is served by reader 0.)
#[test]
fn a_request_that_arrives_while_its_reader_is_stuck_is_served_by_another() {
    let mut server = KvServer::start("work-stealing", &["-t", "2", "--work", "block:fixed:150ms"]);
    let mut conns: Vec<TcpStream> = (0..3).map(|_| server.connect()).collect();
    for c in &mut conns {
        assert_eq!(request(c, b"version\r\n")[..8], *b"VERSION ");
    }
    // Reader 0 learns that its requests are slow: twenty in one write,
    // each one a batch of its own (the slice is 100 µs), 3 s in all.
    let warm_up: Vec<u8> = b"get nothing\r\n".repeat(20);
    conns[0].write_all(&warm_up).unwrap();
    read_expected(&mut conns[0], &b"END\r\n".repeat(20), "warm-up");

    conns[0].write_all(b"get nothing\r\n").unwrap();
    std::thread::sleep(Duration::from_millis(50));
    conns[2].write_all(b"get nothing\r\n").unwrap();
    read_expected(&mut conns[2], b"END\r\n", "connection 2");
    read_expected(&mut conns[0], b"END\r\n", "connection 0");
    let counts = steals(&mut conns[1]);
    assert!(
        counts.len() == 2 && counts[1].0 >= 1 && counts[0].1 >= 1,
        "(stolen, lost) per reader: {counts:?}; want reader 1 stolen >= 1, reader 0 lost >= 1"
    );
    assert!(server.stop().success());
}

#[test]
fn a_connection_that_closes_while_its_batch_is_stolen_is_forgotten() {
    let (mut server, mut conns) = two_readers();
    let (req, replies) = pipeline();
    conns[0].write_all(&req).unwrap();
    conns[2].write_all(&req).unwrap();
    let gone = conns.remove(2);
    reset_close(gone);
    read_expected(&mut conns[0], &replies, "connection 0");
    let closed = wait_until(Duration::from_secs(10), || {
        stat_u64(&stats(&mut conns[1], ""), "curr_connections") == 3
    });
    assert!(closed, "the closed connection is still counted open");
    let mut fresh = server.connect();
    assert_eq!(
        request(&mut fresh, b"get k1\r\n"),
        value_reply("k1", 0, b"v1")
    );
    assert!(server.stop().success());
}

#[test]
fn shutdown_answers_batches_still_queued_or_stolen() {
    let (mut server, mut conns) = two_readers();
    let (req, replies) = pipeline();
    conns[0].write_all(&req).unwrap();
    conns[2].write_all(&req).unwrap();
    // Let the requests reach the server, then stop it with 100 ms of work
    // queued on reader 0.
    std::thread::sleep(Duration::from_millis(20));
    assert!(server.stop().success());
    for c in [0, 2] {
        let (got, end) = read_until_eof(&mut conns[c], Duration::from_secs(10), 1 << 20);
        assert_eq!(
            show(&got),
            show(&replies),
            "connection {c} at shutdown ({end:?})"
        );
    }
}
