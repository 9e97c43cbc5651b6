//! `kvbench compare`: starts kvserve once per pattern (and memcached as the
//! reference), in plaintext and over TLS as the workloads need, runs the
//! workloads against each in turn, reads `stats threads` around each run
//! ([`measure`]), stops the servers it started, and reports.

mod measure;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use serde::Serialize;

use crate::cli::{CompareArgs, ServerArgs};
use crate::load::options::Options;
use crate::load::warmup;
use crate::load::workload::{
    self, compare_runs, CompareWorkload, Security, WorkloadArgs, WorkloadName,
};
use crate::measure::cpus::Affinity;
use crate::measure::noise::NoiseMeter;
use crate::report::compare::tls::TlsCost;
use crate::report::compare::PairVerdict;
use crate::report::{self, progress_bar, CompareRow};
use crate::servers::secrets::Secrets;
use crate::servers::{self, Launcher, STOP_TIMEOUT};
use measure::{measure_once, RunOf};

/// Connect, warmup and end-of-run grace timeout of each run.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(5);
/// Open-loop busy-poll ahead of each send (`kvbench run --spin-us`).
pub const SPIN_US: u64 = 75;

#[derive(Serialize)]
struct CompareReport<'a> {
    threads: usize,
    duration_s: f64,
    server_args: &'a [String],
    rounds: usize,
    /// The server `vs_baseline` divides by.
    baseline: &'a str,
    /// `--client-cpus` and `--server-cpus`, when given.
    client_cpus: Option<String>,
    server_cpus: Option<String>,
    /// One row per workload and server (over several rounds: medians).
    rows: &'a [CompareRow],
    /// With several rounds, every measured run.
    #[serde(skip_serializing_if = "Option::is_none")]
    runs: Option<&'a [CompareRow]>,
    /// Every pair of servers, per workload.
    verdicts: &'a [PairVerdict],
    /// Every TLS run beside its plaintext run.
    tls_costs: &'a [TlsCost],
    notes: &'a [String],
}

