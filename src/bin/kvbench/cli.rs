//! The command line: `kvbench run`, `compare`, `sweep` and `top`.

use std::path::PathBuf;

use clap::{ArgGroup, Args, Parser, Subcommand};
use kvserve::engine::work::WorkModel;
use kvserve::server::config::Pattern;

use crate::load::workload::{parse_seconds, CompareWorkload, WorkloadArgs};
use crate::measure::cpus::CpuList;
use crate::net::auth::Credentials;
use crate::net::tls::Trust;

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
    /// Latency against offered load: open-loop Poisson load at rising
    /// rates against each pattern, beside the queueing model of each.
    Sweep(SweepArgs),
    /// Watch a running server live: totals, and one row per thread with
    /// requests/s, busy % and bytes/s, from `stats` and `stats threads`.
    Top(TopArgs),
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
    pub security: SecurityArgs,
    /// With --tls: connections share rustls's session cache and resume the
    /// sessions earlier ones got (--workload churn: every connection but
    /// the first few resumes, if the server allows it: memcached's
    /// ssl_session_cache); without it every connection makes a full handshake.
    #[arg(long, requires = "tls")]
    pub tls_resume: bool,
    #[command(flatten)]
    pub workload: WorkloadArgs,
}

/// How kvbench reaches a server it did not start: TLS, and memcached's
/// ASCII authentication (`memcached -Y`). Every connection uses them: the
/// load's, the warmup's and the one that reads `stats`.
#[derive(Args, Debug, Clone, Default)]
#[command(group(ArgGroup::new("tls_trust").args(["tls_ca", "tls_insecure"])))]
pub struct SecurityArgs {
    /// Speak TLS to the server (rustls), trusting its certificate by
    /// --tls-ca or not checking it (--tls-insecure): one of them is needed.
    #[arg(long, requires = "tls_trust")]
    pub tls: bool,
    /// Trust server certificates signed by a CA of this PEM file; the
    /// certificate must name the --server host (an IP address or a name).
    #[arg(long, value_name = "FILE", requires = "tls")]
    pub tls_ca: Option<PathBuf>,
    /// Accept any server certificate: encryption without knowing who the
    /// server is (the handshake's signature is still verified).
    #[arg(long, requires = "tls", conflicts_with = "tls_ca")]
    pub tls_insecure: bool,
    /// Authenticate every connection as memcached's ASCII authentication
    /// does (a `set` whose data is `USER PASS`, before any request).
    #[arg(long, value_name = "USER:PASS")]
    pub auth: Option<Credentials>,
}

impl SecurityArgs {
    /// Which certificates to trust, when speaking TLS.
    pub fn trust(&self) -> Option<Trust> {
        trust(self.tls, self.tls_ca.as_ref(), self.tls_insecure)
    }
}

/// `--tls` with `--tls-ca FILE` or `--tls-insecure`, as [`Trust`]; clap
/// has seen to it that `--tls` comes with one of them.
pub fn trust(tls: bool, ca: Option<&PathBuf>, insecure: bool) -> Option<Trust> {
    match (tls, ca) {
        (false, _) => None,
        (true, Some(path)) => Some(Trust::CaFile(path.clone())),
        (true, None) => {
            debug_assert!(insecure, "--tls without a trust flag");
            Some(Trust::Any)
        }
    }
}

/// The servers a command starts and the CPUs it runs them and itself on;
/// shared by `compare` and `sweep`.
#[derive(Args, Debug, Clone)]
pub struct ServerArgs {
    /// Threads for each server (kvserve --threads, memcached -t); default: cores.
    #[arg(short, long)]
    pub threads: Option<usize>,
    /// kvserve patterns to start.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = Pattern::ALL)]
    pub patterns: Vec<Pattern>,
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
    /// Start every server with TLS (-Z -o ssl_chain_cert=..,ssl_key=..,
    /// ssl_session_cache) on a throwaway certificate made for the run,
    /// which kvbench trusts, and speak TLS on every connection.
    #[arg(long)]
    pub tls: bool,
    /// Start every server with an auth file (-Y) holding USER:PASS, and
    /// authenticate every connection with it.
    #[arg(long, value_name = "USER:PASS")]
    pub auth: Option<Credentials>,
}

