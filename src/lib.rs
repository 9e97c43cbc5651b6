//! kvserve: a memcached-compatible server built to compare threading
//! patterns under real load.
//!
//! A tour of the modules, from the bytes on the wire inwards:
//! - [`protocol`]: parses text-protocol requests and encodes replies; no I/O.
//! - [`store`]: the sharded in-memory store with memcached's semantics
//!   (cas uniques, expiry, LRU eviction under a memory limit).
//! - [`engine`]: executes a parsed request against the store and keeps the
//!   per-thread statistics; every pattern calls it the same way.
//! - [`server`]: sockets, connections and the five threading patterns,
//!   side by side in `server/patterns/`.
//! - [`tls`]: memcached's `-Z`: certificates, sessions and TLS counters.
//! - [`auth`]: the users of `-Y`, memcached's ASCII authentication.
//! - [`alloc`]: the memory allocator (jemalloc), its settings and figures.
//!
//! The engine without a socket: parse a request out of a buffer, execute
//! it, read the reply.
//!
//! ```
//! use kvserve::engine::stats::Role;
//! use kvserve::engine::{Engine, Settings};
//! use kvserve::protocol::{parse, Parsed};
//!
//! let settings = Settings {
//!     pattern: "basic",
//!     threads: 1,
//!     port: 0,
//!     listen: "127.0.0.1".into(),
//!     max_conns: 16,
//!     reqs_per_event: 20,
//!     max_pending_output: 1 << 18,
//!     max_item_size: 1 << 20,
//!     idle_timeout: 0,
//!     work: None,
//!     stamp_arrivals: false,
//!     stage_sample: 1,
//! };
//! let engine = Engine::new(settings, 64 << 20);
//! let stats = engine.stats.register(Role::Loop);
//! let input = b"set greeting 0 0 5\r\nhello\r\nget greeting\r\n";
//! let (mut out, mut at) = (Vec::new(), 0);
//! while let Parsed::Request { request, len } = parse(&input[at..], &engine.limits) {
//!     engine.execute(&request, &input[at..], &mut out, &stats, 1_700_000_000);
//!     at += len;
//! }
//! assert_eq!(out, b"STORED\r\nVALUE greeting 0 5\r\nhello\r\nEND\r\n");
//! ```

pub mod alloc;
pub mod auth;
pub mod engine;
pub mod protocol;
pub mod server;
pub mod store;
pub mod tls;
