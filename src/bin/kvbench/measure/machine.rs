//! How busy the machine's CPUs were, and with whose work: Linux's
//! per-CPU counters in `/proc/stat` (busy, idle, and time the VM's host
//! took away, "steal"), against the CPU time of the processes kvbench
//! knows: the servers it started and itself. What is left was other
//! processes' work on the same CPUs, which a pattern's latency would
//! otherwise be blamed for.

use std::fs;
use std::io;
use std::time::Duration;

use super::cpus::CpuList;

/// Time counters of a set of CPUs, in clock ticks (`USER_HZ`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuTicks {
    /// Running anything: user, nice, system, irq, softirq.
    pub busy: u64,
    /// Wanted by this VM but given to another by the host.
    pub steal: u64,
    /// Everything, idle and iowait included.
    pub total: u64,
}

impl CpuTicks {
    /// The counters of `cpus`, summed.
    pub fn read(cpus: &CpuList) -> io::Result<CpuTicks> {
        parse_proc_stat(&fs::read_to_string("/proc/stat")?, cpus).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                "no cpuN lines in /proc/stat for the CPUs in use",
            )
        })
    }

    /// What was counted between `earlier` and `self`.
    pub fn since(self, earlier: CpuTicks) -> CpuTicks {
        CpuTicks {
            busy: self.busy.saturating_sub(earlier.busy),
            steal: self.steal.saturating_sub(earlier.steal),
            total: self.total.saturating_sub(earlier.total),
        }
    }

    /// The share of the CPUs' time that was neither idle nor `known`
    /// (time used by the processes kvbench accounts for), steal included.
    pub fn share_not(self, known: Duration) -> Option<f64> {
        if self.total == 0 {
            return None;
        }
        let tick = 1.0 / clock_ticks_per_second();
        let other = (self.busy + self.steal) as f64 * tick - known.as_secs_f64();
        Some((other / (self.total as f64 * tick)).clamp(0.0, 1.0))
    }

    /// The share of the CPUs' time the host took away.
    pub fn steal_share(self) -> Option<f64> {
        (self.total > 0).then(|| self.steal as f64 / self.total as f64)
    }
}

/// The `cpuN` lines of `/proc/stat` for `cpus`, summed; `None` when none
/// of them is there.
fn parse_proc_stat(text: &str, cpus: &CpuList) -> Option<CpuTicks> {
    let mut sum = CpuTicks::default();
    let mut found = false;
    for line in text.lines() {
        let mut fields = line.split_whitespace();
        let Some(cpu) = fields
            .next()
            .and_then(|name| name.strip_prefix("cpu"))
            .and_then(|n| n.parse::<usize>().ok())
        else {
            continue;
        };
        if !cpus.cpus().contains(&cpu) {
            continue;
        }
        // user nice system idle iowait irq softirq steal (guest time is
        // already inside user and nice).
        let v: Vec<u64> = fields.take(8).filter_map(|f| f.parse().ok()).collect();
        let [user, nice, system, idle, iowait, irq, softirq, steal] = v[..] else {
            continue;
        };
        found = true;
        sum.busy += user + nice + system + irq + softirq;
        sum.steal += steal;
        sum.total += user + nice + system + idle + iowait + irq + softirq + steal;
    }
    found.then_some(sum)
}

fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz > 0 {
        hz as f64
    } else {
        100.0
    }
}

/// kvbench's own CPU time, every thread it ever ran included (its client
/// threads end with each run).
pub fn own_cpu_time() -> Duration {
    // SAFETY: getrusage writes only the struct passed.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str = "cpu  300 0 60 900 10 0 4 6 0 0\n\
                        cpu0 100 0 20 600 5 0 2 3 0 0\n\
                        cpu1 200 0 40 300 5 0 2 3 0 0\n\
                        intr 1 2 3\n";

    #[test]
    fn sums_the_cpus_asked_for() {
        let one = parse_proc_stat(STAT, &"1".parse().unwrap()).unwrap();
        assert_eq!(
            one,
            CpuTicks {
                busy: 242,
                steal: 3,
                total: 550
            }
        );
        let both = parse_proc_stat(STAT, &"0-1".parse().unwrap()).unwrap();
        assert_eq!((both.busy, both.steal, both.total), (364, 6, 1280));
        assert_eq!(parse_proc_stat(STAT, &"7".parse().unwrap()), None);
    }

    #[test]
    fn the_others_share_is_what_known_work_does_not_explain() {
        let hz = clock_ticks_per_second();
        // 1000 ticks, 300 busy and 100 stolen; 1.5 s of ticks known.
        let ticks = CpuTicks {
            busy: 300,
            steal: 100,
            total: 1000,
        };
        let known = Duration::from_secs_f64(150.0 / hz);
        let other = ticks.share_not(known).unwrap();
        assert!((other - 0.25).abs() < 1e-9, "{other}");
        assert_eq!(ticks.steal_share(), Some(0.1));
        // Known work above what was counted (tick sampling): never below 0.
        assert_eq!(ticks.share_not(Duration::from_secs(1000)), Some(0.0));
        assert_eq!(CpuTicks::default().share_not(Duration::ZERO), None);
    }

    #[test]
    fn own_time_grows_with_work() {
        let before = own_cpu_time();
        let start = std::time::Instant::now();
        let mut x = 0u64;
        while own_cpu_time() < before + Duration::from_millis(20)
            && start.elapsed() < Duration::from_secs(10)
        {
            x = x.wrapping_mul(31).wrapping_add(1);
        }
        std::hint::black_box(x);
        assert!(own_cpu_time() >= before + Duration::from_millis(20));
    }
}
