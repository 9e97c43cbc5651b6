//! The incremental request parser: finds the command line, reads it (the
//! classic commands here, the meta ones in `meta.rs`) and then the data
//! block a storage command announces.

use super::frame::{valid_key, Command, DataCommand, DataLine, Limits, Line};
use super::number::{parse_i32, parse_strtoull, parse_u32, parse_u64};
use super::request::{ArithOp, ErrorReply, Request, Span, StoreMode};

/// The first byte of every binary-protocol request. kvserve speaks only
/// the text protocol, and a binary client cannot read a text error, so such
/// a connection is closed at once.
const BINARY_MAGIC: u8 = 0x80;

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
        Command::Data(data_line) => match data_line.request(buf, line_len, limits) {
            Some(request) => (request, line_len + data_line.data_len + 2),
            None => return Parsed::Incomplete,
        },
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

impl Line<'_> {
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
            b"refresh_certs" => Command::Complete(R::RefreshCerts),
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
        Command::Data(DataLine {
            key_len: self.token(1).len(),
            data_len,
            command: DataCommand::Store {
                mode,
                key,
                flags,
                exptime,
                noreply: self.noreply(),
            },
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
