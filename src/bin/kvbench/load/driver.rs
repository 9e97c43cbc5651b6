//! Runs a plan: the warmup, then client threads that each drive their
//! connections from one mio event loop, in closed loop (a new request as
//! each reply arrives, `pipeline` in flight) or open loop (requests on a
//! schedule, timed from when they were meant to go out), with latency in
//! HDR histograms.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::io::{self, Write};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use hdrhistogram::Histogram;
use indicatif::ProgressBar;
use mio::{Events, Interest, Poll, Token};

use crate::load::arrivals::{connection_seed, PoissonArrivals};
use crate::load::client::{self, Conn, ErrorKind, Expect, Outcome, ReplyParser, RequestGen};
use crate::load::workload::{Arrivals, GroupSpec, Plan, Rng};

/// Latencies above this many nanoseconds (100 s) are clamped.
const HIST_MAX_NS: u64 = 100_000_000_000;
const TIMER: Token = Token(usize::MAX);
/// Sets per warmup batch, and the most bytes one batch may hold.
const WARMUP_BATCH: usize = 64;
const WARMUP_BATCH_BYTES: usize = 1 << 20;
/// Warmup connections (and threads).
const WARMUP_CONNS: usize = 4;
/// The warmup gives up after this long.
const WARMUP_LIMIT: Duration = Duration::from_secs(120);

/// What one group of connections did.
#[derive(Clone, Debug)]
pub struct GroupStats {
    /// Replies received (what the server executed, errors included).
    pub requests: u64,
    pub gets: u64,
    /// Keys asked for by gets (memcached's `cmd_get` counts these).
    pub get_keys: u64,
    pub sets: u64,
    pub hits: u64,
    pub misses: u64,
    /// Failed requests by [`ErrorKind`].
    pub errors: [u64; 6],
    pub connect_failures: u64,
    /// Open loop: requests due before the end that were never sent,
    /// because the connection already had `pipeline` in flight (or was lost).
    pub unsent: u64,
    pub first_error: Option<String>,
    /// When the last reply arrived, and from the run's start until then.
    pub last_reply: Option<Instant>,
    pub span: Duration,
    /// Latency of every reply, in nanoseconds.
    pub hist: Histogram<u64>,
    /// Open loop: how late each request went out after its due time, in
    /// nanoseconds (the client's own share of the latency); requests that
    /// waited for a free pipeline slot, the server's doing, are left out.
    pub send_lag: Histogram<u64>,
}

impl GroupStats {
    pub fn new() -> GroupStats {
        GroupStats {
            requests: 0,
            gets: 0,
            get_keys: 0,
            sets: 0,
            hits: 0,
            misses: 0,
            errors: [0; 6],
            connect_failures: 0,
            unsent: 0,
            first_error: None,
            last_reply: None,
            span: Duration::ZERO,
            hist: Histogram::new_with_bounds(1, HIST_MAX_NS, 3).expect("valid histogram bounds"),
            send_lag: Histogram::new_with_bounds(1, HIST_MAX_NS, 3)
                .expect("valid histogram bounds"),
        }
    }

    /// Counts a reply that arrived at `done`, `latency` after its start.
    pub fn record(&mut self, expect: Expect, done: Instant, latency: Duration, outcome: Outcome) {
        self.requests += 1;
        self.last_reply = Some(self.last_reply.map_or(done, |t| t.max(done)));
        let asked = match expect {
            Expect::Get { keys } => {
                self.gets += 1;
                self.get_keys += u64::from(keys);
                keys
            }
            Expect::Set => {
                self.sets += 1;
                0
            }
        };
        match outcome {
            Outcome::Got { hits } => {
                self.hits += u64::from(hits);
                self.misses += u64::from(asked.saturating_sub(hits));
            }
            Outcome::Stored => {}
            Outcome::Failed(kind) => self.errors[kind.index()] += 1,
        }
        let ns = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        self.hist.saturating_record(ns);
    }

