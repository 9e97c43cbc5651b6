//! Statistics: each thread counts its own work in its own cache line, and
//! `stats` sums them, so counting costs no shared writes on the hot path.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::stages::{Distribution, StageHistograms};

/// A counter written by one thread and read by any. Writing is a plain load
/// and store, not a locked read-modify-write: only the owner ever writes.
#[derive(Default, Debug)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn add(&self, n: u64) {
        self.0.store(
            self.0.load(Ordering::Relaxed).wrapping_add(n),
            Ordering::Relaxed,
        );
    }

    pub fn incr(&self) {
        self.add(1);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// What a thread does in its pattern, as `stats threads` names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// An event loop with a listener of its own (basic's single thread,
    /// reuseport's loops): accepts, reads, executes and writes.
    Loop,
    /// multi-reader's thread that only accepts and hands out connections.
    Acceptor,
    /// multi-reader's event loops: read, execute and write their connections.
    Reader,
    /// worker-pool's thread that accepts, reads and parses every connection.
    Dispatch,
    /// worker-pool's threads that execute requests and write the replies.
    Worker,
    /// work-stealing's readers: a multi-reader reader that also steals
    /// parsed batches from busy readers. `stats threads` names it `reader`
    /// and adds its `stolen` and `lost` counts.
    StealingReader,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Loop => "loop",
            Role::Acceptor => "acceptor",
            Role::Reader | Role::StealingReader => "reader",
            Role::Dispatch => "dispatch",
            Role::Worker => "worker",
        }
    }
}

/// Declares the command counters once, with their `stats` names, so the
/// struct, the totals and the report cannot drift apart.
macro_rules! command_counters {
    ($($name:ident),* $(,)?) => {
        /// memcached's per-command counters, under its `stats` names.
        #[derive(Default, Debug)]
        pub struct CommandCounters {
            $(pub $name: Counter,)*
        }

        /// A snapshot of [`CommandCounters`] summed over threads.
        #[derive(Default, Clone, Copy, Debug)]
        pub struct CommandTotals {
            $(pub $name: u64,)*
        }

        impl CommandTotals {
            fn add(&mut self, c: &CommandCounters) {
                $(self.$name += c.$name.get();)*
            }

            fn minus(self, base: CommandTotals) -> CommandTotals {
                CommandTotals { $($name: self.$name.wrapping_sub(base.$name),)* }
            }

            /// `(name, value)` pairs in memcached's order.
            pub fn fields(&self) -> impl Iterator<Item = (&'static str, u64)> {
                [$((stringify!($name), self.$name),)*].into_iter()
            }
        }
    };
}

command_counters!(
    cmd_get,
    cmd_set,
    cmd_flush,
    cmd_touch,
    cmd_meta, // `me` only, as memcached counts it
    get_hits,
    get_misses,
    get_expired,
    get_flushed,
    delete_misses,
    delete_hits,
    incr_misses,
    incr_hits,
    decr_misses,
    decr_hits,
    cas_misses,
    cas_hits,
    cas_badval,
    touch_hits,
    touch_misses,
    store_too_large,
    auth_cmds,   // `-Y` handshakes whose credentials were checked
    auth_errors, // those refused
);

/// Everything one thread counts about its own work.
#[derive(Debug)]
#[repr(align(128))]
pub struct ThreadStats {
    pub role: Role,
    /// Connections this thread has taken on since start (accepted, for an
    /// acceptor or dispatch thread; served, for a loop or reader).
    pub connections: Counter,
    /// Requests this thread executed.
    pub requests: Counter,
    pub bytes_read: Counter,
    pub bytes_written: Counter,
    /// Time spent working rather than waiting for events or work.
    pub busy_us: Counter,
    /// Times a connection used up `--reqs-per-event` and had to wait for
    /// the others (memcached's `conn_yields`).
    pub conn_yields: Counter,
    /// Requests this thread spent a `--work` service time on.
    pub work_requests: Counter,
    /// The service time those requests drew (asked for), in nanoseconds.
    pub work_asked_ns: Counter,
    /// The time performing it actually took, in nanoseconds: a sleep
    /// overruns what it asked for by the wake-up latency.
    pub work_spent_ns: Counter,
    /// work-stealing: batches this reader stole from others and executed.
    pub stolen: Counter,
    /// work-stealing: batches of this reader's connections that others
    /// stole, counted by this reader when the connection comes back.
    pub lost: Counter,
    /// TLS handshakes this thread completed, and how many of them resumed
    /// a session.
    pub tls_handshakes: Counter,
    pub tls_resumed: Counter,
    /// Time this thread spent in TLS: handshakes, decrypting and
    /// encrypting, in nanoseconds (not the socket calls around them).
    pub tls_ns: Counter,
    pub commands: CommandCounters,
    /// Where the time of the requests this thread finished went.
    pub stages: StageHistograms,
}

