//! One client connection: request encoding and non-blocking I/O, its
//! replies framed by [`super::reply`].

use std::collections::VecDeque;
use std::io;
use std::sync::Arc;
use std::time::Instant;

use crate::load::reply::{parse_replies, Expect, Outcome, ReplyParser};
use crate::load::workload::{GroupSpec, Rng};
use crate::net::stream::{Stream, Transport};

/// Value bytes: a fixed pattern, sliced to each set's length.
pub fn value_bytes(max: usize) -> Arc<[u8]> {
    (0..max).map(|i| b'a' + (i % 26) as u8).collect()
}

fn push_u64(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// `set PREFIX<key> 0 0 LEN\r\n<data>\r\n`
pub fn encode_set(out: &mut Vec<u8>, prefix: &[u8], key: u64, value: &[u8]) {
    out.extend_from_slice(b"set ");
    out.extend_from_slice(prefix);
    push_u64(out, key);
    out.extend_from_slice(b" 0 0 ");
    push_u64(out, value.len() as u64);
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Produces one group's requests: random keys, gets or sets by the ratio.
pub struct RequestGen {
    spec: Arc<GroupSpec>,
    rng: Rng,
    value: Arc<[u8]>,
}

impl RequestGen {
    pub fn new(spec: Arc<GroupSpec>, seed: u64, value: Arc<[u8]>) -> RequestGen {
        RequestGen {
            spec,
            rng: Rng::new(seed),
            value,
        }
    }

    /// Appends the next request to `out`; returns what it expects.
    pub fn encode(&mut self, out: &mut Vec<u8>) -> Expect {
        let spec = &*self.spec;
        let prefix = spec.key_prefix.as_bytes();
        if spec.get_ratio.pick_get(&mut self.rng) {
            out.extend_from_slice(b"get");
            for _ in 0..spec.multiget {
                out.push(b' ');
                out.extend_from_slice(prefix);
                push_u64(out, self.rng.below(spec.keys));
            }
            out.extend_from_slice(b"\r\n");
            Expect::Get {
                keys: spec.multiget,
            }
        } else {
            let key = self.rng.below(spec.keys);
            let len = spec.value_size.pick(&mut self.rng);
            encode_set(out, prefix, key, &self.value[..len]);
            Expect::Set
        }
    }

    pub fn spec(&self) -> &GroupSpec {
        &self.spec
    }
}

/// A non-blocking connection driven by a client thread's event loop.
pub struct Conn {
    pub stream: Transport,
    pub group: usize,
    pub gen: RequestGen,
    out: Vec<u8>,
    out_pos: usize,
    /// Bytes of an incomplete reply line, kept across reads.
    carry: Vec<u8>,
    /// Requests sent and not yet answered, oldest first, with the time each
    /// was sent (closed loop) or meant to be sent (open loop).
    pub inflight: VecDeque<(Expect, Instant)>,
    pub parser: ReplyParser,
}

impl Conn {
    /// Takes over a connection made by [`crate::net::Endpoint::connect`].
    pub fn new(stream: Stream, group: usize, gen: RequestGen) -> io::Result<Conn> {
        Ok(Conn {
            stream: stream.into_transport()?,
            group,
            gen,
            out: Vec::new(),
            out_pos: 0,
            carry: Vec::new(),
            inflight: VecDeque::new(),
            parser: ReplyParser::default(),
        })
    }

    /// Where a connection whose replies stopped coming was left, e.g.
    /// `2 requests in flight, all sent, no byte of the next reply; socket:
    /// 0 bytes unread, 0 sent and not acknowledged`.
    pub fn stuck_state(&self) -> String {
        let unsent = self.out.len() - self.out_pos;
        let sent = if unsent == 0 {
            "all sent".to_string()
        } else {
            format!("{unsent} request bytes unsent")
        };
        let reply = if self.parser.mid_reply() || !self.carry.is_empty() {
            "the next reply partly received"
        } else {
            "no byte of the next reply"
        };
        format!(
            "{} requests in flight, {sent}, {reply}; {}",
            self.inflight.len(),
            self.stream.stuck_state()
        )
    }

    /// Queues the next request, timed from `start`.
    pub fn send(&mut self, start: Instant) {
        let expect = self.gen.encode(&mut self.out);
        self.inflight.push_back((expect, start));
    }

    /// Writes queued requests until done or the socket is full.
    pub fn flush(&mut self) -> io::Result<()> {
        while self.out_pos < self.out.len() {
            match self.stream.write(&self.out[self.out_pos..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.out_pos += n;
                    if self.out_pos < self.out.len() {
                        // A short write filled the socket buffer; the next
                        // writable event says when there is room again.
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.stream.flush_queued()?;
        if self.out_pos == self.out.len() {
            self.out.clear();
            self.out_pos = 0;
        } else if self.out_pos >= 1 << 20 {
            self.out.drain(..self.out_pos);
            self.out_pos = 0;
        }
        Ok(())
    }

    /// Reads until the socket is empty, calling `on_reply(expect, start,
    /// done, outcome)` for each complete reply, `done` being when the read
    /// that completed it returned. An error means the connection is lost
    /// (EOF, reset, or a broken stream).
    pub fn receive(
        &mut self,
        scratch: &mut [u8],
        mut on_reply: impl FnMut(Expect, Instant, Instant, Outcome),
    ) -> io::Result<()> {
        loop {
            let (n, emptied) = match self.stream.read(scratch) {
                Ok((0, _)) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "server closed the connection",
                    ))
                }
                Ok(read) => read,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            let now = Instant::now();
            if self.carry.is_empty() {
                let used = self.parse(&scratch[..n], now, &mut on_reply);
                self.carry.extend_from_slice(&scratch[used..n]);
            } else {
                let mut carry = std::mem::take(&mut self.carry);
                carry.extend_from_slice(&scratch[..n]);
                let used = self.parse(&carry, now, &mut on_reply);
                carry.drain(..used);
                self.carry = carry;
            }
            if self.parser.is_broken() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "reply stream out of step",
                ));
            }
            if emptied {
                // A short read emptied the socket; with edge-triggered
                // epoll, bytes arriving later raise a new event. Saves the
                // read that would only say EWOULDBLOCK.
                return Ok(());
            }
        }
    }

    fn parse(
        &mut self,
        input: &[u8],
        now: Instant,
        on_reply: &mut impl FnMut(Expect, Instant, Instant, Outcome),
    ) -> usize {
        parse_replies(
            &mut self.parser,
            &mut self.inflight,
            input,
            |expect, start, outcome| on_reply(expect, start, now, outcome),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GET3: Expect = Expect::Get { keys: 3 };

    #[test]
    fn encoding() {
        let mut out = Vec::new();
        encode_set(&mut out, b"p:", 42, b"abc");
        assert_eq!(out, b"set p:42 0 0 3\r\nabc\r\n");
        let mut out = Vec::new();
        push_u64(&mut out, 0);
        push_u64(&mut out, u64::MAX);
        assert_eq!(out, b"018446744073709551615");
        let spec = GroupSpec {
            name: "all".into(),
            connections: 1,
            keys: 5,
            key_prefix: "k".into(),
            value_size: crate::load::workload::ValueSize::fixed(4),
            get_ratio: crate::load::workload::Ratio { gets: 1, sets: 0 },
            multiget: 3,
            pipeline: 1,
            rate: None,
            arrivals: crate::load::workload::Arrivals::Even,
        };
        let mut gen = RequestGen::new(Arc::new(spec), 1, value_bytes(4));
        let mut out = Vec::new();
        assert_eq!(gen.encode(&mut out), GET3);
        let text = String::from_utf8(out).unwrap();
        let words: Vec<_> = text.trim_end().split(' ').collect();
        assert_eq!(words.len(), 4, "{text}");
        assert!(words[1..]
            .iter()
            .all(|w| w.len() == 2 && w.starts_with('k')));
        assert!(text.ends_with("\r\n"));
    }
}
