//! Measuring the server beside the load: its per-thread counters (`stats
//! threads`), its CPU time, and keeping client and server on separate CPUs;
//! and one timed reading of both stats for `kvbench top`.

pub mod cpus;
pub mod server_cpu;
pub mod snapshot;
pub mod stats;
pub mod threads;
