//! One measured run of compare: a workload against a running server, with
//! its threads' counters, its CPU time and the noise beside it, and the
//! table rows it makes.

use std::time::{Duration, Instant};

use anyhow::Result;

use super::RUN_TIMEOUT;
use crate::load::options::Options;
use crate::load::workload::{self, Security, WorkloadName};
use crate::load::{driver, stats};
use crate::measure::anatomy::{self, Anatomy};
use crate::measure::noise::{Limits, Noise, NoiseMeter};
use crate::measure::server_cpu::process_cpu_time;
use crate::measure::threads::{by_role, imbalance, stats_threads, thread_deltas, ThreadStat};
use crate::net::Endpoint;
use crate::report::{self, CompareRow};
use crate::servers::ServerProc;

/// One measured run of a workload against a running server, with its
/// threads' counters, its CPU time and the noise beside it.
pub struct Measured {
    pub result: stats::RunResult,
    pub deltas: Option<Vec<ThreadStat>>,
    /// Wall time between the two readings of `stats threads`.
    pub window: Duration,
    pub stats_error: Option<String>,
    pub cpu_us_per_request: Option<f64>,
    pub noise: Noise,
    pub disturbed: Option<String>,
    /// The server's stage times over the run (kvserve).
    pub anatomy: Option<Anatomy>,
}

/// Measures `plan` once against `server`, reading its `stats` over
/// `control` (a connection as the server wants it: TLS, credentials).
pub fn measure_once(
    plan: &workload::Plan,
    opts: &Options,
    server: &ServerProc,
    control: &Endpoint,
    is_kvserve: bool,
    meter: &NoiseMeter,
    bar: &indicatif::ProgressBar,
) -> Result<Measured> {
    let began = Instant::now();
    let before = is_kvserve
        .then(|| stats_threads(control, RUN_TIMEOUT))
        .transpose();
    if is_kvserve {
        anatomy::reset(control, RUN_TIMEOUT)?;
    }
    let cpu_before = process_cpu_time(server.pid());
    let window = meter.begin(Some(vec![server.pid()]));
    let result = driver::measure(plan, opts, bar)?;
    let noise = meter.end(window, None);
    let cpu_after = process_cpu_time(server.pid());
    let after = is_kvserve
        .then(|| stats_threads(control, RUN_TIMEOUT))
        .transpose();
    let window = began.elapsed();
    let anatomy = if is_kvserve {
        anatomy::read(control, RUN_TIMEOUT)?
    } else {
        None
    };
    let (deltas, stats_error) = match (before, after) {
        (Ok(Some(b)), Ok(Some(a))) => (Some(thread_deltas(&b, &a)), None),
        (Err(e), _) | (_, Err(e)) => (None, Some(format!("{e:#}"))),
        _ => (None, None),
    };
    let requests: u64 = result.groups.iter().map(|g| g.requests).sum();
    let cpu_us_per_request = match (cpu_before, cpu_after) {
        (Ok(b), Ok(a)) if requests > 0 => {
            Some(a.saturating_sub(b).as_secs_f64() * 1e6 / requests as f64)
        }
        _ => None,
    };
    Ok(Measured {
        result,
        deltas,
        window,
        stats_error,
        cpu_us_per_request,
        disturbed: noise.disturbed(&Limits::for_throughput()),
        noise,
        anatomy,
    })
}

/// Where a run's rows come from: the server, the workload and how it was
/// secured, the round, and how many times it was measured.
pub struct RunOf<'a> {
    pub server: &'a str,
    pub workload: WorkloadName,
    pub security: Security,
    pub round: usize,
    pub attempts: u32,
}

impl RunOf<'_> {
    /// A row's workload name: `skewed/light`, `uniform+tls`.
    pub fn label(&self, group: Option<&str>) -> String {
        let mut label = self.workload.name().to_string();
        if let Some(g) = group {
            label += "/";
            label += g;
        }
        label + self.security.suffix()
    }
}

/// The rows of one measured run: one per group of the plan.
pub fn rows(of: &RunOf, measured: &Measured, run: &report::RunReport) -> Vec<CompareRow> {
    let requests = run.total.requests;
    let roles = measured
        .deltas
        .as_deref()
        .map(|d| by_role(d, measured.window.as_secs_f64(), requests));
    let several = run.groups.len() > 1;
    run.groups
        .iter()
        .map(|g| CompareRow {
            server: of.server.to_string(),
            workload: of.label(several.then_some(g.name.as_str())),
            security: of.security,
            ops_per_sec: g.ops_per_sec,
            p50_us: g.latency_us.p50,
            p99_us: g.latency_us.p99,
            p999_us: g.latency_us.p999,
            requests: g.requests,
            misses: g.misses,
            errors: g.errors,
            first_error: g.first_error.clone(),
            imbalance: measured.deltas.as_deref().and_then(imbalance),
            threads: measured.deltas.clone(),
            roles: roles.clone(),
            tls_handshakes: g.tls_handshakes,
            tls_resumed: g.tls_resumed,
            cpu_us_per_request: measured.cpu_us_per_request,
            rounds: 1,
            ops_min: g.ops_per_sec,
            ops_max: g.ops_per_sec,
            round: Some(of.round),
            vs_baseline: None,
            noise: Some(measured.noise),
            disturbed: measured.disturbed.clone(),
            retries: of.attempts - 1,
            disturbed_rounds: usize::from(measured.disturbed.is_some()),
            anatomy: measured.anatomy.clone(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_carry_group_and_security() {
        let of = |workload, security| RunOf {
            server: "basic",
            workload,
            security,
            round: 1,
            attempts: 1,
        };
        assert_eq!(
            of(WorkloadName::Skewed, Security::Plain).label(Some("light")),
            "skewed/light"
        );
        assert_eq!(
            of(WorkloadName::Skewed, Security::Tls).label(Some("heavy")),
            "skewed/heavy+tls"
        );
        assert_eq!(
            of(WorkloadName::Churn, Security::TlsResume).label(None),
            "churn+tls+resume"
        );
    }
}
