//! A readiness event loop over many connections: read, parse, execute,
//! write. basic runs one with the listener in it; multi-reader runs one per
//! reader thread, fed with connections by its acceptor.

use std::collections::VecDeque;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use slab::Slab;

use super::connection::{Connection, Readiness, Served};
use super::listener::{accept_pending, connection_closed};
use super::notifier::Notifier;
use super::shutdown::Shutdown;
use crate::engine::stats::{Role, ThreadStats};
use crate::engine::Engine;

pub const WAKER: Token = Token(usize::MAX);
pub const LISTENER: Token = Token(usize::MAX - 1);

/// How long a loop sleeps at most, so a lost wake-up costs only this delay.
pub const POLL_TIMEOUT: Duration = Duration::from_millis(500);
/// How soon a loop retries accepting after an error such as EMFILE.
pub const ACCEPT_RETRY: Duration = Duration::from_millis(10);
/// The most requests a connection is served at shutdown, so a client that
/// keeps sending cannot hold the process up.
const DRAIN_REQUESTS: usize = 10_000;
/// How long shutdown waits for replies to drain to slow clients.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(3);

/// Where an event loop's connections come from.
pub enum Intake {
    /// basic: the loop owns the listener and accepts itself.
    Listener(TcpListener),
    /// multi-reader: an acceptor thread sends connections here.
    Inbox(Receiver<TcpStream>),
}

/// One thread's event loop. Wiring ([`EventLoop::new`]) can fail; running
/// ([`EventLoop::run`]) does not.
pub struct EventLoop {
    poll: Poll,
    intake: Intake,
    notifier: Arc<Notifier>,
    connections: Slab<Connection>,
    /// Connections that used up their request budget with work left.
    yielded: VecDeque<usize>,
    retry_accept: bool,
    idle_check: IdleCheck,
    engine: Arc<Engine>,
    stats: Arc<ThreadStats>,
    shutdown: Arc<Shutdown>,
}

impl EventLoop {
    pub fn new(
        mut intake: Intake,
        role: Role,
        engine: &Arc<Engine>,
        shutdown: &Arc<Shutdown>,
    ) -> io::Result<EventLoop> {
        let listener = match &mut intake {
            Intake::Listener(listener) => Some(listener),
            Intake::Inbox(_) => None,
        };
        let (poll, notifier) = wire_poll(listener, shutdown)?;
        Ok(EventLoop {
            poll,
            intake,
            notifier,
            connections: Slab::new(),
            yielded: VecDeque::new(),
            retry_accept: false,
            idle_check: IdleCheck::new(engine.settings.idle_timeout),
            engine: Arc::clone(engine),
            stats: engine.stats.register(role),
            shutdown: Arc::clone(shutdown),
        })
    }

    /// What other threads use to wake this loop (new connections).
    pub fn notifier(&self) -> Arc<Notifier> {
        Arc::clone(&self.notifier)
    }

    pub fn run(mut self) {
        let mut events = Events::with_capacity(1024);
        loop {
            let timeout = match (self.yielded.is_empty(), self.retry_accept) {
                (false, _) => Duration::ZERO,
                (true, true) => ACCEPT_RETRY,
                (true, false) => POLL_TIMEOUT,
            };
            if !wait_for_events(&mut self.poll, &mut events, timeout) {
                continue;
            }
            let started = Instant::now();
            if self.shutdown.is_requested() {
                self.drain();
                return;
            }
            for event in events.iter() {
                match event.token() {
                    WAKER => self.take_inbox(),
                    LISTENER => self.accept(),
                    Token(i) => {
                        if let Some(conn) = self.connections.get_mut(i) {
                            conn.on_event(Readiness::of(event));
                            self.serve(i);
                        }
                    }
                }
            }
            for _ in 0..self.yielded.len() {
                if let Some(i) = self.yielded.pop_front() {
                    self.serve(i);
                }
            }
            if self.retry_accept {
                self.accept();
            }
            for i in self.idle_check.expired(&self.connections, |c| Some(c)) {
                self.close(i);
            }
            end_round(&self.stats, started);
        }
    }

    fn serve(&mut self, i: usize) {
        let Some(conn) = self.connections.get_mut(i) else {
            return;
        };
        let budget = self.engine.settings.reqs_per_event;
        let served = conn.serve(&self.engine, &self.stats, budget);
        if served != Served::Close
            && conn
                .update_interest(self.poll.registry(), Token(i))
                .is_err()
        {
            return self.close(i);
        }
        match served {
            Served::Close => self.close(i),
            Served::Yield => self.yielded.push_back(i),
            Served::Idle | Served::WaitWritable => {}
        }
    }

    fn accept(&mut self) {
        let Intake::Listener(listener) = &self.intake else {
            return;
        };
        let mut accepted = Vec::new();
        let result = accept_pending(listener, &self.engine, &self.stats, |s| accepted.push(s));
        self.retry_accept = result.is_err();
        if let Err(e) = result {
            tracing::warn!(error = %e, "accept failed; retrying");
        }
        for stream in accepted {
            self.add(stream);
        }
    }

    fn take_inbox(&mut self) {
        self.notifier.clear();
        let Intake::Inbox(inbox) = &self.intake else {
            return;
        };
        let streams: Vec<TcpStream> = inbox.try_iter().collect();
        for stream in streams {
            self.stats.connections.incr();
            self.add(stream);
        }
    }

