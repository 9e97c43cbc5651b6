//! Simulated runs: a scenario's arrivals and service times, served under a
//! [`Discipline`], summed up the way kvbench reports a measured run.
//!
//! Service times are drawn one per request in arrival order, from their own
//! stream of the seed. A request's service time therefore depends neither on
//! the discipline nor on what else happens in the run: the disciplines are
//! compared on exactly the same requests, and a run at another rate with the
//! same seed has the same gaps scaled and the same service times, which
//! keeps the p99 monotone enough in the rate for [`max_load_at_slo`] to
//! bisect.

use std::time::Duration;

use kvserve::engine::work::{Rng, ServiceDist};

use super::discipline::{serve, Batching, Discipline, Request, Served};
use super::empirical::Empirical;
use crate::load::arrivals::{connection_seed, mix, PoissonArrivals};

/// The stream of a run's seed that service times are drawn from (the
/// connections' arrival streams are numbered from 0 up).
const SERVICE_STREAM: u64 = u64::MAX;
/// The stream measured delays are drawn from.
const DELAY_STREAM: u64 = u64::MAX - 1;
/// The first stream a hashed discipline's dealings are drawn from (one
/// stream per dealing, counting down).
const DEALING_STREAM: u64 = u64::MAX - 2;

/// How many dealings of the connections a hashed discipline's run is
/// served under, its percentiles taken over all of them: the latency of a
/// request when the dealing is drawn at random too. One dealing alone is a
/// lucky or an unlucky one (of 64 connections over 4 loops, the busiest
/// loop holds anything from 17 to 24 in 96% of dealings): with the same
/// arrivals, the max load at p99 <= 10 E[S] (exponential service) moved by
/// a standard deviation of 13% from one dealing to another at 64
/// connections and 27% at 16; pooled over 32 dealings, by 2.5% and 4%
/// (each over 8 seeds of the dealings; 4 loops, -R 20, 2 s of arrivals).
const DEALINGS: u64 = 32;

/// How finely [`max_load_at_slo`] bisects, as a share of its ceiling.
const LOAD_RESOLUTION: f64 = 1.0 / 1024.0;

/// One open-loop run of the model: who connects, how much load, what each
/// request costs and how the server takes work.
#[derive(Clone, Debug, PartialEq)]
pub struct Scenario {
    pub discipline: Discipline,
    pub connections: usize,
    /// Total offered load, requests/s, split evenly over the connections.
    pub rate: f64,
    /// Arrivals in [0, duration); every request is followed to completion.
    pub duration: Duration,
    pub service: ServiceDist,
    /// Added to every drawn service time: what the server measurably spends
    /// beyond the asked time (a sleep's wake-up latency).
    pub overhead: Duration,
    /// The most requests served from one connection per turn (the server's
    /// -R, default 20).
    pub batch_limit: usize,
    /// Worker-pool: a worker hands a batch back after this much work (100 µs).
    pub slice: Option<Duration>,
    pub seed: u64,
    /// This machine's overheads, measured by the server, if the model is
    /// to know them; `None`: the zero-overhead model.
    pub measured: Option<Overheads>,
}

/// What a pattern pays per request on this machine beyond the ideal
/// discipline, from the server's stage times (`stats latency`): the
/// overhead-aware model serves the same arrivals with these.
#[derive(Clone, Debug, PartialEq)]
pub struct Overheads {
    /// Each request's service time as the server performed it (instead of
    /// `service` and `overhead`).
    pub service: Empirical,
    /// Time per request that holds the executing thread beyond the
    /// service: writing the reply; in an event loop, parsing too.
    pub on_server: Vec<Empirical>,
    /// Time per request that holds no modelled server, as measured where
    /// nothing queued: wake-ups, the hand-off, another thread's parsing,
    /// the network and the client. Drawn independently and added.
    pub delays: Vec<Empirical>,
}

/// What a simulated run measured, in the terms of a measured one.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    pub requests: u64,
    /// Sojourn (arrival to reply) percentiles and mean, over all requests.
    pub p50_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub mean_us: f64,
    /// Completions per second of the run: requests / (time of the last
    /// completion, at least the duration).
    pub achieved: f64,
    /// Busy time / (servers × the same span).
    pub utilisation: f64,
}

/// Simulates `s`: its latency percentiles at zero server overhead.
pub fn simulate(s: &Scenario) -> Outcome {
    let requests = offered_requests(s);
    let served: Vec<Served> = dealings(s)
        .map(|dealing| serve(s.discipline, batching(s), &requests, dealing))
        .collect();
    let delays = delays(s, requests.len());
    summarise(s, &requests, &served, &delays)
}

/// The seeds of the dealings `s` is served under: [`DEALINGS`] for a
/// discipline that deals connections at random, one (unused) for the others.
fn dealings(s: &Scenario) -> impl Iterator<Item = u64> + '_ {
    let count = match s.discipline {
        Discipline::Hashed { .. } => DEALINGS,
        _ => 1,
    };
    (0..count).map(|d| mix(s.seed, DEALING_STREAM - d))
}

/// Each request's measured delay outside the servers (all zero for the
/// zero-overhead model).
fn delays(s: &Scenario, n: usize) -> Vec<u64> {
    let Some(measured) = &s.measured else {
        return vec![0; n];
    };
    let mut rng = Rng::new(mix(s.seed, DELAY_STREAM));
    (0..n)
        .map(|_| draw_sum(&measured.delays, &mut rng))
        .collect()
}

/// One draw from each distribution, summed, in whole nanoseconds.
fn draw_sum(dists: &[Empirical], rng: &mut Rng) -> u64 {
    dists.iter().map(|d| d.at(rng.unit())).sum::<f64>() as u64
}

