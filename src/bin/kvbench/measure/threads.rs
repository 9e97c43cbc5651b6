//! `stats threads`: reading a kvserve's per-thread counters, the difference
//! a measured run made to them, how evenly the executing threads shared
//! the work, how evenly connections were dealt to them, and what each
//! role's threads did (who pays for TLS).

use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use serde::Serialize;

use super::stats;
use crate::model::dealing::max_over_mean;
use crate::net::stream::Stream;
use crate::net::Endpoint;

/// One thread's counters from `stats threads`: totals as the server
/// reports them, or (from [`thread_deltas`]) what the thread did during one
/// measured run.
#[derive(Serialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct ThreadStat {
    pub thread: usize,
    pub role: String,
    pub connections: u64,
    pub requests: u64,
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub busy_us: u64,
    /// TLS handshakes the thread made, and its time in TLS work (µs);
    /// `None` from a server that does not report them.
    pub tls_handshakes: Option<u64>,
    pub tls_us: Option<u64>,
}

/// Parses `STAT <n>:<field> <value>` lines up to `END`.
pub fn parse_thread_stats(text: &str) -> Result<Vec<ThreadStat>> {
    let mut threads: Vec<ThreadStat> = Vec::new();
    for line in text.split("\r\n") {
        if line == "END" {
            return Ok(threads);
        }
        let mut words = line.splitn(3, ' ');
        let (Some("STAT"), Some(name), Some(value)) = (words.next(), words.next(), words.next())
        else {
            bail!("unexpected line in `stats threads`: {line:?}");
        };
        let Some((n, field)) = name.split_once(':') else {
            bail!("not a per-thread stat: {line:?}");
        };
        let n: usize = n
            .parse()
            .with_context(|| format!("thread number in {line:?}"))?;
        ensure!(n < 4096, "thread number too large: {line:?}");
        if threads.len() <= n {
            threads.resize(n + 1, ThreadStat::default());
        }
        let t = &mut threads[n];
        t.thread = n;
        let number = || -> Result<u64> {
            value
                .parse()
                .with_context(|| format!("not a number: {line:?}"))
        };
        match field {
            "role" => t.role = value.to_string(),
            "connections" => t.connections = number()?,
            "requests" => t.requests = number()?,
            "bytes_read" => t.bytes_read = number()?,
            "bytes_written" => t.bytes_written = number()?,
            "busy_us" => t.busy_us = number()?,
            "tls_handshakes" => t.tls_handshakes = Some(number()?),
            "tls_us" => t.tls_us = Some(number()?),
            _ => {}
        }
    }
    bail!("`stats threads` reply without END")
}

/// Per-thread differences `after - before`.
pub fn thread_deltas(before: &[ThreadStat], after: &[ThreadStat]) -> Vec<ThreadStat> {
    let zero = ThreadStat::default();
    after
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let b = before.get(i).unwrap_or(&zero);
            let since =
                |a: Option<u64>, b: Option<u64>| a.map(|a| a.saturating_sub(b.unwrap_or(0)));
            ThreadStat {
                thread: i,
                role: a.role.clone(),
                connections: a.connections.saturating_sub(b.connections),
                requests: a.requests.saturating_sub(b.requests),
                bytes_read: a.bytes_read.saturating_sub(b.bytes_read),
                bytes_written: a.bytes_written.saturating_sub(b.bytes_written),
                busy_us: a.busy_us.saturating_sub(b.busy_us),
                tls_handshakes: since(a.tls_handshakes, b.tls_handshakes),
                tls_us: since(a.tls_us, b.tls_us),
            }
        })
        .collect()
}

/// The busiest executing thread's requests over the mean of the threads
/// that execute requests (roles loop, reader, worker). 1.0 is perfectly
/// even; `threads` is the worst. `None` when no such thread did anything.
pub fn imbalance(threads: &[ThreadStat]) -> Option<f64> {
    let executing: Vec<u64> = threads
        .iter()
        .filter(|t| matches!(t.role.as_str(), "loop" | "reader" | "worker"))
        .map(|t| t.requests)
        .collect();
    max_over_mean(&executing)
}

/// How a pattern dealt its connections to the threads that serve their
/// own (loops and readers): their role, how many there are, the
/// connections taken, and the busiest's over the mean (1.0 is even).
/// `None` with fewer than two such threads, or before any connection.
pub fn connection_spread(threads: &[ThreadStat]) -> Option<Spread> {
    let serving: Vec<&ThreadStat> = threads
        .iter()
        .filter(|t| matches!(t.role.as_str(), "loop" | "reader"))
        .collect();
    let counts: Vec<u64> = serving.iter().map(|t| t.connections).collect();
    if counts.len() < 2 {
        return None;
    }
    Some(Spread {
        role: serving[0].role.clone(),
        threads: counts.len(),
        connections: counts.iter().sum(),
        max_over_mean: max_over_mean(&counts)?,
    })
}

