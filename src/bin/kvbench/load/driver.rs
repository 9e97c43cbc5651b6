//! Runs the measured part of a plan: deals the connections to client
//! threads ([`super::client_thread`]), starts them together, shows
//! progress, and merges what they measured ([`super::stats`]).

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use indicatif::ProgressBar;

use crate::load::churn;
use crate::load::client;
use crate::load::client_thread::{client_thread, Shared};
use crate::load::options::Options;
use crate::load::progress::follow;
use crate::load::stats::{GroupStats, RunResult};
use crate::load::workload::{Plan, WorkloadName};

/// Which connections each client thread drives: `(group, index in group)`.
/// With several groups and enough threads, each group gets threads of its
/// own (so a heavy group's big replies do not delay a light group's
/// timing); otherwise connections are dealt round-robin.
pub fn assign(plan: &Plan, threads: usize) -> Vec<Vec<(usize, usize)>> {
    let threads = threads.max(1);
    let mut out = vec![Vec::new(); threads];
    let groups = plan.groups.len();
    if groups > 1 && threads >= groups {
        let mut first = 0;
        for (g, spec) in plan.groups.iter().enumerate() {
            // Even split, the remainder to the first groups.
            let share = threads / groups + usize::from(g < threads % groups);
            for c in 0..spec.connections {
                out[first + c % share].push((g, c));
            }
            first += share;
        }
    } else {
        let mut next = 0;
        for (g, spec) in plan.groups.iter().enumerate() {
            for c in 0..spec.connections {
                out[next % threads].push((g, c));
                next += 1;
            }
        }
    }
    out.retain(|t| !t.is_empty());
    out
}

/// Runs the measured part of `plan`, updating `bar` (position: elapsed
/// milliseconds) as it goes; churn by [`churn`], a connection per request.
pub fn measure(plan: &Plan, opts: &Options, bar: &ProgressBar) -> Result<RunResult> {
    if plan.workload == WorkloadName::Churn {
        return churn::measure(plan, opts, bar);
    }
    let assignment = assign(plan, opts.client_threads);
    let shared = Arc::new(Shared {
        specs: plan.groups.iter().cloned().map(Arc::new).collect(),
        value: client::value_bytes(plan.max_value_size()),
        opts: opts.clone(),
        barrier: Barrier::new(assignment.len() + 1),
        done: AtomicU64::new(0),
        failed: AtomicU64::new(0),
    });
    let mut handles = Vec::new();
    for (t, conns) in assignment.into_iter().enumerate() {
        let shared = Arc::clone(&shared);
        let handle = thread::Builder::new()
            .name(format!("kvbench-client-{t}"))
            .spawn(move || client_thread(conns, &shared))
            .context("spawn a client thread")?;
        handles.push(handle);
    }
    let threads = handles.len();
    bar.set_message("connecting");
    shared.barrier.wait();
    follow(bar, opts.duration, &shared.done, &shared.failed, || {
        handles.iter().all(|h| h.is_finished())
    });
    let mut groups: Vec<GroupStats> = plan.groups.iter().map(|_| GroupStats::new()).collect();
    let mut elapsed = Duration::ZERO;
    for h in handles {
        let out = h.join().map_err(|_| anyhow!("a client thread panicked"))?;
        for (total, part) in groups.iter_mut().zip(&out.stats) {
            total.merge(part);
        }
        elapsed = elapsed.max(out.elapsed);
    }
    Ok(RunResult {
        groups,
        elapsed,
        client_threads: threads,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::workload::{plan, WorkloadArgs, WorkloadName};
    use clap::ValueEnum;

    fn plan_of(name: WorkloadName) -> Plan {
        plan(&WorkloadArgs {
            workload: name,
            ..WorkloadArgs::default()
        })
        .unwrap()
    }

    #[test]
    fn assignment_covers_every_connection_once() {
        for &name in WorkloadName::value_variants() {
            let p = plan_of(name);
            for threads in [1, 2, 3, 7, 64] {
                let a = assign(&p, threads);
                assert!(a.len() <= threads && !a.is_empty());
                let mut all: Vec<_> = a.iter().flatten().copied().collect();
                all.sort_unstable();
                all.dedup();
                assert_eq!(all.len(), p.connections(), "{name:?} {threads}");
            }
        }
    }

    #[test]
    fn skewed_groups_get_their_own_threads() {
        let p = plan_of(WorkloadName::Skewed);
        let a = assign(&p, 2);
        assert!(a[0].iter().all(|&(g, _)| g == 0));
        assert!(a[1].iter().all(|&(g, _)| g == 1));
        // One thread: both groups share it.
        assert_eq!(assign(&p, 1)[0].len(), 54);
    }
}
