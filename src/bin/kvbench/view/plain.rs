//! `kvbench top --plain`: one block of plain text per refresh, for a pipe,
//! a log file or a terminal that cannot show the full-screen view.

use std::fmt::Write as _;

use super::format::{self, CONNS_HEADING, DEALT_HEADING, NO_THREAD_STATS};
use super::watch::Watch;

/// The block of text for the watch's latest refresh, ending in a blank line.
pub fn render(watch: &Watch) -> String {
    let mut out = String::new();
    if let Some(lost) = watch.lost() {
        let _ = writeln!(
            out,
            "{}: {} ({}); retrying every {} (try {})\n",
            watch.server,
            format::unanswered(watch),
            lost.error,
            format::seconds(watch.interval),
            lost.tries
        );
        return out;
    }
    let Some(s) = watch.latest() else {
        return out;
    };
    let _ = writeln!(
        out,
        "{}  {}  threads {}  uptime {}  connections {}",
        watch.server,
        format::server_kind(s),
        s.number("threads"),
        format::uptime(s.number("uptime")),
        format::connections(s),
    );
    let Some(rates) = watch.rates() else {
        let _ = writeln!(
            out,
            "memory {}  (rates from the next refresh)\n",
            format::memory(s)
        );
        return out;
    };
    let hits = rates
        .hit_ratio
        .map_or("-".to_string(), |r| format!("{:.1}%", r * 100.0));
    let _ = writeln!(
        out,
        "ops/s {}  get hits {hits}  evictions {} ({}/s)  memory {}",
        format::rate(rates.ops_per_s),
        s.number("evictions"),
        format::rate(rates.evictions_per_s),
        format::memory(s),
    );
    if let Some(stages) = rates.stages.as_ref().filter(|s| !s.is_empty()) {
        let _ = writeln!(
            out,
            "{}: {}",
            format::STAGES_HEADING,
            format::stages(stages)
        );
    }
    if let Some(dealt) = format::dealt(s) {
        let _ = writeln!(out, "{DEALT_HEADING}: {dealt}");
    }
    match &rates.threads {
        None => {
            let _ = writeln!(out, "{NO_THREAD_STATS}");
        }
        Some(threads) => {
            let _ = writeln!(
                out,
                "{:>6}  {:<9} {:>11} {:>7} {:>6} {:>8} {:>9}",
                "thread", "role", CONNS_HEADING, "req/s", "busy%", "in B/s", "out B/s"
            );
            for t in threads {
                let _ = writeln!(
                    out,
                    "{:>6}  {:<9} {:>11} {:>7} {:>6.1} {:>8} {:>9}",
                    t.thread,
                    t.role,
                    t.connections,
                    format::rate(t.requests_per_s),
                    t.busy_percent,
                    format::rate(t.read_per_s),
                    format::rate(t.written_per_s),
                );
            }
        }
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::view::watch::tests::{reading, watched_worker_pool};

    #[test]
    fn a_block_per_refresh_with_a_row_per_thread() {
        let text = render(&watched_worker_pool());
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "127.0.0.1:11211  worker-pool  threads 2  uptime 1h00m  connections 8 open, 11 total"
        );
        assert_eq!(
            lines[1],
            "ops/s 3.0k  get hits 75.0%  evictions 20 (10/s)  memory 1.0 MiB / 64.0 MiB (2%)"
        );
        assert_eq!(
            lines[2],
            "stages p50/p99 µs: socket 20.6/21.2  server 103/412"
        );
        assert_eq!(
            lines[3].split_whitespace().collect::<Vec<_>>(),
            ["thread", "role", "total", "conns", "req/s", "busy%", "in", "B/s", "out", "B/s"],
            "{text}"
        );
        let row = |n: usize| lines[4 + n].split_whitespace().collect::<Vec<_>>();
        assert_eq!(row(0), ["0", "dispatch", "11", "0", "50.0", "100k", "0"]);
        assert_eq!(row(1), ["1", "worker", "0", "2.0k", "40.0", "0", "40.0k"]);
        assert_eq!(row(2), ["2", "worker", "0", "1.0k", "20.0", "0", "20.0k"]);
        assert_eq!(lines.len(), 8, "a blank line ends the block: {text}");
        assert!(text.ends_with("\n\n"));
    }

    #[test]
    fn loops_dealt_connections_get_a_line_beside_random_dealing() {
        let base = Instant::now();
        let mut watch = Watch::new("127.0.0.1:11211", Duration::from_secs(1));
        let general = "STAT uptime 5\r\nSTAT threads 4\r\nSTAT pattern reuseport\r\nEND\r\n";
        let loops: String = [20, 12, 16, 16]
            .iter()
            .enumerate()
            .map(|(n, c)| format!("STAT {n}:role loop\r\nSTAT {n}:connections {c}\r\n"))
            .collect();
        let threads = loops + "END\r\n";
        watch.record(Ok(reading(base, 0.0, general, Some(&threads))));
        watch.record(Ok(reading(base, 1.0, general, Some(&threads))));
        let text = render(&watch);
        let at_random = crate::model::dealing::expected_max_over_mean(64, 4);
        let want = format!(
            "conns dealt: 64 over 4 loops, busiest 1.25x the mean (at random: {at_random:.2}x)"
        );
        assert!(text.lines().any(|l| l == want), "{want}\n{text}");
        // Of 64 over 4, the fullest holds 20.2 on average (balls into bins).
        assert!((1.25..1.28).contains(&at_random), "{at_random}");
    }

    #[test]
    fn memcached_gets_totals_and_the_note_and_a_lost_server_a_line() {
        let base = Instant::now();
        let mut watch = Watch::new("127.0.0.1:11211", Duration::from_millis(500));
        let memcached = |secs: f64, gets: u64| {
            reading(
                base,
                secs,
                &format!("STAT pid 9\r\nSTAT uptime 5\r\nSTAT version 1.6.18\r\nSTAT threads 4\r\nSTAT cmd_get {gets}\r\nSTAT get_hits {gets}\r\nEND\r\n"),
                None,
            )
        };
        watch.record(Ok(memcached(0.0, 0)));
        assert!(render(&watch).contains("rates from the next refresh"));
        watch.record(Ok(memcached(0.5, 500)));
        let text = render(&watch);
        assert!(text.starts_with("127.0.0.1:11211  memcached 1.6.18  threads 4"));
        assert!(text.contains("ops/s 1.0k  get hits 100.0%"), "{text}");
        assert!(text.contains(NO_THREAD_STATS), "{text}");
        watch.record(Err("Connection refused (os error 111)".into()));
        assert_eq!(
            render(&watch),
            "127.0.0.1:11211: server lost (Connection refused (os error 111)); retrying every 0.5 s (try 1)\n\n"
        );
    }

    #[test]
    fn a_server_never_reached_cannot_be_connected_to() {
        let mut watch = Watch::new("127.0.0.1:1", Duration::from_millis(200));
        watch.record(Err("Connection refused (os error 111)".into()));
        watch.record(Err("Connection refused (os error 111)".into()));
        assert_eq!(
            render(&watch),
            "127.0.0.1:1: cannot connect (Connection refused (os error 111)); retrying every 0.2 s (try 2)\n\n"
        );
    }
}
