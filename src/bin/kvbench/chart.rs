//! The comparison as an SVG chart: grouped bars per workload, one colour per
//! server, throughput on the left and p99 latency (log scale) on the right.

use std::path::Path;

use anyhow::{anyhow, Result};
use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::report::CompareRow;

const WIDTH: u32 = 1400;
const HEIGHT: u32 = 600;
/// x units per workload; bars take the middle 80 %.
const SLOT: i32 = 1000;
const FONT: &str = "sans-serif";
const PALETTE: [RGBColor; 6] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0x94, 0x67, 0xbd),
    RGBColor(0x8c, 0x56, 0x4b),
    RGBColor(0x7f, 0x7f, 0x7f),
];
const ERROR_RED: RGBColor = RGBColor(0xd6, 0x27, 0x28);

/// Writes the chart of `rows` to `path`.
pub fn write_svg(path: &Path, title: &str, rows: &[CompareRow]) -> Result<()> {
    let any_errors = rows.iter().any(|r| r.errors > 0);
    let root = SVGBackend::new(path, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_error)?;
    let title = if any_errors {
        format!("{title}  (red value labels: runs with errors, see the table)")
    } else {
        title.to_string()
    };
    let root = root
        .titled(&title, (FONT, 22).into_font())
        .map_err(plot_error)?;
    let (left, right) = root.split_horizontally(WIDTH / 2);
    let max_ops = rows.iter().map(|r| r.ops_per_sec).fold(0.0, f64::max);
    panel(
        &left,
        "Throughput (higher is better)",
        "ops/s",
        rows,
        |r| r.ops_per_sec,
        0.0..(max_ops * 1.15).max(1.0),
    )?;
    let p99s = rows.iter().map(|r| r.p99_us).filter(|v| *v > 0.0);
    let lo = p99s.clone().fold(f64::INFINITY, f64::min);
    let hi = p99s.fold(0.0, f64::max);
    let (lo, hi) = if hi > 0.0 {
        (lo / 2.0, hi * 3.0)
    } else {
        (1.0, 10.0)
    };
    panel(
        &right,
        "p99 latency (lower is better; log scale)",
        "p99 latency (µs)",
        rows,
        |r| r.p99_us,
        (lo..hi).log_scale(),
    )?;
    root.present().map_err(plot_error)?;
    Ok(())
}

/// One panel: x = workloads, a bar per server within each.
fn panel<Y>(
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    caption: &str,
    y_desc: &str,
    rows: &[CompareRow],
    value: impl Fn(&CompareRow) -> f64,
    y: Y,
) -> Result<()>
where
    Y: AsRangedCoord<Value = f64>,
    Y::CoordDescType: ValueFormatter<f64>,
{
    let servers = unique(rows.iter().map(|r| r.server.as_str()));
    let workloads = unique(rows.iter().map(|r| r.workload.as_str()));
    let n = workloads.len().max(1) as i32;
    let centers: Vec<i32> = (0..n).map(|i| i * SLOT + SLOT / 2).collect();
    let mut chart = ChartBuilder::on(area)
        .caption(caption, (FONT, 18).into_font())
        .margin(15)
        .x_label_area_size(50)
        .y_label_area_size(80)
        .build_cartesian_2d((0..n * SLOT).with_key_points(centers), y)
        .map_err(plot_error)?;
    let base = chart.y_range().start;
    let x_label = |x: &i32| {
        workloads
            .get((*x / SLOT) as usize)
            .map_or(String::new(), |w| w.to_string())
    };
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_label_formatter(&x_label)
        .y_label_formatter(&|v: &f64| human(*v))
        .x_desc("workload")
        .y_desc(y_desc)
        .label_style((FONT, 13).into_font())
        .axis_desc_style((FONT, 15).into_font())
        .light_line_style(WHITE.mix(0.0))
        .draw()
        .map_err(plot_error)?;

    let bar = (SLOT * 8 / 10) / servers.len().max(1) as i32;
    // Value labels fit when a bar is wide enough on screen.
    let bar_px = (WIDTH as f64 / 2.0 - 110.0) / f64::from(n * SLOT) * f64::from(bar);
    for (j, server) in servers.iter().enumerate() {
        let color = PALETTE[j % PALETTE.len()];
        let mut bars = Vec::new();
        let mut labels = Vec::new();
        for (i, w) in workloads.iter().enumerate() {
            let Some(r) = rows
                .iter()
                .find(|r| r.server == *server && r.workload == *w)
            else {
                continue;
            };
            let x0 = i as i32 * SLOT + SLOT / 10 + j as i32 * bar;
            let v = value(r).max(base);
            bars.push(Rectangle::new(
                [(x0 + 4, base), (x0 + bar - 4, v)],
                color.filled(),
            ));
            if bar_px >= 30.0 {
                let style = (FONT, 11)
                    .into_font()
                    .color(if r.errors > 0 { &ERROR_RED } else { &BLACK })
                    .pos(Pos::new(HPos::Center, VPos::Bottom));
                labels.push(Text::new(human(value(r)), (x0 + bar / 2, v), style));
            }
        }
        chart
            .draw_series(bars)
            .map_err(plot_error)?
            .label(server.to_string())
            .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 14, y + 6)], color.filled()));
        chart.draw_series(labels).map_err(plot_error)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK.mix(0.5))
        .label_font((FONT, 13).into_font())
        .draw()
        .map_err(plot_error)?;
    Ok(())
}

