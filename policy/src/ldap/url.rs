//! LDAP URLs (RFC 4516) as far as a server address goes: `ldapi://` with a percent-encoded
//! socket path, `ldap://host[:port]` and `ldaps://host[:port]`, each with an optional `/` at
//! the end. A DN, attributes, scope, filter or extensions after that are refused: the
//! configuration names the base DN elsewhere.

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::str::FromStr;

use super::LdapError;

/// Where `ldapi:///` points: the socket of Debian's slapd.
pub const DEFAULT_LDAPI_PATH: &str = "/var/run/slapd/ldapi";

/// A server's host: a name (checked by TLS against the certificate's DNS names) or an address
/// (checked against its IP address names).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    /// A DNS name, lower-cased.
    Name(String),
    /// An IPv4 address, or an IPv6 one written in brackets.
    Ip(IpAddr),
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Name(n) => f.write_str(n),
            Host::Ip(IpAddr::V4(a)) => write!(f, "{a}"),
            Host::Ip(IpAddr::V6(a)) => write!(f, "[{a}]"),
        }
    }
}

/// A parsed LDAP server URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LdapUrl {
    /// `ldapi://`: a Unix socket on this machine.
    Ldapi(PathBuf),
    /// `ldap://` (plain, or StartTLS if asked) and `ldaps://` (TLS from the start).
    Tcp {
        /// The server.
        host: Host,
        /// The port: 389 for `ldap://` and 636 for `ldaps://` unless given.
        port: u16,
        /// `ldaps://`.
        tls: bool,
    },
}

impl LdapUrl {
    /// Parses `text`; the scheme is matched ignoring case.
    pub fn parse(text: &str) -> Result<LdapUrl, LdapError> {
        let bad = |why: &str| LdapError::Url(format!("{text:?}: {why}"));
        let (scheme, rest) = text
            .split_once("://")
            .ok_or_else(|| bad("expected ldapi://, ldap:// or ldaps://"))?;
        let scheme = scheme.to_ascii_lowercase();
        // Everything up to an optional trailing `/`; nothing may follow it.
        let authority = match rest.split_once('/') {
            Some((a, "")) => a,
            Some(_) => {
                return Err(bad(
                    "a DN, attributes, filter or extensions after the server are not supported",
                ));
            }
            None => rest,
        };
        if authority.contains(['?', '#', '@']) {
            return Err(bad(
                "user information, queries and fragments are not supported",
            ));
        }
        match scheme.as_str() {
            "ldapi" => {
                if authority.is_empty() {
                    return Ok(LdapUrl::Ldapi(PathBuf::from(DEFAULT_LDAPI_PATH)));
                }
                let path = percent_decode(authority).ok_or_else(|| {
                    bad("the socket path has an invalid %-escape or is not UTF-8")
                })?;
                if !path.starts_with('/') {
                    return Err(bad("the socket path must be absolute, with / written %2F"));
                }
                if path.contains('\0') {
                    return Err(bad("the socket path contains NUL"));
                }
                Ok(LdapUrl::Ldapi(PathBuf::from(path)))
            }
            "ldap" | "ldaps" => {
                let tls = scheme == "ldaps";
                let (host, port) = split_host_port(authority).map_err(bad)?;
                let port = match port {
                    None => {
                        if tls {
                            636
                        } else {
                            389
                        }
                    }
                    Some(p) => p,
                };
                Ok(LdapUrl::Tcp { host, port, tls })
            }
            _ => Err(bad("expected ldapi://, ldap:// or ldaps://")),
        }
    }
}

impl FromStr for LdapUrl {
    type Err = LdapError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        LdapUrl::parse(s)
    }
}

impl fmt::Display for LdapUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LdapUrl::Ldapi(path) => {
                f.write_str("ldapi://")?;
                for b in path.as_os_str().as_encoded_bytes() {
                    if b.is_ascii_alphanumeric() || b"-._~".contains(b) {
                        write!(f, "{}", char::from(*b))?;
                    } else {
                        write!(f, "%{b:02X}")?;
                    }
                }
                Ok(())
            }
            LdapUrl::Tcp { host, port, tls } => {
                let scheme = if *tls { "ldaps" } else { "ldap" };
                write!(f, "{scheme}://{host}:{port}")
            }
        }
    }
}