/// What [`connection_spread`] found.
#[derive(Clone, Debug, PartialEq)]
pub struct Spread {
    pub role: String,
    pub threads: usize,
    pub connections: u64,
    pub max_over_mean: f64,
}

/// What the threads of one role did over a measured run.
#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct RoleLoad {
    pub role: String,
    pub threads: usize,
    /// Their busy time over the run's wall time: cores kept busy.
    pub busy_cores: f64,
    /// Their time in TLS work per request of the run (µs); `None` when
    /// the server does not report it.
    pub tls_us_per_request: Option<f64>,
    /// Their TLS handshakes; `None` when the server does not report them.
    pub tls_handshakes: Option<u64>,
}

/// Per role, in the order roles first appear: what `deltas` (a run's)
/// add up to over `seconds` of wall time and `requests`.
pub fn by_role(deltas: &[ThreadStat], seconds: f64, requests: u64) -> Vec<RoleLoad> {
    let mut out: Vec<RoleLoad> = Vec::new();
    let mut tls_us: Vec<Option<u64>> = Vec::new();
    for t in deltas {
        let i = match out.iter().position(|r| r.role == t.role) {
            Some(i) => i,
            None => {
                out.push(RoleLoad {
                    role: t.role.clone(),
                    threads: 0,
                    busy_cores: 0.0,
                    tls_us_per_request: None,
                    tls_handshakes: None,
                });
                tls_us.push(None);
                out.len() - 1
            }
        };
        let r = &mut out[i];
        r.threads += 1;
        r.busy_cores += t.busy_us as f64 / 1e6 / seconds.max(1e-9);
        if let Some(n) = t.tls_handshakes {
            *r.tls_handshakes.get_or_insert(0) += n;
        }
        if let Some(us) = t.tls_us {
            *tls_us[i].get_or_insert(0) += us;
        }
    }
    for (r, us) in out.iter_mut().zip(tls_us) {
        r.tls_us_per_request = us
            .filter(|_| requests > 0)
            .map(|us| us as f64 / requests as f64);
    }
    out
}

/// Sends `stats threads` and parses the reply (bounded by `timeout`).
pub fn stats_threads(server: &Endpoint, timeout: Duration) -> Result<Vec<ThreadStat>> {
    parse_thread_stats(&stats::ask(server, "threads", timeout)?)
}

