//! The order of a sweep's measurements, and measuring one.
//!
//! Round by round, each round a whole sweep: load by load from low to
//! high, every server still below saturation in turn. A stall of the
//! machine then hits one round of several loads, not every round of one
//! load, and the median over rounds leaves it out. A server's round stops
//! at its first saturated load; the loads above it count as saturated in
//! that round. A measurement the noise meter calls disturbed is taken
//! again at once (a bounded number of times). A server that misses the
//! objective at the lowest load in the first round gets lower loads,
//! halving, so that its highest load at the objective is bracketed; after
//! the first round every server gets the load half way across its
//! crossing of the objective; and after the last, the points whose rounds
//! disagree about the objective get two rounds more.

use std::time::{Duration, Instant};

use anyhow::Result;
use indicatif::ProgressBar;

use super::subject::{Load, Subject};
use super::{options, plan};
use crate::cli::SweepArgs;
use crate::commands::compare::RUN_TIMEOUT;
use crate::load::driver;
use crate::load::stats::GroupStats;
use crate::load::warmup::WarmupResult;
use crate::measure::anatomy;
use crate::measure::confidence::Percentile;
use crate::measure::noise::{Limits, NoiseMeter};
use crate::measure::server_cpu::process_cpu_time;
use crate::measure::stats::{self, WorkDone};
use crate::report;
use crate::report::sweep::{standing, Sample};

/// A server is saturated when its replies take more than the run's
/// duration divided by this to come back (its last reply more than 11%
/// of the run after the end: a backlog), or requests were never sent.
/// Compared with the replies' own count, not the asked rate, which a
/// Poisson count misses by its square root (10% at 100 requests).
const SATURATED_BELOW: f64 = 0.9;
/// How far below the lowest load a server that misses it is taken.
const LOWEST_DIVISOR: f64 = 8.0;
/// Neighbouring loads closer than this ratio are not split further.
const MIN_REFINE_STEP: f64 = 1.15;
/// More rounds for the points whose rounds disagree about the objective.
const EXTRA_ROUNDS: usize = 2;
/// Waited before measuring a disturbed point again: a short stall passes.
const RETRY_PAUSE: Duration = Duration::from_millis(250);

/// Everything measured of one server at one load.
pub struct Measured {
    pub subject: usize,
    pub rate: f64,
    pub load_pct: Option<f64>,
    pub samples: Vec<Sample>,
    /// The server's work over all of them (what the model is fed).
    pub work: WorkDone,
}

/// What every measurement of a sweep shares.
pub struct Sweeper<'a> {
    pub args: &'a SweepArgs,
    pub meter: &'a NoiseMeter,
    /// The servers kvbench started (all run throughout the sweep).
    pub servers: Option<Vec<u32>>,
    pub limits: Limits,
    pub slo_us: f64,
    /// CPUs the servers may use, for their CPU share.
    pub server_cpus: usize,
    pub bar: &'a ProgressBar,
    /// Measurements that may still be taken again.
    pub retries_left: u32,
    /// When the sweep began: each sample says when it was taken.
    pub started: Instant,
    pub measured: Vec<Measured>,
}

