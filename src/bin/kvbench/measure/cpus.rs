//! Keeping the load generator and the servers on separate CPUs
//! (`--client-cpus`, `--server-cpus`): on cores it shares with the server,
//! the client's wake-ups and preemptions become part of what is measured.

use std::fmt;
use std::io;
use std::str::FromStr;

/// A set of CPUs as `taskset -c` writes it: `0-3,6`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CpuList(Vec<usize>);

impl FromStr for CpuList {
    type Err = String;

    fn from_str(text: &str) -> Result<CpuList, String> {
        let max = libc::CPU_SETSIZE as usize;
        let mut cpus = Vec::new();
        for part in text.split(',') {
            let bad = || format!("not a CPU list like 0-3,6: {text:?}");
            let (first, last) = match part.split_once('-') {
                Some((a, b)) => (
                    a.trim().parse().map_err(|_| bad())?,
                    b.trim().parse().map_err(|_| bad())?,
                ),
                None => {
                    let n: usize = part.trim().parse().map_err(|_| bad())?;
                    (n, n)
                }
            };
            if first > last || last >= max {
                return Err(bad());
            }
            cpus.extend(first..=last);
        }
        cpus.sort_unstable();
        cpus.dedup();
        Ok(CpuList(cpus))
    }
}

impl fmt::Display for CpuList {
    /// Back in `0-3,6` form.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut ranges: Vec<(usize, usize)> = Vec::new();
        for &cpu in &self.0 {
            match ranges.last_mut() {
                Some((_, last)) if *last + 1 == cpu => *last = cpu,
                _ => ranges.push((cpu, cpu)),
            }
        }
        let parts: Vec<String> = ranges
            .iter()
            .map(|&(a, b)| {
                if a == b {
                    a.to_string()
                } else {
                    format!("{a}-{b}")
                }
            })
            .collect();
        f.write_str(&parts.join(","))
    }
}

impl CpuList {
    /// One CPU.
    pub fn single(cpu: usize) -> CpuList {
        CpuList(vec![cpu])
    }

    /// The CPUs, in ascending order.
    pub fn cpus(&self) -> &[usize] {
        &self.0
    }

    /// The CPUs of both lists.
    pub fn union(&self, other: &CpuList) -> CpuList {
        let mut cpus = [self.0.as_slice(), other.0.as_slice()].concat();
        cpus.sort_unstable();
        cpus.dedup();
        CpuList(cpus)
    }

    /// The first CPU apart from the rest: a core for the load generator,
    /// the others for the servers. `None` with fewer than two CPUs.
    pub fn split_first(&self) -> Option<(CpuList, CpuList)> {
        let (&first, rest) = self.0.split_first()?;
        (!rest.is_empty()).then(|| (CpuList(vec![first]), CpuList(rest.to_vec())))
    }
}

/// The kernel's form of a CPU list, ready to apply in a forked child
/// (where nothing may allocate).
#[derive(Clone, Copy)]
pub struct Affinity(libc::cpu_set_t);

impl Affinity {
    /// The CPUs of `list`, as the kernel takes them.
    pub fn of(list: &CpuList) -> Affinity {
        // SAFETY: cpu_set_t is a plain bit array; CPU_SET stays in bounds
        // because the parser refused CPUs past CPU_SETSIZE.
        unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            for &cpu in &list.0 {
                libc::CPU_SET(cpu, &mut set);
            }
            Affinity(set)
        }
    }

    /// The CPUs the calling thread may run on now.
    pub fn current() -> io::Result<Affinity> {
        // SAFETY: sched_getaffinity writes at most the size passed.
        unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            if libc::sched_getaffinity(0, std::mem::size_of_val(&set), &mut set) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(Affinity(set))
        }
    }

    /// The CPUs in the set, as a list.
    pub fn list(&self) -> CpuList {
        let max = libc::CPU_SETSIZE as usize;
        // SAFETY: CPU_ISSET reads the bit array in bounds.
        CpuList(
            (0..max)
                .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &self.0) })
                .collect(),
        )
    }

    /// Restricts the calling thread, and the threads and processes it
    /// starts from now on, to these CPUs. Async-signal-safe: one syscall.
    pub fn apply(&self) -> io::Result<()> {
        // SAFETY: sched_setaffinity reads the set passed, of the size passed.
        if unsafe { libc::sched_setaffinity(0, std::mem::size_of_val(&self.0), &self.0) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_parse_and_print_like_taskset() {
        let list: CpuList = "6,0-3, 2".parse().unwrap();
        assert_eq!(list, CpuList(vec![0, 1, 2, 3, 6]));
        assert_eq!(list.to_string(), "0-3,6");
        assert_eq!("1".parse::<CpuList>().unwrap().to_string(), "1");
        assert_eq!("1,3,5-6".parse::<CpuList>().unwrap().to_string(), "1,3,5-6");
        for bad in ["", "x", "3-1", "1-", "-1", "0,,1", "100000"] {
            assert!(bad.parse::<CpuList>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn the_first_cpu_splits_from_the_rest() {
        let list: CpuList = "2,4-6".parse().unwrap();
        let (client, servers) = list.split_first().unwrap();
        assert_eq!(
            (client.to_string(), servers.to_string()),
            ("2".into(), "4-6".into())
        );
        assert_eq!("3".parse::<CpuList>().unwrap().split_first(), None);
        assert_eq!(Affinity::of(&list).list(), list);
        assert_eq!(list.union(&"0,4".parse().unwrap()).to_string(), "0,2,4-6");
    }
}
