//! Reporting: what a run reports (as a table or JSON), the comparison
//! table, and the charts.

pub mod anatomy;
pub mod bars;
mod chart;
pub mod compare;
pub mod latency;
mod progress;
pub mod stages_chart;
pub mod sweep;
pub mod verdict;

pub use compare::CompareRow;
pub use progress::progress_bar;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{self, Write as _};

use anyhow::{Context, Result};
use hdrhistogram::Histogram;
use serde::Serialize;

use crate::load::options::Options;
use crate::load::reply::ErrorKind;
use crate::load::stats::GroupStats;
use crate::load::stats::RunResult;
use crate::load::warmup::WarmupResult;
use crate::load::workload::{GroupSpec, Plan};
use crate::measure::noise::{short_time, Noise};

/// Writes `text` to stdout. A reader that has gone away (`kvbench run
/// --json | head -c 10`) is not an error: the rest of the output is not
/// wanted, and kvbench carries on quietly, as other command-line tools do.
pub fn print_stdout(text: &str) -> Result<()> {
    let mut out = io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        written => written.context("writing to stdout"),
    }
}

/// Latency percentiles in microseconds.
#[derive(Serialize, Clone, Copy, Debug, Default, PartialEq)]
pub struct Latency {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
    pub mean: f64,
}

impl Latency {
    pub fn of(h: &Histogram<u64>) -> Latency {
        if h.is_empty() {
            return Latency::default();
        }
        let us = |ns: u64| ns as f64 / 1000.0;
        Latency {
            p50: us(h.value_at_quantile(0.5)),
            p90: us(h.value_at_quantile(0.9)),
            p99: us(h.value_at_quantile(0.99)),
            p999: us(h.value_at_quantile(0.999)),
            max: us(h.max()),
            mean: h.mean() / 1000.0,
        }
    }
}

/// One group of connections (or all of them) in a run.
#[derive(Serialize, Clone, Debug)]
pub struct GroupReport {
    pub name: String,
    pub connections: usize,
    /// `closed` or `open`.
    pub mode: &'static str,
    pub pipeline: usize,
    pub multiget: u32,
    pub keys: u64,
    pub value_size: String,
    pub get_ratio: String,
    /// Open loop: the total rate asked for (requests/s).
    pub target_rate: Option<f64>,
    /// Replies received, errors included: what the server executed.
    pub requests: u64,
    pub gets: u64,
    /// Keys asked for by gets (what memcached's `cmd_get` counts).
    pub get_keys: u64,
    pub sets: u64,
    pub hits: u64,
    /// Keys asked for and not returned.
    pub misses: u64,
    pub errors: u64,
    pub error_kinds: BTreeMap<&'static str, u64>,
    pub connect_failures: u64,
    /// TLS handshakes made (load connections; churn: every connection),
    /// and how many resumed an earlier session.
    pub tls_handshakes: u64,
    pub tls_resumed: u64,
    /// Open loop: requests due before the end but never sent (every slot
    /// of the pipeline was still waiting for a reply, or the connection
    /// was lost).
    pub unsent: u64,
    pub first_error: Option<String>,
    /// Replies per second, over the run's duration or until the group's
    /// last reply if that came later.
    pub ops_per_sec: f64,
    pub latency_us: Latency,
    /// Open loop: how late the client sent requests after their due time
    /// (part of `latency_us`, which counts from the due time).
    pub send_lag_us: Option<Latency>,
}

#[derive(Serialize, Clone, Debug)]
pub struct WarmupReport {
    pub enabled: bool,
    pub sets: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    pub elapsed_s: f64,
}

/// Everything `kvbench run --json` prints.
#[derive(Serialize, Clone, Debug)]
pub struct RunReport {
    pub server: String,
    pub workload: &'static str,
    pub duration_s: f64,
    pub elapsed_s: f64,
    pub client_threads: usize,
    pub connections: usize,
    /// Whether every connection spoke TLS.
    pub tls: bool,
    /// TCP connections opened to the server in all: the check's, the
    /// warmup's and the load's (churn: one per request), as the server's
    /// `total_connections` counts them.
    pub tcp_connections: u64,
    pub warmup: WarmupReport,
    pub groups: Vec<GroupReport>,
    pub total: GroupReport,
    /// The machine's noise during the run (`kvbench run`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub noise: Option<Noise>,
}

