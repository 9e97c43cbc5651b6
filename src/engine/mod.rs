//! Request execution: the part of serving a request that does not depend on
//! which thread runs it. Every pattern parses with [`crate::protocol`] and
//! then calls [`Engine::execute`]; only *where* that call happens differs.

mod execute;
mod meta;
mod report;
pub mod stages;
pub mod stats;
pub mod work;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crate::auth::AuthFile;
use crate::protocol::Limits;
use crate::store::Store;
use crate::tls::Tls;
use stats::StatsRegistry;

pub use execute::Flow;

/// The version kvserve reports (`version`, `stats`): the memcached release
/// whose text protocol it matches, then its own. Clients read the leading
/// number to pick protocol behaviour (libmemcached's `memccapable` expects
/// 1.6's leniency, e.g. `version foo` answered with the version), so it must
/// name the memcached it behaves like.
pub const VERSION: &str = concat!("1.6.18-kvserve-", env!("CARGO_PKG_VERSION"));

/// The server settings that requests can see, through `stats settings`.
#[derive(Clone, Debug)]
pub struct Settings {
    pub pattern: &'static str,
    pub threads: usize,
    pub port: u16,
    pub listen: String,
    pub max_conns: usize,
    pub reqs_per_event: usize,
    /// Unsent reply bytes after which a connection is not read (backpressure).
    pub max_pending_output: usize,
    pub max_item_size: usize,
    pub idle_timeout: u64,
    /// The service time each request spends on the thread that executes it
    /// (`--work`, or `--work-us N` as `spin:fixed:Nus`); `None`: none. A
    /// request to an in-memory store costs about a microsecond, too little
    /// for the patterns to differ by more than their overhead; real services
    /// spend more, and unevenly, which is where a worker pool pays off.
    pub work: Option<work::WorkModel>,
    /// Whether reads ask the kernel when their bytes arrived
    /// (`--stamp-arrivals`), for the `socket` and `wakeup` stage times.
    pub stamp_arrivals: bool,
    /// One batch in this many is timed for `stats latency` (`--stage-sample`).
    pub stage_sample: u32,
}

/// The store, the statistics and the settings: what executing a request needs.
pub struct Engine {
    pub store: Store,
    pub stats: StatsRegistry,
    pub settings: Settings,
    pub limits: Limits,
    /// `-Z`: the certificate and session cache every TLS connection
    /// starts from, and its counters.
    pub tls: Option<Tls>,
    /// The users of `-Y`; `None`: connections need not authenticate.
    pub auth: Option<Arc<AuthFile>>,
    verbosity: AtomicU32,
    started: Instant,
}

impl Engine {
    pub fn new(settings: Settings, memory_limit: usize) -> Engine {
        Engine {
            store: Store::new(memory_limit, settings.max_item_size),
            stats: StatsRegistry::default(),
            limits: Limits::new(settings.max_item_size),
            auth: None,
            settings,
            tls: None,
            verbosity: AtomicU32::new(0),
            started: Instant::now(),
        }
    }

    fn set_verbosity(&self, level: u32) {
        self.verbosity.store(level, Ordering::Relaxed);
    }

    fn verbosity(&self) -> u32 {
        self.verbosity.load(Ordering::Relaxed)
    }
}
