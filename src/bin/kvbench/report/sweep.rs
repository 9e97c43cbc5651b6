//! What a sweep reports: a point per server and offered load, a summary
//! per server (the highest load meeting the latency objective, measured
//! and modelled), as a table or JSON.

use serde::Serialize;

use super::{us, Table};

/// One server at one offered load.
#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct SweepPoint {
    pub server: String,
    /// Offered load in percent of capacity, when capacity is known.
    pub load_pct: Option<f64>,
    /// Requests per second asked of the server (Poisson arrivals).
    pub offered: f64,
    /// Replies per second received.
    pub achieved: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    /// The queueing model's p99 at this load, fed the same arrivals.
    pub model_p99_us: Option<f64>,
    /// Mean service time the server actually spent per request here.
    pub service_us: Option<f64>,
    pub requests: u64,
    pub errors: u64,
    /// Requests due that were never sent (a connection's pipeline full).
    pub unsent: u64,
    /// The server could not keep up: its sweep stops here.
    pub saturated: bool,
}

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

/// One server's result.
#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct SweepSummary {
    pub server: String,
    /// Highest offered load (req/s) whose p99 met the SLO, measured.
    pub max_load_at_slo: f64,
    pub bound: Bound,
    /// The same for the queueing model (req/s), by bisection.
    pub model_max_load_at_slo: Option<f64>,
    /// Mean service time spent per request over the whole sweep.
    pub service_us: Option<f64>,
    /// The service distribution the model used (scaled to the measured
    /// mean when that differed from the asked one by more than 5%).
    pub model_service: Option<String>,
}

