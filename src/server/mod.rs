//! Sockets, connections and the five threading patterns.
//!
//! Serving a request, the same in every pattern:
//! - [`connection`]: a client's buffers and socket I/O, through a TLS
//!   session ([`tls_io`]) on a TLS listener's connection; [`command_log`]:
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
pub mod tls_io;

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use anyhow::Context;

use crate::auth::AuthFile;
use crate::engine::{Engine, Settings};
use crate::store::unix_now;
use crate::tls::{Tls, TlsOptions};
use config::{Config, ListenSpec, Pattern};
use listener::{Listener, Listeners};
use shutdown::Shutdown;

/// How often expired items are swept out of the store.
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// Runs the server until SIGINT or SIGTERM (SIGHUP reloads `-Y`'s file).
pub fn run(config: &Config) -> anyhow::Result<()> {
    // Before binding, as memcached: a file that does not load stops the start.
    let auth = config
        .auth_file
        .as_deref()
        .map(AuthFile::load)
        .transpose()?;
    if let Err(e) = process::raise_fd_limit() {
        tracing::warn!("cannot raise the open-file limit: {e}");
    }
    let tls_options = TlsOptions::parse(config.extended.iter().map(String::as_str))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let tls = match config.enable_ssl {
        true => Some(Tls::new(tls_options).map_err(|e| anyhow::anyhow!("{e}"))?),
        false => None,
    };
    let listeners = bind_all(config, tls.is_some(), auth.is_some())?;
    let addr = listeners.addrs()?[0];
    let threads = config.threads();
    if config.pattern == Pattern::Basic && config.threads.is_some_and(|t| t != 1) {
        tracing::warn!("--threads is ignored by the basic pattern: it runs one thread");
    }
    let settings = Settings {
        pattern: config.pattern.name(),
        threads,
        port: addr.port(),
        listen: config.listen.join(","),
        max_conns: config.max_conns,
        reqs_per_event: config.reqs_per_event as usize,
        max_pending_output: config.max_pending_output,
        max_item_size: config.max_item_size,
        idle_timeout: config.idle_timeout,
        work: config.work(),
        stamp_arrivals: config.stamp_arrivals,
        stage_sample: config.stage_sample,
    };
    let mut engine = Engine::new(settings, config.memory_limit.saturating_mul(1024 * 1024));
    engine.auth = auth.map(Arc::new);
    engine.tls = tls;
    let engine = Arc::new(engine);
    let shutdown = Arc::new(Shutdown::default());
    shutdown.on_signals()?;
    if let Some(auth) = &engine.auth {
        auth.reload_on_sighup()?;
        let (path, users) = (auth.path(), auth.user_count());
        tracing::info!("clients must authenticate (-Y {path}, users: {users})");
    }
    start_sweeper(&engine, &shutdown)?;
    process::announce(addr, config.pattern, threads);
    let start = patterns::Start {
        listeners,
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

/// Binds every `-l` address, each TLS when `-Z` is on unless `notls:`.
/// Says once if one is reachable beyond this machine with neither TLS
/// nor authentication.
fn bind_all(config: &Config, tls: bool, authenticated: bool) -> anyhow::Result<Listeners> {
    let mut listeners = Vec::new();
    for text in &config.listen {
        let spec = ListenSpec::parse(text).map_err(|e| anyhow::anyhow!("{e}"))?;
        let addr = listen_addr(&spec.host, spec.port.unwrap_or(config.port))?;
        let tls = tls && !spec.notls;
        if open_to_anyone(addr, tls, authenticated) {
            tracing::warn!(
                "{addr} is reachable from other machines without TLS (-Z) or authentication: \
                 anyone who can reach it can read, change and flush every item"
            );
        }
        let socket = match config.pattern {
            Pattern::Reuseport => listener::bind_reuseport(addr)?,
            _ => listener::bind(addr)?,
        };
        listeners.push(Listener { socket, tls });
    }
    Ok(Listeners(listeners))
}

/// Whether a listener on `addr` lets anyone who reaches it read and
/// change everything: plaintext, no passwords, and not on loopback.
fn open_to_anyone(addr: SocketAddr, tls: bool, authenticated: bool) -> bool {
    !tls && !authenticated && !addr.ip().is_loopback()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plaintext_without_passwords_beyond_loopback_is_open() {
        let lan: SocketAddr = "0.0.0.0:11211".parse().unwrap();
        let local: SocketAddr = "127.0.0.1:11211".parse().unwrap();
        let local6: SocketAddr = "[::1]:11211".parse().unwrap();
        assert!(open_to_anyone(lan, false, false));
        assert!(!open_to_anyone(lan, true, false));
        assert!(!open_to_anyone(lan, false, true));
        assert!(!open_to_anyone(local, false, false));
        assert!(!open_to_anyone(local6, false, false));
    }
}