/// `stats threads` on an open connection, from a server that may not
/// know it: `None` when it answers `ERROR`, as memcached does.
pub fn stats_threads_on(stream: &mut Stream, timeout: Duration) -> Result<Option<Vec<ThreadStat>>> {
    let reply = stats::ask_on(stream, "threads", timeout)?;
    if reply.starts_with("ERROR") {
        return Ok(None);
    }
    parse_thread_stats(&reply).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delta(role: &str, requests: u64) -> ThreadStat {
        ThreadStat {
            role: role.into(),
            requests,
            ..ThreadStat::default()
        }
    }

    #[test]
    fn imbalance_counts_executing_threads_only() {
        // worker-pool: the dispatch thread executes nothing.
        let t = [
            delta("dispatch", 0),
            delta("worker", 300),
            delta("worker", 100),
        ];
        assert_eq!(imbalance(&t), Some(1.5));
        // multi-reader: acceptor left out; even readers.
        let t = [
            delta("acceptor", 5),
            delta("reader", 50),
            delta("reader", 50),
        ];
        assert_eq!(imbalance(&t), Some(1.0));
        // basic: one loop.
        assert_eq!(imbalance(&[delta("loop", 7)]), Some(1.0));
        // All on one of four readers: the worst case, 4.
        let t = [
            delta("reader", 0),
            delta("reader", 400),
            delta("reader", 0),
            delta("reader", 0),
        ];
        assert_eq!(imbalance(&t), Some(4.0));
        assert_eq!(imbalance(&[delta("worker", 0), delta("worker", 0)]), None);
        assert_eq!(imbalance(&[delta("acceptor", 9)]), None);
        assert_eq!(imbalance(&[]), None);
    }

    fn taken(role: &str, connections: u64) -> ThreadStat {
        ThreadStat {
            role: role.into(),
            connections,
            ..ThreadStat::default()
        }
    }

    #[test]
    fn connection_spread_over_the_threads_that_serve_their_own() {
        // reuseport: four loops.
        let t = [
            taken("loop", 20),
            taken("loop", 12),
            taken("loop", 16),
            taken("loop", 16),
        ];
        let spread = connection_spread(&t).unwrap();
        assert_eq!((spread.role.as_str(), spread.threads), ("loop", 4));
        assert_eq!((spread.connections, spread.max_over_mean), (64, 1.25));
        // multi-reader: the acceptor counts what it accepted; left out.
        let t = [
            taken("acceptor", 64),
            taken("reader", 32),
            taken("reader", 32),
        ];
        assert_eq!(connection_spread(&t).unwrap().max_over_mean, 1.0);
        // basic's one loop, worker-pool's workers (which take none), or
        // nothing taken yet: nothing to say.
        assert_eq!(connection_spread(&[taken("loop", 9)]), None);
        let t = [taken("dispatch", 9), taken("worker", 0), taken("worker", 0)];
        assert_eq!(connection_spread(&t), None);
        assert_eq!(
            connection_spread(&[taken("loop", 0), taken("loop", 0)]),
            None
        );
    }

    #[test]
    fn roles_add_up_their_threads_and_tls_work_when_reported() {
        let before = parse_thread_stats(
            "STAT 0:role acceptor\r\nSTAT 0:busy_us 0\r\nSTAT 0:tls_handshakes 0\r\nSTAT 0:tls_us 0\r\n\
             STAT 1:role reader\r\nSTAT 1:busy_us 100\r\nSTAT 1:tls_handshakes 5\r\nSTAT 1:tls_us 50\r\n\
             STAT 2:role reader\r\nSTAT 2:busy_us 0\r\nEND\r\n",
        )
        .unwrap();
        let after = parse_thread_stats(
            "STAT 0:role acceptor\r\nSTAT 0:busy_us 250000\r\nSTAT 0:tls_handshakes 0\r\nSTAT 0:tls_us 0\r\n\
             STAT 1:role reader\r\nSTAT 1:busy_us 500100\r\nSTAT 1:tls_handshakes 105\r\nSTAT 1:tls_us 100050\r\n\
             STAT 2:role reader\r\nSTAT 2:busy_us 250000\r\nSTAT 2:tls_us 100000\r\nEND\r\n",
        )
        .unwrap();
        let roles = by_role(&thread_deltas(&before, &after), 0.5, 1000);
        assert_eq!(roles.len(), 2);
        assert_eq!((roles[0].role.as_str(), roles[0].threads), ("acceptor", 1));
        assert_eq!(roles[0].busy_cores, 0.5);
        assert_eq!(roles[0].tls_us_per_request, Some(0.0));
        assert_eq!((roles[1].threads, roles[1].busy_cores), (2, 1.5));
        // Thread 2 reports no handshakes; thread 2's tls_us is new since `before`.
        assert_eq!(roles[1].tls_handshakes, Some(100));
        assert_eq!(roles[1].tls_us_per_request, Some(200.0));
        let plain = by_role(&thread_deltas(&[], &[delta("loop", 3)]), 1.0, 3);
        assert_eq!(plain[0].tls_us_per_request, None);
    }

    #[test]
    fn thread_stats_parse_and_delta() {
        let before = "STAT 0:role dispatch\r\nSTAT 0:connections 1\r\nSTAT 0:requests 0\r\n\
            STAT 0:bytes_read 47\r\nSTAT 0:bytes_written 0\r\nSTAT 0:busy_us 127\r\n\
            STAT 1:role worker\r\nSTAT 1:requests 3\r\nSTAT 1:future_field x\r\nEND\r\n";
        let after = "STAT 0:role dispatch\r\nSTAT 0:connections 3\r\nSTAT 0:requests 0\r\n\
            STAT 0:bytes_read 100\r\nSTAT 0:busy_us 200\r\n\
            STAT 1:role worker\r\nSTAT 1:requests 10\r\n\
            STAT 2:role worker\r\nSTAT 2:requests 4\r\nEND\r\n";
        let b = parse_thread_stats(before).unwrap();
        assert_eq!(b.len(), 2);
        assert_eq!(b[0].role, "dispatch");
        assert_eq!((b[0].thread, b[1].thread), (0, 1));
        assert_eq!((b[0].bytes_read, b[0].busy_us), (47, 127));
        let a = parse_thread_stats(after).unwrap();
        let d = thread_deltas(&b, &a);
        assert_eq!(d.len(), 3);
        assert_eq!(
            (d[0].connections, d[0].bytes_read, d[0].busy_us),
            (2, 53, 73)
        );
        assert_eq!((d[1].requests, d[2].requests), (7, 4));
        assert_eq!(imbalance(&d), Some(7.0 / 5.5));
        assert_eq!((d[0].tls_us, d[0].tls_handshakes), (None, None));
        assert!(parse_thread_stats("STAT 0:role loop\r\n").is_err());
        assert!(parse_thread_stats("ERROR\r\n").is_err());
        assert!(parse_thread_stats("STAT 0:requests many\r\nEND\r\n").is_err());
    }
}
