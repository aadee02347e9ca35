//! The login-time counters ([`Counters`]): read and written at every login, by a fast reader
//! and writer of their own text.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::canonical::{plain_str, plain_value, set_once, toml_string};

/// The login-time counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawCounters")]
pub struct Counters {
    /// Format version (0 in a default value never written).
    #[serde(default)]
    pub version: u32,
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
    /// Consecutive failures from every source together, since the last success or admin reset:
    /// the per-user tier of [`crate::throttle`].
    #[serde(default, skip_serializing_if = "is_zero")]
    pub user_failures: u64,
    /// The last time step accepted of each authenticator, by its number: only a newer one is
    /// accepted next. (Version 1 had one `last_step`, that of authenticator 1.)
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        serialize_with = "steps_as_strings"
    )]
    pub last_steps: BTreeMap<u32, u64>,
    /// Consecutive failures per source address.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub failures: BTreeMap<String, Failures>,
    /// Sources (throttle keys) the user logged in from, with the time of the last success from
    /// each: they stay open when the per-user tier closes the others.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub known_sources: BTreeMap<String, KnownSource>,
}

/// TOML keys are strings.
fn steps_as_strings<S: serde::Serializer>(
    steps: &BTreeMap<u32, u64>,
    s: S,
) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap as _;
    let mut m = s.serialize_map(Some(steps.len()))?;
    for (id, step) in steps {
        m.serialize_entry(&id.to_string(), step)?;
    }
    m.end()
}

/// Counters as the file holds them, of either version.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCounters {
    #[serde(default)]
    version: u32,
    #[serde(default)]
    last_step: Option<u64>,
    #[serde(default, with = "crate::time::opt_rfc3339")]
    last_login: Option<u64>,
    #[serde(default)]
    last_login_from: Option<String>,
    #[serde(default)]
    user_failures: u64,
    #[serde(default)]
    last_steps: BTreeMap<String, u64>,
    #[serde(default)]
    failures: BTreeMap<String, Failures>,
    #[serde(default)]
    known_sources: BTreeMap<String, KnownSource>,
}

impl TryFrom<RawCounters> for Counters {
    type Error = String;

    fn try_from(raw: RawCounters) -> Result<Counters, String> {
        let mut last_steps = BTreeMap::new();
        for (k, step) in raw.last_steps {
            let id = step_key(&k).ok_or_else(|| format!("{k:?} is not an authenticator number"))?;
            last_steps.insert(id, step);
        }
        if let Some(step) = raw.last_step {
            if raw.version >= 2 {
                return Err("`last_step` belongs to version 1; version 2 has `last_steps`".into());
            }
            last_steps.entry(1).or_insert(step);
        }
        Ok(Counters {
            version: raw.version,
            last_login: raw.last_login,
            last_login_from: raw.last_login_from,
            user_failures: raw.user_failures,
            last_steps,
            failures: raw.failures,
            known_sources: raw.known_sources,
        })
    }
}

/// An authenticator number as a key of `[last_steps]`: decimal, as written.
fn step_key(k: &str) -> Option<u32> {
    let ok = !k.is_empty()
        && k.bytes().all(|b| b.is_ascii_digit())
        && (k.len() == 1 || !k.starts_with('0'));
    ok.then(|| k.parse().ok()).flatten()
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
            Steps,
            Failures(String, Option<u64>, Option<u64>),
            Known(String, Option<u64>),
        }
        fn close(table: Table, c: &mut Counters) -> Option<()> {
            match table {
                Table::Top | Table::Steps => Some(()),
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
        let mut seen_steps = false;
        // A write in place pads a shorter text with newlines up to the file's old size.
        for line in text.trim_end_matches('\n').split('\n') {
            if line.is_empty() {
                continue;
            }
            if let Some(header) = line.strip_prefix('[') {
                let header = header.strip_suffix(']')?;
                let next = if header == "last_steps" && !seen_steps {
                    seen_steps = true;
                    Table::Steps
                } else if let Some(k) = header.strip_prefix("failures.") {
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
                (Table::Steps, key) => {
                    let id = step_key(key)?;
                    let step = value.int()?;
                    c.last_steps.insert(id, step).is_none().then_some(())?
                }
                (Table::Failures(_, count, _), "count") => set_once(count, value.int())?,
                (Table::Failures(_, _, last), "last") | (Table::Known(_, last), "last") => {
                    set_once(last, value.time())?
                }
                _ => return None,
            }
        }
        close(table, &mut c)?;
        c.version = version.unwrap_or(0);
        if let Some(step) = last_step {
            // Version 1's one step, that of authenticator 1.
            if c.version >= 2 {
                return None;
            }
            c.last_steps.entry(1).or_insert(step);
        }
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
        if !self.last_steps.is_empty() {
            out.push_str("\n[last_steps]\n");
            for (id, step) in &self.last_steps {
                let _ = writeln!(out, "{id} = {step}");
            }
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
