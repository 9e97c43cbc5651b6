//! How `kvbench top` writes its figures, the same on screen and in plain
//! text: short enough for a column, exact enough to compare threads.

use std::time::Duration;

use super::watch::{StageTimes, Watch};
use crate::measure::snapshot::Snapshot;
use crate::measure::threads::connection_spread;
use crate::model::dealing::expected_max_over_mean;

/// A rate or count in at most five characters: `950`, `12.5k`, `3.1M`.
pub fn rate(v: f64) -> String {
    let (scaled, unit) = if v >= 999_950.0 {
        (v / 1e6, "M")
    } else if v >= 999.5 {
        (v / 1e3, "k")
    } else {
        (v, "")
    };
    if scaled >= 100.0 || unit.is_empty() {
        format!("{scaled:.0}{unit}")
    } else {
        format!("{scaled:.1}{unit}")
    }
}

/// Where requests' time went inside the server between two readings:
/// `socket 20.6/21.2  server 103/412` (p50/p99, µs).
pub fn stages(times: &[StageTimes]) -> String {
    let short = |us: f64| {
        if us < 100.0 {
            format!("{us:.1}")
        } else {
            format!("{us:.0}")
        }
    };
    times
        .iter()
        .map(|t| format!("{} {}/{}", t.stage, short(t.p50_us), short(t.p99_us)))
        .collect::<Vec<_>>()
        .join("  ")
}

/// The heading of the stage times.
pub const STAGES_HEADING: &str = "stages p50/p99 µs";

/// Bytes in binary units: `512 B`, `12.0 KiB`, `64.0 MiB`, `1.5 GiB`.
pub fn bytes(v: u64) -> String {
    let v = v as f64;
    if v < 1024.0 {
        format!("{v:.0} B")
    } else if v < 1024.0 * 1024.0 {
        format!("{:.1} KiB", v / 1024.0)
    } else if v < 1024.0 * 1024.0 * 1024.0 {
        format!("{:.1} MiB", v / (1024.0 * 1024.0))
    } else {
        format!("{:.1} GiB", v / (1024.0 * 1024.0 * 1024.0))
    }
}

/// An uptime in its two largest units: `42s`, `5m07s`, `3h02m`, `4d03h`.
pub fn uptime(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    if d > 0 {
        format!("{d}d{h:02}h")
    } else if h > 0 {
        format!("{h}h{m:02}m")
    } else if m > 0 {
        format!("{m}m{s:02}s")
    } else {
        format!("{s}s")
    }
}

/// A duration in seconds, as few digits as say it: `1 s`, `0.25 s`.
pub fn seconds(d: Duration) -> String {
    format!("{} s", (d.as_secs_f64() * 1000.0).round() / 1000.0)
}

/// Who the server is: kvserve's pattern, or its version (`memcached 1.6.18`).
pub fn server_kind(s: &Snapshot) -> String {
    match (s.text("pattern"), s.text("version")) {
        (Some(pattern), _) => pattern.to_string(),
        (None, Some(version)) => format!("memcached {version}"),
        (None, None) => "unknown server".to_string(),
    }
}

/// Item memory against the limit: `1.0 MiB / 64.0 MiB (2%)`.
pub fn memory(s: &Snapshot) -> String {
    let (used, limit) = (s.number("bytes"), s.number("limit_maxbytes"));
    if limit == 0 {
        return bytes(used);
    }
    let percent = used as f64 * 100.0 / limit as f64;
    format!("{} / {} ({percent:.0}%)", bytes(used), bytes(limit))
}

/// Connections open now and taken since start: `51 open, 55 total`.
pub fn connections(s: &Snapshot) -> String {
    format!(
        "{} open, {} total",
        s.number("curr_connections"),
        s.number("total_connections")
    )
}

/// The heading of a thread's connections: all it has taken on since the
/// server started (`stats threads` counts no more), not those open now,
/// which only the header's total gives.
pub const CONNS_HEADING: &str = "total conns";

/// The heading of how connections were dealt.
pub const DEALT_HEADING: &str = "conns dealt";

/// How evenly the threads that serve their own connections (loops,
/// readers) have taken them since the server started, beside what dealing
/// as many over as many threads at random gives on average (balls into
/// bins, as reuseport's kernel deals them): `64 over 4 loops, busiest 1.25x
/// the mean (at random: 1.27x)`. `None` with fewer than two such threads.
pub fn dealt(s: &Snapshot) -> Option<String> {
    let spread = connection_spread(s.threads.as_deref()?)?;
    let at_random = expected_max_over_mean(spread.connections as usize, spread.threads);
    Some(format!(
        "{} over {} {}s, busiest {:.2}x the mean (at random: {at_random:.2}x)",
        spread.connections, spread.threads, spread.role, spread.max_over_mean
    ))
}

/// What failing readings mean: the server cannot be reached, or, after it
/// answered once, it was lost.
pub fn unanswered(watch: &Watch) -> &'static str {
    if watch.connected() {
        "server lost"
    } else {
        "cannot connect"
    }
}

/// The line said in place of the thread rows by a server that has none.
pub const NO_THREAD_STATS: &str =
    "per-thread stats are not available: the server does not answer `stats threads` (only kvserve does)";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_read_short() {
        assert_eq!(rate(0.0), "0");
        assert_eq!(rate(0.4), "0");
        assert_eq!(rate(950.0), "950");
        assert_eq!(rate(999.6), "1.0k");
        assert_eq!(rate(12_480.0), "12.5k");
        assert_eq!(rate(123_456.0), "123k");
        assert_eq!(rate(3_140_000.0), "3.1M");
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(64 << 20), "64.0 MiB");
        assert_eq!(bytes(3 << 29), "1.5 GiB");
        assert_eq!(uptime(42), "42s");
        assert_eq!(uptime(307), "5m07s");
        assert_eq!(uptime(3600 * 3 + 120), "3h02m");
        assert_eq!(uptime(86_400 * 4 + 3 * 3600), "4d03h");
        assert_eq!(seconds(Duration::from_millis(250)), "0.25 s");
        assert_eq!(seconds(Duration::from_secs(1)), "1 s");
    }
}
