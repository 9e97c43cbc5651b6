//! The acceptor thread of the patterns whose readers own connections
//! (multi-reader, work-stealing): it only accepts, and deals each new
//! connection to the next reader in turn over a channel, waking it
//! (memcached's `dispatch_conn_new`). It also keeps the readers' threads,
//! to wait for them at shutdown.

use std::io;
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Instant;

use crate::server::listener::{accept_pending, connection_closed, Accepted, Listeners};
use crossbeam_channel::{Receiver, Sender};
use mio::{Events, Poll};

use crate::engine::stats::{Role, ThreadStats};
use crate::engine::Engine;
use crate::server::notifier::Notifier;
use crate::server::polling::{wire_poll, ACCEPT_RETRY, POLL_TIMEOUT};
use crate::server::shutdown::Shutdown;

/// What a reader of the acceptor's starts with.
pub struct ReaderWiring {
    pub poll: Poll,
    pub notifier: Arc<Notifier>,
    pub inbox: Receiver<Accepted>,
}

/// The accepting thread's listener and poller, and its readers.
pub struct Acceptor {
    poll: Poll,
    listeners: Listeners,
    stats: Arc<ThreadStats>,
    /// Where each reader's new connections go, and how it is woken.
    inboxes: Vec<(Sender<Accepted>, Arc<Notifier>)>,
    readers: Vec<JoinHandle<()>>,
}

impl Acceptor {
    /// Registers the listener, and a waker that only shutdown wakes (the
    /// acceptor has no inbox). Made before the readers, so that `stats
    /// threads` lists the acceptor first.
    pub fn new(
        mut listeners: Listeners,
        engine: &Engine,
        shutdown: &Shutdown,
    ) -> io::Result<Acceptor> {
        let (poll, _waker) = wire_poll(Some(&mut listeners), shutdown)?;
        Ok(Acceptor {
            poll,
            listeners,
            stats: engine.stats.register(Role::Acceptor),
            inboxes: Vec::new(),
            readers: Vec::new(),
        })
    }

    /// The next reader's poll, with the waker that the acceptor and
    /// shutdown wake it by, and the channel it takes its new connections from.
    pub fn wire_reader(&mut self, shutdown: &Shutdown) -> io::Result<ReaderWiring> {
        let (poll, notifier) = wire_poll(None, shutdown)?;
        let (sender, inbox) = crossbeam_channel::unbounded();
        self.inboxes.push((sender, Arc::clone(&notifier)));
        Ok(ReaderWiring {
            poll,
            notifier,
            inbox,
        })
    }

    /// Starts the next reader's thread, `reader-N`.
    pub fn start_reader(&mut self, reader: impl FnOnce() + Send + 'static) -> io::Result<()> {
        let name = format!("reader-{}", self.readers.len());
        self.readers
            .push(thread::Builder::new().name(name).spawn(reader)?);
        Ok(())
    }

    /// Accepts on the calling thread until shutdown, dealing connections
    /// to the readers' inboxes round-robin; then closes the inboxes and
    /// waits for the readers to finish.
    pub fn run(mut self, engine: &Engine, shutdown: &Shutdown) -> io::Result<()> {
        let mut next = 0;
        let mut events = Events::with_capacity(64);
        let mut retry = false;
        while !shutdown.is_requested() {
            let timeout = if retry { ACCEPT_RETRY } else { POLL_TIMEOUT };
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
            let started = Instant::now();
            let result = accept_pending(&self.listeners, engine, &self.stats, |accepted| {
                let (inbox, notifier) = &self.inboxes[next];
                next = (next + 1) % self.inboxes.len();
                match inbox.send(accepted) {
                    Ok(()) => notifier.notify(),
                    Err(_) => connection_closed(engine),
                }
            });
            retry = result.is_err();
            self.stats.busy_us.add(started.elapsed().as_micros() as u64);
        }
        self.inboxes.clear();
        for reader in self.readers {
            let _ = reader.join();
        }
        Ok(())
    }
}
