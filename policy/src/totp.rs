//! TOTP (RFC 6238) on top of totp-rs: secrets, codes, verification within a window that only
//! accepts a step newer than the last accepted one, and otpauth URIs.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer, de};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// Length of a fresh secret: 160 bits, as RFC 4226 recommends.
pub const SECRET_BYTES: usize = 20;

/// The HMAC behind the codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// HMAC-SHA1: what every authenticator app supports; the default.
    Sha1,
    /// HMAC-SHA256.
    Sha256,
    /// HMAC-SHA512.
    Sha512,
}

impl Algorithm {
    /// The spelling of otpauth URIs, policy files and records.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Sha1 => "SHA1",
            Algorithm::Sha256 => "SHA256",
            Algorithm::Sha512 => "SHA512",
        }
    }

    fn to_lib(self) -> totp_rs::Algorithm {
        match self {
            Algorithm::Sha1 => totp_rs::Algorithm::SHA1,
            Algorithm::Sha256 => totp_rs::Algorithm::SHA256,
            Algorithm::Sha512 => totp_rs::Algorithm::SHA512,
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Algorithm {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "SHA1" => Ok(Algorithm::Sha1),
            "SHA256" => Ok(Algorithm::Sha256),
            "SHA512" => Ok(Algorithm::Sha512),
            _ => Err(format!(
                "invalid algorithm {s:?}: expected \"SHA1\", \"SHA256\" or \"SHA512\""
            )),
        }
    }
}

impl Serialize for Algorithm {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Algorithm {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = Algorithm;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("\"SHA1\", \"SHA256\" or \"SHA512\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Algorithm, E> {
                v.parse().map_err(E::custom)
            }
        }
        d.deserialize_str(V)
    }
}

/// How codes are computed from a secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// HMAC algorithm.
    pub algorithm: Algorithm,
    /// Code length, 6 to 8.
    pub digits: u8,
    /// Step length in seconds.
    pub period: u64,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            algorithm: Algorithm::Sha1,
            digits: 6,
            period: 30,
        }
    }
}

/// Errors of this layer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TotpError {
    /// The stored secret is not valid base32 or too short.
    #[error("invalid secret: {0}")]
    BadSecret(String),
    /// Digits or period out of range.
    #[error("invalid code parameters: {0}")]
    BadParams(String),
    /// The system's random number generator failed.
    #[error("no randomness available: {0}")]
    Random(String),
}

/// A TOTP secret. Wiped from memory when dropped; never printed by `Debug`.
#[derive(Clone)]
pub struct Secret(Zeroizing<Vec<u8>>);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl Secret {
    /// A fresh 160-bit secret from the OS random number generator.
    pub fn generate() -> Result<Secret, TotpError> {
        let mut bytes = Zeroizing::new(vec![0u8; SECRET_BYTES]);
        getrandom::fill(&mut bytes).map_err(|e| TotpError::Random(e.to_string()))?;
        Ok(Secret(bytes))
    }

    /// A secret from raw bytes (at least 128 bits).
    pub fn from_bytes(bytes: &[u8]) -> Result<Secret, TotpError> {
        if bytes.len() < 16 {
            return Err(TotpError::BadSecret(format!(
                "{} bits, at least 128 are needed",
                bytes.len() * 8
            )));
        }
        Ok(Secret(Zeroizing::new(bytes.to_vec())))
    }

    /// Parses base32 (RFC 4648, upper or lower case, padding and spaces optional).
    pub fn from_base32(text: &str) -> Result<Secret, TotpError> {
        let cleaned: Zeroizing<String> = Zeroizing::new(
            text.chars()
                .filter(|c| !c.is_whitespace() && *c != '=')
                .map(|c| c.to_ascii_uppercase())
                .collect(),
        );
        let bytes = crate::encoding::base32_decode(cleaned.as_bytes())
            .map_err(|_| TotpError::BadSecret("not valid base32".into()))?;
        Secret::from_bytes(&bytes)
    }

    /// Base32 without padding, as authenticator apps take it.
    pub fn to_base32(&self) -> Zeroizing<String> {
        Zeroizing::new(crate::encoding::base32_encode(&self.0))
    }

