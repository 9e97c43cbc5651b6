//! Measuring the server beside the load: its per-thread counters (`stats
//! threads`), its CPU time, and keeping client and server on separate CPUs.

pub mod cpus;
pub mod server_cpu;
pub mod stats;
pub mod threads;
