//! work-stealing: readers own connections as in multi-reader, and an idle
//! reader takes work from a busy one, like ZygOS.
//!
//! ```text
//!                         +--> reader 0: read, parse -> [queue] -> execute, write
//!  clients -> acceptor ---+--> reader 1: ...             | steal  (when idle)
//!        (round-robin)    +--> reader N-1 <--------------+  or read for it
//! ```
//!
//! The acceptor deals connections round-robin, as in multi-reader. Each
//! reader reads and parses its own connections into batches (a connection
//! with its parsed requests, as in worker-pool) on a local queue, and
//! executes them itself, oldest first: with cheap requests nothing leaves
//! the reader, so it costs what multi-reader costs. A connection has at
//! most one batch out, so its requests are answered in order.
//!
//! A reader's connections (its [`Home`]) sit behind a lock that the reader
//! holds while it reads, parses and runs cheap batches, and lets go of
//! while it executes a long one. Whoever holds it may move those
//! connections along; that is how idle readers help, in two ways:
//!
//! - **Stealing.** A reader with nothing of its own to do takes the oldest
//!   batch from another reader's queue, executes it, writes the replies,
//!   and moves the connection on under its owner's lock.
//! - **Reading for a stuck reader.** A request that arrives while its
//!   reader executes a long one (`--work block:..`) would wait unread, not
//!   stealable, until that one ends: a partitioned queue again. So a
//!   reader about to execute a long batch asks a sleeping reader to watch
//!   its epoll ([`shared_epoll`]); the watcher wakes on the first new
//!   event, takes the events from the stuck reader's epoll, reads and
//!   parses those connections under its lock, and executes the batches
//!   (which other idle readers may steal from it in turn). ZygOS gets the
//!   same effect with an inter-processor interrupt to the busy core.
//!
//! Waking helpers: an idle reader sleeps in its poll. A reader that is
//! about to execute a batch while others wait behind it wakes one sleeping
//! reader (one atomic load when none sleeps). A reader steals only when its
//! own queue is empty, so stolen work cannot starve its own.
//!
//! What is worth moving: moving a batch costs a wake-up (a few µs of
//! syscalls on two threads), more than a cheap batch takes where it is. So
//! each reader keeps a running mean of what its batches take; its queued
//! batches are stolen, sleeping readers woken for them, and its connections
//! watched, only when the work at stake is more than `STEAL_WORTH`: with
//! cheap requests nothing moves and the pattern costs what multi-reader
//! costs; with slow ones the first batch that waits is worth it.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{fence, AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use crossbeam_deque::{Steal, Stealer, Worker};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Poll, Registry, Token};
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
use crate::server::shared_epoll;
use crate::server::shutdown::Shutdown;
use crate::store::unix_now;

/// The least work (queued batches times their mean cost, or one batch
/// about to run) worth moving to another reader. On 2 shared cores with
/// kvbench `uniform` (cheap single gets), stealing every waiting batch cost
/// 14% more CPU per request than multi-reader in one (noisy) run, with
/// about 1% of batches stolen.
const STEAL_WORTH: Duration = Duration::from_micros(50);

/// The most one batch counts in its reader's mean cost; see
/// [`Cost::add_sample`].
const COST_CAP: Duration = Duration::from_millis(1);

/// Tokens from `HELP` up, in a reader's epoll, say that reader `token -
/// HELP`'s epoll has events while that reader is stuck. Connection tokens
/// (slab keys) never get this high.
const HELP: usize = 1 << 62;

