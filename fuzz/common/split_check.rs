//! The whole-versus-split agreement check on `kvserve::protocol::parse`.
//!
//! Shared, through `#[path]`, by the `parse_splits` fuzz target
//! (`fuzz/fuzz_targets/parse_splits.rs`) and the regression tests
//! (`tests/parser_regressions.rs`), so that `cargo test` runs exactly the
//! check the fuzzer runs. It uses only the crate's public API.
//!
//! A simulated connection feeds the parser the way
//! `server::connection::Connection::next_request` does: parse at the start of
//! the unconsumed bytes, consume `len` (or as much of it as has arrived and
//! swallow the rest as it comes), stop reading at `Parsed::Close`. The same
//! stream is fed whole and in chunks, and the two runs must see the same
//! requests (spans resolved to bytes), at the same stream offsets, with the
//! same lengths, and the same end state.
//!
//! The one legitimate difference: a `Close` for a command line that has no
//! newline yet and is already over `max_line` (`max_get_line` for a
//! multi-get) depends on how much of the line has arrived. Fed whole, a
//! 3000-byte line whose newline is in the same buffer is parsed (as memcached
//! does when the whole line arrives in one read); fed in chunks, the first
//! 2049 bytes without a newline close the connection. So when the split run
//! ends in such a `Close`, the runs must agree on everything before it, and the
//! whole run must have parsed a request starting at that very offset (or be
//! waiting there for the data of a storage command), whose line is longer than
//! what the split run had buffered. Any other difference is a bug.

use std::fmt;

use kvserve::protocol::{
    parse, ArithOp, ErrorReply, Limits, MetaCommand, Parsed, Request, Span, KEY_MAX_LENGTH,
};

/// The default item size limit (memcached's `-I 1m`).
pub const MIB: usize = 1 << 20;

/// Bytes of a fuzz input before the chunk-size bytes: limits selector, three
/// limit parameters, number of chunk sizes.
pub const HEADER: usize = 5;

/// The smallest `max_line` the agreement holds for. Whether a line with no
/// newline yet may be a multi-get (and so may grow to `max_get_line`) is
/// decided from its first word after at most 99 leading spaces, so from up to
/// 104 bytes (99 spaces and `gets `); with a smaller `max_line`, a split run can close a line
/// that the whole run keeps waiting for, e.g. `      get ` with
/// `max_line: 8` fed one byte at a time closes at `      get` (9 bytes, not
/// yet `get `). The server always uses `Limits::new` (`max_line` 2048).
pub const MIN_LINE: usize = 105;

/// A fuzz input, decoded.
///
/// Layout: `[sel, a, b, c, n, size_1 .. size_n, stream..]`.
/// - `sel % 4`: 0 and 1 `Limits::new(1 MiB)`; 2 `Limits::new(64 + (a*256+b) % 4033)`;
///   3 small custom limits: item `64 + 16a`, line `MIN_LINE + b`, get line
///   `line + 4c`, so that long-line paths are reached with short inputs.
/// - `n % 9` chunk sizes follow, each byte `s`: `s + 1` if `s < 192`, else
///   `(s - 191) * 128`; the stream is cut into chunks of these sizes, cycled.
///   No sizes: one byte at a time.
pub struct Case<'a> {
    pub limits: Limits,
    pub chunks: Vec<usize>,
    pub stream: &'a [u8],
}

impl<'a> Case<'a> {
    pub fn decode(data: &'a [u8]) -> Case<'a> {
        let byte = |i: usize| usize::from(data.get(i).copied().unwrap_or(0));
        let (a, b, c) = (byte(1), byte(2), byte(3));
        let limits = match byte(0) % 4 {
            0 | 1 => Limits::new(MIB),
            2 => Limits::new(64 + ((a << 8) | b) % 4033),
            _ => Limits {
                max_item_size: 64 + a * 16,
                max_line: MIN_LINE + b,
                max_get_line: MIN_LINE + b + c * 4,
            },
        };
        let sizes_end = (HEADER + byte(4) % 9).min(data.len());
        let sizes_start = HEADER.min(sizes_end);
        let chunks = data[sizes_start..sizes_end]
            .iter()
            .map(|&s| {
                if s < 192 {
                    usize::from(s) + 1
                } else {
                    (usize::from(s) - 191) * 128
                }
            })
            .collect();
        Case {
            limits,
            chunks,
            stream: &data[sizes_end..],
        }
    }
}

/// Bytes shown as an escaped string in failure messages.
#[derive(Clone, PartialEq, Eq)]
pub struct Bytes(pub Vec<u8>);

impl fmt::Debug for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const SHOW: usize = 80;
        let shown = &self.0[..self.0.len().min(SHOW)];
        write!(f, "b\"{}\"", shown.escape_ascii())?;
        if self.0.len() > SHOW {
            write!(f, "..({} bytes)", self.0.len())?;
        }
        Ok(())
    }
}

