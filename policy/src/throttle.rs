//! Throttling of wrong codes: per (user, source address), and per user.
//!
//! **Per source.** Each source has its own failure count, so a stranger guessing from one
//! address never delays the user logging in from another. After [`FREE_FAILURES`] wrong codes
//! in a row from a source, that source must wait before its next code is even checked:
//! [`FIRST_DELAY`] seconds, doubling with every further failure up to [`MAX_DELAY`]. A success
//! from the source clears its count; a count idle for [`FORGET_AFTER`] is forgotten. The bound
//! this gives (see [`max_attempts`]): at most 102 codes checked in 24 hours from one source.
//!
//! **Per user** (NIST SP 800-63B §5.2.2: no more than 100 consecutive failed attempts on one
//! account). Failures from every source are also counted together; after [`USER_LIMIT`] of
//! them in a row, codes from sources where the user never logged in ([`KNOWN_SOURCES`] kept,
//! most recent first) are no longer checked, until a success or an admin reset. The user still
//! logs in from the places they logged in from before, so a stranger with many addresses can
//! neither guess for long nor lock the user out of their usual places.
//!
//! The tables stay bounded: an attempt refused without being checked adds no entry; at most
//! [`MAX_SOURCES`] sources are remembered, and an entry whose delay is still running is never
//! dropped to make room (a new source is then refused unchecked, see [`Gate::Full`]).
//!
//! IPv6 sources are counted per /64 (one host usually holds a whole /64), and IPv4-mapped IPv6
//! addresses as their IPv4 address.

use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::record::{Counters, Failures, KnownSource};

/// Wrong codes from a source before delays start.
pub const FREE_FAILURES: u64 = 3;
/// The first delay, in seconds.
pub const FIRST_DELAY: u64 = 30;
/// The longest delay, in seconds.
pub const MAX_DELAY: u64 = 15 * 60;
/// A source's count is forgotten after this long without a failure, in seconds.
pub const FORGET_AFTER: u64 = 24 * 3600;
/// At most this many sources are remembered per user; the stalest whose delay has run out are
/// dropped first.
pub const MAX_SOURCES: usize = 512;
/// Consecutive failures of a user, from all sources together, after which only known sources
/// have their codes checked (NIST SP 800-63B §5.2.2).
pub const USER_LIMIT: u64 = 100;
/// At most this many known sources are remembered per user; the least recently used go first.
pub const KNOWN_SOURCES: usize = 64;

/// Whether a code from a source may be checked now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// Check it.
    Open,
    /// The source must wait `wait` more seconds after `failures` wrong codes in a row.
    Wait {
        /// Seconds left.
        wait: u64,
        /// The source's consecutive failures.
        failures: u64,
    },
    /// The user had [`USER_LIMIT`] or more failures in a row and the source is not one the user
    /// logged in from.
    Strangers {
        /// The user's consecutive failures.
        failures: u64,
    },
    /// The source is new and every remembered source's delay is still running: there is no room
    /// to count it, so it is not checked.
    Full,
}

/// Whether a code from `source` may be checked at `now`.
pub fn gate(counters: &Counters, source: &str, now: u64) -> Gate {
    if let Some(wait) = wait_left(counters, source, now) {
        return Gate::Wait {
            wait,
            failures: counters.failures.get(source).map_or(0, |f| f.count),
        };
    }
    if counters.user_failures >= USER_LIMIT && !counters.known_sources.contains_key(source) {
        return Gate::Strangers {
            failures: counters.user_failures,
        };
    }
    if !counters.failures.contains_key(source)
        && counters.failures.len() >= MAX_SOURCES
        && counters
            .failures
            .values()
            .all(|f| running(f, now) && now.saturating_sub(f.last) < FORGET_AFTER)
    {
        return Gate::Full;
    }
    Gate::Open
}

/// Whether the delay after `f` is still running at `now`.
fn running(f: &Failures, now: u64) -> bool {
    now < f.last.saturating_add(delay_after(f.count))
}

/// The delay, in seconds, that `count` consecutive failures impose before the next try.
pub fn delay_after(count: u64) -> u64 {
    if count < FREE_FAILURES {
        return 0;
    }
    let doublings = count - FREE_FAILURES;
    if doublings >= 16 {
        return MAX_DELAY;
    }
    FIRST_DELAY.saturating_mul(1 << doublings).min(MAX_DELAY)
}

/// Seconds `source` must still wait before a code from it is checked, if any.
pub fn wait_left(counters: &Counters, source: &str, now: u64) -> Option<u64> {
    let f = counters.failures.get(source)?;
    if now.saturating_sub(f.last) >= FORGET_AFTER {
        return None;
    }
    let until = f.last.saturating_add(delay_after(f.count));
    (now < until).then(|| until - now)
}