    /// Counts `n` requests that failed without a reply.
    pub fn fail(&mut self, kind: ErrorKind, n: u64, why: impl FnOnce() -> String) {
        self.errors[kind.index()] += n;
        self.note(why);
    }

    /// Keeps the first error message seen.
    pub fn note(&mut self, why: impl FnOnce() -> String) {
        if self.first_error.is_none() {
            self.first_error = Some(why());
        }
    }

    pub fn errors(&self) -> u64 {
        self.errors.iter().sum()
    }

    pub fn merge(&mut self, other: &GroupStats) {
        self.requests += other.requests;
        self.gets += other.gets;
        self.get_keys += other.get_keys;
        self.sets += other.sets;
        self.hits += other.hits;
        self.misses += other.misses;
        for (a, b) in self.errors.iter_mut().zip(other.errors) {
            *a += b;
        }
        self.connect_failures += other.connect_failures;
        self.unsent += other.unsent;
        self.span = self.span.max(other.span);
        if self.first_error.is_none() {
            self.first_error.clone_from(&other.first_error);
        }
        self.hist
            .add(&other.hist)
            .expect("histograms of equal bounds add");
        self.send_lag
            .add(&other.send_lag)
            .expect("histograms of equal bounds add");
    }
}

impl Default for GroupStats {
    fn default() -> Self {
        GroupStats::new()
    }
}

/// How to drive the server.
#[derive(Clone, Debug)]
pub struct Options {
    pub server: SocketAddr,
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

/// The measured part of a run.
#[derive(Debug)]
pub struct RunResult {
    /// Per group of the plan, merged over threads.
    pub groups: Vec<GroupStats>,
    /// From the start of the load until the last reply (or the grace period's end).
    pub elapsed: Duration,
    pub client_threads: usize,
}

/// What the warmup did.
#[derive(Clone, Debug, Default)]
pub struct WarmupResult {
    pub sets: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    pub elapsed: Duration,
}

/// Prefills every key of every group with a set (values sized as the
/// group's), over a few pipelined blocking connections.
pub fn warmup(plan: &Plan, opts: &Options, bar: &ProgressBar) -> WarmupResult {
    let start = Instant::now();
    if !plan.warmup {
        return WarmupResult::default();
    }
    let total: u64 = plan.groups.iter().map(|g| g.keys).sum();
    bar.set_length(total);
    bar.set_message("warmup");
    let conns = (WARMUP_CONNS as u64).min(total).max(1) as usize;
    let value = client::value_bytes(plan.max_value_size());
    let deadline = start + WARMUP_LIMIT;
    let results: Vec<WarmupResult> = thread::scope(|scope| {
        let handles: Vec<_> = (0..conns)
            .map(|t| {
                let value = Arc::clone(&value);
                scope.spawn(move || warmup_conn(plan, opts, t, conns, &value, deadline, bar))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| WarmupResult {
                    errors: 1,
                    first_error: Some("warmup thread panicked".into()),
                    ..WarmupResult::default()
                })
            })
            .collect()
    });
    let mut out = WarmupResult {
        elapsed: start.elapsed(),
        ..WarmupResult::default()
    };
    for r in results {
        out.sets += r.sets;
        out.errors += r.errors;
        if out.first_error.is_none() {
            out.first_error = r.first_error;
        }
    }
    out
}

