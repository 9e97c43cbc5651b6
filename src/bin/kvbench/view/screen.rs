//! The full-screen view of `kvbench top`: a header of totals, one row per
//! thread with a bar beside each figure, and a sparkline of total ops/s
//! over the last minute. The bars of a column share one scale (the busiest
//! thread's figure; 100% for busy), so an uneven spread shows as bars of
//! uneven length.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph, Row, Sparkline, Table, Wrap};
use ratatui::Frame;

use super::format::{self, CONNS_HEADING, NO_THREAD_STATS};
use super::watch::{ThreadRate, Watch};

/// Widths of the columns before the bars: thread number, role, connections.
const FIXED: [u16; 3] = [3, 9, CONNS_HEADING.len() as u16];
/// Width of the figure in front of each bar.
const FIGURE: u16 = 6;
/// The figures that get a bar, in column order: heading and colour.
const METRICS: [(&str, Color); 4] = [
    ("req/s", Color::Cyan),
    ("busy %", Color::Yellow),
    ("in B/s", Color::Green),
    ("out B/s", Color::Magenta),
];

/// Draws the whole view of `watch` onto `frame`.
pub fn draw(frame: &mut Frame, watch: &Watch) {
    let header = header_lines(watch);
    let [top, middle, bottom] = Layout::vertical([
        Constraint::Length(header.len() as u16 + 2),
        Constraint::Min(3),
        Constraint::Length(6),
    ])
    .areas(frame.area());
    let title = Line::from(format!(" kvbench top · {} ", watch.server)).bold();
    let keys = Line::from(format!(
        " every {} · q quits ",
        format::seconds(watch.interval)
    ))
    .right_aligned();
    frame.render_widget(
        Paragraph::new(header).block(Block::bordered().title(title).title(keys)),
        top,
    );
    draw_threads(frame, middle, watch);
    draw_history(frame, bottom, watch);
}

/// Totals and rates of the whole server; a red line first while it is lost
/// (or cannot be reached at all).
fn header_lines(watch: &Watch) -> Vec<Line<'static>> {
    let mut lines = Vec::new();
    if let Some(lost) = watch.lost() {
        lines.push(
            Line::from(format!(
                "{}: {}; retrying every {} (try {}, {}s)",
                format::unanswered(watch),
                lost.error,
                format::seconds(watch.interval),
                lost.tries,
                lost.since.elapsed().as_secs()
            ))
            .style(Style::new().fg(Color::Red).add_modifier(Modifier::BOLD)),
        );
    }
    let Some(s) = watch.latest() else {
        if watch.lost().is_none() {
            lines.push(Line::from(format!("connecting to {}", watch.server)));
        }
        return lines;
    };
    let field = |name: &str, value: String| {
        [
            Span::raw(format!("{name} ")).dark_gray(),
            Span::raw(value).bold(),
            Span::raw("   "),
        ]
    };
    let mut first = vec![
        Span::raw(format::server_kind(s)).bold().cyan(),
        "   ".into(),
    ];
    first.extend(field("threads", s.number("threads").to_string()));
    first.extend(field("uptime", format::uptime(s.number("uptime"))));
    first.extend(field("connections", format::connections(s)));
    lines.push(Line::from(first));
    let (ops, hits, evictions) = match watch.rates() {
        Some(r) => (
            format::rate(r.ops_per_s),
            r.hit_ratio
                .map_or("-".to_string(), |h| format!("{:.1}%", h * 100.0)),
            format!(
                "{} ({}/s)",
                s.number("evictions"),
                format::rate(r.evictions_per_s)
            ),
        ),
        None => ("-".into(), "-".into(), s.number("evictions").to_string()),
    };
    let mut second = Vec::new();
    second.extend(field("ops/s", ops));
    second.extend(field("get hits", hits));
    second.extend(field("evictions", evictions));
    second.extend(field("memory", format::memory(s)));
    lines.push(Line::from(second));
    if let Some(stages) = watch.rates().and_then(|r| r.stages.as_ref()) {
        if !stages.is_empty() {
            lines.push(Line::from(
                field(format::STAGES_HEADING, format::stages(stages)).to_vec(),
            ));
        }
    }
    if let Some(dealt) = format::dealt(s) {
        lines.push(Line::from(field(format::DEALT_HEADING, dealt).to_vec()));
    }
    lines
}

