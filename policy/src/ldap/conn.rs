//! A connection to an LDAP server: connect, bind, then any number of operations in a row, one
//! at a time, each bounded by a deadline.

use std::fmt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use zeroize::Zeroizing;

use super::entry::{Entry, Mod};
use super::filter::Filter;
use super::proto::{self, BindAuth, LdapResult, Response, Scope};
use super::stream::{Framed, Stream, connect_tcp, connect_unix};
#[cfg(feature = "tls")]
use super::tls::TlsStream;
use super::url::LdapUrl;
use super::{LdapError, ber};

/// The most a whole search may bring back, 64 MiB (each message at most
/// [`MAX_MESSAGE`](super::MAX_MESSAGE)): beyond that the server is hostile or the search is
/// not one of ours.
pub const MAX_SEARCH_BYTES: usize = 4 * ber::MAX_MESSAGE;

/// How to connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// The time limit of each step: connecting (with the TLS handshake and StartTLS), then
    /// each operation as a whole, however slowly the server sends its answer. Also sent to the
    /// server as the time limit of searches, rounded up to whole seconds.
    pub timeout: Duration,
    /// StartTLS (RFC 4511 §4.14) right after connecting to an `ldap://` URL, and fail if the
    /// server refuses it. No effect on `ldaps://` (TLS from the start) and `ldapi://` (a local
    /// socket, where the kernel vouches for both ends).
    pub starttls: bool,
    /// The CA certificates (PEM) that TLS trusts; the system's bundle
    /// (`/etc/ssl/certs/ca-certificates.crt`) if `None`.
    pub ca_file: Option<PathBuf>,
}

impl Default for Options {
    /// 5 seconds, no StartTLS, the system's CAs.
    fn default() -> Self {
        Options {
            timeout: Duration::from_secs(5),
            starttls: false,
            ca_file: None,
        }
    }
}

/// How a bind authenticates.
#[derive(Clone)]
pub enum Auth {
    /// No name, no password.
    Anonymous,
    /// A DN and its password (RFC 4513 §5.1.3). An empty password is refused before sending:
    /// servers may take it as an unauthenticated bind, which succeeds without checking anything.
    Simple {
        /// The entry authenticated as.
        dn: String,
        /// Its password; wiped when dropped, never printed by `Debug`.
        password: Zeroizing<Vec<u8>>,
    },
    /// SASL EXTERNAL without an authorization identity: the identity the connection already
    /// has, such as the peer's uid and gid on `ldapi://`
    /// (`gidNumber=0+uidNumber=0,cn=peercred,cn=external,cn=auth` for root).
    SaslExternal,
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Auth::Anonymous => f.write_str("Anonymous"),
            Auth::Simple { dn, .. } => f
                .debug_struct("Simple")
                .field("dn", dn)
                .field("password", &format_args!("<redacted>"))
                .finish(),
            Auth::SaslExternal => f.write_str("SaslExternal"),
        }
    }
}

/// A connection to an LDAP server. Operations go one at a time, each waiting for its answer.
///
/// After an error other than [`LdapError::Result`] (the socket failed, a timeout, a protocol
/// error) the connection is out of step with the server: it refuses every further operation
/// with an error for which [`LdapError::is_unreachable`] holds, and a new one must be opened.
pub struct Conn {
    io: Framed,
    timeout: Duration,
    next_id: i32,
    broken: bool,
}

impl fmt::Debug for Conn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Conn")
            .field("tls", &self.is_tls())
            .field("timeout", &self.timeout)
            .field("broken", &self.broken)
            .finish()
    }
}

fn deadline(timeout: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(timeout.min(Duration::from_secs(86_400)))
        .unwrap_or(now)
}

fn check(r: LdapResult) -> Result<(), LdapError> {
    if r.code == 0 {
        Ok(())
    } else {
        Err(LdapError::Result {
            code: r.code,
            message: r.message,
        })
    }
}

fn unexpected(what: &str, got: &Response) -> LdapError {
    let got = match got {
        Response::Bind(_) => "a BindResponse".to_owned(),
        Response::Entry(_) => "a SearchResultEntry".to_owned(),
        Response::Reference => "a SearchResultReference".to_owned(),
        Response::Done(_) => "a SearchResultDone".to_owned(),
        Response::Modify(_) => "a ModifyResponse".to_owned(),
        Response::Add(_) => "an AddResponse".to_owned(),
        Response::Delete(_) => "a DelResponse".to_owned(),
        Response::Extended(..) => "an ExtendedResponse".to_owned(),
        Response::Intermediate => "an IntermediateResponse".to_owned(),
        Response::Other(tag) => format!("an operation of tag {:#04x}", tag.0),
    };
    LdapError::Protocol(format!("expected {what}, got {got}"))
}