/// One warmup connection: keys `k` with `k % conns == index`, in batches.
fn warmup_conn(
    plan: &Plan,
    opts: &Options,
    index: usize,
    conns: usize,
    value: &[u8],
    deadline: Instant,
    bar: &ProgressBar,
) -> WarmupResult {
    let mut out = WarmupResult::default();
    let mut to_send: u64 = plan
        .groups
        .iter()
        .map(|g| (g.keys + (conns - 1 - index) as u64) / conns as u64)
        .sum();
    let fail = |out: &mut WarmupResult, n: u64, why: String| {
        out.errors += n;
        out.first_error.get_or_insert(why);
    };
    let mut stream = match client::connect(opts.server, opts.timeout).and_then(|s| {
        s.set_read_timeout(Some(opts.timeout))?;
        s.set_write_timeout(Some(opts.timeout))?;
        Ok(s)
    }) {
        Ok(s) => s,
        Err(e) => {
            fail(
                &mut out,
                to_send,
                format!("warmup connect to {}: {e}", opts.server),
            );
            return out;
        }
    };
    let mut rng = Rng::new(0x5eed ^ index as u64);
    let mut buf = Vec::new();
    let mut parser = ReplyParser::default();
    let mut inflight: VecDeque<(Expect, ())> = VecDeque::new();
    let mut input = vec![0u8; 64 << 10];
    let mut carry: Vec<u8> = Vec::new();
    for g in &plan.groups {
        let prefix = g.key_prefix.as_bytes();
        let mut key = index as u64;
        while key < g.keys {
            if Instant::now() >= deadline {
                fail(
                    &mut out,
                    to_send,
                    format!("warmup stopped after {WARMUP_LIMIT:?}"),
                );
                return out;
            }
            buf.clear();
            while key < g.keys && inflight.len() < WARMUP_BATCH && buf.len() < WARMUP_BATCH_BYTES {
                let len = g.value_size.pick(&mut rng);
                client::encode_set(&mut buf, prefix, key, &value[..len]);
                inflight.push_back((Expect::Set, ()));
                key += conns as u64;
            }
            let batch = inflight.len() as u64;
            if let Err(e) = stream.write_all(&buf) {
                fail(&mut out, to_send, format!("warmup write: {e}"));
                return out;
            }
            while !inflight.is_empty() {
                let n = match io::Read::read(&mut stream, &mut input) {
                    Ok(0) => Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "server closed the connection",
                    )),
                    Ok(n) => Ok(n),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => Err(e),
                };
                let n = match n {
                    Ok(n) => n,
                    Err(e) => {
                        fail(&mut out, to_send, format!("warmup read: {e}"));
                        return out;
                    }
                };
                carry.extend_from_slice(&input[..n]);
                let used = client::parse_replies(&mut parser, &mut inflight, &carry, |_, _, o| {
                    to_send -= 1;
                    match o {
                        Outcome::Stored => out.sets += 1,
                        _ => out.errors += 1,
                    }
                });
                carry.drain(..used);
                if let Some(line) = parser.take_error_line() {
                    out.first_error.get_or_insert(format!("warmup: {line}"));
                }
                if parser.is_broken() {
                    fail(&mut out, to_send, "warmup: reply stream out of step".into());
                    return out;
                }
            }
            bar.inc(batch);
        }
    }
    out
}

/// Which connections each client thread drives: `(group, index in group)`.
/// With several groups and enough threads, each group gets threads of its
/// own (so a heavy group's big replies do not delay a light group's
/// timing); otherwise connections are dealt round-robin.
pub fn assign(plan: &Plan, threads: usize) -> Vec<Vec<(usize, usize)>> {
    let threads = threads.max(1);
    let mut out = vec![Vec::new(); threads];
    let groups = plan.groups.len();
    if groups > 1 && threads >= groups {
        let mut first = 0;
        for (g, spec) in plan.groups.iter().enumerate() {
            // Even split, the remainder to the first groups.
            let share = threads / groups + usize::from(g < threads % groups);
            for c in 0..spec.connections {
                out[first + c % share].push((g, c));
            }
            first += share;
        }
    } else {
        let mut next = 0;
        for (g, spec) in plan.groups.iter().enumerate() {
            for c in 0..spec.connections {
                out[next % threads].push((g, c));
                next += 1;
            }
        }
    }
    out.retain(|t| !t.is_empty());
    out
}

/// Shared by the client threads of one run.
struct Shared {
    specs: Vec<Arc<GroupSpec>>,
    value: Arc<[u8]>,
    opts: Options,
    barrier: Barrier,
    done: AtomicU64,
    failed: AtomicU64,
}

