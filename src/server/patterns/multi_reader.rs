//! multi-reader: an acceptor and N reader event loops, like memcached.
//!
//! ```text
//!                         +--> reader 0: read, parse, execute, write
//!  clients -> acceptor ---+--> reader 1: ...
//!        (round-robin)    +--> reader N-1
//! ```
//!
//! The acceptor only accepts and hands each new connection to the next
//! reader over a channel, waking it (memcached's `dispatch_conn_new`). From
//! then on one reader serves the connection alone, so requests need no
//! hand-off; but a reader stuck with heavy connections cannot pass work to
//! an idle one: balancing is per connection, not per request.

use std::sync::Arc;
use std::thread;

use mio::net::TcpListener;

use crate::engine::stats::Role;
use crate::engine::Engine;
use crate::server::acceptor::{Acceptor, Inbox};
use crate::server::event_loop::{EventLoop, Intake};
use crate::server::shutdown::Shutdown;

/// Starts `readers` reader threads and accepts on the calling thread until shutdown.
pub fn run(
    listener: TcpListener,
    readers: usize,
    engine: &Arc<Engine>,
    shutdown: &Arc<Shutdown>,
) -> anyhow::Result<()> {
    let acceptor = Acceptor::new(listener, engine, shutdown)?;

    let mut inboxes: Vec<Inbox> = Vec::new();
    let mut threads = Vec::new();
    for n in 0..readers {
        let (tx, rx) = crossbeam_channel::unbounded();
        let event_loop = EventLoop::new(Intake::Inbox(rx), Role::Reader, engine, shutdown)?;
        inboxes.push((tx, event_loop.notifier()));
        threads.push(
            thread::Builder::new()
                .name(format!("reader-{n}"))
                .spawn(move || event_loop.run())?,
        );
    }

    acceptor.run(inboxes, threads, engine, shutdown)?;
    Ok(())
}
