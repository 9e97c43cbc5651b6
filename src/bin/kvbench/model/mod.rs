#![allow(dead_code)] // wired by kvbench sweep
//! The zero-overhead queueing model of kvserve's threading patterns, drawn
//! beside measured p99-against-load curves: where a pattern's curve departs
//! from its model is what the pattern itself costs.
//!
//! - [`arrivals`]: the open-loop Poisson arrivals, shared with the client.
//! - [`discipline`]: the patterns as queueing disciplines, and the serving.
//! - [`sim`]: simulated runs, and the highest load meeting an SLO.
//! - [`closed_form`]: the textbook results the simulator is checked against.
//!
//! The sweep reaches them by path (`model::sim::simulate`): re-exports here
//! would be unused imports until it does.

pub mod arrivals;
pub mod closed_form;
pub mod discipline;
pub mod sim;
