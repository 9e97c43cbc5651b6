//! Calling a comparison: is one server ahead of another, level with it,
//! or behind? Only a ratio whose whole range lies on one side of 1.0 is
//! called a win or a loss; a range that straddles 1.0 is level, whatever
//! its middle says. A single measurement has no range, so it calls
//! nothing.

use std::fmt;

use serde::Serialize;

use crate::measure::confidence::Spread;

/// What a comparison of A with B says of A.
#[derive(Serialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Call {
    Ahead,
    Level,
    Behind,
    /// Too little was measured (one round), or too much was disturbed.
    CannotTell,
}

impl fmt::Display for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Call::Ahead => "ahead",
            Call::Level => "level",
            Call::Behind => "behind",
            Call::CannotTell => "cannot tell",
        })
    }
}

/// A ratio of A to B, with the range it can take.
#[derive(Serialize, Clone, Copy, Debug, PartialEq)]
pub struct Ratio {
    pub estimate: f64,
    pub low: f64,
    pub high: f64,
}

impl Ratio {
    /// The ratios of several rounds, each A over B in the same round: the
    /// median, within the lowest and highest. `None` for no rounds.
    pub fn of_rounds(ratios: &[f64]) -> Option<Ratio> {
        let s = Spread::of(ratios)?;
        Some(Ratio {
            estimate: s.median,
            low: s.min,
            high: s.max,
        })
    }

    /// What the range says, given `measurements` behind it: one
    /// measurement calls nothing.
    pub fn call(&self, measurements: usize) -> Call {
        if measurements < 2 || !self.low.is_finite() {
            Call::CannotTell
        } else if self.low > 1.0 {
            Call::Ahead
        } else if self.high < 1.0 {
            Call::Behind
        } else {
            Call::Level
        }
    }

    /// `1.32x (1.20-1.41)`.
    pub fn describe(&self) -> String {
        format!("{:.2}x ({:.2}-{:.2})", self.estimate, self.low, self.high)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_range_clear_of_one_is_called() {
        let r = Ratio::of_rounds(&[1.10, 1.30, 1.20]).unwrap();
        assert_eq!((r.estimate, r.low, r.high), (1.20, 1.10, 1.30));
        assert_eq!(r.call(3), Call::Ahead);
        assert_eq!(r.describe(), "1.20x (1.10-1.30)");
        assert_eq!(
            Ratio::of_rounds(&[0.8, 0.9, 0.85]).unwrap().call(3),
            Call::Behind
        );
        // A median of 1.1 with one round below 1.0: level.
        assert_eq!(
            Ratio::of_rounds(&[0.98, 1.10, 1.20]).unwrap().call(3),
            Call::Level
        );
        // One round: no range, no call.
        assert_eq!(Ratio::of_rounds(&[1.5]).unwrap().call(1), Call::CannotTell);
        assert_eq!(Ratio::of_rounds(&[]), None);
    }
}