/// No reader (a stuck reader nobody watches).
const NOBODY: usize = usize::MAX;

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
    for owner in 0..readers {
        let (poll, notifier) = wire_poll(None, shutdown)?;
        let (inbox_tx, inbox) = crossbeam_channel::unbounded();
        let (returns_tx, returns) = crossbeam_channel::unbounded();
        let queue = Worker::new_fifo();
        let stats = engine.stats.register(Role::StealingReader);
        inboxes.push((inbox_tx, Arc::clone(&notifier)));
        crew.stealers.push(queue.stealer());
        crew.homes.push(Mutex::new(Home {
            owner,
            clients: Slab::new(),
            registry: poll.registry().try_clone()?,
            inbox,
            returns,
            away: 0,
        }));
        crew.returns.push(returns_tx);
        crew.epolls
            .push(poll.registry().as_fd().try_clone_to_owned()?);
        crew.notifiers.push(notifier);
        crew.asleep.push(AtomicBool::new(false));
        crew.stuck.push(AtomicBool::new(false));
        crew.watcher.push(AtomicUsize::new(NOBODY));
        crew.costs.push(Cost::default());
        crew.stats.push(Arc::clone(&stats));
        parts.push((poll, queue, stats));
    }
    let crew = Arc::new(crew);
    let mut threads = Vec::new();
    for (me, (poll, queue, stats)) in parts.into_iter().enumerate() {
        let reader = Reader {
            me,
            poll,
            queue,
            victim: me,
            crew: Arc::clone(&crew),
            idle_check: IdleCheck::new(engine.settings.idle_timeout),
            engine: Arc::clone(engine),
            stats,
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

/// What the readers share, one entry per reader.
#[derive(Default)]
struct Crew {
    stealers: Vec<Stealer<Owned>>,
    homes: Vec<Mutex<Home>>,
    /// Where a batch goes when its owner's home is busy.
    returns: Vec<Sender<Batch>>,
    /// Each reader's epoll, for others to watch and read.
    epolls: Vec<OwnedFd>,
    notifiers: Vec<Arc<Notifier>>,
    /// Asleep in its poll with nothing to steal, and not yet woken to steal.
    asleep: Vec<AtomicBool>,
    /// How many `asleep` are set (at least): one load tells a busy reader
    /// that nobody could help, so a loaded server pays no wake-ups.
    sleepers: AtomicUsize,
    /// Executing a long batch with its home let go: worth watching.
    stuck: Vec<AtomicBool>,
    /// The reader watching its epoll, or [`NOBODY`] (one at a time).
    watcher: Vec<AtomicUsize>,
    /// The running mean of what its batches take to execute.
    costs: Vec<Cost>,
    /// Its statistics, where others count the batches they took from it.
    stats: Vec<Arc<ThreadStats>>,
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

    /// Folds in one batch's time, counting at most [`COST_CAP`], with
    /// weight 1/64: slow to move, because what it must see is a mix. One
    /// slow request in ten (750 µs beside 25 µs ones) keeps the mean
    /// near 100 µs whatever the last few batches were (with weight 1/8 it
    /// fell under [`STEAL_WORTH`] after a run of short ones, half the
    /// time), and a cheap batch during which the reader was preempted for
    /// a few ms (clients share the cores) adds at most 16 µs.
    fn add_sample(&self, took: Duration) {
        let mean = self.get();
        let sample = took.min(COST_CAP).as_nanos() as u64;
        self.0
            .store(mean - mean / 64 + sample / 64, Ordering::Relaxed);
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

    /// Reader `me` lets go of its home to execute a long batch: a sleeping
    /// reader, if any, watches its epoll until then.
    fn get_stuck(&self, me: usize) {
        self.stuck[me].store(true, Ordering::SeqCst);
        self.find_watcher(me);
    }

    /// Asks a sleeping reader to watch `owner`'s epoll, if any sleeps.
    fn find_watcher(&self, owner: usize) {
        if self.sleepers.load(Ordering::SeqCst) == 0 {
            return;
        }
        let n = self.asleep.len();
        for k in 1..n {
            let other = (owner + k) % n;
            if self.asleep[other].load(Ordering::SeqCst) && self.watch(other, owner) {
                return;
            }
        }
    }

    /// Reader `watcher` will be told when stuck reader `owner` has events,
    /// unless another reader watches it already. `false` if it will not.
    fn watch(&self, watcher: usize, owner: usize) -> bool {
        let claim = self.watcher[owner].compare_exchange(
            NOBODY,
            watcher,
            Ordering::SeqCst,
            Ordering::SeqCst,
        );
        if claim.is_err() {
            return false;
        }
        let told = shared_epoll::watch_once(
            &self.epolls[watcher],
            &self.epolls[owner],
            Token(HELP + owner),
        );
        // ELOOP: `owner` watches `watcher` already; let another try.
        if told.is_err() {
            self.watcher[owner].store(NOBODY, Ordering::SeqCst);
        }
        told.is_ok()
    }

    /// The watch that reader `watcher` kept on `owner` is over (it fired,
    /// or the watcher got busy). A no-op for a watch already over.
    fn end_watch(&self, watcher: usize, owner: usize) {
        shared_epoll::unwatch(&self.epolls[watcher], &self.epolls[owner]);
        let _ = self.watcher[owner].compare_exchange(
            watcher,
            NOBODY,
            Ordering::SeqCst,
            Ordering::SeqCst,
        );
    }

    /// Reader `me` is about to be stuck itself: the stuck readers it
    /// watches get another watcher, as it could not answer for a while.
    fn hand_off_watches(&self, me: usize) {
        for owner in 0..self.watcher.len() {
            if self.watcher[owner].load(Ordering::SeqCst) == me {
                self.end_watch(me, owner);
                if self.stuck[owner].load(Ordering::SeqCst) {
                    self.find_watcher(owner);
                }
            }
        }
    }

    /// The oldest batch queued at `victim`, if its queue is worth stealing from.
    fn steal_from(&self, victim: usize) -> Option<Owned> {
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

    /// Moves a batch executed away from home on: here if its home is free
    /// (its owner is stuck or asleep), else by its owner, woken for it, so
    /// that a thief never waits for a busy owner's round to end.
    fn give_back(&self, owner: usize, batch: Batch, hands: &Hands) {
        match self.homes[owner].try_lock() {
            Ok(mut home) => home.finish(batch, hands),
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner().finish(batch, hands),
            Err(TryLockError::WouldBlock) => {
                // The owner holds its home: it takes the batch from its
                // mail. If it has stopped (shutdown past its drain
                // deadline), dropping the batch closes the connection.
                if self.returns[owner].send(batch).is_ok() {
                    self.notifiers[owner].notify();
                }
            }
        }
    }

    fn home(&self, owner: usize) -> MutexGuard<'_, Home> {
        // A panic while holding a home is a bug; its connections are still
        // consistent enough to serve and close.
        self.homes[owner]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A batch on a queue, and the reader whose connection it is.
struct Owned {
    owner: usize,
    batch: Batch,
}

/// One reader's connections, moved along by whoever holds the lock: the
/// reader itself, a thief finishing a batch, or a reader reading for it.
struct Home {
    owner: usize,
    clients: Slab<Client>,
    /// The owner's epoll, to register its connections in.
    registry: Registry,
    inbox: Receiver<TcpStream>,
    /// Batches executed elsewhere while this home was busy.
    returns: Receiver<Batch>,
    /// Connections whose batch is queued somewhere or executing.
    away: usize,
}

/// The thread moving a home's connections along: where it counts, and
/// where parsed batches go (its own queue).
struct Hands<'a> {
    engine: &'a Engine,
    stats: &'a ThreadStats,
    queue: &'a Worker<Owned>,
}

impl Home {
    /// Acts on one event taken from the owner's epoll. A watch that fired
    /// in it (the owner was watching someone) is put in `watches`.
    fn on_event(
        &mut self,
        token: Token,
        readiness: Readiness,
        crew: &Crew,
        hands: &Hands,
        watches: &mut Vec<(usize, usize)>,
    ) {
        match token {
            WAKER => self.take_mail(&crew.notifiers[self.owner], crew, hands),
            Token(t) if t >= HELP => watches.push((self.owner, t - HELP)),
            Token(i) => {
                if let Some(client) = self.clients.get_mut(i) {
                    client.missed.merge(readiness);
                    self.serve(i, hands);
                }
            }
        }
    }

    /// New connections from the acceptor, and batches returned.
    fn take_mail(&mut self, notifier: &Notifier, crew: &Crew, hands: &Hands) {
        notifier.clear();
        let streams: Vec<TcpStream> = self.inbox.try_iter().collect();
        for stream in streams {
            crew.stats[self.owner].connections.incr();
            self.add(stream, hands);
        }
        while let Ok(batch) = self.returns.try_recv() {
            self.finish(batch, hands);
        }
    }

    fn add(&mut self, stream: TcpStream, hands: &Hands) {
        let entry = self.clients.vacant_entry();
        let i = entry.key();
        let mut conn = Connection::new(stream);
        if let Err(e) = conn.register(&self.registry, Token(i)) {
            tracing::warn!(error = %e, "cannot register connection");
            connection_closed(hands.engine);
            return;
        }
        entry.insert(Client::new(Batch::new(i, conn)));
        self.serve(i, hands);
    }

    /// A batch is executed: its connection moves on.
    fn finish(&mut self, batch: Batch, hands: &Hands) {
        self.away -= 1;
        let i = batch.token;
        if let Some(client) = self.clients.get_mut(i) {
            client.batch = Some(batch);
            self.serve(i, hands);
        }
    }

    /// Moves connection `i` along, unless its batch is away: writes,
    /// reads, and queues what it parsed on the hands' queue.
    fn serve(&mut self, i: usize, hands: &Hands) {
        let step = self.clients[i].step(Token(i), &self.registry, hands.engine, hands.stats);
        match step {
            Moved::Stays => {}
            Moved::Ready(batch) => {
                self.away += 1;
                hands.queue.push(Owned {
                    owner: self.owner,
                    batch,
                });
            }
            Moved::Close => self.close(i, hands.engine),
        }
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
}

/// One reader thread's state.
struct Reader {
    me: usize,
    poll: Poll,
    /// Parsed batches, oldest first: of this reader's connections, and of
    /// connections it read for a stuck reader.
    queue: Worker<Owned>,
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
        let crew = Arc::clone(&self.crew);
        loop {
            let timeout = self.next_timeout();
            let polled = wait_for_events(&mut self.poll, &mut events, timeout);
            crew.rise(self.me);
            if !polled {
                continue;
            }
            let started = Instant::now();
            if self.shutdown.is_requested() {
                self.drain();
                return;
            }
            let mut home = Some(crew.home(self.me));
            let mut watches = Vec::new();
            if let Some(home) = &mut home {
                let hands = self.hands();
                for event in events.iter() {
                    home.on_event(
                        event.token(),
                        Readiness::of(event),
                        &crew,
                        &hands,
                        &mut watches,
                    );
                }
            }
            if !watches.is_empty() {
                home = None;
                self.answer(watches);
            }
            // Batches long enough to be cut short: note the thread's CPU
            // time, to tell below whether they ran or slept.
            let long = crew.costs[self.me].get() >= SLICE.as_nanos() as u64 / 2;
            let before = long.then(|| (Instant::now(), thread_cpu()));
            let cut_short = self.run_queue(&crew, &mut home);
            let home = home.get_or_insert_with(|| crew.home(self.me));
            for i in self.idle_check.expired(&home.clients, Client::conn) {
                home.close(i, &self.engine);
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

    fn hands(&self) -> Hands<'_> {
        Hands {
            engine: &self.engine,
            stats: &self.stats,
            queue: &self.queue,
        }
    }

    /// How long the next poll may sleep: not at all while this reader has
    /// work, or just stole some; otherwise until an event, a wake-up, or
    /// news from a stuck reader it watches.
    fn next_timeout(&mut self) -> Duration {
        if !self.queue.is_empty() || self.shutdown.is_requested() || self.steal() {
            return Duration::ZERO;
        }
        self.crew.doze(self.me);
        if self.steal() {
            return Duration::ZERO;
        }
        let crew = &self.crew;
        for owner in (0..crew.stuck.len()).filter(|&o| o != self.me) {
            if crew.stuck[owner].load(Ordering::SeqCst) {
                crew.watch(self.me, owner);
            }
        }
        POLL_TIMEOUT
    }

    /// Steals one batch from the other readers, round-robin, executes it
    /// and moves its connection on. `false` if there was nothing to steal.
    fn steal(&mut self) -> bool {
        let n = self.crew.stealers.len();
        for _ in 1..n {
            self.victim = (self.victim + 1) % n;
            if self.victim == self.me {
                self.victim = (self.victim + 1) % n;
            }
            if let Some(Owned { owner, mut batch }) = self.crew.steal_from(self.victim) {
                self.crew.rise(self.me);
                let started = Instant::now();
                execute_batch(&mut batch, &self.engine, &self.stats, unix_now());
                let crew = Arc::clone(&self.crew);
                self.finish(&crew, owner, batch, &mut None);
                self.stats.busy_us.add(started.elapsed().as_micros() as u64);
                return true;
            }
        }
        false
    }

    /// Watches that fired, as `(epoll it fired in, stuck reader)`: each is
    /// over; read for the stuck reader if it still is, and this reader has
    /// nothing of its own queued. Called holding no home.
    fn answer(&mut self, mut watches: Vec<(usize, usize)>) {
        let crew = Arc::clone(&self.crew);
        while let Some((epoll, owner)) = watches.pop() {
            crew.end_watch(epoll, owner);
            if !crew.stuck[owner].load(Ordering::SeqCst) {
                continue;
            }
            if !self.queue.is_empty() {
                // Busy since it was asked: pass the watch on.
                crew.find_watcher(owner);
                continue;
            }
            // Stuck means not holding its home, unless it is just back.
            let Ok(mut home) = crew.homes[owner].try_lock() else {
                continue;
            };
            let hands = self.hands();
            for (token, readiness) in shared_epoll::harvest(&crew.epolls[owner]) {
                home.on_event(token, readiness, &crew, &hands, &mut watches);
            }
            // Requests may keep arriving while it is stuck: another
            // sleeping reader watches for them.
            crew.find_watcher(owner);
        }
    }

    /// Executes the batches queued when called, oldest first, and then
    /// those queued meanwhile (a connection's next batch) for what is left
    /// of a [`SLICE`]; so that long batches let its events be polled
    /// between them, while a round of cheap ones serves every event once,
    /// as multi-reader's loop does, without an extra poll. Holds
    /// this reader's home (`home`) while batches are cheap; lets go of it
    /// while a long one runs, having asked a sleeping reader to watch its
    /// connections. Batches waiting behind the one it runs wake a sleeping
    /// reader to steal them, when they are worth it. `true` if the slice
    /// ran out with batches left.
    fn run_queue<'c>(&self, crew: &'c Crew, home: &mut Option<MutexGuard<'c, Home>>) -> bool {
        let cost = &crew.costs[self.me];
        let started = Instant::now();
        let unix_time = unix_now();
        let mut batch_start = started;
        let mut unrun = self.queue.len();
        while let Some(Owned { owner, mut batch }) = self.queue.pop() {
            unrun = unrun.saturating_sub(1);
            if cost.worth_stealing(self.queue.len()) {
                crew.wake_one(self.me);
            }
            let long = cost.worth_stealing(1);
            if long {
                *home = None;
                crew.get_stuck(self.me);
                crew.hand_off_watches(self.me);
            }
            execute_batch(&mut batch, &self.engine, &self.stats, unix_time);
            if long {
                crew.stuck[self.me].store(false, Ordering::SeqCst);
            }
            // Timed from the previous batch's end, one clock read per batch:
            // the cost includes moving the previous connection on.
            let now = Instant::now();
            cost.add_sample(now - batch_start);
            batch_start = now;
            self.finish(crew, owner, batch, home);
            if unrun == 0 && now - started >= SLICE {
                return !self.queue.is_empty();
            }
        }
        false
    }

    /// A batch is executed: its connection moves on, under its owner's
    /// lock. `home` is this reader's, held or not; it is let go of before
    /// another's is taken, so that no reader holds two.
    fn finish<'c>(
        &self,
        crew: &'c Crew,
        owner: usize,
        batch: Batch,
        home: &mut Option<MutexGuard<'c, Home>>,
    ) {
        let hands = self.hands();
        if owner == self.me {
            home.get_or_insert_with(|| crew.home(self.me))
                .finish(batch, &hands);
        } else {
            *home = None;
            self.stats.stolen.incr();
            crew.stats[owner].lost.incr();
            crew.give_back(owner, batch, &hands);
        }
    }

    /// Finishes the batches returned to this reader's home; how many of its
    /// connections are still away.
    fn take_returns(&self, crew: &Crew) -> usize {
        let mut home = crew.home(self.me);
        let hands = self.hands();
        while let Ok(batch) = home.returns.try_recv() {
            home.finish(batch, &hands);
        }
        home.away
    }

    /// Shutdown: answer what clients sent before the signal, including
    /// batches queued or executing anywhere (waiting for them to be
    /// finished), write the replies within a bounded time, close
    /// everything.
    fn drain(&mut self) {
        let deadline = Instant::now() + DRAIN_TIMEOUT;
        let crew = Arc::clone(&self.crew);
        {
            let mut home = crew.home(self.me);
            let hands = self.hands();
            home.take_mail(&crew.notifiers[self.me], &crew, &hands);
            // Last call: what clients sent may still be in the sockets,
            // with its readiness event not yet taken.
            let keys: Vec<usize> = home.clients.iter().map(|(i, _)| i).collect();
            for i in keys {
                if let Some(conn) = home.clients.get_mut(i).and_then(Client::conn_mut) {
                    conn.expect_input();
                    home.serve(i, &hands);
                }
            }
        }
        while Instant::now() < deadline {
            if let Some(Owned { owner, mut batch }) = self.queue.pop() {
                execute_batch(&mut batch, &self.engine, &self.stats, unix_now());
                self.finish(&crew, owner, batch, &mut None);
            } else if self.take_returns(&crew) == 0 {
                break;
            } else if !self.steal() {
                thread::sleep(Duration::from_millis(1));
            }
        }
        let mut home = crew.home(self.me);
        drain_output(
            &mut self.poll,
            &mut home.clients,
            &self.stats,
            Client::conn_mut,
        );
        let keys: Vec<usize> = home.clients.iter().map(|(i, _)| i).collect();
        for i in keys {
            home.close(i, &self.engine);
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
            crew.stealers.push(Worker::new_fifo().stealer());
            crew.epolls
                .push(poll.registry().as_fd().try_clone_to_owned().unwrap());
            crew.notifiers.push(Arc::new(Notifier::new(waker)));
            crew.asleep.push(AtomicBool::new(false));
            crew.stuck.push(AtomicBool::new(false));
            crew.watcher.push(AtomicUsize::new(NOBODY));
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

    fn tokens(poll: &mut Poll, wait: Duration) -> Vec<Token> {
        let mut events = Events::with_capacity(4);
        poll.poll(&mut events, Some(wait)).unwrap();
        events.iter().map(|e| e.token()).collect()
    }

    #[test]
    fn a_stuck_reader_is_watched_by_one_sleeper_until_its_next_event() {
        let (crew, mut polls) = crew(3);
        crew.get_stuck(0); // nobody sleeps: nobody watches
        assert!(crew.stuck[0].load(Ordering::SeqCst));
        assert_eq!(crew.watcher[0].load(Ordering::SeqCst), NOBODY);
        crew.doze(2);
        crew.get_stuck(0);
        assert_eq!(crew.watcher[0].load(Ordering::SeqCst), 2);
        assert!(!crew.watch(1, 0), "one watcher at a time");
        assert!(
            tokens(&mut polls[2], Duration::ZERO).is_empty(),
            "no event yet"
        );
        crew.notifiers[0].notify(); // reader 0's epoll gets an event
        let told = tokens(&mut polls[2], Duration::from_secs(5));
        assert_eq!(told, [Token(HELP)]);
        assert!(tokens(&mut polls[1], Duration::ZERO).is_empty());
        crew.end_watch(2, 0);
        assert_eq!(crew.watcher[0].load(Ordering::SeqCst), NOBODY);
        // Reader 0 watches reader 2: 2 cannot watch 0 back (a circle).
        assert!(crew.watch(0, 2));
        assert!(!crew.watch(2, 0));
        assert_eq!(crew.watcher[0].load(Ordering::SeqCst), NOBODY);
        assert!(crew.watch(1, 0), "another may");
        // Reader 1 is about to be stuck itself: reader 2, asleep, takes
        // its watch over reader 0, which is still stuck.
        crew.end_watch(0, 2);
        crew.hand_off_watches(1);
        assert_eq!(crew.watcher[0].load(Ordering::SeqCst), 2);
        crew.notifiers[0].notify();
        crew.notifiers[0].clear();
        crew.notifiers[0].notify();
        let told = tokens(&mut polls[2], Duration::from_secs(5));
        assert_eq!(told, [Token(HELP)]);
        assert!(tokens(&mut polls[1], Duration::ZERO).is_empty());
    }

    #[test]
    fn only_queued_work_past_the_bar_is_worth_stealing() {
        let cost = Cost::default();
        assert!(!cost.worth_stealing(1000), "no batch timed yet");
        for _ in 0..500 {
            cost.add_sample(Duration::from_micros(5));
        }
        assert!(!cost.worth_stealing(1), "one cheap batch");
        assert!(cost.worth_stealing(11), "enough cheap ones");
        cost.add_sample(Duration::from_millis(4));
        assert!(!cost.worth_stealing(1), "one preempted cheap batch");
        for _ in 0..40 {
            cost.add_sample(Duration::from_millis(1));
        }
        assert!(cost.worth_stealing(1), "one slow batch");
        assert!(!cost.worth_stealing(0));
    }

    #[test]
    fn one_slow_request_in_ten_keeps_every_batch_worth_moving() {
        let cost = Cost::default();
        let mix = |k: usize| Duration::from_micros(if k % 10 == 9 { 750 } else { 25 });
        for k in 0..500 {
            cost.add_sample(mix(k));
        }
        for k in 0..1000 {
            cost.add_sample(mix(k));
            assert!(
                cost.worth_stealing(1),
                "after batch {k}: mean {} ns",
                cost.get()
            );
        }
    }
}
