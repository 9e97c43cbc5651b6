//! The sweep's chart: p99 latency against offered load, a solid line per
//! server with its queueing model dashed beside it in the same colour, the
//! latency objective across, and the capacity the loads are shares of.

use std::path::Path;

use anyhow::Result;
use plotters::prelude::*;

use super::chart::{human, plot_error, TimeUnit, FONT, PALETTE};
use super::sweep::SweepPoint;

const WIDTH: u32 = 960;
const HEIGHT: u32 = 620;

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
    let latencies = points
        .iter()
        .flat_map(|p| [Some(p.p99_us), p.model_p99_us])
        .flatten()
        .chain([slo_us])
        .filter(|v| *v > 0.0);
    let (lo, hi) = latencies.fold((f64::MAX, 0.0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let (y_lo, y_hi) = (lo / 1.5, hi * 1.5);
    let x_hi = points
        .iter()
        .map(|p| p.offered)
        .chain(capacity)
        .fold(0.0, f64::max)
        * 1.05;
    let unit = TimeUnit::for_max_us(y_hi);

    let root = SVGBackend::new(path, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_error)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, (FONT, title_size(title)).into_font())
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(72)
        .build_cartesian_2d(0.0..x_hi.max(1.0), (y_lo..y_hi).log_scale())
        .map_err(plot_error)?;
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

    let grey = BLACK.mix(0.45);
    chart
        .draw_series(DashedLineSeries::new(
            [(0.0, slo_us), (x_hi, slo_us)],
            4,
            4,
            grey.stroke_width(1),
        ))
        .map_err(plot_error)?
        .label(format!("SLO: p99 <= {}", unit.format(slo_us)))
        .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], grey));
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
        let measured: Vec<(f64, f64)> = mine.iter().map(|p| (p.offered, p.p99_us)).collect();
        chart
            .draw_series(LineSeries::new(measured.clone(), color.stroke_width(2)))
            .map_err(plot_error)?
            .label(server.to_string())
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2)));
        chart
            .draw_series(
                measured
                    .iter()
                    .map(|&xy| Circle::new(xy, 3, color.filled())),
            )
            .map_err(plot_error)?;
        let model: Vec<(f64, f64)> = mine
            .iter()
            .filter_map(|p| Some((p.offered, p.model_p99_us?)))
            .collect();
        if !model.is_empty() {
            chart
                .draw_series(DashedLineSeries::new(model, 6, 4, color.stroke_width(2)))
                .map_err(plot_error)?
                .label(format!("{server} (model)"))
                .legend(move |(x, y)| {
                    let dash = |from: i32| {
                        PathElement::new([(from, 0), (from + 6, 0)], color.stroke_width(2))
                    };
                    EmptyElement::at((x, y)) + dash(0) + dash(10)
                });
        }
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .label_font((FONT, 13).into_font())
        .draw()
        .map_err(plot_error)?;
    root.present().map_err(plot_error)?;
    Ok(())
}

/// Servers in the order they first appear.
fn servers_in_order(points: &[SweepPoint]) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::new();
    for p in points {
        if !out.contains(&p.server.as_str()) {
            out.push(&p.server);
        }
    }
    out
}

/// 20 px, smaller when a long title would not fit the width.
fn title_size(title: &str) -> f64 {
    let fits = 0.98 * WIDTH as f64 / (0.5 * title.chars().count().max(1) as f64);
    fits.min(20.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(server: &str, offered: f64, p99: f64, model: Option<f64>) -> SweepPoint {
        SweepPoint {
            server: server.into(),
            load_pct: None,
            offered,
            achieved: offered,
            p50_us: p99 / 3.0,
            p99_us: p99,
            p999_us: p99 * 2.0,
            model_p99_us: model,
            service_us: None,
            requests: 1,
            errors: 0,
            unsent: 0,
            saturated: false,
        }
    }

    #[test]
    fn svg_has_a_line_per_server_its_model_and_the_slo() {
        let dir = std::env::temp_dir().join(format!("kvbench-latency-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("l.svg");
        let points = [
            point("multi-reader", 4000.0, 300.0, Some(280.0)),
            point("multi-reader", 20_000.0, 5000.0, Some(4000.0)),
            point("worker-pool", 4000.0, 250.0, Some(240.0)),
            point("worker-pool", 20_000.0, 600.0, Some(500.0)),
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
            "20k",
        ] {
            assert!(svg.contains(text), "no {text:?} in the SVG");
        }
        // One unit on the latency axis: the top is 7.5 ms, so every tick is in ms.
        assert!(!svg.contains(" µs<"), "mixed units");
        // Two measured lines (polylines), two dashed models, the SLO dashes.
        assert!(svg.matches("<polyline").count() >= 4, "lines");
        assert!(svg.matches("<circle").count() >= 4, "markers");
    }
}
