//! Where a login comes from, as `[enrollment] at_login_from` names it: `local` (no remote host:
//! the console), an address, a network, or a host name.
//!
//! A login's source is the raw `PAM_RHOST`: empty or unset for a console, an address for sshd
//! (`UseDNS no`, the default), or the host name sshd resolved and checked (`UseDNS yes`). An
//! address is compared as an address: `::ffff:10.1.2.3` (an IPv4 client on a dual-stack
//! socket) is the IPv4 address 10.1.2.3, and a zone index (`fe80::1%eth0`) is ignored. Anything
//! else is a host name, which matches only an entry that is the same name (ASCII case ignored),
//! never a network: a name says nothing trustworthy about which network the client is in.
//!
//! The same rules decide which `[networks."CIDR"]` rule a login falls under ([`Network`]): only a
//! `PAM_RHOST` that is a literal address ([`rhost_addr`]) is in a network.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// What a valid entry looks like, for error messages.
pub const EXPECTED: &str = "expected \"local\", an address (192.0.2.7, 2001:db8::7), a network (10.0.0.0/8, 2001:db8::/32) or a host name";

/// One entry of `at_login_from`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// `local`: a login without a remote host (`PAM_RHOST` unset or empty), i.e. the console.
    Local,
    /// An address (`prefix` = its full length) or a network; the host bits of `addr` are zero.
    Net {
        /// The network address.
        addr: IpAddr,
        /// The prefix length: 0 to 32 for IPv4, 0 to 128 for IPv6.
        prefix: u8,
    },
    /// A host name, in lower case: matches only a `PAM_RHOST` that is this name.
    Host(String),
}

/// A network of a `[networks."CIDR"]` rule: an address and a prefix length, with the host bits
/// clear. A single address is the network of its full length (`/32`, `/128`). An IPv4-mapped
/// IPv6 network is refused (write it as IPv4), so that an IPv4 client is matched the same way
/// on either kind of socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Network {
    addr: IpAddr,
    prefix: u8,
}

/// What a valid network key looks like, for error messages.
pub const EXPECTED_NETWORK: &str =
    "expected an IPv4 or IPv6 network (10.0.0.0/8, 2001:db8::/32) or address (192.0.2.7)";

impl Network {
    /// The network address (host bits clear).
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length: 0 to 32 for IPv4, 0 to 128 for IPv6.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Whether `addr` (canonical, as [`rhost_addr`] gives it) is in this network.
    pub fn contains(&self, addr: &IpAddr) -> bool {
        let addr = canonical(*addr);
        addr.is_ipv4() == self.addr.is_ipv4() && masked(&addr, self.prefix) == self.addr
    }

    /// Whether this network is all of IPv4 or all of IPv6 (`0.0.0.0/0`, `::/0`).
    pub fn is_everything(&self) -> bool {
        self.prefix == 0
    }

    /// Whether this network holds a loopback address (`127.0.0.1`, `::1`): logins relayed by a
    /// local proxy (a reverse proxy in front of Cockpit, an sshd jump host forwarding to
    /// itself) come from there.
    pub fn holds_loopback(&self) -> bool {
        match self.addr {
            IpAddr::V4(_) => self.contains(&IpAddr::from([127, 0, 0, 1])),
            IpAddr::V6(_) => self.contains(&IpAddr::V6(std::net::Ipv6Addr::LOCALHOST)),
        }
    }
}

impl FromStr for Network {
    type Err = String;

    /// Parses a network key; the error says what is wrong with it (callers add
    /// [`EXPECTED_NETWORK`]). `local` and host names are no networks.
    fn from_str(s: &str) -> Result<Network, String> {
        if s.contains('%') {
            return Err("a zone index (%...) belongs to no network".into());
        }
        match s.parse::<Origin>() {
            Ok(Origin::Net { addr, prefix }) => Ok(Network { addr, prefix }),
            Ok(Origin::Local) => Err("\"local\" is no network (a console login has no address, and no network rule applies to it)".into()),
            Ok(Origin::Host(_)) => Err("a host name is no network: network rules match addresses only".into()),
            Err(e) => Err(e),
        }
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// The address a `PAM_RHOST` names, if it is one: IPv4-mapped IPv6 as IPv4, without a zone.
pub fn rhost_addr(rhost: &str) -> Option<IpAddr> {
    let bare = rhost.split_once('%').map_or(rhost, |(a, _)| a);
    let addr: IpAddr = bare.parse().ok()?;
    if bare.len() != rhost.len() && !addr.is_ipv6() {
        // A zone belongs to IPv6 only: "10.0.0.1%x" is not an address.
        return None;
    }
    Some(canonical(addr))
}

fn canonical(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
        v4 => v4,
    }
}

fn max_prefix(addr: &IpAddr) -> u8 {
    if addr.is_ipv4() { 32 } else { 128 }
}

/// `addr` with all but its first `prefix` bits cleared.
fn masked(addr: &IpAddr, prefix: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let mask = u32::MAX
                .checked_shl(32 - u32::from(prefix.min(32)))
                .unwrap_or(0);
            IpAddr::V4((u32::from(*a) & mask).into())
        }
        IpAddr::V6(a) => {
            let mask = u128::MAX
                .checked_shl(128 - u32::from(prefix.min(128)))
                .unwrap_or(0);
            IpAddr::V6((u128::from(*a) & mask).into())
        }
    }
}

