//! The incremental request parser.

use super::meta::{self, MetaSetHeader};
use super::number::{parse_i32, parse_u32, parse_u64};
use super::request::{ArithOp, ErrorReply, Request, Span, StoreMode};
use super::KEY_MAX_LENGTH;
use crate::store::counter::parse as parse_strtoull;

/// The first byte of every binary-protocol request. kvserve speaks only
/// the text protocol, and a binary client cannot read a text error, so such
/// a connection is closed at once.
const BINARY_MAGIC: u8 = 0x80;

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

/// What the parser found at the start of a buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parsed {
    /// One complete request that spans `len` bytes from the start of the
    /// buffer. `len` may exceed the buffer for an oversized value, whose data
    /// the connection swallows as it arrives.
    Request { request: Request, len: usize },
    /// Not a whole request yet: read more bytes and parse again.
    Incomplete,
    /// Input that cannot be a request (a line over the limit, HTTP, a
    /// binary-protocol packet): close the connection, as memcached does for
    /// the first two.
    Close,
}

/// Parses the request at the start of `buf`. Spans in the result are
/// relative to `buf`.
pub fn parse(buf: &[u8], limits: &Limits) -> Parsed {
    if buf.first() == Some(&BINARY_MAGIC) {
        return Parsed::Close;
    }
    let Some(newline) = memchr::memchr(b'\n', buf) else {
        return if buf.len() <= limits.max_line
            || (is_multiget(buf) && buf.len() <= limits.max_get_line)
        {
            Parsed::Incomplete
        } else {
            Parsed::Close
        };
    };
    let line_end = if newline > 0 && buf[newline - 1] == b'\r' {
        newline - 1
    } else {
        newline
    };
    let line = Line::split(&buf[..line_end]);
    let line_len = newline + 1;
    let (request, len) = match line.command() {
        Command::Complete(request) => (request, line_len),
        Command::Storage(header) => return parse_storage(buf, line_len, header, limits),
        Command::MetaSet(header) => return meta::parse_set(buf, line_len, header, limits),
        Command::Swallow { request, data_len } => (request, line_len + data_len + 2),
        Command::Close => return Parsed::Close,
    };
    Parsed::Request { request, len }
}

/// Whether a line with no newline yet is, or may still turn out to be, a
/// long multi-get, which gets a larger bound. memcached checks the same two
/// prefixes after at most 100 leading spaces.
fn is_multiget(buf: &[u8]) -> bool {
    let spaces = buf.iter().take(101).take_while(|&&b| b == b' ').count();
    let first_word = &buf[spaces..];
    spaces <= 100
        && [b"get ".as_slice(), b"gets "]
            .iter()
            .any(|prefix| first_word.starts_with(prefix) || prefix.starts_with(first_word))
}

/// A command line split on spaces, as memcached's `tokenize_command`.
pub(super) struct Line<'a> {
    text: &'a [u8],
    pub(super) tokens: [Span; MAX_TOKENS],
    pub(super) count: usize,
}

/// What a command line turned out to be.
pub(super) enum Command {
    Complete(Request),
    /// A storage command whose data block follows the line.
    Storage(StorageHeader),
    /// An `ms` whose data block follows the line.
    MetaSet(MetaSetHeader),
    /// A refused request whose announced data block (`data_len` bytes
    /// and `\r\n`) follows the line and is swallowed unread, as memcached
    /// does for an `ms` with bad flags.
    Swallow {
        request: Request,
        data_len: usize,
    },
    Close,
}

/// The parsed line of a storage command.
pub(super) struct StorageHeader {
    mode: StoreMode,
    key: Span,
    flags: u32,
    exptime: i64,
    data_len: usize,
    noreply: bool,
}

