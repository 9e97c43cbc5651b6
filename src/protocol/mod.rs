//! The memcached text protocol, with no I/O: requests are parsed out of a
//! byte buffer and replies are appended to one. Both halves of it: the
//! classic commands (`parse.rs`) and the meta commands (`meta.rs`).
//!
//! The parser is incremental: it looks at whatever bytes have arrived and
//! answers "here is one complete request and how many bytes it used" or "need
//! more bytes". A request names its keys and data by [`Span`]s into the
//! buffer it was parsed from, so parsing allocates nothing and a parsed
//! request can travel to another thread together with its buffer (the
//! worker-pool pattern does exactly that).

mod base64;
mod meta;
mod number;
mod parse;
pub mod reply;
mod request;

pub use base64::encode as base64_encode;
pub use meta::decode_key;
pub use parse::{item_size, parse, Limits, Parsed};
pub use request::{
    ArithOp, ErrorReply, MetaCommand, MetaFlags, MetaRequest, Request, Span, StoreMode,
};

/// memcached's `KEY_MAX_LENGTH`: longer keys are refused.
pub const KEY_MAX_LENGTH: usize = 250;
