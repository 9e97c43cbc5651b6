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
//! The dispatch thread reads a connection and parses every complete request
//! in what arrived into one *batch*, which carries the connection itself
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
//! share, and those wake-ups are coalesced by its [`Notifier`].

use std::io;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use mio::net::TcpListener;
use mio::{Events, Poll, Token};
use slab::Slab;

use crate::engine::stats::{Role, ThreadStats};
use crate::engine::Engine;
use crate::server::batch::{execute_batch, Batch, Client, Moved};
use crate::server::connection::{Connection, Readiness};
use crate::server::event_loop::{
    drain_output, end_round, wait_for_events, wire_poll, IdleCheck, ACCEPT_RETRY, DRAIN_TIMEOUT,
    LISTENER, POLL_TIMEOUT, WAKER,
};
use crate::server::listener::{accept_pending, connection_closed};
use crate::server::notifier::Notifier;
use crate::server::shutdown::Shutdown;
use crate::server::work_queue::WorkQueue;

/// Starts `workers` worker threads and dispatches on the calling thread until shutdown.
pub fn run(
    mut listener: TcpListener,
    workers: usize,
    engine: &Arc<Engine>,
    shutdown: &Arc<Shutdown>,
) -> anyhow::Result<()> {
    let (poll, notifier) = wire_poll(Some(&mut listener), shutdown)?;
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
        poll,
        listener,
        notifier,
        clients: Slab::new(),
        queue,
        workers,
        outbox: Vec::new(),
        done: done_rx,
        in_flight: 0,
        engine: Arc::clone(engine),
        stats,
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
            execute_batch(&mut batch, engine, stats, now);
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
    listener: TcpListener,
    notifier: Arc<Notifier>,
    clients: Slab<Client>,
    queue: Arc<WorkQueue<Share>>,
    workers: usize,
    /// Batches parsed in this round, sent to the workers at its end.
    outbox: Vec<Batch>,
    done: Receiver<Batch>,
    in_flight: usize,
    engine: Arc<Engine>,
    stats: Arc<ThreadStats>,
}

impl Dispatch {
    fn run(&mut self, shutdown: &Shutdown) {
        let mut events = Events::with_capacity(1024);
        let mut retry_accept = false;
        let mut idle_check = IdleCheck::new(self.engine.settings.idle_timeout);
        while !shutdown.is_requested() {
            let timeout = if retry_accept {
                ACCEPT_RETRY
            } else {
                POLL_TIMEOUT
            };
            if !wait_for_events(&mut self.poll, &mut events, timeout) {
                continue;
            }
            let started = Instant::now();
            let mut accept = retry_accept;
            for event in events.iter() {
                match event.token() {
                    WAKER => self.take_done(),
                    LISTENER => accept = true,
                    Token(i) => self.on_event(i, Readiness::of(event)),
                }
            }
            if accept {
                retry_accept = self.accept().is_err();
            }
            self.send_outbox();
            // A connection a worker has is busy, not idle.
            for i in idle_check.expired(&self.clients, Client::conn) {
                self.close(i);
            }
            end_round(&self.stats, started);
        }
        self.drain();
    }

    fn accept(&mut self) -> io::Result<()> {
        let mut accepted = Vec::new();
        accept_pending(&self.listener, &self.engine, &self.stats, |s| {
            accepted.push(s)
        })?;
        for stream in accepted {
            let entry = self.clients.vacant_entry();
            let i = entry.key();
            let mut conn = Connection::new(stream);
            if conn.register(self.poll.registry(), Token(i)).is_err() {
                connection_closed(&self.engine);
                continue;
            }
            entry.insert(Client::new(Batch::new(i, conn)));
            self.serve(i);
        }
        Ok(())
    }

    /// A readiness event: serve the connection, or note the event until a
    /// worker hands it back.
    fn on_event(&mut self, i: usize, readiness: Readiness) {
        let Some(client) = self.clients.get_mut(i) else {
            return;
        };
        client.missed.merge(readiness);
        self.serve(i);
    }

    /// Connections that workers handed back.
    fn take_done(&mut self) {
        self.notifier.clear();
        while let Ok(batch) = self.done.try_recv() {
            self.finish(batch);
        }
    }

    /// A connection is back from a worker: it moves on.
    fn finish(&mut self, batch: Batch) {
        self.in_flight -= 1;
        let i = batch.token;
        self.clients[i].batch = Some(batch);
        self.serve(i);
    }

    /// Moves connection `i` along, unless a worker has it.
    fn serve(&mut self, i: usize) {
        let registry = self.poll.registry();
        match self.clients[i].step(Token(i), registry, &self.engine, &self.stats) {
            Moved::Stays => {}
            Moved::Ready(batch) => {
                self.in_flight += 1;
                self.outbox.push(batch);
            }
            Moved::Close => self.close(i),
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

    /// Forgets connection `i`. One a worker still has (only at shutdown,
    /// past the drain deadline) closes when the worker drops it.
    fn close(&mut self, i: usize) {
        let client = self.clients.remove(i);
        if let Some(mut batch) = client.batch {
            let _ = self.poll.registry().deregister(&mut batch.conn.stream);
        }
        connection_closed(&self.engine);
    }

    /// Shutdown: stop accepting, let every batch in flight come back, write
    /// the replies within a bounded time, close everything.
    fn drain(&mut self) {
        let _ = self.poll.registry().deregister(&mut self.listener);
        let deadline = Instant::now() + DRAIN_TIMEOUT;
        // Last call: what clients sent before the signal may still be in the
        // sockets, with its readiness event not yet taken.
        let keys: Vec<usize> = self.clients.iter().map(|(i, _)| i).collect();
        for &i in &keys {
            if let Some(batch) = self.clients.get_mut(i).and_then(|c| c.batch.as_mut()) {
                batch.conn.expect_input();
                self.serve(i);
            }
        }
        self.send_outbox();
        while self.in_flight > 0 && Instant::now() < deadline {
            if let Ok(batch) = self.done.recv_timeout(Duration::from_millis(50)) {
                self.finish(batch);
                self.send_outbox();
            }
        }
        drain_output(
            &mut self.poll,
            &mut self.clients,
            &self.stats,
            Client::conn_mut,
        );
        let keys: Vec<usize> = self.clients.iter().map(|(i, _)| i).collect();
        for i in keys {
            self.close(i);
        }
    }
}
