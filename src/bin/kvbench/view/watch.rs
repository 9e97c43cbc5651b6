//! What `kvbench top` knows about the server it watches, worked out from
//! its successive readings: the totals of the latest, the rates between the
//! last two, total ops/s over the last minute, and whether the server
//! answers. No drawing here: the full-screen view and the plain text both
//! render a [`Watch`].

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::measure::snapshot::Snapshot;
use crate::measure::threads::thread_deltas;

/// How far back the ops/s sparkline reaches.
const HISTORY: Duration = Duration::from_secs(60);

/// The state of one `kvbench top`, fed one reading per refresh.
#[derive(Debug)]
pub struct Watch {
    /// The server's address, as given.
    pub server: String,
    /// Time between refreshes.
    pub interval: Duration,
    latest: Option<Snapshot>,
    /// False after a failed reading: the next good one is a new baseline,
    /// as rates over an outage (or across a restart) would mislead.
    baseline: bool,
    rates: Option<Rates>,
    history: VecDeque<(Instant, f64)>,
    lost: Option<Lost>,
}

/// Readings are failing: since when, why, and how many in a row.
#[derive(Clone, Debug, PartialEq)]
pub struct Lost {
    pub since: Instant,
    pub error: String,
    pub tries: u32,
}

/// What happened between two readings, per second.
#[derive(Clone, Debug, PartialEq)]
pub struct Rates {
    pub ops_per_s: f64,
    /// Hits over gets; `None` when there was no get.
    pub hit_ratio: Option<f64>,
    pub evictions_per_s: f64,
    /// One per thread; `None` from a server without `stats threads`.
    pub threads: Option<Vec<ThreadRate>>,
    /// Where requests' time went inside the server between the readings:
    /// each stage that counted any (`None` from a server without them).
    pub stages: Option<Vec<StageTimes>>,
}

/// One stage's times between two readings.
#[derive(Clone, Debug, PartialEq)]
pub struct StageTimes {
    pub stage: &'static str,
    pub p50_us: f64,
    pub p99_us: f64,
}

/// The stages `top` shows, in the order a request passes them.
const STAGES: [&str; 7] = [
    "socket", "wakeup", "parse", "handoff", "execute", "write", "server",
];

/// One thread's row: what it did per second between two readings.
#[derive(Clone, Debug, PartialEq)]
pub struct ThreadRate {
    pub thread: usize,
    pub role: String,
    /// Connections the thread has taken on since the server started
    /// (accepted, or handed to it), not those open now.
    pub connections: u64,
    pub requests_per_s: f64,
    /// Share of the wall time the thread was busy (`busy_us`), in percent.
    pub busy_percent: f64,
    pub read_per_s: f64,
    pub written_per_s: f64,
}

impl Rates {
    /// The rates from `before` to `after`, two readings of one server run.
    pub fn between(before: &Snapshot, after: &Snapshot) -> Rates {
        let seconds = after
            .at
            .saturating_duration_since(before.at)
            .as_secs_f64()
            .max(1e-6);
        let delta = |name: &str| after.number(name).saturating_sub(before.number(name));
        let gets = delta("get_hits") + delta("get_misses");
        let threads = match (&before.threads, &after.threads) {
            (Some(b), Some(a)) => Some(
                thread_deltas(b, a)
                    .into_iter()
                    .zip(a)
                    .map(|(d, now)| ThreadRate {
                        thread: d.thread,
                        role: d.role,
                        connections: now.connections,
                        requests_per_s: d.requests as f64 / seconds,
                        busy_percent: d.busy_us as f64 / (seconds * 1e4),
                        read_per_s: d.bytes_read as f64 / seconds,
                        written_per_s: d.bytes_written as f64 / seconds,
                    })
                    .collect(),
            ),
            _ => None,
        };
        let stages = match (&before.stages, &after.stages) {
            (Some(b), Some(a)) => {
                let between = a.since(b);
                let times = STAGES.iter().filter_map(|&stage| {
                    Some(StageTimes {
                        stage,
                        p50_us: between.quantile_us(stage, 0.5)?,
                        p99_us: between.quantile_us(stage, 0.99)?,
                    })
                });
                Some(times.collect())
            }
            _ => None,
        };
        Rates {
            ops_per_s: after.ops().saturating_sub(before.ops()) as f64 / seconds,
            hit_ratio: (gets > 0).then(|| delta("get_hits") as f64 / gets as f64),
            evictions_per_s: delta("evictions") as f64 / seconds,
            threads,
            stages,
        }
    }
}

impl Watch {
    /// A watch of `server` refreshed every `interval`, with no reading yet.
    pub fn new(server: impl Into<String>, interval: Duration) -> Watch {
        Watch {
            server: server.into(),
            interval,
            latest: None,
            baseline: false,
            rates: None,
            history: VecDeque::new(),
            lost: None,
        }
    }

