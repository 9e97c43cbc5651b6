//! A server under the sweep, and the queueing model of its pattern.

use std::time::Duration;

use kvserve::engine::work::ServiceDist;
use kvserve::server::batch::SLICE;

use anyhow::{bail, ensure, Context, Result};

use super::super::compare::{launcher, RUN_TIMEOUT};
use super::super::run::endpoint;
use crate::cli::{trust, SweepArgs};
use crate::load::workload::Security;
use crate::measure::anatomy::Anatomy;
use crate::measure::cpus::Affinity;
use crate::measure::stats;
use crate::measure::stats::{ServerInfo, WorkDone};
use crate::model::empirical::Empirical;
use crate::model::{Discipline, Overheads, Scenario};
use crate::net::Endpoint;
use crate::servers;
use crate::servers::ServerProc;

/// The servers: every `--patterns` kvserve with `--work`, or `--server`.
pub fn start_all(args: &SweepArgs) -> Result<Vec<Subject>> {
    let mut out = Vec::new();
    if let Some(server) = &args.server {
        let endpoint = endpoint(
            server,
            args.allow_remote,
            trust(args.servers.tls, args.tls_ca.as_ref(), args.tls_insecure),
            args.servers.auth.clone(),
            false,
        )?;
        endpoint.check(RUN_TIMEOUT)?;
        if let Some(list) = &args.servers.client_cpus {
            Affinity::of(list)
                .apply()
                .with_context(|| format!("--client-cpus {list}"))?;
        }
        let info = stats::server_info(&endpoint, RUN_TIMEOUT)
            .with_context(|| format!("reading `stats` of {server}"))?;
        let label = info.pattern.clone().unwrap_or_else(|| server.clone());
        out.push(Subject {
            label,
            server: endpoint,
            process: None,
            info,
            loads: Vec::new(),
        });
        return Ok(out);
    }
    let Some(work) = args.work else {
        bail!("--work is needed to start the patterns (or --server to drive one)");
    };
    let mut servers = args.servers.clone();
    servers.server_args.push(format!("--work={work}"));
    // Every batch's stage times, with the socket and wakeup stages, for
    // the anatomy and model+.
    servers.server_args.push("--stamp-arrivals".into());
    servers.server_args.push("--stage-sample=1".into());
    let launcher = launcher(&servers, servers.tls)?;
    let security = if servers.tls {
        Security::Tls
    } else {
        Security::Plain
    };
    for target in servers::targets(&servers.patterns, Some(false))? {
        let process = launcher.start(&target, servers.tls)?;
        let endpoint = launcher.endpoint(&process, security)?;
        endpoint.check(RUN_TIMEOUT)?;
        let info = stats::server_info(&endpoint, RUN_TIMEOUT)?;
        ensure!(
            info.work == Some(work),
            "{} reports work model {:?}, not {work}",
            target.label(),
            info.work
        );
        out.push(Subject {
            label: target.label().to_string(),
            server: endpoint,
            process: Some(process),
            info,
            loads: Vec::new(),
        });
    }
    Ok(out)
}

/// The model uses the service time actually spent when it differs from
/// the asked one by more than this share.
const SERVICE_TOLERANCE: f64 = 0.05;

/// An offered load: requests/s, and its share of capacity in percent
/// when capacity is known.
pub type Load = (f64, Option<f64>);

/// A server under the sweep.
pub struct Subject {
    pub label: String,
    /// How to reach it, over TLS and authenticated as asked.
    pub server: Endpoint,
    /// The process, when the sweep started it (stopped at the end).
    pub process: Option<ServerProc>,
    pub info: ServerInfo,
    /// Its loads (req/s, % of capacity), ascending: the sweep's, and lower
    /// ones when it missed the objective at the lowest.
    pub loads: Vec<Load>,
}

impl Subject {
    /// The queueing discipline of the server's pattern, if it is kvserve.
    pub fn discipline(&self) -> Option<Discipline> {
        let k = self.info.threads.unwrap_or(1).max(1);
        match self.info.pattern.as_deref()? {
            "basic" => Some(Discipline::Single),
            "multi-reader" => Some(Discipline::Partitioned { servers: k }),
            "worker-pool" => Some(Discipline::Central { servers: k }),
            // Ideal stealing: no reader idles while a batch waits anywhere,
            // which is the central queue (with the same slice); real
            // stealing approaches it from above.
            "work-stealing" => Some(Discipline::Central { servers: k }),
            "reuseport" => Some(Discipline::Hashed { servers: k }),
            _ => None,
        }
    }

