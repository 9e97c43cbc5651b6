//! A work-stealing reader thread: it polls its own connections, executes
//! the batches it parses, and when idle steals from the others or reads
//! for one that is stuck.

use std::sync::{Arc, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_deque::Worker;
use mio::{Events, Poll, Token};

use super::cost::Cost;
use super::cpu_time::thread_cpu;
use super::crew::{Crew, Owned, HELP};
use super::shared_epoll;
use crate::engine::stats::ThreadStats;
use crate::engine::Engine;
use crate::server::batch::{execute_batch, Batch, SLICE};
use crate::server::connection::Readiness;
use crate::server::home::{Hands, Home};
use crate::server::polling::{end_round, wait_for_events, DRAIN_TIMEOUT, POLL_TIMEOUT, WAKER};
use crate::server::shutdown::Shutdown;
use crate::store::unix_now;

/// One reader thread's state.
pub struct Reader {
    me: usize,
    poll: Poll,
    /// Parsed batches, oldest first: of this reader's connections, and of
    /// connections it read for a stuck reader.
    queue: Worker<Owned>,
    /// The reader stolen from last: victims are tried round-robin.
    victim: usize,
    crew: Arc<Crew>,
    hands: Hands,
    shutdown: Arc<Shutdown>,
}

impl Reader {
    /// Reader `me` of `crew`, polling `poll` and executing from `queue`.
    pub fn new(
        me: usize,
        (poll, queue): (Poll, Worker<Owned>),
        crew: &Arc<Crew>,
        engine: &Arc<Engine>,
        stats: Arc<ThreadStats>,
        shutdown: &Arc<Shutdown>,
    ) -> Reader {
        Reader {
            me,
            poll,
            queue,
            victim: me,
            crew: Arc::clone(crew),
            hands: Hands {
                engine: Arc::clone(engine),
                stats,
            },
            shutdown: Arc::clone(shutdown),
        }
    }

    /// The reader's loop, until shutdown.
    pub fn run(mut self) {
        let mut events = Events::with_capacity(1024);
        let crew = Arc::clone(&self.crew);
        loop {
            let timeout = self.next_timeout();
            let timed = self.hands.engine.settings.stamp_arrivals;
            let polled = wait_for_events(&mut self.poll, &mut events, timeout, timed);
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
                for event in events.iter() {
                    let readiness = Readiness::of(event);
                    self.on_event(self.me, home, event.token(), readiness, &mut watches);
                }
            }
            if !watches.is_empty() {
                home = None;
                self.answer(watches);
            }
            // Batches long enough to be cut short: note the thread's CPU
            // time, to tell below whether they ran or slept.
            let long = self.cost().get() >= SLICE.as_nanos() as u64 / 2;
            let before = long.then(|| (Instant::now(), thread_cpu()));
            let cut_short = self.run_queue(&crew, &mut home);
            let home = home.get_or_insert_with(|| crew.home(self.me));
            home.close_idle(&self.hands.engine);
            let slept = before.is_some_and(|(wall, cpu)| (thread_cpu() - cpu) * 2 < wall.elapsed());
            if cut_short && slept {
                // Batches that mostly slept (a slow backend call) gave the
                // core away already: yielding it between them too, as
                // `end_round` does, would cost every batch of a busy queue a
                // share of time slices. Batches that ran keep the yield, so
                // a reader spinning through a long queue lets the others
                // (clients on the same cores) in.
                let busy = started.elapsed().as_micros() as u64;
                self.hands.stats.busy_us.add(busy);
            } else {
                end_round(&self.hands.stats, started);
            }
        }
    }

    /// This reader's mean batch cost.
    fn cost(&self) -> &Cost {
        &self.crew.peers[self.me].cost
    }

    /// Acts on one event taken from reader `owner`'s epoll, holding its
    /// home. A watch that fired in it (the owner was watching someone) is
    /// put in `watches`.
    fn on_event(
        &self,
        owner: usize,
        home: &mut Home,
        token: Token,
        readiness: Readiness,
        watches: &mut Vec<(usize, usize)>,
    ) {
        match token {
            WAKER => self.take_mail(owner, home),
            Token(t) if t >= HELP => watches.push((owner, t - HELP)),
            Token(i) => self.queue_up(owner, home.on_event(i, readiness, &self.hands)),
        }
    }

    /// New connections for reader `owner`'s home, and batches returned to it.
    fn take_mail(&self, owner: usize, home: &mut Home) {
        let peer = &self.crew.peers[owner];
        peer.notifier.clear();
        for connection in peer.inbox.try_iter() {
            peer.stats.connections.incr();
            self.queue_up(owner, home.add(connection, &self.hands));
        }
        for batch in peer.returned() {
            self.queue_up(owner, home.finish(batch, &self.hands));
        }
    }

    /// Queues a batch parsed from a connection of reader `owner`'s.
    fn queue_up(&self, owner: usize, batch: Option<Batch>) {
        if let Some(batch) = batch {
            self.queue.push(Owned { owner, batch });
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
        for (owner, peer) in crew.peers.iter().enumerate() {
            if owner != self.me && peer.is_stuck() {
                crew.watch(self.me, owner);
            }
        }
        POLL_TIMEOUT
    }

    /// Steals one batch from the other readers, round-robin, executes it
    /// and moves its connection on. `false` if there was nothing to steal.
    fn steal(&mut self) -> bool {
        let n = self.crew.peers.len();
        for _ in 1..n {
            self.victim = (self.victim + 1) % n;
            if self.victim == self.me {
                self.victim = (self.victim + 1) % n;
            }
            if let Some(Owned { owner, mut batch }) = self.crew.steal_from(self.victim) {
                self.crew.rise(self.me);
                let started = Instant::now();
                let Hands { engine, stats } = &self.hands;
                execute_batch(&mut batch, engine, stats, unix_now(), Some(SLICE));
                let crew = Arc::clone(&self.crew);
                self.finish(&crew, owner, batch, &mut None);
                stats.busy_us.add(started.elapsed().as_micros() as u64);
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
            if !crew.peers[owner].is_stuck() {
                continue;
            }
            if !self.queue.is_empty() {
                // Busy since it was asked: pass the watch on.
                crew.find_watcher(owner);
                continue;
            }
            // Stuck means not holding its home, unless it is just back.
            let Some(mut home) = crew.try_home(owner) else {
                continue;
            };
            for (token, readiness) in shared_epoll::harvest(&crew.peers[owner].epoll) {
                self.on_event(owner, &mut home, token, readiness, &mut watches);
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
        let cost = self.cost();
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
            execute_batch(
                &mut batch,
                &self.hands.engine,
                &self.hands.stats,
                unix_time,
                Some(SLICE),
            );
            if long {
                crew.get_unstuck(self.me);
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
    /// another's is taken, so that no reader holds two. A batch of another
    /// reader's whose home is busy goes back to that reader, which moves
    /// it on, so that a thief never waits for a busy owner's round to end.
    fn finish<'c>(
        &self,
        crew: &'c Crew,
        owner: usize,
        batch: Batch,
        home: &mut Option<MutexGuard<'c, Home>>,
    ) {
        if owner == self.me {
            let home = home.get_or_insert_with(|| crew.home(self.me));
            self.queue_up(owner, home.finish(batch, &self.hands));
            return;
        }
        *home = None;
        self.hands.stats.stolen.incr();
        crew.peers[owner].stats.lost.incr();
        match crew.try_home(owner) {
            Some(mut theirs) => self.queue_up(owner, theirs.finish(batch, &self.hands)),
            None => crew.mail_back(owner, batch),
        }
    }

    /// Finishes the batches returned to this reader's home; how many of its
    /// connections are still away.
    fn take_returns(&self, crew: &Crew) -> usize {
        let mut home = crew.home(self.me);
        for batch in crew.peers[self.me].returned() {
            self.queue_up(self.me, home.finish(batch, &self.hands));
        }
        home.away()
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
            self.take_mail(self.me, &mut home);
            for batch in home.last_call(&self.hands) {
                self.queue_up(self.me, Some(batch));
            }
        }
        while Instant::now() < deadline {
            if let Some(Owned { owner, mut batch }) = self.queue.pop() {
                let Hands { engine, stats } = &self.hands;
                execute_batch(&mut batch, engine, stats, unix_now(), Some(SLICE));
                self.finish(&crew, owner, batch, &mut None);
            } else if self.take_returns(&crew) == 0 {
                break;
            } else if !self.steal() {
                thread::sleep(Duration::from_millis(1));
            }
        }
        crew.home(self.me).close_all(&mut self.poll, &self.hands);
    }
}
