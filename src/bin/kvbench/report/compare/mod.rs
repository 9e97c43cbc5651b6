//! What `kvbench compare` reports: a row per server and workload (the
//! medians over rounds, runs the machine's noise disturbed left out), each
//! server's throughput against the baseline's in the same round, and a
//! called verdict for every pair of servers; [`tls`]: what TLS costs.

pub mod tls;

use std::fmt::Write as _;

use serde::Serialize;

use super::verdict::{Call, Ratio};
use super::{us, Table};
use crate::load::workload::Security;
use crate::measure::anatomy::Anatomy;
use crate::measure::confidence::Spread;
use crate::measure::noise::Noise;
use crate::measure::threads::{RoleLoad, ThreadStat};

/// One line of `kvbench compare`: a server, a workload (and group).
#[derive(Serialize, Clone, Debug)]
pub struct CompareRow {
    pub server: String,
    /// The workload, with `/group` for multi-group workloads (skewed/light),
    /// then the security's suffix (`uniform+tls`, `churn+tls+resume`).
    pub workload: String,
    /// How the run's connections were secured.
    pub security: Security,
    pub ops_per_sec: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub requests: u64,
    pub misses: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    /// Busiest executing thread's requests over the executing threads'
    /// mean (1.0 = even); `None` without `stats threads` (memcached).
    pub imbalance: Option<f64>,
    /// `stats threads` deltas over the measured run.
    pub threads: Option<Vec<ThreadStat>>,
    /// What each role's threads did over the run (from those deltas); in
    /// a folded row, that of the round with the median ops/s.
    pub roles: Option<Vec<RoleLoad>>,
    /// TLS handshakes the client made, and how many resumed a session.
    pub tls_handshakes: u64,
    pub tls_resumed: u64,
    /// The server process's CPU time over the measured run divided by the
    /// run's requests (all groups); `None` where /proc cannot tell.
    pub cpu_us_per_request: Option<f64>,
    /// Measured runs this row stands for (`compare --rounds`): each figure
    /// is their median, counts are summed.
    pub rounds: usize,
    /// The lowest and highest ops/s among those runs.
    pub ops_min: f64,
    pub ops_max: f64,
    /// The round a single run belongs to (from 1); `None` in a folded row.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub round: Option<usize>,
    /// ops/s over the baseline server's in the same round and workload;
    /// over several rounds, the median of those per-round ratios within
    /// their range. It can differ from the ratio of the ops/s medians,
    /// which may come from different rounds. `None` without a measured
    /// baseline run to compare with.
    pub vs_baseline: Option<Ratio>,
    /// The machine's noise during a single run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub noise: Option<Noise>,
    /// Why the noise disturbed it: a single run's reason; in a folded
    /// row, set when most of its rounds were disturbed (the row then
    /// stands on all of them, and calls nothing).
    pub disturbed: Option<String>,
    /// Runs taken again because noise disturbed them.
    pub retries: u32,
    /// Rounds whose run stayed disturbed.
    pub disturbed_rounds: usize,
    /// Where the time went inside the server (kvserve); in a folded row,
    /// that of the round with the median ops/s.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub anatomy: Option<Anatomy>,
}

/// A verdict for one pair of servers on one workload.
#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct PairVerdict {
    pub workload: String,
    pub server: String,
    pub other: String,
    /// `server`'s ops/s over `other`'s, round by round.
    pub ratio: Option<Ratio>,
    pub call: Call,
    /// Rounds both were measured undisturbed in.
    pub rounds: usize,
}

/// Folds the runs of several rounds into one row per workload and server,
/// in first-seen order: the median of each figure, so that one disturbed
/// round moves nothing, with counts summed and the range of ops/s kept.
/// Runs the noise disturbed are left out when most rounds were not.
/// Per-thread deltas belong to single runs and are left out.
pub fn summarize(runs: &[CompareRow], baseline: &str) -> Vec<CompareRow> {
    keys(runs)
        .into_iter()
        .map(|(workload, server)| {
            let of: Vec<&CompareRow> = runs
                .iter()
                .filter(|r| r.workload == workload && r.server == server)
                .collect();
            let clean: Vec<&CompareRow> = of
                .iter()
                .copied()
                .filter(|r| r.disturbed.is_none())
                .collect();
            let counts = 2 * clean.len() > of.len();
            let used = if counts { &clean } else { &of };
            let ratios: Vec<f64> = used
                .iter()
                .filter_map(|r| same_round_ratio(runs, r, baseline))
                .collect();
            let mut row = if let [only] = used.as_slice() {
                (*only).clone()
            } else {
                fold(workload, server, used)
            };
            row.vs_baseline = Ratio::of_rounds(&ratios);
            row.retries = of.iter().map(|r| r.retries).sum();
            row.disturbed_rounds = of.len() - clean.len();
            row.disturbed = (!counts).then(|| {
                format!(
                    "{} of {} rounds disturbed ({})",
                    of.len() - clean.len(),
                    of.len(),
                    of.iter()
                        .find_map(|r| r.disturbed.as_deref())
                        .unwrap_or("?")
                )
            });
            row
        })
        .collect()
}

