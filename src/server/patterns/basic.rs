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

use crate::server::event_loop::EventLoop;
use crate::server::patterns::Start;

/// Serves on the calling thread until shutdown.
pub fn run(start: Start) -> anyhow::Result<()> {
    EventLoop::with_listener(start.listeners, &start.engine, &start.shutdown)?.run();
    Ok(())
}
