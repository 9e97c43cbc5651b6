//! One client connection's buffers and I/O, the same in every pattern;
//! serving it (write, parse, execute, read) is [`super::batch`]'s.
//!
//! The read buffer holds bytes from `start` to `end`; requests are parsed in
//! place and name their keys by offsets into it. Replies collect in `output`
//! and go out in one write per batch of requests. A connection whose unsent
//! output passes the configured bound is not read or parsed further until
//! the client catches up (memcached's `conn_mwrite`), so a client that never
//! reads costs bounded memory.

use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Interest, Registry, Token};

use super::tls_io::TlsIo;
use super::{command_log, polling, receive};
use crate::engine::stages::{before, Stage};
use crate::engine::stats::ThreadStats;
use crate::engine::{Engine, Flow};
use crate::protocol::{parse, parse_handshake, Handshake, Limits, Parsed, Request};

/// Smallest free space a read is offered; the buffer grows to make room.
const MIN_READ: usize = 4096;
/// First size of a read buffer, allocated on a connection's first read.
const INITIAL_BUFFER: usize = 16 * 1024;
/// Buffers are given back when emptied above this size, so that a large
/// value read or replied once does not stay pinned by an idle connection;
/// the allocator hands the next large buffer out again from pages it has
/// just freed.
const KEEP_BUFFER: usize = 32 * 1024;

/// The next thing in the read buffer.
pub enum Next {
    Request(Request, usize),
    /// Read more first.
    Incomplete,
    /// The input is not the protocol: close without reading further.
    Close,
}

/// What a readiness event said about a connection, kept apart from the
/// event so that its owner can hold it while the connection is away.
#[derive(Clone, Copy, Default)]
pub struct Readiness {
    readable: bool,
    read_closed: bool,
}

impl Readiness {
    /// What `event` says.
    pub fn of(event: &mio::event::Event) -> Readiness {
        Readiness {
            readable: event.is_readable() || event.is_read_closed(),
            read_closed: event.is_read_closed(),
        }
    }

    /// What raw epoll event flags say, read as mio reads them (for
    /// events taken from another thread's epoll).
    pub fn of_epoll(flags: u32) -> Readiness {
        let flags = flags as libc::c_int;
        let read_closed = flags & libc::EPOLLHUP != 0
            || (flags & libc::EPOLLIN != 0 && flags & libc::EPOLLRDHUP != 0);
        Readiness {
            readable: flags & (libc::EPOLLIN | libc::EPOLLPRI) != 0 || read_closed,
            read_closed,
        }
    }

    /// Adds what a later event said.
    pub fn merge(&mut self, later: Readiness) {
        self.readable |= later.readable;
        self.read_closed |= later.read_closed;
    }
}

pub struct Connection {
    pub stream: TcpStream,
    input: Vec<u8>,
    start: usize,
    end: usize,
    /// Bytes of an oversized value still to be discarded as they arrive.
    swallow: usize,
    output: Vec<u8>,
    written: usize,
    /// Set by readiness events, cleared once the socket is known drained.
    readable: bool,
    /// The peer has shut down its sending side (seen in an event).
    read_closed: bool,
    /// No more requests: close once the output is written.
    closing: bool,
    /// Whether the poller also watches for writability. Only while output
    /// is stuck: with edge-triggered epoll, a socket watched for writing
    /// wakes its loop on every ACK that frees send buffer space.
    watching_writes: bool,
    /// When the client last sent anything: the last read that got bytes
    /// (for `--idle-timeout`, and the start of its requests' time here).
    last_read: Instant,
    /// When the last byte of that read arrived in the socket, if the
    /// kernel said.
    last_arrival: Option<Instant>,
    /// Reads ask the kernel for the arrival time (`--stamp-arrivals`).
    stamped: bool,
    /// The socket's descriptor when commands and replies are logged
    /// (`-vv`), decided once when the connection opens.
    log_fd: Option<RawFd>,
    /// The TLS session the socket's bytes go through, on a TLS listener's
    /// connection. Boxed: a session is a few hundred bytes that a
    /// plaintext connection should not carry.
    tls: Option<Box<TlsIo>>,
    /// The client has authenticated, or need not (no `-Y`): its requests
    /// are read as requests, not as the handshake. Set on the connection,
    /// which carries it to whichever thread serves it next.
    authenticated: bool,
}

