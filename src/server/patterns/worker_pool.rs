//! worker-pool: one dispatch thread owns every socket; N workers execute,
//! like RAMCloud.
//!
//! ```text
//!            +----------------------------+   batches   +-----------+
//!  clients ->| dispatch: accept, read,    |--(queue)--->| worker 0  |
//!            | parse, write               |             | worker .. |
//!            |                            |<--(done)----| worker N-1|
//!            +----------------------------+  + Waker    +-----------+
//! ```
//!
//! The dispatch thread reads a connection and parses every complete request
//! in what arrived into one *batch*, which carries the read buffer itself
//! (requests name their keys by offsets into it, so nothing is copied). Any
//! worker takes the batch from the shared queue, executes its requests in
//! order into the batch's reply buffer, and sends it back; the dispatch
//! thread writes the replies. Only the dispatch thread touches sockets.
//!
//! Ordering: a connection has at most one batch in flight. Its next batch is
//! parsed only when the previous one has come back, so a connection's
//! requests execute, and are answered, in the order they were sent, while
//! different connections' batches spread over all workers.
//!
//! Hand-off cost: the batches parsed in one round of the dispatch loop go out
//! at its end as at most one share per worker, so a round costs at most one
//! queue hand-off and one wake-up per worker, not one per request or per
//! connection; a worker wakes the dispatch thread once per share, and those
//! wake-ups are coalesced by its [`Notifier`].

use std::io;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use mio::net::TcpListener;
use mio::{Events, Poll, Token};
use slab::Slab;

use crate::engine::stats::{Role, ThreadStats};
use crate::engine::{Engine, Flow};
use crate::protocol::Request;
use crate::server::connection::{Connection, Next};
use crate::server::event_loop::{
    drain_output, wire_poll, IdleCheck, ACCEPT_RETRY, DRAIN_TIMEOUT, LISTENER, POLL_TIMEOUT, WAKER,
};
use crate::server::listener::{accept_pending, connection_closed};
use crate::server::notifier::Notifier;
use crate::server::shutdown::Shutdown;

/// The longest a worker executes one connection's batch before handing the
/// rest back to the end of the queue, so that one client's deep pipeline of
/// costly requests cannot hold a worker while other clients' requests wait.
/// Cheap requests (about 0.1 µs each without `--work-us`) never reach it.
const SLICE: Duration = Duration::from_micros(100);

/// A connection's parsed requests on their way to a worker and back.
struct Batch {
    /// The connection's slab key.
    token: usize,
    /// The read buffer the requests were parsed from.
    input: Vec<u8>,
    /// Each request with the offset in `input` its spans are relative to.
    requests: Vec<(Request, usize)>,
    /// The first request not executed yet: a worker stops early once the
    /// replies pass `--max-pending-output` or its [`SLICE`] is used up, and
    /// the batch goes out again when the replies so far have been written.
    next: usize,
    output: Vec<u8>,
    /// A `quit` was executed: close after writing.
    close: bool,
}

/// A connection as the dispatch thread sees it.
struct Client {
    conn: Connection,
    /// The connection's batch while it is home; `None` while a worker has it.
    batch: Option<Batch>,
}

/// Starts `workers` worker threads and dispatches on the calling thread until shutdown.
pub fn run(
    mut listener: TcpListener,
    workers: usize,
    engine: &Arc<Engine>,
    shutdown: &Arc<Shutdown>,
) -> anyhow::Result<()> {
    let (poll, notifier) = wire_poll(Some(&mut listener), shutdown)?;
    let (work_tx, work_rx) = crossbeam_channel::unbounded::<Share>();
    let (done_tx, done_rx) = crossbeam_channel::unbounded::<Batch>();
    let stats = engine.stats.register(Role::Dispatch);

    let mut threads = Vec::new();
    for n in 0..workers {
        let (rx, tx, notifier) = (work_rx.clone(), done_tx.clone(), Arc::clone(&notifier));
        let (engine, stats) = (Arc::clone(engine), engine.stats.register(Role::Worker));
        threads.push(
            thread::Builder::new()
                .name(format!("worker-{n}"))
                .spawn(move || work(&rx, &tx, &notifier, &engine, &stats))?,
        );
    }
    drop((work_rx, done_tx));

    let mut dispatch = Dispatch {
        poll,
        listener,
        notifier,
        clients: Slab::new(),
        work: work_tx,
        workers,
        outbox: Vec::new(),
        done: done_rx,
        in_flight: 0,
        engine: Arc::clone(engine),
        stats,
    };
    dispatch.run(shutdown);
    drop(dispatch);
    for t in threads {
        let _ = t.join();
    }
    Ok(())
}

/// A worker's part of one dispatch round: batches of different connections.
type Share = Vec<Batch>;

