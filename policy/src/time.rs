//! Wall-clock time as Unix seconds, and RFC 3339 text for records and output.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Now, in Unix seconds (0 if the clock is set before 1970, which then matches no code).
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `2026-11-22T10:00:00Z`.
pub fn rfc3339(secs: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(secs)).to_string()
}

/// `2026-11-22 10:00 UTC`: for sentences meant for people.
pub fn human(secs: u64) -> String {
    let s = rfc3339(secs);
    // "YYYY-MM-DDTHH:MM:SSZ" → "YYYY-MM-DD HH:MM UTC"
    match (s.get(0..10), s.get(11..16)) {
        (Some(date), Some(hm)) => format!("{date} {hm} UTC"),
        _ => s,
    }
}

/// Parses RFC 3339 text back to Unix seconds.
pub fn parse_rfc3339(s: &str) -> Option<u64> {
    humantime::parse_rfc3339(s)
        .ok()?
        .duration_since(UNIX_EPOCH)
        .ok()
        .map(|d| d.as_secs())
}

/// Serde adapter storing optional Unix seconds as RFC 3339 strings.
pub mod opt_rfc3339 {
    use serde::{Deserialize, Deserializer, Serializer, de};

    /// Serialize.
    pub fn serialize<S: Serializer>(v: &Option<u64>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(t) => s.serialize_str(&super::rfc3339(*t)),
            None => s.serialize_none(),
        }
    }

    /// Deserialize.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        let s = String::deserialize(d)?;
        super::parse_rfc3339(&s).map(Some).ok_or_else(|| {
            de::Error::custom(format!(
                "invalid timestamp {s:?}: expected RFC 3339 such as \"2026-11-22T10:00:00Z\""
            ))
        })
    }
}

/// Serde adapter storing Unix seconds as RFC 3339 strings.
pub mod rfc3339_secs {
    use serde::{Deserializer, Serializer, de};

    /// Serialize.
    pub fn serialize<S: Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::rfc3339(*v))
    }

    /// Deserialize.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        super::opt_rfc3339::deserialize(d)?.ok_or_else(|| de::Error::custom("missing timestamp"))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn round_trips() {
        let t = 1_795_000_000;
        assert_eq!(super::parse_rfc3339(&super::rfc3339(t)), Some(t));
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::human(1_795_000_000), "2026-11-18 11:06 UTC");
    }
}

/// Growing pauses between tries of something that may succeed later (a held lock, a full
/// listen queue), up to a deadline: no thread, no signal (it runs inside other programs).
#[derive(Debug)]
pub struct Retry {
    until: std::time::Instant,
    pause: std::time::Duration,
}

impl Retry {
    /// The first pause, and the longest.
    const FIRST: std::time::Duration = std::time::Duration::from_millis(1);
    const MAX: std::time::Duration = std::time::Duration::from_millis(25);

    /// Tries until `until`.
    pub fn until(until: std::time::Instant) -> Retry {
        Retry {
            until,
            pause: Retry::FIRST,
        }
    }

    /// Sleeps before the next try (1 ms, doubling up to 25 ms, never past the deadline);
    /// `false`, without sleeping, once the deadline has come.
    pub fn pause(&mut self) -> bool {
        let now = std::time::Instant::now();
        if now >= self.until {
            return false;
        }
        std::thread::sleep(self.pause.min(self.until - now));
        self.pause = (self.pause * 2).min(Retry::MAX);
        true
    }
}
