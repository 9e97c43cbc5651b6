//! The machine's noise during one measurement, and the rule that calls a
//! measurement disturbed (lancet's self-check, jHiccup's meter): on a
//! shared machine a measured point can be the platform's, not the
//! pattern's, and kvbench must say which.
//!
//! Three signals, each compared with the quantity it could spoil:
//! - **hiccups**: how late a top-priority thread on each CPU wakes
//!   ([`super::hiccups`]): stalls of the host, the kernel, interrupts;
//! - **other processes**: the share of the CPUs in use that went to work
//!   kvbench did not start ([`super::machine`]), the VM host's steal
//!   included: a build or a CPU hog beside the servers;
//! - **client lateness**: how long after its intended time each request
//!   left the client (open loop), which the latency includes.

use std::time::{Duration, Instant};

use anyhow::Result;
use serde::Serialize;

use super::cpus::CpuList;
use super::hiccups::{HiccupMeter, HiccupSummary};
use super::machine::{own_cpu_time, CpuTicks};
use super::server_cpu::process_cpu_time;

/// How long each hiccup-meter thread sleeps: 1 ms, as jHiccup; a wake-up
/// costs a few µs of CPU, under 1% of a core.
pub const HICCUP_INTERVAL: Duration = Duration::from_millis(1);

/// Watches the CPUs a command uses while it measures.
pub struct NoiseMeter {
    hiccups: HiccupMeter,
    cpus: CpuList,
}

/// The counters at the start of one measurement.
pub struct Window {
    started: Instant,
    ticks: Option<CpuTicks>,
    /// The processes kvbench started, whose CPU time is its own doing;
    /// `None` when it drives a server it did not start, whose work it
    /// cannot tell from other processes'.
    servers: Option<Vec<u32>>,
    known: Duration,
}

impl NoiseMeter {
    /// A meter on `cpus`: the servers' and the client's.
    pub fn start(cpus: &CpuList) -> Result<NoiseMeter> {
        Ok(NoiseMeter {
            hiccups: HiccupMeter::start(cpus, HICCUP_INTERVAL)?,
            cpus: cpus.clone(),
        })
    }

    /// Starts a window: what follows until [`NoiseMeter::end`] is
    /// measured, with the CPU time of `servers` (the process ids of the
    /// servers kvbench started and that run now) counted as its own.
    pub fn begin(&self, servers: Option<Vec<u32>>) -> Window {
        self.hiccups.take();
        Window {
            started: Instant::now(),
            ticks: CpuTicks::read(&self.cpus).ok(),
            known: known_cpu_time(servers.as_deref()),
            servers,
        }
    }

    /// The noise since `window` began; `late_p99_us` is the client's own
    /// lateness when it kept a schedule.
    pub fn end(&self, window: Window, late_p99_us: Option<f64>) -> Noise {
        let hiccups = self.hiccups.take().summary();
        let ticks = window
            .ticks
            .zip(CpuTicks::read(&self.cpus).ok())
            .map(|(before, after)| after.since(before));
        let known = known_cpu_time(window.servers.as_deref()).saturating_sub(window.known);
        Noise {
            seconds: window.started.elapsed().as_secs_f64(),
            hiccups,
            other_cpu: ticks
                .filter(|_| window.servers.is_some())
                .and_then(|t| t.share_not(known)),
            steal: ticks.and_then(CpuTicks::steal_share),
            late_p99_us,
        }
    }
}

/// The CPU time of `servers` and of kvbench itself.
fn known_cpu_time(servers: Option<&[u32]>) -> Duration {
    servers
        .into_iter()
        .flatten()
        .filter_map(|&pid| process_cpu_time(pid).ok())
        .sum::<Duration>()
        + own_cpu_time()
}

/// The noise of one measurement.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Noise {
    pub seconds: f64,
    pub hiccups: HiccupSummary,
    /// Share of the CPUs in use taken by other processes or the VM host.
    pub other_cpu: Option<f64>,
    /// The host's part of it.
    pub steal: Option<f64>,
    /// The client's lateness p99, µs (open loop only).
    pub late_p99_us: Option<f64>,
}

/// When a measurement counts as disturbed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Limits {
    /// Hiccup p99 above this (µs).
    pub hiccup_p99_us: f64,
    /// Client lateness p99 above this (µs).
    pub late_p99_us: f64,
    /// Other processes' share of the CPUs above this.
    pub other_cpu: f64,
}

/// Other processes may take this share of the CPUs in use before a
/// measurement is disturbed. Idle, this VM's daemons and the tick
/// sampling of `/proc/stat` leave 0-2%; a build or a CPU hog beside the
/// servers takes 30-100% of a core, that is 15-50% of two CPUs.
pub const OTHER_CPU_LIMIT: f64 = 0.05;

impl Limits {
    /// For a latency objective: the p99 a request may take.
    ///
    /// A quarter of the objective: the platform or the client adding that
    /// much to one request in a hundred moves a p99 that is near the
    /// objective (which decides max load at SLO) by a quarter of the way
    /// to it or more, beyond the few percent that separate neighbouring
    /// loads in a sweep; less is left in the measurement, and counted as
    /// part of every pattern's latency alike.
    pub fn for_slo(slo_us: f64) -> Limits {
        Limits {
            hiccup_p99_us: slo_us / 4.0,
            late_p99_us: slo_us / 4.0,
            other_cpu: OTHER_CPU_LIMIT,
        }
    }

