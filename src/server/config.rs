//! The command line, in memcached's spelling where a flag means the same.

use std::str::FromStr;

use clap::{Parser, ValueEnum};

use crate::engine::work::WorkModel;

/// How threads accept, read and dispatch requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Pattern {
    /// One thread does everything in one event loop (Node.js).
    Basic,
    /// An acceptor hands connections to N event-loop threads (memcached).
    MultiReader,
    /// One dispatch thread does all I/O and parsing; N workers execute (RAMCloud).
    WorkerPool,
    /// Readers own connections as in multi-reader; an idle reader steals
    /// parsed batches from a busy one (ZygOS).
    WorkStealing,
    /// N event loops, each with its own listener on the same port
    /// (SO_REUSEPORT): the kernel deals connections by hash (NGINX's reuseport).
    Reuseport,
}

impl Pattern {
    /// Every pattern, in the order the docs draw them: the one list that
    /// kvbench starts and the tests run each scenario against.
    pub const ALL: [Pattern; 5] = [
        Pattern::Basic,
        Pattern::MultiReader,
        Pattern::WorkerPool,
        Pattern::WorkStealing,
        Pattern::Reuseport,
    ];

    /// The pattern as `--pattern` spells it, and as `stats` reports it.
    pub fn name(self) -> &'static str {
        match self {
            Pattern::Basic => "basic",
            Pattern::MultiReader => "multi-reader",
            Pattern::WorkerPool => "worker-pool",
            Pattern::WorkStealing => "work-stealing",
            Pattern::Reuseport => "reuseport",
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
    /// Interfaces to listen on, as memcached takes them: `-l` again, or
    /// several separated by commas; each HOST, HOST:PORT or [IPV6]:PORT
    /// (without a port, -p's). With -Z, the prefix `notls:` makes one
    /// plaintext beside the TLS ones (e.g. -l 0.0.0.0,notls:127.0.0.1:11212).
    #[arg(short = 'l', long, default_value = "127.0.0.1", value_delimiter = ',')]
    pub listen: Vec<String>,
    /// TLS on every listener without the `notls:` prefix, with the
    /// certificate -o ssl_chain_cert and ssl_key name (memcached's -Z).
    #[arg(short = 'Z', long = "enable-ssl")]
    pub enable_ssl: bool,
    /// memcached's extended options, comma-separated, -o again for more.
    /// kvserve takes its TLS ones: ssl_chain_cert=FILE, ssl_key=FILE,
    /// ssl_ca_cert=FILE, ssl_verify_mode=0-3 (none, request, require,
    /// once), ssl_min_version=0-3 (TLS 1.0-1.3; rustls speaks 1.2 and 1.3),
    /// ssl_session_cache (resumption), ssl_wbuf_size=KIB.
    #[arg(short = 'o', long = "extended", value_name = "OPTIONS")]
    pub extended: Vec<String>,
    /// Reader threads (multi-reader, work-stealing), worker threads
    /// (worker-pool) or event loops (reuseport); the acceptor or dispatch
    /// thread comes on top. basic always uses one.
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
    /// Clients must authenticate first, memcached's ASCII way: FILE holds
    /// `user:password` lines, and a client sends `set <any key> 0 0
    /// <bytes>` with `<user> <password>` as the value, answered `STORED`.
    /// Reloaded on SIGHUP.
    #[arg(short = 'Y', long, value_name = "FILE")]
    pub auth_file: Option<String>,
    /// Service time of every request, spent on the thread that executes
    /// it, drawn per request: KIND is spin (burn CPU, as a computation) or
    /// block (sleep, as a synchronous call to a backend); DIST is fixed:T,
    /// exp:MEAN or bimodal:SHORT:LONG:P_LONG, times with a us or ms suffix
    /// (e.g. block:exp:100us, spin:fixed:50us, block:bimodal:25us:750us:0.1).
    /// This is the knob that shows when a worker pool pays off.
    #[arg(long, value_name = "KIND:DIST", value_parser = parse_work, conflicts_with = "work_us")]
    pub work: Option<WorkModel>,
    /// N µs of CPU on every request: the same as --work spin:fixed:Nus
    /// (0: no work).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub work_us: u64,
    /// Ask the kernel when each request arrived, for the `socket` and
    /// `wakeup` stages of `stats latency` (the other stages are always
    /// timed). Off by default: once one socket asks, the kernel stamps
    /// every packet the machine receives, which costs about 0.6 µs per
    /// loopback request and reply (benches/stages.rs), 8% of a request's
    /// CPU without pipelining. kvbench sweep turns it on.
    #[arg(long)]
    pub stamp_arrivals: bool,
    /// Time one batch of requests in N on each thread for `stats latency`
    /// (1: every one). A timed batch costs four clock reads and its records,
    /// 155 ns (benches/stages.rs), 2% of a request's CPU without pipelining;
    /// one in 16 makes that 0.1%.
    #[arg(long, value_name = "N", default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..))]
    pub stage_sample: u32,
    /// More logging: -v debug, -vv trace (RUST_LOG overrides; default info).
    #[arg(short = 'v', action = clap::ArgAction::Count)]
    pub verbose: u8,
}

/// One `-l` address: where, and whether TLS is off on it (`notls:`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListenSpec {
    pub host: String,
    /// `None`: the `-p` port.
    pub port: Option<u16>,
    pub notls: bool,
}