    fn add(&mut self, stream: TcpStream) {
        let entry = self.connections.vacant_entry();
        let i = entry.key();
        let mut conn = Connection::new(stream);
        let interest = Interest::READABLE | Interest::WRITABLE;
        if let Err(e) = self
            .poll
            .registry()
            .register(&mut conn.stream, Token(i), interest)
        {
            tracing::warn!(error = %e, "cannot register connection");
            connection_closed(&self.engine);
            return;
        }
        entry.insert(conn);
        self.serve(i);
    }

    fn close(&mut self, i: usize) {
        let mut conn = self.connections.remove(i);
        let _ = self.poll.registry().deregister(&mut conn.stream);
        connection_closed(&self.engine);
    }

    /// Shutdown: stop accepting, answer every request already received,
    /// give the replies a bounded time to drain, close everything.
    fn drain(&mut self) {
        if let Intake::Listener(listener) = &mut self.intake {
            let _ = self.poll.registry().deregister(listener);
        }
        self.take_inbox();
        let keys: Vec<usize> = self.connections.iter().map(|(i, _)| i).collect();
        for &i in &keys {
            if let Some(conn) = self.connections.get_mut(i) {
                // The last poll's events were not taken: read regardless.
                conn.expect_input();
                conn.serve(&self.engine, &self.stats, DRAIN_REQUESTS);
                conn.set_closing();
            }
        }
        drain_output(&mut self.poll, &mut self.connections, &self.stats, |c| {
            Some(c)
        });
        for i in keys {
            if self.connections.contains(i) {
                self.close(i);
            }
        }
    }
}

/// Waits up to `timeout` for the next round of events. `false` if the poll
/// failed (logged unless a signal interrupted it): poll again.
pub fn wait_for_events(poll: &mut Poll, events: &mut Events, timeout: Duration) -> bool {
    match poll.poll(events, Some(timeout)) {
        Ok(()) => true,
        Err(e) => {
            if e.kind() != io::ErrorKind::Interrupted {
                tracing::error!(error = %e, "poll failed");
            }
            false
        }
    }
}

/// Ends a round of events on a polling thread (event loop or dispatch):
/// counts its busy time, then gives the core away if anything else waits
/// for it. A loop that always finds events never sleeps, so the scheduler
/// otherwise preempts it for whole time slices with its connections' work
/// pending. Measured on 2 cores shared with the load generator (kvbench
/// uniform): multi-reader p99 7.8 ms -> 0.45 ms at equal throughput. An
/// idle core makes it one cheap syscall per round, not per request.
/// (worker-pool's dispatch thread without it: about 5% more throughput,
/// 50% more p99.)
pub fn end_round(stats: &ThreadStats, started: Instant) {
    stats.busy_us.add(started.elapsed().as_micros() as u64);
    std::thread::yield_now();
}

/// A poller with the listener (if the thread accepts) and a waker
/// registered, the waker also woken on shutdown: how every pattern's
/// polling thread starts.
pub fn wire_poll(
    listener: Option<&mut TcpListener>,
    shutdown: &Shutdown,
) -> io::Result<(Poll, Arc<Notifier>)> {
    let poll = Poll::new()?;
    if let Some(listener) = listener {
        poll.registry()
            .register(listener, LISTENER, Interest::READABLE)?;
    }
    let notifier = Arc::new(Notifier::new(mio::Waker::new(poll.registry(), WAKER)?));
    shutdown.watch(Arc::clone(&notifier));
    Ok((poll, notifier))
}

/// Waits, up to [`DRAIN_TIMEOUT`], for every connection's pending output
/// to be written. Shared by the event loops and worker-pool's dispatcher,
/// whose `conn_of` gives `None` for a connection a worker still has.
pub fn drain_output<T>(
    poll: &mut Poll,
    connections: &mut Slab<T>,
    stats: &ThreadStats,
    conn_of: impl Fn(&mut T) -> Option<&mut Connection>,
) {
    let deadline = Instant::now() + DRAIN_TIMEOUT;
    let mut events = Events::with_capacity(256);
    loop {
        let mut pending = false;
        for (_, entry) in connections.iter_mut() {
            let Some(conn) = conn_of(entry) else {
                continue;
            };
            if conn.pending_output() > 0 {
                pending |= matches!(conn.flush(stats), Ok(false));
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if !pending || left.is_zero() {
            return;
        }
        let _ = poll.poll(&mut events, Some(left.min(Duration::from_millis(50))));
    }
}

/// `--idle-timeout`: about once a second, finds connections whose client
/// has been silent for longer than the timeout.
pub struct IdleCheck {
    timeout: Option<Duration>,
    last: Instant,
}

impl IdleCheck {
    pub fn new(timeout_secs: u64) -> IdleCheck {
        IdleCheck {
            timeout: (timeout_secs > 0).then(|| Duration::from_secs(timeout_secs)),
            last: Instant::now(),
        }
    }

    /// The keys of idle connections, if a check is due; `conn_of` gives
    /// `None` for a connection that is busy elsewhere, which is not idle.
    pub fn expired<T>(
        &mut self,
        connections: &Slab<T>,
        conn_of: impl Fn(&T) -> Option<&Connection>,
    ) -> Vec<usize> {
        let now = Instant::now();
        let Some(timeout) = self.timeout else {
            return Vec::new();
        };
        if now.duration_since(self.last) < Duration::from_secs(1) {
            return Vec::new();
        }
        self.last = now;
        connections
            .iter()
            .filter(|(_, c)| conn_of(c).is_some_and(|c| c.is_idle(now, timeout)))
            .map(|(i, _)| i)
            .collect()
    }
}