impl CompareRow {
    /// The workload without the security's suffix: what a TLS row's
    /// plaintext counterpart is called.
    pub fn base_workload(&self) -> &str {
        self.workload
            .strip_suffix(self.security.suffix())
            .unwrap_or(&self.workload)
    }
}

/// The (workload, server) pairs of `runs` in first-seen order.
fn keys(runs: &[CompareRow]) -> Vec<(&str, &str)> {
    let mut keys: Vec<(&str, &str)> = Vec::new();
    for r in runs {
        let key = (r.workload.as_str(), r.server.as_str());
        if !keys.contains(&key) {
            keys.push(key);
        }
    }
    keys
}

/// `run`'s ops/s over `other`'s in the same round and workload, when
/// that run was measured and undisturbed.
fn same_round_ratio(runs: &[CompareRow], run: &CompareRow, other: &str) -> Option<f64> {
    runs.iter()
        .find(|b| b.server == other && b.workload == run.workload && b.round == run.round)
        .filter(|b| b.ops_per_sec > 0.0 && b.disturbed.is_none())
        .map(|b| run.ops_per_sec / b.ops_per_sec)
}

fn fold(workload: &str, server: &str, of: &[&CompareRow]) -> CompareRow {
    let med = |f: fn(&CompareRow) -> f64| {
        let v: Vec<f64> = of.iter().map(|r| f(r)).collect();
        Spread::of(&v).map_or(0.0, |s| s.median)
    };
    let med_some = |f: fn(&CompareRow) -> Option<f64>| {
        let v: Vec<f64> = of.iter().filter_map(|r| f(r)).collect();
        Spread::of(&v).map(|s| s.median)
    };
    CompareRow {
        server: server.to_string(),
        workload: workload.to_string(),
        security: of[0].security,
        ops_per_sec: med(|r| r.ops_per_sec),
        p50_us: med(|r| r.p50_us),
        p99_us: med(|r| r.p99_us),
        p999_us: med(|r| r.p999_us),
        requests: of.iter().map(|r| r.requests).sum(),
        misses: of.iter().map(|r| r.misses).sum(),
        errors: of.iter().map(|r| r.errors).sum(),
        first_error: of.iter().find_map(|r| r.first_error.clone()),
        imbalance: med_some(|r| r.imbalance),
        threads: None,
        roles: median_run(of).and_then(|r| r.roles.clone()),
        tls_handshakes: of.iter().map(|r| r.tls_handshakes).sum(),
        tls_resumed: of.iter().map(|r| r.tls_resumed).sum(),
        cpu_us_per_request: med_some(|r| r.cpu_us_per_request),
        rounds: of.iter().map(|r| r.rounds).sum(),
        ops_min: of.iter().map(|r| r.ops_min).fold(f64::INFINITY, f64::min),
        ops_max: of.iter().map(|r| r.ops_max).fold(0.0, f64::max),
        round: None,
        vs_baseline: None,
        noise: None,
        disturbed: None,
        retries: 0,
        disturbed_rounds: 0,
        anatomy: median_run(of).and_then(|r| r.anatomy.clone()),
    }
}

/// The run whose ops/s is nearest the median of `of`.
fn median_run<'a>(of: &[&'a CompareRow]) -> Option<&'a CompareRow> {
    let ops: Vec<f64> = of.iter().map(|r| r.ops_per_sec).collect();
    let median = Spread::of(&ops)?.median;
    of.iter().copied().min_by(|a, b| {
        (a.ops_per_sec - median)
            .abs()
            .total_cmp(&(b.ops_per_sec - median).abs())
    })
}