/// Records a wrong code from `source` (a code that was checked: call it only after [`gate`]
/// said [`Gate::Open`]); forgets stale sources and keeps at most [`MAX_SOURCES`], never
/// dropping one whose delay is still running.
pub fn record_failure(counters: &mut Counters, source: &str, now: u64) {
    counters
        .failures
        .retain(|_, f| now.saturating_sub(f.last) < FORGET_AFTER);
    let f = counters.failures.entry(source.to_owned()).or_default();
    f.count = f.count.saturating_add(1);
    f.last = now;
    counters.user_failures = counters.user_failures.saturating_add(1);
    trim(&mut counters.failures, source, now);
}

fn trim(failures: &mut BTreeMap<String, Failures>, keep: &str, now: u64) {
    while failures.len() > MAX_SOURCES {
        let Some(stalest) = failures
            .iter()
            .filter(|(k, f)| k.as_str() != keep && !running(f, now))
            .min_by_key(|(_, f)| f.last)
            .map(|(k, _)| k.clone())
        else {
            return;
        };
        failures.remove(&stalest);
    }
}

/// Records a success from `source`: its count and the user's are cleared, and the source is
/// known from now on.
pub fn record_success(counters: &mut Counters, source: &str, now: u64) {
    counters.failures.remove(source);
    counters.user_failures = 0;
    counters
        .known_sources
        .insert(source.to_owned(), KnownSource { last: now });
    while counters.known_sources.len() > KNOWN_SOURCES {
        let Some(oldest) = counters
            .known_sources
            .iter()
            .min_by_key(|(_, k)| k.last)
            .map(|(k, _)| k.clone())
        else {
            return;
        };
        counters.known_sources.remove(&oldest);
    }
}

/// What an admin reset clears: every count (known sources stay known).
pub fn reset(counters: &mut Counters) {
    counters.failures.clear();
    counters.user_failures = 0;
}

/// The key under which failures from the PAM_RHOST value `rhost` are counted.
pub fn source_key(rhost: &str) -> String {
    let rhost = rhost.trim();
    if rhost.is_empty() {
        return "local".into();
    }
    // A link-local peer comes with its zone (`fe80::1%eth0`): the address is what counts.
    let address = match rhost.split_once('%') {
        Some((a, _zone)) if a.contains(':') => a,
        _ => rhost,
    };
    match address.parse::<IpAddr>() {
        Ok(IpAddr::V4(v4)) => v4.to_string(),
        Ok(IpAddr::V6(v6)) => match (v6.to_ipv4_mapped(), nat64(v6)) {
            (Some(v4), _) | (None, Some(v4)) => v4.to_string(),
            (None, None) => {
                let s = v6.segments();
                let net = std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0);
                format!("{net}/64")
            }
        },
        Err(_) => rhost.to_ascii_lowercase(),
    }
}

/// The IPv4 address inside an address of the NAT64 well-known prefix `64:ff9b::/96` (RFC 6052):
/// behind a translator every IPv4 client shows as one of those, all in one /64.
fn nat64(v6: std::net::Ipv6Addr) -> Option<std::net::Ipv4Addr> {
    let o = v6.octets();
    (o[..12] == [0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0])
        .then(|| std::net::Ipv4Addr::new(o[12], o[13], o[14], o[15]))
}