/// Runs the measured part of `plan`, updating `bar` (position: elapsed
/// milliseconds) as it goes.
pub fn measure(plan: &Plan, opts: &Options, bar: &ProgressBar) -> Result<RunResult> {
    let assignment = assign(plan, opts.client_threads);
    let shared = Arc::new(Shared {
        specs: plan.groups.iter().cloned().map(Arc::new).collect(),
        value: client::value_bytes(plan.max_value_size()),
        opts: opts.clone(),
        barrier: Barrier::new(assignment.len() + 1),
        done: AtomicU64::new(0),
        failed: AtomicU64::new(0),
    });
    let mut handles = Vec::new();
    for (t, conns) in assignment.into_iter().enumerate() {
        let shared = Arc::clone(&shared);
        let handle = thread::Builder::new()
            .name(format!("kvbench-client-{t}"))
            .spawn(move || client_thread(conns, &shared))
            .context("spawn a client thread")?;
        handles.push(handle);
    }
    let threads = handles.len();
    bar.set_message("connecting");
    shared.barrier.wait();
    let start = Instant::now();
    let total_ms = opts.duration.as_millis() as u64;
    bar.set_length(total_ms.max(1));
    bar.set_position(0);
    while !handles.iter().all(|h| h.is_finished()) {
        thread::sleep(Duration::from_millis(100));
        let elapsed = start.elapsed();
        bar.set_position((elapsed.as_millis() as u64).min(total_ms));
        let done = shared.done.load(Ordering::Relaxed);
        let failed = shared.failed.load(Ordering::Relaxed);
        let rate = done as f64 / elapsed.as_secs_f64().max(1e-3);
        bar.set_message(if elapsed > opts.duration {
            format!("{done} replies, {failed} errors; draining")
        } else {
            format!("{rate:.0} ops/s, {failed} errors")
        });
    }
    let mut groups: Vec<GroupStats> = plan.groups.iter().map(|_| GroupStats::new()).collect();
    let mut elapsed = Duration::ZERO;
    for h in handles {
        let out = h.join().map_err(|_| anyhow!("a client thread panicked"))?;
        for (total, part) in groups.iter_mut().zip(&out.stats) {
            total.merge(part);
        }
        elapsed = elapsed.max(out.elapsed);
    }
    Ok(RunResult {
        groups,
        elapsed,
        client_threads: threads,
    })
}

struct ThreadOutput {
    stats: Vec<GroupStats>,
    elapsed: Duration,
}

/// A connection in a client thread's event loop.
struct Slot {
    conn: Conn,
    /// Position in its group (open loop: its phase).
    index: usize,
    open: Option<OpenLoop>,
    dead: bool,
}

/// Open-loop schedule of one connection.
struct OpenLoop {
    gaps: Gaps,
    next_due: Instant,
    /// The due time this connection has in the timer heap, if any; heap
    /// entries that do not match it are stale.
    scheduled: Option<Instant>,
    /// Every slot of the pipeline was waiting for a reply when the last
    /// sends were made: the next requests may wait for the server, not
    /// for the client.
    full: bool,
}

/// The gaps between one connection's open-loop sends.
enum Gaps {
    Even(Duration),
    Poisson(PoissonArrivals),
}

impl Gaps {
    fn next(&mut self) -> Duration {
        match self {
            Gaps::Even(interval) => *interval,
            Gaps::Poisson(arrivals) => arrivals.next_gap(),
        }
    }
}

