//! The text-protocol parser, through its public API: every command form and
//! every error wording (replies taken from `Engine::execute`), the bounds on
//! lines and values, and a property that parsing is independent of how the
//! bytes are split into reads.

use std::sync::Arc;

use kvserve::engine::stats::{Role, ThreadStats};
use kvserve::engine::{Engine, Flow, Settings};
use kvserve::protocol::{
    parse, ArithOp, ErrorReply, Limits, MetaCommand, Parsed, Request, StoreMode, KEY_MAX_LENGTH,
};
use proptest::prelude::*;

const MIB: usize = 1024 * 1024;
const NOW: u32 = 1_700_000_000;

// ---------------------------------------------------------------------------
// Harness: a connection-like read buffer, and an engine session around it.
// ---------------------------------------------------------------------------

/// A request with its spans resolved to the bytes they name, so that
/// requests parsed from differently split buffers can be compared.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Resolved {
    Get {
        keys: Vec<Vec<u8>>,
        with_cas: bool,
        touch: Option<i64>,
    },
    Store {
        mode: StoreMode,
        key: Vec<u8>,
        flags: u32,
        exptime: i64,
        data: Vec<u8>,
        noreply: bool,
    },
    TooLarge {
        mode: StoreMode,
        key: Vec<u8>,
        noreply: bool,
    },
    Delete {
        key: Vec<u8>,
        noreply: bool,
    },
    Arithmetic {
        op: ArithOp,
        key: Vec<u8>,
        delta: u64,
        noreply: bool,
    },
    Touch {
        key: Vec<u8>,
        exptime: i64,
        noreply: bool,
    },
    Stats {
        args: Vec<u8>,
    },
    /// A request that names no bytes of its buffer.
    Plain(Request),
}

fn resolve(request: &Request, buf: &[u8]) -> Resolved {
    match *request {
        Request::Get {
            keys,
            with_cas,
            touch,
        } => Resolved::Get {
            keys: keys.words(buf).map(<[u8]>::to_vec).collect(),
            with_cas,
            touch,
        },
        Request::Store {
            mode,
            key,
            flags,
            exptime,
            data,
            noreply,
        } => Resolved::Store {
            mode,
            key: key.of(buf).to_vec(),
            flags,
            exptime,
            data: data.of(buf).to_vec(),
            noreply,
        },
        Request::TooLarge { mode, key, noreply } => Resolved::TooLarge {
            mode,
            key: key.of(buf).to_vec(),
            noreply,
        },
        Request::Delete { key, noreply } => Resolved::Delete {
            key: key.of(buf).to_vec(),
            noreply,
        },
        Request::Arithmetic {
            op,
            key,
            delta,
            noreply,
        } => Resolved::Arithmetic {
            op,
            key: key.of(buf).to_vec(),
            delta,
            noreply,
        },
        Request::Touch {
            key,
            exptime,
            noreply,
        } => Resolved::Touch {
            key: key.of(buf).to_vec(),
            exptime,
            noreply,
        },
        Request::Stats { args } => Resolved::Stats {
            args: args.of(buf).to_vec(),
        },
        other => Resolved::Plain(other),
    }
}

/// What a connection gets out of its read buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Event {
    /// A request and the length `parse` reported for it.
    Request(Resolved, usize),
    Close,
}

/// The next thing in a [`Conn`]'s buffer; spans are relative to `buf[at..]`.
enum Next {
    Request {
        request: Request,
        at: usize,
        len: usize,
    },
    Close,
}

/// A read buffer that receives bytes in chunks and hands out requests,
/// swallowing the rest of an oversized value as it arrives, the way
/// `server::connection::Connection::next_request` does.
struct Conn {
    buf: Vec<u8>,
    start: usize,
    swallow: usize,
    limits: Limits,
    closed: bool,
}

impl Conn {
    fn new(limits: Limits) -> Conn {
        Conn {
            buf: Vec::new(),
            start: 0,
            swallow: 0,
            limits,
            closed: false,
        }
    }

    fn push(&mut self, bytes: &[u8]) {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    fn next(&mut self) -> Option<Next> {
        if self.closed {
            return None;
        }
        if self.swallow > 0 {
            let dropped = self.swallow.min(self.buf.len() - self.start);
            self.start += dropped;
            self.swallow -= dropped;
            if self.swallow > 0 {
                return None;
            }
        }
        let at = self.start;
        match parse(&self.buf[at..], &self.limits) {
            Parsed::Request { request, len } => {
                let available = self.buf.len() - at;
                self.start += len.min(available);
                self.swallow = len.saturating_sub(available);
                Some(Next::Request { request, at, len })
            }
            Parsed::Incomplete => None,
            Parsed::Close => {
                self.closed = true;
                Some(Next::Close)
            }
        }
    }

    /// Every event the buffered bytes yield now.
    fn drain(&mut self, events: &mut Vec<Event>) {
        while let Some(next) = self.next() {
            events.push(match next {
                Next::Request { request, at, len } => {
                    Event::Request(resolve(&request, &self.buf[at..]), len)
                }
                Next::Close => Event::Close,
            });
        }
    }

    /// Bytes received but not consumed, and bytes still to swallow.
    fn residue(&self) -> (Vec<u8>, usize) {
        (self.buf[self.start..].to_vec(), self.swallow)
    }
}

fn settings(max_item_size: usize) -> Settings {
    Settings {
        pattern: "basic",
        threads: 1,
        port: 0,
        listen: "127.0.0.1".to_string(),
        max_conns: 64,
        reqs_per_event: 20,
        max_pending_output: MIB,
        max_item_size,
        idle_timeout: 0,
        work: None,
        stamp_arrivals: false,
        stage_sample: 1,
    }
}

/// An engine with one connection: bytes in, reply bytes out.
struct Session {
    engine: Engine,
    stats: Arc<ThreadStats>,
    conn: Conn,
    now: u32,
    /// Set by `quit` or by input the parser closes on.
    closed: bool,
}

impl Session {
    fn new() -> Session {
        Session::with_item_size(MIB)
    }

    fn with_item_size(max_item_size: usize) -> Session {
        let engine = Engine::new(settings(max_item_size), 64 * MIB);
        let stats = engine.stats.register(Role::Loop);
        let conn = Conn::new(engine.limits);
        Session {
            engine,
            stats,
            conn,
            now: NOW,
            closed: false,
        }
    }

    fn send(&mut self, input: &[u8]) -> Vec<u8> {
        self.conn.push(input);
        let mut out = Vec::new();
        while !self.closed {
            match self.conn.next() {
                Some(Next::Request { request, at, .. }) => {
                    let flow = self.engine.execute(
                        &request,
                        &self.conn.buf[at..],
                        &mut out,
                        &self.stats,
                        self.now,
                    );
                    if flow == Flow::Close {
                        self.closed = true;
                    }
                }
                Some(Next::Close) => self.closed = true,
                None => break,
            }
        }
        out
    }

