//! What the readers share: one [`Peer`] per reader, and the protocols by
//! which they help each other: sleeping and waking to steal, and watching
//! a stuck reader's epoll.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{fence, AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};

use crossbeam_channel::{Receiver, Sender};
use crossbeam_deque::{Steal, Stealer, Worker};
use mio::{Poll, Token};

use super::cost::Cost;
use super::shared_epoll;
use crate::engine::stats::ThreadStats;
use crate::server::acceptor::ReaderWiring;
use crate::server::batch::Batch;
use crate::server::home::Home;
use crate::server::listener::Accepted;
use crate::server::notifier::Notifier;

/// Tokens from `HELP` up, in a reader's epoll, say that reader `token -
/// HELP`'s epoll has events while that reader is stuck. Connection tokens
/// (slab keys) never get this high.
pub const HELP: usize = 1 << 62;

/// No reader (a stuck reader nobody watches).
const NOBODY: usize = usize::MAX;

/// A batch on a queue, and the reader whose connection it is.
pub struct Owned {
    pub owner: usize,
    pub batch: Batch,
}

/// What the other readers see of one reader, and may act on.
pub struct Peer {
    /// Its connections, moved along by whoever holds the lock: the reader
    /// itself, a thief finishing a batch, or a reader reading for it.
    home: Mutex<Home>,
    /// New connections from the acceptor.
    pub inbox: Receiver<Accepted>,
    /// Where a batch goes when its owner's home is busy, and where the
    /// owner takes it from.
    returns: (Sender<Batch>, Receiver<Batch>),
    /// The oldest end of its queue of parsed batches.
    stealer: Stealer<Owned>,
    /// Its epoll, for others to watch and read.
    pub epoll: OwnedFd,
    pub notifier: Arc<Notifier>,
    /// Asleep in its poll with nothing to steal, and not yet woken to steal.
    asleep: AtomicBool,
    /// Executing a long batch with its home let go: worth watching.
    stuck: AtomicBool,
    /// The reader watching its epoll, or [`NOBODY`] (one at a time).
    watcher: AtomicUsize,
    /// The running mean of what its batches take to execute.
    pub cost: Cost,
    /// Its statistics, where others count the batches they took from it.
    pub stats: Arc<ThreadStats>,
}

impl Peer {
    /// The shared part of the reader that `wiring` is for (its
    /// connections closed after `idle_timeout` seconds of silence, if not
    /// 0), and what that reader alone uses: its poll, and the queue it
    /// pushes to and pops from.
    pub fn new(
        wiring: ReaderWiring,
        idle_timeout: u64,
        stats: Arc<ThreadStats>,
    ) -> io::Result<(Peer, (Poll, Worker<Owned>))> {
        let ReaderWiring {
            poll,
            notifier,
            inbox,
        } = wiring;
        let queue = Worker::new_fifo();
        let peer = Peer {
            home: Mutex::new(Home::new(poll.registry().try_clone()?, idle_timeout)),
            inbox,
            returns: crossbeam_channel::unbounded(),
            stealer: queue.stealer(),
            epoll: poll.registry().as_fd().try_clone_to_owned()?,
            notifier,
            asleep: AtomicBool::new(false),
            stuck: AtomicBool::new(false),
            watcher: AtomicUsize::new(NOBODY),
            cost: Cost::default(),
            stats,
        };
        Ok((peer, (poll, queue)))
    }

    /// Batches executed elsewhere while this reader's home was busy.
    pub fn returned(&self) -> impl Iterator<Item = Batch> + '_ {
        self.returns.1.try_iter()
    }

    /// Whether it is stuck in a long batch, its home let go.
    pub fn is_stuck(&self) -> bool {
        self.stuck.load(Ordering::SeqCst)
    }
}

/// Every reader's [`Peer`], indexed by reader.
pub struct Crew {
    pub peers: Vec<Peer>,
    /// How many `asleep` are set (at least): one load tells a busy reader
    /// that nobody could help, so a loaded server pays no wake-ups.
    sleepers: AtomicUsize,
}

impl Crew {
    pub fn new(peers: Vec<Peer>) -> Crew {
        Crew {
            peers,
            sleepers: AtomicUsize::new(0),
        }
    }

