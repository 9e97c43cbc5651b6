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

impl StoreMode {
    /// The command word that asks for this mode, for whatever writes
    /// requests or describes them (tests, the fuzz check).
    pub fn name(self) -> &'static str {
        match self {
            StoreMode::Set => "set",
            StoreMode::Add => "add",
            StoreMode::Replace => "replace",
            StoreMode::Append => "append",
            StoreMode::Prepend => "prepend",
            StoreMode::Cas(_) => "cas",
        }
    }
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
    /// `mg` with more than 18 flags.
    MetaGetTooManyFlags,
    /// `ms`, `md`, `ma` with more than 18 flags (worded unlike `mg`'s).
    MetaTooManyFlags,
    DuplicateFlag,
    InvalidFlag,
    /// `md` and `ma` answer any bad flag with this one line.
    InvalidOrDuplicateFlag,
    /// A `T`, `N`, `R` or `C` flag whose number does not parse.
    BadToken,
    /// A `b` key that is not base64.
    KeyDecode,
    /// An `M` flag with more than one mode letter.
    ModeTokenLength,
    InvalidSetMode,
    InvalidArithmeticMode,
    InvalidInitial,
    InvalidDeltaValue,
    /// An `O` flag over 32 bytes.
    OpaqueTooLong,
    /// Any request but the `set`-shaped handshake before authenticating (`-Y`).
    Unauthenticated,
    /// A handshake whose data block does not hold two words.
    BadAuthenticationFormat,
    /// A handshake whose data block does not end in `\r\n`.
    BadLineTermination,
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
            ErrorReply::MetaGetTooManyFlags => b"CLIENT_ERROR options flags are too long\r\n",
            ErrorReply::MetaTooManyFlags => b"CLIENT_ERROR options flags too long\r\n",
            ErrorReply::DuplicateFlag => b"CLIENT_ERROR duplicate flag\r\n",
            ErrorReply::InvalidFlag => b"CLIENT_ERROR invalid flag\r\n",
            ErrorReply::InvalidOrDuplicateFlag => b"CLIENT_ERROR invalid or duplicate flag\r\n",
            ErrorReply::BadToken => b"CLIENT_ERROR bad token in command line format\r\n",
            ErrorReply::KeyDecode => b"CLIENT_ERROR error decoding key\r\n",
            ErrorReply::ModeTokenLength => b"CLIENT_ERROR incorrect length for M token\r\n",
            ErrorReply::InvalidSetMode => b"CLIENT_ERROR invalid mode for ms M token\r\n",
            ErrorReply::InvalidArithmeticMode => b"CLIENT_ERROR invalid mode for ma M token\r\n",
            ErrorReply::InvalidInitial => b"CLIENT_ERROR invalid numeric initial value\r\n",
            ErrorReply::InvalidDeltaValue => b"CLIENT_ERROR invalid numeric delta value\r\n",
            ErrorReply::OpaqueTooLong => b"CLIENT_ERROR opaque token too long\r\n",
            ErrorReply::Unauthenticated => b"CLIENT_ERROR unauthenticated\r\n",
            ErrorReply::BadAuthenticationFormat => {
                b"CLIENT_ERROR bad authentication token format\r\n"
            }
            ErrorReply::BadLineTermination => b"CLIENT_ERROR bad command line termination\r\n",
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
    /// `refresh_certs`: reload the TLS certificate and key.
    RefreshCerts,
    /// `mg`, `ms`, `md`, `ma`.
    Meta(MetaRequest),
    /// `me <key> [b]`: memcached's debug line about one item.
    MetaDebug {
        key: Span,
        binary: bool,
    },
    /// `mn`: answers `MN`, marking the end of a pipeline of quiet requests.
    MetaNoop,
    /// The handshake of `-Y`, its credentials already checked (by the
    /// connection, which must know at once how to read what follows):
    /// answered `STORED` if they were accepted, counted in `auth_cmds`
    /// and, if not, `auth_errors`.
    Auth {
        accepted: bool,
    },
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

/// Which meta command a `Meta` request is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetaCommand {
    Get,
    Set,
    /// An `ms` whose value is over the item size limit: its data was
    /// swallowed, and memcached drops the key's old item, in every mode.
    SetTooLarge,
    Delete,
    Arithmetic,
}

/// A meta command with its flags read and checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MetaRequest {
    pub command: MetaCommand,
    /// The key token as sent: base64 if the `b` flag is present.
    pub key: Span,
    /// The flag tokens: a reply echoes some of them, in request order.
    pub tokens: Span,
    /// `ms`: the data block, without its `\r\n`.
    pub data: Span,
    pub flags: MetaFlags,
}

/// The flags of a meta command: which are present, and the values of
/// those that carry one. Flags without a value only count as present.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MetaFlags {
    /// One bit per flag letter, `A` to `z`.
    present: u64,
    /// `T`: the new exptime.
    pub ttl: i64,
    /// `N`: the exptime of an item created on a miss.
    pub vivify_ttl: i64,
    /// `R`: win the right to recache when the TTL left is below this.
    pub recache_ttl: i64,
    /// `F`: the client flags of an `ms`.
    pub client_flags: u32,
    /// `C`: the cas unique to compare with.
    pub cas: u64,
    /// `D`: the `ma` delta, 1 if not given.
    pub delta: u64,
    /// `J`: the value of an item `ma` creates on a miss.
    pub initial: u64,
    /// `M`: the mode letter, 0 if not given.
    pub mode: u8,
}

impl Default for MetaFlags {
    fn default() -> MetaFlags {
        MetaFlags {
            present: 0,
            ttl: 0,
            vivify_ttl: 0,
            recache_ttl: 0,
            client_flags: 0,
            cas: 0,
            delta: 1,
            initial: 0,
            mode: 0,
        }
    }
}

impl MetaFlags {
    /// Whether `flag` (a letter) was given.
    pub fn has(&self, flag: u8) -> bool {
        flag_bit(flag).is_some_and(|bit| self.present & bit != 0)
    }

    /// Records `flag` as given; false if it already was (or is no letter).
    pub(crate) fn insert(&mut self, flag: u8) -> bool {
        match flag_bit(flag) {
            Some(bit) if self.present & bit == 0 => {
                self.present |= bit;
                true
            }
            _ => false,
        }
    }
}

fn flag_bit(flag: u8) -> Option<u64> {
    (b'A'..=b'z').contains(&flag).then(|| 1u64 << (flag - b'A'))
}
