//! The highest offered load whose p99 meets the objective, with the
//! interval it can lie in, from the points of one server.
//!
//! Latency does not fall as load rises, but one point can still catch
//! what the noise meter missed. So the p99s are first made non-decreasing
//! in offered load (isotonic regression on log p99, by pooling adjacent
//! violators): one unlucky point neither ends the search early nor, past a
//! real breakdown, extends it. A saturated point misses the objective
//! whatever its p99, and so does every point above it. The answer is
//! interpolated on the fitted log p99 between the last point that meets
//! the objective and the next (latency grows about exponentially towards
//! saturation).
//!
//! The estimate comes from the points' medians over rounds; the interval
//! from their highest and lowest rounds (a single round's from its p99's
//! confidence interval). Only points that count (most rounds undisturbed)
//! are fitted; one that does not, where the objective is crossed, widens
//! the interval to its neighbours and makes the result uncertain.

use serde::Serialize;

use super::SweepPoint;

/// How a measured highest load at SLO is known.
#[derive(Serialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Bound {
    /// Between the last point that met the SLO and the first that did not,
    /// interpolated on log p99.
    Interpolated,
    /// Even the lowest load missed the SLO.
    BelowLowest,
    /// Every load met it: the highest load is a lower bound.
    AtLeastHighest,
}

/// A server's highest load at the objective, req/s.
#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct MaxLoad {
    pub estimate: f64,
    pub bound: Bound,
    /// Where it can lie: from the rounds' worst p99s to their best.
    pub low: f64,
    pub high: f64,
    /// The lowest load that counted (what "below the lowest" means).
    pub lowest: f64,
    /// Why the result is not to be trusted, when it is not.
    pub uncertain: Option<String>,
}

/// The highest load of `points` (one server's) whose p99 meets `slo_us`.
pub fn max_load(points: &[&SweepPoint], slo_us: f64) -> MaxLoad {
    let mut all: Vec<&SweepPoint> = points.to_vec();
    all.sort_by(|a, b| a.offered.total_cmp(&b.offered));
    let counted: Vec<&SweepPoint> = all.iter().copied().filter(|p| p.counts).collect();
    let loads: Vec<f64> = counted.iter().map(|p| p.offered).collect();
    let curve = |f: fn(&SweepPoint) -> f64| -> Vec<f64> { counted.iter().map(|p| f(p)).collect() };
    let (estimate, bound, segment) = crossing(&loads, &curve(|p| p.p99_us), slo_us);
    let (low, _, _) = crossing(&loads, &curve(|p| p.p99_high_us), slo_us);
    let (high, _, _) = crossing(&loads, &curve(|p| p.p99_low_us), slo_us);
    let mut out = MaxLoad {
        estimate,
        bound,
        low: low.min(estimate),
        high: high.max(estimate),
        lowest: loads.first().copied().unwrap_or(0.0),
        uncertain: None,
    };
    if counted.is_empty() {
        out.uncertain = Some(format!(
            "none of its {} points was measured undisturbed",
            all.len()
        ));
        return out;
    }
    // A point left out where the objective is crossed: the crossing could
    // be anywhere between the counted points either side of it.
    let (x0, x1) = segment;
    if let Some(gap) = all
        .iter()
        .find(|p| !p.counts && p.offered > x0 && p.offered < x1)
    {
        out.low = out.low.min(x0);
        out.high = out.high.max(x1);
        out.uncertain = Some(format!(
            "the point that decides it ({}) was disturbed",
            gap.load_pct
                .map_or(format!("{:.0} req/s", gap.offered), |l| format!("{l:.0}%"))
        ));
    }
    out
}

/// Where the overhead-aware model's curve (each point modelled with the
/// overheads measured at its load) crosses `slo_us`, read as the measured
/// curve is, and how it is known; `None` when no counted point has it.
pub fn model_measured_max_load(points: &[&SweepPoint], slo_us: f64) -> Option<(f64, Bound)> {
    let mut modelled: Vec<(f64, f64)> = points
        .iter()
        .filter(|p| p.counts)
        .filter_map(|p| Some((p.offered, p.model_measured_p99_us?)))
        .collect();
    if modelled.is_empty() {
        return None;
    }
    modelled.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (loads, p99s): (Vec<f64>, Vec<f64>) = modelled.into_iter().unzip();
    let (estimate, bound, _) = crossing(&loads, &p99s, slo_us);
    Some((estimate, bound))
}

