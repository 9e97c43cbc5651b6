//! The three threading patterns, side by side. Each file holds only what
//! makes its pattern different; connections, parsing, execution and
//! statistics are shared.

pub mod basic;
pub mod multi_reader;
pub mod worker_pool;
