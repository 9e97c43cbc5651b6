//! reuseport: N event loops, each with its own listening socket on the
//! same address (`SO_REUSEPORT`), like NGINX's `listen ... reuseport`.
//!
//! ```text
//!                         +--> loop 0: accept, read, parse, execute, write
//!  clients -> kernel -----+--> loop 1: ...
//!     (hash of addresses) +--> loop N-1
//! ```
//!
//! Each loop is basic's, serving the connections its own listener accepts
//! start to finish; the loops share only the engine. No acceptor and no
//! hand-off: the kernel deals each new connection to a listener by a hash
//! of its addresses and ports, so with few connections some loops get
//! more than their share (balls into bins: 64 connections over 4 loops
//! put 1.26 times the mean on the busiest, on average; 16 put 1.53), and,
//! as in multi-reader, a loop never gives work away.
//!
//! The first listener comes bound (`listener::bind_reuseport`, which also
//! keeps a second kvserve off the port); the others are bound here, just
//! after the server logs that it listens, so a connection made in that
//! moment goes to loop 0.

use std::thread;

use crate::server::event_loop::EventLoop;
use crate::server::patterns::Start;

/// Binds listeners beside `start`'s for each further loop, starts those
/// loops' threads (`loop-1`, ...), and runs loop 0 on the calling thread
/// until shutdown.
pub fn run(start: Start) -> anyhow::Result<()> {
    let (engine, shutdown) = (&start.engine, &start.shutdown);
    let listeners = (1..start.threads)
        .map(|_| start.listeners.beside())
        .collect::<anyhow::Result<Vec<_>>>()?;
    // Made in order, so that `stats threads` lists loop 0 first.
    let first = EventLoop::with_listener(start.listeners, engine, shutdown)?;
    let mut threads = Vec::with_capacity(listeners.len());
    for (n, listeners) in (1..).zip(listeners) {
        let event_loop = EventLoop::with_listener(listeners, engine, shutdown)?;
        let spawn = thread::Builder::new().name(format!("loop-{n}"));
        threads.push(spawn.spawn(move || event_loop.run())?);
    }
    first.run();
    for thread in threads {
        let _ = thread.join();
    }
    Ok(())
}