/// The highest total rate (req/s) at which simulated p99 <= slo, by
/// bisection between 0 and `ceiling` (e.g. k/E[S]); to within ~0.1% of the
/// ceiling. The rate returned is one that was simulated and met the SLO
/// (0 if none did); `ceiling` itself is taken to miss it.
pub fn max_load_at_slo(s: &Scenario, slo: Duration, ceiling: f64) -> f64 {
    let slo_us = slo.as_secs_f64() * 1e6;
    let meets = |rate: f64| simulate(&Scenario { rate, ..s.clone() }).p99_us <= slo_us;
    let (mut met, mut missed) = (0.0, ceiling);
    while missed - met > LOAD_RESOLUTION * ceiling {
        let rate = (met + missed) / 2.0;
        if meets(rate) {
            met = rate;
        } else {
            missed = rate;
        }
    }
    met
}

fn batching(s: &Scenario) -> Batching {
    Batching {
        limit: s.batch_limit,
        slice: s.slice.map(nanos),
    }
}

fn nanos(t: Duration) -> u64 {
    u64::try_from(t.as_nanos()).unwrap_or(u64::MAX)
}

/// Every request of the run, sorted by arrival, with its service time.
fn offered_requests(s: &Scenario) -> Vec<Request> {
    let rate_per_connection = s.rate / s.connections.max(1) as f64;
    let mut requests = Vec::with_capacity((s.rate * s.duration.as_secs_f64() * 1.01) as usize);
    for connection in 0..s.connections {
        let mut arrivals =
            PoissonArrivals::new(rate_per_connection, connection_seed(s.seed, connection));
        let mut at = Duration::ZERO;
        while let Some(next) = at
            .checked_add(arrivals.next_gap())
            .filter(|&t| t < s.duration)
        {
            at = next;
            requests.push(Request {
                arrival: nanos(at),
                connection,
                service: 0,
            });
        }
    }
    sort_by_arrival(&mut requests, nanos(s.duration));
    let mut rng = Rng::new(mix(s.seed, SERVICE_STREAM));
    for request in &mut requests {
        request.service = match &s.measured {
            Some(m) => m.service.at(rng.unit()) as u64 + draw_sum(&m.on_server, &mut rng),
            None => nanos(s.service.sample(&mut rng) + s.overhead),
        };
    }
    requests
}

/// Sorts requests by arrival, then connection, in linear time: arrivals
/// spread evenly over [0, span), so dealing them into as many buckets of
/// time as there are requests leaves them nearly in order, and an insertion
/// sort finishes. (A comparison sort of a million requests takes most of a
/// second in a debug build; this takes a fraction.)
fn sort_by_arrival(requests: &mut [Request], span_ns: u64) {
    let n = requests.len();
    if n < 2 {
        return;
    }
    let buckets_per_ns = n as f64 / (span_ns as f64 + 1.0);
    let bucket_of = |r: &Request| ((r.arrival as f64 * buckets_per_ns) as usize).min(n - 1);
    let mut bucket_start = vec![0; n + 1];
    for r in requests.iter() {
        bucket_start[bucket_of(r) + 1] += 1;
    }
    for b in 0..n {
        bucket_start[b + 1] += bucket_start[b];
    }
    let mut dealt = requests.to_vec();
    for r in dealt.drain(..) {
        let slot = &mut bucket_start[bucket_of(&r)];
        requests[*slot] = r;
        *slot += 1;
    }
    let key = |r: &Request| (r.arrival, r.connection);
    for i in 1..n {
        let mut j = i;
        while j > 0 && key(&requests[j - 1]) > key(&requests[j]) {
            requests.swap(j - 1, j);
            j -= 1;
        }
    }
}

/// The run's figures from what became of each request, over every
/// dealing it was served under (each a whole run: throughput and
/// utilisation are their means, percentiles over all their requests).
fn summarise(s: &Scenario, requests: &[Request], served: &[Served], delays: &[u64]) -> Outcome {
    let mut sojourns: Vec<u64> = served
        .iter()
        .flat_map(|run| {
            requests
                .iter()
                .zip(&run.passages)
                .zip(delays)
                .map(|((r, p), delay)| p.done - r.arrival + delay)
        })
        .collect();
    let passages = served.iter().flat_map(|run| &run.passages);
    let last_done = passages.map(|p| p.done).max().unwrap_or(0);
    let span = (last_done as f64 * 1e-9).max(s.duration.as_secs_f64());
    let per_second_of_span = |x: f64| if span > 0.0 { x / span } else { 0.0 };
    let runs = served.len().max(1) as f64;
    let busy = served.iter().map(|run| run.busy as f64).sum::<f64>() / runs;
    let mean_ns = sojourns.iter().map(|&t| t as f64).sum::<f64>() / (sojourns.len().max(1) as f64);
    Outcome {
        requests: requests.len() as u64,
        p50_us: percentile_us(&mut sojourns, 0.5),
        p99_us: percentile_us(&mut sojourns, 0.99),
        p999_us: percentile_us(&mut sojourns, 0.999),
        mean_us: mean_ns / 1e3,
        achieved: per_second_of_span(requests.len() as f64),
        utilisation: per_second_of_span(busy * 1e-9) / s.discipline.servers() as f64,
    }
}

/// The exact `q` quantile of nanoseconds, in µs, by nearest rank (the
/// smallest value with at least a share `q` of values at or below it).
/// Reorders `ns` (a selection, not a sort).
fn percentile_us(ns: &mut [u64], q: f64) -> f64 {
    if ns.is_empty() {
        return 0.0;
    }
    let rank = ((q * ns.len() as f64).ceil() as usize).clamp(1, ns.len());
    *ns.select_nth_unstable(rank - 1).1 as f64 / 1e3
}

#[cfg(test)]
mod tests;
