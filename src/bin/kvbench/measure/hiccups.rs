//! The platform's own stalls, measured beside the load (jHiccup's idea):
//! on each CPU the servers and the client use, a thread that only sleeps
//! a short fixed time, again and again, and records how late it wakes.
//! When the scheduler, another process or the VM's host keeps a CPU from
//! a runnable thread, that thread wakes late, and so would a server's.
//!
//! A stall longer than the sleep swallows the samples that would have
//! been taken during it; they are filled in (HdrHistogram's correction
//! for coordinated omission), so that the hiccups' p99 reads as "for 1%
//! of the time, a thread that wanted a CPU waited at least this long":
//! the same kind of figure as the requests' p99 it is set beside.
//!
//! The threads ask for real-time priority (or failing that the highest
//! nice level), so that they wake ahead of any ordinary thread: what they
//! measure is then the platform (the host, the kernel, interrupts), not
//! the queue of runnable threads, kvbench's own servers and client among
//! them. Other processes' share of the CPUs is measured by
//! [`super::machine`] instead.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use hdrhistogram::Histogram;

use super::cpus::{Affinity, CpuList};
use crate::load::timer::set_timer_slack;

/// Lateness above this (10 s) is clamped.
const MAX_NS: u64 = 10_000_000_000;

/// One sleeping thread per CPU, each recording its lateness into its own
/// histogram until the meter is dropped.
pub struct HiccupMeter {
    cpus: Vec<usize>,
    interval: Duration,
    /// Per CPU, the samples since the last [`HiccupMeter::take`].
    windows: Vec<Arc<Mutex<Histogram<u64>>>>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl HiccupMeter {
    /// Starts a thread pinned to each CPU of `cpus`, each sleeping
    /// `interval` at a time.
    pub fn start(cpus: &CpuList, interval: Duration) -> Result<HiccupMeter> {
        let stop = Arc::new(AtomicBool::new(false));
        let mut meter = HiccupMeter {
            cpus: cpus.cpus().to_vec(),
            interval,
            windows: Vec::new(),
            stop: Arc::clone(&stop),
            threads: Vec::new(),
        };
        for &cpu in cpus.cpus() {
            let window = Arc::new(Mutex::new(new_histogram()));
            let (stop, mine) = (Arc::clone(&stop), Arc::clone(&window));
            let pin = Affinity::of(&CpuList::single(cpu));
            let handle = thread::Builder::new()
                .name(format!("kvbench-hiccup-{cpu}"))
                .spawn(move || sleep_and_record(pin, interval, &mine, &stop))
                .context("starting a hiccup meter thread")?;
            meter.windows.push(window);
            meter.threads.push(handle);
        }
        Ok(meter)
    }

    /// The hiccups since the last call (or the start), and a fresh window.
    pub fn take(&self) -> Hiccups {
        let per_cpu = self
            .cpus
            .iter()
            .zip(&self.windows)
            .map(|(&cpu, window)| {
                let mut window = window.lock().unwrap_or_else(|e| e.into_inner());
                let taken = window.clone();
                window.reset();
                (cpu, taken)
            })
            .collect();
        Hiccups {
            interval: self.interval,
            per_cpu,
        }
    }
}

impl Drop for HiccupMeter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for handle in self.threads.drain(..) {
            let _ = handle.join();
        }
    }
}

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_NS, 3).expect("valid histogram bounds")
}

/// The meter thread: on `pin`'s CPU, with the finest timer the kernel
/// gives.
fn sleep_and_record(
    pin: Affinity,
    interval: Duration,
    window: &Mutex<Histogram<u64>>,
    stop: &AtomicBool,
) {
    // A CPU that went offline since the list was read: nothing to watch.
    if pin.apply().is_err() {
        return;
    }
    set_timer_slack();
    // SAFETY: sched_setscheduler and setpriority read only their arguments
    // and affect only the calling thread (0).
    unsafe {
        let param = libc::sched_param { sched_priority: 1 };
        if libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) != 0 {
            // Without CAP_SYS_NICE: as high as the limits allow.
            for nice in [-20, -10, -5] {
                if libc::setpriority(libc::PRIO_PROCESS, 0, nice) == 0 {
                    break;
                }
            }
        }
    }
    let interval_ns = interval.as_nanos() as u64;
    while !stop.load(Ordering::Relaxed) {
        let asleep = Instant::now();
        thread::sleep(interval);
        let late = (asleep.elapsed().as_nanos() as u64).saturating_sub(interval_ns);
        let mut window = window.lock().unwrap_or_else(|e| e.into_inner());
        // The samples a long stall swallowed: one per interval it lasted.
        let _ = window.record_correct(late.clamp(1, MAX_NS), interval_ns);
    }
}