/// The most codes one source can have checked in `seconds`, starting with no failures, if every
/// code is wrong and each is sent the moment it is allowed.
pub fn max_attempts(seconds: u64) -> u64 {
    let (mut t, mut n) = (0u64, 0u64);
    loop {
        let next = t + delay_after(n);
        if next >= seconds {
            return n;
        }
        t = next;
        n += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_and_cap() {
        let d: Vec<u64> = (0..10).map(delay_after).collect();
        assert_eq!(d, [0, 0, 0, 30, 60, 120, 240, 480, 900, 900]);
        assert_eq!(delay_after(u64::MAX), MAX_DELAY);
    }

    #[test]
    fn the_bound_in_the_readme() {
        // 3 at once, 4 after growing delays (30+60+120+240 s), then one every 900 s from 930 s.
        assert_eq!(max_attempts(24 * 3600), 102);
        let p = max_attempts(24 * 3600) as f64 * 3.0 / 1e6;
        assert!(p < 1.0 / 3200.0, "{p}");
    }

    #[test]
    fn per_source_waits() {
        let mut c = Counters::default();
        for _ in 0..3 {
            assert_eq!(wait_left(&c, "10.0.0.1", 1000), None);
            record_failure(&mut c, "10.0.0.1", 1000);
        }
        assert_eq!(wait_left(&c, "10.0.0.1", 1000), Some(30));
        assert_eq!(wait_left(&c, "10.0.0.1", 1029), Some(1));
        assert_eq!(wait_left(&c, "10.0.0.1", 1030), None);
        // Another source is not delayed.
        assert_eq!(wait_left(&c, "10.0.0.2", 1000), None);
        record_success(&mut c, "10.0.0.1", 1000);
        assert_eq!(wait_left(&c, "10.0.0.1", 1000), None);
        // A count idle for a day is forgotten.
        for _ in 0..9 {
            record_failure(&mut c, "a", 5000);
        }
        assert_eq!(wait_left(&c, "a", 5000), Some(900));
        assert_eq!(wait_left(&c, "a", 5000 + FORGET_AFTER), None);
        record_failure(&mut c, "b", 5000 + FORGET_AFTER);
        assert!(!c.failures.contains_key("a"));
    }

    #[test]
    fn sources_are_bounded_and_running_delays_stay() {
        let mut c = Counters::default();
        // One source with a running delay, then many one-off sources.
        for _ in 0..9 {
            record_failure(&mut c, "guesser", 10_000);
        }
        for i in 0..(MAX_SOURCES as u64 + 50) {
            record_failure(&mut c, &format!("s{i}"), 10_000 + i);
        }
        assert_eq!(c.failures.len(), MAX_SOURCES);
        assert!(!c.failures.contains_key("s0"));
        assert!(c.failures.contains_key(&format!("s{}", MAX_SOURCES + 49)));
        // 9 failures at 10_000: a 900 s delay, running until 10_900; it was never evicted.
        assert!(c.failures.contains_key("guesser"));
        assert!(matches!(gate(&c, "guesser", 10_600), Gate::Wait { .. }));
    }

    #[test]
    fn a_full_table_of_running_delays_refuses_new_sources() {
        let mut c = Counters::default();
        // A place the user knows (the per-user tier would refuse a stranger anyway).
        record_success(&mut c, "new", 1);
        for i in 0..MAX_SOURCES {
            for _ in 0..FREE_FAILURES {
                record_failure(&mut c, &format!("s{i}"), 50_000);
            }
        }
        // Every entry waits 30 s: nothing to evict, a new source is not checked ...
        assert_eq!(gate(&c, "new", 50_010), Gate::Full);
        // ... until a delay runs out.
        assert_eq!(gate(&c, "new", 50_030), Gate::Open);
    }

    #[test]
    fn per_user_tier_closes_strangers_but_not_known_places() {
        let mut c = Counters::default();
        record_success(&mut c, "home", 1);
        // A stranger rotating addresses: each address fails once, never delayed per source.
        let mut checked = 0;
        for i in 0..1000u64 {
            let src = format!("2001:db8:{i:x}::/64");
            if gate(&c, &src, 100 + i) == Gate::Open {
                checked += 1;
                record_failure(&mut c, &src, 100 + i);
            }
        }
        assert_eq!(checked, USER_LIMIT);
        assert_eq!(
            gate(&c, "203.0.113.9", 2000),
            Gate::Strangers {
                failures: USER_LIMIT
            }
        );
        // The user's own place stays open, and a success there reopens the rest.
        assert_eq!(gate(&c, "home", 2000), Gate::Open);
        record_success(&mut c, "home", 2000);
        assert_eq!(gate(&c, "203.0.113.9", 2001), Gate::Open);
        // Refused attempts added nothing: the table holds the 100 checked sources at most.
        assert!(c.failures.len() <= USER_LIMIT as usize);
        // An admin reset reopens as well.
        for i in 0..USER_LIMIT {
            record_failure(&mut c, &format!("x{i}"), 3000);
        }
        assert!(matches!(gate(&c, "y", 3001), Gate::Strangers { .. }));
        reset(&mut c);
        assert_eq!(gate(&c, "y", 3001), Gate::Open);
    }

    #[test]
    fn known_sources_are_bounded() {
        let mut c = Counters::default();
        for i in 0..(KNOWN_SOURCES as u64 + 10) {
            record_success(&mut c, &format!("k{i}"), i);
        }
        assert_eq!(c.known_sources.len(), KNOWN_SOURCES);
        assert!(!c.known_sources.contains_key("k0"));
    }

    #[test]
    fn source_keys() {
        assert_eq!(source_key(""), "local");
        assert_eq!(source_key("192.0.2.7"), "192.0.2.7");
        assert_eq!(source_key("::ffff:192.0.2.7"), "192.0.2.7");
        assert_eq!(source_key("2001:db8:1:2:3:4:5:6"), "2001:db8:1:2::/64");
        assert_eq!(source_key("2001:db8:1:2::99"), "2001:db8:1:2::/64");
        assert_eq!(source_key("Host.Example"), "host.example");
        // A link-local peer with its zone, as sshd writes it: its /64, whatever the zone.
        assert_eq!(source_key("fe80::1%eth0"), "fe80::/64");
        assert_eq!(source_key("fe80::2%eth1"), source_key("fe80::1%eth0"));
        // Behind a NAT64 translator (64:ff9b::/96), each IPv4 client is its own source.
        assert_eq!(source_key("64:ff9b::198.51.100.7"), "198.51.100.7");
        assert_ne!(
            source_key("64:ff9b::198.51.100.7"),
            source_key("64:ff9b::203.0.113.9")
        );
        // Only that prefix: another /96 ending in the same bits is an IPv6 /64 as before.
        assert_eq!(source_key("64:ff9b:1::c633:6407"), "64:ff9b:1::/64");
        // A `%` in a name is no zone.
        assert_eq!(source_key("a%b"), "a%b");
    }
}
