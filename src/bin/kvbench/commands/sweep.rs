//! `kvbench sweep`: p99 latency against offered load, the way the field
//! compares threading disciplines (ZygOS, Shinjuku; mutilate, lancet).
//!
//! It starts every pattern with the same service-time model (`--work`),
//! then, load by load from low to high, sends open-loop Poisson arrivals
//! spread over many connections to each server in turn (interleaved, so
//! drift on a shared machine hits them alike), with latency counted from
//! each request's intended send time. A server's sweep stops once it
//! saturates. Beside every measured point stands the queueing model of the
//! pattern's discipline, fed the same arrivals and the service time the
//! server actually spent; per server, the highest load whose p99 meets the
//! objective, measured and modelled.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use kvserve::engine::work::{ServiceDist, WorkModel};
use kvserve::server::batch::SLICE;
use serde::Serialize;

use super::compare::{launcher, RUN_TIMEOUT, SPIN_US};
use super::run::resolve;
use crate::cli::SweepArgs;
use crate::load::driver::{self, Options};
use crate::load::workload::{Arrivals, GroupSpec, Plan, Ratio, ValueSize, WorkloadName};
use crate::measure::cpus::Affinity;
use crate::measure::stats::{self, ServerInfo, WorkDone};
use crate::model::{self, Discipline, Scenario};
use crate::report::sweep::{self as sweep_report, SweepPoint, SweepSummary};
use crate::report::{self, latency, progress_bar};
use crate::servers::{self, ServerProc};

/// Loads in percent of capacity when `--loads` and `--rates` are not given.
const DEFAULT_LOADS: [f64; 10] = [10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0, 100.0];
/// Keys the sweep reads and writes (prefilled once per server).
const KEYS: u64 = 1000;
/// Requests one connection may have in flight; more that fall due wait in
/// the client (and count as unsent at the end): the server is saturated.
const MAX_IN_FLIGHT: usize = 64;
/// Below this share of the offered load achieved, a server is saturated.
const SATURATED_BELOW: f64 = 0.9;
/// The model uses the service time actually spent when it differs from
/// the asked one by more than this share.
const SERVICE_TOLERANCE: f64 = 0.05;

/// A server under the sweep.
struct Subject {
    label: String,
    addr: SocketAddr,
    /// The process, when the sweep started it (stopped at the end).
    process: Option<ServerProc>,
    info: ServerInfo,
    /// Work done up to the start of the sweep (after the prefill).
    work_at_start: WorkDone,
    /// Still below saturation: measured at the next load.
    active: bool,
}

impl Subject {
    /// The queueing discipline of the server's pattern, if it is kvserve.
    fn discipline(&self) -> Option<Discipline> {
        let k = self.info.threads.unwrap_or(1).max(1);
        match self.info.pattern.as_deref()? {
            "basic" => Some(Discipline::Single),
            "multi-reader" => Some(Discipline::Partitioned { servers: k }),
            "worker-pool" => Some(Discipline::Central { servers: k }),
            // Ideal stealing: no reader idles while a batch waits anywhere,
            // which is the central queue (with the same slice); real
            // stealing approaches it from above.
            "work-stealing" => Some(Discipline::Central { servers: k }),
            _ => None,
        }
    }

    /// The model's scenario at `rate`, with `service` as the service time.
    fn scenario(&self, args: &SweepArgs, rate: f64, service: Service) -> Option<Scenario> {
        let discipline = self.discipline()?;
        Some(Scenario {
            discipline,
            connections: args.connections as usize,
            rate,
            duration: Duration::from_secs_f64(args.duration),
            service: service.dist,
            overhead: service.overhead,
            batch_limit: self.info.reqs_per_event.unwrap_or(20),
            slice: matches!(discipline, Discipline::Central { .. }).then_some(SLICE),
            seed: args.seed,
        })
    }
}

/// The service time the model is fed: the asked distribution, plus the
/// mean time the server spent beyond it per request when that is more than
/// [`SERVICE_TOLERANCE`] of the asked mean (a sleep wakes late by a roughly
/// constant timer latency, so the excess is added, not scaled).
#[derive(Clone, Copy, Debug, PartialEq)]
struct Service {
    dist: ServiceDist,
    overhead: Duration,
}