/// One row per thread, or why there are none.
fn draw_threads(frame: &mut Frame, area: Rect, watch: &Watch) {
    let block = Block::bordered().title(" threads ");
    let message = |text: &str| {
        Paragraph::new(text.to_string())
            .wrap(Wrap { trim: true })
            .block(block.clone())
    };
    let Some(rates) = watch.rates() else {
        let text = if watch.latest().is_some() && watch.lost().is_none() {
            "measuring: rates from the next refresh"
        } else {
            ""
        };
        frame.render_widget(message(text), area);
        return;
    };
    let Some(threads) = &rates.threads else {
        frame.render_widget(message(NO_THREAD_STATS), area);
        return;
    };
    let inner = block.inner(area);
    // One space between each two of the seven columns.
    let fixed: u16 = FIXED.iter().sum::<u16>() + (FIXED.len() + METRICS.len() - 1) as u16;
    let metric = inner.width.saturating_sub(fixed) / METRICS.len() as u16;
    let bar_width = metric.saturating_sub(FIGURE + 1);
    let header = Row::new(
        ["#", "role", CONNS_HEADING]
            .into_iter()
            .chain(METRICS.iter().map(|(name, _)| *name)),
    )
    .style(Style::new().add_modifier(Modifier::BOLD));
    let scales = column_scales(threads);
    let faded = watch.lost().is_some();
    let rows = threads.iter().map(|t| {
        let mut cells = vec![
            Line::from(t.thread.to_string()),
            Line::from(t.role.clone()),
            Line::from(t.connections.to_string()).right_aligned(),
        ];
        for (i, (value, text)) in figures(t).into_iter().enumerate() {
            let fraction = if scales[i] > 0.0 {
                value / scales[i]
            } else {
                0.0
            };
            cells.push(Line::from(vec![
                Span::raw(format!("{text:>w$} ", w = FIGURE as usize)),
                Span::raw(bar(fraction, bar_width)).fg(METRICS[i].1),
            ]));
        }
        let row = Row::new(cells);
        if faded {
            row.dark_gray()
        } else {
            row
        }
    });
    let widths = FIXED
        .iter()
        .map(|&w| Constraint::Length(w))
        .chain(METRICS.iter().map(|_| Constraint::Length(metric)));
    frame.render_widget(
        Table::new(rows, widths)
            .header(header)
            .column_spacing(1)
            .block(block),
        area,
    );
}

/// A thread's four figures with a bar: the value and how it is written.
fn figures(t: &ThreadRate) -> [(f64, String); 4] {
    [
        (t.requests_per_s, format::rate(t.requests_per_s)),
        (t.busy_percent, format!("{:.1}", t.busy_percent)),
        (t.read_per_s, format::rate(t.read_per_s)),
        (t.written_per_s, format::rate(t.written_per_s)),
    ]
}

/// The full-bar value of each column: the largest over the threads, and
/// 100 for busy % (a thread busy all the time fills its bar).
fn column_scales(threads: &[ThreadRate]) -> [f64; 4] {
    let max = |f: fn(&ThreadRate) -> f64| threads.iter().map(f).fold(0.0, f64::max);
    [
        max(|t| t.requests_per_s),
        100.0,
        max(|t| t.read_per_s),
        max(|t| t.written_per_s),
    ]
}

/// Total ops/s of the last minute, squeezed to the width.
fn draw_history(frame: &mut Frame, area: Rect, watch: &Watch) {
    let peak = watch.history().fold(0.0, f64::max);
    let block = Block::bordered().title(format!(
        " ops/s, last minute (peak {}) ",
        format::rate(peak)
    ));
    let width = block.inner(area).width as usize;
    let points = squeeze(&watch.history().collect::<Vec<_>>(), width);
    // The newest point at the right edge, blanks before the first.
    let blanks = std::iter::repeat_n(None, width - points.len());
    frame.render_widget(
        Sparkline::default()
            .block(block)
            .data(blanks.chain(points.iter().map(|&v| Some(v.round() as u64))))
            .max(peak.round().max(1.0) as u64)
            .style(Style::new().fg(Color::Cyan)),
        area,
    );
}

