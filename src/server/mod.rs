//! Sockets, connections and the five threading patterns.
//!
//! Serving a request, the same in every pattern:
//! - [`connection`]: a client's buffers and socket I/O; [`command_log`]:
//!   its commands and replies at `-vv`; [`receive`]: reads that say when
//!   their bytes arrived, for the stage times (`stats latency`).
//! - [`batch`]: the serving state machine. The owner of a connection
//!   writes what is pending, parses up to `-R` requests into a batch and
//!   reads more ([`batch::advance`]); some thread executes the batch and
//!   writes its replies ([`batch::execute_batch`], where every request is
//!   executed).
//! - [`home`]: the connections one thread owns, each home or away with its
//!   batch.
//!
//! The threads' machinery:
//! - [`polling`]: what every polling thread shares: tokens, timeouts,
//!   wiring, the end of a round.
//! - [`event_loop`]: a thread that polls its home and executes its batches
//!   itself (basic, multi-reader's readers, reuseport's loops).
//! - [`acceptor`]: accepting and dealing connections to readers, whose
//!   threads it keeps (multi-reader, work-stealing).
//! - [`listener`], [`notifier`], [`shutdown`]: binding (reuseport's
//!   listeners sharing a port too) and accepting,
//!   cross-thread wake-ups, and graceful stop; [`config`]: the command line.
//! - [`process`]: the open-file limit, and the `listening on` line that
//!   kvbench and the tests read the port from.
//!
//! [`patterns`]: `basic`, `multi_reader`, `worker_pool`, `work_stealing`,
//! `reuseport`, side by side, each holding only what it alone has.

pub mod acceptor;
pub mod batch;
pub mod command_log;
pub mod config;
pub mod connection;
pub mod event_loop;
pub mod home;
pub mod listener;
pub mod notifier;
pub mod patterns;
pub mod polling;
pub mod process;
pub mod receive;
pub mod shutdown;

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use anyhow::Context;

use crate::engine::{Engine, Settings};
use crate::store::unix_now;
use config::{Config, Pattern};
use shutdown::Shutdown;

/// How often expired items are swept out of the store.
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// Runs the server until SIGINT or SIGTERM.
pub fn run(config: &Config) -> anyhow::Result<()> {
    if let Err(e) = process::raise_fd_limit() {
        tracing::warn!("cannot raise the open-file limit: {e}");
    }
    let bind = match config.pattern {
        Pattern::Reuseport => listener::bind_reuseport,
        _ => listener::bind,
    };
    let listener = bind(listen_addr(&config.listen, config.port)?)?;
    let addr = listener.local_addr()?;
    let threads = config.threads();
    if config.pattern == Pattern::Basic && config.threads.is_some_and(|t| t != 1) {
        tracing::warn!("--threads is ignored by the basic pattern: it runs one thread");
    }
    let settings = Settings {
        pattern: config.pattern.name(),
        threads,
        port: addr.port(),
        listen: config.listen.clone(),
        max_conns: config.max_conns,
        reqs_per_event: config.reqs_per_event as usize,
        max_pending_output: config.max_pending_output,
        max_item_size: config.max_item_size,
        idle_timeout: config.idle_timeout,
        work: config.work(),
        stamp_arrivals: config.stamp_arrivals,
        stage_sample: config.stage_sample,
    };
    let engine = Arc::new(Engine::new(
        settings,
        config.memory_limit.saturating_mul(1024 * 1024),
    ));
    let shutdown = Arc::new(Shutdown::default());
    shutdown.on_signals()?;
    start_sweeper(&engine, &shutdown)?;
    process::announce(addr, config.pattern, threads);
    let start = patterns::Start {
        listener,
        threads,
        engine,
        shutdown,
    };
    match config.pattern {
        Pattern::Basic => patterns::basic::run(start),
        Pattern::MultiReader => patterns::multi_reader::run(start),
        Pattern::WorkerPool => patterns::worker_pool::run(start),
        Pattern::WorkStealing => patterns::work_stealing::run(start),
        Pattern::Reuseport => patterns::reuseport::run(start),
    }?;
    tracing::info!("kvserve stopped");
    Ok(())
}

/// The address `-l` names: an IP address, or a host name resolved as
/// memcached does (`localhost` is the loopback address), its first IPv4
/// address preferred.
fn listen_addr(host: &str, port: u16) -> anyhow::Result<SocketAddr> {
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve {host}"))?
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .copied()
        .with_context(|| format!("{host} resolves to no address"))
}

/// Reclaims expired items about once a second, so they do not take the
/// place of live ones until a lookup happens to meet them.
fn start_sweeper(engine: &Arc<Engine>, shutdown: &Arc<Shutdown>) -> anyhow::Result<()> {
    let (engine, shutdown) = (Arc::clone(engine), Arc::clone(shutdown));
    thread::Builder::new()
        .name("sweeper".into())
        .spawn(move || {
            while !shutdown.is_requested() {
                thread::sleep(SWEEP_INTERVAL);
                engine.store.sweep(unix_now());
            }
        })?;
    Ok(())
}
