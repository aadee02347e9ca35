//! What the store keeps per user, in two files:
//!
//! - the **record** (`USER.toml`): enrollment (secret, code parameters, recovery-code hashes),
//!   admin override, when the requirement first applied. Written rarely, always fsynced before a
//!   change is acknowledged: a crash never costs a secret.
//! - the **counters** (`USER.counters`): last accepted time step, last login, failures per
//!   source. Written at every login, in place under the lock and without fsync: a code lives
//!   about 90 seconds, less than any crash and reboot, and the secret is never in this file.
//!   A torn file (a crash mid-write) reads as empty and is rewritten whole.
//!
//! Both are versioned TOML a human with root can read.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::mode::Mode;
use crate::totp::{Params, Secret, TotpError};

/// Format version of both files written by this build.
pub const VERSION: u32 = 1;

/// The durable per-user record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    /// Format version.
    pub version: u32,
    /// Whose record this is (checked against the file name on load).
    pub user: String,
    /// When 2FA first became required for this user while not enrolled: the grace period runs
    /// from here. Cleared by an admin reset so a new grace starts.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::time::opt_rfc3339"
    )]
    pub required_since: Option<u64>,
    /// The admin override, which beats every policy rule.
    #[serde(rename = "override", default, skip_serializing_if = "Option::is_none")]
    pub admin_override: Option<Override>,
    /// The user's enrollment, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enrollment: Option<Enrollment>,
}

impl Record {
    /// An empty record for `user`.
    pub fn new(user: &str) -> Record {
        Record {
            version: VERSION,
            user: user.to_owned(),
            required_since: None,
            admin_override: None,
            enrollment: None,
        }
    }
}

/// The shape of a value in the text twofold writes.
enum Plain<'a> {
    Int(u64),
    Str(&'a str),
    Strs(Vec<&'a str>),
}

/// A basic string without escapes or control characters: `"…"` at the start of `v`; the text
/// inside and the rest after the closing quote.
fn plain_str(v: &str) -> Option<(&str, &str)> {
    let inner = v.strip_prefix('"')?;
    let end = inner.find('"')?;
    let (s, rest) = inner.split_at(end);
    if s.chars().any(|c| c == '\\' || c.is_control()) {
        return None;
    }
    Some((s, rest.get(1..)?))
}

fn plain_value(v: &str) -> Option<Plain<'_>> {
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
    fn int(self) -> Option<u64> {
        match self {
            Plain::Int(n) => Some(n),
            _ => None,
        }
    }

    fn str(self) -> Option<&'a str> {
        match self {
            Plain::Str(s) => Some(s),
            _ => None,
        }
    }

    fn strs(self) -> Option<Vec<&'a str>> {
        match self {
            Plain::Strs(v) => Some(v),
            _ => None,
        }
    }

    /// An RFC 3339 timestamp, as Unix seconds.
    fn time(self) -> Option<u64> {
        crate::time::parse_rfc3339(self.str()?)
    }
}

/// Fills `slot` with `v` once: `None` (decline) for a key given twice or a value of the wrong
/// shape.
fn set_once<T>(slot: &mut Option<T>, v: Option<T>) -> Option<()> {
    if slot.is_some() {
        return None;
    }
    *slot = Some(v?);
    Some(())
}

impl Record {
    /// Parses a record in exactly the shape twofold writes it (`toml::to_string` of a record:
    /// `key = value` lines with plain strings, integers and one-line string arrays, the
    /// `[override]` and `[enrollment]` tables), without the TOML parser: a login reads one at
    /// every code check. `None` for any other text, however valid as TOML (comments, escapes,
    /// other spacing, keys out of place): the caller then parses it with the `toml` crate,
    /// which also gives the errors. It accepts nothing the `toml` crate would refuse and reads
    /// everything as it does (`tests/record_text.rs` checks both over generated and damaged
    /// records).
    pub fn parse_canonical(text: &str) -> Option<Record> {
        #[derive(PartialEq)]
        enum Table {
            Top,
            Override,
            Enrollment,
        }
        let mut table = Table::Top;
        let mut seen_override = false;
        let mut seen_enrollment = false;
        let mut version = None;
        let mut user = None;
        let mut required_since = None;
        let (mut mode, mut by, mut at) = (None, None, None);
        let (mut secret, mut algorithm, mut digits, mut period, mut enrolled_at, mut codes) =
            (None, None, None, None, None, None);
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
                "[enrollment]" if !seen_enrollment && table != Table::Enrollment => {
                    seen_enrollment = true;
                    table = Table::Enrollment;
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
                    value
                        .str()
                        .and_then(|s| s.parse::<crate::totp::Algorithm>().ok()),
                )?,
                (Table::Enrollment, "digits") => {
                    set_once(&mut digits, value.int().and_then(|n| u8::try_from(n).ok()))?
                }
                (Table::Enrollment, "period") => set_once(&mut period, value.int())?,
                (Table::Enrollment, "enrolled_at") => set_once(&mut enrolled_at, value.time())?,
                (Table::Enrollment, "recovery_codes") => set_once(&mut codes, value.strs())?,
                _ => return None,
            }
        }
        let admin_override = if seen_override {
            Some(Override {
                mode: mode?,
                by: by?.to_owned(),
                at: at?,
            })
        } else {
            None
        };
        let enrollment = if seen_enrollment {
            Some(Enrollment {
                secret: Zeroizing::new(secret?.to_owned()),
                params: Params {
                    algorithm: algorithm?,
                    digits: digits?,
                    period: period?,
                },
                enrolled_at: enrolled_at?,
                recovery_codes: codes
                    .unwrap_or_default()
                    .into_iter()
                    .map(str::to_owned)
                    .collect(),
            })
        } else {
            None
        };
        Some(Record {
            version: version?,
            user: user?.to_owned(),
            required_since,
            admin_override,
            enrollment,
        })
    }
}