/// Distinct values in order of first appearance.
fn unique<'a>(items: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut out: Vec<&str> = Vec::new();
    for item in items {
        if !out.contains(&item) {
            out.push(item);
        }
    }
    out
}

/// 1234 → 1.2k, 2500000 → 2.5M, 12.5 → 12.5.
fn human(v: f64) -> String {
    let (scaled, unit) = if v >= 1e6 {
        (v / 1e6, "M")
    } else if v >= 1e3 {
        (v / 1e3, "k")
    } else {
        (v, "")
    };
    if scaled >= 100.0 || (unit.is_empty() && scaled == scaled.round()) {
        format!("{scaled:.0}{unit}")
    } else {
        format!("{scaled:.1}{unit}")
    }
}

fn plot_error<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("plotting: {e:?}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(server: &str, workload: &str, ops: f64, p99: f64, errors: u64) -> CompareRow {
        CompareRow {
            server: server.into(),
            workload: workload.into(),
            ops_per_sec: ops,
            p50_us: p99 / 2.0,
            p99_us: p99,
            p999_us: p99 * 2.0,
            requests: 1,
            misses: 0,
            errors,
            first_error: None,
            imbalance: None,
            threads: None,
        }
    }

    #[test]
    fn human_numbers() {
        assert_eq!(human(12.0), "12");
        assert_eq!(human(12.34), "12.3");
        assert_eq!(human(1234.0), "1.2k");
        assert_eq!(human(123_456.0), "123k");
        assert_eq!(human(2_500_000.0), "2.5M");
    }

    #[test]
    fn svg_has_bars_labels_and_legend() {
        let dir = std::env::temp_dir().join(format!("kvbench-chart-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.svg");
        let rows = [
            row("basic", "uniform", 50_000.0, 80.0, 0),
            row("worker-pool", "uniform", 40_000.0, 120.0, 0),
            row("basic", "skewed/light", 2_000.0, 900.0, 3),
            row("worker-pool", "skewed/light", 2_000.0, 150.0, 0),
        ];
        write_svg(&path, "test chart", &rows).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..100.min(svg.len())]);
        for text in [
            "test chart",
            "uniform",
            "skewed/light",
            "worker-pool",
            "ops/s",
            "p99 latency",
            "50k",
            "red value labels",
        ] {
            assert!(svg.contains(text), "no {text:?} in the SVG");
        }
        assert!(svg.matches("<rect").count() >= 8);
    }
}
