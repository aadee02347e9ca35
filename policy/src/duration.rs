//! Durations in policy files: `"7d"`, `"12h"`, `"15m"`, `"90s"`, `"2w"` and sums like `"1d12h"`.

use std::fmt;

use serde::{Deserialize, Deserializer, de};

/// The longest duration a policy may name (about ten years); more is surely a typo.
pub const MAX_SECONDS: u64 = 10 * 366 * 86_400;

/// A whole number of seconds parsed from a policy duration string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct PolicyDuration(pub u64);

impl PolicyDuration {
    /// Seconds.
    pub fn secs(self) -> u64 {
        self.0
    }
}

/// Why a duration string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid duration {input:?}: {why}; write a number and a unit (s, m, h, d, w), e.g. \"7d\", \"12h\", \"15m\" or \"1d12h\""
)]
pub struct DurationError {
    /// What was given.
    pub input: String,
    /// What is wrong with it.
    pub why: &'static str,
}

/// Parses a policy duration.
pub fn parse(input: &str) -> Result<PolicyDuration, DurationError> {
    // Without the `ms` unit the total is whole seconds.
    parse_millis(input, false).map(|ms| PolicyDuration(ms / 1000))
}

/// Parses a policy duration that may also count milliseconds (`"500ms"`, `"1s500ms"`): for
/// the short bounds of network operations (`[store.ldap] timeout`).
pub fn parse_precise(input: &str) -> Result<std::time::Duration, DurationError> {
    parse_millis(input, true).map(std::time::Duration::from_millis)
}

/// The grammar of both: numbers with units, summed, in milliseconds; `ms` only if `allow_ms`.
fn parse_millis(input: &str, allow_ms: bool) -> Result<u64, DurationError> {
    let err = |why| DurationError {
        input: input.to_owned(),
        why,
    };
    if input.is_empty() {
        return Err(err("it is empty"));
    }
    let mut total_ms: u64 = 0;
    let mut number: Option<u64> = None;
    let mut chars = input.chars().peekable();
    while let Some(c) = chars.next() {
        if let Some(d) = c.to_digit(10) {
            let n = number
                .unwrap_or(0)
                .checked_mul(10)
                .and_then(|n| n.checked_add(u64::from(d)))
                .ok_or_else(|| err("it is too long"))?;
            number = Some(n);
            continue;
        }
        // Milliseconds (`ms`), or seconds per unit.
        let (millis, unit) = match c {
            'm' if allow_ms && chars.peek() == Some(&'s') => {
                chars.next();
                (true, 1)
            }
            's' => (false, 1),
            'm' => (false, 60),
            'h' => (false, 3_600),
            'd' => (false, 86_400),
            'w' => (false, 7 * 86_400),
            _ if c.is_whitespace() => return Err(err("it contains a space")),
            _ => return Err(err("unknown unit")),
        };
        let n = number
            .take()
            .ok_or_else(|| err("a unit without a number"))?;
        let ms = if millis {
            Some(n)
        } else {
            n.checked_mul(unit).and_then(|s| s.checked_mul(1000))
        };
        total_ms = ms
            .and_then(|ms| total_ms.checked_add(ms))
            .ok_or_else(|| err("it is too long"))?;
    }
    if number.is_some() {
        return Err(err("the last number has no unit"));
    }
    if total_ms > MAX_SECONDS * 1000 {
        return Err(err("it is longer than ten years"));
    }
    Ok(total_ms)
}

impl fmt::Display for PolicyDuration {
    /// The shortest exact spelling, e.g. `7d`, `1d12h`, `0s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.0;
        if rest == 0 {
            return f.write_str("0s");
        }
        for (unit, secs) in [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)] {
            if rest >= secs {
                write!(f, "{}{}", rest / secs, unit)?;
                rest %= secs;
            }
        }
        Ok(())
    }
}

impl<'de> Deserialize<'de> for PolicyDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = PolicyDuration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration string such as \"7d\", \"12h\" or \"15m\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<PolicyDuration, E> {
                parse(v).map_err(E::custom)
            }
        }
        d.deserialize_str(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_sums() {
        assert_eq!(parse("7d"), Ok(PolicyDuration(7 * 86_400)));
        assert_eq!(parse("15m"), Ok(PolicyDuration(900)));
        assert_eq!(parse("1d12h"), Ok(PolicyDuration(86_400 + 12 * 3_600)));
        assert_eq!(parse("2w"), Ok(PolicyDuration(14 * 86_400)));
        assert_eq!(parse("0s"), Ok(PolicyDuration(0)));
        for bad in [
            "",
            "7",
            "d",
            "7x",
            "7 d",
            "-1d",
            "99999999999999999999d",
            "5000w",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn precise_durations_count_milliseconds() {
        use std::time::Duration;
        assert_eq!(parse_precise("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_precise("1s500ms"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_precise("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_precise("3s"), Ok(Duration::from_secs(3)));
        for bad in ["", "5", "ms", "5 ms", "5mss", "5sm"] {
            assert!(parse_precise(bad).is_err(), "{bad}");
        }
        // Whole-second durations know no milliseconds.
        assert!(parse("500ms").is_err());
    }

    #[test]
    fn displays_shortest() {
        assert_eq!(PolicyDuration(129_600).to_string(), "1d12h");
        assert_eq!(PolicyDuration(604_800).to_string(), "7d");
        assert_eq!(PolicyDuration(61).to_string(), "1m1s");
    }
}