impl Connection {
    /// A connection on `stream`, through `tls` if it is a TLS listener's,
    /// whose reads ask the kernel when their bytes arrived if `stamped`.
    pub fn new(stream: TcpStream, stamped: bool, tls: Option<TlsIo>) -> Connection {
        let log_fd = command_log::enabled().then(|| stream.as_raw_fd());
        if let Some(fd) = log_fd {
            command_log::opened(fd);
        }
        if stamped {
            receive::stamp_arrivals(stream.as_raw_fd());
        }
        Connection {
            stamped,
            log_fd,
            stream,
            input: Vec::new(),
            start: 0,
            end: 0,
            swallow: 0,
            output: Vec::new(),
            written: 0,
            readable: true,
            read_closed: false,
            closing: false,
            watching_writes: false,
            last_read: Instant::now(),
            last_arrival: None,
            tls: tls.map(Box::new),
            authenticated: false,
        }
    }

    /// Parses the next request out of the read buffer and consumes it. The
    /// request's spans stay valid until the next [`fill`](Self::fill).
    #[inline]
    pub fn next_request(&mut self, engine: &Engine) -> Next {
        // Serving a connection asks here before every read: with one
        // request per read, 3 of the 4 asks per request find nothing
        // buffered, and cost no call to the parser.
        if self.start == self.end {
            return Next::Incomplete;
        }
        if !self.authenticated {
            return self.next_unauthenticated(engine);
        }
        self.parse_next(&engine.limits)
    }

    /// [`next_request`](Self::next_request) before the connection is known
    /// to be authenticated: once, without `-Y`; with it, the handshake,
    /// whose credentials are checked here, so that the requests after it
    /// are read as the answer says.
    #[cold]
    fn next_unauthenticated(&mut self, engine: &Engine) -> Next {
        let Some(auth) = &engine.auth else {
            self.authenticated = true;
            return self.parse_next(&engine.limits);
        };
        let at = self.start;
        let input = &self.input[at..self.end];
        let (request, len) = match parse_handshake(input) {
            Handshake::Credentials {
                user,
                password,
                len,
            } => {
                self.authenticated = auth.check(user.of(input), password.of(input));
                let accepted = self.authenticated;
                (Request::Auth { accepted }, len)
            }
            Handshake::Refused { reply, len } => (
                Request::Error {
                    reply,
                    noreply: false,
                },
                len,
            ),
            Handshake::Incomplete => return Next::Incomplete,
            Handshake::Close => {
                tracing::debug!(
                    "{}: an unauthenticated line or credentials over the limit; closing",
                    self.stream.as_raw_fd()
                );
                return Next::Close;
            }
        };
        self.start += len;
        Next::Request(request, at)
    }

    fn parse_next(&mut self, limits: &Limits) -> Next {
        if self.swallow > 0 {
            let dropped = self.swallow.min(self.end - self.start);
            self.start += dropped;
            self.swallow -= dropped;
            if self.swallow > 0 {
                return Next::Incomplete;
            }
        }
        let at = self.start;
        match parse(&self.input[at..self.end], limits) {
            Parsed::Request { request, len } => {
                let available = self.end - at;
                self.start += len.min(available);
                self.swallow = len.saturating_sub(available);
                Next::Request(request, at)
            }
            Parsed::Incomplete => Next::Incomplete,
            Parsed::Close => {
                tracing::debug!(
                    "{}: not the text protocol (a binary packet, or a command line too long); closing",
                    self.stream.as_raw_fd()
                );
                Next::Close
            }
        }
    }