    /// Sends `input` and checks the reply is exactly `expected`.
    #[track_caller]
    fn expect(&mut self, input: &str, expected: &str) {
        let out = self.send(input.as_bytes());
        assert_eq!(
            String::from_utf8_lossy(&out),
            expected,
            "reply to {input:?}"
        );
    }
}

/// The reply a fresh server gives to `input`.
fn reply_to(input: &str) -> String {
    String::from_utf8_lossy(&Session::new().send(input.as_bytes())).into_owned()
}

fn limits() -> Limits {
    Limits::new(MIB)
}

/// Parses one complete request, resolved.
#[track_caller]
fn parse_one(buf: &[u8]) -> (Resolved, usize) {
    match parse(buf, &limits()) {
        Parsed::Request { request, len } => (resolve(&request, buf), len),
        other => panic!("{:?} parsed as {other:?}", String::from_utf8_lossy(buf)),
    }
}

fn error(reply: ErrorReply, noreply: bool) -> Resolved {
    Resolved::Plain(Request::Error { reply, noreply })
}

fn store(mode: StoreMode, key: &str, flags: u32, exptime: i64, data: &[u8], nr: bool) -> Resolved {
    Resolved::Store {
        mode,
        key: key.as_bytes().to_vec(),
        flags,
        exptime,
        data: data.to_vec(),
        noreply: nr,
    }
}

fn keys(words: &[&str]) -> Vec<Vec<u8>> {
    words.iter().map(|w| w.as_bytes().to_vec()).collect()
}

const BAD_FORMAT: &str = "CLIENT_ERROR bad command line format\r\n";
const BAD_DELETE: &str = "CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]\r\n";
const BAD_EXPTIME: &str = "CLIENT_ERROR invalid exptime argument\r\n";
const BAD_DELTA: &str = "CLIENT_ERROR invalid numeric delta argument\r\n";
const BAD_CHUNK: &str = "CLIENT_ERROR bad data chunk\r\n";
const TOO_LARGE: &str = "SERVER_ERROR object too large for cache\r\n";

// ---------------------------------------------------------------------------
// Storage commands
// ---------------------------------------------------------------------------

#[test]
fn storage_commands_parse_with_and_without_noreply() {
    let modes = [
        ("set", StoreMode::Set),
        ("add", StoreMode::Add),
        ("replace", StoreMode::Replace),
        ("append", StoreMode::Append),
        ("prepend", StoreMode::Prepend),
    ];
    for (name, mode) in modes {
        let line = format!("{name} key 42 100 5\r\nhello\r\n");
        let (request, len) = parse_one(line.as_bytes());
        assert_eq!(request, store(mode, "key", 42, 100, b"hello", false));
        assert_eq!(len, line.len());

        let line = format!("{name} key 4294967295 -1 3 noreply\r\nabc\r\n");
        let (request, len) = parse_one(line.as_bytes());
        assert_eq!(request, store(mode, "key", u32::MAX, -1, b"abc", true));
        assert_eq!(len, line.len());
    }
    let line = b"cas key 7 0 2 18446744073709551615\r\nhi\r\n";
    let (request, len) = parse_one(line);
    assert_eq!(
        request,
        store(StoreMode::Cas(u64::MAX), "key", 7, 0, b"hi", false)
    );
    assert_eq!(len, line.len());
    let line = b"cas key 7 0 2 12 noreply\r\nhi\r\n";
    let (request, _) = parse_one(line);
    assert_eq!(request, store(StoreMode::Cas(12), "key", 7, 0, b"hi", true));
}

#[test]
fn storage_commands_reply_as_memcached() {
    let mut s = Session::new();
    s.expect("set k 5 0 3\r\nabc\r\n", "STORED\r\n");
    s.expect("get k\r\n", "VALUE k 5 3\r\nabc\r\nEND\r\n");
    s.expect("add k 0 0 1\r\nx\r\n", "NOT_STORED\r\n");
    s.expect("add k2 1 0 1\r\nx\r\n", "STORED\r\n");
    s.expect("replace nope 0 0 1\r\nx\r\n", "NOT_STORED\r\n");
    s.expect("replace k2 2 0 1\r\ny\r\n", "STORED\r\n");
    s.expect("get k2\r\n", "VALUE k2 2 1\r\ny\r\nEND\r\n");
    s.expect("append k 9 0 2\r\nde\r\n", "STORED\r\n");
    s.expect("prepend k 9 0 2\r\n01\r\n", "STORED\r\n");
    // append and prepend keep the item's flags.
    s.expect("get k\r\n", "VALUE k 5 7\r\n01abcde\r\nEND\r\n");
    s.expect("append nope 0 0 1\r\nx\r\n", "NOT_STORED\r\n");
    s.expect("prepend nope 0 0 1\r\nx\r\n", "NOT_STORED\r\n");

    // Every form with noreply answers nothing but still acts.
    s.expect("set n 0 0 1 noreply\r\na\r\n", "");
    s.expect("add n 0 0 1 noreply\r\nb\r\n", "");
    s.expect("replace n 0 0 1 noreply\r\nc\r\n", "");
    s.expect("append n 0 0 1 noreply\r\nd\r\n", "");
    s.expect("prepend n 0 0 1 noreply\r\ne\r\n", "");
    s.expect("get n\r\n", "VALUE n 0 3\r\necd\r\nEND\r\n");
}

/// The cas unique in a `gets` reply of one item.
fn cas_of(reply: &[u8]) -> u64 {
    let text = String::from_utf8_lossy(reply);
    let line = text.lines().next().expect("a VALUE line");
    let words: Vec<&str> = line.split(' ').collect();
    assert_eq!(words.len(), 5, "gets line {line:?}");
    words[4].parse().expect("a numeric cas unique")
}

#[test]
fn cas_replies_stored_exists_and_not_found() {
    let mut s = Session::new();
    s.expect("cas k 0 0 1 1\r\nx\r\n", "NOT_FOUND\r\n");
    s.expect("set k 3 0 1\r\na\r\n", "STORED\r\n");
    let unique = cas_of(&s.send(b"gets k\r\n"));
    s.expect(&format!("cas k 4 0 1 {unique}\r\nb\r\n"), "STORED\r\n");
    // The unique is spent: the item has a new one.
    s.expect(&format!("cas k 4 0 1 {unique}\r\nc\r\n"), "EXISTS\r\n");
    s.expect("get k\r\n", "VALUE k 4 1\r\nb\r\nEND\r\n");
    let fresh = cas_of(&s.send(b"gets k\r\n"));
    assert_ne!(fresh, unique);
    s.expect(&format!("cas k 0 0 1 {fresh} noreply\r\nd\r\n"), "");
    s.expect(&format!("cas k 0 0 1 {fresh} noreply\r\ne\r\n"), "");
    s.expect("cas gone 0 0 1 5 noreply\r\nx\r\n", "");
    s.expect("get k\r\n", "VALUE k 0 1\r\nd\r\nEND\r\n");
}

#[test]
fn values_with_crlf_and_nul_round_trip() {
    let mut s = Session::new();
    let value: &[u8] = b"a\r\nb\0c\r\n\r\nEND\r\n\0";
    let mut request = format!("set bin 1 0 {}\r\n", value.len()).into_bytes();
    request.extend_from_slice(value);
    request.extend_from_slice(b"\r\n");
    let (parsed, len) = parse_one(&request);
    assert_eq!(parsed, store(StoreMode::Set, "bin", 1, 0, value, false));
    assert_eq!(len, request.len());
    assert_eq!(s.send(&request), b"STORED\r\n");
    let mut expected = format!("VALUE bin 1 {}\r\n", value.len()).into_bytes();
    expected.extend_from_slice(value);
    expected.extend_from_slice(b"\r\nEND\r\n");
    assert_eq!(s.send(b"get bin\r\n"), expected);
    // An empty value is a value too.
    s.expect("set e 0 0 0\r\n\r\n", "STORED\r\n");
    s.expect("get e\r\n", "VALUE e 0 0\r\n\r\nEND\r\n");
}

#[test]
fn bad_data_chunk_consumes_line_length_and_two() {
    let input = b"set k 0 0 3\r\nabcde\r\n";
    let (request, len) = parse_one(input);
    assert_eq!(request, error(ErrorReply::BadDataChunk, false));
    assert_eq!(len, "set k 0 0 3\r\n".len() + 3 + 2);
    // What is left ("\r\n") is an empty command line.
    assert_eq!(
        reply_to("set k 0 0 3\r\nabcde\r\n"),
        format!("{BAD_CHUNK}ERROR\r\n")
    );
    // A chunk ending in a bare "\n" is bad too, and nothing is stored.
    let mut s = Session::new();
    s.expect(
        "set k 0 0 3\r\nabc\n\r\nget k\r\n",
        &format!("{BAD_CHUNK}ERROR\r\nEND\r\n"),
    );
    // noreply silences the error.
    let (request, len) = parse_one(b"set k 0 0 1 noreply\r\nxyz");
    assert_eq!(request, error(ErrorReply::BadDataChunk, true));
    assert_eq!(len, 24);
    s.expect("set k 0 0 1 noreply\r\nxyz", "");
    s.expect("get k\r\n", "END\r\n");
}

#[test]
fn oversized_values_are_refused_and_swallowed() {
    let limits = Limits::new(1024);
    let line = b"set big 3 0 2000\r\n";
    // The line alone is enough: the length runs past the buffer's end.
    match parse(line, &limits) {
        Parsed::Request { request, len } => {
            assert_eq!(
                resolve(&request, line),
                Resolved::TooLarge {
                    mode: StoreMode::Set,
                    key: b"big".to_vec(),
                    noreply: false,
                }
            );
            assert_eq!(len, line.len() + 2000 + 2);
            assert!(len > line.len());
        }
        other => panic!("oversized set parsed as {other:?}"),
    }
    // The boundary: an item of exactly the limit fits, one more byte does not.
    let fits = 1024 - (48 + 1 + 1 + 8 + 2);
    let ok = format!("set k 0 0 {fits}\r\n");
    assert_eq!(parse(ok.as_bytes(), &limits), Parsed::Incomplete);
    let over = format!("set k 0 0 {}\r\n", fits + 1);
    assert!(matches!(
        parse(over.as_bytes(), &limits),
        Parsed::Request {
            request: Request::TooLarge { .. },
            ..
        }
    ));

    let mut s = Session::with_item_size(1024);
    s.expect("set big 0 0 1\r\nA\r\n", "STORED\r\n");
    s.expect("add other 0 0 1\r\nB\r\n", "STORED\r\n");
    // The value arrives in pieces; it is swallowed, not read as commands.
    let value = vec![b'x'; 2000];
    let mut out = s.send(b"set big 0 0 2000\r\n");
    out.extend(s.send(&value[..700]));
    out.extend(s.send(&value[700..]));
    out.extend(s.send(b"\r\nget big\r\n"));
    // As memcached, a failed set drops the old value.
    assert_eq!(String::from_utf8_lossy(&out), format!("{TOO_LARGE}END\r\n"));
    // Other storage commands leave it.
    let mut oversized_add = b"add other 0 0 2000 noreply\r\n".to_vec();
    oversized_add.extend_from_slice(&value);
    oversized_add.extend_from_slice(b"\r\nget other\r\n");
    assert_eq!(
        String::from_utf8_lossy(&s.send(&oversized_add)),
        "VALUE other 0 1\r\nB\r\nEND\r\n"
    );
    assert!(!s.closed);
}

#[test]
fn storage_line_errors() {
    // Wrong token counts are unknown commands.
    for line in [
        "set k 0 0\r\n",
        "set k 0 0 1 noreply extra\r\n",
        "set\r\n",
        "add k 0\r\n",
        "replace k\r\n",
        "append k 0 0 1 2 3\r\n",
        "prepend\r\n",
        "cas k 0 0 1\r\n",
        "cas k 0 0 1 2 noreply x\r\n",
    ] {
        assert_eq!(reply_to(line), "ERROR\r\n", "{line:?}");
        assert_eq!(
            parse_one(line.as_bytes()).0,
            error(ErrorReply::UnknownCommand, false)
        );
    }
    // Bad numbers and bad keys: the line is refused and the data is not read.
    for line in [
        "set k x 0 1\r\n",
        "set k 0 x 1\r\n",
        "set k 0 0 x\r\n",
        "set k 0 0 -1\r\n",
        "set k -1 0 1\r\n",
        "set k 4294967296 0 1\r\n",
        "set k 0 2147483648 1\r\n",
        "set k 0 0 2147483648\r\n",
        "set k 1a 0 1\r\n",
        "cas k 0 0 1 x\r\n",
        "cas k 0 0 1 -1\r\n",
        "cas k 0 0 1 18446744073709551616\r\n",
    ] {
        assert_eq!(reply_to(line), BAD_FORMAT, "{line:?}");
        assert_eq!(parse_one(line.as_bytes()).1, line.len(), "{line:?}");
    }
    // With noreply, errors are silent.
    assert_eq!(
        parse_one(b"set k x 0 1 noreply\r\n").0,
        error(ErrorReply::BadCommandLineFormat, true)
    );
    assert_eq!(reply_to("set k x 0 1 noreply\r\n"), "");
    // The data of a refused line is read as a command line.
    assert_eq!(
        reply_to("set k 0 0 x\r\nabc\r\n"),
        format!("{BAD_FORMAT}ERROR\r\n")
    );
}

// ---------------------------------------------------------------------------
// Retrieval
// ---------------------------------------------------------------------------

#[test]
fn get_forms_parse_many_keys() {
    let (request, len) = parse_one(b"get a b c\r\n");
    assert_eq!(
        request,
        Resolved::Get {
            keys: keys(&["a", "b", "c"]),
            with_cas: false,
            touch: None,
        }
    );
    assert_eq!(len, 11);
    let (request, _) = parse_one(b"gets  a   b \r\n");
    assert_eq!(
        request,
        Resolved::Get {
            keys: keys(&["a", "b"]),
            with_cas: true,
            touch: None,
        }
    );
    let (request, _) = parse_one(b"gat 100 a b\n");
    assert_eq!(
        request,
        Resolved::Get {
            keys: keys(&["a", "b"]),
            with_cas: false,
            touch: Some(100),
        }
    );
    let (request, _) = parse_one(b"gats -1 x\r\n");
    assert_eq!(
        request,
        Resolved::Get {
            keys: keys(&["x"]),
            with_cas: true,
            touch: Some(-1),
        }
    );
    // Far more keys than memcached's 24 tokens.
    let names: Vec<String> = (0..300).map(|i| format!("key{i}")).collect();
    let line = format!("get {}\r\n", names.join(" "));
    let (request, len) = parse_one(line.as_bytes());
    let expected: Vec<&str> = names.iter().map(String::as_str).collect();
    assert_eq!(
        request,
        Resolved::Get {
            keys: keys(&expected),
            with_cas: false,
            touch: None,
        }
    );
    assert_eq!(len, line.len());
    // The ancient `bget` is a `get`.
    assert_eq!(
        parse_one(b"bget a\r\n").0,
        Resolved::Get {
            keys: keys(&["a"]),
            with_cas: false,
            touch: None,
        }
    );
    // `gat` with no key reads nothing, as memcached.
    assert_eq!(reply_to("gat 10\r\n"), "END\r\n");
}

#[test]
fn get_replies_list_hits_in_order() {
    let mut s = Session::new();
    s.expect(
        "set a 1 0 1\r\nA\r\nset c 3 0 3\r\nCCC\r\n",
        "STORED\r\nSTORED\r\n",
    );
    s.expect(
        "get a b c a\r\n",
        "VALUE a 1 1\r\nA\r\nVALUE c 3 3\r\nCCC\r\nVALUE a 1 1\r\nA\r\nEND\r\n",
    );
    s.expect("get missing\r\n", "END\r\n");
    let out = String::from_utf8(s.send(b"gets a c\r\n")).unwrap();
    let lines: Vec<&str> = out.split("\r\n").collect();
    assert_eq!(lines.len(), 6, "{out:?}");
    assert!(lines[0].starts_with("VALUE a 1 1 "), "{out:?}");
    assert!(lines[2].starts_with("VALUE c 3 3 "), "{out:?}");
    assert_ne!(lines[0].rsplit(' ').next(), lines[2].rsplit(' ').next());
    assert_eq!(lines[4], "END");

    // gat changes the expiry of what it reads.
    s.expect("gat 100 a b\r\n", "VALUE a 1 1\r\nA\r\nEND\r\n");
    let gats = String::from_utf8(s.send(b"gats 0 c\r\n")).unwrap();
    assert!(gats.starts_with("VALUE c 3 3 ") && gats.ends_with("\r\nCCC\r\nEND\r\n"));
    s.now += 99;
    s.expect("get a\r\n", "VALUE a 1 1\r\nA\r\nEND\r\n");
    s.now += 1;
    s.expect("get a c\r\n", "VALUE c 3 3\r\nCCC\r\nEND\r\n");
}

#[test]
fn get_errors() {
    assert_eq!(reply_to("get\r\n"), "ERROR\r\n");
    assert_eq!(reply_to("gets\r\n"), "ERROR\r\n");
    assert_eq!(reply_to("gat\r\n"), "ERROR\r\n");
    assert_eq!(reply_to("gat x k\r\n"), BAD_EXPTIME);
    assert_eq!(reply_to("gats 1.5 k\r\n"), BAD_EXPTIME);
    assert_eq!(reply_to("gat 2147483648 k\r\n"), BAD_EXPTIME);
    let long = "k".repeat(KEY_MAX_LENGTH + 1);
    assert_eq!(reply_to(&format!("get a {long} b\r\n")), BAD_FORMAT);
    // As memcached, hits before the bad key are not sent either.
    let mut s = Session::new();
    s.expect("set a 0 0 1\r\nA\r\n", "STORED\r\n");
    s.expect(&format!("get a {long}\r\n"), BAD_FORMAT);
    s.expect(&format!("gets a {long} a\r\n"), BAD_FORMAT);
    assert_eq!(reply_to("get a\x01b\r\n"), BAD_FORMAT);
}

// ---------------------------------------------------------------------------
// Keys
// ---------------------------------------------------------------------------

#[test]
fn keys_of_250_bytes_are_accepted_and_251_refused() {
    let ok = "k".repeat(KEY_MAX_LENGTH);
    let long = "k".repeat(KEY_MAX_LENGTH + 1);
    let mut s = Session::new();
    s.expect(&format!("set {ok} 0 0 1\r\nv\r\n"), "STORED\r\n");
    s.expect(
        &format!("get {ok}\r\n"),
        &format!("VALUE {ok} 0 1\r\nv\r\nEND\r\n"),
    );
    s.expect(&format!("touch {ok} 0\r\n"), "TOUCHED\r\n");
    s.expect(&format!("delete {ok}\r\n"), "DELETED\r\n");

    for line in [
        format!("set {long} 0 0 1\r\n"),
        format!("get {long}\r\n"),
        format!("gets {long}\r\n"),
        format!("delete {long}\r\n"),
        format!("incr {long} 1\r\n"),
        format!("decr {long} 1\r\n"),
        format!("touch {long} 1\r\n"),
        format!("cas {long} 0 0 1 1\r\n"),
    ] {
        assert_eq!(
            parse_one(line.as_bytes()).0,
            error(ErrorReply::BadCommandLineFormat, false),
            "{line:?}"
        );
        assert_eq!(s.send(line.as_bytes()), BAD_FORMAT.as_bytes(), "{line:?}");
    }
}

#[test]
fn keys_with_control_characters_are_refused() {
    for key in ["a\tb", "a\x01", "\x7f", "a\0b", "a\rb", "\x1b[0m"] {
        for line in [
            format!("set {key} 0 0 1\r\n"),
            format!("get ok {key}\r\n"),
            format!("delete {key}\r\n"),
            format!("incr {key} 1\r\n"),
            format!("touch {key} 1\r\n"),
        ] {
            assert_eq!(
                parse_one(line.as_bytes()).0,
                error(ErrorReply::BadCommandLineFormat, false),
                "{line:?}"
            );
        }
    }
    // Any other byte above space is a key byte, UTF-8 included.
    let mut s = Session::new();
    s.expect("set ключ!#$ 0 0 1\r\nv\r\n", "STORED\r\n");
    s.expect("get ключ!#$\r\n", "VALUE ключ!#$ 0 1\r\nv\r\nEND\r\n");
}

// ---------------------------------------------------------------------------
// Other commands
// ---------------------------------------------------------------------------

#[test]
fn delete_forms() {
    let key = |noreply| Resolved::Delete {
        key: b"k".to_vec(),
        noreply,
    };
    assert_eq!(parse_one(b"delete k\r\n").0, key(false));
    assert_eq!(parse_one(b"delete k 0\r\n").0, key(false));
    assert_eq!(parse_one(b"delete k noreply\r\n").0, key(true));
    assert_eq!(parse_one(b"delete k 0 noreply\r\n").0, key(true));
    assert_eq!(
        parse_one(b"delete k 5\r\n").0,
        error(ErrorReply::BadDeleteFormat, false)
    );
    assert_eq!(
        parse_one(b"delete k 5 noreply\r\n").0,
        error(ErrorReply::BadDeleteFormat, true)
    );
    assert_eq!(
        parse_one(b"delete k 0 x\r\n").0,
        error(ErrorReply::BadDeleteFormat, false)
    );

    let mut s = Session::new();
    s.expect("delete k\r\n", "NOT_FOUND\r\n");
    s.expect("set k 0 0 1\r\na\r\n", "STORED\r\n");
    s.expect("delete k 5\r\n", BAD_DELETE);
    s.expect("delete k 0\r\n", "DELETED\r\n");
    s.expect("set k 0 0 1\r\na\r\n", "STORED\r\n");
    s.expect("delete k 0 noreply\r\n", "");
    s.expect("get k\r\n", "END\r\n");
    s.expect("set k 0 0 1\r\na\r\n", "STORED\r\n");
    s.expect("delete k noreply\r\n", "");
    s.expect("delete k\r\n", "NOT_FOUND\r\n");
    s.expect("delete\r\n", "ERROR\r\n");
    s.expect("delete a b c d\r\n", "ERROR\r\n");
}

#[test]
fn incr_and_decr() {
    let arith = |op, delta, noreply| Resolved::Arithmetic {
        op,
        key: b"n".to_vec(),
        delta,
        noreply,
    };
    assert_eq!(parse_one(b"incr n 5\r\n").0, arith(ArithOp::Incr, 5, false));
    assert_eq!(
        parse_one(b"decr n 18446744073709551615 noreply\r\n").0,
        arith(ArithOp::Decr, u64::MAX, true)
    );

    let mut s = Session::new();
    s.expect("incr n 1\r\n", "NOT_FOUND\r\n");
    s.expect("decr n 1\r\n", "NOT_FOUND\r\n");
    s.expect("set n 5 0 2\r\n10\r\n", "STORED\r\n");
    s.expect("incr n 5\r\n", "15\r\n");
    s.expect("decr n 6\r\n", "9\r\n");
    // A shorter number keeps the length, padded with spaces; flags stay.
    s.expect("get n\r\n", "VALUE n 5 2\r\n9 \r\nEND\r\n");
    s.expect("decr n 100\r\n", "0\r\n");
    s.expect(
        "incr n 18446744073709551615\r\n",
        "18446744073709551615\r\n",
    );
    s.expect("incr n 2\r\n", "1\r\n");
    s.expect(
        "get n\r\n",
        "VALUE n 5 20\r\n1                   \r\nEND\r\n",
    );
    s.expect("incr n 1 noreply\r\n", "");
    s.expect("decr n 1 noreply\r\n", "");
    s.expect("incr n 0\r\n", "1\r\n");
    s.expect("set t 0 0 3\r\nabc\r\n", "STORED\r\n");
    s.expect(
        "incr t 1\r\n",
        "CLIENT_ERROR cannot increment or decrement non-numeric value\r\n",
    );

    for line in [
        "incr n x\r\n",
        "decr n -1\r\n",
        "incr n 18446744073709551616\r\n",
        "incr n 1.0\r\n",
    ] {
        assert_eq!(reply_to(line), BAD_DELTA, "{line:?}");
    }
    assert_eq!(
        parse_one(b"incr n x noreply\r\n").0,
        error(ErrorReply::InvalidDelta, true)
    );
    for line in ["incr n\r\n", "decr\r\n", "incr n 1 noreply x\r\n"] {
        assert_eq!(reply_to(line), "ERROR\r\n", "{line:?}");
    }
}

#[test]
fn touch_forms() {
    assert_eq!(
        parse_one(b"touch k 10\r\n").0,
        Resolved::Touch {
            key: b"k".to_vec(),
            exptime: 10,
            noreply: false,
        }
    );
    assert_eq!(
        parse_one(b"touch k -1 noreply\r\n").0,
        Resolved::Touch {
            key: b"k".to_vec(),
            exptime: -1,
            noreply: true,
        }
    );
    let mut s = Session::new();
    s.expect("touch k 10\r\n", "NOT_FOUND\r\n");
    s.expect("set k 0 0 1\r\nv\r\n", "STORED\r\n");
    s.expect("touch k 10\r\n", "TOUCHED\r\n");
    s.now += 9;
    s.expect("get k\r\n", "VALUE k 0 1\r\nv\r\nEND\r\n");
    s.now += 1;
    s.expect("get k\r\n", "END\r\n");
    s.expect("set k 0 0 1\r\nv\r\n", "STORED\r\n");
    s.expect("touch k -1 noreply\r\n", "");
    s.expect("get k\r\n", "END\r\n");
    s.expect("touch k x\r\n", BAD_EXPTIME);
    s.expect("touch k\r\n", "ERROR\r\n");
    s.expect("touch k 1 noreply x\r\n", "ERROR\r\n");
}

#[test]
fn flush_all_forms() {
    let flush = |delay, noreply| Resolved::Plain(Request::FlushAll { delay, noreply });
    assert_eq!(parse_one(b"flush_all\r\n").0, flush(0, false));
    assert_eq!(parse_one(b"flush_all 0\r\n").0, flush(0, false));
    assert_eq!(parse_one(b"flush_all 10\r\n").0, flush(10, false));
    assert_eq!(parse_one(b"flush_all noreply\r\n").0, flush(0, true));
    assert_eq!(parse_one(b"flush_all 10 noreply\r\n").0, flush(10, true));
    assert_eq!(
        parse_one(b"flush_all x\r\n").0,
        error(ErrorReply::InvalidExptime, false)
    );

    let mut s = Session::new();
    s.expect("set a 0 0 1\r\na\r\n", "STORED\r\n");
    s.expect("flush_all\r\n", "OK\r\n");
    s.expect("get a\r\n", "END\r\n");
    s.expect("set a 0 0 1\r\na\r\n", "STORED\r\n");
    s.expect("flush_all noreply\r\n", "");
    s.expect("get a\r\n", "END\r\n");
    s.expect("flush_all x\r\n", BAD_EXPTIME);
    s.expect("flush_all 1 2 3\r\n", "ERROR\r\n");

    // A delayed flush invalidates, at now + delay - 1, what was stored by then.
    s.expect("set a 0 0 1\r\na\r\n", "STORED\r\n");
    s.expect("flush_all 10\r\n", "OK\r\n");
    s.now += 8;
    s.expect("get a\r\n", "VALUE a 0 1\r\na\r\nEND\r\n");
    s.now += 1;
    s.expect("get a\r\n", "END\r\n");
    s.now += 1;
    s.expect("set b 0 0 1\r\nb\r\n", "STORED\r\n");
    s.expect("get b\r\n", "VALUE b 0 1\r\nb\r\nEND\r\n");
    s.expect("flush_all 5 noreply\r\n", "");
    s.now += 4;
    s.expect("get b\r\n", "END\r\n");
}

#[test]
fn version_verbosity_and_quit() {
    let out = reply_to("version\r\n");
    assert!(
        out.starts_with("VERSION 1.6") && out.ends_with("\r\n"),
        "{out:?}"
    );
    assert_eq!(
        parse_one(b"version\r\n").0,
        Resolved::Plain(Request::Version)
    );

    assert_eq!(
        parse_one(b"verbosity 1\r\n").0,
        Resolved::Plain(Request::Verbosity {
            level: 1,
            noreply: false,
        })
    );
    assert_eq!(reply_to("verbosity 1\r\n"), "OK\r\n");
    assert_eq!(reply_to("verbosity 1 noreply\r\n"), "");
    assert_eq!(reply_to("verbosity x\r\n"), BAD_FORMAT);
    assert_eq!(reply_to("verbosity\r\n"), "ERROR\r\n");
    assert_eq!(reply_to("verbosity 1 2 3\r\n"), "ERROR\r\n");
    let mut s = Session::new();
    s.expect("verbosity 2\r\n", "OK\r\n");
    let listed = String::from_utf8(s.send(b"stats settings\r\n")).unwrap();
    assert!(listed.contains("STAT verbosity 2\r\n"), "{listed}");

    assert_eq!(parse_one(b"quit\r\n").0, Resolved::Plain(Request::Quit));
    let mut s = Session::new();
    // Replies before quit are sent; nothing after it is executed.
    s.expect(
        "set a 0 0 1\r\na\r\nquit\r\nset b 0 0 1\r\nb\r\n",
        "STORED\r\n",
    );
    assert!(s.closed);
    let engine = Engine::new(settings(MIB), 64 * MIB);
    let stats = engine.stats.register(Role::Loop);
    let mut out = Vec::new();
    assert_eq!(
        engine.execute(&Request::Quit, b"", &mut out, &stats, NOW),
        Flow::Close
    );
    assert!(out.is_empty());
    assert_eq!(
        engine.execute(&Request::Version, b"", &mut out, &stats, NOW),
        Flow::Continue
    );
}

#[test]
fn stats_arguments() {
    let args = |a: &str| Resolved::Stats {
        args: a.as_bytes().to_vec(),
    };
    assert_eq!(parse_one(b"stats\r\n").0, args(""));
    assert_eq!(parse_one(b"stats settings\r\n").0, args("settings"));
    assert_eq!(
        parse_one(b"stats cachedump 1 10\r\n").0,
        args("cachedump 1 10")
    );

    let mut s = Session::new();
    let general = String::from_utf8(s.send(b"stats\r\n")).unwrap();
    assert!(
        general.starts_with("STAT pid ") && general.ends_with("END\r\n"),
        "{general}"
    );
    assert!(general.contains("STAT curr_items 0\r\n"), "{general}");
    let settings = String::from_utf8(s.send(b"stats settings\r\n")).unwrap();
    assert!(
        settings.contains(&format!("STAT item_size_max {MIB}\r\n")),
        "{settings}"
    );
    assert!(settings.ends_with("END\r\n"));
    s.expect("stats reset\r\n", "RESET\r\n");
    s.expect("stats nonsense\r\n", "ERROR\r\n");
    s.expect("set key 0 0 3\r\nabc\r\n", "STORED\r\n");
    s.expect("stats cachedump 1 0\r\n", "ITEM key [3 b; 0 s]\r\nEND\r\n");
    s.expect("stats cachedump\r\n", "CLIENT_ERROR bad command line\r\n");
    s.expect("stats cachedump 1 x\r\n", BAD_FORMAT);
    s.expect(
        "stats cachedump 64 1\r\n",
        "CLIENT_ERROR Illegal slab id\r\n",
    );
    let general = String::from_utf8(s.send(b"stats\r\n")).unwrap();
    assert!(general.contains("STAT curr_items 1\r\n"), "{general}");
    assert!(general.contains("STAT cmd_set 1\r\n"), "{general}");
}

#[test]
fn cache_memlimit() {
    assert_eq!(
        parse_one(b"cache_memlimit 100\r\n").0,
        Resolved::Plain(Request::CacheMemlimit {
            megabytes: 100,
            noreply: false,
        })
    );
    let mut s = Session::new();
    s.expect("cache_memlimit 100\r\n", "OK\r\n");
    assert_eq!(s.engine.store.memory_limit(), 100 * MIB);
    s.expect(
        "cache_memlimit 7\r\n",
        "MEMLIMIT_TOO_SMALL cannot set maxbytes to less than 8m\r\n",
    );
    s.expect(
        "cache_memlimit 2000000000\r\n",
        "MEMLIMIT_ADJUST_FAILED input value is megabytes not bytes\r\n",
    );
    assert_eq!(s.engine.store.memory_limit(), 100 * MIB);
    s.expect("cache_memlimit abc\r\n", "ERROR\r\n");
    s.expect("cache_memlimit -8\r\n", "ERROR\r\n");
    s.expect("cache_memlimit\r\n", "ERROR\r\n");
    s.expect("cache_memlimit 8 noreply\r\n", "");
    assert_eq!(s.engine.store.memory_limit(), 8 * MIB);
}

#[test]
fn unknown_commands_and_wrong_token_counts() {
    for line in [
        "bogus\r\n",
        "x\r\n",
        "\r\n",
        "   \r\n",
        "GET k\r\n",
        "sets k 0 0 1\r\n",
        "incr\r\n",
        "flush_all 1 noreply x\r\n",
        "mz k v\r\n",
        "mgg k\r\n",
        "mg\r\n",
    ] {
        assert_eq!(reply_to(line), "ERROR\r\n", "{line:?}");
    }
    assert_eq!(reply_to("shutdown\r\n"), "ERROR: shutdown not enabled\r\n");
    // A bare "\n" ends a line as well as "\r\n".
    assert_eq!(
        reply_to("set a 0 0 1\na\r\nget a\n"),
        "STORED\r\nVALUE a 0 1\r\na\r\nEND\r\n"
    );
}

// ---------------------------------------------------------------------------
// Line bounds, HTTP, prefixes
// ---------------------------------------------------------------------------

#[test]
fn long_lines_without_newline_close_but_multigets_wait() {
    let limits = limits();
    assert_eq!(parse(&[b'x'; 2048], &limits), Parsed::Incomplete);
    assert_eq!(parse(&[b'x'; 2049], &limits), Parsed::Close);
    let mut set = b"set ".to_vec();
    set.resize(3000, b'k');
    assert_eq!(parse(&set, &limits), Parsed::Close);
    let mut gat = b"gat 0 ".to_vec();
    gat.resize(3000, b'k');
    assert_eq!(parse(&gat, &limits), Parsed::Close);

    for prefix in ["get ", "gets ", "  get "] {
        let mut line = prefix.as_bytes().to_vec();
        while line.len() < limits.max_get_line - 10 {
            line.extend_from_slice(b"somekey ");
        }
        line.resize(limits.max_get_line, b'k');
        assert_eq!(parse(&line, &limits), Parsed::Incomplete, "{prefix:?}");
        line.push(b'k');
        assert_eq!(parse(&line, &limits), Parsed::Close, "{prefix:?}");
    }
    // A long get line, once complete, is served.
    let mut s = Session::new();
    s.expect("set somekey 0 0 1\r\nv\r\n", "STORED\r\n");
    let mut line = b"get ".to_vec();
    for _ in 0..1000 {
        line.extend_from_slice(b"nokey ");
    }
    line.extend_from_slice(b"somekey");
    let mut out = Vec::new();
    for chunk in line.chunks(1000) {
        out.extend(s.send(chunk));
    }
    assert!(out.is_empty());
    assert_eq!(s.send(b"\r\n"), b"VALUE somekey 0 1\r\nv\r\nEND\r\n");
    assert!(!s.closed);
    // A long plain line closes the connection.
    let mut s = Session::new();
    assert!(s.send(&[b'a'; 1500]).is_empty());
    assert!(!s.closed);
    assert!(s.send(&[b'a'; 1500]).is_empty());
    assert!(s.closed);
}

#[test]
fn binary_protocol_packets_close() {
    // A binary-protocol GET header: magic 0x80, opcode 0x00, key length 1.
    let mut packet = vec![0x80, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0, 0, 1];
    packet.extend_from_slice(&[0; 12]);
    packet.push(b'k');
    assert_eq!(parse(&packet, &limits()), Parsed::Close);
    assert_eq!(parse(&packet[..1], &limits()), Parsed::Close);
    // The magic byte inside a text request is just data.
    assert!(matches!(
        parse(b"set k 0 0 1\r\n\x80\r\n", &limits()),
        Parsed::Request { .. }
    ));
}

#[test]
fn http_request_lines_close() {
    for line in [
        "GET / HTTP/1.1\r\n",
        "POST /submit HTTP/1.0\r\n",
        "HEAD /index.html HTTP/2\r\n",
    ] {
        assert_eq!(parse(line.as_bytes(), &limits()), Parsed::Close, "{line:?}");
        let mut s = Session::new();
        assert!(s.send(line.as_bytes()).is_empty());
        assert!(s.closed);
    }
    // A memcached command whose last word looks like HTTP is still a command.
    assert_eq!(
        parse_one(b"get / HTTP/1.1\r\n").0,
        Resolved::Get {
            keys: keys(&["/", "HTTP/1.1"]),
            with_cas: false,
            touch: None,
        }
    );
}

#[test]
fn every_proper_prefix_is_incomplete() {
    let requests: &[&[u8]] = &[
        b"get a\r\n",
        b"gets a b c\r\n",
        b"gat 10 a\n",
        b"set k 1 2 5\r\nab\r\nc\r\n",
        b"set k 0 0 0\r\n\r\n",
        b"cas k 0 0 1 99 noreply\r\nx\r\n",
        b"append k 0 0 3\r\n\0\0\0\r\n",
        b"set k 0 0 3\r\nabcde",
        b"delete k\n",
        b"delete k 0 noreply\r\n",
        b"incr k 1\r\n",
        b"decr k 1 noreply\r\n",
        b"touch k 1\r\n",
        b"flush_all 5\r\n",
        b"version\r\n",
        b"verbosity 1\r\n",
        b"stats items\r\n",
        b"cache_memlimit 64\r\n",
        b"quit\r\n",
        b"bogus words\r\n",
        b"\r\n",
        b"set k x 0 1\r\n",
        b"GET / HTTP/1.1\r\n",
        b"mg k s v t c f k O1 q\r\n",
        b"ms k 2 T10 F3 MA c\r\nhi\r\n",
        b"ms k 0\n\r\n",
        b"md k q I\r\n",
        b"ma k N0 J5 D2 MD v\r\n",
        b"mn\r\n",
        b"me k\r\n",
        b"mg k v v\r\n",
    ];
    let limits = limits();
    for &request in requests {
        for cut in 0..request.len() {
            assert_eq!(
                parse(&request[..cut], &limits),
                Parsed::Incomplete,
                "{:?} cut at {cut}",
                String::from_utf8_lossy(request)
            );
        }
        let whole = parse(request, &limits);
        let mut longer = request.to_vec();
        longer.extend_from_slice(b"get next\r\n");
        assert_eq!(
            parse(&longer, &limits),
            whole,
            "{:?}",
            String::from_utf8_lossy(request)
        );
        match whole {
            Parsed::Request { len, .. } => assert_eq!(len, request.len()),
            Parsed::Close => assert!(request.starts_with(b"GET")),
            Parsed::Incomplete => panic!("{:?} is incomplete", String::from_utf8_lossy(request)),
        }
    }
}

// ---------------------------------------------------------------------------
// Meta commands
// ---------------------------------------------------------------------------

#[test]
fn meta_commands_parse_key_flags_and_data() {
    let buf = b"ms a2V5 5 b T-1 F7 C9 MA I q\r\nhello\r\n";
    let Parsed::Request {
        request: Request::Meta(meta),
        len,
    } = parse(buf, &limits())
    else {
        panic!("ms did not parse");
    };
    assert_eq!(len, buf.len());
    assert_eq!(meta.command, MetaCommand::Set);
    assert_eq!(meta.key.of(buf), b"a2V5");
    assert_eq!(meta.tokens.of(buf), b"b T-1 F7 C9 MA I q");
    assert_eq!(meta.data.of(buf), b"hello");
    let f = meta.flags;
    assert!(f.has(b'b') && f.has(b'I') && f.has(b'q') && !f.has(b'v'));
    assert_eq!((f.ttl, f.client_flags, f.cas, f.mode), (-1, 7, 9, b'A'));

    let buf = b"ma n N30 J10 D4 MD\n";
    let Parsed::Request {
        request: Request::Meta(meta),
        ..
    } = parse(buf, &limits())
    else {
        panic!("ma did not parse");
    };
    assert_eq!(meta.command, MetaCommand::Arithmetic);
    let f = meta.flags;
    assert_eq!(
        (f.vivify_ttl, f.initial, f.delta, f.mode),
        (30, 10, 4, b'D')
    );
    // Without D, ma adds 1.
    let Parsed::Request {
        request: Request::Meta(meta),
        ..
    } = parse(b"ma n\r\n", &limits())
    else {
        panic!("ma did not parse");
    };
    assert_eq!(meta.flags.delta, 1);
    assert_eq!(
        parse_one(b"mn x y\r\n").0,
        Resolved::Plain(Request::MetaNoop)
    );
}

/// Every meta error, worded as memcached 1.6.18 words it.
#[test]
fn meta_error_wording() {
    let cases = [
        ("mz k\r\n", "ERROR\r\n"),
        ("mg\r\n", "ERROR\r\n"),
        ("me\r\n", "CLIENT_ERROR bad command line format\r\n"),
        ("mg k v v\r\n", "CLIENT_ERROR duplicate flag\r\n"),
        ("mg k \u{7f}\r\n", "CLIENT_ERROR duplicate flag\r\n"),
        ("mg k E\r\n", "CLIENT_ERROR invalid flag\r\n"),
        (
            "mg k Tz\r\n",
            "CLIENT_ERROR bad token in command line format\r\n",
        ),
        (
            "mg k Cz\r\n",
            "CLIENT_ERROR bad token in command line format\r\n",
        ),
        ("mg k Fz\r\n", "CLIENT_ERROR bad command line format\r\n"),
        ("mg k b\r\n", "CLIENT_ERROR error decoding key\r\n"),
        (
            "mg k Jz\r\n",
            "CLIENT_ERROR invalid numeric initial value\r\n",
        ),
        (
            "mg k Dz\r\n",
            "CLIENT_ERROR invalid numeric delta value\r\n",
        ),
        (
            "mg k MAB\r\n",
            "CLIENT_ERROR incorrect length for M token\r\n",
        ),
        ("md k E\r\n", "CLIENT_ERROR invalid or duplicate flag\r\n"),
        ("ma k Dz\r\n", "CLIENT_ERROR invalid or duplicate flag\r\n"),
        (
            "ma k MZ\r\n",
            "CLIENT_ERROR invalid mode for ma M token\r\n",
        ),
        (
            "ms k 1 MZ\r\nx\r\n",
            "CLIENT_ERROR invalid mode for ms M token\r\n",
        ),
        (
            "ms k 1 O123456789012345678901234567890123\r\nx\r\n",
            "CLIENT_ERROR opaque token too long\r\n",
        ),
        (
            "mg k O123456789012345678901234567890123\r\n",
            "CLIENT_ERROR opaque token too long\r\n",
        ),
        (
            "mg k 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8\r\n",
            "CLIENT_ERROR options flags are too long\r\n",
        ),
        (
            "md k 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8\r\n",
            "CLIENT_ERROR options flags too long\r\n",
        ),
        ("ms k 1 q\r\nxyz", "CLIENT_ERROR bad data chunk\r\n"),
        ("ms k\r\n", "CLIENT_ERROR bad command line format\r\n"),
        ("ms k -1\r\n", "CLIENT_ERROR bad command line format\r\n"),
        ("mg k\tx\r\n", "CLIENT_ERROR bad command line format\r\n"),
    ];
    for (input, expected) in cases {
        assert_eq!(reply_to(input), expected, "reply to {input:?}");
    }
}

/// What depends on the clock, with the clock moved by hand: the TTL left
/// (`t`), the time since the last access (`l`, and `me`'s `la`, which only
/// the second fetch moves, as memcached's segmented LRU does), and `me`'s
/// `exp`, the time since the deadline.
#[test]
fn meta_times_follow_the_clock() {
    let mut s = Session::new();
    s.expect("ms k 2 T100\r\nhi\r\n", "HD\r\n");
    s.now += 30;
    s.expect("mg k t l h\r\n", "HD t70 l30 h0\r\n");
    s.now += 5;
    s.expect("mg k t l h\r\n", "HD t65 l35 h1\r\n");
    s.now += 5;
    s.expect("mg k l\r\n", "HD l5\r\n");
    let me = String::from_utf8(s.send(b"me k\r\n")).unwrap();
    let cas = me
        .strip_prefix("ME k exp=-60 la=5 cas=")
        .and_then(|rest| rest.strip_suffix(" fetch=yes cls=1 size=62\r\n"));
    assert!(cas.is_some_and(|cas| cas.parse::<u64>().is_ok()), "{me:?}");
    s.expect("mg k T10 t\r\n", "HD t10\r\n");
    s.now += 10;
    s.expect("mg k\r\n", "EN\r\n");
    // R wins once the TTL left falls below it; N's TTL starts at the miss.
    s.expect("mg k N50 t v\r\n", "VA 0 t50 W\r\n\r\n");
    s.now += 20;
    s.expect("mg k R20 t\r\n", "HD t30 Z\r\n");
    s.expect("ms r 1 T100\r\nx\r\n", "HD\r\n");
    s.now += 85;
    s.expect("mg r R20 t\r\n", "HD t15 W\r\n");
    // An absolute exptime (over 30 days) is a unix time.
    s.expect(&format!("ma c N{} J1 t\r\n", s.now + 40), "HD t40\r\n");
}

/// An `ms` refused by its flags swallows its announced data as it arrives,
/// without buffering it, and the connection goes on after it.
#[test]
fn refused_ms_swallows_its_data_unbuffered() {
    let mut s = Session::new();
    assert_eq!(
        s.send(b"ms k 1000000 Tx\r\n"),
        b"CLIENT_ERROR bad token in command line format\r\n"
    );
    let chunk = vec![b'g'; 100_000];
    for _ in 0..10 {
        assert_eq!(s.send(&chunk), b"");
        assert!(s.conn.buf.len() <= chunk.len());
    }
    s.expect("\r\nmn\r\n", "MN\r\n");
    s.expect("ms k 2 q\r\nhi\r\nmg k v\r\n", "VA 2\r\nhi\r\n");
}

// ---------------------------------------------------------------------------
// Property: parsing does not depend on how the input is split
// ---------------------------------------------------------------------------

/// The limits of the property: small, so oversized values are cheap.
fn small_limits() -> Limits {
    Limits::new(4096)
}

/// One generated request: its bytes and what it must parse as. The HTTP
/// request line closes, so it is only generated last.
#[derive(Clone, Debug)]
struct Piece {
    bytes: Vec<u8>,
    expected: Event,
}

fn key_strategy() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        8 => prop::collection::vec(0x21u8..0x7f, 1..12),
        1 => Just(vec![b'L'; KEY_MAX_LENGTH]),
    ]
}

