//! The simulator against closed forms, and the properties the sweep relies on.
//!
//! A closed-form check's error is statistical: the sojourns of a queue are
//! correlated, so a p99 from a million requests at 80% load still varies by
//! about 2% from seed to seed. The default tests therefore run sizes a debug
//! build does in about a second, with tolerances of at least three standard
//! deviations at that size (measured over 16 seeds; quoted beside each).
//! `closed_forms_within_2_percent` runs every check at the 2% with
//! enough requests that 2% is three standard deviations; it takes half a
//! minute in a release build:
//! `cargo test --release --bin kvbench model -- --ignored`.

use super::*;
use crate::model::closed_form::{erlang_c, md1_mean_wait, mm1_sojourn_quantile, mmk_mean_wait};

/// Requests per run in the default checks.
const QUICK: f64 = 400_000.0;
/// Requests per run in the 2% checks.
const THOROUGH: f64 = 8_000_000.0;

const MEAN_SERVICE: f64 = 100e-6;
const MU: f64 = 1.0 / MEAN_SERVICE;

fn us(n: u64) -> Duration {
    Duration::from_micros(n)
}

fn exp_service() -> ServiceDist {
    ServiceDist::Exp { mean: us(100) }
}

/// About `requests` requests at total `rate` over so many connections that
/// each request queues alone: the plain queue the closed forms describe.
fn plain_queue(discipline: Discipline, service: ServiceDist, rate: f64, requests: f64) -> Scenario {
    Scenario {
        discipline,
        connections: 50_000,
        rate,
        duration: Duration::from_secs_f64(requests / rate),
        service,
        overhead: Duration::ZERO,
        batch_limit: 1,
        slice: None,
        seed: 1,
        measured: None,
    }
}

/// Asserts `simulated` is within `tolerance` (relative) of `exact`.
fn assert_close(what: &str, simulated: f64, exact: f64, tolerance: f64) {
    let error = simulated / exact - 1.0;
    assert!(
        error.abs() <= tolerance,
        "{what}: simulated {simulated:.6e}, closed form {exact:.6e}, error {:+.2}% (allowed {:.1}%)",
        100.0 * error,
        100.0 * tolerance
    );
}

/// The share of requests that waited before their service started, and
/// the mean wait in seconds.
fn waits(s: &Scenario) -> (f64, f64) {
    let requests = offered_requests(s);
    let served = serve(s.discipline, batching(s), &requests, 0);
    let waits: Vec<u64> = requests
        .iter()
        .zip(&served.passages)
        .map(|(r, p)| p.start - r.arrival)
        .collect();
    let n = waits.len() as f64;
    let waited = waits.iter().filter(|&&w| w > 0).count() as f64 / n;
    let mean = waits.iter().map(|&w| w as f64 * 1e-9).sum::<f64>() / n;
    (waited, mean)
}

/// M/M/1 at utilisation `rho`: p99 sojourn ln(100)/(μ−λ), mean 1/(μ−λ).
fn check_mm1(rho: f64, requests: f64, p99_tolerance: f64, mean_tolerance: f64) {
    let lambda = rho * MU;
    let outcome = simulate(&plain_queue(
        Discipline::Single,
        exp_service(),
        lambda,
        requests,
    ));
    let what = format!("M/M/1 at ρ = {rho}");
    assert_close(
        &format!("{what}: p99"),
        outcome.p99_us * 1e-6,
        mm1_sojourn_quantile(lambda, MU, 0.99),
        p99_tolerance,
    );
    assert_close(
        &format!("{what}: mean"),
        outcome.mean_us * 1e-6,
        1.0 / (MU - lambda),
        mean_tolerance,
    );
}

