//! Load generation: workloads, the client connections, and the driver that
//! runs them closed loop or open loop.
//!
//! - [`workload`]: the named workloads and the plan of a run.
//! - [`arrivals`]: Poisson arrivals, seeded per connection.
//! - [`client`]: one connection: encoding requests, non-blocking I/O.
//! - [`churn`]: a new connection per request.
//! - [`reply`]: framing replies and matching them to requests.
//! - [`warmup`]: every key set once before the run.
//! - [`options`]: how a run drives the server.
//! - [`driver`]: the measured run, over [`client_thread`]s.
//! - [`stats`]: what a group of connections did, and a run.
//! - [`progress`]: the progress bar of a run.
//! - [`timer`]: precise wake-ups.

pub mod arrivals;
pub mod churn;
pub mod client;
pub mod client_thread;
pub mod driver;
pub mod options;
pub mod progress;
pub mod reply;
pub mod stats;
pub mod timer;
pub mod warmup;
pub mod workload;
