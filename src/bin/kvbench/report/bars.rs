//! The comparison as an SVG chart: small multiples, one column per
//! workload, throughput on the top row and p99 latency below, a bar per
//! server in one colour each, every panel on its own scale (workloads differ
//! by orders of magnitude).

use std::path::Path;

use anyhow::Result;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::chart::{human, plot_error, TimeUnit, ERROR_RED, FONT, PALETTE};
use super::CompareRow;

const PANEL_WIDTH: u32 = 240;
const MIN_WIDTH: u32 = 720;
const HEIGHT: u32 = 680;
/// Title and legend above the panels.
const HEADER: u32 = 80;

/// Writes the chart of `rows` to `path`.
pub fn write_svg(path: &Path, title: &str, rows: &[CompareRow]) -> Result<()> {
    let servers = unique(rows.iter().map(|r| r.server.as_str()));
    let workloads = unique(rows.iter().map(|r| r.workload.as_str()));
    let width = (PANEL_WIDTH * workloads.len().max(1) as u32).max(MIN_WIDTH);
    let root = SVGBackend::new(path, (width, HEIGHT)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_error)?;
    let (header, body) = root.split_vertically(HEADER);
    draw_header(&header, title, &servers, rows.iter().any(|r| r.errors > 0))?;
    let panels = body.split_evenly((2, workloads.len().max(1)));
    let (top, bottom) = panels.split_at(workloads.len().max(1));
    for (i, w) in workloads.iter().enumerate() {
        let of_workload: Vec<&CompareRow> = rows.iter().filter(|r| r.workload == *w).collect();
        // One unit per axis: `0.5 ms` beside `1 ms`, never `500 µs` beside `1 ms`.
        let p99_max = of_workload.iter().map(|r| r.p99_us).fold(0.0, f64::max);
        let unit = TimeUnit::for_max_us(p99_max * 1.2);
        // A churn request is a connection: its rate is connections/s, its
        // latency from the connect to the reply.
        let churn = w.starts_with("churn");
        panel(
            &top[i],
            &format!("{w}: {}", if churn { "conns/s" } else { "ops/s" }),
            &servers,
            &of_workload,
            |r| r.ops_per_sec,
            &human,
            i == 0,
        )?;
        panel(
            &bottom[i],
            &format!(
                "{w}: p99 {}",
                if churn { "connect to reply" } else { "latency" }
            ),
            &servers,
            &of_workload,
            |r| r.p99_us,
            &|us| unit.format(us),
            i == 0,
        )?;
    }
    root.present().map_err(plot_error)?;
    Ok(())
}

/// The title's font size: 22 px, smaller when a long title (many flags)
/// would not fit the width (a sans-serif glyph is at most about 0.5 em
/// wide on average).
fn title_size(width: u32, title: &str) -> f64 {
    let fits = 0.98 * width as f64 / (0.5 * title.chars().count().max(1) as f64);
    fits.min(22.0)
}

/// The title, and a legend: one coloured square per server.
fn draw_header(
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    title: &str,
    servers: &[&str],
    any_errors: bool,
) -> Result<()> {
    let (width, _) = area.dim_in_pixel();
    let centre = Pos::new(HPos::Center, VPos::Top);
    area.draw(&Text::new(
        title.to_string(),
        (width as i32 / 2, 10),
        (FONT, title_size(width, title))
            .into_font()
            .color(&BLACK)
            .pos(centre),
    ))
    .map_err(plot_error)?;
    let mut legend: Vec<(String, RGBColor)> = servers
        .iter()
        .enumerate()
        .map(|(j, s)| (s.to_string(), PALETTE[j % PALETTE.len()]))
        .collect();
    if any_errors {
        legend.push(("! = run had errors (see the table)".into(), ERROR_RED));
    }
    // Rough text widths: the SVG viewer lays the text out itself.
    let entry_width = |name: &str| 30 + 8 * name.chars().count() as i32;
    let total: i32 = legend.iter().map(|(n, _)| entry_width(n)).sum();
    let mut x = (width as i32 - total).max(0) / 2;
    let y = 52;
    for (name, color) in &legend {
        area.draw(&Rectangle::new(
            [(x, y - 7), (x + 14, y + 7)],
            color.filled(),
        ))
        .map_err(plot_error)?;
        let style = (FONT, 14)
            .into_font()
            .color(&BLACK)
            .pos(Pos::new(HPos::Left, VPos::Center));
        area.draw(&Text::new(name.clone(), (x + 20, y), style))
            .map_err(plot_error)?;
        x += entry_width(name);
    }
    Ok(())
}