/// M/M/4 (central queue) at utilisation 0.7: the share that waits is
/// Erlang C, the mean wait Erlang C/(kμ−λ).
fn check_mmk(requests: f64, waited_tolerance: f64, wait_tolerance: f64) {
    let k = 4;
    let lambda = 0.7 * k as f64 * MU;
    let (waited, mean_wait) = waits(&plain_queue(
        Discipline::Central { servers: k },
        exp_service(),
        lambda,
        requests,
    ));
    assert_close(
        "M/M/4 at ρ = 0.7: share waiting",
        waited,
        erlang_c(k, lambda / MU),
        waited_tolerance,
    );
    assert_close(
        "M/M/4 at ρ = 0.7: mean wait",
        mean_wait,
        mmk_mean_wait(k, lambda, MU),
        wait_tolerance,
    );
}

/// Four partitioned loops at total λ: four M/M/1 queues at λ/4 (ρ = 0.5).
fn check_partitioned(requests: f64, tolerance: f64) {
    let k = 4;
    let lambda = 0.5 * k as f64 * MU;
    let outcome = simulate(&plain_queue(
        Discipline::Partitioned { servers: k },
        exp_service(),
        lambda,
        requests,
    ));
    assert_close(
        "4 partitioned loops at ρ = 0.5: p99",
        outcome.p99_us * 1e-6,
        mm1_sojourn_quantile(lambda / k as f64, MU, 0.99),
        tolerance,
    );
}

/// M/D/1 at utilisation `rho`: Pollaczek–Khinchine's mean wait.
fn check_md1(rho: f64, requests: f64, tolerance: f64) {
    let lambda = rho * MU;
    let (_, mean_wait) = waits(&plain_queue(
        Discipline::Single,
        ServiceDist::Fixed(us(100)),
        lambda,
        requests,
    ));
    assert_close(
        &format!("M/D/1 at ρ = {rho}: mean wait"),
        mean_wait,
        md1_mean_wait(lambda, MEAN_SERVICE),
        tolerance,
    );
}

/// M/M/1 with an SLO of 10 E[S] on the p99: ln(100)/(μ−λ) = slo at
/// λ = μ − ln(100)/slo (ρ ≈ 0.54). Each of the bisection's runs has
/// `requests` requests.
fn check_max_load(requests: f64, tolerance: f64) {
    let slo = 10.0 * MEAN_SERVICE;
    let exact = MU - 100f64.ln() / slo;
    let s = plain_queue(Discipline::Single, exp_service(), exact, requests);
    let found = max_load_at_slo(&s, Duration::from_secs_f64(slo), MU);
    assert_close("M/M/1 max load at p99 <= 10 E[S]", found, exact, tolerance);
}

#[test]
fn mm1_at_half_load_matches_closed_form() {
    // Standard deviations at this size: p99 1.1%, mean 0.4%.
    check_mm1(0.5, QUICK, 0.035, 0.015);
}

#[test]
fn mm1_at_0_8_load_matches_closed_form() {
    // Standard deviations at this size: p99 2.5%, mean 0.9%.
    check_mm1(0.8, QUICK, 0.08, 0.03);
}

#[test]
fn central_queue_matches_erlang_c() {
    // Standard deviations at this size: share waiting 0.4%, mean wait 1.6%.
    check_mmk(QUICK, 0.02, 0.05);
}

#[test]
fn partitioned_loops_are_independent_mm1_queues() {
    // Standard deviation at this size: 1.0%.
    check_partitioned(QUICK, 0.035);
}

#[test]
fn fixed_service_matches_pollaczek_khinchine() {
    // Standard deviation at this size: 0.7%.
    check_md1(0.5, QUICK, 0.025);
}

#[test]
fn max_load_at_slo_matches_mm1() {
    // Ten runs of QUICK / 4 requests; standard deviation 1.9%.
    check_max_load(QUICK / 4.0, 0.06);
}

#[test]
#[ignore = "the 2% checks: half a minute in a release build"]
fn closed_forms_within_2_percent() {
    for rho in [0.5, 0.8] {
        check_mm1(rho, THOROUGH, 0.02, 0.02);
    }
    check_mmk(THOROUGH, 0.02, 0.02);
    check_partitioned(THOROUGH, 0.02);
    for rho in [0.5, 0.8] {
        check_md1(rho, THOROUGH, 0.02);
    }
    check_max_load(THOROUGH / 4.0, 0.02);
}

