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
//! - [`servers`]: starting and stopping the servers under test.

mod cli;
mod commands;
mod load;
mod measure;
mod model;
mod report;
mod servers;
mod view;

use anyhow::Result;
use clap::Parser;

use cli::{Cli, Command};

fn main() -> Result<()> {
    let cli = Cli::parse();
    raise_fd_limit();
    match cli.command {
        Command::Run(args) => commands::run::run(&args),
        Command::Compare(args) => commands::compare::compare(&args),
        Command::Sweep(args) => commands::sweep::sweep(&args),
        Command::Top(args) => commands::top::top(&args),
    }
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
