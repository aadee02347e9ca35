//! The login's fast reader of records ([`Record::parse_canonical`]) and the text helpers the
//! counters' reader and writer share with it.

use zeroize::Zeroizing;

use super::{Authenticator, Enrollment, Kind, Override, Record, VERSION};
use crate::mode::Mode;
use crate::totp::{Algorithm, Params};

/// The shape of a value in the text twofold writes.
pub(super) enum Plain<'a> {
    Int(u64),
    NegInt(i64),
    Str(&'a str),
    Strs(Vec<&'a str>),
}

/// A basic string without escapes or control characters: `"…"` at the start of `v`; the text
/// inside and the rest after the closing quote.
pub(super) fn plain_str(v: &str) -> Option<(&str, &str)> {
    let inner = v.strip_prefix('"')?;
    let end = inner.find('"')?;
    let (s, rest) = inner.split_at(end);
    if s.chars().any(|c| c == '\\' || c.is_control()) {
        return None;
    }
    Some((s, rest.get(1..)?))
}

pub(super) fn plain_value(v: &str) -> Option<Plain<'_>> {
    if v.starts_with('"') {
        let (s, rest) = plain_str(v)?;
        return rest.is_empty().then_some(Plain::Str(s));
    }
    if let Some(inner) = v.strip_prefix('[') {
        let mut out = Vec::new();
        let mut rest = inner;
        if let Some(r) = rest.strip_prefix(']') {
            return r.is_empty().then_some(Plain::Strs(out));
        }
        loop {
            let (s, r) = plain_str(rest)?;
            out.push(s);
            if let Some(r) = r.strip_prefix(", ") {
                rest = r;
            } else {
                return (r == "]").then_some(Plain::Strs(out));
            }
        }
    }
    if let Some(digits) = v.strip_prefix('-') {
        // A negative integer as TOML writes it: `-` and digits without a leading zero.
        if digits.is_empty()
            || !digits.bytes().all(|b| b.is_ascii_digit())
            || digits.starts_with('0')
        {
            return None;
        }
        return v.parse::<i64>().ok().map(Plain::NegInt);
    }
    // A decimal integer as TOML writes it: no sign, no underscore, no leading zero.
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) || (v.len() > 1 && v.starts_with('0'))
    {
        return None;
    }
    // TOML integers are 64-bit signed.
    v.parse::<i64>()
        .ok()
        .and_then(|n| u64::try_from(n).ok())
        .map(Plain::Int)
}

impl<'a> Plain<'a> {
    pub(super) fn int(self) -> Option<u64> {
        match self {
            Plain::Int(n) => Some(n),
            _ => None,
        }
    }

    pub(super) fn signed(self) -> Option<i64> {
        match self {
            Plain::Int(n) => i64::try_from(n).ok(),
            Plain::NegInt(n) => Some(n),
            _ => None,
        }
    }

    pub(super) fn str(self) -> Option<&'a str> {
        match self {
            Plain::Str(s) => Some(s),
            _ => None,
        }
    }

    pub(super) fn strs(self) -> Option<Vec<&'a str>> {
        match self {
            Plain::Strs(v) => Some(v),
            _ => None,
        }
    }

    /// An RFC 3339 timestamp, as Unix seconds.
    pub(super) fn time(self) -> Option<u64> {
        crate::time::parse_rfc3339(self.str()?)
    }
}

/// Fills `slot` with `v` once: `None` (decline) for a key given twice or a value of the wrong
/// shape.
pub(super) fn set_once<T>(slot: &mut Option<T>, v: Option<T>) -> Option<()> {
    if slot.is_some() {
        return None;
    }
    *slot = Some(v?);
    Some(())
}

/// `s` as a TOML basic string: quoted, with `"`, `\\` and every control character escaped.
pub(super) fn toml_string(out: &mut String, s: &str) {
    use std::fmt::Write as _;
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// The keys of one `[[enrollment.authenticators]]` table, as read.
#[derive(Default)]
struct RawAuth<'a> {
    id: Option<u32>,
    name: Option<&'a str>,
    kind: Option<Kind>,
    secret: Option<&'a str>,
    algorithm: Option<Algorithm>,
    digits: Option<u8>,
    period: Option<u64>,
    skew: Option<i64>,
    added_at: Option<u64>,
}

impl RawAuth<'_> {
    fn build(self) -> Option<Authenticator> {
        Some(Authenticator {
            id: self.id?,
            name: self.name?.to_owned(),
            kind: self.kind?,
            secret: Zeroizing::new(self.secret?.to_owned()),
            params: Params {
                algorithm: self.algorithm?,
                digits: self.digits?,
                period: self.period?,
            },
            skew: self.skew.unwrap_or(0),
            added_at: self.added_at?,
        })
    }
}

