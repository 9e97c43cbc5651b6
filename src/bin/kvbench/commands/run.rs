//! `kvbench run`: drives one running server with one workload and reports.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::cli::RunArgs;
use crate::load::driver::{self, Options};
use crate::load::workload;
use crate::measure::cpus::Affinity;
use crate::report::{self, progress_bar};

/// Runs `kvbench run`.
pub fn run(args: &RunArgs) -> Result<()> {
    let server = resolve(&args.server, args.allow_remote)?;
    let plan = workload::plan(&args.workload)?;
    if let Some(list) = &args.client_cpus {
        // Before any client thread starts: they inherit it.
        Affinity::of(list)
            .apply()
            .with_context(|| format!("--client-cpus {list}"))?;
    }
    let opts = Options {
        server,
        duration: Duration::from_secs_f64(args.duration),
        client_threads: plan.client_threads(args.client_threads),
        timeout: Duration::from_secs_f64(args.workload.timeout),
        spin: Duration::from_micros(args.workload.spin_us),
        seed: args.workload.seed,
    };
    let bar = progress_bar(args.quiet, plan.workload.name());
    let warm = driver::warmup(&plan, &opts, &bar);
    let result = driver::measure(&plan, &opts, &bar)?;
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
pub fn resolve(server: &str, allow_remote: bool) -> Result<SocketAddr> {
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
