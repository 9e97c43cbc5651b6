//! The command line: `kvbench run` and `kvbench compare`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::load::workload::{parse_seconds, WorkloadArgs, WorkloadName};
use crate::measure::cpus::CpuList;

/// kvbench: load generator for memcached-text servers, and side-by-side
/// comparison of kvserve's threading patterns (and memcached).
#[derive(Parser, Debug)]
#[command(name = "kvbench", version)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Drive one running server and report throughput, latency, misses and errors.
    Run(RunArgs),
    /// Start kvserve once per pattern (and memcached), run workloads against
    /// each, and print one side-by-side table plus an SVG chart.
    Compare(CompareArgs),
}

#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// Server address (host:port).
    #[arg(long, default_value = "127.0.0.1:11211")]
    pub server: String,
    /// Allow a server address outside the loopback range.
    #[arg(long)]
    pub allow_remote: bool,
    /// Seconds of measured load (after warmup).
    #[arg(long, default_value_t = 5.0, value_parser = parse_seconds)]
    pub duration: f64,
    /// Client threads (default: cores, at most one per connection).
    #[arg(long)]
    pub client_threads: Option<usize>,
    /// CPUs the client threads run on, e.g. 0 or 0-3,6 (default: any).
    /// Keep them off the server's CPUs to measure the server alone.
    #[arg(long, value_name = "LIST")]
    pub client_cpus: Option<CpuList>,
    /// Print machine-readable JSON to stdout instead of the table.
    #[arg(long)]
    pub json: bool,
    /// No progress bar.
    #[arg(short, long)]
    pub quiet: bool,
    #[command(flatten)]
    pub workload: WorkloadArgs,
}

/// The servers a command starts and the CPUs it runs them and itself on;
/// shared by `compare` and `sweep`.
#[derive(Args, Debug, Clone)]
pub struct ServerArgs {
    /// Threads for each server (kvserve --threads, memcached -t); default: cores.
    #[arg(short, long)]
    pub threads: Option<usize>,
    /// kvserve patterns to start.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "basic,multi-reader,worker-pool"
    )]
    pub patterns: Vec<String>,
    /// The kvserve binary (default: `kvserve` next to this executable).
    #[arg(long)]
    pub kvserve: Option<PathBuf>,
    /// Extra argument for every kvserve (not memcached); repeatable, e.g.
    /// --server-arg=--work-us=5.
    #[arg(long = "server-arg", allow_hyphen_values = true, value_name = "ARG")]
    pub server_args: Vec<String>,
    /// Client threads (default: cores, at most one per connection).
    #[arg(long)]
    pub client_threads: Option<usize>,
    /// CPUs the client threads run on, e.g. 0 or 0-3 (default: any). With
    /// --server-cpus on other CPUs, the client's wake-ups and preemptions
    /// no longer land on the server's cores.
    #[arg(long, value_name = "LIST")]
    pub client_cpus: Option<CpuList>,
    /// CPUs every server runs on, e.g. 1 or 4-7 (default: any, never only
    /// the --client-cpus).
    #[arg(long, value_name = "LIST")]
    pub server_cpus: Option<CpuList>,
}

#[derive(Args, Debug, Clone)]
pub struct CompareArgs {
    #[command(flatten)]
    pub servers: ServerArgs,
    /// Seconds of measured load per workload and server.
    #[arg(long, default_value_t = 5.0, value_parser = parse_seconds)]
    pub duration: f64,
    /// Workloads to run, in order (repeat or comma-separate; default: all).
    #[arg(short, long = "workload", value_enum, value_delimiter = ',')]
    pub workloads: Vec<WorkloadName>,
    /// Include memcached even if no executable `memcached` is found on PATH.
    #[arg(long)]
    pub memcached: bool,
    /// Leave memcached out even if it is on PATH.
    #[arg(long, conflicts_with = "memcached")]
    pub no_memcached: bool,
    /// Where to write the SVG chart.
    #[arg(long, default_value = "kvbench-compare.svg")]
    pub svg: PathBuf,
    /// Do not write the SVG chart.
    #[arg(long)]
    pub no_svg: bool,
    /// Measure every server once per round, in turn (A B C, A B C, ...), so
    /// that drift on a shared machine hits them all alike; the table then
    /// shows each figure's median over the rounds and the range of ops/s.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub rounds: u32,
    /// The server every other's throughput is divided by, round by round,
    /// in the `vs` column (default: multi-reader when it is compared, else
    /// the first server): e.g. `memcached` or `worker-pool`.
    #[arg(long, value_name = "SERVER")]
    pub baseline: Option<String>,
    /// Print machine-readable JSON to stdout instead of the table.
    #[arg(long)]
    pub json: bool,
    /// No progress bar.
    #[arg(short, long)]
    pub quiet: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn server_args_take_hyphen_values() {
        let cli = Cli::parse_from([
            "kvbench",
            "compare",
            "--server-arg",
            "--work-us",
            "--server-arg=5",
            "--workload",
            "uniform,pipelined",
        ]);
        let Command::Compare(args) = cli.command else {
            panic!("not compare")
        };
        assert_eq!(args.servers.server_args, ["--work-us", "5"]);
        assert_eq!(
            args.workloads,
            [WorkloadName::Uniform, WorkloadName::Pipelined]
        );
    }

    #[test]
    fn warmup_flag_forms() {
        let parse = |extra: &[&str]| {
            let mut argv = vec!["kvbench", "run"];
            argv.extend_from_slice(extra);
            match Cli::parse_from(argv).command {
                Command::Run(run) => (run.workload.warmup, run.workload.no_warmup),
                _ => unreachable!(),
            }
        };
        assert_eq!(parse(&[]), (None, false));
        assert_eq!(parse(&["--warmup"]), (Some(true), false));
        assert_eq!(parse(&["--warmup=false"]), (Some(false), false));
        assert_eq!(parse(&["--no-warmup"]), (None, true));
    }
}