/// One thing the simulated connection saw, at stream offset `at`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A request of `len` bytes (spans relative to its start) and the bytes
    /// its spans name, in the order of [`spans`].
    Request {
        at: usize,
        len: usize,
        request: Request,
        bytes: Vec<Bytes>,
    },
    Close {
        at: usize,
    },
}

/// How a fed stream ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum End {
    /// The parser said `Close`: the connection reads no further.
    Closed,
    /// All of the stream was fed: the bytes still unparsed, and the bytes of
    /// an oversized value still to be swallowed.
    Open { pending: Bytes, swallow: usize },
}

/// What feeding one stream produced.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub events: Vec<Event>,
    pub end: End,
    /// For a `Close` on a line with no newline: how many bytes were buffered.
    pub unterminated_close: Option<usize>,
}

impl Outcome {
    /// A one-line summary: each event's kind, then how the stream ended; e.g.
    /// `set/nr get:2 error:BadDataChunk toolarge:cas | swallowing 20`.
    pub fn summary(&self) -> String {
        let mut words: Vec<String> = self
            .events
            .iter()
            .map(|event| match event {
                Event::Request { request, bytes, .. } => describe(request, bytes),
                Event::Close { .. } => "close".to_string(),
            })
            .collect();
        match &self.end {
            End::Closed => {}
            End::Open { pending, swallow } => {
                words.push("|".to_string());
                words.push(match (pending.0.len(), swallow) {
                    (0, 0) => "done".to_string(),
                    (0, n) => format!("swallowing {n}"),
                    (n, _) => format!("waiting {n}"),
                });
            }
        }
        words.join(" ")
    }
}

fn describe(request: &Request, bytes: &[Bytes]) -> String {
    let nr = |noreply: bool| if noreply { "/nr" } else { "" };
    match *request {
        Request::Get {
            with_cas, touch, ..
        } => {
            let command = match (touch.is_some(), with_cas) {
                (false, false) => "get",
                (false, true) => "gets",
                (true, false) => "gat",
                (true, true) => "gats",
            };
            let keys = bytes[0].0.split(|&b| b == b' ').filter(|w| !w.is_empty());
            format!("{command}:{}", keys.count())
        }
        Request::Store { mode, noreply, .. } => format!("{}{}", mode.name(), nr(noreply)),
        Request::TooLarge { mode, noreply, .. } => {
            format!("toolarge:{}{}", mode.name(), nr(noreply))
        }
        Request::Delete { noreply, .. } => format!("delete{}", nr(noreply)),
        Request::Arithmetic { op, noreply, .. } => {
            let op = match op {
                ArithOp::Incr => "incr",
                ArithOp::Decr => "decr",
            };
            format!("{op}{}", nr(noreply))
        }
        Request::Touch { noreply, .. } => format!("touch{}", nr(noreply)),
        Request::FlushAll { noreply, .. } => format!("flush_all{}", nr(noreply)),
        Request::Version => "version".to_string(),
        Request::Verbosity { noreply, .. } => format!("verbosity{}", nr(noreply)),
        Request::Stats { .. } => "stats".to_string(),
        Request::CacheMemlimit { noreply, .. } => format!("cache_memlimit{}", nr(noreply)),
        Request::Quit => "quit".to_string(),
        Request::RefreshCerts => "refresh_certs".to_string(),
        Request::Error { reply, noreply } => format!("error:{reply:?}{}", nr(noreply)),
        Request::Meta(meta) => {
            let command = match meta.command {
                MetaCommand::Get => "mg",
                MetaCommand::Set => "ms",
                MetaCommand::SetTooLarge => "toolarge:ms",
                MetaCommand::Delete => "md",
                MetaCommand::Arithmetic => "ma",
            };
            let flags = bytes[1].0.split(|&b| b == b' ').filter(|w| !w.is_empty());
            format!("{command}:{}", flags.count())
        }
        Request::MetaDebug { .. } => "me".to_string(),
        Request::MetaNoop => "mn".to_string(),
        Request::Auth { accepted } => format!("auth:{accepted}"),
    }
}

