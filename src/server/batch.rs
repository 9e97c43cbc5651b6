//! Serving a connection, in every pattern: a connection travels with its
//! parsed requests as a *batch*, the unit of work that the event loops
//! execute themselves, worker-pool hands to its workers and work-stealing's
//! readers steal.
//!
//! The thread that owns a connection writes what is pending, reads and
//! parses up to `-R` requests ([`advance`]); whichever thread the pattern
//! chooses executes them and writes their replies ([`execute_batch`],
//! where every request is executed); the connection then goes home
//! ([`super::home`]), where the owner moves it on. A connection has at most
//! one batch away at a time, so its requests are executed and answered in
//! the order they were sent.

use std::cell::Cell;
use std::time::{Duration, Instant};

use crate::engine::stages::BatchTimes;
use crate::engine::stats::ThreadStats;
use crate::engine::{Engine, Flow};
use crate::protocol::Request;
use crate::server::connection::{Connection, Next};

/// The longest a thread executes one connection's batch before handing the
/// rest back to its owner, which queues it again behind the batches that
/// came meanwhile, so that one client's deep pipeline of costly requests
/// cannot hold a thread while other clients' requests wait. Cheap requests
/// (about 0.1 µs each without `--work`) never reach it. kvbench's queueing
/// model of worker-pool and work-stealing uses the same slice.
pub const SLICE: Duration = Duration::from_micros(100);

/// A connection with the requests parsed from its read buffer, on its way
/// to the thread that executes them and back. Boxed, so that the many
/// moves on that way (queues, channels, options) copy a pointer, not the
/// connection: with cheap requests the copies showed in profiles.
pub struct Batch(Box<Parts>);

/// What a [`Batch`] carries.
pub struct Parts {
    /// The connection's slab key at its owner.
    pub token: usize,
    pub conn: Connection,
    /// Each request with the offset in the read buffer its spans are
    /// relative to.
    requests: Vec<(Request, usize)>,
    /// The first request not executed yet: execution stops early when the
    /// socket will not take replies past `--max-pending-output` or its
    /// [`SLICE`] is used up, and the batch goes out again once its replies
    /// so far are written.
    next: usize,
    /// Writing to the socket failed: close the connection.
    broken: bool,
    /// When the requests were read and parsed, if this batch is timed for
    /// the stage times (one in `--stage-sample`).
    parsed: Option<Parsed>,
    /// Replies formatted that the socket has not taken yet: their batch's
    /// times and how many requests they answer, counted once written.
    unwritten: Option<(BatchTimes, u64)>,
}

/// When a batch's requests were read (and arrived, if the kernel said),
/// and when parsing them ended.
#[derive(Clone, Copy)]
struct Parsed {
    arrived: Option<Instant>,
    read: Instant,
    at: Instant,
}

impl Batch {
    /// A new connection, home and with nothing parsed yet.
    pub fn new(token: usize, conn: Connection) -> Batch {
        Batch(Box::new(Parts {
            token,
            conn,
            requests: Vec::new(),
            next: 0,
            broken: false,
            parsed: None,
            unwritten: None,
        }))
    }
}

impl std::ops::Deref for Batch {
    type Target = Parts;

    fn deref(&self) -> &Parts {
        &self.0
    }
}

impl std::ops::DerefMut for Batch {
    fn deref_mut(&mut self) -> &mut Parts {
        &mut self.0
    }
}

/// Executes a batch's requests in order and writes their replies, until
/// they are done, `slice` (if any) is used up, or the socket will not take
/// replies past the output bound.
pub fn execute_batch(
    batch: &mut Batch,
    engine: &Engine,
    stats: &ThreadStats,
    now: u32,
    slice: Option<Duration>,
) {
    let Parts {
        conn,
        requests,
        next,
        broken,
        parsed,
        unwritten,
        ..
    } = &mut **batch;
    // A batch not timed reads no clock unless a request waits behind
    // another (for the slice).
    let started = parsed.is_some().then(Instant::now);
    let slice_end = slice
        .filter(|_| requests.len() - *next > 1)
        .map(|slice| started.unwrap_or_else(Instant::now) + slice);
    let mut executed = 0;
    while let Some((request, at)) = requests.get(*next) {
        *next += 1;
        executed += 1;
        // Not `conn.is_closing()`: the owner may have marked the connection
        // closing for input it met after these requests, which are answered
        // all the same.
        if conn.execute(request, *at, engine, stats, now) == Flow::Close {
            *next = requests.len(); // quit: nothing after it is answered
            break;
        }
        if conn.pending_output() >= engine.settings.max_pending_output {
            match conn.flush(stats) {
                Ok(true) => {}
                Ok(false) => break,
                Err(_) => *broken = true,
            }
        }
        if *broken || slice_end.is_some_and(|end| Instant::now() >= end) {
            break;
        }
    }
    let times = parsed.zip(started).map(|(p, started)| BatchTimes {
        arrived: p.arrived,
        read: p.read,
        parsed: p.at,
        started,
        finished: Instant::now(),
    });
    // Whatever the socket does not take now, the owner writes when it
    // becomes writable.
    if *broken {
        return;
    }
    match conn.flush(stats) {
        Ok(true) => {
            if let Some(times) = times {
                stats.stages.record(&times, Instant::now(), executed);
            }
        }
        Ok(false) => *unwritten = times.map(|t| (t, executed)),
        Err(_) => *broken = true,
    }
}

thread_local! {
    /// Batches this thread parsed since it last timed one.
    static UNTIMED: Cell<u32> = const { Cell::new(0) };
}

/// Whether the batch this thread parses now is timed: one in `every`.
fn timed(every: u32) -> bool {
    let n = UNTIMED.get() + 1;
    let due = n >= every;
    UNTIMED.set(if due { 0 } else { n });
    due
}

/// Where a connection stands after [`advance`]: the states of serving it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Waiting for the client (to send or to read); the batch stays home.
    Home,
    /// Parsed requests are ready to execute.
    Sent,
    Close,
}

/// Writes pending replies, then parses the next batch of requests, reading
/// more when none is complete.
pub fn advance(parts: &mut Parts, engine: &Engine, stats: &ThreadStats) -> Step {
    if parts.broken {
        return Step::Close;
    }
    let Parts {
        conn,
        requests,
        next,
        parsed,
        unwritten,
        ..
    } = parts;
    loop {
        match conn.flush(stats) {
            Ok(true) => {
                if let Some((times, requests)) = unwritten.take() {
                    stats.stages.record(&times, Instant::now(), requests);
                }
            }
            Ok(false) => return Step::Home,
            Err(_) => return Step::Close,
        }
        if *next < requests.len() {
            // The rest of a batch that the output bound or the slice cut short.
            return Step::Sent;
        }
        if conn.is_closing() {
            return Step::Close;
        }
        requests.clear();
        *next = 0;
        while requests.len() < engine.settings.reqs_per_event {
            match conn.next_request(engine) {
                Next::Request(request, at) => requests.push((request, at)),
                Next::Incomplete => break,
                Next::Close => {
                    conn.set_closing();
                    break;
                }
            }
        }
        if !requests.is_empty() {
            *parsed = timed(engine.settings.stage_sample).then(|| {
                let (arrived, read) = conn.last_read();
                Parsed {
                    arrived,
                    read,
                    at: Instant::now(),
                }
            });
            return Step::Sent;
        }
        match conn.fill(stats) {
            Ok(true) => {}
            Ok(false) if conn.is_closing() => {}
            Ok(false) => return Step::Home,
            Err(_) => return Step::Close,
        }
    }
}