pub fn run_report(
    plan: &Plan,
    opts: &Options,
    warm: &WarmupResult,
    result: &RunResult,
) -> RunReport {
    let elapsed = result.elapsed.as_secs_f64();
    // Each group's rate over its own time: the run, or until its last
    // reply if that came later (not stretched by another group's stall).
    let span = |s: &GroupStats| s.span.max(opts.duration).as_secs_f64();
    let groups: Vec<GroupReport> = plan
        .groups
        .iter()
        .zip(&result.groups)
        .map(|(spec, stats)| group_report(Some(spec), stats, span(stats)))
        .collect();
    let mut all = GroupStats::new();
    for g in &result.groups {
        all.merge(g);
    }
    let mut total = group_report(None, &all, span(&all));
    total.connections = plan.connections();
    RunReport {
        server: opts.server.to_string(),
        workload: plan.workload.name(),
        duration_s: opts.duration.as_secs_f64(),
        elapsed_s: elapsed,
        client_threads: result.client_threads,
        connections: plan.connections(),
        tls: opts.server.is_tls(),
        tcp_connections: opts.server.opened(),
        warmup: WarmupReport {
            enabled: plan.warmup,
            sets: warm.sets,
            errors: warm.errors,
            first_error: warm.first_error.clone(),
            elapsed_s: warm.elapsed.as_secs_f64(),
        },
        groups,
        total,
        noise: None,
    }
}

/// `spec` is `None` for the total over groups.
fn group_report(spec: Option<&GroupSpec>, s: &GroupStats, elapsed_s: f64) -> GroupReport {
    let error_kinds = ErrorKind::ALL
        .iter()
        .map(|k| (k.name(), s.errors[k.index()]))
        .collect();
    GroupReport {
        name: spec.map_or("total".into(), |g| g.name.clone()),
        connections: spec.map_or(0, |g| g.connections),
        mode: match spec.map(|g| g.rate) {
            Some(Some(_)) => "open",
            Some(None) => "closed",
            None => "mixed",
        },
        pipeline: spec.map_or(0, |g| g.pipeline),
        multiget: spec.map_or(0, |g| g.multiget),
        keys: spec.map_or(0, |g| g.keys),
        value_size: spec.map_or(String::new(), |g| g.value_size.to_string()),
        get_ratio: spec.map_or(String::new(), |g| g.get_ratio.to_string()),
        target_rate: spec.and_then(|g| g.rate),
        requests: s.requests,
        gets: s.gets,
        get_keys: s.get_keys,
        sets: s.sets,
        hits: s.hits,
        misses: s.misses,
        errors: s.errors(),
        error_kinds,
        connect_failures: s.connect_failures,
        tls_handshakes: s.tls_handshakes,
        tls_resumed: s.tls_resumed,
        unsent: s.unsent,
        first_error: s.first_error.clone(),
        ops_per_sec: if elapsed_s > 0.0 {
            s.requests as f64 / elapsed_s
        } else {
            0.0
        },
        latency_us: Latency::of(&s.hist),
        send_lag_us: (!s.send_lag.is_empty()).then(|| Latency::of(&s.send_lag)),
    }
}

/// A time in words, as the charts label it: `250 µs`, `1 ms`, `1.5 ms`.
pub fn chart_time(us: f64) -> String {
    let unit = if us >= 1000.0 {
        chart::TimeUnit::Millis
    } else {
        chart::TimeUnit::Micros
    };
    unit.format(us)
}

/// Microseconds for a table: one decimal below 1000.
pub fn us(v: f64) -> String {
    if v < 1000.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.0}")
    }
}

/// A plain text table: the first column left-aligned, the rest right-aligned.
pub struct Table {
    header: Vec<String>,
    rows: Vec<Option<Vec<String>>>,
}

