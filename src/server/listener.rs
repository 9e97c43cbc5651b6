//! The listening sockets and the accept step every pattern shares:
//! connection limit, counters, socket options. A server may listen on
//! several addresses (`-l a,b`), each plaintext or TLS (memcached's
//! `notls:` prefix names a plaintext one beside TLS ones); reuseport
//! binds each address once per loop, on a shared port.

use std::io::{self, Write};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;

use anyhow::Context;
use mio::net::{TcpListener, TcpStream};
use socket2::{Domain, Protocol, Socket, Type};

use crate::engine::stats::ThreadStats;
use crate::engine::Engine;
use crate::protocol::reply::TOO_MANY_CONNECTIONS;

/// A listening socket, and whether its connections speak TLS.
pub struct Listener {
    pub socket: TcpListener,
    pub tls: bool,
}

/// A connection just accepted, on its way to the thread that will own it
/// (and do its TLS handshake, if it has one).
pub struct Accepted {
    pub stream: TcpStream,
    pub tls: bool,
}

/// Every socket the server listens on. The thread that accepts registers
/// them all under one token, and accepts from each when it fires: a few
/// non-blocking `accept` calls that find nothing cost less than telling
/// the listeners apart.
pub struct Listeners(pub Vec<Listener>);

impl Listeners {
    /// Stops polling them (shutdown: accept nothing more).
    pub fn deregister(&mut self, registry: &mio::Registry) {
        for listener in &mut self.0 {
            let _ = registry.deregister(&mut listener.socket);
        }
    }

    /// reuseport: a listener beside each of these, on the same address
    /// and port, for another loop (see [`bind_beside`]).
    pub fn beside(&self) -> anyhow::Result<Listeners> {
        let each = self.0.iter().map(|l| {
            Ok(Listener {
                socket: bind_beside(&l.socket)?,
                tls: l.tls,
            })
        });
        Ok(Listeners(each.collect::<anyhow::Result<_>>()?))
    }

    /// The address each listens on.
    pub fn addrs(&self) -> io::Result<Vec<SocketAddr>> {
        self.0.iter().map(|l| l.socket.local_addr()).collect()
    }
}

/// Binds a non-blocking listener with memcached's backlog (1024).
pub fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    listen(bound(addr, false)?)
}

/// reuseport's first listener: bound with `SO_REUSEPORT`, so that
/// [`bind_beside`] can bind the other loops' listeners to the same address
/// and the kernel deals new connections over them by a hash of each
/// connection's addresses.
///
/// A port another socket listens on is refused with [`bind`]'s error, even
/// when that socket has `SO_REUSEPORT` too: the kernel lets any process of
/// the same user join it, and a second kvserve that did would silently take
/// a share of the connections into a cache of its own, so a client's `set`
/// and its next `get` could meet different caches. So the port is first
/// bound without `SO_REUSEPORT`, as [`bind`] binds it (which fails on a
/// socket listening there, with or without the option), and let go. A
/// process that binds it with `SO_REUSEPORT` between the two binds is not
/// caught.
pub fn bind_reuseport(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    if addr.port() != 0 {
        drop(bound(addr, false)?);
    }
    listen(bound(addr, true)?)
}

/// Another listener on the address of `first` (from [`bind_reuseport`]),
/// which shares its port: the kernel deals new connections between them.
pub fn bind_beside(first: &TcpListener) -> anyhow::Result<TcpListener> {
    listen(bound(first.local_addr()?, true)?)
}

/// A non-blocking socket bound to `addr`, with `SO_REUSEADDR` (a port
/// whose last connections are still in TIME_WAIT can be bound again) and,
/// if asked, `SO_REUSEPORT`.
fn bound(addr: SocketAddr, reuse_port: bool) -> anyhow::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    socket.set_nonblocking(true)?;
    socket
        .bind(&addr.into())
        .with_context(|| format!("cannot listen on {addr}"))?;
    Ok(socket)
}

fn listen(socket: Socket) -> anyhow::Result<TcpListener> {
    socket.listen(1024)?;
    Ok(TcpListener::from_std(socket.into()))
}

/// Accepts every pending connection and hands each to `take`, refusing
/// those over `--max-conns` with memcached's error. Returns `Err` only for
/// an error that leaves connections pending (such as running out of file
/// descriptors), so the caller retries soon rather than waiting for an event.
pub fn accept_pending(
    listeners: &Listeners,
    engine: &Engine,
    stats: &ThreadStats,
    mut take: impl FnMut(Accepted),
) -> io::Result<()> {
    for listener in &listeners.0 {
        accept_from(listener, engine, stats, &mut take)?;
    }
    Ok(())
}

fn accept_from(
    listener: &Listener,
    engine: &Engine,
    stats: &ThreadStats,
    take: &mut impl FnMut(Accepted),
) -> io::Result<()> {
    let counts = &engine.stats;
    loop {
        let stream = match listener.socket.accept() {
            Ok((stream, _)) => stream,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => continue,
            Err(e) => return Err(e),
        };
        if counts.curr_connections.load(Ordering::Relaxed) >= engine.settings.max_conns as u64 {
            counts.rejected_connections.fetch_add(1, Ordering::Relaxed);
            tracing::debug!("Too many open connections");
            // Best effort, as memcached: the socket is new, so the short
            // reply fits its send buffer.
            let mut stream = stream;
            let _ = stream.write(TOO_MANY_CONNECTIONS);
            continue;
        }
        let _ = stream.set_nodelay(true);
        counts.curr_connections.fetch_add(1, Ordering::Relaxed);
        counts.total_connections.fetch_add(1, Ordering::Relaxed);
        stats.connections.incr();
        take(Accepted {
            stream,
            tls: listener.tls,
        });
    }
}

/// To be called once for every accepted connection when it closes.
pub fn connection_closed(engine: &Engine) {
    engine
        .stats
        .curr_connections
        .fetch_sub(1, Ordering::Relaxed);
}
