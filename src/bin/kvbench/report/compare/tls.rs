//! What TLS costs each server: every workload run over TLS beside the same
//! workload in plaintext on the same server, compared round by round
//! (throughput, p99, CPU per request), and which of the server's threads
//! pay for it (busy cores and TLS time by role, from `stats threads`).
//! Churn's rows show the same for new connections, and, in plaintext, how
//! busy the thread that accepts them is.

use std::fmt::Write as _;

use serde::Serialize;

use super::CompareRow;
use crate::load::workload::Security;
use crate::measure::threads::RoleLoad;
use crate::report::verdict::Ratio;
use crate::report::{us, Table};

/// One server's TLS run beside its plaintext run of the same workload.
#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct TlsCost {
    /// The workload without the `+tls` suffix.
    pub workload: String,
    pub server: String,
    pub security: Security,
    pub plain_ops_per_sec: f64,
    pub tls_ops_per_sec: f64,
    /// TLS ops/s over plaintext ops/s in the same round: the median of
    /// the rounds both ran undisturbed, within their range.
    pub ops_ratio: Option<Ratio>,
    pub plain_p99_us: f64,
    pub tls_p99_us: f64,
    pub plain_cpu_us_per_request: Option<f64>,
    pub tls_cpu_us_per_request: Option<f64>,
    /// TLS CPU per request over plaintext's, round by round.
    pub cpu_ratio: Option<Ratio>,
    /// The share of the client's TLS handshakes that resumed a session.
    pub resumed: Option<f64>,
}

/// Every TLS row of `rows` (folded) that has a plaintext counterpart, with
/// its ratios from `runs` (every measured run).
pub fn tls_costs(rows: &[CompareRow], runs: &[CompareRow]) -> Vec<TlsCost> {
    rows.iter()
        .filter(|t| t.security.is_tls())
        .filter_map(|t| {
            let p = plain_of(rows, t)?;
            let ratio = |f: fn(&CompareRow) -> Option<f64>| {
                let ratios: Vec<f64> = runs
                    .iter()
                    .filter(|r| r.workload == t.workload && r.server == t.server)
                    .filter(|r| r.disturbed.is_none())
                    .filter_map(|r| {
                        let plain = runs.iter().find(|q| {
                            q.workload == p.workload
                                && q.server == p.server
                                && q.round == r.round
                                && q.disturbed.is_none()
                        })?;
                        let (a, b) = (f(r)?, f(plain)?);
                        (b > 0.0).then(|| a / b)
                    })
                    .collect();
                Ratio::of_rounds(&ratios)
            };
            Some(TlsCost {
                workload: t.base_workload().to_string(),
                server: t.server.clone(),
                security: t.security,
                plain_ops_per_sec: p.ops_per_sec,
                tls_ops_per_sec: t.ops_per_sec,
                ops_ratio: ratio(|r| Some(r.ops_per_sec)),
                plain_p99_us: p.p99_us,
                tls_p99_us: t.p99_us,
                plain_cpu_us_per_request: p.cpu_us_per_request,
                tls_cpu_us_per_request: t.cpu_us_per_request,
                cpu_ratio: ratio(|r| r.cpu_us_per_request),
                resumed: (t.tls_handshakes > 0)
                    .then(|| t.tls_resumed as f64 / t.tls_handshakes as f64),
            })
        })
        .collect()
}

/// The plaintext row of `tls`'s workload and server.
fn plain_of<'a>(rows: &'a [CompareRow], tls: &CompareRow) -> Option<&'a CompareRow> {
    rows.iter().find(|p| {
        p.security == Security::Plain
            && p.server == tls.server
            && p.base_workload() == tls.base_workload()
    })
}