/// Keys for get lines, which may be one byte too long.
fn get_key_strategy() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        12 => key_strategy(),
        1 => Just(vec![b'M'; KEY_MAX_LENGTH + 1]),
    ]
}

fn value_strategy(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![
            4 => any::<u8>(),
            1 => Just(b'\r'),
            1 => Just(b'\n'),
            1 => Just(0u8),
        ],
        0..max,
    )
}

fn mode_strategy() -> impl Strategy<Value = StoreMode> {
    prop_oneof![
        Just(StoreMode::Set),
        Just(StoreMode::Add),
        Just(StoreMode::Replace),
        Just(StoreMode::Append),
        Just(StoreMode::Prepend),
        any::<u64>().prop_map(StoreMode::Cas),
    ]
}

fn eol_strategy() -> impl Strategy<Value = &'static [u8]> {
    prop_oneof![3 => Just(&b"\r\n"[..]), 1 => Just(&b"\n"[..])]
}

fn storage_line(
    mode: StoreMode,
    key: &[u8],
    flags: u32,
    exptime: i64,
    len: usize,
    noreply: bool,
) -> Vec<u8> {
    let mut line = format!("{} ", mode.name()).into_bytes();
    line.extend_from_slice(key);
    line.extend_from_slice(format!(" {flags} {exptime} {len}").as_bytes());
    if let StoreMode::Cas(unique) = mode {
        line.extend_from_slice(format!(" {unique}").as_bytes());
    }
    if noreply {
        line.extend_from_slice(b" noreply");
    }
    line
}