/// An admin override set through the daemon.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Override {
    /// The mode the admin chose.
    pub mode: Mode,
    /// Who set it (user name of the admin as the bus reported it).
    pub by: String,
    /// When.
    #[serde(with = "crate::time::rfc3339_secs")]
    pub at: u64,
}

/// A confirmed enrollment.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Enrollment {
    /// The TOTP secret, base32. Wiped from memory when dropped.
    pub secret: Zeroizing<String>,
    /// Code parameters.
    #[serde(flatten)]
    pub params: Params,
    /// When it was confirmed.
    #[serde(with = "crate::time::rfc3339_secs")]
    pub enrolled_at: u64,
    /// Salted hashes of the unused recovery codes.
    #[serde(default)]
    pub recovery_codes: Vec<String>,
}

impl std::fmt::Debug for Enrollment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Enrollment")
            .field("secret", &"<redacted>")
            .field("params", &self.params)
            .field("enrolled_at", &self.enrolled_at)
            .field("recovery_codes", &self.recovery_codes.len())
            .finish()
    }
}

impl Enrollment {
    /// A new enrollment of `secret`.
    pub fn new(
        secret: &Secret,
        params: Params,
        at: u64,
        recovery_hashes: Vec<String>,
    ) -> Enrollment {
        Enrollment {
            secret: secret.to_base32(),
            params,
            enrolled_at: at,
            recovery_codes: recovery_hashes,
        }
    }

    /// The decoded secret.
    pub fn secret(&self) -> Result<Secret, TotpError> {
        Secret::from_base32(&self.secret)
    }

    /// What tells this enrollment from any other of the user's: a SHA-256 of its secret and
    /// confirmation time. A proof given against one enrollment is bound to it by this (a
    /// replacement begun with a proof may replace only the enrollment the proof was for).
    pub fn fingerprint(&self) -> [u8; 32] {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(b"twofold-enrollment\0");
        h.update(self.enrolled_at.to_le_bytes());
        h.update(self.secret.as_bytes());
        h.finalize().into()
    }
}

