//! work-stealing: readers own connections as in multi-reader, and an idle
//! reader steals parsed batches from a busy one, like ZygOS.
//!
//! ```text
//!                         +--> reader 0: read, parse -> [queue] -> execute, write
//!  clients -> acceptor ---+--> reader 1: ...             | steal  (when idle)
//!        (round-robin)    +--> reader N-1 <--------------+  and hand back
//! ```
//!
//! The acceptor deals connections round-robin, as in multi-reader. Each
//! reader reads and parses its own connections into batches (a connection
//! with its parsed requests, as in worker-pool) on a local queue, and
//! executes them itself, oldest first: with cheap requests nothing leaves
//! the reader, so it costs what multi-reader costs. A reader with nothing of
//! its own to do takes the oldest batch from another reader's queue,
//! executes it, writes the replies and sends the connection back to its
//! owner, which moves it on (readiness events that came meanwhile are kept
//! and replayed, as in worker-pool). A connection has at most one batch
//! away, so its requests are answered in order.
//!
//! Waking thieves: an idle reader sleeps in its poll. A reader that is about
//! to execute a batch while others wait behind it wakes one sleeping reader
//! (one atomic load when none sleeps), which steals before it sleeps again;
//! this is what lets a reader blocked in a slow request (`--work block:..`)
//! have its other connections served. A reader steals only when its own
//! queue is empty, and polls its own connections between stolen batches, so
//! stolen work cannot starve its own.
//!
//! What is worth stealing: moving a batch costs a wake-up and a hand-back
//! (a few µs of syscalls on two threads), more than a cheap batch takes
//! where it is. So each reader keeps a running mean of what its batches
//! take, and its queued batches are stolen, and sleeping readers woken for
//! them, only when they add up to more than `STEAL_WORTH`: with cheap
//! requests batches stay home and the pattern costs what multi-reader
//! costs; with slow ones the first batch that waits is worth it.

use std::sync::atomic::{fence, AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use crossbeam_deque::{Steal, Stealer, Worker};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Poll, Token};
use slab::Slab;

use crate::engine::stats::{Role, ThreadStats};
use crate::engine::Engine;
use crate::server::acceptor::{Acceptor, Inbox};
use crate::server::batch::{execute_batch, Batch, Client, Moved, SLICE};
use crate::server::connection::{Connection, Readiness};
use crate::server::event_loop::{
    drain_output, end_round, wait_for_events, wire_poll, IdleCheck, DRAIN_TIMEOUT, POLL_TIMEOUT,
    WAKER,
};
use crate::server::listener::connection_closed;
use crate::server::notifier::Notifier;
use crate::server::shutdown::Shutdown;
use crate::store::unix_now;

/// The least work (queued batches times their mean cost) worth moving to
/// another reader. On 2 shared cores with kvbench `uniform` (cheap single
/// gets), stealing every waiting batch cost 14% more CPU per request than
/// multi-reader in one (noisy) run, with about 1% of batches stolen.
const STEAL_WORTH: Duration = Duration::from_micros(50);

/// Starts `readers` reader threads and accepts on the calling thread until shutdown.
pub fn run(
    listener: TcpListener,
    readers: usize,
    engine: &Arc<Engine>,
    shutdown: &Arc<Shutdown>,
) -> anyhow::Result<()> {
    let acceptor = Acceptor::new(listener, engine, shutdown)?;

    let mut inboxes: Vec<Inbox> = Vec::new();
    let mut crew = Crew::default();
    let mut parts = Vec::new();
    for _ in 0..readers {
        let (poll, notifier) = wire_poll(None, shutdown)?;
        let (inbox_tx, inbox) = crossbeam_channel::unbounded();
        let (home_tx, home) = crossbeam_channel::unbounded();
        let queue = Worker::new_fifo();
        inboxes.push((inbox_tx, Arc::clone(&notifier)));
        crew.stealers.push(queue.stealer());
        crew.homes.push(home_tx);
        crew.notifiers.push(Arc::clone(&notifier));
        crew.asleep.push(AtomicBool::new(false));
        crew.costs.push(Cost::default());
        parts.push((poll, notifier, inbox, home, queue));
    }
    let crew = Arc::new(crew);
    let mut threads = Vec::new();
    for (me, (poll, notifier, inbox, home, queue)) in parts.into_iter().enumerate() {
        let reader = Reader {
            me,
            poll,
            notifier,
            inbox,
            home,
            clients: Slab::new(),
            queue,
            away: 0,
            victim: me,
            crew: Arc::clone(&crew),
            idle_check: IdleCheck::new(engine.settings.idle_timeout),
            engine: Arc::clone(engine),
            stats: engine.stats.register(Role::StealingReader),
            shutdown: Arc::clone(shutdown),
        };
        threads.push(
            thread::Builder::new()
                .name(format!("reader-{me}"))
                .spawn(move || reader.run())?,
        );
    }

    acceptor.run(inboxes, threads, engine, shutdown)?;
    Ok(())
}