/// A host name as DNS writes it: labels of letters, digits and `-` (not at either end), 1 to 63
/// characters each, 253 in all, the last not all digits (so `10.0.0.256` is no name).
fn is_host_name(s: &str) -> bool {
    if s.is_empty() || s.len() > 253 {
        return false;
    }
    let labels_ok = s.split('.').all(|l| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    });
    labels_ok
        && s.rsplit('.')
            .next()
            .is_some_and(|last| !last.chars().all(|c| c.is_ascii_digit()))
}

impl FromStr for Origin {
    type Err = String;

    /// Parses an entry; the error says what is wrong with it (callers add [`EXPECTED`]).
    fn from_str(s: &str) -> Result<Origin, String> {
        if s.eq_ignore_ascii_case("local") {
            return Ok(Origin::Local);
        }
        let (addr_text, prefix_text) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let Ok(addr) = addr_text.parse::<IpAddr>() else {
            if prefix_text.is_some() {
                return Err(format!("{addr_text:?} before the '/' is not an IP address"));
            }
            if is_host_name(s) {
                return Ok(Origin::Host(s.to_ascii_lowercase()));
            }
            return Err("not an address, a network or a host name".into());
        };
        let max = max_prefix(&addr);
        let prefix = match prefix_text {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|n| *n <= max && !p.starts_with('+'))
                .ok_or_else(|| {
                    format!(
                        "prefix length {p:?} is not a number from 0 to {max} ({})",
                        if max == 32 { "IPv4" } else { "IPv6" }
                    )
                })?,
        };
        if let IpAddr::V6(v6) = addr
            && let Some(v4) = v6.to_ipv4_mapped()
            && let Some(p4) = prefix.checked_sub(96)
        {
            let v4 = IpAddr::V4(v4);
            let as_v4 = Origin::Net {
                addr: masked(&v4, p4),
                prefix: p4,
            };
            return Err(format!(
                "an IPv4-mapped address: write it as IPv4 ({as_v4}), which also matches IPv4 clients of a dual-stack server"
            ));
        }
        let net = masked(&addr, prefix);
        if net != addr {
            return Err(format!(
                "host bits set after the /{prefix}: the network is {net}/{prefix}"
            ));
        }
        Ok(Origin::Net { addr, prefix })
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Local => f.write_str("local"),
            Origin::Net { addr, prefix } if *prefix == max_prefix(addr) => write!(f, "{addr}"),
            Origin::Net { addr, prefix } => write!(f, "{addr}/{prefix}"),
            Origin::Host(h) => f.write_str(h),
        }
    }
}