/// The server's own settings: 64 connections, -R 20, a 100 µs slice for
/// the worker pool.
fn as_served(
    discipline: Discipline,
    service: ServiceDist,
    rate: f64,
    duration: Duration,
) -> Scenario {
    Scenario {
        discipline,
        connections: 64,
        rate,
        duration,
        service,
        overhead: Duration::ZERO,
        batch_limit: 20,
        slice: matches!(discipline, Discipline::Central { .. }).then_some(us(100)),
        seed: 7,
        measured: None,
    }
}

fn bimodal() -> ServiceDist {
    ServiceDist::Bimodal {
        short: us(25),
        long: us(750),
        p_long: 0.1,
    }
}

#[test]
fn the_same_scenario_gives_the_same_outcome() {
    let s = as_served(
        Discipline::Central { servers: 4 },
        bimodal(),
        25_000.0,
        Duration::from_secs(1),
    );
    let first = simulate(&s);
    assert_eq!(first, simulate(&s));
    assert!(first.requests > 20_000, "{first:?}");
    let reseeded = simulate(&Scenario { seed: 8, ..s });
    assert_ne!(first, reseeded);
}

#[test]
fn a_central_queue_beats_partitions_on_dispersed_service() {
    // 60% of four servers' capacity: a long request holds up only its own
    // loop's connections under partitioning, but anyone's under a central
    // queue.
    let rate = 0.6 * 4.0 / bimodal().mean().as_secs_f64();
    let run = |discipline| {
        simulate(&as_served(
            discipline,
            bimodal(),
            rate,
            Duration::from_secs(2),
        ))
    };
    let central = run(Discipline::Central { servers: 4 });
    let partitioned = run(Discipline::Partitioned { servers: 4 });
    assert!(
        central.p99_us < partitioned.p99_us,
        "central {central:?}, partitioned {partitioned:?}"
    );
}

#[test]
fn one_loop_saturates_above_its_capacity() {
    // Offered 1.5 μ: completions run at μ, the server is always busy.
    let s = as_served(
        Discipline::Single,
        exp_service(),
        1.5 * MU,
        Duration::from_secs(5),
    );
    let outcome = simulate(&s);
    assert!(outcome.achieved < 0.7 * s.rate, "{outcome:?}");
    assert_close("saturated throughput", outcome.achieved, MU, 0.02);
    assert!(outcome.utilisation > 0.99, "{outcome:?}");
    // Below capacity it keeps up.
    let outcome = simulate(&Scenario {
        rate: 0.5 * MU,
        ..s
    });
    assert_close(
        "throughput below capacity",
        outcome.achieved,
        0.5 * MU,
        0.02,
    );
    assert_close("utilisation below capacity", outcome.utilisation, 0.5, 0.02);
}

#[test]
fn reference_loads_at_an_slo_of_ten_service_times() {
    // The reference: four servers, exponential service, p99 <= 10
    // E[S]. Theory gives 87.5% of capacity for M/M/4 and 53.9% for four
    // M/M/1 queues; the issue quotes about 89% and 55%.
    let capacity = 4.0 * MU;
    let share = |discipline| {
        let s = Scenario {
            batch_limit: 20,
            slice: Some(us(100)),
            ..plain_queue(discipline, exp_service(), capacity, 50_000.0)
        };
        max_load_at_slo(&s, us(1_000), capacity) / capacity
    };
    let central = share(Discipline::Central { servers: 4 });
    let partitioned = share(Discipline::Partitioned { servers: 4 });
    assert!((central - 0.89).abs() <= 0.05, "central {central}");
    assert!(
        (partitioned - 0.55).abs() <= 0.05,
        "partitioned {partitioned}"
    );
}

#[test]
fn percentiles_are_nearest_rank() {
    let mut ns: Vec<u64> = (1..=1000).rev().map(|i| i * 1000).collect();
    assert_eq!(percentile_us(&mut ns, 0.5), 500.0);
    assert_eq!(percentile_us(&mut ns, 0.99), 990.0);
    assert_eq!(percentile_us(&mut ns, 0.999), 999.0);
    assert_eq!(percentile_us(&mut ns, 1.0), 1000.0);
    assert_eq!(percentile_us(&mut [], 0.99), 0.0);
}

