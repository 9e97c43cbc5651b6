//! work-stealing: readers own connections as in multi-reader, and an idle
//! reader takes work from a busy one, like ZygOS.
//!
//! ```text
//!                         +--> reader 0: read, parse -> [queue] -> execute, write
//!  clients -> acceptor ---+--> reader 1: ...             | steal  (when idle)
//!        (round-robin)    +--> reader N-1 <--------------+  or read for it
//! ```
//!
//! The acceptor deals connections round-robin, as in multi-reader. Each
//! reader reads and parses its own connections into batches (a connection
//! with its parsed requests, as in worker-pool) on a local queue, and
//! executes them itself, oldest first: with cheap requests nothing leaves
//! the reader, so it costs what multi-reader costs. A connection has at
//! most one batch out, so its requests are answered in order.
//!
//! A reader's connections (its [`Home`](crate::server::home::Home)) sit behind a lock that the reader
//! holds while it reads, parses and runs cheap batches, and lets go of
//! while it executes a long one. Whoever holds it may move those
//! connections along; that is how idle readers help, in two ways:
//!
//! - **Stealing.** A reader with nothing of its own to do takes the oldest
//!   batch from another reader's queue, executes it, writes the replies,
//!   and moves the connection on under its owner's lock.
//! - **Reading for a stuck reader.** A request that arrives while its
//!   reader executes a long one (`--work block:..`) would wait unread, not
//!   stealable, until that one ends: a partitioned queue again. So a
//!   reader about to execute a long batch asks a sleeping reader to watch
//!   its epoll (`shared_epoll.rs`); the watcher wakes on the first new
//!   event, takes the events from the stuck reader's epoll, reads and
//!   parses those connections under its lock, and executes the batches
//!   (which other idle readers may steal from it in turn). ZygOS gets the
//!   same effect with an inter-processor interrupt to the busy core.
//!
//! Waking helpers: an idle reader sleeps in its poll. A reader that is
//! about to execute a batch while others wait behind it wakes one sleeping
//! reader (one atomic load when none sleeps). A reader steals only when its
//! own queue is empty, so stolen work cannot starve its own.
//!
//! What is worth moving: moving a batch costs a wake-up (a few µs of
//! syscalls on two threads), more than a cheap batch takes where it is. So
//! each reader keeps a running mean of what its batches take; its queued
//! batches are stolen, sleeping readers woken for them, and its connections
//! watched, only when the work at stake is more than `STEAL_WORTH`: with
//! cheap requests nothing moves and the pattern costs what multi-reader
//! costs; with slow ones the first batch that waits is worth it.
//!
//! The parts: [`run`] here starts the readers; `reader.rs` is a reader's
//! loop, where it executes batches, steals and reads for others; `crew.rs`
//! is what the readers share (one `Peer` each) and the sleep, wake and
//! watch protocols; `cost.rs` is the running cost estimate;
//! `shared_epoll.rs` the raw epoll calls for watching another reader;
//! `cpu_time.rs` tells batches that ran from batches that slept.

mod cost;
mod cpu_time;
mod crew;
mod reader;
mod shared_epoll;

use std::sync::Arc;

use crate::engine::stats::Role;
use crate::server::acceptor::Acceptor;
use crate::server::patterns::Start;
use crew::{Crew, Peer};
use reader::Reader;

/// Starts a reader thread per `-t` and accepts on the calling thread until shutdown.
pub fn run(start: Start) -> anyhow::Result<()> {
    let (engine, shutdown) = (&start.engine, &start.shutdown);
    let mut acceptor = Acceptor::new(start.listeners, engine, shutdown)?;
    let mut peers = Vec::new();
    let mut own = Vec::new();
    for _ in 0..start.threads {
        let stats = engine.stats.register(Role::StealingReader);
        let wiring = acceptor.wire_reader(shutdown)?;
        let idle_timeout = engine.settings.idle_timeout;
        let (peer, own_parts) = Peer::new(wiring, idle_timeout, Arc::clone(&stats))?;
        peers.push(peer);
        own.push((own_parts, stats));
    }
    let crew = Arc::new(Crew::new(peers));
    for (me, (parts, stats)) in own.into_iter().enumerate() {
        let reader = Reader::new(me, parts, &crew, engine, stats, shutdown);
        acceptor.start_reader(move || reader.run())?;
    }
    acceptor.run(engine, shutdown)?;
    Ok(())
}