impl Table {
    pub fn new(header: &[&str]) -> Table {
        Table {
            header: header.iter().map(|s| s.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(Some(cells));
    }

    /// A blank line between blocks of rows.
    pub fn gap(&mut self) {
        self.rows.push(None);
    }

    /// Columns left-aligned besides the first (the text columns).
    pub fn render(&self, left: usize) -> String {
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for row in self.rows.iter().flatten() {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        let line = |out: &mut String, cells: &[String]| {
            let mut text = String::new();
            for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
                if i > 0 {
                    text.push_str("  ");
                }
                if i < left {
                    let _ = write!(text, "{cell:<w$}");
                } else {
                    let _ = write!(text, "{cell:>w$}");
                }
            }
            out.push_str(text.trim_end());
            out.push('\n');
        };
        line(&mut out, &self.header);
        for row in &self.rows {
            match row {
                Some(cells) => line(&mut out, cells),
                None => out.push('\n'),
            }
        }
        out
    }
}

/// Error counts by kind, e.g. `12 server_error, 1 connection`.
fn error_breakdown(kinds: &BTreeMap<&'static str, u64>) -> String {
    kinds
        .iter()
        .filter(|(_, &n)| n > 0)
        .map(|(k, n)| format!("{n} {k}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The human-readable result of `kvbench run`.
pub fn render_run(r: &RunReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "kvbench: workload {} against {}{}: {:.1} s (elapsed {:.2} s), {} {} on {} client threads; {} TCP connections in all",
        r.workload,
        r.server,
        if r.tls { " over TLS" } else { "" },
        r.duration_s,
        r.elapsed_s,
        r.connections,
        if r.workload == "churn" { "clients, each a new connection per request," } else { "connections" },
        r.client_threads,
        r.tcp_connections
    );
    if r.warmup.enabled {
        let _ = writeln!(
            out,
            "warmup: {} sets in {:.2} s, {} errors",
            r.warmup.sets, r.warmup.elapsed_s, r.warmup.errors
        );
        if let Some(e) = &r.warmup.first_error {
            let _ = writeln!(out, "warmup: first error: {e}");
        }
    } else {
        let _ = writeln!(out, "warmup: off");
    }
    out.push('\n');
    let mut table = Table::new(&[
        "group",
        "mode",
        "conns",
        "requests",
        "ops/s",
        "p50 µs",
        "p90 µs",
        "p99 µs",
        "p99.9 µs",
        "max µs",
        "hits",
        "misses",
        "errors",
    ]);
    for g in &r.groups {
        let mode = match g.target_rate {
            Some(rate) => format!("open {rate}/s d={}", g.pipeline),
            None => format!("closed d={}", g.pipeline),
        };
        let l = &g.latency_us;
        table.row(vec![
            g.name.clone(),
            mode,
            g.connections.to_string(),
            g.requests.to_string(),
            format!("{:.0}", g.ops_per_sec),
            us(l.p50),
            us(l.p90),
            us(l.p99),
            us(l.p999),
            us(l.max),
            g.hits.to_string(),
            g.misses.to_string(),
            g.errors.to_string(),
        ]);
    }
    out.push_str(&table.render(2));
    for g in &r.groups {
        if g.errors > 0 {
            let _ = write!(
                out,
                "{}: {} errors ({})",
                g.name,
                g.errors,
                error_breakdown(&g.error_kinds)
            );
            if let Some(e) = &g.first_error {
                let _ = write!(out, "; first: {e}");
            }
            out.push('\n');
        }
        if g.connect_failures > 0 {
            let _ = writeln!(
                out,
                "{}: {} of {} connections failed to connect",
                g.name, g.connect_failures, g.connections
            );
        }
        if g.unsent > 0 {
            let _ = writeln!(
                out,
                "{}: {} requests were due but never sent: all {} pipeline slots were waiting (the server fell behind the rate), or the connection was lost",
                g.name, g.unsent, g.pipeline
            );
        }
        if let Some(lag) = &g.send_lag_us {
            let _ = writeln!(
                out,
                "{}: open loop; requests left the client {} µs (p50), {} µs (p99) after their due time (included in the latency)",
                g.name,
                us(lag.p50),
                us(lag.p99)
            );
        }
        if g.tls_handshakes > 0 {
            let _ = writeln!(
                out,
                "{}: {} TLS handshakes, {} of them resuming a session",
                g.name, g.tls_handshakes, g.tls_resumed
            );
        }
        if g.multiget > 1 {
            let _ = writeln!(
                out,
                "{}: each get asks for {} keys; hits and misses count keys",
                g.name, g.multiget
            );
        }
    }
    if let Some(n) = &r.noise {
        let _ = writeln!(
            out,
            "machine: a top-priority thread on each CPU woke late by {} at p99, {} at most{}",
            short_time(n.hiccups.p99_us),
            short_time(n.hiccups.max_us),
            if n.hiccups.p99_us > 250.0 {
                ": the platform stalled during the run, and its latency is in these figures"
            } else {
                ""
            }
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns() {
        let mut t = Table::new(&["name", "n"]);
        t.row(vec!["a".into(), "1000".into()]);
        t.gap();
        t.row(vec!["longer".into(), "2".into()]);
        assert_eq!(t.render(1), "name       n\na       1000\n\nlonger     2\n");
    }

    #[test]
    fn latency_of_empty_and_filled() {
        let mut h = Histogram::<u64>::new_with_bounds(1, 1_000_000_000, 3).unwrap();
        assert_eq!(Latency::of(&h), Latency::default());
        for v in 1..=1000u64 {
            h.record(v * 1000).unwrap();
        }
        let l = Latency::of(&h);
        assert!((l.p50 - 500.0).abs() < 1.0, "{l:?}");
        assert!(l.p50 <= l.p90 && l.p90 <= l.p99 && l.p99 <= l.p999 && l.p999 <= l.max);
        assert!((l.max - 1000.0).abs() < 1.0);
    }

    #[test]
    fn microseconds() {
        assert_eq!(us(12.345), "12.3");
        assert_eq!(us(12345.6), "12346");
    }
}
