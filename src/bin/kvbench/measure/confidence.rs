//! How sure a measured figure is: a distribution-free confidence interval
//! for a percentile (from the order statistics of the samples, as lancet
//! reports its tail), and the spread of a figure over repeated rounds.

use hdrhistogram::Histogram;
use serde::Serialize;

/// The ranks (1-based, inclusive) of the sorted samples that bracket the
/// `q` quantile of `n` samples with probability at least `confidence`.
///
/// The number of samples below the true quantile is Binomial(n, q); the
/// interval spans the ranks that cover `confidence` of it, by the normal
/// approximation with a continuity correction (n·q·(1-q) is in the tens
/// or more for every p99 kvbench reports: 2 s at 1000 req/s is 2000
/// samples). `None` when there are too few samples to bracket it.
pub fn quantile_ranks(n: u64, q: f64, confidence: f64) -> Option<(u64, u64)> {
    if n == 0 {
        return None;
    }
    let z = normal_quantile(0.5 + confidence / 2.0);
    let mean = n as f64 * q;
    let sd = (n as f64 * q * (1.0 - q)).sqrt();
    let low = (mean - z * sd - 0.5).floor();
    let high = (mean + z * sd + 0.5).ceil() + 1.0;
    (low >= 1.0 && high <= n as f64).then_some((low as u64, high as u64))
}

/// A percentile with its confidence interval, µs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Percentile {
    pub value_us: f64,
    /// `None` when the samples are too few to bracket it.
    pub low_us: Option<f64>,
    pub high_us: Option<f64>,
}

impl Percentile {
    /// The `q` quantile of a histogram of nanoseconds, with its interval.
    pub fn of(h: &Histogram<u64>, q: f64, confidence: f64) -> Percentile {
        if h.is_empty() {
            return Percentile::default();
        }
        let n = h.len();
        let at_rank = |rank: u64| h.value_at_quantile(rank as f64 / n as f64) as f64 / 1e3;
        let ranks = quantile_ranks(n, q, confidence);
        Percentile {
            value_us: h.value_at_quantile(q) as f64 / 1e3,
            low_us: ranks.map(|(l, _)| at_rank(l)),
            high_us: ranks.map(|(_, u)| at_rank(u)),
        }
    }
}

/// The quantile function of the standard normal distribution, to about
/// 4.5e-4 (Abramowitz and Stegun 26.2.23): enough to pick a rank.
fn normal_quantile(p: f64) -> f64 {
    let p = p.clamp(1e-12, 1.0 - 1e-12);
    if p < 0.5 {
        return -normal_quantile(1.0 - p);
    }
    let t = (-2.0 * (1.0 - p).ln()).sqrt();
    let (c0, c1, c2) = (2.515517, 0.802853, 0.010328);
    let (d1, d2, d3) = (1.432788, 0.189269, 0.001308);
    t - (c0 + c1 * t + c2 * t * t) / (1.0 + d1 * t + d2 * t * t + d3 * t * t * t)
}

/// A figure measured in several rounds: the median, and the lowest and
/// highest.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Spread {
    /// `None` for no values.
    pub fn of(values: &[f64]) -> Option<Spread> {
        let mut v: Vec<f64> = values.to_vec();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = match n {
            0 => return None,
            _ if n % 2 == 1 => v[n / 2],
            _ => (v[n / 2 - 1] + v[n / 2]) / 2.0,
        };
        Some(Spread {
            median,
            min: v[0],
            max: v[n - 1],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::workload::Rng;

    #[test]
    fn normal_quantiles() {
        assert!((normal_quantile(0.975) - 1.96).abs() < 1e-3);
        assert!((normal_quantile(0.5)).abs() < 1e-3);
        assert!((normal_quantile(0.025) + 1.96).abs() < 1e-3);
        assert!((normal_quantile(0.995) - 2.576).abs() < 1e-3);
    }

    #[test]
    fn ranks_bracket_the_quantile_or_say_they_cannot() {
        // 10,000 samples: the p99 is near rank 9,900, within ~2 sd (10).
        let (l, u) = quantile_ranks(10_000, 0.99, 0.95).unwrap();
        assert!(
            (9875..9885).contains(&l) && (9915..9925).contains(&u),
            "{l} {u}"
        );
        // 100 samples cannot bracket a p99 (the top rank is 100).
        assert_eq!(quantile_ranks(100, 0.99, 0.95), None);
        assert_eq!(quantile_ranks(0, 0.5, 0.95), None);
        assert!(quantile_ranks(100, 0.5, 0.95).is_some());
    }

    /// Exponential samples of mean 100 µs have a true p99 of
    /// 100·ln(100) = 460.5 µs: the 95% interval must hold it in about 95
    /// of 100 draws (and not always: an interval that always holds it is
    /// too wide to be worth having).
    #[test]
    fn the_interval_covers_a_known_p99_as_often_as_it_says() {
        let truth_us = 100.0 * 100f64.ln();
        let mut rng = Rng::new(7);
        let trials = 400;
        let mut covered = 0;
        let mut widths = Vec::new();
        for _ in 0..trials {
            let mut h = Histogram::<u64>::new_with_bounds(1, 1_000_000_000, 3).unwrap();
            for _ in 0..5000 {
                let u = rng.unit().max(1e-12);
                h.record((-u.ln() * 100_000.0) as u64 + 1).unwrap();
            }
            let p = Percentile::of(&h, 0.99, 0.95);
            let (lo, hi) = (p.low_us.unwrap(), p.high_us.unwrap());
            assert!(lo <= p.value_us && p.value_us <= hi, "{p:?}");
            covered += usize::from(lo <= truth_us && truth_us <= hi);
            widths.push(hi - lo);
        }
        let share = covered as f64 / trials as f64;
        assert!((0.91..=0.985).contains(&share), "covered {share}");
        // And the interval is narrow enough to use: about ±14% at 5000.
        let width = Spread::of(&widths).unwrap().median;
        assert!(width < 0.35 * truth_us, "median width {width}");
    }

    #[test]
    fn spreads() {
        let s = Spread::of(&[3.0, 1.0, 2.0]).unwrap();
        assert_eq!((s.median, s.min, s.max), (2.0, 1.0, 3.0));
        assert_eq!(Spread::of(&[4.0, 1.0]).unwrap().median, 2.5);
        assert_eq!(Spread::of(&[]), None);
    }
}
