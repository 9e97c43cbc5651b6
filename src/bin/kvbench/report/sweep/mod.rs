//! What a sweep reports. Every server is measured at every load in
//! several rounds; a measurement the machine's noise disturbed is taken
//! again. From those samples, a point per server and load (the median
//! over rounds, the range, and whether it counts), a summary per server
//! (the highest load meeting the latency objective, with its interval,
//! measured and modelled), and a verdict a person can act on.
//!
//! - [`fit`]: the highest load at the objective, from the points.
//! - [`table`]: the text tables.
//! - [`verdict`]: the closing sentence.

pub mod fit;
pub mod table;
pub mod verdict;

use serde::Serialize;

use crate::measure::anatomy::Anatomy;
use crate::measure::confidence::{Percentile, Spread};
use crate::measure::noise::Noise;

pub use fit::{Bound, MaxLoad};

/// One measurement of one server at one load, in one round.
#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct Sample {
    /// The round, from 1 (past `--rounds`: the extra rounds of a point
    /// whose rounds disagreed about the objective).
    pub round: usize,
    /// 1 for the first measurement; more when it was taken again.
    pub attempt: u32,
    /// When it began, in seconds from the start of the sweep.
    pub at_s: f64,
    /// Replies per second received.
    pub achieved: f64,
    pub p50_us: f64,
    pub mean_us: f64,
    /// The p99 with its confidence interval.
    pub p99: Percentile,
    pub p999_us: f64,
    /// Mean service time the server spent per request here.
    pub service_us: Option<f64>,
    /// The server's CPU time over the wall time of the CPUs it may use.
    pub server_cpu: Option<f64>,
    pub requests: u64,
    pub errors: u64,
    /// Requests due that were never sent (a connection's pipeline full).
    pub unsent: u64,
    /// The server could not keep up: its round stops here.
    pub saturated: bool,
    /// Not measured: the round stopped at a saturated load below, and this
    /// sample stands for what it would have shown.
    pub implied: bool,
    /// The first error reply or failure, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_error: Option<String>,
    pub noise: Noise,
    /// Why the machine's noise disturbed it, if it did.
    pub disturbed: Option<String>,
    /// Where the requests' time went inside the server (kvserve only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub anatomy: Option<Anatomy>,
}

impl Sample {
    /// The p99 the fit uses: infinite when saturated (the replies that
    /// never came are not in the measured p99).
    pub fn effective_p99(&self) -> f64 {
        if self.saturated {
            f64::INFINITY
        } else {
            self.p99.value_us
        }
    }
}

/// The samples that stand: the last attempt of each round.
pub fn standing(samples: &[Sample]) -> Vec<&Sample> {
    let mut out: Vec<&Sample> = Vec::new();
    for s in samples {
        match out.iter_mut().find(|o| o.round == s.round) {
            Some(o) if s.attempt > o.attempt => *o = s,
            Some(_) => {}
            None => out.push(s),
        }
    }
    out
}

/// One server at one offered load, over its rounds.
#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct SweepPoint {
    pub server: String,
    /// Offered load in percent of capacity, when capacity is known.
    pub load_pct: Option<f64>,
    /// Requests per second asked of the server (Poisson arrivals).
    pub offered: f64,
    /// Does the point count for the verdict? Only when most of the rounds
    /// that measured it were undisturbed; the figures below are then over
    /// those rounds, otherwise over all.
    pub counts: bool,
    /// Rounds measured undisturbed, and rounds that measured it.
    pub clean_rounds: usize,
    pub rounds: usize,
    /// Measurements taken again because noise disturbed them.
    pub retries: u32,
    /// Median over rounds.
    pub achieved: f64,
    pub p50_us: f64,
    pub mean_us: f64,
    /// Median over rounds (infinite when most rounds saturated).
    pub p99_us: f64,
    /// Where the point's p99 can be: the lowest and highest of its rounds
    /// (infinite when one saturated); with one round, that round's
    /// confidence interval.
    pub p99_low_us: f64,
    pub p99_high_us: f64,
    pub p999_us: f64,
    /// The queueing model's p99 at this load, fed the same arrivals.
    pub model_p99_us: Option<f64>,
    /// The overhead-aware model's: the same, with the stage times measured
    /// on this machine.
    pub model_measured_p99_us: Option<f64>,
    /// Where the time went inside the server, in the round whose p99 was
    /// the median.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub anatomy: Option<Anatomy>,
    pub service_us: Option<f64>,
    pub server_cpu: Option<f64>,
    /// The worst noise of the rounds used.
    pub hiccup_p99_us: f64,
    pub hiccup_max_us: f64,
    pub late_p99_us: Option<f64>,
    pub other_cpu: Option<f64>,
    pub requests: u64,
    pub errors: u64,
    pub unsent: u64,
    /// Most rounds saturated.
    pub saturated: bool,
    /// Why it does not count, when it does not.
    pub disturbed: Option<String>,
    pub samples: Vec<Sample>,
}

