//! kvserve: a memcached-compatible server built to compare threading
//! patterns under real load.
//!
//! A tour of the modules, from the bytes on the wire inwards:
//! - [`protocol`]: parses text-protocol requests and encodes replies; no I/O.
//! - [`store`]: the sharded in-memory store with memcached's semantics
//!   (cas uniques, expiry, LRU eviction under a memory limit).
//! - [`engine`]: executes a parsed request against the store and keeps the
//!   per-thread statistics; every pattern calls it the same way.
//! - [`server`]: sockets, connections and the three threading patterns,
//!   side by side in `server/patterns/`.

pub mod engine;
pub mod protocol;
pub mod server;
pub mod store;