    /// Reader `me` is going to sleep; it tries to steal once more after
    /// this, so work queued meanwhile either is seen by it or wakes it.
    pub fn doze(&self, me: usize) {
        self.sleepers.fetch_add(1, Ordering::SeqCst);
        self.peers[me].asleep.store(true, Ordering::SeqCst);
    }

    /// Reader `me` is up (from its poll, or about to skip it).
    pub fn rise(&self, me: usize) {
        if self.peers[me].asleep.swap(false, Ordering::SeqCst) {
            self.sleepers.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// The readers other than `me`, starting after it: the order in which
    /// it looks for help, so that not every reader asks reader 0 first.
    fn others(&self, me: usize) -> impl Iterator<Item = usize> {
        let n = self.peers.len();
        (1..n).map(move |k| (me + k) % n)
    }

    /// Wakes one sleeping reader other than `me` to steal, if any sleeps.
    /// A reader is woken once per sleep however many ask.
    pub fn wake_one(&self, me: usize) {
        // Pairs with the sleeper's store in `doze` and its steal after it.
        fence(Ordering::SeqCst);
        if self.sleepers.load(Ordering::SeqCst) == 0 {
            return;
        }
        for other in self.others(me) {
            if self.peers[other].asleep.swap(false, Ordering::SeqCst) {
                self.sleepers.fetch_sub(1, Ordering::SeqCst);
                self.peers[other].notifier.notify();
                return;
            }
        }
    }

    /// Reader `me` lets go of its home to execute a long batch: a sleeping
    /// reader, if any, watches its epoll until then.
    pub fn get_stuck(&self, me: usize) {
        self.peers[me].stuck.store(true, Ordering::SeqCst);
        self.find_watcher(me);
    }

    /// Reader `me` is back from a long batch.
    pub fn get_unstuck(&self, me: usize) {
        self.peers[me].stuck.store(false, Ordering::SeqCst);
    }

    /// Asks a sleeping reader to watch `owner`'s epoll, if any sleeps.
    pub fn find_watcher(&self, owner: usize) {
        if self.sleepers.load(Ordering::SeqCst) == 0 {
            return;
        }
        for other in self.others(owner) {
            if self.peers[other].asleep.load(Ordering::SeqCst) && self.watch(other, owner) {
                return;
            }
        }
    }

    /// Reader `watcher` will be told when stuck reader `owner` has events,
    /// unless another reader watches it already. `false` if it will not.
    pub fn watch(&self, watcher: usize, owner: usize) -> bool {
        let claim = self.peers[owner].watcher.compare_exchange(
            NOBODY,
            watcher,
            Ordering::SeqCst,
            Ordering::SeqCst,
        );
        if claim.is_err() {
            return false;
        }
        let told = shared_epoll::watch_once(
            &self.peers[watcher].epoll,
            &self.peers[owner].epoll,
            Token(HELP + owner),
        );
        // ELOOP: `owner` watches `watcher` already; let another try.
        if told.is_err() {
            self.peers[owner].watcher.store(NOBODY, Ordering::SeqCst);
        }
        told.is_ok()
    }

    /// The watch that reader `watcher` kept on `owner` is over (it fired,
    /// or the watcher got busy). A no-op for a watch already over.
    pub fn end_watch(&self, watcher: usize, owner: usize) {
        shared_epoll::unwatch(&self.peers[watcher].epoll, &self.peers[owner].epoll);
        let _ = self.peers[owner].watcher.compare_exchange(
            watcher,
            NOBODY,
            Ordering::SeqCst,
            Ordering::SeqCst,
        );
    }

    /// Reader `me` is about to be stuck itself: the stuck readers it
    /// watches get another watcher, as it could not answer for a while.
    pub fn hand_off_watches(&self, me: usize) {
        for (owner, peer) in self.peers.iter().enumerate() {
            if peer.watcher.load(Ordering::SeqCst) == me {
                self.end_watch(me, owner);
                if peer.is_stuck() {
                    self.find_watcher(owner);
                }
            }
        }
    }

    /// The oldest batch queued at `victim`, if its queue is worth stealing from.
    pub fn steal_from(&self, victim: usize) -> Option<Owned> {
        let Peer { stealer, cost, .. } = &self.peers[victim];
        if !cost.worth_stealing(stealer.len()) {
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

    /// `owner`'s home, waiting for it.
    pub fn home(&self, owner: usize) -> MutexGuard<'_, Home> {
        // A panic while holding a home is a bug; its connections are still
        // consistent enough to serve and close.
        self.peers[owner]
            .home
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// `owner`'s home if it is free (its owner is stuck or asleep).
    pub fn try_home(&self, owner: usize) -> Option<MutexGuard<'_, Home>> {
        match self.peers[owner].home.try_lock() {
            Ok(home) => Some(home),
            Err(TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
            Err(TryLockError::WouldBlock) => None,
        }
    }

    /// Sends a batch executed away from home back to its owner, whose home
    /// was busy, and wakes it: the owner takes it from its mail. If the
    /// owner has stopped (shutdown past its drain deadline), dropping the
    /// batch closes the connection.
    pub fn mail_back(&self, owner: usize, batch: Batch) {
        let peer = &self.peers[owner];
        if peer.returns.0.send(batch).is_ok() {
            peer.notifier.notify();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::stats::{Role, StatsRegistry};
    use crate::server::polling::WAKER;
    use mio::Events;
    use std::time::Duration;

    /// A crew of `n` readers with nothing to steal, and their polls.
    fn crew(n: usize) -> (Crew, Vec<Poll>) {
        let stats = StatsRegistry::default();
        let mut peers = Vec::new();
        let mut polls = Vec::new();
        for _ in 0..n {
            let poll = Poll::new().unwrap();
            let waker = mio::Waker::new(poll.registry(), WAKER).unwrap();
            let wiring = ReaderWiring {
                poll,
                notifier: Arc::new(Notifier::new(waker)),
                inbox: crossbeam_channel::never(),
            };
            let stats = stats.register(Role::StealingReader);
            let (peer, (poll, _queue)) = Peer::new(wiring, 0, stats).unwrap();
            peers.push(peer);
            polls.push(poll);
        }
        (Crew::new(peers), polls)
    }

    fn woken(poll: &mut Poll) -> bool {
        let mut events = Events::with_capacity(4);
        poll.poll(&mut events, Some(Duration::ZERO)).unwrap();
        !events.is_empty()
    }

    fn watcher(crew: &Crew, owner: usize) -> usize {
        crew.peers[owner].watcher.load(Ordering::SeqCst)
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
        assert!(crew.peers[0].is_stuck());
        assert_eq!(watcher(&crew, 0), NOBODY);
        crew.doze(2);
        crew.get_stuck(0);
        assert_eq!(watcher(&crew, 0), 2);
        assert!(!crew.watch(1, 0), "one watcher at a time");
        assert!(
            tokens(&mut polls[2], Duration::ZERO).is_empty(),
            "no event yet"
        );
        crew.peers[0].notifier.notify(); // reader 0's epoll gets an event
        let told = tokens(&mut polls[2], Duration::from_secs(5));
        assert_eq!(told, [Token(HELP)]);
        assert!(tokens(&mut polls[1], Duration::ZERO).is_empty());
        crew.end_watch(2, 0);
        assert_eq!(watcher(&crew, 0), NOBODY);
        // Reader 0 watches reader 2: 2 cannot watch 0 back (a circle).
        assert!(crew.watch(0, 2));
        assert!(!crew.watch(2, 0));
        assert_eq!(watcher(&crew, 0), NOBODY);
        assert!(crew.watch(1, 0), "another may");
        // Reader 1 is about to be stuck itself: reader 2, asleep, takes
        // its watch over reader 0, which is still stuck.
        crew.end_watch(0, 2);
        crew.hand_off_watches(1);
        assert_eq!(watcher(&crew, 0), 2);
        crew.peers[0].notifier.notify();
        crew.peers[0].notifier.clear();
        crew.peers[0].notifier.notify();
        let told = tokens(&mut polls[2], Duration::from_secs(5));
        assert_eq!(told, [Token(HELP)]);
        assert!(tokens(&mut polls[1], Duration::ZERO).is_empty());
    }
}