impl SweepPoint {
    /// The point of `samples` (every attempt of every round; the last
    /// attempt of a round is the one that stands).
    pub fn of(server: &str, load_pct: Option<f64>, offered: f64, samples: Vec<Sample>) -> Self {
        let last = standing(&samples);
        let clean: Vec<&Sample> = last
            .iter()
            .copied()
            .filter(|s| s.disturbed.is_none())
            .collect();
        let counts = !clean.is_empty() && 2 * clean.len() > last.len();
        let used = if counts { &clean } else { &last };
        // The figures of the rounds that ran here (not implied by a
        // saturated load below); the p99 and saturation take them all.
        let ran: Vec<&Sample> = used.iter().copied().filter(|s| !s.implied).collect();
        let spread = |f: &dyn Fn(&Sample) -> f64| {
            let v: Vec<f64> = ran.iter().map(|s| f(s)).collect();
            Spread::of(&v).map_or(0.0, |s| s.median)
        };
        let some = |f: &dyn Fn(&Sample) -> Option<f64>| {
            let v: Vec<f64> = ran.iter().filter_map(|s| f(s)).collect();
            Spread::of(&v).map(|s| s.median)
        };
        let worst = |f: &dyn Fn(&Sample) -> Option<f64>| {
            ran.iter()
                .filter_map(|s| f(s))
                .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))))
        };
        let saturated = 2 * used.iter().filter(|s| s.saturated).count() > used.len();
        let (p99_low_us, p99_high_us) = p99_range(used);
        let p99_us = Spread::of(&used.iter().map(|s| s.effective_p99()).collect::<Vec<_>>())
            .map_or(0.0, |s| s.median);
        let anatomy = ran
            .iter()
            .filter(|s| s.anatomy.is_some())
            .min_by(|a, b| {
                let off = |s: &Sample| (s.effective_p99() - p99_us).abs();
                off(a).total_cmp(&off(b))
            })
            .and_then(|s| s.anatomy.clone());
        let disturbed = (!counts).then(|| {
            let reasons: Vec<&str> = last.iter().filter_map(|s| s.disturbed.as_deref()).collect();
            format!(
                "{} of {} rounds disturbed ({})",
                last.len() - clean.len(),
                last.len(),
                reasons.first().copied().unwrap_or("?")
            )
        });
        SweepPoint {
            server: server.to_string(),
            load_pct,
            offered,
            counts,
            clean_rounds: clean.len(),
            rounds: last.len(),
            retries: samples.iter().filter(|s| s.attempt > 1).count() as u32,
            achieved: spread(&|s| s.achieved),
            p50_us: spread(&|s| s.p50_us),
            mean_us: spread(&|s| s.mean_us),
            p99_us,
            p99_low_us,
            p99_high_us,
            p999_us: spread(&|s| s.p999_us),
            model_p99_us: None,
            model_measured_p99_us: None,
            anatomy,
            service_us: some(&|s| s.service_us),
            server_cpu: some(&|s| s.server_cpu),
            hiccup_p99_us: worst(&|s| Some(s.noise.hiccups.p99_us)).unwrap_or(0.0),
            hiccup_max_us: worst(&|s| Some(s.noise.hiccups.max_us)).unwrap_or(0.0),
            late_p99_us: worst(&|s| s.noise.late_p99_us),
            other_cpu: worst(&|s| s.noise.other_cpu),
            requests: used.iter().map(|s| s.requests).sum(),
            errors: used.iter().map(|s| s.errors).sum(),
            unsent: used.iter().map(|s| s.unsent).sum(),
            saturated,
            disturbed,
            samples,
        }
    }
}

