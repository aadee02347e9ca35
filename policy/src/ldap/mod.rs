//! A small, blocking LDAPv3 client (RFC 4511) for per-user 2FA state kept in a directory.
//!
//! The PAM module runs inside sshd and other programs that own their process: so this client
//! has no threads, no async runtime and no global state. It speaks LDAP over std sockets with
//! its own BER codec, every wait bounded by a deadline per operation:
//!
//! - [`LdapUrl`]: `ldapi://` (a Unix socket, percent-encoded path), `ldap://` and `ldaps://`;
//! - [`Conn`]: connect (with StartTLS or ldaps through rustls, the server name checked),
//!   [bind](Conn::bind) (anonymous, simple, SASL EXTERNAL), [search](Conn::search),
//!   [modify](Conn::modify), [add](Conn::add), [delete](Conn::delete), [unbind](Conn::unbind);
//! - [`Filter`]: search filters as values, encoded straight into BER: no string filters, so
//!   no filter injection;
//! - [`Mod`]: one change of a modify; several in one request are atomic on the server, which
//!   makes `delete old value` + `add new value` a compare-and-swap;
//! - [`escape_dn_value`]: a user name made safe inside a DN (`uid=<name>,ou=people,…`);
//!   [`dn_eq`]: two DNs compared as the server compares them.
//!
//! TLS (rustls with the ring provider) is the cargo feature `tls`, on by default: it makes the
//! PAM module about 1.5 MB larger, which a module that only speaks `ldapi://` can do without.
//! Without it, `ldaps://` and StartTLS fail with [`LdapError::Tls`].
//!
//! Every buffer received and every value of an [`Entry`] is wiped from memory when dropped,
//! and no password or attribute value ever appears in an error or a `Debug` output.
//! (Decrypted TLS records pass through rustls's own buffers, which are not wiped.)

mod ber;
mod conn;
mod dn;
mod entry;
mod filter;
mod proto;
mod stream;
#[cfg(feature = "tls")]
mod tls;
mod url;

use std::io;

pub use conn::{Auth, Conn, MAX_SEARCH_BYTES, Options};
pub use dn::{dn_eq, normalize as normalize_dn};
pub use entry::{Entry, Mod, ModOp};
pub use filter::Filter;
pub use proto::Scope;
pub use url::{Host, LdapUrl};

/// The largest message accepted from a server, 16 MiB.
pub use ber::MAX_MESSAGE;

/// Errors of the LDAP client.
///
/// After any error but [`LdapError::Result`] the connection is out of step with the server
/// and refuses further operations: open a new one.
#[derive(Debug, thiserror::Error)]
pub enum LdapError {
    /// The socket failed, or the server closed the connection.
    #[error("LDAP connection: {0}")]
    Io(#[from] io::Error),
    /// The server did not answer within the operation's time limit.
    #[error("LDAP server did not answer in time")]
    Timeout,
    /// TLS failed: the handshake, the certificate, or the CA file.
    #[error("LDAP TLS: {0}")]
    Tls(String),
    /// The server sent something that is not LDAP as this client knows it.
    #[error("LDAP protocol error: {0}")]
    Protocol(String),
    /// The URL is not one this client supports.
    #[error("LDAP URL: {0}")]
    Url(String),
    /// A request this client refuses to send, such as a bind with an empty password.
    #[error("LDAP request refused by the client: {0}")]
    Invalid(String),
    /// The server refused the operation.
    #[error("LDAP server refused the operation: {} ({code}){}", result_name(*code), colon(message))]
    Result {
        /// The LDAP result code (RFC 4511 appendix A).
        code: u32,
        /// The server's diagnostic message, possibly empty.
        message: String,
    },
    /// The server is closing the connection (RFC 4511 §4.4.1, notice of disconnection).
    #[error("LDAP server is closing the connection: {} ({code}){}", result_name(*code), colon(message))]
    Disconnected {
        /// The result code of the notice.
        code: u32,
        /// The server's diagnostic message, possibly empty.
        message: String,
    },
}

fn colon(message: &str) -> String {
    if message.is_empty() {
        String::new()
    } else {
        format!(": {message}")
    }
}

/// The result codes of RFC 4511 appendix A.1 that may come back here, by name.
pub fn result_name(code: u32) -> &'static str {
    match code {
        0 => "success",
        1 => "operationsError",
        2 => "protocolError",
        3 => "timeLimitExceeded",
        4 => "sizeLimitExceeded",
        7 => "authMethodNotSupported",
        8 => "strongerAuthRequired",
        10 => "referral",
        11 => "adminLimitExceeded",
        13 => "confidentialityRequired",
        14 => "saslBindInProgress",
        16 => "noSuchAttribute",
        17 => "undefinedAttributeType",
        18 => "inappropriateMatching",
        19 => "constraintViolation",
        20 => "attributeOrValueExists",
        21 => "invalidAttributeSyntax",
        32 => "noSuchObject",
        34 => "invalidDNSyntax",
        48 => "inappropriateAuthentication",
        49 => "invalidCredentials",
        50 => "insufficientAccessRights",
        51 => "busy",
        52 => "unavailable",
        53 => "unwillingToPerform",
        64 => "namingViolation",
        65 => "objectClassViolation",
        66 => "notAllowedOnNonLeaf",
        67 => "notAllowedOnRDN",
        68 => "entryAlreadyExists",
        80 => "other",
        _ => "unknown result code",
    }
}

