//! The sweep's chart: p99 latency against offered load, a solid line per
//! server through the medians of its rounds, each point's range over the
//! rounds as an error bar, its queueing model dashed beside it in the same
//! colour and the model with this machine's measured overheads dotted,
//! the latency objective across, and the capacity the loads are
//! shares of (a second axis along the top reads the load in % of it).
//! Points left out as disturbed are drawn hollow. The legend stands right
//! of the plot, where no curve can run under it.

use std::path::Path;

use anyhow::Result;
use plotters::prelude::*;

use super::chart::{human, plot_error, TimeUnit, FONT, PALETTE};
use super::sweep::table::servers_in_order;
use super::sweep::SweepPoint;

const WIDTH: u32 = 1060;
const HEIGHT: u32 = 640;
/// The legend's strip, right of the plot.
const LEGEND_WIDTH: u32 = 200;

/// Writes the chart of `points` to `path`. `slo_us` draws the objective;
/// `capacity` (req/s), when known, a mark where the loads reach 100%.
pub fn write_svg(
    path: &Path,
    title: &str,
    points: &[SweepPoint],
    slo_us: f64,
    capacity: Option<f64>,
) -> Result<()> {
    let servers = servers_in_order(points);
    // The axis spans the measurements and the objective; a model's
    // line past them (its backlog at a saturated load) is cut at the top.
    let measured = points.iter().flat_map(|p| [p.p99_us, p.p99_low_us]);
    let models = points
        .iter()
        .flat_map(|p| [p.model_p99_us, p.model_measured_p99_us])
        .flatten();
    let (lo, hi) = measured
        .chain([slo_us])
        .filter(|v| v.is_finite() && *v > 0.0)
        .fold((f64::MAX, 0.0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let lo = models.filter(|v| *v > 0.0).fold(lo, f64::min);
    let (y_lo, y_hi) = (lo / 1.5, hi * 1.5);
    let clamp = |v: f64| v.min(y_hi);
    let x_hi = points
        .iter()
        .map(|p| p.offered)
        .chain(capacity)
        .fold(0.0, f64::max)
        .max(1.0)
        * 1.05;
    let unit = TimeUnit::for_max_us(y_hi);

    let root = SVGBackend::new(path, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_error)?;
    let root = root
        .titled(title, (FONT, title_size(title)).into_font())
        .map_err(plot_error)?;
    let (plot_area, legend_area) = root.split_horizontally(WIDTH - LEGEND_WIDTH);
    let mut chart = ChartBuilder::on(&plot_area)
        .margin(16)
        .set_label_area_size(LabelAreaPosition::Bottom, 48)
        .set_label_area_size(LabelAreaPosition::Left, 72)
        .set_label_area_size(
            LabelAreaPosition::Top,
            if capacity.is_some() { 40 } else { 0 },
        )
        .build_cartesian_2d(0.0..x_hi, (y_lo..y_hi).log_scale())
        .map_err(plot_error)?
        .set_secondary_coord(
            0.0..capacity.map_or(1.0, |c| 100.0 * x_hi / c),
            (y_lo..y_hi).log_scale(),
        );
    chart
        .configure_mesh()
        .x_desc("offered load (requests/s, Poisson arrivals)")
        .y_desc("p99 latency")
        .x_label_formatter(&|v: &f64| human(*v))
        .y_label_formatter(&|v: &f64| unit.format(*v))
        .label_style((FONT, 12).into_font())
        .axis_desc_style((FONT, 14).into_font())
        .light_line_style(BLACK.mix(0.04))
        .bold_line_style(BLACK.mix(0.12))
        .draw()
        .map_err(plot_error)?;
    if capacity.is_some() {
        chart
            .configure_secondary_axes()
            .x_desc("offered load, % of capacity")
            .x_label_formatter(&|v: &f64| format!("{v:.0}%"))
            .y_labels(0)
            .label_style((FONT, 12).into_font())
            .axis_desc_style((FONT, 14).into_font())
            .draw()
            .map_err(plot_error)?;
    }

    let grey = BLACK.mix(0.45);
    let mut legend: Vec<(String, LegendMark)> = Vec::new();
    chart
        .draw_series(DashedLineSeries::new(
            [(0.0, slo_us), (x_hi, slo_us)],
            4,
            4,
            grey.stroke_width(1),
        ))
        .map_err(plot_error)?;
    legend.push((
        format!("SLO: p99 <= {}", unit.format(slo_us)),
        LegendMark::Dashed(grey.to_rgba()),
    ));
    if let Some(c) = capacity {
        chart
            .draw_series(LineSeries::new(
                [(c, y_lo), (c, y_hi)],
                grey.stroke_width(1),
            ))
            .map_err(plot_error)?;
        chart
            .draw_series([Text::new(
                "capacity".to_string(),
                (c, y_hi),
                (FONT, 12).into_font().color(&grey),
            )])
            .map_err(plot_error)?;
    }

    for (j, server) in servers.iter().enumerate() {
        let color = PALETTE[j % PALETTE.len()];
        let mut mine: Vec<&SweepPoint> = points.iter().filter(|p| p.server == *server).collect();
        mine.sort_by(|a, b| a.offered.total_cmp(&b.offered));
        let shown: Vec<&SweepPoint> = mine
            .iter()
            .copied()
            .filter(|p| p.p99_us.is_finite())
            .collect();
        let line: Vec<(f64, f64)> = shown
            .iter()
            .filter(|p| p.counts)
            .map(|p| (p.offered, p.p99_us))
            .collect();
        chart
            .draw_series(LineSeries::new(line, color.stroke_width(2)))
            .map_err(plot_error)?;
        chart
            .draw_series(shown.iter().map(|p| {
                let high = if p.p99_high_us.is_finite() {
                    p.p99_high_us.min(y_hi)
                } else {
                    y_hi
                };
                ErrorBar::new_vertical(
                    p.offered,
                    p.p99_low_us.clamp(y_lo, p.p99_us),
                    p.p99_us,
                    high.max(p.p99_us),
                    color.stroke_width(1),
                    6,
                )
            }))
            .map_err(plot_error)?;
        chart
            .draw_series(shown.iter().map(|p| {
                let style = if p.counts {
                    color.filled()
                } else {
                    color.stroke_width(1)
                };
                Circle::new((p.offered, p.p99_us), 3, style)
            }))
            .map_err(plot_error)?;
        legend.push((server.to_string(), LegendMark::Solid(color.to_rgba())));
        // Each model beside the measurement: dashed the ideal one, dotted
        // the one fed this machine's overheads.
        let models: [ModelLine; 2] = [
            (|p| p.model_p99_us, 6, "model", LegendMark::Dashed),
            (|p| p.model_measured_p99_us, 2, "model+", LegendMark::Dotted),
        ];
        for (p99, dash, name, mark) in models {
            let line: Vec<(f64, f64)> = mine
                .iter()
                .filter_map(|p| Some((p.offered, clamp(p99(p)?))))
                .collect();
            if line.is_empty() {
                continue;
            }
            chart
                .draw_series(DashedLineSeries::new(line, dash, 4, color.stroke_width(2)))
                .map_err(plot_error)?;
            legend.push((format!("{server} ({name})"), mark(color.to_rgba())));
        }
    }
    if points.iter().any(|p| !p.counts) {
        legend.push((
            "hollow: disturbed, left out".into(),
            LegendMark::Hollow(grey.to_rgba()),
        ));
    }
    legend.push((
        "bars: range over rounds".into(),
        LegendMark::Bar(grey.to_rgba()),
    ));
    draw_legend(&legend_area, &legend)?;
    root.present().map_err(plot_error)?;
    Ok(())
}

/// A model's line: its p99 at a point, the dash length, its name in the
/// legend, and its legend mark.
type ModelLine = (
    fn(&SweepPoint) -> Option<f64>,
    u32,
    &'static str,
    fn(RGBAColor) -> LegendMark,
);

/// How a legend entry is drawn.
enum LegendMark {
    Solid(RGBAColor),
    Dashed(RGBAColor),
    Dotted(RGBAColor),
    Hollow(RGBAColor),
    Bar(RGBAColor),
}

/// The legend, one entry a line, from the top of its strip.
fn draw_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    entries: &[(String, LegendMark)],
) -> Result<()> {
    let font = (FONT, 13).into_font();
    for (i, (label, mark)) in entries.iter().enumerate() {
        let y = 60 + 22 * i as i32;
        let line = |from: i32, to: i32, color: RGBAColor| {
            PathElement::new([(from, y), (to, y)], color.stroke_width(2))
        };
        match *mark {
            LegendMark::Solid(c) => area.draw(&line(4, 28, c)),
            LegendMark::Dashed(c) => area
                .draw(&line(4, 12, c))
                .and_then(|()| area.draw(&line(18, 26, c))),
            LegendMark::Dotted(c) => {
                (0..5).try_for_each(|k| area.draw(&line(4 + 6 * k, 6 + 6 * k, c)))
            }
            LegendMark::Hollow(c) => area.draw(&Circle::new((16, y), 3, c.stroke_width(1))),
            LegendMark::Bar(c) => area.draw(&PathElement::new(
                [(16, y - 7), (16, y + 7)],
                c.stroke_width(1),
            )),
        }
        .map_err(plot_error)?;
        area.draw(&Text::new(label.clone(), (34, y - 7), font.clone()))
            .map_err(plot_error)?;
    }
    Ok(())
}

/// 20 px, smaller when a long title would not fit the width.
fn title_size(title: &str) -> f64 {
    let fits = 0.98 * WIDTH as f64 / (0.5 * title.chars().count().max(1) as f64);
    fits.min(20.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::sweep::tests::{disturbed, sample};

    fn point(server: &str, offered: f64, p99: f64, model: Option<f64>) -> SweepPoint {
        let mut p = SweepPoint::of(
            server,
            None,
            offered,
            (1..=3).map(|r| sample(r, p99)).collect(),
        );
        p.model_p99_us = model;
        p
    }

    #[test]
    fn svg_has_a_line_per_server_its_model_bars_and_the_slo() {
        let dir = std::env::temp_dir().join(format!("kvbench-latency-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("l.svg");
        let stalled = SweepPoint::of(
            "worker-pool",
            None,
            30_000.0,
            (1..=3).map(|r| disturbed(sample(r, 900.0), 1)).collect(),
        );
        let points = [
            point("multi-reader", 4000.0, 300.0, Some(280.0)),
            point("multi-reader", 20_000.0, 5000.0, Some(4000.0)),
            point("worker-pool", 4000.0, 250.0, Some(240.0)),
            point("worker-pool", 20_000.0, 600.0, Some(500.0)),
            stalled,
        ];
        write_svg(&path, "sweep chart", &points, 1000.0, Some(40_000.0)).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        for text in [
            "sweep chart",
            "multi-reader (model)",
            "worker-pool",
            "SLO: p99 &lt;= 1 ms",
            "capacity",
            "offered load",
            "% of capacity",
            "50%",
            "20k",
            "hollow: disturbed, left out",
            "bars: range over rounds",
        ] {
            assert!(svg.contains(text), "no {text:?} in the SVG");
        }
        // One unit on the latency axis: the top is 7.5 ms, so every tick is in ms.
        assert!(!svg.contains(" µs<"), "mixed units");
        // Two measured lines, two dashed models, the SLO dashes.
        assert!(svg.matches("<polyline").count() >= 4, "lines");
        // Four filled markers and one hollow one.
        assert!(svg.matches("<circle").count() >= 5, "markers");
        // The legend is right of the plot: its text starts past the plot's width.
        let legend_x = svg
            .split("<text")
            .find(|t| t.contains("worker-pool (model)"))
            .and_then(|t| t.split("x=\"").nth(1))
            .and_then(|t| t.split('"').next())
            .and_then(|x| x.parse::<f64>().ok())
            .unwrap();
        assert!(legend_x > (WIDTH - LEGEND_WIDTH) as f64, "{legend_x}");
    }
}
