//! `kvbench sweep`: p99 latency against offered load, the way the field
//! compares threading disciplines (ZygOS, Shinjuku; mutilate, lancet).
//!
//! It starts every pattern with the same service-time model (`--work`),
//! then, in several rounds, load by load from low to high, sends open-loop
//! Poisson arrivals spread over many connections to each server in turn
//! (interleaved, so drift on a shared machine hits them alike), with
//! latency counted from each request's intended send time. A server's
//! round stops once it saturates. A noise meter watches the machine
//! meanwhile; a measurement it calls disturbed is taken again, and a point
//! most of whose rounds stayed disturbed does not decide anything. Beside
//! every point stands the queueing model of the pattern's discipline, fed
//! the same arrivals and the service time the server actually spent; per
//! server, the highest load whose p99 meets the objective, with its
//! interval, measured and modelled; and a verdict.
//!
//! - [`subject`]: a server under the sweep, its discipline and what this
//!   machine adds to it.
//! - [`schedule`]: the rounds, and measuring one point.
//! - [`models`]: the models beside the points and in the summary.

mod models;
mod schedule;
mod subject;

use std::time::Duration;

use anyhow::{bail, Context, Result};
use kvserve::engine::work::WorkModel;
use serde::Serialize;

use super::compare::{RUN_TIMEOUT, SPIN_US};
use crate::cli::SweepArgs;
use crate::load::options::Options;
use crate::load::warmup;
use crate::load::workload::{Arrivals, GroupSpec, Plan, Ratio, ValueSize, WorkloadName};
use crate::measure::cpus::{Affinity, CpuList};
use crate::measure::noise::{Limits, NoiseMeter, HICCUP_INTERVAL, OTHER_CPU_LIMIT};
use crate::measure::stats::WorkDone;
use crate::net::Endpoint;
use crate::report::sweep::{self as sweep_report, fit, SweepPoint, SweepSummary};
use crate::report::{self, latency, progress_bar};
use models::Models;
use schedule::Sweeper;
use subject::{Load, Service, Subject};

/// Loads in percent of capacity when `--loads` and `--rates` are not given.
const DEFAULT_LOADS: [f64; 10] = [10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0, 100.0];
/// Keys the sweep reads and writes (prefilled once per server).
const KEYS: u64 = 1000;
/// Requests one connection may have in flight; more that fall due wait in
/// the client (and count as unsent at the end): the server is saturated.
const MAX_IN_FLIGHT: usize = 64;
/// A measured mean service time this far above the asked one moves the
/// capacity the loads are shares of: the sweep says so.
const SERVICE_OVERRUN_WARNING: f64 = 0.25;

/// Everything `kvbench sweep --json` prints.
#[derive(Serialize)]
struct SweepReport<'a> {
    work: Option<String>,
    threads: usize,
    connections: u32,
    duration_s: f64,
    rounds: u32,
    /// threads / mean asked service time, req/s (what loads are shares of).
    capacity: Option<f64>,
    slo_us: f64,
    seed: u64,
    client_cpus: Option<String>,
    server_cpus: Option<String>,
    client_threads: Option<usize>,
    spin_us: Option<u64>,
    /// The CPUs the noise meter watched, and its rule.
    noise_cpus: String,
    hiccup_limit_us: f64,
    late_limit_us: f64,
    other_cpu_limit: f64,
    points: &'a [SweepPoint],
    summary: &'a [SweepSummary],
    verdict: &'a str,
    notes: &'a [String],
}

