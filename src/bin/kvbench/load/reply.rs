//! Reply parsing for the client: the memcached text protocol's replies to
//! `get` and `set`, framed incrementally across reads and matched in order
//! to the requests in flight; what counts as an error, and of which kind.

use std::collections::VecDeque;

/// Longest reply line accepted before the stream counts as broken.
const MAX_LINE: usize = 8192;
/// Largest `VALUE` data block accepted (memcached's own ceiling is 1 GiB).
const MAX_DATA: usize = 1 << 30;

/// What a request expects back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// `get k1 .. kN`: up to N `VALUE` blocks, then `END`.
    Get { keys: u32 },
    /// `set`: `STORED`.
    Set,
}

/// Why a request failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// `ERROR`
    Error,
    /// `CLIENT_ERROR ...`
    ClientError,
    /// `SERVER_ERROR ...`
    ServerError,
    /// Any other reply than the one expected, or a broken stream.
    Unexpected,
    /// Connect failure, reset, or EOF with the request in flight.
    Connection,
    /// No reply before the end of the run's grace period.
    Timeout,
}

impl ErrorKind {
    pub const ALL: [ErrorKind; 6] = [
        ErrorKind::Error,
        ErrorKind::ClientError,
        ErrorKind::ServerError,
        ErrorKind::Unexpected,
        ErrorKind::Connection,
        ErrorKind::Timeout,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::Error => "error",
            ErrorKind::ClientError => "client_error",
            ErrorKind::ServerError => "server_error",
            ErrorKind::Unexpected => "unexpected",
            ErrorKind::Connection => "connection",
            ErrorKind::Timeout => "timeout",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

/// How a reply turned out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A get's `END`, after `hits` `VALUE` blocks.
    Got {
        hits: u32,
    },
    Stored,
    Failed(ErrorKind),
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum State {
    /// At the start of a line.
    #[default]
    Line,
    /// Inside a `VALUE` data block: this many bytes to skip.
    Data(usize),
    /// After a data block: the empty line (`\r\n`) that closes it.
    DataEnd,
}

/// Frames replies incrementally: feed it whatever arrived; it skips value
/// data without buffering it and needs only whole lines.
#[derive(Debug, Default)]
pub struct ReplyParser {
    state: State,
    hits: u32,
    broken: bool,
    error_line: Option<String>,
}

impl ReplyParser {
    /// Consumes bytes of the reply to `expect` from `input`: returns how
    /// many were consumed and, once the reply is complete, its outcome.
    /// An incomplete line is left unconsumed: pass it again with more bytes.
    /// After a framing error (`is_broken`) the stream cannot be trusted.
    pub fn feed(&mut self, input: &[u8], expect: Expect) -> (usize, Option<Outcome>) {
        let mut pos = 0;
        loop {
            if let State::Data(remaining) = self.state {
                let take = remaining.min(input.len() - pos);
                pos += take;
                if take < remaining {
                    self.state = State::Data(remaining - take);
                    return (pos, None);
                }
                self.state = State::DataEnd;
            }
            let rest = &input[pos..];
            let Some(nl) = rest.iter().position(|&b| b == b'\n') else {
                if rest.len() > MAX_LINE {
                    return (input.len(), Some(self.broken("reply line too long", rest)));
                }
                return (pos, None);
            };
            pos += nl + 1;
            let Some(line) = rest[..nl].strip_suffix(b"\r") else {
                return (
                    pos,
                    Some(self.broken("line not ended by \\r\\n", &rest[..nl])),
                );
            };
            if self.state == State::DataEnd {
                if !line.is_empty() {
                    return (pos, Some(self.broken("value data too long", line)));
                }
                self.state = State::Line;
                continue;
            }
            if let Some(outcome) = self.line(line, expect) {
                self.hits = 0;
                return (pos, Some(outcome));
            }
        }
    }

    /// One whole line (without `\r\n`) of the reply; `Some` ends the reply.
    fn line(&mut self, line: &[u8], expect: Expect) -> Option<Outcome> {
        if let Some(kind) = error_kind(line) {
            self.note(line);
            return Some(Outcome::Failed(kind));
        }
        match expect {
            Expect::Set if line == b"STORED" => Some(Outcome::Stored),
            Expect::Get { keys } if line == b"END" => {
                if self.hits <= keys {
                    Some(Outcome::Got { hits: self.hits })
                } else {
                    self.note(b"more VALUE blocks than keys asked for");
                    Some(Outcome::Failed(ErrorKind::Unexpected))
                }
            }
            Expect::Get { .. } if line.starts_with(b"VALUE ") => match value_len(line) {
                Some(n) => {
                    self.hits += 1;
                    self.state = State::Data(n);
                    None
                }
                None => Some(self.broken("bad VALUE line", line)),
            },
            _ => {
                self.note(line);
                Some(Outcome::Failed(ErrorKind::Unexpected))
            }
        }
    }

    fn broken(&mut self, why: &str, line: &[u8]) -> Outcome {
        self.broken = true;
        self.state = State::Line;
        self.hits = 0;
        let mut text = format!("{why}: ");
        text.push_str(&printable(line));
        self.note(text.as_bytes());
        Outcome::Failed(ErrorKind::Unexpected)
    }

    fn note(&mut self, line: &[u8]) {
        self.error_line = Some(printable(line));
    }

    /// True in the middle of a reply (some of it consumed).
    pub fn mid_reply(&self) -> bool {
        self.state != State::Line || self.hits > 0
    }

    /// True after a framing error: close the connection.
    pub fn is_broken(&self) -> bool {
        self.broken
    }

    /// Marks the stream broken from outside (bytes nobody asked for).
    pub fn set_broken(&mut self, why: &str) {
        self.broken = true;
        self.note(why.as_bytes());
    }

    /// The last error or unexpected line seen, once.
    pub fn take_error_line(&mut self) -> Option<String> {
        self.error_line.take()
    }
}

fn error_kind(line: &[u8]) -> Option<ErrorKind> {
    if line == b"ERROR" || line.starts_with(b"ERROR ") {
        Some(ErrorKind::Error)
    } else if line.starts_with(b"CLIENT_ERROR") {
        Some(ErrorKind::ClientError)
    } else if line.starts_with(b"SERVER_ERROR") {
        Some(ErrorKind::ServerError)
    } else {
        None
    }
}

/// `VALUE <key> <flags> <bytes> [<cas>]` → bytes.
fn value_len(line: &[u8]) -> Option<usize> {
    let mut words = line.split(|&b| b == b' ').filter(|w| !w.is_empty());
    let bytes = words.nth(3)?;
    let n: usize = std::str::from_utf8(bytes).ok()?.parse().ok()?;
    (n <= MAX_DATA).then_some(n)
}

/// At most 120 bytes of a line, with non-printable bytes escaped.
pub fn printable(line: &[u8]) -> String {
    let mut s = String::new();
    for &b in line.iter().take(120) {
        match b {
            0x20..=0x7e => s.push(b as char),
            b'\r' => s.push_str("\\r"),
            b'\n' => s.push_str("\\n"),
            _ => s.push_str(&format!("\\x{b:02x}")),
        }
    }
    if line.len() > 120 {
        s.push_str("...");
    }
    s
}

/// Matches complete replies in `input` to the oldest requests in flight;
/// returns the bytes consumed.
pub fn parse_replies<T: Copy>(
    parser: &mut ReplyParser,
    inflight: &mut VecDeque<(Expect, T)>,
    input: &[u8],
    mut on_reply: impl FnMut(Expect, T, Outcome),
) -> usize {
    let mut pos = 0;
    while pos < input.len() && !parser.is_broken() {
        let Some(&(expect, tag)) = inflight.front() else {
            parser.set_broken(&format!(
                "bytes with no request in flight: {}",
                printable(&input[pos..])
            ));
            return input.len();
        };
        let (used, outcome) = parser.feed(&input[pos..], expect);
        pos += used;
        match outcome {
            Some(outcome) => {
                inflight.pop_front();
                on_reply(expect, tag, outcome);
            }
            None => break,
        }
    }
    pos
}

#[cfg(test)]
mod tests {
    use super::*;

    const GET1: Expect = Expect::Get { keys: 1 };
    const GET3: Expect = Expect::Get { keys: 3 };

    /// Feeds `stream` in chunks of `chunk` bytes, carrying incomplete lines
    /// as `Conn` does; returns the outcomes.
    fn run(expects: &[Expect], stream: &[u8], chunk: usize) -> (Vec<Outcome>, ReplyParser) {
        let mut parser = ReplyParser::default();
        let mut inflight: VecDeque<(Expect, usize)> =
            expects.iter().enumerate().map(|(i, &e)| (e, i)).collect();
        let mut out = Vec::new();
        let mut carry = Vec::new();
        for piece in stream.chunks(chunk) {
            carry.extend_from_slice(piece);
            let used = parse_replies(&mut parser, &mut inflight, &carry, |_, i, o| {
                assert_eq!(i, out.len(), "replies in order");
                out.push(o);
            });
            carry.drain(..used);
            if parser.is_broken() {
                return (out, parser);
            }
        }
        assert!(carry.is_empty(), "left over: {carry:?}");
        (out, parser)
    }

    #[test]
    fn value_end_framing_across_every_split() {
        let stream = b"VALUE k1 0 5\r\nhello\r\nVALUE k3 7 10 99\r\nEND\r\nEND\r\n\r\nEND\r\nEND\r\nSTORED\r\nEND\r\n";
        let expects = [GET3, GET1, Expect::Set, GET1];
        for chunk in 1..=stream.len() {
            let (out, parser) = run(&expects, stream, chunk);
            assert_eq!(
                out,
                [
                    Outcome::Got { hits: 2 },
                    Outcome::Got { hits: 0 },
                    Outcome::Stored,
                    Outcome::Got { hits: 0 },
                ],
                "chunk {chunk}"
            );
            assert!(!parser.is_broken());
        }
    }

    #[test]
    fn data_that_looks_like_protocol_is_skipped() {
        // The value itself contains "END\r\n" and "VALUE": only its length counts.
        let stream = b"VALUE k 0 18\r\nEND\r\nVALUE x 0 1\r\n\r\nEND\r\n";
        for chunk in 1..=stream.len() {
            let (out, _) = run(&[GET1], stream, chunk);
            assert_eq!(out, [Outcome::Got { hits: 1 }], "chunk {chunk}");
        }
    }

    #[test]
    fn error_replies() {
        let stream = b"ERROR\r\nCLIENT_ERROR bad data chunk\r\nSERVER_ERROR object too large for cache\r\nNOT_STORED\r\nVALUE a 0 1\r\nx\r\nSERVER_ERROR out of memory\r\nSTORED\r\n";
        let expects = [GET1, Expect::Set, Expect::Set, Expect::Set, GET1, GET1];
        for chunk in [1, 3, 7, stream.len()] {
            let (out, mut parser) = run(&expects, stream, chunk);
            assert_eq!(
                out,
                [
                    Outcome::Failed(ErrorKind::Error),
                    Outcome::Failed(ErrorKind::ClientError),
                    Outcome::Failed(ErrorKind::ServerError),
                    Outcome::Failed(ErrorKind::Unexpected),
                    Outcome::Failed(ErrorKind::ServerError),
                    // A set's reply where a get's was expected.
                    Outcome::Failed(ErrorKind::Unexpected),
                ]
            );
            assert!(!parser.is_broken());
            assert_eq!(parser.take_error_line().as_deref(), Some("STORED"));
        }
    }

    #[test]
    fn too_many_values_is_unexpected() {
        let stream = b"VALUE a 0 1\r\nx\r\nVALUE a 0 1\r\ny\r\nEND\r\n";
        let (out, _) = run(&[GET1], stream, 4);
        assert_eq!(out, [Outcome::Failed(ErrorKind::Unexpected)]);
    }

    #[test]
    fn broken_streams() {
        // Data longer than announced.
        let (out, parser) = run(&[GET1, GET1], b"VALUE a 0 1\r\nxy\r\nEND\r\nEND\r\n", 5);
        assert_eq!(out, [Outcome::Failed(ErrorKind::Unexpected)]);
        assert!(parser.is_broken());
        // Bad VALUE header.
        let (_, parser) = run(&[GET1], b"VALUE a 0 lots\r\n", 64);
        assert!(parser.is_broken());
        // Bare \n.
        let (_, parser) = run(&[Expect::Set], b"STORED\n", 64);
        assert!(parser.is_broken());
        // A reply nobody asked for.
        let (out, parser) = run(&[Expect::Set], b"STORED\r\nSTORED\r\n", 64);
        assert_eq!(out, [Outcome::Stored]);
        assert!(parser.is_broken());
        // An endless line.
        let mut parser = ReplyParser::default();
        let (used, outcome) = parser.feed(&[b'a'; MAX_LINE + 1], Expect::Set);
        assert_eq!(used, MAX_LINE + 1);
        assert_eq!(outcome, Some(Outcome::Failed(ErrorKind::Unexpected)));
        assert!(parser.is_broken());
    }

    #[test]
    fn incomplete_line_is_not_consumed() {
        let mut parser = ReplyParser::default();
        assert_eq!(parser.feed(b"STOR", Expect::Set), (0, None));
        assert_eq!(
            parser.feed(b"STORED\r\n", Expect::Set),
            (8, Some(Outcome::Stored))
        );
        // Data is consumed as it comes, the header line only when whole.
        assert_eq!(parser.feed(b"VALUE k 0 10\r\nabc", GET1), (17, None));
        assert_eq!(parser.feed(b"defghij\r", GET1), (7, None));
        assert_eq!(
            parser.feed(b"\r\nEND\r\n", GET1),
            (7, Some(Outcome::Got { hits: 1 }))
        );
    }
}
