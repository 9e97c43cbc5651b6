//! Workloads: the named presets, the flags that override them, value sizes,
//! get:set mixes and the random numbers behind key choice; [`runs`]:
//! compare's workloads, each a set of runs in plaintext or over TLS.

mod runs;

pub use runs::{compare_runs, CompareWorkload, Security};

use std::fmt;
use std::str::FromStr;

use anyhow::{bail, ensure, Result};
use clap::{Args, ValueEnum};

/// The named workloads of `--workload`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum WorkloadName {
    #[default]
    Uniform,
    Pipelined,
    Large,
    ManyConns,
    Skewed,
    Churn,
}

impl WorkloadName {
    pub fn name(self) -> &'static str {
        match self {
            WorkloadName::Uniform => "uniform",
            WorkloadName::Pipelined => "pipelined",
            WorkloadName::Large => "large",
            WorkloadName::ManyConns => "many-conns",
            WorkloadName::Skewed => "skewed",
            WorkloadName::Churn => "churn",
        }
    }
}

/// Workload knobs; each overrides the named workload's default.
#[derive(Args, Debug, Clone, Default)]
pub struct WorkloadArgs {
    /// Named workload: uniform (100 B values, 9:1 get:set, 50 connections,
    /// depth 1), pipelined (depth 16), large (16 KiB values, 1000 keys),
    /// many-conns (1000 connections), skewed (4 heavy connections pipelining
    /// 16-key multi-gets of 64 KiB values 16 deep beside 50 light ones sending
    /// single gets at a fixed total rate; reported as two rows), churn
    /// (16 clients, each opening a connection per request: connect, TLS
    /// handshake with --tls, one get or set, its reply, close).
    #[arg(long, value_enum, default_value = "uniform")]
    pub workload: WorkloadName,
    /// Connections (skewed: the light ones; churn: clients, each with one
    /// connection at a time, on a thread of its own).
    #[arg(short, long)]
    pub connections: Option<usize>,
    /// Key space: keys PREFIX0 .. PREFIX<K-1>, chosen uniformly.
    #[arg(short, long)]
    pub keys: Option<u64>,
    /// Value size in bytes, or a range A-B drawn uniformly (k/m suffixes allowed).
    #[arg(long)]
    pub value_size: Option<ValueSize>,
    /// Mix of gets to sets, GETS:SETS (e.g. 9:1, 1:0 for gets only).
    #[arg(long)]
    pub get_ratio: Option<Ratio>,
    /// Keys per get (`get k1 k2 ...`).
    #[arg(long)]
    pub multiget: Option<u32>,
    /// Requests in flight per connection (pipeline depth).
    #[arg(short = 'd', long)]
    pub pipeline: Option<usize>,
    /// Open loop at this total rate (requests/s); latency counts from each
    /// request's intended send time. Without it: closed loop (skewed: the
    /// light clients' rate, default 2000).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Open loop: even (evenly spaced sends) or poisson (exponential gaps).
    #[arg(long, value_enum, default_value = "even")]
    pub arrivals: Arrivals,
    /// Seed of the Poisson arrivals: the same seed, the same schedule.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Prefill every key with a set before measuring (default: true).
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub warmup: Option<bool>,
    /// Same as --warmup=false.
    #[arg(long, conflicts_with = "warmup")]
    pub no_warmup: bool,
    /// Key prefix (skewed: heavy keys get PREFIX + "h:").
    #[arg(long)]
    pub key_prefix: Option<String>,
    /// skewed: heavy connections.
    #[arg(long)]
    pub heavy_connections: Option<usize>,
    /// skewed: heavy value size (or range).
    #[arg(long)]
    pub heavy_value_size: Option<ValueSize>,
    /// skewed: keys per heavy multi-get.
    #[arg(long)]
    pub heavy_multiget: Option<u32>,
    /// skewed: heavy pipeline depth.
    #[arg(long)]
    pub heavy_pipeline: Option<usize>,
    /// skewed: heavy key space.
    #[arg(long)]
    pub heavy_keys: Option<u64>,
    /// Open loop: busy-poll from this many µs before each send is due, as a
    /// timer wake-up can be that late (0: sleep until the timer fires).
    #[arg(long, default_value_t = 75, value_parser = clap::value_parser!(u64).range(0..=10_000))]
    pub spin_us: u64,
    /// Seconds to wait for a connect, warmup reply or the last replies of a run.
    #[arg(long, default_value_t = 5.0, value_parser = parse_seconds)]
    pub timeout: f64,
}

/// Largest value kvbench sends (memcached's own ceiling is 1 GiB; servers
/// refuse far less by default, which shows as errors).
pub const MAX_VALUE_SIZE: usize = 64 << 20;
/// memcached's longest key.
const MAX_KEY_LEN: usize = 250;

/// One value size, or a range drawn uniformly (both ends included).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ValueSize {
    pub min: usize,
    pub max: usize,
}

impl ValueSize {
    pub const fn fixed(n: usize) -> ValueSize {
        ValueSize { min: n, max: n }
    }

