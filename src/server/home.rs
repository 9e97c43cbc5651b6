//! The connections one thread owns, any of which may be away (its batch
//! queued or executing, maybe on another thread).
//!
//! Every pattern serves its connections through a home: the event loops
//! keep one whose batches they execute themselves; worker-pool's dispatch
//! thread keeps one whose batches its workers execute; each work-stealing
//! reader keeps one that whoever holds its lock moves along.
//!
//! A connection is *home* between batches: then its owner reads, parses
//! and writes it, and readiness events act on it at once. While its batch
//! is *away* (queued or executing elsewhere), events are noted and replayed
//! when the batch comes back ([`Home::finish`]). Every method that moves a
//! connection along returns the batch it parsed, if any, for the caller to
//! send where its pattern executes batches.

use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::{Events, Poll, Registry, Token};
use slab::Slab;

use super::batch::{advance, Batch, Step};
use super::connection::{Connection, Readiness};
use super::listener::{connection_closed, Accepted};
use super::polling::DRAIN_TIMEOUT;
use super::tls_io::TlsIo;
use crate::engine::stats::ThreadStats;
use crate::engine::Engine;

/// How long the shutdown drain sleeps at most before it tries every
/// connection's pending output again.
const DRAIN_POLL: Duration = Duration::from_millis(50);
/// How often `--idle-timeout` is checked.
const IDLE_CHECK: Duration = Duration::from_secs(1);

/// One thread's connections, and how many of them are away.
pub struct Home {
    clients: Slab<Client>,
    /// The owner's poll, where the connections are registered (by slab key).
    registry: Registry,
    /// Connections whose batch is queued somewhere or executing.
    away: usize,
    /// `--idle-timeout`, if set.
    idle_timeout: Option<Duration>,
    last_idle_check: Instant,
}

/// A connection as its owner sees it.
struct Client {
    /// The connection while it is home; `None` while its batch is away.
    batch: Option<Batch>,
    /// Readiness events that came while the batch was away.
    missed: Readiness,
}

impl Client {
    /// The connection, unless its batch is away (idle checks and the
    /// shutdown drain skip busy connections).
    fn conn(&self) -> Option<&Connection> {
        self.batch.as_ref().map(|b| &b.conn)
    }

    fn conn_mut(&mut self) -> Option<&mut Connection> {
        self.batch.as_mut().map(|b| &mut b.conn)
    }
}

/// The thread moving a home's connections along: the engine they are
/// served by, and the statistics that thread counts its work in.
pub struct Hands {
    pub engine: Arc<Engine>,
    pub stats: Arc<ThreadStats>,
}

impl Home {
    /// An empty home whose connections are registered in `registry`,
    /// closed after `idle_timeout` seconds of silence (`--idle-timeout`; 0:
    /// never).
    pub fn new(registry: Registry, idle_timeout: u64) -> Home {
        Home {
            clients: Slab::new(),
            registry,
            away: 0,
            idle_timeout: (idle_timeout > 0).then(|| Duration::from_secs(idle_timeout)),
            last_idle_check: Instant::now(),
        }
    }