/// What a meter saw in one window, per CPU.
#[derive(Clone, Debug)]
pub struct Hiccups {
    interval: Duration,
    per_cpu: Vec<(usize, Histogram<u64>)>,
}

impl Hiccups {
    /// The worst CPU's figures: its p99 and the longest stall anywhere.
    pub fn summary(&self) -> HiccupSummary {
        let us = |ns: u64| ns as f64 / 1e3;
        let mut out = HiccupSummary::default();
        for (cpu, h) in &self.per_cpu {
            if h.is_empty() {
                continue;
            }
            let p99 = us(h.value_at_quantile(0.99));
            if p99 >= out.p99_us {
                out.p99_us = p99;
                out.worst_cpu = Some(*cpu);
            }
            out.max_us = out.max_us.max(us(h.max()));
            // Time spent stalled: each sample stands for one interval.
            let stalled_ns: u64 = h
                .iter_recorded()
                .filter(|v| v.value_iterated_to() > self.interval.as_nanos() as u64)
                .map(|v| v.count_at_value() * self.interval.as_nanos() as u64)
                .sum();
            out.stalled_share = out
                .stalled_share
                .max(stalled_ns as f64 / (h.len() as f64 * self.interval.as_nanos() as f64));
        }
        out
    }

    /// Hiccups made up of `lateness_us` samples on one CPU, for tests.
    #[cfg(test)]
    pub fn synthetic(interval: Duration, lateness_us: &[u64]) -> Hiccups {
        let mut h = new_histogram();
        for &us in lateness_us {
            h.record_correct(us * 1000, interval.as_nanos() as u64)
                .unwrap();
        }
        Hiccups {
            interval,
            per_cpu: vec![(0, h)],
        }
    }
}

/// The figures of one window a report shows.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct HiccupSummary {
    /// The 99th percentile of the worst CPU's lateness, µs.
    pub p99_us: f64,
    /// The longest single stall on any CPU, µs.
    pub max_us: f64,
    /// The largest share of time any CPU's meter spent in stalls longer
    /// than its sleep.
    pub stalled_share: f64,
    #[serde(skip)]
    pub worst_cpu: Option<usize>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_stall_fills_in_the_samples_it_swallowed() {
        // 990 wake-ups 20 µs late, then one 50 ms stall with a 1 ms sleep:
        // the stall stands for 50 samples (50, 49, ... 1 ms late), about
        // 5% of the window, so it decides the p99.
        let mut lateness = vec![20; 990];
        lateness.push(50_000);
        let s = Hiccups::synthetic(Duration::from_millis(1), &lateness).summary();
        assert!((49_900.0..50_100.0).contains(&s.max_us), "{s:?}");
        assert!(s.p99_us > 10_000.0, "{s:?}");
        assert!((0.04..0.06).contains(&s.stalled_share), "{s:?}");
        // The same wake-ups without the stall.
        let s = Hiccups::synthetic(Duration::from_millis(1), &[20; 990]).summary();
        assert!(s.p99_us < 25.0 && s.stalled_share == 0.0, "{s:?}");
    }

    #[test]
    fn the_meter_sees_its_own_cpus_wake_up() {
        let cpus = super::super::cpus::Affinity::current().unwrap().list();
        let meter = HiccupMeter::start(&cpus, Duration::from_micros(500)).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut seen = 0;
        // Bounded in time: a busy machine only makes it slower.
        while seen < 20 && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(20));
            seen += meter
                .take()
                .per_cpu
                .iter()
                .map(|(_, h)| h.len())
                .min()
                .unwrap_or(0);
        }
        assert!(seen >= 20, "only {seen} wake-ups on the least seen CPU");
        let window = meter.take();
        assert_eq!(window.per_cpu.len(), cpus.cpus().len());
    }
}
