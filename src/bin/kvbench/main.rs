//! kvbench: load generator for memcached-text servers, side-by-side
//! comparison of kvserve's threading patterns, latency against offered
//! load beside the queueing model, and a live view of a server's threads.
//!
//! - [`cli`]: the flags; [`commands`]: `run`, `compare`, `sweep`, `top`,
//!   each composed of the parts below.
//! - [`load`]: workloads, client connections, closed- and open-loop driving.
//! - [`measure`]: `stats`, `stats threads`, server CPU time, CPU pinning.
//! - [`model`]: the queueing model of each pattern, a discrete-event simulator.
//! - [`report`]: tables, JSON, SVG charts, the progress bar.
//! - [`view`]: `top`'s live view, full-screen or plain text.
//! - [`net`]: reaching a server: TCP, TLS, authentication.
//! - [`servers`]: starting and stopping the servers under test.

mod cli;
mod commands;
mod load;
mod measure;
mod model;
mod net;
mod report;
mod servers;
mod view;

use std::process::ExitCode;

use anyhow::Result;
use clap::Parser;
use kvserve::server::process::{self, raise_fd_limit};

use cli::{Cli, Command};

/// Runs the command; an error is printed without a stack trace, and
/// exits 1.
fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = cli.check() {
        e.exit();
    }
    process::exit_code(run(cli))
}

fn run(cli: Cli) -> Result<()> {
    // Best effort: past the limit, connections fail to open, and runs count
    // them as connect failures.
    let _ = raise_fd_limit();
    match cli.command {
        Command::Run(args) => commands::run::run(&args),
        Command::Compare(args) => commands::compare::compare(&args),
        Command::Sweep(args) => commands::sweep::sweep(&args),
        Command::Top(args) => commands::top::top(&args),
    }
}
