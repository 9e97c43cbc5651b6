//! multi-reader: an acceptor and N reader event loops, like memcached.
//!
//! ```text
//!                         +--> reader 0: read, parse, execute, write
//!  clients -> acceptor ---+--> reader 1: ...
//!        (round-robin)    +--> reader N-1
//! ```
//!
//! The acceptor only accepts and hands each new connection to the next
//! reader over a channel, waking it (memcached's `dispatch_conn_new`). From
//! then on one reader serves the connection alone, so requests need no
//! hand-off; but a reader stuck with heavy connections cannot pass work to
//! an idle one: balancing is per connection, not per request.

use crate::server::acceptor::Acceptor;
use crate::server::event_loop::EventLoop;
use crate::server::patterns::Start;

/// Starts a reader thread per `-t` and accepts on the calling thread until shutdown.
pub fn run(start: Start) -> anyhow::Result<()> {
    let (engine, shutdown) = (&start.engine, &start.shutdown);
    let mut acceptor = Acceptor::new(start.listeners, engine, shutdown)?;
    for _ in 0..start.threads {
        let event_loop = EventLoop::reader(acceptor.wire_reader(shutdown)?, engine, shutdown)?;
        acceptor.start_reader(move || event_loop.run())?;
    }
    acceptor.run(engine, shutdown)?;
    Ok(())
}