impl Conn {
    /// Connects to `url`: the socket, then TLS for `ldaps://` or StartTLS if asked, all within
    /// `opts.timeout`. Host names are resolved by the system's resolver, which has its own
    /// time limits.
    pub fn connect(url: &LdapUrl, opts: &Options) -> Result<Conn, LdapError> {
        let deadline = deadline(opts.timeout);
        let ca_file = opts.ca_file.as_deref();
        let stream = match url {
            LdapUrl::Ldapi(path) => Stream::Unix(connect_unix(path, deadline)?),
            LdapUrl::Tcp { host, port, tls } => {
                if (*tls || opts.starttls) && !cfg!(feature = "tls") {
                    return Err(LdapError::Tls(
                        "this build has no TLS (cargo feature `tls` of twofold-policy)".into(),
                    ));
                }
                let sock = connect_tcp(host, *port, deadline)?;
                if *tls {
                    tls_stream(sock, host, ca_file, deadline)?
                } else if opts.starttls {
                    let mut plain = Conn::new(Stream::Tcp(sock), opts.timeout);
                    plain.starttls(deadline)?;
                    match plain.io.into_stream() {
                        Some(Stream::Tcp(sock)) => tls_stream(sock, host, ca_file, deadline)?,
                        _ => {
                            return Err(LdapError::Protocol(
                                "the server sent data after its StartTLS response".into(),
                            ));
                        }
                    }
                } else {
                    Stream::Tcp(sock)
                }
            }
        };
        Ok(Conn::new(stream, opts.timeout))
    }

    fn new(stream: Stream, timeout: Duration) -> Conn {
        Conn {
            io: Framed::new(stream),
            timeout,
            next_id: 1,
            broken: false,
        }
    }

    /// Whether the connection is encrypted (`ldaps://`, or StartTLS done).
    pub fn is_tls(&self) -> bool {
        #[cfg(feature = "tls")]
        return matches!(self.io.stream, Stream::Tls(_));
        #[cfg(not(feature = "tls"))]
        false
    }

    /// Runs one operation; any error but a refusal by the server breaks the connection.
    fn guarded<T>(
        &mut self,
        op: impl FnOnce(&mut Conn, Instant) -> Result<T, LdapError>,
    ) -> Result<T, LdapError> {
        if self.broken {
            return Err(LdapError::Io(std::io::Error::new(
                std::io::ErrorKind::NotConnected,
                "the connection was given up after an earlier error",
            )));
        }
        let r = op(self, deadline(self.timeout));
        if let Err(e) = &r
            && !matches!(e, LdapError::Result { .. })
        {
            self.broken = true;
        }
        r
    }

    /// Sends one request; its message ID.
    fn send(&mut self, op: ber::Element<'_>, deadline: Instant) -> Result<i32, LdapError> {
        let id = self.next_id;
        self.next_id = if id == i32::MAX { 1 } else { id + 1 };
        let bytes = proto::message(id, op);
        self.io.send(&bytes, deadline)?;
        Ok(id)
    }

    /// The next response to message `id`, and the size of its message. Unsolicited
    /// notifications are skipped, except the notice of disconnection.
    fn receive(&mut self, id: i32, deadline: Instant) -> Result<(Response, usize), LdapError> {
        loop {
            let buf = self.io.read_message(deadline)?;
            let msg = proto::parse_message(&buf)?;
            if msg.id == 0 {
                if let Response::Extended(r, name) = msg.op
                    && name
                        .as_deref()
                        .is_none_or(|n| n == proto::NOTICE_OF_DISCONNECTION_OID)
                {
                    return Err(LdapError::Disconnected {
                        code: r.code,
                        message: r.message,
                    });
                }
                continue;
            }
            if msg.id != id {
                return Err(LdapError::Protocol(format!(
                    "a response to message {} while waiting for {id}",
                    msg.id
                )));
            }
            return Ok((msg.op, buf.len()));
        }
    }

    fn starttls(&mut self, deadline: Instant) -> Result<(), LdapError> {
        let id = self.send(proto::starttls_request(), deadline)?;
        match self.receive(id, deadline)?.0 {
            Response::Extended(r, _) => check(r),
            other => Err(unexpected("an ExtendedResponse", &other)),
        }
    }

    /// Binds: authenticates the connection (again) as `auth` says.
    pub fn bind(&mut self, auth: &Auth) -> Result<(), LdapError> {
        let bind = match auth {
            Auth::Anonymous => BindAuth::Simple {
                dn: "",
                password: b"",
            },
            Auth::Simple { password, .. } if password.is_empty() => {
                return Err(LdapError::Invalid(
                    "a simple bind with an empty password (an unauthenticated bind)".into(),
                ));
            }
            Auth::Simple { dn, password } => BindAuth::Simple { dn, password },
            Auth::SaslExternal => BindAuth::SaslExternal,
        };
        self.guarded(|c, deadline| {
            let id = c.send(proto::bind_request(&bind), deadline)?;
            match c.receive(id, deadline)?.0 {
                Response::Bind(r) => check(r),
                other => Err(unexpected("a BindResponse", &other)),
            }
        })
    }

