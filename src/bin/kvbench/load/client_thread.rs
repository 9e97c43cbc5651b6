//! One client thread: its connections in one mio event loop, in closed
//! loop (a new request as each reply arrives, `pipeline` in flight) or
//! open loop (requests on a schedule, timed from when they were meant to
//! go out, sent at a timerfd's wake-up).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Token};

use crate::load::arrivals::{connection_seed, PoissonArrivals};
use crate::load::client::{Conn, RequestGen};
use crate::load::options::Options;
use crate::load::reply::ErrorKind;
use crate::load::stats::GroupStats;
use crate::load::timer::{set_timer_slack, Timer};
use crate::load::workload::{Arrivals, GroupSpec};
use crate::net::stream::Stream;

const TIMER: Token = Token(usize::MAX);

/// Shared by the client threads of one run.
pub struct Shared {
    pub specs: Vec<Arc<GroupSpec>>,
    pub value: Arc<[u8]>,
    pub opts: Options,
    /// All threads start the measured run together.
    pub barrier: Barrier,
    /// Replies and errors so far, for the progress bar.
    pub done: AtomicU64,
    pub failed: AtomicU64,
}

/// Thread entry: connects, waits for the others, runs the plan.
/// What one client thread measured.
pub struct ThreadOutput {
    pub stats: Vec<GroupStats>,
    pub elapsed: Duration,
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

pub fn client_thread(conns: Vec<(usize, usize)>, shared: &Shared) -> ThreadOutput {
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
                opts.server.connect(left)
            };
            let seed = ((g as u64) << 32) | index as u64;
            let gen = RequestGen::new(Arc::clone(spec), seed, Arc::clone(&shared.value));
            if let Ok(resumed) = stream.as_ref().map(Stream::resumed) {
                stats[g].handshake(resumed);
            }
            match stream.and_then(|s| Conn::new(s, g, gen)) {
                Ok(mut conn) => {
                    poll.registry().register(
                        conn.stream.socket(),
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
                &mut mio::unix::SourceFd(&timer.as_raw_fd()),
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
        let _ = self.poll.registry().deregister(slot.conn.stream.socket());
        slot.conn.stream.shutdown();
    }
}