fn client_thread(conns: Vec<(usize, usize)>, shared: &Shared) -> ThreadOutput {
    set_timer_slack();
    let mut stats: Vec<GroupStats> = shared.specs.iter().map(|_| GroupStats::new()).collect();
    // Whatever happens, reach the barrier: the other threads wait there.
    let event_loop = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        EventLoop::connect(&conns, shared, &mut stats)
    }))
    .unwrap_or_else(|_| Err(io::Error::other("panicked while connecting")));
    shared.barrier.wait();
    match event_loop {
        Ok(mut event_loop) => {
            let elapsed = event_loop.run(shared, &mut stats);
            ThreadOutput { stats, elapsed }
        }
        Err(e) => {
            // None of this thread's connections can be driven.
            stats = shared.specs.iter().map(|_| GroupStats::new()).collect();
            for &(g, _) in &conns {
                stats[g].connect_failures += 1;
                stats[g].fail(ErrorKind::Connection, 1, || format!("client setup: {e}"));
            }
            ThreadOutput {
                stats,
                elapsed: Duration::ZERO,
            }
        }
    }
}

struct EventLoop {
    poll: Poll,
    events: Events,
    ready: Vec<Token>,
    slots: Vec<Slot>,
    timer: Option<Timer>,
    armed: Option<Instant>,
    heap: BinaryHeap<Reverse<(Instant, usize)>>,
    scratch: Vec<u8>,
}

