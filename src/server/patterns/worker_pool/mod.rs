//! worker-pool: one dispatch thread reads every socket; N workers execute
//! and answer, like RAMCloud.
//!
//! ```text
//!            +----------------------------+   batches   +-----------+
//!  clients ->| dispatch: accept, read,    |--(queue)--->| worker 0  |--> replies
//!            | parse                      |             | worker .. |    to clients
//!            |                            |<--(done)----| worker N-1|
//!            +----------------------------+  + Waker    +-----------+
//! ```
//!
//! The dispatch thread keeps every connection in its [`Home`]. It reads a
//! connection and parses the complete requests in what arrived (up to
//! `-R`) into one *batch*, which carries the connection itself
//! (requests name their keys by offsets into its read buffer, so nothing is
//! copied). Any worker takes the batch from the shared queue, executes its
//! requests in order, writes the replies to the socket and sends the
//! connection back, so the dispatch thread's share of the work is accepting,
//! reading and parsing: replies the socket would not take are left for it to
//! write when the socket becomes writable.
//!
//! Ordering: a connection has at most one batch in flight. Its next batch is
//! parsed only when the previous one has come back, so a connection's
//! requests execute, and are answered, in the order they were sent, while
//! different connections' batches spread over all workers.
//!
//! Hand-off cost: the batches parsed in one round of the dispatch loop go out
//! at its end as at most one share per worker, queued together, so a round
//! costs one queue hand-off and at most one wake-up per worker, not one per
//! request or per connection; a worker wakes the dispatch thread once per
//! share, and those wake-ups are coalesced by its [`Notifier`]. Workers
//! sleep on a `WorkQueue` of their own (`work_queue.rs`).

mod work_queue;

use std::io;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use mio::{Events, Poll, Token};

use crate::engine::stats::{Role, ThreadStats};
use crate::engine::Engine;
use crate::server::batch::{execute_batch, Batch, SLICE};
use crate::server::connection::Readiness;
use crate::server::home::{Hands, Home};
use crate::server::listener::{accept_pending, Listeners};
use crate::server::notifier::Notifier;
use crate::server::patterns::Start;
use crate::server::polling::{
    end_round, wait_for_events, wire_poll, ACCEPT_RETRY, DRAIN_TIMEOUT, LISTENER, POLL_TIMEOUT,
    WAKER,
};
use crate::server::shutdown::Shutdown;
use work_queue::WorkQueue;

/// Starts a worker thread per `-t` and dispatches on the calling thread until shutdown.
pub fn run(start: Start) -> anyhow::Result<()> {
    let Start {
        mut listeners,
        threads: workers,
        engine,
        shutdown,
    } = start;
    let (engine, shutdown) = (&engine, &shutdown);
    let (poll, notifier) = wire_poll(Some(&mut listeners), shutdown)?;
    let queue = Arc::new(WorkQueue::new());
    let (done_tx, done_rx) = crossbeam_channel::unbounded::<Batch>();
    let stats = engine.stats.register(Role::Dispatch);

    let mut threads = Vec::new();
    for n in 0..workers {
        let (shares, tx, notifier) = (Arc::clone(&queue), done_tx.clone(), Arc::clone(&notifier));
        let (engine, stats) = (Arc::clone(engine), engine.stats.register(Role::Worker));
        let spawned = thread::Builder::new()
            .name(format!("worker-{n}"))
            .spawn(move || work(&shares, &tx, &notifier, &engine, &stats));
        match spawned {
            Ok(thread) => threads.push(thread),
            Err(e) => {
                queue.close(); // the workers already started stop
                return Err(e.into());
            }
        }
    }
    drop(done_tx);

    let mut dispatch = Dispatch {
        home: Home::new(poll.registry().try_clone()?, engine.settings.idle_timeout),
        poll,
        listeners,
        notifier,
        queue,
        workers,
        outbox: Vec::new(),
        done: done_rx,
        hands: Hands {
            engine: Arc::clone(engine),
            stats,
        },
    };
    dispatch.run(shutdown);
    dispatch.queue.close();
    drop(dispatch);
    for t in threads {
        let _ = t.join();
    }
    Ok(())
}

