//! Textbook results for the queues the simulator models, and for dealing
//! connections at random: what the model's tests check it against. Rates
//! are per second, times in seconds.

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

/// The expected count in the fullest of `bins` bins after `balls` balls
/// are thrown into them uniformly at random, independently (the expected
/// maximum load; `bins` at least 1): Σ_c P(max > c), each P(max ≤ c) exact,
/// the balls dealt bin by bin. Summed until what is left is below 1e-12.
pub fn balls_into_bins_max(balls: usize, bins: usize) -> f64 {
    let bins = bins.max(1);
    // ln k! for k up to `balls`, for the binomial terms.
    let mut ln_factorial = vec![0.0; balls + 1];
    for k in 1..=balls {
        ln_factorial[k] = ln_factorial[k - 1] + (k as f64).ln();
    }
    // No bin holds fewer than the mean, rounded up, at its fullest.
    let floor = balls.div_ceil(bins);
    let mut expected = floor as f64;
    for most in floor..balls {
        let beyond = 1.0 - all_at_most(balls, bins, most, &ln_factorial);
        if beyond < 1e-12 {
            break;
        }
        expected += beyond;
    }
    expected
}

/// P(no bin gets more than `most`) when `balls` are thrown into `bins`:
/// with r balls left for the last b bins, the first of them gets j with
/// probability Binomial(r, 1/b).
fn all_at_most(balls: usize, bins: usize, most: usize, ln_factorial: &[f64]) -> f64 {
    if bins == 1 {
        return if balls <= most { 1.0 } else { 0.0 };
    }
    // ok[r - lowest]: P(the last b bins get at most `most` each, given r
    // balls for them), only for the r that the bins before can leave them
    // (each of those takes `most` at the most; so r - j, for j <= `most`,
    // is never below the previous `lowest`). For the last two, the first
    // takes j and the other r - j, both at most `most`.
    let mut lowest = balls.saturating_sub((bins - 2) * most);
    let mut ok: Vec<f64> = (lowest..=balls)
        .map(|r| binomial_sum(r, 0.5, r.saturating_sub(most), most, ln_factorial, |_| 1.0))
        .collect();
    for b in 3..=bins {
        let fewest = balls.saturating_sub((bins - b) * most);
        let next = (fewest..=balls)
            .map(|r| {
                let rest = |j: usize| ok[r - j - lowest];
                binomial_sum(r, 1.0 / b as f64, 0, most, ln_factorial, rest)
            })
            .collect();
        (ok, lowest) = (next, fewest);
    }
    ok[balls - lowest]
}

/// Σ over j from `from` to `to` (and r) of Binomial(r, p) at j times
/// `f(j)`. The terms are walked outwards from the largest, each from its
/// neighbour (one exponential per sum, not per term), until they vanish.
fn binomial_sum(
    r: usize,
    p: f64,
    from: usize,
    to: usize,
    ln_factorial: &[f64],
    f: impl Fn(usize) -> f64,
) -> f64 {
    const NEGLIGIBLE: f64 = 1e-20;
    let to = to.min(r);
    if from > to {
        return 0.0;
    }
    let odds = p / (1.0 - p);
    let start = (((r + 1) as f64 * p) as usize).clamp(from, to);
    let ln_term = ln_factorial[r] - ln_factorial[start] - ln_factorial[r - start]
        + start as f64 * p.ln()
        + (r - start) as f64 * (1.0 - p).ln();
    let largest = ln_term.exp();
    let mut sum = largest * f(start);
    let mut term = largest;
    for j in start + 1..=to {
        term *= (r - j + 1) as f64 / j as f64 * odds;
        sum += term * f(j);
        if term < NEGLIGIBLE * largest {
            break;
        }
    }
    let mut term = largest;
    for j in (from..start).rev() {
        term *= (j + 1) as f64 / (r - j) as f64 / odds;
        sum += term * f(j);
        if term < NEGLIGIBLE * largest {
            break;
        }
    }
    sum
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

    /// Every way of throwing `balls` into `bins`, counted: the expected
    /// fullest bin by brute force.
    fn enumerated_max(balls: u32, bins: usize) -> f64 {
        let ways = bins.pow(balls);
        let mut total = 0;
        for mut way in 0..ways {
            let mut counts = vec![0; bins];
            for _ in 0..balls {
                counts[way % bins] += 1;
                way /= bins;
            }
            total += counts.iter().max().unwrap();
        }
        total as f64 / ways as f64
    }

    #[test]
    fn balls_into_bins_matches_enumeration() {
        // Two balls, two bins: together half the time.
        assert!(close(balls_into_bins_max(2, 2), 1.5));
        // Three into three: 6 of 27 ways spread them, 3 put all in one,
        // the other 18 put two together.
        assert!(close(balls_into_bins_max(3, 3), 51.0 / 27.0));
        for (balls, bins) in [(1, 4), (5, 3), (8, 4), (7, 2), (6, 6), (9, 1)] {
            let exact = balls_into_bins_max(balls as usize, bins);
            let counted = enumerated_max(balls, bins);
            assert!(
                (exact - counted).abs() < 1e-9,
                "{balls} into {bins}: {exact} against {counted} counted"
            );
        }
        assert_eq!(balls_into_bins_max(0, 4), 0.0);
    }
}