    pub fn pick(&self, rng: &mut Rng) -> usize {
        self.min + rng.below((self.max - self.min) as u64 + 1) as usize
    }
}

impl FromStr for ValueSize {
    type Err = String;

    fn from_str(text: &str) -> Result<ValueSize, String> {
        let (min, max) = match text.split_once('-') {
            Some((a, b)) => (parse_size(a)?, parse_size(b)?),
            None => {
                let n = parse_size(text)?;
                (n, n)
            }
        };
        if min > max {
            return Err(format!("empty range {text}"));
        }
        if max > MAX_VALUE_SIZE {
            return Err(format!("at most {MAX_VALUE_SIZE} bytes: {text}"));
        }
        Ok(ValueSize { min, max })
    }
}

impl fmt::Display for ValueSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.min == self.max {
            write!(f, "{}", self.min)
        } else {
            write!(f, "{}-{}", self.min, self.max)
        }
    }
}

/// Bytes, or with a k or m suffix (KiB, MiB).
fn parse_size(text: &str) -> Result<usize, String> {
    let lower = text.trim().to_ascii_lowercase();
    let (digits, unit) = if let Some(d) = lower.strip_suffix('k') {
        (d, 1 << 10)
    } else if let Some(d) = lower.strip_suffix('m') {
        (d, 1 << 20)
    } else {
        (lower.as_str(), 1)
    };
    digits
        .parse::<usize>()
        .ok()
        .and_then(|n| n.checked_mul(unit))
        .ok_or_else(|| format!("not a size: {text}"))
}

/// How many gets per how many sets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ratio {
    pub gets: u32,
    pub sets: u32,
}

impl Ratio {
    /// True for a get, with probability gets / (gets + sets).
    pub fn pick_get(&self, rng: &mut Rng) -> bool {
        if self.sets == 0 {
            return true;
        }
        if self.gets == 0 {
            return false;
        }
        rng.below(u64::from(self.gets) + u64::from(self.sets)) < u64::from(self.gets)
    }
}

impl FromStr for Ratio {
    type Err = String;

    fn from_str(text: &str) -> Result<Ratio, String> {
        let bad = || format!("expected GETS:SETS such as 9:1, got {text}");
        let (g, s) = text.split_once(':').ok_or_else(bad)?;
        let gets: u32 = g.trim().parse().map_err(|_| bad())?;
        let sets: u32 = s.trim().parse().map_err(|_| bad())?;
        if gets == 0 && sets == 0 {
            return Err(bad());
        }
        Ok(Ratio { gets, sets })
    }
}

impl fmt::Display for Ratio {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.gets, self.sets)
    }
}

/// One kind of client in a run: its connections all behave alike.
#[derive(Clone, Debug)]
pub struct GroupSpec {
    /// `all` for a one-group workload; `light` and `heavy` for skewed.
    pub name: String,
    pub connections: usize,
    pub keys: u64,
    pub key_prefix: String,
    pub value_size: ValueSize,
    pub get_ratio: Ratio,
    pub multiget: u32,
    pub pipeline: usize,
    /// Open loop at this total rate (requests/s) over the group's
    /// connections; `None` is closed loop.
    pub rate: Option<f64>,
    /// Open loop: how sends are spaced on each connection.
    pub arrivals: Arrivals,
}

/// How an open-loop connection spaces its sends.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Arrivals {
    /// Evenly, the group's connections staggered over one interval: the
    /// steadiest load, for measuring a server at a known rate.
    #[default]
    Even,
    /// Poisson: exponential gaps, as independent clients arrive, and as
    /// the queueing models assume (`kvbench sweep` always uses these).
    Poisson,
}

/// Everything one run does.
#[derive(Clone, Debug)]
pub struct Plan {
    pub workload: WorkloadName,
    pub groups: Vec<GroupSpec>,
    pub warmup: bool,
}

impl Plan {
    pub fn connections(&self) -> usize {
        self.groups.iter().map(|g| g.connections).sum()
    }

    pub fn max_value_size(&self) -> usize {
        self.groups
            .iter()
            .map(|g| g.value_size.max)
            .max()
            .unwrap_or(0)
    }

    /// Client threads: the request, or the cores; at most one per
    /// connection, and at least one.
    pub fn client_threads(&self, requested: Option<usize>) -> usize {
        requested
            .unwrap_or_else(num_cpus::get)
            .min(self.connections())
            .max(1)
    }
}

