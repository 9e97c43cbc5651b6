//! The sweep's second chart: where each pattern's time goes as load
//! rises. A panel per server: the mean time of each stage stacked against
//! offered load (means add up: the stages from read to written make the
//! time in the server, and the wait in the socket comes before it), and
//! the client's mean latency as a line above them, the rest of which is
//! the network and the client. Loads whose p99 passed four times the
//! objective are left out: their queues dwarf everything below.

use std::path::{Path, PathBuf};

use anyhow::Result;
use plotters::prelude::*;

use super::chart::{human, plot_error, FONT};
use super::sweep::table::servers_in_order;
use super::sweep::SweepPoint;
use crate::measure::anatomy::Anatomy;

const WIDTH: u32 = 1060;
const HEIGHT: u32 = 760;
/// The legend's strip under the panels: three rows.
const LEGEND_HEIGHT: u32 = 80;
/// Points up to this multiple of the objective are drawn.
const SHOWN_UP_TO: f64 = 4.0;

/// The stacked layers, bottom first: name, colour, and the mean time per
/// request the layer stands for.
const LAYERS: [(&str, RGBColor); 6] = [
    ("waking the reader (wakeup)", RGBColor(0xc7, 0xc7, 0xc7)),
    ("in the socket, not waking", RGBColor(0x9e, 0xda, 0xe5)),
    ("parse", RGBColor(0x17, 0xbe, 0xcf)),
    ("handoff (and queue)", RGBColor(0xff, 0x98, 0x96)),
    ("execute", RGBColor(0x98, 0xdf, 0x8a)),
    ("write", RGBColor(0xc5, 0xb0, 0xd5)),
];

/// Each layer's mean µs per request at one point.
fn layers(a: &Anatomy) -> [f64; 6] {
    let mean = |stage: &str| a.stage(stage).map_or(0.0, |s| s.mean_us);
    let count = |stage: &str| a.stage(stage).map_or(0, |s| s.count);
    let requests = count("server").max(1) as f64;
    // A wake-up is counted per read that woke a thread, the socket's wait
    // per request.
    let wakeup = mean("wakeup") * count("wakeup") as f64 / requests;
    [
        wakeup.min(mean("socket")),
        (mean("socket") - wakeup).max(0.0),
        mean("parse"),
        mean("handoff"),
        mean("execute"),
        mean("write"),
    ]
}

/// Where the stage chart of a sweep whose latency chart is `svg` goes:
/// `sweep.svg` -> `sweep-stages.svg`.
pub fn path_beside(svg: &Path) -> PathBuf {
    let stem = svg
        .file_stem()
        .map_or("sweep".into(), |s| s.to_string_lossy());
    svg.with_file_name(format!("{stem}-stages.svg"))
}

/// Writes the chart to `path`; `false` (and nothing written) when no
/// point has stage times.
pub fn write_svg(path: &Path, title: &str, points: &[SweepPoint], slo_us: f64) -> Result<bool> {
    let shown =
        |p: &&SweepPoint| p.counts && p.anatomy.is_some() && p.p99_us <= SHOWN_UP_TO * slo_us;
    if !points.iter().any(|p| shown(&p)) {
        return Ok(false);
    }
    let servers = servers_in_order(points);
    let root = SVGBackend::new(path, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_error)?;
    let root = root
        .titled(title, (FONT, 16).into_font())
        .map_err(plot_error)?;
    let (_, height) = root.dim_in_pixel();
    let (panels, legend) = root.split_vertically(height.saturating_sub(LEGEND_HEIGHT));
    let rows = servers.len().div_ceil(2).max(1);
    let areas = panels.split_evenly((rows, 2));
    for (server, area) in servers.iter().zip(areas.iter()) {
        let mine: Vec<&SweepPoint> = points
            .iter()
            .filter(|p| p.server == *server)
            .filter(shown)
            .collect();
        draw_panel(area, server, &mine)?;
    }
    draw_legend(&legend)?;
    root.present().map_err(plot_error)?;
    Ok(true)
}

fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    server: &str,
    points: &[&SweepPoint],
) -> Result<()> {
    let mut sorted = points.to_vec();
    sorted.sort_by(|a, b| a.offered.total_cmp(&b.offered));
    let stacks: Vec<(f64, [f64; 6], f64)> = sorted
        .iter()
        .filter_map(|p| Some((p.offered, layers(p.anatomy.as_ref()?), p.mean_us)))
        .collect();
    let y_hi = stacks
        .iter()
        .map(|(_, l, client)| l.iter().sum::<f64>().max(*client))
        .fold(1.0, f64::max)
        * 1.1;
    let x_hi = stacks.iter().map(|s| s.0).fold(1.0, f64::max) * 1.05;
    let mut chart = ChartBuilder::on(area)
        .caption(server, (FONT, 14).into_font())
        .margin(10)
        .set_label_area_size(LabelAreaPosition::Bottom, 36)
        .set_label_area_size(LabelAreaPosition::Left, 56)
        .build_cartesian_2d(0.0..x_hi, 0.0..y_hi)
        .map_err(plot_error)?;
    chart
        .configure_mesh()
        .x_desc("offered load (requests/s)")
        .y_desc("mean µs per request")
        .x_label_formatter(&|v: &f64| human(*v))
        .label_style((FONT, 11).into_font())
        .axis_desc_style((FONT, 12).into_font())
        .light_line_style(BLACK.mix(0.04))
        .bold_line_style(BLACK.mix(0.12))
        .draw()
        .map_err(plot_error)?;
    // Each layer a band between the sum of the layers below it and that
    // sum plus its own.
    for (k, (_, color)) in LAYERS.iter().enumerate() {
        let edge = |upto: usize| -> Vec<(f64, f64)> {
            stacks
                .iter()
                .map(|(x, l, _)| (*x, l[..upto].iter().sum()))
                .collect()
        };
        let mut band = edge(k + 1);
        band.extend(edge(k).into_iter().rev());
        chart
            .draw_series([Polygon::new(band, color.filled())])
            .map_err(plot_error)?;
    }
    let client: Vec<(f64, f64)> = stacks.iter().map(|(x, _, mean)| (*x, *mean)).collect();
    chart
        .draw_series(LineSeries::new(client.clone(), BLACK.stroke_width(2)))
        .map_err(plot_error)?;
    chart
        .draw_series(client.iter().map(|&xy| Circle::new(xy, 3, BLACK.filled())))
        .map_err(plot_error)?;
    Ok(())
}

fn draw_legend<DB: DrawingBackend>(area: &DrawingArea<DB, plotters::coord::Shift>) -> Result<()> {
    let font = (FONT, 12).into_font();
    let mut entries: Vec<(String, ShapeStyle)> = LAYERS
        .iter()
        .map(|(name, color)| (name.to_string(), color.filled()))
        .collect();
    entries.push((
        "the client's mean (above the stages: network, client)".into(),
        BLACK.filled(),
    ));
    for (i, (label, style)) in entries.iter().enumerate() {
        let (x, y) = (20 + 340 * (i as i32 % 3), 14 + 22 * (i as i32 / 3));
        area.draw(&Rectangle::new([(x, y), (x + 18, y + 12)], *style))
            .map_err(plot_error)?;
        area.draw(&Text::new(label.clone(), (x + 26, y), font.clone()))
            .map_err(plot_error)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::anatomy::StageTimes;
    use crate::report::sweep::tests::sample;

    fn stage(mean_us: f64, count: u64) -> StageTimes {
        StageTimes {
            role: "loop".into(),
            count,
            mean_us,
            quantiles: vec![(0.5, mean_us), (1.0, mean_us * 3.0)],
        }
    }

    fn point(server: &str, offered: f64, p99: f64) -> SweepPoint {
        let mut p = SweepPoint::of(server, Some(10.0), offered, vec![sample(1, p99)]);
        let mut a = Anatomy::default();
        for (name, mean, count) in [
            ("socket", 30.0, 100),
            ("wakeup", 40.0, 50),
            ("parse", 1.0, 100),
            ("handoff", 5.0, 100),
            ("execute", 110.0, 100),
            ("write", 12.0, 100),
            ("server", 128.0, 100),
        ] {
            a.stages.insert(name.into(), stage(mean, count));
        }
        p.anatomy = Some(a);
        p
    }

    #[test]
    fn layers_add_up_to_socket_and_server() {
        let p = point("basic", 1000.0, 500.0);
        let l = layers(p.anatomy.as_ref().unwrap());
        // Half the requests woke the loop, 40 µs each: 20 of the 30 µs in
        // the socket.
        assert_eq!(l, [20.0, 10.0, 1.0, 5.0, 110.0, 12.0]);
        assert_eq!(l.iter().sum::<f64>(), 30.0 + 128.0);
    }

    #[test]
    fn a_panel_per_server_beside_the_latency_chart() {
        assert_eq!(
            path_beside(Path::new("docs/sweep-exp.svg")),
            Path::new("docs/sweep-exp-stages.svg")
        );
        let dir = std::env::temp_dir().join(format!("kvbench-stages-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s.svg");
        let points = [
            point("basic", 1000.0, 500.0),
            point("basic", 2000.0, 900.0),
            point("basic", 3000.0, 50_000.0), // past 4x the objective: left out
            point("worker-pool", 1000.0, 400.0),
        ];
        assert!(write_svg(&path, "t", &points, 1000.0).unwrap());
        let svg = std::fs::read_to_string(&path).unwrap();
        for text in ["basic", "worker-pool", "execute", "the client"] {
            assert!(svg.contains(text), "{text}");
        }
        assert!(
            !svg.contains(">3k<"),
            "the 3000 req/s point widened the axis"
        );
        let bare: Vec<SweepPoint> = points
            .iter()
            .cloned()
            .map(|mut p| {
                p.anatomy = None;
                p
            })
            .collect();
        assert!(!write_svg(&dir.join("none.svg"), "t", &bare, 1000.0).unwrap());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
