//! Where a request's time goes inside the server: a histogram per stage of
//! its way through, kept by each thread for the requests it finishes, and
//! summed by `stats latency`.
//!
//! ```text
//!  arrived in the socket -> read -> parsed -> execution started -> finished -> written
//!         |  socket       | parse  | handoff |      execute       |  write  |
//!                         |<----------------------- server ------------------>|
//! ```
//!
//! Of the wait in the socket, `wakeup` is the part that is pure overhead:
//! for bytes that arrived while their thread slept in `epoll_wait`, the
//! time until it returned. The rest of `socket` and `handoff` is queueing
//! (for an event loop, behind its other connections) as well as hand-off.
//!
//! A batch's requests share its read, parse, hand-off and write times, and
//! all of them wait for the whole batch's execution (their replies go out
//! together), so each request is counted with its batch's stage times and
//! the stages add up to `server` for every request. `service` is each
//! request's own `--work` time as performed, the distribution kvbench's
//! queueing model draws service times from.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The stages, in the order a request passes them (`Server` spans the
/// four from read to written; `Service` is a part of `Execute`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// From the last byte's arrival in the socket (the kernel's receive
    /// timestamp) to the read that took it: waiting for the thread to wake
    /// up, or for its turn among the other connections.
    Socket,
    /// For bytes that arrived while the reading thread slept in its poll:
    /// from their arrival to the poll's return (counted per read).
    Wakeup,
    /// From the read to the end of parsing the batch (for a pipelined
    /// batch parsed from bytes read earlier, including its wait behind the
    /// batch before it).
    Parse,
    /// From parsed to execution started: the queue and the hand-off to the
    /// executing thread, with its wake-up.
    Handoff,
    /// The batch's execution, until the last reply is formatted.
    Execute,
    /// From the last reply formatted to the last byte written to the socket.
    Write,
    /// From the read to the last byte written: the server's own latency.
    Server,
    /// One request's `--work` service time, as performed.
    Service,
}

impl Stage {
    pub const ALL: [Stage; 8] = [
        Stage::Socket,
        Stage::Wakeup,
        Stage::Parse,
        Stage::Handoff,
        Stage::Execute,
        Stage::Write,
        Stage::Server,
        Stage::Service,
    ];

    /// Its name in `stats latency`.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Socket => "socket",
            Stage::Wakeup => "wakeup",
            Stage::Parse => "parse",
            Stage::Handoff => "handoff",
            Stage::Execute => "execute",
            Stage::Write => "write",
            Stage::Server => "server",
            Stage::Service => "service",
        }
    }
}

/// Sub-buckets per power of two: a value is known to within 1/16 of
/// itself (a bucket's midpoint is within 3.2%).
const SUB_BITS: u32 = 4;
const SUB: usize = 1 << SUB_BITS;
/// Values up to 2^36 ns (68 s); longer ones count in the last bucket.
const TOP_BIT: u32 = 36;
const BUCKETS: usize = (TOP_BIT - SUB_BITS + 2) as usize * SUB;

/// The bucket holding `ns`: exact below 16 ns, then 16 per power of two.
fn bucket(ns: u64) -> usize {
    let ns = ns.min((1 << (TOP_BIT + 1)) - 1);
    if ns < SUB as u64 {
        return ns as usize;
    }
    let top = 63 - ns.leading_zeros();
    let sub = (ns >> (top - SUB_BITS)) as usize & (SUB - 1);
    (top - SUB_BITS + 1) as usize * SUB + sub
}

/// The lowest value and the width of bucket `i`.
fn bucket_range(i: usize) -> (u64, u64) {
    if i < SUB {
        return (i as u64, 1);
    }
    let top = (i / SUB) as u32 + SUB_BITS - 1;
    let width = 1u64 << (top - SUB_BITS);
    ((1u64 << top) + (i % SUB) as u64 * width, width)
}

/// A latency histogram written by one thread and read by any, like
/// [`super::stats::Counter`]: an add is a plain load and store.
pub struct Histogram {
    counts: Box<[AtomicU64]>,
    sum_ns: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Histogram {
        Histogram {
            counts: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            sum_ns: AtomicU64::new(0),
        }
    }
}