pub fn compare(args: &CompareArgs) -> Result<()> {
    let workloads = if args.workloads.is_empty() {
        CompareWorkload::DEFAULT.to_vec()
    } else {
        args.workloads.clone()
    };
    let plans = compare_runs(&workloads, args.servers.tls);
    let memcached = if args.memcached {
        Some(true)
    } else {
        args.no_memcached.then_some(false)
    };
    let targets = servers::targets(&args.servers.patterns, memcached)?;
    let labels: Vec<&str> = targets.iter().map(servers::Target::label).collect();
    let baseline = match &args.baseline {
        Some(b) => {
            ensure!(
                labels.contains(&b.as_str()),
                "--baseline {b:?} is not compared; servers are {}",
                labels.join(", ")
            );
            b.clone()
        }
        None if labels.contains(&"multi-reader") => "multi-reader".to_string(),
        None => labels[0].to_string(),
    };
    let launcher = launcher(&args.servers, plans.iter().any(|(_, s)| s.is_tls()))?;
    let threads = launcher.threads;
    let duration = Duration::from_secs_f64(args.duration);
    let rounds = args.rounds as usize;
    let mut runs: Vec<CompareRow> = Vec::new();
    let mut notes: Vec<String> = Vec::new();
    // The servers' CPUs and the client's (this process's, since the
    // launcher applied --client-cpus).
    let noise_cpus = launcher.cpus.list().union(
        &Affinity::current()
            .context("reading kvbench's CPU affinity")?
            .list(),
    );
    let meter = NoiseMeter::start(&noise_cpus)?;
    // Round by round, every server in turn, in plaintext and then over
    // TLS when a run needs it: drift hits them all alike.
    let starts = (1..=rounds).flat_map(|n| {
        targets
            .iter()
            .flat_map(move |t| [false, true].map(move |tls| (n, t, tls)))
    });
    for (round, target, tls) in starts {
        let mine: Vec<(WorkloadName, Security)> = plans
            .iter()
            .copied()
            .filter(|(_, s)| s.is_tls() == tls)
            .collect();
        if mine.is_empty() {
            continue;
        }
        let label = target.label().to_string();
        let of_rounds = if rounds > 1 {
            format!(" (round {round}/{rounds})")
        } else {
            String::new()
        };
        // Who a note is about: the server, and the round if there are several.
        let who = format!("{label}{}{of_rounds}", if tls { " over TLS" } else { "" });
        let started = launcher.start(target, tls).and_then(|server| {
            let control =
                launcher.endpoint(&server, if tls { Security::Tls } else { Security::Plain })?;
            control.check(RUN_TIMEOUT)?;
            Ok((server, control))
        });
        let (mut server, control) = match started {
            Ok(s) => s,
            Err(e) => {
                let note = format!("{who}: not started: {e:#}");
                eprintln!("kvbench: {note}");
                notes.push(note);
                continue;
            }
        };
        let is_kvserve = matches!(target, servers::Target::Kvserve(_));
        for (w, security) in mine {
            let plan = workload::plan(&WorkloadArgs {
                workload: w,
                ..WorkloadArgs::default()
            })?;
            let opts = Options {
                server: launcher.endpoint(&server, security)?,
                duration,
                client_threads: plan.client_threads(args.servers.client_threads),
                timeout: RUN_TIMEOUT,
                spin: Duration::from_micros(SPIN_US),
                seed: 1,
            };
            let name = format!("{}{}", w.name(), security.suffix());
            let bar = progress_bar(args.quiet, &format!("{label} {name}{of_rounds}"));
            let warm = warmup::warmup(&plan, &opts, &bar);
            if warm.errors > 0 {
                notes.push(format!(
                    "{who} / {name}: warmup: {} errors; first: {}",
                    warm.errors,
                    warm.first_error.as_deref().unwrap_or("?")
                ));
            }
            // Taken again while the machine's noise disturbs it.
            let mut attempts = 0;
            let measured = loop {
                attempts += 1;
                let m = measure_once(&plan, &opts, &server, &control, is_kvserve, &meter, &bar)?;
                if m.disturbed.is_none() || attempts > args.retries {
                    break m;
                }
                bar.set_message(format!(
                    "disturbed ({}); again",
                    m.disturbed.as_deref().unwrap_or("?")
                ));
            };
            bar.finish_and_clear();
            if let Some(e) = &measured.stats_error {
                notes.push(format!("{who} / {name}: stats threads: {e}"));
            }
            let report = report::run_report(&plan, &opts, &warm, &measured.result);
            for g in report.groups.iter().filter(|g| g.unsent > 0) {
                notes.push(format!(
                    "{who} / {name}/{}: {} requests due but never sent (pipeline full or connection lost)",
                    g.name, g.unsent
                ));
            }
            let of = RunOf {
                server: &label,
                workload: w,
                security,
                round,
                attempts,
            };
            runs.extend(measure::rows(&of, &measured, &report));
            if let Some(status) = server.try_exit() {
                notes.push(format!(
                    "{who}: exited during {name} with {status}; its stderr:\n{}",
                    server.stderr_tail()
                ));
                break;
            }
        }
        let (status, killed) = server.stop();
        if killed {
            notes.push(format!(
                "{who}: still running {STOP_TIMEOUT:?} after SIGTERM; killed"
            ));
        } else if !status.success() {
            notes.push(format!("{who}: exited with {status} after SIGTERM"));
        }
    }
    ensure!(
        !runs.is_empty(),
        "no server could be measured:\n{}",
        notes.join("\n")
    );
    let rows = report::compare::summarize(&runs, &baseline);
    let verdicts = report::compare::pairwise(&runs);
    let tls_costs = report::compare::tls::tls_costs(&rows, &runs);
    let mut extra = if args.servers.server_args.is_empty() {
        String::new()
    } else {
        format!(" {}", args.servers.server_args.join(" "))
    };
    if let Some(list) = &args.servers.client_cpus {
        extra += &format!(" --client-cpus {list}");
    }
    if let Some(list) = &args.servers.server_cpus {
        extra += &format!(" --server-cpus {list}");
    }
    if args.servers.tls {
        extra += " --tls";
    }
    if args.servers.auth.is_some() {
        extra += " --auth";
    }
    let mut per_run = format!("{:.1} s per run", args.duration);
    if rounds > 1 {
        per_run += &format!(", {rounds} rounds (medians)");
    }
    extra += ", ";
    extra += &per_run;
    if args.json {
        let out = CompareReport {
            threads,
            duration_s: args.duration,
            server_args: &args.servers.server_args,
            rounds,
            baseline: &baseline,
            client_cpus: args.servers.client_cpus.as_ref().map(ToString::to_string),
            server_cpus: args.servers.server_cpus.as_ref().map(ToString::to_string),
            rows: &rows,
            runs: (rounds > 1).then_some(runs.as_slice()),
            verdicts: &verdicts,
            tls_costs: &tls_costs,
            notes: &notes,
        };
        report::print_stdout(&(serde_json::to_string_pretty(&out)? + "\n"))?;
    } else {
        let mut text = format!(
            "kvbench compare: --threads {threads}{extra}; vs {baseline} = ops/s / {baseline}'s in the same round (median and range over rounds, so not always the ratio of the ops/s medians); imbalance = busiest executing thread's requests / mean; cpu µs/req = server CPU time / requests (all of the run's groups); disturbed = rounds whose run the machine's noise disturbed (+ runs taken again){}\n\n",
            if rows.iter().any(|r| r.base_workload() == "churn") {
                "; churn: a connection per request, so ops/s are connections/s and latency runs from the connect to the reply"
            } else {
                ""
            }
        );
        text += &report::compare::render_compare(&rows, &baseline);
        text += &format!(
            "\nverdicts: ops/s ratio of each pair in the same round, median (range) over the rounds both ran undisturbed; ahead or behind only when the whole range is on one side of 1.0{}\n",
            if rounds == 1 { "; one round calls nothing: give --rounds 3 or more" } else { "" }
        );
        text += &report::compare::render_verdicts(&verdicts);
        let tls = report::compare::tls::render(&tls_costs, &rows);
        if !tls.is_empty() {
            text += "\n";
            text += &tls;
        }
        let anatomy = report::anatomy::render(&anatomy_rows(&rows));
        if !anatomy.is_empty() {
            text += "\n";
            text += &anatomy;
        }
        for n in &notes {
            text += &format!("note: {n}\n");
        }
        report::print_stdout(&text)?;
    }
    if !args.no_svg && !rows.is_empty() {
        let title = format!("kvbench compare: --threads {threads}{extra}");
        report::bars::write_svg(&args.svg, &title, &rows)
            .with_context(|| format!("writing {}", args.svg.display()))?;
        eprintln!("kvbench: chart written to {}", args.svg.display());
    }
    Ok(())
}