impl Sweeper<'_> {
    /// Measures every round of every subject.
    pub fn run(&mut self, subjects: &mut [Subject]) -> Result<()> {
        for round in 1..=self.args.rounds as usize {
            let mut active = vec![true; subjects.len()];
            let mut loads: Vec<Load> = subjects.iter().flat_map(|s| s.loads.clone()).collect();
            loads.sort_by(|a, b| a.0.total_cmp(&b.0));
            loads.dedup_by(|a, b| a.0 == b.0);
            for (rate, pct) in loads {
                for (i, s) in subjects.iter_mut().enumerate() {
                    if !active[i] || !s.loads.iter().any(|l| l.0 == rate) {
                        continue;
                    }
                    let sample = self.measure_with_retries(i, s, rate, pct, round)?;
                    if round == 1 && s.loads[0].0 == rate {
                        self.probe_down(i, s, &sample)?;
                    }
                    if sample.saturated {
                        active[i] = false;
                        self.imply_saturated(i, s, rate, &sample);
                    }
                }
            }
            if round == 1 {
                self.refine(subjects)?;
            }
        }
        self.settle(subjects)
    }

    /// After the first round, the load half way between each server's
    /// last that met the objective and its first that missed, measured
    /// now and in every round after: where a server crosses the objective
    /// the grid is twice as fine, and the crossing is interpolated over
    /// half the distance.
    fn refine(&mut self, subjects: &mut [Subject]) -> Result<()> {
        for (i, s) in subjects.iter_mut().enumerate() {
            let Some((below, above)) = self.bracket(i, s, |samples| {
                samples.iter().rev().find(|x| x.round == 1).cloned()
            }) else {
                continue;
            };
            if above.0 < below.0 * MIN_REFINE_STEP {
                continue;
            }
            let mid = (
                (below.0 + above.0) / 2.0,
                below.1.zip(above.1).map(|(a, b)| (a + b) / 2.0),
            );
            let at = s.loads.partition_point(|l| l.0 < mid.0);
            s.loads.insert(at, mid);
            self.bar.inc_length(self.args.rounds as u64);
            self.measure_with_retries(i, s, mid.0, mid.1, 1)?;
        }
        Ok(())
    }

    /// After the rounds, the points whose rounds disagree about the
    /// objective (some met it, some missed) are measured in
    /// [`EXTRA_ROUNDS`] more, interleaved as the others: those are the
    /// points the max load is read from, and a median of five moves less
    /// than one of three.
    fn settle(&mut self, subjects: &mut [Subject]) -> Result<()> {
        let slo_us = self.slo_us;
        let mut undecided: Vec<(usize, f64, Option<f64>)> = Vec::new();
        for m in &self.measured {
            let finals = standing(&m.samples);
            let p99s: Vec<f64> = finals
                .iter()
                .filter(|x| x.disturbed.is_none())
                .map(|x| x.effective_p99())
                .collect();
            let met = p99s.iter().any(|&v| v <= slo_us);
            let missed = p99s.iter().any(|&v| v > slo_us);
            if met && missed {
                undecided.push((m.subject, m.rate, m.load_pct));
            }
        }
        undecided.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
        self.bar.inc_length((undecided.len() * EXTRA_ROUNDS) as u64);
        let rounds = self.args.rounds as usize;
        for round in rounds + 1..=rounds + EXTRA_ROUNDS {
            for &(i, rate, pct) in &undecided {
                self.measure_with_retries(i, &subjects[i], rate, pct, round)?;
            }
        }
        Ok(())
    }

    /// The loads around server `i`'s first miss of the objective, judged
    /// by the sample `pick` chooses of each load's samples.
    fn bracket(
        &self,
        i: usize,
        s: &Subject,
        pick: impl Fn(&[Sample]) -> Option<Sample>,
    ) -> Option<(Load, Load)> {
        let mut previous = None;
        for &load in &s.loads {
            let m = self
                .measured
                .iter()
                .find(|m| m.subject == i && m.rate == load.0)?;
            let sample = pick(&m.samples)?;
            if self.misses(&sample) {
                return previous.map(|p| (p, load));
            }
            previous = Some(load);
        }
        None
    }

    /// Below a lowest load that missed the objective undisturbed, the
    /// half of it, and so on, until one meets it or the floor is reached.
    fn probe_down(&mut self, i: usize, s: &mut Subject, first: &Sample) -> Result<()> {
        let floor = s.loads[0].0 / LOWEST_DIVISOR;
        let mut last = first.clone();
        while last.disturbed.is_none() && self.misses(&last) {
            let (rate, pct) = s.loads[0];
            let lower = (rate / 2.0, pct.map(|p| p / 2.0));
            if lower.0 < floor * 0.99 {
                break;
            }
            s.loads.insert(0, lower);
            last = self.measure_with_retries(i, s, lower.0, lower.1, 1)?;
        }
        Ok(())
    }

    fn misses(&self, sample: &Sample) -> bool {
        sample.saturated || sample.p99.value_us > self.slo_us
    }

    /// The loads above a saturated one, in this round: saturated too, and
    /// as disturbed as the one that stopped the round.
    fn imply_saturated(&mut self, i: usize, s: &Subject, rate: f64, stop: &Sample) {
        for &(above, pct) in s.loads.iter().filter(|l| l.0 > rate) {
            let sample = Sample {
                implied: true,
                attempt: 1,
                requests: 0,
                errors: 0,
                unsent: 0,
                ..stop.clone()
            };
            self.record(i, above, pct, sample, WorkDone::default());
        }
    }

    /// One measurement, taken again while the noise disturbs it and
    /// retries are left.
    fn measure_with_retries(
        &mut self,
        i: usize,
        s: &Subject,
        rate: f64,
        pct: Option<f64>,
        round: usize,
    ) -> Result<Sample> {
        let mut attempt = 1;
        loop {
            self.bar.set_message(format!(
                "round {round}: {} at {}{}",
                s.label,
                pct.map_or(format!("{rate:.0} req/s"), |l| format!(
                    "{l:.0}% ({rate:.0} req/s)"
                )),
                if attempt > 1 { ", again" } else { "" }
            ));
            let (sample, work) = self.measure(s, rate, round, attempt)?;
            let again =
                sample.disturbed.is_some() && attempt <= self.args.retries && self.retries_left > 0;
            self.record(i, rate, pct, sample.clone(), work);
            if !again {
                self.bar.inc(1);
                return Ok(sample);
            }
            self.retries_left -= 1;
            attempt += 1;
            std::thread::sleep(RETRY_PAUSE);
        }
    }

    fn record(&mut self, i: usize, rate: f64, pct: Option<f64>, sample: Sample, work: WorkDone) {
        match self
            .measured
            .iter_mut()
            .find(|m| m.subject == i && m.rate == rate)
        {
            Some(m) => {
                m.samples.push(sample);
                m.work = m.work.plus(work);
            }
            None => self.measured.push(Measured {
                subject: i,
                rate,
                load_pct: pct,
                samples: vec![sample],
                work,
            }),
        }
    }

    /// One run at `rate`, with the noise beside it.
    fn measure(
        &self,
        s: &Subject,
        rate: f64,
        round: usize,
        attempt: u32,
    ) -> Result<(Sample, WorkDone)> {
        let args = self.args;
        let plan = plan(args, rate, false);
        let mut opts = options(args, &s.server, &plan);
        // Each round draws its own arrivals: rounds are independent samples.
        opts.seed = args.seed.wrapping_add(round as u64 - 1);
        // kvserve's stage times cover this measurement only.
        let kvserve = s.info.pattern.is_some();
        if kvserve {
            anatomy::reset(&s.server, RUN_TIMEOUT)?;
        }
        let work_before = stats::work_done(&s.server, RUN_TIMEOUT).unwrap_or_default();
        let cpu_before = s.pid().and_then(|pid| process_cpu_time(pid).ok());
        let at_s = self.started.elapsed().as_secs_f64();
        let window = self.meter.begin(self.servers.clone());
        let result = driver::measure(&plan, &opts, &ProgressBar::hidden())?;
        let mut all = GroupStats::new();
        for g in &result.groups {
            all.merge(g);
        }
        let late =
            (!all.send_lag.is_empty()).then(|| all.send_lag.value_at_quantile(0.99) as f64 / 1e3);
        let noise = self.meter.end(window, late);
        let cpu_after = s.pid().and_then(|pid| process_cpu_time(pid).ok());
        let work = stats::work_done(&s.server, RUN_TIMEOUT)
            .unwrap_or_default()
            .since(work_before);
        let anatomy = if kvserve {
            anatomy::read(&s.server, RUN_TIMEOUT)?
        } else {
            None
        };
        let report = report::run_report(&plan, &opts, &WarmupResult::default(), &result);
        let total = &report.total;
        let wall = noise.seconds * self.server_cpus as f64;
        let sample = Sample {
            round,
            attempt,
            at_s,
            achieved: total.ops_per_sec,
            p50_us: total.latency_us.p50,
            mean_us: total.latency_us.mean,
            p99: Percentile::of(&all.hist, 0.99, args.confidence / 100.0),
            p999_us: total.latency_us.p999,
            service_us: work.mean_spent().map(|d| d.as_secs_f64() * 1e6),
            server_cpu: cpu_before
                .zip(cpu_after)
                .filter(|_| wall > 0.0)
                .map(|(b, a)| a.saturating_sub(b).as_secs_f64() / wall),
            requests: total.requests,
            errors: total.errors,
            unsent: total.unsent,
            // ops/s is the replies over the time to the last reply.
            saturated: total.unsent > 0
                || total.ops_per_sec * args.duration < SATURATED_BELOW * total.requests as f64,
            implied: false,
            first_error: total.first_error.clone(),
            disturbed: noise.disturbed(&self.limits),
            noise,
            anatomy,
        };
        Ok((sample, work))
    }
}
