//! When an open-loop client sends: evenly spaced requests, or Poisson
//! arrivals (exponential gaps), the arrivals the queueing models assume and
//! the field's load generators (mutilate, lancet) send.
//!
//! A run's arrivals are a function of its seed alone, so the queueing model
//! in [`crate::model`] can be fed exactly the arrivals the client sends.

use std::time::Duration;

use kvserve::engine::work::Rng;

/// Poisson arrivals on one connection: exponential gaps with mean 1/rate.
/// The union of n connections each at rate λ/n is Poisson at rate λ.
#[derive(Clone, Debug)]
pub struct PoissonArrivals {
    rng: Rng,
    mean_gap_secs: f64,
}

impl PoissonArrivals {
    pub fn new(rate_per_connection: f64, seed: u64) -> PoissonArrivals {
        PoissonArrivals {
            rng: Rng::new(seed),
            mean_gap_secs: 1.0 / rate_per_connection,
        }
    }

    /// The mean gap, 1/rate.
    pub fn mean_gap(&self) -> Duration {
        Duration::from_secs_f64(self.mean_gap_secs)
    }

    /// The time from one arrival to the next (the first arrival comes one
    /// gap after the start).
    pub fn next_gap(&mut self) -> Duration {
        Duration::from_secs_f64(-self.rng.unit().ln() * self.mean_gap_secs)
    }
}

/// The seed of connection `c`'s arrivals in a run seeded `run_seed`.
pub fn connection_seed(run_seed: u64, connection: usize) -> u64 {
    run_seed
        .wrapping_mul(0x2545_f491_4f6c_dd1d)
        .wrapping_add((connection as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_are_exponential_with_the_asked_mean() {
        let mut arrivals = PoissonArrivals::new(1000.0, connection_seed(1, 3));
        let gaps: Vec<f64> = (0..100_000)
            .map(|_| arrivals.next_gap().as_secs_f64())
            .collect();
        let mean = gaps.iter().sum::<f64>() / gaps.len() as f64;
        let var = gaps.iter().map(|g| (g - mean).powi(2)).sum::<f64>() / gaps.len() as f64;
        assert!((mean / 1e-3 - 1.0).abs() < 0.02, "mean {mean}");
        assert!((var.sqrt() / mean - 1.0).abs() < 0.02, "cv {}", var.sqrt() / mean);
    }

    #[test]
    fn connections_draw_different_but_repeatable_sequences() {
        let first = |c| PoissonArrivals::new(10.0, connection_seed(7, c)).next_gap();
        assert_eq!(first(0), first(0));
        assert_ne!(first(0), first(1));
        assert_ne!(
            PoissonArrivals::new(10.0, connection_seed(8, 0)).next_gap(),
            first(0)
        );
    }
}