impl Origin {
    /// Whether a login whose raw `PAM_RHOST` is `rhost` (`""` when there is none) comes from
    /// here. See the module documentation for how addresses and names are compared.
    pub fn matches(&self, rhost: &str) -> bool {
        match self {
            Origin::Local => rhost.is_empty(),
            Origin::Net { addr, prefix } => rhost_addr(rhost).is_some_and(|r| {
                Network {
                    addr: *addr,
                    prefix: *prefix,
                }
                .contains(&r)
            }),
            Origin::Host(h) => rhost_addr(rhost).is_none() && rhost.eq_ignore_ascii_case(h),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn o(s: &str) -> Origin {
        s.parse().unwrap()
    }

    #[test]
    fn parses_and_prints_canonically() {
        for (text, shown) in [
            ("local", "local"),
            ("LOCAL", "local"),
            ("10.0.0.0/8", "10.0.0.0/8"),
            ("192.168.1.7", "192.168.1.7"),
            ("192.168.1.7/32", "192.168.1.7"),
            ("0.0.0.0/0", "0.0.0.0/0"),
            ("2001:db8::/32", "2001:db8::/32"),
            ("2001:DB8:0::/32", "2001:db8::/32"),
            ("::/0", "::/0"),
            ("::1", "::1"),
            ("Bastion.Example.ORG", "bastion.example.org"),
            ("jump-1", "jump-1"),
        ] {
            let got = o(text);
            assert_eq!(got.to_string(), shown, "{text}");
            assert_eq!(o(shown), got, "{shown} round trip");
        }
    }

    #[test]
    fn refuses_what_is_not_a_source() {
        for (text, why) in [
            (
                "10.0.0.0/33",
                "prefix length \"33\" is not a number from 0 to 32 (IPv4)",
            ),
            (
                "2001:db8::/129",
                "prefix length \"129\" is not a number from 0 to 128 (IPv6)",
            ),
            (
                "10.0.0.0/",
                "prefix length \"\" is not a number from 0 to 32 (IPv4)",
            ),
            (
                "10.0.0.0/+8",
                "prefix length \"+8\" is not a number from 0 to 32 (IPv4)",
            ),
            (
                "10.0.0.1/8",
                "host bits set after the /8: the network is 10.0.0.0/8",
            ),
            (
                "2001:db8::1/32",
                "host bits set after the /32: the network is 2001:db8::/32",
            ),
            ("10.0.0.256", "not an address, a network or a host name"),
            ("10.0.0", "not an address, a network or a host name"),
            (
                "10.0.0.0/8/8",
                "prefix length \"8/8\" is not a number from 0 to 32 (IPv4)",
            ),
            (
                "host.example/24",
                "\"host.example\" before the '/' is not an IP address",
            ),
            ("", "not an address, a network or a host name"),
            ("a b", "not an address, a network or a host name"),
            ("-x", "not an address, a network or a host name"),
            ("fe80::1%eth0", "not an address, a network or a host name"),
        ] {
            assert_eq!(text.parse::<Origin>().unwrap_err(), why, "{text}");
        }
        for (text, v4) in [
            ("::ffff:10.0.0.0/104", "10.0.0.0/8"),
            ("::ffff:10.1.0.0/104", "10.0.0.0/8"),
            ("::ffff:192.0.2.7", "192.0.2.7"),
            ("::ffff:0.0.0.0/96", "0.0.0.0/0"),
        ] {
            assert_eq!(
                text.parse::<Origin>().unwrap_err(),
                format!(
                    "an IPv4-mapped address: write it as IPv4 ({v4}), which also matches IPv4 clients of a dual-stack server"
                ),
                "{text}"
            );
        }
        // Below /96 it is an IPv6 network like any other (and this one has host bits).
        assert!(
            "::ffff:0.0.0.0/80"
                .parse::<Origin>()
                .unwrap_err()
                .starts_with("host bits set")
        );
    }

    #[test]
    fn matches_addresses_networks_and_names() {
        assert!(o("local").matches(""));
        assert!(!o("local").matches("local"));
        assert!(!o("local").matches("127.0.0.1"));
        let net = o("10.0.0.0/8");
        assert!(net.matches("10.200.3.4"));
        assert!(net.matches("::ffff:10.200.3.4"));
        assert!(!net.matches("11.0.0.1"));
        assert!(!net.matches(""));
        assert!(!net.matches("10.example.org"));
        assert!(!net.matches("10.0.0.1%eth0"));
        let one = o("192.168.1.7");
        assert!(one.matches("192.168.1.7"));
        assert!(one.matches("::FFFF:192.168.1.7"));
        assert!(!one.matches("192.168.1.8"));
        let v6 = o("2001:db8::/32");
        assert!(v6.matches("2001:db8:1::5"));
        assert!(v6.matches("2001:0DB8::5"));
        assert!(!v6.matches("2001:db9::5"));
        assert!(!v6.matches("10.0.0.1"));
        assert!(o("fe80::/10").matches("fe80::1%eth0"));
        // All of IPv4 is not IPv6, and a mapped address is IPv4.
        assert!(o("0.0.0.0/0").matches("::ffff:1.2.3.4"));
        assert!(!o("0.0.0.0/0").matches("::1"));
        assert!(!o("::/0").matches("::ffff:1.2.3.4"));
        assert!(o("::/0").matches("::1"));
        // A name matches only the same name, never a network it might resolve into.
        let host = o("bastion.example.org");
        assert!(host.matches("bastion.example.org"));
        assert!(host.matches("BASTION.example.org"));
        assert!(!host.matches("evil.bastion.example.org"));
        assert!(!host.matches("bastion.example.org.evil"));
        assert!(!host.matches(""));
        assert!(!o("0.0.0.0/0").matches("bastion.example.org"));
    }
}
