//! Dealing connections to event loops by hash, as the kernel deals them
//! over reuseport's listeners: each connection goes to the listener its
//! addresses and ports hash to, which, for clients on ephemeral ports, is a
//! loop drawn uniformly at random, independently of the other connections.
//! That is balls into bins: the fullest of m bins holds more than the mean
//! n/m, by a share that shrinks as n grows. multi-reader's acceptor deals
//! round-robin instead, which never puts more than one connection above the
//! mean on a loop.

use kvserve::engine::work::Rng;

use crate::load::arrivals::mix;

/// The loop of each of `connections`, each drawn uniformly from `loops`
/// (at least one) by `seed`.
pub fn hashed(connections: usize, loops: usize, seed: u64) -> Vec<usize> {
    let mut rng = Rng::new(seed);
    let loops = loops.max(1) as u64;
    (0..connections)
        .map(|_| rng.below(loops) as usize)
        .collect()
}

/// The largest of `counts` over their mean: 1.0 when even, `counts.len()`
/// when one has them all; `None` when there are none.
pub fn max_over_mean(counts: &[u64]) -> Option<f64> {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return None;
    }
    let mean = total as f64 / counts.len() as f64;
    Some(*counts.iter().max()? as f64 / mean)
}

/// How many connections [`expected_max_over_mean`] deals in all: about
/// 4 ms in a release build, so `kvbench top` can ask at every refresh.
const DRAWS: usize = 1 << 20;
/// The most connections it deals (in 256 dealings); beyond, it scales.
const MOST_DEALT: usize = 4096;

/// What dealing `connections` over `loops` at random gives on average:
/// [`max_over_mean`] of the connections per loop, averaged over as many
/// dealings as [`DRAWS`] allows, each seeded apart. The same figures always
/// give the same answer.
///
/// Beyond [`MOST_DEALT`] connections (a server may take millions), the
/// loops' counts are near enough normal that the busiest's excess over the
/// mean shrinks as one over the square root of the connections: it is
/// scaled from that of [`MOST_DEALT`], so the cost stays bounded. (Exactly,
/// the excess times that root is 2.064 at 4,096 connections over 4 loops
/// and 2.062 at 16,384: the scaled figure is 0.2% of the excess high.)
pub fn expected_max_over_mean(connections: usize, loops: usize) -> f64 {
    if connections > MOST_DEALT {
        let excess = expected_max_over_mean(MOST_DEALT, loops) - 1.0;
        return 1.0 + excess * (MOST_DEALT as f64 / connections as f64).sqrt();
    }
    let dealings = DRAWS / connections.max(1);
    let mut sum = 0.0;
    let mut counts = vec![0; loops.max(1)];
    for d in 0..dealings {
        counts.fill(0);
        for l in hashed(connections, loops, mix(connections as u64, d as u64)) {
            counts[l] += 1;
        }
        sum += max_over_mean(&counts).unwrap_or(1.0);
    }
    sum / dealings as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::closed_form::balls_into_bins_max;

    /// The connections per loop of one dealing.
    fn counts(dealing: &[usize], loops: usize) -> Vec<u64> {
        let mut counts = vec![0; loops];
        for &l in dealing {
            counts[l] += 1;
        }
        counts
    }

    #[test]
    fn max_over_mean_of_counts() {
        assert_eq!(max_over_mean(&[4, 4, 4, 4]), Some(1.0));
        assert_eq!(max_over_mean(&[0, 16, 0, 0]), Some(4.0));
        assert_eq!(max_over_mean(&[3, 1]), Some(1.5));
        assert_eq!(max_over_mean(&[0, 0]), None);
        assert_eq!(max_over_mean(&[]), None);
    }

    #[test]
    fn a_dealing_is_its_seeds_and_covers_every_loop() {
        let dealing = hashed(1000, 4, 7);
        assert_eq!(dealing, hashed(1000, 4, 7));
        assert_ne!(dealing, hashed(1000, 4, 8));
        assert!(counts(&dealing, 4).iter().all(|&c| c > 150), "{dealing:?}");
        assert_eq!(hashed(5, 1, 7), vec![0; 5]);
    }

    /// The dealing's max/mean, averaged over `dealings` seeds, against the
    /// exact expectation of balls into bins, within `tolerance` (relative);
    /// and [`expected_max_over_mean`], which kvbench reports, within 0.5%.
    fn check_against_balls_into_bins(
        connections: usize,
        loops: usize,
        dealings: u64,
        tolerance: f64,
    ) {
        let exact = balls_into_bins_max(connections, loops) * loops as f64 / connections as f64;
        let mean = (0..dealings)
            .map(|seed| {
                let dealing = hashed(connections, loops, mix(99, seed));
                max_over_mean(&counts(&dealing, loops)).unwrap()
            })
            .sum::<f64>()
            / dealings as f64;
        let error = mean / exact - 1.0;
        assert!(
            error.abs() <= tolerance,
            "{connections} over {loops}: dealt {mean:.4}, balls into bins {exact:.4}, error {:+.3}%",
            100.0 * error
        );
        let estimate = expected_max_over_mean(connections, loops);
        let error = estimate / exact - 1.0;
        assert!(
            error.abs() <= 0.005,
            "{connections} over {loops}: estimated {estimate:.4}, balls into bins {exact:.4}, error {:+.3}%",
            100.0 * error
        );
    }

    #[test]
    fn hashed_dealing_is_balls_into_bins() {
        // Each tolerance is three standard deviations of the dealt mean's
        // error, measured over 16 seeds: 0.07%, 0.11%, 0.07% and 0.07%.
        // The estimate's error was at most 0.16% (1,000 over 4, averaged
        // over its fewest dealings, 1,048).
        check_against_balls_into_bins(16, 4, 20_000, 0.0025);
        check_against_balls_into_bins(64, 4, 10_000, 0.0035);
        check_against_balls_into_bins(1000, 4, 2_000, 0.0025);
        check_against_balls_into_bins(64, 2, 10_000, 0.0025);
    }

    #[test]
    fn the_estimate_for_many_connections_is_scaled_from_fewer() {
        // Two loops, where the exact expectation is cheap at any size. The
        // estimate's error is its 256 dealings' (a standard deviation of
        // about 5% of the excess over the mean), scaled: within 15%.
        for connections in [4 * MOST_DEALT, 16 * MOST_DEALT] {
            let exact = balls_into_bins_max(connections, 2) * 2.0 / connections as f64;
            let estimate = expected_max_over_mean(connections, 2);
            assert!(
                (estimate - exact).abs() <= 0.15 * (exact - 1.0),
                "{connections} over 2: estimated {estimate:.6}, balls into bins {exact:.6}"
            );
        }
    }
}