/// What the readers share: how to steal from each, send a connection home
/// to it, and wake it; and which of them sleep in their poll.
#[derive(Default)]
struct Crew {
    stealers: Vec<Stealer<Batch>>,
    homes: Vec<Sender<Batch>>,
    notifiers: Vec<Arc<Notifier>>,
    /// Per reader: asleep in its poll with nothing to steal, and not yet
    /// woken to steal.
    asleep: Vec<AtomicBool>,
    /// How many `asleep` are set (at least): one load tells a busy reader
    /// that nobody could help, so a loaded server pays no wake-ups.
    sleepers: AtomicUsize,
    /// Per reader: the running mean of what its batches take to execute.
    costs: Vec<Cost>,
}

/// A reader's mean batch cost in nanoseconds, written by that reader after
/// every batch and read by thieves, alone in its cache line so that
/// readers' writes do not contend.
#[derive(Default)]
#[repr(align(128))]
struct Cost(AtomicU64);

impl Cost {
    fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    /// Folds in one batch's time (weight 1/8).
    fn add_sample(&self, took: Duration) {
        let mean = self.get();
        let sample = took.as_nanos().min(u128::from(u64::MAX)) as u64;
        self.0
            .store(mean - mean / 8 + sample / 8, Ordering::Relaxed);
    }

    /// Whether `queued` batches of this reader are worth moving.
    fn worth_stealing(&self, queued: usize) -> bool {
        queued as u64 * self.get() >= STEAL_WORTH.as_nanos() as u64
    }
}

impl Crew {
    /// Reader `me` is going to sleep; it tries to steal once more after
    /// this, so work queued meanwhile either is seen by it or wakes it.
    fn doze(&self, me: usize) {
        self.sleepers.fetch_add(1, Ordering::SeqCst);
        self.asleep[me].store(true, Ordering::SeqCst);
    }