    /// Takes in a new connection, registered for reading, and serves it at
    /// once: its first requests may have come with it.
    #[must_use]
    pub fn add(&mut self, accepted: Accepted, hands: &Hands) -> Option<Batch> {
        let engine = &hands.engine;
        let tls = match (accepted.tls, &engine.tls) {
            (true, Some(tls)) => match tls.session() {
                Ok(session) => Some(TlsIo::new(session, Arc::clone(&tls.counters))),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot start a TLS session");
                    connection_closed(engine);
                    return None;
                }
            },
            _ => None,
        };
        let entry = self.clients.vacant_entry();
        let i = entry.key();
        let mut conn = Connection::new(accepted.stream, engine.settings.stamp_arrivals, tls);
        if let Err(e) = conn.register(&self.registry, Token(i)) {
            tracing::warn!(error = %e, "cannot register connection");
            connection_closed(&hands.engine);
            return None;
        }
        entry.insert(Client {
            batch: Some(Batch::new(i, conn)),
            missed: Readiness::default(),
        });
        self.serve(i, hands)
    }

    /// A readiness event for connection `i`: it is served now if it is
    /// home, or when its batch comes back.
    #[must_use]
    pub fn on_event(&mut self, i: usize, readiness: Readiness, hands: &Hands) -> Option<Batch> {
        self.clients.get_mut(i)?.missed.merge(readiness);
        self.serve(i, hands)
    }

    /// A batch is back, executed: its connection moves on.
    #[must_use]
    pub fn finish(&mut self, batch: Batch, hands: &Hands) -> Option<Batch> {
        self.away -= 1;
        let i = batch.token;
        self.clients.get_mut(i)?.batch = Some(batch);
        self.serve(i, hands)
    }

    /// How many connections are away.
    pub fn away(&self) -> usize {
        self.away
    }

    /// Moves connection `i` along, unless its batch is away: replays the
    /// readiness it missed, writes, reads and parses; the batch if it
    /// parsed requests. While it stays home it is watched for writability
    /// exactly while output is pending.
    fn serve(&mut self, i: usize, hands: &Hands) -> Option<Batch> {
        let client = &mut self.clients[i];
        let mut batch = client.batch.take()?;
        batch.conn.on_event(std::mem::take(&mut client.missed));
        let step = advance(&mut batch, &hands.engine, &hands.stats);
        let registered = match step {
            Step::Home => batch.conn.update_interest(&self.registry, Token(i)),
            Step::Sent => {
                self.away += 1;
                return Some(batch);
            }
            Step::Close => Ok(()),
        };
        client.batch = Some(batch);
        if step == Step::Close || registered.is_err() {
            self.close(i, &hands.engine);
        }
        None
    }

    /// Forgets connection `i`. One whose batch is away (only at shutdown,
    /// past the drain deadline) closes when its batch is dropped.
    fn close(&mut self, i: usize, engine: &Engine) {
        let client = self.clients.remove(i);
        if let Some(mut batch) = client.batch {
            let _ = self.registry.deregister(&mut batch.conn.stream);
        }
        connection_closed(engine);
    }

    /// `--idle-timeout`: about once a second, closes the connections whose
    /// client has been silent for longer than the timeout. One that is
    /// away is busy, not idle.
    pub fn close_idle(&mut self, engine: &Engine) {
        let Some(timeout) = self.idle_timeout else {
            return;
        };
        let now = Instant::now();
        if now.duration_since(self.last_idle_check) < IDLE_CHECK {
            return;
        }
        self.last_idle_check = now;
        let idle: Vec<usize> = (self.clients.iter())
            .filter(|(_, c)| c.conn().is_some_and(|c| c.is_idle(now, timeout)))
            .map(|(i, _)| i)
            .collect();
        for i in idle {
            self.close(i, engine);
        }
    }

    /// Shutdown's first step: reads what clients sent before the signal,
    /// whose readiness events may not have been taken; the batches parsed.
    pub fn last_call(&mut self, hands: &Hands) -> Vec<Batch> {
        let keys: Vec<usize> = self.clients.iter().map(|(i, _)| i).collect();
        let mut batches = Vec::new();
        for i in keys {
            if let Some(conn) = self.clients.get_mut(i).and_then(Client::conn_mut) {
                conn.expect_input();
                batches.extend(self.serve(i, hands));
            }
        }
        batches
    }

    /// Shutdown's last step: waits, up to [`DRAIN_TIMEOUT`], for every
    /// connection's pending output to be written (polling `poll`, where
    /// they are registered), then closes them all.
    pub fn close_all(&mut self, poll: &mut Poll, hands: &Hands) {
        let deadline = Instant::now() + DRAIN_TIMEOUT;
        let mut events = Events::with_capacity(256);
        loop {
            let mut pending = false;
            for conn in self.clients.iter_mut().filter_map(|(_, c)| c.conn_mut()) {
                if conn.pending_output() > 0 {
                    pending |= matches!(conn.flush(&hands.stats), Ok(false));
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if !pending || left.is_zero() {
                break;
            }
            let _ = poll.poll(&mut events, Some(left.min(DRAIN_POLL)));
        }
        let keys: Vec<usize> = self.clients.iter().map(|(i, _)| i).collect();
        for i in keys {
            self.close(i, &hands.engine);
        }
    }
}
