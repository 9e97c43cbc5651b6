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

use std::io;
use std::sync::Arc;
use std::thread;
use std::time::Instant;

use crossbeam_channel::Sender;
use mio::net::{TcpListener, TcpStream};
use mio::Events;

use crate::engine::stats::Role;
use crate::engine::Engine;
use crate::server::event_loop::{wire_poll, EventLoop, Intake, ACCEPT_RETRY, POLL_TIMEOUT};
use crate::server::listener::{accept_pending, connection_closed};
use crate::server::notifier::Notifier;
use crate::server::shutdown::Shutdown;

/// Starts `readers` reader threads and accepts on the calling thread until shutdown.
pub fn run(
    mut listener: TcpListener,
    readers: usize,
    engine: &Arc<Engine>,
    shutdown: &Arc<Shutdown>,
) -> anyhow::Result<()> {
    // The waker only serves shutdown: the acceptor has no inbox.
    let (mut poll, _waker) = wire_poll(Some(&mut listener), shutdown)?;
    let stats = engine.stats.register(Role::Acceptor);

    let mut inboxes: Vec<(Sender<TcpStream>, Arc<Notifier>)> = Vec::new();
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

    let mut next = 0;
    let mut events = Events::with_capacity(64);
    let mut retry = false;
    while !shutdown.is_requested() {
        let timeout = if retry { ACCEPT_RETRY } else { POLL_TIMEOUT };
        if let Err(e) = poll.poll(&mut events, Some(timeout)) {
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e.into());
            }
        }
        let started = Instant::now();
        let result = accept_pending(&listener, engine, &stats, |stream| {
            let (inbox, notifier) = &inboxes[next];
            next = (next + 1) % inboxes.len();
            match inbox.send(stream) {
                Ok(()) => notifier.notify(),
                Err(_) => connection_closed(engine),
            }
        });
        retry = result.is_err();
        stats.busy_us.add(started.elapsed().as_micros() as u64);
    }
    drop(listener);
    drop(inboxes);
    for t in threads {
        let _ = t.join();
    }
    Ok(())
}
