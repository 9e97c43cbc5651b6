//! The zero-overhead queueing model of kvserve's threading patterns, drawn
//! beside measured p99-against-load curves: where a pattern's curve departs
//! from its model is what the pattern itself costs.
//!
//! - [`discipline`]: the patterns as queueing disciplines, and the serving.
//! - [`sim`]: simulated runs, and the highest load meeting an SLO.
//! - [`closed_form`]: the textbook results the simulator is checked against.
//!
//! The arrivals are the client's own ([`crate::load::arrivals`]).

#[cfg(test)]
mod closed_form;
pub mod discipline;
pub mod sim;

pub use discipline::Discipline;
pub use sim::{max_load_at_slo, simulate, Scenario};
