//! A connection to a server at the socket boundary, in plaintext or TLS:
//! [`Stream`] blocking (warmup, `stats`, churn), [`Transport`] non-blocking
//! in a client thread's event loop. The plaintext arm reads and writes the
//! socket itself, as before TLS: one branch, no copy.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::fd::AsRawFd;
use std::time::Duration;

use rustls::{ClientConnection, HandshakeKind, StreamOwned};

/// A blocking connection, ready for requests (handshake and
/// authentication done).
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

impl Stream {
    /// The TCP socket under it.
    pub fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(s) => &s.sock,
        }
    }

    /// Whether the TLS handshake resumed an earlier session; `None` in
    /// plaintext.
    pub fn resumed(&self) -> Option<bool> {
        match self {
            Stream::Plain(_) => None,
            Stream::Tls(s) => Some(s.conn.handshake_kind() == Some(HandshakeKind::Resumed)),
        }
    }

    /// Makes the close, when the stream is dropped, a reset (SO_LINGER 0)
    /// instead of a FIN, without TLS's close_notify: the socket leaves no
    /// TIME_WAIT behind. A client opening thousands of connections a
    /// second to one port would otherwise run out of ephemeral ports
    /// within seconds (28,232 by default, each held 60 s in TIME_WAIT; on
    /// loopback the server's end of the connection is in the same table).
    /// The server reads the reset where it would have read the end of the
    /// stream: one read either way.
    pub fn reset_on_close(&self) {
        let _ = socket2::SockRef::from(self.tcp()).set_linger(Some(Duration::ZERO));
    }

    /// Into a non-blocking [`Transport`] for an event loop.
    pub fn into_transport(self) -> io::Result<Transport> {
        self.tcp().set_nonblocking(true)?;
        Ok(match self {
            Stream::Plain(s) => Transport::Plain(mio::net::TcpStream::from_std(s)),
            Stream::Tls(s) => {
                let StreamOwned { conn, sock } = *s;
                Transport::Tls(Box::new(TlsTransport {
                    conn,
                    sock: mio::net::TcpStream::from_std(sock),
                }))
            }
        })
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

/// A non-blocking connection driven by edge-triggered readiness.
pub enum Transport {
    Plain(mio::net::TcpStream),
    Tls(Box<TlsTransport>),
}

/// rustls's state and the socket under it.
pub struct TlsTransport {
    conn: ClientConnection,
    sock: mio::net::TcpStream,
}

impl Transport {
    /// The socket, to register with a poll.
    pub fn socket(&mut self) -> &mut mio::net::TcpStream {
        match self {
            Transport::Plain(s) => s,
            Transport::Tls(t) => &mut t.sock,
        }
    }

    /// Reads what the server sent into `buf`: `Ok((0, _))` at the end of
    /// the stream, `WouldBlock` when there is nothing. With the count,
    /// whether the socket is known to be empty now (a short read of it),
    /// so that the next bytes raise a new edge and no read is needed to
    /// hear `WouldBlock`.
    #[inline]
    pub fn read(&mut self, buf: &mut [u8]) -> io::Result<(usize, bool)> {
        match self {
            Transport::Plain(s) => {
                let n = s.read(buf)?;
                Ok((n, n < buf.len()))
            }
            Transport::Tls(t) => t.read(buf),
        }
    }

    /// Writes `data`: how much was taken. Over TLS, taken means encrypted:
    /// records the socket had no room for wait for [`Transport::flush_queued`].
    #[inline]
    pub fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        match self {
            Transport::Plain(s) => s.write(data),
            Transport::Tls(t) => t.write(data),
        }
    }

    /// Writes the TLS records still queued, as far as the socket takes
    /// them (a writable edge resumes); nothing in plaintext.
    #[inline]
    pub fn flush_queued(&mut self) -> io::Result<()> {
        match self {
            Transport::Plain(_) => Ok(()),
            Transport::Tls(t) => t.flush_queued().map(drop),
        }
    }

    /// Where the bytes of a connection whose replies stopped coming are:
    /// in the kernel's queues (unread; sent but not yet acknowledged by the
    /// server's kernel) and, over TLS, in rustls's (records not yet
    /// written). All empty says the server has the requests and is not
    /// answering.
    pub fn stuck_state(&self) -> String {
        let (unread, unacknowledged) = queued(self.socket_ref());
        let mut state =
            format!("socket: {unread} bytes unread, {unacknowledged} sent and not acknowledged");
        if let Transport::Tls(t) = self {
            state += if t.conn.wants_write() {
                "; TLS records waiting to be written"
            } else {
                "; no TLS record waiting"
            };
        }
        state
    }

    fn socket_ref(&self) -> &mio::net::TcpStream {
        match self {
            Transport::Plain(s) => s,
            Transport::Tls(t) => &t.sock,
        }
    }

    /// Shuts the socket down both ways (a lost connection).
    pub fn shutdown(&mut self) {
        let _ = self.socket().shutdown(Shutdown::Both);
    }
}

impl TlsTransport {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<(usize, bool)> {
        let mut socket_emptied = false;
        loop {
            match self.conn.reader().read(buf) {
                Ok(n) => {
                    let left = self.process()?.plaintext_bytes_to_read();
                    return Ok((n, socket_emptied && left == 0));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
            // No plaintext decrypted: more records from the socket.
            let mut sock = ShortRead {
                sock: &mut self.sock,
                short: false,
            };
            self.conn.read_tls(&mut sock)?;
            socket_emptied = sock.short;
            self.process()?;
            // Whatever the records called for (an alert, a key update).
            self.flush_queued()?;
        }
    }

    fn process(&mut self) -> io::Result<rustls::IoState> {
        self.conn
            .process_new_packets()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }

    /// Encrypts as much of `data` as the socket takes: a short count
    /// means the socket is full, as in plaintext, and a writable edge
    /// will follow.
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let mut taken = 0;
        while self.flush_queued()? && taken < data.len() {
            taken += self.conn.writer().write(&data[taken..])?;
        }
        if taken == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(taken)
    }

    /// Writes queued records; true when none is left.
    fn flush_queued(&mut self) -> io::Result<bool> {
        while self.conn.wants_write() {
            match self.conn.write_tls(&mut self.sock) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }
}

/// The bytes in a socket's receive queue and in its send queue (sent, not
/// yet acknowledged); zeros where the kernel does not say.
fn queued(socket: &impl AsRawFd) -> (libc::c_int, libc::c_int) {
    let (mut unread, mut unacknowledged): (libc::c_int, libc::c_int) = (0, 0);
    // SAFETY: FIONREAD and TIOCOUTQ write one int through the pointer, on
    // a descriptor the socket owns.
    unsafe {
        libc::ioctl(socket.as_raw_fd(), libc::FIONREAD, &mut unread);
        libc::ioctl(socket.as_raw_fd(), libc::TIOCOUTQ, &mut unacknowledged);
    }
    (unread, unacknowledged)
}

/// The socket as rustls reads it, noting a short read (the socket emptied).
struct ShortRead<'a> {
    sock: &'a mut mio::net::TcpStream,
    short: bool,
}

impl Read for ShortRead<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.sock.read(buf)?;
        self.short = n < buf.len();
        Ok(n)
    }
}
