//! The queueing model of kvserve's threading patterns, drawn
//! beside measured p99-against-load curves: where a pattern's curve departs
//! from its model is what the pattern itself costs.
//!
//! - [`discipline`]: the patterns as queueing disciplines, and the serving.
//! - [`dealing`]: connections dealt to loops at random (reuseport), and
//!   how uneven that leaves them.
//! - [`sim`]: simulated runs, and the highest load meeting an SLO.
//! - [`closed_form`]: the textbook results the simulator is checked against.
//! - [`empirical`]: measured distributions (the server's stage times) for
//!   the overhead-aware model, which serves the same arrivals with what
//!   this machine measurably adds: the gap between the two models is the
//!   price of a pattern's mechanics, the gap to the measurement what is
//!   still unexplained.
//!
//! The arrivals are the client's own ([`crate::load::arrivals`]).

#[cfg(test)]
mod closed_form;
pub mod dealing;
pub mod discipline;
pub mod empirical;
pub mod sim;

pub use discipline::Discipline;
pub use sim::{max_load_at_slo, simulate, Overheads, Scenario};