    /// The model's scenario at `rate`, with `service` as the service time.
    pub fn scenario(&self, args: &SweepArgs, rate: f64, service: Service) -> Option<Scenario> {
        let discipline = self.discipline()?;
        Some(Scenario {
            discipline,
            connections: args.connections as usize,
            rate,
            duration: Duration::from_secs_f64(args.duration),
            service: service.dist,
            overhead: service.overhead,
            batch_limit: self.info.reqs_per_event.unwrap_or(20),
            slice: matches!(discipline, Discipline::Central { .. }).then_some(SLICE),
            seed: args.seed,
            measured: None,
        })
    }

    /// What this machine adds to the pattern's discipline, from the stage
    /// times (`here`: at the load modelled; `lowest`: at the server's
    /// lowest load, where nothing queued).
    ///
    /// The work a thread does is taken `here`, since it grows with load (a
    /// sleep overruns more, and a thread waits longer for a core, when the
    /// CPUs are busy): the service, and what else holds the executing
    /// thread: writing the reply, and parsing where the same thread parses.
    ///
    /// The waits mix overhead with queueing, which the discipline models
    /// itself. Where the thread that reads also executes (the event loops,
    /// work-stealing's readers), a request's wait in the socket is mostly
    /// its queue behind that thread's other work; only the wake-up of a
    /// thread that slept is overhead, taken `here` with the share of
    /// requests that paid it. Where another thread reads and parses
    /// (worker-pool's dispatch), the discipline's queue starts after the
    /// parse, so that thread's wait and parsing are all overhead, taken
    /// `here`. The hand-off to a central queue holds the queue's wait as
    /// well as the overhead (the worker's wake-up, or the wait until a
    /// reader takes or steals the batch), so it is taken at the `lowest`
    /// load; in an event loop the wait between parse and execution is
    /// queueing behind its other connections. Last, the client's median
    /// latency beyond the server's at the `lowest` load: network and client.
    pub fn overheads(
        &self,
        here: &Anatomy,
        lowest: &Anatomy,
        lowest_p50_us: f64,
    ) -> Option<Overheads> {
        let dist =
            |a: &Anatomy, stage: &str| Empirical::from_quantiles_us(&a.stage(stage)?.quantiles);
        let role = |stage: &str| here.stage(stage).map(|s| s.role.as_str());
        let apart = role("parse") != role("execute");
        let mut on_server = vec![dist(here, "write")?];
        let mut delays = Vec::new();
        if apart {
            delays.push(dist(here, "socket")?);
            delays.push(dist(here, "parse")?);
        } else {
            on_server.push(dist(here, "parse")?);
            if let (Some(wakeup), Some(woke)) = (dist(here, "wakeup"), here.stage("wakeup")) {
                let requests = here.stage("server").map_or(0, |s| s.count).max(1);
                delays.push(wakeup.occurring(woke.count as f64 / requests as f64));
            }
        }
        if matches!(self.discipline()?, Discipline::Central { .. }) {
            delays.push(dist(lowest, "handoff")?);
        }
        let inside = lowest.at("socket", 0.5) + lowest.at("server", 0.5);
        delays.push(Empirical::constant((lowest_p50_us - inside).max(0.0) * 1e3));
        Some(Overheads {
            service: dist(here, "service")?,
            on_server,
            delays,
        })
    }

    /// The process id, when the sweep started the server.
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(ServerProc::pid)
    }
}

/// The service time the model is fed: the asked distribution, plus the
/// mean time the server spent beyond it per request when that is more than
/// [`SERVICE_TOLERANCE`] of the asked mean (a sleep wakes late by a roughly
/// constant timer latency, so the excess is added, not scaled).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Service {
    pub dist: ServiceDist,
    pub overhead: Duration,
}

impl Service {
    pub fn of(dist: ServiceDist, done: WorkDone) -> Service {
        let overhead = if done.requests > 0 && done.asked_us > 0 {
            let excess = done.spent_us as f64 / done.asked_us as f64 - 1.0;
            if excess.abs() > SERVICE_TOLERANCE {
                let per_request =
                    (done.spent_us as f64 - done.asked_us as f64) / done.requests as f64;
                Duration::from_secs_f64(per_request.max(0.0) * 1e-6)
            } else {
                Duration::ZERO
            }
        } else {
            Duration::ZERO
        };
        Service { dist, overhead }
    }