/// Builds the plan of a workload with the flags' overrides.
pub fn plan(args: &WorkloadArgs) -> Result<Plan> {
    let name = args.workload;
    let prefix = args.key_prefix.clone().unwrap_or_else(|| "kvbench:".into());
    let mut main = GroupSpec {
        name: "all".into(),
        connections: 50,
        keys: 10_000,
        key_prefix: prefix.clone(),
        value_size: ValueSize::fixed(100),
        get_ratio: Ratio { gets: 9, sets: 1 },
        multiget: 1,
        pipeline: 1,
        rate: None,
        arrivals: args.arrivals,
    };
    let mut heavy = None;
    match name {
        WorkloadName::Uniform => {}
        WorkloadName::Pipelined => main.pipeline = 16,
        WorkloadName::Large => {
            main.value_size = ValueSize::fixed(16 << 10);
            main.keys = 1000;
        }
        WorkloadName::ManyConns => main.connections = 1000,
        // Enough clients that a connection is always being set up while
        // others wait for their replies; each is a blocking thread, as a
        // short-lived client is a process of its own.
        WorkloadName::Churn => main.connections = 16,
        WorkloadName::Skewed => {
            main.name = "light".into();
            main.get_ratio = Ratio { gets: 1, sets: 0 };
            main.rate = Some(2000.0);
            heavy = Some(GroupSpec {
                name: "heavy".into(),
                connections: 4,
                keys: 256,
                key_prefix: format!("{prefix}h:"),
                value_size: ValueSize::fixed(64 << 10),
                get_ratio: Ratio { gets: 1, sets: 0 },
                multiget: 16,
                // Deep enough that a heavy connection's turn on a reader
                // is long: at depth 2 a turn is two requests, and the
                // skew barely shows (measured on 2 cores with --work-us 50).
                pipeline: 16,
                rate: None,
                arrivals: Arrivals::Even,
            });
        }
    }
    if let Some(n) = args.connections {
        main.connections = n;
    }
    if let Some(n) = args.keys {
        main.keys = n;
    }
    if let Some(v) = args.value_size {
        main.value_size = v;
    }
    if let Some(r) = args.get_ratio {
        main.get_ratio = r;
    }
    if let Some(n) = args.multiget {
        main.multiget = n;
    }
    if let Some(n) = args.pipeline {
        main.pipeline = n;
    }
    if let Some(r) = args.rate {
        main.rate = Some(r);
    }
    let heavy_flags = args.heavy_connections.is_some()
        || args.heavy_value_size.is_some()
        || args.heavy_multiget.is_some()
        || args.heavy_pipeline.is_some()
        || args.heavy_keys.is_some();
    match heavy.as_mut() {
        Some(h) => {
            if let Some(n) = args.heavy_connections {
                h.connections = n;
            }
            if let Some(v) = args.heavy_value_size {
                h.value_size = v;
            }
            if let Some(n) = args.heavy_multiget {
                h.multiget = n;
            }
            if let Some(n) = args.heavy_pipeline {
                h.pipeline = n;
            }
            if let Some(n) = args.heavy_keys {
                h.keys = n;
            }
        }
        None if heavy_flags => bail!("the --heavy-* flags apply to --workload skewed only"),
        None => {}
    }
    let mut groups = vec![main];
    groups.extend(heavy);
    if groups.len() > 1 {
        // skewed with --connections 0 or --heavy-connections 0: one kind only.
        groups.retain(|g| g.connections > 0);
        ensure!(!groups.is_empty(), "no connections at all");
    }
    for g in &groups {
        validate(g)?;
    }
    if name == WorkloadName::Churn {
        let g = &groups[0];
        ensure!(
            g.rate.is_none(),
            "churn is closed loop: each client opens its next connection when the last reply is in (no --rate)"
        );
        ensure!(
            g.pipeline == 1,
            "churn sends one request per connection (no --pipeline)"
        );
    }
    Ok(Plan {
        workload: name,
        groups,
        warmup: args.warmup.unwrap_or(!args.no_warmup),
    })
}

fn validate(g: &GroupSpec) -> Result<()> {
    let what = &g.name;
    ensure!(g.connections >= 1, "{what}: at least one connection");
    ensure!(
        g.connections <= 100_000,
        "{what}: at most 100000 connections"
    );
    ensure!(g.keys >= 1, "{what}: at least one key");
    ensure!(g.pipeline >= 1, "{what}: pipeline depth must be at least 1");
    ensure!(g.pipeline <= 4096, "{what}: pipeline depth at most 4096");
    ensure!(
        (1..=1024).contains(&g.multiget),
        "{what}: 1 to 1024 keys per get"
    );
    ensure!(
        g.key_prefix.len() + 20 <= MAX_KEY_LEN,
        "{what}: key prefix too long (keys are at most {MAX_KEY_LEN} bytes)"
    );
    ensure!(
        g.key_prefix
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b' '),
        "{what}: key prefix must be printable ASCII without spaces"
    );
    if let Some(rate) = g.rate {
        ensure!(
            rate.is_finite() && rate > 0.0 && rate <= 10_000_000.0,
            "{what}: rate must be in (0, 1e7] requests/s"
        );
    }
    Ok(())
}

/// Reads a positive number of seconds, at most a day.
pub fn parse_seconds(text: &str) -> Result<f64, String> {
    let secs: f64 = text
        .parse()
        .map_err(|_| format!("not a number of seconds: {text}"))?;
    if secs.is_finite() && secs > 0.0 && secs <= 86_400.0 {
        Ok(secs)
    } else {
        Err(format!("seconds must be in (0, 86400]: {text}"))
    }
}

/// The random numbers behind key choice, value sizes and mixes: the
/// library's generator, the one the server draws service times with.
pub use kvserve::engine::work::Rng;

#[cfg(test)]
mod tests;
