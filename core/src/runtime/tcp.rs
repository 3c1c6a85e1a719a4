//! TCP for shards: listeners that share one port (SO_REUSEPORT), and accepted connections that are
//! plain `futures-io` streams, so the protocol code never names a glommio type.
//!
//! The listening sockets are made on an ordinary thread with [`bind_shared`] (so a bad address or a
//! port in use is reported before any shard starts, and port 0 resolves to one port for every shard),
//! then handed to the shards, each of which wraps its own with [`Listener::new`].

use std::io;
use std::net::SocketAddr;
use std::os::fd::{FromRawFd, IntoRawFd};
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_lite::{AsyncRead, AsyncWrite};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

/// Kernel accept backlog per listening socket (clamped by `net.core.somaxconn`).
pub const LISTEN_BACKLOG: i32 = 1024;
/// Most buffers one vectored write hands to the kernel (Linux's `IOV_MAX` is 1024).
pub const MAX_IOVECS: usize = 1024;

/// Binds `count` listening sockets to `addr` with SO_REUSEPORT and SO_REUSEADDR, so the kernel spreads
/// incoming connections across them. If `addr` has port 0 the first socket picks the port and the rest
/// bind to that one. Callable from any thread; the sockets are `Send`.
///
/// SO_REUSEPORT would also let a second broker (same user) bind the same port and silently take half the
/// connections, so the port is first claimed by a plain socket: that bind fails with `AddrInUse` if anything
/// listens there, as Kafka's does.
pub fn bind_shared(addr: SocketAddr, count: usize) -> io::Result<Vec<std::net::TcpListener>> {
    if addr.port() != 0 {
        let probe = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        // SO_REUSEADDR only: a restart may bind over connections in TIME_WAIT, never over a listener.
        probe.set_reuse_address(true)?;
        probe.bind(&SockAddr::from(addr))?;
    }
    let mut listeners = Vec::with_capacity(count);
    let mut addr = addr;
    for _ in 0..count {
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        socket.set_reuse_port(true)?;
        socket.set_reuse_address(true)?;
        socket.set_nonblocking(true)?;
        socket.bind(&SockAddr::from(addr))?;
        socket.listen(LISTEN_BACKLOG)?;
        let listener = std::net::TcpListener::from(socket);
        addr = listener.local_addr()?;
        listeners.push(listener);
    }
    Ok(listeners)
}

/// A listening socket owned by one shard.
pub struct Listener {
    inner: glommio::net::TcpListener,
}

impl Listener {
    /// Takes over a socket made by [`bind_shared`]. Must be called on the shard that will accept.
    pub fn new(listener: std::net::TcpListener) -> Self {
        // SAFETY: `into_raw_fd` gives up ownership of a bound, listening TCP socket; glommio's
        // listener takes that ownership and closes the fd when dropped.
        let inner = unsafe { glommio::net::TcpListener::from_raw_fd(listener.into_raw_fd()) };
        Self { inner }
    }

    /// Waits for the next connection.
    pub async fn accept(&self) -> io::Result<Connection> {
        let stream = self.inner.accept().await.map_err(io::Error::from)?;
        Ok(Connection { inner: stream })
    }

    /// The address this socket is bound to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr().map_err(io::Error::from)
    }
}

/// An accepted TCP connection, usable only on the shard that accepted it.
pub struct Connection {
    inner: glommio::net::TcpStream,
}

impl Connection {
    /// The remote address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.inner.peer_addr().map_err(io::Error::from)
    }

    /// Sets TCP_NODELAY (Kafka brokers and clients set it: responses are small and latency-bound).
    pub fn set_nodelay(&self, value: bool) -> io::Result<()> {
        self.inner.set_nodelay(value).map_err(io::Error::from)
    }

    /// Sets SO_SNDBUF and SO_RCVBUF (each when given) and returns the sizes the kernel reports afterwards
    /// (send, receive). Linux doubles the requested value for its bookkeeping and caps the request at
    /// `net.core.wmem_max` / `net.core.rmem_max`; setting either turns off the kernel's autotuning of that
    /// buffer for this socket.
    pub fn set_buffer_sizes(
        &self,
        send_bytes: Option<usize>,
        receive_bytes: Option<usize>,
    ) -> io::Result<(usize, usize)> {
        let fd = std::os::fd::AsRawFd::as_raw_fd(&self.inner);
        // SAFETY: `fd` is this connection's socket, open for as long as `self`, which outlives `socket`.
        let borrowed = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
        let socket = socket2::SockRef::from(&borrowed);
        if let Some(bytes) = send_bytes {
            socket.set_send_buffer_size(bytes)?;
        }
        if let Some(bytes) = receive_bytes {
            socket.set_recv_buffer_size(bytes)?;
        }
        Ok((socket.send_buffer_size()?, socket.recv_buffer_size()?))
    }
}

impl AsyncRead for Connection {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Connection {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    /// One `sendmsg(2)` for all of `bufs` (at most [`MAX_IOVECS`] of them), so a response made of a
    /// header and many shared record slices leaves in one system call without being copied together.
    /// If the socket is full, falls back to glommio's `poll_write` of the first non-empty buffer,
    /// which retries and registers for writability.
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let bufs = &bufs[..bufs.len().min(MAX_IOVECS)];
        let Some(first) = bufs.iter().find(|buf| !buf.is_empty()) else {
            return Poll::Ready(Ok(0));
        };
        if bufs.len() == 1 {
            return Pin::new(&mut self.inner).poll_write(cx, first);
        }
        // SAFETY: an all-zero msghdr is valid; it points at `bufs`, which outlives the call, and
        // `IoSlice` is guaranteed ABI-compatible with `iovec`.
        let mut message: libc::msghdr = unsafe { std::mem::zeroed() };
        message.msg_iov = bufs.as_ptr() as *mut libc::iovec;
        message.msg_iovlen = bufs.len() as _;
        let fd = std::os::fd::AsRawFd::as_raw_fd(&self.inner);
        // SAFETY: `fd` is this connection's open socket; `message` is initialized above.
        let sent = unsafe { libc::sendmsg(fd, &message, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL) };
        if sent >= 0 {
            return Poll::Ready(Ok(sent as usize));
        }
        let error = io::Error::last_os_error();
        match error.kind() {
            io::ErrorKind::WouldBlock => Pin::new(&mut self.inner).poll_write(cx, first),
            io::ErrorKind::Interrupted => {
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            _ => Poll::Ready(Err(error)),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_close(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_zero_resolves_to_one_shared_port() {
        let listeners = bind_shared("127.0.0.1:0".parse().unwrap(), 3).unwrap();
        let ports: Vec<u16> = listeners.iter().map(|l| l.local_addr().unwrap().port()).collect();
        assert_ne!(ports[0], 0);
        assert!(ports.iter().all(|port| *port == ports[0]), "{ports:?}");
    }

    #[test]
    fn a_second_broker_cannot_share_the_port() {
        let first = bind_shared("127.0.0.1:0".parse().unwrap(), 2).unwrap();
        let addr = first[0].local_addr().unwrap();
        let error = bind_shared(addr, 2).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::AddrInUse);
        drop(first);
        bind_shared(addr, 2).expect("free again once the first broker is gone");
    }

    #[test]
    fn a_port_held_without_reuseport_is_refused() {
        let plain = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let error = bind_shared(plain.local_addr().unwrap(), 1).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::AddrInUse);
    }
}