/// All threads' statistics plus the few figures that belong to no thread.
#[derive(Default)]
pub struct StatsRegistry {
    threads: Mutex<Vec<Arc<ThreadStats>>>,
    /// Connections open now; the accepting thread adds, the closing one subtracts.
    pub curr_connections: AtomicU64,
    pub total_connections: AtomicU64,
    pub rejected_connections: AtomicU64,
    baseline: Mutex<Totals>,
    /// The stage histograms summed over threads at the last `stats reset`.
    stages_baseline: Mutex<Vec<Distribution>>,
}

/// Sums over all threads, as `stats` reports them.
#[derive(Default, Clone, Copy, Debug)]
pub struct Totals {
    pub commands: CommandTotals,
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub conn_yields: u64,
    pub work_requests: u64,
    pub work_asked_ns: u64,
    pub work_spent_ns: u64,
}

impl StatsRegistry {
    /// Registers a new thread's statistics; the thread keeps the `Arc`.
    pub fn register(&self, role: Role) -> Arc<ThreadStats> {
        let stats = Arc::new(ThreadStats {
            role,
            connections: Counter::default(),
            requests: Counter::default(),
            bytes_read: Counter::default(),
            bytes_written: Counter::default(),
            busy_us: Counter::default(),
            conn_yields: Counter::default(),
            work_requests: Counter::default(),
            work_asked_ns: Counter::default(),
            work_spent_ns: Counter::default(),
            stolen: Counter::default(),
            lost: Counter::default(),
            tls_handshakes: Counter::default(),
            tls_resumed: Counter::default(),
            tls_ns: Counter::default(),
            commands: CommandCounters::default(),
            stages: StageHistograms::default(),
        });
        self.threads.lock().unwrap().push(Arc::clone(&stats));
        stats
    }

    /// Every registered thread, in registration order.
    pub fn threads(&self) -> Vec<Arc<ThreadStats>> {
        self.threads.lock().unwrap().clone()
    }

    /// Sums since start or since the last [`reset`](Self::reset).
    pub fn totals(&self) -> Totals {
        let now = self.raw_totals();
        let base = *self.baseline.lock().unwrap();
        Totals {
            commands: now.commands.minus(base.commands),
            bytes_read: now.bytes_read - base.bytes_read,
            bytes_written: now.bytes_written - base.bytes_written,
            conn_yields: now.conn_yields - base.conn_yields,
            work_requests: now.work_requests - base.work_requests,
            work_asked_ns: now.work_asked_ns - base.work_asked_ns,
            work_spent_ns: now.work_spent_ns - base.work_spent_ns,
        }
    }

    /// `stats reset`: counters start again from zero. Threads own their
    /// counters, so the registry remembers a baseline instead of writing them.
    pub fn reset(&self) {
        *self.baseline.lock().unwrap() = self.raw_totals();
        *self.stages_baseline.lock().unwrap() = self.raw_stages();
    }

    /// Each [`Stage`](super::stages::Stage)'s histogram summed over
    /// threads, since start or the last reset; in `Stage::ALL`'s order.
    pub fn stages(&self) -> Vec<Distribution> {
        let now = self.raw_stages();
        let base = self.stages_baseline.lock().unwrap();
        match base.len() {
            0 => now,
            _ => now
                .iter()
                .zip(base.iter())
                .map(|(n, b)| n.minus(b))
                .collect(),
        }
    }

    fn raw_stages(&self) -> Vec<Distribution> {
        let mut sum = vec![Distribution::default(); super::stages::Stage::ALL.len()];
        for t in self.threads.lock().unwrap().iter() {
            for (s, d) in sum.iter_mut().zip(t.stages.snapshot().iter()) {
                s.add(d);
            }
        }
        sum
    }

    fn raw_totals(&self) -> Totals {
        let mut totals = Totals::default();
        for t in self.threads.lock().unwrap().iter() {
            totals.commands.add(&t.commands);
            totals.bytes_read += t.bytes_read.get();
            totals.bytes_written += t.bytes_written.get();
            totals.conn_yields += t.conn_yields.get();
            totals.work_requests += t.work_requests.get();
            totals.work_asked_ns += t.work_asked_ns.get();
            totals.work_spent_ns += t.work_spent_ns.get();
        }
        totals
    }
}
