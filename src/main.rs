//! The kvserve binary: flags, logging, then the chosen pattern.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use kvserve::server::{self, config::Config, process};
use tracing_subscriber::EnvFilter;

/// Starts the server; an error that stops it (a port in use, an address
/// that does not resolve) is printed without a stack trace, and exits 1.
fn main() -> ExitCode {
    let config = Config::parse();
    if let Some(refusal) = config.refusal() {
        eprintln!("{}", refusal.message);
        std::process::exit(refusal.exit_code);
    }
    // As memcached: -v adds errors and refusals per connection, -vv each
    // command and reply. Other crates (the poller's trace) stay at warn;
    // rustls at error, or every client's refused renegotiation would log
    // a warning (kvserve logs TLS failures per connection at -v).
    let level = match config.verbose {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let filter = format!("warn,rustls=error,kvserve={level}");
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(filter)),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        // A log line that cannot be written (stderr a pipe nobody reads
        // any more) is dropped: the default reports it with `eprintln!`,
        // which panics on the same closed pipe, in whichever thread logged.
        .log_internal_errors(false)
        .init();
    process::exit_code(server::run(&config))
}