/// The range of the p99 over `samples` (the rounds a point stands on):
/// an interval for their median.
///
/// Of three or four rounds, their whole range (it holds the median with
/// probability 75% and 87.5%, whatever the distribution); of five or more,
/// the points that needed more rounds to settle, the range without the
/// lowest and highest (62.5% of five, 78% of six), so that one round the
/// meter missed does not stretch it: on 2026-12-07 one round in five at
/// multi-reader's lowest load measured 1343 µs where the other four
/// measured 634-700 µs. The rounds' spread already holds each round's
/// sampling error, so it is not widened further; a single round has no
/// spread, and stands on its order-statistic interval.
fn p99_range(samples: &[&Sample]) -> (f64, f64) {
    if let [only] = samples {
        if only.saturated {
            return (f64::INFINITY, f64::INFINITY);
        }
        let p = only.p99;
        return (
            p.low_us.unwrap_or(p.value_us),
            p.high_us.unwrap_or(f64::INFINITY),
        );
    }
    let mut values: Vec<f64> = samples.iter().map(|s| s.effective_p99()).collect();
    values.sort_by(f64::total_cmp);
    let trim = usize::from(values.len() >= 5);
    (values[trim], values[values.len() - 1 - trim])
}

/// One server's result.
#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct SweepSummary {
    pub server: String,
    /// Highest offered load (req/s) whose p99 met the SLO, measured.
    pub max_load: MaxLoad,
    /// The same for the queueing model (req/s), by bisection.
    pub model_max_load_at_slo: Option<f64>,
    /// The same for the overhead-aware model, from its p99 at each point
    /// (fed the stage times measured there).
    pub model_measured_max_load: Option<f64>,
    /// Mean service time spent per request over the whole sweep.
    pub service_us: Option<f64>,
    /// The service distribution the model used.
    pub model_service: Option<String>,
    /// Points measured, and those that count.
    pub points: usize,
    pub points_counted: usize,
}

#[cfg(test)]
pub mod tests {
    use super::*;
    use crate::measure::hiccups::HiccupSummary;

    /// A clean, unsaturated sample with a p99 known to ±10%.
    pub fn sample(round: usize, p99_us: f64) -> Sample {
        Sample {
            round,
            attempt: 1,
            at_s: round as f64,
            achieved: 1000.0,
            p50_us: p99_us / 4.0,
            mean_us: p99_us / 3.0,
            p99: Percentile {
                value_us: p99_us,
                low_us: Some(p99_us * 0.9),
                high_us: Some(p99_us * 1.1),
            },
            p999_us: p99_us * 2.0,
            service_us: Some(100.0),
            server_cpu: Some(0.2),
            requests: 2000,
            errors: 0,
            unsent: 0,
            saturated: false,
            implied: false,
            first_error: None,
            noise: Noise {
                seconds: 2.0,
                hiccups: HiccupSummary {
                    p99_us: 40.0,
                    max_us: 300.0,
                    ..HiccupSummary::default()
                },
                other_cpu: Some(0.01),
                steal: Some(0.0),
                late_p99_us: Some(20.0),
            },
            disturbed: None,
            anatomy: None,
        }
    }

    pub fn disturbed(mut s: Sample, attempt: u32) -> Sample {
        s.attempt = attempt;
        s.disturbed = Some("platform stalls: hiccup p99 9.0 ms, max 14 ms".into());
        s
    }