/// The cost table, then the table of who pays; nothing without TLS rows.
pub fn render(costs: &[TlsCost], rows: &[CompareRow]) -> String {
    if costs.is_empty() && !rows.iter().any(is_churn) {
        return String::new();
    }
    let mut out = String::new();
    if !costs.is_empty() {
        out += "TLS cost: each server's run over TLS beside the same workload in plaintext; tls/plain = the same round's ratio, median (range) over the rounds both ran undisturbed; churn's ops/s are connections/s, its p99 from connect to reply; resumed = the client's handshakes that resumed a session\n";
        let mut table = Table::new(&[
            "workload",
            "server",
            "over",
            "ops/s plain",
            "ops/s tls",
            "tls/plain",
            "p99 µs plain",
            "p99 µs tls",
            "cpu µs/req plain",
            "cpu µs/req tls",
            "tls/plain",
            "resumed",
        ]);
        let mut last: Option<&str> = None;
        for c in costs {
            if last.is_some_and(|w| w != c.workload) {
                table.gap();
            }
            last = Some(&c.workload);
            let cpu = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.2}"));
            table.row(vec![
                c.workload.clone(),
                c.server.clone(),
                c.security.suffix().trim_start_matches('+').to_string(),
                format!("{:.0}", c.plain_ops_per_sec),
                format!("{:.0}", c.tls_ops_per_sec),
                ratio(c.ops_ratio),
                us(c.plain_p99_us),
                us(c.tls_p99_us),
                cpu(c.plain_cpu_us_per_request),
                cpu(c.tls_cpu_us_per_request),
                ratio(c.cpu_ratio),
                c.resumed
                    .map_or("-".into(), |s| format!("{:.0}%", 100.0 * s)),
            ]);
        }
        out += &table.render(3);
    }
    let payers = who_pays(costs, rows);
    if !payers.is_empty() {
        if !out.is_empty() {
            out.push('\n');
        }
        out += &payers;
    }
    out
}

/// `0.62 (0.58-0.70)`, or `-`.
fn ratio(r: Option<Ratio>) -> String {
    match r {
        None => "-".into(),
        Some(r) if r.low == r.high => format!("{:.2}", r.estimate),
        Some(r) => format!("{:.2} ({:.2}-{:.2})", r.estimate, r.low, r.high),
    }
}

fn is_churn(r: &CompareRow) -> bool {
    r.base_workload() == "churn"
}