    /// Takes in one reading, or the error that stopped it.
    pub fn record(&mut self, reading: Result<Snapshot, String>) {
        match reading {
            Ok(now) => {
                self.lost = None;
                self.rates = match &self.latest {
                    Some(before) if self.baseline && !before.restarted_by(&now) => {
                        Some(Rates::between(before, &now))
                    }
                    _ => None,
                };
                if let Some(rates) = &self.rates {
                    self.history.push_back((now.at, rates.ops_per_s));
                    while self
                        .history
                        .front()
                        .is_some_and(|&(at, _)| now.at.saturating_duration_since(at) > HISTORY)
                    {
                        self.history.pop_front();
                    }
                }
                self.latest = Some(now);
                self.baseline = true;
            }
            Err(error) => {
                let (since, tries) = self
                    .lost
                    .take()
                    .map_or((Instant::now(), 0), |l| (l.since, l.tries));
                self.lost = Some(Lost {
                    since,
                    error,
                    tries: tries + 1,
                });
                self.baseline = false;
            }
        }
    }

    /// The latest good reading (older than the loss while the server is lost).
    pub fn latest(&self) -> Option<&Snapshot> {
        self.latest.as_ref()
    }

    /// The rates of the last refresh; `None` until two readings of the
    /// same server run are in (and while it is lost: then the last ones).
    pub fn rates(&self) -> Option<&Rates> {
        self.rates.as_ref()
    }

    /// Set while readings fail.
    pub fn lost(&self) -> Option<&Lost> {
        self.lost.as_ref()
    }

    /// Whether a reading ever succeeded: failing readings of a server never
    /// reached say it cannot be reached, not that it was lost.
    pub fn connected(&self) -> bool {
        self.latest.is_some()
    }

    /// Total ops/s of each refresh in the last minute, oldest first.
    pub fn history(&self) -> impl ExactSizeIterator<Item = f64> + '_ {
        self.history.iter().map(|&(_, ops)| ops)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::measure::anatomy::StageBuckets;
    use crate::measure::stats;
    use crate::measure::threads::parse_thread_stats;

    /// A reading `secs` after `base` from `stats` and `stats threads` text.
    pub fn reading(base: Instant, secs: f64, general: &str, threads: Option<&str>) -> Snapshot {
        Snapshot {
            at: base + Duration::from_secs_f64(secs),
            stats: stats::parse(general).unwrap(),
            threads: threads.map(|t| parse_thread_stats(t).unwrap()),
            stages: None,
        }
    }

    /// worker-pool with two workers: the dispatch thread reads, worker 1
    /// serves twice what worker 2 does. `k` scales the counters.
    pub fn worker_pool(base: Instant, secs: f64, k: u64) -> Snapshot {
        let general = format!(
            "STAT pid 42\r\nSTAT uptime {}\r\nSTAT curr_connections 8\r\n\
             STAT total_connections 11\r\nSTAT cmd_get {}\r\n\
             STAT cmd_set {}\r\nSTAT get_hits {}\r\nSTAT get_misses {}\r\nSTAT evictions {}\r\n\
             STAT bytes 1048576\r\nSTAT limit_maxbytes 67108864\r\nSTAT threads 2\r\n\
             STAT pattern worker-pool\r\nSTAT version 1.6.18-kvserve-0.1.0\r\nEND\r\n",
            3600 + secs as u64,
            2400 * k,
            600 * k,
            1800 * k,
            600 * k,
            10 * k,
        );
        let threads = format!(
            "STAT 0:role dispatch\r\nSTAT 0:connections 11\r\nSTAT 0:requests 0\r\n\
             STAT 0:bytes_read {}\r\nSTAT 0:bytes_written 0\r\nSTAT 0:busy_us {}\r\n\
             STAT 1:role worker\r\nSTAT 1:connections 0\r\nSTAT 1:requests {}\r\n\
             STAT 1:bytes_read 0\r\nSTAT 1:bytes_written {}\r\nSTAT 1:busy_us {}\r\n\
             STAT 2:role worker\r\nSTAT 2:connections 0\r\nSTAT 2:requests {}\r\n\
             STAT 2:bytes_read 0\r\nSTAT 2:bytes_written {}\r\nSTAT 2:busy_us {}\r\nEND\r\n",
            100_000 * k,
            500_000 * k,
            2000 * k,
            40_000 * k,
            400_000 * k,
            1000 * k,
            20_000 * k,
            200_000 * k,
        );
        let mut snapshot = reading(base, secs, &general, Some(&threads));
        let stages = format!(
            "STAT socket:20000-21250 {}\r\nSTAT server:100000-106250 {}\r\n\
             STAT server:400000-425000 {}\r\nEND\r\n",
            100 * k,
            99 * k,
            2 * k
        );
        snapshot.stages = Some(StageBuckets::parse(&stats::parse(&stages).unwrap()));
        snapshot
    }

