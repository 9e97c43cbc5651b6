//! The memcached text protocol, with no I/O: requests are parsed out of a
//! byte buffer and replies are appended to one. A request's framing (its
//! command line of words, the data block after a storage line, and the
//! bounds on both) is in `frame.rs`; reading the line is in `parse.rs` for
//! the classic commands and in `meta.rs` for the meta commands; numbers are
//! read in `number.rs`, strictly or as the C library does, as memcached
//! reads each one.
//! Before a connection has authenticated (`-Y`), `auth.rs` reads its
//! bytes instead, as memcached's handshake.
//!
//! The parser is incremental: it looks at whatever bytes have arrived and
//! answers "here is one complete request and how many bytes it used" or "need
//! more bytes". A request names its keys and data by [`Span`]s into the
//! buffer it was parsed from, so parsing allocates nothing and a parsed
//! request can travel to another thread together with its buffer (the
//! worker-pool pattern does exactly that).

mod auth;
mod base64;
mod frame;
mod meta;
mod number;
mod parse;
pub mod reply;
mod request;

pub use auth::{parse_handshake, Handshake};
pub use base64::encode as base64_encode;
pub use frame::{item_size, Limits};
pub use meta::decode_key;
pub(crate) use number::parse_strtoull;
pub use parse::{parse, Parsed};
pub use request::{
    ArithOp, ErrorReply, MetaCommand, MetaFlags, MetaRequest, Request, Span, StoreMode,
};

/// memcached's `KEY_MAX_LENGTH`: longer keys are refused.
pub const KEY_MAX_LENGTH: usize = 250;
