//! The sweep's closing sentence: how each pattern's highest load at the
//! objective compares with the baseline's, called only as far as the
//! intervals allow, and what the machine's noise did to the measurement.

use super::super::verdict::{Call, Ratio};
use super::table::percent;
use super::{Bound, SweepPoint, SweepSummary};
use crate::measure::noise::short_time;

/// One line per server against `baseline`, then what was measured again.
pub fn render(
    summary: &[SweepSummary],
    points: &[SweepPoint],
    baseline: &str,
    objective: &str,
    rounds: usize,
) -> String {
    let mut out = String::new();
    let counted = points.iter().filter(|p| p.counts).count();
    if points.len() >= 4 && 3 * counted < 2 * points.len() {
        out += &format!(
            "verdict: cannot tell: the machine disturbed {} of {} points ({})\n",
            points.len() - counted,
            points.len(),
            noise_seen(points).unwrap_or_default()
        );
        return out;
    }
    let Some(base) = summary.iter().find(|s| s.server == baseline) else {
        return out;
    };
    for s in summary.iter().filter(|s| s.server != baseline) {
        out += &format!("verdict: {}\n", compare(s, base, objective, rounds));
    }
    out += &format!("         ({})\n", trailer(points, rounds));
    out
}

/// One server against the baseline, in words.
fn compare(a: &SweepSummary, b: &SweepSummary, objective: &str, rounds: usize) -> String {
    let (x, y) = (&a.max_load, &b.max_load);
    for (who, m) in [(&a.server, x), (&b.server, y)] {
        if let Some(why) = &m.uncertain {
            return format!(
                "cannot tell how {} compares with {}: {who}: {why}",
                a.server, b.server
            );
        }
    }
    match (x.bound, y.bound) {
        (Bound::BelowLowest, Bound::BelowLowest) => {
            return format!(
                "cannot tell: neither {} nor {} met {objective} at the lowest load",
                a.server, b.server
            )
        }
        (Bound::BelowLowest, _) => {
            return format!(
                "{} is behind {}: it missed {objective} even at the lowest load measured ({:.0}/s), where {} takes {:.0}/s",
                a.server, b.server, x.lowest, b.server, y.estimate
            )
        }
        (_, Bound::BelowLowest) => {
            return format!(
                "{} is ahead of {}: {} missed {objective} even at the lowest load measured ({:.0}/s)",
                a.server, b.server, b.server, y.lowest
            )
        }
        _ => {}
    }
    let ratio = Ratio {
        estimate: x.estimate / y.estimate,
        low: x.low / y.high,
        high: if x.bound == Bound::AtLeastHighest {
            f64::INFINITY
        } else {
            x.high / y.low
        },
    };
    let range = if ratio.high.is_finite() {
        format!("{:.2}-{:.2}x", ratio.low, ratio.high)
    } else {
        format!("at least {:.2}x", ratio.low)
    };
    match ratio.call(rounds) {
        Call::Ahead | Call::Behind => format!(
            "{} takes {range} {}'s load at {objective}: {}",
            a.server,
            b.server,
            ratio.call(rounds)
        ),
        Call::Level => format!(
            "{} and {} are level at {objective} ({} takes {range} {}'s load)",
            a.server, b.server, a.server, b.server
        ),
        Call::CannotTell => format!(
            "cannot tell from {rounds} round: {} takes {:.2}x {}'s load at {objective}; give --rounds 3 or more for a verdict",
            a.server, ratio.estimate, b.server
        ),
    }
}

/// `3 rounds; 2 measurements taken again after platform stalls of
/// 9-14 ms`.
fn trailer(points: &[SweepPoint], rounds: usize) -> String {
    let mut out = format!("{rounds} round{}", if rounds == 1 { "" } else { "s" });
    let extra: Vec<&SweepPoint> = points.iter().filter(|p| p.rounds > rounds).collect();
    if let Some(most) = extra.iter().map(|p| p.rounds).max() {
        out += &format!(
            ", {} more at the {} point{} whose rounds disagreed about the objective",
            most - rounds,
            extra.len(),
            if extra.len() == 1 { "" } else { "s" }
        );
    }
    let retried: u32 = points.iter().map(|p| p.retries).sum();
    let left_out = points.iter().filter(|p| !p.counts).count();
    if retried > 0 {
        out += &format!(
            "; {retried} measurement{} taken again after {}",
            if retried == 1 { "" } else { "s" },
            noise_seen(points).unwrap_or_else(|| "noise".into())
        );
    }
    if left_out > 0 {
        out += &format!(
            "; {left_out} of {} points left out as disturbed",
            points.len()
        );
    }
    out
}

/// What the disturbed samples had in common: the range of the stalls
/// and of other work.
fn noise_seen(points: &[SweepPoint]) -> Option<String> {
    let disturbed: Vec<_> = points
        .iter()
        .flat_map(|p| &p.samples)
        .filter(|s| s.disturbed.is_some())
        .collect();
    if disturbed.is_empty() {
        return None;
    }
    let range = |values: Vec<f64>| {
        let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = values.iter().copied().fold(0.0, f64::max);
        (lo, hi)
    };
    let mut parts = Vec::new();
    let (lo, hi) = range(disturbed.iter().map(|s| s.noise.hiccups.max_us).collect());
    parts.push(format!("platform stalls of {}", time_range(lo, hi)));
    let (lo, hi) = range(disturbed.iter().filter_map(|s| s.noise.other_cpu).collect());
    if hi >= 0.05 {
        parts.push(format!(
            "other work taking {}-{} of the CPUs",
            percent(100.0 * lo),
            percent(100.0 * hi)
        ));
    }
    Some(parts.join(", "))
}

