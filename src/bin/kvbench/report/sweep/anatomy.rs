//! Where the time goes: per server and load, the client's latency beside
//! the server's stage times (`stats latency`), at p50 and p99.

use super::super::{us, Table};
use super::table::{percent, servers_in_order};
use super::SweepPoint;
use crate::measure::anatomy::Anatomy;

/// The stages shown, in the order a request passes them, and `server`
/// (read to written) after them.
const SHOWN: [&str; 6] = ["socket", "parse", "handoff", "execute", "write", "server"];

/// The anatomy table, or nothing when no point has stage times (memcached).
pub fn render(points: &[SweepPoint]) -> String {
    if points.iter().all(|p| p.anatomy.is_none()) {
        return String::new();
    }
    let mut headers = vec!["server".to_string(), "load".into(), "client p50/p99".into()];
    headers.extend(SHOWN.iter().map(|s| format!("{s} p50/p99")));
    headers.push("outside p50".into());
    let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
    let mut table = Table::new(&headers);
    for (i, server) in servers_in_order(points).into_iter().enumerate() {
        if i > 0 {
            table.gap();
        }
        let mine = points
            .iter()
            .filter(|p| p.server == server && p.anatomy.is_some());
        for (j, p) in mine.enumerate() {
            let Some(a) = &p.anatomy else { continue };
            let mut row = vec![
                if j == 0 {
                    server.to_string()
                } else {
                    String::new()
                },
                p.load_pct.map_or(format!("{:.0}/s", p.offered), percent),
                format!("{}/{}", us(p.p50_us), us(p.p99_us)),
            ];
            row.extend(SHOWN.iter().map(|s| pair(a, s)));
            row.push(us(outside_p50(a, p.p50_us)));
            table.row(row);
        }
    }
    let mut out = "where the time goes (µs; the server's stage times; outside: the client's p50 beyond socket and server: network and client)\n".to_string();
    out += &table.render(1);
    for server in servers_in_order(points) {
        let a = points
            .iter()
            .find(|p| p.server == server)
            .and_then(|p| p.anatomy.as_ref());
        if let Some(a) = a {
            out += &format!("{server}: {}\n", roles(a));
        }
    }
    out
}

/// Who does each stage: `socket, parse by dispatch; handoff, execute,
/// write by worker`.
fn roles(a: &Anatomy) -> String {
    let mut groups: Vec<(String, Vec<&str>)> = Vec::new();
    for stage in &SHOWN[..SHOWN.len() - 1] {
        let Some(role) = a.stage(stage).map(|s| s.role.clone()) else {
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

/// `p50/p99` of a stage, `-` when it was not counted.
fn pair(a: &Anatomy, stage: &str) -> String {
    match a.stage(stage) {
        Some(s) => format!("{}/{}", us(s.at(0.5)), us(s.at(0.99))),
        None => "-".into(),
    }
}

/// What the client's median spends outside the server's stages.
pub fn outside_p50(a: &Anatomy, client_p50_us: f64) -> f64 {
    client_p50_us - a.at("socket", 0.5) - a.at("server", 0.5)
}

#[cfg(test)]
mod tests {
    use super::super::tests::sample;
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
    fn a_row_per_point_with_each_stage_and_what_is_outside() {
        let mut s = sample(1, 400.0);
        s.p50_us = 200.0;
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
        s.anatomy = Some(a);
        let p = SweepPoint::of("worker-pool", Some(50.0), 20_000.0, vec![s]);
        let text = render(&[p]);
        let row = text.lines().nth(2).unwrap();
        for cell in [
            "worker-pool",
            "50%",
            "200.0/400.0",
            "30.0/90.0",
            "6.0/20.0",
            "140.0/350.0",
        ] {
            assert!(row.contains(cell), "{cell} in {row}");
        }
        // 200 - 30 - 140
        assert!(row.trim_end().ends_with("30.0"), "{row}");
        assert!(
            text.contains(
                "worker-pool: socket, parse by dispatch; handoff, execute, write by worker"
            ),
            "{text}"
        );
        let bare = SweepPoint::of("memcached", Some(50.0), 20_000.0, vec![sample(1, 400.0)]);
        assert_eq!(render(&[bare]), "");
    }
}