/// Whether `request`, of `len` bytes whose command line is `line_len`
/// bytes, has data that is swallowed as it arrives rather than buffered: a
/// value over the item size limit, or the data block of an `ms` refused by
/// its flags. Such a request is parsed from its line alone.
fn swallows(request: &Request, len: usize, line_len: usize) -> bool {
    match *request {
        Request::TooLarge { .. } => true,
        Request::Meta(meta) => meta.command == MetaCommand::SetTooLarge,
        Request::Error { reply, .. } => reply != ErrorReply::BadDataChunk && len > line_len,
        _ => false,
    }
}

/// The spans a request holds, in a fixed order.
pub fn spans(request: &Request) -> Vec<Span> {
    match *request {
        Request::Get { keys, .. } => vec![keys],
        Request::Store { key, data, .. } => vec![key, data],
        Request::TooLarge { key, .. }
        | Request::Delete { key, .. }
        | Request::Arithmetic { key, .. }
        | Request::Touch { key, .. } => vec![key],
        Request::Stats { args } => vec![args],
        Request::Meta(meta) => vec![meta.key, meta.tokens, meta.data],
        Request::MetaDebug { key, .. } => vec![key],
        Request::FlushAll { .. }
        | Request::Version
        | Request::Verbosity { .. }
        | Request::CacheMemlimit { .. }
        | Request::Quit
        | Request::RefreshCerts
        | Request::Error { .. }
        | Request::MetaNoop
        | Request::Auth { .. } => Vec::new(),
    }
}

/// A span's `start..end`. `Span`'s fields are private to the crate and its
/// only accessor, `of`, panics out of range; its derived `Debug` output
/// (`Span { start: S, len: L }`) is the public way to see the numbers.
pub fn bounds(span: Span) -> (usize, usize) {
    let text = format!("{span:?}");
    let numbers: Vec<usize> = text
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().expect("a span's numbers fit usize"))
        .collect();
    assert!(
        numbers.len() == 2 && text.starts_with("Span { start: "),
        "unexpected Span debug output {text}"
    );
    (numbers[0], numbers[0] + numbers[1])
}

/// Checks one `Parsed::Request` from `buf` and returns the bytes its spans
/// name. Asserts: `len >= 1`; `len` exceeds the buffer only for a request
/// whose data is swallowed (see [`swallows`]); every span lies within the
/// request's own bytes; and the request depends on its own bytes only: parsing
/// exactly `buf[..len]` gives the same result, and parsing `buf[..len - 1]`
/// gives no request (or, for one that swallows, the same one).
fn check_request(buf: &[u8], request: &Request, len: usize, limits: &Limits) -> Vec<Bytes> {
    assert!(len >= 1, "request of length 0: {request:?}");
    let line_len = memchr_newline(buf).map_or(buf.len(), |newline| newline + 1);
    let swallowed = swallows(request, len, line_len);
    if len > buf.len() {
        assert!(
            swallowed,
            "len {len} beyond the {} buffered bytes for {request:?}",
            buf.len()
        );
    }
    let own = &buf[..len.min(buf.len())];
    let bytes = spans(request)
        .into_iter()
        .map(|span| {
            let (start, end) = bounds(span);
            assert!(
                start <= end && end <= own.len(),
                "span {start}..{end} outside the request's {} bytes (len {len}, buffer {}): {request:?}",
                own.len(),
                buf.len()
            );
            Bytes(span.of(own).to_vec())
        })
        .collect();
    check_shape(own, request, len);
    let parsed = Parsed::Request {
        request: *request,
        len,
    };
    if len <= buf.len() {
        assert_eq!(
            parse(own, limits),
            parsed,
            "a request parsed differently from exactly its own bytes {:?}",
            Bytes(own.to_vec())
        );
        let shorter = parse(&own[..len - 1], limits);
        let ok = match shorter {
            Parsed::Incomplete => true,
            Parsed::Close => memchr_newline(&own[..len - 1]).is_none(),
            Parsed::Request { .. } => swallowed && shorter == parsed,
        };
        assert!(
            ok,
            "{:?} without its last byte parsed as {shorter:?}, not Incomplete",
            Bytes(own.to_vec())
        );
    }
    bytes
}

