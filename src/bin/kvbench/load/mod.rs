//! Load generation: workloads, the client connections, and the driver that
//! runs them closed loop or open loop.

pub mod arrivals;
pub mod client;
pub mod driver;
pub mod workload;
