//! What a parsed request says, independent of the bytes it came from.

/// A byte range of the buffer a request was parsed from.
///
/// Requests hold spans rather than slices so that a batch of requests and its
/// buffer can be moved to another thread together without copying keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    start: u32,
    len: u32,
}

impl Span {
    pub(crate) fn new(start: usize, len: usize) -> Span {
        Span {
            start: start as u32,
            len: len as u32,
        }
    }

    pub(crate) fn start(self) -> usize {
        self.start as usize
    }

    /// The bytes this span covers in `buf`, the buffer the request was parsed from.
    pub fn of(self, buf: &[u8]) -> &[u8] {
        &buf[self.start as usize..(self.start + self.len) as usize]
    }

    /// The space-separated words in this span (the keys of a `get`).
    pub fn words(self, buf: &[u8]) -> impl Iterator<Item = &[u8]> {
        self.of(buf).split(|&b| b == b' ').filter(|w| !w.is_empty())
    }
}

/// Which storage command a `Store` request is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StoreMode {
    #[default]
    Set,
    Add,
    Replace,
    Append,
    Prepend,
    /// `cas`: store only if the item's cas unique still equals this one.
    Cas(u64),
}

/// `incr` or `decr`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArithOp {
    Incr,
    Decr,
}

/// A protocol error, answered with memcached's exact wording.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorReply {
    /// Unknown command or wrong number of tokens.
    UnknownCommand,
    BadCommandLineFormat,
    BadDeleteFormat,
    BadDataChunk,
    InvalidExptime,
    InvalidDelta,
    ShutdownNotEnabled,
}

impl ErrorReply {
    /// The reply line, `\r\n` included, as memcached 1.6 sends it.
    pub fn line(self) -> &'static [u8] {
        match self {
            ErrorReply::UnknownCommand => b"ERROR\r\n",
            ErrorReply::BadCommandLineFormat => b"CLIENT_ERROR bad command line format\r\n",
            ErrorReply::BadDeleteFormat => {
                b"CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]\r\n"
            }
            ErrorReply::BadDataChunk => b"CLIENT_ERROR bad data chunk\r\n",
            ErrorReply::InvalidExptime => b"CLIENT_ERROR invalid exptime argument\r\n",
            ErrorReply::InvalidDelta => b"CLIENT_ERROR invalid numeric delta argument\r\n",
            ErrorReply::ShutdownNotEnabled => b"ERROR: shutdown not enabled\r\n",
        }
    }
}

/// One complete request of the text protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    /// `get`/`gets <key>*`; with `touch`, `gat`/`gats <exptime> <key>*`.
    Get {
        keys: Span,
        with_cas: bool,
        touch: Option<i64>,
    },
    /// `set`, `add`, `replace`, `append`, `prepend` and `cas`.
    Store {
        mode: StoreMode,
        key: Span,
        flags: u32,
        exptime: i64,
        data: Span,
        noreply: bool,
    },
    /// A storage command whose value is over the item size limit; its data
    /// was swallowed. memcached also drops the old item of a failed `set`.
    TooLarge {
        mode: StoreMode,
        key: Span,
        noreply: bool,
    },
    Delete {
        key: Span,
        noreply: bool,
    },
    Arithmetic {
        op: ArithOp,
        key: Span,
        delta: u64,
        noreply: bool,
    },
    Touch {
        key: Span,
        exptime: i64,
        noreply: bool,
    },
    FlushAll {
        delay: i64,
        noreply: bool,
    },
    Version,
    Verbosity {
        level: u32,
        noreply: bool,
    },
    /// `stats [<args>]`; `args` is everything after the command word.
    Stats {
        args: Span,
    },
    CacheMemlimit {
        megabytes: u32,
        noreply: bool,
    },
    /// `quit`: the server closes the connection.
    Quit,
    /// A request that is answered with a protocol error.
    Error {
        reply: ErrorReply,
        noreply: bool,
    },
}

impl Request {
    /// Whether the reply is suppressed (`noreply`).
    pub fn noreply(&self) -> bool {
        match *self {
            Request::Store { noreply, .. }
            | Request::TooLarge { noreply, .. }
            | Request::Delete { noreply, .. }
            | Request::Arithmetic { noreply, .. }
            | Request::Touch { noreply, .. }
            | Request::FlushAll { noreply, .. }
            | Request::Verbosity { noreply, .. }
            | Request::CacheMemlimit { noreply, .. }
            | Request::Error { noreply, .. } => noreply,
            _ => false,
        }
    }
}