/// Per server that reports its threads, the rows of every workload with
/// a TLS cost and of churn: each role's busy cores and TLS time.
fn who_pays(costs: &[TlsCost], rows: &[CompareRow]) -> String {
    let shown: Vec<&CompareRow> = rows
        .iter()
        .filter(|r| r.roles.is_some())
        .filter(|r| {
            is_churn(r)
                || costs
                    .iter()
                    .any(|c| c.server == r.server && c.workload == r.base_workload())
        })
        .collect();
    if shown.is_empty() {
        return String::new();
    }
    let mut table = Table::new(&[
        "server",
        "workload",
        "busy cores by role",
        "tls µs/req by role",
        "tls handshakes by role",
    ]);
    let mut servers: Vec<&str> = Vec::new();
    for r in &shown {
        if !servers.contains(&r.server.as_str()) {
            servers.push(&r.server);
        }
    }
    for (i, server) in servers.iter().enumerate() {
        if i > 0 {
            table.gap();
        }
        for r in shown.iter().filter(|r| r.server == *server) {
            let roles = r.roles.as_deref().unwrap_or_default();
            let each = |f: &dyn Fn(&RoleLoad) -> Option<String>| {
                let parts: Vec<String> = roles
                    .iter()
                    .filter_map(|l| Some(format!("{} {}", l.role, f(l)?)))
                    .collect();
                if parts.is_empty() {
                    "-".to_string()
                } else {
                    parts.join(", ")
                }
            };
            table.row(vec![
                r.server.clone(),
                r.workload.clone(),
                each(&|l| Some(format!("{:.2}", l.busy_cores))),
                each(&|l| l.tls_us_per_request.map(|v| format!("{v:.1}"))),
                each(&|l| l.tls_handshakes.map(|n| n.to_string())),
            ]);
        }
    }
    let mut out = "who pays: cores each role's threads kept busy over the run (stats threads busy_us / wall time), and of their work the TLS part (tls_us per request, and handshakes) where the server reports it\n".to_string();
    let _ = write!(out, "{}", table.render(2));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::compare::tests::run;

    fn secured(mut r: CompareRow, workload: &str, security: Security) -> CompareRow {
        r.workload = format!("{workload}{}", security.suffix());
        r.security = security;
        r
    }

    #[test]
    fn tls_runs_are_set_beside_plaintext_round_by_round() {
        let mut runs = Vec::new();
        for (round, (plain, tls)) in [(100.0, 60.0), (200.0, 140.0), (150.0, 90.0)]
            .into_iter()
            .enumerate()
        {
            let round = round + 1;
            runs.push(secured(
                run("a", plain, 10.0, Some(5.0), round),
                "uniform",
                Security::Plain,
            ));
            let mut t = secured(
                run("a", tls, 20.0, Some(8.0), round),
                "uniform",
                Security::Tls,
            );
            t.tls_handshakes = 50;
            runs.push(t);
        }
        // A server with no plaintext run: no cost row.
        runs.push(secured(
            run("b", 1.0, 1.0, None, 1),
            "uniform",
            Security::Tls,
        ));
        let rows = super::super::summarize(&runs, "a");
        let costs = tls_costs(&rows, &runs);
        assert_eq!(costs.len(), 1);
        let c = &costs[0];
        assert_eq!((c.workload.as_str(), c.server.as_str()), ("uniform", "a"));
        assert_eq!((c.plain_ops_per_sec, c.tls_ops_per_sec), (150.0, 90.0));
        // 0.6, 0.7, 0.6: the median of the same-round ratios.
        let ops = c.ops_ratio.unwrap();
        assert_eq!((ops.estimate, ops.low, ops.high), (0.6, 0.6, 0.7));
        assert_eq!(c.cpu_ratio.unwrap().estimate, 1.6);
        assert_eq!(c.resumed, Some(0.0));
        let text = render(&costs, &rows);
        assert!(
            text.contains("0.60 (0.60-0.70)") && text.contains("1.60"),
            "{text}"
        );
        assert!(!text.contains("who pays"), "no roles: {text}");
    }

    #[test]
    fn who_pays_shows_churn_and_tls_workloads_by_role() {
        let role = |role: &str, busy: f64, tls: Option<f64>| RoleLoad {
            role: role.into(),
            threads: 1,
            busy_cores: busy,
            tls_us_per_request: tls,
            tls_handshakes: tls.map(|_| 7),
        };
        let mut churn = secured(
            run("multi-reader", 9000.0, 300.0, None, 1),
            "churn",
            Security::Plain,
        );
        churn.roles = Some(vec![
            role("acceptor", 0.93, None),
            role("reader", 0.41, None),
        ]);
        let mut other = run("multi-reader", 1.0, 1.0, None, 1);
        other.roles = churn.roles.clone();
        let rows = [churn, other];
        let text = render(&tls_costs(&rows, &rows), &rows);
        assert!(text.contains("who pays"), "{text}");
        assert!(text.contains("acceptor 0.93, reader 0.41"), "{text}");
        assert_eq!(
            text.matches("multi-reader").count(),
            1,
            "uniform has no TLS run: {text}"
        );
        let mut tls = secured(
            run("multi-reader", 5000.0, 600.0, None, 1),
            "churn",
            Security::Tls,
        );
        tls.roles = Some(vec![
            role("acceptor", 0.2, Some(0.0)),
            role("reader", 1.1, Some(180.0)),
        ]);
        let rows = [rows[0].clone(), tls];
        let text = render(&tls_costs(&rows, &rows), &rows);
        assert!(
            text.contains("reader 180.0") && text.contains("acceptor 7"),
            "{text}"
        );
    }
}