/// `300 µs`, or `9.0 ms-14 ms`.
fn time_range(lo: f64, hi: f64) -> String {
    let (lo, hi) = (short_time(lo), short_time(hi));
    if lo == hi {
        lo
    } else {
        format!("{lo}-{hi}")
    }
}

#[cfg(test)]
mod tests {
    use super::super::fit::MaxLoad;
    use super::super::tests::{disturbed, sample};
    use super::*;

    fn summary(server: &str, estimate: f64, low: f64, high: f64) -> SweepSummary {
        SweepSummary {
            server: server.into(),
            max_load: MaxLoad {
                estimate,
                bound: Bound::Interpolated,
                low,
                high,
                lowest: 1000.0,
                uncertain: None,
            },
            model_max_load_at_slo: None,
            model_measured_max_load: None,
            service_us: None,
            model_service: None,
            points: 5,
            points_counted: 5,
        }
    }

    fn clean_points(n: usize) -> Vec<SweepPoint> {
        (0..n)
            .map(|i| {
                SweepPoint::of(
                    "a",
                    None,
                    1000.0 * (i + 1) as f64,
                    (1..=3).map(|r| sample(r, 300.0)).collect(),
                )
            })
            .collect()
    }

    #[test]
    fn a_clear_lead_is_called_with_its_range() {
        let s = [
            summary("multi-reader", 10_000.0, 9_500.0, 10_500.0),
            summary("worker-pool", 17_000.0, 16_500.0, 17_500.0),
            summary("work-stealing", 10_300.0, 9_800.0, 10_800.0),
        ];
        let text = render(&s, &clean_points(6), "multi-reader", "p99 <= 1 ms", 3);
        assert!(
            text.contains("worker-pool takes 1.57-1.84x multi-reader's load at p99 <= 1 ms: ahead"),
            "{text}"
        );
        assert!(
            text.contains("work-stealing and multi-reader are level"),
            "{text}"
        );
        assert!(text.contains("(3 rounds)"), "{text}");
    }

    #[test]
    fn uncertainty_and_one_round_give_no_call() {
        let mut a = summary("worker-pool", 17_000.0, 16_500.0, 17_500.0);
        a.max_load.uncertain = Some("the point that decides it (40%) was disturbed".into());
        let b = summary("multi-reader", 10_000.0, 9_500.0, 10_500.0);
        let text = render(&[b.clone(), a], &clean_points(6), "multi-reader", "SLO", 3);
        assert!(text.contains("cannot tell how worker-pool compares with multi-reader: worker-pool: the point that decides it (40%) was disturbed"), "{text}");
        let a = summary("worker-pool", 17_000.0, 16_500.0, 17_500.0);
        let text = render(&[b, a], &clean_points(6), "multi-reader", "SLO", 1);
        assert!(text.contains("cannot tell from 1 round"), "{text}");
    }

    #[test]
    fn below_the_lowest_load_is_behind_not_zero() {
        let mut a = summary("basic", 0.0, 0.0, 0.0);
        a.max_load.bound = Bound::BelowLowest;
        let b = summary("multi-reader", 10_000.0, 9_500.0, 10_500.0);
        let text = render(&[b, a], &clean_points(6), "multi-reader", "SLO", 3);
        assert!(
            text.contains("basic is behind multi-reader: it missed SLO even at the lowest load measured (1000/s)"),
            "{text}"
        );
    }

    #[test]
    fn a_mostly_disturbed_sweep_cannot_tell_and_says_why() {
        let mut points = clean_points(2);
        for i in 0..4 {
            points.push(SweepPoint::of(
                "a",
                None,
                5000.0 + i as f64,
                (1..=3).map(|r| disturbed(sample(r, 300.0), 1)).collect(),
            ));
        }
        let s = [summary("multi-reader", 1.0, 1.0, 1.0)];
        let text = render(&s, &points, "multi-reader", "SLO", 3);
        assert!(
            text.starts_with("verdict: cannot tell: the machine disturbed 4 of 6 points (platform stalls of 300 µs"),
            "{text}"
        );
    }

    #[test]
    fn extra_rounds_are_counted_in_the_trailer() {
        let mut points = clean_points(3);
        points.push(SweepPoint::of(
            "a",
            None,
            9000.0,
            (1..=5)
                .map(|r| sample(r, 900.0 + 100.0 * r as f64))
                .collect(),
        ));
        assert_eq!(
            trailer(&points, 3),
            "3 rounds, 2 more at the 1 point whose rounds disagreed about the objective"
        );
    }

    #[test]
    fn measurements_taken_again_are_counted_in_the_trailer() {
        let mut points = clean_points(5);
        points.push(SweepPoint::of(
            "a",
            None,
            9000.0,
            vec![
                disturbed(sample(1, 300.0), 1),
                sample(1, 300.0).with_attempt(2),
                sample(2, 300.0),
            ],
        ));
        let text = trailer(&points, 3);
        assert_eq!(
            text,
            "3 rounds; 1 measurement taken again after platform stalls of 300 µs"
        );
    }
}