impl ListenSpec {
    /// Reads `[notls:]HOST[:PORT]`, `[notls:][IPV6]:PORT` or a bare IPv6
    /// address, as memcached does.
    pub fn parse(text: &str) -> Result<ListenSpec, String> {
        let (notls, rest) = match text.strip_prefix("notls:") {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let port = |p: &str| {
            p.parse::<u16>()
                .map_err(|_| format!("not a port in -l {text}: {p}"))
        };
        let (host, port) = if let Some(bracketed) = rest.strip_prefix('[') {
            let (host, after) = bracketed
                .split_once(']')
                .ok_or_else(|| format!("no closing ] in -l {text}"))?;
            match after.strip_prefix(':') {
                Some(p) => (host, Some(port(p)?)),
                None if after.is_empty() => (host, None),
                None => return Err(format!("cannot read -l {text}")),
            }
        } else {
            match rest.split_once(':') {
                Some((host, p)) if !p.contains(':') => (host, Some(port(p)?)),
                _ => (rest, None),
            }
        };
        if host.is_empty() {
            return Err(format!("no host in -l {text}"));
        }
        Ok(ListenSpec {
            host: host.to_string(),
            port,
            notls,
        })
    }
}

/// Flags memcached refuses to start with: its message on stderr and its
/// exit status, matched so that scripts see the same refusal.
#[derive(Debug, PartialEq, Eq)]
pub struct Refusal {
    /// memcached's line, word for word.
    pub message: &'static str,
    /// memcached's exit status: 1, or 64 (`EX_USAGE`).
    pub exit_code: i32,
}

impl Config {
    /// The first setting memcached 1.6 would refuse, checked in its order:
    /// `-t 0` (exit 1, while reading flags), then an item size limit above
    /// half the memory limit (exit 64, `EX_USAGE`), which refuses `-m 0`,
    /// then one above a gigabyte (exit 64; this also keeps an item's
    /// length within the store's 32 bits).
    pub fn refusal(&self) -> Option<Refusal> {
        if self.threads == Some(0) {
            return Some(Refusal {
                message: "Number of threads must be greater than 0",
                exit_code: 1,
            });
        }
        let memory = self.memory_limit.saturating_mul(1024 * 1024);
        if self.max_item_size > memory / 2 {
            return Some(Refusal {
                message: "Cannot set item size limit higher than 1/2 of memory max.",
                exit_code: 64,
            });
        }
        if self.max_item_size > MAX_ITEM_SIZE_LIMIT {
            return Some(Refusal {
                message: "Cannot set item size limit higher than a gigabyte.",
                exit_code: 64,
            });
        }
        None
    }

    /// Reader or worker threads, after defaults.
    pub fn threads(&self) -> usize {
        match self.pattern {
            Pattern::Basic => 1,
            _ => self.threads.unwrap_or_else(num_cpus::get).max(1),
        }
    }