fn piece_strategy() -> impl Strategy<Value = Piece> {
    let storage = (
        mode_strategy(),
        key_strategy(),
        any::<u32>(),
        any::<i32>(),
        value_strategy(200),
        any::<bool>(),
        eol_strategy(),
    )
        .prop_map(|(mode, key, flags, exptime, data, noreply, eol)| {
            let exptime = i64::from(exptime);
            let mut bytes = storage_line(mode, &key, flags, exptime, data.len(), noreply);
            bytes.extend_from_slice(eol);
            bytes.extend_from_slice(&data);
            bytes.extend_from_slice(b"\r\n");
            let request = Resolved::Store {
                mode,
                key,
                flags,
                exptime,
                data,
                noreply,
            };
            let len = bytes.len();
            Piece {
                bytes,
                expected: Event::Request(request, len),
            }
        });
    let bad_chunk = (
        mode_strategy(),
        key_strategy(),
        value_strategy(100),
        prop::sample::select(vec![
            &b"xx"[..],
            b"\n\r",
            b"\r\r",
            b"\0\0",
            b"\r\0",
            b"\n\n",
        ]),
        any::<bool>(),
    )
        .prop_map(|(mode, key, data, end, noreply)| {
            let mut bytes = storage_line(mode, &key, 0, 0, data.len(), noreply);
            bytes.extend_from_slice(b"\r\n");
            bytes.extend_from_slice(&data);
            bytes.extend_from_slice(end);
            let len = bytes.len();
            Piece {
                bytes,
                expected: Event::Request(error(ErrorReply::BadDataChunk, noreply), len),
            }
        });
    let oversized = (
        mode_strategy(),
        key_strategy(),
        4050usize..6000,
        any::<u8>(),
        any::<bool>(),
    )
        .prop_map(|(mode, key, size, fill, noreply)| {
            let mut bytes = storage_line(mode, &key, 1, 0, size, noreply);
            bytes.extend_from_slice(b"\r\n");
            // The swallowed data need not even end in "\r\n".
            bytes.extend(std::iter::repeat_n(fill, size + 2));
            let len = bytes.len();
            let request = Resolved::TooLarge { mode, key, noreply };
            Piece {
                bytes,
                expected: Event::Request(request, len),
            }
        });
    let gets = (
        prop::sample::select(vec!["get", "gets", "gat 0", "gats -5", "gat 2592001"]),
        prop::collection::vec(get_key_strategy(), 1..12),
        eol_strategy(),
    )
        .prop_map(|(command, keys, eol)| {
            let mut bytes = command.as_bytes().to_vec();
            for key in &keys {
                bytes.push(b' ');
                bytes.extend_from_slice(key);
            }
            let noreply = keys.last().is_some_and(|k| k == b"noreply");
            let expected = if command.starts_with("gat") && bytes.len() > 2048 {
                // Only get and gets lines may grow past 2048 bytes; keep gat short.
                return None;
            } else if keys.iter().any(|k| k.len() > KEY_MAX_LENGTH) {
                error(ErrorReply::BadCommandLineFormat, noreply)
            } else {
                Resolved::Get {
                    keys,
                    with_cas: command.starts_with("gets") || command.starts_with("gats"),
                    touch: command.split(' ').nth(1).map(|t| t.parse().unwrap()),
                }
            };
            bytes.extend_from_slice(eol);
            let len = bytes.len();
            Some(Piece {
                bytes,
                expected: Event::Request(expected, len),
            })
        })
        .prop_filter_map("gat line too long", |p| p);
    // A long multi-get, past max_line but within max_get_line.
    let long_get = (20usize..38).prop_map(|n| {
        let keys: Vec<Vec<u8>> = (0..n).map(|i| format!("{i:0>100}").into_bytes()).collect();
        let mut bytes = b"get".to_vec();
        for key in &keys {
            bytes.push(b' ');
            bytes.extend_from_slice(key);
        }
        bytes.extend_from_slice(b"\r\n");
        let len = bytes.len();
        Piece {
            bytes,
            expected: Event::Request(
                Resolved::Get {
                    keys,
                    with_cas: false,
                    touch: None,
                },
                len,
            ),
        }
    });
    let bad_key = (
        key_strategy(),
        prop::sample::select(vec![0u8, 1, b'\t', 0x7f, 0x1b]),
    )
        .prop_map(|(mut key, control)| {
            key.insert(key.len() / 2, control);
            let mut bytes = b"set ".to_vec();
            bytes.extend_from_slice(&key);
            bytes.extend_from_slice(b" 0 0 1\r\n");
            let len = bytes.len();
            Piece {
                bytes,
                expected: Event::Request(error(ErrorReply::BadCommandLineFormat, false), len),
            }
        });
    // Garbage: no newline, and no '/', so no word can look like "HTTP/".
    let garbage = (
        prop::collection::vec(
            any::<u8>().prop_filter("no newline or slash", |&b| b != b'\n' && b != b'/'),
            0..80,
        ),
        eol_strategy(),
    )
        .prop_map(|(mut bytes, eol)| {
            bytes.insert(0, b'#');
            bytes.extend_from_slice(eol);
            let len = bytes.len();
            Piece {
                bytes,
                expected: Event::Request(error(ErrorReply::UnknownCommand, false), len),
            }
        });
    let simple = prop::sample::select(vec![
        (
            "delete k1 noreply\r\n",
            Resolved::Delete {
                key: b"k1".to_vec(),
                noreply: true,
            },
        ),
        ("delete k 9\r\n", error(ErrorReply::BadDeleteFormat, false)),
        (
            "incr k2 77\r\n",
            Resolved::Arithmetic {
                op: ArithOp::Incr,
                key: b"k2".to_vec(),
                delta: 77,
                noreply: false,
            },
        ),
        ("decr k2 x\n", error(ErrorReply::InvalidDelta, false)),
        (
            "touch k3 -1 noreply\r\n",
            Resolved::Touch {
                key: b"k3".to_vec(),
                exptime: -1,
                noreply: true,
            },
        ),
        ("touch k3 zz\r\n", error(ErrorReply::InvalidExptime, false)),
        (
            "flush_all 3 noreply\r\n",
            Resolved::Plain(Request::FlushAll {
                delay: 3,
                noreply: true,
            }),
        ),
        ("version\r\n", Resolved::Plain(Request::Version)),
        (
            "stats slabs\r\n",
            Resolved::Stats {
                args: b"slabs".to_vec(),
            },
        ),
        (
            "set k 0 zz 1\r\n",
            error(ErrorReply::BadCommandLineFormat, false),
        ),
        ("set k 0 0\r\n", error(ErrorReply::UnknownCommand, false)),
    ])
    .prop_map(|(line, request)| Piece {
        bytes: line.as_bytes().to_vec(),
        expected: Event::Request(request, line.len()),
    });
    prop_oneof![
        6 => storage,
        2 => bad_chunk,
        2 => oversized,
        4 => gets,
        1 => long_get,
        1 => bad_key,
        2 => garbage,
        3 => simple,
    ]
}