impl EventLoop {
    /// Connects this thread's connections (failures are counted, not
    /// fatal) and registers them.
    fn connect(
        conns: &[(usize, usize)],
        shared: &Shared,
        stats: &mut [GroupStats],
    ) -> io::Result<EventLoop> {
        let poll = Poll::new()?;
        let opts = &shared.opts;
        let deadline = Instant::now() + opts.timeout;
        let mut slots = Vec::with_capacity(conns.len());
        let mut any_open = false;
        for &(g, index) in conns {
            let spec = &shared.specs[g];
            let left = deadline.saturating_duration_since(Instant::now());
            let stream = if left.is_zero() {
                Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "connect phase took longer than --timeout",
                ))
            } else {
                client::connect(opts.server, left)
            };
            let seed = ((g as u64) << 32) | index as u64;
            let gen = RequestGen::new(Arc::clone(spec), seed, Arc::clone(&shared.value));
            match stream.and_then(|s| Conn::new(s, g, gen)) {
                Ok(mut conn) => {
                    poll.registry().register(
                        &mut conn.stream,
                        Token(slots.len()),
                        Interest::READABLE | Interest::WRITABLE,
                    )?;
                    let open = spec.rate.map(|rate| {
                        any_open = true;
                        let per_connection = rate / spec.connections as f64;
                        OpenLoop {
                            gaps: match spec.arrivals {
                                Arrivals::Even => {
                                    Gaps::Even(Duration::from_secs_f64(1.0 / per_connection))
                                }
                                Arrivals::Poisson => Gaps::Poisson(PoissonArrivals::new(
                                    per_connection,
                                    connection_seed(opts.seed, index),
                                )),
                            },
                            next_due: Instant::now(),
                            scheduled: None,
                            full: false,
                        }
                    });
                    slots.push(Slot {
                        conn,
                        index,
                        open,
                        dead: false,
                    });
                }
                Err(e) => {
                    stats[g].connect_failures += 1;
                    stats[g].fail(ErrorKind::Connection, 1, || {
                        format!("connect to {}: {e}", opts.server)
                    });
                }
            }
        }
        let timer = if any_open {
            let timer = Timer::new()?;
            poll.registry().register(
                &mut mio::unix::SourceFd(&timer.fd.as_raw_fd()),
                TIMER,
                Interest::READABLE,
            )?;
            Some(timer)
        } else {
            None
        };
        Ok(EventLoop {
            poll,
            events: Events::with_capacity(1024),
            ready: Vec::with_capacity(1024),
            slots,
            timer,
            armed: None,
            heap: BinaryHeap::new(),
            scratch: vec![0; 256 << 10],
        })
    }

    /// Drives the connections for the run's duration, then waits (at most
    /// the timeout) for the replies still due; returns the time taken.
    fn run(&mut self, shared: &Shared, stats: &mut [GroupStats]) -> Duration {
        let start = Instant::now();
        let end = start + shared.opts.duration;
        let deadline = end + shared.opts.timeout;
        for slot in &mut self.slots {
            if let Some(open) = slot.open.as_mut() {
                open.next_due = start
                    + match &mut open.gaps {
                        // Stagger the group's connections evenly over one interval.
                        Gaps::Even(interval) => {
                            let n = shared.specs[slot.conn.group].connections;
                            interval.mul_f64(slot.index as f64 / n as f64)
                        }
                        Gaps::Poisson(arrivals) => arrivals.next_gap(),
                    };
            }
        }
        for i in 0..self.slots.len() {
            self.top_up(i, start, end, stats);
            self.flush(i, stats);
        }
        let (mut reported_done, mut reported_failed) = (0, 0);
        let mut last_report = start;
        let mut now = start;
        loop {
            // Sends due before the end go out even if the loop wakes after
            // it: the schedule, not the loop, decides what was offered.
            self.fire_timers(now, end, stats);
            let sending = now < end;
            if (!sending && self.idle()) || now >= deadline {
                break;
            }
            let next_due = self.heap.peek().map(|r| r.0 .0).filter(|&due| due < end);
            let spin = shared.opts.spin;
            let timeout = match next_due {
                // Close to a send: poll without sleeping, so the send is
                // not late by a timer wake-up.
                Some(due) if due.saturating_duration_since(now) <= spin => Duration::ZERO,
                Some(due) => {
                    self.arm_timer(due - spin);
                    due.saturating_duration_since(now) - spin
                }
                None if sending => end.saturating_duration_since(now),
                None => deadline.saturating_duration_since(now),
            }
            .min(Duration::from_millis(50));
            if let Err(e) = self.poll.poll(&mut self.events, Some(timeout)) {
                if e.kind() != io::ErrorKind::Interrupted {
                    for s in &mut *stats {
                        s.note(|| format!("poll: {e}"));
                    }
                    break;
                }
            }
            self.ready.clear();
            self.ready.extend(self.events.iter().map(|e| e.token()));
            for k in 0..self.ready.len() {
                let token = self.ready[k];
                if token == TIMER {
                    if let Some(timer) = &self.timer {
                        timer.drain();
                    }
                    self.armed = None;
                } else {
                    self.service(token.0, end, stats);
                }
            }
            now = Instant::now();
            if now.duration_since(last_report) >= Duration::from_millis(50) {
                last_report = now;
                let done: u64 = stats.iter().map(|s| s.requests).sum();
                let failed: u64 = stats.iter().map(GroupStats::errors).sum();
                shared
                    .done
                    .fetch_add(done - reported_done, Ordering::Relaxed);
                shared
                    .failed
                    .fetch_add(failed - reported_failed, Ordering::Relaxed);
                (reported_done, reported_failed) = (done, failed);
            }
        }
        let elapsed = start.elapsed();
        for s in stats.iter_mut() {
            s.span = s
                .last_reply
                .map_or(Duration::ZERO, |t| t.duration_since(start));
        }
        for slot in &mut self.slots {
            let s = &mut stats[slot.conn.group];
            if let Some(open) = &mut slot.open {
                // Due before the end, never sent: the connection had
                // `pipeline` requests in flight until the deadline (or died).
                while open.next_due < end {
                    s.unsent += 1;
                    open.next_due += open.gaps.next();
                }
            }
            if !slot.dead && !slot.conn.inflight.is_empty() {
                let n = slot.conn.inflight.len() as u64;
                let grace = shared.opts.timeout;
                s.fail(ErrorKind::Timeout, n, || {
                    format!(
                        "no reply within {grace:?} after the run ({})",
                        slot.conn.stuck_state()
                    )
                });
            }
        }
        elapsed
    }

    fn idle(&self) -> bool {
        self.slots
            .iter()
            .all(|s| s.dead || s.conn.inflight.is_empty())
    }

    /// Reads a ready connection's replies, then sends what is due.
    fn service(&mut self, i: usize, end: Instant, stats: &mut [GroupStats]) {
        let Some(slot) = self.slots.get_mut(i) else {
            return;
        };
        if slot.dead {
            return;
        }
        let s = &mut stats[slot.conn.group];
        let result = slot
            .conn
            .receive(&mut self.scratch, |expect, sent, done, outcome| {
                s.record(expect, done, done.saturating_duration_since(sent), outcome);
            });
        if let Some(line) = slot.conn.parser.take_error_line() {
            s.note(|| line);
        }
        if let Err(e) = result {
            self.kill(i, &e, stats);
            return;
        }
        self.top_up(i, Instant::now(), end, stats);
        self.flush(i, stats);
    }

    /// Queues requests: closed loop, up to the pipeline depth; open loop,
    /// those due (with their due time), and schedules the next.
    fn top_up(&mut self, i: usize, now: Instant, end: Instant, stats: &mut [GroupStats]) {
        let slot = &mut self.slots[i];
        if slot.dead {
            return;
        }
        let lags = &mut stats[slot.conn.group].send_lag;
        let depth = slot.conn.gen.spec().pipeline;
        match slot.open.as_mut() {
            None => {
                while now < end && slot.conn.inflight.len() < depth {
                    slot.conn.send(now);
                }
            }
            Some(open) => {
                // Requests that fell due while every slot waited for a reply
                // are late by the server's doing (the latency counts it
                // from their due time); only the others measure the client.
                let waited_for_a_slot = open.full;
                while open.next_due <= now
                    && open.next_due < end
                    && slot.conn.inflight.len() < depth
                {
                    if !waited_for_a_slot {
                        let lag = now.duration_since(open.next_due);
                        lags.saturating_record(u64::try_from(lag.as_nanos()).unwrap_or(u64::MAX));
                    }
                    slot.conn.send(open.next_due);
                    open.next_due += open.gaps.next();
                }
                open.full = slot.conn.inflight.len() >= depth;
                if open.next_due < end
                    && slot.conn.inflight.len() < depth
                    && open.scheduled != Some(open.next_due)
                {
                    open.scheduled = Some(open.next_due);
                    self.heap.push(Reverse((open.next_due, i)));
                }
            }
        }
    }

    /// Sends for every open-loop connection whose time has come.
    fn fire_timers(&mut self, now: Instant, end: Instant, stats: &mut [GroupStats]) {
        while let Some(&Reverse((due, i))) = self.heap.peek() {
            if due > now {
                break;
            }
            self.heap.pop();
            let slot = &mut self.slots[i];
            match slot.open.as_mut() {
                Some(open) if !slot.dead && open.scheduled == Some(due) => open.scheduled = None,
                _ => continue,
            }
            self.top_up(i, now, end, stats);
            self.flush(i, stats);
        }
    }

    /// Sets the timerfd to wake the loop at `at` (the next open-loop send,
    /// less the spin), rather than late by poll's millisecond rounding.
    fn arm_timer(&mut self, at: Instant) {
        let Some(timer) = &self.timer else {
            return;
        };
        if self.armed == Some(at) {
            return;
        }
        timer.arm(at.saturating_duration_since(Instant::now()));
        self.armed = Some(at);
    }

    fn flush(&mut self, i: usize, stats: &mut [GroupStats]) {
        let slot = &mut self.slots[i];
        if slot.dead {
            return;
        }
        if let Err(e) = slot.conn.flush() {
            self.kill(i, &e, stats);
        }
    }

    /// Closes a lost connection; its requests in flight count as errors.
    fn kill(&mut self, i: usize, err: &io::Error, stats: &mut [GroupStats]) {
        let slot = &mut self.slots[i];
        slot.dead = true;
        let s = &mut stats[slot.conn.group];
        let lost = slot.conn.inflight.len() as u64;
        s.fail(ErrorKind::Connection, lost.max(1), || {
            format!("connection lost: {err}")
        });
        slot.conn.inflight.clear();
        let _ = self.poll.registry().deregister(&mut slot.conn.stream);
        let _ = slot.conn.stream.shutdown(std::net::Shutdown::Both);
    }
}

