//! What one group of connections did in a run: replies by outcome, the
//! first error, and latency (and the client's own lateness) in HDR
//! histograms, merged over client threads.

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::load::reply::{ErrorKind, Expect, Outcome};

/// The measured part of a run.
#[derive(Debug)]
pub struct RunResult {
    /// Per group of the plan, merged over threads.
    pub groups: Vec<GroupStats>,
    /// From the start of the load until the last reply (or the grace period's end).
    pub elapsed: Duration,
    pub client_threads: usize,
}

/// Latencies above this many nanoseconds (100 s) are clamped.
const HIST_MAX_NS: u64 = 100_000_000_000;

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
    /// TLS handshakes made, and how many of them resumed an earlier
    /// session (churn with resumption: nearly all but the first).
    pub tls_handshakes: u64,
    pub tls_resumed: u64,
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
            tls_handshakes: 0,
            tls_resumed: 0,
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

    /// Counts a connection's handshake: `None` in plaintext (nothing to
    /// count), else whether it resumed a session.
    pub fn handshake(&mut self, resumed: Option<bool>) {
        if let Some(resumed) = resumed {
            self.tls_handshakes += 1;
            self.tls_resumed += u64::from(resumed);
        }
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
        self.tls_handshakes += other.tls_handshakes;
        self.tls_resumed += other.tls_resumed;
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

#[cfg(test)]
mod tests {
    use super::*;

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
        b.handshake(None);
        b.handshake(Some(true));
        a.handshake(Some(false));
        a.merge(&b);
        assert_eq!((a.tls_handshakes, a.tls_resumed), (2, 1));
        assert_eq!((a.requests, a.gets, a.get_keys, a.sets), (3, 1, 4, 2));
        assert_eq!((a.hits, a.misses, a.errors()), (3, 1, 3));
        assert_eq!(a.errors[ErrorKind::ServerError.index()], 1);
        assert_eq!(a.first_error.as_deref(), Some("late"));
        assert_eq!(a.hist.len(), 3);
        assert!(a.hist.max() >= 30_000);
    }
}