    /// Executes a request parsed at offset `at` of the read buffer (by
    /// [`next_request`](Self::next_request), with no read since), appending
    /// its reply to the output. After a `quit` (`Flow::Close`) nothing more
    /// is executed and the connection closes once the output is written.
    pub fn execute(
        &mut self,
        request: &Request,
        at: usize,
        engine: &Engine,
        stats: &ThreadStats,
        now: u32,
    ) -> Flow {
        let input = &self.input[at..self.end];
        let mark = self.output.len();
        let flow = engine.execute(request, input, &mut self.output, stats, now);
        if let Some(fd) = self.log_fd {
            command_log::exchange(fd, input, &self.output[mark..]);
        }
        if flow == Flow::Close {
            self.closing = true;
        }
        flow
    }

    /// Takes note of a readiness event for this connection.
    pub fn on_event(&mut self, readiness: Readiness) {
        self.readable |= readiness.readable;
        self.read_closed |= readiness.read_closed;
    }

    /// Reads again even without a new event: at shutdown, bytes may wait
    /// in the socket whose event was not yet taken.
    pub fn expect_input(&mut self) {
        self.readable = true;
    }

    /// Reads once from the socket. `Ok(true)`: got bytes; `Ok(false)`: it
    /// would block; an end of stream closes once the output is written.
    pub fn fill(&mut self, stats: &ThreadStats) -> io::Result<bool> {
        if self.tls.is_some() {
            return self.fill_through_tls(stats);
        }
        if !self.readable {
            return Ok(false);
        }
        self.make_room();
        loop {
            let space = &mut self.input[self.end..];
            let read = if self.stamped {
                receive::recv(self.stream.as_raw_fd(), space)
            } else {
                self.stream.read(space).map(|n| (n, None))
            };
            match read {
                Ok((0, _)) => {
                    self.closing = true;
                    return Ok(false);
                }
                Ok((n, age)) => {
                    // A read that did not fill the space offered took all the
                    // socket had (as memcached assumes), so skip the read that
                    // would only say EAGAIN: edge-triggered polling reports the
                    // next arrival, and the peer's FIN came with the event.
                    if self.end + n < self.input.len() && !self.read_closed {
                        self.readable = false;
                    }
                    self.took(n, age, stats);
                    return Ok(true);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.readable = false;
                    return Ok(false);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    tracing::debug!("{}: read failed: {e}", self.stream.as_raw_fd());
                    return Err(e);
                }
            }
        }
    }

    /// The plaintext of what one read of the socket brought, or of what
    /// the session still held: [`fill`](Self::fill) for TLS. The session
    /// may hold plaintext when the socket has no event, so it is asked
    /// even when the socket is not readable.
    fn fill_through_tls(&mut self, stats: &ThreadStats) -> io::Result<bool> {
        self.make_room();
        let Some(tls) = self.tls.as_deref_mut() else {
            return Ok(false);
        };
        let space = &mut self.input[self.end..];
        let received = tls
            .read(&mut self.stream, self.stamped, self.readable, space, stats)
            .inspect_err(|e| tracing::debug!("{}: read failed: {e}", self.stream.as_raw_fd()))?;
        if received.drained && !self.read_closed {
            self.readable = false;
        }
        if received.closed {
            self.closing = true;
            return Ok(false);
        }
        if received.len == 0 {
            return Ok(false);
        }
        self.took(received.len, received.age, stats);
        Ok(true)
    }

    /// Takes note of `n` bytes read, the last of which arrived `age` ago.
    fn took(&mut self, n: usize, age: Option<Duration>, stats: &ThreadStats) {
        self.end += n;
        self.last_read = Instant::now();
        self.last_arrival = age.map(|age| before(self.last_read, age));
        if let Some(woke) = self.last_arrival.and_then(polling::wakeup_after) {
            let ns = woke.as_nanos() as u64;
            stats.stages.get(Stage::Wakeup).record(ns, 1);
        }
        stats.bytes_read.add(n as u64);
    }

