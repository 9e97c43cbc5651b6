//! The sweep's text tables: a block of points per server, then a summary
//! row per server.

use super::super::{us, Table};
use super::{Bound, MaxLoad, SweepPoint, SweepSummary};

/// The points table, one block per server in the order they first
/// appear, each block by load.
pub fn render_points(points: &[SweepPoint]) -> String {
    let mut table = Table::new(&[
        "server",
        "load",
        "offered/s",
        "achieved/s",
        "p50 µs",
        "p99 µs",
        "p99 range µs",
        "model p99 µs",
        "model+ p99 µs",
        "service µs",
        "server cpu",
        "hiccups p99/max µs",
        "late p99 µs",
        "rounds",
        "",
    ]);
    for (i, server) in servers_in_order(points).into_iter().enumerate() {
        if i > 0 {
            table.gap();
        }
        let mut mine: Vec<&SweepPoint> = points.iter().filter(|p| p.server == server).collect();
        mine.sort_by(|a, b| a.offered.total_cmp(&b.offered));
        for (j, p) in mine.into_iter().enumerate() {
            table.row(vec![
                if j == 0 {
                    server.to_string()
                } else {
                    String::new()
                },
                p.load_pct.map_or("-".into(), percent),
                format!("{:.0}", p.offered),
                format!("{:.0}", p.achieved),
                us(p.p50_us),
                latency(p.p99_us),
                format!("{}-{}", latency(p.p99_low_us), latency(p.p99_high_us)),
                p.model_p99_us.map_or("-".into(), us),
                p.model_measured_p99_us.map_or("-".into(), us),
                p.service_us.map_or("-".into(), us),
                p.server_cpu
                    .map_or("-".into(), |c| format!("{:.0}%", 100.0 * c)),
                format!("{}/{}", us(p.hiccup_p99_us), us(p.hiccup_max_us)),
                p.late_p99_us.map_or("-".into(), us),
                rounds(p),
                flags(p),
            ]);
        }
    }
    table.render(1)
}

/// `3/3`, or `2/3 +1` with a re-measurement.
fn rounds(p: &SweepPoint) -> String {
    let mut out = format!("{}/{}", p.clean_rounds, p.rounds);
    if p.retries > 0 {
        out += &format!(" +{}", p.retries);
    }
    out
}

fn flags(p: &SweepPoint) -> String {
    let mut flags = Vec::new();
    if !p.counts {
        flags.push("disturbed: left out".to_string());
    }
    if p.saturated {
        flags.push("saturated".to_string());
    }
    if p.errors > 0 {
        flags.push(format!("{} errors", p.errors));
    }
    if p.unsent > 0 {
        flags.push(format!("{} unsent", p.unsent));
    }
    flags.join(", ")
}

/// The summary: per server the highest load at the objective, measured
/// (with its interval) and modelled.
pub fn render_summary(summary: &[SweepSummary], capacity: Option<f64>) -> String {
    let mut table = Table::new(&[
        "server",
        "max load at SLO/s",
        "of capacity",
        "model/s",
        "of capacity",
        "measured/model",
        "model+/s",
        "of capacity",
        "measured/model+",
        "service µs",
        "model service",
        "points counted",
    ]);
    for s in summary {
        let m = &s.max_load;
        let (measured, of_capacity, counted) = if s.points_counted == 0 {
            ("cannot tell".to_string(), "-".to_string(), None)
        } else {
            let uncertain = if m.uncertain.is_some() { " ?" } else { "" };
            (
                measured_load(m) + uncertain,
                measured_share(m, capacity),
                Some(m),
            )
        };
        let mut row = vec![s.server.clone(), measured, of_capacity];
        for model in [s.model_max_load_at_slo, s.model_measured_max_load] {
            row.push(model.map_or("-".into(), |m| format!("{m:.0}")));
            row.push(
                model
                    .zip(capacity)
                    .map_or("-".into(), |(m, c)| percent(100.0 * m / c)),
            );
            row.push(counted.map_or(String::new(), |m| ratio(m, model)));
        }
        row.extend([
            s.service_us.map_or("-".into(), us),
            s.model_service.clone().unwrap_or_else(|| "-".into()),
            format!("{}/{}", s.points_counted, s.points),
        ]);
        table.row(row);
    }
    let mut out = table.render(1);
    for s in summary {
        if let Some(why) = &s.max_load.uncertain {
            out += &format!("? {}: uncertain: {why}\n", s.server);
        }
    }
    out
}

/// The measured maximum load, req/s: `1400 (1260-1540)`, `< 1000`, `>= 9000`.
fn measured_load(m: &MaxLoad) -> String {
    match m.bound {
        Bound::Interpolated => format!("{:.0} ({:.0}-{:.0})", m.estimate, m.low, m.high),
        Bound::BelowLowest => format!("< {:.0}", m.lowest),
        Bound::AtLeastHighest => format!(">= {:.0}", m.estimate),
    }
}

/// The same in % of capacity, `-` when capacity is not known.
fn measured_share(m: &MaxLoad, capacity: Option<f64>) -> String {
    capacity.map_or("-".into(), |c| {
        let pct = |v: f64| 100.0 * v / c;
        match m.bound {
            Bound::Interpolated => format!(
                "{} ({}-{})",
                percent(pct(m.estimate)),
                number(pct(m.low)),
                percent(pct(m.high))
            ),
            Bound::BelowLowest => format!("< {}", percent(pct(m.lowest))),
            Bound::AtLeastHighest => format!(">= {}", percent(pct(m.estimate))),
        }
    })
}