#[derive(Args, Debug, Clone)]
pub struct CompareArgs {
    #[command(flatten)]
    pub servers: ServerArgs,
    /// Seconds of measured load per workload and server.
    #[arg(long, default_value_t = 5.0, value_parser = parse_seconds)]
    pub duration: f64,
    /// Workloads to run, in order (repeat or comma-separate; default:
    /// uniform, pipelined, large, many-conns, skewed). `tls` runs uniform
    /// and pipelined in plaintext and over TLS; `churn` a new connection
    /// per request, in plaintext, over TLS and over TLS resuming sessions.
    #[arg(short, long = "workload", value_enum, value_delimiter = ',')]
    pub workloads: Vec<CompareWorkload>,
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
    /// One round calls no winner.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub rounds: u32,
    /// How many times a run the machine's noise disturbed is taken again.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(0..=10))]
    pub retries: u32,
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

/// `kvbench sweep`: the offered loads, the service-time model and the SLO.
#[derive(Args, Debug, Clone)]
pub struct SweepArgs {
    #[command(flatten)]
    pub servers: ServerArgs,
    /// Service time of every request: passed to each kvserve as --work and
    /// fed to the queueing model. KIND spin or block; DIST fixed:T,
    /// exp:MEAN or bimodal:SHORT:LONG:P_LONG (e.g. block:exp:100us).
    #[arg(long, value_name = "KIND:DIST", value_parser = parse_work, required_unless_present = "server")]
    pub work: Option<WorkModel>,
    /// Drive this running server instead of starting the patterns (e.g. a
    /// kvserve started by hand, or memcached); its pattern, threads and
    /// work model are read from `stats`.
    #[arg(long, value_name = "HOST:PORT", conflicts_with = "work")]
    pub server: Option<String>,
    /// With --server and --tls: trust its certificate if a CA of this PEM
    /// file signed it (see `kvbench run --help`).
    #[arg(long, value_name = "FILE", requires = "tls")]
    pub tls_ca: Option<PathBuf>,
    /// With --server and --tls: accept any certificate.
    #[arg(long, requires = "tls", conflicts_with = "tls_ca")]
    pub tls_insecure: bool,
    /// Allow a --server address outside the loopback range.
    #[arg(long, requires = "server")]
    pub allow_remote: bool,
    /// Offered loads in percent of capacity (threads / mean service time),
    /// comma-separated, e.g. 10,20,50,80 (default: 10 to 100 in tens).
    #[arg(long, value_delimiter = ',', value_parser = parse_load, conflicts_with = "rates")]
    pub loads: Vec<f64>,
    /// Offered loads in requests per second instead, comma-separated.
    #[arg(long, value_delimiter = ',', value_parser = parse_rate)]
    pub rates: Vec<f64>,
    /// Connections the Poisson arrivals are spread over.
    #[arg(short, long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub connections: u32,
    /// Seconds of measured load per point.
    #[arg(long, default_value_t = 2.0, value_parser = parse_seconds)]
    pub duration: f64,
    /// Rounds: every server is measured at every load once per round, the
    /// rounds one after the other; a point's p99 is the median over them.
    /// Points whose rounds disagree about the objective get two more.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=20))]
    pub rounds: u32,
    /// How many times a measurement the machine's noise disturbed is
    /// taken again (at most a quarter of the sweep's measurements in all).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(0..=10))]
    pub retries: u32,
    /// Confidence of each p99's interval, in percent.
    #[arg(long, default_value_t = 95.0, value_parser = parse_confidence)]
    pub confidence: f64,
    /// The latency objective: p99 at most this many mean service times.
    #[arg(long, default_value_t = 10.0, value_parser = parse_factor)]
    pub slo_factor: f64,
    /// The latency objective in µs instead (p99 at most this).
    #[arg(long, conflicts_with = "slo_factor", value_parser = parse_rate)]
    pub slo_us: Option<f64>,
    /// Seed of the arrivals (the model is fed the same ones); round N
    /// draws from seed + N - 1.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Busy-poll from this many µs before each send is due, as a timer
    /// wake-up can be that late (0: sleep until the timer fires). Default:
    /// 75 when the client has a CPU of its own, else 0 (spinning would take
    /// a core from the servers).
    #[arg(long, value_parser = clap::value_parser!(u64).range(0..=10_000))]
    pub spin_us: Option<u64>,
    /// Let the client and the servers share every CPU. By default, with
    /// two CPUs or more and neither --client-cpus nor --server-cpus, the
    /// sweep keeps the load generator (one thread) on the first CPU and the
    /// servers on the rest, as load generators run on machines of their
    /// own: a client's wake-ups on the servers' cores would be measured as
    /// the pattern's latency.
    #[arg(long, conflicts_with_all = ["client_cpus", "server_cpus"])]
    pub shared_cpus: bool,
    /// Where to write the SVG chart: p99 against offered load.
    #[arg(long, default_value = "kvbench-sweep.svg")]
    pub svg: PathBuf,
    /// Do not write the SVG chart.
    #[arg(long)]
    pub no_svg: bool,
    /// Print machine-readable JSON to stdout instead of the table.
    #[arg(long)]
    pub json: bool,
    /// No progress bar.
    #[arg(short, long)]
    pub quiet: bool,
}

/// `kvbench top`: which server to watch, how often, and how.
#[derive(Args, Debug, Clone)]
pub struct TopArgs {
    /// Server address (host:port). top sends no load, so it need not be
    /// a loopback address.
    #[arg(long, default_value = "127.0.0.1:11211")]
    pub server: String,
    /// Seconds between refreshes (0.05 to 3600).
    #[arg(long, default_value_t = 1.0, value_parser = parse_interval)]
    pub interval: f64,
    /// One block of plain text per refresh instead of the full-screen
    /// view (also taken when stdout is not a terminal).
    #[arg(long)]
    pub plain: bool,
    /// Stop after this many refreshes (the first reading, the baseline of
    /// the rates, is not one).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,
    #[command(flatten)]
    pub security: SecurityArgs,
}

impl Cli {
    /// What clap's rules cannot say: `sweep --server --tls` needs
    /// --tls-ca or --tls-insecure, as `run --tls` does, and they need
    /// --server (the servers a sweep starts have kvbench's own
    /// certificate; a `requires = "server"` is void beside --work, which
    /// conflicts with --server).
    pub fn check(&self) -> Result<(), clap::Error> {
        use clap::error::ErrorKind;
        use clap::CommandFactory;
        let Command::Sweep(args) = &self.command else {
            return Ok(());
        };
        let trust = args.tls_ca.is_some() || args.tls_insecure;
        let error = match (args.server.is_some(), args.servers.tls, trust) {
            (true, true, false) => (
                ErrorKind::MissingRequiredArgument,
                "sweep --server with --tls needs --tls-ca FILE or --tls-insecure",
            ),
            (false, _, true) => (
                ErrorKind::ArgumentConflict,
                "--tls-ca and --tls-insecure are for a --server the sweep does not start: the servers it starts present kvbench's own certificate",
            ),
            _ => return Ok(()),
        };
        Err(Cli::command().error(error.0, error.1))
    }
}

fn parse_work(text: &str) -> Result<WorkModel, String> {
    text.parse()
}

/// A load in percent of capacity: above 0, at most 1000.
fn parse_load(text: &str) -> Result<f64, String> {
    let bad = || {
        format!("{text:?} is not a load: a percentage of capacity above 0 and at most 1000, e.g. 10,20,50,90")
    };
    let load: f64 = text
        .trim()
        .trim_end_matches('%')
        .parse()
        .map_err(|_| bad())?;
    if load.is_finite() && load > 0.0 && load <= 1000.0 {
        Ok(load)
    } else {
        Err(bad())
    }
}

/// A confidence level in percent: 50 to 99.9.
fn parse_confidence(text: &str) -> Result<f64, String> {
    let bad = || format!("{text:?} is not a confidence: a percentage from 50 to 99.9, e.g. 95");
    let v: f64 = text
        .trim()
        .trim_end_matches('%')
        .parse()
        .map_err(|_| bad())?;
    if (50.0..=99.9).contains(&v) {
        Ok(v)
    } else {
        Err(bad())
    }
}

/// A positive rate (requests/s) or time (µs), at most 10 million.
fn parse_rate(text: &str) -> Result<f64, String> {
    parse_positive(text, 1e7)
}

/// An SLO factor: above 0, at most 10,000 mean service times.
fn parse_factor(text: &str) -> Result<f64, String> {
    parse_positive(text, 10_000.0)
}

/// Seconds between refreshes: at least 0.05 (a reading is two round
/// trips), at most an hour.
fn parse_interval(text: &str) -> Result<f64, String> {
    let bad = || format!("{text:?} is not an interval: seconds from 0.05 to 3600");
    let v: f64 = text.trim().parse().map_err(|_| bad())?;
    if (0.05..=3600.0).contains(&v) {
        Ok(v)
    } else {
        Err(bad())
    }
}

fn parse_positive(text: &str, max: f64) -> Result<f64, String> {
    let bad = || format!("{text:?} is not a number above 0 and at most {max}");
    let v: f64 = text.trim().parse().map_err(|_| bad())?;
    if v.is_finite() && v > 0.0 && v <= max {
        Ok(v)
    } else {
        Err(bad())
    }
}

#[cfg(test)]
mod tests;