impl LdapError {
    /// The LDAP result code of a refusal or a notice of disconnection.
    pub fn code(&self) -> Option<u32> {
        match self {
            LdapError::Result { code, .. } | LdapError::Disconnected { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// A lost compare-and-swap: the value to delete was gone (noSuchAttribute, 16), a
    /// constraint failed (constraintViolation, 19), the value to add was there
    /// (attributeOrValueExists, 20), or the entry to add exists (entryAlreadyExists, 68).
    pub fn is_conflict(&self) -> bool {
        matches!(
            self,
            LdapError::Result {
                code: 16 | 19 | 20 | 68,
                ..
            }
        )
    }

    /// The entry (or its parent) does not exist (noSuchObject, 32).
    pub fn is_no_such_object(&self) -> bool {
        matches!(self, LdapError::Result { code: 32, .. })
    }

    /// The server cannot be talked to now: connection refused, reset or timed out, no such
    /// socket, the host unreachable or unresolvable, the server out of time (timeLimitExceeded,
    /// 3: the time limit this client sends is its own timeout), busy (51) or unavailable (52),
    /// or closing the connection. Another server, or a later try, may do.
    pub fn is_unreachable(&self) -> bool {
        use io::ErrorKind as K;
        match self {
            LdapError::Io(e) => matches!(
                e.kind(),
                K::ConnectionRefused
                    | K::ConnectionReset
                    | K::ConnectionAborted
                    | K::NotConnected
                    | K::BrokenPipe
                    | K::UnexpectedEof
                    | K::TimedOut
                    | K::NotFound
                    | K::AddrNotAvailable
                    | K::HostUnreachable
                    | K::NetworkUnreachable
                    | K::NetworkDown
            ),
            LdapError::Timeout | LdapError::Disconnected { .. } => true,
            LdapError::Result { code, .. } => matches!(code, 3 | 51 | 52),
            LdapError::Tls(_)
            | LdapError::Protocol(_)
            | LdapError::Url(_)
            | LdapError::Invalid(_) => false,
        }
    }
}

impl From<ber::BerError> for LdapError {
    fn from(e: ber::BerError) -> Self {
        LdapError::Protocol(e.to_string())
    }
}

/// Escapes `value` for an attribute value inside a DN (RFC 4514 §2.4): `"`, `+`, `,`, `;`,
/// `<`, `>`, `\` and `=` anywhere, `#` or a space at the start and a space at the end get a
/// backslash; NUL and other control characters become `\hh`. The result, put after `uid=`,
/// can only ever name one RDN value: a user name cannot add components to the DN.
pub fn escape_dn_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 8);
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        match c {
            '"' | '+' | ',' | ';' | '<' | '>' | '\\' | '=' => {
                out.push('\\');
                out.push(c);
            }
            '#' if i == 0 => out.push_str("\\#"),
            ' ' if i == 0 || i == last => out.push_str("\\ "),
            c if c.is_ascii_control() => out.push_str(&format!("\\{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_dn_values() {
        assert_eq!(escape_dn_value("alice"), "alice");
        assert_eq!(escape_dn_value(""), "");
        assert_eq!(
            escape_dn_value(r#"a,b+c"d\e<f>g;h=i"#),
            r#"a\,b\+c\"d\\e\<f\>g\;h\=i"#
        );
        assert_eq!(escape_dn_value("#hash#"), "\\#hash#");
        assert_eq!(escape_dn_value(" lead and trail "), "\\ lead and trail\\ ");
        assert_eq!(escape_dn_value(" "), "\\ ");
        assert_eq!(escape_dn_value("  "), "\\ \\ ");
        assert_eq!(escape_dn_value("nul\0x"), "nul\\00x");
        assert_eq!(escape_dn_value("tab\tx\x7f"), "tab\\09x\\7f");
        assert_eq!(escape_dn_value("jérôme"), "jérôme");
        assert_eq!(
            escape_dn_value("bob,ou=admins"),
            "bob\\,ou\\=admins",
            "a user name cannot add an RDN"
        );
    }

    #[test]
    fn classifies_errors() {
        let r = |code| LdapError::Result {
            code,
            message: String::new(),
        };
        for c in [16, 19, 20, 68] {
            assert!(r(c).is_conflict(), "{c}");
        }
        assert!(!r(32).is_conflict());
        assert!(r(32).is_no_such_object());
        assert!(r(3).is_unreachable() && r(51).is_unreachable() && r(52).is_unreachable());
        assert!(!r(49).is_unreachable());
        assert_eq!(r(49).code(), Some(49));
        assert!(LdapError::Timeout.is_unreachable());
        assert!(LdapError::Io(io::ErrorKind::ConnectionRefused.into()).is_unreachable());
        assert!(!LdapError::Tls("bad certificate".into()).is_unreachable());
        assert_eq!(
            r(49).to_string(),
            "LDAP server refused the operation: invalidCredentials (49)"
        );
        let e = LdapError::Result {
            code: 20,
            message: "modify/add: description: value #0 already exists".into(),
        };
        assert_eq!(
            e.to_string(),
            "LDAP server refused the operation: attributeOrValueExists (20): \
             modify/add: description: value #0 already exists"
        );
    }
}