/// A one-shot timerfd: nanosecond wake-ups for the open loop.
struct Timer {
    fd: OwnedFd,
}

impl Timer {
    fn new() -> io::Result<Timer> {
        // SAFETY: timerfd_create takes no pointers; a non-negative result is
        // a new descriptor that we own.
        let fd = unsafe {
            libc::timerfd_create(
                libc::CLOCK_MONOTONIC,
                libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is a valid descriptor that nothing else owns.
        Ok(Timer {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    fn arm(&self, after: Duration) {
        let after = after.max(Duration::from_nanos(1));
        let spec = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: libc::timespec {
                tv_sec: after.as_secs() as libc::time_t,
                tv_nsec: after.subsec_nanos() as libc::c_long,
            },
        };
        // SAFETY: a valid timerfd and a valid itimerspec; no old value asked.
        unsafe { libc::timerfd_settime(self.fd.as_raw_fd(), 0, &spec, std::ptr::null_mut()) };
    }

    fn drain(&self) {
        let mut expirations = [0u8; 8];
        // SAFETY: reads at most 8 bytes into an 8-byte buffer; the fd is
        // non-blocking, and EAGAIN is fine.
        unsafe {
            libc::read(
                self.fd.as_raw_fd(),
                expirations.as_mut_ptr().cast(),
                expirations.len(),
            )
        };
    }
}

/// Asks the kernel for timer wake-ups as precise as it can (default slack
/// is 50 µs), for open-loop sends.
fn set_timer_slack() {
    // SAFETY: PR_SET_TIMERSLACK takes one integer argument and no pointers.
    unsafe {
        libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong, 0, 0, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::workload::{plan, WorkloadArgs, WorkloadName};

    fn plan_of(name: WorkloadName) -> Plan {
        plan(&WorkloadArgs {
            workload: name,
            ..WorkloadArgs::default()
        })
        .unwrap()
    }

    #[test]
    fn assignment_covers_every_connection_once() {
        for name in WorkloadName::ALL {
            let p = plan_of(name);
            for threads in [1, 2, 3, 7, 64] {
                let a = assign(&p, threads);
                assert!(a.len() <= threads && !a.is_empty());
                let mut all: Vec<_> = a.iter().flatten().copied().collect();
                all.sort_unstable();
                all.dedup();
                assert_eq!(all.len(), p.connections(), "{name:?} {threads}");
            }
        }
    }

    #[test]
    fn skewed_groups_get_their_own_threads() {
        let p = plan_of(WorkloadName::Skewed);
        let a = assign(&p, 2);
        assert!(a[0].iter().all(|&(g, _)| g == 0));
        assert!(a[1].iter().all(|&(g, _)| g == 1));
        // One thread: both groups share it.
        assert_eq!(assign(&p, 1)[0].len(), 54);
    }

    #[test]
    fn stats_count_and_merge() {
        let now = Instant::now();
        let mut a = GroupStats::new();
        a.record(
            Expect::Get { keys: 4 },
            now,
            Duration::from_micros(10),
            Outcome::Got { hits: 3 },
        );
        a.record(Expect::Set, now, Duration::from_micros(30), Outcome::Stored);
        let mut b = GroupStats::new();
        b.record(
            Expect::Set,
            now,
            Duration::from_micros(20),
            Outcome::Failed(ErrorKind::ServerError),
        );
        b.fail(ErrorKind::Timeout, 2, || "late".into());
        a.merge(&b);
        assert_eq!((a.requests, a.gets, a.get_keys, a.sets), (3, 1, 4, 2));
        assert_eq!((a.hits, a.misses, a.errors()), (3, 1, 3));
        assert_eq!(a.errors[ErrorKind::ServerError.index()], 1);
        assert_eq!(a.first_error.as_deref(), Some("late"));
        assert_eq!(a.hist.len(), 3);
        assert!(a.hist.max() >= 30_000);
    }
}