    /// The service-time model, from `--work` or `--work-us`; `None` when
    /// requests get no added work (neither flag, or `--work-us 0`).
    pub fn work(&self) -> Option<WorkModel> {
        match (self.work, self.work_us) {
            (Some(model), _) => Some(model),
            (None, 0) => None,
            (None, us) => Some(WorkModel::spin_us(us)),
        }
    }
}

/// Reads `--work`; the error names the accepted forms, and clap puts the
/// flag in front of it.
fn parse_work(text: &str) -> Result<WorkModel, String> {
    WorkModel::from_str(text)
}

/// The largest `-I` memcached takes (its `ITEM_SIZE_MAX_UPPER_LIMIT`).
pub const MAX_ITEM_SIZE_LIMIT: usize = 1024 * 1024 * 1024;

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
    fn refusals_in_memcacheds_order() {
        let refusal = |args: &[&str]| {
            let argv = ["kvserve"].iter().chain(args).copied();
            Config::try_parse_from(argv).unwrap().refusal()
        };
        assert_eq!(refusal(&[]), None);
        assert_eq!(refusal(&["-m", "2"]), None);
        assert_eq!(refusal(&["-m", "1", "-I", "512k"]), None);
        assert_eq!(refusal(&["-t", "0", "-m", "0"]).unwrap().exit_code, 1);
        assert_eq!(refusal(&["-m", "0"]).unwrap().exit_code, 64);
        assert_eq!(refusal(&["-m", "1"]).unwrap().exit_code, 64);
        assert_eq!(refusal(&["-m", "4096", "-I", "1024m"]), None);
        let too_large = refusal(&["-m", "4096", "-I", "1025m"]).unwrap();
        assert_eq!(
            (too_large.message, too_large.exit_code),
            ("Cannot set item size limit higher than a gigabyte.", 64)
        );
        assert_eq!(refusal(&["-t", "0", "-I", "1025m"]).unwrap().exit_code, 1);
    }

    #[test]
    fn all_lists_every_pattern_once_as_the_flag_spells_it() {
        assert_eq!(Pattern::ALL, Pattern::value_variants());
        for pattern in Pattern::ALL {
            let flag = pattern.to_possible_value().expect("no pattern is hidden");
            assert_eq!(flag.get_name(), pattern.name());
        }
    }

    #[test]
    fn basic_has_one_thread() {
        let config = Config::parse_from(["kvserve", "--pattern", "basic", "-t", "8"]);
        assert_eq!(config.threads(), 1);
        let config = Config::parse_from(["kvserve", "--pattern", "worker-pool", "-t", "8"]);
        assert_eq!(config.threads(), 8);
    }

    fn work_of(args: &[&str]) -> Option<WorkModel> {
        let argv = ["kvserve"].iter().chain(args).copied();
        Config::try_parse_from(argv).unwrap().work()
    }

    #[test]
    fn work_from_either_flag() {
        assert_eq!(work_of(&[]), None);
        assert_eq!(work_of(&["--work-us", "0"]), None);
        assert_eq!(work_of(&["--work-us", "5"]), Some(WorkModel::spin_us(5)));
        let model = work_of(&["--work", "block:exp:100us"]).unwrap();
        assert_eq!(model.to_string(), "block:exp:100us");
        let model = work_of(&["--work=block:bimodal:25us:0.75ms:0.1"]).unwrap();
        assert_eq!(model.to_string(), "block:bimodal:25us:750us:0.1");
        assert_eq!(
            work_of(&["--work", "spin:fixed:50us"]),
            Some(WorkModel::spin_us(50))
        );
    }

    #[test]
    fn malformed_work_is_a_usage_error_naming_the_forms() {
        for value in ["walk:fixed:5us", "block:exp", "spin:fixed:5", ""] {
            let err = Config::try_parse_from(["kvserve", "--work", value]).unwrap_err();
            assert_eq!(
                err.kind(),
                clap::error::ErrorKind::ValueValidation,
                "{value}"
            );
            assert_eq!(err.exit_code(), 2, "{value}");
            let text = err.to_string();
            assert!(text.contains("--work"), "{value}: {text}");
            assert!(text.contains("spin or block"), "{value}: {text}");
        }
    }

    #[test]
    fn work_and_work_us_conflict() {
        let err = Config::try_parse_from(["kvserve", "--work-us", "5", "--work", "spin:fixed:5us"])
            .unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::ArgumentConflict);
        assert_eq!(err.exit_code(), 2);
        let text = err.to_string();
        assert!(text.contains("--work"), "{text}");
        // Explicit --work-us 0 conflicts too: the two are one setting.
        assert!(
            Config::try_parse_from(["kvserve", "--work-us", "0", "--work", "block:exp:1ms"])
                .is_err()
        );
    }
}
