//! Throttling of wrong codes per (user, source address).
//!
//! Each source has its own failure count, so a stranger guessing from one address never delays
//! the user logging in from another. After [`FREE_FAILURES`] wrong codes in a row from a source,
//! that source must wait before its next code is even checked: [`FIRST_DELAY`] seconds, doubling
//! with every further failure up to [`MAX_DELAY`]. A success from the source clears its count;
//! a count idle for [`FORGET_AFTER`] is forgotten.
//!
//! The bound this gives (see [`max_attempts`]): at most 102 codes checked in 24 hours from one
//! source, so with 6 digits and a window of ±1 step the chance to guess a code in a day of
//! trying is below 102 × 3 / 10⁶ ≈ 1 in 3,200.
//!
//! IPv6 sources are counted per /64 (one host usually holds a whole /64), and IPv4-mapped IPv6
//! addresses as their IPv4 address.

use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::record::{Counters, Failures};

/// Wrong codes from a source before delays start.
pub const FREE_FAILURES: u64 = 3;
/// The first delay, in seconds.
pub const FIRST_DELAY: u64 = 30;
/// The longest delay, in seconds.
pub const MAX_DELAY: u64 = 15 * 60;
/// A source's count is forgotten after this long without a failure, in seconds.
pub const FORGET_AFTER: u64 = 24 * 3600;
/// At most this many sources are remembered per user; the stalest are dropped first.
pub const MAX_SOURCES: usize = 512;

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

/// Records a wrong code from `source`; forgets stale sources and keeps at most [`MAX_SOURCES`].
pub fn record_failure(counters: &mut Counters, source: &str, now: u64) {
    counters
        .failures
        .retain(|_, f| now.saturating_sub(f.last) < FORGET_AFTER);
    let f = counters.failures.entry(source.to_owned()).or_default();
    f.count = f.count.saturating_add(1);
    f.last = now;
    trim(&mut counters.failures);
}

fn trim(failures: &mut BTreeMap<String, Failures>) {
    while failures.len() > MAX_SOURCES {
        let Some(stalest) = failures
            .iter()
            .min_by_key(|(_, f)| f.last)
            .map(|(k, _)| k.clone())
        else {
            return;
        };
        failures.remove(&stalest);
    }
}

/// Records a success from `source`: its count is cleared.
pub fn record_success(counters: &mut Counters, source: &str) {
    counters.failures.remove(source);
}

/// The key under which failures from the PAM_RHOST value `rhost` are counted.
pub fn source_key(rhost: &str) -> String {
    let rhost = rhost.trim();
    if rhost.is_empty() {
        return "local".into();
    }
    match rhost.parse::<IpAddr>() {
        Ok(IpAddr::V4(v4)) => v4.to_string(),
        Ok(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                let net = std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0);
                format!("{net}/64")
            }
        },
        Err(_) => rhost.to_ascii_lowercase(),
    }
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
        record_success(&mut c, "10.0.0.1");
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
    fn sources_are_bounded() {
        let mut c = Counters::default();
        for i in 0..(MAX_SOURCES as u64 + 50) {
            record_failure(&mut c, &format!("s{i}"), 10_000 + i);
        }
        assert_eq!(c.failures.len(), MAX_SOURCES);
        assert!(!c.failures.contains_key("s0"));
        assert!(c.failures.contains_key(&format!("s{}", MAX_SOURCES + 49)));
    }

    #[test]
    fn source_keys() {
        assert_eq!(source_key(""), "local");
        assert_eq!(source_key("192.0.2.7"), "192.0.2.7");
        assert_eq!(source_key("::ffff:192.0.2.7"), "192.0.2.7");
        assert_eq!(source_key("2001:db8:1:2:3:4:5:6"), "2001:db8:1:2::/64");
        assert_eq!(source_key("2001:db8:1:2::99"), "2001:db8:1:2::/64");
        assert_eq!(source_key("Host.Example"), "host.example");
    }
}
