//! A readiness event loop over many connections: read, parse, execute,
//! write. basic runs one with the listener in it; multi-reader runs one per
//! reader thread, fed with connections by its acceptor.

use std::collections::VecDeque;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Poll, Token};
use slab::Slab;

use super::acceptor::ReaderWiring;
use super::connection::{Connection, Readiness, Served};
use super::listener::{accept_pending, connection_closed};
use super::notifier::Notifier;
use super::polling::{
    drain_output, end_round, wait_for_events, wire_poll, IdleCheck, ACCEPT_RETRY, LISTENER,
    POLL_TIMEOUT, WAKER,
};
use super::shutdown::Shutdown;
use crate::engine::stats::{Role, ThreadStats};
use crate::engine::Engine;

/// The most requests a connection is served at shutdown, so a client that
/// keeps sending cannot hold the process up.
const DRAIN_REQUESTS: usize = 10_000;

/// Where an event loop's connections come from.
enum Intake {
    /// basic: the loop owns the listener and accepts itself.
    Listener(TcpListener),
    /// multi-reader: an acceptor thread sends connections here.
    Inbox(Receiver<TcpStream>),
}

/// One thread's event loop. Wiring ([`EventLoop::with_listener`],
/// [`EventLoop::reader`]) can fail; running ([`EventLoop::run`]) does not.
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
    /// basic's loop: it accepts on `listener` itself.
    pub fn with_listener(
        mut listener: TcpListener,
        engine: &Arc<Engine>,
        shutdown: &Arc<Shutdown>,
    ) -> io::Result<EventLoop> {
        let wiring = wire_poll(Some(&mut listener), shutdown)?;
        let intake = Intake::Listener(listener);
        EventLoop::new(wiring, intake, Role::Loop, engine, shutdown)
    }

    /// A multi-reader reader: an acceptor deals it connections.
    pub fn reader(
        wiring: ReaderWiring,
        engine: &Arc<Engine>,
        shutdown: &Arc<Shutdown>,
    ) -> io::Result<EventLoop> {
        let ReaderWiring {
            poll,
            notifier,
            inbox,
        } = wiring;
        let intake = Intake::Inbox(inbox);
        EventLoop::new((poll, notifier), intake, Role::Reader, engine, shutdown)
    }

    fn new(
        (poll, notifier): (Poll, Arc<Notifier>),
        intake: Intake,
        role: Role,
        engine: &Arc<Engine>,
        shutdown: &Arc<Shutdown>,
    ) -> io::Result<EventLoop> {
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
        if let Err(e) = conn.register(self.poll.registry(), Token(i)) {
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