/// The measured maximum load over a model's, when both are known.
fn ratio(measured: &MaxLoad, model: Option<f64>) -> String {
    model
        .filter(|&model| model > 0.0 && measured.bound != Bound::BelowLowest)
        .map_or(String::new(), |model| {
            format!("{:.2}", measured.estimate / model)
        })
}

/// 45%, 2.5%.
pub fn percent(v: f64) -> String {
    number(v) + "%"
}

/// 45, 2.5: one decimal below 10, where it matters.
fn number(v: f64) -> String {
    if v < 10.0 && v != v.round() {
        format!("{v:.1}")
    } else {
        format!("{v:.0}")
    }
}

/// A p99 in µs, or `sat` for a saturated (unbounded) one.
fn latency(v: f64) -> String {
    if v.is_finite() {
        us(v)
    } else {
        "sat".into()
    }
}

/// Servers in the order they first appear.
pub fn servers_in_order(points: &[SweepPoint]) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::new();
    for p in points {
        if !out.contains(&p.server.as_str()) {
            out.push(&p.server);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::tests::{disturbed, sample};
    use super::*;

    fn point(server: &str, load: f64, p99: f64) -> SweepPoint {
        let mut p = SweepPoint::of(
            server,
            Some(load),
            load * 100.0,
            (1..=3).map(|r| sample(r, p99)).collect(),
        );
        p.model_p99_us = Some(p99 * 0.9);
        p
    }

    #[test]
    fn points_are_grouped_by_server_without_blank_rows() {
        // Measured in load order, interleaved across servers.
        let points = [
            point("a", 10.0, 100.0),
            point("b", 10.0, 120.0),
            point("a", 20.0, 200.0),
            point("b", 20.0, 240.0),
        ];
        let text = render_points(&points);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 6, "{text}");
        assert!(lines[1].starts_with("a ") && lines[2].trim_start().starts_with("20%"));
        assert_eq!(lines[3], "");
        assert!(
            lines[4].starts_with("b ") && lines[5].contains("240.0"),
            "{text}"
        );
        assert!(lines[1].contains("3/3"), "{text}");
    }

    #[test]
    fn disturbed_and_retried_points_say_so() {
        let p = SweepPoint::of(
            "a",
            Some(10.0),
            1000.0,
            vec![
                sample(1, 300.0),
                disturbed(sample(2, 9000.0), 1),
                disturbed(sample(2, 9000.0), 2),
                disturbed(sample(3, 9000.0), 1),
            ],
        );
        let text = render_points(&[p]);
        assert!(text.contains("1/3 +1"), "{text}");
        assert!(text.contains("disturbed: left out"), "{text}");
    }

    fn summary(bound: Bound, estimate: f64) -> SweepSummary {
        SweepSummary {
            server: "basic".into(),
            max_load: MaxLoad {
                estimate,
                bound,
                low: estimate * 0.9,
                high: estimate * 1.1,
                lowest: 1000.0,
                uncertain: None,
            },
            model_max_load_at_slo: Some(3000.0),
            model_measured_max_load: Some(2400.0),
            service_us: Some(101.0),
            model_service: Some("exp:100us".into()),
            points: 4,
            points_counted: 3,
        }
    }

    #[test]
    fn below_the_lowest_load_reads_as_a_bound_with_no_ratio() {
        let text = render_summary(&[summary(Bound::BelowLowest, 0.0)], Some(10_000.0));
        let row = text.lines().nth(1).unwrap();
        assert!(row.contains("< 1000") && row.contains("< 10%"), "{row}");
        assert!(!row.contains("0.00"), "{row}");
        let text = render_summary(&[summary(Bound::Interpolated, 1400.0)], Some(10_000.0));
        let row = text.lines().nth(1).unwrap();
        for cell in [
            "1400 (1260-1540)",
            "14% (13-15%)",
            "3000",
            "30%",
            "0.47",
            "2400",
            "24%",
            "0.58",
            "3/4",
        ] {
            assert!(row.contains(cell), "{cell} in {row}");
        }
    }

    #[test]
    fn an_uncertain_result_is_marked_and_explained() {
        let mut s = summary(Bound::Interpolated, 1500.0);
        s.max_load.uncertain = Some("the point that decides it (20%) was disturbed".into());
        let text = render_summary(&[s], None);
        assert!(text.contains("1500 (1350-1650) ?"), "{text}");
        assert!(text.contains("basic: uncertain: the point that decides it (20%)"));
    }

    #[test]
    fn nothing_counted_reads_as_cannot_tell() {
        let mut s = summary(Bound::BelowLowest, 0.0);
        s.points_counted = 0;
        s.max_load.uncertain = Some("none of its 4 points was measured undisturbed".into());
        let text = render_summary(&[s], Some(10_000.0));
        let row = text.lines().nth(1).unwrap();
        assert!(row.contains("cannot tell") && !row.contains("< "), "{row}");
        assert!(text.contains("none of its 4 points"), "{text}");
    }

    #[test]
    fn percents() {
        assert_eq!(percent(45.2), "45%");
        assert_eq!(percent(2.5), "2.5%");
        assert_eq!(percent(10.0), "10%");
    }
}
