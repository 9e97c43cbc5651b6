//! How a run drives the server: where and how to reach it, how long, from
//! how many client threads, and the seed of its arrivals.

use std::time::Duration;

use crate::net::Endpoint;

/// How to drive the server.
#[derive(Clone, Debug)]
pub struct Options {
    /// The server, over TLS or not, with credentials or not.
    pub server: Endpoint,
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
