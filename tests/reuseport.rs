//! reuseport seen from outside: the kernel deals connections over every
//! loop's listener, each loop serves what it took with the one shared
//! cache, and `stats threads` counts each loop's connections.
//!
//! Assertions are on counts, never on timings: the machine running the
//! tests is shared. kvserve-only.

mod common;

use std::net::TcpStream;

use common::*;

/// Loops of the server under test.
const LOOPS: usize = 4;
/// Connections opened: with 64 dealt at random over 4 loops, one loop
/// gets none with probability 4 (3/4)^64, under 1 in 10 million.
const CONNECTIONS: usize = 64;

/// The `connections` of each loop in `stats threads`, in its order.
fn connections_per_loop(c: &mut TcpStream) -> Vec<u64> {
    let st = stats(c, "threads");
    let field = |n: usize, f: &str| {
        st.iter()
            .find(|(k, _)| *k == format!("{n}:{f}"))
            .map(|(_, v)| v.clone())
    };
    (0..)
        .map_while(|n| field(n, "role").map(|role| (n, role)))
        .map(|(n, role)| {
            assert_eq!(role, "loop", "thread {n}");
            field(n, "connections").unwrap().parse().unwrap()
        })
        .collect()
}

#[test]
fn every_loop_takes_connections_and_serves_the_one_cache() {
    let mut server = KvServer::start("reuseport", &["-t", &LOOPS.to_string()]);
    let mut first = server.connect();
    assert_eq!(
        request(&mut first, b"set shared 0 0 3\r\none\r\n"),
        b"STORED\r\n"
    );
    // Each connection reads what the first wrote, whichever loop took it.
    let mut conns: Vec<TcpStream> = (0..CONNECTIONS).map(|_| server.connect()).collect();
    for c in &mut conns {
        assert_eq!(
            request(c, b"get shared\r\n"),
            value_reply("shared", 0, b"one")
        );
    }
    let per_loop = connections_per_loop(&mut first);
    assert_eq!(per_loop.len(), LOOPS, "{per_loop:?}");
    assert_eq!(
        per_loop.iter().sum::<u64>(),
        CONNECTIONS as u64 + 1,
        "{per_loop:?}"
    );
    assert!(
        per_loop.iter().all(|&n| n > 0),
        "a loop took none: {per_loop:?}"
    );
    assert!(server.stop().success());
}