/// `values` in at most `width` points: consecutive values averaged in
/// groups of equal size (the oldest group may be smaller).
fn squeeze(values: &[f64], width: usize) -> Vec<f64> {
    if width == 0 {
        return Vec::new();
    }
    let group = values.len().div_ceil(width).max(1);
    let first = values.len() % group;
    let (head, rest) = values.split_at(first);
    let mut out: Vec<f64> = (!head.is_empty())
        .then(|| head.iter().sum::<f64>() / head.len() as f64)
        .into_iter()
        .collect();
    out.extend(
        rest.chunks(group)
            .map(|c| c.iter().sum::<f64>() / c.len() as f64),
    );
    out
}

/// A horizontal bar of `fraction` (0 to 1) of `width` cells, in eighths
/// of a cell; anything above zero shows at least an eighth.
fn bar(fraction: f64, width: u16) -> String {
    const PARTS: [&str; 8] = ["", "▏", "▎", "▍", "▌", "▋", "▊", "▉"];
    let total = usize::from(width) * 8;
    let mut eighths = (fraction.clamp(0.0, 1.0) * total as f64).round() as usize;
    if fraction > 0.0 && eighths == 0 && total > 0 {
        eighths = 1;
    }
    let mut s = "█".repeat(eighths / 8);
    s.push_str(PARTS[eighths % 8]);
    s
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use ratatui::backend::TestBackend;
    use ratatui::Terminal;

    use super::*;
    use crate::view::watch::tests::{reading, watched_worker_pool, worker_pool};

    /// Draws `watch` on a `width` x `height` test terminal; its lines.
    fn screen(watch: &Watch, width: u16, height: u16) -> Vec<String> {
        let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
        terminal.draw(|f| draw(f, watch)).unwrap();
        let buffer = terminal.backend().buffer();
        (0..height)
            .map(|y| (0..width).map(|x| buffer[(x, y)].symbol()).collect())
            .collect()
    }

    /// A bar's length in eighths of a cell.
    fn eighths(bar: &str) -> usize {
        bar.chars()
            .map(|c| match c {
                '█' => 8,
                '▉'..='▏' => 0x2590 - c as usize,
                _ => 0,
            })
            .sum()
    }

    /// The bars of a row, in eighths of a cell, left to right.
    fn bars(line: &str) -> Vec<usize> {
        let mut out = Vec::new();
        let mut current = String::new();
        for c in line.chars() {
            if c == '█' || ('▉'..='▏').contains(&c) {
                current.push(c);
            } else if !current.is_empty() {
                out.push(eighths(&current));
                current.clear();
            }
        }
        out
    }

    /// The row of thread `n`: the line under the heading that starts with it.
    fn row(lines: &[String], n: usize) -> String {
        let heading = lines.iter().position(|l| l.contains("req/s")).unwrap();
        lines[heading + 1 + n].clone()
    }

    #[test]
    fn bars_in_eighths() {
        assert_eq!(bar(0.0, 4), "");
        assert_eq!(bar(1.0, 4), "████");
        assert_eq!(bar(0.5, 3), "█▌");
        assert_eq!(bar(1e-9, 4), "▏");
        assert_eq!(bar(2.0, 2), "██");
        assert_eq!(bar(0.7, 0), "");
        assert_eq!(eighths("█▌"), 12);
        assert_eq!(eighths("▏"), 1);
    }

    #[test]
    fn squeeze_averages_to_the_width() {
        assert_eq!(squeeze(&[1.0, 2.0], 5), [1.0, 2.0]);
        assert_eq!(squeeze(&[1.0, 3.0, 5.0, 7.0], 2), [2.0, 6.0]);
        assert_eq!(squeeze(&[9.0, 1.0, 3.0, 5.0, 7.0], 2), [5.0, 5.0]);
        assert_eq!(squeeze(&[9.0, 1.0, 3.0, 5.0, 7.0], 3), [9.0, 2.0, 6.0]);
        assert!(squeeze(&[1.0], 0).is_empty());
        let long: Vec<f64> = (0..600).map(f64::from).collect();
        assert!(squeeze(&long, 98).len() <= 98);
    }

    #[test]
    fn rows_rates_and_bars_of_two_readings() {
        let lines = screen(&watched_worker_pool(), 100, 20);
        let all = lines.join("\n");
        assert!(lines[0].contains("kvbench top · 127.0.0.1:11211"), "{all}");
        assert!(lines[0].contains("every 1 s · q quits"), "{all}");
        assert!(lines[1].contains("worker-pool"), "{all}");
        assert!(lines[1].contains("threads 2"), "{all}");
        assert!(lines[1].contains("uptime 1h00m"), "{all}");
        assert!(lines[1].contains("connections 8 open, 11 total"), "{all}");
        assert!(lines[2].contains("ops/s 3.0k"), "{all}");
        assert!(lines[2].contains("get hits 75.0%"), "{all}");
        assert!(lines[2].contains("evictions 20 (10/s)"), "{all}");
        assert!(lines[2].contains("memory 1.0 MiB / 64.0 MiB (2%)"), "{all}");
        assert!(
            lines[3].contains("stages p50/p99 µs socket 20.6/21.2  server 103/412"),
            "{all}"
        );

        // Inner width 98: 3 + 9 + 11 and 6 spaces leave 17 per figure: 6
        // for the number, a space, 10 cells of bar.
        let full = 10 * 8;
        let of = |share: f64| (share * full as f64).round() as usize;
        let dispatch = row(&lines, 0);
        assert!(dispatch.contains("dispatch"), "{all}");
        let words: Vec<&str> = dispatch.trim_matches('│').split_whitespace().collect();
        assert_eq!(&words[..4], ["0", "dispatch", "11", "0"], "{all}");
        let heading = &lines[lines.iter().position(|l| l.contains("req/s")).unwrap()];
        assert!(heading.contains("role      total conns req/s"), "{all}");
        // No requests, half busy, all the reading, no writing.
        assert_eq!(bars(&dispatch), [of(0.5), full], "{all}");
        assert!(dispatch.contains(" 50.0 ") && dispatch.contains(" 100k "));

        let (one, two) = (row(&lines, 1), row(&lines, 2));
        assert!(one.contains("worker") && one.contains(" 2.0k "), "{all}");
        assert!(two.contains("worker") && two.contains(" 1.0k "), "{all}");
        // Worker 1 serves and writes twice what worker 2 does; busy 40% and 20%.
        assert_eq!(bars(&one), [full, of(0.4), full], "{all}");
        assert_eq!(bars(&two), [of(0.5), of(0.2), of(0.5)], "{all}");
        assert!(!all.contains("not available"));
        assert!(all.contains("ops/s, last minute (peak 3.0k)"), "{all}");
    }

    #[test]
    fn memcached_lost_and_tiny_screens() {
        let base = Instant::now();
        let mut watch = Watch::new("127.0.0.1:11211", Duration::from_secs(1));
        let memcached = |secs: f64| {
            reading(
                base,
                secs,
                "STAT pid 1\r\nSTAT uptime 9\r\nSTAT version 1.6.18\r\nSTAT threads 4\r\nEND\r\n",
                None,
            )
        };
        let text = |w: &Watch| screen(w, 120, 16).join("\n");
        assert!(text(&watch).contains("connecting to 127.0.0.1:11211"));
        watch.record(Ok(memcached(0.0)));
        assert!(text(&watch).contains("measuring: rates from the next refresh"));
        watch.record(Ok(memcached(1.0)));
        let shown = text(&watch);
        assert!(shown.contains("memcached 1.6.18"), "{shown}");
        assert!(
            shown.contains("per-thread stats are not available"),
            "{shown}"
        );
        assert!(!shown.contains("req/s"), "{shown}");
        // Narrower than the note: it wraps, whole.
        let narrow = screen(&watch, 60, 16).join("");
        assert!(narrow.contains("only kvserve does"), "{narrow}");

        let refused = || Err("Connection refused (os error 111)".into());
        let mut lost = watched_worker_pool();
        lost.record(refused());
        let mut never = Watch::new("127.0.0.1:1", Duration::from_secs(1));
        never.record(refused());
        for (watch, said, unsaid) in [
            (&lost, "server lost", "cannot connect"),
            (&never, "cannot connect", "server lost"),
        ] {
            let shown = text(watch);
            let line = format!("{said}: Connection refused (os error 111); retrying every 1 s");
            assert!(shown.contains(&line), "{shown}");
            assert!(!shown.contains(unsaid), "{shown}");
        }
        let shown = text(&lost);
        assert!(shown.contains("dispatch"), "the last rows stay: {shown}");

        // Too small for anything: drawn without a panic.
        for (w, h) in [(1, 1), (10, 3), (30, 8)] {
            screen(&watched_worker_pool(), w, h);
            screen(&lost, w, h);
        }
        let mut one = Watch::new("s", Duration::from_secs(1));
        one.record(Ok(worker_pool(base, 0.0, 1)));
        screen(&one, 5, 5);
    }
}
