//! How kvbench reaches a server: TCP, TLS (rustls) and memcached's ASCII
//! authentication.
//!
//! - [`endpoint`]: a server and how to reach it; every connection opens here.
//! - [`stream`]: the connection at the socket boundary, plaintext or TLS.
//! - [`tls`]: the client's TLS configuration: trust, resumption.
//! - [`auth`]: credentials and the authentication exchange.

pub mod auth;
pub mod endpoint;
pub mod stream;
pub mod tls;

pub use endpoint::Endpoint;
