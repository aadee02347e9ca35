//! The small validators of `[store.ldap]`: server URIs ([`parse_uri`]) and DNs ([`check_dn`]).

use std::net::{IpAddr, Ipv6Addr};
use std::path::PathBuf;

/// A directory server's URI, as `[store.ldap] uri` takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LdapUri {
    /// `ldapi://`: the local socket; `None`: the client library's default path.
    Ldapi {
        /// The socket's path, percent-decoded (`ldapi://%2Frun%2Fslapd%2Fldapi`).
        socket: Option<PathBuf>,
    },
    /// `ldap://`: plain LDAP (upgraded by StartTLS where `starttls` says so).
    Ldap {
        /// A host name, an IPv4 address or an IPv6 address (without brackets).
        host: String,
        /// The port, when written (default 389).
        port: Option<u16>,
    },
    /// `ldaps://`: LDAP inside TLS.
    Ldaps {
        /// A host name, an IPv4 address or an IPv6 address (without brackets).
        host: String,
        /// The port, when written (default 636).
        port: Option<u16>,
    },
}

impl LdapUri {
    /// Whether the connection stays on this host: `ldapi://`, or a host that is `localhost`
    /// or a loopback address (`127.0.0.0/8`, `::1`).
    pub fn is_loopback(&self) -> bool {
        match self {
            LdapUri::Ldapi { .. } => true,
            LdapUri::Ldap { host, .. } | LdapUri::Ldaps { host, .. } => {
                host.eq_ignore_ascii_case("localhost")
                    || host.eq_ignore_ascii_case("localhost.")
                    || host.parse::<IpAddr>().is_ok_and(|a| a.is_loopback())
            }
        }
    }
}

/// Parses a server URI: `ldapi://` with an optional percent-encoded socket path, or
/// `ldap://` / `ldaps://` with a host (name, IPv4 address, `[IPv6]` address) and an optional
/// port; at most a `/` after that (the DN goes into `base`, not into the URI). The scheme is
/// case-insensitive. The error says what is wrong.
pub fn parse_uri(uri: &str) -> Result<LdapUri, String> {
    if let Some(c) = uri.chars().find(|c| c.is_control() || c.is_whitespace()) {
        return Err(format!("it contains {c:?}"));
    }
    let Some((scheme, rest)) = uri.split_once("://") else {
        return Err("it is not a URI (scheme://host)".into());
    };
    let scheme = scheme.to_ascii_lowercase();
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    if !tail.is_empty() && tail != "/" {
        return Err(format!(
            "{tail:?} after the server: write only the server here (the DN goes into base)"
        ));
    }
    match scheme.as_str() {
        "ldapi" => {
            if authority.is_empty() {
                return Ok(LdapUri::Ldapi { socket: None });
            }
            let path = percent_decode(authority)?;
            if !path.starts_with('/') {
                return Err(format!(
                    "the socket path {path:?} is not absolute (write its slashes as %2F, e.g. ldapi://%2Frun%2Fslapd%2Fldapi)"
                ));
            }
            if path.contains('\0') {
                return Err("the socket path contains a NUL byte".into());
            }
            // sun_path holds 108 bytes with the final NUL.
            if path.len() > 107 {
                return Err(format!(
                    "the socket path is {} bytes long: at most 107",
                    path.len()
                ));
            }
            Ok(LdapUri::Ldapi {
                socket: Some(PathBuf::from(path)),
            })
        }
        "ldap" | "ldaps" => {
            let (host, port) = host_port(authority)?;
            Ok(if scheme == "ldap" {
                LdapUri::Ldap { host, port }
            } else {
                LdapUri::Ldaps { host, port }
            })
        }
        _ => Err(format!("unknown scheme {scheme:?}")),
    }
}

/// `%XX` sequences decoded; other characters must be those a URI's host part may hold.
fn percent_decode(s: &str) -> Result<String, String> {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let hex = |c: Option<u8>| c.and_then(|c| char::from(c).to_digit(16));
            match (hex(bytes.next()), hex(bytes.next())) {
                (Some(h), Some(l)) => out.push(u8::try_from(h * 16 + l).unwrap_or(0)),
                _ => return Err("a % not followed by two hex digits".into()),
            }
        } else if b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@".contains(&b) {
            out.push(b);
        } else {
            return Err(format!(
                "{:?} must be percent-encoded in the socket path",
                char::from(b)
            ));
        }
    }
    String::from_utf8(out).map_err(|_| "the socket path is not UTF-8".into())
}

