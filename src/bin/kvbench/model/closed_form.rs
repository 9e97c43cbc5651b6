//! Textbook results for the queues the simulator models: what its tests
//! check it against, and reference lines the sweep can draw. Rates are per
//! second, times in seconds.

/// The `q` quantile of the sojourn (wait plus service) in an M/M/1 queue
/// with arrival rate `lambda` and service rate `mu`: the sojourn is
/// exponential with rate `mu - lambda`. Infinite when `lambda >= mu`.
pub fn mm1_sojourn_quantile(lambda: f64, mu: f64, q: f64) -> f64 {
    if lambda >= mu {
        return f64::INFINITY;
    }
    -(1.0 - q).ln() / (mu - lambda)
}

/// Erlang C: the probability that an arrival to an M/M/k queue has to wait,
/// with offered load `offered_load_a` = λ/μ erlangs. 1 when the load is `k`
/// or more (the queue is unstable: everyone waits).
pub fn erlang_c(k: usize, offered_load_a: f64) -> f64 {
    let servers = k as f64;
    if offered_load_a >= servers {
        return 1.0;
    }
    // Erlang B by its stable recursion, then C from B.
    let mut blocking = 1.0;
    for n in 1..=k {
        blocking = offered_load_a * blocking / (n as f64 + offered_load_a * blocking);
    }
    servers * blocking / (servers - offered_load_a * (1.0 - blocking))
}

/// The mean wait before service in an M/M/k queue: Erlang C / (kμ − λ).
pub fn mmk_mean_wait(k: usize, lambda: f64, mu: f64) -> f64 {
    let spare = k as f64 * mu - lambda;
    if spare <= 0.0 {
        return f64::INFINITY;
    }
    erlang_c(k, lambda / mu) / spare
}

/// The mean wait before service in an M/D/1 queue with fixed service time
/// `service` (Pollaczek–Khinchine with E[S²] = S²): ρS / (2(1 − ρ)).
pub fn md1_mean_wait(lambda: f64, service: f64) -> f64 {
    let utilisation = lambda * service;
    if utilisation >= 1.0 {
        return f64::INFINITY;
    }
    utilisation * service / (2.0 * (1.0 - utilisation))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-9 * b.abs().max(1.0)
    }

    #[test]
    fn mm1_quantiles_are_exponential() {
        // Rate 1000 - 500 = 500/s: the median is ln 2 / 500.
        assert!(close(
            mm1_sojourn_quantile(500.0, 1000.0, 0.5),
            2f64.ln() / 500.0
        ));
        assert!(close(
            mm1_sojourn_quantile(800.0, 1000.0, 0.99),
            100f64.ln() / 200.0
        ));
        assert_eq!(mm1_sojourn_quantile(1000.0, 1000.0, 0.99), f64::INFINITY);
    }

    #[test]
    fn erlang_c_matches_known_values() {
        // One server: an arrival waits exactly when the server is busy, ρ.
        assert!(close(erlang_c(1, 0.7), 0.7));
        // Two servers at a = 1: P0 = 1/3 and C = (a²/2!) P0 / (1 − ρ) = 1/3.
        assert!(close(erlang_c(2, 1.0), 1.0 / 3.0));
        // The classic call-centre table value: 10 agents, 8 erlangs.
        assert!(
            (erlang_c(10, 8.0) - 0.4092).abs() < 1e-4,
            "{}",
            erlang_c(10, 8.0)
        );
        assert_eq!(erlang_c(4, 4.0), 1.0);
    }

    #[test]
    fn mmk_wait_reduces_to_mm1() {
        // M/M/1: W = ρ / (μ − λ).
        assert!(close(mmk_mean_wait(1, 600.0, 1000.0), 0.6 / 400.0));
        // M/M/2 at λ = μ = 1: C = 1/3, kμ − λ = 1.
        assert!(close(mmk_mean_wait(2, 1.0, 1.0), 1.0 / 3.0));
    }

    #[test]
    fn md1_wait_is_half_of_mm1() {
        // Fixed service halves the M/M/1 wait ρ S / (1 − ρ).
        let (lambda, service) = (8_000.0, 100e-6);
        assert!(close(
            md1_mean_wait(lambda, service),
            0.5 * 0.8 * service / 0.2
        ));
        assert_eq!(md1_mean_wait(10_000.0, service), f64::INFINITY);
    }
}
