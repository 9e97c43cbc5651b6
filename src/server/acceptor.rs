//! The acceptor thread of the patterns whose readers own connections
//! (multi-reader, work-stealing): it only accepts, and deals each new
//! connection to the next reader in turn over a channel, waking it
//! (memcached's `dispatch_conn_new`).

use std::io;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use crossbeam_channel::Sender;
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Poll};

use crate::engine::stats::{Role, ThreadStats};
use crate::engine::Engine;
use crate::server::event_loop::{wire_poll, ACCEPT_RETRY, POLL_TIMEOUT};
use crate::server::listener::{accept_pending, connection_closed};
use crate::server::notifier::Notifier;
use crate::server::shutdown::Shutdown;

/// Where the acceptor sends a reader its new connections, and how it wakes it.
pub type Inbox = (Sender<TcpStream>, Arc<Notifier>);

/// The accepting thread's listener, poller and statistics.
pub struct Acceptor {
    poll: Poll,
    listener: TcpListener,
    stats: Arc<ThreadStats>,
}

impl Acceptor {
    /// Registers the listener, and a waker that only shutdown wakes (the
    /// acceptor has no inbox). Made before the readers, so that `stats
    /// threads` lists the acceptor first.
    pub fn new(
        mut listener: TcpListener,
        engine: &Engine,
        shutdown: &Shutdown,
    ) -> io::Result<Acceptor> {
        let (poll, _waker) = wire_poll(Some(&mut listener), shutdown)?;
        Ok(Acceptor {
            poll,
            listener,
            stats: engine.stats.register(Role::Acceptor),
        })
    }

    /// Accepts and deals until shutdown (see [`deal`]), then closes the
    /// readers' inboxes and waits for the `readers` to finish: the
    /// acceptor thread's whole life in multi-reader and work-stealing.
    pub fn run(
        self,
        inboxes: Vec<Inbox>,
        readers: Vec<JoinHandle<()>>,
        engine: &Engine,
        shutdown: &Shutdown,
    ) -> io::Result<()> {
        deal(
            self.poll,
            self.listener,
            &inboxes,
            engine,
            &self.stats,
            shutdown,
        )?;
        drop(inboxes);
        for reader in readers {
            let _ = reader.join();
        }
        Ok(())
    }
}

/// Accepts on the calling thread until shutdown, dealing connections to
/// `inboxes` round-robin.
fn deal(
    mut poll: Poll,
    listener: TcpListener,
    inboxes: &[Inbox],
    engine: &Engine,
    stats: &ThreadStats,
    shutdown: &Shutdown,
) -> io::Result<()> {
    let mut next = 0;
    let mut events = Events::with_capacity(64);
    let mut retry = false;
    while !shutdown.is_requested() {
        let timeout = if retry { ACCEPT_RETRY } else { POLL_TIMEOUT };
        if let Err(e) = poll.poll(&mut events, Some(timeout)) {
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
        let started = Instant::now();
        let result = accept_pending(&listener, engine, stats, |stream| {
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
    Ok(())
}
