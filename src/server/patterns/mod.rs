//! The four threading patterns, side by side. Each file holds only what
//! makes its pattern different; connections, parsing, execution and
//! statistics are shared.

pub mod basic;
pub mod multi_reader;
pub mod work_stealing;
pub mod worker_pool;
