//! The byte stream under LDAP: a Unix socket, a TCP socket, or TLS over TCP; every system call
//! bounded by the operation's deadline, and messages framed by their BER length.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use zeroize::Zeroizing;

use super::LdapError;
use super::ber;
#[cfg(feature = "tls")]
use super::tls::TlsStream;
use super::url::Host;

/// Time left before `deadline`; [`LdapError::Timeout`] once it has passed.
pub fn remaining(deadline: Instant) -> Result<Duration, LdapError> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        Err(LdapError::Timeout)
    } else {
        Ok(left)
    }
}

/// A socket error, with the ones a timeout gives mapped to [`LdapError::Timeout`].
pub fn io_error(e: io::Error) -> LdapError {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => LdapError::Timeout,
        _ => LdapError::Io(e),
    }
}

/// The server closed the connection.
pub fn closed() -> LdapError {
    LdapError::Io(io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "the server closed the connection",
    ))
}

/// Connects to a Unix socket within the deadline: a non-blocking connect retried while the
/// listener's backlog is full (EAGAIN), so a stalled server cannot hold the caller.
pub fn connect_unix(path: &Path, deadline: Instant) -> Result<UnixStream, LdapError> {
    use nix::errno::Errno;
    use nix::sys::socket::{AddressFamily, SockFlag, SockType, UnixAddr, connect, socket};
    let addr = UnixAddr::new(path).map_err(|e| LdapError::Io(e.into()))?;
    let fd = socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(|e| LdapError::Io(e.into()))?;
    loop {
        match connect(fd.as_raw_fd(), &addr) {
            Ok(()) => break,
            Err(Errno::EAGAIN | Errno::EINTR) => {
                let left = remaining(deadline)?;
                std::thread::sleep(left.min(Duration::from_millis(10)));
            }
            Err(e) => return Err(LdapError::Io(e.into())),
        }
    }
    let stream = UnixStream::from(fd);
    stream.set_nonblocking(false)?;
    Ok(stream)
}

/// Connects to `host:port` within the deadline, trying each address the name resolves to.
pub fn connect_tcp(host: &Host, port: u16, deadline: Instant) -> Result<TcpStream, LdapError> {
    let addrs: Vec<SocketAddr> = match host {
        Host::Ip(ip) => vec![SocketAddr::new(*ip, port)],
        Host::Name(name) => (name.as_str(), port)
            .to_socket_addrs()
            .map_err(|e| {
                LdapError::Io(io::Error::new(
                    io::ErrorKind::HostUnreachable,
                    format!("cannot resolve {name}: {e}"),
                ))
            })?
            .collect(),
    };
    let mut last = LdapError::Io(io::Error::new(
        io::ErrorKind::HostUnreachable,
        format!("{host} has no address"),
    ));
    for addr in addrs {
        let left = remaining(deadline)?;
        match TcpStream::connect_timeout(&addr, left) {
            Ok(s) => {
                s.set_nodelay(true)?;
                return Ok(s);
            }
            Err(e) => last = io_error(e),
        }
    }
    Err(last)
}

/// A connected socket, plain or with TLS.
pub enum Stream {
    /// `ldapi://`.
    Unix(UnixStream),
    /// `ldap://` before or without StartTLS.
    Tcp(TcpStream),
    /// `ldaps://`, or `ldap://` after StartTLS.
    #[cfg(feature = "tls")]
    Tls(Box<TlsStream>),
}

/// A socket whose every read and write waits at most until a deadline.
pub trait TimedSocket: Read + Write {
    /// Sets the timeouts of the next reads and writes.
    fn set_timeouts(&self, t: Duration) -> io::Result<()>;
}

impl TimedSocket for TcpStream {
    fn set_timeouts(&self, t: Duration) -> io::Result<()> {
        self.set_read_timeout(Some(t))?;
        self.set_write_timeout(Some(t))
    }
}

impl TimedSocket for UnixStream {
    fn set_timeouts(&self, t: Duration) -> io::Result<()> {
        self.set_read_timeout(Some(t))?;
        self.set_write_timeout(Some(t))
    }
}

/// One read system call, waiting at most until `deadline`; `Ok(0)` at the end of the stream.
pub fn read_once<S: TimedSocket>(
    s: &mut S,
    buf: &mut [u8],
    deadline: Instant,
) -> Result<usize, LdapError> {
    loop {
        s.set_timeouts(remaining(deadline)?)?;
        match s.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            r => return r.map_err(io_error),
        }
    }
}

