//! basic: one thread, one event loop, like Node.js.
//!
//! ```text
//!            +-------------------------------------------+
//!  clients ->| loop: accept, read, parse, execute, write |
//!            +-------------------------------------------+
//! ```
//!
//! No hand-offs at all, so no synchronisation cost per request, and no use
//! of a second core: throughput is what one thread can do.

use std::sync::Arc;

use mio::net::TcpListener;

use crate::engine::Engine;
use crate::server::event_loop::EventLoop;
use crate::server::shutdown::Shutdown;

/// Serves on the calling thread until shutdown.
pub fn run(
    listener: TcpListener,
    engine: &Arc<Engine>,
    shutdown: &Arc<Shutdown>,
) -> anyhow::Result<()> {
    EventLoop::with_listener(listener, engine, shutdown)?.run();
    Ok(())
}