/// Where the fitted curve of `values` (p99 µs at `loads`, ascending)
/// crosses `slo_us`: the load, how it is known, and the loads of the
/// segment it lies in (0 and infinity at the open ends).
fn crossing(loads: &[f64], values: &[f64], slo_us: f64) -> (f64, Bound, (f64, f64)) {
    let logs: Vec<f64> = values.iter().map(|v| v.max(1e-3).ln()).collect();
    let fitted = non_decreasing_fit(&logs);
    let objective = slo_us.ln();
    let Some(miss) = fitted.iter().position(|&y| y > objective) else {
        return match loads.last() {
            Some(&top) => (top, Bound::AtLeastHighest, (top, f64::INFINITY)),
            None => (0.0, Bound::BelowLowest, (0.0, f64::INFINITY)),
        };
    };
    if miss == 0 {
        return (0.0, Bound::BelowLowest, (0.0, loads[0]));
    }
    let (y0, y1) = (fitted[miss - 1], fitted[miss]);
    let share = if y1.is_finite() {
        ((objective - y0) / (y1 - y0)).clamp(0.0, 1.0)
    } else {
        0.0
    };
    let (x0, x1) = (loads[miss - 1], loads[miss]);
    (x0 + share * (x1 - x0), Bound::Interpolated, (x0, x1))
}

