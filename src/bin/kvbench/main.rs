//! kvbench: load generator for memcached-text servers, and side-by-side
//! comparison of kvserve's threading patterns.
//!
//! - [`cli`]: the flags.
//! - [`workload`]: named workloads, value sizes, get:set mixes.
//! - [`client`]: request encoding, reply parsing, one connection's I/O.
//! - [`run`]: warmup, client threads, closed and open loop, histograms.
//! - [`report`]: tables and JSON.
//! - [`compare`]: starting servers, `stats threads`, imbalance.
//! - [`server_cpu`]: a server process's CPU time, from /proc.
//! - [`cpus`]: keeping client and servers on separate CPUs.
//! - [`chart`]: the SVG chart of a comparison.
//! - [`model`]: the zero-overhead queueing model of the patterns.

mod chart;
mod cli;
mod client;
mod compare;
mod cpus;
mod model;
mod report;
mod run;
mod server_cpu;
mod workload;

use std::io::IsTerminal;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Parser;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use cli::{Cli, Command, RunArgs};

fn main() -> Result<()> {
    let cli = Cli::parse();
    raise_fd_limit();
    match cli.command {
        Command::Run(args) => run_command(&args),
        Command::Compare(args) => compare::compare(&args),
    }
}

fn run_command(args: &RunArgs) -> Result<()> {
    let server = resolve(&args.server, args.allow_remote)?;
    let plan = workload::plan(&args.workload)?;
    if let Some(list) = &args.client_cpus {
        // Before any client thread starts: they inherit it.
        cpus::Affinity::of(list)
            .apply()
            .with_context(|| format!("--client-cpus {list}"))?;
    }
    let opts = run::Options {
        server,
        duration: Duration::from_secs_f64(args.duration),
        client_threads: plan.client_threads(args.client_threads),
        timeout: Duration::from_secs_f64(args.workload.timeout),
        spin: Duration::from_micros(args.workload.spin_us),
    };
    let bar = progress_bar(args.quiet, plan.workload.name());
    let warm = run::warmup(&plan, &opts, &bar);
    let result = run::measure(&plan, &opts, &bar)?;
    bar.finish_and_clear();
    let report = report::run_report(&plan, &opts, &warm, &result);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report::render_run(&report));
    }
    Ok(())
}

/// The server's address; loopback only unless `allow_remote`.
fn resolve(server: &str, allow_remote: bool) -> Result<SocketAddr> {
    let addrs: Vec<SocketAddr> = server
        .to_socket_addrs()
        .with_context(|| format!("not a host:port address: {server}"))?
        .collect();
    let Some(&first) = addrs.first() else {
        bail!("{server} resolves to no address");
    };
    if allow_remote {
        return Ok(first);
    }
    match addrs.iter().find(|a| a.ip().is_loopback()) {
        Some(&addr) => Ok(addr),
        None => bail!(
            "{server} is not a loopback address; kvbench sends load to loopback servers unless --allow-remote"
        ),
    }
}

/// A progress bar on stderr, hidden with `--quiet` or when stderr is not a
/// terminal.
pub fn progress_bar(quiet: bool, prefix: &str) -> ProgressBar {
    if quiet || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(1), ProgressDrawTarget::stderr_with_hz(10));
    let style = ProgressStyle::with_template("{prefix:>24} [{elapsed_precise}] {wide_bar} {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar.set_prefix(prefix.to_string());
    bar
}

/// Raises the soft open-file limit to the hard one (1,000+ connections).
fn raise_fd_limit() {
    // SAFETY: getrlimit and setrlimit only read and write the struct passed.
    unsafe {
        let mut limit: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_only_by_default() {
        assert_eq!(
            resolve("127.0.0.1:11211", false).unwrap(),
            SocketAddr::from(([127, 0, 0, 1], 11211))
        );
        assert!(resolve("localhost:1", false).unwrap().ip().is_loopback());
        assert!(resolve("10.1.2.3:11211", false).is_err());
        assert!(resolve("10.1.2.3:11211", true).is_ok());
        assert!(resolve("nonsense", false).is_err());
    }
}
