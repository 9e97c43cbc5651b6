//! A measured distribution the model draws from: a quantile function
//! through the points a server reported (`stats latency`), linear between
//! them. A stage's p1..p99.9 and maximum are enough for the draws to have
//! its median, its tail and its mean within a few percent.

/// A quantile function: (share, nanoseconds), shares ascending from 0 to 1.
#[derive(Clone, Debug, PartialEq)]
pub struct Empirical {
    points: Vec<(f64, f64)>,
}

impl Empirical {
    /// From (share, µs) quantiles, e.g. a stage's p1..p99.9 and maximum
    /// (share 1); below the first, the first value. `None` without points.
    pub fn from_quantiles_us(quantiles: &[(f64, f64)]) -> Option<Empirical> {
        let mut points: Vec<(f64, f64)> = quantiles
            .iter()
            .filter(|(q, v)| (0.0..=1.0).contains(q) && v.is_finite())
            .map(|&(q, us)| (q, us.max(0.0) * 1e3))
            .collect();
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        let &(_, first) = points.first()?;
        points.insert(0, (0.0, first));
        if points.last().is_some_and(|&(q, _)| q < 1.0) {
            let last = points[points.len() - 1].1;
            points.push((1.0, last));
        }
        // A quantile function does not go down.
        for i in 1..points.len() {
            points[i].1 = points[i].1.max(points[i - 1].1);
        }
        Some(Empirical { points })
    }

    /// Always `ns`.
    pub fn constant(ns: f64) -> Empirical {
        Empirical {
            points: vec![(0.0, ns), (1.0, ns)],
        }
    }

    /// The same values for a share `share` (0-1) of the draws, zero for
    /// the rest: a cost only some requests pay.
    pub fn occurring(self, share: f64) -> Empirical {
        let share = share.clamp(0.0, 1.0);
        let zero = 1.0 - share;
        let mut points = vec![(0.0, 0.0), (zero, 0.0)];
        points.extend(self.points.iter().map(|&(q, v)| (zero + share * q, v)));
        Empirical { points }
    }

    /// The value at share `u` of the distribution (a uniform `u` draws one).
    pub fn at(&self, u: f64) -> f64 {
        let u = u.clamp(0.0, 1.0);
        for w in self.points.windows(2) {
            let ((qa, va), (qb, vb)) = (w[0], w[1]);
            if u <= qb {
                return va + (vb - va) * (u - qa) / (qb - qa).max(f64::EPSILON);
            }
        }
        self.points.last().map_or(0.0, |p| p.1)
    }

    /// The mean of the draws, nanoseconds.
    #[cfg(test)]
    pub fn mean(&self) -> f64 {
        self.points
            .windows(2)
            .map(|w| (w[1].0 - w[0].0) * (w[0].1 + w[1].1) / 2.0)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_follow_the_quantiles_and_never_go_down() {
        let e =
            Empirical::from_quantiles_us(&[(0.5, 10.0), (0.99, 50.0), (1.0, 100.0), (0.9, 40.0)])
                .unwrap();
        assert_eq!(e.at(0.0), 10_000.0);
        assert_eq!(e.at(0.5), 10_000.0);
        assert!((e.at(0.7) - 25_000.0).abs() < 1e-6);
        assert_eq!(e.at(0.99), 50_000.0);
        assert_eq!(e.at(1.0), 100_000.0);
        let mut last = 0.0;
        for k in 0..=1000 {
            let v = e.at(k as f64 / 1000.0);
            assert!(v >= last);
            last = v;
        }
        // 0.5 * 10 + 0.4 * 25 + 0.09 * 45 + 0.01 * 75 µs.
        assert!((e.mean() - 19_800.0).abs() < 1e-6, "{}", e.mean());
        assert_eq!(Empirical::constant(7.0).at(0.3), 7.0);
        let sometimes = e.clone().occurring(0.25);
        assert_eq!(sometimes.at(0.7), 0.0);
        assert_eq!(sometimes.at(0.875), 10_000.0);
        assert_eq!(sometimes.at(1.0), 100_000.0);
        assert!((sometimes.mean() - 0.25 * e.mean()).abs() < 1e-6);
        assert!(Empirical::from_quantiles_us(&[]).is_none());
    }

    #[test]
    fn an_exponential_read_through_fourteen_quantiles_keeps_its_mean_and_tail() {
        let shares = [
            0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 0.999,
        ];
        let mean_us = 100.0;
        let mut q: Vec<(f64, f64)> = shares
            .iter()
            .map(|&p: &f64| (p, -mean_us * (1.0 - p).ln()))
            .collect();
        q.push((1.0, mean_us * 12.0));
        let e = Empirical::from_quantiles_us(&q).unwrap();
        assert!(
            (e.mean() / 1e3 - mean_us).abs() < 0.04 * mean_us,
            "{}",
            e.mean()
        );
        assert!((e.at(0.99) / 1e3 - 460.5).abs() < 1.0);
    }
}