    /// A watch that has seen `worker_pool` at 0 s (k = 1) and 1 s (k = 2).
    pub fn watched_worker_pool() -> Watch {
        let base = Instant::now();
        let mut watch = Watch::new("127.0.0.1:11211", Duration::from_secs(1));
        watch.record(Ok(worker_pool(base, 0.0, 1)));
        watch.record(Ok(worker_pool(base, 1.0, 2)));
        watch
    }

    #[test]
    fn rates_per_thread_from_two_readings() {
        let watch = watched_worker_pool();
        let rates = watch.rates().expect("two readings give rates");
        assert_eq!(rates.ops_per_s, 3000.0);
        assert_eq!(rates.hit_ratio, Some(0.75));
        assert_eq!(rates.evictions_per_s, 10.0);
        let t = rates.threads.as_ref().unwrap();
        assert_eq!(t.len(), 3);
        assert_eq!((t[0].role.as_str(), t[0].connections), ("dispatch", 11));
        assert_eq!(t[0].requests_per_s, 0.0);
        assert_eq!(t[0].read_per_s, 100_000.0);
        assert!((t[0].busy_percent - 50.0).abs() < 1e-9);
        assert_eq!((t[1].requests_per_s, t[2].requests_per_s), (2000.0, 1000.0));
        assert!((t[1].busy_percent - 40.0).abs() < 1e-9);
        assert_eq!(t[2].written_per_s, 20_000.0);
        assert_eq!(watch.history().collect::<Vec<_>>(), [3000.0]);
        // Between the readings: 100 requests waited 20-21.25 µs in the
        // socket; 99 spent 100-106 µs in the server and 2 spent 400-425.
        let stages = rates.stages.as_ref().unwrap();
        let names: Vec<&str> = stages.iter().map(|s| s.stage).collect();
        assert_eq!(names, ["socket", "server"]);
        assert!((stages[0].p50_us - 20.625).abs() < 1e-9);
        assert!(stages[1].p50_us > 100.0 && stages[1].p50_us < 106.25);
        assert!(stages[1].p99_us > 400.0, "{stages:?}");
    }

    #[test]
    fn connected_once_a_reading_succeeds_and_after_a_loss_still() {
        let mut watch = Watch::new("s", Duration::from_secs(1));
        assert!(!watch.connected());
        watch.record(Err("connection refused".into()));
        assert!(!watch.connected() && watch.lost().is_some());
        watch.record(Ok(worker_pool(Instant::now(), 0.0, 1)));
        assert!(watch.connected());
        watch.record(Err("connection refused".into()));
        assert!(watch.connected() && watch.lost().is_some());
    }

    #[test]
    fn a_lost_server_needs_a_new_baseline_and_a_restart_too() {
        let base = Instant::now();
        let mut watch = Watch::new("s", Duration::from_secs(1));
        watch.record(Ok(worker_pool(base, 0.0, 1)));
        assert!(watch.rates().is_none(), "one reading has no rates");
        watch.record(Err("connection refused".into()));
        watch.record(Err("connection refused".into()));
        let lost = watch.lost().unwrap();
        assert_eq!((lost.tries, lost.error.as_str()), (2, "connection refused"));
        assert!(watch.latest().is_some(), "the last reading stays shown");
        watch.record(Ok(worker_pool(base, 3.0, 2)));
        assert!(watch.lost().is_none());
        assert!(watch.rates().is_none(), "rates across an outage");
        watch.record(Ok(worker_pool(base, 4.0, 3)));
        assert_eq!(watch.rates().unwrap().ops_per_s, 3000.0);
        // A new pid: counters started again, so no rates from before.
        let restarted = reading(
            base,
            5.0,
            "STAT pid 43\r\nSTAT uptime 1\r\nSTAT cmd_get 1\r\nEND\r\n",
            None,
        );
        watch.record(Ok(restarted));
        assert!(watch.rates().is_none());
    }

    #[test]
    fn history_keeps_the_last_minute() {
        let base = Instant::now();
        let mut watch = Watch::new("s", Duration::from_secs(10));
        for i in 0..10 {
            watch.record(Ok(worker_pool(base, 10.0 * i as f64, i + 1)));
        }
        // Nine rates at 10..90 s; those older than 60 s before 90 s go.
        assert_eq!(watch.history().len(), 7);
        assert!(watch.history().all(|ops| (ops - 300.0).abs() < 1e-9));
    }
}