impl std::fmt::Debug for Histogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Histogram({} values)", self.snapshot().count())
    }
}

impl Histogram {
    /// Counts `count` requests that each spent `ns` in the stage.
    pub fn record(&self, ns: u64, count: u64) {
        let cell = &self.counts[bucket(ns)];
        cell.store(cell.load(Ordering::Relaxed) + count, Ordering::Relaxed);
        let sum = ns.saturating_mul(count);
        self.sum_ns.store(
            self.sum_ns.load(Ordering::Relaxed).wrapping_add(sum),
            Ordering::Relaxed,
        );
    }

    pub fn snapshot(&self) -> Distribution {
        Distribution {
            counts: self
                .counts
                .iter()
                .map(|c| c.load(Ordering::Relaxed))
                .collect(),
            sum_ns: self.sum_ns.load(Ordering::Relaxed),
        }
    }
}

/// A histogram's counts at one moment, to sum over threads, subtract a
/// baseline from (`stats reset`) and read percentiles of.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Distribution {
    counts: Vec<u64>,
    sum_ns: u64,
}

impl Default for Distribution {
    fn default() -> Distribution {
        Distribution {
            counts: vec![0; BUCKETS],
            sum_ns: 0,
        }
    }
}

impl Distribution {
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    pub fn add(&mut self, other: &Distribution) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.sum_ns = self.sum_ns.wrapping_add(other.sum_ns);
    }

    /// What was counted since `base`, a snapshot of the same histograms.
    pub fn minus(&self, base: &Distribution) -> Distribution {
        Distribution {
            counts: (self.counts.iter().zip(&base.counts))
                .map(|(a, b)| a.saturating_sub(*b))
                .collect(),
            sum_ns: self.sum_ns.wrapping_sub(base.sum_ns),
        }
    }

    /// The counted buckets: (lowest value, width, count), in nanoseconds,
    /// ascending; what `stats latency buckets` lists, so that a reader can
    /// take the difference of two readings.
    pub fn buckets(&self) -> impl Iterator<Item = (u64, u64, u64)> + '_ {
        self.counts
            .iter()
            .enumerate()
            .filter(|(_, &c)| c > 0)
            .map(|(i, &c)| {
                let (low, width) = bucket_range(i);
                (low, width, c)
            })
    }

    /// Mean, nanoseconds (0 when empty).
    pub fn mean_ns(&self) -> f64 {
        match self.count() {
            0 => 0.0,
            n => self.sum_ns as f64 / n as f64,
        }
    }

    /// The value below which a share `q` (0-1) of the counted values lie,
    /// interpolated within its bucket; nanoseconds (0 when empty).
    pub fn quantile_ns(&self, q: f64) -> f64 {
        let n = self.count();
        if n == 0 {
            return 0.0;
        }
        let rank = q.clamp(0.0, 1.0) * n as f64;
        let mut below = 0u64;
        for (i, &c) in self.counts.iter().enumerate() {
            if c == 0 {
                continue;
            }
            if (below + c) as f64 >= rank {
                let (low, width) = bucket_range(i);
                let within = (rank - below as f64) / c as f64;
                return low as f64 + within.clamp(0.0, 1.0) * width as f64;
            }
            below += c;
        }
        let last = self.counts.iter().rposition(|&c| c > 0).unwrap_or(0);
        let (low, width) = bucket_range(last);
        (low + width) as f64
    }
}

/// One thread's histograms, one per [`Stage`].
#[derive(Debug, Default)]
pub struct StageHistograms([Histogram; Stage::ALL.len()]);

impl StageHistograms {
    pub fn get(&self, stage: Stage) -> &Histogram {
        &self.0[stage as usize]
    }

    /// Counts `requests` requests whose batch passed `times`.
    pub fn record(&self, times: &BatchTimes, written: Instant, requests: u64) {
        let span =
            |from: Instant, to: Instant| to.saturating_duration_since(from).as_nanos() as u64;
        if let Some(arrived) = times.arrived {
            self.get(Stage::Socket)
                .record(span(arrived, times.read), requests);
        }
        let stages = [
            (Stage::Parse, times.read, times.parsed),
            (Stage::Handoff, times.parsed, times.started),
            (Stage::Execute, times.started, times.finished),
            (Stage::Write, times.finished, written),
            (Stage::Server, times.read, written),
        ];
        for (stage, from, to) in stages {
            self.get(stage).record(span(from, to), requests);
        }
    }