/// The non-decreasing sequence closest to `ys` in least squares (pool
/// adjacent violators: a value below the one before it is averaged with
/// it, and so on back). An infinite value makes all later ones infinite.
fn non_decreasing_fit(ys: &[f64]) -> Vec<f64> {
    // (sum, count) of each pooled block.
    let mut blocks: Vec<(f64, usize)> = Vec::new();
    for &y in ys {
        blocks.push((y, 1));
        while let [.., (s0, n0), (s1, n1)] = blocks[..] {
            if s0 / n0 as f64 <= s1 / n1 as f64 {
                break;
            }
            blocks.pop();
            *blocks.last_mut().expect("two blocks") = (s0 + s1, n0 + n1);
        }
    }
    blocks
        .iter()
        .flat_map(|&(sum, n)| std::iter::repeat_n(sum / n as f64, n))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::tests::{disturbed, sample};
    use super::*;

    /// A counted point whose rounds all measured `p99_us`.
    fn point(offered: f64, p99_us: f64) -> SweepPoint {
        SweepPoint::of(
            "s",
            None,
            offered,
            (1..=3).map(|r| sample(r, p99_us)).collect(),
        )
    }

    fn saturated(offered: f64) -> SweepPoint {
        let mut s = sample(1, 100.0);
        s.saturated = true;
        SweepPoint::of("s", None, offered, vec![s])
    }

    fn max(points: &[SweepPoint], slo: f64) -> MaxLoad {
        max_load(&points.iter().collect::<Vec<_>>(), slo)
    }

    #[test]
    fn max_load_interpolates_on_log_latency() {
        // 100 µs at 1000/s, 10,000 µs at 2000/s: 1,000 µs is half way in log.
        let m = max(&[point(2000.0, 10_000.0), point(1000.0, 100.0)], 1000.0);
        assert_eq!(m.bound, Bound::Interpolated);
        assert!((m.estimate - 1500.0).abs() < 1e-6, "{m:?}");
        // Rounds that agree: no room either way.
        assert!((m.low - 1500.0).abs() < 1e-6 && (m.high - 1500.0).abs() < 1e-6);
        assert!(m.uncertain.is_none());
        // A later point back under the SLO is pooled with the miss before
        // it (log mean 2236 µs): the crossing moves, but stays before it.
        let m = max(
            &[
                point(1000.0, 100.0),
                point(2000.0, 10_000.0),
                point(3000.0, 500.0),
            ],
            1000.0,
        );
        assert!((1700.0..1800.0).contains(&m.estimate), "{m:?}");
        // One stalled point at the lowest load does not end the search.
        let m = max(
            &[
                point(1000.0, 1500.0),
                point(2000.0, 500.0),
                point(3000.0, 600.0),
                point(4000.0, 5000.0),
            ],
            1000.0,
        );
        assert!((3100.0..3200.0).contains(&m.estimate), "{m:?}");
    }

    #[test]
    fn the_fit_pools_violators_and_keeps_order() {
        assert_eq!(
            non_decreasing_fit(&[1.0, 3.0, 2.0, 4.0]),
            [1.0, 2.5, 2.5, 4.0]
        );
        assert_eq!(non_decreasing_fit(&[3.0, 1.0, 2.0]), [2.0, 2.0, 2.0]);
        assert_eq!(non_decreasing_fit(&[]), Vec::<f64>::new());
        let fit = non_decreasing_fit(&[1.0, f64::INFINITY, 2.0]);
        assert_eq!(fit[0], 1.0);
        assert!(fit[1].is_infinite() && fit[2].is_infinite());
    }

    #[test]
    fn bounds_at_either_end_and_saturation() {
        let m = max(&[point(1000.0, 100.0), point(2000.0, 200.0)], 1000.0);
        assert_eq!((m.estimate, m.bound), (2000.0, Bound::AtLeastHighest));
        let m = max(&[point(1000.0, 5000.0)], 1000.0);
        assert_eq!(
            (m.estimate, m.bound, m.lowest),
            (0.0, Bound::BelowLowest, 1000.0)
        );
        // Saturated with a low p99 (replies never came): no credit past
        // the last good point.
        let m = max(&[point(1000.0, 100.0), saturated(2000.0)], 1000.0);
        assert_eq!((m.estimate, m.bound), (1000.0, Bound::Interpolated));
        assert_eq!(max(&[], 1000.0).bound, Bound::BelowLowest);
        assert!(max(&[], 1000.0).uncertain.is_some());
    }

    #[test]
    fn rounds_that_disagree_widen_the_interval() {
        // At 2000/s the rounds measured 800, 1,000 and 1,200 µs.
        let mixed = SweepPoint::of(
            "s",
            None,
            2000.0,
            vec![sample(1, 800.0), sample(2, 1200.0), sample(3, 1000.0)],
        );
        let m = max(
            &[point(1000.0, 100.0), mixed, point(3000.0, 10_000.0)],
            1000.0,
        );
        assert!((m.estimate - 2000.0).abs() < 1e-6, "{m:?}");
        assert!(m.high > 2000.0 && m.low < 2000.0, "{m:?}");
    }

    #[test]
    fn a_disturbed_point_where_it_is_decided_makes_it_uncertain() {
        let stalled = SweepPoint::of(
            "s",
            Some(20.0),
            2000.0,
            (1..=3).map(|r| disturbed(sample(r, 4000.0), 1)).collect(),
        );
        assert!(!stalled.counts);
        let m = max(
            &[point(1000.0, 300.0), stalled, point(3000.0, 3000.0)],
            1000.0,
        );
        // Not fitted: the crossing is interpolated from 1000 to 3000...
        assert!((1000.0..3000.0).contains(&m.estimate), "{m:?}");
        // ...but it could be anywhere between them, and the result says so.
        assert_eq!((m.low, m.high), (1000.0, 3000.0));
        assert!(m.uncertain.unwrap().contains("20%"));
        // Disturbed below where it is decided: nothing to doubt.
        let stalled_low = SweepPoint::of(
            "s",
            Some(5.0),
            500.0,
            (1..=3).map(|r| disturbed(sample(r, 4000.0), 1)).collect(),
        );
        let m = max(
            &[stalled_low, point(1000.0, 300.0), point(3000.0, 3000.0)],
            1000.0,
        );
        assert!(m.uncertain.is_none(), "{m:?}");
    }
}