impl Service {
    fn of(dist: ServiceDist, done: WorkDone) -> Service {
        let overhead = if done.requests > 0 && done.asked_us > 0 {
            let excess = done.spent_us as f64 / done.asked_us as f64 - 1.0;
            if excess.abs() > SERVICE_TOLERANCE {
                let per_request =
                    (done.spent_us as f64 - done.asked_us as f64) / done.requests as f64;
                Duration::from_secs_f64(per_request.max(0.0) * 1e-6)
            } else {
                Duration::ZERO
            }
        } else {
            Duration::ZERO
        };
        Service { dist, overhead }
    }

    fn mean(&self) -> Duration {
        self.dist.mean() + self.overhead
    }

    fn describe(&self) -> String {
        if self.overhead.is_zero() {
            self.dist.to_string()
        } else {
            format!("{} + {:.1}us", self.dist, self.overhead.as_secs_f64() * 1e6)
        }
    }
}

/// Everything `kvbench sweep --json` prints.
#[derive(Serialize)]
struct SweepReport<'a> {
    work: Option<String>,
    threads: usize,
    connections: u32,
    duration_s: f64,
    /// threads / mean asked service time, req/s (what loads are shares of).
    capacity: Option<f64>,
    slo_us: f64,
    seed: u64,
    client_cpus: Option<String>,
    server_cpus: Option<String>,
    client_threads: Option<usize>,
    spin_us: Option<u64>,
    points: &'a [SweepPoint],
    summary: &'a [SweepSummary],
    notes: &'a [String],
}

/// Runs `kvbench sweep`.
pub fn sweep(args: &SweepArgs) -> Result<()> {
    let args = &placed(args)?;
    let mut notes = Vec::new();
    let mut subjects = start_subjects(args)?;
    let result = measure_all(args, &mut subjects, &mut notes);
    for s in &mut subjects {
        if let Some(process) = s.process.as_mut() {
            let (status, killed) = process.stop();
            if killed || !status.success() {
                notes.push(format!("{}: exited with {status} after SIGTERM", s.label));
            }
        }
    }
    let (points, summary, setup) = result?;
    let placement = match (&args.servers.client_cpus, &args.servers.server_cpus) {
        (Some(c), Some(s)) => format!(", client on CPU {c}, servers on {s}"),
        (Some(c), None) => format!(", client on CPU {c}"),
        (None, Some(s)) => format!(", servers on CPU {s}"),
        (None, None) => String::new(),
    };
    let title = format!(
        "kvbench sweep: {}{}, {} connections, {:.1} s per point{placement}",
        setup.work.map_or_else(
            || "server's own work".to_string(),
            |w| format!("--work {w}")
        ),
        if setup.threads > 0 {
            format!(" --threads {}", setup.threads)
        } else {
            String::new()
        },
        args.connections,
        args.duration
    );
    if args.json {
        let out = SweepReport {
            work: setup.work.map(|w| w.to_string()),
            threads: setup.threads,
            connections: args.connections,
            duration_s: args.duration,
            capacity: setup.capacity,
            slo_us: setup.slo_us,
            seed: args.seed,
            client_cpus: args.servers.client_cpus.as_ref().map(ToString::to_string),
            server_cpus: args.servers.server_cpus.as_ref().map(ToString::to_string),
            client_threads: args.servers.client_threads,
            spin_us: args.spin_us,
            points: &points,
            summary: &summary,
            notes: &notes,
        };
        report::print_stdout(&(serde_json::to_string_pretty(&out)? + "\n"))?;
    } else {
        println!("{title}");
        if let Some(c) = setup.capacity {
            println!(
                "capacity {c:.0} req/s (threads / mean asked service time); SLO p99 <= {} µs; model: the pattern's queueing discipline, zero overhead, fed the same arrivals",
                report::us(setup.slo_us)
            );
        } else {
            println!("SLO p99 <= {} µs", report::us(setup.slo_us));
        }
        println!();
        print!(
            "{}",
            sweep_report::render(&points, &summary, setup.capacity)
        );
        for n in &notes {
            println!("note: {n}");
        }
    }
    if !args.no_svg && !points.is_empty() {
        latency::write_svg(&args.svg, &title, &points, setup.slo_us, setup.capacity)
            .with_context(|| format!("writing {}", args.svg.display()))?;
        eprintln!("kvbench: chart written to {}", args.svg.display());
    }
    Ok(())
}