    /// Base32 in groups of four for typing by hand: `ABCD EFGH …`.
    pub fn to_base32_grouped(&self) -> Zeroizing<String> {
        let plain = self.to_base32();
        let mut out = Zeroizing::new(String::with_capacity(plain.len() * 5 / 4 + 1));
        for (i, c) in plain.chars().enumerate() {
            if i > 0 && i % 4 == 0 {
                out.push(' ');
            }
            out.push(c);
        }
        out
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

fn engine(secret: &Secret, params: Params) -> Result<totp_rs::Totp, TotpError> {
    if !(6..=8).contains(&params.digits) {
        return Err(TotpError::BadParams(format!("{} digits", params.digits)));
    }
    if params.period == 0 {
        return Err(TotpError::BadParams("a period of 0 seconds".into()));
    }
    totp_rs::Builder::new()
        .with_algorithm(params.algorithm.to_lib())
        .with_digits(params.digits)
        .with_skew(0)
        .with_step_duration(params.period)
        .with_secret(secret.as_bytes().to_vec())
        .build()
        .map_err(|e| TotpError::BadParams(e.to_string()))
}

/// The time step that contains `time`.
pub fn step_of(time: u64, params: Params) -> u64 {
    time / params.period.max(1)
}

/// The code for `time` (e.g. to show in tests or to compare against `oathtool`).
pub fn code_at(secret: &Secret, params: Params, time: u64) -> Result<Zeroizing<String>, TotpError> {
    let totp = engine(secret, params)?;
    Ok(Zeroizing::new(totp.generate(time).to_string()))
}

/// Normalizes what a person typed as a code: spaces and dashes dropped (`123 456`), then exactly
/// `digits` ASCII digits or nothing. Oversized input is refused before any copy is made.
pub fn normalize_code(input: &str, digits: u8) -> Option<Zeroizing<String>> {
    if input.len() > 64 {
        return None;
    }
    let cleaned: Zeroizing<String> = Zeroizing::new(
        input
            .chars()
            .filter(|c| !matches!(c, ' ' | '-' | '\t'))
            .collect(),
    );
    (cleaned.len() == usize::from(digits) && cleaned.bytes().all(|b| b.is_ascii_digit()))
        .then_some(cleaned)
}

/// What a code check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The code matches this step, which is newer than the last accepted one.
    Accepted {
        /// The matched time step: store it as the new last accepted step.
        step: u64,
    },
    /// The code matches a step at or before the last accepted one: a replay.
    Replayed,
    /// The code matches no step in the window (or is not a code at all).
    Invalid,
}

/// Checks `input` against the steps `now ± window`, accepting only a step newer than
/// `last_step`. Every step in the window is computed and compared in constant time, whatever
/// matched, so timing tells nothing about which step (if any) was right.
pub fn verify(
    secret: &Secret,
    params: Params,
    input: &str,
    now: u64,
    window: u64,
    last_step: Option<u64>,
) -> Result<Verdict, TotpError> {
    verify_skewed(secret, params, input, now, window, 0, last_step)
}

/// [`verify`] for a device whose clock is `skew` steps off: the window is centred on the
/// current step plus `skew`.
pub fn verify_skewed(
    secret: &Secret,
    params: Params,
    input: &str,
    now: u64,
    window: u64,
    skew: i64,
    last_step: Option<u64>,
) -> Result<Verdict, TotpError> {
    let totp = engine(secret, params)?;
    let Some(code) = normalize_code(input, params.digits) else {
        return Ok(Verdict::Invalid);
    };
    let current = skewed_step(step_of(now, params), skew);
    let mut fresh: Option<u64> = None;
    let mut replayed = false;
    for step in current.saturating_sub(window)..=current.saturating_add(window) {
        let expected = Zeroizing::new(
            totp.generate(step.saturating_mul(params.period))
                .to_string(),
        );
        let matches: bool = expected.as_bytes().ct_eq(code.as_bytes()).into();
        if matches {
            if last_step.is_none_or(|last| step > last) {
                // Take the earliest fresh match: a later step stays available for the next login.
                fresh = fresh.or(Some(step));
            } else {
                replayed = true;
            }
        }
    }
    Ok(match (fresh, replayed) {
        (Some(step), _) => Verdict::Accepted { step },
        (None, true) => Verdict::Replayed,
        (None, false) => Verdict::Invalid,
    })
}

/// `step` moved by `skew` steps, kept within `u64`.
pub fn skewed_step(step: u64, skew: i64) -> u64 {
    if skew >= 0 {
        step.saturating_add(skew.unsigned_abs())
    } else {
        step.saturating_sub(skew.unsigned_abs())
    }
}

/// Percent-encodes for an otpauth label or query value (RFC 3986 unreserved kept).
fn pct(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `otpauth://totp/ISSUER:ACCOUNT?secret=…&issuer=…&algorithm=…&digits=…&period=…`, the
/// key-uri format every authenticator app reads. It holds the secret: wiped when dropped.
pub fn otpauth_uri(
    secret: &Secret,
    params: Params,
    issuer: &str,
    account: &str,
) -> Zeroizing<String> {
    let key = secret.to_base32();
    Zeroizing::new(format!(
        "otpauth://totp/{}:{}?secret={}&issuer={}&algorithm={}&digits={}&period={}",
        pct(issuer),
        pct(account),
        key.as_str(),
        pct(issuer),
        params.algorithm,
        params.digits,
        params.period
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s() -> Secret {
        Secret::from_bytes(b"12345678901234567890").unwrap()
    }

    #[test]
    fn window_and_replay() -> Result<(), TotpError> {
        let p = Params::default();
        let now = 1_795_000_015;
        let cur = step_of(now, p);
        let code = code_at(&s(), p, now)?;
        assert_eq!(
            verify(&s(), p, &code, now, 1, None)?,
            Verdict::Accepted { step: cur }
        );
        assert_eq!(
            verify(&s(), p, &code, now, 1, Some(cur))?,
            Verdict::Replayed
        );
        assert_eq!(
            verify(&s(), p, &code, now, 1, Some(cur - 1))?,
            Verdict::Accepted { step: cur }
        );
        let prev = code_at(&s(), p, now - 30)?;
        let next = code_at(&s(), p, now + 30)?;
        let old = code_at(&s(), p, now - 90)?;
        assert_eq!(
            verify(&s(), p, &prev, now, 1, None)?,
            Verdict::Accepted { step: cur - 1 }
        );
        assert_eq!(
            verify(&s(), p, &next, now, 1, None)?,
            Verdict::Accepted { step: cur + 1 }
        );
        assert_eq!(verify(&s(), p, &old, now, 1, None)?, Verdict::Invalid);
        assert_eq!(verify(&s(), p, &prev, now, 0, None)?, Verdict::Invalid);
        Ok(())
    }

    #[test]
    fn garbage_is_invalid_not_an_error() -> Result<(), TotpError> {
        let p = Params::default();
        for bad in [
            "",
            "12345",
            "1234567",
            "abcdef",
            "12345\0",
            "+12345",
            "١٢٣٤٥٦",
            &"9".repeat(10_000),
        ] {
            assert_eq!(
                verify(&s(), p, bad, 0, 1, None)?,
                Verdict::Invalid,
                "{bad:?}"
            );
        }
        Ok(())
    }

    #[test]
    fn normalizes_spaces() {
        assert_eq!(
            normalize_code("123 456", 6).as_deref().map(String::as_str),
            Some("123456")
        );
        assert_eq!(
            normalize_code(" 123-456 ", 6)
                .as_deref()
                .map(String::as_str),
            Some("123456")
        );
        assert!(normalize_code("1234567", 6).is_none());
    }

    #[test]
    fn base32_round_trip_and_grouping() -> Result<(), TotpError> {
        let sec = Secret::generate()?;
        assert_eq!(sec.as_bytes().len(), 20);
        let b = sec.to_base32();
        assert_eq!(b.len(), 32);
        assert_eq!(
            Secret::from_base32(&b.to_lowercase())?.as_bytes(),
            sec.as_bytes()
        );
        assert_eq!(
            Secret::from_base32(&sec.to_base32_grouped())?.as_bytes(),
            sec.as_bytes()
        );
        assert_eq!(sec.to_base32_grouped().split(' ').count(), 8);
        assert!(Secret::from_base32("AAAA").is_err());
        assert!(Secret::from_base32("!!!!").is_err());
        assert_eq!(format!("{sec:?}"), "Secret(<redacted>)");
        Ok(())
    }

    #[test]
    fn uri_is_escaped() -> Result<(), TotpError> {
        let uri = otpauth_uri(&s(), Params::default(), "twofold on host", "a@b");
        assert_eq!(
            uri.as_str(),
            "otpauth://totp/twofold%20on%20host:a%40b?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=twofold%20on%20host&algorithm=SHA1&digits=6&period=30"
        );
        Ok(())
    }
}