    pub fn snapshot(&self) -> [Distribution; Stage::ALL.len()] {
        Stage::ALL.map(|s| self.get(s).snapshot())
    }
}

/// When a batch passed each point of its way, up to its replies formatted;
/// the write's end is known when the socket has taken them.
#[derive(Clone, Copy, Debug)]
pub struct BatchTimes {
    /// When the last byte read arrived in the socket, if the kernel said.
    pub arrived: Option<Instant>,
    pub read: Instant,
    pub parsed: Instant,
    pub started: Instant,
    pub finished: Instant,
}

/// The instant `ago` before `now`, or `now` if the clock does not go back
/// that far (it always does, a few seconds after boot).
pub fn before(now: Instant, ago: Duration) -> Instant {
    now.checked_sub(ago).unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_every_value_in_order_and_within_a_sixteenth() {
        let powers = (0..40).map(|k| 1u64 << k).flat_map(|p| [p - 1, p, p + 1]);
        for ns in (0..100_000u64).chain(powers) {
            let i = bucket(ns);
            let (low, width) = bucket_range(i);
            if ns < 1 << (TOP_BIT + 1) {
                assert!(
                    low <= ns && ns < low + width,
                    "{ns} in bucket {i} [{low}, +{width})"
                );
                assert!(
                    width as f64 <= (ns.max(16) as f64) / 16.0,
                    "{ns}: width {width}"
                );
            }
            assert!(i < BUCKETS);
        }
        for ns in 1..100_000u64 {
            assert!(bucket(ns) >= bucket(ns - 1), "buckets go up with the value");
        }
    }

    #[test]
    fn quantiles_of_a_known_spread_are_within_the_bucket_width() {
        let h = Histogram::default();
        for us in 1..=1000u64 {
            h.record(us * 1000, 1);
        }
        let d = h.snapshot();
        assert_eq!(d.count(), 1000);
        for (q, want) in [(0.5, 500_000.0), (0.9, 900_000.0), (0.99, 990_000.0)] {
            let got = d.quantile_ns(q);
            assert!((got - want).abs() / want < 0.035, "q{q}: {got} for {want}");
        }
        assert!((d.mean_ns() - 500_500.0).abs() < 1.0);
    }

    #[test]
    fn a_baseline_takes_away_what_came_before_it() {
        let h = Histogram::default();
        h.record(5_000, 10);
        let base = h.snapshot();
        h.record(80_000, 3);
        let since = h.snapshot().minus(&base);
        assert_eq!(since.count(), 3);
        assert!((since.quantile_ns(0.5) - 80_000.0).abs() < 80_000.0 / 16.0);
        assert_eq!(since.mean_ns(), 80_000.0);
        let mut sum = base.clone();
        sum.add(&since);
        assert_eq!(sum.count(), 13);
    }

    #[test]
    fn the_stages_of_a_batch_add_up_to_its_time_in_the_server() {
        let read = Instant::now();
        let times = BatchTimes {
            arrived: Some(before(read, Duration::from_micros(7))),
            read,
            parsed: read + Duration::from_micros(3),
            started: read + Duration::from_micros(40),
            finished: read + Duration::from_micros(140),
        };
        let stages = StageHistograms::default();
        stages.record(&times, read + Duration::from_micros(150), 4);
        let mean = |s| stages.get(s).snapshot().mean_ns();
        assert_eq!(stages.get(Stage::Server).snapshot().count(), 4);
        assert_eq!(mean(Stage::Socket), 7_000.0);
        assert_eq!(mean(Stage::Handoff), 37_000.0);
        let parts: f64 = [Stage::Parse, Stage::Handoff, Stage::Execute, Stage::Write]
            .map(mean)
            .iter()
            .sum();
        assert_eq!(parts, mean(Stage::Server));
        assert_eq!(mean(Stage::Server), 150_000.0);
    }
}