/// `host[:port]` or `[v6]:port` of an `ldap://` or `ldaps://` URI.
fn host_port(authority: &str) -> Result<(String, Option<u16>), String> {
    if authority.contains('@') {
        return Err("user information in the URI: write bind_dn and bind_password_file".into());
    }
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let Some((v6, after)) = rest.split_once(']') else {
            return Err("an IPv6 address without its closing ]".into());
        };
        v6.parse::<Ipv6Addr>()
            .map_err(|_| format!("{v6:?} is not an IPv6 address"))?;
        let port = match after {
            "" => None,
            p => Some(
                p.strip_prefix(':')
                    .ok_or_else(|| format!("{after:?} after the IPv6 address: expected :PORT"))?,
            ),
        };
        (v6.to_owned(), port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_owned(), Some(p)),
            None => (authority.to_owned(), None),
        }
    };
    if host.is_empty() {
        return Err(
            "no host: name the directory server (twofold does not guess the client library's default)"
                .into(),
        );
    }
    if host.contains(':') && !authority.starts_with('[') {
        return Err("an IPv6 address must be in brackets, e.g. ldaps://[2001:db8::1]".into());
    }
    if !authority.starts_with('[') && host.parse::<std::net::Ipv4Addr>().is_err() {
        check_host_name(&host)?;
    }
    let port = match port {
        None => None,
        Some(p) => Some(
            p.parse::<u16>()
                .ok()
                .filter(|n| *n != 0 && p.bytes().all(|b| b.is_ascii_digit()))
                .ok_or_else(|| format!("port {p:?} is not a number from 1 to 65535"))?,
        ),
    };
    Ok((host, port))
}

/// A DNS name: labels of letters, digits, `-` and `_` (not starting or ending with `-`), of at
/// most 63 characters, at most 253 in all, with an optional final dot.
fn check_host_name(host: &str) -> Result<(), String> {
    let name = host.strip_suffix('.').unwrap_or(host);
    let bad = || format!("{host:?} is not a host name or an address");
    if name.is_empty() || name.len() > 253 {
        return Err(bad());
    }
    for label in name.split('.') {
        if label.is_empty()
            || label.len() > 63
            || label.starts_with('-')
            || label.ends_with('-')
            || !label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(bad());
        }
    }
    // All digits and dots is a (bad) IPv4 address, not a name.
    if name.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err(format!("{host:?} is not an IPv4 address"));
    }
    Ok(())
}

