//! Where the time goes: the client's latency beside the server's stage
//! times (`stats latency`) at p50 and p99, a row per server and load
//! (sweep) or workload (compare), and who does each stage.

use super::{us, Table};
use crate::measure::anatomy::Anatomy;

/// The stages shown, in the order a request passes them, and `server`
/// (read to written) after them. `wakeup` is a part of `socket`.
const SHOWN: [&str; 7] = [
    "socket", "wakeup", "parse", "handoff", "execute", "write", "server",
];

/// One row: a server at one load or workload.
pub struct Row<'a> {
    pub server: &'a str,
    /// The load (`50%`) or the workload (`uniform`).
    pub at: String,
    /// The client's latency.
    pub p50_us: f64,
    pub p99_us: f64,
    pub anatomy: &'a Anatomy,
}

/// The table, rows grouped by server in the order they come, or nothing
/// without rows (memcached has no stage times).
pub fn render(rows: &[Row]) -> String {
    if rows.is_empty() {
        return String::new();
    }
    let mut headers = vec!["server".to_string(), "at".into(), "client p50/p99".into()];
    headers.extend(SHOWN.iter().map(|s| format!("{s} p50/p99")));
    headers.push("outside p50".into());
    let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
    let mut table = Table::new(&headers);
    let mut servers: Vec<&str> = Vec::new();
    for row in rows {
        let first = !servers.contains(&row.server);
        if first {
            if !servers.is_empty() {
                table.gap();
            }
            servers.push(row.server);
        }
        let mut cells = vec![
            if first {
                row.server.to_string()
            } else {
                String::new()
            },
            row.at.clone(),
            format!("{}/{}", us(row.p50_us), us(row.p99_us)),
        ];
        cells.extend(SHOWN.iter().map(|s| pair(row.anatomy, s)));
        cells.push(us(outside_p50(row.anatomy, row.p50_us)));
        table.row(cells);
    }
    let mut out = "where the time goes (µs): the server's stage times beside the client's latency; wakeup: the part of socket spent waking a thread that slept; outside: the client's p50 beyond socket and server (network and client, and the wait in the socket when the server was not asked for arrival stamps: `-`)\n".to_string();
    out += &table.render(1);
    for server in servers {
        if let Some(row) = rows.iter().find(|r| r.server == server) {
            out += &format!("{server}: {}\n", roles(row.anatomy));
        }
    }
    out
}

/// `p50/p99` of a stage, `-` when it was not counted.
fn pair(a: &Anatomy, stage: &str) -> String {
    match a.stage(stage) {
        Some(s) => format!("{}/{}", us(s.at(0.5)), us(s.at(0.99))),
        None => "-".into(),
    }
}

/// What the client's median spends outside the server's stages.
fn outside_p50(a: &Anatomy, client_p50_us: f64) -> f64 {
    client_p50_us - a.at("socket", 0.5) - a.at("server", 0.5)
}

/// Who does each stage: `socket, wakeup, parse by dispatch; handoff,
/// execute, write by worker`.
fn roles(a: &Anatomy) -> String {
    let mut groups: Vec<(&str, Vec<&str>)> = Vec::new();
    for stage in &SHOWN[..SHOWN.len() - 1] {
        let Some(role) = a.stage(stage).map(|s| s.role.as_str()) else {
            continue;
        };
        match groups.last_mut() {
            Some((r, stages)) if *r == role => stages.push(stage),
            _ => groups.push((role, vec![stage])),
        }
    }
    groups
        .iter()
        .map(|(role, stages)| format!("{} by {role}", stages.join(", ")))
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::anatomy::StageTimes;

    fn stage(role: &str, p50: f64, p99: f64) -> StageTimes {
        StageTimes {
            role: role.into(),
            count: 100,
            mean_us: p50,
            quantiles: vec![(0.5, p50), (0.99, p99), (1.0, p99 * 2.0)],
        }
    }

    #[test]
    fn a_row_per_server_and_load_with_each_stage_and_what_is_outside() {
        let mut a = Anatomy::default();
        for (role, name, p50, p99) in [
            ("dispatch", "socket", 30.0, 90.0),
            ("dispatch", "parse", 1.0, 4.0),
            ("worker", "handoff", 6.0, 20.0),
            ("worker", "execute", 110.0, 300.0),
            ("worker", "write", 20.0, 60.0),
            ("all", "server", 140.0, 350.0),
        ] {
            a.stages.insert(name.into(), stage(role, p50, p99));
        }
        let row = |at: &str| Row {
            server: "worker-pool",
            at: at.into(),
            p50_us: 200.0,
            p99_us: 400.0,
            anatomy: &a,
        };
        let text = render(&[row("10%"), row("50%")]);
        let lines: Vec<&str> = text.lines().collect();
        for cell in [
            "worker-pool",
            "10%",
            "200.0/400.0",
            "30.0/90.0",
            "6.0/20.0",
            "140.0/350.0",
        ] {
            assert!(lines[2].contains(cell), "{cell} in {}", lines[2]);
        }
        assert!(lines[2].contains(" - "), "no wake-up counted: {}", lines[2]);
        assert!(lines[3].trim_start().starts_with("50%"), "{text}");
        // 200 - 30 - 140
        assert!(lines[2].trim_end().ends_with("30.0"), "{}", lines[2]);
        assert!(
            text.contains(
                "worker-pool: socket, parse by dispatch; handoff, execute, write by worker"
            ),
            "{text}"
        );
        assert_eq!(render(&[]), "");
    }
}