    /// Writes pending output; `Ok(true)` once all of it is gone.
    #[inline]
    pub fn flush(&mut self, stats: &ThreadStats) -> io::Result<bool> {
        // Serving a connection flushes before it parses, and most often
        // finds the output written already.
        if self.output.is_empty() && self.tls.as_ref().is_none_or(|tls| !tls.has_unsent()) {
            return Ok(true);
        }
        self.write_out(stats)
    }

    fn write_out(&mut self, stats: &ThreadStats) -> io::Result<bool> {
        if let Some(tls) = self.tls.as_deref_mut() {
            let unsent = &self.output[self.written..];
            let (taken, sent) = tls
                .write(&mut self.stream, unsent, stats)
                .inspect_err(|e| {
                    tracing::debug!("{}: write failed: {e}", self.stream.as_raw_fd())
                })?;
            self.written += taken;
            stats.bytes_written.add(taken as u64);
            if !sent || self.written < self.output.len() {
                return Ok(false);
            }
        }
        while self.written < self.output.len() {
            match self.stream.write(&self.output[self.written..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.written += n;
                    stats.bytes_written.add(n as u64);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    tracing::debug!("{}: write failed: {e}", self.stream.as_raw_fd());
                    return Err(e);
                }
            }
        }
        self.output.clear();
        self.written = 0;
        if self.output.capacity() > KEEP_BUFFER {
            self.output = Vec::new();
        }
        Ok(true)
    }

    /// Registers the connection with a poller, for reading only.
    pub fn register(&mut self, registry: &Registry, token: Token) -> io::Result<()> {
        registry.register(&mut self.stream, token, Interest::READABLE)
    }

    /// Watches for writability exactly while output is pending.
    pub fn update_interest(&mut self, registry: &Registry, token: Token) -> io::Result<()> {
        let stuck = self.pending_output() > 0;
        if stuck != self.watching_writes {
            let interest = if stuck {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            registry.reregister(&mut self.stream, token, interest)?;
            self.watching_writes = stuck;
        }
        Ok(())
    }

    /// When the bytes of the last read arrived in the socket (if the kernel
    /// said) and when they were read.
    pub fn last_read(&self) -> (Option<Instant>, Instant) {
        (self.last_arrival, self.last_read)
    }

    /// Whether the client has sent nothing for longer than `timeout` and
    /// has nothing left to receive (`--idle-timeout`).
    pub fn is_idle(&self, now: Instant, timeout: Duration) -> bool {
        self.pending_output() == 0 && now.duration_since(self.last_read) > timeout
    }

    /// Reply bytes not yet written: the connection's own, and (counted
    /// as one) any its TLS session holds encrypted.
    pub fn pending_output(&self) -> usize {
        let in_session = self.tls.as_ref().is_some_and(|tls| tls.has_unsent());
        self.output.len() - self.written + usize::from(in_session)
    }

    /// Whether the connection is to be closed once its output is written.
    pub fn is_closing(&self) -> bool {
        self.closing
    }

    pub fn set_closing(&mut self) {
        self.closing = true;
    }

    /// Makes at least `MIN_READ` bytes of free space after `end`.
    fn make_room(&mut self) {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
            if self.input.len() > KEEP_BUFFER {
                self.input = Vec::new();
            }
        }
        if self.input.len() - self.end >= MIN_READ {
            return;
        }
        if self.start > 0 {
            self.input.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.input.len() - self.end < MIN_READ {
            let size = (self.input.len() * 2).max(INITIAL_BUFFER);
            self.input.resize(size, 0);
        }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        if let Some(fd) = self.log_fd {
            command_log::closed(fd);
        }
    }
}
