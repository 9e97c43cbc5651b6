//! A server and how to reach it: its address, TLS or not, credentials or
//! not; every connection kvbench opens to a server (load, warmup, `stats`)
//! comes from here, ready for requests.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use rustls::{ClientConnection, StreamOwned};

use super::auth::Credentials;
use super::stream::Stream;
use super::tls::TlsClient;

/// A server kvbench talks to; cheap to clone (clones share the count of
/// connections opened).
#[derive(Clone)]
pub struct Endpoint {
    pub addr: SocketAddr,
    tls: Option<Arc<TlsClient>>,
    auth: Option<Arc<Credentials>>,
    opened: Arc<AtomicU64>,
}

impl Endpoint {
    /// Plain TCP, no authentication.
    pub fn plain(addr: SocketAddr) -> Endpoint {
        Endpoint {
            addr,
            tls: None,
            auth: None,
            opened: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The same server over TLS (or in plaintext, with `None`); a new
    /// count of connections.
    pub fn with_tls(&self, tls: Option<Arc<TlsClient>>) -> Endpoint {
        Endpoint {
            tls,
            opened: Arc::new(AtomicU64::new(0)),
            ..self.clone()
        }
    }

    /// The same server, authenticating every connection with `auth`.
    pub fn with_auth(mut self, auth: Option<Credentials>) -> Endpoint {
        self.auth = auth.map(Arc::new);
        self
    }

    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// TCP connections opened so far by this endpoint and its clones
    /// (those the server accepted, whatever became of them after).
    pub fn opened(&self) -> u64 {
        self.opened.load(Ordering::Relaxed)
    }

    /// A blocking connection with `timeout` on the connect, on every read
    /// and write, TCP_NODELAY, the TLS handshake made and the credentials
    /// accepted. Errors name the step that failed.
    pub fn connect(&self, timeout: Duration) -> io::Result<Stream> {
        let tcp = TcpStream::connect_timeout(&self.addr, timeout)?;
        self.opened.fetch_add(1, Ordering::Relaxed);
        tcp.set_nodelay(true)?;
        tcp.set_read_timeout(Some(timeout))?;
        tcp.set_write_timeout(Some(timeout))?;
        let mut stream = match &self.tls {
            None => Stream::Plain(tcp),
            Some(tls) => {
                let conn = ClientConnection::new(Arc::clone(&tls.config), tls.name.clone())
                    .map_err(io::Error::other)?;
                let mut owned = StreamOwned::new(conn, tcp);
                while owned.conn.is_handshaking() {
                    owned
                        .conn
                        .complete_io(&mut owned.sock)
                        .map_err(|e| handshake_error(&e))?;
                }
                Stream::Tls(Box::new(owned))
            }
        };
        if let Some(auth) = &self.auth {
            auth.authenticate(&mut stream)?;
        }
        Ok(stream)
    }

    /// Connects and asks `version`, failing with what is wrong when the
    /// server does not answer as one expecting this endpoint's TLS and
    /// credentials would: before a run, one clear error instead of every
    /// connection's.
    pub fn check(&self, timeout: Duration) -> Result<()> {
        let mut stream = self
            .connect(timeout)
            .with_context(|| format!("cannot connect to {self}"))?;
        let reply = stream
            .write_all(b"version\r\n")
            .and_then(|()| stream.flush())
            .and_then(|()| {
                let mut buf = [0u8; 256];
                let mut len = 0;
                while !buf[..len].ends_with(b"\r\n") && len < buf.len() {
                    match stream.read(&mut buf[len..])? {
                        0 => break,
                        n => len += n,
                    }
                }
                Ok(buf[..len].to_vec())
            });
        match reply {
            Ok(line) if line.starts_with(b"VERSION ") => Ok(()),
            Ok(line) if line.starts_with(b"CLIENT_ERROR unauthenticated") => {
                bail!("{self} requires authentication: give --auth USER:PASS")
            }
            // A TLS record (alert or handshake) where text was expected.
            Ok(line) if matches!(line.first(), Some(0x15 | 0x16)) => {
                bail!("{self} speaks TLS: give --tls")
            }
            Ok(line) if line.is_empty() && !self.is_tls() => bail!(
                "{self} closed the connection at the first request: does it expect TLS (--tls)?"
            ),
            Ok(line) => bail!(
                "{self} answered `version` with {:?}",
                String::from_utf8_lossy(&line)
            ),
            Err(e) if !self.is_tls() && e.kind() == io::ErrorKind::ConnectionReset => bail!(
                "{self} reset the connection at the first request: does it expect TLS (--tls)?"
            ),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                bail!("no reply from {self} to `version` within {timeout:?}")
            }
            Err(e) => bail!("{self}: `version`: {e}"),
        }
    }
}

/// A failed handshake, with what it most likely means.
fn handshake_error(e: &io::Error) -> io::Error {
    let hint = match e.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()) {
        Some(rustls::Error::InvalidCertificate(_)) => {
            " (the server's certificate is not one this client trusts: --tls-ca names the CA that signed it; --tls-insecure skips the check)"
        }
        Some(rustls::Error::InvalidMessage(_)) => " (does the server speak TLS?)",
        _ if e.kind() == io::ErrorKind::UnexpectedEof
            || e.kind() == io::ErrorKind::ConnectionReset =>
        {
            " (the server closed the connection: does it speak TLS?)"
        }
        _ => "",
    };
    io::Error::new(e.kind(), format!("TLS handshake: {e}{hint}"))
}

/// The address, as reports name the server.
impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.addr)
    }
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpoint")
            .field("addr", &self.addr)
            .field("tls", &self.is_tls())
            .field("auth", &self.auth)
            .finish()
    }
}
