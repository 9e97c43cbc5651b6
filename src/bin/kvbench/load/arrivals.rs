//! The open-loop arrival process: Poisson arrivals on each connection, the
//! arrivals the queueing models assume and the field's load generators
//! (mutilate, lancet) send.
//!
//! The model and the real client draw their arrivals from the same seeds, so
//! a measured curve and the model beside it see the same arrival times.
//! Connections that each receive Poisson arrivals at rate λ/n together
//! receive Poisson arrivals at rate λ, whatever n is.

use std::time::Duration;

use kvserve::engine::work::Rng;

/// Poisson arrivals on one connection: exponential gaps with mean 1/rate.
pub struct PoissonArrivals {
    rate_per_second: f64,
    rng: Rng,
}

impl PoissonArrivals {
    /// Arrivals at `rate_per_connection` requests per second, drawn from
    /// `seed` (see [`connection_seed`]).
    pub fn new(rate_per_connection: f64, seed: u64) -> Self {
        PoissonArrivals {
            rate_per_second: rate_per_connection,
            rng: Rng::new(seed),
        }
    }

    /// The time from the previous arrival to the next one; the first arrival
    /// is at the start plus the first gap. At a rate of 0 it is
    /// [`Duration::MAX`]: no arrival ever comes.
    pub fn next_gap(&mut self) -> Duration {
        // Inverse transform; the uniform is in (0, 1], so ln is finite.
        let seconds = -self.rng.unit().ln() / self.rate_per_second;
        Duration::try_from_secs_f64(seconds).unwrap_or(Duration::MAX)
    }
}

/// The seed of connection `c`'s arrivals in a run seeded `run_seed`.
pub fn connection_seed(run_seed: u64, connection: usize) -> u64 {
    mix(run_seed, connection as u64)
}

/// A well-spread 64-bit value from two: seeds that differ in one bit give
/// unrelated streams.
pub fn mix(a: u64, b: u64) -> u64 {
    let mut rng = Rng::new(a ^ b.wrapping_mul(0xd6e8_feb8_6659_fd93));
    rng.next_u64()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The mean and coefficient of variation of a run of gaps, in seconds.
    fn mean_and_cv(gaps: &[f64]) -> (f64, f64) {
        let n = gaps.len() as f64;
        let mean = gaps.iter().sum::<f64>() / n;
        let var = gaps.iter().map(|g| (g - mean).powi(2)).sum::<f64>() / n;
        (mean, var.sqrt() / mean)
    }

    #[test]
    fn one_connection_has_exponential_gaps() {
        let mut arrivals = PoissonArrivals::new(1_000.0, connection_seed(9, 0));
        let gaps: Vec<f64> = (0..200_000)
            .map(|_| arrivals.next_gap().as_secs_f64())
            .collect();
        let (mean, cv) = mean_and_cv(&gaps);
        assert!((mean / 1e-3 - 1.0).abs() < 0.01, "mean gap {mean}");
        assert!((cv - 1.0).abs() < 0.01, "cv {cv}");
    }

    #[test]
    fn merged_connections_are_poisson_at_the_total_rate() {
        // 100 connections at 100/s each: the merged stream is Poisson at
        // 10,000/s, so its gaps have mean 100 µs and a CV of 1.
        let (connections, total_rate, span) = (100, 10_000.0, Duration::from_secs(20));
        let mut times = Vec::new();
        for c in 0..connections {
            let mut arrivals =
                PoissonArrivals::new(total_rate / connections as f64, connection_seed(3, c));
            let mut t = arrivals.next_gap();
            while t < span {
                times.push(t.as_secs_f64());
                t += arrivals.next_gap();
            }
        }
        times.sort_by(f64::total_cmp);
        let gaps: Vec<f64> = times.windows(2).map(|w| w[1] - w[0]).collect();
        let (mean, cv) = mean_and_cv(&gaps);
        assert!((mean / 1e-4 - 1.0).abs() < 0.01, "mean gap {mean}");
        assert!((cv - 1.0).abs() < 0.01, "cv {cv}");
    }

    #[test]
    fn connections_draw_different_streams() {
        let first = |c| PoissonArrivals::new(1.0, connection_seed(1, c)).next_gap();
        assert_ne!(first(0), first(1));
        assert_ne!(connection_seed(1, 0), connection_seed(2, 0));
        assert_eq!(first(5), first(5));
    }

    #[test]
    fn no_arrivals_at_rate_zero() {
        assert_eq!(PoissonArrivals::new(0.0, 1).next_gap(), Duration::MAX);
    }
}