/// Runs `kvbench sweep`.
pub fn sweep(args: &SweepArgs) -> Result<()> {
    let args = &placed(args)?;
    let mut notes = Vec::new();
    let mut subjects = subject::start_all(args)?;
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
        (None, Some(s)) => format!(", servers on {s}"),
        (None, None) => String::new(),
    };
    let title = format!(
        "kvbench sweep: {}{}, {} connections, {:.1} s per point, {} round{}{placement}",
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
        args.duration,
        args.rounds,
        if args.rounds == 1 { "" } else { "s" }
    );
    let objective = format!("p99 <= {}", report::chart_time(setup.slo_us));
    let baseline = if summary.iter().any(|s| s.server == "multi-reader") {
        "multi-reader".to_string()
    } else {
        summary.first().map_or(String::new(), |s| s.server.clone())
    };
    let verdict = sweep_report::verdict::render(
        &summary,
        &points,
        &baseline,
        &objective,
        args.rounds as usize,
    );
    if args.json {
        let out = SweepReport {
            work: setup.work.map(|w| w.to_string()),
            threads: setup.threads,
            connections: args.connections,
            duration_s: args.duration,
            rounds: args.rounds,
            capacity: setup.capacity,
            slo_us: setup.slo_us,
            seed: args.seed,
            client_cpus: args.servers.client_cpus.as_ref().map(ToString::to_string),
            server_cpus: args.servers.server_cpus.as_ref().map(ToString::to_string),
            client_threads: args.servers.client_threads,
            spin_us: args.spin_us,
            noise_cpus: setup.noise_cpus.to_string(),
            hiccup_limit_us: setup.limits.hiccup_p99_us,
            late_limit_us: setup.limits.late_p99_us,
            other_cpu_limit: setup.limits.other_cpu,
            points: &points,
            summary: &summary,
            verdict: &verdict,
            notes: &notes,
        };
        report::print_stdout(&(serde_json::to_string_pretty(&out)? + "\n"))?;
    } else {
        let mut text = format!("{title}\n");
        if let Some(c) = setup.capacity {
            text += &format!(
                "capacity {c:.0} req/s (threads / mean asked service time); SLO {objective}; model: the pattern's queueing discipline, zero overhead, fed the same arrivals; model+: the same with the overheads the server's stage times measured (service and write as measured at each load, wake-ups, hand-off and network as at the lowest)\n"
            );
        } else {
            text += &format!("SLO {objective}\n");
        }
        text += &format!(
            "noise: a thread on each of CPUs {} wakes every {} ms and records how late; a measurement is disturbed when that lateness (p99) or the client's exceeds {} µs (a quarter of the SLO), or other work takes over {:.0}% of those CPUs; it is taken again up to {} time{}\n\n",
            setup.noise_cpus,
            HICCUP_INTERVAL.as_millis(),
            report::us(setup.limits.hiccup_p99_us),
            100.0 * OTHER_CPU_LIMIT,
            args.retries,
            if args.retries == 1 { "" } else { "s" }
        );
        text += &sweep_report::table::render_points(&points);
        text += "\n";
        let anatomy = report::anatomy::render(&anatomy_rows(&points));
        if !anatomy.is_empty() {
            text += &anatomy;
            text += "\n";
        }
        text += &sweep_report::table::render_summary(&summary, setup.capacity);
        text += "\n";
        text += &verdict;
        for n in &notes {
            text += &format!("note: {n}\n");
        }
        report::print_stdout(&text)?;
    }
    if !args.no_svg && !points.is_empty() {
        latency::write_svg(&args.svg, &title, &points, setup.slo_us, setup.capacity)
            .with_context(|| format!("writing {}", args.svg.display()))?;
        eprintln!("kvbench: chart written to {}", args.svg.display());
        let stages = report::stages_chart::path_beside(&args.svg);
        let stages_title = format!("where the time goes: {title}");
        if report::stages_chart::write_svg(&stages, &stages_title, &points, setup.slo_us)
            .with_context(|| format!("writing {}", stages.display()))?
        {
            eprintln!("kvbench: stage chart written to {}", stages.display());
        }
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

/// What the loads and the objective were derived from, and how noise was
/// judged.
struct Setup {
    work: Option<WorkModel>,
    threads: usize,
    capacity: Option<f64>,
    slo_us: f64,
    noise_cpus: CpuList,
    limits: Limits,
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

/// The loads every server is measured at: (req/s, % of capacity).
fn loads(args: &SweepArgs, capacity: Option<f64>) -> Result<Vec<Load>> {
    if !args.rates.is_empty() {
        let mut r = args.rates.clone();
        r.sort_by(f64::total_cmp);
        return Ok(r
            .iter()
            .map(|&rate| (rate, capacity.map(|c| 100.0 * rate / c)))
            .collect());
    }
    let Some(c) = capacity else {
        bail!("the server reports no work model, so loads in % of capacity mean nothing: give --rates");
    };
    let mut loads = if args.loads.is_empty() {
        DEFAULT_LOADS.to_vec()
    } else {
        args.loads.clone()
    };
    loads.sort_by(f64::total_cmp);
    Ok(loads.iter().map(|&l| (c * l / 100.0, Some(l))).collect())
}

/// Measures every load on every subject, round by round, and summarises.
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
    let grid = loads(args, capacity)?;
    for s in subjects.iter_mut() {
        s.loads = grid.clone();
    }

    // The noise meter watches every CPU the client and the servers use;
    // the CPU time of servers kvbench did not start is not its own.
    let all_cpus = Affinity::current()
        .context("reading kvbench's CPU affinity")?
        .list();
    let client_cpus = args.servers.client_cpus.clone().unwrap_or(all_cpus.clone());
    let server_cpus = args.servers.server_cpus.clone().unwrap_or(all_cpus);
    let noise_cpus = client_cpus.union(&server_cpus);
    let started: Option<Vec<u32>> = subjects.iter().map(Subject::pid).collect();
    if started.is_none() {
        notes.push("the server was not started by kvbench: other processes' share of the CPUs cannot be told from its own, and is not judged".into());
    }
    let meter = NoiseMeter::start(&noise_cpus)?;
    let limits = Limits::for_slo(slo_us);

    let bar = progress_bar(args.quiet, "sweep");
    let planned = grid.len() * subjects.len() * args.rounds as usize;
    bar.set_length(planned as u64);
    let quiet = indicatif::ProgressBar::hidden();
    for s in subjects.iter_mut() {
        bar.set_message(format!("{}: prefilling {KEYS} keys", s.label));
        let plan = plan(args, 1.0, true);
        let warm = warmup::warmup(&plan, &options(args, &s.server, &plan), &quiet);
        if warm.errors > 0 {
            notes.push(format!(
                "{}: prefill: {} errors; first: {}",
                s.label,
                warm.errors,
                warm.first_error.as_deref().unwrap_or("?")
            ));
        }
    }

    let mut sweeper = Sweeper {
        args,
        meter: &meter,
        servers: started,
        limits,
        slo_us,
        server_cpus: server_cpus.cpus().len().max(1),
        bar: &bar,
        retries_left: (planned as u32 / 4).max(4),
        started: std::time::Instant::now(),
        measured: Vec::new(),
    };
    sweeper.run(subjects)?;
    bar.finish_and_clear();
    if sweeper.retries_left == 0 {
        notes.push(format!(
            "the budget of measurements taken again ({}) ran out: later disturbed ones stand as measured",
            (planned / 4).max(4)
        ));
    }

    // Each server's work over its measurements: what the models are fed.
    let mut works = vec![WorkDone::default(); subjects.len()];
    for m in &sweeper.measured {
        works[m.subject] = works[m.subject].plus(m.work);
    }
    let models = work.map(|work| Models { args, work, slo_us });
    let mut points = Vec::new();
    // A load only rounds implied (each stopped below it) was never measured.
    for m in sweeper
        .measured
        .into_iter()
        .filter(|m| m.samples.iter().any(|x| !x.implied))
    {
        let s = &subjects[m.subject];
        if let Some(e) = m.samples.iter().find_map(|x| x.first_error.as_ref()) {
            notes.push(format!("{} at {:.0} req/s: {e}", s.label, m.rate));
        }
        let mut point = SweepPoint::of(&s.label, m.load_pct, m.rate, m.samples);
        point.model_p99_us = models
            .as_ref()
            .and_then(|ms| ms.ideal_p99(s, m.rate, m.work));
        points.push(point);
    }
    // Grouped by server, in the order they were started, each by load.
    points.sort_by(|a, b| {
        let at = |p: &SweepPoint| subjects.iter().position(|s| s.label == p.server);
        at(a).cmp(&at(b)).then(a.offered.total_cmp(&b.offered))
    });
    if let Some(ms) = &models {
        for s in subjects.iter() {
            let mut mine: Vec<&mut SweepPoint> =
                points.iter_mut().filter(|p| p.server == s.label).collect();
            ms.model_points(s, &mut mine);
        }
    }

    let mut summary = Vec::new();
    for (i, s) in subjects.iter().enumerate() {
        let mine: Vec<&SweepPoint> = points.iter().filter(|p| p.server == s.label).collect();
        let done = works[i];
        let service = work.map(|w| Service::of(w.dist, done));
        let model_max = models.as_ref().and_then(|ms| ms.ideal_max(s, done));
        let model_measured_max = models.as_ref().and_then(|ms| ms.measured_max(s, &mine));
        let max_load = fit::max_load(&mine, slo_us);
        let spent = done.mean_spent().map(|d| d.as_secs_f64() * 1e6);
        if let (Some(spent), Some(m)) = (spent, mean) {
            let asked = m.as_secs_f64() * 1e6;
            if spent > asked * (1.0 + SERVICE_OVERRUN_WARNING) {
                notes.push(format!(
                    "{}: the measured service time, {} µs, overruns the asked {} µs by {:.0}%: the servers' real capacity is below the capacity line, and the model is fed the measured time",
                    s.label,
                    report::us(spent),
                    report::us(asked),
                    100.0 * (spent / asked - 1.0)
                ));
            }
        }
        summary.push(SweepSummary {
            server: s.label.clone(),
            max_load,
            model_max_load_at_slo: model_max,
            model_measured_max_load: model_measured_max,
            service_us: spent,
            model_service: service
                .filter(|_| s.discipline().is_some())
                .map(|s| s.describe()),
            points: mine.len(),
            points_counted: mine.iter().filter(|p| p.counts).count(),
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
            noise_cpus,
            limits,
        },
    ))
}

/// Each point's stage times, for the anatomy table.
fn anatomy_rows(points: &[SweepPoint]) -> Vec<report::anatomy::Row<'_>> {
    points
        .iter()
        .filter_map(|p| {
            Some(report::anatomy::Row {
                server: &p.server,
                at: p
                    .load_pct
                    .map_or(format!("{:.0}/s", p.offered), sweep_report::table::percent),
                p50_us: p.p50_us,
                p99_us: p.p99_us,
                anatomy: p.anatomy.as_ref()?,
            })
        })
        .collect()
}

fn options(args: &SweepArgs, server: &Endpoint, plan: &Plan) -> Options {
    Options {
        server: server.clone(),
        duration: Duration::from_secs_f64(args.duration),
        client_threads: plan.client_threads(args.servers.client_threads),
        timeout: RUN_TIMEOUT,
        spin: Duration::from_micros(args.spin_us.unwrap_or(0)),
        seed: args.seed,
    }
}