/// The login-time counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Counters {
    /// Format version (0 in a default value never written).
    #[serde(default)]
    pub version: u32,
    /// The last time step accepted: only a newer one is accepted next.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_step: Option<u64>,
    /// The last successful 2FA login.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::time::opt_rfc3339"
    )]
    pub last_login: Option<u64>,
    /// Where it came from (PAM_RHOST, or "local").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_login_from: Option<String>,
    /// Consecutive failures per source address.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub failures: BTreeMap<String, Failures>,
    /// Consecutive failures from every source together, since the last success or admin reset:
    /// the per-user tier of [`crate::throttle`].
    #[serde(default, skip_serializing_if = "is_zero")]
    pub user_failures: u64,
    /// Sources (throttle keys) the user logged in from, with the time of the last success from
    /// each: they stay open when the per-user tier closes the others.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub known_sources: BTreeMap<String, KnownSource>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Counters {
    /// Parses counters in the shape twofold writes them ([`Counters::to_toml`], or the `toml`
    /// serializer's, whose table keys are bare where they can be), without the TOML parser, as
    /// [`Record::parse_canonical`] does records: `None` for any other text, which the caller
    /// then parses with the `toml` crate. `tests/counters_text.rs` checks it against that crate
    /// over generated and damaged counters.
    pub fn parse_canonical(text: &str) -> Option<Counters> {
        enum Table {
            Top,
            Failures(String, Option<u64>, Option<u64>),
            Known(String, Option<u64>),
        }
        fn close(table: Table, c: &mut Counters) -> Option<()> {
            match table {
                Table::Top => Some(()),
                Table::Failures(key, count, last) => {
                    let f = Failures {
                        count: count?,
                        last: last?,
                    };
                    c.failures.insert(key, f).is_none().then_some(())
                }
                Table::Known(key, last) => {
                    let k = KnownSource { last: last? };
                    c.known_sources.insert(key, k).is_none().then_some(())
                }
            }
        }
        /// The key of a table header: a plain quoted string or a bare key.
        fn table_key(k: &str) -> Option<String> {
            if k.starts_with('"') {
                let (s, rest) = plain_str(k)?;
                return rest.is_empty().then(|| s.to_owned());
            }
            let bare = !k.is_empty()
                && k.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
            bare.then(|| k.to_owned())
        }
        let mut c = Counters::default();
        let (mut version, mut last_step, mut last_login, mut from, mut user_failures) =
            (None, None, None, None, None);
        let mut table = Table::Top;
        // A write in place pads a shorter text with newlines up to the file's old size.
        for line in text.trim_end_matches('\n').split('\n') {
            if line.is_empty() {
                continue;
            }
            if let Some(header) = line.strip_prefix('[') {
                let header = header.strip_suffix(']')?;
                let next = if let Some(k) = header.strip_prefix("failures.") {
                    Table::Failures(table_key(k)?, None, None)
                } else if let Some(k) = header.strip_prefix("known_sources.") {
                    Table::Known(table_key(k)?, None)
                } else {
                    return None;
                };
                close(std::mem::replace(&mut table, next), &mut c)?;
                continue;
            }
            let (key, value) = line.split_once(" = ")?;
            let value = plain_value(value)?;
            match (&mut table, key) {
                (Table::Top, "version") => set_once(
                    &mut version,
                    value.int().and_then(|n| u32::try_from(n).ok()),
                )?,
                (Table::Top, "last_step") => set_once(&mut last_step, value.int())?,
                (Table::Top, "last_login") => set_once(&mut last_login, value.time())?,
                (Table::Top, "last_login_from") => {
                    set_once(&mut from, value.str().map(str::to_owned))?
                }
                (Table::Top, "user_failures") => set_once(&mut user_failures, value.int())?,
                (Table::Failures(_, count, _), "count") => set_once(count, value.int())?,
                (Table::Failures(_, _, last), "last") | (Table::Known(_, last), "last") => {
                    set_once(last, value.time())?
                }
                _ => return None,
            }
        }
        close(table, &mut c)?;
        c.version = version.unwrap_or(0);
        c.last_step = last_step;
        c.last_login = last_login;
        c.last_login_from = from;
        c.user_failures = user_failures.unwrap_or(0);
        Some(c)
    }

    /// The counters as TOML, as every login writes them: the same document `toml::to_string`
    /// makes of them (fields in order, the maps as tables), without the serializer's
    /// machinery. `tests/counters_text.rs` checks that it parses back to the same value.
    pub fn to_toml(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::with_capacity(160);
        let _ = writeln!(out, "version = {}", self.version);
        if let Some(step) = self.last_step {
            let _ = writeln!(out, "last_step = {step}");
        }
        if let Some(t) = self.last_login {
            let _ = writeln!(out, "last_login = \"{}\"", crate::time::rfc3339(t));
        }
        if let Some(from) = &self.last_login_from {
            out.push_str("last_login_from = ");
            toml_string(&mut out, from);
            out.push('\n');
        }
        if self.user_failures != 0 {
            let _ = writeln!(out, "user_failures = {}", self.user_failures);
        }
        for (source, f) in &self.failures {
            out.push_str("\n[failures.");
            toml_string(&mut out, source);
            let _ = write!(
                out,
                "]\ncount = {}\nlast = \"{}\"\n",
                f.count,
                crate::time::rfc3339(f.last)
            );
        }
        for (source, k) in &self.known_sources {
            out.push_str("\n[known_sources.");
            toml_string(&mut out, source);
            let _ = write!(out, "]\nlast = \"{}\"\n", crate::time::rfc3339(k.last));
        }
        out
    }
}

/// `s` as a TOML basic string: quoted, with `"`, `\\` and every control character escaped.
fn toml_string(out: &mut String, s: &str) {
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

/// A source the user logged in from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KnownSource {
    /// When the last successful login from it happened.
    #[serde(with = "crate::time::rfc3339_secs")]
    pub last: u64,
}

/// Failures from one source.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Failures {
    /// Consecutive failed attempts.
    pub count: u64,
    /// When the last one happened.
    #[serde(with = "crate::time::rfc3339_secs")]
    pub last: u64,
}