/// Where a request's spans may point: keys, meta flags and `stats`
/// arguments within the command line, each key a valid one (1 to 250
/// bytes, no space or control character); a stored value right after the
/// line and followed by exactly `\r\n`, the request's last two bytes.
fn check_shape(own: &[u8], request: &Request, len: usize) {
    let Some(newline) = memchr_newline(own) else {
        panic!("a request without a newline in its bytes: {request:?}");
    };
    let in_line = |span: Span| bounds(span).1 <= newline;
    let valid_key = |key: &[u8]| {
        !key.is_empty() && key.len() <= KEY_MAX_LENGTH && key.iter().all(|&b| b > b' ' && b != 0x7f)
    };
    let key_ok = |span: Span| in_line(span) && valid_key(span.of(own));
    let ok = match *request {
        Request::Get { keys, .. } => in_line(keys) && keys.words(own).all(valid_key),
        Request::Store { key, data, .. } => {
            let (start, end) = bounds(data);
            key_ok(key) && start == newline + 1 && end + 2 == len && &own[end..] == b"\r\n"
        }
        Request::TooLarge { key, .. }
        | Request::Delete { key, .. }
        | Request::Arithmetic { key, .. }
        | Request::Touch { key, .. } => key_ok(key),
        Request::Stats { args } => in_line(args),
        Request::Meta(meta) if meta.command == MetaCommand::Set => {
            let (start, end) = bounds(meta.data);
            key_ok(meta.key)
                && in_line(meta.tokens)
                && start == newline + 1
                && end + 2 == len
                && &own[end..] == b"\r\n"
        }
        Request::Meta(meta) => key_ok(meta.key) && in_line(meta.tokens),
        Request::MetaDebug { key, .. } => key_ok(key),
        _ => true,
    };
    assert!(
        ok,
        "spans of {request:?} (len {len}) point at the wrong bytes of {:?}",
        Bytes(own.to_vec())
    );
}

/// `Incomplete` must never ask to buffer without bound: no newline means the
/// bytes are within the line limits; a newline means a storage command
/// waiting for data, which the item limit bounds.
fn check_incomplete(buf: &[u8], limits: &Limits) {
    match memchr_newline(buf) {
        None => assert!(
            buf.len() <= limits.max_line.max(limits.max_get_line),
            "Incomplete with {} bytes and no newline (limits {limits:?})",
            buf.len()
        ),
        Some(newline) => assert!(
            buf.len() < newline + 1 + limits.max_item_size,
            "Incomplete with {} bytes after a line of {} (limits {limits:?}): {:?}",
            buf.len() - newline - 1,
            newline + 1,
            Bytes(buf.to_vec())
        ),
    }
}

fn memchr_newline(buf: &[u8]) -> Option<usize> {
    buf.iter().position(|&b| b == b'\n')
}

/// A connection's read side, as `Connection::next_request` drives the parser.
pub struct Conn {
    limits: Limits,
    input: Vec<u8>,
    start: usize,
    /// Stream offset of `input[start]`.
    offset: usize,
    swallow: usize,
    closed: bool,
    events: Vec<Event>,
    unterminated_close: Option<usize>,
}

impl Conn {
    pub fn new(limits: Limits) -> Conn {
        Conn {
            limits,
            input: Vec::new(),
            start: 0,
            offset: 0,
            swallow: 0,
            closed: false,
            events: Vec::new(),
            unterminated_close: None,
        }
    }