/// Checks that `dn` looks like a distinguished name (RFC 4514): `attr=value` components
/// separated by `,` (several joined by `+` in one), each attribute a name (`ou`, `dc`, `cn`)
/// or a numeric OID, each value non-empty with `\` escaping a special character or two hex
/// digits. Spaces around components are allowed. The error says what is wrong.
pub fn check_dn(dn: &str) -> Result<(), String> {
    if dn.trim().is_empty() {
        return Err("it is empty".into());
    }
    if dn.len() > 1024 {
        return Err(format!("it is {} bytes long: at most 1024", dn.len()));
    }
    if let Some(c) = dn.chars().find(|c| c.is_control()) {
        return Err(format!("it contains {c:?}"));
    }
    // Split on unescaped `,` and `+`, checking escapes on the way.
    let mut parts: Vec<String> = vec![String::new()];
    let mut chars = dn.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                let Some(n) = chars.next() else {
                    return Err("it ends with a lone \\".into());
                };
                if n.is_ascii_hexdigit() {
                    if !chars.next().is_some_and(|m| m.is_ascii_hexdigit()) {
                        return Err(format!("\\{n} is not followed by a second hex digit"));
                    }
                } else if !",=+<>#;\\\" ".contains(n) {
                    return Err(format!("\\{n} escapes nothing that needs it"));
                }
                if let Some(last) = parts.last_mut() {
                    last.push('x');
                }
            }
            ',' | '+' => parts.push(String::new()),
            '"' | '<' | '>' | ';' => {
                return Err(format!("{c:?} must be escaped as \\{c}"));
            }
            _ => {
                if let Some(last) = parts.last_mut() {
                    last.push(c);
                }
            }
        }
    }
    for (i, part) in parts.iter().enumerate() {
        let n = i + 1;
        let Some((attr, value)) = part.split_once('=') else {
            return Err(format!(
                "component {n} ({:?}) is not attr=value",
                part.trim()
            ));
        };
        let attr = attr.trim();
        let descriptor = attr.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && attr.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        let oid = attr.split('.').count() > 1
            && attr
                .split('.')
                .all(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()));
        if !descriptor && !oid {
            return Err(format!(
                "component {n} has {attr:?} where an attribute name (ou, dc, cn, ...) belongs"
            ));
        }
        let value = value.trim();
        if value.is_empty() {
            return Err(format!("component {n} ({attr}=) has an empty value"));
        }
        if value.contains('=') {
            return Err(format!(
                "component {n} ({attr}={value}) has a second =: a , or + missing, or a \\= to escape"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris() {
        let ok = |s: &str| parse_uri(s).unwrap_or_else(|e| panic!("{s}: {e}"));
        assert_eq!(ok("ldapi:///"), LdapUri::Ldapi { socket: None });
        assert_eq!(ok("ldapi://"), LdapUri::Ldapi { socket: None });
        assert_eq!(
            ok("ldapi://%2Frun%2fslapd%2Fldapi"),
            LdapUri::Ldapi {
                socket: Some("/run/slapd/ldapi".into())
            }
        );
        assert_eq!(
            ok("LDAPS://ldap1.example.org:6360/"),
            LdapUri::Ldaps {
                host: "ldap1.example.org".into(),
                port: Some(6360)
            }
        );
        assert_eq!(
            ok("ldap://[::1]:389"),
            LdapUri::Ldap {
                host: "::1".into(),
                port: Some(389)
            }
        );
        for lo in [
            "ldap://127.0.0.1",
            "ldap://[::1]",
            "ldap://LocalHost",
            "ldapi:///",
        ] {
            assert!(ok(lo).is_loopback(), "{lo}");
        }
        for far in [
            "ldap://10.0.0.1",
            "ldap://ldap.example.org",
            "ldap://[::ffff:127.0.0.1]",
        ] {
            assert!(!ok(far).is_loopback(), "{far}");
        }
        for bad in [
            "",
            "ldap.example.org",
            "http://ldap.example.org",
            "ldap://",
            "ldaps:///",
            "ldap://:389",
            "ldap://host:0",
            "ldap://host:65536",
            "ldap://host:+1",
            "ldap://host:",
            "ldap://::1",
            "ldap://[::1",
            "ldap://[::1]x",
            "ldap://[nope]",
            "ldap://user@host",
            "ldap://ho st",
            "ldap://-host",
            "ldap://host..example",
            "ldap://999.1.1.1",
            "ldap://host/dc=example,dc=org",
            "ldap://host?uid",
            "ldapi://run%2Fldapi",
            "ldapi://%2Frun%2",
            "ldapi://%2Frun%zzx",
            "ldapi://%2Frun%00",
            "ldapi://%2Frun/ldapi",
        ] {
            assert!(parse_uri(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn dns() {
        for ok in [
            "ou=twofold,dc=example,dc=org",
            "cn=twofold, ou=services, dc=example, dc=org",
            "cn=a\\,b+uid=x,dc=org",
            "cn=J\\C3\\BCrgen,dc=org",
            "2.5.4.3=x",
            "dc=org",
        ] {
            check_dn(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for bad in [
            "",
            "  ",
            "example.org",
            "ou=twofold,",
            ",dc=org",
            "ou=,dc=org",
            "=x",
            "1ou=x",
            "o u=x",
            "cn=a=b",
            "cn=a\\",
            "cn=a\\q",
            "cn=a\\4",
            "cn=\"quoted\"",
            "cn=a;dc=org",
        ] {
            assert!(check_dn(bad).is_err(), "{bad:?} accepted");
        }
    }
}
