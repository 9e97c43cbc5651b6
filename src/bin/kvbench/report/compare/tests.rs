//! compare's summaries, ratios and verdicts on made-up runs.

use super::*;

pub(crate) fn run(server: &str, ops: f64, p99: f64, cpu: Option<f64>, round: usize) -> CompareRow {
    CompareRow {
        server: server.into(),
        workload: "uniform".into(),
        security: Security::Plain,
        ops_per_sec: ops,
        p50_us: p99 / 2.0,
        p99_us: p99,
        p999_us: p99 * 2.0,
        requests: 10,
        misses: 1,
        errors: 0,
        first_error: None,
        imbalance: Some(1.0),
        threads: Some(Vec::new()),
        roles: None,
        tls_handshakes: 0,
        tls_resumed: 0,
        cpu_us_per_request: cpu,
        rounds: 1,
        ops_min: ops,
        ops_max: ops,
        round: Some(round),
        vs_baseline: None,
        noise: None,
        disturbed: None,
        retries: 0,
        disturbed_rounds: 0,
        anatomy: None,
    }
}

fn disturbed(mut r: CompareRow) -> CompareRow {
    r.disturbed = Some("other work took 40% of the CPUs".into());
    r
}

#[test]
fn rounds_fold_into_medians_in_first_seen_order() {
    let runs = [
        run("b", 100.0, 5.0, Some(2.0), 1),
        run("a", 300.0, 9.0, None, 1),
        run("b", 900.0, 1.0, Some(4.0), 2),
        run("a", 100.0, 7.0, None, 2),
        run("b", 200.0, 3.0, Some(3.0), 3),
    ];
    let rows = summarize(&runs, "a");
    let servers: Vec<&str> = rows.iter().map(|r| r.server.as_str()).collect();
    assert_eq!(servers, ["b", "a"]);
    let b = &rows[0];
    assert_eq!((b.ops_per_sec, b.p99_us, b.p50_us), (200.0, 3.0, 1.5));
    assert_eq!(b.cpu_us_per_request, Some(3.0));
    assert_eq!((b.rounds, b.requests, b.misses), (3, 30, 3));
    assert_eq!((b.ops_min, b.ops_max), (100.0, 900.0));
    assert!(b.threads.is_none());
    let a = &rows[1];
    assert_eq!(
        (a.ops_per_sec, a.p99_us),
        (200.0, 8.0),
        "even count: mean of the middle two"
    );
    assert_eq!(a.cpu_us_per_request, None);
    let table = render_compare(&rows, "a");
    assert!(
        table.contains("ops/s range") && table.contains("100-900"),
        "{table}"
    );
    // One round: the row as measured, and no range column.
    let single = summarize(&runs[..2], "a");
    assert!(single[0].threads.is_some());
    assert!(!render_compare(&single, "a").contains("range"));
}

#[test]
fn throughput_is_compared_with_the_baseline_round_by_round() {
    let runs = [
        // A round where the whole machine was slow...
        run("base", 100.0, 1.0, None, 1),
        run("x", 80.0, 1.0, None, 1),
        // ...and a quiet one.
        run("base", 200.0, 1.0, None, 2),
        run("x", 170.0, 1.0, None, 2),
        // The baseline did not run in round 3: nothing to compare with.
        run("x", 10.0, 1.0, None, 3),
    ];
    let rows = summarize(&runs, "base");
    assert_eq!(rows[0].vs_baseline.unwrap().estimate, 1.0);
    // The median of 0.80 and 0.85, not the ratio of the medians
    // (80 / 150 = 0.53), with the rounds' range.
    let x = rows[1].vs_baseline.unwrap();
    assert!((x.estimate - 0.825).abs() < 1e-9, "{x:?}");
    assert_eq!((x.low, x.high), (0.8, 0.85));
    let table = render_compare(&rows, "base");
    assert!(
        table.contains("vs base") && table.contains("0.82 (0.80-0.85)"),
        "{table}"
    );
    // No baseline among the runs: no ratios.
    assert!(summarize(&runs, "other")
        .iter()
        .all(|r| r.vs_baseline.is_none()));
}

#[test]
fn disturbed_runs_are_left_out_while_most_rounds_are_clean() {
    let runs = [
        run("a", 100.0, 1.0, None, 1),
        disturbed(run("a", 10.0, 90.0, None, 2)),
        run("a", 120.0, 1.0, None, 3),
    ];
    let rows = summarize(&runs, "a");
    let a = &rows[0];
    assert_eq!((a.ops_per_sec, a.rounds, a.disturbed_rounds), (110.0, 2, 1));
    assert!(a.disturbed.is_none());
    assert!(render_compare(&rows, "a").contains("1/2"));
    // Most rounds disturbed: all of them stand, and it is said.
    let runs = [
        run("a", 100.0, 1.0, None, 1),
        disturbed(run("a", 10.0, 90.0, None, 2)),
        disturbed(run("a", 30.0, 90.0, None, 3)),
    ];
    let rows = summarize(&runs, "a");
    assert_eq!(rows[0].ops_per_sec, 30.0);
    let why = rows[0].disturbed.as_deref().unwrap();
    assert!(why.starts_with("2 of 3 rounds disturbed"), "{why}");
    assert!(render_compare(&rows, "a").contains("call nothing"));
}

#[test]
fn every_pair_gets_a_verdict_called_only_when_clear() {
    let mut runs = Vec::new();
    for (round, (a, b, c)) in [
        (100.0, 150.0, 98.0),
        (110.0, 160.0, 115.0),
        (105.0, 150.0, 104.0),
    ]
    .into_iter()
    .enumerate()
    {
        runs.push(run("a", a, 1.0, None, round + 1));
        runs.push(run("b", b, 1.0, None, round + 1));
        runs.push(run("c", c, 1.0, None, round + 1));
    }
    let v = pairwise(&runs);
    let call = |x: &str, y: &str| {
        v.iter()
            .find(|p| p.server == x && p.other == y)
            .map(|p| p.call)
            .unwrap()
    };
    assert_eq!(v.len(), 3);
    assert_eq!(call("a", "b"), Call::Behind);
    assert_eq!(call("b", "c"), Call::Ahead);
    // c is 0.98, 1.05 and 0.99 of a: level.
    assert_eq!(call("a", "c"), Call::Level);
    let text = render_verdicts(&v);
    assert!(text.contains("behind") && text.contains("level"), "{text}");
    // One round calls nothing.
    let one = pairwise(&runs[..3]);
    assert!(one.iter().all(|p| p.call == Call::CannotTell));
    // Most rounds disturbed for one side: cannot tell.
    runs[1] = disturbed(runs[1].clone());
    runs[4] = disturbed(runs[4].clone());
    let v = pairwise(&runs);
    assert_eq!(
        v.iter()
            .find(|p| p.server == "a" && p.other == "b")
            .unwrap()
            .call,
        Call::CannotTell
    );
}