    /// Reader `me` is up (from its poll, or about to skip it).
    fn rise(&self, me: usize) {
        if self.asleep[me].swap(false, Ordering::SeqCst) {
            self.sleepers.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// Wakes one sleeping reader other than `me` to steal, if any sleeps.
    /// A reader is woken once per sleep however many ask.
    fn wake_one(&self, me: usize) {
        // Pairs with the sleeper's store in `doze` and its steal after it.
        fence(Ordering::SeqCst);
        if self.sleepers.load(Ordering::SeqCst) == 0 {
            return;
        }
        let n = self.asleep.len();
        for k in 1..n {
            let other = (me + k) % n;
            if self.asleep[other].swap(false, Ordering::SeqCst) {
                self.sleepers.fetch_sub(1, Ordering::SeqCst);
                self.notifiers[other].notify();
                return;
            }
        }
    }

    /// Sends a stolen batch back to its owner and wakes it. If the owner
    /// has stopped (shutdown past its drain deadline), dropping the batch
    /// closes the connection.
    fn hand_back(&self, owner: usize, batch: Batch) {
        if self.homes[owner].send(batch).is_ok() {
            self.notifiers[owner].notify();
        }
    }

    /// The oldest batch queued at `victim`, if its queue is worth stealing from.
    fn steal_from(&self, victim: usize) -> Option<Batch> {
        let stealer = &self.stealers[victim];
        if !self.costs[victim].worth_stealing(stealer.len()) {
            return None;
        }
        loop {
            match stealer.steal() {
                Steal::Success(batch) => return Some(batch),
                Steal::Empty => return None,
                Steal::Retry => {}
            }
        }
    }
}

/// One reader thread's state.
struct Reader {
    me: usize,
    poll: Poll,
    /// Wakes this reader: new connections, connections home, work to steal.
    notifier: Arc<Notifier>,
    inbox: Receiver<TcpStream>,
    /// Connections that thieves send back.
    home: Receiver<Batch>,
    clients: Slab<Client>,
    /// Parsed batches of this reader's connections, oldest first.
    queue: Worker<Batch>,
    /// This reader's connections whose batch is queued or stolen.
    away: usize,
    /// The reader stolen from last: victims are tried round-robin.
    victim: usize,
    crew: Arc<Crew>,
    idle_check: IdleCheck,
    engine: Arc<Engine>,
    stats: Arc<ThreadStats>,
    shutdown: Arc<Shutdown>,
}

impl Reader {
    fn run(mut self) {
        let mut events = Events::with_capacity(1024);
        loop {
            let timeout = self.next_timeout();
            let polled = wait_for_events(&mut self.poll, &mut events, timeout);
            self.crew.rise(self.me);
            if !polled {
                continue;
            }
            let started = Instant::now();
            if self.shutdown.is_requested() {
                self.drain();
                return;
            }
            for event in events.iter() {
                match event.token() {
                    WAKER => self.take_mail(),
                    Token(i) => self.on_event(i, Readiness::of(event)),
                }
            }
            // Batches long enough to be cut short: note the thread's CPU
            // time, to tell below whether they ran or slept.
            let long = self.crew.costs[self.me].get() >= SLICE.as_nanos() as u64 / 2;
            let before = long.then(|| (Instant::now(), thread_cpu()));
            let cut_short = self.run_queue();
            for i in self.idle_check.expired(&self.clients, Client::conn) {
                self.close(i);
            }
            let slept = before.is_some_and(|(wall, cpu)| (thread_cpu() - cpu) * 2 < wall.elapsed());
            if cut_short && slept {
                // Batches that mostly slept (a slow backend call) gave the
                // core away already: yielding it between them too, as
                // `end_round` does, would cost every batch of a busy queue a
                // share of time slices. Batches that ran keep the yield, so
                // a reader spinning through a long queue lets the others
                // (clients on the same cores) in.
                self.stats.busy_us.add(started.elapsed().as_micros() as u64);
            } else {
                end_round(&self.stats, started);
            }
        }
    }

    /// How long the next poll may sleep: not at all while this reader has
    /// work, or just stole some; otherwise until an event or a wake-up.
    fn next_timeout(&mut self) -> Duration {
        if !self.queue.is_empty() || self.shutdown.is_requested() || self.steal() {
            return Duration::ZERO;
        }
        self.crew.doze(self.me);
        if self.steal() {
            return Duration::ZERO;
        }
        POLL_TIMEOUT
    }

    /// Steals one batch from the other readers, round-robin, executes it
    /// and sends it home. `false` if there was nothing to steal.
    fn steal(&mut self) -> bool {
        let n = self.crew.stealers.len();
        for _ in 1..n {
            self.victim = (self.victim + 1) % n;
            if self.victim == self.me {
                self.victim = (self.victim + 1) % n;
            }
            if let Some(mut batch) = self.crew.steal_from(self.victim) {
                self.crew.rise(self.me);
                let started = Instant::now();
                execute_batch(&mut batch, &self.engine, &self.stats, unix_now());
                self.stats.stolen.incr();
                self.crew.hand_back(self.victim, batch);
                self.stats.busy_us.add(started.elapsed().as_micros() as u64);
                return true;
            }
        }
        false
    }

    /// Executes this reader's queued batches, oldest first, for about a
    /// [`SLICE`], so that long batches let its events be polled between
    /// them. Batches waiting behind the one it runs wake a sleeping reader
    /// to steal them, when they are worth it. `true` if the slice ran out
    /// with batches left.
    fn run_queue(&mut self) -> bool {
        let crew = Arc::clone(&self.crew);
        let cost = &crew.costs[self.me];
        let started = Instant::now();
        let mut batch_start = started;
        while let Some(mut batch) = self.queue.pop() {
            if cost.worth_stealing(self.queue.len()) {
                crew.wake_one(self.me);
            }
            execute_batch(&mut batch, &self.engine, &self.stats, unix_now());
            // Timed from the previous batch's end, one clock read per batch:
            // the cost includes moving the previous connection on.
            let now = Instant::now();
            cost.add_sample(now - batch_start);
            batch_start = now;
            self.finish(batch);
            if now - started >= SLICE {
                return !self.queue.is_empty();
            }
        }
        false
    }

    /// New connections from the acceptor, and connections thieves sent home.
    fn take_mail(&mut self) {
        self.notifier.clear();
        let streams: Vec<TcpStream> = self.inbox.try_iter().collect();
        for stream in streams {
            self.stats.connections.incr();
            self.add(stream);
        }
        while let Ok(batch) = self.home.try_recv() {
            self.stats.lost.incr();
            self.finish(batch);
        }
    }

    fn add(&mut self, stream: TcpStream) {
        let entry = self.clients.vacant_entry();
        let i = entry.key();
        let mut conn = Connection::new(stream);
        if let Err(e) = conn.register(self.poll.registry(), Token(i)) {
            tracing::warn!(error = %e, "cannot register connection");
            connection_closed(&self.engine);
            return;
        }
        entry.insert(Client::new(Batch::new(i, conn)));
        self.serve(i);
    }

    /// A readiness event: serve the connection, or note the event until
    /// its batch is back.
    fn on_event(&mut self, i: usize, readiness: Readiness) {
        if let Some(client) = self.clients.get_mut(i) {
            client.missed.merge(readiness);
            self.serve(i);
        }
    }

    /// A batch is executed (here or by a thief): its connection moves on.
    fn finish(&mut self, batch: Batch) {
        self.away -= 1;
        let i = batch.token;
        if let Some(client) = self.clients.get_mut(i) {
            client.batch = Some(batch);
            self.serve(i);
        }
    }

    /// Moves connection `i` along, unless its batch is away: writes,
    /// reads, and queues what it parsed.
    fn serve(&mut self, i: usize) {
        let registry = self.poll.registry();
        match self.clients[i].step(Token(i), registry, &self.engine, &self.stats) {
            Moved::Stays => {}
            Moved::Ready(batch) => {
                self.away += 1;
                self.queue.push(batch);
            }
            Moved::Close => self.close(i),
        }
    }

    /// Forgets connection `i`. One whose batch is away (only at shutdown,
    /// past the drain deadline) closes when its batch is dropped.
    fn close(&mut self, i: usize) {
        let client = self.clients.remove(i);
        if let Some(mut batch) = client.batch {
            let _ = self.poll.registry().deregister(&mut batch.conn.stream);
        }
        connection_closed(&self.engine);
    }

    /// Shutdown: answer what clients sent before the signal, including
    /// batches queued here or stolen (waiting for them to come home), write
    /// the replies within a bounded time, close everything.
    fn drain(&mut self) {
        let deadline = Instant::now() + DRAIN_TIMEOUT;
        self.take_mail();
        // Last call: what clients sent may still be in the sockets, with
        // its readiness event not yet taken.
        let keys: Vec<usize> = self.clients.iter().map(|(i, _)| i).collect();
        for &i in &keys {
            if let Some(conn) = self.clients.get_mut(i).and_then(Client::conn_mut) {
                conn.expect_input();
                self.serve(i);
            }
        }
        while self.away > 0 && Instant::now() < deadline {
            if let Some(mut batch) = self.queue.pop() {
                execute_batch(&mut batch, &self.engine, &self.stats, unix_now());
                self.finish(batch);
            } else if let Ok(batch) = self.home.recv_timeout(Duration::from_millis(50)) {
                self.stats.lost.incr();
                self.finish(batch);
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

/// The CPU time the calling thread has used (one clock_gettime call).
fn thread_cpu() -> Duration {
    // SAFETY: clock_gettime only writes the struct passed.
    let ts = unsafe {
        let mut ts: libc::timespec = std::mem::zeroed();
        libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts);
        ts
    };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A crew of `n` readers with nothing to steal, and their polls.
    fn crew(n: usize) -> (Crew, Vec<Poll>) {
        let mut crew = Crew::default();
        let mut polls = Vec::new();
        for _ in 0..n {
            let poll = Poll::new().unwrap();
            let waker = mio::Waker::new(poll.registry(), WAKER).unwrap();
            let (home, _) = crossbeam_channel::unbounded();
            crew.stealers.push(Worker::new_fifo().stealer());
            crew.homes.push(home);
            crew.notifiers.push(Arc::new(Notifier::new(waker)));
            crew.asleep.push(AtomicBool::new(false));
            crew.costs.push(Cost::default());
            polls.push(poll);
        }
        (crew, polls)
    }

    fn woken(poll: &mut Poll) -> bool {
        let mut events = Events::with_capacity(4);
        poll.poll(&mut events, Some(Duration::ZERO)).unwrap();
        !events.is_empty()
    }

    #[test]
    fn each_sleeper_is_woken_once_and_the_count_follows() {
        let (crew, mut polls) = crew(3);
        crew.wake_one(0); // nobody sleeps: nothing happens
        assert!(polls.iter_mut().all(|p| !woken(p)));
        crew.doze(1);
        crew.doze(2);
        crew.wake_one(0);
        assert!(woken(&mut polls[1]) && !woken(&mut polls[2]));
        assert_eq!(crew.sleepers.load(Ordering::SeqCst), 1);
        crew.rise(1); // already woken: no second decrement
        assert_eq!(crew.sleepers.load(Ordering::SeqCst), 1);
        crew.wake_one(0);
        assert!(woken(&mut polls[2]));
        crew.wake_one(0);
        assert!(polls.iter_mut().all(|p| !woken(p)));
        assert_eq!(crew.sleepers.load(Ordering::SeqCst), 0);
        crew.doze(0);
        crew.rise(0); // up by itself
        assert_eq!(crew.sleepers.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn only_queued_work_past_the_bar_is_worth_stealing() {
        let cost = Cost::default();
        assert!(!cost.worth_stealing(1000), "no batch timed yet");
        for _ in 0..64 {
            cost.add_sample(Duration::from_micros(5));
        }
        assert!(!cost.worth_stealing(1), "one cheap batch");
        assert!(cost.worth_stealing(11), "enough cheap ones");
        for _ in 0..64 {
            cost.add_sample(Duration::from_millis(1));
        }
        assert!(cost.worth_stealing(1), "one slow batch");
        assert!(!cost.worth_stealing(0));
    }
}
