//! How a run drives the server: where, how long, from how many client
//! threads, and the seed of its arrivals.

use std::net::SocketAddr;
use std::time::Duration;

/// How to drive the server.
#[derive(Clone, Debug)]
pub struct Options {
    pub server: SocketAddr,
    pub duration: Duration,
    pub client_threads: usize,
    /// Connect timeout (and bound of the whole connect phase), warmup reply
    /// timeout, and grace period for the last replies after the run.
    pub timeout: Duration,
    /// Open loop: poll without sleeping from this long before a send is
    /// due (a timer wake-up can be tens of µs late).
    pub spin: Duration,
    /// Seeds the Poisson arrivals: connection `i` of a group draws its
    /// gaps from `connection_seed(seed, i)`, as the queueing model does.
    pub seed: u64,
}