/// The sweep's arguments with the CPU placement decided: unless told
/// otherwise (`--shared-cpus`, `--client-cpus`, `--server-cpus`, or a
/// `--server` it does not start), a sweep on two CPUs or more keeps its
/// one client thread on the first CPU and the servers on the rest, and
/// the client busy-polls before each send (it has a core to itself).
fn placed(args: &SweepArgs) -> Result<SweepArgs> {
    let mut args = args.clone();
    let chosen = args.shared_cpus
        || args.server.is_some()
        || args.servers.client_cpus.is_some()
        || args.servers.server_cpus.is_some();
    if !chosen {
        let mine = Affinity::current().context("reading kvbench's CPU affinity")?;
        if let Some((client, servers)) = mine.list().split_first() {
            args.servers.client_cpus = Some(client);
            args.servers.server_cpus = Some(servers);
            args.servers.client_threads.get_or_insert(1);
        }
    }
    let own_core = args.servers.client_cpus.is_some() && args.servers.server_cpus.is_some();
    args.spin_us
        .get_or_insert(if own_core { SPIN_US } else { 0 });
    Ok(args)
}

/// What the loads and the objective were derived from.
struct Setup {
    work: Option<WorkModel>,
    threads: usize,
    capacity: Option<f64>,
    slo_us: f64,
}

/// The servers: every `--patterns` kvserve with `--work`, or `--server`.
fn start_subjects(args: &SweepArgs) -> Result<Vec<Subject>> {
    let mut out = Vec::new();
    if let Some(server) = &args.server {
        let addr = resolve(server, args.allow_remote)?;
        if let Some(list) = &args.servers.client_cpus {
            Affinity::of(list)
                .apply()
                .with_context(|| format!("--client-cpus {list}"))?;
        }
        let info = stats::server_info(addr, RUN_TIMEOUT)
            .with_context(|| format!("reading `stats` of {server}"))?;
        let label = info.pattern.clone().unwrap_or_else(|| server.clone());
        out.push(Subject {
            label,
            addr,
            process: None,
            info,
            work_at_start: WorkDone::default(),
            active: true,
        });
        return Ok(out);
    }
    let Some(work) = args.work else {
        bail!("--work is needed to start the patterns (or --server to drive one)");
    };
    let mut servers = args.servers.clone();
    servers.server_args.push(format!("--work={work}"));
    let launcher = launcher(&servers)?;
    for target in servers::targets(&servers.patterns, Some(false))? {
        let process = launcher.start(&target)?;
        let info = stats::server_info(process.addr, RUN_TIMEOUT)?;
        ensure!(
            info.work == Some(work),
            "{} reports work model {:?}, not {work}",
            target.label(),
            info.work
        );
        out.push(Subject {
            label: target.label().to_string(),
            addr: process.addr,
            process: Some(process),
            info,
            work_at_start: WorkDone::default(),
            active: true,
        });
    }
    Ok(out)
}

/// The plan of one point: `rate` requests/s of 100-byte gets and sets
/// (9:1) over `connections`, Poisson arrivals.
fn plan(args: &SweepArgs, rate: f64, warmup: bool) -> Plan {
    Plan {
        workload: WorkloadName::Uniform,
        groups: vec![GroupSpec {
            name: "all".into(),
            connections: args.connections as usize,
            keys: KEYS,
            key_prefix: "kvbench:".into(),
            value_size: ValueSize::fixed(100),
            get_ratio: Ratio { gets: 9, sets: 1 },
            multiget: 1,
            pipeline: MAX_IN_FLIGHT,
            rate: Some(rate),
            arrivals: Arrivals::Poisson,
        }],
        warmup,
    }
}

