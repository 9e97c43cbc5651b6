//! The command line, in memcached's spelling where a flag means the same.

use clap::{Parser, ValueEnum};

/// How threads accept, read and dispatch requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Pattern {
    /// One thread does everything in one event loop (Node.js).
    Basic,
    /// An acceptor hands connections to N event-loop threads (memcached).
    MultiReader,
    /// One dispatch thread does all I/O and parsing; N workers execute (RAMCloud).
    WorkerPool,
}

impl Pattern {
    pub fn name(self) -> &'static str {
        match self {
            Pattern::Basic => "basic",
            Pattern::MultiReader => "multi-reader",
            Pattern::WorkerPool => "worker-pool",
        }
    }
}

/// kvserve: a memcached-compatible server for comparing threading patterns.
#[derive(Parser, Debug, Clone)]
#[command(version, about)]
pub struct Config {
    /// Threading pattern.
    #[arg(long, value_enum, default_value = "multi-reader")]
    pub pattern: Pattern,
    /// TCP port to listen on; 0 picks a free one.
    #[arg(short = 'p', long, default_value_t = 11211)]
    pub port: u16,
    /// Interface to listen on.
    #[arg(short = 'l', long, default_value = "127.0.0.1")]
    pub listen: String,
    /// Reader threads (multi-reader) or worker threads (worker-pool); the
    /// acceptor or dispatch thread comes on top. basic always uses one.
    /// Default: the number of cores.
    #[arg(short = 't', long)]
    pub threads: Option<usize>,
    /// Item memory limit in MiB.
    #[arg(short = 'm', long, default_value_t = 64)]
    pub memory_limit: usize,
    /// Most simultaneous connections; more are refused with
    /// `ERROR Too many open connections`.
    #[arg(short = 'c', long, default_value_t = 4096)]
    pub max_conns: usize,
    /// Largest item (key, value and header), e.g. 1m, 512k or bytes.
    #[arg(short = 'I', long, default_value = "1m", value_parser = parse_size)]
    pub max_item_size: usize,
    /// Requests served from one connection before an event loop moves on
    /// to the next (fairness), and the largest worker-pool batch.
    #[arg(short = 'R', long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
    pub reqs_per_event: u32,
    /// Unsent reply bytes a connection may have before the server stops
    /// reading its requests until the client reads (backpressure).
    #[arg(long, default_value = "256k", value_parser = parse_size)]
    pub max_pending_output: usize,
    /// Close connections whose client has sent nothing for this many
    /// seconds (0: never), as memcached's `idle_timeout`.
    #[arg(long, default_value_t = 0)]
    pub idle_timeout: u64,
    /// Microseconds of CPU work the executing thread spends on every
    /// request: models backends where processing, not I/O, dominates. This
    /// is the knob that shows when a worker pool pays off.
    #[arg(long, default_value_t = 0)]
    pub work_us: u64,
    /// More logging: -v debug, -vv trace (RUST_LOG overrides; default info).
    #[arg(short = 'v', action = clap::ArgAction::Count)]
    pub verbose: u8,
}

impl Config {
    /// Reader or worker threads, after defaults.
    pub fn threads(&self) -> usize {
        match self.pattern {
            Pattern::Basic => 1,
            _ => self.threads.unwrap_or_else(num_cpus::get).max(1),
        }
    }
}

/// Reads sizes as memcached's `-I` does: bytes, or with a k or m suffix.
fn parse_size(text: &str) -> Result<usize, String> {
    let lower = text.to_ascii_lowercase();
    let (digits, unit) = match lower.strip_suffix('k') {
        Some(d) => (d, 1024),
        None => match lower.strip_suffix('m') {
            Some(d) => (d, 1024 * 1024),
            None => (lower.as_str(), 1),
        },
    };
    let n: usize = digits.parse().map_err(|_| format!("not a size: {text}"))?;
    n.checked_mul(unit)
        .filter(|&size| size >= 1024)
        .ok_or_else(|| format!("size out of range: {text}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1m"), Ok(1 << 20));
        assert_eq!(parse_size("512K"), Ok(512 << 10));
        assert_eq!(parse_size("2048"), Ok(2048));
        assert!(parse_size("12").is_err());
        assert!(parse_size("x").is_err());
    }

    #[test]
    fn basic_has_one_thread() {
        let config = Config::parse_from(["kvserve", "--pattern", "basic", "-t", "8"]);
        assert_eq!(config.threads(), 1);
        let config = Config::parse_from(["kvserve", "--pattern", "worker-pool", "-t", "8"]);
        assert_eq!(config.threads(), 8);
    }
}