/// The highest offered load whose p99 meets `slo_us`.
///
/// Latency does not fall as load rises, but on a shared machine one point
/// can catch a stall. So the measured p99s are first made non-decreasing
/// in offered load (isotonic regression on log p99, by pooling adjacent
/// violators): one unlucky point neither ends the search early nor, past a
/// real breakdown, extends it. A saturated point misses the objective
/// whatever its p99 (replies that never came are not in it), and so does
/// every point above it. The answer is interpolated on the fitted log p99
/// between the last point that meets the objective and the next (latency
/// grows about exponentially towards saturation).
pub fn max_load_at_slo(points: &[&SweepPoint], slo_us: f64) -> (f64, Bound) {
    let mut sorted: Vec<&SweepPoint> = points.to_vec();
    sorted.sort_by(|a, b| a.offered.total_cmp(&b.offered));
    let logs: Vec<f64> = sorted
        .iter()
        .map(|p| {
            if p.saturated {
                f64::INFINITY
            } else {
                p.p99_us.max(1e-3).ln()
            }
        })
        .collect();
    let fitted = non_decreasing_fit(&logs);
    let objective = slo_us.ln();
    let Some(miss) = fitted.iter().position(|&y| y > objective) else {
        return match sorted.last() {
            Some(p) => (p.offered, Bound::AtLeastHighest),
            None => (0.0, Bound::BelowLowest),
        };
    };
    if miss == 0 {
        return (0.0, Bound::BelowLowest);
    }
    let (y0, y1) = (fitted[miss - 1], fitted[miss]);
    let share = ((objective - y0) / (y1 - y0)).clamp(0.0, 1.0);
    let (x0, x1) = (sorted[miss - 1].offered, sorted[miss].offered);
    (x0 + share * (x1 - x0), Bound::Interpolated)
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

/// The points table, one block per server, then the summary table.
pub fn render(points: &[SweepPoint], summary: &[SweepSummary], capacity: Option<f64>) -> String {
    let mut table = Table::new(&[
        "server",
        "load",
        "offered/s",
        "achieved/s",
        "p50 µs",
        "p99 µs",
        "p99.9 µs",
        "model p99 µs",
        "service µs",
        "",
    ]);
    let mut last: Option<&str> = None;
    for p in points {
        let first = last != Some(p.server.as_str());
        if first && last.is_some() {
            table.gap();
        }
        last = Some(&p.server);
        let mut flags = Vec::new();
        if p.saturated {
            flags.push("saturated".to_string());
        }
        if p.errors > 0 {
            flags.push(format!("{} errors", p.errors));
        }
        if p.unsent > 0 {
            flags.push(format!("{} unsent", p.unsent));
        }
        table.row(vec![
            if first {
                p.server.clone()
            } else {
                String::new()
            },
            p.load_pct.map_or("-".into(), |l| format!("{l:.0}%")),
            format!("{:.0}", p.offered),
            format!("{:.0}", p.achieved),
            us(p.p50_us),
            us(p.p99_us),
            us(p.p999_us),
            p.model_p99_us.map_or("-".into(), us),
            p.service_us.map_or("-".into(), us),
            flags.join(", "),
        ]);
    }
    let mut out = table.render(1);
    out.push('\n');
    let share = |v: f64| capacity.map_or("-".into(), |c| format!("{:.0}%", 100.0 * v / c));
    let mut table = Table::new(&[
        "server",
        "max load at SLO/s",
        "of capacity",
        "model/s",
        "of capacity",
        "measured/model",
        "service µs",
        "model service",
    ]);
    for s in summary {
        let measured = match s.bound {
            Bound::Interpolated => format!("{:.0}", s.max_load_at_slo),
            Bound::BelowLowest => "< lowest load".into(),
            Bound::AtLeastHighest => format!(">= {:.0}", s.max_load_at_slo),
        };
        table.row(vec![
            s.server.clone(),
            measured,
            share(s.max_load_at_slo),
            s.model_max_load_at_slo
                .map_or("-".into(), |m| format!("{m:.0}")),
            s.model_max_load_at_slo.map_or("-".into(), share),
            s.model_max_load_at_slo
                .filter(|&m| m > 0.0)
                .map_or("-".into(), |m| format!("{:.2}", s.max_load_at_slo / m)),
            s.service_us.map_or("-".into(), us),
            s.model_service.clone().unwrap_or_else(|| "-".into()),
        ]);
    }
    out.push_str(&table.render(1));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(offered: f64, p99_us: f64, saturated: bool) -> SweepPoint {
        SweepPoint {
            server: "s".into(),
            load_pct: None,
            offered,
            achieved: offered,
            p50_us: p99_us / 4.0,
            p99_us,
            p999_us: p99_us * 2.0,
            model_p99_us: None,
            service_us: None,
            requests: 1,
            errors: 0,
            unsent: 0,
            saturated,
        }
    }

    fn max(points: &[SweepPoint], slo: f64) -> (f64, Bound) {
        max_load_at_slo(&points.iter().collect::<Vec<_>>(), slo)
    }

    #[test]
    fn max_load_interpolates_on_log_latency() {
        // 100 µs at 1000/s, 10,000 µs at 2000/s: 1,000 µs is half way in log.
        let points = [point(2000.0, 10_000.0, false), point(1000.0, 100.0, false)];
        let (load, bound) = max(&points, 1000.0);
        assert_eq!(bound, Bound::Interpolated);
        assert!((load - 1500.0).abs() < 1e-6, "{load}");
        // A later point back under the SLO is pooled with the miss before
        // it (log mean 2236 µs): the crossing moves, but stays before it.
        let points = [
            point(1000.0, 100.0, false),
            point(2000.0, 10_000.0, false),
            point(3000.0, 500.0, false),
        ];
        let (load, bound) = max(&points, 1000.0);
        assert_eq!(bound, Bound::Interpolated);
        assert!((1700.0..1800.0).contains(&load), "{load}");
        // One stalled point at the lowest load does not end the search:
        // pooled with the two after it (log mean 765 µs), it meets the SLO,
        // and the crossing is found between 3000 and 4000 req/s.
        let points = [
            point(1000.0, 1500.0, false),
            point(2000.0, 500.0, false),
            point(3000.0, 600.0, false),
            point(4000.0, 5000.0, false),
        ];
        let (load, bound) = max(&points, 1000.0);
        assert_eq!(bound, Bound::Interpolated);
        assert!((3100.0..3200.0).contains(&load), "{load}");
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
        let points = [point(1000.0, 100.0, false), point(2000.0, 200.0, false)];
        assert_eq!(max(&points, 1000.0), (2000.0, Bound::AtLeastHighest));
        let points = [point(1000.0, 5000.0, false)];
        assert_eq!(max(&points, 1000.0), (0.0, Bound::BelowLowest));
        // Saturated with a low p99 (replies never came): no credit past
        // the last good point.
        let points = [point(1000.0, 100.0, false), point(2000.0, 50.0, true)];
        assert_eq!(max(&points, 1000.0), (1000.0, Bound::Interpolated));
        assert_eq!(max(&[], 1000.0), (0.0, Bound::BelowLowest));
    }

    #[test]
    fn table_shows_points_flags_and_summary() {
        let mut p = point(1000.0, 100.0, false);
        p.load_pct = Some(10.0);
        p.model_p99_us = Some(90.0);
        let mut q = point(2000.0, 10_000.0, true);
        q.unsent = 3;
        let summary = SweepSummary {
            server: "s".into(),
            max_load_at_slo: 1500.0,
            bound: Bound::Interpolated,
            model_max_load_at_slo: Some(3000.0),
            service_us: Some(101.0),
            model_service: Some("exp:100us".into()),
        };
        let text = render(&[p, q], &[summary], Some(10_000.0));
        assert!(text.contains("saturated, 3 unsent"), "{text}");
        assert!(text.contains("90.0"), "{text}");
        let last = text.lines().last().unwrap();
        for cell in ["1500", "15%", "3000", "30%", "0.50", "101.0", "exp:100us"] {
            assert!(last.contains(cell), "{cell} in {last}");
        }
    }
}
