//! How a request is framed on the wire, for the classic and the meta
//! commands alike: a command line split into words, then, for a storage
//! command, a data block of the length the line announced; and the bounds
//! the parser holds both to ([`Limits`]). `parse.rs` reads the classic
//! command lines and `meta.rs` the meta ones, each into a [`Command`].

use super::request::{ErrorReply, MetaCommand, MetaFlags, MetaRequest, Request, Span, StoreMode};
use super::KEY_MAX_LENGTH;

/// memcached's `MAX_TOKENS`: a command line is split into at most this many words.
const MAX_TOKENS: usize = 24;

/// An item's size as memcached checks it against `-I`: its header (48
/// bytes), the key and its NUL, the cas unique, and the data with its `\r\n`.
pub fn item_size(key_len: usize, data_len: usize) -> usize {
    48 + key_len + 1 + 8 + data_len + 2
}

/// The bounds the parser enforces, so that no input can make a connection
/// buffer grow without end.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Largest item (key, data and header) a storage command may carry (`-I`).
    pub max_item_size: usize,
    /// Longest command line without a newline before the connection is closed
    /// (memcached: 2048).
    pub max_line: usize,
    /// Longest `get`/`gets` line; memcached lets multi-gets grow past
    /// `max_line`, kvserve bounds them too.
    pub max_get_line: usize,
}

impl Limits {
    /// memcached's limits for a given item size limit.
    pub fn new(max_item_size: usize) -> Limits {
        Limits {
            max_item_size,
            max_line: 2048,
            max_get_line: max_item_size.max(2048),
        }
    }
}

/// A command line split on spaces, as memcached's `tokenize_command`.
pub(super) struct Line<'a> {
    pub(super) text: &'a [u8],
    pub(super) tokens: [Span; MAX_TOKENS],
    pub(super) count: usize,
}

impl<'a> Line<'a> {
    pub(super) fn split(text: &'a [u8]) -> Line<'a> {
        let mut line = Line {
            text,
            tokens: [Span::new(0, 0); MAX_TOKENS],
            count: 0,
        };
        let mut start = None;
        for (i, &b) in text.iter().enumerate() {
            match (b == b' ', start) {
                (false, None) => start = Some(i),
                (true, Some(s)) => {
                    if line.count == MAX_TOKENS {
                        return line;
                    }
                    line.tokens[line.count] = Span::new(s, i - s);
                    line.count += 1;
                    start = None;
                }
                _ => {}
            }
        }
        if let Some(s) = start {
            if line.count < MAX_TOKENS {
                line.tokens[line.count] = Span::new(s, text.len() - s);
                line.count += 1;
            }
        }
        line
    }

    pub(super) fn token(&self, i: usize) -> &'a [u8] {
        self.tokens[i].of(self.text)
    }

    /// Everything from token `i` to the end of the line.
    pub(super) fn rest_from(&self, i: usize) -> Span {
        let start = if i < self.count {
            self.tokens[i].start()
        } else {
            self.text.len()
        };
        Span::new(start, self.text.len() - start)
    }
}

/// memcached refuses keys over 250 bytes; kvserve also refuses control
/// characters, which no text-protocol client can mean as part of a key.
pub(super) fn valid_key(key: &[u8]) -> bool {
    !key.is_empty() && key.len() <= KEY_MAX_LENGTH && key.iter().all(|&b| b > b' ' && b != 0x7f)
}

/// What a command line turned out to be.
pub(super) enum Command {
    Complete(Request),
    /// A storage command or an `ms`, whose data block follows the line.
    Data(DataLine),
    /// A refused request whose announced data block (`data_len` bytes
    /// and `\r\n`) follows the line and is swallowed unread, as memcached
    /// does for an `ms` with bad flags.
    Swallow {
        request: Request,
        data_len: usize,
    },
    Close,
}

/// The line of a command whose data block follows it.
pub(super) struct DataLine {
    /// The key's length (decoded, for a base64 `ms` key): what counts
    /// against the item size limit.
    pub(super) key_len: usize,
    pub(super) data_len: usize,
    pub(super) command: DataCommand,
}

/// Which command a [`DataLine`] is, with what its line said.
#[derive(Clone, Copy)]
pub(super) enum DataCommand {
    /// `set`, `add`, `replace`, `append`, `prepend`, `cas`.
    Store {
        mode: StoreMode,
        key: Span,
        flags: u32,
        exptime: i64,
        noreply: bool,
    },
    /// `ms`.
    MetaSet {
        key: Span,
        tokens: Span,
        flags: MetaFlags,
    },
}

/// A data block, all of it there.
enum Block {
    /// Ending in `\r\n`: the data without it.
    Complete(Span),
    /// Over the item size limit: swallowed as it arrives, never buffered.
    TooLarge,
    /// Not ending in `\r\n`.
    BadChunk,
}

impl DataLine {
    /// Finds the data block in `buf`, after this line of `line_len` bytes,
    /// and makes the request: `None` while the block has not all arrived.
    /// The request is `line_len + data_len + 2` bytes long in every case.
    pub(super) fn request(&self, buf: &[u8], line_len: usize, limits: &Limits) -> Option<Request> {
        let len = line_len + self.data_len + 2;
        let block = if item_size(self.key_len, self.data_len) > limits.max_item_size {
            Block::TooLarge
        } else if buf.len() < len {
            return None;
        } else if &buf[len - 2..len] == b"\r\n" {
            Block::Complete(Span::new(line_len, self.data_len))
        } else {
            Block::BadChunk
        };
        Some(self.command.request(block))
    }
}

impl DataCommand {
    /// The request this command makes with its data block.
    fn request(&self, block: Block) -> Request {
        match (*self, block) {
            (
                DataCommand::Store {
                    mode,
                    key,
                    flags,
                    exptime,
                    noreply,
                },
                Block::Complete(data),
            ) => Request::Store {
                mode,
                key,
                flags,
                exptime,
                data,
                noreply,
            },
            (
                DataCommand::Store {
                    mode, key, noreply, ..
                },
                Block::TooLarge,
            ) => Request::TooLarge { mode, key, noreply },
            (DataCommand::Store { noreply, .. }, Block::BadChunk) => Request::Error {
                reply: ErrorReply::BadDataChunk,
                noreply,
            },
            (DataCommand::MetaSet { key, tokens, flags }, Block::Complete(data)) => {
                Request::Meta(MetaRequest {
                    command: MetaCommand::Set,
                    key,
                    tokens,
                    data,
                    flags,
                })
            }
            (DataCommand::MetaSet { key, tokens, flags }, Block::TooLarge) => {
                Request::Meta(MetaRequest {
                    command: MetaCommand::SetTooLarge,
                    key,
                    tokens,
                    data: Span::new(0, 0),
                    flags,
                })
            }
            // The one error memcached sends even for a quiet `ms`.
            (DataCommand::MetaSet { .. }, Block::BadChunk) => Request::Error {
                reply: ErrorReply::BadDataChunk,
                noreply: false,
            },
        }
    }
}