fn stream_strategy() -> impl Strategy<Value = (Vec<u8>, Vec<Event>)> {
    (
        prop::collection::vec(piece_strategy(), 1..24),
        any::<bool>(),
        0usize..30,
    )
        .prop_map(|(pieces, http, tail)| {
            let mut bytes = Vec::new();
            let mut expected = Vec::new();
            for piece in pieces {
                bytes.extend_from_slice(&piece.bytes);
                expected.push(piece.expected);
            }
            if http {
                bytes.extend_from_slice(b"GET /index.html HTTP/1.1\r\nget after\r\n");
                expected.push(Event::Close);
            } else {
                // An unfinished request at the end stays unparsed.
                bytes.extend_from_slice(&b"set tail 0 0 5\r\nabc"[..tail.min(19)]);
            }
            (bytes, expected)
        })
}

/// Feeds `bytes` to a fresh connection in chunks ending at `cuts`.
fn parse_split(bytes: &[u8], cuts: &[usize]) -> (Vec<Event>, (Vec<u8>, usize)) {
    let mut conn = Conn::new(small_limits());
    let mut events = Vec::new();
    let mut from = 0;
    for &cut in cuts.iter().chain(std::iter::once(&bytes.len())) {
        if cut < from {
            continue;
        }
        conn.push(&bytes[from..cut]);
        conn.drain(&mut events);
        from = cut;
    }
    (events, conn.residue())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn parsing_is_independent_of_read_boundaries(
        (bytes, expected) in stream_strategy(),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..40),
    ) {
        let whole = parse_split(&bytes, &[]);
        prop_assert_eq!(&whole.0, &expected);

        let mut cuts: Vec<usize> = cuts.iter().map(|i| i.index(bytes.len() + 1)).collect();
        cuts.sort_unstable();
        let split = parse_split(&bytes, &cuts);
        prop_assert_eq!(&split, &whole);

        let every_byte: Vec<usize> = (1..bytes.len()).collect();
        let bytewise = parse_split(&bytes, &every_byte);
        prop_assert_eq!(&bytewise, &whole);
    }
}