/// Each row's stage times, for the anatomy table: per server, a row per
/// workload.
fn anatomy_rows(rows: &[CompareRow]) -> Vec<report::anatomy::Row<'_>> {
    let mut servers: Vec<&str> = Vec::new();
    for r in rows {
        if !servers.contains(&r.server.as_str()) {
            servers.push(&r.server);
        }
    }
    servers
        .iter()
        .flat_map(|&server| rows.iter().filter(move |r| r.server == server))
        .filter_map(|r| {
            Some(report::anatomy::Row {
                server: &r.server,
                at: r.workload.clone(),
                p50_us: r.p50_us,
                p99_us: r.p99_us,
                anatomy: r.anatomy.as_ref()?,
            })
        })
        .collect()
}

/// How to start the servers `args` describe, with a throwaway certificate
/// when `tls` (a run needs one) and an auth file with `--auth`; applies
/// `--client-cpus` to this process (so the client threads inherit it)
/// after reading the CPUs the servers get: `--server-cpus`, or every CPU
/// kvbench itself may use, so that servers never inherit `--client-cpus`.
pub fn launcher(args: &ServerArgs, tls: bool) -> Result<Launcher> {
    let kvserve = if args.patterns.is_empty() {
        PathBuf::new()
    } else {
        servers::kvserve_binary(args.kvserve.as_deref())?
    };
    let cpus = match &args.server_cpus {
        Some(list) => Affinity::of(list),
        None => Affinity::current().context("reading kvbench's CPU affinity")?,
    };
    if let Some(list) = &args.client_cpus {
        Affinity::of(list)
            .apply()
            .with_context(|| format!("--client-cpus {list}"))?;
    }
    let secrets = (tls || args.auth.is_some())
        .then(|| Secrets::create(tls, args.auth.as_ref()))
        .transpose()?;
    Ok(Launcher {
        kvserve,
        threads: args.threads.unwrap_or_else(num_cpus::get).max(1),
        server_args: args.server_args.clone(),
        cpus,
        secrets,
        auth: args.auth.clone(),
    })
}