    pub fn mean(&self) -> Duration {
        self.dist.mean() + self.overhead
    }

    pub fn describe(&self) -> String {
        if self.overhead.is_zero() {
            self.dist.to_string()
        } else {
            format!("{} + {:.1}us", self.dist, self.overhead.as_secs_f64() * 1e6)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::anatomy::StageTimes;

    fn subject(pattern: &str) -> Subject {
        Subject {
            label: pattern.into(),
            server: Endpoint::plain("127.0.0.1:1".parse().unwrap()),
            process: None,
            info: ServerInfo {
                pattern: Some(pattern.into()),
                threads: Some(4),
                ..ServerInfo::default()
            },
            loads: Vec::new(),
        }
    }

    /// Every stage at `us` (p50 = p99 = max), done by `reads` up to the
    /// parse and by `executes` after; 100 requests, `woke` wake-ups.
    fn anatomy(reads: &str, executes: &str, us: f64, woke: u64) -> Anatomy {
        let mut a = Anatomy::default();
        for stage in [
            "socket", "wakeup", "parse", "handoff", "execute", "write", "server", "service",
        ] {
            let role = match stage {
                "socket" | "wakeup" | "parse" => reads,
                "server" => "all",
                _ => executes,
            };
            let count = if stage == "wakeup" { woke } else { 100 };
            let times = StageTimes {
                role: role.into(),
                count,
                mean_us: us,
                quantiles: vec![(0.5, us), (0.99, us), (1.0, us)],
            };
            a.stages.insert(stage.into(), times);
        }
        a
    }

    #[test]
    fn overheads_take_the_waits_that_are_not_the_disciplines_queue() {
        // worker-pool: the dispatch thread's wait and parse here, the
        // hand-off at the lowest load, the client's excess there.
        let here = anatomy("dispatch", "worker", 10.0, 20);
        let lowest = anatomy("dispatch", "worker", 2.0, 90);
        let o = subject("worker-pool")
            .overheads(&here, &lowest, 50.0)
            .unwrap();
        let means: Vec<f64> = o.delays.iter().map(|d| d.mean().round()).collect();
        // socket 10, parse 10, handoff 2, outside 50 - (2 + 2).
        assert_eq!(means, vec![10_000.0, 10_000.0, 2_000.0, 46_000.0]);
        assert_eq!(o.on_server.len(), 1, "the worker writes");
        assert_eq!(o.service.mean(), 10_000.0);
        // multi-reader: the loop parses and writes; of its wait only the
        // wake-up, for the fifth of requests that found it asleep; no hand-off.
        let here = anatomy("reader", "reader", 10.0, 20);
        let lowest = anatomy("reader", "reader", 2.0, 90);
        let o = subject("multi-reader")
            .overheads(&here, &lowest, 50.0)
            .unwrap();
        let means: Vec<f64> = o.delays.iter().map(|d| d.mean().round()).collect();
        assert_eq!(means, vec![2_000.0, 46_000.0]);
        assert_eq!(o.on_server.len(), 2, "the loop parses and writes");
        // work-stealing: readers execute, so as multi-reader, plus the
        // wait until a reader takes the batch.
        let o = subject("work-stealing")
            .overheads(&here, &lowest, 50.0)
            .unwrap();
        let means: Vec<f64> = o.delays.iter().map(|d| d.mean().round()).collect();
        assert_eq!(means, vec![2_000.0, 2_000.0, 46_000.0]);
    }

    #[test]
    fn the_model_gets_the_excess_only_past_the_tolerance() {
        let dist = ServiceDist::Exp {
            mean: Duration::from_micros(100),
        };
        let done = |asked_us, spent_us| WorkDone {
            requests: 1000,
            asked_us,
            spent_us,
        };
        // 3% over: within tolerance, the asked distribution as it is.
        let s = Service::of(dist, done(100_000, 103_000));
        assert_eq!(s.overhead, Duration::ZERO);
        assert_eq!(s.describe(), "exp:100us");
        // 12% over: 12 µs per request added.
        let s = Service::of(dist, done(100_000, 112_000));
        assert_eq!(s.overhead, Duration::from_micros(12));
        assert_eq!(s.mean(), Duration::from_micros(112));
        assert_eq!(s.describe(), "exp:100us + 12.0us");
        // Nothing measured: as asked.
        assert_eq!(
            Service::of(dist, WorkDone::default()).overhead,
            Duration::ZERO
        );
    }
}