fn split_host_port(authority: &str) -> Result<(Host, Option<u16>), &'static str> {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (inside, after) = rest
            .split_once(']')
            .ok_or("an IPv6 address is missing its closing ]")?;
        let ip: std::net::Ipv6Addr = inside
            .parse()
            .map_err(|_| "invalid IPv6 address in brackets")?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or("unexpected text after ]")?),
        };
        (Host::Ip(IpAddr::V6(ip)), port)
    } else {
        let (name, port) = match authority.split_once(':') {
            Some((n, p)) => (n, Some(p)),
            None => (authority, None),
        };
        if name.is_empty() {
            return Err("no host (this client has no default host)");
        }
        let host = if let Ok(ip) = name.parse::<std::net::Ipv4Addr>() {
            Host::Ip(IpAddr::V4(ip))
        } else if name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
            && !name.starts_with(['-', '.'])
        {
            Host::Name(name.to_ascii_lowercase())
        } else {
            return Err("invalid host name (IPv6 addresses go in brackets)");
        };
        (host, port)
    };
    let port = match port {
        None => None,
        Some(p) => {
            if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
                return Err("invalid port");
            }
            match p.parse::<u16>() {
                Ok(0) | Err(_) => return Err("port out of range 1-65535"),
                Ok(n) => Some(n),
            }
        }
    };
    Ok((host, port))
}

fn percent_decode(s: &str) -> Option<String> {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let hi = char::from(bytes.next()?).to_digit(16)?;
            let lo = char::from(bytes.next()?).to_digit(16)?;
            out.push(u8::try_from(hi * 16 + lo).ok()?);
        } else {
            out.push(b);
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn tcp(host: Host, port: u16, tls: bool) -> LdapUrl {
        LdapUrl::Tcp { host, port, tls }
    }

    #[test]
    fn parses_supported_urls() {
        let ok = |s: &str| LdapUrl::parse(s).unwrap();
        assert_eq!(
            ok("ldapi://%2Frun%2Fslapd%2Fldapi"),
            LdapUrl::Ldapi("/run/slapd/ldapi".into())
        );
        assert_eq!(
            ok("ldapi://%2ftmp%2Fa%20b%2Fs/"),
            LdapUrl::Ldapi("/tmp/a b/s".into())
        );
        assert_eq!(ok("ldapi:///"), LdapUrl::Ldapi(DEFAULT_LDAPI_PATH.into()));
        assert_eq!(ok("ldapi://"), LdapUrl::Ldapi(DEFAULT_LDAPI_PATH.into()));
        assert_eq!(
            ok("ldap://LDAP.Example.org"),
            tcp(Host::Name("ldap.example.org".into()), 389, false)
        );
        assert_eq!(
            ok("LDAPS://ldap.example.org/"),
            tcp(Host::Name("ldap.example.org".into()), 636, true)
        );
        assert_eq!(
            ok("ldap://127.0.0.1:3389/"),
            tcp(Host::Ip(Ipv4Addr::LOCALHOST.into()), 3389, false)
        );
        assert_eq!(
            ok("ldaps://[::1]:6636"),
            tcp(Host::Ip(Ipv6Addr::LOCALHOST.into()), 6636, true)
        );
        assert_eq!(
            ok("ldap://[fe80::1]"),
            tcp(Host::Ip("fe80::1".parse().unwrap()), 389, false)
        );
    }

    #[test]
    fn refuses_the_rest() {
        for s in [
            "",
            "ldap:",
            "ldap:/host",
            "http://host",
            "ldapx://host",
            "ldap://",
            "ldap:///",
            "ldap://:389",
            "ldap://host:",
            "ldap://host:0",
            "ldap://host:65536",
            "ldap://host:+1",
            "ldap://host:12a",
            "ldap://host/dc=example,dc=org",
            "ldap://host/?cn",
            "ldap://host?x",
            "ldap://user@host",
            "ldap://ho_st",
            "ldap://-host",
            "ldap://::1",
            "ldap://[::1",
            "ldap://[::1]x",
            "ldap://[not-ip]",
            "ldap://[127.0.0.1]",
            "ldapi://%2Frun%2Fslapd%2Fldapi/dc=x",
            "ldapi://relative",
            "ldapi://%2Fbad%zz",
            "ldapi://%2Fbad%2",
            "ldapi://%2Fnul%00",
            "ldapi://%2F%ff",
        ] {
            let e = LdapUrl::parse(s).unwrap_err();
            assert!(matches!(e, LdapError::Url(_)), "{s}: {e}");
        }
    }

    #[test]
    fn displays_back() {
        for s in [
            "ldapi://%2Frun%2Fslapd%2Fldapi",
            "ldap://ldap.example.org:389",
            "ldaps://[::1]:636",
            "ldaps://10.0.0.1:6360",
        ] {
            let u = LdapUrl::parse(s).unwrap();
            assert_eq!(u.to_string(), s);
            assert_eq!(LdapUrl::parse(&u.to_string()).unwrap(), u);
        }
    }
}