/// A worker's part of one dispatch round: batches of different connections.
type Share = Vec<Batch>;

/// A worker: executes shares of batches and writes their replies until the
/// queue closes, and hands the connections back, waking the dispatch thread
/// once per share.
fn work(
    queue: &WorkQueue<Share>,
    done: &Sender<Batch>,
    notifier: &Notifier,
    engine: &Engine,
    stats: &ThreadStats,
) {
    while let Some(share) = queue.pop() {
        let started = Instant::now();
        let now = crate::store::unix_now();
        for mut batch in share {
            execute_batch(&mut batch, engine, stats, now, Some(SLICE));
            if done.send(batch).is_err() {
                return;
            }
        }
        stats.busy_us.add(started.elapsed().as_micros() as u64);
        notifier.notify();
    }
}

/// The dispatch thread's state.
struct Dispatch {
    poll: Poll,
    listeners: Listeners,
    notifier: Arc<Notifier>,
    /// Every connection; those a worker has are away.
    home: Home,
    queue: Arc<WorkQueue<Share>>,
    workers: usize,
    /// Batches parsed in this round, sent to the workers at its end.
    outbox: Vec<Batch>,
    done: Receiver<Batch>,
    hands: Hands,
}

impl Dispatch {
    fn run(&mut self, shutdown: &Shutdown) {
        let mut events = Events::with_capacity(1024);
        let mut retry_accept = false;
        while !shutdown.is_requested() {
            let timeout = if retry_accept {
                ACCEPT_RETRY
            } else {
                POLL_TIMEOUT
            };
            let timed = self.hands.engine.settings.stamp_arrivals;
            if !wait_for_events(&mut self.poll, &mut events, timeout, timed) {
                continue;
            }
            let started = Instant::now();
            let mut accept = retry_accept;
            for event in events.iter() {
                match event.token() {
                    WAKER => self.take_done(),
                    LISTENER => accept = true,
                    Token(i) => {
                        let batch = self.home.on_event(i, Readiness::of(event), &self.hands);
                        self.outbox.extend(batch);
                    }
                }
            }
            if accept {
                retry_accept = self.accept().is_err();
            }
            self.send_outbox();
            self.home.close_idle(&self.hands.engine);
            end_round(&self.hands.stats, started);
        }
        self.drain();
    }

    fn accept(&mut self) -> io::Result<()> {
        let mut accepted = Vec::new();
        let Hands { engine, stats } = &self.hands;
        accept_pending(&self.listeners, engine, stats, |a| accepted.push(a))?;
        for connection in accepted {
            let batch = self.home.add(connection, &self.hands);
            self.outbox.extend(batch);
        }
        Ok(())
    }

    /// Connections that workers handed back move on.
    fn take_done(&mut self) {
        self.notifier.clear();
        while let Ok(batch) = self.done.try_recv() {
            let next = self.home.finish(batch, &self.hands);
            self.outbox.extend(next);
        }
    }

    /// Ends a round: splits the batches parsed during it into one share per
    /// worker (at most) and queues them together, so that a round costs one
    /// queue hand-off and at most one wake-up per worker however many
    /// connections it served.
    fn send_outbox(&mut self) {
        let batches = self.outbox.len();
        if batches == 0 {
            return;
        }
        let count = self.workers.min(batches);
        let shares: Vec<Share> = (0..count)
            .rev()
            .map(|k| self.outbox.split_off(batches * k / count))
            .collect();
        self.queue.push_all(shares);
    }

    /// Shutdown: stop accepting, let every batch in flight come back, write
    /// the replies within a bounded time, close everything.
    fn drain(&mut self) {
        self.listeners.deregister(self.poll.registry());
        let deadline = Instant::now() + DRAIN_TIMEOUT;
        let batches = self.home.last_call(&self.hands);
        self.outbox.extend(batches);
        self.send_outbox();
        while self.home.away() > 0 && Instant::now() < deadline {
            if let Ok(batch) = self.done.recv_timeout(Duration::from_millis(50)) {
                let next = self.home.finish(batch, &self.hands);
                self.outbox.extend(next);
                self.send_outbox();
            }
        }
        self.home.close_all(&mut self.poll, &self.hands);
    }
}