impl<'a> Line<'a> {
    fn split(text: &'a [u8]) -> Line<'a> {
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

    /// `noreply` as the last word, as memcached's `set_noreply_maybe`.
    fn noreply(&self) -> bool {
        self.count > 1 && self.token(self.count - 1) == b"noreply"
    }

    fn error(&self, reply: ErrorReply) -> Command {
        Command::Complete(Request::Error {
            reply,
            noreply: self.noreply(),
        })
    }

    /// The key in token `i`, if memcached would accept it.
    fn key(&self, i: usize) -> Option<Span> {
        valid_key(self.token(i)).then_some(self.tokens[i])
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

    fn command(&self) -> Command {
        use Request as R;
        let unknown = Command::Complete(R::Error {
            reply: ErrorReply::UnknownCommand,
            noreply: false,
        });
        if self.count == 0 || self.token(0).len() < 2 {
            return unknown;
        }
        if let Some(command) = self.meta() {
            return command;
        }
        let n = self.count;
        let accepts = |counts: &[usize]| counts.contains(&n);
        match self.token(0) {
            b"get" | b"bget" | b"gets" if n >= 2 => self.get(1, None),
            b"gat" | b"gats" if n >= 2 => match parse_i32(self.token(1)) {
                Some(exptime) => self.get(2, Some(exptime)),
                None => self.error(ErrorReply::InvalidExptime),
            },
            b"set" if accepts(&[5, 6]) => self.storage(StoreMode::Set),
            b"add" if accepts(&[5, 6]) => self.storage(StoreMode::Add),
            b"replace" if accepts(&[5, 6]) => self.storage(StoreMode::Replace),
            b"append" if accepts(&[5, 6]) => self.storage(StoreMode::Append),
            b"prepend" if accepts(&[5, 6]) => self.storage(StoreMode::Prepend),
            b"cas" if accepts(&[6, 7]) => match parse_u64(self.token(5)) {
                Some(unique) => self.storage(StoreMode::Cas(unique)),
                None => self.error(ErrorReply::BadCommandLineFormat),
            },
            b"delete" if (2..=4).contains(&n) => self.delete(),
            b"incr" if accepts(&[3, 4]) => self.arithmetic(ArithOp::Incr),
            b"decr" if accepts(&[3, 4]) => self.arithmetic(ArithOp::Decr),
            b"touch" if accepts(&[3, 4]) => self.touch(),
            b"flush_all" if (1..=3).contains(&n) => self.flush_all(),
            b"version" => Command::Complete(R::Version),
            b"quit" => Command::Complete(R::Quit),
            b"verbosity" if accepts(&[2, 3]) => match parse_u32(self.token(1)) {
                Some(level) => Command::Complete(R::Verbosity {
                    level,
                    noreply: self.noreply(),
                }),
                None => self.error(ErrorReply::BadCommandLineFormat),
            },
            b"stats" => Command::Complete(R::Stats {
                args: self.rest_from(1),
            }),
            // memcached's safe_strtoul: strtoul's 64 bits kept to 32, so that
            // 99999999999 is 1215752191 (refused as over 1000000000 MB).
            b"cache_memlimit" if accepts(&[2, 3]) => match parse_strtoull(self.token(1)) {
                Some(megabytes) => Command::Complete(R::CacheMemlimit {
                    megabytes: megabytes as u32,
                    noreply: self.noreply(),
                }),
                None => self.error(ErrorReply::UnknownCommand),
            },
            b"shutdown" => self.error(ErrorReply::ShutdownNotEnabled),
            _ if self.token(n - 1).starts_with(b"HTTP/") => Command::Close,
            _ => unknown,
        }
    }

    /// `get`/`gets`/`gat`/`gats`: the keys are everything from token `first`
    /// to the end of the line, however many there are.
    fn get(&self, first: usize, touch: Option<i64>) -> Command {
        let with_cas = self.token(0).ends_with(b"s");
        let keys = self.rest_from(first);
        if !keys.words(self.text).all(valid_key) {
            return self.error(ErrorReply::BadCommandLineFormat);
        }
        Command::Complete(Request::Get {
            keys,
            with_cas,
            touch,
        })
    }

    fn storage(&self, mode: StoreMode) -> Command {
        let Some(key) = self.key(1) else {
            return self.error(ErrorReply::BadCommandLineFormat);
        };
        let (Some(flags), Some(exptime), Some(data_len)) = (
            parse_u32(self.token(2)),
            parse_i32(self.token(3)),
            parse_i32(self.token(4)),
        ) else {
            return self.error(ErrorReply::BadCommandLineFormat);
        };
        let Ok(data_len) = usize::try_from(data_len) else {
            return self.error(ErrorReply::BadCommandLineFormat);
        };
        Command::Storage(StorageHeader {
            mode,
            key,
            flags,
            exptime,
            data_len,
            noreply: self.noreply(),
        })
    }

    fn delete(&self) -> Command {
        let noreply = self.noreply();
        if self.count > 2 {
            let hold_is_zero = self.token(2) == b"0";
            let valid = (self.count == 3 && (hold_is_zero || noreply))
                || (self.count == 4 && hold_is_zero && noreply);
            if !valid {
                return self.error(ErrorReply::BadDeleteFormat);
            }
        }
        match self.key(1) {
            Some(key) => Command::Complete(Request::Delete { key, noreply }),
            None => self.error(ErrorReply::BadCommandLineFormat),
        }
    }

    fn arithmetic(&self, op: ArithOp) -> Command {
        let Some(key) = self.key(1) else {
            return self.error(ErrorReply::BadCommandLineFormat);
        };
        match parse_u64(self.token(2)) {
            Some(delta) => Command::Complete(Request::Arithmetic {
                op,
                key,
                delta,
                noreply: self.noreply(),
            }),
            None => self.error(ErrorReply::InvalidDelta),
        }
    }

    fn touch(&self) -> Command {
        let Some(key) = self.key(1) else {
            return self.error(ErrorReply::BadCommandLineFormat);
        };
        match parse_i32(self.token(2)) {
            Some(exptime) => Command::Complete(Request::Touch {
                key,
                exptime,
                noreply: self.noreply(),
            }),
            None => self.error(ErrorReply::InvalidExptime),
        }
    }

    fn flush_all(&self) -> Command {
        let noreply = self.noreply();
        let delay = if self.count == if noreply { 2 } else { 1 } {
            0
        } else {
            match parse_i32(self.token(1)) {
                Some(delay) => delay,
                None => return self.error(ErrorReply::InvalidExptime),
            }
        };
        Command::Complete(Request::FlushAll { delay, noreply })
    }
}

/// memcached refuses keys over 250 bytes; kvserve also refuses control
/// characters, which no text-protocol client can mean as part of a key.
pub(super) fn valid_key(key: &[u8]) -> bool {
    !key.is_empty() && key.len() <= KEY_MAX_LENGTH && key.iter().all(|&b| b > b' ' && b != 0x7f)
}

/// The data block that follows a storage command's line.
pub(super) enum DataBlock {
    /// All there, ending in `\r\n`: the data without it.
    Complete(Span),
    Incomplete,
    /// Over the item size limit: swallowed as it arrives, never buffered.
    TooLarge,
    /// All there, but not ending in `\r\n`.
    BadChunk,
}

/// Finds the `data_len` bytes and `\r\n` after a storage line of
/// `line_len` bytes, for an item whose key is `key_len` bytes long. The
/// whole request is `line_len + data_len + 2` bytes in every case.
pub(super) fn data_block(
    buf: &[u8],
    line_len: usize,
    key_len: usize,
    data_len: usize,
    limits: &Limits,
) -> DataBlock {
    let len = line_len + data_len + 2;
    if item_size(key_len, data_len) > limits.max_item_size {
        DataBlock::TooLarge
    } else if buf.len() < len {
        DataBlock::Incomplete
    } else if &buf[len - 2..len] == b"\r\n" {
        DataBlock::Complete(Span::new(line_len, data_len))
    } else {
        DataBlock::BadChunk
    }
}

/// The data block of a storage command: complete, incomplete, oversized
/// (swallowed) or not ending in `\r\n`.
fn parse_storage(buf: &[u8], line_len: usize, header: StorageHeader, limits: &Limits) -> Parsed {
    let StorageHeader {
        mode,
        key,
        flags,
        exptime,
        data_len,
        noreply,
    } = header;
    let request = match data_block(buf, line_len, key.of(buf).len(), data_len, limits) {
        DataBlock::Complete(data) => Request::Store {
            mode,
            key,
            flags,
            exptime,
            data,
            noreply,
        },
        DataBlock::Incomplete => return Parsed::Incomplete,
        DataBlock::TooLarge => Request::TooLarge { mode, key, noreply },
        DataBlock::BadChunk => Request::Error {
            reply: ErrorReply::BadDataChunk,
            noreply,
        },
    };
    Parsed::Request {
        request,
        len: line_len + data_len + 2,
    }
}
