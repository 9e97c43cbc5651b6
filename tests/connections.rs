//! Many connections in every pattern: 10,000 idle clients are held while
//! another is served, and closing them returns the server's connection
//! count and open file descriptors to their baseline (no leak).

#[macro_use]
mod common;

use std::net::TcpStream;
use std::sync::Mutex;
use std::time::Duration;

use common::{fd_count, request, stat_u64, stats, wait_until, KvServer};

const IDLE_CONNECTIONS: usize = 10_000;

/// One pattern at a time: each holds 10,000 client sockets in this
/// process, and two at once would pass the open-file limit.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn holds_ten_thousand_idle_connections(pattern: &str) {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut server = KvServer::start(pattern, &["-c", "12000", "-t", "2"]);
    let mut client = server.connect();
    let base_conns = stat_u64(&stats(&mut client, ""), "curr_connections");
    let base_fds = fd_count(server.pid());

    let idle: Vec<TcpStream> = (0..IDLE_CONNECTIONS)
        .map(|i| {
            TcpStream::connect(server.addr())
                .unwrap_or_else(|e| panic!("{pattern}: idle connection {i}: {e}"))
        })
        .collect();
    let all_counted = wait_until(Duration::from_secs(10), || {
        stat_u64(&stats(&mut client, ""), "curr_connections")
            >= base_conns + IDLE_CONNECTIONS as u64
    });
    assert!(
        all_counted,
        "{pattern}: not all idle connections were accepted"
    );

    // A busy client is still served while the idle ones are held.
    assert_eq!(
        request(&mut client, b"set k 0 0 2\r\nhi\r\n"),
        b"STORED\r\n",
        "{pattern}"
    );
    assert_eq!(
        request(&mut client, b"get k\r\n"),
        b"VALUE k 0 2\r\nhi\r\nEND\r\n",
        "{pattern}"
    );
    // A fresh connection too.
    let mut fresh = server.connect();
    assert_eq!(
        request(&mut fresh, b"get k\r\n"),
        b"VALUE k 0 2\r\nhi\r\nEND\r\n"
    );
    drop(fresh);

    drop(idle);
    let back_to_baseline = wait_until(Duration::from_secs(10), || {
        stat_u64(&stats(&mut client, ""), "curr_connections") == base_conns
            && fd_count(server.pid()) <= base_fds
    });
    assert!(
        back_to_baseline,
        "{pattern}: curr_connections {} (baseline {base_conns}), fds {} (baseline {base_fds})",
        stat_u64(&stats(&mut client, ""), "curr_connections"),
        fd_count(server.pid())
    );
    assert!(server.stop().success(), "{pattern}: unclean exit");
}

per_pattern!(
    holds_ten_thousand_idle_connections,
    super::holds_ten_thousand_idle_connections
);