    /// Searches below `base` for the entries `filter` matches, with attributes `attrs` (all
    /// user attributes if empty). Continuation references are ignored. A `size_limit` of 0
    /// asks for no limit; beyond a limit the server answers sizeLimitExceeded (code 4), an
    /// error here.
    pub fn search(
        &mut self,
        base: &str,
        scope: Scope,
        filter: &Filter,
        attrs: &[&str],
        size_limit: u32,
    ) -> Result<Vec<Entry>, LdapError> {
        // Whole seconds, rounded up: 0 would mean no limit.
        let secs = self.timeout.as_secs() + u64::from(self.timeout.subsec_nanos() > 0);
        let time_limit = u32::try_from(secs.max(1)).unwrap_or(u32::MAX);
        self.guarded(|c, deadline| {
            let request = proto::search_request(base, scope, filter, attrs, size_limit, time_limit);
            let id = c.send(request, deadline)?;
            let mut entries = Vec::new();
            let mut received = 0usize;
            loop {
                let (op, len) = c.receive(id, deadline)?;
                received = received.saturating_add(len);
                if received > MAX_SEARCH_BYTES {
                    return Err(LdapError::Protocol(format!(
                        "search results beyond {MAX_SEARCH_BYTES} bytes"
                    )));
                }
                match op {
                    Response::Entry(e) => {
                        if size_limit > 0 && entries.len() >= size_limit as usize {
                            return Err(LdapError::Protocol(
                                "more entries than the size limit".into(),
                            ));
                        }
                        entries.push(e);
                    }
                    Response::Reference | Response::Intermediate => {}
                    Response::Done(r) => return check(r).map(|()| entries),
                    other => return Err(unexpected("a search result", &other)),
                }
            }
        })
    }

    /// Applies `mods` to entry `dn`, in order and atomically: all or none.
    pub fn modify(&mut self, dn: &str, mods: &[Mod]) -> Result<(), LdapError> {
        self.guarded(|c, deadline| {
            let id = c.send(proto::modify_request(dn, mods), deadline)?;
            match c.receive(id, deadline)?.0 {
                Response::Modify(r) => check(r),
                other => Err(unexpected("a ModifyResponse", &other)),
            }
        })
    }

    /// Adds entry `dn` with attributes `attrs`, each with its values (`objectClass` among
    /// them). Fails with entryAlreadyExists (68, [`LdapError::is_conflict`]) if it exists.
    pub fn add(&mut self, dn: &str, attrs: &[(&str, &[&[u8]])]) -> Result<(), LdapError> {
        self.guarded(|c, deadline| {
            let id = c.send(proto::add_request(dn, attrs), deadline)?;
            match c.receive(id, deadline)?.0 {
                Response::Add(r) => check(r),
                other => Err(unexpected("an AddResponse", &other)),
            }
        })
    }

    /// Deletes entry `dn` (a leaf). Fails with noSuchObject (32,
    /// [`LdapError::is_no_such_object`]) if it does not exist.
    pub fn delete(&mut self, dn: &str) -> Result<(), LdapError> {
        self.guarded(|c, deadline| {
            let id = c.send(proto::del_request(dn), deadline)?;
            match c.receive(id, deadline)?.0 {
                Response::Delete(r) => check(r),
                other => Err(unexpected("a DelResponse", &other)),
            }
        })
    }

    /// Ends the session: an UnbindRequest (and a TLS close_notify), then the socket is closed.
    /// A connection broken by an earlier error is just closed.
    pub fn unbind(mut self) -> Result<(), LdapError> {
        if self.broken {
            return Ok(());
        }
        let deadline = deadline(self.timeout);
        self.send(proto::unbind_request(), deadline)?;
        #[cfg(feature = "tls")]
        if let Stream::Tls(s) = &mut self.io.stream {
            s.close(deadline)?;
        }
        Ok(())
    }
}

/// TLS over `sock`, the server's certificate checked for `host`.
#[cfg(feature = "tls")]
fn tls_stream(
    sock: std::net::TcpStream,
    host: &super::Host,
    ca_file: Option<&std::path::Path>,
    deadline: Instant,
) -> Result<Stream, LdapError> {
    Ok(Stream::Tls(Box::new(TlsStream::connect(
        sock, host, ca_file, deadline,
    )?)))
}

#[cfg(not(feature = "tls"))]
fn tls_stream(
    _: std::net::TcpStream,
    _: &super::Host,
    _: Option<&std::path::Path>,
    _: Instant,
) -> Result<Stream, LdapError> {
    Err(LdapError::Tls("this build has no TLS".into()))
}