/// Measures every load on every subject, interleaved, and summarises.
fn measure_all(
    args: &SweepArgs,
    subjects: &mut [Subject],
    notes: &mut Vec<String>,
) -> Result<(Vec<SweepPoint>, Vec<SweepSummary>, Setup)> {
    // Capacity and objective from the work model: the one asked, or the
    // one the driven server reports.
    let work = args
        .work
        .or_else(|| subjects.first().and_then(|s| s.info.work));
    let threads = if args.server.is_some() {
        subjects.first().and_then(|s| s.info.threads).unwrap_or(0)
    } else {
        args.servers.threads.unwrap_or_else(num_cpus::get).max(1)
    };
    let mean = work.map(|w| w.dist.mean()).filter(|m| !m.is_zero());
    let capacity = mean.map(|m| threads.max(1) as f64 / m.as_secs_f64());
    let slo_us = match (args.slo_us, mean) {
        (Some(us), _) => us,
        (None, Some(m)) => args.slo_factor * m.as_secs_f64() * 1e6,
        (None, None) => bail!("no work model to derive the SLO from: give --slo-us"),
    };
    let rates: Vec<(f64, Option<f64>)> = if !args.rates.is_empty() {
        let mut r = args.rates.clone();
        r.sort_by(f64::total_cmp);
        r.iter()
            .map(|&rate| (rate, capacity.map(|c| 100.0 * rate / c)))
            .collect()
    } else {
        let Some(c) = capacity else {
            bail!("the server reports no work model, so loads in % of capacity mean nothing: give --rates");
        };
        let mut loads = if args.loads.is_empty() {
            DEFAULT_LOADS.to_vec()
        } else {
            args.loads.clone()
        };
        loads.sort_by(f64::total_cmp);
        loads.iter().map(|&l| (c * l / 100.0, Some(l))).collect()
    };

    let bar = progress_bar(args.quiet, "sweep");
    bar.set_length((rates.len() * subjects.len()) as u64);
    let quiet = indicatif::ProgressBar::hidden();
    for s in subjects.iter_mut() {
        bar.set_message(format!("{}: prefilling {KEYS} keys", s.label));
        let plan = plan(args, 1.0, true);
        let warm = driver::warmup(&plan, &options(args, s.addr, &plan), &quiet);
        if warm.errors > 0 {
            notes.push(format!(
                "{}: prefill: {} errors; first: {}",
                s.label,
                warm.errors,
                warm.first_error.as_deref().unwrap_or("?")
            ));
        }
        s.work_at_start = stats::work_done(s.addr, RUN_TIMEOUT).unwrap_or_default();
    }

    let mut points = Vec::new();
    for &(rate, load_pct) in &rates {
        for s in subjects.iter_mut().filter(|s| s.active) {
            bar.set_message(format!(
                "{} at {}",
                s.label,
                load_pct.map_or(format!("{rate:.0} req/s"), |l| format!(
                    "{l:.0}% ({rate:.0} req/s)"
                ))
            ));
            let point = measure_point(args, s, rate, load_pct, work, notes)?;
            if point.saturated {
                s.active = false;
            }
            points.push(point);
            bar.inc(1);
        }
        // Servers that stopped early skip their remaining points.
        bar.set_length(
            bar.position()
                + (rates.len() as u64).saturating_sub(1)
                    * subjects.iter().filter(|s| s.active).count() as u64,
        );
    }
    bar.finish_and_clear();

    let mut summary = Vec::new();
    for s in subjects.iter() {
        let mine: Vec<&SweepPoint> = points.iter().filter(|p| p.server == s.label).collect();
        let (max_load, bound) = sweep_report::max_load_at_slo(&mine, slo_us);
        let done = stats::work_done(s.addr, RUN_TIMEOUT)
            .unwrap_or_default()
            .since(s.work_at_start);
        let service = work.map(|w| Service::of(w.dist, done));
        let model_max = service.and_then(|service| {
            let scenario = s.scenario(args, 0.0, service)?;
            let servers = match scenario.discipline {
                Discipline::Single => 1,
                Discipline::Partitioned { servers } | Discipline::Central { servers } => servers,
            };
            let ceiling = servers as f64 / service.mean().as_secs_f64();
            Some(model::max_load_at_slo(
                &scenario,
                Duration::from_secs_f64(slo_us * 1e-6),
                ceiling,
            ))
        });
        summary.push(SweepSummary {
            server: s.label.clone(),
            max_load_at_slo: max_load,
            bound,
            model_max_load_at_slo: model_max,
            service_us: done.mean_spent().map(|d| d.as_secs_f64() * 1e6),
            model_service: service
                .filter(|_| s.discipline().is_some())
                .map(|s| s.describe()),
        });
    }
    Ok((
        points,
        summary,
        Setup {
            work,
            threads,
            capacity,
            slo_us,
        },
    ))
}

