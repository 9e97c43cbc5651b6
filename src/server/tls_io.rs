//! A connection's TLS session: the socket's bytes go through it both
//! ways, on whichever thread reads or writes the connection, so the crypto
//! runs where each pattern does its I/O (drawn in
//! [`super::patterns`]). The handshake runs inside the first reads, on the
//! thread that owns the connection: never on an acceptor.
//!
//! Each read takes what one `read(2)` gives into the session, decrypts the
//! whole records in it, and hands their plaintext on; a read that did not
//! fill the space the session offered drained the socket, as on a
//! plaintext connection, so no read is spent only to hear EAGAIN.

use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use rustls::{HandshakeKind, ServerConnection};

use super::receive;
use crate::engine::stats::ThreadStats;
use crate::tls::TlsCounters;

/// One connection's session and where its errors are counted.
pub struct TlsIo {
    session: ServerConnection,
    counters: Arc<TlsCounters>,
}

/// What a read through the session gave.
pub struct Received {
    /// Plaintext bytes put in the buffer; 0 with `closed`.
    pub len: usize,
    /// How long ago the last bytes read arrived, if the kernel said.
    pub age: Option<Duration>,
    /// The socket has nothing more now: wait for an event before reading.
    pub drained: bool,
    /// The peer ended the stream (close_notify, or the socket's end).
    pub closed: bool,
}

impl TlsIo {
    pub fn new(session: ServerConnection, counters: Arc<TlsCounters>) -> TlsIo {
        TlsIo { session, counters }
    }

    /// Reads plaintext into `space`: what the session holds decrypted, or
    /// else what one read of the socket brings, after the handshake steps
    /// it completes (their replies are written at once). `readable`:
    /// whether the socket may have bytes.
    pub fn read(
        &mut self,
        stream: &mut TcpStream,
        stamped: bool,
        readable: bool,
        space: &mut [u8],
        stats: &ThreadStats,
    ) -> io::Result<Received> {
        let mut received = Received {
            len: 0,
            age: None,
            drained: !readable,
            closed: false,
        };
        loop {
            match self.session.reader().read(space) {
                Ok(0) => {
                    received.closed = true;
                    return Ok(received);
                }
                Ok(n) => {
                    received.len = n;
                    // More plaintext waits if this did not empty the session.
                    received.drained &= n < space.len();
                    return Ok(received);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                // The socket ended without close_notify: a truncation
                // attack to rustls, a client that went away to us.
                Err(_) => {
                    received.closed = true;
                    return Ok(received);
                }
            }
            if received.drained {
                return Ok(received);
            }
            let mut socket = Socket {
                stream: &mut *stream,
                stamped,
                asked: 0,
                got: 0,
                age: None,
            };
            match self.session.read_tls(&mut socket) {
                Ok(0) => {
                    received.closed = true;
                    return Ok(received);
                }
                Ok(_) => {
                    received.drained = socket.got < socket.asked;
                    received.age = socket.age;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    received.drained = true;
                    return Ok(received);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            self.process(stream, stats)?;
        }
    }

    /// Decrypts and acts on the records read: handshake messages are
    /// answered at once. A record that fails ends the connection, after
    /// the alert saying why is sent.
    fn process(&mut self, stream: &mut TcpStream, stats: &ThreadStats) -> io::Result<()> {
        let started = Instant::now();
        let handshaking = self.session.is_handshaking();
        let result = self.session.process_new_packets();
        stats.tls_ns.add(started.elapsed().as_nanos() as u64);
        if let Err(e) = result {
            let counter = if handshaking {
                &self.counters.handshake_errors
            } else {
                &self.counters.proto_errors
            };
            counter.fetch_add(1, Ordering::Relaxed);
            tracing::debug!("{}: TLS: {e}", stream.as_raw_fd());
            let _ = self.session.write_tls(stream);
            return Err(io::Error::new(io::ErrorKind::InvalidData, e));
        }
        if handshaking && !self.session.is_handshaking() {
            stats.tls_handshakes.incr();
            if self.session.handshake_kind() == Some(HandshakeKind::Resumed) {
                stats.tls_resumed.incr();
            }
        }
        // Handshake replies (and session tickets) go out now: the client
        // waits for them before it sends a request.
        self.send(stream).map(|_| ())
    }

    /// Encrypts as much of `plaintext` as the session's buffer takes
    /// (`ssl_wbuf_size`) and writes what the socket takes. Returns the
    /// plaintext bytes taken, and whether everything taken was written.
    pub fn write(
        &mut self,
        stream: &mut TcpStream,
        plaintext: &[u8],
        stats: &ThreadStats,
    ) -> io::Result<(usize, bool)> {
        let mut taken = 0;
        loop {
            let mut took = 0;
            if taken < plaintext.len() {
                let started = Instant::now();
                took = self.session.writer().write(&plaintext[taken..])?;
                stats.tls_ns.add(started.elapsed().as_nanos() as u64);
                taken += took;
            }
            if !self.send(stream)? {
                return Ok((taken, false));
            }
            if taken == plaintext.len() {
                return Ok((taken, true));
            }
            if took == 0 {
                // The session takes nothing and has nothing to send: only
                // before its handshake ends, which a client's requests
                // (and so replies) cannot precede. Wait for the socket.
                return Ok((taken, false));
            }
        }
    }

    /// Writes encrypted bytes until none are left (`true`) or the socket
    /// is full (`false`).
    fn send(&mut self, stream: &mut TcpStream) -> io::Result<bool> {
        while self.session.wants_write() {
            match self.session.write_tls(stream) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }

    /// Whether encrypted bytes wait for the socket.
    pub fn has_unsent(&self) -> bool {
        self.session.wants_write()
    }
}

/// The socket as the session reads it: one read, remembering whether it
/// filled the space offered and when its bytes arrived.
struct Socket<'a> {
    stream: &'a mut TcpStream,
    stamped: bool,
    asked: usize,
    got: usize,
    age: Option<Duration>,
}

impl Read for Socket<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.asked = buf.len();
        let (n, age) = if self.stamped {
            receive::recv(self.stream.as_raw_fd(), buf)?
        } else {
            (self.stream.read(buf)?, None)
        };
        self.got = n;
        self.age = age;
        Ok(n)
    }
}