    /// For throughput: closed-loop runs have no schedule to be late on,
    /// and lose to a stall what it takes of their time, so the hiccups
    /// count only when they stall 1% of the time (a p99 above the meter's
    /// sleep, 1 ms, means just that).
    pub fn for_throughput() -> Limits {
        Limits {
            hiccup_p99_us: HICCUP_INTERVAL.as_secs_f64() * 1e6,
            late_p99_us: f64::INFINITY,
            other_cpu: OTHER_CPU_LIMIT,
        }
    }
}

impl Noise {
    /// Why this measurement is disturbed, or `None` when it is clean.
    pub fn disturbed(&self, limits: &Limits) -> Option<String> {
        let mut why = Vec::new();
        if self.hiccups.p99_us > limits.hiccup_p99_us {
            why.push(format!(
                "platform stalls: hiccup p99 {}, max {}",
                short_time(self.hiccups.p99_us),
                short_time(self.hiccups.max_us)
            ));
        }
        if let Some(share) = self.other_cpu.filter(|&s| s > limits.other_cpu) {
            let steal = self
                .steal
                .filter(|&s| s >= 0.005)
                .map_or(String::new(), |s| {
                    format!(" ({:.0}% stolen by the host)", 100.0 * s)
                });
            why.push(format!(
                "other work took {:.0}% of the CPUs{steal}",
                100.0 * share
            ));
        }
        if let Some(late) = self.late_p99_us.filter(|&l| l > limits.late_p99_us) {
            why.push(format!("client sent late: p99 {}", short_time(late)));
        }
        (!why.is_empty()).then(|| why.join("; "))
    }
}

/// 850 µs, 1.2 ms, 14 ms.
pub fn short_time(us: f64) -> String {
    if us < 1000.0 {
        format!("{us:.0} µs")
    } else if us < 10_000.0 {
        format!("{:.1} ms", us / 1000.0)
    } else {
        format!("{:.0} ms", us / 1000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::hiccups::Hiccups;

    fn noise(hiccups_us: &[u64], other_cpu: f64, late_us: Option<f64>) -> Noise {
        Noise {
            seconds: 2.0,
            hiccups: Hiccups::synthetic(HICCUP_INTERVAL, hiccups_us).summary(),
            other_cpu: Some(other_cpu),
            steal: Some(0.0),
            late_p99_us: late_us,
        }
    }

    #[test]
    fn a_quiet_point_is_clean() {
        let limits = Limits::for_slo(1000.0);
        // 2000 wake-ups 15-60 µs late, 1% other work, the client 40 µs late.
        let quiet: Vec<u64> = (0..2000).map(|i| 15 + i % 46).collect();
        assert_eq!(noise(&quiet, 0.01, Some(40.0)).disturbed(&limits), None);
    }

    #[test]
    fn stalls_that_reach_the_p99_disturb_a_point() {
        let limits = Limits::for_slo(1000.0);
        let mut hiccups: Vec<u64> = vec![30; 2000];
        // One 5 ms stall: it stands for 5 of ~2005 samples, under 1%, so
        // the p99 stays low: not disturbed.
        hiccups.push(5_000);
        assert_eq!(noise(&hiccups, 0.0, None).disturbed(&limits), None);
        // A 40 ms stall stands for 40 samples, 2% of the window.
        hiccups.push(40_000);
        let why = noise(&hiccups, 0.0, None).disturbed(&limits).unwrap();
        assert!(
            why.contains("platform stalls") && why.contains("40 ms"),
            "{why}"
        );
        // Thirty 300 µs hiccups: the p99 is above a quarter of the SLO.
        let mut hiccups: Vec<u64> = vec![30; 2000];
        hiccups.extend([300; 30]);
        assert!(noise(&hiccups, 0.0, None).disturbed(&limits).is_some());
        // A looser objective takes them.
        assert_eq!(
            noise(&hiccups, 0.0, None).disturbed(&Limits::for_slo(5000.0)),
            None
        );
    }

    #[test]
    fn other_work_and_a_late_client_disturb_a_point() {
        let limits = Limits::for_slo(1000.0);
        let quiet = vec![30; 2000];
        let why = noise(&quiet, 0.30, None).disturbed(&limits).unwrap();
        assert!(why.contains("other work took 30%"), "{why}");
        let why = noise(&quiet, 0.0, Some(400.0)).disturbed(&limits).unwrap();
        assert!(why.contains("client sent late: p99 400 µs"), "{why}");
        let both = noise(&quiet, 0.5, Some(900.0)).disturbed(&limits).unwrap();
        assert!(both.contains("; "), "{both}");
        // Throughput runs: lateness does not apply.
        assert_eq!(
            noise(&quiet, 0.0, Some(5000.0)).disturbed(&Limits::for_throughput()),
            None
        );
    }

    #[test]
    fn times_read_short() {
        assert_eq!(short_time(850.4), "850 µs");
        assert_eq!(short_time(1234.0), "1.2 ms");
        assert_eq!(short_time(14_200.0), "14 ms");
    }
}
