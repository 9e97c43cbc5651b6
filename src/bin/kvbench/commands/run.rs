//! `kvbench run`: drives one running server with one workload and reports.

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::cli::RunArgs;
use crate::load::driver;
use crate::load::options::Options;
use crate::load::warmup;
use crate::load::workload;
use crate::measure::cpus::Affinity;
use crate::measure::noise::NoiseMeter;
use crate::net::auth::Credentials;
use crate::net::tls::{TlsClient, Trust};
use crate::net::Endpoint;
use crate::report::{self, progress_bar, RunReport};

/// Runs `kvbench run`.
pub fn run(args: &RunArgs) -> Result<()> {
    let server = endpoint(
        &args.server,
        args.allow_remote,
        args.security.trust(),
        args.security.auth.clone(),
        args.tls_resume,
    )?;
    let plan = workload::plan(&args.workload)?;
    let timeout = Duration::from_secs_f64(args.workload.timeout);
    server.check(timeout)?;
    // Every CPU kvbench may use, before --client-cpus narrows it: the
    // server's are among them.
    let machine = Affinity::current().context("reading kvbench's CPU affinity")?;
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
        timeout,
        spin: Duration::from_micros(args.workload.spin_us),
        seed: args.workload.seed,
    };
    let bar = progress_bar(args.quiet, plan.workload.name());
    let warm = warmup::warmup(&plan, &opts, &bar);
    // The server is not kvbench's: its work cannot be told from other
    // processes', so only the platform's stalls are watched.
    let meter = NoiseMeter::start(&machine.list())?;
    let window = meter.begin(None);
    let result = driver::measure(&plan, &opts, &bar)?;
    let noise = meter.end(window, None);
    bar.finish_and_clear();
    let mut report = report::run_report(&plan, &opts, &warm, &result);
    report.noise = Some(noise);
    measured(&report)?;
    if args.json {
        report::print_stdout(&(serde_json::to_string_pretty(&report)? + "\n"))
    } else {
        report::print_stdout(&report::render_run(&report))
    }
}

/// A run that got no reply at all measured nothing: it fails (a table of
/// zeros would pass for a result in a script), saying why.
fn measured(report: &RunReport) -> Result<()> {
    let t = &report.total;
    if t.requests > 0 {
        return Ok(());
    }
    let first = t.first_error.as_deref().unwrap_or("none");
    if t.connect_failures as usize == report.connections {
        bail!(
            "cannot connect to {}: all {} connections failed (first error: {first})",
            report.server,
            report.connections
        );
    }
    bail!(
        "no replies from {} in {:.1} s: {} of {} connections failed to connect, {} errors (first: {first})",
        report.server,
        report.duration_s,
        t.connect_failures,
        report.connections,
        t.errors
    )
}

/// How to reach `server` (HOST:PORT), loopback only unless `allow_remote`:
/// over TLS trusting `trust` (the certificate must name HOST), with
/// `auth`'s credentials; `resume`: connections resume TLS sessions.
pub fn endpoint(
    server: &str,
    allow_remote: bool,
    trust: Option<Trust>,
    auth: Option<Credentials>,
    resume: bool,
) -> Result<Endpoint> {
    let addr = resolve(server, allow_remote)?;
    let tls = trust
        .map(|trust| TlsClient::new(&trust, host(server), resume).map(Arc::new))
        .transpose()?;
    Ok(Endpoint::plain(addr).with_tls(tls).with_auth(auth))
}

/// The host of HOST:PORT, without an IPv6 address's brackets.
fn host(server: &str) -> &str {
    let host = server.rsplit_once(':').map_or(server, |(host, _)| host);
    host.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
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

    #[test]
    fn the_certificate_must_name_the_host_as_given() {
        assert_eq!(host("127.0.0.1:11211"), "127.0.0.1");
        assert_eq!(host("localhost:1"), "localhost");
        assert_eq!(host("[::1]:11211"), "::1");
        let server = endpoint("[::1]:1", false, Some(Trust::Any), None, false).unwrap();
        assert!(server.is_tls());
        assert!(!endpoint("127.0.0.1:1", false, None, None, false)
            .unwrap()
            .is_tls());
    }
}
