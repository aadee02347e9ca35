//! TLS for `ldaps://` and StartTLS, through rustls with the ring provider: no thread, no global
//! state (the provider is passed to each configuration, never installed process-wide), and
//! the connection driven by hand so that every system call is bounded by the deadline.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore};

use super::LdapError;
use super::stream::{TimedSocket, closed, io_error, remaining};
use super::url::Host;

/// The system's CA bundle, used when no CA file is configured.
pub const SYSTEM_CA_FILE: &str = "/etc/ssl/certs/ca-certificates.crt";

fn tls_error(e: impl std::fmt::Display) -> LdapError {
    LdapError::Tls(e.to_string())
}

/// The client configuration: the CAs of `ca_file` (PEM), or the system's bundle.
fn client_config(ca_file: Option<&Path>) -> Result<ClientConfig, LdapError> {
    let path = ca_file.unwrap_or(Path::new(SYSTEM_CA_FILE));
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| LdapError::Tls(format!("CA file {}: {e}", path.display())))?;
    let mut roots = RootCertStore::empty();
    if ca_file.is_some() {
        // A file configured for this server: every certificate in it must be usable.
        for cert in certs {
            let cert =
                cert.map_err(|e| LdapError::Tls(format!("CA file {}: {e}", path.display())))?;
            roots
                .add(cert)
                .map_err(|e| LdapError::Tls(format!("CA file {}: {e}", path.display())))?;
        }
    } else {
        // The system's bundle: skip what this TLS library cannot use, as other clients do.
        roots.add_parsable_certificates(certs.filter_map(Result::ok));
    }
    if roots.is_empty() {
        return Err(LdapError::Tls(format!(
            "CA file {}: no certificate",
            path.display()
        )));
    }
    // Deprecated since rustls 0.23.48 for its lack of post-quantum key exchange, which the
    // aws-lc-rs provider has; that one needs cmake (and a C toolchain of its own) to build.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(tls_error)?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// The name the server's certificate must carry: the URL's host, a DNS name or an address.
fn server_name(host: &Host) -> Result<ServerName<'static>, LdapError> {
    match host {
        Host::Ip(ip) => Ok(ServerName::IpAddress((*ip).into())),
        Host::Name(name) => ServerName::try_from(name.clone())
            .map_err(|e| LdapError::Tls(format!("server name {name}: {e}"))),
    }
}

/// A TLS session over a TCP socket.
pub struct TlsStream {
    conn: ClientConnection,
    sock: TcpStream,
}

impl TlsStream {
    /// Does the TLS handshake over `sock`, checking the server's certificate against the CAs
    /// (of `ca_file`, or the system's) and the name `host`.
    pub fn connect(
        sock: TcpStream,
        host: &Host,
        ca_file: Option<&Path>,
        deadline: Instant,
    ) -> Result<TlsStream, LdapError> {
        let config = Arc::new(client_config(ca_file)?);
        let conn = ClientConnection::new(config, server_name(host)?).map_err(tls_error)?;
        let mut s = TlsStream { conn, sock };
        while s.conn.is_handshaking() {
            if s.conn.wants_write() {
                s.flush(deadline)?;
            } else if s.conn.wants_read() {
                s.read_tls(deadline)?;
            } else {
                break;
            }
        }
        s.flush(deadline)?;
        Ok(s)
    }

    /// Sends what rustls has queued.
    fn flush(&mut self, deadline: Instant) -> Result<(), LdapError> {
        while self.conn.wants_write() {
            self.sock.set_timeouts(remaining(deadline)?)?;
            match self.conn.write_tls(&mut self.sock) {
                Ok(0) => return Err(LdapError::Io(io::ErrorKind::WriteZero.into())),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io_error(e)),
            }
        }
        Ok(())
    }

    /// One read system call of TLS records, then their processing.
    fn read_tls(&mut self, deadline: Instant) -> Result<(), LdapError> {
        let n = loop {
            self.sock.set_timeouts(remaining(deadline)?)?;
            match self.conn.read_tls(&mut self.sock) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                r => break r.map_err(io_error)?,
            }
        };
        if n == 0 {
            return Err(closed());
        }
        if let Err(e) = self.conn.process_new_packets() {
            // Tell the server why (the alert rustls queued), as far as it listens.
            let _ = self.flush(deadline);
            return Err(tls_error(e));
        }
        // Answers the session may owe (key updates).
        self.flush(deadline)
    }

    /// Reads decrypted bytes: at least one, or `Ok(0)` once the server closed the session.
    pub fn read_some(&mut self, buf: &mut [u8], deadline: Instant) -> Result<usize, LdapError> {
        loop {
            match self.conn.reader().read(buf) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.read_tls(deadline)?,
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Err(closed()),
                Err(e) => return Err(io_error(e)),
            }
        }
    }

    /// Encrypts and sends all of `data`.
    pub fn write_all(&mut self, mut data: &[u8], deadline: Instant) -> Result<(), LdapError> {
        while !data.is_empty() {
            let n = self.conn.writer().write(data)?;
            data = data.get(n..).unwrap_or_default();
            if n == 0 && !self.conn.wants_write() {
                return Err(LdapError::Io(io::ErrorKind::WriteZero.into()));
            }
            self.flush(deadline)?;
        }
        Ok(())
    }

    /// Ends the session: close_notify, sent as far as the server takes it before the deadline.
    pub fn close(&mut self, deadline: Instant) -> Result<(), LdapError> {
        self.conn.send_close_notify();
        self.flush(deadline)
    }
}
