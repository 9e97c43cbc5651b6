//! The five threading patterns, side by side. Each holds only what makes
//! it different: which threads there are (its `run` starts them) and
//! which thread executes a batch. Connections, parsing, serving
//! ([`crate::server::batch`]) and statistics are shared.
//!
//! | pattern         | threads (the first is the calling thread)  | a batch is executed by           |
//! |-----------------|---------------------------------------------|----------------------------------|
//! | `basic`         | one event loop                              | that loop                        |
//! | `multi_reader`  | an acceptor; N reader event loops           | the reader owning the connection |
//! | `worker_pool`   | a dispatch thread; N workers                | any worker                       |
//! | `work_stealing` | an acceptor; N readers                      | its reader, or an idle one that stole it |
//! | `reuseport`     | N event loops, each with its own listener   | the loop whose listener took the connection |
//!
//! Over TLS the same table says where the crypto runs: the thread that
//! owns a connection does its handshake and decrypts what it reads (never
//! an acceptor; worker-pool's dispatch thread for every connection), and
//! the thread that executes a batch encrypts the replies it writes
//! (docs/tls.md).

pub mod basic;
pub mod multi_reader;
pub mod reuseport;
pub mod work_stealing;
pub mod worker_pool;

use std::sync::Arc;

use crate::engine::Engine;
use crate::server::listener::Listeners;
use crate::server::shutdown::Shutdown;

/// What every pattern's `run` starts from; it runs on the calling thread
/// until shutdown.
pub struct Start {
    /// Bound and listening.
    pub listeners: Listeners,
    /// `-t`: readers (multi-reader, work-stealing), workers (worker-pool)
    /// or event loops (reuseport); basic runs one thread.
    pub threads: usize,
    pub engine: Arc<Engine>,
    pub shutdown: Arc<Shutdown>,
}
