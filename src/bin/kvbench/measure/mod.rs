//! Measuring the server beside the load: its per-thread counters (`stats
//! threads`), its CPU time, and keeping client and server on separate CPUs;
//! the machine's own noise meanwhile, and how sure a measured figure is;
//! and one timed reading of both stats for `kvbench top`; where requests'
//! time goes inside the server (`stats latency`).

pub mod anatomy;
pub mod confidence;
pub mod cpus;
pub mod hiccups;
pub mod machine;
pub mod noise;
pub mod server_cpu;
pub mod snapshot;
pub mod stats;
pub mod threads;
