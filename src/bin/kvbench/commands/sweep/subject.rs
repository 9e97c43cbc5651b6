//! A server under the sweep, and the queueing model of its pattern.

use std::net::SocketAddr;
use std::time::Duration;

use kvserve::engine::work::ServiceDist;
use kvserve::server::batch::SLICE;

use crate::cli::SweepArgs;
use crate::measure::stats::{ServerInfo, WorkDone};
use crate::model::{Discipline, Scenario};
use crate::servers::ServerProc;

/// The model uses the service time actually spent when it differs from
/// the asked one by more than this share.
const SERVICE_TOLERANCE: f64 = 0.05;

/// An offered load: requests/s, and its share of capacity in percent
/// when capacity is known.
pub type Load = (f64, Option<f64>);

/// A server under the sweep.
pub struct Subject {
    pub label: String,
    pub addr: SocketAddr,
    /// The process, when the sweep started it (stopped at the end).
    pub process: Option<ServerProc>,
    pub info: ServerInfo,
    /// Work done up to the start of the sweep (after the prefill).
    pub work_at_start: WorkDone,
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