fn options(args: &SweepArgs, addr: SocketAddr, plan: &Plan) -> Options {
    Options {
        server: addr,
        duration: Duration::from_secs_f64(args.duration),
        client_threads: plan.client_threads(args.servers.client_threads),
        timeout: RUN_TIMEOUT,
        spin: Duration::from_micros(args.spin_us.unwrap_or(0)),
        seed: args.seed,
    }
}

/// One server at one load: the measured run, the work the server spent on
/// it, and the model at the same load fed that service time.
fn measure_point(
    args: &SweepArgs,
    s: &Subject,
    rate: f64,
    load_pct: Option<f64>,
    work: Option<WorkModel>,
    notes: &mut Vec<String>,
) -> Result<SweepPoint> {
    let plan = plan(args, rate, false);
    let opts = options(args, s.addr, &plan);
    let before = stats::work_done(s.addr, RUN_TIMEOUT).unwrap_or_default();
    let result = driver::measure(&plan, &opts, &indicatif::ProgressBar::hidden())?;
    let done = stats::work_done(s.addr, RUN_TIMEOUT)
        .unwrap_or_default()
        .since(before);
    let report = report::run_report(&plan, &opts, &driver::WarmupResult::default(), &result);
    let total = &report.total;
    if let Some(e) = &total.first_error {
        notes.push(format!("{} at {rate:.0} req/s: {e}", s.label));
    }
    let model_p99_us = work.and_then(|w| {
        let scenario = s.scenario(args, rate, Service::of(w.dist, done))?;
        Some(model::simulate(&scenario).p99_us)
    });
    let achieved = total.ops_per_sec;
    Ok(SweepPoint {
        server: s.label.clone(),
        load_pct,
        offered: rate,
        achieved,
        p50_us: total.latency_us.p50,
        p99_us: total.latency_us.p99,
        p999_us: total.latency_us.p999,
        model_p99_us,
        service_us: done.mean_spent().map(|d| d.as_secs_f64() * 1e6),
        requests: total.requests,
        errors: total.errors,
        unsent: total.unsent,
        saturated: achieved < SATURATED_BELOW * rate || total.unsent > 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_model_gets_the_excess_only_past_the_tolerance() {
        let dist = ServiceDist::Exp {
            mean: Duration::from_micros(100),
        };
        let done = |asked_us, spent_us| WorkDone {
            requests: 1000,
            asked_us,
            spent_us,
        };
        // 3% over: within tolerance, the asked distribution as it is.
        let s = Service::of(dist, done(100_000, 103_000));
        assert_eq!(s.overhead, Duration::ZERO);
        assert_eq!(s.describe(), "exp:100us");
        // 12% over: 12 µs per request added.
        let s = Service::of(dist, done(100_000, 112_000));
        assert_eq!(s.overhead, Duration::from_micros(12));
        assert_eq!(s.mean(), Duration::from_micros(112));
        assert_eq!(s.describe(), "exp:100us + 12.0us");
        // Nothing measured: as asked.
        assert_eq!(
            Service::of(dist, WorkDone::default()).overhead,
            Duration::ZERO
        );
    }
}