/// Writes all of `data`, each system call waiting at most until `deadline`.
pub fn write_all<S: TimedSocket>(
    s: &mut S,
    mut data: &[u8],
    deadline: Instant,
) -> Result<(), LdapError> {
    while !data.is_empty() {
        s.set_timeouts(remaining(deadline)?)?;
        match s.write(data) {
            Ok(0) => return Err(LdapError::Io(io::ErrorKind::WriteZero.into())),
            Ok(n) => data = data.get(n..).unwrap_or_default(),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io_error(e)),
        }
    }
    Ok(())
}

impl Stream {
    fn read_some(&mut self, buf: &mut [u8], deadline: Instant) -> Result<usize, LdapError> {
        match self {
            Stream::Unix(s) => read_once(s, buf, deadline),
            Stream::Tcp(s) => read_once(s, buf, deadline),
            #[cfg(feature = "tls")]
            Stream::Tls(s) => s.read_some(buf, deadline),
        }
    }

    fn write_all(&mut self, data: &[u8], deadline: Instant) -> Result<(), LdapError> {
        match self {
            Stream::Unix(s) => write_all(s, data, deadline),
            Stream::Tcp(s) => write_all(s, data, deadline),
            #[cfg(feature = "tls")]
            Stream::Tls(s) => s.write_all(data, deadline),
        }
    }
}

/// Size of the read buffer: most messages fit in one read; longer ones are read straight into
/// a buffer of their own size.
const BUF_SIZE: usize = 16 * 1024;

/// A stream of LDAP messages.
pub struct Framed {
    /// The socket.
    pub stream: Stream,
    buf: Zeroizing<Vec<u8>>,
    lo: usize,
    hi: usize,
}

impl Framed {
    /// Frames messages on `stream`.
    pub fn new(stream: Stream) -> Framed {
        Framed {
            stream,
            buf: Zeroizing::new(vec![0; BUF_SIZE]),
            lo: 0,
            hi: 0,
        }
    }

    /// The stream back, if no bytes after the last message read are waiting in the buffer
    /// (after StartTLS, such bytes would have come in the clear).
    pub fn into_stream(self) -> Option<Stream> {
        (self.lo == self.hi).then_some(self.stream)
    }

    /// Sends `data` (whole messages).
    pub fn send(&mut self, data: &[u8], deadline: Instant) -> Result<(), LdapError> {
        self.stream.write_all(data, deadline)
    }

    /// Reads one more chunk into the buffer.
    fn fill(&mut self, deadline: Instant) -> Result<(), LdapError> {
        if self.lo == self.hi {
            (self.lo, self.hi) = (0, 0);
        } else if self.hi == self.buf.len() {
            self.buf.copy_within(self.lo..self.hi, 0);
            (self.lo, self.hi) = (0, self.hi - self.lo);
        }
        let free = self.buf.get_mut(self.hi..).unwrap_or_default();
        match self.stream.read_some(free, deadline)? {
            0 => Err(closed()),
            n => {
                self.hi += n;
                Ok(())
            }
        }
    }

    /// Reads the next whole message (its identifier and length included) into a buffer of its
    /// own, wiped when dropped. A length beyond [`ber::MAX_MESSAGE`] is refused unread.
    pub fn read_message(&mut self, deadline: Instant) -> Result<Zeroizing<Vec<u8>>, LdapError> {
        let (tag, header, len) = loop {
            let pending = self.buf.get(self.lo..self.hi).unwrap_or_default();
            if let Some(h) = ber::header(pending)? {
                break h;
            }
            self.fill(deadline)?;
        };
        if tag != ber::Tag::SEQUENCE {
            return Err(LdapError::Protocol(format!(
                "a message starts with tag {:#04x}, not SEQUENCE",
                tag.0
            )));
        }
        let total = header + len;
        let mut msg = Zeroizing::new(vec![0u8; total]);
        let have = total.min(self.hi - self.lo);
        if let (Some(dst), Some(src)) = (msg.get_mut(..have), self.buf.get(self.lo..self.lo + have))
        {
            dst.copy_from_slice(src);
        }
        self.lo += have;
        let mut at = have;
        while at < total {
            let dst = msg.get_mut(at..).unwrap_or_default();
            match self.stream.read_some(dst, deadline)? {
                0 => return Err(closed()),
                n => at += n,
            }
        }
        Ok(msg)
    }
}