    #[test]
    fn a_point_is_the_median_of_its_clean_rounds() {
        let p = SweepPoint::of(
            "s",
            Some(10.0),
            1000.0,
            vec![sample(1, 300.0), sample(2, 500.0), sample(3, 400.0)],
        );
        assert!(p.counts && !p.saturated);
        assert_eq!((p.clean_rounds, p.rounds, p.retries), (3, 3, 0));
        assert_eq!(p.p99_us, 400.0);
        // The lowest and highest rounds' p99, not widened by their
        // intervals (the spread holds their sampling error)...
        assert_eq!((p.p99_low_us, p.p99_high_us), (300.0, 500.0));
        assert_eq!(p.requests, 6000);
        // ...but a single round stands on its interval.
        let p = SweepPoint::of("s", None, 1000.0, vec![sample(1, 300.0)]);
        assert!((p.p99_low_us - 270.0).abs() < 1e-9, "{}", p.p99_low_us);
        assert!((p.p99_high_us - 330.0).abs() < 1e-9, "{}", p.p99_high_us);
    }

    #[test]
    fn five_rounds_leave_their_extremes_out_of_the_range() {
        let p = SweepPoint::of(
            "s",
            None,
            1000.0,
            [650.0, 634.0, 1343.0, 700.0, 688.0]
                .iter()
                .enumerate()
                .map(|(r, &v)| sample(r + 1, v))
                .collect(),
        );
        assert_eq!(p.p99_us, 688.0);
        assert_eq!((p.p99_low_us, p.p99_high_us), (650.0, 700.0));
    }

    #[test]
    fn a_disturbed_round_measured_again_stands_by_its_last_attempt() {
        // Round 2's first attempt caught a stall (p99 9 ms); its second
        // was clean. Round 3 stayed disturbed: 2 of 3 clean still count,
        // and the stalled figures are left out.
        let p = SweepPoint::of(
            "s",
            None,
            1000.0,
            vec![
                sample(1, 300.0),
                disturbed(sample(2, 9000.0), 1),
                sample(2, 320.0).with_attempt(2),
                disturbed(sample(3, 7000.0), 1),
            ],
        );
        assert!(p.counts);
        assert_eq!((p.clean_rounds, p.rounds, p.retries), (2, 3, 1));
        assert_eq!(p.p99_us, 310.0);
        assert!(p.p99_high_us < 400.0);
        assert!(p.disturbed.is_none());
        // Most rounds disturbed: the point does not count, and says why.
        let p = SweepPoint::of(
            "s",
            None,
            1000.0,
            vec![
                sample(1, 300.0),
                disturbed(sample(2, 9000.0), 1),
                disturbed(sample(3, 7000.0), 1),
            ],
        );
        assert!(!p.counts);
        let why = p.disturbed.unwrap();
        assert!(why.starts_with("2 of 3 rounds disturbed"), "{why}");
    }

    #[test]
    fn saturation_takes_most_rounds_and_makes_the_range_open() {
        let mut sat = sample(2, 200.0);
        sat.saturated = true;
        let p = SweepPoint::of(
            "s",
            None,
            1000.0,
            vec![sample(1, 900.0), sat.clone(), sample(3, 1100.0)],
        );
        assert!(!p.saturated);
        assert_eq!(p.p99_us, 1100.0);
        assert!(p.p99_high_us.is_infinite());
        let mut sat3 = sat.clone();
        sat3.round = 3;
        let p = SweepPoint::of("s", None, 1000.0, vec![sample(1, 900.0), sat, sat3]);
        assert!(p.saturated && p.p99_us.is_infinite());
    }

    #[test]
    fn rounds_implied_saturated_count_for_saturation_not_for_figures() {
        let mut ran = sample(1, 900.0);
        ran.achieved = 1800.0;
        ran.saturated = true;
        let mut implied = sample(2, 200.0);
        implied.achieved = 1500.0;
        implied.saturated = true;
        implied.implied = true;
        let mut implied3 = implied.clone();
        implied3.round = 3;
        let p = SweepPoint::of("s", None, 2000.0, vec![ran, implied, implied3]);
        assert!(p.saturated && p.counts);
        assert_eq!((p.rounds, p.achieved, p.p50_us), (3, 1800.0, 225.0));
    }

    impl Sample {
        pub fn with_attempt(mut self, attempt: u32) -> Sample {
            self.attempt = attempt;
            self
        }
    }
}
