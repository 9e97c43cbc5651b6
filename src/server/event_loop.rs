//! A readiness event loop over many connections: read, parse, execute,
//! write, all on one thread. basic runs one with the listener in it, and
//! reuseport one per listener; multi-reader runs one per reader thread,
//! fed with connections by its acceptor.
//!
//! It serves its connections as the batch patterns do (a [`Home`], whose
//! batches it executes itself), so that one state machine serves every
//! pattern. A connection is parsed at most `-R` requests at a time; when
//! its next batch is ready as soon as one is done, it waits behind the
//! other connections until the next round (memcached's `conn_yields`).
//! What this costs, measured as valgrind's count of the whole server's
//! user-space instructions per request (kvbench closed loop, 3 s): basic
//! 2179 before -> 2131 on `uniform` and 1547 -> 1564 on `pipelined`,
//! multi-reader 2170 -> 2124 and 1552 -> 1567; but the loop it replaced,
//! given the same two shortcuts in `Connection` (no parse of an empty
//! buffer, no write path without output), would take 1920 and 1537 for
//! basic. So one serving machine costs about 200 instructions per request
//! at depth 1 (the batch's trips through its home), about 1% of the CPU
//! a request takes there (89% of it in the kernel), and 30 pipelined.

use std::collections::VecDeque;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use mio::{Events, Poll, Token};

use super::acceptor::ReaderWiring;
use super::batch::{execute_batch, Batch};
use super::connection::Readiness;
use super::home::{Hands, Home};
use super::listener::{accept_pending, Accepted, Listeners};
use super::notifier::Notifier;
use super::polling::{
    end_round, wait_for_events, wire_poll, ACCEPT_RETRY, DRAIN_TIMEOUT, LISTENER, POLL_TIMEOUT,
    WAKER,
};
use super::shutdown::Shutdown;
use crate::engine::stats::Role;
use crate::engine::Engine;
use crate::store::unix_now;

/// Where an event loop's connections come from.
enum Intake {
    /// basic, reuseport: the loop owns its listeners and accepts itself.
    Listener(Listeners),
    /// multi-reader: an acceptor thread sends connections here.
    Inbox(Receiver<Accepted>),
}

/// One thread's event loop. Wiring ([`EventLoop::with_listener`],
/// [`EventLoop::reader`]) can fail; running ([`EventLoop::run`]) does not.
pub struct EventLoop {
    poll: Poll,
    intake: Intake,
    notifier: Arc<Notifier>,
    home: Home,
    /// Batches parsed and not executed yet: those of this round, then
    /// those that yielded to them.
    queue: VecDeque<Batch>,
    retry_accept: bool,
    hands: Hands,
    shutdown: Arc<Shutdown>,
}

impl EventLoop {
    /// basic's loop, or one of reuseport's: it accepts on `listener` itself.
    pub fn with_listener(
        mut listeners: Listeners,
        engine: &Arc<Engine>,
        shutdown: &Arc<Shutdown>,
    ) -> io::Result<EventLoop> {
        let wiring = wire_poll(Some(&mut listeners), shutdown)?;
        let intake = Intake::Listener(listeners);
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
            home: Home::new(poll.registry().try_clone()?, engine.settings.idle_timeout),
            poll,
            intake,
            notifier,
            queue: VecDeque::new(),
            retry_accept: false,
            hands: Hands {
                engine: Arc::clone(engine),
                stats: engine.stats.register(role),
            },
            shutdown: Arc::clone(shutdown),
        })
    }

    /// The loop, until shutdown.
    pub fn run(mut self) {
        let mut events = Events::with_capacity(1024);
        loop {
            let timeout = match (self.queue.is_empty(), self.retry_accept) {
                (false, _) => Duration::ZERO,
                (true, true) => ACCEPT_RETRY,
                (true, false) => POLL_TIMEOUT,
            };
            let timed = self.hands.engine.settings.stamp_arrivals;
            if !wait_for_events(&mut self.poll, &mut events, timeout, timed) {
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
                        let batch = self.home.on_event(i, Readiness::of(event), &self.hands);
                        self.queue.extend(batch);
                    }
                }
            }
            self.run_queue();
            if self.retry_accept {
                self.accept();
            }
            self.home.close_idle(&self.hands.engine);
            end_round(&self.hands.stats, started);
        }
    }

    /// Executes the batches queued now, oldest first. A connection whose
    /// next batch is ready at once yields: it is queued for the next round.
    fn run_queue(&mut self) {
        let Hands { engine, stats } = &self.hands;
        let now = unix_now();
        for _ in 0..self.queue.len() {
            let Some(mut batch) = self.queue.pop_front() else {
                break;
            };
            execute_batch(&mut batch, engine, stats, now, None);
            if let Some(next) = self.home.finish(batch, &self.hands) {
                stats.conn_yields.incr();
                self.queue.push_back(next);
            }
        }
    }

    fn accept(&mut self) {
        let Intake::Listener(listeners) = &self.intake else {
            return;
        };
        let mut accepted = Vec::new();
        let Hands { engine, stats } = &self.hands;
        let result = accept_pending(listeners, engine, stats, |a| accepted.push(a));
        self.retry_accept = result.is_err();
        if let Err(e) = result {
            tracing::warn!(error = %e, "accept failed; retrying");
        }
        for connection in accepted {
            let batch = self.home.add(connection, &self.hands);
            self.queue.extend(batch);
        }
    }

    fn take_inbox(&mut self) {
        self.notifier.clear();
        let Intake::Inbox(inbox) = &self.intake else {
            return;
        };
        for connection in inbox.try_iter() {
            self.hands.stats.connections.incr();
            let batch = self.home.add(connection, &self.hands);
            self.queue.extend(batch);
        }
    }

    /// Shutdown: stop accepting, answer every request already received,
    /// give the replies a bounded time to drain, close everything.
    fn drain(&mut self) {
        if let Intake::Listener(listeners) = &mut self.intake {
            listeners.deregister(self.poll.registry());
        }
        let deadline = Instant::now() + DRAIN_TIMEOUT;
        self.take_inbox();
        let batches = self.home.last_call(&self.hands);
        self.queue.extend(batches);
        while !self.queue.is_empty() && Instant::now() < deadline {
            self.run_queue();
        }
        self.home.close_all(&mut self.poll, &self.hands);
    }
}