/// One panel: a bar per server for one workload and one measure, from zero
/// on a linear scale, with its value above it.
fn panel(
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    caption: &str,
    servers: &[&str],
    rows: &[&CompareRow],
    value: impl Fn(&CompareRow) -> f64,
    format: &dyn Fn(f64) -> String,
    first: bool,
) -> Result<()> {
    let n = servers.len().max(1) as i32;
    let max = rows.iter().map(|r| value(r)).fold(0.0, f64::max);
    let top = if max > 0.0 { max * 1.2 } else { 1.0 };
    let mut chart = ChartBuilder::on(area)
        .caption(caption, (FONT, 15).into_font())
        .margin(8)
        .margin_left(if first { 8 } else { 4 })
        .x_label_area_size(8)
        .y_label_area_size(58)
        .build_cartesian_2d((0..n * 10).with_key_points(Vec::new()), 0.0..top)
        .map_err(plot_error)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .disable_x_axis()
        .y_labels(5)
        .y_label_formatter(&|v: &f64| format(*v))
        .label_style((FONT, 11).into_font())
        .light_line_style(WHITE.mix(0.0))
        .bold_line_style(BLACK.mix(0.12))
        .draw()
        .map_err(plot_error)?;
    for (j, server) in servers.iter().enumerate() {
        let Some(r) = rows.iter().find(|r| r.server == *server) else {
            continue;
        };
        let color = PALETTE[j % PALETTE.len()];
        let x0 = j as i32 * 10;
        let v = value(r);
        chart
            .draw_series([Rectangle::new([(x0 + 1, 0.0), (x0 + 9, v)], color.filled())])
            .map_err(plot_error)?;
        let mut label = format(v);
        let mut style = (FONT, 10).into_font().color(&BLACK);
        if r.errors > 0 {
            label.push_str(" !");
            style = (FONT, 10).into_font().color(&ERROR_RED);
        }
        let style = style.pos(Pos::new(HPos::Center, VPos::Bottom));
        chart
            .draw_series([Text::new(label, (x0 + 5, v), style)])
            .map_err(plot_error)?;
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_titles_shrink_to_fit() {
        assert_eq!(title_size(720, "kvbench compare: --threads 2"), 22.0);
        let long = "kvbench compare: --threads 2 --client-cpus 0 --server-cpus 1, 5.0 s per run, 5 rounds (medians)";
        let size = title_size(720, long);
        assert!(
            size < 22.0 && 0.5 * size * long.len() as f64 <= 720.0,
            "{size}"
        );
    }

    fn row(server: &str, workload: &str, ops: f64, p99: f64, errors: u64) -> CompareRow {
        CompareRow {
            server: server.into(),
            workload: workload.into(),
            security: crate::load::workload::Security::Plain,
            ops_per_sec: ops,
            cpu_us_per_request: None,
            rounds: 1,
            ops_min: ops,
            ops_max: ops,
            p50_us: p99 / 2.0,
            p99_us: p99,
            p999_us: p99 * 2.0,
            requests: 1,
            misses: 0,
            errors,
            first_error: None,
            imbalance: None,
            threads: None,
            roles: None,
            tls_handshakes: 0,
            tls_resumed: 0,
            round: None,
            vs_baseline: None,
            noise: None,
            disturbed: None,
            retries: 0,
            disturbed_rounds: 0,
            anatomy: None,
        }
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
            row("basic", "churn+tls", 9_000.0, 700.0, 0),
        ];
        write_svg(&path, "test chart", &rows).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..100.min(svg.len())]);
        for text in [
            "test chart",
            "uniform: ops/s",
            "skewed/light: p99 latency",
            "worker-pool",
            "50k",
            "120 µs",
            "900 µs !",
            "1000 µs",
            "had errors",
            "churn+tls: conns/s",
            "churn+tls: p99 connect to reply",
        ] {
            assert!(svg.contains(text), "no {text:?} in the SVG");
        }
        assert!(svg.matches("<rect").count() >= 8);
    }
}