/// A worker: executes shares of batches until the queue closes, and wakes
/// the dispatch thread once per share.
fn work(
    queue: &Receiver<Share>,
    done: &Sender<Batch>,
    notifier: &Notifier,
    engine: &Engine,
    stats: &ThreadStats,
) {
    while let Ok(share) = queue.recv() {
        let started = Instant::now();
        let now = crate::store::unix_now();
        for mut batch in share {
            let Batch {
                input,
                requests,
                next,
                output,
                close,
                ..
            } = &mut batch;
            let slice_end = Instant::now() + SLICE;
            while let Some((request, at)) = requests.get(*next) {
                *next += 1;
                if engine.execute(request, &input[*at..], output, stats, now) == Flow::Close {
                    *close = true;
                    *next = requests.len();
                    break;
                }
                if output.len() >= engine.settings.max_pending_output || Instant::now() >= slice_end
                {
                    break;
                }
            }
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
    work: Sender<Share>,
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
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() != io::ErrorKind::Interrupted {
                    tracing::error!(error = %e, "poll failed");
                }
                continue;
            }
            let started = Instant::now();
            let mut accept = retry_accept;
            for event in events.iter() {
                match event.token() {
                    WAKER => self.take_done(),
                    LISTENER => accept = true,
                    Token(i) => {
                        if let Some(client) = self.clients.get_mut(i) {
                            client.conn.on_event(event);
                            self.serve(i);
                        }
                    }
                }
            }
            if accept {
                retry_accept = self.accept().is_err();
            }
            self.send_outbox();
            // A connection whose batch is out is busy, not idle.
            for i in idle_check.expired(&self.clients, |c| &c.conn) {
                if self.clients[i].batch.is_some() {
                    self.close(i);
                }
            }
            self.stats.busy_us.add(started.elapsed().as_micros() as u64);
            // As in the event loops: let waiting threads run between rounds.
            std::thread::yield_now();
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
            let batch = Batch {
                token: i,
                input: Vec::new(),
                requests: Vec::new(),
                next: 0,
                output: Vec::new(),
                close: false,
            };
            entry.insert(Client {
                conn,
                batch: Some(batch),
            });
            self.serve(i);
        }
        Ok(())
    }

    /// Batches that workers finished: hand their replies to the connections.
    fn take_done(&mut self) {
        self.notifier.clear();
        while let Ok(batch) = self.done.try_recv() {
            self.finish(batch);
        }
    }

    /// A batch is back: its replies go to the connection, which moves on.
    fn finish(&mut self, mut batch: Batch) {
        self.in_flight -= 1;
        let i = batch.token;
        let client = &mut self.clients[i];
        client.conn.absorb_output(&mut batch.output);
        if batch.close {
            client.conn.set_closing();
        }
        client.batch = Some(batch);
        self.serve(i);
    }

    /// Moves connection `i` along, unless a worker has its batch.
    fn serve(&mut self, i: usize) {
        let client = &mut self.clients[i];
        let Some(batch) = client.batch.take() else {
            return;
        };
        match advance(&mut client.conn, batch, &self.engine, &self.stats) {
            Step::Home(batch) => {
                client.batch = Some(batch);
                if client
                    .conn
                    .update_interest(self.poll.registry(), Token(i))
                    .is_err()
                {
                    self.close(i);
                }
            }
            Step::Sent(batch) => {
                self.in_flight += 1;
                self.outbox.push(batch);
            }
            Step::Close => self.close(i),
        }
    }

    /// Ends a round: splits the batches parsed during it into one share per
    /// worker (at most), so that a round costs at most one queue hand-off
    /// and one wake-up per worker however many connections it served.
    fn send_outbox(&mut self) {
        let batches = self.outbox.len();
        if batches == 0 {
            return;
        }
        let shares = self.workers.min(batches);
        for k in (0..shares).rev() {
            let share = self.outbox.split_off(batches * k / shares);
            // The workers hold the queue's receivers until this thread drops it.
            let _ = self.work.send(share);
        }
    }

    fn close(&mut self, i: usize) {
        let mut client = self.clients.remove(i);
        let _ = self.poll.registry().deregister(&mut client.conn.stream);
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
            if let Some(client) = self.clients.get_mut(i) {
                client.conn.expect_input();
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
        drain_output(&mut self.poll, &mut self.clients, &self.stats, |c| {
            &mut c.conn
        });
        let keys: Vec<usize> = self.clients.iter().map(|(i, _)| i).collect();
        for i in keys {
            self.close(i);
        }
    }
}

/// Where a connection stands after [`advance`].
enum Step {
    /// Waiting for the client (to send or to read); the batch stays home.
    Home(Batch),
    /// Parsed requests are ready for a worker.
    Sent(Batch),
    Close,
}

/// Writes pending replies, then parses the next batch of requests, reading
/// more when none is complete.
fn advance(conn: &mut Connection, mut batch: Batch, engine: &Engine, stats: &ThreadStats) -> Step {
    loop {
        match conn.flush(stats) {
            Ok(true) => {}
            Ok(false) => return Step::Home(batch),
            Err(_) => return Step::Close,
        }
        if batch.next < batch.requests.len() {
            // The rest of a batch that the output bound cut short.
            return Step::Sent(batch);
        }
        if conn.is_closing() {
            return Step::Close;
        }
        batch.requests.clear();
        batch.next = 0;
        while batch.requests.len() < engine.settings.reqs_per_event {
            match conn.next_request(&engine.limits) {
                Next::Request(request, at) => batch.requests.push((request, at)),
                Next::Incomplete => break,
                Next::Close => {
                    conn.set_closing();
                    break;
                }
            }
        }
        if !batch.requests.is_empty() {
            conn.swap_input(&mut batch.input);
            batch.close = false;
            return Step::Sent(batch);
        }
        match conn.fill(stats) {
            Ok(true) => {}
            Ok(false) if conn.is_closing() => {}
            Ok(false) => return Step::Home(batch),
            Err(_) => return Step::Close,
        }
    }
}