#[test]
fn requests_come_sorted_with_their_connections_streams() {
    let s = as_served(
        Discipline::Single,
        exp_service(),
        20_000.0,
        Duration::from_millis(500),
    );
    let requests = offered_requests(&s);
    assert!(requests
        .windows(2)
        .all(|w| (w[0].arrival, w[0].connection) < (w[1].arrival, w[1].connection)));
    // Connection 5's arrivals are its own Poisson stream's.
    let mut arrivals = PoissonArrivals::new(s.rate / 64.0, connection_seed(s.seed, 5));
    let mut at = Duration::ZERO;
    for r in requests.iter().filter(|r| r.connection == 5) {
        at += arrivals.next_gap();
        assert_eq!(r.arrival, nanos(at));
    }
    assert!(nanos(at + arrivals.next_gap()) >= nanos(s.duration));
}

#[test]
fn measured_overheads_hold_the_server_or_only_delay_the_reply() {
    let fixed = ServiceDist::Fixed(us(100));
    let s = plain_queue(Discipline::Single, fixed, 500.0, 5_000.0);
    let ideal = simulate(&s);
    assert_close("ideal p50", ideal.p50_us, 100.0, 0.01);
    let with = |on_server: Vec<f64>, delays: Vec<f64>| {
        simulate(&Scenario {
            measured: Some(Overheads {
                service: Empirical::constant(100_000.0),
                on_server: on_server.into_iter().map(Empirical::constant).collect(),
                delays: delays.into_iter().map(Empirical::constant).collect(),
            }),
            ..s.clone()
        })
    };
    // A delay adds to every request and holds no server.
    let delayed = with(vec![], vec![30_000.0, 5_000.0]);
    assert_close("delayed p50", delayed.p50_us, 135.0, 0.01);
    assert_close("delayed p99", delayed.p99_us, ideal.p99_us + 35.0, 0.01);
    assert_close("utilisation", delayed.utilisation, ideal.utilisation, 0.001);
    // Time on the server adds to the service: the server is busier.
    let held = with(vec![20_000.0], vec![]);
    assert_close("held p50", held.p50_us, 120.0, 0.02);
    assert_close(
        "held utilisation",
        held.utilisation,
        1.2 * ideal.utilisation,
        0.01,
    );
}

#[test]
fn hash_dealing_costs_with_few_connections_and_not_with_many() {
    // 40% of four loops' capacity, exponential service. Of 16 connections
    // round robin gives every loop 4; dealt at random, the busiest loop
    // gets 6.1 on average, 7 or more in a third of the dealings, and the
    // p99 over them shows it. Of 1,000, the busiest gets 6.5% above the
    // mean on average.
    let p99 = |discipline, connections| {
        let s = Scenario {
            connections,
            ..as_served(
                discipline,
                exp_service(),
                0.4 * 4.0 * MU,
                Duration::from_millis(500),
            )
        };
        simulate(&s).p99_us
    };
    let hashed = Discipline::Hashed { servers: 4 };
    let round_robin = Discipline::Partitioned { servers: 4 };
    let few = p99(hashed, 16) / p99(round_robin, 16);
    assert!(
        few > 1.3,
        "16 connections: hashed / round robin p99 {few:.2}"
    );
    let many = p99(hashed, 1000) / p99(round_robin, 1000);
    assert!(
        (many - 1.0).abs() < 0.15,
        "1,000 connections: hashed / round robin p99 {many:.2}"
    );
}

#[test]
fn one_hashed_loop_is_one_server() {
    // Every dealing puts every connection on the one loop: the same run,
    // DEALINGS times over.
    let s = as_served(
        Discipline::Single,
        exp_service(),
        0.5 * MU,
        Duration::from_millis(200),
    );
    let hashed = Scenario {
        discipline: Discipline::Hashed { servers: 1 },
        ..s.clone()
    };
    assert_eq!(simulate(&hashed), simulate(&s));
}