impl Record {
    /// Parses a record in exactly the shape twofold writes it (`toml::to_string` of a record:
    /// `key = value` lines with plain strings, integers and one-line string arrays, the
    /// `[override]` and `[enrollment]` tables and the `[[enrollment.authenticators]]` array of
    /// version 2, or version 1's one secret in `[enrollment]`), without the TOML parser: a login
    /// reads one at every code check. `None` for any other text, however valid as TOML
    /// (comments, escapes, other spacing, keys out of place): the caller then parses it with
    /// the `toml` crate, which also gives the errors. It accepts nothing the `toml` crate would
    /// refuse and reads everything as it does, a version-1 record migrated the same way
    /// (`tests/record_text.rs` checks both over generated and damaged records).
    pub fn parse_canonical(text: &str) -> Option<Record> {
        #[derive(PartialEq)]
        enum Table {
            Top,
            Override,
            Enrollment,
            Authenticator,
        }
        let mut table = Table::Top;
        let mut seen_override = false;
        let mut seen_enrollment = false;
        let mut version = None;
        let mut user = None;
        let mut required_since = None;
        let (mut mode, mut by, mut at) = (None, None, None);
        let (mut enrolled_at, mut codes, mut next_id) = (None, None, None);
        // Version 1's fields of [enrollment].
        let (mut secret, mut algorithm, mut digits, mut period) = (None, None, None, None);
        let mut auths: Vec<RawAuth<'_>> = Vec::new();
        for line in text.split('\n') {
            if line.is_empty() {
                continue;
            }
            match line {
                "[override]" if !seen_override && table == Table::Top => {
                    seen_override = true;
                    table = Table::Override;
                    continue;
                }
                "[enrollment]"
                    if !seen_enrollment && matches!(table, Table::Top | Table::Override) =>
                {
                    seen_enrollment = true;
                    table = Table::Enrollment;
                    continue;
                }
                "[[enrollment.authenticators]]" if seen_enrollment => {
                    table = Table::Authenticator;
                    auths.push(RawAuth::default());
                    continue;
                }
                _ => {}
            }
            let (key, value) = line.split_once(" = ")?;
            let value = plain_value(value)?;
            match (&table, key) {
                (Table::Top, "version") => set_once(
                    &mut version,
                    value.int().and_then(|n| u32::try_from(n).ok()),
                )?,
                (Table::Top, "user") => set_once(&mut user, value.str())?,
                (Table::Top, "required_since") => set_once(&mut required_since, value.time())?,
                (Table::Override, "mode") => {
                    set_once(&mut mode, value.str().and_then(|s| s.parse::<Mode>().ok()))?
                }
                (Table::Override, "by") => set_once(&mut by, value.str())?,
                (Table::Override, "at") => set_once(&mut at, value.time())?,
                (Table::Enrollment, "secret") => set_once(&mut secret, value.str())?,
                (Table::Enrollment, "algorithm") => set_once(
                    &mut algorithm,
                    value.str().and_then(|s| s.parse::<Algorithm>().ok()),
                )?,
                (Table::Enrollment, "digits") => {
                    set_once(&mut digits, value.int().and_then(|n| u8::try_from(n).ok()))?
                }
                (Table::Enrollment, "period") => set_once(&mut period, value.int())?,
                (Table::Enrollment, "enrolled_at") => set_once(&mut enrolled_at, value.time())?,
                (Table::Enrollment, "recovery_codes") => set_once(&mut codes, value.strs())?,
                (Table::Enrollment, "next_id") => set_once(
                    &mut next_id,
                    value.int().and_then(|n| u32::try_from(n).ok()),
                )?,
                (Table::Authenticator, key) => {
                    let a = auths.last_mut()?;
                    match key {
                        "id" => {
                            set_once(&mut a.id, value.int().and_then(|n| u32::try_from(n).ok()))?
                        }
                        "name" => set_once(&mut a.name, value.str())?,
                        "kind" => set_once(
                            &mut a.kind,
                            (value.str()? == Kind::Totp.as_str()).then_some(Kind::Totp),
                        )?,
                        "secret" => set_once(&mut a.secret, value.str())?,
                        "algorithm" => set_once(
                            &mut a.algorithm,
                            value.str().and_then(|s| s.parse::<Algorithm>().ok()),
                        )?,
                        "digits" => set_once(
                            &mut a.digits,
                            value.int().and_then(|n| u8::try_from(n).ok()),
                        )?,
                        "period" => set_once(&mut a.period, value.int())?,
                        "skew" => set_once(&mut a.skew, value.signed())?,
                        "added_at" => set_once(&mut a.added_at, value.time())?,
                        _ => return None,
                    }
                }
                _ => return None,
            }
        }
        let version = version?;
        let admin_override = if seen_override {
            Some(Override {
                mode: mode?,
                by: by?.to_owned(),
                at: at?,
            })
        } else {
            None
        };
        let enrollment = match (seen_enrollment, version) {
            (false, 1 | 2) => {
                if !auths.is_empty() {
                    return None;
                }
                None
            }
            (true, 1) => {
                if next_id.is_some() || !auths.is_empty() {
                    return None;
                }
                Some(Enrollment::from_v1(
                    enrolled_at?,
                    codes
                        .unwrap_or_default()
                        .into_iter()
                        .map(str::to_owned)
                        .collect(),
                    Zeroizing::new(secret?.to_owned()),
                    Params {
                        algorithm: algorithm?,
                        digits: digits?,
                        period: period?,
                    },
                ))
            }
            (true, 2) => {
                if secret.is_some() || algorithm.is_some() || digits.is_some() || period.is_some() {
                    return None;
                }
                Some(Enrollment {
                    enrolled_at: enrolled_at?,
                    next_id: next_id?,
                    recovery_codes: codes
                        .unwrap_or_default()
                        .into_iter()
                        .map(str::to_owned)
                        .collect(),
                    // `toml` reads an absent array as a missing field: decline then too.
                    authenticators: if auths.is_empty() {
                        return None;
                    } else {
                        auths
                            .into_iter()
                            .map(RawAuth::build)
                            .collect::<Option<Vec<_>>>()?
                    },
                })
            }
            _ => return None,
        };
        Some(Record {
            version: VERSION,
            user: user?.to_owned(),
            required_since,
            admin_override,
            enrollment,
        })
    }
}