    /// One read's worth of bytes arrives; parse all that can be parsed.
    pub fn push(&mut self, chunk: &[u8]) {
        if self.closed {
            return;
        }
        self.input.drain(..self.start);
        self.start = 0;
        self.input.extend_from_slice(chunk);
        while !self.closed {
            if self.swallow > 0 {
                let dropped = self.swallow.min(self.input.len() - self.start);
                self.start += dropped;
                self.offset += dropped;
                self.swallow -= dropped;
                if self.swallow > 0 {
                    return;
                }
            }
            let buf = &self.input[self.start..];
            match parse(buf, &self.limits) {
                Parsed::Request { request, len } => {
                    let bytes = check_request(buf, &request, len, &self.limits);
                    self.events.push(Event::Request {
                        at: self.offset,
                        len,
                        request,
                        bytes,
                    });
                    let used = len.min(buf.len());
                    self.start += used;
                    self.offset += used;
                    self.swallow = len - used;
                }
                Parsed::Incomplete => {
                    check_incomplete(buf, &self.limits);
                    return;
                }
                Parsed::Close => {
                    if memchr_newline(buf).is_none() {
                        self.unterminated_close = Some(buf.len());
                    }
                    self.events.push(Event::Close { at: self.offset });
                    self.closed = true;
                }
            }
        }
    }

    pub fn finish(self) -> Outcome {
        let end = if self.closed {
            End::Closed
        } else {
            End::Open {
                pending: Bytes(self.input[self.start..].to_vec()),
                swallow: self.swallow,
            }
        };
        Outcome {
            events: self.events,
            end,
            unterminated_close: self.unterminated_close,
        }
    }
}

/// Feeds `stream` in chunks of `sizes` bytes, cycled (no sizes: one byte at a
/// time; a size of 0 counts as 1).
pub fn feed(limits: &Limits, stream: &[u8], sizes: &[usize]) -> Outcome {
    let mut conn = Conn::new(*limits);
    let mut rest = stream;
    let mut i = 0;
    while !rest.is_empty() && !conn.closed {
        let size = if sizes.is_empty() {
            1
        } else {
            sizes[i % sizes.len()]
        };
        let (chunk, tail) = rest.split_at(size.clamp(1, rest.len()));
        conn.push(chunk);
        rest = tail;
        i += 1;
    }
    conn.finish()
}

/// Feeds `stream` whole and in chunks of `sizes`, asserts that the two
/// agree (see the module documentation), and returns the whole run.
pub fn check(limits: &Limits, stream: &[u8], sizes: &[usize]) -> Outcome {
    let whole = feed(limits, stream, &[stream.len()]);
    let split = feed(limits, stream, sizes);
    assert_agree(limits, stream, &whole, &split, sizes);
    whole
}

pub fn assert_agree(
    limits: &Limits,
    stream: &[u8],
    whole: &Outcome,
    split: &Outcome,
    sizes: &[usize],
) {
    if whole.events == split.events && whole.end == split.end {
        return;
    }
    let context = || {
        format!(
            "limits {limits:?}, chunk sizes {sizes:?}, stream {:?}\nwhole: {whole:#?}\nsplit: {split:#?}",
            Bytes(stream.to_vec())
        )
    };
    // The only legitimate difference: the split run closed on a line whose
    // newline had not arrived yet, where the whole run saw the line complete.
    let (Some(buffered), Some(Event::Close { at })) =
        (split.unterminated_close, split.events.last())
    else {
        panic!("whole and split feeding disagree\n{}", context());
    };
    let before = split.events.len() - 1;
    assert!(
        whole.events.len() >= before && whole.events[..before] == split.events[..before],
        "whole and split feeding disagree before the split run's Close\n{}",
        context()
    );
    assert!(
        buffered > limits.max_line,
        "split run closed on {buffered} unterminated bytes, within max_line\n{}",
        context()
    );
    assert!(
        memchr_newline(&stream[*at..]).is_some_and(|newline| newline >= buffered),
        "split run closed on a line that is not complete later in the stream, \
         or whose newline it had\n{}",
        context()
    );
    // Fed whole, the line was complete: it is a request (a storage command
    // may still be waiting for its data) where the split run closed.
    let whole_waits = End::Open {
        pending: Bytes(stream[*at..].to_vec()),
        swallow: 0,
    };
    match whole.events.get(before) {
        Some(Event::Request { at: whole_at, .. }) if whole_at == at => {}
        None if whole.end == whole_waits => {}
        _ => panic!(
            "whole and split feeding disagree at the split run's Close\n{}",
            context()
        ),
    }
}