/// A verdict for every pair of servers on every workload, from the
/// rounds both were measured undisturbed in: the range of the per-round
/// ratios, called only when it lies on one side of 1.0; cannot tell when
/// most rounds were disturbed, or with one round.
pub fn pairwise(runs: &[CompareRow]) -> Vec<PairVerdict> {
    let mut out = Vec::new();
    let mut workloads: Vec<&str> = Vec::new();
    for (w, _) in keys(runs) {
        if !workloads.contains(&w) {
            workloads.push(w);
        }
    }
    for w in workloads {
        let servers: Vec<&str> = keys(runs)
            .into_iter()
            .filter(|(x, _)| *x == w)
            .map(|(_, s)| s)
            .collect();
        for (i, a) in servers.iter().enumerate() {
            for b in &servers[i + 1..] {
                let both: Vec<&CompareRow> = runs
                    .iter()
                    .filter(|r| r.workload == w && r.server == *a)
                    .filter(|r| {
                        runs.iter()
                            .any(|o| o.server == *b && o.workload == w && o.round == r.round)
                    })
                    .collect();
                let ratios: Vec<f64> = both
                    .iter()
                    .filter(|r| r.disturbed.is_none())
                    .filter_map(|r| same_round_ratio(runs, r, b))
                    .collect();
                let ratio = Ratio::of_rounds(&ratios);
                let call = match ratio {
                    Some(r) if 2 * ratios.len() > both.len() => r.call(ratios.len()),
                    _ => Call::CannotTell,
                };
                out.push(PairVerdict {
                    workload: w.to_string(),
                    server: a.to_string(),
                    other: b.to_string(),
                    ratio,
                    call,
                    rounds: ratios.len(),
                });
            }
        }
    }
    out
}

/// The side-by-side table of `kvbench compare`, grouped by workload, with
/// throughput also shown relative to `baseline` (`vs <baseline>`).
pub fn render_compare(rows: &[CompareRow], baseline: &str) -> String {
    let ranges = rows.iter().any(|r| r.rounds > 1);
    let vs = format!("vs {baseline}");
    let mut header = vec![
        "workload",
        "server",
        "ops/s",
        vs.as_str(),
        "p50 µs",
        "p99 µs",
        "p99.9 µs",
        "errors",
        "imbalance",
        "cpu µs/req",
    ];
    if ranges {
        header.push("ops/s range");
    }
    header.push("disturbed");
    let mut table = Table::new(&header);
    let mut workloads: Vec<&str> = Vec::new();
    for r in rows {
        if !workloads.contains(&r.workload.as_str()) {
            workloads.push(&r.workload);
        }
    }
    for (i, w) in workloads.iter().enumerate() {
        if i > 0 {
            table.gap();
        }
        for r in rows.iter().filter(|r| r.workload == *w) {
            let vs = match r.vs_baseline {
                None => "-".into(),
                Some(v) if r.server == baseline => format!("{:.2}", v.estimate),
                Some(v) if v.low == v.high => format!("{:.2}", v.estimate),
                Some(v) => format!("{:.2} ({:.2}-{:.2})", v.estimate, v.low, v.high),
            };
            let mut cells = vec![
                r.workload.clone(),
                r.server.clone(),
                format!("{:.0}", r.ops_per_sec),
                vs,
                us(r.p50_us),
                us(r.p99_us),
                us(r.p999_us),
                r.errors.to_string(),
                r.imbalance.map_or("-".into(), |v| format!("{v:.2}")),
                r.cpu_us_per_request
                    .map_or("-".into(), |v| format!("{v:.2}")),
            ];
            if ranges {
                cells.push(format!("{:.0}-{:.0}", r.ops_min, r.ops_max));
            }
            let mut noise = format!("{}/{}", r.disturbed_rounds, r.rounds.max(1));
            if r.retries > 0 {
                noise += &format!(" +{}", r.retries);
            }
            cells.push(noise);
            table.row(cells);
        }
    }
    let mut out = table.render(2);
    for r in rows.iter().filter(|r| r.errors > 0) {
        let _ = writeln!(
            out,
            "{} / {}: {} errors; first: {}",
            r.server,
            r.workload,
            r.errors,
            r.first_error.as_deref().unwrap_or("?")
        );
    }
    for r in rows {
        if let Some(why) = &r.disturbed {
            let _ = writeln!(
                out,
                "{} / {}: {why}: its figures stand on all rounds and call nothing",
                r.server, r.workload
            );
        }
    }
    out
}

/// The verdicts, one line per pair.
pub fn render_verdicts(verdicts: &[PairVerdict]) -> String {
    let mut table = Table::new(&[
        "workload",
        "server",
        "vs",
        "verdict",
        "ops/s ratio",
        "rounds",
    ]);
    let mut last = None;
    for v in verdicts {
        if last.is_some() && last != Some(v.workload.as_str()) {
            table.gap();
        }
        last = Some(&v.workload);
        table.row(vec![
            v.workload.clone(),
            v.server.clone(),
            v.other.clone(),
            v.call.to_string(),
            v.ratio.map_or("-".into(), |r| r.describe()),
            v.rounds.to_string(),
        ]);
    }
    table.render(3)
}

#[cfg(test)]
pub(crate) mod tests;
